package broker

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"

	"github.com/streamhouse/streamhouse/internal/metadata"
)

// The broker's Prometheus series. Two kinds:
//
//   - traffic by topic, counted as it happens:
//     streamhouse_topic_bytes_in_total{topic} (record batch bytes appended
//     on this agent, the leader; forwarded produces count at the leader)
//     and streamhouse_topic_bytes_out_total{topic} (record batch bytes
//     read for Kafka fetches and REST/gRPC consumes on this agent). With
//     topic labels off (METRICS_TOPIC_LABELS=false) they have no label.
//   - the cluster as the metadata store says, read when scraped at most
//     once per clusterMetricsTTL: live agents, user partitions, those
//     without a live leader, those this agent leads, and the lag of every
//     consumer group this agent coordinates, per partition it committed
//     (streamhouse_consumer_group_lag{group,topic,partition}; with topic
//     labels off, one series per group: the sum). A refresh, failed or
//     not, is tried at most once per clusterMetricsTTL;
//     streamhouse_cluster_metrics_age_seconds says how old the exported
//     values are, and past clusterMetricsStaleAfter they are not exported.
//
// No label carries an offset, a key or a value. The series count is
// bounded by the topics (traffic), the groups this agent coordinates times
// the partitions they committed (lag), and is constant otherwise; deleted
// topics' and groups' series are dropped at the next refresh.
type brokerMetrics struct {
	topicLabels bool
	bytesIn     *prometheus.CounterVec
	bytesOut    *prometheus.CounterVec
	// in and out are the label-less counters when topic labels are off.
	in, out prometheus.Counter
	// seen holds the topics that have traffic series (string -> struct{}),
	// so that those of deleted topics can be dropped.
	seen sync.Map

	cluster *clusterCollector
}

// clusterMetricsTTL is how long a cluster snapshot is served: its queries
// (agents, topics, partitions, groups, and the offsets of each group this
// agent coordinates) run at most this often, however often it is scraped,
// and whether they succeed or fail.
const clusterMetricsTTL = 10 * time.Second

// clusterMetricsTimeout bounds one refresh; a scrape that meets a failed
// or slow refresh gets the last snapshot (and the failure is counted).
// A failed refresh is not retried before clusterMetricsTTL has passed
// either: scrapes during a store outage do not each rerun the queries.
const clusterMetricsTimeout = 5 * time.Second

// clusterMetricsStaleAfter is the age past which the last snapshot is no
// longer exported: the cluster series vanish (and
// streamhouse_cluster_metrics_age_seconds, always exported, keeps growing)
// rather than repeat values that may be long false, such as zero
// partitions without a leader during a store outage.
const clusterMetricsStaleAfter = 6 * clusterMetricsTTL

func newBrokerMetrics(b *Broker, reg prometheus.Registerer, topicLabels bool) *brokerMetrics {
	m := &brokerMetrics{topicLabels: topicLabels}
	inOpts := prometheus.CounterOpts{Name: "streamhouse_topic_bytes_in_total",
		Help: "Record batch bytes appended on this agent (the partition's leader), by topic unless METRICS_TOPIC_LABELS=false."}
	outOpts := prometheus.CounterOpts{Name: "streamhouse_topic_bytes_out_total",
		Help: "Record batch bytes read by Kafka fetches and REST/gRPC consumes on this agent, by topic unless METRICS_TOPIC_LABELS=false."}
	var cs []prometheus.Collector
	if topicLabels {
		m.bytesIn = prometheus.NewCounterVec(inOpts, []string{"topic"})
		m.bytesOut = prometheus.NewCounterVec(outOpts, []string{"topic"})
		cs = append(cs, m.bytesIn, m.bytesOut)
	} else {
		m.in = prometheus.NewCounter(inOpts)
		m.out = prometheus.NewCounter(outOpts)
		cs = append(cs, m.in, m.out)
	}
	m.cluster = newClusterCollector(b, topicLabels)
	cs = append(cs, m.cluster, m.cluster.failures)
	if reg != nil {
		for _, c := range cs {
			reg.MustRegister(c)
		}
	}
	return m
}

// addIn counts n bytes appended to topic.
func (m *brokerMetrics) addIn(topic string, n int) {
	if m == nil || n <= 0 {
		return
	}
	if m.topicLabels {
		m.note(topic)
		m.bytesIn.WithLabelValues(topic).Add(float64(n))
	} else {
		m.in.Add(float64(n))
	}
}

