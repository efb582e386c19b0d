package kafka

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"sync"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Length checks before decoding.
//
// kmsg (v1.15.0, the newest the module proxy serves) trusts the lengths a
// request claims: it sizes an array from its claimed count before reading
// an element (bounded only by one byte per element, so a claim costs up to
// the element's Go size, ~100 bytes, per byte of request), and it reads a
// tagged-field count with a loop that does not stop when the input runs
// out (a claimed count of 2^32 spins for seconds on a 14-byte request).
//
// So before kmsg sees a body, checkBody walks it with the request's wire
// layout: every string, bytes and array length and every tagged-field
// count must fit in the bytes that remain, where an array of N elements
// needs N times its element's smallest encoding, and every element is
// walked. A body that passes is well-formed as far as lengths go, so kmsg
// allocates at most (Go size / smallest encoding) of the largest element
// type per byte of request, plus the strings it copies; a body that fails
// closes the connection, as Kafka does with a malformed request.
//
// The layout of each key and version is derived once from kmsg itself:
// each field of the request's Go struct (in declaration order, which is
// kmsg's wire order) is changed twice and the request re-encoded. A field
// that does not change the encoding is absent at that version; one whose
// two changes grow the encoding by the same amount is a body field; one
// whose first change adds more (a tag header) is a tagged field, which
// the walk skips as part of the tag section.

// wkind is the wire shape of a body field.
type wkind uint8

const (
	wFixed  wkind = iota // n bytes: integers, booleans, UUIDs
	wString              // int16 length (compact: uvarint length+1), -1 null
	wBytes               // int32 length (compact: uvarint length+1), -1 null
	wArray               // int32 count (compact: uvarint count+1), -1 null
)

type wnode struct {
	kind wkind
	n    int      // wFixed
	elem *wstruct // wArray of structs
	prim *wnode   // wArray of primitives
}

type wstruct struct {
	fields []wnode
	tags   bool // a tagged-field section ends the struct (flexible versions)
}

// wlayout is one request key and version's body layout.
type wlayout struct {
	compact bool
	root    *wstruct
}

// minSize is the fewest bytes an encoding of n takes.
func (n *wnode) minSize(compact bool) int {
	switch n.kind {
	case wFixed:
		return n.n
	case wString:
		if compact {
			return 1
		}
		return 2
	}
	if compact {
		return 1
	}
	return 4
}

func (s *wstruct) minSize(compact bool) int {
	m := 0
	for i := range s.fields {
		m += s.fields[i].minSize(compact)
	}
	if s.tags {
		m++
	}
	return m
}

type layoutKey struct{ key, version int16 }

// layouts holds the layout of every version of every registered key,
// built on first use (after every API file's init has registered).
var layouts = sync.OnceValues(func() (map[layoutKey]*wlayout, error) {
	out := make(map[layoutKey]*wlayout)
	for key, api := range handlers {
		for v := api.minVersion; v <= api.maxVersion; v++ {
			l, err := buildLayout(key, v)
			if err != nil {
				return nil, fmt.Errorf("api key %d v%d: %w", key, v, err)
			}
			out[layoutKey{key, v}] = l
		}
	}
	return out, nil
})

var errMalformed = errors.New("malformed request: a length or count exceeds the bytes that follow")

// checkBody reports whether body is well-formed for key and version as far
// as its lengths and counts go.
func checkBody(key, version int16, body []byte) error {
	ls, err := layouts()
	if err != nil {
		return err // a bug: the layout tests catch it
	}
	l := ls[layoutKey{key, version}]
	if l == nil {
		return fmt.Errorf("no layout for api key %d v%d", key, version)
	}
	w := walker{b: body, compact: l.compact}
	if !w.structure(l.root) {
		return errMalformed
	}
	return nil
}

type walker struct {
	b       []byte
	compact bool
}

func (w *walker) skip(n int) bool {
	if n < 0 || n > len(w.b) {
		return false
	}
	w.b = w.b[n:]
	return true
}

