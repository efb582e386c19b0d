package metadatatest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/internal/metadata"
)

var leaseTests = []suiteTest{
	{"AcquireLease", testAcquireLease},
	{"AcquireLeaseRace", testAcquireLeaseRace},
	{"RenewLeases", testRenewLeases},
	{"ReleaseLease", testReleaseLease},
	{"LeaseTakeoverFencesOldLeader", testLeaseTakeover},
	{"Agents", testAgents},
	{"DeregisterAgentReleasesLeases", testDeregisterAgent},
}

func testAcquireLease(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	topic := mustCreateTopic(t, s, "t", 1)
	tp := tpOf(topic, 0)

	l := mustAcquire(t, s, tp, "a", now)
	want := metadata.Lease{TopicPartition: tp, Epoch: 1, ExpiresAt: now.Add(ttl)}
	if !sameLease(l, want) {
		t.Errorf("first AcquireLease = %+v, want %+v", l, want)
	}
	p, err := s.GetPartition(ctx, tp)
	if err != nil || p.Leader != "a" || p.LeaderEpoch != 1 || !p.LeaseExpiresAt.Equal(now.Add(ttl)) {
		t.Errorf("partition after AcquireLease = %+v, %v", p, err)
	}

	if _, err := s.AcquireLease(ctx, tp, "b", now.Add(ttl/2), ttl); !errors.Is(err, metadata.ErrLeaseHeld) {
		t.Errorf("AcquireLease of a held lease: %v, want ErrLeaseHeld", err)
	}
	// The holder taking its lease again (after a restart) gets a new epoch.
	l = mustAcquire(t, s, tp, "a", now.Add(time.Second))
	if l.Epoch != 2 || !l.ExpiresAt.Equal(now.Add(time.Second+ttl)) {
		t.Errorf("re-acquire by the holder = %+v, want epoch 2", l)
	}
	// Once expired, another agent takes it with epoch + 1 and the state as of
	// the takeover.
	mustCommit(t, s, commitOf("o", "a", partCommit(tp, 2, 0, 7)))
	later := now.Add(time.Second + ttl + time.Millisecond)
	l = mustAcquire(t, s, tp, "b", later)
	want = metadata.Lease{TopicPartition: tp, Epoch: 3, ExpiresAt: later.Add(ttl), HighWatermark: 7}
	if !sameLease(l, want) {
		t.Errorf("takeover after expiry = %+v, want %+v", l, want)
	}
	if _, err := s.AcquireLease(ctx, tp, "a", later, ttl); !errors.Is(err, metadata.ErrLeaseHeld) {
		t.Errorf("old holder re-acquiring a taken lease: %v, want ErrLeaseHeld", err)
	}
	if _, err := s.AcquireLease(ctx, tpOf(topic, 1), "a", now, ttl); !errors.Is(err, metadata.ErrPartitionNotFound) {
		t.Errorf("AcquireLease of a missing partition: %v, want ErrPartitionNotFound", err)
	}
}

// testAcquireLeaseRace lets agents race for one free partition: exactly one
// wins.
func testAcquireLeaseRace(t *testing.T, s metadata.Store) {
	topic := mustCreateTopic(t, s, "t", 1)
	tp := tpOf(topic, 0)
	const agents = 8
	errs := make([]error, agents)
	var wg sync.WaitGroup
	for i := range agents {
		wg.Go(func() {
			_, errs[i] = s.AcquireLease(t.Context(), tp, fmt.Sprintf("agent-%d", i), now, ttl)
		})
	}
	wg.Wait()
	wins := 0
	for i, err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, metadata.ErrLeaseHeld):
			t.Errorf("agent %d: %v, want nil or ErrLeaseHeld", i, err)
		}
	}
	if wins != 1 {
		t.Errorf("%d agents acquired the lease, want 1", wins)
	}
	if p, err := s.GetPartition(t.Context(), tp); err != nil || p.LeaderEpoch != 1 {
		t.Errorf("partition after the race = %+v, %v; want epoch 1", p, err)
	}
}

