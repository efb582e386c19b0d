package partlog

// Object compaction (docs/architecture.md, "Object compaction"): the write
// path seals one small object per flush holding runs of many partitions,
// so a historical read of one partition costs one GET per flush. The agent
// leading a partition rewrites its older runs into per-partition segment
// objects, bounded by CompactionConfig.SegmentMaxBytes and SegmentMaxAge,
// and switches the index to them in one fenced metadata transaction
// (metadata.Store.ReplaceIndex). The replaced objects stay readable until
// garbage collection deletes them, a grace period after no index row
// names them any more, so a reader holding old index entries never fails
// (invariant 11). The rewrite-and-switch step (rewriteRun) is what Kafka
// key compaction reuses with its own selection of batches.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamhouse/streamhouse/internal/batch"
	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/objstore"
)

// CompactionConfig configures object compaction. Zero values take the
// defaults noted.
type CompactionConfig struct {
	// Interval spaces the background passes (with jitter: each wait is
	// between half and one and a half of it). Zero or negative: no
	// background pass (Log.Compact still works).
	Interval time.Duration
	// SegmentMaxBytes bounds the record bytes of one segment object
	// compaction writes. Default 1 MiB (SEGMENT_MAX_SIZE).
	SegmentMaxBytes int64
	// SegmentMaxAge bounds the time between the seals of the first and
	// the last object a segment takes runs from. Default 10s
	// (SEGMENT_MAX_AGE_MS).
	SegmentMaxAge time.Duration
	// MinAge leaves runs whose object was sealed less than this ago alone:
	// they are what the hot tail serves and what consumers at the head
	// read. Default 5s.
	MinAge time.Duration
	// EntryMaxBytes bounds one index entry of a segment (a segment of
	// several entries has one footer run per entry), so a read of one
	// entry never loads much more than it returns. Default the read
	// chunk size (1 MiB).
	EntryMaxBytes int64
	// KeyMapBytes bounds the memory of one key compaction pass's key map
	// (keycompact.go). Default 16 MiB.
	KeyMapBytes int64
}

func (c *CompactionConfig) setDefaults(chunk int64) {
	if c.SegmentMaxBytes <= 0 {
		c.SegmentMaxBytes = 1 << 20
	}
	if c.SegmentMaxAge <= 0 {
		c.SegmentMaxAge = 10 * time.Second
	}
	if c.MinAge <= 0 {
		c.MinAge = 5 * time.Second
	}
	if c.EntryMaxBytes <= 0 {
		// Entries start after the segment's header: one that size ends
		// within the first chunk, so a read of it is one chunk GET.
		c.EntryMaxBytes = max(chunk-segmentHeaderSize, 1)
	}
	if c.KeyMapBytes <= 0 {
		c.KeyMapBytes = 16 << 20
	}
}

// compactedSuffix ends the key of every object compaction writes. Its runs
// are never rewritten again by object compaction, which keeps the
// grouping of a partition's runs the same from one pass to the next (only
// new runs join groups), so a byte is rewritten once.
const compactedSuffix = "-c.seg"

// CompactionStats reports one compaction pass.
type CompactionStats struct {
	Segments  int   // segment objects written and switched to
	Entries   int   // index entries replaced
	Bytes     int64 // record bytes rewritten
	Conflicts int   // switches refused (fenced, index changed) or failed

	// Key compaction (keycompact.go).
	KeyPasses      int   // partitions key-compacted
	RecordsRemoved int64 // records key compaction removed
	BytesReclaimed int64 // record bytes it removed
}

// compactor is the compaction state of a Log.
type compactor struct {
	mu sync.Mutex // one pass at a time

	keys *keyCompactor // keycompact.go

	runs      prometheus.Counter
	objects   prometheus.Counter
	bytes     prometheus.Counter
	entries   prometheus.Counter
	conflicts *prometheus.CounterVec
}

