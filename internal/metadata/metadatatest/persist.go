package metadatatest

import (
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/internal/acl"
	"github.com/streamhouse/streamhouse/internal/metadata"
)

// RunPersistence checks that everything a store holds survives Close and a
// new open of the same database. newDB creates a fresh database and returns
// a function opening it (see SQLiteOpener and PostgresOpener).
func RunPersistence(t *testing.T, newDB func(t *testing.T) func() metadata.Store) {
	ctx := t.Context()
	open := newDB(t)
	s := open()

	cfg := map[string]string{"retention.ms": "60000"}
	topic, err := s.CreateTopic(ctx, metadata.Topic{Name: "kept", Partitions: 2, Config: cfg, CreatedAt: now})
	if err != nil {
		t.Fatal(err)
	}
	agent := metadata.Agent{ID: "a", Addr: "h:9092", Rack: "r", StartedAt: now, HeartbeatAt: now}
	if err := s.RegisterAgent(ctx, agent); err != nil {
		t.Fatal(err)
	}
	tp := tpOf(topic, 1)
	lease := mustAcquire(t, s, tp, "a", now)
	pc := partCommit(tp, lease.Epoch, 0, 10)
	pc.Producers = []metadata.ProducerState{{ProducerID: 5, Epoch: 2, Batches: []metadata.ProducerBatch{{FirstSeq: 0, LastSeq: 9, LastOffset: 9, Timestamp: 42}}}}
	mustCommit(t, s, commitOf("obj-1", "a", pc))
	mustCommit(t, s, commitOf("obj-2", "a", partCommit(tp, lease.Epoch, 10, 5)))
	if _, err := s.SetLogStartOffset(ctx, tp, 10); err != nil {
		t.Fatal(err)
	}
	if _, err := s.MarkUnreferencedObjects(ctx, now, time.Minute); err != nil {
		t.Fatal(err)
	}
	mustCommitOffsets(t, s, metadata.GroupOffset{Group: "g", Topic: "kept", Partition: 1, Offset: 7, LeaderEpoch: 1, Metadata: "m", CommittedAt: now})
	pid, err := s.NextProducerID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Transaction state: a coordinator row with a pending offset, and a
	// partition with an open transaction and an aborted one.
	fence := txnSlot(t, s)
	txn := ongoingTxn("tx", 9, 1, "g")
	mustPutTxn(t, s, fence, txn)
	if err := s.AddTxnOffsets(ctx, fence, "tx", 9, 1, []metadata.GroupOffset{txnOffset("g", "kept", 0, 3)}); err != nil {
		t.Fatal(err)
	}
	txnTP := tpOf(topic, 0)
	txnLease := mustAcquire(t, s, txnTP, "a", now)
	txnPC := partCommit(txnTP, txnLease.Epoch, 0, 10)
	txnPC.HasOpenTxn, txnPC.OpenTxnFirstOffset = true, 6
	txnPC.AbortedTxns = []metadata.AbortedTxn{{ProducerID: 9, FirstOffset: 0, LastOffset: 4}}
	txnPC.Producers = []metadata.ProducerState{{ProducerID: 9, Epoch: 1, InTxn: true, TxnFirstOffset: 6, CoordinatorEpoch: 2}}
	mustCommit(t, s, commitOf("obj-txn", "a", txnPC))
	keptACL := aclOf("kept", "User:alice", acl.OpRead)
	mustCreateACLs(t, s, keptACL)
	aclVersion := mustACLVersion(t, s)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = open()
	got, err := s.GetTopic(ctx, "kept")
	if err != nil || got.ID != topic.ID || got.Partitions != 2 || !maps.Equal(got.Config, cfg) || !got.CreatedAt.Equal(now) {
		t.Errorf("topic after reopen = %+v, %v; want %+v", got, err, topic)
	}
	checkAgents(t, s, time.Time{}, agent)
	p, err := s.GetPartition(ctx, tp)
	want := metadata.PartitionState{TopicID: topic.ID, Partition: 1, LogStartOffset: 10, HighWatermark: 15, Leader: "a", LeaderEpoch: lease.Epoch, LeaseExpiresAt: lease.ExpiresAt}
	if err != nil || p.LogStartOffset != want.LogStartOffset || p.HighWatermark != want.HighWatermark ||
		p.Leader != want.Leader || p.LeaderEpoch != want.LeaderEpoch || !p.LeaseExpiresAt.Equal(want.LeaseExpiresAt) {
		t.Errorf("partition after reopen = %+v, %v; want %+v", p, err, want)
	}
	if es := mustListIndex(t, s, tp, 0, 0); len(es) != 1 || es[0].ObjectKey != "obj-2" || es[0].BaseOffset != 10 {
		t.Errorf("index after reopen = %+v", es)
	}
	checkProducers(t, s, tp, pc.Producers...)
	recs, err := s.DeletableObjects(ctx, now.Add(time.Minute), 10)
	if err != nil || len(recs) != 1 || recs[0].Key != "obj-1" {
		t.Errorf("deletable objects after reopen = %+v, %v; want obj-1", recs, err)
	}
	if offs, err := s.FetchGroupOffsets(ctx, "g"); err != nil || len(offs) != 1 || offs[0].Offset != 7 || offs[0].Metadata != "m" {
		t.Errorf("group offsets after reopen = %+v, %v", offs, err)
	}
	if next, err := s.NextProducerID(ctx); err != nil || next <= pid {
		t.Errorf("NextProducerID after reopen = %d, %v; want above %d", next, err, pid)
	}
	checkTxn(t, s, txn)
	checkOffsets(t, "pending offsets after reopen", mustPending(t, s, "g"), txnOffset("g", "kept", 0, 3))
	checkLSO(t, s, txnTP, 10, 6)
	if as := mustListAborted(t, s, txnTP, 0, 10); !slices.Equal(as, txnPC.AbortedTxns) {
		t.Errorf("aborted transactions after reopen = %+v, want %+v", as, txnPC.AbortedTxns)
	}
	checkProducers(t, s, txnTP, txnPC.Producers...)
	checkACLs(t, "ACLs after reopen", mustListACLs(t, s, acl.AnyFilter), keptACL)
	if v := mustACLVersion(t, s); v != aclVersion {
		t.Errorf("ACL version after reopen = %d, want %d", v, aclVersion)
	}
	// The lease is still held, and its holder carries on from the stored
	// high watermark.
	if _, err := s.AcquireLease(ctx, tp, "b", now, ttl); !errors.Is(err, metadata.ErrLeaseHeld) {
		t.Errorf("AcquireLease after reopen: %v, want ErrLeaseHeld", err)
	}
	mustCommit(t, s, commitOf("obj-3", "a", partCommit(tp, lease.Epoch, 15, 5)))
}
