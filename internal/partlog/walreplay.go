package partlog

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/wal"
)

// ReplayStats says what ReplayWAL did with the entries it found.
type ReplayStats struct {
	Entries  int            // entries found
	Replayed int            // entries re-appended and committed
	Records  int64          // records in them
	Released int            // already committed by this agent: discarded
	Dropped  map[string]int // by reason
}

// WALPartitions lists the partitions the recovered WAL holds entries of
// (none once ReplayWAL ran): the start takes them back before replaying
// (broker.LeadForReplay).
func (l *Log) WALPartitions() []metadata.TopicPartition {
	if l.wal == nil {
		return nil
	}
	seen := make(map[metadata.TopicPartition]bool)
	var out []metadata.TopicPartition
	for _, r := range l.wal.recovered {
		h := r.Header()
		tp := metadata.TopicPartition{TopicID: metadata.TopicID(h.TopicID), Partition: h.Partition}
		if !seen[tp] {
			seen[tp] = true
			out = append(out, tp)
		}
	}
	return out
}

// ReplayWAL re-appends what an earlier process left in the WAL, once this
// log leads its partitions (the server calls it after startup placement,
// before serving produce traffic), and waits until it is committed. Per
// partition, in offset order, an entry is:
//
//   - re-appended when this agent leads the partition and its next offset
//     (= the committed high watermark) is the entry's base offset, through
//     the normal append path (validation, producer state) but not written
//     to the WAL again; offsets that come out different are a bug and fail
//     ReplayWAL;
//   - discarded silently when the store holds its offsets in an object
//     this agent's process that wrote the entry committed (the commit
//     landed before the crash), whether this agent leads the partition
//     now or not (handed over after the commit);
//   - dropped, logged (once per partition and reason, with the offsets
//     and the count) and counted otherwise: "not_leader" (the partition
//     is led elsewhere or no longer exists), "overwritten" (another
//     leader committed at those offsets), "gap" (the high watermark is
//     below the entry: data before it was lost), "rejected" (the append
//     path refused it), "superseded" (a later entry of the partition
//     starts at or below it: its commit failed and the partition was led
//     again from there).
//
// The work is linear in the entries: a kill -9 leaves every entry of the
// WAL's live segments, most of them committed long ago (tens of thousands
// after a busy minute), and the agent serves none of its partitions until
// replay is over.
//
// An error leaves the entries not yet handled in the WAL for the next
// start. Calling it again does nothing.
func (l *Log) ReplayWAL(ctx context.Context) (ReplayStats, error) {
	st := ReplayStats{Dropped: map[string]int{}}
	if l.wal == nil {
		return st, nil
	}
	rec := l.wal.recovered
	l.wal.recovered = nil
	st.Entries = len(rec)
	if len(rec) == 0 {
		return st, nil
	}
	began := time.Now()
	type pendingReplay struct {
		a *Appending
		r wal.Recovered
	}
	var waits []pendingReplay
	drops := make(map[dropKey]*dropSummary)
	var dropOrder []dropKey
	logDrops := func() { // once the entries are handled, or replay fails
		for _, k := range dropOrder {
			d := drops[k]
			l.log.Warn("wal entries dropped at replay", "topic_partition", k.tp.String(), "reason", k.reason, "entries", d.entries, "records", d.records,
				"first_offset", d.first, "last_offset", d.last, "epochs", fmt.Sprintf("%d-%d", d.minEpoch, d.maxEpoch), "detail", d.detail)
		}
		dropOrder = nil
	}
	defer logDrops()
	drop := func(tp metadata.TopicPartition, r wal.Recovered, reason string, why any) {
		h := r.Header()
		st.Dropped[reason]++
		l.wal.dropped.WithLabelValues(reason).Inc()
		k := dropKey{tp, reason}
		d := drops[k]
		if d == nil {
			d = &dropSummary{first: h.BaseOffset, last: h.LastOffset, minEpoch: h.LeaderEpoch, maxEpoch: h.LeaderEpoch, detail: fmt.Sprint(why)}
			drops[k] = d
			dropOrder = append(dropOrder, k)
		}
		d.add(h)
		l.wal.w.Release(r.Entry)
	}
	// In WAL order (rec is), an entry of a partition starting at X says
	// the partition's log was at X when it was written: earlier entries
	// of it from X on were never committed (their commit failed and the
	// partition was led again from X; releases are not written to the
	// WAL), so they are superseded, never replayed over the newer one.
	// Each partition's kept entries stay in increasing base offset order
	// (those before X, then X), so the superseded ones are a suffix:
	// popped from the end, each entry pushed and popped at most once.
	byTP := make(map[metadata.TopicPartition][]wal.Recovered)
	var order []metadata.TopicPartition
	for _, r := range rec {
		h := r.Header()
		tp := metadata.TopicPartition{TopicID: metadata.TopicID(h.TopicID), Partition: h.Partition}
		kept, ok := byTP[tp]
		if !ok {
			order = append(order, tp)
		}
		for len(kept) > 0 && kept[len(kept)-1].Header().BaseOffset >= h.BaseOffset {
			drop(tp, kept[len(kept)-1], "superseded", fmt.Sprintf("a later entry starts at %d", h.BaseOffset))
			kept = kept[:len(kept)-1]
		}
		byTP[tp] = append(kept, r)
	}
	for _, tp := range order {
		idx := &indexCursor{l: l, tp: tp}
		entries := byTP[tp] // in base offset order (above)
		// next is where the next replayed entry must start: the high
		// watermark, if nothing was appended since leading, then the end
		// of the last replayed entry.
		led, replayable := false, false
		var next, hw int64
		l.mu.Lock()
		p := l.partitions[tp]
		if p != nil && p.leading() && !p.releasing {
			led, next = true, p.nextOffset
		}
		l.mu.Unlock()
		if led {
			hw, _, _, _ = p.committedState()
			replayable = hw == next
		}
		for _, r := range entries {
			h := r.Header()
			if !led {
				// Most often a partition this agent handed over after
				// committing it: what it committed is released, not
				// dropped.
				ours, err := idx.committedByWriter(ctx, h, r.Writer)
				if err != nil {
					return st, fmt.Errorf("replay wal: %w", err)
				}
				if ours {
					st.Released++
					l.wal.w.Release(r.Entry)
					continue
				}
				drop(tp, r, "not_leader", "this agent does not lead the partition")
				continue
			}
			switch {
			case replayable && h.BaseOffset == next:
				data, err := r.Read()
				if err != nil {
					return st, fmt.Errorf("replay wal: %w", err)
				}
				a, err := l.appendAsync(ctx, tp, data, AckDurable, false)
				if errors.Is(err, ErrNotLeader) {
					drop(tp, r, "not_leader", err)
					continue
				}
				if err != nil {
					if ctx.Err() != nil || errors.Is(err, ErrClosed) {
						return st, fmt.Errorf("replay wal: %w", err)
					}
					drop(tp, r, "rejected", err)
					continue
				}
				if a.res.Duplicate || a.res.BaseOffset != h.BaseOffset || a.res.LastOffset != h.LastOffset {
					return st, fmt.Errorf("replay wal: %s: entry at offsets %d-%d re-appended at %d-%d (duplicate %v): the log and its WAL disagree", tp, h.BaseOffset, h.LastOffset, a.res.BaseOffset, a.res.LastOffset, a.res.Duplicate)
				}
				waits = append(waits, pendingReplay{a, r})
				next = h.LastOffset + 1
				l.sealSoon(a.buf)
			case h.LastOffset < hw:
				ours, err := idx.committedByWriter(ctx, h, r.Writer)
				if err != nil {
					return st, fmt.Errorf("replay wal: %w", err)
				}
				if ours {
					st.Released++
					l.wal.w.Release(r.Entry)
					continue
				}
				drop(tp, r, "overwritten", "another leader committed at these offsets")
			case h.BaseOffset < next:
				drop(tp, r, "overwritten", fmt.Sprintf("high watermark %d is inside the entry", hw))
			default:
				drop(tp, r, "gap", fmt.Sprintf("high watermark %d is below the entry", hw))
			}
		}
	}
	logDrops()
	for _, w := range waits {
		res, err := w.a.Wait(ctx)
		if err != nil {
			return st, fmt.Errorf("replay wal: wait for commit: %w", err)
		}
		h := w.r.Header()
		if res.BaseOffset != h.BaseOffset || res.LastOffset != h.LastOffset {
			return st, fmt.Errorf("replay wal: offsets moved from %d-%d to %d-%d", h.BaseOffset, h.LastOffset, res.BaseOffset, res.LastOffset)
		}
		st.Replayed++
		st.Records += int64(h.Records)
		l.wal.replayed.Add(float64(h.Records))
		l.wal.w.Release(w.r.Entry)
	}
	if st.Entries > 0 {
		l.log.Info("wal replayed", "entries", st.Entries, "replayed", st.Replayed, "records", st.Records, "already_committed", st.Released, "dropped", st.Dropped, "took", time.Since(began).Round(time.Millisecond))
	}
	return st, nil
}