func (w *walker) uvarint() (int, bool) {
	v, n := kbin.Uvarint(w.b)
	if n <= 0 {
		return 0, false
	}
	w.b = w.b[n:]
	return int(v), true
}

// length reads a string, bytes or array length of wide bytes when not
// compact; -1 means null.
func (w *walker) length(wide int) (int, bool) {
	if w.compact {
		u, ok := w.uvarint()
		return u - 1, ok
	}
	if len(w.b) < wide {
		return 0, false
	}
	var l int
	if wide == 2 {
		l = int(int16(binary.BigEndian.Uint16(w.b)))
	} else {
		l = int(int32(binary.BigEndian.Uint32(w.b)))
	}
	w.b = w.b[wide:]
	return l, l >= -1
}

func (w *walker) structure(s *wstruct) bool {
	for i := range s.fields {
		if !w.field(&s.fields[i]) {
			return false
		}
	}
	return !s.tags || w.tags()
}

func (w *walker) field(n *wnode) bool {
	switch n.kind {
	case wFixed:
		return w.skip(n.n)
	case wString, wBytes:
		wide := 4
		if n.kind == wString {
			wide = 2
		}
		l, ok := w.length(wide)
		return ok && (l < 0 || w.skip(l))
	}
	count, ok := w.length(4)
	if !ok || count <= 0 {
		return ok
	}
	min := n.minElem(w.compact)
	if count > len(w.b)/min {
		return false
	}
	for range count {
		if n.elem != nil {
			if !w.structure(n.elem) {
				return false
			}
		} else if !w.field(n.prim) {
			return false
		}
	}
	return true
}

func (n *wnode) minElem(compact bool) int {
	if n.elem != nil {
		return max(1, n.elem.minSize(compact))
	}
	return max(1, n.prim.minSize(compact))
}

// tags walks a tagged-field section: a count, then per field a tag, a
// size and that many bytes (at least two bytes per field).
func (w *walker) tags() bool {
	count, ok := w.uvarint()
	if !ok || count > len(w.b)/2 {
		return false
	}
	for range count {
		if _, ok := w.uvarint(); !ok {
			return false
		}
		size, ok := w.uvarint()
		if !ok || !w.skip(size) {
			return false
		}
	}
	return true
}

// buildLayout derives the body layout of one key and version from kmsg's
// encoder (see the comment at the top of the file).
func buildLayout(key, version int16) (*wlayout, error) {
	req := kmsg.RequestForKey(key)
	if req == nil {
		return nil, errors.New("unknown to kmsg")
	}
	req.SetVersion(version)
	p := prober{enc: func() []byte { return req.AppendTo(nil) }, flexible: req.IsFlexible()}
	root, err := p.structure(reflect.ValueOf(req).Elem(), true)
	if err != nil {
		return nil, err
	}
	return &wlayout{compact: p.flexible, root: root}, nil
}

type prober struct {
	enc      func() []byte
	flexible bool
}

func (p *prober) structure(v reflect.Value, top bool) (*wstruct, error) {
	s := &wstruct{tags: p.flexible}
	t := v.Type()
	for i := range t.NumField() {
		name := t.Field(i).Name
		if name == "UnknownTags" || (top && name == "Version") {
			continue
		}
		n, inBody, err := p.field(v.Field(i))
		if err != nil {
			return nil, fmt.Errorf("%s.%s: %w", t.Name(), name, err)
		}
		if inBody {
			s.fields = append(s.fields, *n)
		}
	}
	return s, nil
}

