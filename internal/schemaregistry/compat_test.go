package schemaregistry

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
)

// compatCase: with the earlier versions registered (under NONE), is next
// compatible at each level? Levels not listed are not checked.
type compatCase struct {
	name    string
	typ     string
	earlier []string
	next    string
	want    map[string]bool
}

var compatSubjects atomic.Int64

func runCompat(t *testing.T, cases []compatCase) {
	t.Helper()
	a := newAPI(t, nil)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			subject := fmt.Sprintf("compat-%d", compatSubjects.Add(1))
			a.ok(t, "PUT", "/config/"+subject, map[string]string{"compatibility": "NONE"}, nil)
			for _, s := range tc.earlier {
				a.register(t, subject, tc.typ, s)
			}
			for level, want := range tc.want {
				a.ok(t, "PUT", "/config/"+subject, map[string]string{"compatibility": level}, nil)
				var v struct {
					IsCompatible bool     `json:"is_compatible"`
					Messages     []string `json:"messages"`
				}
				a.ok(t, "POST", "/compatibility/subjects/"+subject+"/versions/latest?verbose=true", body(tc.typ, tc.next), &v)
				if v.IsCompatible != want {
					t.Errorf("%s: compatible = %v, want %v; messages: %s", level, v.IsCompatible, want, strings.Join(v.Messages, "; "))
				}
			}
		})
	}
}

func levelsWant(pairs ...any) map[string]bool {
	m := map[string]bool{}
	for i := 0; i < len(pairs); i += 2 {
		m[pairs[i].(string)] = pairs[i+1].(bool)
	}
	return m
}

func avroRecord(fields ...string) string {
	return `{"type":"record","name":"R","fields":[` + strings.Join(fields, ",") + `]}`
}

func TestAvroCompatibility(t *testing.T) {
	t.Parallel()
	a := `{"name":"a","type":"string"}`
	b := `{"name":"b","type":"int"}`
	bDefault := `{"name":"b","type":"int","default":0}`
	bLong := `{"name":"b","type":"long"}`
	enum := func(symbols ...string) string {
		return `{"type":"enum","name":"E","symbols":["` + strings.Join(symbols, `","`) + `"]}`
	}
	runCompat(t, []compatCase{
		{"add-field-with-default", "AVRO", []string{avroRecord(a)}, avroRecord(a, bDefault),
			levelsWant("BACKWARD", true, "FORWARD", true, "FULL", true, "NONE", true)},
		{"add-field-without-default", "AVRO", []string{avroRecord(a)}, avroRecord(a, b),
			levelsWant("BACKWARD", false, "FORWARD", true, "FULL", false, "NONE", true)},
		{"remove-field-without-default", "AVRO", []string{avroRecord(a, b)}, avroRecord(a),
			levelsWant("BACKWARD", true, "FORWARD", false, "FULL", false)},
		{"remove-field-with-default", "AVRO", []string{avroRecord(a, bDefault)}, avroRecord(a),
			levelsWant("BACKWARD", true, "FORWARD", true, "FULL", true)},
		{"promote-int-to-long", "AVRO", []string{avroRecord(a, b)}, avroRecord(a, bLong),
			levelsWant("BACKWARD", true, "FORWARD", false, "FULL", false)},
		{"narrow-long-to-int", "AVRO", []string{avroRecord(a, bLong)}, avroRecord(a, b),
			levelsWant("BACKWARD", false, "FORWARD", true)},
		{"change-type", "AVRO", []string{avroRecord(a)}, `{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}`,
			levelsWant("BACKWARD", false, "FORWARD", false, "FULL", false, "NONE", true)},
		{"rename-record", "AVRO", []string{avroRecord(a)}, `{"type":"record","name":"Other","fields":[` + a + `]}`,
			levelsWant("BACKWARD", false)},
		{"enum-add-symbol", "AVRO", []string{enum("A", "B")}, enum("A", "B", "C"),
			levelsWant("BACKWARD", true, "FORWARD", false)},
		{"enum-remove-symbol", "AVRO", []string{enum("A", "B")}, enum("A"),
			levelsWant("BACKWARD", false, "FORWARD", true)},
		// Transitive levels check every earlier version, not just the latest.
		{"backward-transitive", "AVRO", []string{avroRecord(a), avroRecord(a, bDefault)}, avroRecord(a, b),
			levelsWant("BACKWARD", true, "BACKWARD_TRANSITIVE", false, "FULL", true, "FULL_TRANSITIVE", false)},
		{"forward-transitive", "AVRO", []string{avroRecord(a, b), avroRecord(a, bDefault)}, avroRecord(a),
			levelsWant("FORWARD", true, "FORWARD_TRANSITIVE", false)},
		{"transitive-compatible", "AVRO", []string{avroRecord(a), avroRecord(a, bDefault)}, avroRecord(a, bDefault, `{"name":"c","type":"string","default":""}`),
			levelsWant("BACKWARD_TRANSITIVE", true, "FORWARD_TRANSITIVE", true, "FULL_TRANSITIVE", true)},
		{"type-change-avro-to-json", "AVRO", []string{avroRecord(a)}, avroRecord(a, bDefault),
			levelsWant("NONE", true)},
	})
}

