package partlog

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/streamhouse/streamhouse/internal/batch"
	"github.com/streamhouse/streamhouse/internal/metadata"
)

// Transactions in the partition log (docs/architecture.md,
// "Transactions"): transactional batches open a transaction of their
// producer on the partition, a marker (a control batch) closes it, the last
// stable offset (LSO) is the first offset of the oldest transaction still
// open, and aborted transactions are indexed so read_committed readers can
// drop their records.

// ErrInvalidTxnState: a transactional batch for a transaction its
// coordinator does not have open on this partition (never added, already
// decided, or from an idempotent producer that set the transactional bit):
// Kafka INVALID_TXN_STATE. Nothing was stored.
var ErrInvalidTxnState = errors.New("invalid transaction state")

// ErrCoordinatorFenced: a marker from a coordinator whose epoch is older
// than that of the last marker written for the producer on the partition
// (Kafka TRANSACTION_COORDINATOR_FENCED): a coordinator that lost its slot
// must not close a transaction its successor manages. Nothing was written.
var ErrCoordinatorFenced = errors.New("transaction coordinator fenced")

// VerifyTxnFunc asks the transaction coordinator whether producerID at
// epoch has a transaction open that includes tp. The log calls it before
// storing a transactional batch that would open a transaction of the
// producer on tp (Kafka's KIP-890 server-side verification), so a late or
// forged transactional write can never leave a transaction open that no
// coordinator will close (a "hanging" transaction that would hold the LSO
// forever). It returns nil to admit the batch, an error wrapping
// ErrInvalidTxnState or ErrInvalidProducerEpoch to refuse it, or another
// error (retriable) when it cannot tell.
type VerifyTxnFunc func(ctx context.Context, tp metadata.TopicPartition, producerID int64, epoch int16) error

// Isolation is a reader's isolation level (Kafka's isolation_level).
type Isolation int8

const (
	// ReadUncommitted reads up to the high watermark.
	ReadUncommitted Isolation = 0
	// ReadCommitted reads up to the last stable offset, and gets the
	// aborted transactions of the range it read.
	ReadCommitted Isolation = 1
)

// Marker is a transaction marker for one partition.
type Marker struct {
	ProducerID       int64
	ProducerEpoch    int16
	Commit           bool  // commit marker; false: abort
	CoordinatorEpoch int32 // the coordinator's slot lease epoch
	// TransactionVersion is the transaction's (Kafka's WriteTxnMarkers
	// v2): 2 when the marker's epoch is the transaction's bumped by its
	// end (transactions V2), so it is above every batch of the
	// transaction, and a marker whose epoch the producer already reached
	// on the partition was written before (a late retry) and must not
	// close the producer's next transaction.
	TransactionVersion int8
}

// MarkerResult says what WriteMarker did.
type MarkerResult struct {
	// Written is false when the producer had no transaction open on the
	// partition (the marker was written before, or the producer never
	// wrote there): nothing was stored, and that is success.
	Written bool
	Offset  int64 // the marker's offset when Written
}

// ReadOptions are Read's options beyond the offset.
type ReadOptions struct {
	MaxBytes  int
	MaxWait   time.Duration
	Isolation Isolation
}

