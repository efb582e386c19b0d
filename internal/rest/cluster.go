package rest

import (
	"math"
	"net/http"
	"time"

	"github.com/streamhouse/streamhouse/internal/acl"
	"github.com/streamhouse/streamhouse/internal/authz"
	"github.com/streamhouse/streamhouse/internal/broker"
)

// Cluster endpoints: GET /live, GET /api/v1/agents[/{id}[/metrics]] and
// GET /api/v1/metrics. Each answer has the original's fields under the
// original's names and JSON types (its Agent, AgentMetricsResponse and
// MetricsSnapshot models), so its clients parse it unchanged; our own
// fields follow, multiword ones in camelCase and snake_case.

// defaultAgentGroup is agent_group: we have no agent groups.
const defaultAgentGroup = "default"

// ledPartitionJSON is a partition an agent leads.
type ledPartitionJSON struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
}

// agentJSON is one agent of GET /api/v1/agents and GET /api/v1/agents/{id}.
type agentJSON struct {
	// The original's Agent: availability_zone is "" when STREAMHOUSE_RACK
	// is unset, the times are milliseconds since the epoch, active_leases
	// is the number of partitions led.
	AgentIDSnake     string `json:"agent_id"`
	Address          string `json:"address"` // Kafka host:port
	AvailabilityZone string `json:"availability_zone"`
	AgentGroup       string `json:"agent_group"`
	LastHeartbeatMs  int64  `json:"last_heartbeat"`
	StartedAtMs      int64  `json:"started_at"`
	ActiveLeases     int    `json:"active_leases"`

	// Ours: rack is null when unset, grpcAddress when unknown (an agent
	// of an older version); the times are RFC 3339; self is the agent
	// that answered.
	AgentID             string             `json:"agentId"`
	GRPCAddress         *string            `json:"grpcAddress"`
	GRPCAddressSnake    *string            `json:"grpc_address"`
	Rack                *string            `json:"rack"`
	PartitionCount      int                `json:"partitionCount"`
	PartitionCountSnake int                `json:"partition_count"`
	Partitions          []ledPartitionJSON `json:"partitions"`
	LastHeartbeat       string             `json:"lastHeartbeat"`
	StartedAt           string             `json:"startedAt"`
	Self                bool               `json:"self"`
}

