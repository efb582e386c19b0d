package rest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
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
	rack    string
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
		clock := &opsClock{now: time.Now()} // the broker's too: heartbeats are recent
		b, err := broker.New(ctx, broker.Config{AgentID: sp.id, Store: store, Log: plog, Logger: logger,
			Addr: sp.id + ".example:9092", GRPCAddr: sp.id + ".example:50051", Rack: sp.rack, Now: clock.Now})
		if err != nil {
			t.Fatalf("new broker %s: %v", sp.id, err)
		}
		sampler := rest.NewSampler(rest.SamplerConfig{Gatherer: reg, Interval: 2 * time.Second, Window: 10 * time.Second,
			Logger: logger, Now: clock.Now})
		srv := httptest.NewServer(rest.New(rest.Config{Broker: b, Logger: logger, Registry: reg, Sampler: sampler,
			Started: time.Now().Add(-time.Minute)}))
		t.Cleanup(srv.Close)
		out = append(out, &opsAgent{env: &env{t: t, b: b, reg: reg, srv: srv}, id: sp.id, rack: sp.rack, sampler: sampler, clock: clock})
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

// jsonKind is the JSON type serde gives a field of the original's models.
type jsonKind int

const (
	kString jsonKind = iota // String
	kI64                    // i64
	kU32                    // u32 (and usize, on the 64-bit builds)
	kU64                    // u64
)

// checkOriginal checks that m has each field of one of the original's
// models with the JSON type the original gives it: a string (never null),
// or an integer (no fraction or exponent) in the type's range.
func checkOriginal(t *testing.T, m map[string]any, fields map[string]jsonKind) {
	t.Helper()
	for k, kind := range fields {
		v, ok := m[k]
		if !ok {
			t.Fatalf("no field %s (the original's) in %v", k, m)
		}
		if kind == kString {
			if _, ok := v.(string); !ok {
				t.Fatalf("%s = %#v, want a string", k, v)
			}
			continue
		}
		n, ok := v.(json.Number)
		if !ok || strings.ContainsAny(n.String(), ".eE") {
			t.Fatalf("%s = %#v, want an integer", k, v)
		}
		i, err := n.Int64()
		if err != nil {
			t.Fatalf("%s = %s: %v", k, n, err)
		}
		if (kind == kU32 || kind == kU64) && i < 0 || kind == kU32 && i > math.MaxUint32 {
			t.Fatalf("%s = %d: out of range", k, i)
		}
	}
}

// The original's Agent (crates/streamhouse-api/src/models.rs).
var originalAgentFields = map[string]jsonKind{"agent_id": kString, "address": kString,
	"availability_zone": kString, "agent_group": kString, "last_heartbeat": kI64, "started_at": kI64,
	"active_leases": kU32}

// originalAgent is the original's Agent as its clients decode it.
type originalAgent struct {
	AgentID          string `json:"agent_id"`
	Address          string `json:"address"`
	AvailabilityZone string `json:"availability_zone"`
	AgentGroup       string `json:"agent_group"`
	LastHeartbeat    int64  `json:"last_heartbeat"`
	StartedAt        int64  `json:"started_at"`
	ActiveLeases     uint32 `json:"active_leases"`
}

// ourAgent is our own fields of an agent.
type ourAgent struct {
	AgentID             string  `json:"agentId"`
	GRPCAddress         *string `json:"grpcAddress"`
	GRPCAddressSnake    *string `json:"grpc_address"`
	Rack                *string `json:"rack"`
	PartitionCount      int     `json:"partitionCount"`
	PartitionCountSnake int     `json:"partition_count"`
	Partitions          []struct {
		Topic     string `json:"topic"`
		Partition int32  `json:"partition"`
	} `json:"partitions"`
	LastHeartbeat string `json:"lastHeartbeat"`
	StartedAt     string `json:"startedAt"`
	Self          bool   `json:"self"`
}

// agentKeys are the fields of an agent of GET /api/v1/agents: the
// original's, then ours.
var agentKeys = []string{"agent_id", "address", "availability_zone", "agent_group", "last_heartbeat",
	"started_at", "active_leases",
	"agentId", "grpcAddress", "grpc_address", "rack", "partitionCount", "partition_count", "partitions",
	"lastHeartbeat", "startedAt", "self"}

