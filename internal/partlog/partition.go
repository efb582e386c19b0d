package partlog

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/streamhouse/streamhouse/internal/batch"
	"github.com/streamhouse/streamhouse/internal/metadata"
)

// maxProducerBatches is how many recent batches per producer are remembered
// for duplicate detection, as in Kafka (max.in.flight.requests ≤ 5).
const maxProducerBatches = 5

// maxIndexEntries bounds the in-memory index tail of a partition; older
// lookups go to the metadata store.
const maxIndexEntries = 4096

// partition is a partition this agent leads.
//
// Write-side fields are guarded by Log.mu; read-side fields by mu.
type partition struct {
	tp        metadata.TopicPartition
	topicName string
	epoch     int32

	// Guarded by Log.mu.
	nextOffset      int64
	producers       map[int64]*producerState
	releasing       bool
	maxMessageBytes int
	maxRecordsBytes int // decompressed bound of one batch's records
	logAppendTime   bool
	timestamps      timestampBounds
	retention       retention
	keys            keyPolicy // key compaction (keycompact.go)
	// openTxns maps the producers with a transaction open on the
	// partition to its first offset (txn.go); the last stable offset of
	// what is sealed is the least of them.
	openTxns map[int64]int64
	// txnGuards are the producers with a transaction verification in
	// flight (txn.go).
	txnGuards map[int64]*txnGuard
	// unlogged is the newest buffer holding data of this term that is not
	// in the WAL (durable, acks=0 and transactional appends, markers), or
	// nil; a buffered append after it waits for its commit (walhook.go).
	unlogged *buffer

	mu        sync.Mutex
	committed int64 // high watermark
	logStart  int64
	lso       int64 // committed last stable offset (before clamping to logStart)
	aborted   abortedIndex
	index     []metadata.IndexEntry // recent entries, ascending, contiguous
	changed   chan struct{}         // closed and replaced on every change
	fenced    bool                  // this leadership term is over
	// deadline is when the lease stops being safe to act on (see
	// Log.LeaseDeadline): last successful acquisition or renewal start +
	// LeaseTTL - LeaseClockSkew, on the monotonic clock of now.
	deadline time.Time
	now      func() time.Time
	// expiryWoken records that waiters were woken for the current
	// deadline's passing (so it happens once per deadline).
	expiryWoken bool
	// uncertain is set while a commit of this partition's data failed
	// with an unknown outcome (it may have landed) and is being retried:
	// the store may then be ahead of committed, so readers go to the store
	// rather than be served a high watermark below one already visible
	// there.
	uncertain bool
}

type producerState struct {
	epoch   int16
	batches []metadata.ProducerBatch // oldest first
	updated time.Time                // last append (see Log.ExpireProducers)
	// inTxn: the producer has a transaction open on the partition, from
	// txnFirst on. coordEpoch is the coordinator epoch of its last marker
	// (-1 if none).
	inTxn      bool
	txnFirst   int64
	coordEpoch int32
}

func newPartition(topic metadata.Topic, part int32, lease metadata.Lease, states []metadata.ProducerState, defMaxBytes int, deadline time.Time, now func() time.Time) *partition {
	p := &partition{
		deadline:   deadline,
		now:        now,
		tp:         lease.TopicPartition,
		topicName:  topic.Name,
		epoch:      lease.Epoch,
		nextOffset: lease.HighWatermark,
		committed:  lease.HighWatermark,
		logStart:   lease.LogStartOffset,
		producers:  make(map[int64]*producerState, len(states)),
		openTxns:   make(map[int64]int64),
		txnGuards:  make(map[int64]*txnGuard),
		changed:    make(chan struct{}),
	}
	for _, s := range states {
		p.producers[s.ProducerID] = &producerState{
			epoch: s.Epoch, batches: append([]metadata.ProducerBatch(nil), s.Batches...), updated: s.UpdatedAt,
			inTxn: s.InTxn, txnFirst: s.TxnFirstOffset, coordEpoch: s.CoordinatorEpoch,
		}
		if s.InTxn {
			p.openTxns[s.ProducerID] = s.TxnFirstOffset
		}
	}
	p.lso = p.sealedLSO(lease.HighWatermark)
	p.setConfig(topic, defMaxBytes)
	return p
}

