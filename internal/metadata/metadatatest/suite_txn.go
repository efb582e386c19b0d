package metadatatest

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/internal/metadata"
)

// Transactions: the coordinator's stored state, pending transactional
// offsets, and the log's last stable offset, producer transaction state
// and aborted-transaction index.
var txnTests = []suiteTest{
	{"TxnRoundTrip", testTxnRoundTrip},
	{"ListTxns", testListTxns},
	{"TxnWritesFenced", testTxnWritesFenced},
	{"TxnCommitMovesOffsets", testTxnCommitMovesOffsets},
	{"TxnDecisionDropsOffsets", testTxnDecisionDropsOffsets},
	{"AddTxnOffsetsRefused", testAddTxnOffsetsRefused},
	{"DeleteTxn", testDeleteTxn},
	{"LastStableOffset", testLastStableOffset},
	{"CommitTxnFieldsInvalid", testCommitTxnFieldsInvalid},
	{"AbortedTxnIndex", testAbortedTxnIndex},
	{"AbortedTxnCleanup", testAbortedTxnCleanup},
	{"ProducerTxnState", testProducerTxnState},
	{"TxnOffsetsRaceDecision", testTxnOffsetsRaceDecision},
}

// txnSlot creates a coordinator slot topic and returns the fence of agent
// "c1" holding its partition 0.
func txnSlot(t *testing.T, s metadata.Store) metadata.GroupFence {
	t.Helper()
	slots := mustCreateTopic(t, s, "__slots", 1)
	l := mustAcquire(t, s, tpOf(slots, 0), "c1", now)
	return metadata.GroupFence{Slot: l.TopicPartition, AgentID: "c1", Epoch: l.Epoch}
}

func ongoingTxn(id string, pid int64, epoch int16, groups ...string) metadata.Txn {
	return metadata.Txn{
		TransactionalID: id, ProducerID: pid, ProducerEpoch: epoch, LastProducerID: -1, LastProducerEpoch: -1,
		State: metadata.TxnOngoing, TimeoutMs: 60000, Groups: groups, StartedAt: now, UpdatedAt: now,
	}
}

func mustPutTxn(t *testing.T, s metadata.Store, fence metadata.GroupFence, txn metadata.Txn) {
	t.Helper()
	if err := s.PutTxn(t.Context(), fence, txn); err != nil {
		t.Fatalf("PutTxn(%s, %s): %v", txn.TransactionalID, txn.State, err)
	}
}

func checkTxn(t *testing.T, s metadata.Store, want metadata.Txn) {
	t.Helper()
	got, found, err := s.GetTxn(t.Context(), want.TransactionalID)
	if err != nil || !found {
		t.Fatalf("GetTxn(%s) = found %v, %v", want.TransactionalID, found, err)
	}
	if !got.StartedAt.Equal(want.StartedAt) || !got.UpdatedAt.Equal(want.UpdatedAt) {
		t.Errorf("GetTxn(%s) times = %v, %v; want %v, %v", want.TransactionalID, got.StartedAt, got.UpdatedAt, want.StartedAt, want.UpdatedAt)
	}
	got.StartedAt, got.UpdatedAt, want.StartedAt, want.UpdatedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("GetTxn(%s) =\n %+v, want\n %+v", want.TransactionalID, got, want)
	}
}

func txnOffset(group, topic string, partition int32, offset int64) metadata.GroupOffset {
	return metadata.GroupOffset{Group: group, Topic: topic, Partition: partition, Offset: offset, LeaderEpoch: 3, Metadata: "m", CommittedAt: now}
}

func mustPending(t *testing.T, s metadata.Store, group string) []metadata.GroupOffset {
	t.Helper()
	offs, err := s.PendingTxnOffsets(t.Context(), group)
	if err != nil {
		t.Fatalf("PendingTxnOffsets(%s): %v", group, err)
	}
	return offs
}

func mustFetchOffsets(t *testing.T, s metadata.Store, group string) []metadata.GroupOffset {
	t.Helper()
	offs, err := s.FetchGroupOffsets(t.Context(), group)
	if err != nil {
		t.Fatalf("FetchGroupOffsets(%s): %v", group, err)
	}
	return offs
}

func checkOffsets(t *testing.T, what string, got []metadata.GroupOffset, want ...metadata.GroupOffset) {
	t.Helper()
	eq := func(a, b metadata.GroupOffset) bool {
		return a.Group == b.Group && a.Topic == b.Topic && a.Partition == b.Partition && a.Offset == b.Offset &&
			a.LeaderEpoch == b.LeaderEpoch && a.Metadata == b.Metadata && a.CommittedAt.Equal(b.CommittedAt)
	}
	if !slices.EqualFunc(got, want, eq) {
		t.Errorf("%s = %+v, want %+v", what, got, want)
	}
}

