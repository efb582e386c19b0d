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
// partition, when due (mergeDue: after a key pass rewrote part of it, and
// once per leadership term): it looks at the key-compacted prefix of the
// log (the entries in objects key compaction wrote, from the log start up
// to the first other entry, at most maxKeyPassEntries, an object the
// limit cuts left out; a window cut by the limit with nothing to merge
// ends the merge, so the prefix past it is not merged, rather than
// listed every pass), takes each object's run of consecutive entries
// as a unit, and groups adjacent undersized units (record bytes below
// mergeMaxBytes / mergeBelowDivisor) greedily into groups of at most
// mergeMaxBytes (SegmentMaxBytes, or BufferBytes if smaller). Each group
// of two or more units is rewritten as one segment by rewriteRun with no
// filter: the batches are copied byte for byte (offsets, timestamps,
// headers, delete horizons, transaction markers unchanged; aborted
// records were dropped by the pass that wrote them) into a new segment
// (entries re-joined up to EntryMaxBytes, new positions, new footer), the
// new index entries tile exactly the offsets of the old ones
// (ReplaceIndex checks it), and the switch is the same fenced
// transaction. The replaced objects go to garbage collection a grace
// after the switch commits; a merge whose switch fails leaves the log as
// it was and its object an orphan. The later groups are merged all the
// same when the failure is the group's own (its rows changed,
// ErrIndexChanged; its object key taken, ErrObjectConflict; a corrupt
// run); any other failure (the store or the bucket unavailable) stops
// the step, so an outage leaves at most one orphan a pass. Merging is not paced by append pressure (BusyShare) nor cut
// by PassMaxDuration.
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

	"github.com/streamhouse/streamhouse/internal/batch"
	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/objstore"
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
// order. It runs when merging may find something (mergeDue): after a key
// pass of p rewrote something, and once per leadership term (the first
// pass after this agent gained p, so also after a restart); else it does
// not list the index at all. A group whose rewrite or switch fails on
// its own rows or objects (ErrIndexChanged, ErrObjectConflict, a corrupt
// run) is counted and logged and the later groups are still merged; any
// other failure (an outage), the lease lapsing or the context ending
// stops it (a failure counted), merging still due.
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
	k := l.compaction.keys
	if !k.mergeDue(p) {
		return nil
	}
	limit := l.compaction.mergeEntries
	var entries []metadata.IndexEntry
	// next: the first entry past the limit when it is key-compacted too
	// (the prefix goes on past what is looked at).
	var next *metadata.IndexEntry
	const page = 1000
	for from := logStart; from < hw; {
		es, err := l.store.ListIndex(ctx, p.tp, from, page)
		if err != nil {
			return fmt.Errorf("list index: %w", err)
		}
		n := 0
		for n < len(es) && strings.HasSuffix(es[n].ObjectKey, keyCompactedSuffix) && len(entries) < limit {
			entries = append(entries, es[n])
			n++
		}
		if len(entries) == limit {
			if n == len(es) && len(es) == page {
				// The entry after the limit is on the next page.
				if es, err = l.store.ListIndex(ctx, p.tp, es[len(es)-1].LastOffset+1, 1); err != nil {
					return fmt.Errorf("list index: %w", err)
				}
				n = 0
			}
			if n < len(es) && strings.HasSuffix(es[n].ObjectKey, keyCompactedSuffix) {
				next = &es[n]
			}
			break
		}
		if n < len(es) || len(es) < page {
			break
		}
		from = es[len(es)-1].LastOffset + 1
	}
	cut := next != nil // the listing stopped at limit inside the prefix
	if cut && next.ObjectKey == entries[len(entries)-1].ObjectKey {
		// The last object has entries past the limit: it is left out, so
		// that every object of a group merged is replaced whole (an
		// object cut at the log start has no rows below it: they are
		// deleted with the log start, metadata.Store.SetLogStartOffset).
		last := next.ObjectKey
		for len(entries) > 0 && entries[len(entries)-1].ObjectKey == last {
			entries = entries[:len(entries)-1]
		}
	}
	groups := mergeGroups(entries, l.mergeMaxBytes())
	failed := false
	for _, g := range groups {
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
				st.Conflicts++
				l.log.Info("key compaction: merge stopped, the lease moved", "topic", p.topicName, "partition", p.tp.Partition, "err", err)
				return nil
			case errors.Is(err, metadata.ErrIndexChanged) || errors.Is(err, metadata.ErrObjectConflict):
				// The group's own rows or object changed meanwhile: the
				// later groups are not concerned, and the next pass
				// tries this one again.
				l.compaction.conflicts.WithLabelValues("changed").Inc()
				failed = true
			case errors.Is(err, metadata.ErrInvalidCommit) || errors.Is(err, batch.ErrCorrupt) ||
				errors.Is(err, ErrCorruptSegment) || errors.Is(err, objstore.ErrNotFound):
				// The group's own lasting failure (a commit the store
				// refuses, a run failing its check, an object gone): the
				// later groups are not concerned, and trying it again
				// each pass would fail again (an orphan each time), so
				// it waits until merging is due again (the next key pass
				// that rewrites, or the next term).
				l.compaction.conflicts.WithLabelValues("error").Inc()
			default:
				// Anything else is taken for the store or the bucket
				// failing (an outage, whatever its error says): every
				// later group would be read and uploaded for its switch
				// to fail too, an orphan object each. The step stops;
				// the next pass (merging still due) starts again.
				l.compaction.conflicts.WithLabelValues("error").Inc()
				st.Conflicts++
				l.log.Warn("key compaction: merge stopped, the next pass retries it", "topic", p.topicName, "partition", p.tp.Partition,
					"base_offset", g[0].BaseOffset, "err", err)
				return nil
			}
			st.Conflicts++
			l.log.Info("key compaction: merge of a group failed", "topic", p.topicName, "partition", p.tp.Partition,
				"base_offset", g[0].BaseOffset, "retry_next_pass", failed, "err", err)
			continue
		}
		// Every object of g is replaced whole (see cut): none is named by
		// the index any more.
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
	// Cut by the limit, the merge is done once its window has nothing
	// left to merge: the prefix past the window is not looked at (else a
	// prefix longer than the limit would be listed again every pass).
	if !failed && (!cut || len(groups) == 0) {
		k.mergeDone(p)
	}
	return nil
}

// mergeMaxBytes bounds the record bytes of one merge group: at most a
// segment (SegmentMaxBytes), and at most the compaction buffer
// (BufferBytes), since rewriteRun holds a group's bytes and then the
// segment it assembles from them, like a pass holds its buffer and the
// segment being written.
func (l *Log) mergeMaxBytes() int64 {
	return min(l.cfg.Compaction.SegmentMaxBytes, l.cfg.Compaction.BufferBytes)
}

// mergeDue reports whether p's key-compacted prefix may hold segments to
// merge: a key pass rewrote part of p since the last complete merge, or
// no merge completed in p's current leadership term (keyed by its epoch:
// a partition led again, or led after a restart, is looked at once).
func (k *keyCompactor) mergeDue(p *partition) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	e, ok := k.mergeTerm[p.tp]
	return !ok || e != p.epoch
}

// mergeDone records that p's merge found nothing left to do in this term.
func (k *keyCompactor) mergeDone(p *partition) {
	k.mu.Lock()
	k.mergeTerm[p.tp] = p.epoch
	k.mu.Unlock()
}

// mergeAgain makes p's merge due (a key pass rewrote part of it).
func (k *keyCompactor) mergeAgain(p *partition) {
	k.mu.Lock()
	delete(k.mergeTerm, p.tp)
	k.mu.Unlock()
}
