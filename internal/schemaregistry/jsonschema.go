package schemaregistry

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/big"
	"slices"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// jsonType: JSON Schema, compiled (so validated) by santhosh-tekuri's
// jsonschema; compatibility follows Confluent's documented JSON Schema
// rules for the common cases.
type jsonType struct{}

// jsonParsed is a compiled schema and its document, which the
// compatibility rules walk.
type jsonParsed struct {
	compiled *jsonschema.Schema
	doc      any
}

// jsonBase is where schemas live for $ref resolution: a reference named
// "address.json" is found at jsonBase+"address.json".
const jsonBase = "mem://registry/"

func (jsonType) canonical(text string, normalize bool) (string, error) {
	return compactJSON(text, normalize)
}

func jsonURL(name string) string {
	if strings.Contains(name, "://") {
		return name
	}
	return jsonBase + strings.TrimPrefix(name, "/")
}

func (jsonType) parse(text string, deps []dependency) (parsedSchema, error) {
	c := jsonschema.NewCompiler()
	// No loader: a $ref outside the schema and its references fails
	// instead of reaching for files or the network.
	c.UseLoader(jsonschema.SchemeURLLoader{})
	for _, d := range deps {
		if d.typ != TypeJSON {
			return nil, fmt.Errorf("reference %s is a %s schema, not JSON", d.name, d.typ)
		}
		doc, err := jsonschema.UnmarshalJSON(strings.NewReader(d.text))
		if err != nil {
			return nil, fmt.Errorf("reference %s: %w", d.name, err)
		}
		if err := c.AddResource(jsonURL(d.name), doc); err != nil {
			return nil, fmt.Errorf("reference %s: %w", d.name, err)
		}
	}
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(text))
	if err != nil {
		return nil, err
	}
	const main = jsonBase + "schema.json"
	if err := c.AddResource(main, doc); err != nil {
		return nil, err
	}
	sch, err := c.Compile(main)
	if err != nil {
		return nil, err
	}
	return &jsonParsed{compiled: sch, doc: doc}, nil
}

// Validate validates a JSON value against the schema.
func (p *jsonParsed) validate(value []byte) error {
	v, err := jsonschema.UnmarshalJSON(strings.NewReader(string(value)))
	if err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	return p.compiled.Validate(v)
}

func (jsonType) compatible(reader, writer parsedSchema, _ bool) []string {
	var out []string
	jsonCompat(reader.(*jsonParsed).doc, writer.(*jsonParsed).doc, "#", &out)
	return out
}

// jsonCompat appends why some value valid under writer may be invalid
// under reader (the reader must accept everything the writer accepts).
// Names of the differences are Confluent's.
func jsonCompat(reader, writer any, path string, out *[]string) {
	add := func(kind, format string, args ...any) {
		*out = append(*out, fmt.Sprintf("%s at %s: %s", kind, path, fmt.Sprintf(format, args...)))
	}
	if b, ok := writer.(bool); ok && !b {
		return // the writer accepts nothing
	}
	if b, ok := reader.(bool); ok {
		if !b {
			add("SCHEMA_NARROWED", "the reader accepts nothing")
		}
		return
	}
	r, _ := reader.(map[string]any)
	w, _ := writer.(map[string]any)
	if r == nil {
		return // an empty reader schema accepts everything
	}
	if w == nil {
		w = map[string]any{}
	}
	if rr, wr := r["$ref"], w["$ref"]; rr != nil || wr != nil {
		if fmt.Sprint(rr) != fmt.Sprint(wr) {
			add("TYPE_CHANGED", "$ref changed from %v to %v", wr, rr)
		}
		return
	}

	rTypes, wTypes := jsonTypes(r), jsonTypes(w)
	if rTypes != nil {
		if wTypes == nil {
			add("TYPE_NARROWED", "the reader requires type %s", strings.Join(rTypes, ", "))
		} else {
			for _, t := range wTypes {
				if !slices.Contains(rTypes, t) && !(t == "integer" && slices.Contains(rTypes, "number")) {
					add("TYPE_CHANGED", "type %s is no longer accepted (reader: %s)", t, strings.Join(rTypes, ", "))
				}
			}
		}
	}
	allows := func(t string) bool { return wTypes == nil || slices.Contains(wTypes, t) }

	if re, ok := r["enum"].([]any); ok {
		we, wok := w["enum"].([]any)
		if !wok {
			add("ENUM_ARRAY_NARROWED", "the reader adds an enum")
		} else {
			for _, v := range we {
				if !containsJSON(re, v) {
					add("ENUM_ARRAY_NARROWED", "enum value %s was removed", jsonText(v))
				}
			}
		}
	}
	if rc, ok := r["const"]; ok {
		if wc, wok := w["const"]; !wok || jsonText(rc) != jsonText(wc) {
			add("CONST_CHANGED", "const %s", jsonText(rc))
		}
	}

	if allows("object") && (rTypes == nil || slices.Contains(rTypes, "object")) {
		jsonObjectCompat(r, w, path, add, out)
	}
	if allows("array") {
		if ri, ok := r["items"]; ok {
			wi, wok := w["items"]
			if !wok {
				wi = true
			}
			jsonCompat(ri, wi, path+"/items", out)
		}
	}
	if allows("string") {
		narrowedMax(r, w, "maxLength", "MAX_LENGTH", add)
		narrowedMin(r, w, "minLength", "MIN_LENGTH", add)
		if rp, ok := r["pattern"]; ok && jsonText(rp) != jsonText(w["pattern"]) {
			add("PATTERN_CHANGED", "pattern %s", jsonText(rp))
		}
	}
	if allows("number") || allows("integer") {
		narrowedMax(r, w, "maximum", "MAXIMUM", add)
		narrowedMin(r, w, "minimum", "MINIMUM", add)
		narrowedMax(r, w, "exclusiveMaximum", "EXCLUSIVE_MAXIMUM", add)
		narrowedMin(r, w, "exclusiveMinimum", "EXCLUSIVE_MINIMUM", add)
	}
	if allows("array") {
		narrowedMax(r, w, "maxItems", "MAX_ITEMS", add)
		narrowedMin(r, w, "minItems", "MIN_ITEMS", add)
	}
}

