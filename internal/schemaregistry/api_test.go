package schemaregistry

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/metadata/metadatatest"
)

const (
	userV1 = `{"type":"record","name":"User","fields":[{"name":"name","type":"string"}]}`
	userV2 = `{"type":"record","name":"User","fields":[{"name":"name","type":"string"},{"name":"age","type":"int","default":0}]}`
	userV3 = `{"type":"record","name":"User","fields":[{"name":"name","type":"string"},{"name":"age","type":"int"}]}`
)

// TestAPI runs the endpoint tests on every metadata backend.
func TestAPI(t *testing.T) {
	t.Parallel()
	for name, open := range metadatatest.Backends(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			for _, tc := range []struct {
				name string
				fn   func(t *testing.T, a *testAPI)
			}{
				{"subjects-and-versions", testSubjectsAndVersions},
				{"ids", testSchemaIDs},
				{"lookup", testLookup},
				{"delete", testDelete},
				{"config", testConfig},
				{"compatibility-endpoint", testCompatibilityEndpoint},
				{"references", testReferences},
				{"bad-input", testBadInput},
				{"concurrent-register", testConcurrentRegister},
			} {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					tc.fn(t, newAPI(t, open(t)))
				})
			}
		})
	}
}

func testSubjectsAndVersions(t *testing.T, a *testAPI) {
	var subjects []string
	a.ok(t, "GET", "/subjects", nil, &subjects)
	if subjects == nil || len(subjects) != 0 {
		t.Fatalf("GET /subjects on an empty registry: %v", subjects)
	}
	id1 := a.register(t, "users-value", "", "{\n  \"type\": \"record\", \"name\": \"User\",\n  \"fields\": [{\"name\": \"name\", \"type\": \"string\"}]\n}")
	// Whitespace does not make another schema; AVRO is the default type.
	if again := a.register(t, "users-value", "AVRO", userV1); again != id1 {
		t.Fatalf("same schema again: id %d, want %d", again, id1)
	}
	id2 := a.register(t, "users-value", "AVRO", userV2)
	if id2 == id1 {
		t.Fatal("a new schema got the same id")
	}
	// Same schema in another subject: the same global id.
	if other := a.register(t, "people-value", "AVRO", userV1); other != id1 {
		t.Fatalf("same schema in another subject: id %d, want %d", other, id1)
	}
	a.ok(t, "GET", "/subjects", nil, &subjects)
	if !slices.Equal(subjects, []string{"people-value", "users-value"}) {
		t.Fatalf("GET /subjects: %v", subjects)
	}
	var versions []int
	a.ok(t, "GET", "/subjects/users-value/versions", nil, &versions)
	if !slices.Equal(versions, []int{1, 2}) {
		t.Fatalf("versions: %v", versions)
	}
	var sv struct {
		Subject    string `json:"subject"`
		Version    int    `json:"version"`
		ID         int64  `json:"id"`
		Schema     string `json:"schema"`
		SchemaType string `json:"schemaType"`
	}
	for _, v := range []string{"2", "latest", "-1"} {
		a.ok(t, "GET", "/subjects/users-value/versions/"+v, nil, &sv)
		if sv.Subject != "users-value" || sv.Version != 2 || sv.ID != id2 || sv.Schema != userV2 || sv.SchemaType != "" {
			t.Fatalf("version %s: %+v", v, sv)
		}
	}
	if raw := a.ok(t, "GET", "/subjects/users-value/versions/1/schema", nil, nil); raw != userV1 {
		t.Fatalf("raw schema: %s", raw)
	}
	a.fails(t, 404, 40401, "GET", "/subjects/nobody/versions", nil)
	a.fails(t, 404, 40401, "GET", "/subjects/nobody/versions/1", nil)
	a.fails(t, 404, 40402, "GET", "/subjects/users-value/versions/3", nil)
	a.fails(t, 404, 40402, "GET", "/subjects/users-value/versions/3/schema", nil)
	a.fails(t, 422, 42202, "GET", "/subjects/users-value/versions/zero", nil)
	a.fails(t, 422, 42202, "GET", "/subjects/users-value/versions/0", nil)

	var types []string
	a.ok(t, "GET", "/schemas/types", nil, &types)
	slices.Sort(types)
	if !slices.Equal(types, []string{"AVRO", "JSON", "PROTOBUF"}) {
		t.Fatalf("types: %v", types)
	}
	// JSON and PROTOBUF say their type.
	a.register(t, "events-value", "JSON", `{"type":"object"}`)
	a.ok(t, "GET", "/subjects/events-value/versions/1", nil, &sv)
	if sv.SchemaType != "JSON" {
		t.Fatalf("JSON schema type shown as %q", sv.SchemaType)
	}
	a.fails(t, 404, 404, "GET", "/nothing/here", nil)
	a.fails(t, 405, 405, "PATCH", "/subjects", nil)
}

