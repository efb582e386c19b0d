// Package partlog owns the partition log of one agent: the write path of
// DESIGN.md §2 (offset assignment, the shared write buffer, sealing into
// multi-partition segment objects, pipelined uploads, fenced commits in seal
// order, acknowledgements) and the read path of §3 (index lookup, hot tail,
// disk cache, collapsed ranged GETs, long polling).
//
// Lock order: Log.mu before partition.mu. Nothing holds either lock across
// I/O.
package partlog

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/semaphore"

	"github.com/streamhouse/streamhouse/internal/batch"

	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/objstore"
)

// AckMode says when Append returns.
type AckMode int

const (
	// AckNone returns once the batch is validated and has its offsets.
	AckNone AckMode = iota
	// AckBuffered returns once the batch is in the write buffer.
	AckBuffered
	// AckDurable returns once the batch is in the object store and committed
	// in the metadata store.
	AckDurable
)

func (m AckMode) String() string {
	switch m {
	case AckNone:
		return "none"
	case AckBuffered:
		return "buffered"
	case AckDurable:
		return "durable"
	}
	return fmt.Sprintf("AckMode(%d)", int(m))
}

// Errors callers map to protocol codes.
var (
	// ErrNotLeader: this agent does not lead the partition (Kafka
	// NOT_LEADER_OR_FOLLOWER). The client should re-read metadata.
	ErrNotLeader = errors.New("not the leader of this partition")
	// ErrOffsetOutOfRange: the fetch offset is below the log start offset or
	// above the high watermark.
	ErrOffsetOutOfRange = errors.New("offset out of range")
	// ErrOutOfOrderSequence: an idempotent producer skipped a sequence number.
	ErrOutOfOrderSequence = errors.New("out of order sequence number")
	// ErrInvalidProducerEpoch: an idempotent producer used an old epoch.
	ErrInvalidProducerEpoch = errors.New("invalid producer epoch")
	// ErrClosed: the log is shutting down.
	ErrClosed = errors.New("log closed")
	// ErrInvalidTimestamp: with message.timestamp.type=CreateTime, a record's
	// timestamp is outside [now - message.timestamp.before.max.ms, now +
	// message.timestamp.after.max.ms] (Kafka INVALID_TIMESTAMP). It is an
	// invalid record, so front ends without a code of their own for it
	// answer as for one.
	ErrInvalidTimestamp = fmt.Errorf("record timestamp out of range: %w", batch.ErrInvalidRecord)
)

