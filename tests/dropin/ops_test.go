package dropin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/internal/e2e"
)

// Operational endpoints as the original's users call them: GET /live,
// GET /api/v1/agents and GET /api/v1/metrics, against the real binary.

// opsOriginalAgent is the original's Agent (crates/streamhouse-api/src/
// models.rs) as its clients decode GET /api/v1/agents: a bare array of it.
type opsOriginalAgent struct {
	AgentID          string `json:"agent_id"`
	Address          string `json:"address"`
	AvailabilityZone string `json:"availability_zone"`
	AgentGroup       string `json:"agent_group"`
	LastHeartbeat    int64  `json:"last_heartbeat"`
	StartedAt        int64  `json:"started_at"`
	ActiveLeases     uint32 `json:"active_leases"`
}

// opsOriginalAgentTypes are the JSON types of the original's Agent.
var opsOriginalAgentTypes = map[string]string{"agent_id": "string", "address": "string",
	"availability_zone": "string", "agent_group": "string", "last_heartbeat": "integer",
	"started_at": "integer", "active_leases": "unsigned"}

// opsAgent is our fields of an agent.
type opsAgent struct {
	AgentID          string  `json:"agentId"`
	GRPCAddress      *string `json:"grpcAddress"`
	GRPCAddressSnake *string `json:"grpc_address"`
	Rack             *string `json:"rack"`
	PartitionCount   int     `json:"partitionCount"`
	PartitionCountSn int     `json:"partition_count"`
	LastHeartbeat    string  `json:"lastHeartbeat"`
	StartedAt        string  `json:"startedAt"`
	Self             bool    `json:"self"`
	Partitions       []struct {
		Topic     string `json:"topic"`
		Partition int32  `json:"partition"`
	} `json:"partitions"`
}

// opsGet answers GET path's status and raw body.
func opsGet(t *testing.T, p *e2e.Proc, path string) (int, []byte) {
	t.Helper()
	var raw json.RawMessage
	code := p.Call(http.MethodGet, path, nil, &raw)
	return code, raw
}

// opsTypes checks that the JSON object obj has each field with its JSON
// type: "string" (never null), "integer" (no fraction or exponent) or
// "unsigned" (a non-negative integer), as serde writes the original's
// String, i64 and u32/u64.
func opsTypes(t *testing.T, obj []byte, fields map[string]string) {
	t.Helper()
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(obj))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("decode %s: %v", obj, err)
	}
	for k, kind := range fields {
		v, ok := m[k]
		if !ok {
			t.Fatalf("no field %s in %s", k, obj)
		}
		if kind == "string" {
			if _, ok := v.(string); !ok {
				t.Fatalf("%s = %#v, want a string", k, v)
			}
			continue
		}
		n, ok := v.(json.Number)
		i, err := n.Int64()
		if !ok || err != nil || kind == "unsigned" && i < 0 {
			t.Fatalf("%s = %#v, want an %s integer", k, v, kind)
		}
	}
}

// opsAgentsOf decodes GET /api/v1/agents (or a single agent, wrapped by
// the caller in an array) both ways, checking the original's types.
func opsAgentsOf(t *testing.T, body []byte) ([]opsOriginalAgent, []opsAgent) {
	t.Helper()
	var raws []json.RawMessage
	if err := json.Unmarshal(body, &raws); err != nil {
		t.Fatalf("GET /api/v1/agents %s: not an array: %v", body, err)
	}
	for _, r := range raws {
		opsTypes(t, r, opsOriginalAgentTypes)
	}
	var orig []opsOriginalAgent
	var ours []opsAgent
	if err := json.Unmarshal(body, &orig); err != nil {
		t.Fatalf("as the original's Vec<Agent>: %v", err)
	}
	if err := json.Unmarshal(body, &ours); err != nil {
		t.Fatalf("as ours: %v", err)
	}
	return orig, ours
}

