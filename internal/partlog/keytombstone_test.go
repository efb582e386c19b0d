package partlog

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/internal/batch"
	"github.com/streamhouse/streamhouse/internal/metadata"
)

// tombstoneBatch returns the stored batch holding offset off (read from
// the log), and the timestamps of its records.
func tombstoneBatch(t *testing.T, l *Log, tp metadata.TopicPartition, off int64) (batch.Header, map[int64]int64) {
	t.Helper()
	res, err := l.Read(context.Background(), tp, off, 1<<20, 0)
	if err != nil {
		t.Fatal(err)
	}
	bs, err := batch.Split(res.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bs {
		h, recs, err := batch.Records(b)
		if err != nil {
			t.Fatal(err)
		}
		if h.BaseOffset <= off && off <= h.LastOffset() {
			ts := make(map[int64]int64)
			for _, r := range recs {
				ts[r.Offset] = r.Timestamp
			}
			return h, ts
		}
	}
	t.Fatalf("no batch holds offset %d", off)
	return batch.Header{}, nil
}

// A tombstone on a small, regularly written topic goes once
// delete.retention.ms has passed since the pass that first cleaned it:
// the pass writes that delete horizon into its batch (KIP-534), and later
// rewrites (which regroup it with new data) keep it, where the object
// creation time they carry kept moving forward. The records keep their
// timestamps in the batch with the horizon.
func TestKeyCompactionTombstoneHorizon(t *testing.T) {
	onBackends(t, testKeyCompactionTombstoneHorizon)
}

func testKeyCompactionTombstoneHorizon(t *testing.T, open storeOpener) {
	t.Parallel()
	e := newEnv(t, open, nil)
	l := e.open(keyConfig(e))
	topic := e.topic("kc", 1, map[string]string{"cleanup.policy": "compact", "delete.retention.ms": "60000", "min.cleanable.dirty.ratio": "0.01"})
	lead(t, l, topic)
	tp := tpOf(topic, 0)
	plain := batch.DefaultBuildOptions()
	now := func() int64 { return e.clock.Now().UnixMilli() }
	t0 := now()
	appendOK(t, l, tp, kbatch(t, plain, kv{key: "a", value: "1", ts: t0}))
	appendOK(t, l, tp, kbatch(t, plain, kv{key: "x", value: "1", ts: t0 - 5}, kv{key: "a", tomb: true, ts: t0 - 7}, kv{key: "y", value: "1", ts: t0 + 3}))
	var cleanFrom, cleanTo int64 // the pass that first cleaned the tombstone's batch ran in [from, to]
	for i := range 10 {
		e.clock.Advance(30 * time.Second)
		appendOK(t, l, tp, kbatch(t, plain, kv{key: "b", value: fmt.Sprint(i), ts: now()}))
		before := now()
		st := compactOK(t, l)
		after := now()
		got := strings.Join(readRecords(t, l, tp, 0), ",")
		has := strings.Contains(got, "2 a=<nil>")
		t.Logf("pass %d at +%ds: %+v: %s", i, (before-t0)/1000, st, got)
		h, ts := tombstoneBatch(t, l, tp, 1)
		if ts[1] != t0-5 || ts[3] != t0+3 || (has && ts[2] != t0-7) {
			t.Fatalf("pass %d: record timestamps %v, want x %d, tombstone %d, y %d", i, ts, t0-5, t0-7, t0+3)
		}
		hz, ok := h.DeleteHorizon()
		if cleanFrom == 0 && has && !strings.Contains(got, "0 a=1") {
			cleanFrom, cleanTo = before, after
		}
		switch {
		case cleanFrom == 0:
		case !ok || hz < cleanFrom+60_000 || hz > cleanTo+60_000:
			t.Fatalf("pass %d: delete horizon %d %v, want the first cleaning (in [%d,%d]) + 60 s", i, hz, ok, cleanFrom, cleanTo)
		case after < hz && !has:
			t.Fatalf("pass %d: tombstone removed before its horizon %d (pass in [%d,%d]): %s", i, hz, before, after, got)
		case before >= hz && has:
			t.Fatalf("pass %d: tombstone still there past its horizon %d (pass in [%d,%d]): %s", i, hz, before, after, got)
		}
	}
	if cleanFrom == 0 {
		t.Fatal("no pass cleaned the tombstone's batch")
	}
}

// A tombstone is kept for delete.retention.ms after the pass that first
// cleans it, even when it is older than that: a consumer that read the
// record it deletes just before the pass still sees it.
func TestKeyCompactionTombstoneNotInFirstPass(t *testing.T) {
	onBackends(t, testKeyCompactionTombstoneNotInFirstPass)
}

func testKeyCompactionTombstoneNotInFirstPass(t *testing.T, open storeOpener) {
	t.Parallel()
	e := newEnv(t, open, nil)
	l := e.open(keyConfig(e))
	topic := e.topic("kc", 1, map[string]string{"cleanup.policy": "compact", "delete.retention.ms": "60000"})
	lead(t, l, topic)
	tp := tpOf(topic, 0)
	plain := batch.DefaultBuildOptions()
	t0 := e.clock.Now().UnixMilli()
	appendOK(t, l, tp, kbatch(t, plain, kv{key: "a", value: "1", ts: t0}))
	appendOK(t, l, tp, kbatch(t, plain, kv{key: "a", tomb: true, ts: t0}))
	appendOK(t, l, tp, kbatch(t, plain, kv{key: "z", value: "last", ts: t0}))
	e.clock.Advance(2 * time.Minute)
	first := readRecords(t, l, tp, 0)[:1] // a consumer starting now reads a=1
	before := e.clock.Now().UnixMilli()
	if st := compactOK(t, l); st.KeyPasses != 1 || st.RecordsRemoved != 1 {
		t.Fatalf("first pass %+v, want a=1 removed", st)
	}
	if rest := strings.Join(readRecords(t, l, tp, 1), ","); rest != "1 a=<nil>,2 z=last" {
		t.Fatalf("a consumer that read %v just before the pass then reads %s, want the tombstone", first, rest)
	}
	if h, ts := tombstoneBatch(t, l, tp, 1); ts[1] != t0 {
		t.Fatalf("tombstone timestamp %d, want %d", ts[1], t0)
	} else if hz, ok := h.DeleteHorizon(); !ok || hz < before+60_000 || hz > e.clock.Now().UnixMilli()+60_000 {
		t.Fatalf("delete horizon %d %v, want the pass + 60 s", hz, ok)
	}
	// Before the horizon a pass keeps it; at the horizon one removes it.
	e.clock.Advance(59 * time.Second)
	appendOK(t, l, tp, kbatch(t, plain, kv{key: "y", value: "1", ts: e.clock.Now().UnixMilli()}))
	compactOK(t, l)
	if got := strings.Join(readRecords(t, l, tp, 0), ","); !strings.Contains(got, "1 a=<nil>") {
		t.Fatalf("tombstone removed before its horizon: %s", got)
	}
	e.clock.Advance(time.Second)
	appendOK(t, l, tp, kbatch(t, plain, kv{key: "y", value: "2", ts: e.clock.Now().UnixMilli()}))
	compactOK(t, l)
	if got := strings.Join(readRecords(t, l, tp, 0), ","); strings.Contains(got, "a=<nil>") {
		t.Fatalf("tombstone still there at its horizon: %s", got)
	}
}

// abortedTest answers as a scan of the aborted transactions does.
func TestKeyCompactionAbortedTest(t *testing.T) {
	aborted := []metadata.AbortedTxn{
		{ProducerID: 1, FirstOffset: 50, LastOffset: 60},
		{ProducerID: 2, FirstOffset: 5, LastOffset: 100},
		{ProducerID: 1, FirstOffset: 10, LastOffset: 20},
		{ProducerID: 1, FirstOffset: 70, LastOffset: 70},
	}
	test := abortedTest(aborted)
	for pid := int64(0); pid <= 3; pid++ {
		for off := int64(0); off <= 110; off++ {
			for _, attrs := range []int16{0x10, 0, 0x30} {
				h := batch.Header{ProducerID: pid, BaseOffset: off, Attributes: attrs}
				want := false
				for _, a := range aborted {
					want = want || (attrs == 0x10 && a.ProducerID == pid && a.FirstOffset <= off && off <= a.LastOffset)
				}
				if got := test(h); got != want {
					t.Fatalf("producer %d offset %d attributes %#x: %v, want %v", pid, off, attrs, got, want)
				}
			}
		}
	}
}