// both checks that a field has the same value under both spellings and
// returns it.
func both(t *testing.T, m map[string]any, camel, snake string) any {
	t.Helper()
	if fmt.Sprint(m[camel]) != fmt.Sprint(m[snake]) {
		t.Fatalf("%s = %v but %s = %v", camel, m[camel], snake, m[snake])
	}
	return m[camel]
}

// checkAgent checks one agent of GET /api/v1/agents (or /agents/{id})
// against the agent from wants to be, as seen from the agent from: the
// original's fields with its types, ours, and that they agree. It returns
// the partitions listed, as "topic/partition".
func checkAgent(t *testing.T, m map[string]any, want, from string, rack string) []string {
	t.Helper()
	checkKeys(t, m, agentKeys...)
	checkOriginal(t, m, originalAgentFields)
	body, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	orig, ours := decodeInto[originalAgent](t, body), decodeInto[ourAgent](t, body)
	if orig.AgentID != want || ours.AgentID != want {
		t.Fatalf("agent %s / %s, want %s", orig.AgentID, ours.AgentID, want)
	}
	if orig.Address != want+".example:9092" || ours.GRPCAddress == nil || *ours.GRPCAddress != want+".example:50051" ||
		ours.GRPCAddressSnake == nil || *ours.GRPCAddressSnake != *ours.GRPCAddress {
		t.Fatalf("agent %s addresses %v, %v / %v", want, orig.Address, ours.GRPCAddress, ours.GRPCAddressSnake)
	}
	// The original's availability_zone is a string, "" when unset; our
	// rack is null then.
	if orig.AvailabilityZone != rack || (rack == "") != (ours.Rack == nil) || ours.Rack != nil && *ours.Rack != rack {
		t.Fatalf("agent %s availability_zone %q, rack %v; want %q", want, orig.AvailabilityZone, ours.Rack, rack)
	}
	if orig.AgentGroup != "default" {
		t.Fatalf("agent_group %q, want default", orig.AgentGroup)
	}
	if ours.Self != (want == from) {
		t.Fatalf("from %s: agent %s self = %v", from, want, ours.Self)
	}
	for _, f := range []struct {
		name string
		ms   int64
		at   string
	}{{"last_heartbeat", orig.LastHeartbeat, ours.LastHeartbeat}, {"started_at", orig.StartedAt, ours.StartedAt}} {
		at, err := time.Parse(time.RFC3339, f.at)
		if err != nil || time.Since(at) > time.Minute || time.Since(at) < -time.Minute {
			t.Fatalf("%s %q: not a recent RFC 3339 time (%v)", f.name, f.at, err)
		}
		if !time.UnixMilli(f.ms).Equal(at) {
			t.Fatalf("%s %d ms, but %s", f.name, f.ms, f.at)
		}
	}
	n := len(ours.Partitions)
	if int(orig.ActiveLeases) != n || ours.PartitionCount != n || ours.PartitionCountSnake != n {
		t.Fatalf("agent %s: active_leases %d, partitionCount %d / %d, %d partitions", want, orig.ActiveLeases,
			ours.PartitionCount, ours.PartitionCountSnake, n)
	}
	var parts []string
	for _, p := range ours.Partitions {
		parts = append(parts, fmt.Sprintf("%s/%d", p.Topic, p.Partition))
	}
	return parts
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
		// A bare array, as the original's Vec<Agent>.
		body := from.must(from.get("/api/v1/agents"), http.StatusOK).body
		list := array(t, body)
		if len(list) != 2 {
			t.Fatalf("from %s: %s, want 2 agents", from.id, body)
		}
		if got := decodeInto[[]originalAgent](t, body); len(got) != 2 {
			t.Fatalf("as the original's Vec<Agent>: %+v", got)
		}
		total := 0
		seen := map[string]bool{}
		for i, m := range list {
			want := c[i] // listed by ID
			parts := checkAgent(t, m, want.id, from.id, want.rack)
			if !slices.IsSorted(parts) {
				t.Fatalf("agent %s partitions %v, not in order", want.id, parts)
			}
			for _, key := range parts {
				if leaders[key] != want.id || seen[key] {
					t.Fatalf("agent %s lists %s, led by %s (seen before: %v)", want.id, key, leaders[key], seen[key])
				}
				seen[key] = true
			}
			total += len(parts)

			// GET /api/v1/agents/{id}: the same element.
			one := object(t, from.must(from.get("/api/v1/agents/"+want.id), http.StatusOK).body, agentKeys...)
			if got := checkAgent(t, one, want.id, from.id, want.rack); !slices.Equal(got, parts) {
				t.Fatalf("GET /api/v1/agents/%s partitions %v, the list %v", want.id, got, parts)
			}

			// GET /api/v1/agents/{id}/metrics: the original's AgentMetricsResponse.
			am := object(t, from.must(from.get("/api/v1/agents/"+want.id+"/metrics"), http.StatusOK).body,
				"agentId", "address", "availabilityZone", "partitionCount", "lastHeartbeat", "uptimeMs")
			checkOriginal(t, am, map[string]jsonKind{"agentId": kString, "address": kString, "availabilityZone": kString,
				"partitionCount": kU64, "lastHeartbeat": kI64, "uptimeMs": kI64})
			if am["agentId"] != want.id || am["availabilityZone"] != want.rack || num(t, am, "partitionCount") != int64(len(parts)) ||
				am["address"] != m["address"] || num(t, am, "uptimeMs") > 60_000 {
				t.Fatalf("GET /api/v1/agents/%s/metrics: %v", want.id, am)
			}
		}
		if total != 5 {
			t.Fatalf("the agents lead %d partitions, want 5", total)
		}
		checkError(t, from.get("/api/v1/agents/nope"), http.StatusNotFound, "not_found", `agent "nope"`)
		checkError(t, from.get("/api/v1/agents/nope/metrics"), http.StatusNotFound, "not_found", `agent "nope"`)
	}
}

