package schemaregistry

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	"github.com/streamhouse/streamhouse/internal/batch"
	"github.com/streamhouse/streamhouse/internal/broker"
	"github.com/streamhouse/streamhouse/internal/metadata"
)

// Validation on produce (broker.SchemaValidationConfig, and with
// SCHEMA_VALIDATION=auto every topic whose subject has a schema): values
// are checked against the schemas of the subject {topic}-value.
//
//   - Kafka (raw batches): every non-null value must be in the Confluent
//     wire format, magic byte 0 then a big-endian 4-byte schema ID, and the
//     ID must be a live version of the subject. Payloads are not decoded.
//   - REST and gRPC (plain records): a value in the wire format is checked
//     the same way (and its payload validated when the schema is JSON
//     Schema); any other value must be JSON valid against the subject's
//     latest schema, which must then be a JSON Schema.

// Validator returns the broker.Validator backed by this registry.
func (r *Registry) Validator() broker.Validator {
	return &validator{r: r, parsed: map[int64]parsedSchema{}, seen: map[seenKey]seenEntry{}, now: time.Now}
}

// The validator caches what it looks up in the store, so that a produce
// does not cost a store query per schema ID: which versions of a subject
// carry an ID (and the subject's latest version), for validationCacheTTL.
// A registration or deletion through this agent clears the cache at once
// (Registry.gen); one through another agent is seen within the TTL.
// Parsed JSON schemas are kept longer (a schema ID's text never changes),
// up to validationCacheMax of them.
const (
	validationCacheTTL = time.Second
	// validationCacheMax bounds the cached lookups and parsed schemas;
	// past it a cache starts over.
	validationCacheMax = 4096
)

type validator struct {
	r      *Registry
	now    func() time.Time
	mu     sync.Mutex
	parsed map[int64]parsedSchema // JSON schemas by ID
	seen   map[seenKey]seenEntry  // store lookups
}

// seenKey is a subject and a schema ID, or latestID for the subject's
// latest live version.
type seenKey struct {
	subject string
	id      int64
}

const latestID = -1

type seenEntry struct {
	sv  *metadata.SchemaVersion // nil: no live version
	gen uint64
	at  time.Time
}

// cached returns a fresh cached lookup.
func (v *validator) cached(k seenKey) (*metadata.SchemaVersion, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	e, ok := v.seen[k]
	if !ok || e.gen != v.r.gen.Load() || v.now().Sub(e.at) >= validationCacheTTL {
		return nil, false
	}
	return e.sv, true
}

func (v *validator) remember(k seenKey, sv *metadata.SchemaVersion, gen uint64) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.seen) >= validationCacheMax {
		clear(v.seen)
	}
	v.seen[k] = seenEntry{sv: sv, gen: gen, at: v.now()}
}

var _ broker.Validator = (*validator)(nil)

func reject(format string, args ...any) error {
	return fmt.Errorf("%w: %s", broker.ErrSchemaValidation, fmt.Sprintf(format, args...))
}

// wireID splits a Confluent wire-format value.
func wireID(v []byte) (int64, []byte, bool) {
	if len(v) < 5 || v[0] != 0 {
		return 0, nil, false
	}
	return int64(binary.BigEndian.Uint32(v[1:5])), v[5:], true
}

// ValidateBatches checks every value of raw batches. Batches that do not
// even decode are left to the log's own validation, which rejects them.
func (v *validator) ValidateBatches(ctx context.Context, t metadata.Topic, records []byte, ifSubject bool) error {
	subject := t.Name + "-value"
	if skip, err := v.skip(ctx, subject, ifSubject); skip || err != nil {
		return err
	}
	raws, err := batch.Split(records)
	if err != nil {
		return nil
	}
	live := map[int64]bool{}
	n := 0
	// One pooled decompression buffer: nothing of a record is kept past
	// its check.
	var dec batch.Decoder
	defer dec.Release()
	for _, raw := range raws {
		_, recs, _, err := dec.Decode(raw)
		if err != nil {
			return nil
		}
		for _, rec := range recs {
			n++
			if rec.Value == nil {
				continue // a tombstone has no schema
			}
			id, _, ok := wireID(rec.Value)
			if !ok {
				return reject("record %d of topic %s: the value is not in the Confluent wire format (magic byte 0, then a 4-byte schema id)", n-1, t.Name)
			}
			if _, seen := live[id]; !seen {
				sv, err := v.version(ctx, subject, id)
				if err != nil {
					return err
				}
				live[id] = sv != nil
			}
			if !live[id] {
				return reject("record %d of topic %s: schema id %d is not registered under subject %s", n-1, t.Name, id, subject)
			}
		}
	}
	return nil
}

