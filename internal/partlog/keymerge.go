package partlog

// Merging undersized key-compacted segments (docs/architecture.md, "Key
// compaction", "Merging"). A key compaction pass groups the entries it
// rewrites by their size before the pass, as Kafka's cleaner does
// (groupSegmentsBySize), so each segment it writes is what is left of up
// to SegmentMaxBytes: on a topic whose keys are updated often, a few
// records, or none. Until the next pass regroups them (only when one is
// due), the log is many small objects, one GET and one index row each.
//
// Merging is a step of its own, after the key pass of the same
// partition: it looks at the key-compacted prefix of the log (the
// entries in objects key compaction wrote, from the log start up to the
// first other entry, at most maxKeyPassEntries), takes each object's run
// of consecutive entries as a unit, and groups adjacent undersized units
// (record bytes below SegmentMaxBytes / mergeBelowDivisor) greedily into
// groups of at most SegmentMaxBytes. Each group of two or more units is
// rewritten as one segment by rewriteRun with no filter: the batches are
// copied byte for byte (offsets, timestamps, headers, delete horizons,
// transaction markers unchanged; aborted records were dropped by the pass
// that wrote them), the new index entries tile exactly the offsets of
// the old ones (ReplaceIndex checks it), and the switch is the same
// fenced transaction. The replaced objects go to garbage collection a
// grace after the switch commits; a merge whose switch fails leaves the
// log as it was and its object an orphan.
//
// The merged segment is key-compacted too (its key ends in
// keyCompactedSuffix), so it stays in the clean prefix: a merge does not
// make anything dirty, does not trigger a key pass, and leaves the
// tombstone horizons (compacted into the batches) as they were. Object
// compaction's compacted prefix (compactor.clean) stays true as well: a
// merge replaces compacted entries by compacted entries.

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/streamhouse/streamhouse/internal/metadata"
)

// mergeBelowDivisor: a key-compacted segment is undersized, and merged
// with its undersized neighbours, when its record bytes are below
// SegmentMaxBytes / mergeBelowDivisor. A merged segment then holds at
// least two segments' bytes and most of them more than half a segment:
// each left alone is at least half a segment or has no undersized
// neighbour it fits with.
const mergeBelowDivisor = 2

// mergeGroups groups the entries of adjacent undersized objects
// (entries: a dense run of index entries in key-compacted objects) into
// runs of at most segMax record bytes, each of two or more objects.
func mergeGroups(entries []metadata.IndexEntry, segMax int64) [][]metadata.IndexEntry {
	var groups [][]metadata.IndexEntry
	start, units := 0, 0 // the group: entries[start:i], units objects
	var size int64
	closeAt := func(i int) {
		if units >= 2 {
			groups = append(groups, entries[start:i])
		}
		start, units, size = i, 0, 0
	}
	for i := 0; i < len(entries); {
		// One unit: the object's consecutive entries.
		j, n := i, int64(0)
		for ; j < len(entries) && entries[j].ObjectKey == entries[i].ObjectKey; j++ {
			n += entries[j].Len
		}
		switch {
		case n*mergeBelowDivisor >= segMax:
			closeAt(i)
			start = j
		case size+n > segMax:
			closeAt(i)
			units, size = 1, n
		default:
			units++
			size += n
		}
		i = j
	}
	closeAt(len(entries))
	return groups
}

// mergeKeySegments merges adjacent undersized key-compacted segments at
// the start of p's log (a topic with cleanup.policy compact), in offset
// order, stopping at the first group whose rewrite or switch fails.
func (l *Log) mergeKeySegments(ctx context.Context, p *partition, st *CompactionStats) error {
	l.mu.Lock()
	pol := p.keys
	l.mu.Unlock()
	if !pol.enabled || l.compaction.noMerge {
		return nil
	}
	hw, logStart, _, fenced := p.committedState()
	if fenced || hw == logStart {
		return nil
	}
	var entries []metadata.IndexEntry
	const page = 1000
	for from := logStart; from < hw && len(entries) < maxKeyPassEntries; {
		es, err := l.store.ListIndex(ctx, p.tp, from, page)
		if err != nil {
			return fmt.Errorf("list index: %w", err)
		}
		n := 0
		for n < len(es) && strings.HasSuffix(es[n].ObjectKey, keyCompactedSuffix) && len(entries) < maxKeyPassEntries {
			entries = append(entries, es[n])
			n++
		}
		if n < len(es) || len(es) < page {
			break
		}
		from = es[len(es)-1].LastOffset + 1
	}
	k := l.compaction.keys
	for _, g := range mergeGroups(entries, l.cfg.Compaction.SegmentMaxBytes) {
		if _, _, _, f := p.committedState(); f {
			return nil // the lease lapsed during the pass
		}
		res, err := l.rewriteRun(ctx, p, g, keyCompactedSuffix, nil)
		if err != nil {
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
			l.log.Info("key compaction: merge stopped", "topic", p.topicName, "partition", p.tp.Partition, "err", err)
			return nil
		}
		objects := make(map[string]bool)
		for _, e := range g {
			objects[e.ObjectKey] = true
		}
		st.Merges++
		st.SegmentsMerged += len(objects)
		st.MergedBytes += res.bytes
		k.merged.Add(float64(len(objects)))
		k.mergedBytes.Add(float64(res.bytes))
		l.log.Debug("key compaction: merged segments", "topic", p.topicName, "partition", p.tp.Partition,
			"segments", len(objects), "into", res.key, "bytes", res.bytes)
	}
	return nil
}