func testTxnRoundTrip(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	fence := txnSlot(t, s)
	if _, found, err := s.GetTxn(ctx, "tx"); err != nil || found {
		t.Fatalf("GetTxn of an unknown id = found %v, %v", found, err)
	}
	a := metadata.TopicID{1}
	b := metadata.TopicID{2}
	txn := metadata.Txn{
		TransactionalID: "tx", ProducerID: 42, ProducerEpoch: 7, LastProducerID: 41, LastProducerEpoch: 32766,
		NextProducerID: 43, ClientVersion: 2, State: metadata.TxnOngoing, TimeoutMs: 12345,
		// Given out of order and with a duplicate: stored ordered, once.
		Partitions: []metadata.TxnPartition{
			{TopicID: b, Topic: "b", Partition: 0}, {TopicID: a, Topic: "a", Partition: 3},
			{TopicID: a, Topic: "a", Partition: 1}, {TopicID: b, Topic: "b", Partition: 0},
		},
		Groups:    []string{"g2", "g1", "g2"},
		StartedAt: now.Add(-time.Second), UpdatedAt: now,
	}
	mustPutTxn(t, s, fence, txn)
	want := txn
	want.Partitions = []metadata.TxnPartition{
		{TopicID: a, Topic: "a", Partition: 1}, {TopicID: a, Topic: "a", Partition: 3}, {TopicID: b, Topic: "b", Partition: 0},
	}
	want.Groups = []string{"g1", "g2"}
	checkTxn(t, s, want)

	// A later state replaces it whole; empty lists and a zero start time
	// read back as nil and zero.
	done := metadata.Txn{
		TransactionalID: "tx", ProducerID: 42, ProducerEpoch: 8, LastProducerID: -1, LastProducerEpoch: -1,
		State: metadata.TxnCompleteCommit, TimeoutMs: 12345, UpdatedAt: now.Add(time.Second),
	}
	mustPutTxn(t, s, fence, done)
	checkTxn(t, s, done)

	// A zero UpdatedAt is filled in with the time of the write.
	before := time.Now().Add(-time.Second)
	mustPutTxn(t, s, fence, metadata.Txn{TransactionalID: "other", State: metadata.TxnEmpty, LastProducerID: -1})
	got, found, err := s.GetTxn(ctx, "other")
	if err != nil || !found || got.UpdatedAt.Before(before) || got.UpdatedAt.After(time.Now().Add(time.Second)) {
		t.Errorf("GetTxn(other) = %+v, %v, %v; want UpdatedAt about now", got, found, err)
	}

	// Malformed: nothing stored.
	for _, bad := range []metadata.Txn{
		{TransactionalID: "", State: metadata.TxnEmpty},
		{TransactionalID: "bad", State: "Bogus"},
		{TransactionalID: "bad", State: metadata.TxnEmpty, NextProducerID: -1},
		{TransactionalID: "bad", State: metadata.TxnEmpty, ClientVersion: 3},
	} {
		if err := s.PutTxn(ctx, fence, bad); err == nil {
			t.Errorf("PutTxn(%+v) succeeded", bad)
		}
	}
	if _, found, _ := s.GetTxn(ctx, "bad"); found {
		t.Error("a refused PutTxn stored a transaction")
	}
}

func testListTxns(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	fence := txnSlot(t, s)
	if ts, err := s.ListTxns(ctx, metadata.TxnFilter{}); err != nil || len(ts) != 0 {
		t.Fatalf("ListTxns of an empty store = %v, %v", ts, err)
	}
	states := map[string]metadata.TxnStatus{
		"d": metadata.TxnOngoing, "a": metadata.TxnEmpty, "c": metadata.TxnPrepareCommit,
		"b": metadata.TxnOngoing, "e": metadata.TxnCompleteAbort,
	}
	pids := map[string]int64{"a": 1, "b": 2, "c": 3, "d": 4, "e": 2}
	for id, st := range states {
		txn := ongoingTxn(id, pids[id], 0)
		txn.State = st
		mustPutTxn(t, s, fence, txn)
	}
	ids := func(f metadata.TxnFilter) []string {
		t.Helper()
		ts, err := s.ListTxns(ctx, f)
		if err != nil {
			t.Fatalf("ListTxns(%+v): %v", f, err)
		}
		out := []string{}
		for _, tx := range ts {
			if tx.State != states[tx.TransactionalID] || tx.ProducerID != pids[tx.TransactionalID] {
				t.Errorf("ListTxns returned %+v", tx)
			}
			out = append(out, tx.TransactionalID)
		}
		return out
	}
	for _, c := range []struct {
		f    metadata.TxnFilter
		want []string
	}{
		{metadata.TxnFilter{}, []string{"a", "b", "c", "d", "e"}},
		{metadata.TxnFilter{States: []metadata.TxnStatus{metadata.TxnOngoing}}, []string{"b", "d"}},
		{metadata.TxnFilter{States: []metadata.TxnStatus{metadata.TxnEmpty, metadata.TxnCompleteAbort}}, []string{"a", "e"}},
		{metadata.TxnFilter{ProducerIDs: []int64{2}}, []string{"b", "e"}},
		{metadata.TxnFilter{ProducerIDs: []int64{9}}, []string{}},
		{metadata.TxnFilter{TransactionalIDs: []string{"e", "a", "zz"}}, []string{"a", "e"}},
		{metadata.TxnFilter{States: []metadata.TxnStatus{metadata.TxnOngoing}, ProducerIDs: []int64{2, 3}}, []string{"b"}},
		{metadata.TxnFilter{States: []metadata.TxnStatus{metadata.TxnOngoing, metadata.TxnPrepareCommit},
			ProducerIDs: []int64{3, 4}, TransactionalIDs: []string{"c", "d", "b"}}, []string{"c", "d"}},
	} {
		if got := ids(c.f); !slices.Equal(got, c.want) {
			t.Errorf("ListTxns(%+v) = %v, want %v", c.f, got, c.want)
		}
	}
}