// Config configures a Log. Zero values take the defaults noted.
type Config struct {
	AgentID string
	Bucket  objstore.Bucket
	Store   metadata.Store
	Logger  *slog.Logger          // default slog.Default()
	Metrics prometheus.Registerer // default: a private registry

	// FlushMinInterval spaces seals when the buffer is idle-triggered (the
	// cost knob: fewer PUTs, more latency). Default 0.
	FlushMinInterval time.Duration
	// FlushInterval bounds how long buffered-only data waits. Default 5s.
	FlushInterval time.Duration
	// DurableMaxAge bounds how long a durable waiter waits for a seal.
	// Default 200ms.
	DurableMaxAge time.Duration
	// MaxObjectBytes and MaxObjectRecords seal the buffer when reached.
	// Defaults 16 MiB and 10000 records... per DESIGN naming
	// DURABLE_BATCH_MAX_BYTES / _RECORDS.
	MaxObjectBytes   int
	MaxObjectRecords int
	// MaxPendingBytes bounds buffered plus uploading bytes; appends wait
	// (backpressure) while it is exceeded. Default 4 × MaxObjectBytes.
	MaxPendingBytes int
	// MaxInflightUploads bounds concurrent PUTs. Default 4.
	MaxInflightUploads int
	// MaxMessageBytes is the default batch size limit (Kafka
	// message.max.bytes) when the topic has no max.message.bytes. Default
	// 1 MiB + overhead as Kafka.
	MaxMessageBytes int
	// LeaseTTL is how long a lease lasts without renewal. Default 10s.
	LeaseTTL time.Duration
	// LeaseClockSkew is subtracted from a lease's deadline: the store
	// records a lease's expiry as the agent's wall clock at the start of
	// the acquisition or renewal plus LeaseTTL, and another agent takes
	// the lease once its own wall clock passes that, so the agent stops
	// acting as leader LeaseClockSkew before its monotonic clock says the
	// TTL is over, to stay safe while agents' wall clocks disagree by less
	// than that. Default LeaseTTL/10.
	LeaseClockSkew time.Duration
	// HotTailBytes bounds recently committed objects kept in memory for
	// readers. Default 64 MiB; negative disables.
	HotTailBytes int
	// ReadCacheBytes bounds the in-memory cache of object chunks that
	// readers share (see chunkCache). Default 64 MiB; negative disables it
	// (and read-ahead): reads then fetch exactly the ranges they need.
	ReadCacheBytes int64
	// ReadChunkBytes is the size of the chunks objects are read in.
	// Default 1 MiB.
	ReadChunkBytes int64
	// ReadAheadBytes is how far past what a read returns the reader loads
	// a partition's data in the background. Default 2 MiB; negative
	// disables read-ahead.
	ReadAheadBytes int64
	// CacheDir and CacheBytes configure the disk cache of ranged reads.
	// Empty CacheDir disables it.
	CacheDir   string
	CacheBytes int64
	// GCGrace is how long an unreferenced or uncommitted object is kept
	// before deletion. Default 1h; at least CommitTimeout + LeaseTTL +
	// 2 × LeaseClockSkew. No commit attempt of an object starts later than
	// its creation + GCGrace - (CommitTimeout + 2 × LeaseClockSkew), so GC never
	// deletes an object whose commit may still land (docs/architecture.md).
	GCGrace time.Duration
	// GCInterval spaces the background passes of retention, producer
	// expiry and garbage collection the log runs from Open to Close.
	// Zero or negative: no background pass (tests call them directly).
	GCInterval time.Duration
	// CommitTimeout bounds one commit attempt in the metadata store.
	// Default 30s.
	CommitTimeout time.Duration
	// OrphanScanInterval spaces the scans of the bucket for objects that
	// were uploaded but never committed. Default GCGrace/2.
	OrphanScanInterval time.Duration
	// RetentionPage is how many index entries retention reads at once.
	// Default 1000.
	RetentionPage int
	// ProducerExpiration is how long an idempotent producer may stay idle
	// before RunGC forgets it (Kafka's producer.id.expiration.ms). Zero or
	// negative: never.
	ProducerExpiration time.Duration
	// ReadPollInterval is how often the watcher of a partition led
	// elsewhere reads its state while long polls wait on it (watch.go);
	// 20 times less often while the store's commit notices flow
	// (metadata.CommitNotifier). Default 50ms.
	ReadPollInterval time.Duration
	// MaxReadWatchers bounds the partitions led elsewhere watched at once
	// (each costs a store read per ReadPollInterval). Default 1000.
	MaxReadWatchers int
	// MaxDecompressBytes bounds the memory that checking produced
	// compressed batches may hold at once, across every partition: each
	// check takes its batch's decompression bound (32 × max.message.bytes,
	// at most 64 MiB) from it, and waits while it is spent. Without it,
	// many small connections each sending a few KB that expand to the
	// bound would add up without limit. Default 256 MiB; never below one
	// batch's bound.
	MaxDecompressBytes int64
	// VerifyTxn admits transactional batches (txn.go). Nil: every
	// transactional batch is refused with ErrInvalidTxnState.
	VerifyTxn VerifyTxnFunc
	// Compaction configures object compaction (compact.go).
	Compaction CompactionConfig
	// WALDir, when set, turns the write-ahead log on (walhook.go):
	// buffered appends are written there and their acks wait for its
	// sync, and ReplayWAL re-appends what a crashed process left. WALSyncInterval
	// spaces the group fsyncs (0: as soon as possible); WALMaxSize bounds
	// its live bytes (appends wait while it is full). Default 1 GiB.
	WALDir          string
	WALSyncInterval time.Duration
	WALMaxSize      int64
	// ObjectPrefix is prepended to object keys. Default "segments/".
	ObjectPrefix string
	// Now is the clock; default time.Now.
	Now func() time.Time
}

