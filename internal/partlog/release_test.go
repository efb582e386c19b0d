package partlog

import (
	"context"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/internal/metadata/metadatatest"
	"github.com/streamhouse/streamhouse/internal/objstore"
	"github.com/streamhouse/streamhouse/internal/testutil"
)

// A handover that cannot finish (its data cannot be committed in time)
// leaves the agent leading the partition and taking appends again, rather
// than holding the lease while refusing every write.
func TestReleaseThatTimesOutKeepsLeading(t *testing.T) {
	t.Parallel()
	f := objstore.NewFaulty(objstore.NewMemory())
	e := newEnv(t, metadatatest.OpenSQLite, f)
	l := e.open(e.config("a1"))
	topic := e.topic("t", 1, nil)
	lead(t, l, topic)
	tp := tpOf(topic, 0)
	ctx := context.Background()
	f.Inject(objstore.Fault{Op: objstore.OpPut, Hang: true, Times: 1})
	if _, err := l.Append(ctx, tp, mkBatch(t, "held", 1), AckBuffered); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "the upload to hang", func() bool { return f.Hanging() == 1 })
	rctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if err := l.Release(rctx, tp); err == nil {
		t.Fatal("release with its data stuck in an upload succeeded")
	}
	if !l.Leads(tp) {
		t.Fatal("after a failed release the agent no longer leads")
	}
	f.Release()
	if _, err := l.Append(ctx, tp, mkBatch(t, "after", 1), AckDurable); err != nil {
		t.Fatalf("append after a failed release: %v", err)
	}
	if got := readAll(t, l, tp); len(got) != 2 {
		t.Fatalf("%d records, want 2", len(got))
	}
}