func TestJSONCompatibility(t *testing.T) {
	t.Parallel()
	obj := func(props string, extra string) string {
		return `{"type":"object","properties":{` + props + `}` + extra + `}`
	}
	const closed = `,"additionalProperties":false`
	a := `"a":{"type":"string"}`
	b := `"b":{"type":"integer"}`
	runCompat(t, []compatCase{
		{"add-property-closed-model", "JSON", []string{obj(a, closed)}, obj(a+","+b, closed),
			levelsWant("BACKWARD", true, "FORWARD", false, "FULL", false)},
		{"add-property-open-model", "JSON", []string{obj(a, "")}, obj(a+","+b, ""),
			levelsWant("BACKWARD", false, "FORWARD", true, "NONE", true)},
		{"remove-property-open-model", "JSON", []string{obj(a+","+b, "")}, obj(a, ""),
			levelsWant("BACKWARD", true, "FORWARD", false)},
		{"remove-property-closed-model", "JSON", []string{obj(a+","+b, closed)}, obj(a, closed),
			levelsWant("BACKWARD", false, "FORWARD", true)},
		{"add-required", "JSON", []string{obj(a+","+b, closed)}, obj(a+","+b, closed+`,"required":["b"]`),
			levelsWant("BACKWARD", false, "FORWARD", true, "FULL", false)},
		{"add-required-with-default", "JSON", []string{obj(a, closed)}, obj(a+`,"b":{"type":"integer","default":1}`, closed+`,"required":["b"]`),
			levelsWant("BACKWARD", true)},
		{"remove-required", "JSON", []string{obj(a, closed+`,"required":["a"]`)}, obj(a, closed),
			levelsWant("BACKWARD", true, "FORWARD", false)},
		{"close-content-model", "JSON", []string{obj(a, "")}, obj(a, closed),
			levelsWant("BACKWARD", false, "FORWARD", true)},
		{"string-to-number", "JSON", []string{obj(a, closed)}, obj(`"a":{"type":"number"}`, closed),
			levelsWant("BACKWARD", false, "FORWARD", false, "NONE", true)},
		{"integer-to-number", "JSON", []string{obj(b, closed)}, obj(`"b":{"type":"number"}`, closed),
			levelsWant("BACKWARD", true, "FORWARD", false)},
		{"widen-type-union", "JSON", []string{`{"type":"string"}`}, `{"type":["string","null"]}`,
			levelsWant("BACKWARD", true, "FORWARD", false)},
		{"enum-add", "JSON", []string{`{"type":"string","enum":["a","b"]}`}, `{"type":"string","enum":["a","b","c"]}`,
			levelsWant("BACKWARD", true, "FORWARD", false, "FULL", false)},
		{"enum-remove", "JSON", []string{`{"type":"string","enum":["a","b"]}`}, `{"type":"string","enum":["a"]}`,
			levelsWant("BACKWARD", false, "FORWARD", true)},
		{"max-length-added", "JSON", []string{`{"type":"string"}`}, `{"type":"string","maxLength":5}`,
			levelsWant("BACKWARD", false, "FORWARD", true)},
		{"nested-property-type-change", "JSON", []string{obj(`"o":`+obj(a, closed), closed)}, obj(`"o":`+obj(`"a":{"type":"boolean"}`, closed), closed),
			levelsWant("BACKWARD", false, "FORWARD", false)},
		{"items-change", "JSON", []string{`{"type":"array","items":{"type":"integer"}}`}, `{"type":"array","items":{"type":"number"}}`,
			levelsWant("BACKWARD", true, "FORWARD", false)},
		{"backward-transitive", "JSON", []string{`{"type":"string","enum":["a"]}`, `{"type":"string","enum":["b"]}`}, `{"type":"string","enum":["b","c"]}`,
			levelsWant("BACKWARD", true, "BACKWARD_TRANSITIVE", false)},
		{"forward-transitive", "JSON", []string{`{"type":"string","enum":["a"]}`, `{"type":"string","enum":["a","b"]}`}, `{"type":"string","enum":["b"]}`,
			levelsWant("FORWARD", true, "FORWARD_TRANSITIVE", false, "FULL_TRANSITIVE", false)},
	})
}