// opsCheckAgent checks what does not depend on placement: the original's
// fields agree with ours, the heartbeat is recent.
func opsCheckAgent(t *testing.T, o opsOriginalAgent, a opsAgent) {
	t.Helper()
	if a.AgentID == "" || o.AgentID != a.AgentID || a.PartitionCount != a.PartitionCountSn ||
		int(o.ActiveLeases) != a.PartitionCount || a.PartitionCount != len(a.Partitions) || o.AgentGroup != "default" {
		t.Fatalf("agent %+v / %+v: fields disagree", o, a)
	}
	if a.GRPCAddress == nil || a.GRPCAddressSnake == nil || *a.GRPCAddress != *a.GRPCAddressSnake || !strings.HasPrefix(*a.GRPCAddress, "127.0.0.1:") {
		t.Fatalf("agent %s gRPC address %v / %v", a.AgentID, a.GRPCAddress, a.GRPCAddressSnake)
	}
	if (a.Rack == nil) != (o.AvailabilityZone == "") || a.Rack != nil && *a.Rack != o.AvailabilityZone {
		t.Fatalf("agent %s rack %v, availability_zone %q", a.AgentID, a.Rack, o.AvailabilityZone)
	}
	for _, f := range []struct {
		name string
		ms   int64
		at   string
	}{{"last_heartbeat", o.LastHeartbeat, a.LastHeartbeat}, {"started_at", o.StartedAt, a.StartedAt}} {
		at, err := time.Parse(time.RFC3339, f.at)
		if err != nil || time.Since(at) > time.Minute || time.Since(at) < -time.Minute || !time.UnixMilli(f.ms).Equal(at) {
			t.Fatalf("agent %s %s %d ms, %q: not the same recent time (%v)", a.AgentID, f.name, f.ms, f.at, err)
		}
	}
}

func opsCreateTopic(t *testing.T, p *e2e.Proc, name string, partitions int) {
	t.Helper()
	if code := p.Call(http.MethodPost, "/api/v1/topics", map[string]any{"name": name, "partitions": partitions}, nil); code != http.StatusCreated {
		t.Fatalf("create topic %s: %d", name, code)
	}
}

func TestOpsLive(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := e2e.Start(t, dir, e2e.Local.Env(t, dir))
	defer p.Stop(syscall.SIGTERM)
	var out map[string]any
	if code := p.Call(http.MethodGet, "/live", nil, &out); code != http.StatusOK || out["status"] != "ok" {
		t.Fatalf("GET /live: %d %v", code, out)
	}
	if code := p.Call(http.MethodGet, "/ready", nil, nil); code != http.StatusOK {
		t.Fatalf("GET /ready: %d", code)
	}
}

func TestOpsAgentsSingle(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := e2e.Start(t, dir, append(e2e.Local.Env(t, dir), "STREAMHOUSE_AGENT_ID=ops-solo"))
	defer p.Stop(syscall.SIGTERM)
	opsCreateTopic(t, p, "orders", 3)
	opsCreateTopic(t, p, "clicks", 1)

	code, body := opsGet(t, p, "/api/v1/agents")
	if code != http.StatusOK {
		t.Fatalf("GET /api/v1/agents: %d %s", code, body)
	}
	orig, ours := opsAgentsOf(t, body)
	if len(orig) != 1 || len(ours) != 1 {
		t.Fatalf("agents %s, want one", body)
	}
	o, a := orig[0], ours[0]
	opsCheckAgent(t, o, a)
	if a.AgentID != "ops-solo" || !a.Self || o.Address != p.KafkaAddr || a.Rack != nil || o.AvailabilityZone != "" {
		t.Fatalf("agent %+v / %+v: want ops-solo, self, address %s, no rack", o, a, p.KafkaAddr)
	}
	// GET /api/v1/agents/{id}: the same agent; 404 for another.
	code, one := opsGet(t, p, "/api/v1/agents/ops-solo")
	if code != http.StatusOK {
		t.Fatalf("GET /api/v1/agents/ops-solo: %d %s", code, one)
	}
	orig1, ours1 := opsAgentsOf(t, []byte("["+string(one)+"]"))
	if orig1[0].AgentID != "ops-solo" || orig1[0].ActiveLeases != 4 || len(ours1[0].Partitions) != 4 || !ours1[0].Self {
		t.Fatalf("GET /api/v1/agents/ops-solo: %s", one)
	}
	var e struct{ Error, Message string }
	if code := p.Call(http.MethodGet, "/api/v1/agents/nope", nil, &e); code != http.StatusNotFound || e.Error != "not_found" || !strings.Contains(e.Message, "nope") {
		t.Fatalf("GET /api/v1/agents/nope: %d %+v", code, e)
	}
	// A single agent leads every partition (CreateTopic places them).
	var got []string
	for _, lp := range a.Partitions {
		got = append(got, fmt.Sprintf("%s/%d", lp.Topic, lp.Partition))
	}
	if want := "clicks/0 orders/0 orders/1 orders/2"; strings.Join(got, " ") != want {
		t.Fatalf("partitions led %v, want %s", got, want)
	}
}