// note remembers that topic has traffic series.
func (m *brokerMetrics) note(topic string) {
	if _, ok := m.seen.Load(topic); !ok {
		m.seen.Store(topic, struct{}{})
	}
}

// addOut counts n bytes read from topic.
func (m *brokerMetrics) addOut(topic string, n int) {
	if m == nil || n <= 0 {
		return
	}
	if m.topicLabels {
		m.note(topic)
		m.bytesOut.WithLabelValues(topic).Add(float64(n))
	} else {
		m.out.Add(float64(n))
	}
}

// forgetTopics drops the traffic series of topics that no longer exist.
func (m *brokerMetrics) forgetTopics(exists map[string]bool) {
	if m == nil || !m.topicLabels {
		return
	}
	m.seen.Range(func(k, _ any) bool {
		if t := k.(string); !exists[t] {
			m.seen.Delete(t)
			m.bytesIn.DeleteLabelValues(t)
			m.bytesOut.DeleteLabelValues(t)
		}
		return true
	})
}

// clusterSnapshot is what the cluster collector exports.
type clusterSnapshot struct {
	agentsAlive       int
	partitions        int
	withoutLeader     int
	ledHere           int
	groupsCoordinated int
	lags              []groupLagRow
}

type groupLagRow struct {
	group, topic string
	partition    int32
	lag          int64
}

// clusterCollector exports the cluster snapshot, refreshed on scrape at
// most once per clusterMetricsTTL.
type clusterCollector struct {
	b           *Broker
	topicLabels bool
	flight      singleflight.Group
	failures    prometheus.Counter

	agentsDesc, partsDesc, leaderlessDesc, ledDesc, groupsDesc, lagDesc *prometheus.Desc

	ageDesc *prometheus.Desc

	mu   sync.Mutex
	snap clusterSnapshot
	at   time.Time // of snap; zero: none yet
	// tried is when the last refresh started (success or not); born when
	// the collector was made, the age's origin before a first snapshot.
	tried, born time.Time
}