func newCompactor(reg prometheus.Registerer) *compactor {
	c := &compactor{
		runs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamhouse_log_compaction_runs_total", Help: "Object compaction passes run.",
		}),
		objects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamhouse_log_compaction_objects_written_total", Help: "Per-partition segment objects written by compaction and switched to.",
		}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamhouse_log_compaction_bytes_rewritten_total", Help: "Record batch bytes compaction rewrote into segment objects.",
		}),
		entries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamhouse_log_compaction_entries_replaced_total", Help: "Index entries compaction replaced.",
		}),
		conflicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamhouse_log_compaction_switch_conflicts_total",
			Help: "Index switches that did not happen, by reason (fenced: the lease moved; changed: retention or another compaction changed the entries; error: the store or the bucket failed).",
		}, []string{"reason"}),
	}
	for _, r := range compactionConflictReasons {
		c.conflicts.WithLabelValues(r) // at zero from the start (metrics.go)
	}
	reg.MustRegister(c.runs, c.objects, c.bytes, c.entries, c.conflicts)
	c.keys = newKeyCompactor(reg)
	return c
}

// compactLoop runs Compact every CompactionConfig.Interval, with jitter,
// until the log closes.
func (l *Log) compactLoop() {
	defer l.wg.Done()
	for {
		if !sleepCtx(l.ctx, jitter(l.cfg.Compaction.Interval)) {
			return
		}
		if _, err := l.Compact(l.ctx); err != nil && l.ctx.Err() == nil {
			l.log.Warn("object compaction", "err", err)
		} else if err == nil {
			l.metrics.compactionLastSuccess.SetToCurrentTime()
		}
	}
}

// Compact runs one object compaction pass over every partition this agent
// leads. A failure of one segment's rewrite or switch is counted and
// logged and leaves the log as it was (the new object, if written, is an
// orphan for garbage collection); the next pass tries again. The error
// reports what stopped the pass early (the context, the index unreadable).
func (l *Log) Compact(ctx context.Context) (CompactionStats, error) {
	c := l.compaction
	c.mu.Lock()
	defer c.mu.Unlock()
	c.runs.Inc()
	l.mu.Lock()
	parts := make([]*partition, 0, len(l.partitions))
	for _, p := range l.partitions {
		parts = append(parts, p)
	}
	l.mu.Unlock()
	sort.Slice(parts, func(i, j int) bool { return parts[i].tp.String() < parts[j].tp.String() })
	var st CompactionStats
	for _, p := range parts {
		if err := l.compactPartition(ctx, p, &st); err != nil {
			return st, fmt.Errorf("compact %s: %w", p.tp, err)
		}
		if err := l.compactKeys(ctx, p, &st); err != nil {
			return st, fmt.Errorf("key compaction of %s: %w", p.tp, err)
		}
	}
	c.keys.finishPass(l.cfg.Now(), parts)
	if st.Segments > 0 || st.Conflicts > 0 {
		l.log.Info("object compaction", "segments", st.Segments, "entries_replaced", st.Entries, "bytes", st.Bytes, "conflicts", st.Conflicts)
	}
	return st, nil
}

