package txn

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/streamhouse/streamhouse/internal/batch"
	"github.com/streamhouse/streamhouse/internal/broker"
	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/metadata/metadatatest"
	"github.com/streamhouse/streamhouse/internal/objstore"
	"github.com/streamhouse/streamhouse/internal/partlog"
)

// The coordinator runs here over the real parts of one agent: a metadata
// store (both backends), a partition log on an in-memory bucket, and a
// one-partition slot topic the log leads. agent adapts them to Backend the
// way the broker does for one agent.

type agent struct {
	id    string
	store metadata.Store
	log   *partlog.Log
	slot  metadata.TopicPartition
	// markerFails makes the next n WriteMarker calls fail (retriable);
	// markerRefusals makes the next n fail for good (the leader refuses).
	markerFails    atomic.Int32
	markerRefusals atomic.Int32
	markers        atomic.Int32 // WriteMarker calls that succeeded
}

func (a *agent) TxnFence(ctx context.Context, id string) (metadata.GroupFence, error) {
	epoch, ok := a.log.LeaderEpoch(a.slot)
	if !ok {
		return metadata.GroupFence{}, fmt.Errorf("slot of %q: %w", id, broker.ErrNotCoordinator)
	}
	return metadata.GroupFence{Slot: a.slot, AgentID: a.id, Epoch: epoch}, nil
}

func (a *agent) Holds(f metadata.GroupFence) bool {
	epoch, ok := a.log.LeaderEpoch(f.Slot)
	return ok && epoch == f.Epoch && f.AgentID == a.id
}

func (a *agent) TxnSlot(ctx context.Context, id string) (metadata.TopicPartition, error) {
	return a.slot, nil
}

func (a *agent) NextProducerID(ctx context.Context) (int64, error) {
	return a.store.NextProducerID(ctx)
}

func (a *agent) WriteMarker(ctx context.Context, p metadata.TxnPartition, m partlog.Marker) error {
	if a.markerFails.Load() > 0 {
		a.markerFails.Add(-1)
		return fmt.Errorf("injected: %w", partlog.ErrNotLeader)
	}
	if a.markerRefusals.Load() > 0 {
		a.markerRefusals.Add(-1)
		return fmt.Errorf("injected: %w", partlog.ErrInvalidTxnState)
	}
	if _, err := a.log.WriteMarker(ctx, p.TP(), m); err != nil {
		return err
	}
	a.markers.Add(1)
	return nil
}

// RemoteAddToTxn: one agent coordinates every ID here, so an implicit add
// never goes elsewhere; were it to, the answer is the retriable one of an
// unreachable coordinator.
func (a *agent) RemoteAddToTxn(ctx context.Context, id string, producerID int64, epoch int16, parts []metadata.TxnPartition, group string) error {
	return fmt.Errorf("one agent: %w", kerr.CoordinatorNotAvailable)
}

func (a *agent) Store() metadata.Store { return a.store }

// world is one test's store, clock, data topic and agent.
type world struct {
	t     *testing.T
	store metadata.Store
	clock atomic.Int64 // offset added to time.Now, ns
	topic metadata.Topic
	a     *agent
	c     *Coordinator
	// verifiers are the logs' VerifyTxn targets: the newest coordinator.
	verifiers []*atomic.Pointer[Coordinator]
}

func (w *world) now() time.Time { return time.Now().Add(time.Duration(w.clock.Load())) }

func onBackends(t *testing.T, fn func(*testing.T, *world)) {
	t.Parallel()
	for name, open := range metadatatest.Backends(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fn(t, newWorld(t, open(t)))
		})
	}
}

