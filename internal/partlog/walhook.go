package partlog

import (
	"context"
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamhouse/streamhouse/internal/batch"
	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/wal"
)

// The write-ahead log hooks (docs/architecture.md, "Write-ahead log").
//
// With Config.WALDir only buffered appends (AckBuffered) of
// non-transactional batches are written to the WAL: each is queued under
// Log.mu, so a partition's entries are in offset order, and AckBuffered
// waits for the entry's group fsync. Durable, acks=0 and transactional
// appends and transaction markers are not written (a durable ack waits for
// the commit anyway; acks=0 promises nothing), which leaves holes a replay
// cannot fill: a buffered append on a partition whose data before it is
// not all committed or in the WAL (partition.unlogged) also waits for the
// commit of the buffer holding that data, so every buffered ack can be
// replayed at its offset.
//
// An entry is released when finish learns the outcome of its buffer: the
// data is committed, or it never will be (the partition was lost). Data
// whose buffer failed only because the log closed stays in the WAL for the
// next process's ReplayWAL.

// walState is the Log's WAL and what its start recovered.
type walState struct {
	w         *wal.WAL
	recovered []wal.Recovered // until ReplayWAL
	replayed  prometheus.Counter
	dropped   *prometheus.CounterVec
}

func (l *Log) openWAL() error {
	if l.cfg.WALDir == "" {
		return nil
	}
	w, rec, err := wal.Open(wal.Options{
		Dir:          l.cfg.WALDir,
		SyncInterval: l.cfg.WALSyncInterval,
		MaxSize:      l.cfg.WALMaxSize,
		WriterID:     l.bootID,
		Logger:       l.log,
		Metrics:      l.cfg.Metrics,
	})
	if err != nil {
		return fmt.Errorf("open log: %w", err)
	}
	ws := &walState{
		w:         w,
		recovered: rec,
		replayed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamhouse_wal_replayed_records_total", Help: "Records re-appended from the WAL at start.",
		}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamhouse_wal_dropped_entries_total", Help: "WAL entries not replayed at start, by reason (not_leader, overwritten, gap, rejected).",
		}, []string{"reason"}),
	}
	if err := l.cfg.Metrics.Register(ws.replayed); err != nil {
		w.Close()
		return fmt.Errorf("open log: %w", err)
	}
	if err := l.cfg.Metrics.Register(ws.dropped); err != nil {
		w.Close()
		return fmt.Errorf("open log: %w", err)
	}
	if len(rec) > 0 {
		l.log.Info("wal holds entries from an earlier process", "entries", len(rec), "dir", l.cfg.WALDir)
	}
	l.wal = ws
	return nil
}

func (l *Log) closeWAL() error {
	if l.wal == nil {
		return nil
	}
	return l.wal.w.Close()
}

// walReservation is what one append request does with the WAL: the space
// it reserved and the entry it became (w set), or nothing (w nil: the
// data is not written; logged tells whether it is in the WAL anyway, as a
// replayed entry is).
type walReservation struct {
	w       *wal.WAL
	n       int64
	batches [][]byte
	hdr     wal.Header
	entry   *wal.Entry
	logged  bool
	// dep is the buffer holding the partition's data before this entry
	// that is not in the WAL, until committed: the ack waits for it.
	dep *buffer
}

// walReserve says how an append of records goes to the WAL, and reserves
// its space for a buffered one (waiting while the WAL is full). Nil
// without the WAL. replay: the data is a WAL entry being replayed.
func (l *Log) walReserve(ctx context.Context, tp metadata.TopicPartition, records []byte, mode AckMode, replay, txn bool) (*walReservation, error) {
	if l.wal == nil {
		return nil, nil
	}
	if replay {
		return &walReservation{logged: true}, nil
	}
	if mode != AckBuffered || txn {
		return &walReservation{}, nil
	}
	n := wal.FrameSize(len(records))
	if err := l.wal.w.Reserve(ctx, n); err != nil {
		return nil, fmt.Errorf("append to %s: %w", tp, err)
	}
	return &walReservation{w: l.wal.w, n: n, hdr: wal.Header{BaseOffset: -1}, logged: true}, nil
}

// batch notes one appended batch (offsets assigned). Under Log.mu.
func (wr *walReservation) batch(b []byte, h batch.Header, base int64) {
	if wr == nil || wr.w == nil {
		return
	}
	if wr.hdr.BaseOffset < 0 {
		wr.hdr.BaseOffset = base
	}
	wr.hdr.LastOffset = base + int64(h.LastOffsetDelta)
	wr.hdr.Records += h.NumRecords
	wr.batches = append(wr.batches, b)
}

