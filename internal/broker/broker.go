// Package broker is the one Go API every front end (Kafka, REST, gRPC, and
// the CLI through them) calls: topics, produce, fetch, consumer group
// offsets, and the placement of partition leadership on this agent. No
// front end touches storage directly.
package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/sasl"

	"github.com/streamhouse/streamhouse/internal/batch"
	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/partlog"
)

// Errors front ends map to their protocol's codes.
var (
	ErrInvalidTopic      = errors.New("invalid topic")
	ErrUnknownTopic      = errors.New("unknown topic")
	ErrTopicExists       = errors.New("topic already exists")
	ErrInvalidPartitions = errors.New("invalid partition count")
	ErrUnknownPartition  = errors.New("unknown partition")
	ErrInvalidConfig     = errors.New("invalid config")
	ErrInvalidRequest    = errors.New("invalid request")
	ErrUnknownGroup      = errors.New("unknown consumer group")
	ErrGroupExists       = errors.New("consumer group already exists")
)

// mapStoreErr turns metadata errors into broker errors, keeping the chain.
func mapStoreErr(err error) error {
	switch {
	case errors.Is(err, metadata.ErrTopicNotFound):
		return fmt.Errorf("%w: %w", ErrUnknownTopic, err)
	case errors.Is(err, metadata.ErrTopicExists):
		return fmt.Errorf("%w: %w", ErrTopicExists, err)
	case errors.Is(err, metadata.ErrInvalidPartitions):
		return fmt.Errorf("%w: %w", ErrInvalidPartitions, err)
	case errors.Is(err, metadata.ErrPartitionNotFound):
		return fmt.Errorf("%w: %w", ErrUnknownPartition, err)
	case errors.Is(err, metadata.ErrGroupNotFound):
		return fmt.Errorf("%w: %w", ErrUnknownGroup, err)
	}
	return err
}

// Config configures a Broker.
type Config struct {
	AgentID string
	Addr    string // advertised Kafka address of this agent
	Rack    string
	Store   metadata.Store
	Log     *partlog.Log
	Logger  *slog.Logger
	// LeaseTTL must match the log's; placement runs every LeaseTTL/3.
	LeaseTTL time.Duration
	Now      func() time.Time
	// Validator checks produced values on topics with schema validation
	// on (validate.go). Nil: no validation.
	Validator Validator
	// AutoSchemaValidation (SCHEMA_VALIDATION=auto) validates, besides
	// the topics that ask for it, every topic that does not refuse it
	// ("false") and whose subject {topic}-value has a schema.
	AutoSchemaValidation bool

	// GRPCAddr is the advertised gRPC address of this agent ("" if it
	// serves no gRPC): where other agents forward gRPC transaction calls.
	GRPCAddr string
	// ForwardTLS, when set, gives the TLS configuration of each new
	// connection to another agent's Kafka listener (forwarded produces,
	// group lookups); nil: plaintext.
	ForwardTLS func() *tls.Config
	// PeerSASL logs the Kafka clients this agent opens to other agents
	// (forward.go) in, when the listeners require logins (the agent's own
	// user, internal/auth AgentLogin). Nil: no login.
	PeerSASL sasl.Mechanism

	// Metrics receives the broker's series (metrics.go); nil: none.
	Metrics prometheus.Registerer
	// TopicLabels (METRICS_TOPIC_LABELS) gives the traffic and lag series
	// their topic label; off, they are summed over topics.
	TopicLabels bool
}

