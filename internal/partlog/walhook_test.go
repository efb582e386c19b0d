package partlog

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamhouse/streamhouse/internal/objstore"
)

// metricValue is the value of the unlabelled counter or gauge name in reg.
func metricValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			if g := m.GetGauge(); g != nil {
				return g.GetValue()
			}
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

func TestWALHoldsOnlyBufferedAppends(t *testing.T) { onBackends(t, testWALHoldsOnlyBufferedAppends) }

// Durable and acks=0 appends are not written to the WAL (a durable ack
// waits for the commit, acks=0 promises nothing); buffered ones are.
func testWALHoldsOnlyBufferedAppends(t *testing.T, open storeOpener) {
	e := newEnv(t, open, nil)
	reg := newRegistry()
	cfg := e.walConfig("a1", t.TempDir())
	cfg.Metrics = reg
	l := e.open(cfg)
	topic := e.topic("walmodes", 1, nil)
	lead(t, l, topic)
	tp := tpOf(topic, 0)
	ctx := context.Background()
	for _, m := range []AckMode{AckDurable, AckNone, AckDurable} {
		if _, err := l.Append(ctx, tp, mkBatch(t, m.String(), 2), m); err != nil {
			t.Fatal(err)
		}
	}
	if got := metricValue(t, reg, "streamhouse_wal_appends_total"); got != 0 {
		t.Fatalf("%v WAL entries after durable and acks=0 appends, want 0", got)
	}
	// Committed: the partition no longer holds on to the buffer (nor its
	// batches) for a buffered append that might follow.
	deadline := time.Now().Add(30 * time.Second)
	for {
		l.mu.Lock()
		held := l.partitions[tp].unlogged
		l.mu.Unlock()
		if held == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("partition still refers to its committed buffer")
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := l.Append(ctx, tp, mkBatch(t, "buffered", 2), AckBuffered); err != nil {
		t.Fatal(err)
	}
	if got := metricValue(t, reg, "streamhouse_wal_appends_total"); got != 1 {
		t.Fatalf("%v WAL entries after a buffered append, want 1", got)
	}
}

func TestWALBufferedAfterUnloggedData(t *testing.T) {
	onBackends(t, testWALBufferedAfterUnloggedData)
}

// A buffered append that follows data of its partition not in the WAL
// (here acks=0) and not yet committed is acknowledged only once that data
// is committed: before, a crash would leave a hole in front of its entry
// that replay cannot fill, and the acknowledged records would be dropped
// as "gap". Every record acknowledged survives the crash.
func testWALBufferedAfterUnloggedData(t *testing.T, open storeOpener) {
	bucket := objstore.NewFaulty(objstore.NewMemory())
	e := newEnv(t, open, bucket)
	dir := t.TempDir()
	topic := e.topic("walunlogged", 1, nil)
	tp := tpOf(topic, 0)
	ctx := context.Background()
	l := e.open(e.walConfig("a1", dir))
	lead(t, l, topic)

	var want []acked
	round := func(name string) (*Appending, error) {
		bucket.Inject(objstore.Fault{Op: objstore.OpPut})
		if _, err := l.Append(ctx, tp, mkBatch(t, name+"none", 1), AckNone); err != nil {
			t.Fatal(err)
		}
		a, err := l.AppendAsync(ctx, tp, mkBatch(t, name+"buf", 2), AckBuffered)
		if err != nil {
			t.Fatal(err)
		}
		// Its entry is fsynced at once (WAL_SYNC_INTERVAL_MS 0), the
		// acks=0 data before it is not committed: no ack.
		short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		res, err := a.Wait(short)
		if err == nil {
			want = append(want, acked{tp, res.BaseOffset, []string{name + "buf-0", name + "buf-1"}})
		}
		return a, err
	}
	a, err := round("r1")
	if err == nil {
		t.Fatalf("buffered append acknowledged at %d before the acks=0 data before it was committed", a.res.BaseOffset)
	}
	bucket.Clear()
	res, err := a.Wait(ctx)
	if err != nil || res.BaseOffset != 1 {
		t.Fatalf("after the commit: %+v, %v; want offset 1", res, err)
	}
	want = append(want, acked{tp, 0, []string{"r1none-0"}}, acked{tp, 1, []string{"r1buf-0", "r1buf-1"}})

	// Again, and the agent crashes before the commit: the buffered append
	// fails, and its entry is dropped at replay, never acknowledged.
	a, _ = round("r2")
	crash(t, l)
	bucket.Clear()
	if _, err := a.Wait(ctx); err == nil {
		t.Fatal("buffered append acknowledged though the data before it was never committed")
	}
	l2 := e.open(e.walConfig("a1", dir))
	lead(t, l2, topic)
	st, rerr := l2.ReplayWAL(ctx)
	if rerr != nil {
		t.Fatal(rerr)
	}
	// The first round's buffered entry may not be committed yet either
	// (its ack waited for the acks=0 data and its own fsync): then it is
	// replayed.
	if st.Dropped["gap"] != 1 || len(st.Dropped) != 1 {
		t.Fatalf("replay %+v, want the unacknowledged entry dropped as gap", st)
	}
	checkAcked(t, l2, want)
	if n := len(readAll(t, l2, tp)); n != 3 {
		t.Fatalf("%d records stored, want the 3 of the first round", n)
	}
}

func TestWALBufferedAfterMarker(t *testing.T) { onBackends(t, testWALBufferedAfterMarker) }

// A transaction marker is not in the WAL either: a buffered append after
// an uncommitted marker waits for its commit.
func testWALBufferedAfterMarker(t *testing.T, open storeOpener) {
	bucket := objstore.NewFaulty(objstore.NewMemory())
	e := newEnv(t, open, bucket)
	coord := newTxnCoord()
	cfg := e.walConfig("a1", t.TempDir())
	cfg.VerifyTxn = coord.verify
	l := e.open(cfg)
	topic := e.topic("walmarker", 1, nil)
	lead(t, l, topic)
	tp := tpOf(topic, 0)
	ctx := context.Background()
	coord.begin(7, 0)
	if _, err := l.Append(ctx, tp, txnBatch(t, 7, 0, 0, 2), AckDurable); err != nil {
		t.Fatal(err)
	}
	bucket.Inject(objstore.Fault{Op: objstore.OpPut})
	marked := make(chan error, 1)
	go func() {
		_, err := l.WriteMarker(ctx, tp, Marker{ProducerID: 7, ProducerEpoch: 0, Commit: true, CoordinatorEpoch: 1})
		marked <- err
	}()
	// The marker is in the buffer once the next offset moved past it.
	deadline := time.Now().Add(30 * time.Second)
	for {
		l.mu.Lock()
		next := l.partitions[tp].nextOffset
		l.mu.Unlock()
		if next == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("marker not buffered")
		}
		time.Sleep(time.Millisecond)
	}
	a, err := l.AppendAsync(ctx, tp, mkBatch(t, "after", 1), AckBuffered)
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if res, err := a.Wait(short); err == nil {
		t.Fatalf("buffered append acknowledged at %d before the marker before it was committed", res.BaseOffset)
	}
	bucket.Clear()
	if err := <-marked; err != nil {
		t.Fatal(err)
	}
	if res, err := a.Wait(ctx); err != nil || res.BaseOffset != 3 {
		t.Fatalf("after the commit: %+v, %v; want offset 3", res, err)
	}
}

