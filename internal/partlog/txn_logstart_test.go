package partlog

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/streamhouse/streamhouse/internal/metadata"
)

// raceStore raises the log start (as retention would) just before the
// aborted-transaction query of a read.
type raceStore struct {
	metadata.Store
	tp metadata.TopicPartition
	ls int64
	on bool
}

func (s *raceStore) ListAbortedTxns(ctx context.Context, tp metadata.TopicPartition, from, to int64) ([]metadata.AbortedTxn, error) {
	if s.on {
		s.on = false
		if _, err := s.Store.SetLogStartOffset(ctx, s.tp, s.ls); err != nil {
			return nil, err
		}
	}
	return s.Store.ListAbortedTxns(ctx, tp, from, to)
}

// TestTxnLogStartMovesDuringRead: retention raising the log start between
// a store-served read_committed read's data and its aborted-transaction
// list (which drops the entries below the new start) must not hand out
// the aborted records without the list: the read is out of range instead.
func TestTxnLogStartMovesDuringRead(t *testing.T) { onBackends(t, testTxnLogStartMovesDuringRead) }

func testTxnLogStartMovesDuringRead(t *testing.T, open storeOpener) {
	x := newTxnEnv(t, open)
	x.coord.begin(2, 0)
	x.append(t, txnBatch(t, 2, 0, 0, 2)) // 0-1 aborted
	x.marker(t, 2, 0, false)             // 2
	x.append(t, mkBatch(t, "plain", 1))  // 3
	rs := &raceStore{Store: x.e.store, tp: x.tp, ls: 3}
	cfg := x.e.config("reader")
	cfg.Store = rs
	r := x.e.open(cfg)
	rs.on = true
	res, err := r.ReadWith(context.Background(), x.tp, 0, ReadOptions{MaxBytes: 1 << 20, Isolation: ReadCommitted})
	if errors.Is(err, ErrOffsetOutOfRange) {
		return // the consumer resets to the new log start
	}
	if err != nil {
		t.Fatal(err)
	}
	if n := recordsIn(t, res); n > 0 && len(res.Aborted) == 0 {
		t.Fatalf("read_committed got %d records from [0,%d) (incl. the aborted txn at 0-1) with no aborted list: %+v", n, res.NextOffset, res.Aborted)
	}
}

// abortedLookupStore counts aborted-transaction lookups.
type abortedLookupStore struct {
	metadata.Store
	lookups atomic.Int32
}

func (s *abortedLookupStore) ListAbortedTxns(ctx context.Context, tp metadata.TopicPartition, from, to int64) ([]metadata.AbortedTxn, error) {
	s.lookups.Add(1)
	return s.Store.ListAbortedTxns(ctx, tp, from, to)
}

// TestReadCommittedLooksUpAbortedOnlyForTransactionalData: a read_committed
// read served from the store asks for aborted transactions only when it
// returns transactional data, so topics without transactions pay nothing
// for read_committed (every REST and gRPC read is one).
func TestReadCommittedLooksUpAbortedOnlyForTransactionalData(t *testing.T) {
	onBackends(t, func(t *testing.T, open storeOpener) {
		x := newTxnEnv(t, open)
		x.append(t, mkBatch(t, "plain", 2)) // 0-1
		x.coord.begin(2, 0)
		x.append(t, txnBatch(t, 2, 0, 0, 2)) // 2-3
		x.marker(t, 2, 0, false)             // 4
		cs := &abortedLookupStore{Store: x.e.store}
		cfg := x.e.config("reader")
		cfg.Store = cs
		r := x.e.open(cfg)
		ctx := context.Background()
		res, err := r.ReadWith(ctx, x.tp, 0, ReadOptions{MaxBytes: 1, Isolation: ReadCommitted}) // one batch: plain
		if err != nil || res.NextOffset != 2 {
			t.Fatalf("read of the plain batch: next %d, %v", res.NextOffset, err)
		}
		if n := cs.lookups.Load(); n != 0 || len(res.Aborted) != 0 {
			t.Fatalf("plain data: %d aborted lookups, list %+v; want none", n, res.Aborted)
		}
		res, err = r.ReadWith(ctx, x.tp, 2, ReadOptions{MaxBytes: 1 << 20, Isolation: ReadCommitted})
		if err != nil {
			t.Fatal(err)
		}
		if n := cs.lookups.Load(); n != 1 || len(res.Aborted) != 1 || res.Aborted[0].FirstOffset != 2 {
			t.Fatalf("transactional data: %d lookups, list %+v; want one lookup and the aborted transaction at 2", n, res.Aborted)
		}
	})
}