// Broker is the shared API. Create with New, start placement with Run.
type Broker struct {
	agentID string
	cfg     Config
	store   metadata.Store
	plog    *partlog.Log
	log     *slog.Logger
	now     func() time.Time

	mu       sync.Mutex
	topics   map[string]cachedTopic
	topicIDs map[metadata.TopicID]string // names of the topics in topics
	rr       atomic.Uint32               // round-robin for keyless records

	placeMu   sync.Mutex                            // serialises placement
	freeSince map[metadata.TopicPartition]time.Time // leaderless partitions seen by placement, guarded by placeMu
	orphanAt  time.Time                             // when placement last took a partition beyond its share, guarded by placeMu
	placeKick chan struct{}
	slots     groupSlots
	fwd       *forwarder // REST and gRPC produces to partitions led elsewhere
	summary   summaryCache
	metrics   *brokerMetrics
}

type cachedTopic struct {
	t  metadata.Topic
	at time.Time
}

// topicCacheTTL bounds how stale a cached topic may be; every local change
// invalidates it at once.
const topicCacheTTL = time.Second

// New creates a Broker and registers its agent.
func New(ctx context.Context, cfg Config) (*Broker, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = 10 * time.Second
	}
	b := &Broker{
		agentID:   cfg.AgentID,
		cfg:       cfg,
		store:     cfg.Store,
		plog:      cfg.Log,
		log:       cfg.Logger.With("component", "broker"),
		now:       cfg.Now,
		topics:    make(map[string]cachedTopic),
		topicIDs:  make(map[metadata.TopicID]string),
		placeKick: make(chan struct{}, 1),
		fwd:       &forwarder{clientID: "streamhouse-forward-" + cfg.AgentID, tls: cfg.ForwardTLS, sasl: cfg.PeerSASL},
	}
	if cfg.Metrics != nil {
		b.metrics = newBrokerMetrics(b, cfg.Metrics, cfg.TopicLabels)
	}
	now := b.now()
	if err := b.store.RegisterAgent(ctx, metadata.Agent{ID: cfg.AgentID, Addr: cfg.Addr, GRPCAddr: cfg.GRPCAddr, Rack: cfg.Rack, StartedAt: now, HeartbeatAt: now}); err != nil {
		return nil, fmt.Errorf("register agent %s: %w", cfg.AgentID, err)
	}
	return b, nil
}

// AgentID is this agent's ID.
func (b *Broker) AgentID() string { return b.agentID }

// Store exposes the metadata store (for readiness checks).
func (b *Broker) Store() metadata.Store { return b.store }

func (b *Broker) cachedTopic(name string) (metadata.Topic, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	c, ok := b.topics[name]
	if !ok || b.now().Sub(c.at) > topicCacheTTL {
		return metadata.Topic{}, false
	}
	return c.t, true
}

func (b *Broker) cacheTopic(t metadata.Topic) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if old, ok := b.topics[t.Name]; ok && old.t.ID != t.ID {
		delete(b.topicIDs, old.t.ID)
	}
	b.topics[t.Name] = cachedTopic{t: t, at: b.now()}
	b.topicIDs[t.ID] = t.Name
}

func (b *Broker) forgetTopic(name string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if old, ok := b.topics[name]; ok {
		delete(b.topicIDs, old.t.ID)
	}
	delete(b.topics, name)
}

// partition resolves a topic partition, checking the partition exists.
func (b *Broker) partition(ctx context.Context, topic string, partition int32) (metadata.Topic, metadata.TopicPartition, error) {
	t, err := b.Topic(ctx, topic)
	if err != nil {
		return t, metadata.TopicPartition{}, err
	}
	if partition < 0 || partition >= t.Partitions {
		return t, metadata.TopicPartition{}, fmt.Errorf("%w: topic %s has partitions 0..%d, not %d", ErrUnknownPartition, topic, t.Partitions-1, partition)
	}
	return t, metadata.TopicPartition{TopicID: t.ID, Partition: partition}, nil
}

// Produce appends raw record batches (the Kafka path) to one partition.
func (b *Broker) Produce(ctx context.Context, topic string, partition int32, records []byte, mode partlog.AckMode) (partlog.AppendResult, error) {
	t, tp, err := b.partition(ctx, topic, partition)
	if err != nil {
		return partlog.AppendResult{}, err
	}
	if err := b.validateBatches(ctx, t, records); err != nil {
		return partlog.AppendResult{}, err
	}
	res, err := b.plog.Append(ctx, tp, records, mode)
	if err == nil {
		b.countIn(t, records)
	}
	return res, err
}