func (c *Config) setDefaults() error {
	if c.AgentID == "" {
		return errors.New("log config: AgentID is required")
	}
	if c.Bucket == nil || c.Store == nil {
		return errors.New("log config: Bucket and Store are required")
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Metrics == nil {
		c.Metrics = prometheus.NewRegistry()
	}
	if c.FlushInterval <= 0 {
		c.FlushInterval = 5 * time.Second
	}
	if c.DurableMaxAge <= 0 {
		c.DurableMaxAge = 200 * time.Millisecond
	}
	if c.MaxObjectBytes <= 0 {
		c.MaxObjectBytes = 16 << 20
	}
	if c.MaxObjectRecords <= 0 {
		c.MaxObjectRecords = 10000
	}
	if c.MaxPendingBytes <= 0 {
		c.MaxPendingBytes = 4 * c.MaxObjectBytes
	}
	if c.MaxInflightUploads <= 0 {
		c.MaxInflightUploads = 4
	}
	if c.MaxMessageBytes <= 0 {
		c.MaxMessageBytes = 1048588
	}
	if c.LeaseTTL <= 0 {
		c.LeaseTTL = 10 * time.Second
	}
	if c.LeaseClockSkew <= 0 {
		c.LeaseClockSkew = c.LeaseTTL / 10
	}
	if c.LeaseClockSkew >= c.LeaseTTL/2 {
		return fmt.Errorf("log config: LeaseClockSkew %v must be below half of LeaseTTL %v", c.LeaseClockSkew, c.LeaseTTL)
	}
	if c.CommitTimeout <= 0 {
		c.CommitTimeout = 30 * time.Second
	}
	if c.HotTailBytes == 0 {
		c.HotTailBytes = 64 << 20
	}
	if c.ReadCacheBytes == 0 {
		c.ReadCacheBytes = 64 << 20
	}
	if c.ReadChunkBytes <= 0 {
		c.ReadChunkBytes = 1 << 20
	}
	if c.ReadAheadBytes == 0 {
		c.ReadAheadBytes = 2 << 20
	}
	if c.GCGrace <= 0 {
		c.GCGrace = time.Hour
	}
	if min := c.CommitTimeout + c.LeaseTTL + 2*c.LeaseClockSkew; c.GCGrace < min {
		return fmt.Errorf("log config: GCGrace %v is below CommitTimeout + LeaseTTL + 2 × LeaseClockSkew = %v: too little of it would be left for commits to start in", c.GCGrace, min)
	}
	if c.RetentionPage <= 0 {
		c.RetentionPage = 1000
	}
	if c.OrphanScanInterval <= 0 {
		c.OrphanScanInterval = c.GCGrace / 2
	}
	if c.ReadPollInterval <= 0 {
		c.ReadPollInterval = 50 * time.Millisecond
	}
	if c.MaxReadWatchers <= 0 {
		c.MaxReadWatchers = 1000
	}
	if c.MaxDecompressBytes <= 0 {
		c.MaxDecompressBytes = 256 << 20
	}
	c.MaxDecompressBytes = max(c.MaxDecompressBytes, batch.MaxDecompressedSize)
	if c.ObjectPrefix == "" {
		c.ObjectPrefix = "segments/"
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

// Log is one agent's partition log. Create it with Open; stop it with Close.
type Log struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	bucket  objstore.Bucket
	store   metadata.Store
	reader  *reader
	watch   *watchers // long polls on partitions led elsewhere
	// decompress is the budget of Config.MaxDecompressBytes that produce
	// checks of compressed batches take from.
	decompress *semaphore.Weighted

	mu         sync.Mutex
	partitions map[metadata.TopicPartition]*partition // led partitions
	buf        *buffer                                // the open write buffer
	pending    int                                    // bytes buffered or uploading
	spaceFreed chan struct{}                          // closed and replaced when pending shrinks
	inflight   int                                    // PUTs in flight
	lastSeal   time.Time
	seq        uint64 // object sequence number
	bootID     string // random per Open, part of every object key
	closed     bool

	compaction *compactor // compact.go
	wal        *walState  // nil without Config.WALDir

	gcMu           sync.Mutex
	lastOrphanScan time.Time // guarded by gcMu

	kick    chan struct{} // wakes the sealer
	commitQ chan *sealed  // sealed objects in seal order, for the committer

	// ctx is the root of every goroutine the log starts (sealer, uploads,
	// committer, lease renewer, background GC); Close cancels it once the
	// buffer has drained, then waits for wg.
	ctx    context.Context
	cancel context.CancelFunc
	stop   <-chan struct{} // ctx.Done()
	wg     sync.WaitGroup
}

// Open starts a Log: its sealer, committer, lease renewer and, with
// Config.GCInterval, its background GC loop; Close stops them all. It
// leads no partition until Lead is called.
func Open(ctx context.Context, cfg Config) (*Log, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	cfg.Compaction.setDefaults(cfg.ReadChunkBytes)
	m := newMetrics(cfg.Metrics)
	m.setLimits(cfg)
	l := &Log{
		decompress: semaphore.NewWeighted(cfg.MaxDecompressBytes),
		cfg:        cfg,
		log:        cfg.Logger.With("component", "log", "agent", cfg.AgentID),
		metrics:    m,
		bucket:     cfg.Bucket,
		store:      cfg.Store,
		partitions: make(map[metadata.TopicPartition]*partition),
		spaceFreed: make(chan struct{}),
		kick:       make(chan struct{}, 1),
		commitQ:    make(chan *sealed, 1024),
		compaction: newCompactor(cfg.Metrics),
	}
	var boot [6]byte
	if _, err := crand.Read(boot[:]); err != nil {
		return nil, fmt.Errorf("open log: boot id: %w", err)
	}
	l.bootID = hex.EncodeToString(boot[:])
	r, err := newReader(cfg, m)
	if err != nil {
		return nil, err
	}
	l.reader = r
	l.watch = newWatchers(cfg.Store, cfg.ReadPollInterval, cfg.MaxReadWatchers, l.log, cfg.Metrics)
	l.buf = newBuffer()
	if err := l.openWAL(); err != nil {
		l.reader.close()
		l.watch.close()
		return nil, err
	}
	l.ctx, l.cancel = context.WithCancel(context.WithoutCancel(ctx))
	l.stop = l.ctx.Done()
	l.wg.Add(3)
	go l.sealLoop()
	go l.commitLoop()
	go l.renewLoop()
	if cfg.GCInterval > 0 {
		l.wg.Add(1)
		go l.gcLoop(cfg.GCInterval)
	}
	if cfg.Compaction.Interval > 0 {
		l.wg.Add(1)
		go l.compactLoop()
	}
	return l, nil
}

// Close stops accepting appends, seals and commits what is buffered (bounded
// by ctx), fails what could not be committed, and stops every goroutine.
func (l *Log) Close(ctx context.Context) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	l.signal()

	// Wait for the buffer to drain through the pipeline.
	var err error
	for {
		l.mu.Lock()
		idle := l.buf.empty() && l.pending == 0
		ch := l.spaceFreed
		l.mu.Unlock()
		if idle {
			break
		}
		select {
		case <-ch:
		case <-ctx.Done():
			err = fmt.Errorf("close log: data still pending: %w", ctx.Err())
		}
		if err != nil {
			break
		}
	}
	l.cancel()
	l.wg.Wait()
	// Anything still pending now was not committed: fail its waiters.
	l.mu.Lock()
	l.buf.fail(ErrClosed)
	l.buf = newBuffer()
	l.mu.Unlock()
	l.reader.close()
	l.watch.close()
	if werr := l.closeWAL(); err == nil {
		err = werr
	}
	return err
}

// Lead takes the lease of tp and prepares to accept appends for it. Its
// state (high watermark, producer state with the open transactions, the
// recent aborted transactions) comes from the metadata store.
func (l *Log) Lead(ctx context.Context, topic metadata.Topic, partition int32) error {
	tp := metadata.TopicPartition{TopicID: topic.ID, Partition: partition}
	start := l.cfg.Now()
	lease, err := l.store.AcquireLease(ctx, tp, l.cfg.AgentID, start, l.cfg.LeaseTTL)
	if err != nil {
		return fmt.Errorf("lead %s: %w", tp, err)
	}
	states, err := l.store.ProducerStates(ctx, tp)
	if err != nil {
		return fmt.Errorf("lead %s: load producers: %w", tp, err)
	}
	aborted, err := l.loadAborted(ctx, tp, lease.LogStartOffset, lease.HighWatermark)
	if err != nil {
		return fmt.Errorf("lead %s: load aborted transactions: %w", tp, err)
	}
	p := newPartition(topic, partition, lease, states, l.cfg.MaxMessageBytes, l.leaseDeadlineFrom(start), l.cfg.Now)
	p.aborted = aborted
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	if old := l.partitions[tp]; old != nil {
		old.fence()
	}
	l.partitions[tp] = p
	level := slog.LevelInfo
	if strings.HasPrefix(topic.Name, "__") {
		level = slog.LevelDebug // internal topics (group coordinator slots): fifty lines at every start otherwise
	}
	l.log.Log(ctx, level, "leading partition", "topic", topic.Name, "partition", partition, "epoch", lease.Epoch, "high_watermark", lease.HighWatermark)
	return nil
}

// Release gives up leadership of tp after its buffered data is committed
// (bounded by ctx), so another agent can take it at once.
func (l *Log) Release(ctx context.Context, tp metadata.TopicPartition) error {
	l.mu.Lock()
	p := l.partitions[tp]
	l.mu.Unlock()
	if p == nil {
		return nil
	}
	// Stop new appends, then wait until everything assigned is committed.
	l.mu.Lock()
	p.releasing = true
	target := p.nextOffset
	l.mu.Unlock()
	l.signal()
	if err := p.waitCommitted(ctx, target); err != nil {
		// Still the leader: take appends again rather than refuse them
		// while holding the lease.
		l.mu.Lock()
		p.releasing = false
		l.mu.Unlock()
		l.signal()
		return fmt.Errorf("release %s: %w", tp, err)
	}
	l.mu.Lock()
	if l.partitions[tp] == p {
		delete(l.partitions, tp)
	}
	l.mu.Unlock()
	p.fence()
	if err := l.store.ReleaseLease(ctx, tp, l.cfg.AgentID, p.epoch); err != nil {
		return fmt.Errorf("release %s: %w", tp, err)
	}
	return nil
}

// Leads reports whether this agent may act as tp's leader now: it holds
// tp's lease and the lease deadline (see LeaseDeadline) has not passed.
// Everything that acts as leader (appends, high watermarks served,
// group or transaction coordination for an internal topic's partition)
// checks it, or LeaderEpoch, at the moment it acts. It turns false as soon
// as the deadline passes without a successful renewal, and true again if
// a later renewal succeeds before another agent takes the lease (same
// epoch: the committed state in the store is authoritative).
func (l *Log) Leads(tp metadata.TopicPartition) bool {
	_, ok := l.LeaderEpoch(tp)
	return ok
}

// LeaderEpoch returns the lease epoch under which this agent leads tp (the
// epoch written into its batches); ok is false when it does not lead tp or
// its lease deadline has passed (as Leads).
func (l *Log) LeaderEpoch(tp metadata.TopicPartition) (epoch int32, ok bool) {
	l.mu.Lock()
	p := l.partitions[tp]
	l.mu.Unlock()
	if p == nil || !p.leading() {
		return -1, false
	}
	return p.epoch, true
}

// LeaseDeadline returns when this agent stops acting as tp's leader unless
// a renewal succeeds first: the start of the last successful acquisition or
// renewal of the lease, plus LeaseTTL, minus LeaseClockSkew, on the
// monotonic clock. ok is false when this agent holds no lease on tp. A
// deadline in the past means the agent holds the lease but must not act on
// it (Leads is false).
func (l *Log) LeaseDeadline(tp metadata.TopicPartition) (deadline time.Time, ok bool) {
	l.mu.Lock()
	p := l.partitions[tp]
	l.mu.Unlock()
	if p == nil || p.isFenced() {
		return time.Time{}, false
	}
	return p.leaseDeadline(), true
}

// leaseDeadlineFrom is the deadline a lease acquired or renewed by a call
// started at start gives.
func (l *Log) leaseDeadlineFrom(start time.Time) time.Time {
	return start.Add(l.cfg.LeaseTTL - l.cfg.LeaseClockSkew)
}

// Led returns the partitions whose lease this agent holds (including any
// whose lease deadline has passed while a renewal may still succeed), for
// handing them over.
func (l *Log) Led() []metadata.TopicPartition {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]metadata.TopicPartition, 0, len(l.partitions))
	for tp, p := range l.partitions {
		if !p.isFenced() {
			out = append(out, tp)
		}
	}
	return out
}