func TestProtobufCompatibility(t *testing.T) {
	t.Parallel()
	proto := func(body string) string { return "syntax = \"proto3\";\npackage shop;\n" + body }
	order := proto(`message Order { string id = 1; int32 qty = 2; Status status = 3; }
enum Status { UNKNOWN = 0; DONE = 1; }`)
	runCompat(t, []compatCase{
		{"add-field", "PROTOBUF", []string{order}, proto(`message Order { string id = 1; int32 qty = 2; Status status = 3; string note = 4; }
enum Status { UNKNOWN = 0; DONE = 1; }`), levelsWant("BACKWARD", true, "FORWARD", true, "FULL", true)},
		{"remove-field-unreserved", "PROTOBUF", []string{order}, proto(`message Order { string id = 1; Status status = 3; }
enum Status { UNKNOWN = 0; DONE = 1; }`), levelsWant("BACKWARD", false, "FORWARD", false, "NONE", true)},
		{"remove-field-reserved", "PROTOBUF", []string{order}, proto(`message Order { reserved 2; string id = 1; Status status = 3; }
enum Status { UNKNOWN = 0; DONE = 1; }`), levelsWant("BACKWARD", true, "FORWARD", true, "FULL", true)},
		{"rename-field", "PROTOBUF", []string{order}, proto(`message Order { string id = 1; int32 quantity = 2; Status status = 3; }
enum Status { UNKNOWN = 0; DONE = 1; }`), levelsWant("BACKWARD", true, "FULL", true)},
		{"change-scalar-kind", "PROTOBUF", []string{order}, proto(`message Order { string id = 1; string qty = 2; Status status = 3; }
enum Status { UNKNOWN = 0; DONE = 1; }`), levelsWant("BACKWARD", false, "FORWARD", false)},
		{"widen-int32-to-int64", "PROTOBUF", []string{order}, proto(`message Order { string id = 1; int64 qty = 2; Status status = 3; }
enum Status { UNKNOWN = 0; DONE = 1; }`), levelsWant("BACKWARD", true, "FULL", true)},
		{"change-number", "PROTOBUF", []string{order}, proto(`message Order { string id = 1; int32 qty = 5; Status status = 3; }
enum Status { UNKNOWN = 0; DONE = 1; }`), levelsWant("BACKWARD", false)},
		{"scalar-to-message", "PROTOBUF", []string{order}, proto(`message Order { string id = 1; Qty qty = 2; Status status = 3; }
message Qty { int32 n = 1; }
enum Status { UNKNOWN = 0; DONE = 1; }`), levelsWant("BACKWARD", false)},
		{"remove-message", "PROTOBUF", []string{order + "\nmessage Extra { string x = 1; }"}, order,
			levelsWant("BACKWARD", false, "FORWARD", false)},
		{"add-message", "PROTOBUF", []string{order}, order + "\nmessage Extra { string x = 1; }",
			levelsWant("BACKWARD", true, "FORWARD", true)},
		{"remove-enum", "PROTOBUF", []string{order + "\nenum Color { RED = 0; }"}, order,
			levelsWant("BACKWARD", false)},
		{"remove-enum-value", "PROTOBUF", []string{order}, proto(`message Order { string id = 1; int32 qty = 2; Status status = 3; }
enum Status { UNKNOWN = 0; }`), levelsWant("BACKWARD", false)},
		{"change-package", "PROTOBUF", []string{order}, strings.Replace(order, "package shop;", "package store;", 1),
			levelsWant("BACKWARD", false)},
		{"backward-transitive", "PROTOBUF", []string{order, proto(`message Order { reserved 2; string id = 1; Status status = 3; }
enum Status { UNKNOWN = 0; DONE = 1; }`)}, proto(`message Order { string id = 1; string qty = 2; Status status = 3; }
enum Status { UNKNOWN = 0; DONE = 1; }`), levelsWant("BACKWARD", true, "BACKWARD_TRANSITIVE", false, "FORWARD_TRANSITIVE", false, "FULL", true)},
	})
}

// TestTypeChange: a subject's versions keep their type unless the level
// is NONE.
func TestTypeChange(t *testing.T) {
	t.Parallel()
	a := newAPI(t, nil)
	a.register(t, "s", "AVRO", `"string"`)
	a.fails(t, 409, 409, "POST", "/subjects/s/versions", body("JSON", `{"type":"string"}`))
	a.ok(t, "PUT", "/config/s", map[string]string{"compatibility": "NONE"}, nil)
	a.register(t, "s", "JSON", `{"type":"string"}`)
}