func testTxnWritesFenced(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	fence := txnSlot(t, s)
	txn := ongoingTxn("tx", 5, 1, "g")
	mustPutTxn(t, s, fence, txn)
	if err := s.AddTxnOffsets(ctx, fence, "tx", 5, 1, []metadata.GroupOffset{txnOffset("g", "t", 0, 10)}); err != nil {
		t.Fatalf("AddTxnOffsets: %v", err)
	}

	// Another agent takes the slot after the lease expired.
	taken := mustAcquire(t, s, fence.Slot, "c2", now.Add(ttl+time.Second))
	for _, f := range []metadata.GroupFence{
		fence, // the former holder
		{Slot: fence.Slot, AgentID: "c2", Epoch: taken.Epoch + 1},                                                     // wrong epoch
		{Slot: fence.Slot, AgentID: "c1", Epoch: taken.Epoch},                                                         // wrong agent
		{Slot: metadata.TopicPartition{TopicID: fence.Slot.TopicID, Partition: 9}, AgentID: "c2", Epoch: taken.Epoch}, // no such slot
	} {
		commit := txn
		commit.State, commit.ProducerEpoch = metadata.TxnPrepareCommit, 2
		if err := s.PutTxn(ctx, f, commit); !errors.Is(err, metadata.ErrGroupFenced) {
			t.Errorf("PutTxn under %+v: %v, want ErrGroupFenced", f, err)
		}
		if err := s.DeleteTxn(ctx, f, "tx", 5, 1); !errors.Is(err, metadata.ErrGroupFenced) {
			t.Errorf("DeleteTxn under %+v: %v, want ErrGroupFenced", f, err)
		}
		if err := s.AddTxnOffsets(ctx, f, "tx", 5, 1, []metadata.GroupOffset{txnOffset("g", "t", 0, 99)}); !errors.Is(err, metadata.ErrGroupFenced) {
			t.Errorf("AddTxnOffsets under %+v: %v, want ErrGroupFenced", f, err)
		}
	}
	// Nothing was written: the transaction, its pending offset, the
	// group's offsets are as before.
	checkTxn(t, s, txn)
	checkOffsets(t, "pending offsets after fenced writes", mustPending(t, s, "g"), txnOffset("g", "t", 0, 10))
	checkOffsets(t, "group offsets after fenced writes", mustFetchOffsets(t, s, "g"))

	// The new holder writes.
	newFence := metadata.GroupFence{Slot: fence.Slot, AgentID: "c2", Epoch: taken.Epoch}
	commit := txn
	commit.State = metadata.TxnPrepareCommit
	mustPutTxn(t, s, newFence, commit)
	checkTxn(t, s, commit)
	checkOffsets(t, "group offsets after the new holder's commit", mustFetchOffsets(t, s, "g"), txnOffset("g", "t", 0, 10))
}

func testTxnCommitMovesOffsets(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	fence := txnSlot(t, s)
	// The group has offsets already; another group has its own pending
	// offsets in another transaction.
	mustCommitOffsets(t, s, txnOffset("g", "t", 0, 5), txnOffset("g", "u", 0, 7))
	mustPutTxn(t, s, fence, ongoingTxn("tx", 5, 1, "g", "h"))
	mustPutTxn(t, s, fence, ongoingTxn("other", 6, 0, "g"))
	if err := s.AddTxnOffsets(ctx, fence, "other", 6, 0, []metadata.GroupOffset{txnOffset("g", "t", 2, 1)}); err != nil {
		t.Fatal(err)
	}
	add := func(offs ...metadata.GroupOffset) {
		t.Helper()
		if err := s.AddTxnOffsets(ctx, fence, "tx", 5, 1, offs); err != nil {
			t.Fatalf("AddTxnOffsets(%+v): %v", offs, err)
		}
	}
	add(txnOffset("g", "t", 1, 20), txnOffset("g", "t", 0, 10))
	// A later offset of a partition replaces the earlier one, within a
	// call and across calls.
	add(txnOffset("g", "t", 0, 11), txnOffset("g", "t", 0, 12))
	add(txnOffset("h", "t", 0, 30))
	add() // nothing

	checkOffsets(t, "pending offsets of g", mustPending(t, s, "g"),
		txnOffset("g", "t", 0, 12), txnOffset("g", "t", 1, 20), txnOffset("g", "t", 2, 1))
	checkOffsets(t, "pending offsets of h", mustPending(t, s, "h"), txnOffset("h", "t", 0, 30))
	// Pending offsets are not visible, nor do they list a group.
	checkOffsets(t, "offsets of g before the commit", mustFetchOffsets(t, s, "g"), txnOffset("g", "t", 0, 5), txnOffset("g", "u", 0, 7))
	checkOffsets(t, "offsets of h before the commit", mustFetchOffsets(t, s, "h"))
	if gs, err := s.ListGroups(ctx); err != nil || !slices.Equal(gs, []string{"g"}) {
		t.Errorf("ListGroups before the commit = %v, %v; want [g]", gs, err)
	}

	commit := ongoingTxn("tx", 5, 1, "g", "h")
	commit.State = metadata.TxnPrepareCommit
	mustPutTxn(t, s, fence, commit)
	checkOffsets(t, "offsets of g after the commit", mustFetchOffsets(t, s, "g"),
		txnOffset("g", "t", 0, 12), txnOffset("g", "t", 1, 20), txnOffset("g", "u", 0, 7))
	checkOffsets(t, "offsets of h after the commit", mustFetchOffsets(t, s, "h"), txnOffset("h", "t", 0, 30))
	if gs, err := s.ListGroups(ctx); err != nil || !slices.Equal(gs, []string{"g", "h"}) {
		t.Errorf("ListGroups after the commit = %v, %v; want [g h]", gs, err)
	}
	// Only the committed transaction's pending offsets are gone.
	checkOffsets(t, "pending offsets of g after the commit", mustPending(t, s, "g"), txnOffset("g", "t", 2, 1))
	checkOffsets(t, "pending offsets of h after the commit", mustPending(t, s, "h"))

	// CompleteCommit after it moves nothing more.
	commit.State = metadata.TxnCompleteCommit
	mustPutTxn(t, s, fence, commit)
	checkOffsets(t, "offsets of h after CompleteCommit", mustFetchOffsets(t, s, "h"), txnOffset("h", "t", 0, 30))
}

