package partlog

// Kafka key compaction (docs/architecture.md, "Key compaction"): for a
// topic whose cleanup.policy includes "compact", the agent leading a
// partition keeps, in the cleanable part of the log, only the newest
// record of each key. It runs in the object compaction loop (Log.Compact),
// after object compaction, one partition at a time.
//
// The cleanable range starts at the log start and ends before the first
// index entry that is any of: at or past the last stable offset; the
// in an object sealed less than min(segment.ms, CompactionConfig.MinAge)
// ago (the "active segment"); holding a record younger than
// min.compaction.lag.ms. The log's last batch is always kept whole (a
// reader at a trailing gap would otherwise wait for new data to move on). Its entries are "clean" when they are in an
// object key compaction wrote (key ends in keyCompactedSuffix) and form a
// prefix of the range; the rest is dirty. A pass runs when the dirty bytes
// over the range's bytes exceed min.cleanable.dirty.ratio, when a dirty
// entry is older than max.compaction.lag.ms, or when a tombstone kept by
// an earlier pass may have expired (or, after this agent took the
// partition, once, since that is not known).
//
// A pass builds a map key -> newest offset over the dirty entries, in
// order, within CompactionConfig.KeyMapBytes; when the keys do not fit, the
// map stops at an entry boundary (after at least one entry) and the pass
// covers the log only up to there: the next pass continues from there.
// It then rewrites the entries from the log start to where the map ends,
// in groups of at most SegmentMaxBytes, each with rewriteRun (one object,
// one fenced index switch), dropping a record when:
//   - the map holds a newer offset for its key (so a record is removed only
//     if a newer one with the same key is in the log, within the cleanable
//     range, and that one is kept or itself superseded);
//   - it has no key (Kafka's cleaner drops those too; produce refuses them
//     on a compacted topic);
//   - it is a tombstone (null value) in a batch whose delete horizon has
//     passed. As Kafka's cleaner since KIP-534: the pass that first cleans
//     a batch keeping a tombstone writes the horizon, that pass's time +
//     delete.retention.ms, into the batch (batch.FilterHorizon: attribute
//     bit 6, FirstTimestamp, the records' timestamps unchanged); later
//     rewrites keep it. So a tombstone stays at least delete.retention.ms
//     after the pass that first cleaned it (a consumer reading from the
//     log start within that time sees it), and goes in the first pass
//     after that, however its batch is regrouped (the log's last batch,
//     kept whole, gets its horizon once it is no longer last);
//   - it belongs to an aborted transaction (read_committed never shows
//     it; the aborted transactions are indexed by producer, so the test
//     is a binary search). Transaction markers are kept.
//
// Groups go in offset order and a pass stops at the first group whose
// rewrite or switch fails: a tombstone is never removed while an older
// record of its key, in a group before it, is still there.
//
// A batch keeps its base offset and last offset delta (batch.Filter), so
// the index entries keep exactly the offsets they covered and
// metadata.Store.ReplaceIndex keeps checking that the new entries tile the
// old ones; an entry may end up with fewer records, or none (length 0).
// A batch left without records is dropped: producer state lives in the
// metadata store, not in the log, so no empty batch needs keeping.
//
// Groups are sized by their bytes before the pass, so on a topic whose
// keys are updated often each segment a pass writes is small; the step
// after the pass (mergeKeySegments, keymerge.go) merges adjacent small
// key-compacted segments into segments of up to SegmentMaxBytes.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamhouse/streamhouse/internal/batch"
	"github.com/streamhouse/streamhouse/internal/metadata"
)

// keyCompactedSuffix ends the key of every object key compaction writes.
// It ends in compactedSuffix, so object compaction leaves those objects
// alone.
const keyCompactedSuffix = "-k" + compactedSuffix

// keyPolicy is a partition's key compaction configuration, from its
// topic's configs. Durations in ms; maxLag < 0 is unbounded.
type keyPolicy struct {
	enabled         bool // cleanup.policy includes "compact"
	dirtyRatio      float64
	minLag, maxLag  int64
	deleteRetention int64
	segmentMs       int64
}

// Topic config defaults, as Kafka's.
const (
	DefaultMinCleanableDirtyRatio = 0.5
	DefaultDeleteRetentionMs      = 86_400_000
	DefaultSegmentMs              = 604_800_000
)

