package partlog

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/internal/batch"
	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/testutil"
)

// txnCoord stands in for the transaction coordinator's answer to the
// log's verification: the producers it has a transaction open for (at an
// epoch), on every partition.
type txnCoord struct {
	mu    sync.Mutex
	open  map[int64]int16
	calls int
}

func newTxnCoord() *txnCoord { return &txnCoord{open: make(map[int64]int16)} }

func (c *txnCoord) begin(pid int64, epoch int16) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.open[pid] = epoch
}

func (c *txnCoord) end(pid int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.open, pid)
}

func (c *txnCoord) verify(_ context.Context, _ metadata.TopicPartition, pid int64, epoch int16) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	if e, ok := c.open[pid]; !ok || e != epoch {
		return fmt.Errorf("producer %d epoch %d has no open transaction: %w", pid, epoch, ErrInvalidTxnState)
	}
	return nil
}

func (c *txnCoord) verifications() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls
}

// txnBatch is a transactional batch of n records of producer pid.
func txnBatch(t testing.TB, pid int64, epoch int16, seq int32, n int) []byte {
	t.Helper()
	recs := make([]batch.Record, n)
	for i := range recs {
		recs[i] = batch.Record{Value: []byte(fmt.Sprintf("txn-p%d-e%d-s%d", pid, epoch, int(seq)+i))}
	}
	opts := batch.DefaultBuildOptions()
	opts.ProducerID, opts.ProducerEpoch, opts.BaseSequence, opts.Transactional = pid, epoch, seq, true
	b, err := batch.Build(recs, opts)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// txnEnv is a log leading one partition with transactions verified by a
// txnCoord.
type txnEnv struct {
	e     *env
	l     *Log
	coord *txnCoord
	topic metadata.Topic
	tp    metadata.TopicPartition
}

func newTxnEnv(t *testing.T, open storeOpener) *txnEnv {
	t.Helper()
	e := newEnv(t, open, nil)
	coord := newTxnCoord()
	cfg := e.config("a1")
	cfg.VerifyTxn = coord.verify
	l := e.open(cfg)
	topic := e.topic("t", 1, nil)
	lead(t, l, topic)
	return &txnEnv{e: e, l: l, coord: coord, topic: topic, tp: tpOf(topic, 0)}
}

func (x *txnEnv) append(t *testing.T, b []byte) AppendResult {
	t.Helper()
	res, err := x.l.Append(context.Background(), x.tp, b, AckDurable)
	if err != nil {
		t.Fatalf("append: %v", err)
	}
	return res
}

func (x *txnEnv) marker(t *testing.T, pid int64, epoch int16, commit bool) MarkerResult {
	t.Helper()
	res, err := x.l.WriteMarker(context.Background(), x.tp, Marker{ProducerID: pid, ProducerEpoch: epoch, Commit: commit, CoordinatorEpoch: 1})
	if err != nil {
		t.Fatalf("marker: %v", err)
	}
	return res
}

func checkStable(t *testing.T, l *Log, tp metadata.TopicPartition, wantLSO, wantHW int64) {
	t.Helper()
	_, lso, hw, err := l.StableOffsets(context.Background(), tp)
	if err != nil || lso != wantLSO || hw != wantHW {
		t.Fatalf("StableOffsets: lso %d hw %d (%v), want lso %d hw %d", lso, hw, err, wantLSO, wantHW)
	}
}

// consumed is what a Kafka consumer makes of a read: its data records
// (read_committed: without those of aborted transactions, filtered as
// Kafka's consumer does with the aborted list) and the markers it saw.
type consumed struct {
	values  []string
	offsets []int64
	markers map[int64]bool // offset -> commit
}

// consume reads tp from offset to the end (the LSO or the high
// watermark) as a consumer at isolation iso does.
func consume(t *testing.T, l *Log, tp metadata.TopicPartition, from int64, iso Isolation) (consumed, []metadata.AbortedTxn) {
	t.Helper()
	c := consumed{markers: make(map[int64]bool)}
	var allAborted []metadata.AbortedTxn
	off := from
	for {
		res, err := l.ReadWith(context.Background(), tp, off, ReadOptions{MaxBytes: 1 << 20, Isolation: iso})
		if err != nil {
			t.Fatalf("read at %d: %v", off, err)
		}
		if res.Size == 0 {
			return c, allAborted
		}
		if iso == ReadUncommitted && res.Aborted != nil {
			t.Fatalf("read_uncommitted got an aborted list %v", res.Aborted)
		}
		allAborted = append(allAborted, res.Aborted...)
		bs, err := batch.Split(res.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		aborted := append([]metadata.AbortedTxn(nil), res.Aborted...)
		abortedPIDs := map[int64]bool{}
		for _, b := range bs {
			h, recs, err := batch.Records(b)
			if err != nil {
				t.Fatal(err)
			}
			if iso == ReadCommitted && h.LastOffset() >= res.LastStableOffset {
				t.Fatalf("read_committed returned batch [%d, %d] at or past the LSO %d", h.BaseOffset, h.LastOffset(), res.LastStableOffset)
			}
			for len(aborted) > 0 && aborted[0].FirstOffset <= h.LastOffset() {
				abortedPIDs[aborted[0].ProducerID] = true
				aborted = aborted[1:]
			}
			if h.IsControl() {
				commit, _, err := batch.ParseEndTxnMarker(recs[0])
				if err != nil {
					t.Fatal(err)
				}
				c.markers[h.BaseOffset] = commit
				if !commit {
					delete(abortedPIDs, h.ProducerID)
				}
				continue
			}
			if iso == ReadCommitted && h.IsTransactional() && abortedPIDs[h.ProducerID] {
				continue
			}
			for _, r := range recs {
				if r.Offset >= off {
					c.values = append(c.values, string(r.Value))
					c.offsets = append(c.offsets, r.Offset)
				}
			}
		}
		off = res.NextOffset
	}
}

func vals(prefix string, from, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, from+i)
	}
	return out
}