func testTxnDecisionDropsOffsets(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	fence := txnSlot(t, s)
	mustCommitOffsets(t, s, txnOffset("g", "t", 0, 5))
	for i, st := range []metadata.TxnStatus{
		metadata.TxnOngoing, // kept
		metadata.TxnPrepareAbort, metadata.TxnEmpty, metadata.TxnCompleteCommit, metadata.TxnCompleteAbort,
	} {
		id := fmt.Sprintf("tx-%d", i)
		mustPutTxn(t, s, fence, ongoingTxn(id, int64(i), 0, "g"))
		if err := s.AddTxnOffsets(ctx, fence, id, int64(i), 0, []metadata.GroupOffset{txnOffset("g", "t", 0, 100)}); err != nil {
			t.Fatal(err)
		}
		next := ongoingTxn(id, int64(i), 0, "g")
		next.State = st
		mustPutTxn(t, s, fence, next)
		want := []metadata.GroupOffset(nil)
		if st == metadata.TxnOngoing {
			want = append(want, txnOffset("g", "t", 0, 100))
		}
		checkOffsets(t, fmt.Sprintf("pending offsets after %s", st), mustPending(t, s, "g"), want...)
		checkOffsets(t, fmt.Sprintf("group offsets after %s", st), mustFetchOffsets(t, s, "g"), txnOffset("g", "t", 0, 5))
		if st == metadata.TxnOngoing {
			// Leave none behind for the next states.
			next.State = metadata.TxnPrepareAbort
			mustPutTxn(t, s, fence, next)
		}
	}
	// Deleting the group drops pending offsets of it.
	mustPutTxn(t, s, fence, ongoingTxn("last", 9, 0, "g"))
	if err := s.AddTxnOffsets(ctx, fence, "last", 9, 0, []metadata.GroupOffset{txnOffset("g", "t", 0, 200)}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	checkOffsets(t, "pending offsets after DeleteGroup", mustPending(t, s, "g"))
	commit := ongoingTxn("last", 9, 0, "g")
	commit.State = metadata.TxnPrepareCommit
	mustPutTxn(t, s, fence, commit)
	checkOffsets(t, "group offsets after a commit following DeleteGroup", mustFetchOffsets(t, s, "g"))
}

func testAddTxnOffsetsRefused(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	fence := txnSlot(t, s)
	mustPutTxn(t, s, fence, ongoingTxn("tx", 5, 3, "g"))
	empty := ongoingTxn("empty", 6, 0, "g")
	empty.State = metadata.TxnEmpty
	mustPutTxn(t, s, fence, empty)
	if err := s.AddTxnOffsets(ctx, fence, "tx", 5, 3, []metadata.GroupOffset{txnOffset("g", "t", 0, 1)}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		what  string
		id    string
		pid   int64
		epoch int16
		offs  []metadata.GroupOffset
		want  error
	}{
		{"unknown transactional id", "nope", 5, 3, []metadata.GroupOffset{txnOffset("g", "t", 0, 9)}, metadata.ErrTxnNotFound},
		{"older epoch", "tx", 5, 2, []metadata.GroupOffset{txnOffset("g", "t", 0, 9)}, metadata.ErrTxnFenced},
		{"newer epoch", "tx", 5, 4, []metadata.GroupOffset{txnOffset("g", "t", 0, 9)}, metadata.ErrTxnFenced},
		{"other producer", "tx", 4, 3, []metadata.GroupOffset{txnOffset("g", "t", 0, 9)}, metadata.ErrTxnFenced},
		{"not ongoing", "empty", 6, 0, []metadata.GroupOffset{txnOffset("g", "t", 0, 9)}, metadata.ErrTxnState},
		{"group not added", "tx", 5, 3, []metadata.GroupOffset{txnOffset("h", "t", 0, 9)}, metadata.ErrTxnState},
		{"two groups", "tx", 5, 3, []metadata.GroupOffset{txnOffset("g", "t", 0, 9), txnOffset("h", "t", 0, 9)}, nil},
	} {
		err := s.AddTxnOffsets(ctx, fence, c.id, c.pid, c.epoch, c.offs)
		if c.want == nil && err == nil || c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("AddTxnOffsets, %s: %v, want %v", c.what, err, c.want)
		}
	}
	// Nothing was written.
	checkOffsets(t, "pending offsets of g", mustPending(t, s, "g"), txnOffset("g", "t", 0, 1))
	checkOffsets(t, "pending offsets of h", mustPending(t, s, "h"))
	// Nor does a decided transaction take offsets any more.
	commit := ongoingTxn("tx", 5, 3, "g")
	commit.State = metadata.TxnPrepareCommit
	mustPutTxn(t, s, fence, commit)
	if err := s.AddTxnOffsets(ctx, fence, "tx", 5, 3, []metadata.GroupOffset{txnOffset("g", "t", 0, 9)}); !errors.Is(err, metadata.ErrTxnState) {
		t.Errorf("AddTxnOffsets after PrepareCommit: %v, want ErrTxnState", err)
	}
	checkOffsets(t, "pending offsets after the commit", mustPending(t, s, "g"))
	checkOffsets(t, "group offsets after the commit", mustFetchOffsets(t, s, "g"), txnOffset("g", "t", 0, 1))
}

