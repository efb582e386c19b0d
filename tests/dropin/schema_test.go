package dropin

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamhouse/streamhouse/internal/e2e"
)

// SCHEMA_VALIDATION=auto is the original's rule: a topic whose subject
// {topic}-value has a schema has its values validated on every path,
// unless the topic turns validation off; with the default (topic), only
// topics that ask for it are.
func TestSchemaValidationAuto(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"auto", "topic"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			p := e2e.Start(t, dir, append(e2e.Local.Env(t, dir), "SCHEMA_VALIDATION="+mode))
			schema := map[string]any{"schemaType": "JSON",
				"schema": `{"type":"object","properties":{"n":{"type":"integer"}},"required":["n"]}`}
			for _, topic := range []map[string]any{
				{"name": "typed", "partitions": 1},
				{"name": "free", "partitions": 1},
				{"name": "optout", "partitions": 1, "config": map[string]string{"confluent.value.schema.validation": "false"}},
			} {
				if code := p.Call(http.MethodPost, "/api/v1/topics", topic, nil); code != http.StatusCreated {
					t.Fatalf("create %v: %d", topic["name"], code)
				}
			}
			for _, subject := range []string{"typed-value", "optout-value"} {
				if code := p.Call(http.MethodPost, "/schemas/subjects/"+subject+"/versions", schema, nil); code != http.StatusOK {
					t.Fatalf("register %s: %d", subject, code)
				}
			}
			produce := func(topic, value string) int {
				return p.Call(http.MethodPost, "/api/v1/produce", map[string]any{"topic": topic, "value": value}, nil)
			}
			invalid := http.StatusOK
			if mode == "auto" {
				invalid = http.StatusUnprocessableEntity
			}
			for _, c := range []struct {
				topic, value string
				want         int
			}{
				{"typed", `{"n":1}`, http.StatusOK},
				{"typed", `{"n":"one"}`, invalid},
				{"free", `{"n":"one"}`, http.StatusOK}, // no schema: nothing to check
				{"optout", `{"n":"one"}`, http.StatusOK},
			} {
				if got := produce(c.topic, c.value); got != c.want {
					t.Errorf("produce %s to %s: %d, want %d", c.value, c.topic, got, c.want)
				}
			}
			// The Kafka path: a value without the Confluent wire format is
			// refused on a topic that validates.
			cl, err := kgo.NewClient(kgo.SeedBrokers(p.KafkaAddr), kgo.RecordRetries(0), kgo.RequestRetries(0))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err = cl.ProduceSync(ctx, &kgo.Record{Topic: "typed", Value: []byte(`{"n":1}`)}).FirstErr()
			if mode == "auto" && !errors.Is(err, kerr.InvalidRecord) {
				t.Errorf("Kafka produce of a plain value to a validated topic: %v, want INVALID_RECORD", err)
			}
			if mode == "topic" && err != nil {
				t.Errorf("Kafka produce without validation: %v", err)
			}
		})
	}
}
