package fault

import (
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"
)

// The checker finds each kind of violation in a made-up history, and
// passes a clean one: a checker that cannot fail proves nothing.
func TestCheckerFindsViolations(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	// clean is a correct run: producer 0 wrote seq 0..3 to partition 0,
	// seq 2 was never acked (and is in the log: allowed); a group read and
	// committed everything.
	clean := func() (*history, final) {
		h := newHistory()
		f := final{hwm: map[int32]int64{0: 4}, log: map[position]string{}, committed: map[string]map[int32]int64{"g": {0: 4}}}
		for o, seq := range []int{0, 1, 2, 3} {
			pos := position{0, int64(o)}
			v := value(0, seq)
			if seq != 2 {
				h.acked(v, pos)
			}
			h.read("g", 0, pos, v)
			h.read("", 0, pos, v)
			f.log[pos] = v
		}
		h.committed("g", commitObs{At: t0, Member: 0, Generation: 1, Offset: 2}, 0)
		h.committed("g", commitObs{At: t0.Add(time.Second), Member: 1, Generation: 2, Offset: 4}, 0)
		h.polledOffset("g", 0, t0, 2)
		h.polledOffset("g", 0, t0.Add(time.Second), 4)
		h.owned("g", 0, 1, []int32{0})
		h.owned("g", 1, 2, []int32{0})
		// Transactions: producer 0's first committed (two records), its
		// second aborted; producer 1's first had an unknown outcome and is
		// wholly visible, its second unknown and invisible. The pipeline
		// copied the four visible records once each; the read_committed
		// reader saw one of them during the run.
		f.txnLog, f.eosLog = map[position]string{}, map[position]string{}
		for _, tx := range []struct {
			k       txnKey
			count   int
			outcome txnOutcome
			at      []position
		}{
			{txnKey{0, 0}, 2, txnCommitted, []position{{0, 0}, {1, 0}}},
			{txnKey{0, 1}, 1, txnAborted, nil},
			{txnKey{1, 0}, 2, txnUnknown, []position{{0, 2}, {1, 2}}},
			{txnKey{1, 1}, 3, txnUnknown, nil},
		} {
			h.txnBegun(tx.k, tx.count)
			h.txnEnded(tx.k, tx.outcome, tx.outcome == txnAborted, nil)
			for i, pos := range tx.at {
				f.txnLog[pos] = txnValue(tx.k.Producer, tx.k.N, i, tx.count)
				f.eosLog[pos] = eosValue(f.txnLog[pos])
			}
		}
		h.rcRead(position{0, 0}, txnValue(0, 0, 0, 2))
		// The compacted topic: partition 0 got k00, k03, k00 again and a
		// tombstone of k03, all acked; partition 1 k01 (acked) and k01
		// again (not acked, in the log). Key compaction left the newest
		// of k00 and removed k03 altogether (its tombstone expired).
		f.compact = compactFinal{hwm: map[int32]int64{0: 4, 1: 2}, log: map[position]compactRec{}}
		for _, w := range []struct {
			id        string
			key       string
			tomb      bool
			pos       position
			acked, in bool
		}{
			{compactID(0, 0), "k00", false, position{0, 0}, true, false},
			{compactID(0, 1), "k03", false, position{0, 1}, true, false},
			{compactID(0, 2), "k00", false, position{0, 2}, true, true},
			{compactID(0, 3), "k03", true, position{0, 3}, true, false},
			{compactID(0, 4), "k01", false, position{1, 0}, true, true},
			{compactID(1, 0), "k01", false, position{1, 1}, false, true},
		} {
			h.compact.sentOne(w.id, compactWrite{Key: w.key, Tombstone: w.tomb})
			if w.acked {
				h.compact.acked(w.id, w.pos)
			}
			if w.in {
				r := compactRec{ID: w.id, Key: w.key, Value: w.id}
				h.compact.read(w.pos, r, "the final read")
				f.compact.log[w.pos] = r
			}
		}
		return h, f
	}
	failing := func(checks []check) []string {
		var names []string
		for _, c := range checks {
			if len(c.violations) > 0 {
				names = append(names, c.name)
			}
		}
		return names
	}
	if got := failing(checkRun(clean())); len(got) > 0 {
		t.Fatalf("a clean run fails %v", got)
	}

	for _, tc := range []struct {
		want   string
		mutate func(h *history, f *final)
	}{
		{"acked-records-present-once", func(h *history, f *final) { delete(f.log, position{0, 3}); f.hwm[0] = 3 }},
		{"acked-records-present-once", func(h *history, f *final) { f.log[position{0, 4}] = value(0, 3); f.hwm[0] = 5 }},
		{"per-producer-order", func(h *history, f *final) {
			f.log[position{0, 0}], f.log[position{0, 1}] = f.log[position{0, 1}], f.log[position{0, 0}]
			h.acks[value(0, 0)], h.acks[value(0, 1)] = position{0, 1}, position{0, 0}
		}},
		{"one-record-per-offset", func(h *history, f *final) { h.read("g", 1, position{0, 1}, "other") }},
		{"log-dense-and-readable", func(h *history, f *final) { f.hwm[0] = 6 }},
		{"committed-offsets-never-go-back", func(h *history, f *final) { h.polledOffset("g", 0, t0.Add(2*time.Second), 3) }},
		{"committed-offsets-never-go-back", func(h *history, f *final) { f.committed["g"][0] = 3 }},
		{"one-owner-per-generation", func(h *history, f *final) { h.owned("g", 0, 2, []int32{0}) }},
		{"group-read-below-committed", func(h *history, f *final) { delete(h.groups["g"].read, position{0, 1}) }},
		{"agents-ready-at-end", func(h *history, f *final) { f.notReady = []string{"agent-1"} }},
		{"txn-committed-not-lost", func(h *history, f *final) { delete(f.txnLog, position{1, 0}) }},
		{"txn-committed-not-lost", func(h *history, f *final) { f.txnIncomplete = []string{"fault-txn partition 1"} }},
		{"txn-aborted-invisible", func(h *history, f *final) { f.txnLog[position{2, 0}] = txnValue(0, 1, 0, 1) }},
		{"txn-aborted-invisible", func(h *history, f *final) { f.txnLog[position{2, 0}] = txnValue(2, 0, 0, 1) }}, // never begun
		{"txn-all-or-nothing", func(h *history, f *final) { delete(f.txnLog, position{1, 2}); delete(f.eosLog, position{1, 2}) }},
		{"txn-all-or-nothing", func(h *history, f *final) { // a record twice
			f.txnLog[position{3, 0}] = txnValue(1, 0, 1, 2)
		}},
		{"txn-no-hanging-transaction", func(h *history, f *final) {
			f.hanging = []string{"fault-txn partition 0: last stable offset 3, high watermark 5"}
		}},
		{"txn-read-committed-during-run", func(h *history, f *final) { h.rcRead(position{2, 0}, txnValue(0, 1, 0, 1)) }},
		{"txn-read-committed-during-run", func(h *history, f *final) { h.rcRead(position{0, 3}, txnValue(1, 1, 0, 3)) }}, // not in the final read
		{"eos-pipeline-exactly-once", func(h *history, f *final) { delete(f.eosLog, position{0, 2}) }},
		{"eos-pipeline-exactly-once", func(h *history, f *final) { f.eosLog[position{3, 0}] = eosValue(txnValue(0, 0, 0, 2)) }},
		{"eos-pipeline-exactly-once", func(h *history, f *final) { f.eosLog[position{3, 0}] = eosValue(txnValue(1, 1, 0, 3)) }},
		{"eos-pipeline-exactly-once", func(h *history, f *final) { f.eosBehind = []string{"fault-eos behind"} }},
		{"compact-records-at-acked-offsets", func(h *history, f *final) { // a record moved
			r := f.compact.log[position{0, 2}]
			delete(f.compact.log, position{0, 2})
			f.compact.log[position{0, 4}] = r
		}},
		{"compact-records-at-acked-offsets", func(h *history, f *final) { // read at another offset during the run
			h.compact.read(position{0, 1}, compactRec{ID: compactID(0, 2), Key: "k00", Value: compactID(0, 2)}, "the reader")
		}},
		{"compact-records-at-acked-offsets", func(h *history, f *final) { // never sent
			h.compact.read(position{1, 2}, compactRec{ID: "c9-000000000", Key: "k01", Value: "c9-000000000"}, "the reader")
		}},
		{"compact-records-at-acked-offsets", func(h *history, f *final) { // a tombstone read as a value
			h.compact.read(position{0, 3}, compactRec{ID: compactID(0, 3), Key: "k03", Value: "x"}, "the reader")
		}},
		{"compact-one-record-per-offset", func(h *history, f *final) {
			h.compact.read(position{0, 2}, compactRec{ID: compactID(0, 0), Key: "k00", Value: compactID(0, 0)}, "the reader")
		}},
		{"compact-offsets-increase", func(h *history, f *final) {
			f.compact.order = []string{"0/1: the final read read offset 1 after offset 2"}
		}},
		{"compact-latest-per-key", func(h *history, f *final) { delete(f.compact.log, position{0, 2}) }}, // k00's newest value gone
		{"compact-latest-per-key", func(h *history, f *final) { // k00's newest value gone, an older one left
			delete(f.compact.log, position{0, 2})
			f.compact.log[position{0, 0}] = compactRec{ID: compactID(0, 0), Key: "k00", Value: compactID(0, 0)}
		}},
		{"compact-latest-per-key", func(h *history, f *final) { // k03's tombstone gone, an older value left
			f.compact.log[position{0, 1}] = compactRec{ID: compactID(0, 1), Key: "k03", Value: compactID(0, 1)}
		}},
		{"compact-latest-per-key", func(h *history, f *final) { f.compact.incomplete = []string{"fault-compact partition 0"} }},
		{"compact-key-compaction-ran", func(h *history, f *final) { // nothing removed
			for id, pos := range h.compact.acks {
				w := h.compact.sent[id]
				r := compactRec{ID: id, Key: w.Key, Tombstone: w.Tombstone}
				if !w.Tombstone {
					r.Value = id
				}
				f.compact.log[pos] = r
			}
		}},
	} {
		h, f := clean()
		tc.mutate(h, &f)
		if got := failing(checkRun(h, f)); !strings.Contains(strings.Join(got, ","), tc.want) {
			t.Errorf("want %s to fail, failing: %v", tc.want, got)
		}
	}
}

