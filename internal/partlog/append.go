package partlog

import (
	"context"
	"fmt"
	"time"

	"github.com/streamhouse/streamhouse/internal/batch"
	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/wal"
)

// AppendResult says where appended batches landed.
type AppendResult struct {
	BaseOffset    int64 // offset of the first record
	LastOffset    int64 // offset of the last record
	LogAppendTime int64 // ms, or -1 when the topic uses CreateTime
	// Duplicate is true when every batch was a resend of an idempotent
	// producer's earlier batch: nothing new was stored and the offsets are
	// those of the original.
	Duplicate bool
	// LogStartOffset is the partition's log start offset at append time.
	LogStartOffset int64
}

// buffer is the agent's open write buffer: batches for every partition it
// leads, waiting to be sealed into one object. Guarded by Log.mu until
// sealed.
type buffer struct {
	parts        map[*partition]*bufPart
	order        []*bufPart
	bytes        int
	records      int
	firstAt      time.Time // when the first batch arrived
	durableSince time.Time // when the first durable waiter arrived; zero if none

	done chan struct{} // closed once every partition's outcome is known
	// errs holds the outcome per leadership term (*partition), not per
	// TopicPartition: a buffer may hold data of a term that ended and of
	// the next term of the same partition on this agent, and the old
	// term's failure must not fail the new term's writers.
	errs map[*partition]error
}

type bufPart struct {
	p         *partition
	batches   [][]byte
	base      int64
	last      int64
	records   int32
	maxTs     int64
	bytes     int
	producers map[int64]*producerState // state after this buffer's batches
	aborted   []metadata.AbortedTxn    // transactions its abort markers close
	wal       []*wal.Entry             // its WAL entries, released in finish
}

func newBuffer() *buffer {
	return &buffer{
		parts: make(map[*partition]*bufPart),
		done:  make(chan struct{}),
		errs:  make(map[*partition]error),
	}
}

func (b *buffer) empty() bool { return len(b.order) == 0 }

// fail completes every partition of the buffer with err.
func (b *buffer) fail(err error) {
	for _, bp := range b.order {
		if _, ok := b.errs[bp.p]; !ok {
			b.errs[bp.p] = err
		}
	}
	select {
	case <-b.done:
	default:
		close(b.done)
	}
}

