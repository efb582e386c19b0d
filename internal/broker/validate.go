package broker

import (
	"context"
	"fmt"

	"github.com/streamhouse/streamhouse/internal/batch"
	"github.com/streamhouse/streamhouse/internal/metadata"
)

// SchemaValidationConfig is the topic config that turns on schema
// validation of produced values ("true"): the Kafka path must carry the
// Confluent wire format with a schema ID registered under {topic}-value;
// REST and gRPC values must match the subject's latest schema.
const SchemaValidationConfig = "confluent.value.schema.validation"

// ErrSchemaValidation rejects records that fail schema validation. It is
// an invalid record (INVALID_RECORD on Kafka, InvalidArgument on gRPC);
// REST answers 422.
var ErrSchemaValidation = fmt.Errorf("schema validation failed: %w", batch.ErrInvalidRecord)

// Validator checks produced values against registered schemas (the schema
// registry provides it). It is called, before anything is appended, for
// topics with SchemaValidationConfig "true", and with SCHEMA_VALIDATION=auto
// (Config.AutoSchemaValidation) for topics that leave it unset, with
// ifSubject: then a topic whose subject {topic}-value has no live schema
// passes unchecked. A rejection wraps ErrSchemaValidation; any other error
// is the validator failing (for example its store) and is passed on as it
// is.
type Validator interface {
	// ValidateBatches checks the records of raw Kafka record batches.
	ValidateBatches(ctx context.Context, topic metadata.Topic, records []byte, ifSubject bool) error
	// ValidateRecords checks plain records from REST or gRPC.
	ValidateRecords(ctx context.Context, topic metadata.Topic, records []Record, ifSubject bool) error
}

// validation says whether t's values are validated, and whether only when
// its subject has a schema.
func (b *Broker) validation(t metadata.Topic) (on, ifSubject bool) {
	if b.cfg.Validator == nil {
		return false, false
	}
	switch t.Config[SchemaValidationConfig] {
	case "true":
		return true, false
	case "false":
		return false, false
	}
	return b.cfg.AutoSchemaValidation, true
}

// validateBatches runs the configured validator over raw batches.
func (b *Broker) validateBatches(ctx context.Context, t metadata.Topic, records []byte) error {
	on, ifSubject := b.validation(t)
	if !on {
		return nil
	}
	return b.cfg.Validator.ValidateBatches(ctx, t, records, ifSubject)
}

// validateRecords runs the configured validator over plain records.
func (b *Broker) validateRecords(ctx context.Context, t metadata.Topic, records []Record) error {
	on, ifSubject := b.validation(t)
	if !on {
		return nil
	}
	return b.cfg.Validator.ValidateRecords(ctx, t, records, ifSubject)
}
