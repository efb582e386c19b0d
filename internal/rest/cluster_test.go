package rest_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamhouse/streamhouse/internal/broker"
	"github.com/streamhouse/streamhouse/internal/metadata/sqlstore"
	"github.com/streamhouse/streamhouse/internal/objstore"
	"github.com/streamhouse/streamhouse/internal/partlog"
	"github.com/streamhouse/streamhouse/internal/rest"
)

// opsClock is the metrics sampler's clock, moved by the test.
type opsClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *opsClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *opsClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// opsAgent is one agent of an in-process cluster: its own log and broker
// over the cluster's store and bucket, served by rest with a metrics
// sampler the test drives by hand.
type opsAgent struct {
	*env
	id      string
	sampler *rest.Sampler
	clock   *opsClock
}

// opsSpec describes an agent of newOpsCluster.
type opsSpec struct{ id, rack string }

// newOpsCluster starts agents sharing one SQLite store and one local
// bucket, in order.
func newOpsCluster(t *testing.T, specs ...opsSpec) []*opsAgent {
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
	var out []*opsAgent
	for _, sp := range specs {
		reg := prometheus.NewRegistry()
		plog, err := partlog.Open(ctx, partlog.Config{AgentID: sp.id, Bucket: bucket, Store: store, Logger: logger, Metrics: reg})
		if err != nil {
			t.Fatalf("open log %s: %v", sp.id, err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = plog.Close(ctx)
		})
		b, err := broker.New(ctx, broker.Config{AgentID: sp.id, Store: store, Log: plog, Logger: logger,
			Addr: sp.id + ".example:9092", GRPCAddr: sp.id + ".example:50051", Rack: sp.rack})
		if err != nil {
			t.Fatalf("new broker %s: %v", sp.id, err)
		}
		clock := &opsClock{now: time.Unix(1_700_000_000, 0)}
		sampler := rest.NewSampler(rest.SamplerConfig{Gatherer: reg, Interval: 2 * time.Second, Window: 10 * time.Second,
			Logger: logger, Now: clock.Now})
		srv := httptest.NewServer(rest.New(rest.Config{Broker: b, Logger: logger, Registry: reg, Sampler: sampler,
			Started: time.Now().Add(-time.Minute)}))
		t.Cleanup(srv.Close)
		out = append(out, &opsAgent{env: &env{t: t, b: b, reg: reg, srv: srv}, id: sp.id, sampler: sampler, clock: clock})
	}
	return out
}

func TestLiveChecksNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withReady(func(context.Context) error { return errors.New("metadata store: down") }))
	r := e.must(e.get("/live"), http.StatusOK)
	if m := object(t, r.body, "status"); m["status"] != "ok" {
		t.Fatalf("/live %s", r.body)
	}
	// The stores are down: /ready says so, /live does not care.
	checkError(t, e.get("/ready"), http.StatusServiceUnavailable, "not_ready", "metadata store: down")
	e.must(e.get("/health"), http.StatusOK)
	checkError(t, e.do(http.MethodPost, "/live", "", ""), http.StatusMethodNotAllowed, "method_not_allowed", "GET")
}

// agentKeys are the fields of an agent of GET /api/v1/agents.
var agentKeys = []string{"agentId", "agent_id", "address", "grpcAddress", "grpc_address", "rack",
	"availabilityZone", "availability_zone", "partitionCount", "partition_count", "activeLeases",
	"active_leases", "partitions", "lastHeartbeat", "last_heartbeat", "startedAt", "started_at", "self"}

// both checks that a field has the same value under both spellings and
// returns it.
func both(t *testing.T, m map[string]any, camel, snake string) any {
	t.Helper()
	if fmt.Sprint(m[camel]) != fmt.Sprint(m[snake]) {
		t.Fatalf("%s = %v but %s = %v", camel, m[camel], snake, m[snake])
	}
	return m[camel]
}

