package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/internal/e2e"
	"github.com/twmb/franz-go/pkg/kgo"
)

// These tests build the real streamhouse binary and drive it over HTTP, on
// the embedded defaults (local folder + SQLite) and on S3 (versitygw) +
// PostgreSQL when scripts/services.sh has started them.

type produceResp struct {
	Offset    int64 `json:"offset"`
	Partition int32 `json:"partition"`
}

type consumeResp struct {
	Records []struct {
		Partition int32   `json:"partition"`
		Offset    int64   `json:"offset"`
		Key       *string `json:"key"`
		Value     *string `json:"value"`
	} `json:"records"`
	NextOffset int64 `json:"nextOffset"`
}

func consumeAll(t *testing.T, s *e2e.Proc, topic string, partition int32) map[int64]string {
	t.Helper()
	got := map[int64]string{}
	off := int64(0)
	for {
		var c consumeResp
		path := fmt.Sprintf("/api/v1/consume?topic=%s&partition=%d&offset=%d&maxRecords=1000", topic, partition, off)
		if code := s.Call("GET", path, nil, &c); code != 200 {
			t.Fatalf("consume: status %d", code)
		}
		if len(c.Records) == 0 {
			return got
		}
		for _, r := range c.Records {
			if r.Offset != off {
				t.Fatalf("partition %d: offset %d, want dense %d", partition, r.Offset, off)
			}
			got[r.Offset] = *r.Value
			off++
		}
	}
}

