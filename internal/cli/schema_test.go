package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// testSchema covers the schema commands against the server's registry.
func testSchema(t *testing.T, s *server) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	jsonSchema := write("orders.json", `{"type": "object", "properties": {"event": {"type": "string"}, "user": {"type": "string"}}, "required": ["event", "user"]}`)
	subject := uniq("orders") + "-value"

	out := s.ok(t, "schema", "register", subject, jsonSchema, "--schema-type", "JSON")
	if !strings.HasPrefix(out, fmt.Sprintf("Registered schema for subject %q with ID ", subject)) {
		t.Fatalf("register: %q", out)
	}
	var id struct {
		ID int `json:"id"`
	}
	s.jsonOut(t, &id, "schema", "register", subject, jsonSchema, "--schema-type", "JSON")
	if id.ID <= 0 {
		t.Fatalf("register -o json (again: the same ID): %+v", id)
	}

	if rs := rows(s.ok(t, "schema", "list")); !slices.ContainsFunc(rs, func(r []string) bool { return len(r) == 1 && r[0] == subject }) {
		t.Fatalf("schema list: no %s in %q", subject, rs)
	}
	var subjects []string
	s.jsonOut(t, &subjects, "schema", "list")
	if !slices.Contains(subjects, subject) {
		t.Fatalf("schema list -o json: %q", subjects)
	}

	out = s.ok(t, "schema", "get", subject)
	for _, want := range []string{"Subject:  " + subject, "Version:  1", "Type:     JSON", `"required": [`} {
		if !strings.Contains(out, want) {
			t.Fatalf("schema get: no %q in\n%s", want, out)
		}
	}
	var sv schemaVersion
	s.jsonOut(t, &sv, "schema", "get", subject, "--version", "1")
	if sv.Subject != subject || sv.Version != 1 || sv.ID != id.ID || !json.Valid([]byte(sv.Schema)) {
		t.Fatalf("schema get --version 1 -o json: %+v", sv)
	}
	s.fails(t, 1, "40402", "schema", "get", subject, "--version", "9")
	s.fails(t, 1, "40401", "schema", "get", uniq("nothing")+"-value")
	s.fails(t, 2, `--version "x"`, "schema", "get", subject, "--version", "x")
	s.fails(t, 2, `--schema-type "XML"`, "schema", "register", subject, jsonSchema, "--schema-type", "XML")
	s.fails(t, 1, "read schema", "schema", "register", subject, filepath.Join(dir, "missing.json"))

	// Compatibility (BACKWARD by default): adding a field with a default is
	// compatible; adding one without a default is not (exit status 1).
	avroSubject := uniq("users") + "-value"
	v1 := write("v1.avsc", `{"type": "record", "name": "User", "fields": [{"name": "name", "type": "string"}]}`)
	withDefault := write("v2.avsc", `{"type": "record", "name": "User", "fields": [{"name": "name", "type": "string"}, {"name": "age", "type": "int", "default": 0}]}`)
	noDefault := write("v3.avsc", `{"type": "record", "name": "User", "fields": [{"name": "name", "type": "string"}, {"name": "age", "type": "int"}]}`)
	s.ok(t, "schema", "register", avroSubject, v1)
	if out := s.ok(t, "schema", "check", avroSubject, withDefault); !strings.HasPrefix(out, "Compatible") {
		t.Fatalf("check compatible: %q", out)
	}
	r := s.run(t, "schema", "check", avroSubject, noDefault)
	if r.code != 1 || !strings.HasPrefix(r.stdout, "NOT compatible") || !strings.Contains(r.stderr, "not compatible") {
		t.Fatalf("check incompatible: %v", r)
	}
	var verdict struct {
		IsCompatible bool `json:"is_compatible"`
	}
	r = s.run(t, "-o", "json", "schema", "check", avroSubject, noDefault)
	if r.code != 1 || json.Unmarshal([]byte(r.stdout), &verdict) != nil || verdict.IsCompatible {
		t.Fatalf("check -o json: %v", r)
	}

	// Soft, then permanent delete.
	if out := s.ok(t, "schema", "delete", subject); out != fmt.Sprintf("Deleted subject %q (versions 1).\n", subject) {
		t.Fatalf("delete: %q", out)
	}
	s.fails(t, 1, "40401", "schema", "get", subject)
	if out := s.ok(t, "schema", "delete", subject, "--permanent"); !strings.HasPrefix(out, "Permanently deleted") {
		t.Fatalf("delete --permanent: %q", out)
	}
	var versions []int
	s.jsonOut(t, &versions, "schema", "delete", avroSubject, "--permanent")
	if !slices.Equal(versions, []int{1}) {
		t.Fatalf("delete --permanent -o json: %v", versions)
	}
	s.fails(t, 1, "40401", "schema", "delete", uniq("nothing")+"-value")
}