func concat(ss ...[]string) []string {
	var out []string
	for _, s := range ss {
		out = append(out, s...)
	}
	return out
}

// A committed transaction's records become visible to read_committed at
// its commit marker; an aborted one's never are (the aborted list filters
// them), while read_uncommitted sees every record at once. Markers sit at
// exactly the offsets WriteMarker reports.
func TestTxnCommitAbortVisibility(t *testing.T) { onBackends(t, testTxnCommitAbortVisibility) }

func testTxnCommitAbortVisibility(t *testing.T, open storeOpener) {
	t.Parallel()
	x := newTxnEnv(t, open)
	x.coord.begin(1, 0)
	x.coord.begin(2, 0)

	if r := x.append(t, txnBatch(t, 1, 0, 0, 3)); r.BaseOffset != 0 { // 0-2
		t.Fatalf("first batch at %d", r.BaseOffset)
	}
	checkStable(t, x.l, x.tp, 0, 3)
	if c, _ := consume(t, x.l, x.tp, 0, ReadCommitted); len(c.values) != 0 {
		t.Fatalf("read_committed sees an open transaction: %v", c.values)
	}
	if c, _ := consume(t, x.l, x.tp, 0, ReadUncommitted); !reflect.DeepEqual(c.values, vals("txn-p1-e0-s", 0, 3)) {
		t.Fatalf("read_uncommitted: %v", c.values)
	}
	res, err := x.l.ReadWith(context.Background(), x.tp, 0, ReadOptions{MaxBytes: 1 << 20})
	if err != nil || res.LastStableOffset != 0 || res.HighWatermark != 3 {
		t.Fatalf("read_uncommitted result: lso %d hw %d %v", res.LastStableOffset, res.HighWatermark, err)
	}
	x.append(t, txnBatch(t, 1, 0, 3, 2)) // 3-4
	if m := x.marker(t, 1, 0, true); !m.Written || m.Offset != 5 {
		t.Fatalf("commit marker %+v, want written at 5", m)
	}
	checkStable(t, x.l, x.tp, 6, 6)
	x.append(t, txnBatch(t, 2, 0, 0, 3)) // 6-8
	x.append(t, mkBatch(t, "plain", 2))  // 9-10
	checkStable(t, x.l, x.tp, 6, 11)
	if m := x.marker(t, 2, 0, false); !m.Written || m.Offset != 11 {
		t.Fatalf("abort marker %+v, want written at 11", m)
	}
	x.append(t, mkBatch(t, "tail", 1)) // 12
	checkStable(t, x.l, x.tp, 13, 13)

	c, aborted := consume(t, x.l, x.tp, 0, ReadCommitted)
	want := concat(vals("txn-p1-e0-s", 0, 5), vals("plain-", 0, 2), vals("tail-", 0, 1))
	if !reflect.DeepEqual(c.values, want) {
		t.Fatalf("read_committed: %v, want %v", c.values, want)
	}
	if !reflect.DeepEqual(c.markers, map[int64]bool{5: true, 11: false}) {
		t.Fatalf("markers %v, want commit at 5 and abort at 11", c.markers)
	}
	if want := []metadata.AbortedTxn{{ProducerID: 2, FirstOffset: 6, LastOffset: 11}}; !reflect.DeepEqual(aborted, want) {
		t.Fatalf("aborted %v, want %v", aborted, want)
	}
	u, _ := consume(t, x.l, x.tp, 0, ReadUncommitted)
	if want := concat(vals("txn-p1-e0-s", 0, 5), vals("txn-p2-e0-s", 0, 3), vals("plain-", 0, 2), vals("tail-", 0, 1)); !reflect.DeepEqual(u.values, want) {
		t.Fatalf("read_uncommitted: %v, want %v", u.values, want)
	}
	// The aborted list covers only the range read.
	res, err = x.l.ReadWith(context.Background(), x.tp, 12, ReadOptions{MaxBytes: 1 << 20, Isolation: ReadCommitted})
	if err != nil || len(res.Aborted) != 0 || res.NextOffset != 13 {
		t.Fatalf("read at 12: next %d aborted %v %v", res.NextOffset, res.Aborted, err)
	}
	// What the store holds agrees with memory.
	st, err := x.e.store.GetPartition(context.Background(), x.tp)
	if err != nil || st.LastStableOffset != 13 || st.HighWatermark != 13 {
		t.Fatalf("stored partition %+v %v", st, err)
	}
	stored, err := x.e.store.ListAbortedTxns(context.Background(), x.tp, 0, 13)
	if err != nil || !reflect.DeepEqual(stored, []metadata.AbortedTxn{{ProducerID: 2, FirstOffset: 6, LastOffset: 11}}) {
		t.Fatalf("stored aborted %v %v", stored, err)
	}
}

