package partlog

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/streamhouse/streamhouse/internal/metadata"
)

// retention is a partition's delete policy, from its topic's configs
// (retention.ms, retention.bytes, cleanup.policy); -1 means unbounded.
type retention struct {
	ms     int64
	bytes  int64
	delete bool // cleanup.policy includes "delete"
	// after is message.timestamp.after.max.ms: a run whose newest record
	// is further than this ahead of its object's creation has a timestamp
	// retention does not trust.
	after int64
}

func retentionOf(t metadata.Topic) retention {
	r := retention{ms: 7 * 24 * 3600 * 1000, bytes: -1, delete: true, after: timestampBoundsOf(t).after}
	if v, ok := t.Config["retention.ms"]; ok {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			r.ms = n
		}
	}
	if v, ok := t.Config["retention.bytes"]; ok {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			r.bytes = n
		}
	}
	if v, ok := t.Config["cleanup.policy"]; ok {
		r.delete = strings.Contains(v, "delete")
	}
	return r
}

// EnforceRetention applies time and size retention to every partition this
// agent leads, as Kafka's log cleaner does with cleanup.policy=delete: whole
// runs (the partition's share of one object) are dropped from the start of
// the log once their newest record is older than retention.ms (or, for a
// run whose timestamp cannot be trusted, its object; see runTime), and while
// what remains without the oldest run is still at least retention.bytes. Dropping moves the log start offset;
// the objects no longer referenced are deleted by CollectGarbage after the
// grace period. It returns how many partitions it trimmed.
func (l *Log) EnforceRetention(ctx context.Context) (int, error) {
	l.mu.Lock()
	parts := make([]*partition, 0, len(l.partitions))
	for _, p := range l.partitions {
		parts = append(parts, p)
	}
	l.mu.Unlock()
	now := l.cfg.Now()
	trimmed := 0
	for _, p := range parts {
		l.mu.Lock()
		r := p.retention
		l.mu.Unlock()
		if !r.delete || (r.ms < 0 && r.bytes < 0) {
			continue
		}
		hw, logStart, _, fenced := p.committedState()
		if fenced || hw == logStart {
			continue
		}
		start, err := l.retainFrom(ctx, p.tp, logStart, hw, r, now)
		if err != nil {
			return trimmed, fmt.Errorf("retention of %s: %w", p.tp, err)
		}
		if start <= logStart {
			continue
		}
		if _, err := l.DeleteRecords(ctx, p.tp, start); err != nil {
			return trimmed, fmt.Errorf("retention of %s: %w", p.tp, err)
		}
		trimmed++
		l.log.Info("retention moved the log start", "topic", p.topicName, "partition", p.tp.Partition, "from", logStart, "to", start)
	}
	return trimmed, nil
}

// retainFrom returns the log start offset retention asks for. It reads
// the index a page at a time from the log start and stops at the first run
// retention keeps, so a pass costs what it trims, not the partition's
// whole history; retention.bytes also asks the store for the partition's
// total size, one aggregate query.
func (l *Log) retainFrom(ctx context.Context, tp metadata.TopicPartition, logStart, hw int64, r retention, now time.Time) (int64, error) {
	start := logStart
	// page visits the committed runs from start in order until visit
	// returns false.
	page := func(visit func(e metadata.IndexEntry) bool) error {
		for from := start; from < hw; {
			entries, err := l.store.ListIndex(ctx, tp, from, l.cfg.RetentionPage)
			if err != nil {
				return err
			}
			for _, e := range entries {
				if e.BaseOffset >= hw || !visit(e) {
					return nil
				}
				from = e.LastOffset + 1
			}
			if len(entries) < l.cfg.RetentionPage {
				return nil
			}
		}
		return nil
	}
	if r.ms >= 0 {
		cutoff := now.UnixMilli() - r.ms
		err := page(func(e metadata.IndexEntry) bool {
			if t := r.runTime(e); t < 0 || t >= cutoff {
				return false
			}
			start = e.LastOffset + 1
			return true
		})
		if err != nil {
			return logStart, err
		}
	}
	if r.bytes >= 0 && start < hw {
		size, err := l.store.IndexBytes(ctx, tp, start)
		if err != nil {
			return logStart, err
		}
		// As Kafka: drop a run only if what remains is still at least
		// retention.bytes, so the log never shrinks below it.
		err = page(func(e metadata.IndexEntry) bool {
			if size-e.Len < r.bytes {
				return false
			}
			size -= e.Len
			start = e.LastOffset + 1
			return true
		})
		if err != nil {
			return logStart, err
		}
	}
	return max(start, logStart), nil
}

// runTime is the time retention.ms measures a run's age from: its newest
// record's timestamp, or, when that is missing (-1) or further in the
// future than the topic lets producers write (message.timestamp.after.max.ms
// past the object's creation), the time its object was created, as Kafka
// falls back to a segment's modification time. Without the fallback one
// such run would stop time retention for good, since runs go in order. -1
// when neither is known.
func (r retention) runTime(e metadata.IndexEntry) int64 {
	ts := e.MaxTimestamp
	created := e.ObjectCreatedAt
	if created <= 0 {
		return ts
	}
	if ts < 0 || (r.after < math.MaxInt64-created && ts > created+r.after) {
		return created
	}
	return ts
}