func TestEndToEnd(t *testing.T) {
	t.Parallel()
	for _, be := range e2e.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			s := e2e.Start(t, dir, be.Env(t, dir))
			var health map[string]string
			if code := s.Call("GET", "/health", nil, &health); code != 200 || health["status"] != "ok" {
				t.Fatalf("/health: %d %v", code, health)
			}
			if code := s.Call("GET", "/ready", nil, nil); code != 200 {
				t.Fatalf("/ready: %d", code)
			}
			// The README's examples.
			if code := s.Call("POST", "/api/v1/topics", map[string]any{"name": "events", "partitions": 4}, nil); code != 201 {
				t.Fatalf("create topic: %d", code)
			}
			var p produceResp
			if code := s.Call("POST", "/api/v1/produce", map[string]any{"topic": "events", "key": "user-1", "value": `{"event": "signup"}`}, &p); code != 200 {
				t.Fatalf("produce: %d", code)
			}
			got := consumeAll(t, s, "events", p.Partition)
			if got[p.Offset] != `{"event": "signup"}` {
				t.Fatalf("consumed %v", got)
			}
			// Every endpoint, on the real server: success first, then bad
			// input, which must leave the stored data as it was.
			steps := []struct {
				method, path string
				body         any
				want         int
			}{
				{"GET", "/api/v1/topics", nil, 200},
				{"GET", "/api/v1/topics/events", nil, 200},
				{"GET", "/api/v1/topics/events/partitions", nil, 200},
				{"POST", "/api/v1/produce/batch", map[string]any{"topic": "events", "partition": 1, "records": []any{map[string]any{"value": "a"}, map[string]any{"value": "Yg==", "encoding": "base64"}}}, 200},
				{"POST", "/api/v1/consumer-groups", map[string]any{"group_id": "g1"}, 201},
				{"POST", "/api/v1/consumer-groups/commit", map[string]any{"group_id": "g1", "topic": "events", "partition": 1, "offset": 1}, 200},
				{"GET", "/api/v1/consumer-groups", nil, 200},
				{"GET", "/api/v1/consumer-groups/g1", nil, 200},
				{"GET", "/api/v1/consumer-groups/g1/offsets", nil, 200},
				{"POST", "/api/v1/sql", map[string]any{"query": "SELECT COUNT(*) FROM events"}, 200},
				{"POST", "/api/v1/sql", map[string]any{"query": "SELECT FROM WHERE"}, 400},
				{"POST", "/api/v1/topics", map[string]any{"name": "tmp", "partitions": 1}, 201},
				{"DELETE", "/api/v1/topics/tmp", nil, 204},
				{"DELETE", "/api/v1/consumer-groups/g1", nil, 200},
				// Bad input.
				{"POST", "/api/v1/produce", map[string]any{"topic": "nope", "value": "x"}, 404},
				{"POST", "/api/v1/produce", map[string]any{"topic": "events", "value": "x", "partition": -1}, 400},
				{"POST", "/api/v1/produce", map[string]any{"topic": "events", "value": "x", "partition": 4}, 400},
				{"POST", "/api/v1/produce", map[string]any{"topic": "events"}, 400},
				{"POST", "/api/v1/produce", map[string]any{"topic": "events", "value": "%%", "encoding": "base64"}, 400},
				{"POST", "/api/v1/produce", "not an object", 400},
				{"POST", "/api/v1/topics", map[string]any{"name": "..", "partitions": 1}, 400},
				{"POST", "/api/v1/topics", map[string]any{"name": "events", "partitions": 1}, 409},
				{"POST", "/api/v1/topics", map[string]any{"name": "x", "partitions": 0}, 400},
				{"GET", "/api/v1/consume?topic=events&partition=abc&offset=0", nil, 400},
				{"GET", "/api/v1/consume?topic=events&partition=0&offset=999", nil, 400},
				{"GET", "/api/v1/topics/nope", nil, 404},
				{"GET", "/api/v1/consumer-groups/nope", nil, 404},
			}
			before := partitionState(t, s)
			for _, st := range steps {
				var raw json.RawMessage
				code := s.Call(st.method, st.path, st.body, &raw)
				var errBody struct{ Error, Message string }
				if code >= 400 {
					_ = json.Unmarshal(raw, &errBody)
				}
				if code != st.want {
					t.Errorf("%s %s: status %d, want %d (%+v)", st.method, st.path, code, st.want, errBody)
				}
				if code >= 400 && (errBody.Error == "" || errBody.Message == "") {
					t.Errorf("%s %s: error body %+v lacks error or message", st.method, st.path, errBody)
				}
			}
			after := partitionState(t, s)
			if after[1] != before[1]+2 || after[0] != before[0] || after[2] != before[2] || after[3] != before[3] {
				t.Errorf("high watermarks went from %v to %v; only partition 1 should have grown, by 2", before, after)
			}
			// A body that is too large, and one that is not JSON.
			big := strings.NewReader(`{"topic":"events","value":"` + strings.Repeat("x", 17<<20) + `"}`)
			if resp, err := http.Post(s.URL+"/api/v1/produce", "application/json", big); err != nil || resp.StatusCode != 413 {
				t.Errorf("oversized body: %v %v", resp.StatusCode, err)
			}
			if resp, err := http.Post(s.URL+"/api/v1/produce", "text/plain", strings.NewReader("{}")); err != nil || resp.StatusCode != 415 {
				t.Errorf("text/plain body: %v %v", resp.StatusCode, err)
			}
			if got := partitionState(t, s); fmt.Sprint(got) != fmt.Sprint(after) {
				t.Errorf("rejected bodies changed high watermarks: %v → %v", after, got)
			}
			resp, err := http.Get(s.URL + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			metrics, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			for _, m := range []string{"streamhouse_log_flushes_total", "streamhouse_object_store_requests_total", "streamhouse_metadata_commit_duration_seconds"} {
				if !strings.Contains(string(metrics), m) {
					t.Errorf("/metrics lacks %s", m)
				}
			}
		})
	}
}

// Every durably acknowledged record survives SIGKILL, at its offset, with
// dense offsets; BUFFERED data survives a graceful stop.
func TestRestart(t *testing.T) {
	t.Parallel()
	for _, be := range e2e.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			env := be.Env(t, dir)
			s := e2e.Start(t, dir, env)
			if code := s.Call("POST", "/api/v1/topics", map[string]any{"name": "orders", "partitions": 3}, nil); code != 201 {
				t.Fatalf("create: %d", code)
			}
			acked := map[int32]map[int64]string{}
			produce := func(s *e2e.Proc, n int, mode string) {
				for i := 0; i < n; i++ {
					v := fmt.Sprintf("%s-%d-%d", mode, time.Now().UnixNano(), i)
					var p produceResp
					if code := s.Call("POST", "/api/v1/produce", map[string]any{"topic": "orders", "key": fmt.Sprint(i), "value": v, "ack_mode": mode}, &p); code != 200 {
						t.Fatalf("produce: %d", code)
					}
					if acked[p.Partition] == nil {
						acked[p.Partition] = map[int64]string{}
					}
					acked[p.Partition][p.Offset] = v
				}
			}
			produce(s, 40, "durable")
			s.Stop(syscall.SIGKILL)

			s = e2e.Start(t, dir, env)
			produce(s, 20, "durable")
			produce(s, 20, "buffered")
			s.Stop(syscall.SIGTERM)

			s = e2e.Start(t, dir, env)
			for p := int32(0); p < 3; p++ {
				got := consumeAll(t, s, "orders", p)
				for off, v := range acked[p] {
					if got[off] != v {
						t.Fatalf("partition %d offset %d: got %q, want %q", p, off, got[off], v)
					}
				}
				if len(got) != len(acked[p]) {
					t.Fatalf("partition %d: %d records, want %d", p, len(got), len(acked[p]))
				}
			}
		})
	}
}