func testRenewLeases(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	t1 := mustCreateTopic(t, s, "t1", 2)
	t2 := mustCreateTopic(t, s, "t2", 1)
	la := []metadata.Lease{mustAcquire(t, s, tpOf(t1, 1), "a", now), mustAcquire(t, s, tpOf(t2, 0), "a", now)}
	mustAcquire(t, s, tpOf(t1, 0), "b", now)
	mustAcquire(t, s, tpOf(t1, 1), "a", now) // epoch 2 on this one

	at := now.Add(5 * time.Second)
	got, err := s.RenewLeases(ctx, "a", at, ttl)
	if err != nil {
		t.Fatalf("RenewLeases: %v", err)
	}
	want := []metadata.Lease{
		{TopicPartition: tpOf(t1, 1), Epoch: 2, ExpiresAt: at.Add(ttl)},
		{TopicPartition: tpOf(t2, 0), Epoch: la[1].Epoch, ExpiresAt: at.Add(ttl)},
	}
	if !sameLeases(got, want) {
		t.Errorf("RenewLeases = %+v, want %+v (in any order)", got, want)
	}
	if p, _ := s.GetPartition(ctx, tpOf(t1, 0)); !p.LeaseExpiresAt.Equal(now.Add(ttl)) {
		t.Errorf("another agent's lease changed: %+v", p)
	}
	// Renewed, so not taken at the old expiry.
	if _, err := s.AcquireLease(ctx, tpOf(t2, 0), "b", now.Add(ttl+time.Second), ttl); !errors.Is(err, metadata.ErrLeaseHeld) {
		t.Errorf("AcquireLease of a renewed lease: %v, want ErrLeaseHeld", err)
	}
	// An expired lease nobody took is still the holder's: renewing keeps its
	// epoch.
	late := now.Add(time.Hour)
	got, err = s.RenewLeases(ctx, "a", late, ttl)
	if err != nil || len(got) != 2 || got[0].Epoch == 0 || !got[0].ExpiresAt.Equal(late.Add(ttl)) {
		t.Errorf("RenewLeases after expiry = %+v, %v", got, err)
	}
	if got, err := s.RenewLeases(ctx, "nobody", now, ttl); err != nil || len(got) != 0 {
		t.Errorf("RenewLeases of an agent without leases = %+v, %v", got, err)
	}
}

func testReleaseLease(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	topic := mustCreateTopic(t, s, "t", 1)
	tp := tpOf(topic, 0)
	l := mustAcquire(t, s, tp, "a", now)

	// Not held at that epoch, or not by that agent: nothing happens.
	for _, c := range []struct {
		agent string
		epoch int32
	}{{"a", l.Epoch + 1}, {"b", l.Epoch}} {
		if err := s.ReleaseLease(ctx, tp, c.agent, c.epoch); err != nil {
			t.Errorf("ReleaseLease(%s, %d): %v", c.agent, c.epoch, err)
		}
		if _, err := s.AcquireLease(ctx, tp, "b", now, ttl); !errors.Is(err, metadata.ErrLeaseHeld) {
			t.Errorf("after ReleaseLease(%s, %d) the lease is free: %v", c.agent, c.epoch, err)
		}
	}
	if err := s.ReleaseLease(ctx, tp, "a", l.Epoch); err != nil {
		t.Fatalf("ReleaseLease: %v", err)
	}
	if p, err := s.GetPartition(ctx, tp); err != nil || p.Leader != "" || p.LeaderEpoch != l.Epoch {
		t.Errorf("partition after release = %+v, %v; want no leader, epoch kept", p, err)
	}
	// Free at once, without waiting for the expiry.
	if l2 := mustAcquire(t, s, tp, "b", now); l2.Epoch != l.Epoch+1 {
		t.Errorf("acquire after release = %+v, want epoch %d", l2, l.Epoch+1)
	}
	if err := s.ReleaseLease(ctx, tp, "a", l.Epoch); err != nil {
		t.Errorf("ReleaseLease of a lease no longer held: %v", err)
	}
	if err := s.CommitObject(ctx, commitOf("o", "a", partCommit(tp, l.Epoch, 0, 1))); err == nil {
		t.Error("the releasing agent could still commit")
	}
}