func keyPolicyOf(t metadata.Topic) keyPolicy {
	k := keyPolicy{dirtyRatio: DefaultMinCleanableDirtyRatio, maxLag: -1, deleteRetention: DefaultDeleteRetentionMs, segmentMs: DefaultSegmentMs}
	k.enabled = strings.Contains(t.Config["cleanup.policy"], "compact")
	if v, err := strconv.ParseFloat(t.Config["min.cleanable.dirty.ratio"], 64); err == nil && v >= 0 && v <= 1 {
		k.dirtyRatio = v
	}
	num := func(name string, dst *int64) {
		if v, err := strconv.ParseInt(t.Config[name], 10, 64); err == nil && v >= 0 {
			*dst = v
		}
	}
	num("min.compaction.lag.ms", &k.minLag)
	num("max.compaction.lag.ms", &k.maxLag)
	num("delete.retention.ms", &k.deleteRetention)
	num("segment.ms", &k.segmentMs)
	if k.maxLag == math.MaxInt64 {
		k.maxLag = -1
	}
	return k
}

// keyCompactor is the key compaction state of a Log.
type keyCompactor struct {
	mu sync.Mutex
	// due maps a partition to when a tombstone an earlier pass kept may
	// expire (math.MaxInt64: none); absent: unknown (a pass is due).
	due    map[metadata.TopicPartition]int64
	ratios map[metadata.TopicPartition]float64

	passes   prometheus.Counter
	removed  prometheus.Counter
	bytes    prometheus.Counter
	maxRatio prometheus.Gauge
	last     prometheus.Gauge

	// mergeTerm maps a partition to the leadership epoch in which a
	// merge of its key-compacted prefix last completed with nothing left
	// to do since (keymerge.go); absent: a merge is due.
	mergeTerm   map[metadata.TopicPartition]int32
	merged      prometheus.Counter // keymerge.go
	mergedBytes prometheus.Counter
}

func newKeyCompactor(reg prometheus.Registerer) *keyCompactor {
	k := &keyCompactor{
		due:       make(map[metadata.TopicPartition]int64),
		mergeTerm: make(map[metadata.TopicPartition]int32),
		ratios:    make(map[metadata.TopicPartition]float64),
		passes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamhouse_log_key_compaction_passes_total", Help: "Key compaction passes run over a partition (cleanup.policy=compact).",
		}),
		removed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamhouse_log_key_compaction_records_removed_total", Help: "Records key compaction removed (superseded, expired tombstones, aborted, keyless).",
		}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamhouse_log_key_compaction_bytes_reclaimed_total", Help: "Record batch bytes key compaction removed from the log.",
		}),
		maxRatio: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "streamhouse_log_key_compaction_max_dirty_ratio", Help: "The highest dirty ratio (bytes not yet key-compacted over the cleanable bytes) among the compacted partitions this agent leads, at the last compaction loop.",
		}),
		last: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "streamhouse_log_key_compaction_last_pass_timestamp_seconds", Help: "When the last key compaction pass over a partition finished (Unix seconds).",
		}),
	}
	k.merged = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "streamhouse_log_key_compaction_segments_merged_total", Help: "Undersized key-compacted segments merged into larger ones: objects replaced whole by a merged segment (no index row names them any more).",
	})
	k.mergedBytes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "streamhouse_log_key_compaction_merged_bytes_total", Help: "Record batch bytes merges of undersized key-compacted segments copied.",
	})
	reg.MustRegister(k.passes, k.removed, k.bytes, k.maxRatio, k.last, k.merged, k.mergedBytes)
	return k
}

