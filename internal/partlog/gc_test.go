package partlog

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/internal/batch"
	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/objstore"
)

// The bucket is listed for orphans once per OrphanScanInterval (GCGrace/2
// by default), not on every pass, and the orphans found are checked
// against the store in batches: a thousand and more are all found, and no
// committed object is taken for one.
func TestOrphanScans(t *testing.T) { onBackends(t, testOrphanScans) }

func testOrphanScans(t *testing.T, open storeOpener) {
	t.Parallel()
	counting := objstore.NewCounting(objstore.NewMemory())
	e := newEnv(t, open, counting)
	cfg := e.config("a1") // GCGrace 1 minute: a scan every 30 s
	l := e.open(cfg)
	topic := e.topic("t", 1, nil)
	lead(t, l, topic)
	ctx := context.Background()
	if _, err := l.Append(ctx, tpOf(topic, 0), mkBatch(t, "kept", 3), AckDurable); err != nil {
		t.Fatal(err)
	}
	putOrphans := func(prefix string, n int) {
		t.Helper()
		for i := range n {
			if err := counting.Put(ctx, fmt.Sprintf("segments/dead/%s-%08d.seg", prefix, i), []byte("x")); err != nil {
				t.Fatal(err)
			}
		}
	}
	gc := func() GCStats {
		t.Helper()
		st, err := l.CollectGarbage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	putOrphans("a", 1201) // more than one batch
	if st := gc(); st.Orphans != 0 || counting.Lists() != 1 {
		t.Fatalf("first pass, orphans within grace: %+v, %d lists", st, counting.Lists())
	}
	e.clock.Advance(2 * time.Minute)
	if st := gc(); st.Orphans != 1201 || counting.Lists() != 2 {
		t.Fatalf("after the grace: %+v, %d lists; want 1201 orphans, 2 lists", st, counting.Lists())
	}
	putOrphans("b", 3)
	e.clock.Advance(20 * time.Second) // old enough already, but no scan is due
	if st := gc(); st.Orphans != 0 || counting.Lists() != 2 {
		t.Fatalf("20 s after a scan: %+v, %d lists; want no scan", st, counting.Lists())
	}
	e.clock.Advance(2 * time.Minute)
	if st := gc(); st.Orphans != 3 || counting.Lists() != 3 {
		t.Fatalf("a scan interval later: %+v, %d lists; want 3 orphans, 3 lists", st, counting.Lists())
	}
	if got := readAll(t, l, tpOf(topic, 0)); len(got) != 3 {
		t.Fatalf("committed data after gc: %d records", len(got))
	}
}

// Retention reads the index a page at a time and stops where it keeps:
// with more runs than a page, time retention trims exactly the expired
// ones, and size retention keeps at least retention.bytes.
func TestRetentionPages(t *testing.T) { onBackends(t, testRetentionPages) }

func testRetentionPages(t *testing.T, open storeOpener) {
	t.Parallel()
	e := newEnv(t, open, nil)
	cfg := e.config("a1")
	cfg.RetentionPage = 20
	l := e.open(cfg)
	ctx := context.Background()
	const runs, expired = 20*3 + 15, 20*2 + 10 // several pages, ending mid-page
	byTime := e.topic("by-time", 1, map[string]string{"retention.ms": "60000"})
	bySize := e.topic("by-size", 1, map[string]string{"retention.ms": "-1", "retention.bytes": "2000"})
	old, fresh := e.clock.Now().Add(-time.Hour).UnixMilli(), e.clock.Now().UnixMilli()
	runLen := 0
	for _, topic := range []metadata.Topic{byTime, bySize} {
		lead(t, l, topic)
		for i := range runs {
			ts := fresh
			if i < expired {
				ts = old
			}
			raw, err := batch.Build([]batch.Record{{Value: []byte("v"), Timestamp: ts}}, batch.DefaultBuildOptions())
			if err != nil {
				t.Fatal(err)
			}
			runLen = len(raw)
			if _, err := l.Append(ctx, tpOf(topic, 0), raw, AckDurable); err != nil { // one object, one run each
				t.Fatal(err)
			}
		}
	}
	if n, err := l.EnforceRetention(ctx); err != nil || n != 2 {
		t.Fatalf("EnforceRetention trimmed %d partitions (%v), want 2", n, err)
	}
	keep := (2000 + runLen - 1) / runLen // the fewest runs holding 2000 bytes
	for _, c := range []struct {
		topic metadata.Topic
		start int64
	}{{byTime, expired}, {bySize, runs - int64(keep)}} {
		if _, ls, err := l.HighWatermark(ctx, tpOf(c.topic, 0)); err != nil || ls != c.start {
			t.Errorf("%s: log start %d (%v), want %d", c.topic.Name, ls, err, c.start)
		}
	}
	if size, err := e.store.IndexBytes(ctx, tpOf(bySize, 0), runs-int64(keep)); err != nil || size != int64(keep*runLen) {
		t.Errorf("IndexBytes of what size retention kept = %d, %v; want %d", size, err, keep*runLen)
	}
}