// testLeaseTakeover: safety comes from the epoch, not the clock. A holder
// whose lease expired can commit until someone takes the partition; after
// that its commits are fenced.
func testLeaseTakeover(t *testing.T, s metadata.Store) {
	topic := mustCreateTopic(t, s, "t", 1)
	tp := tpOf(topic, 0)
	la := mustAcquire(t, s, tp, "a", now)
	mustCommit(t, s, commitOf("o1", "a", partCommit(tp, la.Epoch, 0, 10)))
	// Expired, not taken: still commits.
	mustCommit(t, s, commitOf("o2", "a", partCommit(tp, la.Epoch, 10, 10)))

	lb := mustAcquire(t, s, tp, "b", now.Add(2*ttl))
	if lb.Epoch != la.Epoch+1 || lb.HighWatermark != 20 {
		t.Fatalf("takeover lease = %+v, want epoch %d at high watermark 20", lb, la.Epoch+1)
	}
	err := s.CommitObject(t.Context(), commitOf("o3", "a", partCommit(tp, la.Epoch, 20, 10)))
	checkFenced(t, err, tp)
	// Even claiming the new epoch does not help the old leader.
	err = s.CommitObject(t.Context(), commitOf("o3", "a", partCommit(tp, lb.Epoch, 20, 10)))
	checkFenced(t, err, tp)
	mustCommit(t, s, commitOf("o4", "b", partCommit(tp, lb.Epoch, 20, 5)))
	if p, err := s.GetPartition(t.Context(), tp); err != nil || p.HighWatermark != 25 {
		t.Errorf("partition = %+v, %v; want high watermark 25", p, err)
	}
}

func testAgents(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	a := metadata.Agent{ID: "a", Addr: "10.0.0.1:9092", GRPCAddr: "10.0.0.1:50051", Rack: "r1", StartedAt: now, HeartbeatAt: now}
	b := metadata.Agent{ID: "b", Addr: "10.0.0.2:9092", StartedAt: now.Add(-time.Hour), HeartbeatAt: now.Add(-time.Minute)}
	for _, ag := range []metadata.Agent{b, a} {
		if err := s.RegisterAgent(ctx, ag); err != nil {
			t.Fatalf("RegisterAgent(%s): %v", ag.ID, err)
		}
	}
	checkAgents(t, s, time.Time{}, a, b)
	checkAgents(t, s, now.Add(-30*time.Second), a)
	checkAgents(t, s, now, a) // at or after

	if err := s.HeartbeatAgent(ctx, "b", now.Add(time.Second)); err != nil {
		t.Fatalf("HeartbeatAgent: %v", err)
	}
	b.HeartbeatAt = now.Add(time.Second)
	checkAgents(t, s, now.Add(-30*time.Second), a, b)
	if err := s.HeartbeatAgent(ctx, "zz", now); !errors.Is(err, metadata.ErrAgentNotFound) {
		t.Errorf("HeartbeatAgent of an unknown agent: %v, want ErrAgentNotFound", err)
	}

	// Registering again (a restart) updates everything.
	a = metadata.Agent{ID: "a", Addr: "10.0.0.9:9092", GRPCAddr: "10.0.0.9:50052", Rack: "r2", StartedAt: now.Add(time.Minute), HeartbeatAt: now.Add(time.Minute)}
	if err := s.RegisterAgent(ctx, a); err != nil {
		t.Fatalf("RegisterAgent again: %v", err)
	}
	checkAgents(t, s, time.Time{}, a, b)

	// Without a heartbeat time, the current time is used.
	if err := s.RegisterAgent(ctx, metadata.Agent{ID: "c", Addr: "x:1"}); err != nil {
		t.Fatalf("RegisterAgent without times: %v", err)
	}
	as, err := s.ListAgents(ctx, time.Now().Add(-time.Hour))
	if err != nil || len(as) != 1 || as[0].ID != "c" {
		t.Errorf("ListAgents(an hour ago) = %+v, %v; want agent c", as, err)
	}

	if err := s.DeregisterAgent(ctx, "a"); err != nil {
		t.Fatalf("DeregisterAgent: %v", err)
	}
	if err := s.DeregisterAgent(ctx, "a"); err != nil {
		t.Errorf("DeregisterAgent of an unregistered agent: %v", err)
	}
	if err := s.HeartbeatAgent(ctx, "a", now); !errors.Is(err, metadata.ErrAgentNotFound) {
		t.Errorf("HeartbeatAgent after deregistering: %v, want ErrAgentNotFound", err)
	}
	as, err = s.ListAgents(ctx, time.Time{})
	if err != nil || len(as) != 2 || as[0].ID != "b" || as[1].ID != "c" {
		t.Errorf("ListAgents after deregistering a = %+v, %v; want b, c", as, err)
	}
}

