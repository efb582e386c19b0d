package txn

import (
	"context"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/partlog"
)

// Transactions V2 (KIP-890 part 2): EndTxnV2 bumps the epoch per
// transaction, the markers carry the bumped epoch, and adds are implicit.

// addAndProduce adds partition p to id's transaction implicitly (as a
// leader does for Produce v12: no AddPartitions call) and writes n records
// there from sequence seq.
func (w *world) addAndProduce(c context.Context, id string, pid int64, ep int16, p int32, seq int32, n int) {
	w.t.Helper()
	if err := w.c.AddImplicitly(c, id, pid, ep, []metadata.TxnPartition{w.part(p)}, ""); err != nil {
		w.t.Fatal(err)
	}
	if err := w.produce(p, pid, ep, seq, n); err != nil {
		w.t.Fatal(err)
	}
}

// initV2 initialises id's producer and, with at set, moves its epoch there.
func (w *world) initV2(c context.Context, id string, timeoutMs int32, at int16) (int64, int16) {
	w.t.Helper()
	pid, ep, err := w.c.InitProducerID(c, id, timeoutMs, -1, -1)
	if err != nil {
		w.t.Fatal(err)
	}
	if at > 0 {
		st := w.state(id)
		st.ProducerEpoch = at
		fence, err := w.a.TxnFence(c, id)
		if err != nil {
			w.t.Fatal(err)
		}
		if err := w.store.PutTxn(c, fence, st); err != nil {
			w.t.Fatal(err)
		}
		ep = at
	}
	return pid, ep
}

func TestEndTxnV2BumpsEpochAndFencesLateWrites(t *testing.T) {
	onBackends(t, func(t *testing.T, w *world) {
		c := ctx(t)
		pid, ep := w.initV2(c, "tx", 60000, 0)
		w.addAndProduce(c, "tx", pid, ep, 0, 0, 3)
		npid, nep, err := w.c.EndTxnV2(c, "tx", pid, ep, true)
		if err != nil || npid != pid || nep != ep+1 {
			t.Fatalf("EndTxnV2 = %d/%d, %v; want %d/%d", npid, nep, err, pid, ep+1)
		}
		st := w.waitState("tx", metadata.TxnCompleteCommit)
		if st.ProducerEpoch != ep+1 || st.LastProducerEpoch != ep || st.ClientVersion != 2 {
			t.Fatalf("after commit: %+v", st)
		}
		if lso, hw := w.offsets(0); lso != 4 || hw != 4 {
			t.Fatalf("after commit: LSO %d HWM %d, want 4 and 4", lso, hw)
		}
		// A late write of the ended transaction (its epoch) is fenced at
		// the partition: the marker carried the bumped epoch.
		if err := w.produce(0, pid, ep, 3, 1); !errors.Is(err, partlog.ErrInvalidProducerEpoch) {
			t.Fatalf("late write at the old epoch: %v, want ErrInvalidProducerEpoch", err)
		}
		// A retry of the commit (the old epoch) gets the producer to use
		// next; the other outcome is refused.
		if p, e, err := w.c.EndTxnV2(c, "tx", pid, ep, true); err != nil || p != pid || e != ep+1 {
			t.Fatalf("retried commit = %d/%d, %v", p, e, err)
		}
		_, _, err = w.c.EndTxnV2(c, "tx", pid, ep, false)
		wantKerr(t, "abort retry of a commit", err, kerr.InvalidTxnState)
		// Committing with nothing open is refused; aborting just bumps.
		_, _, err = w.c.EndTxnV2(c, "tx", pid, nep, true)
		wantKerr(t, "commit with nothing open", err, kerr.InvalidTxnState)
		p2, e2, err := w.c.EndTxnV2(c, "tx", pid, nep, false)
		if err != nil || p2 != pid || e2 != nep+1 {
			t.Fatalf("empty abort = %d/%d, %v; want %d/%d", p2, e2, err, pid, nep+1)
		}
		if st := w.state("tx"); st.State != metadata.TxnCompleteAbort || st.ProducerEpoch != e2 {
			t.Fatalf("after empty abort: %+v", st)
		}
		// The next transaction at the new epoch starts at sequence 0 and
		// aborts: read_committed skips its records.
		if err := w.c.AddImplicitly(c, "tx", pid, e2, []metadata.TxnPartition{w.part(0)}, ""); err != nil {
			t.Fatal(err)
		}
		if err := w.produce(0, pid, e2, 0, 2); err != nil {
			t.Fatal(err)
		}
		if _, e3, err := w.c.EndTxnV2(c, "tx", pid, e2, false); err != nil || e3 != e2+1 {
			t.Fatalf("abort: %d, %v", e3, err)
		}
		w.waitState("tx", metadata.TxnCompleteAbort)
		if lso, hw := w.offsets(0); lso != 7 || hw != 7 {
			t.Fatalf("after abort: LSO %d HWM %d, want 7 and 7", lso, hw)
		}
		// The stale producer is fenced everywhere.
		_, _, err = w.c.EndTxnV2(c, "tx", pid, ep, true)
		wantKerr(t, "end at an old epoch", err, kerr.ProducerFenced)
		err = w.c.AddImplicitly(c, "tx", pid, e2, []metadata.TxnPartition{w.part(1)}, "")
		wantKerr(t, "add at an old epoch", err, kerr.ProducerFenced)
	})
}

