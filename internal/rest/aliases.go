package rest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
)

// The original StreamHouse's REST models spelled their fields in
// camelCase (groupId, partitionId, committedOffset, ...); ours are
// snake_case. So that its users' scripts keep working:
//
//   - a request accepts either spelling of a field the original named
//     differently (a struct field per spelling, merged with either; both
//     given and different is a 400);
//   - an answer carries both spellings: a field the original named
//     differently has an `orig:"name"` tag next to its json tag, and its
//     type's MarshalJSON is marshalWithOriginal, which writes the field
//     under both names.

// either returns the field given under our name or under the original's
// (nil when neither is given), and a 400 when both are given and differ.
func either[T comparable](ours *T, oursName string, theirs *T, theirsName string) (*T, error) {
	switch {
	case ours == nil:
		return theirs, nil
	case theirs != nil && *theirs != *ours:
		return nil, badRequest("%s (%v) and %s (%v) disagree; send one of them", oursName, *ours, theirsName, *theirs)
	}
	return ours, nil
}

// marshalWithOriginal encodes the struct v as encoding/json does (json
// tags with omitempty; no embedded structs), writing each field that has
// an `orig:"name"` tag a second time under that name.
func marshalWithOriginal(v any) ([]byte, error) {
	rv := reflect.ValueOf(v)
	rt := rv.Type()
	var buf bytes.Buffer
	buf.WriteByte('{')
	first := true
	put := func(name string, val []byte) {
		if !first {
			buf.WriteByte(',')
		}
		first = false
		key, _ := json.Marshal(name)
		buf.Write(key)
		buf.WriteByte(':')
		buf.Write(val)
	}
	for i := range rt.NumField() {
		f := rt.Field(i)
		tag := f.Tag.Get("json")
		if !f.IsExported() || tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" {
			name = f.Name
		}
		fv := rv.Field(i)
		if strings.Contains(","+opts+",", ",omitempty,") && isEmptyValue(fv) {
			continue
		}
		val, err := json.Marshal(fv.Interface())
		if err != nil {
			return nil, fmt.Errorf("encode %s.%s: %w", rt.Name(), f.Name, err)
		}
		put(name, val)
		if orig := f.Tag.Get("orig"); orig != "" && orig != name {
			put(orig, val)
		}
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// isEmptyValue is encoding/json's omitempty test.
func isEmptyValue(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		return v.Len() == 0
	case reflect.Bool:
		return !v.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return v.Int() == 0
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return v.Uint() == 0
	case reflect.Float32, reflect.Float64:
		return v.Float() == 0
	case reflect.Interface, reflect.Pointer:
		return v.IsNil()
	}
	return false
}