// setConfig applies the topic configs the write path enforces. Called with
// Log.mu held (or before the partition is shared).
func (p *partition) setConfig(topic metadata.Topic, defMaxBytes int) {
	p.maxMessageBytes = defMaxBytes
	if v, ok := topic.Config["max.message.bytes"]; ok {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			p.maxMessageBytes = n
		}
	}
	p.maxRecordsBytes = recordsBound(p.maxMessageBytes)
	p.logAppendTime = topic.Config["message.timestamp.type"] == "LogAppendTime"
	p.timestamps = timestampBoundsOf(topic)
	p.retention = retentionOf(topic)
	p.keys = keyPolicyOf(topic)
}

// maxCompressionRatio ties the decompressed size a compressed batch may
// have to the topic's max.message.bytes (which bounds it as sent): 32
// times, so a 1 MiB batch may hold 32 MiB of records, well above what real
// data compresses by, and never more than batch.MaxDecompressedSize.
const maxCompressionRatio = 32

// recordsBound is the most a batch's records may take decompressed on a
// topic whose max.message.bytes is maxMessageBytes.
func recordsBound(maxMessageBytes int) int {
	return int(min(int64(maxMessageBytes)*maxCompressionRatio, batch.MaxDecompressedSize))
}

// Kafka's defaults for the timestamp bounds (KIP-937; the after bound is
// one hour since Kafka 4.0, KIP-1030).
const (
	defaultTimestampBeforeMs = math.MaxInt64
	defaultTimestampAfterMs  = 3600000
)

// timestampBounds is what the write path checks record timestamps against
// (KIP-937): message.timestamp.before.max.ms and after.max.ms, applied only
// when the topic keeps producers' timestamps (CreateTime).
type timestampBounds struct {
	createTime    bool
	before, after int64
}

func timestampBoundsOf(topic metadata.Topic) timestampBounds {
	b := timestampBounds{
		createTime: topic.Config["message.timestamp.type"] != "LogAppendTime",
		before:     defaultTimestampBeforeMs,
		after:      defaultTimestampAfterMs,
	}
	if n, err := strconv.ParseInt(topic.Config["message.timestamp.before.max.ms"], 10, 64); err == nil && n >= 0 {
		b.before = n
	}
	if n, err := strconv.ParseInt(topic.Config["message.timestamp.after.max.ms"], 10, 64); err == nil && n >= 0 {
		b.after = n
	}
	return b
}

// check applies the bounds to a batch's records as Kafka's LogValidator
// does: records without a timestamp (-1) pass, and so does everything on a
// LogAppendTime topic, whose records get the broker's time.
func (b timestampBounds) check(st batch.Stats, now int64) error {
	if !b.createTime || st.MaxTimestamp == -1 {
		return nil
	}
	// With now >= 0 and both bounds >= 0, now-before cannot overflow;
	// now+after saturates.
	lo, hi := int64(math.MinInt64), int64(math.MaxInt64)
	if now >= 0 {
		lo = now - b.before
		if b.after < math.MaxInt64-now {
			hi = now + b.after
		}
	}
	for _, ts := range []int64{st.MinTimestamp, st.MaxTimestamp} {
		if ts < lo || ts > hi {
			return fmt.Errorf("timestamp %d is outside [%d, %d] (message.timestamp.before.max.ms %d, after.max.ms %d): %w",
				ts, lo, hi, b.before, b.after, ErrInvalidTimestamp)
		}
	}
	return nil
}

// fence marks the partition as no longer led and wakes every waiter. It
// reports whether this call did it.
func (p *partition) fence() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fenced {
		return false
	}
	p.fenced = true
	close(p.changed)
	p.changed = make(chan struct{})
	return true
}

// isFenced reports whether this leadership term is over. The write
// pipeline uses it: data a term assigned offsets to is still committed
// (fenced by its epoch in the store) while the lease deadline has passed.
func (p *partition) isFenced() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.fenced
}

// leading reports whether the agent may act as this partition's leader
// now: the term is not over and the lease deadline has not passed.
func (p *partition) leading() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.leadingLocked()
}

func (p *partition) leadingLocked() bool {
	return !p.fenced && p.now().Before(p.deadline)
}