func testSchemaIDs(t *testing.T, a *testAPI) {
	id := a.register(t, "a-value", "AVRO", userV1)
	a.register(t, "b-value", "AVRO", userV1)
	var s struct {
		Schema     string `json:"schema"`
		SchemaType string `json:"schemaType"`
	}
	a.ok(t, "GET", fmt.Sprintf("/schemas/ids/%d", id), nil, &s)
	if s.Schema != userV1 || s.SchemaType != "" {
		t.Fatalf("by id: %+v", s)
	}
	a.ok(t, "GET", fmt.Sprintf("/schemas/ids/%d?subject=b-value", id), nil, &s)
	a.fails(t, 404, 40403, "GET", fmt.Sprintf("/schemas/ids/%d?subject=c-value", id), nil)
	a.fails(t, 404, 40403, "GET", "/schemas/ids/9999", nil)
	a.fails(t, 404, 40403, "GET", "/schemas/ids/x", nil)
	if raw := a.ok(t, "GET", fmt.Sprintf("/schemas/ids/%d/schema", id), nil, nil); raw != userV1 {
		t.Fatalf("raw by id: %s", raw)
	}
	var usages []struct {
		Subject string `json:"subject"`
		Version int    `json:"version"`
	}
	a.ok(t, "GET", fmt.Sprintf("/schemas/ids/%d/versions", id), nil, &usages)
	if len(usages) != 2 || usages[0].Subject != "a-value" || usages[1].Subject != "b-value" || usages[0].Version != 1 {
		t.Fatalf("usages: %+v", usages)
	}
	var subjects []string
	a.ok(t, "GET", fmt.Sprintf("/schemas/ids/%d/subjects", id), nil, &subjects)
	if !slices.Equal(subjects, []string{"a-value", "b-value"}) {
		t.Fatalf("subjects of id: %v", subjects)
	}
	a.fails(t, 404, 40403, "GET", "/schemas/ids/9999/versions", nil)
}

func testLookup(t *testing.T, a *testAPI) {
	id := a.register(t, "a-value", "AVRO", userV1)
	a.register(t, "a-value", "AVRO", userV2)
	var sv struct {
		Subject string `json:"subject"`
		Version int    `json:"version"`
		ID      int64  `json:"id"`
		Schema  string `json:"schema"`
	}
	a.ok(t, "POST", "/subjects/a-value", body("", " "+userV1+"\n"), &sv)
	if sv.ID != id || sv.Version != 1 || sv.Subject != "a-value" || sv.Schema != userV1 {
		t.Fatalf("lookup: %+v", sv)
	}
	a.fails(t, 404, 40403, "POST", "/subjects/a-value", body("", userV3))
	a.fails(t, 404, 40401, "POST", "/subjects/b-value", body("", userV1))
	// normalize: key order does not matter.
	reordered := `{"name":"User","fields":[{"type":"string","name":"name"}],"type":"record"}`
	a.fails(t, 404, 40403, "POST", "/subjects/a-value", body("", reordered))
	nid := a.register(t, "n-value", "AVRO", userV1+"")
	var out struct {
		ID int64 `json:"id"`
	}
	a.ok(t, "POST", "/subjects/n2-value/versions?normalize=true", body("", userV1), &out)
	a.ok(t, "POST", "/subjects/n2-value?normalize=true", body("", reordered), &sv)
	if sv.ID != out.ID || sv.Version != 1 {
		t.Fatalf("normalized lookup: %+v, registered %d", sv, out.ID)
	}
	_ = nid
	// Soft-deleted versions are found only with deleted=true.
	a.ok(t, "DELETE", "/subjects/a-value/versions/1", nil, nil)
	a.fails(t, 404, 40403, "POST", "/subjects/a-value", body("", userV1))
	a.ok(t, "POST", "/subjects/a-value?deleted=true", body("", userV1), &sv)
}