// WriteMarker appends a marker for m's producer to tp and waits until it
// is committed (durable). If the producer has a transaction open on tp it
// writes the control batch (Kafka's EndTxnMarker: key version 0 and type
// 0 abort / 1 commit; value version 0 and the coordinator epoch), closes
// the transaction, adds it to the aborted index when aborting, raises the
// producer's epoch to m.ProducerEpoch (fencing older writes) and advances
// the LSO. An epoch older than the producer's current one is refused
// (ErrInvalidProducerEpoch), and so is a coordinator epoch older than the
// last marker's (ErrCoordinatorFenced); a V2 marker (TransactionVersion 2)
// at the producer's current epoch is a late retry and writes nothing.
// ErrNotLeader when this agent does not lead tp.
//
// Without an open transaction nothing is written (Written false), once
// everything appended to tp before the call is committed: a marker that an
// earlier call wrote but could not wait for is durable when a retry
// answers.
func (l *Log) WriteMarker(ctx context.Context, tp metadata.TopicPartition, m Marker) (MarkerResult, error) {
	p, err := l.partitionFor(tp)
	if err != nil {
		return MarkerResult{}, err
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return MarkerResult{}, fmt.Errorf("write marker to %s: %w", tp, ErrClosed)
	}
	if p.releasing || l.partitions[p.tp] != p || !p.leading() {
		l.mu.Unlock()
		return MarkerResult{}, fmt.Errorf("write marker to %s: %w", tp, ErrNotLeader)
	}
	// A marker whose request is over (the WriteTxnMarkers handler bounds
	// it by the coordinator's marker timeout) is not written: after that
	// the coordinator may retry, complete and let the producer open its
	// next transaction here, which a late marker would close.
	if err := ctx.Err(); err != nil {
		l.mu.Unlock()
		return MarkerResult{}, fmt.Errorf("write marker to %s: %w", tp, err)
	}
	// Whatever happens next, a verification of this producer's batches
	// that started before it is void: the coordinator may have decided.
	if g := p.txnGuards[m.ProducerID]; g != nil {
		g.marks++
	}
	st := p.producers[m.ProducerID]
	switch {
	case st != nil && m.ProducerEpoch < st.epoch:
		l.mu.Unlock()
		return MarkerResult{}, fmt.Errorf("write marker to %s: producer %d: epoch %d is older than %d: %w", tp, m.ProducerID, m.ProducerEpoch, st.epoch, ErrInvalidProducerEpoch)
	case st != nil && m.CoordinatorEpoch < st.coordEpoch:
		l.mu.Unlock()
		return MarkerResult{}, fmt.Errorf("write marker to %s: producer %d: coordinator epoch %d is older than %d: %w", tp, m.ProducerID, m.CoordinatorEpoch, st.coordEpoch, ErrCoordinatorFenced)
	case st == nil || !st.inTxn || (m.TransactionVersion >= 2 && m.ProducerEpoch == st.epoch):
		// Nothing open for this marker to close: it was written before,
		// or the producer never wrote here. A V2 marker is always above
		// its transaction's epoch, so at the producer's epoch it is a
		// late retry of one that raised the epoch to it, and what is
		// open is the producer's next transaction.
		target := p.nextOffset
		if !l.buf.empty() && l.buf.durableSince.IsZero() {
			// Wait for the data before it as a durable write would,
			// not for the buffered-only flush interval.
			l.buf.durableSince = l.cfg.Now()
			l.signal()
		}
		l.mu.Unlock()
		if err := p.waitCommitted(ctx, target); err != nil {
			return MarkerResult{}, fmt.Errorf("write marker to %s: %w", tp, err)
		}
		return MarkerResult{}, nil
	}
	now := l.cfg.Now()
	b, err := batch.BuildControl(batch.EndTxnMarker{
		ProducerID: m.ProducerID, ProducerEpoch: m.ProducerEpoch, Commit: m.Commit,
		CoordinatorEpoch: m.CoordinatorEpoch, Timestamp: now.UnixMilli(),
	})
	if err != nil {
		l.mu.Unlock()
		return MarkerResult{}, fmt.Errorf("write marker to %s: %w", tp, err)
	}
	h, err := batch.ParseHeader(b)
	if err != nil {
		l.mu.Unlock()
		return MarkerResult{}, fmt.Errorf("write marker to %s: %w", tp, err)
	}
	base := p.nextOffset
	batch.SetBaseOffset(b, base)
	batch.SetPartitionLeaderEpoch(b, p.epoch)
	if p.logAppendTime {
		batch.SetLogAppendTime(b, now.UnixMilli())
		h.MaxTimestamp = now.UnixMilli()
	}
	p.nextOffset = base + 1
	bp := l.buf.partFor(p)
	bp.add(b, h, base)
	l.walUnlogged(p)
	l.buf.bytes += len(b)
	l.buf.records++
	l.pending += len(b)

	// The producer's new state, copy on write as in appendLocked: a state
	// this buffer already holds is the buffer's own.
	ns := bp.producers[m.ProducerID]
	if ns == nil {
		ns = &producerState{epoch: st.epoch, batches: append([]metadata.ProducerBatch(nil), st.batches...), updated: st.updated,
			inTxn: st.inTxn, txnFirst: st.txnFirst, coordEpoch: st.coordEpoch}
		bp.producers[m.ProducerID] = ns
		p.producers[m.ProducerID] = ns
	}
	if !m.Commit {
		bp.aborted = append(bp.aborted, metadata.AbortedTxn{ProducerID: m.ProducerID, FirstOffset: ns.txnFirst, LastOffset: base})
	}
	ns.inTxn, ns.txnFirst = false, 0
	ns.coordEpoch = m.CoordinatorEpoch
	ns.updated = now
	if m.ProducerEpoch > ns.epoch {
		// A new epoch: its first batch has sequence 0 (checkProducer).
		ns.epoch, ns.batches = m.ProducerEpoch, nil
	}
	delete(p.openTxns, m.ProducerID)

	if l.buf.firstAt.IsZero() {
		l.buf.firstAt = now
	}
	if l.buf.durableSince.IsZero() {
		l.buf.durableSince = now
	}
	buf := l.buf
	l.metrics.pendingBytes.Set(float64(l.pending))
	l.mu.Unlock()
	l.signal()
	if err := buf.wait(ctx, p); err != nil {
		return MarkerResult{}, fmt.Errorf("write marker to %s: %w", tp, err)
	}
	return MarkerResult{Written: true, Offset: base}, nil
}