// add queues the request's appended batches as one entry of bp (in buffer
// b), or notes that p's data in b is not in the WAL. Under Log.mu, so
// entries are queued in offset order.
func (wr *walReservation) add(l *Log, b *buffer, bp *bufPart, p *partition) {
	if wr == nil {
		return
	}
	if !wr.logged {
		p.unlogged = b
		return
	}
	if wr.w == nil || len(wr.batches) == 0 {
		return
	}
	if d := p.unlogged; d != nil {
		select {
		case <-d.done:
			if d.errs[p] == nil {
				p.unlogged = nil // committed
			} else {
				wr.dep = d
			}
		default:
			wr.dep = d
		}
	}
	wr.hdr.TopicID = p.tp.TopicID
	wr.hdr.Partition = p.tp.Partition
	wr.hdr.LeaderEpoch = p.epoch
	// Queued only: written and synced when the ack is waited for
	// (waitWAL flushes), so the entries of one produce request (one per
	// partition, appended one after the other) share a write and a sync.
	wr.entry = wr.w.Queue(wr.hdr, wr.batches, wr.n)
	wr.n = 0
	bp.wal = append(bp.wal, wr.entry)
}

// walUnlogged notes that p's data in the open buffer is not in the WAL (a
// transaction marker). Under Log.mu.
func (l *Log) walUnlogged(p *partition) {
	if l.wal != nil {
		p.unlogged = l.buf
	}
}

// unused gives back the reservation if no entry took it.
func (wr *walReservation) unused() {
	if wr != nil && wr.n > 0 {
		wr.w.Unreserve(wr.n)
		wr.n = 0
	}
}

// added is the entry the append became and the buffer its ack also waits
// for (both nil if none).
func (wr *walReservation) added() (*wal.Entry, *buffer) {
	if wr == nil {
		return nil, nil
	}
	return wr.entry, wr.dep
}

// waitWAL writes and syncs a buffered append's WAL entry (with whatever
// else is queued) and waits until it is on disk, or its buffer's outcome
// is known first; and, if the partition's data before it is not all in
// the WAL, until that data is committed.
func (a *Appending) waitWAL(ctx context.Context) error {
	a.l.wal.w.Flush(ctx)
	if d := a.walDep; d != nil {
		// Data of the partition before this entry is not in the WAL: a
		// replay could not put the entry at its offset until that data
		// is committed, and if it never is, the ack is not given.
		select {
		case <-d.done:
			if err := d.errs[a.p]; err != nil {
				return err
			}
		case <-ctx.Done():
			return fmt.Errorf("wait for the commit of the data before it: %w", ctx.Err())
		}
	}
	select {
	case <-a.walEntry.Done():
		if err := a.walEntry.Err(); err != nil {
			select {
			case <-a.buf.done:
				// Committed (or failed) meanwhile: that outcome counts.
				return a.buf.errs[a.p]
			default:
			}
			return err
		}
		return nil
	case <-a.buf.done:
		err := a.buf.errs[a.p]
		if !errors.Is(err, ErrClosed) {
			return err // committed, or lost for good
		}
		// Not committed because the log closed: the entry stays in the
		// WAL for replay, so its fsync is the ack.
		select {
		case <-a.walEntry.Done():
			return a.walEntry.Err()
		case <-ctx.Done():
			return fmt.Errorf("wait for wal: %w", ctx.Err())
		}
	case <-ctx.Done():
		return fmt.Errorf("wait for wal: %w", ctx.Err())
	}
}

// walRelease releases the WAL entries of a buffer whose outcome is known,
// except those of partitions that failed only because the log closed:
// those stay for replay. Called by finish.
func (l *Log) walRelease(b *buffer) {
	if l.wal == nil {
		return
	}
	// A partition's unlogged data in b is committed now (or never will
	// be, and its term is over): nothing waits for b any more, and b must
	// not stay reachable (with its batches) from a partition that takes
	// no buffered append after it.
	l.mu.Lock()
	for _, bp := range b.order {
		if bp.p.unlogged == b {
			bp.p.unlogged = nil
		}
	}
	l.mu.Unlock()
	for _, bp := range b.order {
		if len(bp.wal) == 0 || errors.Is(b.errs[bp.p], ErrClosed) {
			continue
		}
		for _, e := range bp.wal {
			l.wal.w.Release(e)
		}
	}
}