// The LSO is the first offset of the oldest open transaction, whichever
// producer's: two interleaved transactions hold it at the first one's
// start until it closes, then at the second's.
func TestTxnInterleavedProducers(t *testing.T) { onBackends(t, testTxnInterleavedProducers) }

func testTxnInterleavedProducers(t *testing.T, open storeOpener) {
	t.Parallel()
	x := newTxnEnv(t, open)
	x.coord.begin(1, 0)
	x.coord.begin(2, 0)
	x.append(t, txnBatch(t, 1, 0, 0, 2)) // 0-1
	x.append(t, txnBatch(t, 2, 0, 0, 2)) // 2-3
	x.append(t, txnBatch(t, 1, 0, 2, 2)) // 4-5
	x.append(t, txnBatch(t, 2, 0, 2, 1)) // 6
	checkStable(t, x.l, x.tp, 0, 7)
	if got := x.coord.verifications(); got != 2 {
		t.Fatalf("%d verifications, want one per transaction opened", got)
	}
	ps, err := x.l.Producers(context.Background(), x.tp)
	if err != nil || len(ps) != 2 || !ps[0].InTxn || ps[0].TxnFirstOffset != 0 || !ps[1].InTxn || ps[1].TxnFirstOffset != 2 {
		t.Fatalf("producers %+v %v", ps, err)
	}
	x.marker(t, 1, 0, true) // 7
	checkStable(t, x.l, x.tp, 2, 8)
	c, _ := consume(t, x.l, x.tp, 0, ReadCommitted)
	if !reflect.DeepEqual(c.offsets, []int64{0, 1}) {
		t.Fatalf("read_committed below the second transaction: offsets %v, want 0 and 1", c.offsets)
	}
	x.marker(t, 2, 0, false) // 8
	checkStable(t, x.l, x.tp, 9, 9)
	c, aborted := consume(t, x.l, x.tp, 0, ReadCommitted)
	if !reflect.DeepEqual(c.offsets, []int64{0, 1, 4, 5}) || !reflect.DeepEqual(aborted, []metadata.AbortedTxn{{ProducerID: 2, FirstOffset: 2, LastOffset: 8}}) {
		t.Fatalf("read_committed: offsets %v aborted %v", c.offsets, aborted)
	}
	ps, err = x.l.Producers(context.Background(), x.tp)
	if err != nil || len(ps) != 2 || ps[0].InTxn || ps[1].InTxn || ps[0].CoordinatorEpoch != 1 {
		t.Fatalf("producers after the markers %+v %v", ps, err)
	}
}

// A read_committed long poll at the LSO of a led partition waits while
// only the high watermark moves and wakes when the marker moves the LSO.
func TestTxnLongPollAtLSO(t *testing.T) { onBackends(t, testTxnLongPollAtLSO) }