func testDeleteTxn(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	fence := txnSlot(t, s)
	txn := ongoingTxn("tx", 5, 3, "g")
	mustPutTxn(t, s, fence, txn)
	if err := s.AddTxnOffsets(ctx, fence, "tx", 5, 3, []metadata.GroupOffset{txnOffset("g", "t", 0, 1)}); err != nil {
		t.Fatal(err)
	}
	// Another producer or epoch: the row is not the one expired.
	for _, c := range []struct {
		pid   int64
		epoch int16
	}{{5, 2}, {5, 4}, {6, 3}} {
		if err := s.DeleteTxn(ctx, fence, "tx", c.pid, c.epoch); err != nil {
			t.Errorf("DeleteTxn(%d, %d): %v", c.pid, c.epoch, err)
		}
	}
	checkTxn(t, s, txn)
	checkOffsets(t, "pending offsets", mustPending(t, s, "g"), txnOffset("g", "t", 0, 1))
	if err := s.DeleteTxn(ctx, fence, "tx", 5, 3); err != nil {
		t.Fatalf("DeleteTxn: %v", err)
	}
	if _, found, err := s.GetTxn(ctx, "tx"); err != nil || found {
		t.Errorf("GetTxn after DeleteTxn = found %v, %v", found, err)
	}
	checkOffsets(t, "pending offsets after DeleteTxn", mustPending(t, s, "g"))
	if err := s.DeleteTxn(ctx, fence, "tx", 5, 3); err != nil {
		t.Errorf("DeleteTxn of a deleted transaction: %v", err)
	}
}

func checkLSO(t *testing.T, s metadata.Store, tp metadata.TopicPartition, hw, lso int64) {
	t.Helper()
	p, err := s.GetPartition(t.Context(), tp)
	if err != nil || p.HighWatermark != hw || p.LastStableOffset != lso {
		t.Errorf("GetPartition(%s) = %+v, %v; want high watermark %d, last stable offset %d", tp, p, err, hw, lso)
	}
	ps, err := s.ListPartitions(t.Context(), tp.TopicID)
	if err != nil || int(tp.Partition) >= len(ps) || ps[tp.Partition].LastStableOffset != lso {
		t.Errorf("ListPartitions(%s) = %+v, %v; want last stable offset %d", tp.TopicID, ps, err, lso)
	}
}

func testLastStableOffset(t *testing.T, s metadata.Store) {
	topic := mustCreateTopic(t, s, "t", 2)
	tp := tpOf(topic, 0)
	checkLSO(t, s, tp, 0, 0)
	lease := mustAcquire(t, s, tp, "a", now)
	// No transaction open: the last stable offset follows the high
	// watermark.
	mustCommit(t, s, commitOf("o1", "a", partCommit(tp, lease.Epoch, 0, 10)))
	checkLSO(t, s, tp, 10, 10)
	// A transaction opens at 12.
	pc := partCommit(tp, lease.Epoch, 10, 5)
	pc.HasOpenTxn, pc.OpenTxnFirstOffset = true, 12
	mustCommit(t, s, commitOf("o2", "a", pc))
	checkLSO(t, s, tp, 15, 12)
	// It stays open.
	pc = partCommit(tp, lease.Epoch, 15, 5)
	pc.HasOpenTxn, pc.OpenTxnFirstOffset = true, 12
	mustCommit(t, s, commitOf("o3", "a", pc))
	checkLSO(t, s, tp, 20, 12)
	// An open transaction may start at the new high watermark itself
	// (nothing of it committed yet) or at 0.
	pc = partCommit(tp, lease.Epoch, 20, 1)
	pc.HasOpenTxn, pc.OpenTxnFirstOffset = true, 21
	mustCommit(t, s, commitOf("o4", "a", pc))
	checkLSO(t, s, tp, 21, 21)
	// Its marker closes it.
	mustCommit(t, s, commitOf("o5", "a", partCommit(tp, lease.Epoch, 21, 1)))
	checkLSO(t, s, tp, 22, 22)
	// The other partition was untouched.
	checkLSO(t, s, tpOf(topic, 1), 0, 0)

	// A fenced commit changes nothing.
	pc = partCommit(tp, lease.Epoch+1, 22, 1)
	pc.HasOpenTxn, pc.OpenTxnFirstOffset = true, 22
	checkFenced(t, s.CommitObject(t.Context(), commitOf("o6", "a", pc)), tp)
	checkLSO(t, s, tp, 22, 22)
}

