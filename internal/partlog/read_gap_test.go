package partlog

import (
	"context"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/internal/batch"
)

// A read_committed read at an offset whose range up to the LSO key
// compaction emptied waits like a read at the LSO (MaxWait), instead of
// answering nothing at once: a REST or gRPC reader would spin on it until
// the open transaction ends.
func TestReadCommittedWaitsInAGapBeforeTheLSO(t *testing.T) {
	onBackends(t, testReadCommittedWaitsInAGap)
}

func testReadCommittedWaitsInAGap(t *testing.T, open storeOpener) {
	t.Parallel()
	e := newEnv(t, open, nil)
	coord := newTxnCoord()
	cfg := keyConfig(e)
	cfg.VerifyTxn = coord.verify
	l := e.open(cfg)
	topic := e.topic("gap", 1, map[string]string{"cleanup.policy": "compact", "delete.retention.ms": "60000"})
	lead(t, l, topic)
	tp := tpOf(topic, 0)
	plain := batch.DefaultBuildOptions()
	now := e.clock.Now().UnixMilli()
	appendOK(t, l, tp, kbatch(t, plain, kv{key: "a", value: "1", ts: now}))
	appendOK(t, l, tp, kbatch(t, plain, kv{key: "a", tomb: true, ts: now}))
	txn := plain
	txn.ProducerID, txn.ProducerEpoch, txn.BaseSequence, txn.Transactional = 1, 0, 0, true
	coord.begin(1, 0)
	appendOK(t, l, tp, kbatch(t, txn, kv{key: "x", value: "open", ts: now})) // LSO 2 from here on
	// Two passes, each past delete.retention.ms: a=1 and then its
	// tombstone are gone, so [0, 2) up to the LSO is empty.
	for range 2 {
		e.clock.Advance(2 * time.Minute)
		compactOK(t, l)
	}
	res, err := l.ReadWith(context.Background(), tp, 0, ReadOptions{MaxBytes: 1 << 20, Isolation: ReadCommitted})
	if err != nil || res.Size != 0 || res.LastStableOffset != 2 {
		t.Fatalf("read at 0 without a wait: %d bytes, LSO %d, %v; want nothing below the LSO 2", res.Size, res.LastStableOffset, err)
	}
	// With a wait, one read takes its MaxWait: in a second, at most one
	// answer (a spinning read answers thousands).
	start, n := time.Now(), 0
	for time.Since(start) < time.Second {
		res, err := l.ReadWith(context.Background(), tp, 1, ReadOptions{MaxBytes: 1 << 20, MaxWait: 2 * time.Second, Isolation: ReadCommitted})
		if err != nil || res.Size != 0 {
			t.Fatalf("read in the gap: %d bytes, %v", res.Size, err)
		}
		n++
	}
	if n > 1 {
		t.Fatalf("%d read_committed answers in 1 s with MaxWait 2 s: the read spins in the gap", n)
	}
}