// The longest leader gap counts samples with no leader, an unknown broker
// or an agent that was down, and ignores samples that were not taken.
func TestLongestLeaderGap(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	sample := func(ms int, leader int32) metaSample {
		return metaSample{At: at(ms), Leaders: map[int32]int32{0: leader, 1: 1}, Agents: map[int32]int{1: 0, 2: 1}}
	}
	samples := []metaSample{
		sample(0, 1), sample(100, -1), sample(200, -1), sample(900, 2), // no leader 100..900
		sample(1000, 1), sample(1100, 1), sample(2500, 2), // agent 0 down 1000..2000: gap 1000..2500
	}
	down := func(agent int, t time.Time) bool { return agent == 0 && !t.Before(at(1000)) && t.Before(at(2000)) }
	g := longestLeaderGap(samples, down)
	if g.Length != 1500*time.Millisecond || !g.Start.Equal(at(1000)) {
		t.Fatalf("longest gap %v from %v, want 1.5s from +1s (partition 1 is led by agent 0 too)", g.Length, g.Start.Sub(t0))
	}
	if want := []string{"agent-0, down from 00:00:01.000"}; !slices.Equal(g.Seen, want) || g.Silent != 1400*time.Millisecond {
		t.Fatalf("the gap's Metadata %q, longest silence %v; want %q, 1.4s", g.Seen, g.Silent, want)
	}
	// The first gap, seen on its own: no leader, then an unknown node.
	g = longestLeaderGap([]metaSample{sample(0, 1), sample(100, -1), sample(200, 7), sample(900, 2)}, down)
	if want := []string{"no leader from 00:00:00.100", "node 7, not among the brokers from 00:00:00.200"}; !slices.Equal(g.Seen, want) || g.Length != 800*time.Millisecond {
		t.Fatalf("gap %v, Metadata %q; want 800ms, %q", g.Length, g.Seen, want)
	}
}

// A cut proxy drops its connections and blackholes new ones until healed.
func TestProxyCut(t *testing.T) {
	t.Parallel()
	up, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	go func() { // an echo server
		for {
			c, err := up.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	p, err := newProxy("test", up.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	echo := func(c net.Conn) error {
		_ = c.SetDeadline(time.Now().Add(500 * time.Millisecond))
		if _, err := c.Write([]byte("x")); err != nil {
			return err
		}
		_, err := io.ReadFull(c, make([]byte, 1))
		return err
	}
	dial := func() net.Conn {
		c, err := net.Dial("tcp", p.Addr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	before := dial()
	if err := echo(before); err != nil {
		t.Fatalf("through the proxy: %v", err)
	}
	p.Cut()
	if err := echo(before); err == nil {
		t.Fatal("a connection open at the cut still works")
	}
	during := dial()
	err = echo(during)
	if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Fatalf("a connection made during the cut: %v, want a timeout (blackhole)", err)
	}
	p.Heal()
	if err := echo(dial()); err != nil {
		t.Fatalf("after the heal: %v", err)
	}
}