func testCommitTxnFieldsInvalid(t *testing.T, s metadata.Store) {
	topic := mustCreateTopic(t, s, "t", 1)
	tp := tpOf(topic, 0)
	lease := mustAcquire(t, s, tp, "a", now)
	mustCommit(t, s, commitOf("o1", "a", partCommit(tp, lease.Epoch, 0, 10)))
	for name, mutate := range map[string]func(*metadata.PartitionCommit){
		"open txn above the high watermark": func(p *metadata.PartitionCommit) { p.HasOpenTxn, p.OpenTxnFirstOffset = true, 16 },
		"negative open txn offset":          func(p *metadata.PartitionCommit) { p.HasOpenTxn, p.OpenTxnFirstOffset = true, -1 },
		"aborted txn ends at the high watermark": func(p *metadata.PartitionCommit) {
			p.AbortedTxns = []metadata.AbortedTxn{{ProducerID: 1, FirstOffset: 10, LastOffset: 15}}
		},
		"aborted txn ends before it starts": func(p *metadata.PartitionCommit) {
			p.AbortedTxns = []metadata.AbortedTxn{{ProducerID: 1, FirstOffset: 12, LastOffset: 11}}
		},
		"aborted txn at a negative offset": func(p *metadata.PartitionCommit) {
			p.AbortedTxns = []metadata.AbortedTxn{{ProducerID: 1, FirstOffset: -1, LastOffset: 11}}
		},
		"two aborted txns with one marker": func(p *metadata.PartitionCommit) {
			p.AbortedTxns = []metadata.AbortedTxn{{ProducerID: 1, FirstOffset: 10, LastOffset: 14}, {ProducerID: 2, FirstOffset: 11, LastOffset: 14}}
		},
	} {
		pc := partCommit(tp, lease.Epoch, 10, 5)
		mutate(&pc)
		err := s.CommitObject(t.Context(), commitOf("bad", "a", pc))
		if !errors.Is(err, metadata.ErrInvalidCommit) {
			t.Errorf("commit with %s: %v, want ErrInvalidCommit", name, err)
		}
	}
	checkLSO(t, s, tp, 10, 10)
	if as, err := s.ListAbortedTxns(t.Context(), tp, 0, 100); err != nil || len(as) != 0 {
		t.Errorf("aborted transactions after invalid commits = %+v, %v", as, err)
	}
}

func mustListAborted(t *testing.T, s metadata.Store, tp metadata.TopicPartition, from, to int64) []metadata.AbortedTxn {
	t.Helper()
	as, err := s.ListAbortedTxns(t.Context(), tp, from, to)
	if err != nil {
		t.Fatalf("ListAbortedTxns(%s, %d, %d): %v", tp, from, to, err)
	}
	return as
}