func testDelete(t *testing.T, a *testAPI) {
	id := a.register(t, "a-value", "AVRO", userV1)
	a.register(t, "a-value", "AVRO", userV2)
	a.fails(t, 404, 40407, "DELETE", "/subjects/a-value/versions/1?permanent=true", nil)
	var v int
	a.ok(t, "DELETE", "/subjects/a-value/versions/1", nil, &v)
	if v != 1 {
		t.Fatalf("delete version: %d", v)
	}
	a.fails(t, 404, 40406, "DELETE", "/subjects/a-value/versions/1", nil)
	a.fails(t, 404, 40402, "DELETE", "/subjects/a-value/versions/7", nil)
	a.fails(t, 404, 40401, "DELETE", "/subjects/b-value/versions/1", nil)
	var versions []int
	a.ok(t, "GET", "/subjects/a-value/versions", nil, &versions)
	if !slices.Equal(versions, []int{2}) {
		t.Fatalf("versions after soft delete: %v", versions)
	}
	a.ok(t, "GET", "/subjects/a-value/versions?deleted=true", nil, &versions)
	if !slices.Equal(versions, []int{1, 2}) {
		t.Fatalf("versions?deleted=true: %v", versions)
	}
	a.fails(t, 404, 40402, "GET", "/subjects/a-value/versions/1", nil)
	a.ok(t, "GET", "/subjects/a-value/versions/1?deleted=true", nil, nil)
	// A soft-deleted schema is still readable by id.
	a.ok(t, "GET", fmt.Sprintf("/schemas/ids/%d", id), nil, nil)
	a.ok(t, "DELETE", "/subjects/a-value/versions/1?permanent=true", nil, &v)

	// Whole subject: soft first, then permanent.
	a.fails(t, 404, 40405, "DELETE", "/subjects/a-value?permanent=true", nil)
	a.ok(t, "DELETE", "/subjects/a-value", nil, &versions)
	if !slices.Equal(versions, []int{2}) {
		t.Fatalf("delete subject: %v", versions)
	}
	a.fails(t, 404, 40404, "DELETE", "/subjects/a-value", nil)
	a.fails(t, 404, 40401, "GET", "/subjects/a-value/versions", nil)
	var subjects []string
	a.ok(t, "GET", "/subjects", nil, &subjects)
	if len(subjects) != 0 {
		t.Fatalf("subjects after soft delete: %v", subjects)
	}
	a.ok(t, "GET", "/subjects?deleted=true", nil, &subjects)
	if !slices.Equal(subjects, []string{"a-value"}) {
		t.Fatalf("subjects?deleted=true: %v", subjects)
	}
	a.ok(t, "DELETE", "/subjects/a-value?permanent=true", nil, &versions)
	if !slices.Equal(versions, []int{2}) {
		t.Fatalf("permanent delete: %v", versions)
	}
	a.fails(t, 404, 40401, "DELETE", "/subjects/a-value", nil)
	a.fails(t, 404, 40403, "GET", fmt.Sprintf("/schemas/ids/%d", id), nil)
	// Registering again after a permanent delete starts at version 1 and
	// keeps the id.
	if again := a.register(t, "a-value", "AVRO", userV1); again != id {
		t.Fatalf("id after permanent delete: %d, want %d", again, id)
	}
	// Deleting "latest".
	a.ok(t, "DELETE", "/subjects/a-value/versions/latest", nil, &v)
	a.fails(t, 404, 40401, "DELETE", "/subjects/a-value/versions/latest", nil)
}