// dropKey and dropSummary gather a replay's dropped entries per
// partition and reason, for one log line each.
type dropKey struct {
	tp     metadata.TopicPartition
	reason string
}

type dropSummary struct {
	entries            int
	records            int64
	first, last        int64
	minEpoch, maxEpoch int32
	detail             string // the first entry's
}

func (d *dropSummary) add(h wal.Header) {
	d.entries++
	d.records += int64(h.Records)
	d.first, d.last = min(d.first, h.BaseOffset), max(d.last, h.LastOffset)
	d.minEpoch, d.maxEpoch = min(d.minEpoch, h.LeaderEpoch), max(d.maxEpoch, h.LeaderEpoch)
}

// indexPage is how many index entries indexCursor reads at a time.
const indexPage = 1000

// indexCursor reads a partition's committed index forward, a page at a
// time, for the entries of a replay (in offset order): a crash leaves many
// released entries per committed object in the newest segment, and each
// must not cost a store read. Once a read comes back short, the index
// holds nothing further: the entries beyond it cost no read either.
type indexCursor struct {
	l    *Log
	tp   metadata.TopicPartition
	page []metadata.IndexEntry
	end  bool // the last read reached the end of the index
}

// committedByWriter reports whether the committed index entry holding h's
// base offset is in an object written by the process writer of this agent
// (object keys carry the agent id and the process's boot id: newKeyLocked).
func (c *indexCursor) committedByWriter(ctx context.Context, h wal.Header, writer string) (bool, error) {
	for len(c.page) > 0 && c.page[0].LastOffset < h.BaseOffset {
		c.page = c.page[1:]
	}
	if len(c.page) == 0 && !c.end {
		ents, err := c.l.store.ListIndex(ctx, c.tp, h.BaseOffset, indexPage)
		if err != nil {
			return false, fmt.Errorf("%s: read index at %d: %w", c.tp, h.BaseOffset, err)
		}
		c.page, c.end = ents, len(ents) < indexPage
	}
	if len(c.page) == 0 || c.page[0].BaseOffset > h.BaseOffset {
		return false, nil // gone (retention) or never ours: not provable
	}
	key := c.page[0].ObjectKey
	l := c.l
	return writer != "" && strings.HasPrefix(key, l.cfg.ObjectPrefix+l.cfg.AgentID+"/") && strings.Contains(key, "-"+writer+"-"), nil
}

// sealSoon makes b (if still the open buffer) due for sealing at once, as
// if its durable waiters had waited DurableMaxAge: replayed data has
// waited since the crash, and the start waits for its commit, not for the
// flush spacing.
func (l *Log) sealSoon(b *buffer) {
	l.mu.Lock()
	if b != nil && b == l.buf {
		due := l.cfg.Now().Add(-l.cfg.DurableMaxAge)
		if b.durableSince.IsZero() || b.durableSince.After(due) {
			b.durableSince = due
		}
	}
	l.mu.Unlock()
	l.signal()
}