func TestMetricsSummary(t *testing.T) {
	t.Parallel()
	a := newOpsCluster(t, opsSpec{"solo", ""})[0]
	ctx := context.Background()
	// The original's MetricsSnapshot, then ours (pairs of spellings).
	original := map[string]jsonKind{"topics_count": kU64, "agents_count": kU64, "partitions_count": kU64, "total_messages": kU64}
	ours := []string{"messagesInPerSecond", "messages_in_per_second", "messagesOutPerSecond", "messages_out_per_second",
		"bytesInPerSecond", "bytes_in_per_second", "bytesOutPerSecond", "bytes_out_per_second",
		"produceLatencyP50Ms", "produce_latency_p50_ms", "produceLatencyP99Ms", "produce_latency_p99_ms",
		"windowSeconds", "window_seconds", "storageBytes", "storage_bytes",
		"consumerGroupsCount", "consumer_groups_count", "uptimeMs", "uptime_ms"}
	type snapshot struct { // the original's, as its clients decode it
		TopicsCount     uint64 `json:"topics_count"`
		AgentsCount     uint64 `json:"agents_count"`
		PartitionsCount uint64 `json:"partitions_count"`
		TotalMessages   uint64 `json:"total_messages"`
	}
	var orig snapshot
	summary := func() map[string]any {
		t.Helper()
		body := a.must(a.get("/api/v1/metrics"), http.StatusOK).body
		m := object(t, body, append(slices.Collect(maps.Keys(original)), ours...)...)
		checkOriginal(t, m, original)
		orig = decodeInto[snapshot](t, body)
		for i := 0; i < len(ours); i += 2 {
			both(t, m, ours[i], ours[i+1])
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
	if (orig != snapshot{AgentsCount: 1}) || num(t, m, "storageBytes") != 0 || num(t, m, "windowSeconds") != 0 {
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
	// The cluster's counts are computed at most once per 5 s: within
	// that, the first answer's are served again.
	summary()
	if (orig != snapshot{AgentsCount: 1}) {
		t.Fatalf("within the summary's 5 s: %+v, want the cached counts", orig)
	}
	a.clock.add(time.Second)

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
	if want := (snapshot{TopicsCount: 2, AgentsCount: 1, PartitionsCount: 5, TotalMessages: records}); orig != want {
		t.Fatalf("the original's snapshot %+v, want %+v", orig, want)
	}
	want := map[string]int64{"consumerGroupsCount": 1, "storageBytes": stored}
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