func newClusterCollector(b *Broker, topicLabels bool) *clusterCollector {
	lagLabels := []string{"group", "topic", "partition"}
	if !topicLabels {
		lagLabels = []string{"group"}
	}
	return &clusterCollector{
		b: b, topicLabels: topicLabels, born: b.now(),
		ageDesc: prometheus.NewDesc("streamhouse_cluster_metrics_age_seconds",
			"Age of the exported cluster series (agents, partitions, group lag): time since the last successful refresh (since start before the first). Past 60s the cluster series are no longer exported.", nil, nil),
		failures: prometheus.NewCounter(prometheus.CounterOpts{Name: "streamhouse_cluster_metrics_refresh_failures_total",
			Help: "Refreshes of the cluster series (agents, partitions, group lag) that failed; the last snapshot is exported meanwhile, until it is 60s old."}),
		agentsDesc: prometheus.NewDesc("streamhouse_cluster_agents_alive",
			"Live agents (heartbeat within LEASE_TTL_MS) as the metadata store says, seen from this agent.", nil, nil),
		partsDesc: prometheus.NewDesc("streamhouse_cluster_partitions",
			"Partitions of user topics in the cluster.", nil, nil),
		leaderlessDesc: prometheus.NewDesc("streamhouse_cluster_partitions_without_leader",
			"Partitions of user topics with no live leader: no lease, an expired lease, or a lease held by an agent that is not live.", nil, nil),
		ledDesc: prometheus.NewDesc("streamhouse_partitions_led",
			"Partitions of user topics this agent leads under a live lease, as the metadata store says.", nil, nil),
		groupsDesc: prometheus.NewDesc("streamhouse_consumer_groups_coordinated",
			"Consumer groups whose coordinator slot this agent holds (the groups whose lag it exports).", nil, nil),
		lagDesc: prometheus.NewDesc("streamhouse_consumer_group_lag",
			"Records between a consumer group's committed offset and the partition's high watermark, for the groups this agent coordinates; by group, topic and partition (by group only, summed, with METRICS_TOPIC_LABELS=false).", lagLabels, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *clusterCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.ageDesc, c.agentsDesc, c.partsDesc, c.leaderlessDesc, c.ledDesc, c.groupsDesc, c.lagDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *clusterCollector) Collect(ch chan<- prometheus.Metric) {
	s, age, fresh := c.snapshot()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(c.ageDesc, age.Seconds())
	if !fresh {
		return
	}
	gauge(c.agentsDesc, float64(s.agentsAlive))
	gauge(c.partsDesc, float64(s.partitions))
	gauge(c.leaderlessDesc, float64(s.withoutLeader))
	gauge(c.ledDesc, float64(s.ledHere))
	gauge(c.groupsDesc, float64(s.groupsCoordinated))
	if c.topicLabels {
		for _, r := range s.lags {
			gauge(c.lagDesc, float64(r.lag), r.group, r.topic, strconv.Itoa(int(r.partition)))
		}
		return
	}
	sums := map[string]int64{}
	var order []string
	for _, r := range s.lags {
		if _, ok := sums[r.group]; !ok {
			order = append(order, r.group)
		}
		sums[r.group] += r.lag
	}
	for _, g := range order {
		gauge(c.lagDesc, float64(sums[g]), g)
	}
}

// snapshot returns the last snapshot, refreshed first when it is
// clusterMetricsTTL old and no refresh was tried within clusterMetricsTTL;
// its age; and whether it is fresh enough to export (younger than
// clusterMetricsStaleAfter).
func (c *clusterCollector) snapshot() (clusterSnapshot, time.Duration, bool) {
	c.mu.Lock()
	now := c.b.now()
	due := now.Sub(c.tried) >= clusterMetricsTTL && (c.at.IsZero() || now.Sub(c.at) >= clusterMetricsTTL)
	c.mu.Unlock()
	if due {
		_, _, _ = c.flight.Do("refresh", func() (any, error) {
			c.mu.Lock()
			c.tried = c.b.now()
			c.mu.Unlock()
			ctx, cancel := context.WithTimeout(context.Background(), clusterMetricsTimeout)
			defer cancel()
			s, topics, err := c.b.clusterSnapshot(ctx)
			if err != nil {
				c.failures.Inc()
				c.b.log.Warn("refresh cluster metrics", "err", err)
				return nil, err
			}
			c.mu.Lock()
			c.snap, c.at = s, c.b.now()
			c.mu.Unlock()
			c.b.metrics.forgetTopics(topics)
			return nil, nil
		})
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	since := c.at
	if since.IsZero() {
		since = c.born
	}
	age := max(c.b.now().Sub(since), 0)
	return c.snap, age, !c.at.IsZero() && age < clusterMetricsStaleAfter
}

// clusterSnapshot reads the cluster's state: the live agents, the user
// topics and every partition (three queries), the groups (one) and the
// offsets of the groups this agent coordinates (one per 500). It also returns
// the user topics' names.
func (b *Broker) clusterSnapshot(ctx context.Context) (clusterSnapshot, map[string]bool, error) {
	var s clusterSnapshot
	agents, err := b.Agents(ctx)
	if err != nil {
		return s, nil, err
	}
	live := make(map[string]bool, len(agents))
	for _, a := range agents {
		live[a.ID] = true
	}
	s.agentsAlive = len(agents)
	names, parts, err := b.userPartitions(ctx)
	if err != nil {
		return s, nil, err
	}
	now := b.now()
	hw := make(map[string]map[int32]int64, len(names))
	for _, p := range parts {
		s.partitions++
		leads := p.Leader != "" && p.LeaseExpiresAt.After(now) && live[p.Leader]
		if !leads {
			s.withoutLeader++
		} else if p.Leader == b.agentID {
			s.ledHere++
		}
		name := names[p.TopicID]
		if hw[name] == nil {
			hw[name] = map[int32]int64{}
		}
		hw[name][p.Partition] = p.HighWatermark
	}
	topics := make(map[string]bool, len(names))
	for _, n := range names {
		topics[n] = true
	}
	groups, err := b.store.ListGroups(ctx)
	if err != nil {
		return s, nil, err
	}
	var mine []string
	for _, g := range groups {
		slot, err := b.GroupSlot(ctx, g)
		if err != nil {
			return s, nil, err
		}
		if b.plog.Leads(slot) {
			mine = append(mine, g)
		}
	}
	s.groupsCoordinated = len(mine)
	if len(mine) > 0 {
		offs, err := b.store.FetchGroupsOffsets(ctx, mine)
		if err != nil {
			return s, nil, err
		}
		for _, o := range offs {
			h, ok := hw[o.Topic][o.Partition]
			if !ok {
				continue // the topic went away
			}
			s.lags = append(s.lags, groupLagRow{group: o.Group, topic: o.Topic, partition: o.Partition, lag: max(h-o.Offset, 0)})
		}
	}
	return s, topics, nil
}

// countIn counts an append of raw to topic t on this agent.
func (b *Broker) countIn(t metadata.Topic, raw []byte) { b.metrics.addIn(t.Name, len(raw)) }