func TestEndTxnV2ExhaustedEpochHandsOutNewProducer(t *testing.T) {
	onBackends(t, func(t *testing.T, w *world) {
		c := ctx(t)
		// The epoch is the last one a transaction may use.
		pid, ep := w.initV2(c, "tx", 60000, math.MaxInt16-1)
		w.addAndProduce(c, "tx", pid, ep, 0, 0, 2)
		npid, nep, err := w.c.EndTxnV2(c, "tx", pid, ep, true)
		if err != nil || npid == pid || nep != 0 {
			t.Fatalf("EndTxnV2 at the last epoch = %d/%d, %v; want a new producer at epoch 0", npid, nep, err)
		}
		st := w.waitState("tx", metadata.TxnCompleteCommit)
		if st.ProducerID != npid || st.ProducerEpoch != 0 || st.NextProducerID != 0 || st.LastProducerID != pid || st.LastProducerEpoch != ep {
			t.Fatalf("after the commit: %+v", st)
		}
		if lso, hw := w.offsets(0); lso != 3 || hw != 3 {
			t.Fatalf("after commit: LSO %d HWM %d, want 3 and 3", lso, hw)
		}
		// A retry with the old producer is answered with the new one.
		if p, e, err := w.c.EndTxnV2(c, "tx", pid, ep, true); err != nil || p != npid || e != 0 {
			t.Fatalf("retried commit = %d/%d, %v; want %d/0", p, e, err, npid)
		}
		// The new producer runs the next transaction.
		if err := w.c.AddImplicitly(c, "tx", npid, 0, []metadata.TxnPartition{w.part(0)}, ""); err != nil {
			t.Fatal(err)
		}
		if err := w.produce(0, npid, 0, 0, 1); err != nil {
			t.Fatal(err)
		}
		if p, e, err := w.c.EndTxnV2(c, "tx", npid, 0, true); err != nil || p != npid || e != 1 {
			t.Fatalf("next commit = %d/%d, %v", p, e, err)
		}
		w.waitState("tx", metadata.TxnCompleteCommit)
	})
}

func TestEndTxnV2RetryWhileMarkersPending(t *testing.T) {
	onBackends(t, func(t *testing.T, w *world) {
		c := ctx(t)
		pid, ep := w.openTxn(c, "tx", 60000, 2)
		// The markers cannot be written for a while.
		w.a.markerFails.Store(1000)
		if _, _, err := w.c.EndTxnV2(c, "tx", pid, ep, false); err != nil {
			t.Fatal(err)
		}
		// Retried at the old epoch, or a new call at the new one: both
		// wait for the markers (retriable), they are not fenced.
		_, _, err := w.c.EndTxnV2(c, "tx", pid, ep, false)
		wantKerr(t, "retry while preparing", err, kerr.ConcurrentTransactions)
		_, _, err = w.c.EndTxnV2(c, "tx", pid, ep+1, false)
		wantKerr(t, "next end while preparing", err, kerr.ConcurrentTransactions)
		err = w.c.AddImplicitly(c, "tx", pid, ep+1, []metadata.TxnPartition{w.part(0)}, "")
		wantKerr(t, "next add while preparing", err, kerr.ConcurrentTransactions)
		// A KIP-360 re-init naming the epoch before the bump waits too,
		// then gets the current producer.
		_, _, err = w.c.InitProducerID(c, "tx", 60000, pid, ep)
		wantKerr(t, "re-init while preparing", err, kerr.ConcurrentTransactions)
		w.a.markerFails.Store(0)
		w.waitState("tx", metadata.TxnCompleteAbort)
		if p, e, err := w.c.EndTxnV2(c, "tx", pid, ep, false); err != nil || p != pid || e != ep+1 {
			t.Fatalf("retried abort after the markers = %d/%d, %v", p, e, err)
		}
		if p, e, err := w.c.InitProducerID(c, "tx", 60000, pid, ep); err != nil || p != pid || e != ep+1 {
			t.Fatalf("re-init naming the epoch before the end = %d/%d, %v; want the current %d/%d", p, e, err, pid, ep+1)
		}
	})
}

