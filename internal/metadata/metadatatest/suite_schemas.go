package metadatatest

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/streamhouse/streamhouse/internal/metadata"
)

var schemaTests = []suiteTest{
	{"SchemaRegisterAndDedup", testSchemaRegister},
	{"SchemaConflict", testSchemaConflict},
	{"SchemaDelete", testSchemaDelete},
	{"SchemaConcurrentRegister", testSchemaConcurrentRegister},
	{"SchemaCompatibilityConfig", testSchemaCompatibilityConfig},
}

func avroSchema(text string) metadata.Schema { return metadata.Schema{Type: "AVRO", Text: text} }

func mustRegister(t *testing.T, s metadata.Store, subject string, sc metadata.Schema, expect int32) metadata.SchemaVersion {
	t.Helper()
	v, err := s.RegisterSchema(t.Context(), subject, sc, expect)
	if err != nil {
		t.Fatalf("RegisterSchema(%s): %v", subject, err)
	}
	return v
}

func testSchemaRegister(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	v1 := mustRegister(t, s, "a-value", avroSchema(`"string"`), 0)
	if v1.Version != 1 || v1.Schema.ID <= 0 || v1.Subject != "a-value" {
		t.Fatalf("first registration: %+v", v1)
	}
	// The same schema again: the same version, whatever expectLatest says.
	if again := mustRegister(t, s, "a-value", avroSchema(`"string"`), 7); again.Version != 1 || again.Schema.ID != v1.Schema.ID {
		t.Fatalf("registered again: %+v, want %+v", again, v1)
	}
	// The same schema under another subject: the same ID, version 1.
	if other := mustRegister(t, s, "b-value", avroSchema(`"string"`), 0); other.Version != 1 || other.Schema.ID != v1.Schema.ID {
		t.Fatalf("other subject: %+v", other)
	}
	// Another type with the same text, or other references: another ID.
	js := mustRegister(t, s, "c-value", metadata.Schema{Type: "JSON", Text: `"string"`}, 0)
	withRef := mustRegister(t, s, "d-value", metadata.Schema{Type: "AVRO", Text: `"string"`,
		References: []metadata.SchemaReference{{Name: "x", Subject: "a-value", Version: 1}}}, 0)
	if js.Schema.ID == v1.Schema.ID || withRef.Schema.ID == v1.Schema.ID || js.Schema.ID == withRef.Schema.ID {
		t.Fatalf("ids not distinct: %d %d %d", v1.Schema.ID, js.Schema.ID, withRef.Schema.ID)
	}
	v2 := mustRegister(t, s, "a-value", avroSchema(`"int"`), 1)
	if v2.Version != 2 || v2.Schema.ID == v1.Schema.ID {
		t.Fatalf("second version: %+v", v2)
	}

	got, err := s.GetSchema(ctx, withRef.Schema.ID)
	if err != nil {
		t.Fatalf("GetSchema: %v", err)
	}
	if got.Type != "AVRO" || got.Text != `"string"` || len(got.References) != 1 || got.References[0] != (metadata.SchemaReference{Name: "x", Subject: "a-value", Version: 1}) {
		t.Fatalf("GetSchema: %+v", got)
	}
	if _, err := s.GetSchema(ctx, 12345); !errors.Is(err, metadata.ErrSchemaNotFound) {
		t.Fatalf("GetSchema(unknown): %v, want ErrSchemaNotFound", err)
	}

	all, err := s.ListSchemaVersions(ctx, metadata.SchemaVersionFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, v := range all {
		names = append(names, fmt.Sprintf("%s/%d", v.Subject, v.Version))
	}
	if fmt.Sprint(names) != "[a-value/1 a-value/2 b-value/1 c-value/1 d-value/1]" {
		t.Fatalf("ListSchemaVersions: %v", names)
	}
	byID, err := s.ListSchemaVersions(ctx, metadata.SchemaVersionFilter{SchemaID: v1.Schema.ID})
	if err != nil || len(byID) != 2 || byID[0].Subject != "a-value" || byID[1].Subject != "b-value" {
		t.Fatalf("ListSchemaVersions(by id): %+v, %v", byID, err)
	}
	bySubject, err := s.ListSchemaVersions(ctx, metadata.SchemaVersionFilter{Subject: "a-value"})
	if err != nil || len(bySubject) != 2 || bySubject[1].Schema.Text != `"int"` || bySubject[1].Deleted {
		t.Fatalf("ListSchemaVersions(by subject): %+v, %v", bySubject, err)
	}
}

func testSchemaConflict(t *testing.T, s metadata.Store) {
	mustRegister(t, s, "a-value", avroSchema(`"string"`), 0)
	// The caller checked compatibility against "no versions": stale.
	if _, err := s.RegisterSchema(t.Context(), "a-value", avroSchema(`"int"`), 0); !errors.Is(err, metadata.ErrSchemaConflict) {
		t.Fatalf("stale expectLatest: %v, want ErrSchemaConflict", err)
	}
	vs, err := s.ListSchemaVersions(t.Context(), metadata.SchemaVersionFilter{Subject: "a-value"})
	if err != nil || len(vs) != 1 {
		t.Fatalf("a conflicting registration stored something: %+v, %v", vs, err)
	}
}

func testSchemaDelete(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	v1 := mustRegister(t, s, "a-value", avroSchema(`"string"`), 0)
	mustRegister(t, s, "a-value", avroSchema(`"int"`), 1)
	if err := s.DeleteSchemaVersions(ctx, "a-value", []int32{2}, false); err != nil {
		t.Fatal(err)
	}
	vs, _ := s.ListSchemaVersions(ctx, metadata.SchemaVersionFilter{Subject: "a-value"})
	if len(vs) != 2 || vs[0].Deleted || !vs[1].Deleted {
		t.Fatalf("after soft delete: %+v", vs)
	}
	// Versions continue above soft-deleted ones; the latest live one is 1.
	v3 := mustRegister(t, s, "a-value", avroSchema(`"long"`), 1)
	if v3.Version != 3 {
		t.Fatalf("after a soft delete: version %d, want 3", v3.Version)
	}
	// Registering a soft-deleted schema again makes a new version.
	v4 := mustRegister(t, s, "a-value", avroSchema(`"int"`), 3)
	if v4.Version != 4 {
		t.Fatalf("re-registering a soft-deleted schema: version %d, want 4", v4.Version)
	}
	if err := s.DeleteSchemaVersions(ctx, "a-value", []int32{1, 2, 3, 4}, false); err != nil {
		t.Fatal(err)
	}
	// Soft-deleted schemas stay readable by ID.
	if _, err := s.GetSchema(ctx, v1.Schema.ID); err != nil {
		t.Fatalf("GetSchema after soft delete: %v", err)
	}
	if err := s.DeleteSchemaVersions(ctx, "a-value", []int32{1, 2, 3, 4, 99}, true); err != nil {
		t.Fatal(err)
	}
	if vs, _ := s.ListSchemaVersions(ctx, metadata.SchemaVersionFilter{Subject: "a-value"}); len(vs) != 0 {
		t.Fatalf("after permanent delete: %+v", vs)
	}
	if _, err := s.GetSchema(ctx, v1.Schema.ID); !errors.Is(err, metadata.ErrSchemaNotFound) {
		t.Fatalf("GetSchema after permanent delete: %v, want ErrSchemaNotFound", err)
	}
	// The same schema registered again keeps its ID.
	if again := mustRegister(t, s, "a-value", avroSchema(`"string"`), 0); again.Schema.ID != v1.Schema.ID || again.Version != 1 {
		t.Fatalf("registered after permanent delete: %+v (id was %d)", again, v1.Schema.ID)
	}
}

// testSchemaConcurrentRegister: many writers registering the same schema
// under one subject all get the same ID and version.
func testSchemaConcurrentRegister(t *testing.T, s metadata.Store) {
	const n = 16
	var wg sync.WaitGroup
	results := make([]metadata.SchemaVersion, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			for {
				results[i], errs[i] = s.RegisterSchema(t.Context(), "race-value", avroSchema(`"bytes"`), 0)
				if !errors.Is(errs[i], metadata.ErrSchemaConflict) {
					return
				}
			}
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("writer %d: %v", i, errs[i])
		}
		if results[i].Version != 1 || results[i].Schema.ID != results[0].Schema.ID {
			t.Fatalf("writer %d got %+v, writer 0 %+v", i, results[i], results[0])
		}
	}
	if vs, _ := s.ListSchemaVersions(t.Context(), metadata.SchemaVersionFilter{Subject: "race-value"}); len(vs) != 1 {
		t.Fatalf("versions: %+v", vs)
	}
}

func testSchemaCompatibilityConfig(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	check := func(subject, want string) {
		t.Helper()
		got, err := s.SchemaCompatibility(ctx, subject)
		if err != nil || got != want {
			t.Fatalf("SchemaCompatibility(%q) = %q, %v; want %q", subject, got, err, want)
		}
	}
	check("", "")
	check("a-value", "")
	for _, step := range []struct{ subject, level string }{{"", "FULL"}, {"a-value", "NONE"}, {"a-value", "FORWARD"}} {
		if err := s.SetSchemaCompatibility(ctx, step.subject, step.level); err != nil {
			t.Fatal(err)
		}
	}
	check("", "FULL")
	check("a-value", "FORWARD")
	if err := s.SetSchemaCompatibility(ctx, "a-value", ""); err != nil {
		t.Fatal(err)
	}
	check("a-value", "")
	check("", "FULL")
}
