package partlog

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/internal/metadata/faulty"
	"github.com/streamhouse/streamhouse/internal/metadata/metadatatest"
	"github.com/streamhouse/streamhouse/internal/objstore"
	"github.com/streamhouse/streamhouse/internal/testutil"
)

// A leader cut off from the metadata store (its renewals fail) stops acting
// as leader once its lease deadline passes: no appends, no high watermark
// served as leader, Leads and LeaderEpoch false. When a renewal succeeds
// again before anyone else took the lease it leads again at the same epoch;
// once another agent took the lease it never does.
func TestCutOffLeaderStepsDown(t *testing.T) { onBackends(t, testCutOffLeaderStepsDown) }

func testCutOffLeaderStepsDown(t *testing.T, open storeOpener) {
	t.Parallel()
	e := newEnv(t, open, nil)
	fs := faulty.New(e.store)
	cfg := e.config("agent-a")
	cfg.Store = fs
	a := e.open(cfg)
	topic := e.topic("t", 2, nil)
	lead(t, a, topic)
	ctx := context.Background()
	tp0, tp1 := tpOf(topic, 0), tpOf(topic, 1)
	if _, err := a.Append(ctx, tp0, mkBatch(t, "a", 2), AckDurable); err != nil {
		t.Fatal(err)
	}
	epoch, ok := a.LeaderEpoch(tp0)
	if !ok {
		t.Fatal("not leading after Lead")
	}

	// Cut off: renewals fail, and the TTL passes.
	fs.Inject(faulty.Fault{Op: faulty.OpRenewLeases})
	e.clock.Advance(cfg.LeaseTTL)
	if a.Leads(tp0) {
		t.Fatal("Leads is true past the lease deadline without a renewal")
	}
	if _, ok := a.LeaderEpoch(tp0); ok {
		t.Fatal("LeaderEpoch ok past the lease deadline")
	}
	if _, err := a.Append(ctx, tp0, mkBatch(t, "late", 1), AckBuffered); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("append past the lease deadline: err %v, want ErrNotLeader", err)
	}

	// The store answers again before anyone took the lease: same epoch.
	fs.Clear()
	testutil.WaitFor(t, "a renewal to restore leadership", func() bool { return a.Leads(tp0) })
	if got, _ := a.LeaderEpoch(tp0); got != epoch {
		t.Fatalf("epoch after recovery %d, want %d", got, epoch)
	}
	if _, err := a.Append(ctx, tp0, mkBatch(t, "again", 1), AckDurable); err != nil {
		t.Fatalf("append after recovery: %v", err)
	}

	// Cut off again; this time agent B takes partition 0 meanwhile.
	fs.Inject(faulty.Fault{Op: faulty.OpRenewLeases})
	e.clock.Advance(cfg.LeaseTTL + time.Second)
	b := e.open(e.config("agent-b"))
	if err := b.Lead(ctx, topic, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Append(ctx, tp0, mkBatch(t, "b", 3), AckDurable); err != nil {
		t.Fatal(err)
	}
	if hw, _, err := a.HighWatermark(ctx, tp0); err != nil || hw != 6 {
		t.Fatalf("A's high watermark of a partition it lost: %d, %v; want the store's 6", hw, err)
	}
	fs.Clear()
	testutil.WaitFor(t, "a renewal to drop partition 0", func() bool {
		_, held := a.LeaseDeadline(tp0)
		return !held
	})
	if a.Leads(tp0) {
		t.Fatal("A leads partition 0 again after B took it")
	}
	testutil.WaitFor(t, "A to lead partition 1 again", func() bool { return a.Leads(tp1) })
	if got := readAll(t, b, tp0); len(got) != 6 {
		t.Fatalf("%d records, want 6", len(got))
	}
}

// A renewal that hangs cannot keep the next one from starting before the
// lease deadline: each attempt is bounded, so one hung call costs no lease.
func TestHungRenewalDoesNotCostTheLease(t *testing.T) {
	t.Parallel()
	e := newEnv(t, metadatatest.OpenSQLite, nil)
	fs := faulty.New(e.store)
	cfg := e.config("agent-a")
	cfg.Store = fs
	cfg.LeaseTTL = 2 * time.Second
	a := e.open(cfg)
	topic := e.topic("t", 1, nil)
	lead(t, a, topic)
	tp := tpOf(topic, 0)
	before, _ := a.LeaseDeadline(tp)
	fs.Inject(faulty.Fault{Op: faulty.OpRenewLeases, Hang: true, Times: 1})
	testutil.WaitFor(t, "a renewal to hang", func() bool { return fs.Hanging() == 1 })
	testutil.WaitFor(t, "a later renewal to move the deadline", func() bool {
		d, _ := a.LeaseDeadline(tp)
		return d.After(before.Add(cfg.LeaseTTL / 4))
	})
	fs.Release()
}

// Write errors belong to a leadership term: when a partition is led again
// at a new epoch on the same agent while data of the old term is still in
// the write buffer, the old term's failure fails the old term's writers
// only, never the new term's.
func TestOldTermFailureSparesNewTerm(t *testing.T) { onBackends(t, testOldTermFailureSparesNewTerm) }

func testOldTermFailureSparesNewTerm(t *testing.T, open storeOpener) {
	t.Parallel()
	f := objstore.NewFaulty(objstore.NewMemory())
	e := newEnv(t, open, f)
	cfg := e.config("a1")
	cfg.MaxInflightUploads = 1
	l := e.open(cfg)
	topic := e.topic("t", 2, nil)
	lead(t, l, topic)
	ctx := context.Background()
	tp0, tp1 := tpOf(topic, 0), tpOf(topic, 1)

	// An upload of partition 1 hangs, so partition 0's next data stays in
	// the open buffer (one upload in flight at most).
	f.Inject(objstore.Fault{Op: objstore.OpPut, Hang: true, Times: 1})
	if _, err := l.Append(ctx, tp1, mkBatch(t, "p1", 1), AckBuffered); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "the upload to hang", func() bool { return f.Hanging() == 1 })
	if _, err := l.Append(ctx, tp0, mkBatch(t, "old-term", 1), AckBuffered); err != nil {
		t.Fatal(err)
	}
	old, _ := l.LeaderEpoch(tp0)
	// Led again: a new term; the old one's buffered data cannot commit.
	if err := l.Lead(ctx, topic, 0); err != nil {
		t.Fatal(err)
	}
	if e, _ := l.LeaderEpoch(tp0); e != old+1 {
		t.Fatalf("epoch %d after leading again, want %d", e, old+1)
	}
	a, err := l.AppendAsync(ctx, tp0, mkBatch(t, "new-term", 2), AckDurable)
	if err != nil {
		t.Fatal(err)
	}
	f.Release()
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if _, err := a.Wait(wctx); err != nil {
		t.Fatalf("new term's durable append failed with the old term's error: %v", err)
	}
	got := readAll(t, l, tp0)
	if len(got) != 2 || string(got[0].Value) != "new-term-0" {
		t.Fatalf("records %+v, want the new term's 2", got)
	}
}
