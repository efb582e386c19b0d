package fault

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// The checker: pure functions of what the clients recorded (history) and
// of the state read after every fault was healed (final). Only what the
// promises cover can fail a run: a record that was not acknowledged may be
// in the log or not, once or more; a produce may fail after its retries.

// final is the state read after the run.
type final struct {
	hwm        map[int32]int64            // high watermark per partition
	log        map[position]string        // the final read: offset -> value
	incomplete []string                   // partitions the final read could not finish
	committed  map[string]map[int32]int64 // group -> partition -> committed offset at the end
	behind     []string                   // groups that did not catch up with the log
	notReady   []string                   // agents not ready at the end
	unplanned  []string                   // agent exits the nemesis did not cause
	races      []string                   // data races reported by the agents
	nemesis    []string                   // faults that could not be applied or healed

	// The transactional workload (txncheck_test.go).
	txnLog        map[position]string // the final read_committed read of the transactional topic
	txnIncomplete []string            // its partitions it could not finish
	hanging       []string            // partitions whose last stable offset stayed below the high watermark
	eosLog        map[position]string // the final read_committed read of the pipeline's output (nil: no pipeline)
	eosIncomplete []string            // its partitions it could not finish
	eosBehind     []string            // the pipeline did not consume all its input

	compact compactFinal // the compacted topic (compactcheck_test.go)
}

// check is one promise and how the run broke it.
type check struct {
	name       string
	violations []string
}

const maxShown = 15 // examples per check in the report

func (c check) String() string {
	if len(c.violations) == 0 {
		return c.name + ": ok"
	}
	shown := c.violations[:min(len(c.violations), maxShown)]
	s := fmt.Sprintf("%s: %d violation(s):\n    %s", c.name, len(c.violations), strings.Join(shown, "\n    "))
	if len(c.violations) > maxShown {
		s += fmt.Sprintf("\n    ... and %d more", len(c.violations)-maxShown)
	}
	return s
}

// checkRun evaluates every promise. h.mu must not be held by anyone
// recording (the run is over).
func checkRun(h *history, f final) []check {
	return append([]check{
		checkAcked(h, f),
		checkOrder(h, f),
		{"one-record-per-offset", append(append([]string(nil), h.conflicts...), h.ackDups...)},
		checkDense(f),
		checkCommitted(h, f),
		checkOwners(h),
		checkGroupRead(h, f),
		{"groups-caught-up", f.behind},
		{"agents-ready-at-end", f.notReady},
		{"no-unplanned-agent-exit", f.unplanned},
		{"no-data-race-in-agents", f.races},
		{"nemesis-applied-and-healed", f.nemesis},
	}, append(txnChecks(h, f), compactChecks(h.compact, f.compact)...)...)
}

// checkAcked: every acknowledged record is in the final log exactly once,
// at the offset its ack gave.
func checkAcked(h *history, f final) check {
	c := check{name: "acked-records-present-once"}
	where := map[string][]position{}
	for pos, v := range f.log {
		where[v] = append(where[v], pos)
	}
	for _, v := range slices.Sorted(maps.Keys(h.acks)) {
		ack := h.acks[v]
		got := where[v]
		switch {
		case len(got) == 0:
			c.violations = append(c.violations, fmt.Sprintf("%q acked at %s is missing", v, ack))
		case len(got) > 1:
			slices.SortFunc(got, cmpPos)
			c.violations = append(c.violations, fmt.Sprintf("%q acked at %s is in the log %d times: %v", v, ack, len(got), got))
		case got[0] != ack:
			c.violations = append(c.violations, fmt.Sprintf("%q acked at %s is at %s", v, ack, got[0]))
		}
	}
	return c
}