// compactPartition groups the partition's eligible runs into segments and
// rewrites each group of two runs or more.
func (l *Log) compactPartition(ctx context.Context, p *partition, st *CompactionStats) error {
	hw, logStart, _, fenced := p.committedState()
	if fenced || hw == logStart {
		return nil
	}
	cc := l.cfg.Compaction
	cutoff := l.cfg.Now().Add(-cc.MinAge).UnixMilli()
	maxAge := cc.SegmentMaxAge.Milliseconds()
	var group []metadata.IndexEntry
	var groupBytes int64
	flush := func() error {
		g := group
		group, groupBytes = nil, 0
		// A single run is rewritten too: its flush object also holds
		// other partitions' runs, and stays alive while any index entry
		// names it (compacted segments never enter a group).
		if len(g) == 0 {
			return nil
		}
		if _, _, _, fenced := p.committedState(); fenced {
			return errPartitionFenced // the lease lapsed during the pass
		}
		err := l.compactRun(ctx, p, g, st)
		if errors.Is(err, errPartitionFenced) {
			return err
		}
		return nil // counted and logged; the next pass retries
	}
	const page = 1000
	for from := logStart; from < hw; {
		entries, err := l.store.ListIndex(ctx, p.tp, from, page)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			// The other partitions go on; this one waits for the next pass.
			l.log.Warn("object compaction: index unreadable", "topic", p.topicName, "partition", p.tp.Partition, "err", err)
			return nil
		}
		for _, e := range entries {
			if e.BaseOffset >= hw || e.ObjectCreatedAt <= 0 || e.ObjectCreatedAt > cutoff {
				// Too recent (runs go in seal order): the last group is
				// complete only if nothing sealed from now on can join it.
				if len(group) > 0 && cutoff-group[0].ObjectCreatedAt <= maxAge {
					return nil
				}
				return ignoreFenced(flush())
			}
			switch {
			case strings.HasSuffix(e.ObjectKey, compactedSuffix):
				if err := flush(); err != nil {
					return ignoreFenced(err)
				}
				continue
			case len(group) > 0 && (groupBytes+e.Len > cc.SegmentMaxBytes || e.ObjectCreatedAt-group[0].ObjectCreatedAt > maxAge):
				if err := flush(); err != nil {
					return ignoreFenced(err)
				}
			}
			group = append(group, e)
			groupBytes += e.Len
		}
		if len(entries) < page {
			break
		}
		from = entries[len(entries)-1].LastOffset + 1
	}
	if len(group) > 0 && cutoff-group[0].ObjectCreatedAt <= maxAge {
		return nil
	}
	return ignoreFenced(flush())
}

// errPartitionFenced stops compacting a partition whose lease moved.
var errPartitionFenced = errors.New("partition fenced")

func ignoreFenced(err error) error {
	if errors.Is(err, errPartitionFenced) {
		return nil
	}
	return err
}

// compactRun rewrites one group of runs into a segment object and
// switches the index to it, counting the outcome in st and the metrics.
func (l *Log) compactRun(ctx context.Context, p *partition, old []metadata.IndexEntry, st *CompactionStats) error {
	res, err := l.rewriteRun(ctx, p, old, compactedSuffix, nil)
	c := l.compaction
	var fe *metadata.FencedError
	switch {
	case err == nil:
		st.Segments++
		st.Entries += len(old)
		st.Bytes += res.bytes
		c.objects.Inc()
		c.entries.Add(float64(len(old)))
		c.bytes.Add(float64(res.bytes))
		return nil
	case errors.As(err, &fe):
		c.conflicts.WithLabelValues("fenced").Inc()
		st.Conflicts++
		l.log.Info("object compaction: lease moved", "topic", p.topicName, "partition", p.tp.Partition, "err", err)
		return errPartitionFenced
	case errors.Is(err, metadata.ErrIndexChanged) || errors.Is(err, metadata.ErrObjectConflict):
		c.conflicts.WithLabelValues("changed").Inc()
		st.Conflicts++
		l.log.Info("object compaction: index changed meanwhile", "topic", p.topicName, "partition", p.tp.Partition, "err", err)
		return err
	case ctx.Err() != nil:
		return ctx.Err()
	default:
		c.conflicts.WithLabelValues("error").Inc()
		st.Conflicts++
		l.log.Warn("object compaction failed", "topic", p.topicName, "partition", p.tp.Partition, "err", err)
		return err
	}
}

// rewriteResult describes a switched segment.
type rewriteResult struct {
	key     string
	entries []metadata.IndexEntry // the new index entries
	bytes   int64                 // record bytes written
}