// ProduceAsync is Produce without waiting for durability: the records
// have their offsets and are buffered when it returns, and the result's
// Wait waits as mode requires. Successive calls for one partition get
// offsets in call order (the Kafka path keeps a connection's pipelined
// produce requests in arrival order this way while their durable waits
// overlap).
func (b *Broker) ProduceAsync(ctx context.Context, topic string, partition int32, records []byte, mode partlog.AckMode) (*partlog.Appending, error) {
	t, tp, err := b.partition(ctx, topic, partition)
	if err != nil {
		return nil, err
	}
	if err := b.validateBatches(ctx, t, records); err != nil {
		return nil, err
	}
	a, err := b.plog.AppendAsync(ctx, tp, records, mode)
	if err == nil {
		b.countIn(t, records)
	}
	return a, err
}

// Record is a plain record from REST or gRPC.
type Record = batch.Record

// RecordOffset says where one produced record went.
type RecordOffset struct {
	Partition int32
	Offset    int64
	Timestamp int64
}

// ProduceRecords builds plain records into batches (one per partition) and
// appends them, forwarding a partition led by another agent to it
// (forward.go). partition < 0 picks the partition per record: Kafka's
// murmur2 of the key, or round-robin for records without a key. Results
// are in the order of records. It is all-or-nothing per partition.
func (b *Broker) ProduceRecords(ctx context.Context, topic string, partition int32, records []Record, mode partlog.AckMode, opts batch.BuildOptions) ([]RecordOffset, error) {
	if len(records) == 0 {
		return nil, fmt.Errorf("%w: no records", ErrInvalidRequest)
	}
	t, err := b.Topic(ctx, topic)
	if err != nil {
		return nil, err
	}
	if partition >= t.Partitions {
		return nil, fmt.Errorf("%w: topic %s has partitions 0..%d, not %d", ErrUnknownPartition, topic, t.Partitions-1, partition)
	}
	// All records are checked before any partition is appended to.
	if err := b.validateRecords(ctx, t, records); err != nil {
		return nil, err
	}
	now := b.now().UnixMilli()
	byPart := make(map[int32][]int)
	var order []int32
	for i := range records {
		p := partition
		if p < 0 {
			if records[i].Key != nil {
				p = KeyPartition(records[i].Key, t.Partitions)
			} else {
				p = int32(b.rr.Add(1) % uint32(t.Partitions))
			}
		}
		if records[i].Timestamp == 0 {
			records[i].Timestamp = now
		}
		if _, ok := byPart[p]; !ok {
			order = append(order, p)
		}
		byPart[p] = append(byPart[p], i)
	}
	out := make([]RecordOffset, len(records))
	for _, p := range order {
		idx := byPart[p]
		recs := make([]Record, len(idx))
		for j, i := range idx {
			recs[j] = records[i]
		}
		raw, err := batch.Build(recs, opts)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidRequest, err)
		}
		res, err := b.append(ctx, t, p, raw, mode, "")
		if err != nil {
			return nil, err
		}
		for j, i := range idx {
			ts := recs[j].Timestamp
			if res.LogAppendTime >= 0 {
				ts = res.LogAppendTime
			}
			out[i] = RecordOffset{Partition: p, Offset: res.BaseOffset + int64(j), Timestamp: ts}
		}
	}
	return out, nil
}

// Fetch reads raw batches (the Kafka path), waiting up to maxWait at the
// high watermark.
func (b *Broker) Fetch(ctx context.Context, topic string, partition int32, offset int64, maxBytes int, maxWait time.Duration) (partlog.ReadResult, error) {
	_, tp, err := b.partition(ctx, topic, partition)
	if err != nil {
		return partlog.ReadResult{}, err
	}
	res, err := b.plog.Read(ctx, tp, offset, maxBytes, maxWait)
	b.metrics.addOut(topic, res.Size)
	return res, err
}