func TestWALTransactionalBufferedWaitsForCommit(t *testing.T) {
	onBackends(t, testWALTransactionalBufferedWaitsForCommit)
}

// Transactional data is not written to the WAL, so a buffered ack of it
// (a client sending transactional batches with acks=1) waits for the
// commit, as a durable one does: it was answered at once, and lost by a
// crash before the commit.
func testWALTransactionalBufferedWaitsForCommit(t *testing.T, open storeOpener) {
	bucket := objstore.NewFaulty(objstore.NewMemory())
	e := newEnv(t, open, bucket)
	coord := newTxnCoord()
	cfg := e.walConfig("a1", t.TempDir())
	cfg.VerifyTxn = coord.verify
	l := e.open(cfg)
	topic := e.topic("waltxnbuffered", 1, nil)
	lead(t, l, topic)
	tp := tpOf(topic, 0)
	ctx := context.Background()
	coord.begin(7, 0)
	bucket.Inject(objstore.Fault{Op: objstore.OpPut})
	a, err := l.AppendAsync(ctx, tp, txnBatch(t, 7, 0, 0, 2), AckBuffered)
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if res, err := a.Wait(short); err == nil {
		t.Fatalf("transactional buffered append acknowledged at %d with nothing durable", res.BaseOffset)
	}
	bucket.Clear()
	if res, err := a.Wait(ctx); err != nil || res.BaseOffset != 0 {
		t.Fatalf("after the commit: %+v, %v; want offset 0", res, err)
	}
}

func TestWALOneSyncPerRequest(t *testing.T) { onBackends(t, testWALOneSyncPerRequest) }

// A produce request appends its partitions one after the other and then
// waits for them (as the Kafka front end does): their WAL entries are
// written and synced together, once waited for, not each as it comes.
func testWALOneSyncPerRequest(t *testing.T, open storeOpener) {
	bucket := objstore.NewFaulty(objstore.NewMemory())
	e := newEnv(t, open, bucket)
	reg := newRegistry()
	cfg := e.walConfig("a1", t.TempDir())
	cfg.Metrics = reg
	l := e.open(cfg)
	topic := e.topic("walrequest", 8, nil)
	lead(t, l, topic)
	ctx := context.Background()
	bucket.Inject(objstore.Fault{Op: objstore.OpPut}) // nothing commits
	var as []*Appending
	for p := int32(0); p < 8; p++ {
		a, err := l.AppendAsync(ctx, tpOf(topic, p), mkBatch(t, "req", 3), AckBuffered)
		if err != nil {
			t.Fatal(err)
		}
		as = append(as, a)
	}
	// Not waited for yet: no sync starts (a sync of the first entry alone
	// would make the last one wait for a second).
	deadline := time.Now().Add(100 * time.Millisecond)
	for time.Now().Before(deadline) {
		if n := metricValue(t, reg, "streamhouse_wal_fsyncs_total"); n != 0 {
			t.Fatalf("%v WAL syncs before the request waited", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	for _, a := range as {
		if _, err := a.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := metricValue(t, reg, "streamhouse_wal_fsyncs_total"); n != 1 {
		t.Fatalf("%v WAL syncs for one request's 8 entries, want 1", n)
	}
	bucket.Clear()
}