func TestOpsAgentsTwoAgents(t *testing.T) {
	t.Parallel()
	// One PostgreSQL database and one bucket for both agents.
	env := e2e.S3Postgres.Env(t, t.TempDir())
	// A lease TTL short enough for placement to share the partitions within
	// the wait below, long enough that a stalled agent on a loaded machine
	// still counts as live.
	env = append(env, "LEASE_TTL_MS=10000")
	dirA, dirB := t.TempDir(), t.TempDir()
	a := e2e.Start(t, dirA, append(env, "STREAMHOUSE_AGENT_ID=ops-a", "STREAMHOUSE_RACK=eu-west-1a"))
	defer a.Stop(syscall.SIGTERM)
	opsCreateTopic(t, a, "orders", 4)
	opsCreateTopic(t, a, "clicks", 2)
	const total = 6
	b := e2e.Start(t, dirB, append(env, "STREAMHOUSE_AGENT_ID=ops-b"))
	defer b.Stop(syscall.SIGTERM)

	// Leadership moves to the new agent over a few placement rounds; wait
	// until every partition has a leader and each agent leads some.
	var lastOrig []opsOriginalAgent
	var last []opsAgent
	deadline := time.Now().Add(120 * time.Second)
	for {
		code, body := opsGet(t, b, "/api/v1/agents")
		if code != http.StatusOK {
			t.Fatalf("GET /api/v1/agents: %d %s", code, body)
		}
		orig, ours := opsAgentsOf(t, body)
		sum := 0
		for _, x := range orig {
			sum += int(x.ActiveLeases)
		}
		if len(orig) == 2 && sum == total && orig[0].ActiveLeases > 0 && orig[1].ActiveLeases > 0 {
			lastOrig, last = orig, ours
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("agents never shared the %d partitions: %s", total, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	seen := map[string]string{}
	for i, x := range last {
		o := lastOrig[i]
		opsCheckAgent(t, o, x)
		want := []string{"ops-a", "ops-b"}[i] // by ID
		if x.AgentID != want || x.Self != (want == "ops-b") {
			t.Fatalf("agent %d: %+v, want %s (self only for ops-b, which answered)", i, x, want)
		}
		wantAddr := []string{a.KafkaAddr, b.KafkaAddr}[i]
		if o.Address != wantAddr {
			t.Fatalf("agent %s address %s, want %s", x.AgentID, o.Address, wantAddr)
		}
		if wantZone := map[string]string{"ops-a": "eu-west-1a"}[want]; o.AvailabilityZone != wantZone {
			t.Fatalf("agent %s availability_zone %q, rack %v; want %q", x.AgentID, o.AvailabilityZone, x.Rack, wantZone)
		}
		for _, lp := range x.Partitions {
			key := fmt.Sprintf("%s/%d", lp.Topic, lp.Partition)
			if other, dup := seen[key]; dup {
				t.Fatalf("%s listed under %s and %s", key, other, x.AgentID)
			}
			seen[key] = x.AgentID
		}
	}
	// The other agent sees the same cluster, itself as self.
	code, body := opsGet(t, a, "/api/v1/agents")
	if code != http.StatusOK {
		t.Fatalf("from ops-a: %d %s", code, body)
	}
	if orig, ours := opsAgentsOf(t, body); len(orig) != 2 || orig[0].AgentID != "ops-a" || !ours[0].Self || ours[1].Self {
		t.Fatalf("from ops-a: %s", body)
	}
	// Each agent, by ID, from either agent.
	for _, from := range []*e2e.Proc{a, b} {
		for _, id := range []string{"ops-a", "ops-b"} {
			code, one := opsGet(t, from, "/api/v1/agents/"+id)
			if code != http.StatusOK {
				t.Fatalf("GET /api/v1/agents/%s: %d %s", id, code, one)
			}
			if orig, ours := opsAgentsOf(t, []byte("["+string(one)+"]")); orig[0].AgentID != id || ours[0].Self != (from.KafkaAddr == orig[0].Address) {
				t.Fatalf("GET /api/v1/agents/%s: %s", id, one)
			}
		}
	}
}

// opsSnapshot is the original's MetricsSnapshot, as its clients decode
// GET /api/v1/metrics.
type opsSnapshot struct {
	TopicsCount     uint64 `json:"topics_count"`
	AgentsCount     uint64 `json:"agents_count"`
	PartitionsCount uint64 `json:"partitions_count"`
	TotalMessages   uint64 `json:"total_messages"`
}

// opsMetrics is our fields of GET /api/v1/metrics, read under both
// spellings.
type opsMetrics struct {
	MessagesIn      *float64 `json:"messagesInPerSecond"`
	MessagesInSnake *float64 `json:"messages_in_per_second"`
	MessagesOut     *float64 `json:"messagesOutPerSecond"`
	BytesIn         *float64 `json:"bytesInPerSecond"`
	BytesOutSnake   *float64 `json:"bytes_out_per_second"`
	P50             *float64 `json:"produceLatencyP50Ms"`
	P99Snake        *float64 `json:"produce_latency_p99_ms"`
	Window          float64  `json:"windowSeconds"`
	WindowSnake     float64  `json:"window_seconds"`
	StorageBytes    int64    `json:"storage_bytes"`
	Groups          int      `json:"consumerGroupsCount"`
	GroupsSnake     int      `json:"consumer_groups_count"`
	UptimeMs        int64    `json:"uptimeMs"`
}

func TestOpsMetricsSummary(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := e2e.Start(t, dir, e2e.Local.Env(t, dir))
	defer p.Stop(syscall.SIGTERM)
	opsCreateTopic(t, p, "orders", 3)
	opsCreateTopic(t, p, "clicks", 2)
	opsCreateTopic(t, p, "audit", 1)
	for _, g := range []string{"billing", "search"} {
		if code := p.Call(http.MethodPost, "/api/v1/consumer-groups", map[string]any{"group_id": g}, nil); code != http.StatusCreated {
			t.Fatalf("create group %s: %d", g, code)
		}
	}
	const records = 40
	recs := make([]map[string]any, records)
	for i := range recs {
		recs[i] = map[string]any{"value": fmt.Sprintf("value-%03d", i)}
	}
	if code := p.Call(http.MethodPost, "/api/v1/produce/batch", map[string]any{"topic": "orders", "partition": 0, "records": recs}, nil); code != http.StatusOK {
		t.Fatalf("produce: %d", code)
	}
	var consumed struct {
		Records []any `json:"records"`
	}
	if code := p.Call(http.MethodGet, "/api/v1/consume?topic=orders&partition=0&offset=0&maxRecords=100", nil, &consumed); code != http.StatusOK || len(consumed.Records) != records {
		t.Fatalf("consume: %d, %d records", code, len(consumed.Records))
	}

	var m opsMetrics
	var body []byte
	deadline := time.Now().Add(30 * time.Second)
	for {
		var code int
		if code, body = opsGet(t, p, "/api/v1/metrics"); code != http.StatusOK {
			t.Fatalf("GET /api/v1/metrics: %d %s", code, body)
		}
		m = opsMetrics{}
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatalf("decode %s: %v", body, err)
		}
		// The sampler read the counters at start (before the traffic) and
		// reads them every 2 s: once a reading follows the traffic, the
		// rate times the window is what came in, exactly.
		if m.MessagesIn != nil && math.Abs(*m.MessagesIn*m.Window-records) < 0.01 && m.MessagesOut != nil && *m.MessagesOut > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no rates after 30 s: %s", body)
		}
		time.Sleep(250 * time.Millisecond)
	}
	// The original's MetricsSnapshot: its fields, its types, our counts.
	opsTypes(t, body, map[string]string{"topics_count": "unsigned", "agents_count": "unsigned",
		"partitions_count": "unsigned", "total_messages": "unsigned"})
	var snap opsSnapshot
	if err := json.Unmarshal(body, &snap); err != nil {
		t.Fatalf("as the original's MetricsSnapshot: %v", err)
	}
	if want := (opsSnapshot{TopicsCount: 3, AgentsCount: 1, PartitionsCount: 6, TotalMessages: records}); snap != want {
		t.Fatalf("snapshot %+v, want %+v", snap, want)
	}
	if m.Groups != 2 || m.GroupsSnake != 2 {
		t.Fatalf("groups %d / %d, want 2", m.Groups, m.GroupsSnake)
	}
	if m.StorageBytes <= 0 || m.UptimeMs <= 0 || m.Window <= 0 || m.Window != m.WindowSnake || m.Window > 31 {
		t.Fatalf("storage %d, uptime %d ms, window %v/%v s", m.StorageBytes, m.UptimeMs, m.Window, m.WindowSnake)
	}
	if *m.MessagesIn != *m.MessagesInSnake || m.BytesIn == nil || *m.BytesIn <= 0 || m.BytesOutSnake == nil || *m.BytesOutSnake <= 0 {
		t.Fatalf("rates %+v", m)
	}
	if m.P50 == nil || m.P99Snake == nil || *m.P50 <= 0 || *m.P99Snake < *m.P50 {
		t.Fatalf("produce latency p50 %v, p99 %v", m.P50, m.P99Snake)
	}
}