// checkOrder: along the offsets of a partition, each producer's
// acknowledged records come in the order it sent them.
func checkOrder(h *history, f final) check {
	c := check{name: "per-producer-order"}
	last := map[[2]int]struct {
		seq int
		at  position
	}{} // (partition, producer) -> last acked seq
	for _, pos := range sortedPositions(f.log) {
		v := f.log[pos]
		if _, ok := h.acks[v]; !ok {
			continue
		}
		id, seq, ok := parseValue(v)
		if !ok {
			continue
		}
		k := [2]int{int(pos.Partition), id}
		if prev, seen := last[k]; seen && seq <= prev.seq {
			c.violations = append(c.violations, fmt.Sprintf("producer %d: seq %d at %s after seq %d at %s", id, seq, pos, prev.seq, prev.at))
		}
		last[k] = struct {
			seq int
			at  position
		}{seq, pos}
	}
	return c
}

// checkDense: the final read got every offset from 0 to the high
// watermark (offsets are dense; nothing acknowledged or read can vanish).
func checkDense(f final) check {
	c := check{name: "log-dense-and-readable", violations: append([]string(nil), f.incomplete...)}
	for _, p := range slices.Sorted(maps.Keys(f.hwm)) {
		missing, first := 0, int64(-1)
		for o := range f.hwm[p] {
			if _, ok := f.log[position{p, o}]; !ok {
				if first < 0 {
					first = o
				}
				missing++
			}
		}
		if missing > 0 {
			c.violations = append(c.violations, fmt.Sprintf("partition %d: %d offsets below the high watermark %d missing from the final read, the first %d", p, missing, f.hwm[p], first))
		}
	}
	return c
}

// checkCommitted: a group's committed offset never goes back: the series
// polled from outside only grows, and the final committed offset is at
// least every offset a commit was acknowledged for (and at most the high
// watermark).
func checkCommitted(h *history, f final) check {
	c := check{name: "committed-offsets-never-go-back"}
	for _, name := range slices.Sorted(maps.Keys(h.groups)) {
		g := h.groups[name]
		for _, p := range slices.Sorted(maps.Keys(g.polled)) {
			s := g.polled[p]
			for i := 1; i < len(s); i++ {
				if s[i].Offset < s[i-1].Offset {
					c.violations = append(c.violations, fmt.Sprintf("%s partition %d: committed offset went from %d back to %d (polled at %s, then %s); commits acknowledged around then: %s",
						name, p, s[i-1].Offset, s[i].Offset, s[i-1].At.UTC().Format("15:04:05.000"), s[i].At.UTC().Format("15:04:05.000"),
						commitsBetween(g.commits[p], s[i-1].At.Add(-5*time.Second), s[i].At)))
				}
			}
		}
		end, ok := f.committed[name]
		if !ok {
			continue
		}
		for _, p := range slices.Sorted(maps.Keys(g.commits)) {
			top := slices.MaxFunc(g.commits[p], func(a, b commitObs) int { return cmp.Compare(a.Offset, b.Offset) })
			if end[p] < top.Offset {
				c.violations = append(c.violations, fmt.Sprintf("%s partition %d: final committed offset %d is below %d, acknowledged to member %d (generation %d) at %s",
					name, p, end[p], top.Offset, top.Member, top.Generation, top.At.UTC().Format("15:04:05.000")))
			}
		}
		for _, p := range slices.Sorted(maps.Keys(end)) {
			if hw, ok := f.hwm[p]; ok && end[p] > hw {
				c.violations = append(c.violations, fmt.Sprintf("%s partition %d: committed offset %d is past the high watermark %d", name, p, end[p], hw))
			}
		}
	}
	return c
}

// commitsBetween formats the acknowledged commits from from to to (at most
// the last eight).
func commitsBetween(commits []commitObs, from, to time.Time) string {
	var out []string
	for _, c := range commits {
		if !c.At.Before(from) && !c.At.After(to) {
			out = append(out, fmt.Sprintf("%d by member %d gen %d at %s", c.Offset, c.Member, c.Generation, c.At.UTC().Format("15:04:05.000")))
		}
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out[max(0, len(out)-8):], ", ")
}

