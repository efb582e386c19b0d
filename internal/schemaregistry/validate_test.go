package schemaregistry

import (
	"context"
	"encoding/binary"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/internal/broker"
	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/metadata/metadatatest"
)

// countingStore counts schema version lookups.
type countingStore struct {
	metadata.Store
	lookups atomic.Int64
}

func (s *countingStore) ListSchemaVersions(ctx context.Context, f metadata.SchemaVersionFilter) ([]metadata.SchemaVersion, error) {
	s.lookups.Add(1)
	return s.Store.ListSchemaVersions(ctx, f)
}

func wire(id int64, payload string) []byte {
	v := []byte{0, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(v[1:], uint32(id))
	return append(v, payload...)
}

// Validation looks each schema ID up once per TTL, not once per produce; a
// deletion through this agent takes effect at once, one through another
// agent (a change the cache cannot see) within the TTL.
func TestValidatorCache(t *testing.T) {
	t.Parallel()
	store := &countingStore{Store: metadatatest.OpenSQLite(t)}
	a := newAPI(t, store)
	id := a.register(t, "t-value", "JSON", `{"type":"object","properties":{"n":{"type":"integer"}}}`)
	v := a.reg.Validator().(*validator)
	clock := time.Unix(1_700_000_000, 0)
	v.now = func() time.Time { return clock }
	ctx := context.Background()
	topic := metadata.Topic{Name: "t"}
	produce := func() error {
		return v.ValidateRecords(ctx, topic, []broker.Record{{Value: wire(id, `{"n":1}`)}, {Value: []byte(`{"n":2}`)}}, false)
	}

	before := store.lookups.Load()
	for range 50 {
		if err := produce(); err != nil {
			t.Fatal(err)
		}
	}
	if n := store.lookups.Load() - before; n != 2 {
		t.Fatalf("%d schema lookups for 50 produces, want 2 (the ID and the latest version, once each)", n)
	}

	// Deleted through this registry: refused at once.
	a.ok(t, "DELETE", "/subjects/t-value/versions/1", nil, nil)
	if err := produce(); !errors.Is(err, broker.ErrSchemaValidation) {
		t.Fatalf("after deleting the version: %v, want a validation error", err)
	}

	// Registered again behind this registry's back (as another agent
	// would): seen once the TTL has passed.
	if _, err := store.RegisterSchema(ctx, "t-value", metadata.Schema{Type: TypeJSON, Text: `{"type":"object"}`}, 0); err != nil {
		t.Fatal(err)
	}
	if err := produce(); !errors.Is(err, broker.ErrSchemaValidation) {
		t.Fatalf("within the TTL: %v, want the cached refusal", err)
	}
	clock = clock.Add(validationCacheTTL)
	if err := v.ValidateRecords(ctx, topic, []broker.Record{{Value: []byte(`{"n":"x"}`)}}, false); err != nil {
		t.Fatalf("after the TTL, against the new latest schema: %v", err)
	}
}

// With ifSubject (SCHEMA_VALIDATION=auto), a topic whose subject has no
// schema passes unchecked; once it has one, values are checked.
func TestValidateIfSubject(t *testing.T) {
	t.Parallel()
	a := newAPI(t, nil)
	v := a.reg.Validator()
	ctx := context.Background()
	topic := metadata.Topic{Name: "auto"}
	bad := []broker.Record{{Value: []byte(`{"n":"x"}`)}}
	if err := v.ValidateRecords(ctx, topic, bad, true); err != nil {
		t.Fatalf("no subject, ifSubject: %v", err)
	}
	if err := v.ValidateBatches(ctx, topic, nil, true); err != nil {
		t.Fatalf("no subject, ifSubject, batches: %v", err)
	}
	if err := v.ValidateRecords(ctx, topic, bad, false); !errors.Is(err, broker.ErrSchemaValidation) {
		t.Fatalf("no subject, validation asked by the topic: %v", err)
	}
	a.register(t, "auto-value", "JSON", `{"type":"object","properties":{"n":{"type":"integer"}}}`)
	if err := v.ValidateRecords(ctx, topic, bad, true); !errors.Is(err, broker.ErrSchemaValidation) {
		t.Fatalf("with a schema, ifSubject: %v, want a validation error", err)
	}
	if err := v.ValidateRecords(ctx, topic, []broker.Record{{Value: []byte(`{"n":3}`)}}, true); err != nil {
		t.Fatalf("a valid value: %v", err)
	}
}
