package broker

import (
	"strings"
	"testing"

	"github.com/streamhouse/streamhouse/internal/batch"
	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/partlog"
)

// partBuilder lays batches out at consecutive offsets, as the log would.
type partBuilder struct {
	t    *testing.T
	next int64
	raws [][]byte
}

// data appends a batch of values; pid < 0 is a batch from no producer,
// txn a transactional one.
func (p *partBuilder) data(pid int64, txn bool, values ...string) int64 {
	p.t.Helper()
	opts := batch.DefaultBuildOptions()
	if pid >= 0 {
		opts.ProducerID, opts.ProducerEpoch, opts.BaseSequence, opts.Transactional = pid, 0, int32(p.next), txn
	}
	recs := make([]batch.Record, len(values))
	for i, v := range values {
		recs[i] = batch.Record{Value: []byte(v), Timestamp: 1}
	}
	raw, err := batch.Build(recs, opts)
	if err != nil {
		p.t.Fatal(err)
	}
	return p.add(raw)
}

// marker appends pid's commit or abort marker, as the log writes it.
func (p *partBuilder) marker(pid int64, commit bool) int64 {
	p.t.Helper()
	raw, err := batch.BuildControl(batch.EndTxnMarker{ProducerID: pid, Commit: commit, Timestamp: 1})
	if err != nil {
		p.t.Fatal(err)
	}
	return p.add(raw)
}

func (p *partBuilder) add(raw []byte) int64 {
	base := p.next
	batch.SetBaseOffset(raw, base)
	h, err := batch.ParseHeader(raw)
	if err != nil {
		p.t.Fatal(err)
	}
	p.raws = append(p.raws, raw)
	p.next = h.LastOffset() + 1
	return base
}

// read is the log's answer to a committed read from the first batch on:
// every batch (even ones at or past lso, which the log must not return,
// so a leak is caught here too) in one piece.
func (p *partBuilder) read(lso int64, aborted []metadata.AbortedTxn) partlog.ReadResult {
	var all []byte
	for _, r := range p.raws {
		all = append(all, r...)
	}
	return partlog.ReadResult{Pieces: [][]byte{all}, Size: len(all), HighWatermark: p.next, LastStableOffset: lso, NextOffset: p.next, Aborted: aborted}
}

func values(recs []Record) string {
	var out []string
	for _, r := range recs {
		out = append(out, string(r.Value))
	}
	return strings.Join(out, ",")
}

// A committed read returns the records of plain, idempotent and committed
// transactional batches, and none of an aborted transaction, a control
// batch, or a transaction still open (at or past the LSO); its next offset
// moves past what it skipped, up to the LSO.
func TestConsumeReadsCommitted(t *testing.T) {
	t.Parallel()
	p := &partBuilder{t: t}
	p.data(-1, false, "plain0", "plain1")         // 0-1
	a1 := p.data(7, true, "ABORTED2", "ABORTED3") // 2-3: producer 7, aborted below
	p.data(9, true, "committed4")                 // 4: producer 9, committed below
	p.data(-1, false, "plain5")                   // 5
	p.data(7, true, "ABORTED6")                   // 6: same aborted transaction
	abortAt := p.marker(7, false)                 // 7
	p.marker(9, true)                             // 8
	p.data(7, true, "committed9")                 // 9: producer 7's next transaction, committed
	p.marker(7, true)                             // 10
	p.data(11, false, "idempotent11")             // 11: an idempotent, non-transactional batch
	lso := p.data(12, true, "OPEN12")             // 12: producer 12's transaction is open
	p.data(-1, false, "AFTERLSO13")               // 13: stable only once 12 ends
	aborted := []metadata.AbortedTxn{{ProducerID: 7, FirstOffset: a1, LastOffset: abortAt}}

	c := consumer{maxRecords: 100, maxBytes: 1 << 20}
	more, err := c.add(p.read(lso, aborted))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := values(c.out.Records), "plain0,plain1,committed4,plain5,committed9,idempotent11"; got != want {
		t.Fatalf("read committed returned %s, want %s", got, want)
	}
	if c.out.NextOffset != lso || more {
		t.Fatalf("next offset %d (more %v), want the LSO %d and no more", c.out.NextOffset, more, lso)
	}
	if c.out.LastStableOffset != lso || c.out.HighWatermark != p.next {
		t.Fatalf("lso %d hw %d, want %d %d", c.out.LastStableOffset, c.out.HighWatermark, lso, p.next)
	}
	for _, r := range c.out.Records {
		if strings.ToUpper(string(r.Value)) == string(r.Value) {
			t.Fatalf("record %d %q leaked", r.Offset, r.Value)
		}
	}
}

// A read that holds only an aborted transaction and its marker returns no
// records and a next offset past the marker, so the reader does not read
// the same range forever; a record limit stops mid-way with the next
// offset right after the last record returned.
func TestConsumeSkipsAbortedRangeAndStopsAtLimit(t *testing.T) {
	t.Parallel()
	p := &partBuilder{t: t}
	first := p.data(3, true, "A", "B", "C")
	at := p.marker(3, false)
	c := consumer{maxRecords: 10, maxBytes: 1 << 20}
	if _, err := c.add(p.read(p.next, []metadata.AbortedTxn{{ProducerID: 3, FirstOffset: first, LastOffset: at}})); err != nil {
		t.Fatal(err)
	}
	if len(c.out.Records) != 0 || c.out.NextOffset != at+1 {
		t.Fatalf("records %s next %d, want none and %d", values(c.out.Records), c.out.NextOffset, at+1)
	}

	q := &partBuilder{t: t}
	q.data(4, true, "x0", "x1", "x2")
	q.marker(4, true)
	c = consumer{maxRecords: 2, maxBytes: 1 << 20}
	if _, err := c.add(q.read(q.next, nil)); err != nil {
		t.Fatal(err)
	}
	if got := values(c.out.Records); got != "x0,x1" || c.out.NextOffset != 2 {
		t.Fatalf("records %s next %d, want x0,x1 and 2", got, c.out.NextOffset)
	}
}

// The aborted-transaction rule alone, on headers: only a transactional
// data batch of the aborted producer inside [FirstOffset, LastOffset).
func TestInAbortedTxn(t *testing.T) {
	t.Parallel()
	aborted := []metadata.AbortedTxn{{ProducerID: 5, FirstOffset: 10, LastOffset: 20}}
	const txn, ctl = 0x10, 0x30
	for _, tc := range []struct {
		attrs int16
		pid   int64
		base  int64
		want  bool
	}{
		{txn, 5, 10, true},
		{txn, 5, 19, true},
		{txn, 5, 9, false},  // before the transaction
		{txn, 5, 20, false}, // the marker's offset and after
		{txn, 6, 12, false}, // another producer
		{0, 5, 12, false},   // not transactional
		{ctl, 5, 20, false}, // the marker itself (skipped as control)
	} {
		h := batch.Header{Attributes: tc.attrs, ProducerID: tc.pid, BaseOffset: tc.base}
		if got := inAbortedTxn(h, aborted); got != tc.want {
			t.Errorf("attrs %#x pid %d base %d: %v, want %v", tc.attrs, tc.pid, tc.base, got, tc.want)
		}
	}
}