// Forget stops leading tp at once, without committing its buffered data:
// the topic is being deleted. Pending appends fail with ErrNotLeader.
func (l *Log) Forget(tp metadata.TopicPartition) {
	l.mu.Lock()
	p := l.partitions[tp]
	if p != nil {
		delete(l.partitions, tp)
	}
	l.mu.Unlock()
	if p != nil {
		p.fence()
	}
}

// UpdateTopic refreshes the topic configs a led partition enforces
// (max.message.bytes, message.timestamp.type, the timestamp bounds,
// retention).
func (l *Log) UpdateTopic(topic metadata.Topic) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for tp, p := range l.partitions {
		if tp.TopicID == topic.ID {
			p.setConfig(topic, l.cfg.MaxMessageBytes)
		}
	}
}

// partitionFor returns the led partition or ErrNotLeader.
func (l *Log) partitionFor(tp metadata.TopicPartition) (*partition, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := l.partitions[tp]
	if p == nil || !p.leading() {
		return nil, fmt.Errorf("%s: %w", tp, ErrNotLeader)
	}
	return p, nil
}

// drop forgets a partition this agent no longer leads and fails everything
// waiting on it.
func (l *Log) drop(p *partition, why error) {
	l.mu.Lock()
	if l.partitions[p.tp] == p {
		delete(l.partitions, p.tp)
	}
	l.mu.Unlock()
	if p.fence() {
		l.metrics.leasesLost.Inc()
		l.log.Warn("lost partition", "topic", p.topicName, "partition", p.tp.Partition, "epoch", p.epoch, "reason", why)
	}
}