func TestAgentsTwoAgents(t *testing.T) {
	t.Parallel()
	c := newOpsCluster(t, opsSpec{"a1", "eu-west-1a"}, opsSpec{"b2", ""})
	a, b := c[0], c[1]
	a.createTopic("orders", 3)
	a.createTopic("clicks", 2)
	// Each agent takes its share (the creating one took its part at once).
	ctx := context.Background()
	a.b.Place(ctx)
	b.b.Place(ctx)

	// Who leads what, from the topics API.
	leaders := map[string]string{}
	for _, topic := range []string{"orders", "clicks"} {
		for _, p := range array(t, a.must(a.get("/api/v1/topics/"+topic+"/partitions"), http.StatusOK).body) {
			leader, _ := p["leader"].(string)
			if leader == "" {
				t.Fatalf("%s/%v has no leader", topic, p["partition"])
			}
			leaders[fmt.Sprintf("%s/%v", topic, p["partition"])] = leader
		}
	}

	for _, from := range c {
		r := from.must(from.get("/api/v1/agents"), http.StatusOK)
		top := object(t, r.body, "agents", "count")
		list, _ := top["agents"].([]any)
		if num(t, top, "count") != 2 || len(list) != 2 {
			t.Fatalf("from %s: %s, want 2 agents", from.id, r.body)
		}
		total := 0
		seen := map[string]bool{}
		for i, x := range list {
			m := x.(map[string]any)
			checkKeys(t, m, agentKeys...)
			want := c[i] // listed by ID
			if id := both(t, m, "agentId", "agent_id"); id != want.id {
				t.Fatalf("agent %d is %v, want %s", i, id, want.id)
			}
			if m["address"] != want.id+".example:9092" || both(t, m, "grpcAddress", "grpc_address") != want.id+".example:50051" {
				t.Fatalf("agent %s addresses %v, %v", want.id, m["address"], m["grpcAddress"])
			}
			rack := both(t, m, "availabilityZone", "availability_zone")
			if fmt.Sprint(rack) != fmt.Sprint(m["rack"]) {
				t.Fatalf("rack %v, availabilityZone %v", m["rack"], rack)
			}
			switch want.id {
			case "a1":
				if m["rack"] != "eu-west-1a" {
					t.Fatalf("rack %v, want eu-west-1a", m["rack"])
				}
			default:
				if m["rack"] != nil {
					t.Fatalf("rack %v, want null (unset)", m["rack"])
				}
			}
			if self := m["self"]; self != (want.id == from.id) {
				t.Fatalf("from %s: agent %s self = %v", from.id, want.id, self)
			}
			for _, f := range [][2]string{{"lastHeartbeat", "last_heartbeat"}, {"startedAt", "started_at"}} {
				s, _ := both(t, m, f[0], f[1]).(string)
				at, err := time.Parse(time.RFC3339, s)
				if err != nil || time.Since(at) > time.Minute || time.Since(at) < -time.Minute {
					t.Fatalf("%s %q: not a recent RFC 3339 time (%v)", f[0], s, err)
				}
			}
			parts, _ := m["partitions"].([]any)
			n := num(t, m, "partitionCount")
			if num(t, m, "partition_count") != n || num(t, m, "activeLeases") != n || num(t, m, "active_leases") != n || int(n) != len(parts) {
				t.Fatalf("agent %s counts %v, partitions %v", want.id, m, parts)
			}
			for _, p := range parts {
				pm := p.(map[string]any)
				checkKeys(t, pm, "topic", "partition")
				key := fmt.Sprintf("%v/%v", pm["topic"], pm["partition"])
				if leaders[key] != want.id || seen[key] {
					t.Fatalf("agent %s lists %s, led by %s (seen before: %v)", want.id, key, leaders[key], seen[key])
				}
				seen[key] = true
			}
			total += int(n)
		}
		if total != 5 {
			t.Fatalf("the agents lead %d partitions, want 5", total)
		}
	}
}

