package log

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
//     fenced). The agent never commits an object older than GCGrace/2, so
//     such an object can no longer become committed.
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
	cutoff := now.Add(-l.cfg.GCGrace)
	var orphans []string
	err = l.bucket.List(ctx, l.cfg.ObjectPrefix, func(o objstore.ObjectInfo) error {
		if !strings.HasSuffix(o.Key, ".seg") || !o.ModTime.Before(cutoff) {
			return nil
		}
		ok, err := l.store.IsObjectCommitted(ctx, o.Key)
		if err != nil {
			return err
		}
		if !ok {
			orphans = append(orphans, o.Key)
		}
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("gc: list objects: %w", err)
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

// RunGC applies retention (EnforceRetention), expires idle producers
// (ExpireProducers, when Config.ProducerExpiration is positive) and runs
// CollectGarbage every interval until ctx is done.
func (l *Log) RunGC(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := l.EnforceRetention(ctx); err != nil && ctx.Err() == nil {
			l.log.Warn("retention", "err", err)
		}
		if l.cfg.ProducerExpiration > 0 {
			if _, err := l.ExpireProducers(ctx, l.cfg.ProducerExpiration); err != nil && ctx.Err() == nil {
				l.log.Warn("producer expiry", "err", err)
			}
		}
		if _, err := l.CollectGarbage(ctx); err != nil && ctx.Err() == nil {
			l.log.Warn("garbage collection", "err", err)
		}
	}
}

// ExpireProducers forgets the idempotent producers that have not appended
// for maxIdle: on the partitions this agent leads, and in the metadata
// store for every partition (Kafka's producer.id.expiration.ms). A
// producer that comes back after that is unknown, as in Kafka: a batch
// continuing its old sequence gets OUT_OF_ORDER_SEQUENCE_NUMBER, and
// clients then start a new sequence. It returns the rows deleted.
func (l *Log) ExpireProducers(ctx context.Context, maxIdle time.Duration) (int64, error) {
	cutoff := l.cfg.Now().Add(-maxIdle)
	forgotten := 0
	l.mu.Lock()
	for _, p := range l.partitions {
		for id, st := range p.producers {
			if st.updated.Before(cutoff) {
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
