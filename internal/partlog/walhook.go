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
// With Config.WALDir every append of non-transactional batches, whatever
// its ack mode, is queued to the WAL under Log.mu, so the WAL holds a
// partition's uncommitted data in offset order with no hole a replay
// could not fill: AckBuffered waits for the entry's group fsync; AckNone
// and AckDurable do not wait for it (a durable ack waits for the commit
// anyway), but their data is there so that a buffered append after them
// on the same partition can be replayed at its offset. Transactional
// batches and transaction markers (always durable-acked) are not written:
// a replay stops at the hole they leave ("gap").
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

// walReservation is the WAL space one append request reserved, and the
// entry it became.
type walReservation struct {
	w       *wal.WAL
	n       int64
	batches [][]byte
	hdr     wal.Header
	entry   *wal.Entry
}

// walReserve reserves WAL space for records (waiting while the WAL is
// full). Nil without the WAL. After a WAL failure only buffered appends
// fail: the others go on without it (they never waited for it).
func (l *Log) walReserve(ctx context.Context, tp metadata.TopicPartition, records []byte, mode AckMode) (*walReservation, error) {
	if l.wal == nil {
		return nil, nil
	}
	n := wal.FrameSize(len(records))
	if err := l.wal.w.Reserve(ctx, n); err != nil {
		if errors.Is(err, wal.ErrFailed) && mode != AckBuffered {
			return nil, nil
		}
		return nil, fmt.Errorf("append to %s: %w", tp, err)
	}
	return &walReservation{w: l.wal.w, n: n, hdr: wal.Header{BaseOffset: -1}}, nil
}

// batch notes one appended batch (offsets assigned). Under Log.mu.
func (wr *walReservation) batch(b []byte, h batch.Header, base int64) {
	if wr == nil {
		return
	}
	if wr.hdr.BaseOffset < 0 {
		wr.hdr.BaseOffset = base
	}
	wr.hdr.LastOffset = base + int64(h.LastOffsetDelta)
	wr.hdr.Records += h.NumRecords
	wr.batches = append(wr.batches, b)
}

// add queues the request's appended batches as one entry of bp. Under
// Log.mu, so entries are queued in offset order.
func (wr *walReservation) add(l *Log, bp *bufPart, p *partition) {
	if wr == nil || len(wr.batches) == 0 {
		return
	}
	wr.hdr.TopicID = p.tp.TopicID
	wr.hdr.Partition = p.tp.Partition
	wr.hdr.LeaderEpoch = p.epoch
	wr.entry = wr.w.Add(wr.hdr, wr.batches, wr.n)
	wr.n = 0
	bp.wal = append(bp.wal, wr.entry)
}

// unused gives back the reservation if no entry took it.
func (wr *walReservation) unused() {
	if wr != nil && wr.n > 0 {
		wr.w.Unreserve(wr.n)
		wr.n = 0
	}
}

func (wr *walReservation) added() *wal.Entry {
	if wr == nil {
		return nil
	}
	return wr.entry
}

// waitWAL waits until a buffered append's WAL entry is fsynced, or its
// buffer's outcome is known first.
func (a *Appending) waitWAL(ctx context.Context) error {
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
	for _, bp := range b.order {
		if len(bp.wal) == 0 || errors.Is(b.errs[bp.p], ErrClosed) {
			continue
		}
		for _, e := range bp.wal {
			l.wal.w.Release(e)
		}
	}
}