// field probes one field: whether the body carries it at this version,
// and its shape.
func (p *prober) field(f reflect.Value) (*wnode, bool, error) {
	orig := reflect.New(f.Type()).Elem()
	orig.Set(f)
	defer f.Set(orig)
	set := func(step int) error { return probeValue(f, orig, step) }
	base := p.enc()
	if err := set(1); err != nil {
		return nil, false, err
	}
	a := p.enc()
	if err := set(2); err != nil {
		return nil, false, err
	}
	b := p.enc()
	if bytes.Equal(base, a) {
		return nil, false, nil // not encoded at this version
	}
	if len(a)-len(base) != len(b)-len(a) {
		return nil, false, nil // tagged: skipped with the tag section
	}
	n, err := p.shape(f, orig)
	return n, err == nil, err
}

// shape describes a body field.
func (p *prober) shape(f, orig reflect.Value) (*wnode, error) {
	t := f.Type()
	switch t.Kind() {
	case reflect.Bool, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Uint8,
		reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float64, reflect.Array:
		return &wnode{kind: wFixed, n: int(t.Size())}, nil
	case reflect.String:
		return &wnode{kind: wString}, nil
	case reflect.Pointer:
		if t.Elem().Kind() == reflect.String {
			return &wnode{kind: wString}, nil
		}
	case reflect.Slice:
		et := t.Elem()
		switch et.Kind() {
		case reflect.Uint8:
			return &wnode{kind: wBytes}, nil
		case reflect.Struct:
			// Probe the element inside the request, as its only element.
			f.Set(reflect.MakeSlice(t, 1, 1))
			defaultValue(f.Index(0))
			elem, err := p.structure(f.Index(0), false)
			f.Set(orig)
			if err != nil {
				return nil, err
			}
			return &wnode{kind: wArray, elem: elem}, nil
		default:
			prim, err := p.shape(reflect.New(et).Elem(), reflect.New(et).Elem())
			if err != nil {
				return nil, err
			}
			return &wnode{kind: wArray, prim: prim}, nil
		}
	}
	return nil, fmt.Errorf("field of type %s in the body is not supported", t)
}

// probeValue sets f to the step-th (1 or 2) changed value of orig: each
// step changes a fixed-size field, and grows a variable-size one by the
// same amount.
func probeValue(f, orig reflect.Value, step int) error {
	t := f.Type()
	switch t.Kind() {
	case reflect.Bool:
		f.SetBool(orig.Bool() != (step == 1))
	case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		f.SetInt(orig.Int() ^ int64(0x15*step))
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		f.SetUint(orig.Uint() ^ uint64(0x15*step))
	case reflect.Float64:
		f.SetFloat(orig.Float() + float64(step))
	case reflect.Array:
		f.Set(orig)
		f.Index(step - 1).SetUint(orig.Index(step-1).Uint() ^ 1)
	case reflect.String:
		f.SetString(orig.String() + "ab"[:step])
	case reflect.Pointer:
		if t.Elem().Kind() != reflect.String {
			return fmt.Errorf("pointer to %s", t.Elem())
		}
		s := ""
		if !orig.IsNil() {
			s = orig.Elem().String()
		}
		s += "ab"[:step]
		f.Set(reflect.ValueOf(&s))
	case reflect.Slice:
		n := orig.Len() + step
		sl := reflect.MakeSlice(t, n, n)
		reflect.Copy(sl, orig)
		for i := orig.Len(); i < n; i++ {
			e := sl.Index(i)
			switch e.Kind() {
			case reflect.Struct:
				defaultValue(e)
			case reflect.String:
				e.SetString("a")
			case reflect.Uint8:
				e.SetUint(1)
			case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
				e.SetInt(7)
			}
		}
		f.Set(sl)
	case reflect.Struct:
		// An inline struct: change its first field.
		f.Set(orig)
		if f.NumField() == 0 {
			return errors.New("empty struct")
		}
		return probeValue(f.Field(0), orig.Field(0), step)
	default:
		return fmt.Errorf("field of type %s is not supported", t)
	}
	return nil
}

// defaultValue applies kmsg's defaults to a struct element.
func defaultValue(v reflect.Value) {
	if m := v.Addr().MethodByName("Default"); m.IsValid() {
		m.Call(nil)
	}
}