// agentMetricsJSON is GET /api/v1/agents/{id}/metrics: the original's
// AgentMetricsResponse (camelCase; lastHeartbeat in milliseconds since the
// epoch, availabilityZone "" when unset).
type agentMetricsJSON struct {
	AgentID          string `json:"agentId"`
	Address          string `json:"address"`
	AvailabilityZone string `json:"availabilityZone"`
	PartitionCount   int    `json:"partitionCount"`
	LastHeartbeat    int64  `json:"lastHeartbeat"`
	UptimeMs         int64  `json:"uptimeMs"`
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func rfc3339(t time.Time) string { return t.UTC().Format(createdAtLayout) }

// liveness answers 200 while the process serves HTTP, checking nothing else
// (a liveness probe: restart the process when it fails). /ready is the one
// that checks the stores.
func (s *server) liveness(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func newAgentJSON(a broker.AgentLoad, self string) agentJSON {
	parts := make([]ledPartitionJSON, 0, len(a.Led))
	for _, p := range a.Led {
		parts = append(parts, ledPartitionJSON{Topic: p.Topic, Partition: p.Partition})
	}
	grpc, n := optional(a.GRPCAddr), len(parts)
	return agentJSON{
		AgentIDSnake:     a.ID,
		Address:          a.Addr,
		AvailabilityZone: a.Rack,
		AgentGroup:       defaultAgentGroup,
		LastHeartbeatMs:  a.HeartbeatAt.UnixMilli(),
		StartedAtMs:      a.StartedAt.UnixMilli(),
		ActiveLeases:     n,

		AgentID:     a.ID,
		GRPCAddress: grpc, GRPCAddressSnake: grpc,
		Rack:           optional(a.Rack),
		PartitionCount: n, PartitionCountSnake: n,
		Partitions:    parts,
		LastHeartbeat: rfc3339(a.HeartbeatAt),
		StartedAt:     rfc3339(a.StartedAt),
		Self:          a.ID == self,
	}
}

// agents answers the live agents, by ID, with the partitions each leads:
// a bare array, as the original's.
func (s *server) agents(w http.ResponseWriter, r *http.Request) error {
	if err := s.authorize(r, authz.Need(acl.OpDescribe, acl.Cluster())); err != nil {
		return err
	}
	loads, err := s.b.ClusterAgents(r.Context())
	if err != nil {
		return err
	}
	self := s.b.AgentID()
	out := make([]agentJSON, 0, len(loads))
	for _, a := range loads {
		out = append(out, newAgentJSON(a, self))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// liveAgent returns the live agent named by the path's {id}; 404 if there
// is none.
func (s *server) liveAgent(r *http.Request) (broker.AgentLoad, error) {
	if err := s.authorize(r, authz.Need(acl.OpDescribe, acl.Cluster())); err != nil {
		return broker.AgentLoad{}, err
	}
	id := r.PathValue("id")
	loads, err := s.b.ClusterAgents(r.Context())
	if err != nil {
		return broker.AgentLoad{}, err
	}
	for _, a := range loads {
		if a.ID == id {
			return a, nil
		}
	}
	return broker.AgentLoad{}, notFound("agent %q not found (or not live)", id)
}

// agent answers one live agent, as an element of agents.
func (s *server) agent(w http.ResponseWriter, r *http.Request) error {
	a, err := s.liveAgent(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, newAgentJSON(a, s.b.AgentID()))
	return nil
}

// agentMetrics answers the original's per-agent summary.
func (s *server) agentMetrics(w http.ResponseWriter, r *http.Request) error {
	a, err := s.liveAgent(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, agentMetricsJSON{
		AgentID:          a.ID,
		Address:          a.Addr,
		AvailabilityZone: a.Rack,
		PartitionCount:   len(a.Led),
		LastHeartbeat:    a.HeartbeatAt.UnixMilli(),
		UptimeMs:         max(time.Since(a.StartedAt).Milliseconds(), 0),
	})
	return nil
}

// metricsJSON is GET /api/v1/metrics: the original's MetricsSnapshot
// (topics_count, agents_count, partitions_count, total_messages: the
// cluster's user topics, live agents, their partitions and the sum of their
// high watermarks), then ours. Rates and latencies are null until the
// sampler has two samples (and the latencies while nothing was produced in
// the window); window_seconds is the time the rates span.
type metricsJSON struct {
	TopicsCount     int   `json:"topics_count"`
	AgentsCount     int   `json:"agents_count"`
	PartitionsCount int   `json:"partitions_count"`
	TotalMessages   int64 `json:"total_messages"`

	MessagesInPerSecond       *float64 `json:"messagesInPerSecond"`
	MessagesInPerSecondSnake  *float64 `json:"messages_in_per_second"`
	MessagesOutPerSecond      *float64 `json:"messagesOutPerSecond"`
	MessagesOutPerSecondSnake *float64 `json:"messages_out_per_second"`
	BytesInPerSecond          *float64 `json:"bytesInPerSecond"`
	BytesInPerSecondSnake     *float64 `json:"bytes_in_per_second"`
	BytesOutPerSecond         *float64 `json:"bytesOutPerSecond"`
	BytesOutPerSecondSnake    *float64 `json:"bytes_out_per_second"`
	ProduceLatencyP50Ms       *float64 `json:"produceLatencyP50Ms"`
	ProduceLatencyP50MsSnake  *float64 `json:"produce_latency_p50_ms"`
	ProduceLatencyP99Ms       *float64 `json:"produceLatencyP99Ms"`
	ProduceLatencyP99MsSnake  *float64 `json:"produce_latency_p99_ms"`
	WindowSeconds             float64  `json:"windowSeconds"`
	WindowSecondsSnake        float64  `json:"window_seconds"`
	StorageBytes              int64    `json:"storageBytes"`
	StorageBytesSnake         int64    `json:"storage_bytes"`
	ConsumerGroupsCount       int      `json:"consumerGroupsCount"`
	ConsumerGroupsCountSnake  int      `json:"consumer_groups_count"`
	UptimeMs                  int64    `json:"uptimeMs"`
	UptimeMsSnake             int64    `json:"uptime_ms"`
}

// metricsSummary answers the cluster's counts (five metadata queries) and
// this agent's rates from the sampler (no I/O).
func (s *server) metricsSummary(w http.ResponseWriter, r *http.Request) error {
	if err := s.authorize(r, authz.Need(acl.OpDescribe, acl.Cluster())); err != nil {
		return err
	}
	sum, err := s.b.Summary(r.Context())
	if err != nil {
		return err
	}
	out := summaryJSON(sum, time.Since(s.started))
	if s.sampler != nil {
		if rt, ok := s.sampler.rates(); ok {
			setRates(&out, rt)
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func summaryJSON(sum broker.ClusterSummary, uptime time.Duration) metricsJSON {
	up := uptime.Milliseconds()
	return metricsJSON{
		TopicsCount:     sum.Topics,
		AgentsCount:     sum.Agents,
		PartitionsCount: sum.Partitions,
		TotalMessages:   sum.Messages,

		StorageBytes: sum.StoredBytes, StorageBytesSnake: sum.StoredBytes,
		ConsumerGroupsCount: sum.Groups, ConsumerGroupsCountSnake: sum.Groups,
		UptimeMs: up, UptimeMsSnake: up,
	}
}

func setRates(out *metricsJSON, rt rates) {
	num := func(v float64) *float64 {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil
		}
		return &v
	}
	ms := func(sec float64) *float64 { return num(sec * 1000) }
	out.MessagesInPerSecond, out.MessagesInPerSecondSnake = num(rt.inRecords), num(rt.inRecords)
	out.MessagesOutPerSecond, out.MessagesOutPerSecondSnake = num(rt.outRecords), num(rt.outRecords)
	out.BytesInPerSecond, out.BytesInPerSecondSnake = num(rt.inBytes), num(rt.inBytes)
	out.BytesOutPerSecond, out.BytesOutPerSecondSnake = num(rt.outBytes), num(rt.outBytes)
	out.ProduceLatencyP50Ms, out.ProduceLatencyP50MsSnake = ms(rt.p50), ms(rt.p50)
	out.ProduceLatencyP99Ms, out.ProduceLatencyP99MsSnake = ms(rt.p99), ms(rt.p99)
	out.WindowSeconds = rt.span.Seconds()
	out.WindowSecondsSnake = out.WindowSeconds
}