// signal wakes the sealer.
func (l *Log) signal() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// renewLoop renews all leases in one statement every LeaseTTL/3 (sooner
// after a failure), drops partitions whose lease is gone, and moves the
// deadline of those renewed. Each attempt is bounded by LeaseTTL/4, so a
// store that hangs cannot keep the next attempt from starting before the
// deadline: a lease renewed at t has attempts starting about t+TTL/3 and,
// after a timeout, t+TTL/3+TTL/4+TTL/10, both before t+TTL-LeaseClockSkew.
// The loop also wakes waiters on partitions whose deadline passed.
func (l *Log) renewLoop() {
	defer l.wg.Done()
	ttl := l.cfg.LeaseTTL
	timer := time.NewTimer(ttl / 3)
	defer timer.Stop()
	next := l.cfg.Now().Add(ttl / 3)
	for {
		now := l.cfg.Now()
		if now.Before(next) {
			wait := next.Sub(now)
			if w := l.wakeExpired(now); w > 0 && w < wait {
				wait = w + time.Millisecond
			}
			timer.Reset(wait)
			select {
			case <-l.stop:
				return
			case <-timer.C:
			}
			continue
		}
		start := l.cfg.Now()
		if err := l.renew(start); err != nil {
			l.metrics.renewFailures.Inc()
			l.log.Warn("renew leases", "err", err)
			next = start.Add(max(ttl/10, time.Millisecond))
		} else {
			next = start.Add(ttl / 3)
		}
		l.wakeExpired(l.cfg.Now())
	}
}

