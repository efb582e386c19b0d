package partlog

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"time"

	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/objstore"
)

// sealed is a buffer turned into an object, travelling through upload and
// commit. Uploads may finish in any order; commits happen in seal order.
type sealed struct {
	buf       *buffer
	key       string
	parts     []*bufPart
	producers [][]metadata.ProducerState // per part, state to persist
	txns      []sealedTxns               // per part, transaction state after it
	bytes     int                        // buffered bytes it accounts for
	reason    string
	sealedAt  time.Time

	// Set by the uploader before putDone closes.
	data []byte
	runs []SegmentRun
	// createdAt is the wall-clock time just before the first PUT attempt
	// of this object was sent: no copy of it can carry an older
	// modification time in the store. Garbage collection may delete it
	// as an orphan from createdAt + GCGrace on, so no commit attempt
	// starts after commitDeadline (see Log.commitDeadline).
	createdAt  time.Time
	uploadedAt time.Time
	putErr     error
	putDone    chan struct{}
}

// sealedTxns is a sealed part's transaction state: the last stable offset
// once it is committed (open: a transaction is still open, and lso is its
// first offset), and the transactions its abort markers close.
type sealedTxns struct {
	open    bool
	lso     int64
	aborted []metadata.AbortedTxn
}

// sealDecision says whether to seal the open buffer now (a reason) or how
// long to wait before asking again (negative: until woken). Called with
// Log.mu held.
func (l *Log) sealDecision(now time.Time) (reason string, wait time.Duration) {
	b := l.buf
	if b.empty() {
		return "", -1
	}
	if l.inflight >= l.cfg.MaxInflightUploads {
		return "", -1 // an upload completion wakes us
	}
	switch {
	case b.bytes >= l.cfg.MaxObjectBytes:
		return "size", 0
	case b.records >= l.cfg.MaxObjectRecords:
		return "records", 0
	case l.closed:
		return "close", 0
	}
	for _, bp := range b.order {
		if bp.p.releasing {
			return "release", 0
		}
	}
	// Group commit: seal as soon as nothing is uploading (and the minimum
	// spacing has passed), so an idle agent answers at once and a busy one
	// makes big objects.
	var deadlines []time.Time
	if l.inflight == 0 {
		at := l.lastSeal.Add(l.cfg.FlushMinInterval)
		if !now.Before(at) {
			return "idle", 0
		}
		deadlines = append(deadlines, at)
	}
	if !b.durableSince.IsZero() {
		at := b.durableSince.Add(l.cfg.DurableMaxAge)
		if !now.Before(at) {
			return "durable_age", 0
		}
		deadlines = append(deadlines, at)
	}
	at := b.firstAt.Add(l.cfg.FlushInterval)
	if !now.Before(at) {
		return "interval", 0
	}
	deadlines = append(deadlines, at)
	wait = -1
	for _, d := range deadlines {
		if w := d.Sub(now); wait < 0 || w < wait {
			wait = w
		}
	}
	return "", wait
}

// sealLocked swaps the open buffer for a new one and returns it as a sealed
// object. Partitions lost meanwhile are left out and failed. Called with
// Log.mu held.
func (l *Log) sealLocked(reason string, now time.Time) *sealed {
	b := l.buf
	l.buf = newBuffer()
	s := &sealed{
		buf:      b,
		key:      l.newKeyLocked(now),
		reason:   reason,
		sealedAt: now,
		putDone:  make(chan struct{}),
		bytes:    b.bytes,
	}
	for _, bp := range b.order {
		if bp.p.isFenced() {
			b.errs[bp.p] = fmt.Errorf("%s: %w", bp.p.tp, ErrNotLeader)
			continue
		}
		s.parts = append(s.parts, bp)
		var states []metadata.ProducerState
		for id, st := range bp.producers {
			states = append(states, st.snapshot(id))
		}
		s.producers = append(s.producers, states)
		tx := sealedTxns{lso: bp.last + 1, aborted: bp.aborted}
		if len(bp.p.openTxns) > 0 {
			tx.open, tx.lso = true, bp.p.sealedLSO(bp.last+1)
		}
		s.txns = append(s.txns, tx)
	}
	l.inflight++
	l.lastSeal = now
	l.metrics.flushes.WithLabelValues(reason).Inc()
	return s
}

