package schemaregistry_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/streamhouse/streamhouse/internal/broker"
	"github.com/streamhouse/streamhouse/internal/grpcapi"
	"github.com/streamhouse/streamhouse/internal/kafka"
	"github.com/streamhouse/streamhouse/internal/metadata/sqlstore"
	"github.com/streamhouse/streamhouse/internal/objstore"
	"github.com/streamhouse/streamhouse/internal/partlog"
	"github.com/streamhouse/streamhouse/internal/rest"
	"github.com/streamhouse/streamhouse/internal/schemaregistry"
	pb "github.com/streamhouse/streamhouse/proto/streamhousepb"
)

// stack is one agent as server.go wires it: store, log, broker with the
// registry's validator, and the Kafka, REST (registry under /schemas) and
// gRPC front ends.
type stack struct {
	b       *broker.Broker
	kafka   string // address
	restURL string
	grpc    *grpcapi.Server
	sr      *sr.Client
}

func newStack(t *testing.T) *stack {
	t.Helper()
	ctx := context.Background()
	logger := slog.New(slog.DiscardHandler)
	store, err := sqlstore.OpenSQLite(ctx, filepath.Join(t.TempDir(), "meta.db"), logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	bucket, err := objstore.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bucket.Close() })
	plog, err := partlog.Open(ctx, partlog.Config{AgentID: "test", Bucket: bucket, Store: store, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	registry := schemaregistry.New(schemaregistry.Config{Store: store, Logger: logger})
	b, err := broker.New(ctx, broker.Config{AgentID: "test", Addr: ln.Addr().String(), Store: store, Log: plog, Logger: logger, Validator: registry.Validator()})
	if err != nil {
		t.Fatal(err)
	}
	b.Place(ctx)
	ks := kafka.New(kafka.Config{Broker: b, Logger: logger, AdvertisedAddr: ln.Addr().String()})
	go func() { _ = ks.Serve(ln) }()
	hs := httptest.NewServer(rest.New(rest.Config{Broker: b, Logger: logger, Schemas: registry}))
	t.Cleanup(func() {
		hs.Close()
		_ = ks.Close()
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = b.Shutdown(cctx)
		_ = plog.Close(cctx)
	})
	cl, err := sr.NewClient(sr.URLs(hs.URL + "/schemas"))
	if err != nil {
		t.Fatal(err)
	}
	return &stack{b: b, kafka: ln.Addr().String(), restURL: hs.URL, grpc: grpcapi.New(grpcapi.Config{Broker: b, Logger: logger}), sr: cl}
}

func (s *stack) createTopic(t *testing.T, name string, validate bool) {
	t.Helper()
	cfg := map[string]string{}
	if validate {
		cfg[broker.SchemaValidationConfig] = "true"
	}
	if _, err := s.b.CreateTopic(t.Context(), broker.TopicSpec{Name: name, Partitions: 1, Config: cfg}, false); err != nil {
		t.Fatal(err)
	}
}

func (s *stack) highWatermark(t *testing.T, topic string) int64 {
	t.Helper()
	_, hw, err := s.b.Offsets(t.Context(), topic, 0)
	if err != nil {
		t.Fatal(err)
	}
	return hw
}

type user struct {
	Name string `avro:"name"`
	Age  int    `avro:"age"`
}

const userSchema = `{"type":"record","name":"User","fields":[{"name":"name","type":"string"},{"name":"age","type":"int","default":0}]}`

// TestKafkaAvroRoundTrip: franz-go's sr client registers a schema through
// the REST port, its serde produces Avro in the Confluent wire format
// through the Kafka port to a validating topic, and the records consume
// back; values without the wire format or with an unknown id get
// INVALID_RECORD and are not stored.
func TestKafkaAvroRoundTrip(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	s.createTopic(t, "users", true)
	ss, err := s.sr.CreateSchema(ctx, "users-value", sr.Schema{Schema: userSchema})
	if err != nil {
		t.Fatalf("CreateSchema: %v", err)
	}
	schema := avro.MustParse(userSchema)
	var serde sr.Serde
	serde.Register(ss.ID, user{},
		sr.EncodeFn(func(v any) ([]byte, error) { return avro.Marshal(schema, v) }),
		sr.DecodeFn(func(b []byte, v any) error { return avro.Unmarshal(schema, b, v) }))

	cl, err := kgo.NewClient(kgo.SeedBrokers(s.kafka), kgo.ConsumeTopics("users"), kgo.RecordRetries(1))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	want := []user{{"ada", 36}, {"alan", 41}}
	for _, u := range want {
		v, err := serde.Encode(u)
		if err != nil {
			t.Fatal(err)
		}
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "users", Value: v}).FirstErr(); err != nil {
			t.Fatalf("produce %v: %v", u, err)
		}
	}
	bad := map[string][]byte{
		"plain":      []byte(`{"name":"eve"}`),
		"unknown-id": {0, 0, 0, 0x03, 0xe7, 2, 'x'},
		"bad-magic":  append([]byte{1}, mustEncode(t, &serde, user{"mallory", 1})[1:]...),
	}
	for name, v := range bad {
		err := cl.ProduceSync(ctx, &kgo.Record{Topic: "users", Value: v}).FirstErr()
		if !errors.Is(err, kerr.InvalidRecord) {
			t.Fatalf("%s: produce answered %v, want INVALID_RECORD", name, err)
		}
	}
	if hw := s.highWatermark(t, "users"); hw != int64(len(want)) {
		t.Fatalf("high watermark %d, want %d: a rejected record was stored", hw, len(want))
	}
	var got []user
	for len(got) < len(want) {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatalf("fetch: %v", err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			var u user
			if err := serde.Decode(r.Value, &u); err != nil {
				t.Fatalf("decode offset %d: %v", r.Offset, err)
			}
			got = append(got, u)
		})
	}
	if got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("consumed %v, want %v", got, want)
	}

	// A topic without validation takes anything.
	s.createTopic(t, "free", false)
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "free", Value: []byte("plain")}).FirstErr(); err != nil {
		t.Fatalf("produce to a topic without validation: %v", err)
	}
}