// extend moves the lease deadline to at (never back) after a successful
// renewal that started at at - LeaseTTL + LeaseClockSkew.
func (p *partition) extend(at time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if at.After(p.deadline) {
		p.deadline = at
		p.expiryWoken = false
	}
}

// leaseDeadline returns the partition's lease deadline.
func (p *partition) leaseDeadline() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.deadline
}

// wakeIfExpired wakes every waiter once when the deadline has passed, so
// long polls re-check leadership instead of waiting out their timeout.
func (p *partition) wakeIfExpired() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fenced || p.expiryWoken || p.now().Before(p.deadline) {
		return
	}
	p.expiryWoken = true
	close(p.changed)
	p.changed = make(chan struct{})
}

// committedState returns the high watermark, log start offset and a channel
// closed at the next change. fenced is true when the agent may not act as
// leader (the term is over or the lease deadline has passed): callers then
// go to the metadata store, the authority, instead.
func (p *partition) committedState() (hw, logStart int64, changed <-chan struct{}, fenced bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.committed, p.logStart, p.changed, !p.leadingLocked() || p.uncertain
}

// setUncertain marks that a commit with this partition's data may have
// landed unseen (see uncertain).
func (p *partition) setUncertain() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.uncertain = true
}

// advance records a successful commit of entry, after which the last
// stable offset is lso and aborted joined the aborted index.
func (p *partition) advance(e metadata.IndexEntry, lso int64, aborted []metadata.AbortedTxn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lso = lso
	if len(aborted) > 0 {
		p.aborted.add(aborted)
	}
	if len(p.index) >= maxIndexEntries {
		n := copy(p.index, p.index[len(p.index)/4:])
		p.index = p.index[:n]
	}
	p.index = append(p.index, e)
	p.committed = e.LastOffset + 1
	p.uncertain = false
	close(p.changed)
	p.changed = make(chan struct{})
}

// lookup returns the in-memory index entries covering offset onwards, or
// ok=false when offset is older than the in-memory tail.
func (p *partition) lookup(offset int64, max int) (entries []metadata.IndexEntry, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.index) == 0 || offset < p.index[0].BaseOffset {
		return nil, false
	}
	i := sort.Search(len(p.index), func(i int) bool { return p.index[i].LastOffset >= offset })
	end := min(len(p.index), i+max)
	return append([]metadata.IndexEntry(nil), p.index[i:end]...), true
}