// finishPass forgets partitions no longer led and publishes the highest
// dirty ratio.
func (k *keyCompactor) finishPass(now time.Time, parts []*partition) {
	led := make(map[metadata.TopicPartition]bool, len(parts))
	for _, p := range parts {
		led[p.tp] = true
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	var hi float64
	for tp, r := range k.ratios {
		if !led[tp] {
			delete(k.ratios, tp)
			continue
		}
		hi = max(hi, r)
	}
	for tp := range k.due {
		if !led[tp] {
			delete(k.due, tp)
		}
	}
	for tp := range k.mergeTerm {
		if !led[tp] {
			delete(k.mergeTerm, tp)
		}
	}
	k.maxRatio.Set(hi)
}

// DirtyRatio returns the dirty ratio key compaction last measured for tp
// (false if it has not looked at tp).
func (l *Log) DirtyRatio(tp metadata.TopicPartition) (float64, bool) {
	k := l.compaction.keys
	k.mu.Lock()
	defer k.mu.Unlock()
	r, ok := k.ratios[tp]
	return r, ok
}

// maxKeyPassEntries bounds the index entries one pass looks at (their
// metadata is held in memory); a longer log is compacted a part per pass.
const maxKeyPassEntries = 100_000

// keyMapOverhead is what the key map is charged per key beyond its bytes.
const keyMapOverhead = 64

// keptRun is what a rewrite keeps of one index entry's bytes.
type keptRun struct {
	data         []byte
	records      int32
	maxTimestamp int64
}

// compactKeys runs key compaction over p when its topic asks for it and a
// pass is due.
func (l *Log) compactKeys(ctx context.Context, p *partition, st *CompactionStats) error {
	l.mu.Lock()
	pol := p.keys
	l.mu.Unlock()
	if !pol.enabled {
		return nil
	}
	hw, logStart, _, fenced := p.committedState()
	if fenced || hw == logStart {
		return nil
	}
	p.mu.Lock()
	lso := max(p.lso, p.logStart)
	p.mu.Unlock()
	now := l.cfg.Now().UnixMilli()
	activeAge := min(pol.segmentMs, l.cfg.Compaction.MinAge.Milliseconds())

	// The cleanable range.
	var entries []metadata.IndexEntry
	const page = 1000
	done := false
	for from := logStart; !done && from < hw && len(entries) < maxKeyPassEntries; {
		es, err := l.store.ListIndex(ctx, p.tp, from, page)
		if err != nil {
			return fmt.Errorf("list index: %w", err)
		}
		for _, e := range es {
			if e.LastOffset >= lso || e.ObjectCreatedAt <= 0 || e.ObjectCreatedAt > now-activeAge ||
				(pol.minLag > 0 && e.MaxTimestamp > now-pol.minLag) {
				done = true
				break
			}
			entries = append(entries, e)
		}
		if len(es) < page {
			break
		}
		from = es[len(es)-1].LastOffset + 1
	}
	if len(entries) == 0 {
		return nil
	}
	dirty := 0
	for dirty < len(entries) && strings.HasSuffix(entries[dirty].ObjectKey, keyCompactedSuffix) {
		dirty++
	}
	var total, dirtyBytes int64
	forced := false
	for i, e := range entries {
		total += e.Len
		if i >= dirty {
			dirtyBytes += e.Len
			if pol.maxLag >= 0 && e.ObjectCreatedAt < now-pol.maxLag {
				forced = true
			}
		}
	}
	ratio := 0.0
	if total > 0 {
		ratio = float64(dirtyBytes) / float64(total)
	}
	k := l.compaction.keys
	k.mu.Lock()
	k.ratios[p.tp] = ratio
	due, known := k.due[p.tp]
	k.mu.Unlock()
	if !(dirty < len(entries) && ratio > pol.dirtyRatio) && !forced && known && due > now {
		return nil
	}

	aborted, err := l.store.ListAbortedTxns(ctx, p.tp, logStart, entries[len(entries)-1].LastOffset+1)
	if err != nil {
		return fmt.Errorf("aborted transactions: %w", err)
	}
	isAborted := abortedTest(aborted)

	// The key map, over the dirty entries.
	newest := make(map[string]int64)
	var mapBytes int64
	end := len(entries) // entries[:end] are rewritten
	for i := dirty; i < len(entries); i++ {
		e := entries[i]
		if i > dirty && mapBytes >= l.cfg.Compaction.KeyMapBytes {
			end = i
			break
		}
		sp, err := l.reader.read(ctx, e)
		if err != nil {
			return fmt.Errorf("read %s [%d,+%d): %w", e.ObjectKey, e.Pos, e.Len, err)
		}
		raws, err := batch.Split(sp.bytes())
		if err != nil {
			return fmt.Errorf("object %s at %d: %w", e.ObjectKey, e.Pos, err)
		}
		for _, raw := range raws {
			h, err := batch.ParseHeader(raw)
			if err != nil {
				return fmt.Errorf("object %s at %d: %w", e.ObjectKey, e.Pos, err)
			}
			if h.IsControl() || isAborted(h) {
				continue
			}
			_, _, err = batch.Filter(raw, func(r batch.FilterRecord) bool {
				if r.Key == nil {
					return true
				}
				if _, ok := newest[string(r.Key)]; !ok {
					mapBytes += int64(len(r.Key)) + keyMapOverhead
				}
				newest[string(r.Key)] = r.Offset
				return true
			})
			if err != nil {
				return fmt.Errorf("object %s at %d: %w", e.ObjectKey, e.Pos, err)
			}
		}
	}

	// The rewrite, group by group.
	horizon := int64(math.MaxInt64) // the earliest a kept tombstone expires
	// A batch first cleaned with a tombstone in it gets this delete
	// horizon (KIP-534); its tombstones go in a pass after it.
	newHorizon := now + pol.deleteRetention
	var removed, reclaimed, horizonsSet int64
	keep := func(e metadata.IndexEntry, data []byte) (keptRun, error) {
		out := keptRun{maxTimestamp: -1}
		raws, err := batch.Split(data)
		if err != nil {
			return out, fmt.Errorf("object %s at %d: %w", e.ObjectKey, e.Pos, err)
		}
		for _, raw := range raws {
			h, err := batch.ParseHeader(raw)
			if err != nil {
				return out, fmt.Errorf("object %s at %d: %w", e.ObjectKey, e.Pos, err)
			}
			kept := raw
			n := int(h.NumRecords)
			switch {
			case h.IsControl(), h.LastOffset()+1 >= hw:
				// Markers stay; so does the log's last batch, whole, so
				// the log always ends with a batch a reader can get to.
			case isAborted(h):
				kept, n = nil, 0
			default:
				hz, hasHz := h.DeleteHorizon()
				keptTomb := false
				kept, n, err = batch.FilterHorizon(raw, newHorizon, func(r batch.FilterRecord) bool {
					if r.Key == nil {
						return false
					}
					if o, ok := newest[string(r.Key)]; ok && o > r.Offset {
						return false
					}
					if r.Null {
						if hasHz && hz <= now {
							return false
						}
						keptTomb = true
					}
					return true
				})
				if keptTomb {
					if !hasHz {
						hz = newHorizon
						horizonsSet++
					}
					horizon = min(horizon, hz)
				}
				if err != nil {
					return out, fmt.Errorf("object %s at %d: %w", e.ObjectKey, e.Pos, err)
				}
			}
			removed += int64(int(h.NumRecords) - n)
			reclaimed += int64(len(raw) - len(kept))
			if n == 0 {
				continue
			}
			out.data = append(out.data, kept...)
			out.records += int32(n)
			if hk, err := batch.ParseHeader(kept); err == nil {
				out.maxTimestamp = max(out.maxTimestamp, hk.MaxTimestamp)
			}
		}
		return out, nil
	}
	st.KeyPasses++
	k.passes.Inc()
	complete := true
	for i := 0; i < end; {
		j, size := i, int64(0)
		for j < end && (j == i || size+entries[j].Len <= l.cfg.Compaction.SegmentMaxBytes) {
			size += entries[j].Len
			j++
		}
		group := entries[i:j]
		i = j
		r0, b0, hz0 := removed, reclaimed, horizon
		if len(group) == 1 && strings.HasSuffix(group[0].ObjectKey, keyCompactedSuffix) {
			// Already compacted alone: rewrite only if it loses records.
			sp, err := l.reader.read(ctx, group[0])
			if err != nil {
				return fmt.Errorf("read %s: %w", group[0].ObjectKey, err)
			}
			h0, s0 := horizon, horizonsSet
			if _, err := keep(group[0], sp.bytes()); err != nil {
				return err
			}
			if removed == r0 && horizonsSet == s0 {
				continue // nothing to drop or mark; horizon kept
			}
			removed, reclaimed, horizon, horizonsSet = r0, b0, h0, s0
		}
		k.mergeAgain(p) // the rewrite, even one whose outcome is unknown, may leave small segments
		if _, err := l.rewriteRun(ctx, p, group, keyCompactedSuffix, keep); err != nil {
			removed, reclaimed, horizon = r0, b0, hz0
			complete = false
			var fe *metadata.FencedError
			switch {
			case ctx.Err() != nil:
				return ctx.Err()
			case errors.As(err, &fe):
				l.compaction.conflicts.WithLabelValues("fenced").Inc()
			case errors.Is(err, metadata.ErrIndexChanged) || errors.Is(err, metadata.ErrObjectConflict):
				l.compaction.conflicts.WithLabelValues("changed").Inc()
			default:
				l.compaction.conflicts.WithLabelValues("error").Inc()
			}
			st.Conflicts++
			l.log.Info("key compaction stopped", "topic", p.topicName, "partition", p.tp.Partition, "err", err)
			break
		}
	}
	st.RecordsRemoved += removed
	st.BytesReclaimed += reclaimed
	k.removed.Add(float64(removed))
	k.bytes.Add(float64(reclaimed))
	k.last.Set(float64(l.cfg.Now().UnixMilli()) / 1000)
	k.mu.Lock()
	if complete && end == len(entries) {
		k.due[p.tp] = horizon
	} else {
		delete(k.due, p.tp)
	}
	k.mu.Unlock()
	if removed > 0 || !complete {
		l.log.Info("key compaction", "topic", p.topicName, "partition", p.tp.Partition, "dirty_ratio", ratio,
			"records_removed", removed, "bytes_reclaimed", reclaimed, "complete", complete)
	}
	return nil
}
