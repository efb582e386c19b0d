package dropin

import (
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

// opsAgent is one agent of GET /api/v1/agents, read under both spellings.
type opsAgent struct {
	AgentID          string  `json:"agentId"`
	AgentIDSnake     string  `json:"agent_id"`
	Address          string  `json:"address"`
	GRPCAddress      *string `json:"grpcAddress"`
	GRPCAddressSnake *string `json:"grpc_address"`
	Rack             *string `json:"rack"`
	AvailabilityZone *string `json:"availability_zone"`
	PartitionCount   int     `json:"partitionCount"`
	PartitionCountSn int     `json:"partition_count"`
	ActiveLeases     int     `json:"active_leases"`
	LastHeartbeat    string  `json:"lastHeartbeat"`
	LastHeartbeatSn  string  `json:"last_heartbeat"`
	Self             bool    `json:"self"`
	Partitions       []struct {
		Topic     string `json:"topic"`
		Partition int32  `json:"partition"`
	} `json:"partitions"`
}

type opsAgents struct {
	Agents []opsAgent `json:"agents"`
	Count  int        `json:"count"`
}

// opsCheckAgent checks what does not depend on placement: both spellings
// agree, the heartbeat is a recent RFC 3339 time, the counts match the list.
func opsCheckAgent(t *testing.T, a opsAgent) {
	t.Helper()
	if a.AgentID == "" || a.AgentID != a.AgentIDSnake || a.PartitionCount != a.PartitionCountSn ||
		a.PartitionCount != a.ActiveLeases || a.PartitionCount != len(a.Partitions) || a.LastHeartbeat != a.LastHeartbeatSn {
		t.Fatalf("agent %+v: spellings or counts disagree", a)
	}
	if a.GRPCAddress == nil || a.GRPCAddressSnake == nil || *a.GRPCAddress != *a.GRPCAddressSnake || !strings.HasPrefix(*a.GRPCAddress, "127.0.0.1:") {
		t.Fatalf("agent %s gRPC address %v / %v", a.AgentID, a.GRPCAddress, a.GRPCAddressSnake)
	}
	at, err := time.Parse(time.RFC3339, a.LastHeartbeat)
	if err != nil || time.Since(at) > time.Minute || time.Since(at) < -time.Minute {
		t.Fatalf("agent %s last heartbeat %q: not a recent RFC 3339 time (%v)", a.AgentID, a.LastHeartbeat, err)
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

	var out opsAgents
	if code := p.Call(http.MethodGet, "/api/v1/agents", nil, &out); code != http.StatusOK {
		t.Fatalf("GET /api/v1/agents: %d", code)
	}
	if out.Count != 1 || len(out.Agents) != 1 {
		t.Fatalf("agents %+v, want one", out)
	}
	a := out.Agents[0]
	opsCheckAgent(t, a)
	if a.AgentID != "ops-solo" || !a.Self || a.Address != p.KafkaAddr || a.Rack != nil || a.AvailabilityZone != nil {
		t.Fatalf("agent %+v: want ops-solo, self, address %s, no rack", a, p.KafkaAddr)
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
	env = append(env, "LEASE_TTL_MS=3000")
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
	var last opsAgents
	deadline := time.Now().Add(60 * time.Second)
	for {
		var out opsAgents
		if code := b.Call(http.MethodGet, "/api/v1/agents", nil, &out); code != http.StatusOK {
			t.Fatalf("GET /api/v1/agents: %d", code)
		}
		sum := 0
		for _, x := range out.Agents {
			sum += x.PartitionCount
		}
		if out.Count == 2 && len(out.Agents) == 2 && sum == total && out.Agents[0].PartitionCount > 0 && out.Agents[1].PartitionCount > 0 {
			last = out
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("agents never shared the %d partitions: %+v", total, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	seen := map[string]string{}
	for i, x := range last.Agents {
		opsCheckAgent(t, x)
		want := []string{"ops-a", "ops-b"}[i] // by ID
		if x.AgentID != want || x.Self != (want == "ops-b") {
			t.Fatalf("agent %d: %+v, want %s (self only for ops-b, which answered)", i, x, want)
		}
		wantAddr := []string{a.KafkaAddr, b.KafkaAddr}[i]
		if x.Address != wantAddr {
			t.Fatalf("agent %s address %s, want %s", x.AgentID, x.Address, wantAddr)
		}
		if (want == "ops-a") != (x.Rack != nil && *x.Rack == "eu-west-1a" && x.AvailabilityZone != nil && *x.AvailabilityZone == "eu-west-1a") {
			t.Fatalf("agent %s rack %v / %v", x.AgentID, x.Rack, x.AvailabilityZone)
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
	var fromA opsAgents
	if code := a.Call(http.MethodGet, "/api/v1/agents", nil, &fromA); code != http.StatusOK || fromA.Count != 2 ||
		fromA.Agents[0].AgentID != "ops-a" || !fromA.Agents[0].Self || fromA.Agents[1].Self {
		t.Fatalf("from ops-a: %d %+v", code, fromA)
	}
}

// opsMetrics is GET /api/v1/metrics, read under both spellings.
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
	Topics          int      `json:"topicsCount"`
	TopicsSnake     int      `json:"topics_count"`
	Partitions      int      `json:"partitions_count"`
	PartitionsCamel int      `json:"partitionsCount"`
	Groups          int      `json:"consumerGroupsCount"`
	GroupsSnake     int      `json:"consumer_groups_count"`
	Agents          int      `json:"agents_count"`
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
	deadline := time.Now().Add(30 * time.Second)
	for {
		if code := p.Call(http.MethodGet, "/api/v1/metrics", nil, &m); code != http.StatusOK {
			t.Fatalf("GET /api/v1/metrics: %d", code)
		}
		// The sampler read the counters at start (before the traffic) and
		// reads them every 2 s: once a reading follows the traffic, the
		// rate times the window is what came in, exactly.
		if m.MessagesIn != nil && math.Abs(*m.MessagesIn*m.Window-records) < 0.01 && m.MessagesOut != nil && *m.MessagesOut > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no rates after 30 s: %+v", m)
		}
		time.Sleep(250 * time.Millisecond)
	}
	if m.Topics != 3 || m.TopicsSnake != 3 || m.Partitions != 6 || m.PartitionsCamel != 6 || m.Groups != 2 || m.GroupsSnake != 2 || m.Agents != 1 {
		t.Fatalf("counts %+v, want 3 topics, 6 partitions, 2 groups, 1 agent", m)
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