// waitCommitted waits until the high watermark reaches target.
func (p *partition) waitCommitted(ctx context.Context, target int64) error {
	for {
		// The term's own end, not the lease deadline: data of a term whose
		// lease has lapsed may still commit (the store fences by epoch).
		p.mu.Lock()
		hw, ch, fenced := p.committed, p.changed, p.fenced
		p.mu.Unlock()
		if hw >= target {
			return nil
		}
		if fenced {
			return fmt.Errorf("%s: %w", p.tp, ErrNotLeader)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// producerCheck is the outcome of an idempotence check for one batch.
type producerCheck struct {
	dup *metadata.ProducerBatch // set when the batch was already appended
}

// checkProducer validates an idempotent batch against the producer's state,
// including batches of the same request already checked (pending). Called
// with Log.mu held. It changes nothing.
func (p *partition) checkProducer(h batch.Header, pending map[int64]*producerState) (producerCheck, error) {
	if h.ProducerID < 0 || h.BaseSequence < 0 {
		if h.IsTransactional() {
			return producerCheck{}, fmt.Errorf("transactional batch without producer id and sequence: %w", batch.ErrInvalidRecord)
		}
		return producerCheck{}, nil
	}
	st := pending[h.ProducerID]
	if st == nil {
		st = p.producers[h.ProducerID]
	}
	if st != nil && st.inTxn && h.ProducerEpoch >= st.epoch {
		switch {
		case !h.IsTransactional():
			return producerCheck{}, fmt.Errorf("producer %d: non-transactional batch while its transaction is open: %w", h.ProducerID, ErrInvalidTxnState)
		case h.ProducerEpoch > st.epoch:
			return producerCheck{}, fmt.Errorf("producer %d: epoch %d while its transaction of epoch %d is open: %w", h.ProducerID, h.ProducerEpoch, st.epoch, ErrInvalidTxnState)
		}
	}
	lastSeq := seqAdd(h.BaseSequence, h.LastOffsetDelta)
	switch {
	case st == nil:
		if h.BaseSequence != 0 {
			return producerCheck{}, fmt.Errorf("producer %d: first sequence %d, want 0: %w", h.ProducerID, h.BaseSequence, ErrOutOfOrderSequence)
		}
		return producerCheck{}, nil
	case h.ProducerEpoch < st.epoch:
		return producerCheck{}, fmt.Errorf("producer %d: epoch %d is older than %d: %w", h.ProducerID, h.ProducerEpoch, st.epoch, ErrInvalidProducerEpoch)
	case h.ProducerEpoch > st.epoch:
		if h.BaseSequence != 0 {
			return producerCheck{}, fmt.Errorf("producer %d: new epoch %d starts at sequence %d, want 0: %w", h.ProducerID, h.ProducerEpoch, h.BaseSequence, ErrOutOfOrderSequence)
		}
		return producerCheck{}, nil
	}
	for i := range st.batches {
		b := &st.batches[i]
		if b.FirstSeq == h.BaseSequence && b.LastSeq == lastSeq {
			dup := *b
			return producerCheck{dup: &dup}, nil
		}
	}
	if n := len(st.batches); n > 0 {
		if want := seqAdd(st.batches[n-1].LastSeq, 1); h.BaseSequence != want {
			return producerCheck{}, fmt.Errorf("producer %d: sequence %d, want %d: %w", h.ProducerID, h.BaseSequence, want, ErrOutOfOrderSequence)
		}
	} else if h.BaseSequence != 0 {
		// A marker that raised the epoch left no batch: the new epoch
		// starts at sequence 0, as Kafka.
		return producerCheck{}, fmt.Errorf("producer %d: epoch %d starts at sequence %d, want 0: %w", h.ProducerID, h.ProducerEpoch, h.BaseSequence, ErrOutOfOrderSequence)
	}
	return producerCheck{}, nil
}

// recordProducer remembers an appended batch in st (a copy-on-write state
// for the request). Called with Log.mu held. It reports whether the batch
// opened a transaction of its producer.
func recordProducer(pending map[int64]*producerState, committed map[int64]*producerState, h batch.Header, base int64, now time.Time) (opened bool) {
	if h.ProducerID < 0 || h.BaseSequence < 0 {
		return false
	}
	st := pending[h.ProducerID]
	if st == nil {
		st = &producerState{epoch: h.ProducerEpoch, coordEpoch: -1}
		if old := committed[h.ProducerID]; old != nil {
			if old.epoch == h.ProducerEpoch {
				st.batches = append(st.batches, old.batches...)
			}
			st.inTxn, st.txnFirst, st.coordEpoch = old.inTxn, old.txnFirst, old.coordEpoch
		}
		pending[h.ProducerID] = st
	}
	if h.IsTransactional() && !st.inTxn {
		st.inTxn, st.txnFirst, opened = true, base, true
	}
	if h.ProducerEpoch != st.epoch {
		st.epoch, st.batches = h.ProducerEpoch, st.batches[:0]
	}
	st.updated = now
	st.batches = append(st.batches, metadata.ProducerBatch{
		FirstSeq:   h.BaseSequence,
		LastSeq:    seqAdd(h.BaseSequence, h.LastOffsetDelta),
		BaseOffset: base,
		LastOffset: base + int64(h.LastOffsetDelta),
		Timestamp:  h.MaxTimestamp,
	})
	if n := len(st.batches); n > maxProducerBatches {
		st.batches = append(st.batches[:0], st.batches[n-maxProducerBatches:]...)
	}
	return opened
}

// snapshot returns the stored form of a producer's state.
func (st *producerState) snapshot(id int64) metadata.ProducerState {
	return metadata.ProducerState{
		ProducerID: id, Epoch: st.epoch, Batches: append([]metadata.ProducerBatch(nil), st.batches...), UpdatedAt: st.updated,
		InTxn: st.inTxn, TxnFirstOffset: st.txnFirst, CoordinatorEpoch: st.coordEpoch,
	}
}

// seqAdd adds to a Kafka producer sequence, which wraps at MaxInt32 to 0.
func seqAdd(seq, n int32) int32 {
	s := int64(seq) + int64(n)
	if s > math.MaxInt32 {
		s -= math.MaxInt32 + 1
	}
	return int32(s)
}
