package faulty_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/internal/acl"
	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/metadata/faulty"
	"github.com/streamhouse/streamhouse/internal/metadata/metadatatest"
	"github.com/streamhouse/streamhouse/internal/testutil"
)

func TestFaults(t *testing.T) {
	t.Parallel()
	inner := metadatatest.OpenSQLite(t)
	s := faulty.New(inner)
	ctx := context.Background()
	topic, err := s.CreateTopic(ctx, metadata.Topic{Name: "t", Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	tp := metadata.TopicPartition{TopicID: topic.ID, Partition: 0}
	now := time.Now()
	boom := errors.New("boom")

	// Times: the fault expires after that many calls.
	s.Inject(faulty.Fault{Op: faulty.OpAcquireLease, Err: boom, Times: 1})
	if _, err := s.AcquireLease(ctx, tp, "a", now, time.Minute); !errors.Is(err, boom) {
		t.Fatalf("first acquire: %v, want the injected error", err)
	}
	l, err := s.AcquireLease(ctx, tp, "a", now, time.Minute)
	if err != nil {
		t.Fatalf("second acquire: %v", err)
	}

	// AfterWrite: the commit lands, the caller sees the error.
	s.Inject(faulty.Fault{Op: faulty.OpCommitObject, AfterWrite: true, Times: 1})
	c := metadata.ObjectCommit{ObjectKey: "k", AgentID: "a", Partitions: []metadata.PartitionCommit{{
		TopicPartition: tp, Epoch: l.Epoch, NewHighWatermark: 1,
		Entries: []metadata.IndexEntry{{BaseOffset: 0, LastOffset: 0, ObjectKey: "k", Len: 1, Records: 1}},
	}}}
	if err := s.CommitObject(ctx, c); !errors.Is(err, faulty.ErrInjected) {
		t.Fatalf("commit: %v, want ErrInjected", err)
	}
	if p, err := inner.GetPartition(ctx, tp); err != nil || p.HighWatermark != 1 {
		t.Fatalf("after a landed commit: %+v, %v", p, err)
	}

	// Hang: until Release, or the caller's ctx.
	s.Inject(faulty.Fault{Op: faulty.OpRenewLeases, Hang: true})
	done := make(chan error, 1)
	go func() {
		_, err := s.RenewLeases(ctx, "a", now, time.Minute)
		done <- err
	}()
	testutil.WaitFor(t, "the renewal to hang", func() bool { return s.Hanging() == 1 })
	s.Clear()
	s.Release()
	if err := <-done; err != nil {
		t.Fatalf("released renewal: %v", err)
	}
	s.Inject(faulty.Fault{Op: faulty.OpRenewLeases, Hang: true})
	tctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := s.RenewLeases(tctx, "a", now, time.Minute); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("hung renewal with a deadline: %v", err)
	}
	if n := s.Calls(faulty.OpRenewLeases); n != 2 {
		t.Fatalf("%d renewals counted, want 2", n)
	}
}

// The transaction writes have fault points too: a PutTxn that lands yet
// reports failure, an AddTxnOffsets that fails without writing.
func TestTxnFaults(t *testing.T) {
	t.Parallel()
	inner := metadatatest.OpenSQLite(t)
	s := faulty.New(inner)
	ctx := context.Background()
	slots, err := s.CreateTopic(ctx, metadata.Topic{Name: "slots", Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	slot := metadata.TopicPartition{TopicID: slots.ID}
	l, err := s.AcquireLease(ctx, slot, "a", time.Now(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	fence := metadata.GroupFence{Slot: slot, AgentID: "a", Epoch: l.Epoch}
	txn := metadata.Txn{TransactionalID: "tx", ProducerID: 1, LastProducerID: -1, State: metadata.TxnOngoing, Groups: []string{"g"}}

	s.Inject(faulty.Fault{Op: faulty.OpPutTxn, AfterWrite: true, Times: 1})
	if err := s.PutTxn(ctx, fence, txn); !errors.Is(err, faulty.ErrInjected) {
		t.Fatalf("PutTxn: %v, want ErrInjected", err)
	}
	if got, found, err := inner.GetTxn(ctx, "tx"); err != nil || !found || got.State != metadata.TxnOngoing {
		t.Fatalf("after a landed PutTxn: %+v, %v, %v", got, found, err)
	}

	s.Inject(faulty.Fault{Op: faulty.OpAddTxnOffsets, Times: 1})
	offs := []metadata.GroupOffset{{Group: "g", Topic: "t", Offset: 5}}
	if err := s.AddTxnOffsets(ctx, fence, "tx", 1, 0, offs); !errors.Is(err, faulty.ErrInjected) {
		t.Fatalf("AddTxnOffsets: %v, want ErrInjected", err)
	}
	if p, err := inner.PendingTxnOffsets(ctx, "g"); err != nil || len(p) != 0 {
		t.Fatalf("pending offsets after a failed AddTxnOffsets: %+v, %v", p, err)
	}
	if err := s.AddTxnOffsets(ctx, fence, "tx", 1, 0, offs); err != nil {
		t.Fatalf("AddTxnOffsets after the fault expired: %v", err)
	}
	if n := s.Calls(faulty.OpAddTxnOffsets); n != 2 {
		t.Fatalf("%d AddTxnOffsets counted, want 2", n)
	}
}

// The ACL methods have fault points: a create that lands yet reports
// failure, a delete that fails without deleting, reads that fail.
func TestACLFaults(t *testing.T) {
	t.Parallel()
	inner := metadatatest.OpenSQLite(t)
	s := faulty.New(inner)
	ctx := context.Background()
	b := acl.Binding{ResourceType: acl.ResourceTopic, ResourceName: "t", PatternType: acl.PatternLiteral,
		Principal: "User:alice", Host: "*", Operation: acl.OpRead, Permission: acl.PermissionAllow}

	s.Inject(faulty.Fault{Op: faulty.OpCreateACLs, AfterWrite: true, Times: 1})
	if err := s.CreateACLs(ctx, []acl.Binding{b}); !errors.Is(err, faulty.ErrInjected) {
		t.Fatalf("CreateACLs: %v, want ErrInjected", err)
	}
	if got, err := inner.ListACLs(ctx, acl.AnyFilter); err != nil || len(got) != 1 {
		t.Fatalf("after a landed CreateACLs: %v, %v", got, err)
	}
	s.Inject(faulty.Fault{Op: faulty.OpDeleteACLs, Times: 1})
	if _, err := s.DeleteACLs(ctx, []acl.Filter{acl.AnyFilter}); !errors.Is(err, faulty.ErrInjected) {
		t.Fatalf("DeleteACLs: %v, want ErrInjected", err)
	}
	s.Inject(faulty.Fault{Op: faulty.OpListACLs, Times: 1})
	if _, err := s.ListACLs(ctx, acl.AnyFilter); !errors.Is(err, faulty.ErrInjected) {
		t.Fatalf("ListACLs: %v, want ErrInjected", err)
	}
	s.Inject(faulty.Fault{Op: faulty.OpACLVersion, Times: 1})
	if _, err := s.ACLVersion(ctx); !errors.Is(err, faulty.ErrInjected) {
		t.Fatalf("ACLVersion: %v, want ErrInjected", err)
	}
	if got, err := s.ListACLs(ctx, acl.AnyFilter); err != nil || len(got) != 1 {
		t.Fatalf("after a failed DeleteACLs: %v, %v", got, err)
	}
	for _, op := range []faulty.Op{faulty.OpCreateACLs, faulty.OpDeleteACLs, faulty.OpACLVersion} {
		if n := s.Calls(op); n != 1 {
			t.Errorf("%d calls of %s counted, want 1", n, op)
		}
	}
}

func TestCredentialFaults(t *testing.T) {
	t.Parallel()
	inner := metadatatest.OpenSQLite(t)
	s := faulty.New(inner)
	ctx := context.Background()
	c := metadata.ScramCredential{User: "u", Mechanism: "SCRAM-SHA-256", Salt: []byte{1}, StoredKey: []byte{2}, ServerKey: []byte{3}, Iterations: 4096}

	// A write that lands yet reports failure.
	s.Inject(faulty.Fault{Op: faulty.OpPutCredential, AfterWrite: true, Times: 1})
	if err := s.PutScramCredential(ctx, c); !errors.Is(err, faulty.ErrInjected) {
		t.Fatalf("put: %v, want ErrInjected", err)
	}
	if _, err := inner.GetScramCredential(ctx, "u", "SCRAM-SHA-256"); err != nil {
		t.Fatalf("the landed put is not stored: %v", err)
	}
	// A creation refused before it reaches the store.
	s.Inject(faulty.Fault{Op: faulty.OpPutCredential, Err: metadata.ErrUnavailable, Times: 1})
	c2 := c
	c2.User = "v"
	if _, err := s.CreateScramUser(ctx, []metadata.ScramCredential{c2}); !errors.Is(err, metadata.ErrUnavailable) {
		t.Fatalf("create: %v, want ErrUnavailable", err)
	}
	if _, err := inner.GetScramCredential(ctx, "v", "SCRAM-SHA-256"); !errors.Is(err, metadata.ErrCredentialNotFound) {
		t.Fatalf("the refused create stored: %v", err)
	}
	// Reads: an outage, then through again.
	s.Inject(faulty.Fault{Op: faulty.OpGetCredential, Err: metadata.ErrUnavailable, Times: 1})
	if _, err := s.GetScramCredential(ctx, "u", "SCRAM-SHA-256"); !errors.Is(err, metadata.ErrUnavailable) {
		t.Fatalf("get: %v, want ErrUnavailable", err)
	}
	if _, err := s.GetScramCredential(ctx, "u", "SCRAM-SHA-256"); err != nil {
		t.Fatalf("get after the fault expired: %v", err)
	}
	if n := s.Calls(faulty.OpGetCredential); n != 2 {
		t.Fatalf("calls counted: %d, want 2", n)
	}
}

// Quota faults: a failed AlterClientQuotas stores nothing, a failed
// ClientQuotas reports the fault; change notices pass through.
func TestQuotaFaults(t *testing.T) {
	t.Parallel()
	inner := metadatatest.OpenSQLite(t)
	s := faulty.New(inner)
	ctx := t.Context()
	w := metadatatest.WatchChanges(t, s)
	alt := []metadata.QuotaAlteration{{Entity: metadata.QuotaEntity{HasClientID: true}, Set: map[string]float64{"producer_byte_rate": 10}}}
	s.Inject(faulty.Fault{Op: faulty.OpAlterQuotas, Times: 1})
	if err := s.AlterClientQuotas(ctx, alt); !errors.Is(err, faulty.ErrInjected) {
		t.Fatalf("AlterClientQuotas: %v, want ErrInjected", err)
	}
	if qs, err := inner.ClientQuotas(ctx); err != nil || len(qs) != 0 {
		t.Fatalf("after a failed alter: %v, %v", qs, err)
	}
	if err := s.AlterClientQuotas(ctx, alt); err != nil {
		t.Fatal(err)
	}
	w.WaitFor(t, metadata.ChangeQuotas, 1)
	s.Inject(faulty.Fault{Op: faulty.OpListQuotas, Times: 1})
	if _, err := s.ClientQuotas(ctx); !errors.Is(err, faulty.ErrInjected) {
		t.Fatalf("ClientQuotas: %v, want ErrInjected", err)
	}
	if qs, err := s.ClientQuotas(ctx); err != nil || len(qs) != 1 {
		t.Fatalf("ClientQuotas after the fault: %v, %v", qs, err)
	}
}