// renew runs one renewal that starts at start.
func (l *Log) renew(start time.Time) error {
	// Only partitions led before the renewal started can be judged by its
	// answer.
	l.mu.Lock()
	before := make(map[metadata.TopicPartition]*partition, len(l.partitions))
	for tp, p := range l.partitions {
		before[tp] = p
	}
	l.mu.Unlock()
	ctx, cancel := context.WithTimeout(l.ctx, l.cfg.LeaseTTL/4)
	leases, err := l.store.RenewLeases(ctx, l.cfg.AgentID, start, l.cfg.LeaseTTL)
	cancel()
	deadline := l.leaseDeadlineFrom(start)
	held := make(map[metadata.TopicPartition]int32, len(leases))
	for _, ls := range leases {
		held[ls.TopicPartition] = ls.Epoch
	}
	for tp, p := range before {
		switch e, ok := held[tp]; {
		case ok && e == p.epoch:
			p.extend(deadline)
		case err == nil:
			l.drop(p, errors.New("lease not renewed"))
		}
		// After an error, the leases it did not report are unknown: they
		// keep their deadline and the next attempt judges them.
	}
	return err
}

// wakeExpired wakes the waiters of partitions whose lease deadline has
// passed and returns how long until the next deadline of the others
// (0: none).
func (l *Log) wakeExpired(now time.Time) time.Duration {
	l.mu.Lock()
	parts := make([]*partition, 0, len(l.partitions))
	for _, p := range l.partitions {
		parts = append(parts, p)
	}
	l.mu.Unlock()
	var next time.Duration
	for _, p := range parts {
		p.wakeIfExpired()
		if d := p.leaseDeadline().Sub(now); d > 0 && (next == 0 || d < next) {
			next = d
		}
	}
	return next
}
