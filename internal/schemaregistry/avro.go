package schemaregistry

import (
	"fmt"

	"github.com/hamba/avro/v2"
)

// avroType: Avro schemas, parsed and compared by hamba/avro.
type avroType struct{}

func (avroType) canonical(text string, normalize bool) (string, error) {
	return compactJSON(text, normalize)
}

func (avroType) parse(text string, deps []dependency) (parsedSchema, error) {
	// A private cache: named types of one registration never leak into
	// another (hamba's default cache is global).
	cache := &avro.SchemaCache{}
	for _, d := range deps {
		if d.typ != TypeAvro {
			return nil, fmt.Errorf("reference %s is a %s schema, not AVRO", d.name, d.typ)
		}
		if _, err := avro.ParseWithCache(d.text, "", cache); err != nil {
			return nil, fmt.Errorf("reference %s: %w", d.name, err)
		}
	}
	return avro.ParseWithCache(text, "", cache)
}

func (avroType) compatible(reader, writer parsedSchema, _ bool) []string {
	if err := avro.NewSchemaCompatibility().Compatible(reader.(avro.Schema), writer.(avro.Schema)); err != nil {
		return []string{err.Error()}
	}
	return nil
}