func newWorld(t *testing.T, store metadata.Store) *world {
	t.Helper()
	ctx := context.Background()
	w := &world{t: t, store: store}
	slots, err := store.CreateTopic(ctx, metadata.Topic{Name: "__slots", Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	if w.topic, err = store.CreateTopic(ctx, metadata.Topic{Name: "out", Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	w.a = &agent{id: "a1", store: store, slot: metadata.TopicPartition{TopicID: slots.ID, Partition: 0}}
	w.a.log = w.openLog("a1", slots)
	w.c = w.newCoordinator(w.a)
	return w
}

// openLog opens a log for agent id that leads the slot and the data topic.
func (w *world) openLog(id string, slots metadata.Topic) *partlog.Log {
	w.t.Helper()
	ctx := context.Background()
	var coord atomic.Pointer[Coordinator]
	l, err := partlog.Open(ctx, partlog.Config{
		AgentID: id, Bucket: objstore.NewMemory(), Store: w.store, Now: w.now,
		LeaseTTL: 10 * time.Second, GCGrace: time.Minute,
		VerifyTxn: func(ctx context.Context, tp metadata.TopicPartition, pid int64, epoch int16) error {
			c := coord.Load()
			if c == nil {
				return partlog.ErrInvalidTxnState
			}
			return c.Verify(ctx, tp, pid, epoch)
		},
	})
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = l.Close(ctx)
	})
	for _, tp := range []struct {
		t metadata.Topic
		n int32
	}{{slots, 1}, {w.topic, w.topic.Partitions}} {
		for p := int32(0); p < tp.n; p++ {
			if err := l.Lead(ctx, tp.t, p); err != nil {
				w.t.Fatalf("lead %s/%d: %v", tp.t.Name, p, err)
			}
		}
	}
	// The verifier reaches whichever coordinator the test makes next.
	w.verifiers = append(w.verifiers, &coord)
	return l
}

func (w *world) newCoordinator(a *agent, opts ...func(*Config)) *Coordinator {
	w.t.Helper()
	cfg := Config{Backend: a, Now: w.now, ScanInterval: time.Hour, MarkerTimeout: 2 * time.Second, CompletionWait: 5 * time.Second}
	for _, o := range opts {
		o(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(c.Close)
	for _, v := range w.verifiers {
		v.Store(c)
	}
	return c
}

func (w *world) part(p int32) metadata.TxnPartition {
	return metadata.TxnPartition{TopicID: w.topic.ID, Topic: w.topic.Name, Partition: p}
}

// produce appends a transactional batch of n records for pid/epoch.
func (w *world) produce(p int32, pid int64, epoch int16, seq int32, n int) error {
	w.t.Helper()
	recs := make([]batch.Record, n)
	for i := range recs {
		recs[i] = batch.Record{Value: []byte(fmt.Sprintf("v%d", int(seq)+i))}
	}
	raw, err := batch.Build(recs, batch.BuildOptions{ProducerID: pid, ProducerEpoch: epoch, BaseSequence: seq, Transactional: true})
	if err != nil {
		w.t.Fatal(err)
	}
	_, err = w.a.log.Append(context.Background(), w.part(p).TP(), raw, partlog.AckDurable)
	return err
}

// openTxn initialises producer id (transaction timeout timeoutMs), adds
// partition 0 to its transaction and writes n records there.
func (w *world) openTxn(c context.Context, id string, timeoutMs int32, n int) (int64, int16) {
	w.t.Helper()
	pid, ep, err := w.c.InitProducerID(c, id, timeoutMs, -1, -1)
	if err != nil {
		w.t.Fatal(err)
	}
	if err := w.c.AddPartitions(c, id, pid, ep, []metadata.TxnPartition{w.part(0)}); err != nil {
		w.t.Fatal(err)
	}
	if err := w.produce(0, pid, ep, 0, n); err != nil {
		w.t.Fatal(err)
	}
	return pid, ep
}

// state reads id's stored state.
func (w *world) state(id string) metadata.Txn {
	w.t.Helper()
	t, found, err := w.store.GetTxn(context.Background(), id)
	if err != nil || !found {
		w.t.Fatalf("get txn %q: found %v, %v", id, found, err)
	}
	return t
}

// waitState polls until id reaches want.
func (w *world) waitState(id string, want metadata.TxnStatus) metadata.Txn {
	w.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		t := w.state(id)
		if t.State == want {
			return t
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("txn %q: state %s, want %s", id, t.State, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// offsets returns the partition's LSO and HWM.
func (w *world) offsets(p int32) (lso, hw int64) {
	w.t.Helper()
	_, lso, hw, err := w.a.log.StableOffsets(context.Background(), w.part(p).TP())
	if err != nil {
		w.t.Fatal(err)
	}
	return lso, hw
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func wantKerr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got %v, want %v", what, err, want)
	}
}

func TestInitProducerIDEpochs(t *testing.T) {
	onBackends(t, func(t *testing.T, w *world) {
		c := ctx(t)
		pid, ep, err := w.c.InitProducerID(c, "tx", 60000, -1, -1)
		if err != nil || ep != 0 {
			t.Fatalf("first init: %d/%d, %v", pid, ep, err)
		}
		pid2, ep2, err := w.c.InitProducerID(c, "tx", 60000, -1, -1)
		if err != nil || pid2 != pid || ep2 != 1 {
			t.Fatalf("second init: %d/%d, %v; want %d/1", pid2, ep2, err, pid)
		}
		// KIP-360: the current producer may re-init; its answer is kept
		// for a retry naming the producer it replaced.
		pid3, ep3, err := w.c.InitProducerID(c, "tx", 60000, pid, 1)
		if err != nil || pid3 != pid || ep3 != 2 {
			t.Fatalf("KIP-360 init: %d/%d, %v", pid3, ep3, err)
		}
		if p, e, err := w.c.InitProducerID(c, "tx", 60000, pid, 1); err != nil || p != pid || e != 2 {
			t.Fatalf("retried KIP-360 init: %d/%d, %v; want %d/2", p, e, err, pid)
		}
		_, _, err = w.c.InitProducerID(c, "tx", 60000, pid, 0)
		wantKerr(t, "stale KIP-360 init", err, kerr.ProducerFenced)
		_, _, err = w.c.InitProducerID(c, "tx", 0, -1, -1)
		wantKerr(t, "zero timeout", err, kerr.InvalidTransactionTimeout)
		_, _, err = w.c.InitProducerID(c, "tx", int32((16 * time.Minute).Milliseconds()), -1, -1)
		wantKerr(t, "timeout above the maximum", err, kerr.InvalidTransactionTimeout)
		_, _, err = w.c.InitProducerID(c, "", 1000, -1, -1)
		wantKerr(t, "empty id", err, kerr.InvalidRequest)
	})
}

func TestCommitWritesMarkers(t *testing.T) {
	onBackends(t, func(t *testing.T, w *world) {
		c := ctx(t)
		pid, ep, err := w.c.InitProducerID(c, "tx", 60000, -1, -1)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.c.AddPartitions(c, "tx", pid, ep, []metadata.TxnPartition{w.part(1), w.part(0)}); err != nil {
			t.Fatal(err)
		}
		if st := w.state("tx"); st.State != metadata.TxnOngoing || len(st.Partitions) != 2 || st.Partitions[0].Partition != 0 || st.StartedAt.IsZero() {
			t.Fatalf("after add: %+v", st)
		}
		if err := w.produce(0, pid, ep, 0, 3); err != nil {
			t.Fatal(err)
		}
		if err := w.produce(1, pid, ep, 0, 2); err != nil {
			t.Fatal(err)
		}
		if lso, hw := w.offsets(0); lso != 0 || hw != 3 {
			t.Fatalf("open transaction: LSO %d HWM %d, want 0 and 3", lso, hw)
		}
		if err := w.c.EndTxn(c, "tx", pid, ep, true); err != nil {
			t.Fatal(err)
		}
		w.waitState("tx", metadata.TxnCompleteCommit)
		// Each partition: its records, then one commit marker.
		if lso, hw := w.offsets(0); lso != 4 || hw != 4 {
			t.Fatalf("partition 0 after commit: LSO %d HWM %d, want 4 and 4", lso, hw)
		}
		if lso, hw := w.offsets(1); lso != 3 || hw != 3 {
			t.Fatalf("partition 1 after commit: LSO %d HWM %d, want 3 and 3", lso, hw)
		}
		// A retried EndTxn is answered as the first was; the other
		// outcome is refused.
		if err := w.c.EndTxn(c, "tx", pid, ep, true); err != nil {
			t.Fatalf("retried commit: %v", err)
		}
		wantKerr(t, "abort after commit", w.c.EndTxn(c, "tx", pid, ep, false), kerr.InvalidTxnState)
		// The next transaction on the same producer.
		if err := w.c.AddPartitions(c, "tx", pid, ep, []metadata.TxnPartition{w.part(0)}); err != nil {
			t.Fatal(err)
		}
		if err := w.produce(0, pid, ep, 3, 2); err != nil {
			t.Fatal(err)
		}
		if err := w.c.EndTxn(c, "tx", pid, ep, false); err != nil {
			t.Fatal(err)
		}
		w.waitState("tx", metadata.TxnCompleteAbort)
		res, err := w.a.log.ReadWith(c, w.part(0).TP(), 0, partlog.ReadOptions{MaxBytes: 1 << 20, Isolation: partlog.ReadCommitted})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Aborted) != 1 || res.Aborted[0] != (metadata.AbortedTxn{ProducerID: pid, FirstOffset: 4, LastOffset: 6}) {
			t.Fatalf("aborted: %+v, want producer %d 4..6", res.Aborted, pid)
		}
	})
}

func TestInitAbortsOpenTransactionAndFences(t *testing.T) {
	onBackends(t, func(t *testing.T, w *world) {
		c := ctx(t)
		pid, ep := w.openTxn(c, "tx", 60000, 2)
		// A second producer with the same transactional id.
		pid2, ep2, err := w.c.InitProducerID(c, "tx", 60000, -1, -1)
		if err != nil {
			t.Fatalf("fencing init: %v", err)
		}
		if pid2 != pid || ep2 != ep+2 {
			t.Fatalf("fencing init: %d/%d, want %d/%d (one bump for the abort, one for the new producer)", pid2, ep2, pid, ep+2)
		}
		if st := w.state("tx"); st.State != metadata.TxnEmpty {
			t.Fatalf("state after fencing init: %s", st.State)
		}
		if lso, hw := w.offsets(0); lso != 3 || hw != 3 {
			t.Fatalf("after the abort: LSO %d HWM %d, want 3 and 3", lso, hw)
		}
		// The zombie is fenced at the coordinator and at the partition.
		wantKerr(t, "zombie add", w.c.AddPartitions(c, "tx", pid, ep, []metadata.TxnPartition{w.part(1)}), kerr.ProducerFenced)
		wantKerr(t, "zombie end", w.c.EndTxn(c, "tx", pid, ep, true), kerr.ProducerFenced)
		if err := w.produce(0, pid, ep, 2, 1); !errors.Is(err, partlog.ErrInvalidProducerEpoch) {
			t.Fatalf("zombie produce: %v, want ErrInvalidProducerEpoch", err)
		}
	})
}

func TestTimeoutAborts(t *testing.T) {
	onBackends(t, func(t *testing.T, w *world) {
		c := ctx(t)
		pid, ep := w.openTxn(c, "tx", 1000, 2)
		if err := w.c.Scan(c); err != nil {
			t.Fatal(err)
		}
		if st := w.state("tx"); st.State != metadata.TxnOngoing {
			t.Fatalf("before the timeout: %s", st.State)
		}
		w.clock.Add(int64(2 * time.Second))
		if err := w.c.Scan(c); err != nil {
			t.Fatal(err)
		}
		st := w.waitState("tx", metadata.TxnCompleteAbort)
		if st.ProducerEpoch != ep+1 {
			t.Fatalf("timed-out abort: epoch %d, want %d", st.ProducerEpoch, ep+1)
		}
		wantKerr(t, "commit after the timeout", w.c.EndTxn(c, "tx", pid, ep, true), kerr.ProducerFenced)
		if lso, hw := w.offsets(0); lso != 3 || hw != 3 {
			t.Fatalf("after the abort: LSO %d HWM %d, want 3 and 3", lso, hw)
		}
	})
}

// TestRecoveryFinishesDecided covers both crash points of a commit: after
// the decision is stored and before any marker, and after some markers.
// The slot's next coordinator (a new Coordinator over the same store)
// finishes them: every partition gets its marker, once.
func TestRecoveryFinishesDecided(t *testing.T) {
	onBackends(t, func(t *testing.T, w *world) {
		c := ctx(t)
		pid, ep, _ := w.c.InitProducerID(c, "tx", 60000, -1, -1)
		if err := w.c.AddPartitions(c, "tx", pid, ep, []metadata.TxnPartition{w.part(0), w.part(1)}); err != nil {
			t.Fatal(err)
		}
		for p := int32(0); p < 2; p++ {
			if err := w.produce(p, pid, ep, 0, 2); err != nil {
				t.Fatal(err)
			}
		}
		// Crash point 2: partition 0's marker is written, then the
		// coordinator dies (here: its completer never runs; the decision
		// is written as EndTxn would).
		fence, err := w.a.TxnFence(c, "tx")
		if err != nil {
			t.Fatal(err)
		}
		st := w.state("tx")
		st.State = metadata.TxnPrepareCommit
		if err := w.store.PutTxn(c, fence, st); err != nil {
			t.Fatal(err)
		}
		if _, err := w.a.log.WriteMarker(c, w.part(0).TP(), partlog.Marker{ProducerID: pid, ProducerEpoch: ep, Commit: true, CoordinatorEpoch: fence.Epoch}); err != nil {
			t.Fatal(err)
		}
		if lso, _ := w.offsets(1); lso != 0 {
			t.Fatalf("partition 1 before recovery: LSO %d, want 0", lso)
		}
		// The next coordinator of the slot.
		c2 := w.newCoordinator(w.a)
		if err := c2.Scan(c); err != nil {
			t.Fatal(err)
		}
		w.waitState("tx", metadata.TxnCompleteCommit)
		for p := int32(0); p < 2; p++ {
			if lso, hw := w.offsets(p); lso != 3 || hw != 3 {
				t.Fatalf("partition %d after recovery: LSO %d HWM %d, want 3 and 3 (one marker each)", p, lso, hw)
			}
		}
	})
}

func TestMarkerRetries(t *testing.T) {
	onBackends(t, func(t *testing.T, w *world) {
		c := ctx(t)
		pid, ep := w.openTxn(c, "tx", 60000, 1)
		w.a.markerFails.Store(3)
		if err := w.c.EndTxn(c, "tx", pid, ep, true); err != nil {
			t.Fatal(err)
		}
		// The next operation waits for the completion instead of failing.
		if err := w.c.AddPartitions(c, "tx", pid, ep, []metadata.TxnPartition{w.part(1)}); err != nil {
			t.Fatalf("add after commit: %v", err)
		}
		if got := w.a.markers.Load(); got != 1 {
			t.Fatalf("%d markers written, want 1", got)
		}
	})
}

func TestVerifyAndCheckMarker(t *testing.T) {
	onBackends(t, func(t *testing.T, w *world) {
		c := ctx(t)
		pid, ep, _ := w.c.InitProducerID(c, "tx", 60000, -1, -1)
		tp0, tp1 := w.part(0).TP(), w.part(1).TP()
		// Not added yet: a transactional batch is refused and nothing is
		// stored.
		if err := w.produce(0, pid, ep, 0, 1); !errors.Is(err, partlog.ErrInvalidTxnState) {
			t.Fatalf("produce before add: %v", err)
		}
		if _, hw := w.offsets(0); hw != 0 {
			t.Fatalf("refused batch stored: HWM %d", hw)
		}
		if err := w.c.AddPartitions(c, "tx", pid, ep, []metadata.TxnPartition{w.part(0)}); err != nil {
			t.Fatal(err)
		}
		if err := w.c.Verify(c, tp0, pid, ep); err != nil {
			t.Fatalf("verify added partition: %v", err)
		}
		for name, err := range map[string]error{
			"other partition": w.c.Verify(c, tp1, pid, ep),
			"newer epoch":     w.c.Verify(c, tp0, pid, ep+1),
			"unknown pid":     w.c.Verify(c, tp0, pid+100, 0),
		} {
			wantKerr(t, name, err, partlog.ErrInvalidTxnState)
		}
		m := partlog.Marker{ProducerID: pid, ProducerEpoch: ep, Commit: true}
		wantKerr(t, "marker of an undecided transaction", w.c.CheckMarker(c, tp0, m), kerr.InvalidTxnState)
		if err := w.c.EndTxn(c, "tx", pid, ep, true); err != nil {
			t.Fatal(err)
		}
		fence, err := w.a.TxnFence(c, "tx")
		if err != nil {
			t.Fatal(err)
		}
		m.CoordinatorEpoch = fence.Epoch
		if err := w.c.CheckMarker(c, tp0, m); err != nil {
			t.Fatalf("commit marker of a committed transaction: %v", err)
		}
		for e, want := range map[int32]error{fence.Epoch - 1: kerr.TransactionCoordinatorFenced, fence.Epoch + 1: kerr.InvalidTxnState, math.MaxInt32: kerr.InvalidTxnState} {
			forged := m
			forged.CoordinatorEpoch = e
			wantKerr(t, fmt.Sprintf("marker with coordinator epoch %d (the slot's is %d)", e, fence.Epoch), w.c.CheckMarker(c, tp0, forged), want)
		}
		abort := m
		abort.Commit = false
		wantKerr(t, "abort marker of a committed transaction", w.c.CheckMarker(c, tp0, abort), kerr.InvalidTxnState)
		wantKerr(t, "marker for a partition not in the transaction", w.c.CheckMarker(c, tp1, m), kerr.InvalidTxnState)
	})
}

func TestNotCoordinator(t *testing.T) {
	onBackends(t, func(t *testing.T, w *world) {
		c := ctx(t)
		if err := w.a.log.Release(c, w.a.slot); err != nil {
			t.Fatal(err)
		}
		_, _, err := w.c.InitProducerID(c, "tx", 1000, -1, -1)
		wantKerr(t, "init without the slot", err, kerr.NotCoordinator)
	})
}

func TestExpireIDs(t *testing.T) {
	onBackends(t, func(t *testing.T, w *world) {
		c := ctx(t)
		pid, ep, _ := w.c.InitProducerID(c, "idle", 60000, -1, -1)
		if _, _, err := w.c.InitProducerID(c, "open", 60000, -1, -1); err != nil {
			t.Fatal(err)
		}
		st := w.state("open")
		if err := w.c.AddPartitions(c, "open", st.ProducerID, st.ProducerEpoch, []metadata.TxnPartition{w.part(0)}); err != nil {
			t.Fatal(err)
		}
		if n, err := w.c.ExpireIDs(c); err != nil || n != 0 {
			t.Fatalf("expiry of fresh ids: %d, %v", n, err)
		}
		// A coordinator that forgets ids unused for 50 ms (moving the
		// clock by days would also expire the slot's lease).
		short := w.newCoordinator(w.a, func(cfg *Config) { cfg.IDExpiration = 50 * time.Millisecond })
		deadline := time.Now().Add(10 * time.Second)
		for {
			n, err := short.ExpireIDs(c)
			if err != nil {
				t.Fatal(err)
			}
			if n == 1 {
				break
			}
			if n != 0 || time.Now().After(deadline) {
				t.Fatalf("expiry: %d ids forgotten, want 1 (the open transaction's id is kept)", n)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if _, found, _ := w.store.GetTxn(c, "open"); !found {
			t.Fatal("the id with an open transaction was forgotten")
		}
		if _, found, _ := w.store.GetTxn(c, "idle"); found {
			t.Fatal("idle id not forgotten")
		}
		// The forgotten id starts over with a new producer.
		pid2, ep2, err := w.c.InitProducerID(c, "idle", 60000, -1, -1)
		if err != nil || pid2 == pid || ep2 != 0 {
			t.Fatalf("init after expiry: %d/%d, %v (old %d/%d)", pid2, ep2, err, pid, ep)
		}
	})
}

// TestMarkerRefusedEndsCompletion: a leader refusing a marker for good ends
// the completion (no retry loop); the transaction stays decided and the
// next scan finishes it.
func TestMarkerRefusedEndsCompletion(t *testing.T) {
	onBackends(t, func(t *testing.T, w *world) {
		c := ctx(t)
		pid, ep := w.openTxn(c, "tx", 60000, 1)
		w.a.markerRefusals.Store(1)
		if err := w.c.EndTxn(c, "tx", pid, ep, true); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for !w.c.waitCompletion(c, "tx") {
			if time.Now().After(deadline) {
				t.Fatal("the completer did not end after the refusal")
			}
		}
		if st := w.state("tx"); st.State != metadata.TxnPrepareCommit {
			t.Fatalf("after a refused marker: %s, want PrepareCommit", st.State)
		}
		if err := w.c.Scan(c); err != nil {
			t.Fatal(err)
		}
		w.waitState("tx", metadata.TxnCompleteCommit)
	})
}

// TestNewProducerIsNotAZombiesRetry: after a new producer (no producer ID
// given) takes the ID over, the fenced producer's KIP-360 re-init naming
// its old epoch is refused; it must not be taken for a retry of the new
// producer's init and handed the new epoch.
func TestNewProducerIsNotAZombiesRetry(t *testing.T) {
	onBackends(t, func(t *testing.T, w *world) {
		c := ctx(t)
		pid, e0, _ := w.c.InitProducerID(c, "tx", 60000, -1, -1)
		if _, _, err := w.c.InitProducerID(c, "tx", 60000, -1, -1); err != nil {
			t.Fatal(err)
		}
		_, _, err := w.c.InitProducerID(c, "tx", 60000, pid, e0)
		wantKerr(t, "the zombie's re-init", err, kerr.ProducerFenced)
		// Nor after an abort by fencing: the aborted producer is not a
		// retry either.
		_, e2, _ := w.c.InitProducerID(c, "tx", 60000, -1, -1)
		if err := w.c.AddPartitions(c, "tx", pid, e2, []metadata.TxnPartition{w.part(0)}); err != nil {
			t.Fatal(err)
		}
		_, e4, err := w.c.InitProducerID(c, "tx", 60000, -1, -1)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range []int16{e2, e2 + 1} {
			if _, got, err := w.c.InitProducerID(c, "tx", 60000, pid, e); err == nil {
				t.Fatalf("re-init naming fenced epoch %d: handed epoch %d (the new producer has %d)", e, got, e4)
			}
		}
	})
}

// TestScanNeverCompletesAnOldSnapshot: a scan that listed a transaction
// while it was decided, and acts after it completed and the producer's
// next transaction opened, must not write the old decision's markers over
// the new transaction.
func TestScanNeverCompletesAnOldSnapshot(t *testing.T) {
	onBackends(t, func(t *testing.T, w *world) {
		c := ctx(t)
		pid, ep := w.openTxn(c, "tx", 60000, 1)
		if err := w.c.EndTxn(c, "tx", pid, ep, true); err != nil {
			t.Fatal(err)
		}
		w.waitState("tx", metadata.TxnCompleteCommit)
		// The next transaction opens on the same partition.
		if err := w.c.AddPartitions(c, "tx", pid, ep, []metadata.TxnPartition{w.part(0)}); err != nil {
			t.Fatal(err)
		}
		if err := w.produce(0, pid, ep, 1, 1); err != nil {
			t.Fatal(err)
		}
		// What a scan does with a transaction it listed as decided.
		if err := w.c.resume(c, "tx"); err != nil {
			t.Fatal(err)
		}
		w.c.waitCompletion(c, "tx")
		if lso, hw := w.offsets(0); lso != 2 || hw != 3 {
			t.Fatalf("the open transaction was closed: LSO %d HWM %d, want 2 and 3", lso, hw)
		}
		if err := w.c.EndTxn(c, "tx", pid, ep, false); err != nil {
			t.Fatal(err)
		}
		w.waitState("tx", metadata.TxnCompleteAbort)
		res, err := w.a.log.ReadWith(c, w.part(0).TP(), 0, partlog.ReadOptions{MaxBytes: 1 << 20, Isolation: partlog.ReadCommitted})
		if err != nil || len(res.Aborted) != 1 || res.Aborted[0].FirstOffset != 2 {
			t.Fatalf("the second transaction's abort: %+v, %v", res.Aborted, err)
		}
	})
}

// TestNamedTransactionCalls: gRPC names its transaction by its start; an
// add or end naming a transaction that is over is refused and opens
// nothing, and consecutive transactions of an ID never share a start.
func TestNamedTransactionCalls(t *testing.T) {
	onBackends(t, func(t *testing.T, w *world) {
		c := ctx(t)
		pid, ep, _ := w.c.InitProducerID(c, "tx", 60000, -1, -1)
		first, err := w.c.Begin(c, "tx", pid, ep)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.c.AddPartitionsTo(c, "tx", pid, ep, first.StartedAt, []metadata.TxnPartition{w.part(0)}); err != nil {
			t.Fatal(err)
		}
		if err := w.c.EndTxnOf(c, "tx", pid, ep, first.StartedAt, true); err != nil {
			t.Fatal(err)
		}
		w.waitState("tx", metadata.TxnCompleteCommit)
		wantKerr(t, "add to a committed transaction", w.c.AddPartitionsTo(c, "tx", pid, ep, first.StartedAt, []metadata.TxnPartition{w.part(1)}), kerr.InvalidTxnState)
		if st := w.state("tx"); st.State != metadata.TxnCompleteCommit {
			t.Fatalf("a refused add opened a transaction: %s", st.State)
		}
		second, err := w.c.Begin(c, "tx", pid, ep)
		if err != nil {
			t.Fatal(err)
		}
		if !second.StartedAt.After(first.StartedAt) {
			t.Fatalf("second transaction starts at %v, not after the first's %v", second.StartedAt, first.StartedAt)
		}
		wantKerr(t, "end naming the first transaction", w.c.EndTxnOf(c, "tx", pid, ep, first.StartedAt, false), kerr.InvalidTxnState)
		if st := w.state("tx"); st.State != metadata.TxnOngoing || !st.StartedAt.Equal(second.StartedAt) {
			t.Fatalf("the second transaction was touched: %+v", st)
		}
		// Many transactions in a row, faster than a millisecond each.
		last := second.StartedAt
		for i := 0; i < 5; i++ {
			if err := w.c.EndTxn(c, "tx", pid, ep, false); err != nil {
				t.Fatal(err)
			}
			nt, err := w.c.Begin(c, "tx", pid, ep)
			if err != nil {
				t.Fatal(err)
			}
			if !nt.StartedAt.After(last) {
				t.Fatalf("transaction %d starts at %v, not after %v", i, nt.StartedAt, last)
			}
			last = nt.StartedAt
		}
	})
}