func mustEncode(t *testing.T, s *sr.Serde, v any) []byte {
	t.Helper()
	b, err := s.Encode(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const eventSchema = `{"type":"object","properties":{"event":{"type":"string"},"n":{"type":"integer"}},"required":["event"]}`

// TestRESTAndGRPCValidation: JSON values are validated against the latest
// {topic}-value schema; a bad record, alone or in a batch, gets 422 (REST)
// or InvalidArgument (gRPC) and nothing of the request is stored.
func TestRESTAndGRPCValidation(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	ctx := t.Context()
	s.createTopic(t, "events", true)
	post := func(path, body string) (int, string) {
		t.Helper()
		resp, err := http.Post(s.restURL+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		raw, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(raw)
	}
	// No schema yet: nothing can be validated, so nothing is accepted.
	if code, raw := post("/api/v1/produce", `{"topic":"events","value":"{\"event\":\"a\"}"}`); code != 422 {
		t.Fatalf("without a schema: %d %s", code, raw)
	}
	if _, err := s.sr.CreateSchema(ctx, "events-value", sr.Schema{Schema: eventSchema, Type: sr.TypeJSON}); err != nil {
		t.Fatal(err)
	}
	if code, raw := post("/api/v1/produce", `{"topic":"events","value":"{\"event\":\"a\",\"n\":1}"}`); code != 200 {
		t.Fatalf("valid record: %d %s", code, raw)
	}
	for _, body := range []string{
		`{"topic":"events","value":"{\"n\":1}"}`,
		`{"topic":"events","value":"{\"event\":5}"}`,
		`{"topic":"events","value":"not json"}`,
	} {
		code, raw := post("/api/v1/produce", body)
		var e struct {
			Error string `json:"error"`
		}
		if code != 422 || json.Unmarshal([]byte(raw), &e) != nil || e.Error == "" {
			t.Fatalf("%s: %d %s, want 422", body, code, raw)
		}
	}
	if code, raw := post("/api/v1/produce/batch", `{"topic":"events","records":[{"value":"{\"event\":\"b\"}"},{"value":"{}"}]}`); code != 422 {
		t.Fatalf("batch with a bad record: %d %s", code, raw)
	}
	if hw := s.highWatermark(t, "events"); hw != 1 {
		t.Fatalf("high watermark %d after REST, want 1", hw)
	}

	_, err := s.grpc.Produce(ctx, &pb.ProduceRequest{Topic: "events", Value: []byte(`{"n":2}`)})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("gRPC Produce of a bad record: %v, want InvalidArgument", err)
	}
	_, err = s.grpc.ProduceBatch(ctx, &pb.ProduceBatchRequest{Topic: "events", AckMode: pb.AckMode_ACK_DURABLE, Records: []*pb.Record{
		{Value: []byte(`{"event":"c"}`)}, {Value: []byte(`{"event":[]}`)},
	}})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("gRPC ProduceBatch with a bad record: %v, want InvalidArgument", err)
	}
	if hw := s.highWatermark(t, "events"); hw != 1 {
		t.Fatalf("high watermark %d after gRPC rejections, want 1", hw)
	}
	if _, err := s.grpc.Produce(ctx, &pb.ProduceRequest{Topic: "events", Value: []byte(`{"event":"d"}`)}); err != nil {
		t.Fatalf("gRPC Produce of a valid record: %v", err)
	}
	if hw := s.highWatermark(t, "events"); hw != 2 {
		t.Fatalf("high watermark %d, want 2", hw)
	}
}