// checkOwners: in one generation of a group, no partition is owned by two
// members.
func checkOwners(h *history) check {
	c := check{name: "one-owner-per-generation"}
	for _, name := range slices.Sorted(maps.Keys(h.groups)) {
		g := h.groups[name]
		for _, gen := range slices.Sorted(maps.Keys(g.owners)) {
			for _, p := range slices.Sorted(maps.Keys(g.owners[gen])) {
				if m := g.owners[gen][p]; len(m) > 1 {
					var who []string
					for _, o := range m {
						who = append(who, fmt.Sprintf("member %d from %s", o.Member, o.At.UTC().Format("15:04:05.000")))
					}
					c.violations = append(c.violations, fmt.Sprintf("%s generation %d: partition %d owned by %s", name, gen, p, strings.Join(who, " and ")))
				}
			}
		}
	}
	return c
}

// checkGroupRead: a group read every offset below what it committed (at
// least once), so a commit never skipped records.
func checkGroupRead(h *history, f final) check {
	c := check{name: "group-read-below-committed"}
	for _, name := range slices.Sorted(maps.Keys(f.committed)) {
		g := h.groups[name]
		for _, p := range slices.Sorted(maps.Keys(f.committed[name])) {
			missing, first := 0, int64(-1)
			for o := range f.committed[name][p] {
				if g == nil || !g.read[position{p, o}] {
					if first < 0 {
						first = o
					}
					missing++
				}
			}
			if missing > 0 {
				c.violations = append(c.violations, fmt.Sprintf("%s partition %d: committed %d but never read %d offsets below it, the first %d", name, p, f.committed[name][p], missing, first))
			}
		}
	}
	return c
}

// leaderGap is the longest time a partition had no leader able to serve:
// Metadata named no leader, a broker that is not an agent, or an agent that
// was dead, paused or cut off from PostgreSQL at the time. Failed Metadata
// requests are no evidence: a gap runs from the first sample without a
// serving leader to the next sample with one.
type leaderGap struct {
	Partition  int32
	Length     time.Duration
	Start      time.Time
	Samples    int
	SampleSpan time.Duration
	// Seen is what Metadata answered during the gap: each change of the
	// partition's leader state, with when it was first seen.
	Seen []string
	// Silent is the longest time within the gap without a Metadata
	// answer.
	Silent time.Duration
}

func longestLeaderGap(samples []metaSample, down func(agent int, at time.Time) bool) leaderGap {
	var best leaderGap
	if len(samples) == 0 {
		return best
	}
	best.Samples = len(samples)
	best.SampleSpan = samples[len(samples)-1].At.Sub(samples[0].At)
	type openGap struct {
		start, last time.Time
		seen        []string
		state       string
		silent      time.Duration
	}
	open := map[int32]*openGap{}
	closeGap := func(p int32, at time.Time) {
		if g, ok := open[p]; ok {
			if d := at.Sub(g.start); d > best.Length {
				best.Partition, best.Length, best.Start = p, d, g.start
				best.Seen, best.Silent = g.seen, max(g.silent, at.Sub(g.last))
			}
			delete(open, p)
		}
	}
	for _, s := range samples {
		for p, leader := range s.Leaders {
			agent, known := s.Agents[leader]
			serving := leader >= 0 && known && agent >= 0 && !down(agent, s.At)
			if serving {
				closeGap(p, s.At)
				continue
			}
			var state string
			switch {
			case leader < 0:
				state = "no leader"
			case !known:
				state = fmt.Sprintf("node %d, not among the brokers", leader)
			case agent < 0:
				state = fmt.Sprintf("node %d, not an agent", leader)
			default:
				state = fmt.Sprintf("agent-%d, down", agent)
			}
			g, ok := open[p]
			if !ok {
				g = &openGap{start: s.At, last: s.At}
				open[p] = g
			}
			g.silent = max(g.silent, s.At.Sub(g.last))
			g.last = s.At
			if state != g.state {
				g.state = state
				g.seen = append(g.seen, state+" from "+s.At.UTC().Format("15:04:05.000"))
			}
		}
	}
	last := samples[len(samples)-1].At
	for p := range open {
		closeGap(p, last)
	}
	return best
}

func sortedPositions[V any](m map[position]V) []position {
	return slices.SortedFunc(maps.Keys(m), cmpPos)
}

func cmpPos(a, b position) int {
	if a.Partition != b.Partition {
		return cmp.Compare(a.Partition, b.Partition)
	}
	return cmp.Compare(a.Offset, b.Offset)
}