func testTxnLongPollAtLSO(t *testing.T, open storeOpener) {
	t.Parallel()
	x := newTxnEnv(t, open)
	x.coord.begin(1, 0)
	x.append(t, txnBatch(t, 1, 0, 0, 2)) // 0-1
	x.append(t, mkBatch(t, "plain", 2))  // 2-3
	type result struct {
		res ReadResult
		err error
	}
	ch := make(chan result, 1)
	go func() {
		res, err := x.l.ReadWith(context.Background(), x.tp, 0, ReadOptions{MaxBytes: 1 << 20, MaxWait: time.Minute, Isolation: ReadCommitted})
		ch <- result{res, err}
	}()
	x.append(t, mkBatch(t, "more", 1)) // 4: the high watermark moves, the LSO does not
	select {
	case r := <-ch:
		t.Fatalf("read_committed returned while the transaction is open: %+v %v", r.res, r.err)
	default:
	}
	x.marker(t, 1, 0, true) // 5
	select {
	case r := <-ch:
		if r.err != nil || r.res.LastStableOffset != 6 || r.res.NextOffset != 6 || len(r.res.Aborted) != 0 {
			t.Fatalf("woken read: next %d lso %d aborted %v %v", r.res.NextOffset, r.res.LastStableOffset, r.res.Aborted, r.err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("read_committed long poll not woken by the marker")
	}
	// At the LSO with no wait: nothing, not out of range; past the high
	// watermark: out of range.
	res, err := x.l.ReadWith(context.Background(), x.tp, 6, ReadOptions{MaxBytes: 1 << 20, Isolation: ReadCommitted})
	if err != nil || res.Size != 0 || res.NextOffset != 6 {
		t.Fatalf("read at the LSO: %+v %v", res, err)
	}
	if _, err := x.l.ReadWith(context.Background(), x.tp, 7, ReadOptions{MaxBytes: 1 << 20, Isolation: ReadCommitted}); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("read past the high watermark: %v", err)
	}
}

// Markers are idempotent (a second one finds no open transaction and
// writes nothing), refused for an older producer epoch or an older
// coordinator epoch, and a marker that raises the epoch fences the old
// one's writes; the new epoch starts at sequence 0.
func TestTxnMarkerRules(t *testing.T) { onBackends(t, testTxnMarkerRules) }

func testTxnMarkerRules(t *testing.T, open storeOpener) {
	t.Parallel()
	x := newTxnEnv(t, open)
	ctx := context.Background()
	if m := x.marker(t, 9, 0, true); m.Written {
		t.Fatalf("marker for a producer never seen: %+v", m)
	}
	x.coord.begin(1, 3)
	x.append(t, txnBatch(t, 1, 3, 0, 2)) // 0-1
	if m := x.marker(t, 1, 3, true); !m.Written || m.Offset != 2 {
		t.Fatalf("marker %+v", m)
	}
	if m := x.marker(t, 1, 3, true); m.Written {
		t.Fatalf("second marker written: %+v", m)
	}
	if _, err := x.l.WriteMarker(ctx, x.tp, Marker{ProducerID: 1, ProducerEpoch: 2, Commit: true, CoordinatorEpoch: 1}); !errors.Is(err, ErrInvalidProducerEpoch) {
		t.Fatalf("marker with an older epoch: %v", err)
	}
	if _, err := x.l.WriteMarker(ctx, x.tp, Marker{ProducerID: 1, ProducerEpoch: 3, Commit: true, CoordinatorEpoch: 0}); !errors.Is(err, ErrCoordinatorFenced) {
		t.Fatalf("marker from an older coordinator: %v", err)
	}
	// An abort that bumps the epoch (a timed-out transaction).
	x.append(t, txnBatch(t, 1, 3, 2, 1)) // 3
	if m, err := x.l.WriteMarker(ctx, x.tp, Marker{ProducerID: 1, ProducerEpoch: 4, CoordinatorEpoch: 1}); err != nil || !m.Written || m.Offset != 4 {
		t.Fatalf("abort with a new epoch: %+v %v", m, err)
	}
	x.coord.begin(1, 4)
	if _, err := x.l.Append(ctx, x.tp, txnBatch(t, 1, 3, 3, 1), AckDurable); !errors.Is(err, ErrInvalidProducerEpoch) {
		t.Fatalf("write of the fenced epoch: %v", err)
	}
	if _, err := x.l.Append(ctx, x.tp, txnBatch(t, 1, 4, 5, 1), AckDurable); !errors.Is(err, ErrOutOfOrderSequence) {
		t.Fatalf("new epoch not starting at sequence 0: %v", err)
	}
	x.append(t, txnBatch(t, 1, 4, 0, 1)) // 5
	checkStable(t, x.l, x.tp, 5, 6)
	// While the transaction is open, a non-transactional batch of the
	// producer is refused, and so is a transactional one of a newer epoch.
	if _, err := x.l.Append(ctx, x.tp, idemBatch(t, 1, 4, 1, 1), AckDurable); !errors.Is(err, ErrInvalidTxnState) {
		t.Fatalf("non-transactional batch in a transaction: %v", err)
	}
	x.coord.begin(1, 5)
	if _, err := x.l.Append(ctx, x.tp, txnBatch(t, 1, 5, 0, 1), AckDurable); !errors.Is(err, ErrInvalidTxnState) {
		t.Fatalf("newer epoch while the old transaction is open: %v", err)
	}
	// Clients cannot write control batches.
	ctl, err := batch.BuildControl(batch.EndTxnMarker{ProducerID: 1, ProducerEpoch: 4, Commit: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := x.l.Append(ctx, x.tp, ctl, AckDurable); !errors.Is(err, batch.ErrInvalidRecord) {
		t.Fatalf("client control batch: %v", err)
	}
	checkStable(t, x.l, x.tp, 5, 6)
}

// Without a VerifyTxn hook every transactional batch is refused; with one,
// its refusal is the append's, and nothing is stored.
func TestTxnVerification(t *testing.T) { onBackends(t, testTxnVerification) }

func testTxnVerification(t *testing.T, open storeOpener) {
	t.Parallel()
	e := newEnv(t, open, nil)
	l := e.open(e.config("a1"))
	topic := e.topic("t", 1, nil)
	lead(t, l, topic)
	tp := tpOf(topic, 0)
	ctx := context.Background()
	if _, err := l.Append(ctx, tp, txnBatch(t, 1, 0, 0, 1), AckDurable); !errors.Is(err, ErrInvalidTxnState) {
		t.Fatalf("transactional batch without VerifyTxn: %v", err)
	}
	if _, err := l.Append(ctx, tp, idemBatch(t, 1, 0, 0, 1), AckDurable); err != nil {
		t.Fatalf("idempotent batch without VerifyTxn: %v", err)
	}

	x := newTxnEnv(t, open)
	if _, err := x.l.Append(ctx, x.tp, txnBatch(t, 1, 0, 0, 1), AckDurable); !errors.Is(err, ErrInvalidTxnState) {
		t.Fatalf("unverified transactional batch: %v", err)
	}
	x.coord.begin(1, 1)
	if _, err := x.l.Append(ctx, x.tp, txnBatch(t, 1, 0, 0, 1), AckDurable); !errors.Is(err, ErrInvalidTxnState) {
		t.Fatalf("transactional batch of another epoch: %v", err)
	}
	checkStable(t, x.l, x.tp, 0, 0)
}

// A marker written between a batch's verification and its append voids
// the verification: the append is refused, so the batch cannot open a
// transaction the coordinator has already ended (a hanging transaction).
func TestTxnMarkerDuringVerification(t *testing.T) {
	onBackends(t, testTxnMarkerDuringVerification)
}

func testTxnMarkerDuringVerification(t *testing.T, open storeOpener) {
	t.Parallel()
	e := newEnv(t, open, nil)
	coord := newTxnCoord()
	entered, proceed := make(chan struct{}, 1), make(chan struct{})
	var block sync.Once
	cfg := e.config("a1")
	cfg.VerifyTxn = func(ctx context.Context, tp metadata.TopicPartition, pid int64, epoch int16) error {
		err := coord.verify(ctx, tp, pid, epoch)
		block.Do(func() {
			entered <- struct{}{}
			<-proceed
		})
		return err
	}
	l := e.open(cfg)
	topic := e.topic("t", 1, nil)
	lead(t, l, topic)
	tp := tpOf(topic, 0)
	ctx := context.Background()

	coord.begin(1, 0)
	done := make(chan error, 1)
	go func() {
		_, err := l.Append(ctx, tp, txnBatch(t, 1, 0, 0, 2), AckDurable)
		done <- err
	}()
	<-entered // verified: the transaction was open
	// The coordinator aborts it meanwhile: no transaction on tp yet, so
	// the marker writes nothing...
	coord.end(1)
	if m, err := l.WriteMarker(ctx, tp, Marker{ProducerID: 1, ProducerEpoch: 0, CoordinatorEpoch: 1}); err != nil || m.Written {
		t.Fatalf("marker before the append: %+v %v", m, err)
	}
	close(proceed)
	// ...and the append that was verified before it must not open one.
	if err := <-done; !errors.Is(err, ErrInvalidTxnState) {
		t.Fatalf("append verified before the marker: %v, want ErrInvalidTxnState", err)
	}
	checkStable(t, l, tp, 0, 0)
	l.mu.Lock()
	guards := len(l.partitions[tp].txnGuards)
	l.mu.Unlock()
	if guards != 0 {
		t.Fatalf("%d verification guards left", guards)
	}
	// A new transaction verifies and opens normally.
	coord.begin(1, 0)
	if _, err := l.Append(ctx, tp, txnBatch(t, 1, 0, 0, 2), AckDurable); err != nil {
		t.Fatalf("append after a fresh verification: %v", err)
	}
	checkStable(t, l, tp, 0, 2)
}

// A new leader carries on from the store: the open transaction (which
// continues without a new verification and holds the LSO), the aborted
// index and the producers' state.
func TestTxnStateSurvivesLeadershipMove(t *testing.T) {
	onBackends(t, testTxnStateSurvivesLeadershipMove)
}

func testTxnStateSurvivesLeadershipMove(t *testing.T, open storeOpener) {
	t.Parallel()
	x := newTxnEnv(t, open)
	ctx := context.Background()
	x.coord.begin(1, 0)
	x.coord.begin(2, 0)
	x.append(t, txnBatch(t, 2, 0, 0, 2)) // 0-1
	x.marker(t, 2, 0, false)             // 2
	x.append(t, mkBatch(t, "plain", 1))  // 3
	x.append(t, txnBatch(t, 1, 0, 0, 2)) // 4-5
	checkStable(t, x.l, x.tp, 4, 6)

	coord2 := newTxnCoord()
	coord2.begin(1, 0)
	cfg := x.e.config("a2")
	cfg.VerifyTxn = coord2.verify
	l2 := x.e.open(cfg)
	if err := x.l.Release(ctx, x.tp); err != nil {
		t.Fatal(err)
	}
	lead(t, l2, x.topic)
	checkStable(t, l2, x.tp, 4, 6)
	l2.mu.Lock()
	p := l2.partitions[x.tp]
	l2.mu.Unlock()
	p.mu.Lock()
	loaded := append([]metadata.AbortedTxn(nil), p.aborted.entries...)
	p.mu.Unlock()
	if want := []metadata.AbortedTxn{{ProducerID: 2, FirstOffset: 0, LastOffset: 2}}; !reflect.DeepEqual(loaded, want) {
		t.Fatalf("aborted index loaded at Lead: %v, want %v", loaded, want)
	}
	if _, err := l2.Append(ctx, x.tp, txnBatch(t, 1, 0, 2, 1), AckDurable); err != nil { // 6
		t.Fatalf("continuing the open transaction on the new leader: %v", err)
	}
	if n := coord2.verifications(); n != 0 {
		t.Fatalf("%d verifications for a transaction already open", n)
	}
	if m, err := l2.WriteMarker(ctx, x.tp, Marker{ProducerID: 1, ProducerEpoch: 0, Commit: true, CoordinatorEpoch: 2}); err != nil || !m.Written || m.Offset != 7 {
		t.Fatalf("commit on the new leader: %+v %v", m, err)
	}
	checkStable(t, l2, x.tp, 8, 8)
	c, aborted := consume(t, l2, x.tp, 0, ReadCommitted)
	if !reflect.DeepEqual(c.values, concat(vals("plain-", 0, 1), vals("txn-p1-e0-s", 0, 3))) ||
		!reflect.DeepEqual(aborted, []metadata.AbortedTxn{{ProducerID: 2, FirstOffset: 0, LastOffset: 2}}) {
		t.Fatalf("read_committed on the new leader: %v aborted %v", c.values, aborted)
	}
	// The first leader, no longer leading, reads the same from the store.
	c1, aborted1 := consume(t, x.l, x.tp, 0, ReadCommitted)
	if !reflect.DeepEqual(c1.values, c.values) || !reflect.DeepEqual(aborted1, aborted) {
		t.Fatalf("read_committed through the store: %v aborted %v", c1.values, aborted1)
	}
}

// A read_committed long poll on a partition another agent leads waits on
// the partition's watcher while only the high watermark moves and wakes
// when the marker moves the LSO, with commit notices and without.
func TestTxnWatcherWakesOnLSO(t *testing.T) {
	t.Run("poll", func(t *testing.T) { onTwoAgents(t, false, testTxnWatcherWakesOnLSO) })
	t.Run("notify", func(t *testing.T) { onTwoAgents(t, true, testTxnWatcherWakesOnLSO) })
}

func testTxnWatcherWakesOnLSO(t *testing.T, a *twoAgents, store metadata.Store, _ *countingStore) {
	ctx := context.Background()
	// The leader of onTwoAgents has no VerifyTxn: a second leader for a
	// topic of its own that has one.
	coord := newTxnCoord()
	lcfg := a.e.config("txn-leader")
	lcfg.VerifyTxn = coord.verify
	leader := a.e.open(lcfg)
	topic := a.e.topic("txn", 1, nil)
	lead(t, leader, topic)
	tp := tpOf(topic, 0)

	cfg := a.e.config("reader")
	cfg.Store = store
	cfg.ReadPollInterval = 20 * time.Millisecond
	reader := a.e.open(cfg)

	coord.begin(1, 0)
	if _, err := leader.Append(ctx, tp, txnBatch(t, 1, 0, 0, 2), AckDurable); err != nil { // 0-1
		t.Fatal(err)
	}
	checkStable(t, reader, tp, 0, 2)
	type result struct {
		res ReadResult
		err error
	}
	ch := make(chan result, 1)
	go func() {
		res, err := reader.ReadWith(ctx, tp, 0, ReadOptions{MaxBytes: 1 << 20, MaxWait: time.Minute, Isolation: ReadCommitted})
		ch <- result{res, err}
	}()
	testutil.WaitFor(t, "the read_committed wait to be watched", func() bool { return reader.watch.count() == 1 })
	if _, err := leader.Append(ctx, tp, mkBatch(t, "plain", 1), AckDurable); err != nil { // 2
		t.Fatal(err)
	}
	testutil.WaitFor(t, "the watcher to see the new high watermark", func() bool {
		reader.watch.mu.Lock()
		defer reader.watch.mu.Unlock()
		w := reader.watch.m[tp]
		return w != nil && w.hw >= 3
	})
	select {
	case r := <-ch:
		t.Fatalf("read_committed woke while the transaction is open: %+v %v", r.res, r.err)
	default:
	}
	if _, err := leader.WriteMarker(ctx, tp, Marker{ProducerID: 1, ProducerEpoch: 0, Commit: false, CoordinatorEpoch: 1}); err != nil { // 3
		t.Fatal(err)
	}
	select {
	case r := <-ch:
		if r.err != nil || r.res.LastStableOffset != 4 || r.res.NextOffset != 4 ||
			!reflect.DeepEqual(r.res.Aborted, []metadata.AbortedTxn{{ProducerID: 1, FirstOffset: 0, LastOffset: 3}}) {
			t.Fatalf("woken read: next %d lso %d aborted %v %v", r.res.NextOffset, r.res.LastStableOffset, r.res.Aborted, r.err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("read_committed long poll on a partition led elsewhere not woken by the marker")
	}
	c, _ := consume(t, reader, tp, 0, ReadCommitted)
	if !reflect.DeepEqual(c.values, []string{"plain-0"}) {
		t.Fatalf("read_committed through the store: %v", c.values)
	}
}

// The aborted index of a led partition stays bounded: past
// maxAbortedTxns the oldest entries leave memory, and reads below what it
// covers get them from the store.
func TestAbortedIndexBound(t *testing.T) {
	var a abortedIndex
	var all []metadata.AbortedTxn
	for i := 0; i < maxAbortedTxns+10; i++ {
		e := metadata.AbortedTxn{ProducerID: int64(i % 7), FirstOffset: int64(3 * i), LastOffset: int64(3*i + 2)}
		all = append(all, e)
		a.add([]metadata.AbortedTxn{e})
	}
	if len(a.entries) > maxAbortedTxns {
		t.Fatalf("%d entries held", len(a.entries))
	}
	if _, ok := a.overlapping(0, 10); ok {
		t.Fatal("the index claims to cover entries it dropped")
	}
	from := a.entries[0].LastOffset
	got, ok := a.overlapping(from, from+7)
	if !ok {
		t.Fatal("the index does not cover what it holds")
	}
	var want []metadata.AbortedTxn
	for _, e := range all {
		if e.LastOffset >= from && e.FirstOffset < from+7 {
			want = append(want, e)
		}
	}
	sort.Slice(want, func(i, j int) bool { return want[i].FirstOffset < want[j].FirstOffset })
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("overlapping = %v, want %v", got, want)
	}
}

// DeleteRecords stays bounded by the high watermark (as Kafka's), also
// past an open transaction's start: the LSO then reads as the log start,
// as Kafka clamps its first unstable offset, and the transaction's marker
// still closes it.
func TestTxnDeleteRecordsPastOpenTxn(t *testing.T) { onBackends(t, testTxnDeleteRecordsPastOpenTxn) }

func testTxnDeleteRecordsPastOpenTxn(t *testing.T, open storeOpener) {
	t.Parallel()
	x := newTxnEnv(t, open)
	ctx := context.Background()
	x.coord.begin(1, 0)
	x.append(t, txnBatch(t, 1, 0, 0, 2)) // 0-1
	x.append(t, mkBatch(t, "plain", 1))  // 2
	if _, err := x.l.DeleteRecords(ctx, x.tp, 4); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("DeleteRecords past the high watermark: %v", err)
	}
	if ls, err := x.l.DeleteRecords(ctx, x.tp, 2); err != nil || ls != 2 {
		t.Fatalf("DeleteRecords(2) = %d, %v", ls, err)
	}
	checkStable(t, x.l, x.tp, 2, 3)
	if res, err := x.l.ReadWith(ctx, x.tp, 2, ReadOptions{MaxBytes: 1 << 20, Isolation: ReadCommitted}); err != nil || res.Size != 0 || res.LastStableOffset != 2 {
		t.Fatalf("read_committed at the log start: %+v %v", res, err)
	}
	x.marker(t, 1, 0, true) // 3
	checkStable(t, x.l, x.tp, 4, 4)
	c, _ := consume(t, x.l, x.tp, 2, ReadCommitted)
	if !reflect.DeepEqual(c.values, []string{"plain-0"}) || !reflect.DeepEqual(c.markers, map[int64]bool{3: true}) {
		t.Fatalf("read_committed after the marker: %v markers %v", c.values, c.markers)
	}
}

// The LSO may fall inside one committed run (a transaction opened in the
// middle of a sealed object's share of the partition): read_committed
// returns the batches before it and none from it on.
func TestTxnLSOInsideRun(t *testing.T) { onBackends(t, testTxnLSOInsideRun) }

func testTxnLSOInsideRun(t *testing.T, open storeOpener) {
	t.Parallel()
	e := newEnv(t, open, nil)
	coord := newTxnCoord()
	cfg := e.config("a1")
	cfg.VerifyTxn = coord.verify
	// After the first seal, only a durable waiter's age seals: what is
	// buffered before it goes into one object.
	cfg.FlushMinInterval, cfg.FlushInterval = time.Hour, time.Hour
	l := e.open(cfg)
	topic := e.topic("t", 1, nil)
	lead(t, l, topic)
	tp := tpOf(topic, 0)
	ctx := context.Background()
	if _, err := l.Append(ctx, tp, mkBatch(t, "first", 1), AckDurable); err != nil { // 0
		t.Fatal(err)
	}
	coord.begin(1, 0)
	for _, b := range [][]byte{mkBatch(t, "before", 2), txnBatch(t, 1, 0, 0, 2)} { // 1-2, 3-4
		if _, err := l.Append(ctx, tp, b, AckBuffered); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.Append(ctx, tp, mkBatch(t, "after", 1), AckDurable); err != nil { // 5
		t.Fatal(err)
	}
	entries, err := e.store.ListIndex(ctx, tp, 1, 10)
	if err != nil || len(entries) != 1 || entries[0].BaseOffset != 1 || entries[0].LastOffset != 5 {
		t.Fatalf("index %+v %v, want one run [1, 5]", entries, err)
	}
	checkStable(t, l, tp, 3, 6)
	for _, reader := range []string{"leader", "store"} {
		if reader == "store" {
			if err := l.Release(ctx, tp); err != nil {
				t.Fatal(err)
			}
		}
		res, err := l.ReadWith(ctx, tp, 1, ReadOptions{MaxBytes: 1 << 20, Isolation: ReadCommitted})
		if err != nil || res.NextOffset != 3 || res.LastStableOffset != 3 || recordsIn(t, res) != 2 {
			t.Fatalf("%s: read_committed from 1: next %d lso %d, %d records, %v", reader, res.NextOffset, res.LastStableOffset, recordsIn(t, res), err)
		}
		res, err = l.ReadWith(ctx, tp, 1, ReadOptions{MaxBytes: 1 << 20})
		if err != nil || res.NextOffset != 6 || recordsIn(t, res) != 5 {
			t.Fatalf("%s: read_uncommitted from 1: next %d, %d records, %v", reader, res.NextOffset, recordsIn(t, res), err)
		}
	}
}

// recordsIn counts the records of every batch a read returned.
func recordsIn(t *testing.T, res ReadResult) int {
	t.Helper()
	bs, err := batch.Split(res.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return countRecords(t, bs)
}
