package partlog

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/streamhouse/streamhouse/internal/objstore"
)

// GCStats reports one garbage collection pass.
type GCStats struct {
	Marked       int // committed objects newly found unreferenced
	Unreferenced int // unreferenced objects deleted after their grace period
	Orphans      int // uploaded but never committed objects deleted
}

// CollectGarbage deletes objects no one can read any more:
//   - committed objects no index row references (topic deleted, records
//     deleted), once GCGrace has passed since they were found so;
//   - objects under the prefix that were never committed and are older than
//     GCGrace (an agent died between PUT and commit, or the commit was
//     fenced). No commit attempt starts later than an object's creation +
//     GCGrace - commitMargin, and an attempt ends within CommitTimeout, so
//     such an object can no longer become committed; besides, each one is
//     claimed in the store (ClaimOrphans) before it is deleted, after which
//     no commit of it can succeed.
//
// It is safe to run on several agents at once: every step is idempotent.
func (l *Log) CollectGarbage(ctx context.Context) (GCStats, error) {
	var st GCStats
	now := l.cfg.Now()
	n, err := l.store.MarkUnreferencedObjects(ctx, now, l.cfg.GCGrace)
	if err != nil {
		return st, fmt.Errorf("gc: mark: %w", err)
	}
	st.Marked = n
	for {
		objs, err := l.store.DeletableObjects(ctx, now, 1000)
		if err != nil {
			return st, fmt.Errorf("gc: list deletable: %w", err)
		}
		for _, o := range objs {
			if err := l.bucket.Delete(ctx, o.Key); err != nil {
				return st, fmt.Errorf("gc: delete %s: %w", o.Key, err)
			}
			if err := l.store.ForgetObject(ctx, o.Key); err != nil {
				return st, fmt.Errorf("gc: forget %s: %w", o.Key, err)
			}
			st.Unreferenced++
			l.metrics.gcDeleted.WithLabelValues("unreferenced").Inc()
		}
		if len(objs) < 1000 {
			break
		}
	}
	// Orphans come only from crashes and fenced commits, and finding them
	// lists the whole bucket (one LIST request per 1000 objects on S3), so
	// that scan runs every OrphanScanInterval, not every pass.
	l.gcMu.Lock()
	last := l.lastOrphanScan
	scan := last.IsZero() || now.Sub(last) >= l.cfg.OrphanScanInterval
	if scan {
		l.lastOrphanScan = now
	}
	l.gcMu.Unlock()
	if !scan {
		return st, nil
	}
	orphans, err := l.findOrphans(ctx, now.Add(-l.cfg.GCGrace))
	if err != nil {
		// Try again at the next pass, not an interval later.
		l.gcMu.Lock()
		if l.lastOrphanScan.Equal(now) {
			l.lastOrphanScan = last
		}
		l.gcMu.Unlock()
		return st, err
	}
	for _, key := range orphans {
		if err := l.bucket.Delete(ctx, key); err != nil {
			return st, fmt.Errorf("gc: delete orphan %s: %w", key, err)
		}
		st.Orphans++
		l.metrics.gcDeleted.WithLabelValues("orphan").Inc()
	}
	if st.Marked+st.Unreferenced+st.Orphans > 0 {
		l.log.Info("garbage collected", "marked", st.Marked, "unreferenced", st.Unreferenced, "orphans", st.Orphans)
	}
	return st, nil
}

// findOrphans lists the segment objects older than cutoff that are not
// committed, checking them against the store a batch at a time, and claims
// them in the store (ClaimOrphans) before returning them: from then on no
// commit of them can succeed, so deleting them cannot leave an index row
// pointing at nothing, however late a commit attempt arrives.
func (l *Log) findOrphans(ctx context.Context, cutoff time.Time) ([]string, error) {
	var orphans, batch, unseen []string
	check := func() error {
		committed, err := l.store.CommittedObjects(ctx, batch)
		if err != nil {
			return err
		}
		unseen = unseen[:0]
		for _, k := range batch {
			if !committed[k] {
				unseen = append(unseen, k)
			}
		}
		batch = batch[:0]
		if len(unseen) == 0 {
			return nil
		}
		claimed, err := l.store.ClaimOrphans(ctx, unseen, l.cfg.Now(), l.cfg.GCGrace)
		if err != nil {
			return err
		}
		orphans = append(orphans, claimed...)
		return nil
	}
	err := l.bucket.List(ctx, l.cfg.ObjectPrefix, func(o objstore.ObjectInfo) error {
		if !strings.HasSuffix(o.Key, ".seg") || !o.ModTime.Before(cutoff) {
			return nil
		}
		batch = append(batch, o.Key)
		if len(batch) == orphanBatch {
			return check()
		}
		return nil
	})
	if err == nil && len(batch) > 0 {
		err = check()
	}
	if err != nil {
		return nil, fmt.Errorf("gc: find orphans: %w", err)
	}
	return orphans, nil
}

// orphanBatch is how many listed objects are checked against the store at
// once.
const orphanBatch = 1000

// gcLoop applies retention (EnforceRetention), expires idle producers
// (ExpireProducers, when Config.ProducerExpiration is positive) and runs
// CollectGarbage every interval until the log closes.
func (l *Log) gcLoop(interval time.Duration) {
	defer l.wg.Done()
	ctx := l.ctx
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		failed := false
		if _, err := l.EnforceRetention(ctx); err != nil && ctx.Err() == nil {
			l.log.Warn("retention", "err", err)
			failed = true
		}
		if l.cfg.ProducerExpiration > 0 {
			if _, err := l.ExpireProducers(ctx, l.cfg.ProducerExpiration); err != nil && ctx.Err() == nil {
				l.log.Warn("producer expiry", "err", err)
				failed = true
			}
		}
		if _, err := l.CollectGarbage(ctx); err != nil && ctx.Err() == nil {
			l.log.Warn("garbage collection", "err", err)
			failed = true
		}
		if ctx.Err() == nil {
			l.metrics.gcPass(failed)
		}
	}
}

// ExpireProducers forgets the idempotent producers that have not appended
// for maxIdle: on the partitions this agent leads, and in the metadata
// store for every partition (Kafka's producer.id.expiration.ms). A
// producer that comes back after that is unknown, as in Kafka: a batch
// continuing its old sequence gets OUT_OF_ORDER_SEQUENCE_NUMBER, and
// clients then start a new sequence. A producer with a transaction open is
// kept (its marker must find it; the store keeps its row too). It returns
// the rows deleted.
func (l *Log) ExpireProducers(ctx context.Context, maxIdle time.Duration) (int64, error) {
	cutoff := l.cfg.Now().Add(-maxIdle)
	forgotten := 0
	l.mu.Lock()
	for _, p := range l.partitions {
		for id, st := range p.producers {
			if st.updated.Before(cutoff) && !st.inTxn {
				delete(p.producers, id)
				forgotten++
			}
		}
	}
	l.mu.Unlock()
	n, err := l.store.ExpireProducers(ctx, cutoff)
	if err != nil {
		return 0, err
	}
	if n > 0 || forgotten > 0 {
		l.log.Info("expired idle producers", "stored", n, "in_memory", forgotten, "idle_for", maxIdle)
	}
	return n, nil
}