// A V2 marker at the producer's epoch is a late retry: it must not close
// the producer's next transaction (KIP-1228).
func TestLateV2MarkerDoesNotCloseNextTransaction(t *testing.T) {
	onBackends(t, func(t *testing.T, w *world) {
		c := ctx(t)
		pid, ep := w.initV2(c, "tx", 60000, 0)
		w.addAndProduce(c, "tx", pid, ep, 0, 0, 1)
		if _, _, err := w.c.EndTxnV2(c, "tx", pid, ep, true); err != nil {
			t.Fatal(err)
		}
		w.waitState("tx", metadata.TxnCompleteCommit)
		// The next transaction opens on the partition at ep+1.
		if err := w.c.AddImplicitly(c, "tx", pid, ep+1, []metadata.TxnPartition{w.part(0)}, ""); err != nil {
			t.Fatal(err)
		}
		if err := w.produce(0, pid, ep+1, 0, 1); err != nil {
			t.Fatal(err)
		}
		fence, err := w.a.TxnFence(c, "tx")
		if err != nil {
			t.Fatal(err)
		}
		late := partlog.Marker{ProducerID: pid, ProducerEpoch: ep + 1, Commit: true, CoordinatorEpoch: fence.Epoch, TransactionVersion: 2}
		res, err := w.a.log.WriteMarker(c, w.part(0).TP(), late)
		if err != nil || res.Written {
			t.Fatalf("late V2 marker: written %v, %v; want nothing written", res.Written, err)
		}
		if lso, hw := w.offsets(0); lso != 2 || hw != 3 {
			t.Fatalf("after the late marker: LSO %d HWM %d, want 2 (the open transaction) and 3", lso, hw)
		}
		// The same marker without V2 (the original protocol's marker
		// epoch is the transaction's own) would have closed it.
		late.TransactionVersion = 0
		if res, err := w.a.log.WriteMarker(c, w.part(0).TP(), late); err != nil || !res.Written {
			t.Fatalf("V1 marker: written %v, %v", res.Written, err)
		}
	})
}

// A transaction its timeout aborted ends the transaction, not the
// producer: the V2 producer's abort at the epoch before is answered with
// the producer to use next (CONCURRENT_TRANSACTIONS while the markers are
// written), its commit is TRANSACTION_ABORTABLE (abort and go on), and at
// the last epoch the producer to use next is a new producer ID.
func TestTimeoutAbortLeavesV2ProducerAbortable(t *testing.T) {
	onBackends(t, func(t *testing.T, w *world) {
		c := ctx(t)
		for _, last := range []bool{false, true} {
			id := fmt.Sprintf("tx-%v", last)
			at := int16(0)
			if last {
				at = math.MaxInt16 - 1
			}
			pid, ep := w.initV2(c, id, 1000, at)
			w.addAndProduce(c, id, pid, ep, 1, 0, 1)
			w.a.markerFails.Store(1000)
			w.clock.Add(int64(2 * time.Second))
			if err := w.c.Scan(c); err != nil {
				t.Fatal(err)
			}
			if st := w.state(id); st.State != metadata.TxnPrepareAbort {
				t.Fatalf("%s after its timeout: %+v", id, st)
			}
			_, _, err := w.c.EndTxnV2(c, id, pid, ep, false)
			wantKerr(t, "abort while the timeout's markers are written", err, kerr.ConcurrentTransactions)
			w.a.markerFails.Store(0)
			if err := w.c.Scan(c); err != nil {
				t.Fatal(err)
			}
			st := w.waitState(id, metadata.TxnCompleteAbort)
			_, _, err = w.c.EndTxnV2(c, id, pid, ep, true)
			wantKerr(t, "commit of the timed-out transaction", err, kerr.TransactionAbortable)
			np, ne, err := w.c.EndTxnV2(c, id, pid, ep, false)
			if err != nil || np != st.ProducerID || ne != st.ProducerEpoch {
				t.Fatalf("%s: abort after the timeout = %d/%d, %v; want the stored %d/%d", id, np, ne, err, st.ProducerID, st.ProducerEpoch)
			}
			if last && (np == pid || ne != 0) {
				t.Fatalf("%s: at the last epoch the producer to use next is %d/%d, want a new producer ID at 0", id, np, ne)
			}
			if !last && (np != pid || ne != ep+1) {
				t.Fatalf("%s: producer to use next %d/%d, want %d/%d", id, np, ne, pid, ep+1)
			}
			// The producer goes on with it.
			if err := w.c.AddImplicitly(c, id, np, ne, []metadata.TxnPartition{w.part(1)}, ""); err != nil {
				t.Fatal(err)
			}
			if _, _, err := w.c.EndTxnV2(c, id, np, ne, false); err != nil {
				t.Fatal(err)
			}
			w.waitState(id, metadata.TxnCompleteAbort)
		}
		// A new producer instance fences: the old one's abort is fenced.
		pid, ep := w.openTxn(c, "fenced", 60000, 1)
		if _, _, err := w.c.InitProducerID(c, "fenced", 60000, -1, -1); err != nil {
			t.Fatal(err)
		}
		_, _, err := w.c.EndTxnV2(c, "fenced", pid, ep, false)
		wantKerr(t, "abort of a fenced producer", err, kerr.ProducerFenced)
	})
}
