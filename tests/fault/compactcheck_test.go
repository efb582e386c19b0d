package fault

import (
	"fmt"
	"maps"
	"slices"
)

// The compacted topic's checks: only what Kafka promises of a compacted
// topic, whatever the timing of compaction (it is lazy: older records of a
// key may still be there at the end).
//
//   - compact-records-at-acked-offsets: every record read (during the run
//     or at the end) is one a producer sent, with its key, value or
//     tombstone; an acknowledged record is never read at another offset
//     than its ack gave (no record moves), and is acknowledged once.
//   - compact-one-record-per-offset: no offset was seen holding two
//     records.
//   - compact-offsets-increase: along a partition, every read (each pass
//     of the reader, the final read) saw strictly increasing offsets.
//   - compact-latest-per-key: for every key, the final log ends with the
//     newest acknowledged write of it, at its offset: its value; or, for a
//     tombstone, the tombstone or nothing at all (removed after
//     delete.retention.ms, and then no older record of the key either). A
//     record of the key after it can only be one that was sent and not
//     acknowledged. The final read reached every high watermark.
//   - compact-key-compaction-ran: some acknowledged record is gone from
//     the final log (only key compaction removes records of this topic),
//     so the other checks did not pass on an uncompacted log.

// compactFinal is the compacted topic's state read after the run.
type compactFinal struct {
	hwm        map[int32]int64
	log        map[position]compactRec
	order      []string // the final read's offsets not increasing
	incomplete []string
}

func compactChecks(c *compactHistory, f compactFinal) []check {
	return []check{
		checkCompactAcked(c, f),
		{"compact-one-record-per-offset", slices.Clone(c.conflicts)},
		{"compact-offsets-increase", append(slices.Clone(c.back), f.order...)},
		checkCompactLatest(c, f),
		checkCompactRan(c, f),
	}
}

func checkCompactAcked(c *compactHistory, f compactFinal) check {
	ch := check{name: "compact-records-at-acked-offsets", violations: append(slices.Clone(c.bad), c.ackDups...)}
	for _, pos := range sortedPositions(f.log) {
		r := f.log[pos]
		if a, ok := c.acks[r.ID]; ok && a != pos {
			ch.violations = append(ch.violations, fmt.Sprintf("%s: the final read has %s, acknowledged at %s", pos, r.ID, a))
		}
	}
	return ch
}

func checkCompactLatest(c *compactHistory, f compactFinal) check {
	ch := check{name: "compact-latest-per-key", violations: slices.Clone(f.incomplete)}
	type at struct {
		pos position
		id  string
	}
	newestAcked := map[string]at{}
	for _, id := range slices.Sorted(maps.Keys(c.acks)) {
		w, pos := c.sent[id], c.acks[id]
		if cur, ok := newestAcked[w.Key]; !ok || cur.pos.Offset < pos.Offset {
			newestAcked[w.Key] = at{pos, id}
		}
	}
	newestLog := map[string]at{}
	for _, pos := range sortedPositions(f.log) { // offset order
		r := f.log[pos]
		newestLog[r.Key] = at{pos, r.ID}
	}
	for _, k := range slices.Sorted(maps.Keys(newestAcked)) {
		a := newestAcked[k]
		tomb := c.sent[a.id].Tombstone
		l, ok := newestLog[k]
		switch {
		case !ok && tomb:
			// The tombstone went after delete.retention.ms, and every
			// older record of the key before it.
		case !ok:
			ch.violations = append(ch.violations, fmt.Sprintf("key %s: its newest acknowledged value %s at %s is gone, and no record of the key is left", k, a.id, a.pos))
		case l.pos.Partition != a.pos.Partition:
			ch.violations = append(ch.violations, fmt.Sprintf("key %s: acknowledged in partition %d, found in partition %d", k, a.pos.Partition, l.pos.Partition))
		case l.pos.Offset < a.pos.Offset:
			what := "value"
			if tomb {
				what = "tombstone"
			}
			ch.violations = append(ch.violations, fmt.Sprintf("key %s: its newest acknowledged %s %s at %s is gone, and an older record %s at %s is left", k, what, a.id, a.pos, l.id, l.pos))
		case l.pos.Offset == a.pos.Offset && l.id != a.id:
			ch.violations = append(ch.violations, fmt.Sprintf("key %s: %s holds %s, acknowledged for %s", k, a.pos, l.id, a.id))
		case l.pos.Offset > a.pos.Offset:
			if _, acked := c.acks[l.id]; acked {
				ch.violations = append(ch.violations, fmt.Sprintf("key %s: %s at %s is newer than its newest acknowledged %s at %s, and acknowledged elsewhere", k, l.id, l.pos, a.id, a.pos))
			}
		}
	}
	return ch
}

func checkCompactRan(c *compactHistory, f compactFinal) check {
	ch := check{name: "compact-key-compaction-ran"}
	present := 0
	for _, r := range f.log {
		if _, ok := c.acks[r.ID]; ok {
			present++
		}
	}
	if len(c.acks) == 0 || present == len(c.acks) {
		ch.violations = append(ch.violations, fmt.Sprintf("key compaction removed nothing: %d records acknowledged, %d of them in the final log", len(c.acks), present))
	}
	return ch
}

// compactSummary is the compacted topic's part of the summary line.
func compactSummary(c *compactHistory, f compactFinal) string {
	tombs, present := 0, 0
	for id := range c.acks {
		if c.sent[id].Tombstone {
			tombs++
		}
	}
	keys := map[string]bool{}
	kept := 0 // tombstones in the final log
	for _, r := range f.log {
		if _, ok := c.acks[r.ID]; ok {
			present++
		}
		keys[r.Key] = true
		if r.Tombstone {
			kept++
		}
	}
	return fmt.Sprintf("compacted topic: sent %d, acked %d (%d tombstones), produce errors %d, final log %d records (%d acked records removed by key compaction; %d of the %d keys, %d tombstones), reader passes %d (%d records read)",
		len(c.sent), len(c.acks), tombs, sumCounts(c.prodErrs), len(f.log), len(c.acks)-present, len(keys), compactKeys, kept, c.passes, c.reads)
}