// TxnOpen reports whether producerID has a transaction open on tp at
// epoch, so its next transactional batch there at that epoch joins it
// without asking the coordinator. False when tp is not led here.
func (l *Log) TxnOpen(tp metadata.TopicPartition, producerID int64, epoch int16) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := l.partitions[tp]
	if p == nil {
		return false
	}
	st := p.producers[producerID]
	return st != nil && st.inTxn && st.epoch == epoch
}

// txnGuard counts the markers written for one producer on a partition
// while verifications of its transactional batches are in flight, so an
// append can tell that a marker came between its verification and its
// turn under Log.mu. Guarded by Log.mu; it lives only while refs > 0, so
// the guards are bounded by the appends in flight.
type txnGuard struct {
	refs  int
	marks uint64
}

// txnVerified is a producer's verification for one append.
type txnVerified struct {
	epoch int16
	guard *txnGuard
	marks uint64 // guard.marks before verifying
}

// verifyTxns asks the coordinator (Config.VerifyTxn, outside the locks)
// about every producer whose transactional batches in headers would open a
// transaction on p. It returns the verifications for appendLocked to
// re-check and a release function to call once the append is done (nil
// when nothing needed verifying).
func (l *Log) verifyTxns(ctx context.Context, p *partition, headers []batch.Header) (map[int64]txnVerified, func(), error) {
	l.mu.Lock()
	var out map[int64]txnVerified
	for _, h := range headers {
		if !h.IsTransactional() || h.ProducerID < 0 {
			continue
		}
		if st := p.producers[h.ProducerID]; st != nil && (h.ProducerEpoch < st.epoch || (st.inTxn && st.epoch == h.ProducerEpoch)) {
			// Joins its open transaction, or is fenced (checkProducer
			// refuses it with ErrInvalidProducerEpoch).
			continue
		}
		if _, ok := out[h.ProducerID]; ok {
			continue
		}
		if l.cfg.VerifyTxn == nil {
			l.mu.Unlock()
			return nil, nil, fmt.Errorf("append to %s: producer %d: transactions are not enabled: %w", p.tp, h.ProducerID, ErrInvalidTxnState)
		}
		g := p.txnGuards[h.ProducerID]
		if g == nil {
			g = &txnGuard{}
			p.txnGuards[h.ProducerID] = g
		}
		g.refs++
		if out == nil {
			out = make(map[int64]txnVerified, 1)
		}
		out[h.ProducerID] = txnVerified{epoch: h.ProducerEpoch, guard: g, marks: g.marks}
	}
	l.mu.Unlock()
	if out == nil {
		return nil, nil, nil
	}
	release := func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		for id, v := range out {
			if v.guard.refs--; v.guard.refs == 0 && p.txnGuards[id] == v.guard {
				delete(p.txnGuards, id)
			}
		}
	}
	for id, v := range out {
		if err := l.cfg.VerifyTxn(ctx, p.tp, id, v.epoch); err != nil {
			release()
			return nil, nil, fmt.Errorf("append to %s: verify transaction of producer %d: %w", p.tp, id, err)
		}
	}
	return out, release, nil
}

// checkTxnOpen refuses a transactional batch that would open a transaction
// of its producer without a verification still valid (no marker for the
// producer since). st is the producer's state before the batch. Called
// with Log.mu held.
func checkTxnOpen(h batch.Header, st *producerState, verified map[int64]txnVerified) error {
	if st != nil && st.inTxn {
		return nil
	}
	v, ok := verified[h.ProducerID]
	switch {
	case !ok || v.epoch != h.ProducerEpoch:
		return fmt.Errorf("producer %d: transactional batch for a transaction not verified open here: %w", h.ProducerID, ErrInvalidTxnState)
	case v.guard.marks != v.marks:
		return fmt.Errorf("producer %d: a marker was written while its transaction was being verified: %w", h.ProducerID, ErrInvalidTxnState)
	}
	return nil
}