// rewriteRun is the rewrite-and-switch step: it reads old (a dense run of
// p's committed index entries) through the read path, passes each
// entry's bytes through keep (nil: unchanged; key compaction passes a
// function that drops records, keeping the offsets of those left, and
// returns the bytes, the records and the newest timestamp left),
// writes the result as one segment object of p (its key ending in
// suffix), and switches the index
// from old to it in one fenced transaction. The new index entries break at
// old entries' boundaries, each at most EntryMaxBytes (or one old entry).
// On success the partition's in-memory index follows; on an unknown
// outcome it forgets the range, so readers ask the store. A failed switch
// leaves the new object to garbage collection as an orphan.
func (l *Log) rewriteRun(ctx context.Context, p *partition, old []metadata.IndexEntry, suffix string, keep func(e metadata.IndexEntry, data []byte) (keptRun, error)) (rewriteResult, error) {
	var res rewriteResult
	// Read and check each run: whole batches, from its base offset to its
	// last offset, as the index says.
	bodies := make([][]byte, len(old))
	records := make([]int32, len(old))
	maxTs := make([]int64, len(old))
	for i, e := range old {
		sp, err := l.reader.read(ctx, e)
		if err != nil {
			return res, fmt.Errorf("read %s [%d,+%d): %w", e.ObjectKey, e.Pos, e.Len, err)
		}
		data := sp.bytes()
		if int64(len(data)) != e.Len {
			return res, fmt.Errorf("read %s [%d,+%d): %d bytes: %w", e.ObjectKey, e.Pos, e.Len, len(data), batch.ErrCorrupt)
		}
		if err := checkRun(e, data); err != nil {
			return res, err
		}
		records[i], maxTs[i] = e.Records, e.MaxTimestamp
		if keep != nil {
			k, err := keep(e, data)
			if err != nil {
				return res, err
			}
			data, records[i], maxTs[i] = k.data, k.records, k.maxTimestamp
		}
		// A copy: data may be a slice of a cache chunk or a hot-tail
		// object, which must not stay pinned outside those caches' budgets.
		bodies[i] = bytes.Clone(data)
	}
	// Lay out the segment: one footer run per new index entry.
	now := l.cfg.Now()
	total := 0
	for _, b := range bodies {
		total += len(b)
	}
	var runs []SegmentRun
	var created int64
	for i, e := range old {
		created = max(created, e.ObjectCreatedAt)
		n := int64(len(bodies[i]))
		if k := len(runs) - 1; k >= 0 && runs[k].Len+n <= l.cfg.Compaction.EntryMaxBytes {
			r := &runs[k]
			r.LastOffset, r.Len, r.Records = e.LastOffset, r.Len+n, r.Records+records[i]
			r.MaxTimestamp = max(r.MaxTimestamp, maxTs[i])
			continue
		}
		runs = append(runs, SegmentRun{
			TopicID: p.tp.TopicID, Partition: p.tp.Partition, BaseOffset: e.BaseOffset, LastOffset: e.LastOffset,
			Len: n, Records: records[i], MaxTimestamp: maxTs[i],
		})
	}
	data := make([]byte, segmentHeaderSize, segmentSize(len(runs), total))
	encodeSegmentHeader(data, now.UnixMilli(), len(runs))
	for _, b := range bodies {
		data = append(data, b...)
	}
	pos := int64(segmentHeaderSize)
	l.mu.Lock()
	l.seq++
	res.key = fmt.Sprintf("%s%s/%013d-%s-%08d%s", l.cfg.ObjectPrefix, l.cfg.AgentID, now.UnixMilli(), l.bootID, l.seq, suffix)
	l.mu.Unlock()
	for i := range runs {
		r := &runs[i]
		r.Pos = pos
		r.CRC = crc32.Checksum(data[pos:pos+r.Len], crcTable)
		pos += r.Len
		res.entries = append(res.entries, metadata.IndexEntry{
			BaseOffset: r.BaseOffset, LastOffset: r.LastOffset, ObjectKey: res.key,
			Pos: r.Pos, Len: r.Len, MaxTimestamp: r.MaxTimestamp, Records: r.Records, ObjectCreatedAt: created,
		})
	}
	data = appendSegmentFooter(data, runs)
	res.bytes = int64(total)

	putAt := l.cfg.Now()
	if err := objstore.PutOrMatch(ctx, l.bucket, res.key, data); err != nil {
		return res, fmt.Errorf("upload %s: %w", res.key, err)
	}
	// Garbage collection may delete an uncommitted object from its
	// creation + GCGrace on: no switch may start later than a commit
	// could (see Log.commitDeadline).
	if l.cfg.Now().After(putAt.Add(l.cfg.GCGrace - l.commitMargin())) {
		return res, fmt.Errorf("switch to %s: too late to be safe from garbage collection", res.key)
	}
	sctx, cancel := context.WithTimeout(ctx, l.cfg.CommitTimeout)
	err := l.store.ReplaceIndex(sctx, metadata.IndexReplacement{
		TopicPartition: p.tp, AgentID: l.cfg.AgentID, Epoch: p.epoch, Old: old, New: res.entries,
		ObjectKey: res.key, Size: int64(len(data)), CreatedAt: time.UnixMilli(created),
	})
	cancel()
	var fe *metadata.FencedError
	switch {
	case err == nil:
		p.replaceIndex(res.entries, true)
	case errors.As(err, &fe), errors.Is(err, metadata.ErrIndexChanged), errors.Is(err, metadata.ErrInvalidCommit):
		// Refused: nothing changed.
	default:
		// The switch may have landed: the in-memory index must not keep
		// entries whose objects garbage collection may delete.
		p.replaceIndex(res.entries, false)
	}
	if err != nil {
		return res, fmt.Errorf("switch %s to %s: %w", p.tp, res.key, err)
	}
	return res, nil
}