// newKeyLocked names a new segment object: the prefix, the agent, the seal
// time (so keys sort by age), the log's random boot id (so two processes
// that share an agent id, or one restarted within a millisecond, cannot
// pick one key) and a sequence number. Called with Log.mu held.
func (l *Log) newKeyLocked(now time.Time) string {
	l.seq++
	return fmt.Sprintf("%s%s/%013d-%s-%08d.seg", l.cfg.ObjectPrefix, l.cfg.AgentID, now.UnixMilli(), l.bootID, l.seq)
}

// sealLoop decides when to seal the open buffer and starts its upload.
func (l *Log) sealLoop() {
	defer l.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := l.cfg.Now()
		l.mu.Lock()
		reason, wait := l.sealDecision(now)
		var s *sealed
		if reason != "" {
			s = l.sealLocked(reason, now)
		}
		l.mu.Unlock()
		if s != nil {
			l.wg.Add(1)
			go l.upload(s)
			select {
			case l.commitQ <- s:
			case <-l.stop:
				return
			}
			continue
		}
		var tc <-chan time.Time
		if wait >= 0 {
			timer.Reset(wait)
			tc = timer.C
		}
		select {
		case <-l.kick:
		case <-tc:
		case <-l.stop:
			return
		}
		if tc != nil && !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// upload builds the object bytes and PUTs them, retrying with backoff until
// it succeeds or the log stops. The data stays in memory meanwhile, so a
// store outage slows producers (backpressure) but loses nothing.
func (l *Log) upload(s *sealed) {
	defer l.wg.Done()
	defer func() {
		close(s.putDone)
		l.mu.Lock()
		l.inflight--
		l.mu.Unlock()
		l.signal()
	}()
	s.data, s.runs = buildObject(s.parts, s.sealedAt.UnixMilli())
	if len(s.parts) == 0 {
		s.uploadedAt = l.cfg.Now()
		return // nothing left to store
	}
	ctx := l.ctx
	backoff := 20 * time.Millisecond
	for attempt := 1; ; attempt++ {
		start := time.Now()
		if s.createdAt.IsZero() {
			s.createdAt = l.cfg.Now()
		}
		// A key that exists holds either this object (an earlier attempt
		// landed though its answer was lost) or, against every odds of the
		// per-boot random key part, someone else's: then a new key.
		err := objstore.PutOrMatch(ctx, l.bucket, s.key, s.data)
		l.metrics.uploadSeconds.Observe(time.Since(start).Seconds())
		if objstore.IsExists(err) {
			l.mu.Lock()
			old := s.key
			s.key = l.newKeyLocked(l.cfg.Now())
			l.mu.Unlock()
			s.createdAt = time.Time{}
			l.log.Error("object key taken by another object; uploading under a new key", "key", old, "new_key", s.key)
		}
		if err == nil {
			s.uploadedAt = l.cfg.Now()
			l.metrics.flushBytes.Observe(float64(len(s.data)))
			l.metrics.flushPartitions.Observe(float64(len(s.parts)))
			return
		}
		if ctx.Err() != nil {
			s.putErr = fmt.Errorf("upload %s: %w", s.key, ErrClosed)
			return
		}
		l.metrics.uploadFailures.Inc()
		l.log.Warn("upload failed; retrying", "key", s.key, "attempt", attempt, "err", err)
		if !sleepCtx(ctx, jitter(backoff)) {
			s.putErr = fmt.Errorf("upload %s: %w", s.key, ErrClosed)
			return
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// buildObject lays out the segment object for parts.
func buildObject(parts []*bufPart, createdMs int64) ([]byte, []SegmentRun) {
	body := 0
	for _, bp := range parts {
		body += bp.bytes
	}
	data := make([]byte, segmentHeaderSize, segmentSize(len(parts), body))
	encodeSegmentHeader(data, createdMs, len(parts))
	runs := make([]SegmentRun, len(parts))
	for i, bp := range parts {
		pos := len(data)
		for _, b := range bp.batches {
			data = append(data, b...)
		}
		runs[i] = SegmentRun{
			TopicID:      bp.p.tp.TopicID,
			Partition:    bp.p.tp.Partition,
			BaseOffset:   bp.base,
			LastOffset:   bp.last,
			Pos:          int64(pos),
			Len:          int64(len(data) - pos),
			Records:      bp.records,
			MaxTimestamp: bp.maxTs,
			CRC:          crc32.Checksum(data[pos:], crcTable),
		}
	}
	return appendSegmentFooter(data, runs), runs
}

// commitLoop commits uploaded objects strictly in seal order.
func (l *Log) commitLoop() {
	defer l.wg.Done()
	// Commits in progress are cancelled when the log stops.
	ctx := l.ctx
	for {
		var s *sealed
		select {
		case s = <-l.commitQ:
		case <-l.stop:
			l.failQueued()
			return
		}
		select {
		case <-s.putDone:
		case <-l.stop:
			<-s.putDone
		}
		l.commit(ctx, s)
	}
}

// failQueued fails every sealed object not yet committed (on Close).
func (l *Log) failQueued() {
	for {
		select {
		case s := <-l.commitQ:
			<-s.putDone
			l.finish(s, nil, ErrClosed)
		default:
			return
		}
	}
}

// commit commits one uploaded object. Fenced partitions are dropped and the
// rest retried without them; other failures are retried with backoff until
// the log stops, or until the object is too old to be safe from garbage
// collection.
func (l *Log) commit(ctx context.Context, s *sealed) {
	if s.putErr != nil {
		l.failParts(s, s.parts, s.putErr)
		l.finish(s, nil, s.putErr)
		return
	}
	live := make([]int, 0, len(s.parts))
	for i, bp := range s.parts {
		if !bp.p.isFenced() {
			live = append(live, i)
		} else {
			s.buf.errs[bp.p] = fmt.Errorf("%s: %w", bp.p.tp, ErrNotLeader)
		}
	}
	backoff := 20 * time.Millisecond
	for len(live) > 0 {
		if now := l.cfg.Now(); now.After(l.commitDeadline(s)) {
			// Garbage collection may delete the object as an orphan from
			// its creation + GCGrace on: no attempt may start this late
			// (docs/architecture.md, "Invariant: garbage collection
			// never deletes an object a commit can still make
			// referenced"). Whoever leads the partitions next starts from
			// the committed state.
			l.metrics.commitFailures.WithLabelValues("too_old").Inc()
			l.log.Error("giving up commit of an object too old to be safe from garbage collection", "key", s.key, "created", s.createdAt)
			for _, i := range live {
				l.drop(s.parts[i].p, errors.New("commit too late"))
				s.buf.errs[s.parts[i].p] = fmt.Errorf("%s: commit too late: %w", s.parts[i].p.tp, ErrNotLeader)
			}
			break
		}
		c := metadata.ObjectCommit{
			ObjectKey: s.key,
			Size:      int64(len(s.data)),
			AgentID:   l.cfg.AgentID,
			CreatedAt: s.sealedAt,
		}
		for _, i := range live {
			bp, r := s.parts[i], s.runs[i]
			c.Partitions = append(c.Partitions, metadata.PartitionCommit{
				TopicPartition:        bp.p.tp,
				Epoch:                 bp.p.epoch,
				ExpectedHighWatermark: r.BaseOffset,
				NewHighWatermark:      r.LastOffset + 1,
				Entries: []metadata.IndexEntry{{
					BaseOffset: r.BaseOffset, LastOffset: r.LastOffset, ObjectKey: s.key,
					Pos: r.Pos, Len: r.Len, MaxTimestamp: r.MaxTimestamp, Records: r.Records,
				}},
				Producers:          s.producers[i],
				HasOpenTxn:         s.txns[i].open,
				OpenTxnFirstOffset: s.txns[i].lso,
				AbortedTxns:        s.txns[i].aborted,
			})
		}
		cctx, cancel := context.WithTimeout(ctx, l.cfg.CommitTimeout)
		start := time.Now()
		err := l.store.CommitObject(cctx, c)
		cancel()
		l.metrics.commitSeconds.Observe(time.Since(start).Seconds())
		if err == nil {
			l.finish(s, live, nil)
			return
		}
		var fe *metadata.FencedError
		if errors.As(err, &fe) {
			l.metrics.commitFailures.WithLabelValues("fenced").Inc()
			fenced := make(map[metadata.TopicPartition]bool, len(fe.Partitions))
			for _, tp := range fe.Partitions {
				fenced[tp] = true
			}
			kept := live[:0]
			for _, i := range live {
				bp := s.parts[i]
				if fenced[bp.p.tp] {
					l.drop(bp.p, err)
					s.buf.errs[bp.p] = fmt.Errorf("%s: %w", bp.p.tp, ErrNotLeader)
				} else {
					kept = append(kept, i)
				}
			}
			live = kept
			continue
		}
		if errors.Is(err, metadata.ErrObjectConflict) || errors.Is(err, metadata.ErrInvalidCommit) {
			// The key is another object's (or garbage collection claimed
			// it), or the commit is malformed (checked before the store
			// is touched): nothing was stored, and retrying cannot change
			// that, so the partitions are re-led from the store rather
			// than left reading through it while a hopeless commit is
			// retried until its deadline.
			l.metrics.commitFailures.WithLabelValues("conflict").Inc()
			l.log.Error("object key already committed by another commit", "key", s.key, "err", err)
			for _, i := range live {
				l.drop(s.parts[i].p, err)
				s.buf.errs[s.parts[i].p] = fmt.Errorf("%s: commit failed: %w", s.parts[i].p.tp, ErrNotLeader)
			}
			break
		}
		l.metrics.commitFailures.WithLabelValues("error").Inc()
		for _, i := range live {
			s.parts[i].p.setUncertain()
		}
		l.log.Warn("commit failed; retrying", "key", s.key, "err", err)
		select {
		case <-l.stop:
			l.failParts(s, partsAt(s, live), ErrClosed)
			l.finish(s, nil, ErrClosed)
			return
		case <-time.After(jitter(backoff)):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
	l.finish(s, nil, nil)
}

// commitDeadline is the latest time a commit attempt of s may start: its
// creation plus GCGrace (from then on an orphan scan may delete it) minus
// commitMargin (one attempt's CommitTimeout plus twice the clock skew
// allowed between any two of the clocks involved: this agent's, the object
// store's and the collecting agent's).
func (l *Log) commitDeadline(s *sealed) time.Time {
	return s.createdAt.Add(l.cfg.GCGrace - l.commitMargin())
}

// commitMargin is how long before an object's GC-safe age its commit
// attempts stop starting: CommitTimeout + 2 × LeaseClockSkew.
func (l *Log) commitMargin() time.Duration {
	return l.cfg.CommitTimeout + 2*l.cfg.LeaseClockSkew
}

func partsAt(s *sealed, idx []int) []*bufPart {
	out := make([]*bufPart, len(idx))
	for j, i := range idx {
		out[j] = s.parts[i]
	}
	return out
}

// failParts drops partitions whose data could not be committed: their
// in-memory offsets ran ahead of the store, so leadership must start over.
func (l *Log) failParts(s *sealed, parts []*bufPart, err error) {
	for _, bp := range parts {
		if !errors.Is(err, ErrClosed) {
			l.drop(bp.p, err)
		}
		s.buf.errs[bp.p] = fmt.Errorf("%s: %w", bp.p.tp, err)
	}
}

// finish publishes the outcome of a sealed object: committed parts advance
// their partitions and wake readers; then waiters are released and the
// memory is returned to the budget.
func (l *Log) finish(s *sealed, committed []int, err error) {
	if len(committed) > 0 {
		l.reader.hot.add(s.key, s.data)
	}
	for _, i := range committed {
		bp, r := s.parts[i], s.runs[i]
		bp.p.advance(metadata.IndexEntry{
			BaseOffset: r.BaseOffset, LastOffset: r.LastOffset, ObjectKey: s.key,
			Pos: r.Pos, Len: r.Len, MaxTimestamp: r.MaxTimestamp, Records: r.Records,
		}, s.txns[i].lso, s.txns[i].aborted)
		l.metrics.committedRecords.Add(float64(r.Records))
	}
	if err != nil {
		s.buf.fail(err)
	} else {
		s.buf.fail(nil) // closes done; partitions without an entry succeeded
	}
	l.walRelease(s.buf)
	l.mu.Lock()
	l.pending -= s.bytes
	l.metrics.pendingBytes.Set(float64(l.pending))
	close(l.spaceFreed)
	l.spaceFreed = make(chan struct{})
	l.mu.Unlock()
}

func jitter(d time.Duration) time.Duration {
	return d/2 + time.Duration(rand.Int64N(int64(d)))
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