// sealedLSO is the last stable offset of p's data sealed up to hw (the
// offset after it): the first offset of the oldest open transaction, else
// hw. Called with Log.mu held (or before p is shared).
func (p *partition) sealedLSO(hw int64) int64 {
	lso := hw
	for _, first := range p.openTxns {
		lso = min(lso, first)
	}
	return lso
}

// maxAbortedTxns bounds a led partition's in-memory aborted index; older
// entries are read from the store. abortedTailOffsets is how far back from
// the high watermark Lead loads it.
const (
	maxAbortedTxns     = 4096
	abortedTailOffsets = 1 << 16
)

// abortedIndex is a led partition's recent aborted transactions in marker
// (LastOffset) order; it holds every one with LastOffset >= from.
type abortedIndex struct {
	from    int64
	entries []metadata.AbortedTxn
}

// add appends entries (in marker order, after every entry held).
func (a *abortedIndex) add(entries []metadata.AbortedTxn) {
	a.entries = append(a.entries, entries...)
	if n := len(a.entries); n > maxAbortedTxns {
		drop := n - maxAbortedTxns*3/4
		a.from = a.entries[drop-1].LastOffset + 1
		a.entries = append(a.entries[:0], a.entries[drop:]...)
	}
}

// overlapping returns the entries with LastOffset >= from and FirstOffset
// < to, ordered by FirstOffset; ok is false when the index does not cover
// from.
func (a *abortedIndex) overlapping(from, to int64) (out []metadata.AbortedTxn, ok bool) {
	if from < a.from {
		return nil, false
	}
	i := sort.Search(len(a.entries), func(i int) bool { return a.entries[i].LastOffset >= from })
	for _, e := range a.entries[i:] {
		if e.FirstOffset < to {
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].FirstOffset < out[j].FirstOffset })
	return out, true
}

// loadAborted fills p's aborted index with the stored aborted transactions
// of the tail of the log (abortedTailOffsets before hw on).
func (l *Log) loadAborted(ctx context.Context, tp metadata.TopicPartition, logStart, hw int64) (abortedIndex, error) {
	from := max(logStart, hw-abortedTailOffsets)
	a := abortedIndex{from: from}
	if from >= hw {
		return a, nil
	}
	entries, err := l.store.ListAbortedTxns(ctx, tp, from, hw)
	if err != nil {
		return a, err
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].LastOffset < entries[j].LastOffset })
	a.add(entries)
	return a, nil
}

// ReadWith is Read with options: with ReadCommitted the read stops at the
// last stable offset (waiting, with MaxWait, while offset is at it) and
// ReadResult.Aborted lists the aborted transactions overlapping the
// returned range.
func (l *Log) ReadWith(ctx context.Context, tp metadata.TopicPartition, offset int64, opts ReadOptions) (ReadResult, error) {
	return l.read(ctx, tp, offset, opts)
}

// StableOffsets returns tp's log start offset, last stable offset and high
// watermark (from memory when led here, else from the store).
func (l *Log) StableOffsets(ctx context.Context, tp metadata.TopicPartition) (logStart, lso, hw int64, err error) {
	v, err := l.view(ctx, tp)
	return v.logStart, v.lso, v.hw, err
}

// Producers returns tp's producer state: from memory when led here
// (including appends not yet committed), else from the store. For
// DescribeProducers.
func (l *Log) Producers(ctx context.Context, tp metadata.TopicPartition) ([]metadata.ProducerState, error) {
	l.mu.Lock()
	p := l.partitions[tp]
	if p != nil && p.leading() {
		out := make([]metadata.ProducerState, 0, len(p.producers))
		for id, st := range p.producers {
			out = append(out, st.snapshot(id))
		}
		l.mu.Unlock()
		sort.Slice(out, func(i, j int) bool { return out[i].ProducerID < out[j].ProducerID })
		return out, nil
	}
	l.mu.Unlock()
	states, err := l.store.ProducerStates(ctx, tp)
	if err != nil {
		return nil, fmt.Errorf("producers of %s: %w", tp, err)
	}
	return states, nil
}