// ConsumedRecords is the answer to Consume.
type ConsumedRecords struct {
	Records       []Record
	NextOffset    int64
	HighWatermark int64
	// LastStableOffset is where the read stopped being allowed to go: the
	// first offset of the oldest transaction still open (the high
	// watermark when none is). Records from it on are not returned yet.
	LastStableOffset int64
	LogStartOffset   int64
}

// The records one REST or gRPC consume asks for: 0 (or nothing) means
// DefaultConsumeRecords, and more than MaxConsumeRecords gets
// MaxConsumeRecords (ConsumeRecordsLimit), the same rule on both APIs.
const (
	DefaultConsumeRecords = 100
	MaxConsumeRecords     = 10000
)

// ConsumeRecordsLimit applies the default and the cap to a requested
// record count n (n must not be negative).
func ConsumeRecordsLimit(n int64) int {
	if n == 0 {
		return DefaultConsumeRecords
	}
	return int(min(n, MaxConsumeRecords))
}

// DefaultConsumeBytes is Consume's byte budget: see ConsumeBytes.
const DefaultConsumeBytes = 4 << 20

// consumeReadBytes is how much stored data Consume reads at a time.
const consumeReadBytes = 1 << 20

// Consume is ConsumeBytes with DefaultConsumeBytes.
func (b *Broker) Consume(ctx context.Context, topic string, partition int32, offset int64, maxRecords int, maxWait time.Duration) (ConsumedRecords, error) {
	return b.ConsumeBytes(ctx, topic, partition, offset, maxRecords, DefaultConsumeBytes, maxWait)
}

// ConsumeBytes decodes up to maxRecords records of a partition from offset
// (the REST and gRPC path). It reads committed (committed.go): never past
// the last stable offset, never a record of an aborted transaction, never
// a control record. It waits up to maxWait when there is nothing yet.
//
// maxBytes is the request's budget of decoded bytes: once the batches it
// decoded (their records decompressed) add up to maxBytes, it decodes no
// more, and it keeps records only while their keys, values and headers fit
// in maxBytes. The first record is always returned, however large, so a
// reader always makes progress. What one call holds at once is therefore
// about maxBytes plus one batch (at most batch.MaxDecompressedSize
// decompressed) plus one read of stored data (1 MiB), whatever the
// partition holds: a batch is decompressed into a reused buffer and the
// records kept are copied out of it.
func (b *Broker) ConsumeBytes(ctx context.Context, topic string, partition int32, offset int64, maxRecords, maxBytes int, maxWait time.Duration) (ConsumedRecords, error) {
	if maxRecords <= 0 {
		return ConsumedRecords{}, fmt.Errorf("%w: maxRecords must be positive", ErrInvalidRequest)
	}
	if maxBytes <= 0 {
		return ConsumedRecords{}, fmt.Errorf("%w: maxBytes must be positive", ErrInvalidRequest)
	}
	_, tp, err := b.partition(ctx, topic, partition)
	if err != nil {
		return ConsumedRecords{}, err
	}
	c := consumer{maxRecords: maxRecords, maxBytes: maxBytes, out: ConsumedRecords{NextOffset: offset}}
	defer c.dec.Release()
	wait := maxWait
	for !c.full() {
		res, err := b.readCommitted(ctx, tp, c.out.NextOffset, wait)
		if err != nil {
			return c.out, err
		}
		b.metrics.addOut(topic, res.Size)
		wait = 0
		more, err := c.add(res)
		if err != nil {
			return c.out, fmt.Errorf("consume %s/%d: %w", topic, partition, err)
		}
		if !more {
			break
		}
	}
	return c.out, nil
}

