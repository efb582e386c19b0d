package schemaregistry

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/streamhouse/streamhouse/internal/batch"
	"github.com/streamhouse/streamhouse/internal/broker"
	"github.com/streamhouse/streamhouse/internal/metadata"
)

// Validation on produce (broker.SchemaValidationConfig): values are
// checked against the schemas of the subject {topic}-value.
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
	return &validator{r: r, parsed: map[int64]parsedSchema{}}
}

type validator struct {
	r      *Registry
	mu     sync.Mutex
	parsed map[int64]parsedSchema // JSON schemas by ID; a schema ID's text never changes
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
func (v *validator) ValidateBatches(ctx context.Context, t metadata.Topic, records []byte) error {
	raws, err := batch.Split(records)
	if err != nil {
		return nil
	}
	subject := t.Name + "-value"
	live := map[int64]bool{}
	n := 0
	for _, raw := range raws {
		_, recs, err := batch.Records(raw)
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
func (v *validator) ValidateRecords(ctx context.Context, t metadata.Topic, records []broker.Record) error {
	subject := t.Name + "-value"
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
			vs, err := v.r.versions(ctx, subject, false)
			if err != nil {
				return err
			}
			if len(vs) == 0 {
				return reject("topic %s validates values, but subject %s has no schema", t.Name, subject)
			}
			latest = &vs[len(vs)-1]
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

// version returns the live version of subject with the schema ID, or nil.
func (v *validator) version(ctx context.Context, subject string, id int64) (*metadata.SchemaVersion, error) {
	vs, err := v.r.store.ListSchemaVersions(ctx, metadata.SchemaVersionFilter{Subject: subject, SchemaID: id})
	if err != nil {
		return nil, fmt.Errorf("schema validation: %w", err)
	}
	for i := range vs {
		if !vs[i].Deleted {
			return &vs[i], nil
		}
	}
	return nil, nil
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
		v.parsed[s.ID] = p
		v.mu.Unlock()
	}
	return p.(*jsonParsed).validate(value)
}