func TestMetricsSummary(t *testing.T) {
	t.Parallel()
	a := newOpsCluster(t, opsSpec{"solo", ""})[0]
	ctx := context.Background()
	metricsKeys := []string{"messagesInPerSecond", "messages_in_per_second", "messagesOutPerSecond", "messages_out_per_second",
		"bytesInPerSecond", "bytes_in_per_second", "bytesOutPerSecond", "bytes_out_per_second",
		"produceLatencyP50Ms", "produce_latency_p50_ms", "produceLatencyP99Ms", "produce_latency_p99_ms",
		"windowSeconds", "window_seconds", "storageBytes", "storage_bytes", "topicsCount", "topics_count",
		"partitionsCount", "partitions_count", "consumerGroupsCount", "consumer_groups_count",
		"agentsCount", "agents_count", "uptimeMs", "uptime_ms"}
	summary := func() map[string]any {
		t.Helper()
		m := object(t, a.must(a.get("/api/v1/metrics"), http.StatusOK).body, metricsKeys...)
		for i := 0; i < len(metricsKeys); i += 2 {
			both(t, m, metricsKeys[i], metricsKeys[i+1])
		}
		return m
	}

	// Nothing sampled yet: no rates, but the counts.
	m := summary()
	for _, k := range []string{"messagesInPerSecond", "bytesOutPerSecond", "produceLatencyP50Ms"} {
		if m[k] != nil {
			t.Fatalf("%s = %v before any sample, want null", k, m[k])
		}
	}
	if num(t, m, "topicsCount") != 0 || num(t, m, "agentsCount") != 1 || num(t, m, "storageBytes") != 0 || num(t, m, "windowSeconds") != 0 {
		t.Fatalf("empty cluster: %v", m)
	}
	if up := num(t, m, "uptimeMs"); up < 60_000 || up > 600_000 {
		t.Fatalf("uptimeMs %d, want about a minute", up)
	}

	a.createTopic("orders", 3)
	a.createTopic("clicks", 2)
	a.must(a.post("/api/v1/consumer-groups", `{"group_id":"billing"}`), http.StatusCreated)
	if err := a.sampler.Sample(); err != nil {
		t.Fatal(err)
	}
	const records = 20
	var batch strings.Builder
	for i := range records {
		if i > 0 {
			batch.WriteString(",")
		}
		fmt.Fprintf(&batch, `{"value":"record-%02d"}`, i)
	}
	a.must(a.post("/api/v1/produce/batch", `{"topic":"orders","partition":1,"records":[`+batch.String()+`]}`), http.StatusOK)
	if got := len(a.consume("topic=orders&partition=1&offset=0&maxRecords=100").Records); got != records {
		t.Fatalf("consumed %d records, want %d", got, records)
	}
	a.clock.add(4 * time.Second)
	if err := a.sampler.Sample(); err != nil {
		t.Fatal(err)
	}

	m = summary()
	rate := func(k string) float64 {
		t.Helper()
		f, err := m[k].(interface{ Float64() (float64, error) }).Float64()
		if err != nil {
			t.Fatalf("%s = %v: %v", k, m[k], err)
		}
		return f
	}
	if got := rate("messagesInPerSecond"); got != records/4.0 {
		t.Fatalf("messagesInPerSecond %v, want %v", got, records/4.0)
	}
	if got := rate("messagesOutPerSecond"); got != records/4.0 {
		t.Fatalf("messagesOutPerSecond %v, want %v", got, records/4.0)
	}
	stored, err := a.b.Store().StoredBytes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// One durable batch: what was appended, read and stored is that batch.
	if got := rate("bytesInPerSecond"); stored <= 0 || got != float64(stored)/4 || rate("bytesOutPerSecond") != got {
		t.Fatalf("bytes in %v/s, out %v/s, stored %d", got, rate("bytesOutPerSecond"), stored)
	}
	if p50, p99 := rate("produceLatencyP50Ms"), rate("produceLatencyP99Ms"); p50 <= 0 || p99 < p50 || p99 > 10_000 {
		t.Fatalf("produce latency p50 %v ms, p99 %v ms", p50, p99)
	}
	if rate("windowSeconds") != 4 {
		t.Fatalf("windowSeconds %v, want 4", m["windowSeconds"])
	}
	want := map[string]int64{"topicsCount": 2, "partitionsCount": 5, "consumerGroupsCount": 1, "agentsCount": 1, "storageBytes": stored}
	for k, v := range want {
		if got := num(t, m, k); got != v {
			t.Fatalf("%s %d, want %d", k, got, v)
		}
	}

	// Past the window with no traffic, the rates fall to 0 and the
	// latencies are unknown.
	for range 6 {
		a.clock.add(2 * time.Second)
		if err := a.sampler.Sample(); err != nil {
			t.Fatal(err)
		}
	}
	m = summary()
	if rate("messagesInPerSecond") != 0 || rate("bytesOutPerSecond") != 0 || m["produceLatencyP99Ms"] != nil || rate("windowSeconds") != 10 {
		t.Fatalf("idle window: %v", m)
	}
}