// consumer collects the records of one ConsumeBytes call.
type consumer struct {
	maxRecords, maxBytes int
	out                  ConsumedRecords
	dec                  batch.Decoder
	decoded              int // bytes of records decoded
	kept                 int // bytes of the records in out
}

func (c *consumer) full() bool {
	return len(c.out.Records) >= c.maxRecords || c.decoded >= c.maxBytes || c.kept >= c.maxBytes
}

// add takes the records of one committed read: those below its last
// stable offset that are neither control records nor records of an
// aborted transaction. more is false when the read returned nothing (the
// reader is at the LSO).
func (c *consumer) add(res partlog.ReadResult) (more bool, err error) {
	c.out.HighWatermark, c.out.LastStableOffset, c.out.LogStartOffset = res.HighWatermark, res.LastStableOffset, res.LogStartOffset
	if res.Size == 0 {
		return false, nil
	}
	raws, err := batch.Split(res.Bytes())
	if err != nil {
		return false, err
	}
	for _, raw := range raws {
		if c.full() {
			break
		}
		h, err := batch.ParseHeader(raw)
		if err != nil {
			return false, err
		}
		if h.BaseOffset >= res.LastStableOffset {
			// Not stable yet (the log stops here; this keeps a reader
			// safe should it not): read again later.
			return false, nil
		}
		if hiddenBatch(h, res.Aborted) {
			// Nothing here a reader may see: skip it whole, unread.
			c.out.NextOffset = max(c.out.NextOffset, h.LastOffset()+1)
			continue
		}
		h, recs, size, err := c.dec.Decode(raw)
		if err != nil {
			return false, err
		}
		c.decoded += size
		compressed := h.Codec() != batch.CodecNone
		stopped := false
		for _, r := range recs {
			if r.Offset < c.out.NextOffset {
				continue
			}
			n := recordBytes(r)
			if len(c.out.Records) >= c.maxRecords || (len(c.out.Records) > 0 && c.kept+n > c.maxBytes) {
				stopped = true
				break
			}
			switch {
			case compressed:
				r = copyRecord(r, n) // the decoder reuses its buffer
			case len(r.Headers) > 0:
				r.Headers = slices.Clone(r.Headers) // and its headers slice
			}
			c.out.Records = append(c.out.Records, r)
			c.kept += n
			c.out.NextOffset = r.Offset + 1
		}
		if !stopped && h.LastOffset() >= c.out.NextOffset {
			// Records removed by compaction leave offset gaps.
			c.out.NextOffset = h.LastOffset() + 1
		}
	}
	return true, nil
}

// recordBytes is what a consumed record holds: its key, value and headers.
func recordBytes(r Record) int {
	n := len(r.Key) + len(r.Value)
	for _, h := range r.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return n
}

// copyRecord copies r's bytes (n of them, recordBytes) into one new buffer,
// keeping nil apart from empty.
func copyRecord(r Record, n int) Record {
	buf := make([]byte, 0, n)
	take := func(b []byte) []byte {
		if b == nil {
			return nil
		}
		at := len(buf)
		buf = append(buf, b...)
		return buf[at:len(buf):len(buf)]
	}
	r.Key, r.Value = take(r.Key), take(r.Value)
	if len(r.Headers) > 0 {
		hs := make([]batch.RecordHeader, len(r.Headers))
		for i, h := range r.Headers {
			hs[i] = batch.RecordHeader{Key: h.Key, Value: take(h.Value)}
		}
		r.Headers = hs
	}
	return r
}

// Offsets returns a partition's log start offset and high watermark.
func (b *Broker) Offsets(ctx context.Context, topic string, partition int32) (logStart, hw int64, err error) {
	_, tp, err := b.partition(ctx, topic, partition)
	if err != nil {
		return 0, 0, err
	}
	hw, logStart, err = b.plog.HighWatermark(ctx, tp)
	return logStart, hw, err
}

