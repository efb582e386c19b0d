package partlog

import (
	"context"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/metadata/faulty"
	"github.com/streamhouse/streamhouse/internal/objstore"
	"github.com/streamhouse/streamhouse/internal/testutil"
)

// An orphan scan racing a slow commit never leaves the index pointing at a
// deleted object: no commit attempt starts past its object's GC-safe age.
// Here a commit attempt hangs and fails; meanwhile the next object waits
// in the commit queue, time passes beyond the grace period, and the scan
// deletes both uncommitted objects. Neither may be committed afterwards.
func TestSlowCommitRacingOrphanScan(t *testing.T) { onBothBuckets(t, testSlowCommitRacingOrphanScan) }

// A commit attempt that started in time but reaches the store only after
// the orphan scan deleted its object (a process paused inside the
// attempt) stores nothing: the scan claimed the object in the store first.
func TestCommitLandingAfterOrphanScan(t *testing.T) {
	onBothBuckets(t, func(t *testing.T, open storeOpener, bucket objstore.Bucket) {
		e := newEnv(t, open, bucket)
		fs := faulty.New(e.store)
		cfg := e.config("a1")
		cfg.Store = fs
		l := e.open(cfg)
		topic := e.topic("t", 1, nil)
		lead(t, l, topic)
		ctx := context.Background()
		tp := tpOf(topic, 0)
		fs.Inject(faulty.Fault{Op: faulty.OpCommitObject, Hang: true, Times: 1})
		a, err := l.AppendAsync(ctx, tp, mkBatch(t, "late", 1), AckDurable)
		if err != nil {
			t.Fatal(err)
		}
		testutil.WaitFor(t, "the commit to hang", func() bool { return fs.Hanging() == 1 })
		e.clock.Advance(cfg.GCGrace + time.Minute)
		if st, err := l.CollectGarbage(ctx); err != nil || st.Orphans != 1 {
			t.Fatalf("orphan scan: %+v, %v; want the uncommitted object deleted", st, err)
		}
		fs.Release() // the attempt reaches the store now
		wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		_, err = a.Wait(wctx)
		entries, lerr := e.store.ListIndex(ctx, tp, 0, 0)
		if lerr != nil {
			t.Fatal(lerr)
		}
		for _, en := range entries {
			if _, gerr := bucket.Get(ctx, en.ObjectKey); gerr != nil {
				t.Fatalf("index entry %d..%d points at deleted object %s (append err %v)", en.BaseOffset, en.LastOffset, en.ObjectKey, err)
			}
		}
		if err == nil {
			t.Fatal("append acknowledged though its object was deleted")
		}
	})
}

func onBothBuckets(t *testing.T, fn func(t *testing.T, open storeOpener, bucket objstore.Bucket)) {
	onBackends(t, func(t *testing.T, open storeOpener) {
		for name, newBucket := range map[string]func(t *testing.T) objstore.Bucket{
			"memory": func(*testing.T) objstore.Bucket { return objstore.NewMemory() },
			"local": func(t *testing.T) objstore.Bucket {
				b, err := objstore.NewLocal(t.TempDir())
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { b.Close() })
				return b
			},
		} {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				fn(t, open, newBucket(t))
			})
		}
	})
}

func testSlowCommitRacingOrphanScan(t *testing.T, open storeOpener, bucket objstore.Bucket) {
	e := newEnv(t, open, bucket)
	fs := faulty.New(e.store)
	cfg := e.config("a1")
	cfg.Store = fs
	l := e.open(cfg)
	topic := e.topic("t", 2, nil)
	lead(t, l, topic)
	ctx := context.Background()
	tp0, tp1 := tpOf(topic, 0), tpOf(topic, 1)
	objects := func() int {
		n := 0
		if err := bucket.List(ctx, "segments/a1/", func(objstore.ObjectInfo) error { n++; return nil }); err != nil {
			t.Fatal(err)
		}
		return n
	}

	// The first object's commit hangs, then fails (a timeout).
	fs.Inject(faulty.Fault{Op: faulty.OpCommitObject, Hang: true, Err: context.DeadlineExceeded, Times: 1})
	a1, err := l.AppendAsync(ctx, tp1, mkBatch(t, "first", 1), AckDurable)
	if err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "the first commit to hang", func() bool { return fs.Hanging() == 1 })
	// The second object is uploaded and waits behind it.
	a0, err := l.AppendAsync(ctx, tp0, mkBatch(t, "second", 1), AckDurable)
	if err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "the second object to be uploaded", func() bool { return objects() == 2 })

	e.clock.Advance(cfg.GCGrace + time.Minute)
	st, err := l.CollectGarbage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Orphans != 2 {
		t.Fatalf("orphan scan deleted %d objects, want the 2 uncommitted ones", st.Orphans)
	}
	fs.Release()

	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	acked := map[metadata.TopicPartition]bool{}
	for tp, a := range map[metadata.TopicPartition]*Appending{tp0: a0, tp1: a1} {
		_, err := a.Wait(wctx)
		acked[tp] = err == nil
	}
	// The invariant: every index entry's object exists, and every ack is
	// readable.
	for _, tp := range []metadata.TopicPartition{tp0, tp1} {
		entries, err := e.store.ListIndex(ctx, tp, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, en := range entries {
			if _, err := bucket.Get(ctx, en.ObjectKey); err != nil {
				t.Fatalf("%s: index entry %d..%d points at object %s: %v", tp, en.BaseOffset, en.LastOffset, en.ObjectKey, err)
			}
		}
		if acked[tp] && len(entries) == 0 {
			t.Fatalf("%s: append acknowledged, nothing in the index", tp)
		}
	}
}
