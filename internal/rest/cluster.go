package rest

import (
	"math"
	"net/http"
	"time"

	"github.com/streamhouse/streamhouse/internal/broker"
)

// Cluster endpoints: GET /live, GET /api/v1/agents and GET /api/v1/metrics.
// Multiword fields are given twice, in the original's camelCase and in our
// snake_case, so clients written for either read them; where the original
// had a snake_case name (its agent and metrics models), that name is one of
// the two.

// ledPartitionJSON is a partition an agent leads.
type ledPartitionJSON struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
}

// agentJSON is one agent of GET /api/v1/agents. rack (and the original's
// name for it, availability_zone) is null when STREAMHOUSE_RACK is unset;
// grpc_address is null when unknown (an agent of an older version).
// active_leases is the original's name of partition_count.
type agentJSON struct {
	AgentID             string             `json:"agentId"`
	AgentIDSnake        string             `json:"agent_id"`
	Address             string             `json:"address"`
	GRPCAddress         *string            `json:"grpcAddress"`
	GRPCAddressSnake    *string            `json:"grpc_address"`
	Rack                *string            `json:"rack"`
	AvailabilityZone    *string            `json:"availabilityZone"`
	AvailabilityZoneSn  *string            `json:"availability_zone"`
	PartitionCount      int                `json:"partitionCount"`
	PartitionCountSnake int                `json:"partition_count"`
	ActiveLeases        int                `json:"activeLeases"`
	ActiveLeasesSnake   int                `json:"active_leases"`
	Partitions          []ledPartitionJSON `json:"partitions"`
	LastHeartbeat       string             `json:"lastHeartbeat"`
	LastHeartbeatSnake  string             `json:"last_heartbeat"`
	StartedAt           string             `json:"startedAt"`
	StartedAtSnake      string             `json:"started_at"`
	Self                bool               `json:"self"`
}

// agentsJSON is GET /api/v1/agents.
type agentsJSON struct {
	Agents []agentJSON `json:"agents"`
	Count  int         `json:"count"`
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

// agents lists the live agents with the partitions each leads.
func (s *server) agents(w http.ResponseWriter, r *http.Request) error {
	loads, err := s.b.ClusterAgents(r.Context())
	if err != nil {
		return err
	}
	self := s.b.AgentID()
	out := agentsJSON{Agents: make([]agentJSON, 0, len(loads)), Count: len(loads)}
	for _, a := range loads {
		parts := make([]ledPartitionJSON, 0, len(a.Led))
		for _, p := range a.Led {
			parts = append(parts, ledPartitionJSON{Topic: p.Topic, Partition: p.Partition})
		}
		grpc, rack := optional(a.GRPCAddr), optional(a.Rack)
		n := len(parts)
		hb, started := rfc3339(a.HeartbeatAt), rfc3339(a.StartedAt)
		out.Agents = append(out.Agents, agentJSON{
			AgentID: a.ID, AgentIDSnake: a.ID,
			Address:     a.Addr,
			GRPCAddress: grpc, GRPCAddressSnake: grpc,
			Rack: rack, AvailabilityZone: rack, AvailabilityZoneSn: rack,
			PartitionCount: n, PartitionCountSnake: n, ActiveLeases: n, ActiveLeasesSnake: n,
			Partitions:    parts,
			LastHeartbeat: hb, LastHeartbeatSnake: hb,
			StartedAt: started, StartedAtSnake: started,
			Self: a.ID == self,
		})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// metricsJSON is GET /api/v1/metrics. Rates and latencies are null until
// the sampler has two samples (and the latencies while nothing was
// produced in the window); window_seconds is the time the rates span.
// topics_count, partitions_count and agents_count are the original's names.
type metricsJSON struct {
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
	TopicsCount               int      `json:"topicsCount"`
	TopicsCountSnake          int      `json:"topics_count"`
	PartitionsCount           int      `json:"partitionsCount"`
	PartitionsCountSnake      int      `json:"partitions_count"`
	ConsumerGroupsCount       int      `json:"consumerGroupsCount"`
	ConsumerGroupsCountSnake  int      `json:"consumer_groups_count"`
	AgentsCount               int      `json:"agentsCount"`
	AgentsCountSnake          int      `json:"agents_count"`
	UptimeMs                  int64    `json:"uptimeMs"`
	UptimeMsSnake             int64    `json:"uptime_ms"`
}

// metricsSummary answers the cluster's counts (four metadata queries) and
// this agent's rates from the sampler (no I/O).
func (s *server) metricsSummary(w http.ResponseWriter, r *http.Request) error {
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
		StorageBytes: sum.StoredBytes, StorageBytesSnake: sum.StoredBytes,
		TopicsCount: sum.Topics, TopicsCountSnake: sum.Topics,
		PartitionsCount: sum.Partitions, PartitionsCountSnake: sum.Partitions,
		ConsumerGroupsCount: sum.Groups, ConsumerGroupsCountSnake: sum.Groups,
		AgentsCount: sum.Agents, AgentsCountSnake: sum.Agents,
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