// ValidateRecords checks plain records, all before any is stored.
func (v *validator) ValidateRecords(ctx context.Context, t metadata.Topic, records []broker.Record, ifSubject bool) error {
	subject := t.Name + "-value"
	if skip, err := v.skip(ctx, subject, ifSubject); skip || err != nil {
		return err
	}
	var latest *metadata.SchemaVersion
	for i, rec := range records {
		if rec.Value == nil {
			continue
		}
		if id, payload, ok := wireID(rec.Value); ok {
			sv, err := v.version(ctx, subject, id)
			if err != nil {
				return err
			}
			if sv == nil {
				return reject("record %d: schema id %d is not registered under subject %s", i, id, subject)
			}
			if sv.Schema.Type == TypeJSON {
				if err := v.validateJSON(ctx, sv.Schema, payload); err != nil {
					return reject("record %d: %v", i, err)
				}
			}
			continue
		}
		if latest == nil {
			var err error
			if latest, err = v.latest(ctx, subject); err != nil {
				return err
			}
			if latest == nil {
				return reject("topic %s validates values, but subject %s has no schema", t.Name, subject)
			}
		}
		if latest.Schema.Type != TypeJSON {
			return reject("record %d: the latest schema of %s is %s: send the value in the Confluent wire format", i, subject, latest.Schema.Type)
		}
		if err := v.validateJSON(ctx, latest.Schema, rec.Value); err != nil {
			return reject("record %d: does not match schema %d of %s: %v", i, latest.Schema.ID, subject, err)
		}
	}
	return nil
}

// skip says whether a produce goes unchecked: with ifSubject (the auto
// rule), when subject has no live schema (a cached lookup).
func (v *validator) skip(ctx context.Context, subject string, ifSubject bool) (bool, error) {
	if !ifSubject {
		return false, nil
	}
	latest, err := v.latest(ctx, subject)
	return latest == nil, err
}

// version returns the live version of subject with the schema ID, or nil.
func (v *validator) version(ctx context.Context, subject string, id int64) (*metadata.SchemaVersion, error) {
	k := seenKey{subject, id}
	if sv, ok := v.cached(k); ok {
		return sv, nil
	}
	gen := v.r.gen.Load() // before the lookup: a change during it is not missed
	vs, err := v.r.store.ListSchemaVersions(ctx, metadata.SchemaVersionFilter{Subject: subject, SchemaID: id})
	if err != nil {
		return nil, fmt.Errorf("schema validation: %w", err)
	}
	var sv *metadata.SchemaVersion
	for i := range vs {
		if !vs[i].Deleted {
			sv = &vs[i]
			break
		}
	}
	v.remember(k, sv, gen)
	return sv, nil
}

// latest returns the latest live version of subject, or nil.
func (v *validator) latest(ctx context.Context, subject string) (*metadata.SchemaVersion, error) {
	k := seenKey{subject, latestID}
	if sv, ok := v.cached(k); ok {
		return sv, nil
	}
	gen := v.r.gen.Load()
	vs, err := v.r.versions(ctx, subject, false)
	if err != nil {
		return nil, err
	}
	var sv *metadata.SchemaVersion
	if len(vs) > 0 {
		sv = &vs[len(vs)-1]
	}
	v.remember(k, sv, gen)
	return sv, nil
}

func (v *validator) validateJSON(ctx context.Context, s metadata.Schema, value []byte) error {
	v.mu.Lock()
	p, ok := v.parsed[s.ID]
	v.mu.Unlock()
	if !ok {
		var err error
		if p, err = v.r.parse(ctx, s); err != nil {
			return fmt.Errorf("schema %d: %w", s.ID, err)
		}
		v.mu.Lock()
		if len(v.parsed) >= validationCacheMax {
			clear(v.parsed) // bounded; parsing again is only slower
		}
		v.parsed[s.ID] = p
		v.mu.Unlock()
	}
	return p.(*jsonParsed).validate(value)
}