// clampInt32 converts an int to int32, saturating.
func clampInt32(n int) int32 {
	if n > math.MaxInt32 {
		return math.MaxInt32
	}
	return int32(n)
}

// DeleteRecords moves a partition's log start offset up to offset (-1: the
// high watermark) and returns the new log start offset.
func (b *Broker) DeleteRecords(ctx context.Context, topic string, partition int32, offset int64) (int64, error) {
	_, tp, err := b.partition(ctx, topic, partition)
	if err != nil {
		return 0, err
	}
	return b.plog.DeleteRecords(ctx, tp, offset)
}

// OffsetForTime returns the first offset whose timestamp is at or after ts
// (ms). found is false when no record is that recent.
func (b *Broker) OffsetForTime(ctx context.Context, topic string, partition int32, ts int64) (offset, timestamp int64, found bool, err error) {
	_, tp, err := b.partition(ctx, topic, partition)
	if err != nil {
		return 0, 0, false, err
	}
	return b.plog.OffsetForTime(ctx, tp, ts)
}

// MaxTimestampOffset returns the offset and timestamp of the record with the
// largest timestamp. found is false for an empty log.
func (b *Broker) MaxTimestampOffset(ctx context.Context, topic string, partition int32) (offset, timestamp int64, found bool, err error) {
	_, tp, err := b.partition(ctx, topic, partition)
	if err != nil {
		return 0, 0, false, err
	}
	return b.plog.MaxTimestampOffset(ctx, tp)
}

// NextProducerID allocates a new idempotent producer ID.
func (b *Broker) NextProducerID(ctx context.Context) (int64, error) {
	id, err := b.store.NextProducerID(ctx)
	if err != nil {
		return 0, fmt.Errorf("allocate producer id: %w", err)
	}
	return id, nil
}

// Leads reports whether this agent leads the partition now.
func (b *Broker) Leads(tp metadata.TopicPartition) bool { return b.plog.Leads(tp) }

// Watch returns a channel closed when the partition's high watermark next
// changes (nil if not led here), for long polls over many partitions.
func (b *Broker) Watch(tp metadata.TopicPartition) <-chan struct{} { return b.plog.Watch(tp) }

// Agents returns the live agents (the Kafka brokers of the cluster).
func (b *Broker) Agents(ctx context.Context) ([]metadata.Agent, error) {
	agents, err := b.store.ListAgents(ctx, b.now().Add(-b.cfg.LeaseTTL))
	if err != nil {
		return nil, fmt.Errorf("list agents: %w", err)
	}
	return agents, nil
}

// Self is this agent's registration.
func (b *Broker) Self() metadata.Agent {
	return metadata.Agent{ID: b.agentID, Addr: b.cfg.Addr, GRPCAddr: b.cfg.GRPCAddr, Rack: b.cfg.Rack}
}

// CachedTopicByID returns a topic by ID, cached briefly like Topic: the
// lookup of the Kafka data path (Produce v13+, Fetch v13+), which names
// topics by ID on every request. ErrUnknownTopic if there is none.
func (b *Broker) CachedTopicByID(ctx context.Context, id metadata.TopicID) (metadata.Topic, error) {
	b.mu.Lock()
	name, ok := b.topicIDs[id]
	b.mu.Unlock()
	if ok {
		if t, ok := b.cachedTopic(name); ok && t.ID == id {
			return t, nil
		}
	}
	t, err := b.userTopicByID(ctx, id)
	if err != nil {
		return metadata.Topic{}, fmt.Errorf("topic id %s: %w", id, mapStoreErr(err))
	}
	b.cacheTopic(t)
	return t, nil
}

// LeaderEpoch returns the lease epoch under which this agent leads tp; ok
// is false when it does not lead tp. It does no I/O.
func (b *Broker) LeaderEpoch(tp metadata.TopicPartition) (epoch int32, ok bool) {
	return b.plog.LeaderEpoch(tp)
}