func testAbortedTxnIndex(t *testing.T, s metadata.Store) {
	topic := mustCreateTopic(t, s, "t", 2)
	tp, other := tpOf(topic, 0), tpOf(topic, 1)
	lease := mustAcquire(t, s, tp, "a", now)
	otherLease := mustAcquire(t, s, other, "a", now)
	// Producer 1 aborts [0, 20) with its marker at 20; producer 2 aborts
	// [5, 30) at 30 and, later, [40, 45) at 45. The first two land in one
	// commit with the other partition's own abort.
	a1 := metadata.AbortedTxn{ProducerID: 1, FirstOffset: 0, LastOffset: 20}
	a2 := metadata.AbortedTxn{ProducerID: 2, FirstOffset: 5, LastOffset: 30}
	a3 := metadata.AbortedTxn{ProducerID: 2, FirstOffset: 40, LastOffset: 45}
	pc := partCommit(tp, lease.Epoch, 0, 31)
	pc.AbortedTxns = []metadata.AbortedTxn{a2, a1}
	opc := partCommit(other, otherLease.Epoch, 0, 3)
	opc.AbortedTxns = []metadata.AbortedTxn{{ProducerID: 1, FirstOffset: 0, LastOffset: 2}}
	c1 := commitOf("o1", "a", pc, opc)
	mustCommit(t, s, c1)
	pc = partCommit(tp, lease.Epoch, 31, 15)
	pc.AbortedTxns = []metadata.AbortedTxn{a3}
	mustCommit(t, s, commitOf("o2", "a", pc))
	// A retried commit whose answer was lost stores nothing twice.
	mustCommit(t, s, c1)

	for _, c := range []struct {
		from, to int64
		want     []metadata.AbortedTxn
	}{
		{0, 100, []metadata.AbortedTxn{a1, a2, a3}}, // ordered by first offset
		{0, 1, []metadata.AbortedTxn{a1}},
		{0, 5, []metadata.AbortedTxn{a1}},       // a2 starts at 5: not below 5
		{0, 6, []metadata.AbortedTxn{a1, a2}},   //
		{20, 21, []metadata.AbortedTxn{a1, a2}}, // a1's marker is at 20
		{21, 100, []metadata.AbortedTxn{a2, a3}},
		{31, 40, nil},
		{31, 41, []metadata.AbortedTxn{a3}},
		{45, 46, []metadata.AbortedTxn{a3}},
		{46, 100, nil},
	} {
		if got := mustListAborted(t, s, tp, c.from, c.to); !slices.Equal(got, c.want) {
			t.Errorf("ListAbortedTxns(%d, %d) = %+v, want %+v", c.from, c.to, got, c.want)
		}
	}
	if got := mustListAborted(t, s, other, 0, 100); !slices.Equal(got, []metadata.AbortedTxn{{ProducerID: 1, FirstOffset: 0, LastOffset: 2}}) {
		t.Errorf("aborted transactions of the other partition = %+v", got)
	}

	// A fenced commit adds none.
	pc = partCommit(tp, lease.Epoch, 40, 10) // wrong high watermark
	pc.AbortedTxns = []metadata.AbortedTxn{{ProducerID: 3, FirstOffset: 40, LastOffset: 48}}
	checkFenced(t, s.CommitObject(t.Context(), commitOf("o3", "a", pc)), tp)
	if got := mustListAborted(t, s, tp, 46, 100); len(got) != 0 {
		t.Errorf("a fenced commit stored aborted transactions %+v", got)
	}
}