// TestReadmeExamples runs the README's REST examples, as written, against a
// real server: each curl must succeed (HTTP status below 400).
func TestReadmeExamples(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("curl is needed to run the README's examples")
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	const startMark, endMark = "<!-- readme-examples:start -->", "<!-- readme-examples:end -->"
	s := string(readme)
	i, j := strings.Index(s, startMark), strings.Index(s, endMark)
	if i < 0 || j < i {
		t.Fatal("README.md lacks the readme-examples markers")
	}
	script := strings.TrimSpace(s[i+len(startMark) : j])
	script = strings.TrimPrefix(script, "```bash")
	script = strings.TrimSuffix(script, "```")
	if strings.Count(script, "curl ") < 5 {
		t.Fatalf("found too few examples in:\n%s", script)
	}
	dir := t.TempDir()
	srv := e2e.Start(t, dir, e2e.Local.Env(t, dir))
	script = strings.ReplaceAll(script, "http://localhost:8080", srv.URL)
	script = strings.ReplaceAll(script, "curl -sS", "curl -sS --fail-with-body")
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("README examples failed: %v\n%s", err, out)
	}
	for _, want := range []string{`"name":"events"`, `"value":"b"`, `"source":"readme"`, `"group_id":"billing"`, `"lag":1`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("README examples' output lacks %s:\n%s", want, out)
		}
	}
}

// partitionState returns the high watermark of each partition of events.
func partitionState(t *testing.T, s *e2e.Proc) []int64 {
	t.Helper()
	var parts []struct {
		Partition     int32 `json:"partition"`
		HighWatermark int64 `json:"high_watermark"`
	}
	if code := s.Call("GET", "/api/v1/topics/events/partitions", nil, &parts); code != 200 {
		t.Fatalf("partitions: %d", code)
	}
	out := make([]int64, len(parts))
	for _, p := range parts {
		out[p.Partition] = p.HighWatermark
	}
	return out
}

// A Kafka consumer group's live members show in the REST API, and a group
// with members cannot be deleted over REST.
func TestKafkaGroupInREST(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := e2e.Start(t, dir, e2e.Local.Env(t, dir))
	if code := s.Call("POST", "/api/v1/topics", map[string]any{"name": "clicks", "partitions": 2}, nil); code != 201 {
		t.Fatalf("create: %d", code)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.KafkaAddr), kgo.ConsumerGroup("dashboard"), kgo.ConsumeTopics("clicks"), kgo.ClientID("e2e-consumer"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for ctx.Err() == nil {
			cl.PollFetches(ctx)
		}
	}()
	var g struct {
		State   string `json:"state"`
		Members []struct {
			ClientID   string             `json:"client_id"`
			Assignment map[string][]int32 `json:"assignment"`
		} `json:"members"`
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		code := s.Call("GET", "/api/v1/consumer-groups/dashboard", nil, &g)
		if code == 200 && g.State == "Stable" && len(g.Members) == 1 && len(g.Members[0].Assignment["clicks"]) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("group not visible as Stable with one member owning both partitions: %d %+v", code, g)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if g.Members[0].ClientID != "e2e-consumer" {
		t.Errorf("client id %q", g.Members[0].ClientID)
	}
	if code := s.Call("DELETE", "/api/v1/consumer-groups/dashboard", nil, nil); code != 409 {
		t.Fatalf("delete of a live group: %d, want 409", code)
	}
}