// checkRun checks that data, an index entry's bytes, is whole record
// batches from the entry's base offset to its last offset. A run key
// compaction wrote (its object key ends in keyCompactedSuffix) may have
// lost batches anywhere (even all of them): its batches need only be in
// order within the entry's offsets.
func checkRun(e metadata.IndexEntry, data []byte) error {
	gaps := strings.HasSuffix(e.ObjectKey, keyCompactedSuffix)
	next := e.BaseOffset
	for pos := 0; pos < len(data); {
		h, err := batch.DecodeHeader(data[pos:])
		if err == nil && pos+h.Size() > len(data) {
			err = fmt.Errorf("batch of %d bytes at %d overruns the run: %w", h.Size(), pos, batch.ErrCorrupt)
		}
		if err == nil && h.BaseOffset < next {
			err = fmt.Errorf("batch at offset %d, want at least %d: %w", h.BaseOffset, next, batch.ErrCorrupt)
		}
		if err != nil {
			return fmt.Errorf("object %s at %d: %w", e.ObjectKey, e.Pos+int64(pos), err)
		}
		next = h.LastOffset() + 1
		pos += h.Size()
	}
	if next != e.LastOffset+1 && !(gaps && next <= e.LastOffset+1) {
		return fmt.Errorf("object %s at %d: batches end at offset %d, the index says %d: %w", e.ObjectKey, e.Pos, next-1, e.LastOffset, batch.ErrCorrupt)
	}
	return nil
}

// replaceIndex follows a switch of the store's index to entries (dense)
// in the partition's in-memory index: the entries covering the same
// offsets are replaced when the in-memory index holds exactly them at an
// entry boundary (switched), else dropped, so lookups of those offsets go
// to the store. Entries after the range are kept.
func (p *partition) replaceIndex(entries []metadata.IndexEntry, switched bool) {
	first, last := entries[0].BaseOffset, entries[len(entries)-1].LastOffset
	p.mu.Lock()
	defer p.mu.Unlock()
	j := sort.Search(len(p.index), func(i int) bool { return p.index[i].BaseOffset > last })
	if j == 0 {
		return // the in-memory index starts after the range
	}
	i := sort.Search(len(p.index), func(i int) bool { return p.index[i].LastOffset >= first })
	if !switched || i >= len(p.index) || p.index[i].BaseOffset != first || p.index[j-1].LastOffset != last {
		p.index = append(p.index[:0], p.index[j:]...)
		return
	}
	out := make([]metadata.IndexEntry, 0, i+len(entries)+len(p.index)-j)
	out = append(out, p.index[:i]...)
	for _, e := range entries {
		e.ObjectCreatedAt = 0 // as the write path's entries
		out = append(out, e)
	}
	p.index = append(out, p.index[j:]...)
}
