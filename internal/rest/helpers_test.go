package rest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamhouse/streamhouse/internal/broker"
	"github.com/streamhouse/streamhouse/internal/metadata/sqlstore"
	"github.com/streamhouse/streamhouse/internal/objstore"
	"github.com/streamhouse/streamhouse/internal/partlog"
	"github.com/streamhouse/streamhouse/internal/rest"
)

// env is a REST server over a real broker, log, SQLite store and local
// folder bucket.
type env struct {
	t   *testing.T
	b   *broker.Broker
	reg *prometheus.Registry
	srv *httptest.Server
}

type envOption func(*rest.Config)

func withMaxBody(n int64) envOption { return func(c *rest.Config) { c.MaxBodyBytes = n } }

func withReady(f func(context.Context) error) envOption {
	return func(c *rest.Config) { c.Ready = f }
}

func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	ctx := context.Background()
	logger := slog.New(slog.DiscardHandler)
	store, err := sqlstore.OpenSQLite(ctx, filepath.Join(t.TempDir(), "meta.db"), logger)
	if err != nil {
		t.Fatalf("open sqlite: %v", err)
	}
	t.Cleanup(func() { _ = store.Close() })
	bucket, err := objstore.NewLocal(t.TempDir())
	if err != nil {
		t.Fatalf("open local bucket: %v", err)
	}
	t.Cleanup(func() { _ = bucket.Close() })
	plog, err := partlog.Open(ctx, partlog.Config{AgentID: "test", Bucket: bucket, Store: store, Logger: logger})
	if err != nil {
		t.Fatalf("open log: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = plog.Close(ctx)
	})
	b, err := broker.New(ctx, broker.Config{AgentID: "test", Store: store, Log: plog, Logger: logger})
	if err != nil {
		t.Fatalf("new broker: %v", err)
	}
	reg := prometheus.NewRegistry()
	cfg := rest.Config{Broker: b, Logger: logger, Registry: reg, MaxBodyBytes: 1 << 20}
	for _, o := range opts {
		o(&cfg)
	}
	srv := httptest.NewServer(rest.New(cfg))
	t.Cleanup(srv.Close) // registered last, so it runs first
	return &env{t: t, b: b, reg: reg, srv: srv}
}

// resp is one HTTP answer.
type resp struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request; contentType "" sends none.
func (e *env) do(method, path, contentType, body string) resp {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatalf("new request: %v", err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return resp{status: res.StatusCode, header: res.Header, body: b}
}

func (e *env) get(path string) resp { return e.do(http.MethodGet, path, "", "") }

func (e *env) post(path, body string) resp {
	return e.do(http.MethodPost, path, "application/json", body)
}

// must checks the status of r and returns it.
func (e *env) must(r resp, status int) resp {
	e.t.Helper()
	if r.status != status {
		e.t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	return r
}

// object decodes r's body as a JSON object and checks it has exactly keys.
func object(t *testing.T, body []byte, keys ...string) map[string]any {
	t.Helper()
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	checkKeys(t, m, keys...)
	return m
}

// array decodes a JSON array of objects.
func array(t *testing.T, body []byte) []map[string]any {
	t.Helper()
	var a []map[string]any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&a); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	if a == nil {
		t.Fatalf("body %s is null, want an array", body)
	}
	return a
}

func checkKeys(t *testing.T, m map[string]any, keys ...string) {
	t.Helper()
	got := make([]string, 0, len(m))
	for k := range m {
		got = append(got, k)
	}
	sort.Strings(got)
	want := slices.Clone(keys)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Fatalf("keys %v, want %v (in %v)", got, want, m)
	}
}

// num reads a JSON number field as int64.
func num(t *testing.T, m map[string]any, key string) int64 {
	t.Helper()
	n, ok := m[key].(json.Number)
	if !ok {
		t.Fatalf("%s = %#v, want a number", key, m[key])
	}
	v, err := n.Int64()
	if err != nil {
		t.Fatalf("%s = %s: %v", key, n, err)
	}
	return v
}

// decodeInto decodes body into a typed value.
func decodeInto[T any](t *testing.T, body []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	return v
}

// checkError checks an error answer: status, the JSON error body exactly
// {"error","message"}, the code, and that the message mentions want.
func checkError(t *testing.T, r resp, status int, code, want string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q, want application/json", ct)
	}
	m := object(t, r.body, "error", "message")
	if m["error"] != code {
		t.Fatalf("error code %v, want %s; body %s", m["error"], code, r.body)
	}
	msg, _ := m["message"].(string)
	if !strings.Contains(strings.ToLower(msg), strings.ToLower(want)) {
		t.Fatalf("message %q does not mention %q", msg, want)
	}
}

// createTopic creates a topic through the API.
func (e *env) createTopic(name string, partitions int) {
	e.t.Helper()
	e.must(e.post("/api/v1/topics", fmt.Sprintf(`{"name":%q,"partitions":%d}`, name, partitions)), http.StatusCreated)
}

// produced is a produce answer.
type produced struct {
	Offset    int64 `json:"offset"`
	Partition int32 `json:"partition"`
	Timestamp int64 `json:"timestamp"`
}

func (e *env) produce(body string) produced {
	e.t.Helper()
	return decodeInto[produced](e.t, e.must(e.post("/api/v1/produce", body), http.StatusOK).body)
}

// consumed is a consume answer.
type consumed struct {
	Records []struct {
		Partition       int32             `json:"partition"`
		Offset          int64             `json:"offset"`
		Key             *string           `json:"key"`
		Value           *string           `json:"value"`
		Timestamp       int64             `json:"timestamp"`
		Headers         map[string]string `json:"headers"`
		Encoding        string            `json:"encoding"`
		HeadersEncoding string            `json:"headers_encoding"`
	} `json:"records"`
	NextOffset    int64 `json:"nextOffset"`
	HighWatermark int64 `json:"highWatermark"`
}

func (e *env) consume(query string) consumed {
	e.t.Helper()
	return decodeInto[consumed](e.t, e.must(e.get("/api/v1/consume?"+query), http.StatusOK).body)
}

// snapshot describes every stored thing a bad request must not change:
// topics with their config and partitions' high watermarks, and groups
// with their offsets.
func (e *env) snapshot() string {
	e.t.Helper()
	ctx := context.Background()
	var sb strings.Builder
	topics, err := e.b.ListTopics(ctx)
	if err != nil {
		e.t.Fatalf("list topics: %v", err)
	}
	for _, t := range topics {
		info, err := e.b.DescribeTopic(ctx, t.Name)
		if err != nil {
			e.t.Fatalf("describe %s: %v", t.Name, err)
		}
		fmt.Fprintf(&sb, "topic %s %s %d %v:", t.Name, t.ID, t.Partitions, t.Config)
		for _, p := range info.PartitionStates {
			_, hw, err := e.b.Offsets(ctx, t.Name, p.Partition)
			if err != nil {
				e.t.Fatalf("offsets %s/%d: %v", t.Name, p.Partition, err)
			}
			fmt.Fprintf(&sb, " %d=%d/%d", p.Partition, p.HighWatermark, hw)
		}
		sb.WriteString("\n")
	}
	groups, err := e.b.ListGroups(ctx)
	if err != nil {
		e.t.Fatalf("list groups: %v", err)
	}
	for _, g := range groups {
		fmt.Fprintf(&sb, "group %s %+v\n", g.Group, g.Partitions)
	}
	return sb.String()
}

// withMembers serves consumer group membership (and, when m is also a
// broker.GroupOffsetAdmin, admin commits) from m.
func withMembers(m broker.GroupMembers) envOption { return func(c *rest.Config) { c.Members = m } }