func testAbortedTxnCleanup(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	doomed := mustCreateTopic(t, s, "doomed", 1)
	kept := mustCreateTopic(t, s, "kept", 1)
	tp, keptTP := tpOf(doomed, 0), tpOf(kept, 0)
	lease := mustAcquire(t, s, tp, "a", now)
	keptLease := mustAcquire(t, s, keptTP, "a", now)
	a1 := metadata.AbortedTxn{ProducerID: 1, FirstOffset: 0, LastOffset: 9}
	a2 := metadata.AbortedTxn{ProducerID: 2, FirstOffset: 5, LastOffset: 19}
	for _, x := range []metadata.TopicPartition{tp, keptTP} {
		epoch := lease.Epoch
		if x == keptTP {
			epoch = keptLease.Epoch
		}
		pc := partCommit(x, epoch, 0, 10)
		pc.AbortedTxns = []metadata.AbortedTxn{a1}
		mustCommit(t, s, commitOf("o1-"+x.String(), "a", pc))
		pc = partCommit(x, epoch, 10, 10)
		pc.AbortedTxns = []metadata.AbortedTxn{a2}
		mustCommit(t, s, commitOf("o2-"+x.String(), "a", pc))
	}

	// The log start passes a1's marker: a1 goes, a2 (marker at 19) stays.
	if _, err := s.SetLogStartOffset(ctx, keptTP, 9); err != nil {
		t.Fatal(err)
	}
	if got := mustListAborted(t, s, keptTP, 0, 100); !slices.Equal(got, []metadata.AbortedTxn{a1, a2}) {
		t.Errorf("aborted transactions after log start 9 = %+v, want both", got)
	}
	if _, err := s.SetLogStartOffset(ctx, keptTP, 10); err != nil {
		t.Fatal(err)
	}
	if got := mustListAborted(t, s, keptTP, 0, 100); !slices.Equal(got, []metadata.AbortedTxn{a2}) {
		t.Errorf("aborted transactions after log start 10 = %+v, want %+v", got, a2)
	}
	if _, err := s.SetLogStartOffset(ctx, keptTP, 20); err != nil {
		t.Fatal(err)
	}
	if got := mustListAborted(t, s, keptTP, 0, 100); len(got) != 0 {
		t.Errorf("aborted transactions after log start 20 = %+v, want none", got)
	}

	// Deleting a topic deletes its aborted transactions and the pending
	// transactional offsets of its name.
	fence := txnSlot(t, s)
	mustPutTxn(t, s, fence, ongoingTxn("tx", 1, 0, "g"))
	if err := s.AddTxnOffsets(ctx, fence, "tx", 1, 0, []metadata.GroupOffset{txnOffset("g", "doomed", 0, 3), txnOffset("g", "kept", 0, 4)}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteTopic(ctx, "doomed"); err != nil {
		t.Fatal(err)
	}
	if got := mustListAborted(t, s, tp, 0, 100); len(got) != 0 {
		t.Errorf("aborted transactions of a deleted topic = %+v", got)
	}
	checkOffsets(t, "pending offsets after DeleteTopic", mustPending(t, s, "g"), txnOffset("g", "kept", 0, 4))
}

func testProducerTxnState(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	topic := mustCreateTopic(t, s, "t", 1)
	tp := tpOf(topic, 0)
	lease := mustAcquire(t, s, tp, "a", now)
	old := now.Add(-time.Hour)
	idle := metadata.ProducerState{ProducerID: 1, Epoch: 0, UpdatedAt: old, TxnFirstOffset: -1, CoordinatorEpoch: -1}
	open := metadata.ProducerState{ProducerID: 2, Epoch: 4, UpdatedAt: old, InTxn: true, TxnFirstOffset: 3, CoordinatorEpoch: 7,
		Batches: []metadata.ProducerBatch{{FirstSeq: 0, LastSeq: 1, BaseOffset: 3, LastOffset: 4, Timestamp: 9}}}
	closed := metadata.ProducerState{ProducerID: 3, Epoch: 1, UpdatedAt: old, TxnFirstOffset: -1, CoordinatorEpoch: 2}
	pc := partCommit(tp, lease.Epoch, 0, 5)
	pc.Producers = []metadata.ProducerState{idle, open, closed}
	pc.HasOpenTxn, pc.OpenTxnFirstOffset = true, 3
	mustCommit(t, s, commitOf("o1", "a", pc))
	checkProducers(t, s, tp, idle, open, closed)

	// Expiry forgets the idle producers, never one with a transaction
	// open on the partition.
	if n, err := s.ExpireProducers(ctx, now); err != nil || n != 2 {
		t.Errorf("ExpireProducers = %d, %v; want 2", n, err)
	}
	checkProducers(t, s, tp, open)

	// The marker closes the transaction; then it expires like any other.
	open.InTxn, open.TxnFirstOffset, open.CoordinatorEpoch = false, -1, 8
	pc = partCommit(tp, lease.Epoch, 5, 1)
	pc.Producers = []metadata.ProducerState{open}
	mustCommit(t, s, commitOf("o2", "a", pc))
	checkProducers(t, s, tp, open)
	checkLSO(t, s, tp, 6, 6)
	if n, err := s.ExpireProducers(ctx, now); err != nil || n != 1 {
		t.Errorf("ExpireProducers after the marker = %d, %v; want 1", n, err)
	}
	checkProducers(t, s, tp)
}

// testTxnOffsetsRaceDecision races AddTxnOffsets against the PutTxn that
// decides the transaction, many times: the offsets must either be stored
// before the decision (and so committed by it) or refused; a pending
// offset surviving the decision would be lost, or committed by nothing.
func testTxnOffsetsRaceDecision(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	fence := txnSlot(t, s)
	const (
		rounds  = 200
		workers = 4
	)
	var (
		mu    sync.Mutex
		added = map[int32]bool{} // rounds whose AddTxnOffsets succeeded
		errs  []error
	)
	round := func(i int32) error {
		id := fmt.Sprintf("tx-%d", i)
		if err := s.PutTxn(ctx, fence, ongoingTxn(id, int64(i), 0, "g")); err != nil {
			return err
		}
		var wg sync.WaitGroup
		var addErr, putErr error
		wg.Add(2)
		go func() {
			defer wg.Done()
			// Several rows, so the insert takes a while.
			offs := make([]metadata.GroupOffset, 0, 20)
			for j := range int32(20) {
				offs = append(offs, txnOffset("g", fmt.Sprintf("t-%03d", i), j, int64(i)))
			}
			addErr = s.AddTxnOffsets(ctx, fence, id, int64(i), 0, offs)
		}()
		go func() {
			defer wg.Done()
			commit := ongoingTxn(id, int64(i), 0, "g")
			commit.State = metadata.TxnPrepareCommit
			putErr = s.PutTxn(ctx, fence, commit)
		}()
		wg.Wait()
		if putErr != nil {
			return fmt.Errorf("round %d: PutTxn: %w", i, putErr)
		}
		switch {
		case addErr == nil:
			mu.Lock()
			added[i] = true
			mu.Unlock()
		case !errors.Is(addErr, metadata.ErrTxnState):
			return fmt.Errorf("round %d: AddTxnOffsets: %w, want success or ErrTxnState", i, addErr)
		}
		return nil
	}
	work := make(chan int32)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				if err := round(i); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		}()
	}
	for i := range int32(rounds) {
		work <- i
	}
	close(work)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if p := mustPending(t, s, "g"); len(p) != 0 {
		t.Errorf("%d pending offsets survived their transaction's commit, first %+v", len(p), p[0])
	}
	committed := map[string]int{}
	for _, o := range mustFetchOffsets(t, s, "g") {
		committed[o.Topic]++
	}
	for i := range int32(rounds) {
		topic := fmt.Sprintf("t-%03d", i)
		want := 0
		if added[i] {
			want = 20
		}
		if committed[topic] != want {
			t.Errorf("round %d: %d offsets committed, want %d (AddTxnOffsets succeeded: %v)", i, committed[topic], want, added[i])
		}
	}
	t.Logf("%d of %d AddTxnOffsets landed before the commit", len(added), rounds)
}