func jsonObjectCompat(r, w map[string]any, path string, add func(kind, format string, args ...any), out *[]string) {
	rProps, _ := r["properties"].(map[string]any)
	wProps, _ := w["properties"].(map[string]any)
	rAdd, wAdd := additional(r), additional(w)
	for _, name := range slices.Sorted(maps.Keys(wProps)) {
		p := path + "/properties/" + name
		switch rp, ok := rProps[name]; {
		case ok:
			jsonCompat(rp, wProps[name], p, out)
		case rAdd == false:
			add("PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL", "property %q was removed", name)
		default:
			jsonCompat(rAdd, wProps[name], p, out)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(rProps)) {
		if _, ok := wProps[name]; ok {
			continue
		}
		switch {
		case wAdd == false:
			// The writer never writes it.
		case wAdd == true:
			if !isEmptySchema(rProps[name]) {
				add("PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL", "property %q was added while the writer allows any additional property", name)
			}
		default:
			jsonCompat(rProps[name], wAdd, path+"/properties/"+name, out)
		}
	}
	wReq := stringsOf(w["required"])
	for _, name := range stringsOf(r["required"]) {
		if slices.Contains(wReq, name) {
			continue
		}
		if prop, ok := rProps[name].(map[string]any); ok {
			if _, hasDefault := prop["default"]; hasDefault {
				continue
			}
		}
		add("REQUIRED_PROPERTY_ADDED", "property %q is now required", name)
	}
	switch {
	case rAdd == false && wAdd != false:
		add("ADDITIONAL_PROPERTIES_REMOVED", "additional properties are no longer allowed")
	case rAdd == true:
	case wAdd == true:
		add("ADDITIONAL_PROPERTIES_NARROWED", "additional properties are constrained")
	case wAdd != false:
		jsonCompat(rAdd, wAdd, path+"/additionalProperties", out)
	}
}

// additional returns additionalProperties: true when absent (open), false
// (closed) or a schema.
func additional(s map[string]any) any {
	v, ok := s["additionalProperties"]
	if !ok {
		return true
	}
	if m, ok := v.(map[string]any); ok && len(m) == 0 {
		return true
	}
	return v
}

func isEmptySchema(v any) bool {
	if b, ok := v.(bool); ok {
		return b
	}
	m, ok := v.(map[string]any)
	return ok && len(m) == 0
}

func jsonTypes(s map[string]any) []string {
	switch t := s["type"].(type) {
	case string:
		return []string{t}
	case []any:
		return stringsOf(t)
	}
	return nil
}

func stringsOf(v any) []string {
	list, _ := v.([]any)
	var out []string
	for _, e := range list {
		if s, ok := e.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func containsJSON(list []any, v any) bool {
	t := jsonText(v)
	return slices.ContainsFunc(list, func(e any) bool { return jsonText(e) == t })
}

func jsonText(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func number(v any) (*big.Float, bool) {
	if v == nil {
		return nil, false
	}
	f, _, err := big.ParseFloat(fmt.Sprint(v), 10, 128, big.ToNearestEven)
	return f, err == nil
}

// narrowedMax: the reader's upper bound is new or lower.
func narrowedMax(r, w map[string]any, key, kind string, add func(kind, format string, args ...any)) {
	rv, ok := number(r[key])
	if !ok {
		return
	}
	wv, wok := number(w[key])
	if !wok {
		add(kind+"_ADDED", "%s %s was added", key, rv.String())
	} else if rv.Cmp(wv) < 0 {
		add(kind+"_DECREASED", "%s decreased from %s to %s", key, wv.String(), rv.String())
	}
}

// narrowedMin: the reader's lower bound is new or higher.
func narrowedMin(r, w map[string]any, key, kind string, add func(kind, format string, args ...any)) {
	rv, ok := number(r[key])
	if !ok {
		return
	}
	wv, wok := number(w[key])
	if !wok {
		add(kind+"_ADDED", "%s %s was added", key, rv.String())
	} else if rv.Cmp(wv) > 0 {
		add(kind+"_INCREASED", "%s increased from %s to %s", key, wv.String(), rv.String())
	}
}