func testConfig(t *testing.T, a *testAPI) {
	var l struct {
		Level string `json:"compatibilityLevel"`
	}
	a.ok(t, "GET", "/config", nil, &l)
	if l.Level != "BACKWARD" {
		t.Fatalf("default level: %q", l.Level)
	}
	var set struct {
		Compatibility string `json:"compatibility"`
	}
	a.ok(t, "PUT", "/config", map[string]string{"compatibility": "full"}, &set)
	if set.Compatibility != "FULL" {
		t.Fatalf("PUT /config: %+v", set)
	}
	a.ok(t, "GET", "/config", nil, &l)
	if l.Level != "FULL" {
		t.Fatalf("global level: %q", l.Level)
	}
	a.fails(t, 422, 42203, "PUT", "/config", map[string]string{"compatibility": "SIDEWAYS"})
	a.fails(t, 422, 42203, "PUT", "/config/a-value", map[string]string{})
	a.fails(t, 404, 40408, "GET", "/config/a-value", nil)
	a.ok(t, "GET", "/config/a-value?defaultToGlobal=true", nil, &l)
	if l.Level != "FULL" {
		t.Fatalf("defaultToGlobal: %q", l.Level)
	}
	a.ok(t, "PUT", "/config/a-value", map[string]string{"compatibility": "NONE"}, &set)
	a.ok(t, "GET", "/config/a-value", nil, &l)
	if l.Level != "NONE" {
		t.Fatalf("subject level: %q", l.Level)
	}
	// NONE lets anything through.
	a.register(t, "a-value", "AVRO", userV1)
	a.register(t, "a-value", "AVRO", `"string"`)
	a.ok(t, "DELETE", "/config/a-value", nil, &l)
	if l.Level != "NONE" {
		t.Fatalf("DELETE /config/a-value answered %q", l.Level)
	}
	a.fails(t, 404, 40408, "DELETE", "/config/a-value", nil)
	a.fails(t, 404, 40401, "DELETE", "/config/nobody", nil)
	// Back on the global FULL: an incompatible registration is refused.
	msg := a.fails(t, 409, 409, "POST", "/subjects/a-value/versions", body("", `"int"`))
	if !strings.Contains(msg, "incompatible") {
		t.Fatalf("409 message: %s", msg)
	}
}

func testCompatibilityEndpoint(t *testing.T, a *testAPI) {
	type verdict struct {
		IsCompatible bool     `json:"is_compatible"`
		Messages     []string `json:"messages"`
	}
	var v verdict
	// No versions yet: anything is compatible with "latest".
	a.ok(t, "POST", "/compatibility/subjects/a-value/versions/latest", body("", userV1), &v)
	if !v.IsCompatible {
		t.Fatal("no versions: not compatible")
	}
	a.register(t, "a-value", "AVRO", userV1)
	a.ok(t, "POST", "/compatibility/subjects/a-value/versions/latest", body("", userV2), &v)
	if !v.IsCompatible || v.Messages != nil {
		t.Fatalf("compatible: %+v", v)
	}
	a.ok(t, "POST", "/compatibility/subjects/a-value/versions/latest?verbose=true", body("", userV3), &v)
	if v.IsCompatible || len(v.Messages) == 0 {
		t.Fatalf("incompatible, verbose: %+v", v)
	}
	a.ok(t, "POST", "/compatibility/subjects/a-value/versions/1?verbose=true", body("", userV2), &v)
	if !v.IsCompatible || v.Messages == nil {
		t.Fatalf("version 1, verbose: %+v", v)
	}
	a.ok(t, "POST", "/compatibility/subjects/a-value/versions", body("", userV3), &v)
	if v.IsCompatible {
		t.Fatalf("all versions: %+v", v)
	}
	a.fails(t, 404, 40402, "POST", "/compatibility/subjects/a-value/versions/5", body("", userV2))
	a.fails(t, 404, 40401, "POST", "/compatibility/subjects/b-value/versions/1", body("", userV2))
	a.fails(t, 422, 42202, "POST", "/compatibility/subjects/a-value/versions/x", body("", userV2))
	a.fails(t, 422, 42201, "POST", "/compatibility/subjects/a-value/versions/latest", body("", `{"type":"nonsense"}`))
}