// wait waits for the outcome of p's data in this buffer.
func (b *buffer) wait(ctx context.Context, p *partition) error {
	select {
	case <-b.done:
		return b.errs[p]
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Append validates records (one or more Kafka RecordBatch v2, concatenated,
// as in a produce request) for tp, assigns their offsets and adds them to
// the write buffer. It returns according to mode. Append takes ownership of
// records: it edits offsets in place and keeps the bytes until they are
// uploaded.
//
// Every record of every batch is checked first (batch.Check with the
// topic's bounds), compressed or not, then the record timestamps against
// message.timestamp.before/after.max.ms.
//
// A transactional batch joins its producer's open transaction on tp, or
// opens one once Config.VerifyTxn admits it (txn.go); a control batch is
// refused (batch.ErrInvalidRecord): only WriteMarker writes them.
//
// Errors wrap ErrNotLeader, ErrOutOfOrderSequence, ErrInvalidProducerEpoch,
// ErrInvalidTxnState (or the VerifyTxn error),
// ErrClosed, ErrInvalidTimestamp or one of batch's validation errors
// (ErrTooLarge for records decompressing past 32 times
// max.message.bytes); on error nothing of the
// request was stored, except for a durable wait that failed after the data
// was buffered (ctx expiry, or the partition lost while committing).
func (l *Log) Append(ctx context.Context, tp metadata.TopicPartition, records []byte, mode AckMode) (AppendResult, error) {
	a, err := l.AppendAsync(ctx, tp, records, mode)
	if err != nil {
		return AppendResult{}, err
	}
	return a.Wait(ctx)
}

// Appending is an append whose offsets are assigned and whose data is in
// the write buffer; Wait waits for what its mode still requires.
type Appending struct {
	l       *Log
	p       *partition
	mode    AckMode
	start   time.Time
	res     AppendResult
	buf     *buffer // nil if every batch was a duplicate
	dupWait int64   // high watermark duplicates wait for; -1 if none
	// walEntry is the append's WAL entry (only for AckBuffered, nil
	// without the WAL, for duplicates and for transactional batches);
	// AckBuffered waits for it, and for the commit of walDep (the
	// partition's data before it not in the WAL: walhook.go) if set.
	walEntry *wal.Entry
	walDep   *buffer
}

// AppendAsync is the first half of Append: it validates, checks the
// producer state, assigns offsets and buffers, and returns without waiting
// for durability. Appends to one partition get their offsets in the order
// their AppendAsync calls return, so a caller that must keep an order (a
// Kafka connection's pipelined produce requests) calls AppendAsync in that
// order and may then wait for many appends at once. Errors are Append's.
func (l *Log) AppendAsync(ctx context.Context, tp metadata.TopicPartition, records []byte, mode AckMode) (*Appending, error) {
	return l.appendAsync(ctx, tp, records, mode, true)
}

// appendAsync is AppendAsync; withWAL false is a WAL replay: the data stays
// out of the WAL (it is there already) and is checked for its structure,
// not against the topic's settings of now.
func (l *Log) appendAsync(ctx context.Context, tp metadata.TopicPartition, records []byte, mode AckMode, withWAL bool) (*Appending, error) {
	start := time.Now()
	batches, err := batch.Split(records)
	if err != nil {
		return nil, fmt.Errorf("append to %s: %w", tp, err)
	}
	if len(batches) == 0 {
		return nil, fmt.Errorf("append to %s: no record batch: %w", tp, batch.ErrCorrupt)
	}
	p, err := l.partitionFor(tp)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	lim := batch.Limits{MaxBatchBytes: p.maxMessageBytes, MaxRecordsBytes: p.maxRecordsBytes, RequireKeys: p.keys.enabled}
	bounds := p.timestamps
	l.mu.Unlock()
	if !withWAL {
		// A WAL replay: the data was acknowledged under the topic's
		// settings of then; settings changed since (max.message.bytes,
		// the timestamp bounds, cleanup.policy=compact's keys) must not
		// drop it now. The structure is still checked in full.
		// (Keyless records a topic switched to compact got meanwhile are
		// removed by key compaction, as the records of a keyless producer
		// would be.)
		lim.MaxBatchBytes, lim.RequireKeys = 0, false
		bounds = timestampBounds{}
	}
	// Every record is checked, compressed or not, as Kafka's broker does:
	// a batch stored here is one every reader can decode.
	now := l.cfg.Now().UnixMilli()
	headers := make([]batch.Header, len(batches))
	txn := false
	for i, b := range batches {
		h, st, err := l.check(ctx, b, lim)
		if err == nil {
			err = bounds.check(st, now)
		}
		if err != nil {
			return nil, fmt.Errorf("append to %s: %w", tp, err)
		}
		if h.IsControl() {
			return nil, fmt.Errorf("append to %s: control batches are written by transaction markers only: %w", tp, batch.ErrInvalidRecord)
		}
		if h.IsTransactional() {
			txn = true
		}
		// The index keeps the records' own newest timestamp, as Kafka
		// rewrites MaxTimestamp to it, whatever the header claims.
		h.MaxTimestamp = st.MaxTimestamp
		headers[i] = h
	}
	if txn && mode == AckBuffered && withWAL && l.wal != nil {
		// Transactional data is not written to the WAL (a replay could
		// not place it behind markers it does not hold), so with the WAL
		// on, where a buffered ack promises survival of a crash, its ack
		// waits for the commit. (Kafka clients send transactions with
		// acks=all; a client that does not still gets that promise.)
		mode = AckDurable
	}
	var verified map[int64]txnVerified
	if txn {
		v, release, err := l.verifyTxns(ctx, p, headers)
		if err != nil {
			return nil, err
		}
		if release != nil {
			defer release()
		}
		verified = v
	}
	wr, err := l.walReserve(ctx, tp, records, mode, !withWAL, txn)
	if err != nil {
		return nil, err
	}
	res, buf, dupWait, err := l.appendLocked(ctx, p, batches, headers, mode, verified, wr)
	wr.unused()
	if err != nil {
		return nil, err
	}
	entry, dep := wr.added()
	return &Appending{l: l, p: p, mode: mode, start: start, res: res, buf: buf, dupWait: dupWait, walEntry: entry, walDep: dep}, nil
}

// check is batch.Check within the agent's decompression budget: a
// compressed batch takes its decompression bound from l.decompress while
// it is checked (the pooled buffer it decompresses into is reused, so the
// budget bounds what concurrent checks hold), waiting, bounded by ctx,
// while other checks hold it.
func (l *Log) check(ctx context.Context, b []byte, lim batch.Limits) (batch.Header, batch.Stats, error) {
	if h, err := batch.ParseHeader(b); err != nil || h.Codec() == batch.CodecNone {
		return batch.Check(b, lim)
	}
	w := int64(lim.MaxRecordsBytes)
	if w <= 0 || w > batch.MaxDecompressedSize {
		w = batch.MaxDecompressedSize
	}
	if err := l.decompress.Acquire(ctx, w); err != nil {
		return batch.Header{}, batch.Stats{}, fmt.Errorf("wait for decompression budget: %w", err)
	}
	defer l.decompress.Release(w)
	return batch.Check(b, lim)
}

// Wait returns the append's result once its mode is satisfied: at once for
// AckNone, for AckBuffered once the data is fsynced in the WAL (at once
// without it), after the commit for AckDurable.
func (a *Appending) Wait(ctx context.Context) (AppendResult, error) {
	if a.mode == AckDurable {
		var err error
		if a.buf != nil {
			err = a.buf.wait(ctx, a.p)
		} else if a.dupWait >= 0 {
			err = a.p.waitCommitted(ctx, a.dupWait)
		}
		if err != nil {
			return AppendResult{}, fmt.Errorf("append to %s: %w", a.p.tp, err)
		}
	}
	if a.mode == AckBuffered && a.walEntry != nil {
		if err := a.waitWAL(ctx); err != nil {
			return AppendResult{}, fmt.Errorf("append to %s: %w", a.p.tp, err)
		}
	}
	if a.mode == AckBuffered && a.walEntry == nil && a.dupWait >= 0 && a.l.wal != nil {
		// A resent batch whose original may not be fsynced yet: its ack
		// must not come before the original's would. Waiting for the
		// commit (rare: resends) is the simple bound.
		if err := a.p.waitCommitted(ctx, a.dupWait); err != nil {
			return AppendResult{}, fmt.Errorf("append to %s: %w", a.p.tp, err)
		}
	}
	a.l.metrics.appendSeconds.WithLabelValues(a.mode.String()).Observe(time.Since(a.start).Seconds())
	return a.res, nil
}

// appendLocked does the part of Append that needs Log.mu: backpressure,
// idempotence checks, offset assignment and buffering. It returns the buffer
// the data went into (nil if all duplicates) and, for duplicates, the high
// watermark to wait for (-1 if none).
//
// verified holds the transaction verifications of the request's producers
// (verifyTxns); a transactional batch that would open a transaction needs
// one that no marker has voided since.
//
// With wr (the WAL's part in the request) the appended batches are queued
// to the WAL in offset order, or noted as not in it (wr.add), under Log.mu.
func (l *Log) appendLocked(ctx context.Context, p *partition, batches [][]byte, headers []batch.Header, mode AckMode, verified map[int64]txnVerified, wr *walReservation) (AppendResult, *buffer, int64, error) {
	size := 0
	for _, b := range batches {
		size += len(b)
	}
	l.mu.Lock()
	// Backpressure: wait while buffered plus uploading bytes exceed the
	// bound. A lone request larger than the bound still goes through once
	// nothing else is pending.
	for l.pending > 0 && l.pending+size > l.cfg.MaxPendingBytes && !l.closed {
		ch := l.spaceFreed
		l.mu.Unlock()
		l.metrics.backpressureWaits.Inc()
		select {
		case <-ch:
		case <-ctx.Done():
			return AppendResult{}, nil, -1, fmt.Errorf("append to %s: waiting for buffer space: %w", p.tp, ctx.Err())
		}
		l.mu.Lock()
	}
	defer l.mu.Unlock()
	if l.closed {
		return AppendResult{}, nil, -1, fmt.Errorf("append to %s: %w", p.tp, ErrClosed)
	}
	if p.releasing || l.partitions[p.tp] != p || !p.leading() {
		return AppendResult{}, nil, -1, fmt.Errorf("append to %s: %w", p.tp, ErrNotLeader)
	}

	now := l.cfg.Now()
	// Check every batch before storing any.
	pending := make(map[int64]*producerState)
	dups := make([]*metadata.ProducerBatch, len(batches))
	for i, h := range headers {
		c, err := p.checkProducer(h, pending)
		if err == nil && c.dup == nil && h.IsTransactional() {
			st := pending[h.ProducerID]
			if st == nil {
				st = p.producers[h.ProducerID]
			}
			err = checkTxnOpen(h, st, verified)
		}
		if err != nil {
			return AppendResult{}, nil, -1, fmt.Errorf("append to %s: %w", p.tp, err)
		}
		dups[i] = c.dup
		if c.dup == nil {
			// Let later batches of this request see this one.
			recordProducer(pending, p.producers, h, 0, now)
		}
	}
	clear(pending)

	res := AppendResult{BaseOffset: -1, LogAppendTime: -1, Duplicate: true}
	_, res.LogStartOffset, _, _ = p.committedState()
	dupWait := int64(-1)
	var bp *bufPart
	records := 0 // appended, duplicates not counted
	for i, b := range batches {
		h := headers[i]
		if d := dups[i]; d != nil {
			if res.BaseOffset < 0 {
				res.BaseOffset = d.BaseOffset
			}
			res.LastOffset = d.LastOffset
			dupWait = max(dupWait, d.LastOffset+1)
			continue
		}
		res.Duplicate = false
		base := p.nextOffset
		batch.SetBaseOffset(b, base)
		batch.SetPartitionLeaderEpoch(b, p.epoch)
		if p.logAppendTime {
			batch.SetLogAppendTime(b, now.UnixMilli())
			h.MaxTimestamp = now.UnixMilli()
			res.LogAppendTime = h.MaxTimestamp
		}
		p.nextOffset = base + int64(h.LastOffsetDelta) + 1
		if res.BaseOffset < 0 || res.Duplicate {
			res.BaseOffset = base
		}
		res.LastOffset = p.nextOffset - 1
		if bp == nil {
			bp = l.buf.partFor(p)
		}
		bp.add(b, h, base)
		wr.batch(b, h, base)
		if recordProducer(bp.producers, p.producers, h, base, now) {
			p.openTxns[h.ProducerID] = base
		}
		l.buf.bytes += len(b)
		l.buf.records += int(h.NumRecords)
		records += int(h.NumRecords)
		l.pending += len(b)
	}
	if bp == nil {
		return res, nil, dupWait, nil
	}
	wr.add(l, l.buf, bp, p)
	// Publish producer state to the partition once the request is in.
	for id, st := range bp.producers {
		p.producers[id] = st
	}
	if l.buf.firstAt.IsZero() {
		l.buf.firstAt = now
	}
	if mode == AckDurable && l.buf.durableSince.IsZero() {
		l.buf.durableSince = now
	}
	l.metrics.appendBytes.Add(float64(size))
	l.metrics.appendRecords.Add(float64(records))
	l.metrics.pendingBytes.Set(float64(l.pending))
	l.signal()
	return res, l.buf, dupWait, nil
}

// partFor returns p's part of the buffer, creating it.
func (b *buffer) partFor(p *partition) *bufPart {
	bp := b.parts[p]
	if bp == nil {
		bp = &bufPart{p: p, base: -1, maxTs: -1, producers: make(map[int64]*producerState)}
		b.parts[p] = bp
		b.order = append(b.order, bp)
	}
	return bp
}

func (bp *bufPart) add(b []byte, h batch.Header, base int64) {
	if bp.base < 0 {
		bp.base = base
	}
	bp.batches = append(bp.batches, b)
	bp.last = base + int64(h.LastOffsetDelta)
	bp.records += h.NumRecords
	bp.maxTs = max(bp.maxTs, h.MaxTimestamp)
	bp.bytes += len(b)
}
