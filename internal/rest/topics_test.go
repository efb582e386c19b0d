package rest_test

import (
	"net/http"
	"regexp"
	"testing"
	"time"
)

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// checkTopic checks the shape and values of a topic object.
func checkTopic(t *testing.T, m map[string]any, name string, partitions int64, config map[string]any) {
	t.Helper()
	if m["name"] != name {
		t.Fatalf("name %v, want %s", m["name"], name)
	}
	if got := num(t, m, "partitions"); got != partitions {
		t.Fatalf("partitions %d, want %d", got, partitions)
	}
	if id, _ := m["id"].(string); !uuidRE.MatchString(id) {
		t.Fatalf("id %v is not a UUID", m["id"])
	}
	created, _ := m["created_at"].(string)
	at, err := time.Parse(time.RFC3339, created)
	if err != nil {
		t.Fatalf("created_at %q: %v", created, err)
	}
	if d := time.Since(at); d < -time.Minute || d > time.Minute {
		t.Fatalf("created_at %v is not now", at)
	}
	cfg, ok := m["config"].(map[string]any)
	if !ok {
		t.Fatalf("config %#v, want an object", m["config"])
	}
	if len(cfg) != len(config) {
		t.Fatalf("config %v, want %v", cfg, config)
	}
	for k, v := range config {
		if cfg[k] != v {
			t.Fatalf("config %v, want %v", cfg, config)
		}
	}
}

func TestTopicsLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t)

	// An empty list is [], not null.
	if r := e.must(e.get("/api/v1/topics"), http.StatusOK); string(r.body) != "[]\n" {
		t.Fatalf("empty list %q, want []", r.body)
	}

	r := e.must(e.do(http.MethodPost, "/api/v1/topics", "application/json; charset=utf-8",
		`{"name":"orders","partitions":3,"config":{"retention.ms":"60000","cleanup.policy":"compact"},"future_field":1}`), http.StatusCreated)
	created := object(t, r.body, "id", "name", "partitions", "config", "created_at")
	if loc := r.header.Get("Location"); loc != "/api/v1/topics/orders" {
		t.Fatalf("Location %q", loc)
	}
	checkTopic(t, created, "orders", 3, map[string]any{"retention.ms": "60000", "cleanup.policy": "compact"})

	// partition_count is the original's alias.
	r = e.must(e.post("/api/v1/topics", `{"name":"clicks","partition_count":2}`), http.StatusCreated)
	checkTopic(t, object(t, r.body, "id", "name", "partitions", "config", "created_at"), "clicks", 2, nil)

	list := array(t, e.must(e.get("/api/v1/topics"), http.StatusOK).body)
	if len(list) != 2 || list[0]["name"] != "clicks" || list[1]["name"] != "orders" {
		t.Fatalf("list %v, want clicks and orders", list)
	}
	for _, m := range list {
		checkKeys(t, m, "id", "name", "partitions", "config", "created_at")
	}
	if list[1]["id"] != created["id"] {
		t.Fatalf("listed id %v, created %v", list[1]["id"], created["id"])
	}

	e.produce(`{"topic":"orders","partition":1,"key":"k1","value":"a"}`) // compacted: keys required
	e.produce(`{"topic":"orders","partition":1,"key":"k2","value":"b"}`)

	r = e.must(e.get("/api/v1/topics/orders"), http.StatusOK)
	got := object(t, r.body, "id", "name", "partitions", "config", "created_at", "partition_states")
	checkTopic(t, got, "orders", 3, map[string]any{"retention.ms": "60000", "cleanup.policy": "compact"})
	states, _ := got["partition_states"].([]any)
	if len(states) != 3 {
		t.Fatalf("partition_states %v, want 3", got["partition_states"])
	}
	for i, s := range states {
		p := s.(map[string]any)
		checkKeys(t, p, "partition", "leader", "leader_epoch", "low_watermark", "high_watermark")
		if num(t, p, "partition") != int64(i) || p["leader"] != "test" || num(t, p, "low_watermark") != 0 {
			t.Fatalf("partition %d: %v", i, p)
		}
		want := int64(0)
		if i == 1 {
			want = 2
		}
		if hw := num(t, p, "high_watermark"); hw != want {
			t.Fatalf("partition %d high_watermark %d, want %d", i, hw, want)
		}
	}

	parts := array(t, e.must(e.get("/api/v1/topics/orders/partitions"), http.StatusOK).body)
	if len(parts) != 3 || num(t, parts[1], "high_watermark") != 2 || parts[2]["leader"] != "test" {
		t.Fatalf("partitions %v", parts)
	}
	for _, p := range parts {
		checkKeys(t, p, "partition", "leader", "leader_epoch", "low_watermark", "high_watermark")
	}

	r = e.must(e.do(http.MethodDelete, "/api/v1/topics/orders", "", ""), http.StatusNoContent)
	if len(r.body) != 0 {
		t.Fatalf("delete body %q, want none", r.body)
	}
	checkError(t, e.get("/api/v1/topics/orders"), http.StatusNotFound, "not_found", `topic "orders" does not exist`)
	checkError(t, e.get("/api/v1/topics/orders/partitions"), http.StatusNotFound, "not_found", "orders")
	checkError(t, e.do(http.MethodDelete, "/api/v1/topics/orders", "", ""), http.StatusNotFound, "not_found", "orders")
	list = array(t, e.must(e.get("/api/v1/topics"), http.StatusOK).body)
	if len(list) != 1 || list[0]["name"] != "clicks" {
		t.Fatalf("list after delete %v", list)
	}
	// The name can be used again.
	e.createTopic("orders", 1)
}