func testReferences(t *testing.T, a *testAPI) {
	// AVRO: a named type from another subject.
	a.register(t, "address", "AVRO", `{"type":"record","name":"Address","namespace":"x","fields":[{"name":"city","type":"string"}]}`)
	person := map[string]any{
		"schema":     `{"type":"record","name":"Person","namespace":"x","fields":[{"name":"home","type":"x.Address"}]}`,
		"references": []map[string]any{{"name": "x.Address", "subject": "address", "version": 1}},
	}
	var out struct {
		ID int64 `json:"id"`
	}
	a.ok(t, "POST", "/subjects/person-value/versions", person, &out)
	var sv struct {
		References []metadata.SchemaReference `json:"references"`
	}
	a.ok(t, "GET", "/subjects/person-value/versions/1", nil, &sv)
	if len(sv.References) != 1 || sv.References[0].Subject != "address" {
		t.Fatalf("references: %+v", sv)
	}
	var ids []int64
	a.ok(t, "GET", "/subjects/address/versions/1/referencedby", nil, &ids)
	if !slices.Equal(ids, []int64{out.ID}) {
		t.Fatalf("referencedby: %v, want [%d]", ids, out.ID)
	}
	// Without the reference the type is unknown.
	a.fails(t, 422, 42201, "POST", "/subjects/orphan-value/versions", body("", person["schema"].(string)))
	missing := map[string]any{"schema": person["schema"], "references": []map[string]any{{"name": "x.Address", "subject": "nowhere", "version": 1}}}
	a.fails(t, 422, 42201, "POST", "/subjects/orphan-value/versions", missing)

	// JSON Schema: $ref by the reference's name.
	a.register(t, "address-json", "JSON", `{"type":"object","properties":{"city":{"type":"string"}}}`)
	a.ok(t, "POST", "/subjects/person-json/versions", map[string]any{
		"schemaType": "JSON",
		"schema":     `{"type":"object","properties":{"home":{"$ref":"address.json"}}}`,
		"references": []map[string]any{{"name": "address.json", "subject": "address-json", "version": 1}},
	}, &out)

	// PROTOBUF: an import.
	a.register(t, "address-proto", "PROTOBUF", `syntax = "proto3"; package x; message Address { string city = 1; }`)
	a.ok(t, "POST", "/subjects/person-proto/versions", map[string]any{
		"schemaType": "PROTOBUF",
		"schema":     `syntax = "proto3"; package x; import "address.proto"; message Person { Address home = 1; }`,
		"references": []map[string]any{{"name": "address.proto", "subject": "address-proto", "version": -1}},
	}, &out)
	a.fails(t, 422, 42201, "POST", "/subjects/person-proto2/versions", body("PROTOBUF",
		`syntax = "proto3"; package x; import "address.proto"; message Person { Address home = 1; }`))

	// A version a live schema references cannot be deleted (42206), alone
	// or with its subject; once the referrer is deleted, it can.
	a.fails(t, 422, 42206, "DELETE", "/subjects/address/versions/1", nil)
	a.fails(t, 422, 42206, "DELETE", "/subjects/address", nil)
	a.fails(t, 422, 42206, "DELETE", "/subjects/address-json/versions/latest", nil)
	a.ok(t, "DELETE", "/subjects/person-value/versions/1", nil, nil)
	a.ok(t, "DELETE", "/subjects/address/versions/1", nil, nil)
	a.ok(t, "DELETE", "/subjects/address/versions/1?permanent=true", nil, nil)
}

func testBadInput(t *testing.T, a *testAPI) {
	a.fails(t, 422, 42201, "POST", "/subjects/a/versions", body("", `{"type":"record"}`))
	a.fails(t, 422, 42201, "POST", "/subjects/a/versions", body("", `not json`))
	a.fails(t, 422, 42201, "POST", "/subjects/a/versions", body("XML", `<a/>`))
	a.fails(t, 422, 42201, "POST", "/subjects/a/versions", body("JSON", `{"type": 12}`))
	a.fails(t, 422, 42201, "POST", "/subjects/a/versions", body("PROTOBUF", `message {`))
	a.fails(t, 422, 42201, "POST", "/subjects/a/versions", map[string]any{})
	a.fails(t, 422, 422, "POST", "/subjects/a/versions", `{"schema": `)
	a.fails(t, 422, 422, "POST", "/subjects/a/versions", `[1]`)
	// Content types: the registry's, JSON, or none; nothing else.
	for _, ct := range []string{"application/vnd.schemaregistry+json", "application/json", "application/vnd.schemaregistry.v1+json; charset=utf-8"} {
		req, _ := http.NewRequestWithContext(t.Context(), "POST", a.url+"/subjects/ct/versions", strings.NewReader(`{"schema":"\"string\""}`))
		req.Header.Set("Content-Type", ct)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("Content-Type %s: %d", ct, resp.StatusCode)
		}
	}
	req, _ := http.NewRequestWithContext(t.Context(), "POST", a.url+"/subjects/ct/versions", strings.NewReader(`{"schema":"\"string\""}`))
	req.Header.Set("Content-Type", "text/plain")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Fatalf("text/plain: %d", resp.StatusCode)
	}
}

// testConcurrentRegister: concurrent registrations of one schema all get
// one id and one version.
func testConcurrentRegister(t *testing.T, a *testAPI) {
	const n = 12
	ids := make([]int64, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { ids[i] = a.register(t, "race-value", "AVRO", userV1) })
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("ids differ: %v", ids)
		}
	}
	var versions []int
	a.ok(t, "GET", "/subjects/race-value/versions", nil, &versions)
	if !slices.Equal(versions, []int{1}) {
		t.Fatalf("versions: %v", versions)
	}
}