func testDeregisterAgent(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	topic := mustCreateTopic(t, s, "t", 3)
	if err := s.RegisterAgent(ctx, metadata.Agent{ID: "a", StartedAt: now, HeartbeatAt: now}); err != nil {
		t.Fatal(err)
	}
	la := mustAcquire(t, s, tpOf(topic, 0), "a", now)
	mustAcquire(t, s, tpOf(topic, 1), "a", now)
	mustAcquire(t, s, tpOf(topic, 2), "b", now)
	if err := s.DeregisterAgent(ctx, "a"); err != nil {
		t.Fatalf("DeregisterAgent: %v", err)
	}
	ps, err := s.ListPartitions(ctx, topic.ID)
	if err != nil {
		t.Fatal(err)
	}
	if ps[0].Leader != "" || ps[1].Leader != "" || ps[2].Leader != "b" {
		t.Errorf("leaders after deregistering a = %q %q %q, want \"\" \"\" b", ps[0].Leader, ps[1].Leader, ps[2].Leader)
	}
	if l := mustAcquire(t, s, tpOf(topic, 0), "b", now); l.Epoch != la.Epoch+1 {
		t.Errorf("takeover after deregister = %+v, want epoch %d", l, la.Epoch+1)
	}
	if got, err := s.RenewLeases(ctx, "a", now, ttl); err != nil || len(got) != 0 {
		t.Errorf("RenewLeases of a deregistered agent = %+v, %v", got, err)
	}
}

func checkAgents(t *testing.T, s metadata.Store, since time.Time, want ...metadata.Agent) {
	t.Helper()
	got, err := s.ListAgents(t.Context(), since)
	if err != nil {
		t.Fatalf("ListAgents: %v", err)
	}
	eq := func(a, b metadata.Agent) bool {
		return a.ID == b.ID && a.Addr == b.Addr && a.GRPCAddr == b.GRPCAddr && a.Rack == b.Rack &&
			a.StartedAt.Equal(b.StartedAt) && a.HeartbeatAt.Equal(b.HeartbeatAt)
	}
	if !slices.EqualFunc(got, want, eq) {
		t.Errorf("ListAgents(%v) = %+v, want %+v", since, got, want)
	}
}

func sameLease(a, b metadata.Lease) bool {
	return a.TopicPartition == b.TopicPartition && a.Epoch == b.Epoch && a.ExpiresAt.Equal(b.ExpiresAt) &&
		a.HighWatermark == b.HighWatermark && a.LogStartOffset == b.LogStartOffset
}

func sameLeases(got, want []metadata.Lease) bool {
	if len(got) != len(want) {
		return false
	}
	for _, w := range want {
		if !slices.ContainsFunc(got, func(g metadata.Lease) bool { return sameLease(g, w) }) {
			return false
		}
	}
	return true
}
