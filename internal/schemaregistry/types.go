package schemaregistry

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// Schema types the registry serves; AVRO is the default.
const (
	TypeAvro     = "AVRO"
	TypeJSON     = "JSON"
	TypeProtobuf = "PROTOBUF"
)

// dependency is a referenced schema, resolved: the name the referring
// schema uses for it (an Avro full name, a JSON Schema $ref URL, a .proto
// import path) and its text. Dependencies come before their dependents.
type dependency struct {
	name, typ, text string
}

// parsedSchema is a schema parsed by its type.
type parsedSchema interface{}

// schemaType parses one kind of schema and decides compatibility.
type schemaType interface {
	// canonical returns the text to store: whitespace-insensitive formats
	// compacted; with normalize, a stronger normal form.
	canonical(text string, normalize bool) (string, error)
	// parse parses text with its dependencies (nil error: valid).
	parse(text string, deps []dependency) (parsedSchema, error)
	// compatible lists why data written with writer cannot be read with
	// reader; none means compatible.
	// readerIsNew says whether reader is the schema being registered.
	compatible(reader, writer parsedSchema, readerIsNew bool) []string
}

func typeOf(name string) (schemaType, bool) {
	switch name {
	case "", TypeAvro:
		return avroType{}, true
	case TypeJSON:
		return jsonType{}, true
	case TypeProtobuf:
		return protobufType{}, true
	}
	return nil, false
}

// compactJSON compacts JSON text, or with sort re-encodes it with object
// keys sorted (Go's encoder sorts map keys), numbers kept as written.
func compactJSON(text string, sort bool) (string, error) {
	if !sort {
		var buf bytes.Buffer
		if err := json.Compact(&buf, []byte(strings.TrimSpace(text))); err != nil {
			return "", err
		}
		return buf.String(), nil
	}
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return "", err
	}
	if dec.More() {
		return "", fmt.Errorf("unexpected data after the schema")
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "", err
	}
	return strings.TrimSpace(buf.String()), nil
}
