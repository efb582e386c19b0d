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

var gcAndGroupTests = []suiteTest{
	{"GarbageCollection", testGarbageCollection},
	{"ClaimOrphans", testClaimOrphans},
	{"GroupOffsets", testGroupOffsets},
	{"GroupsOffsets", testGroupsOffsets},
	{"CreateGroup", testCreateGroup},
	{"NextProducerID", testNextProducerID},
	{"ExpireProducers", testExpireProducers},
}

// An orphan claimed by garbage collection can no longer be committed, and
// a committed object cannot be claimed.
func testClaimOrphans(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	topic := mustCreateTopic(t, s, "t", 1)
	tp := tpOf(topic, 0)
	l := mustAcquire(t, s, tp, "a", now)
	mustCommit(t, s, commitOf("committed", "a", partCommit(tp, l.Epoch, 0, 10)))
	claimed, err := s.ClaimOrphans(ctx, []string{"committed", "orphan-1", "orphan-2"}, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(claimed)
	if !slices.Equal(claimed, []string{"orphan-1", "orphan-2"}) {
		t.Fatalf("claimed %v, want the two uncommitted keys", claimed)
	}
	if again, err := s.ClaimOrphans(ctx, []string{"orphan-1"}, now, time.Hour); err != nil || len(again) != 0 {
		t.Fatalf("claiming again = %v, %v; want nothing", again, err)
	}
	// A commit that arrives after the claim stores nothing.
	err = s.CommitObject(ctx, commitOf("orphan-1", "a", partCommit(tp, l.Epoch, 10, 5)))
	if !errors.Is(err, metadata.ErrObjectConflict) {
		t.Fatalf("commit of a claimed orphan: err %v, want ErrObjectConflict", err)
	}
	if p, err := s.GetPartition(ctx, tp); err != nil || p.HighWatermark != 10 {
		t.Fatalf("partition = %+v, %v; want high watermark 10", p, err)
	}
	// Claimed orphans are deleted like unreferenced objects, a grace later.
	objs, err := s.DeletableObjects(ctx, now.Add(2*time.Hour), 10)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range objs {
		keys = append(keys, o.Key)
	}
	slices.Sort(keys)
	if !slices.Equal(keys, []string{"orphan-1", "orphan-2"}) {
		t.Fatalf("deletable %v, want the claimed orphans", keys)
	}
}

func testGarbageCollection(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	topic := mustCreateTopic(t, s, "t", 2)
	p0, p1 := tpOf(topic, 0), tpOf(topic, 1)
	l0, l1 := mustAcquire(t, s, p0, "a", now), mustAcquire(t, s, p1, "a", now)
	mustCommit(t, s, commitOf("obj-1", "a", partCommit(p0, l0.Epoch, 0, 10)))
	mustCommit(t, s, commitOf("obj-2", "a", partCommit(p0, l0.Epoch, 10, 10), partCommit(p1, l1.Epoch, 0, 5)))
	mustCommit(t, s, commitOf("obj-3", "a", partCommit(p1, l1.Epoch, 5, 5)))

	mark := func(at time.Time, grace time.Duration, want int) {
		t.Helper()
		if n, err := s.MarkUnreferencedObjects(ctx, at, grace); err != nil || n != want {
			t.Errorf("MarkUnreferencedObjects(%v) = %d, %v; want %d", at, n, err, want)
		}
	}
	deletable := func(at time.Time, limit int, want ...string) []metadata.ObjectRecord {
		t.Helper()
		recs, err := s.DeletableObjects(ctx, at, limit)
		if err != nil {
			t.Fatalf("DeletableObjects: %v", err)
		}
		var keys []string
		for _, r := range recs {
			keys = append(keys, r.Key)
		}
		if !slices.Equal(keys, want) {
			t.Errorf("DeletableObjects(%v, %d) = %v, want %v", at, limit, keys, want)
		}
		return recs
	}

	mark(now, time.Minute, 0) // everything referenced
	deletable(now.Add(time.Hour), 10)

	// Retention drops obj-1's only entry; obj-2 is still referenced by p1.
	if _, err := s.SetLogStartOffset(ctx, p0, 20); err != nil {
		t.Fatal(err)
	}
	mark(now, time.Minute, 1)
	mark(now.Add(time.Second), time.Minute, 0) // already marked: deadline kept
	deletable(now.Add(time.Minute-time.Millisecond), 10)
	recs := deletable(now.Add(time.Minute), 10, "obj-1")
	if len(recs) == 1 {
		want := metadata.ObjectRecord{Key: "obj-1", Size: 1000, AgentID: "a", CreatedAt: now, DeletableAt: now.Add(time.Minute)}
		if r := recs[0]; r.Key != want.Key || r.Size != want.Size || r.AgentID != want.AgentID ||
			!r.CreatedAt.Equal(want.CreatedAt) || !r.DeletableAt.Equal(want.DeletableAt) {
			t.Errorf("deletable object = %+v, want %+v", r, want)
		}
	}
	if err := s.ForgetObject(ctx, "obj-1"); err != nil {
		t.Fatalf("ForgetObject: %v", err)
	}
	if ok, err := s.IsObjectCommitted(ctx, "obj-1"); err != nil || ok {
		t.Errorf("IsObjectCommitted after ForgetObject = %v, %v", ok, err)
	}
	deletable(now.Add(time.Hour), 10)
	if err := s.ForgetObject(ctx, "obj-1"); err != nil {
		t.Errorf("ForgetObject again: %v", err)
	}

	// Deleting the topic unreferences the rest.
	if err := s.DeleteTopic(ctx, "t"); err != nil {
		t.Fatal(err)
	}
	mark(now.Add(time.Minute), 0, 2)
	deletable(now.Add(time.Minute), 1, "obj-2")
	deletable(now.Add(time.Minute), 10, "obj-2", "obj-3")
	deletable(now.Add(time.Minute), 0)
}

func testGroupOffsets(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	check := func(group string, want ...metadata.GroupOffset) {
		t.Helper()
		got, err := s.FetchGroupOffsets(ctx, group)
		if err != nil {
			t.Fatalf("FetchGroupOffsets(%s): %v", group, err)
		}
		eq := func(a, b metadata.GroupOffset) bool {
			return a.Group == b.Group && a.Topic == b.Topic && a.Partition == b.Partition && a.Offset == b.Offset &&
				a.LeaderEpoch == b.LeaderEpoch && a.Metadata == b.Metadata && a.CommittedAt.Equal(b.CommittedAt)
		}
		if !slices.EqualFunc(got, want, eq) {
			t.Errorf("FetchGroupOffsets(%s) = %+v, want %+v", group, got, want)
		}
	}
	checkGroups := func(want ...string) {
		t.Helper()
		got, err := s.ListGroups(ctx)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("ListGroups = %v, %v; want %v", got, err, want)
		}
	}
	off := func(group, topic string, p int32, offset int64) metadata.GroupOffset {
		return metadata.GroupOffset{Group: group, Topic: topic, Partition: p, Offset: offset, LeaderEpoch: -1, CommittedAt: now}
	}

	check("g1")
	checkGroups()
	if err := s.CommitGroupOffsets(ctx, nil); err != nil {
		t.Errorf("CommitGroupOffsets(nil): %v", err)
	}
	mustCommitOffsets(t, s, off("g1", "t1", 1, 20), off("g1", "t1", 0, 10), off("g1", "t0", 0, 5))
	check("g1", off("g1", "t0", 0, 5), off("g1", "t1", 0, 10), off("g1", "t1", 1, 20))

	// Upsert; within one call the last offset for a partition wins.
	upd := off("g1", "t1", 0, 11)
	upd.LeaderEpoch, upd.Metadata, upd.CommittedAt = 3, "meta", now.Add(time.Second)
	mustCommitOffsets(t, s, off("g1", "t1", 0, 99), upd, off("g2", "t1", 0, 1))
	check("g1", off("g1", "t0", 0, 5), upd, off("g1", "t1", 1, 20))
	check("g2", off("g2", "t1", 0, 1))
	checkGroups("g1", "g2")

	if err := s.DeleteGroupOffsets(ctx, "g1", "t1", nil); err != nil {
		t.Errorf("DeleteGroupOffsets without partitions: %v", err)
	}
	check("g1", off("g1", "t0", 0, 5), upd, off("g1", "t1", 1, 20))
	if err := s.DeleteGroupOffsets(ctx, "g1", "t1", []int32{0, 7}); err != nil {
		t.Fatalf("DeleteGroupOffsets: %v", err)
	}
	check("g1", off("g1", "t0", 0, 5), off("g1", "t1", 1, 20))
	check("g2", off("g2", "t1", 0, 1))

	if err := s.DeleteGroup(ctx, "g1"); err != nil {
		t.Fatalf("DeleteGroup: %v", err)
	}
	check("g1")
	checkGroups("g2")
	if err := s.DeleteGroup(ctx, "g1"); !errors.Is(err, metadata.ErrGroupNotFound) {
		t.Errorf("DeleteGroup of a deleted group: %v, want ErrGroupNotFound", err)
	}
}

// FetchGroupsOffsets returns what FetchGroupOffsets returns for each listed
// group, each group's rows together, past the groups one query takes.
func testGroupsOffsets(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	var offs []metadata.GroupOffset
	var all []string
	for i := range 700 {
		g := fmt.Sprintf("g%03d", i)
		all = append(all, g)
		offs = append(offs, metadata.GroupOffset{Group: g, Topic: "t", Partition: int32(i % 3), Offset: int64(i), LeaderEpoch: -1, CommittedAt: now})
	}
	offs = append(offs, metadata.GroupOffset{Group: "g001", Topic: "a", Partition: 2, Offset: 9, LeaderEpoch: 4, Metadata: "m", CommittedAt: now},
		metadata.GroupOffset{Group: "g001", Topic: "t", Partition: 0, Offset: 8, LeaderEpoch: -1, CommittedAt: now})
	mustCommitOffsets(t, s, offs...)
	if err := s.CreateGroup(ctx, "empty"); err != nil {
		t.Fatal(err)
	}
	eq := func(a, b metadata.GroupOffset) bool {
		return a.Group == b.Group && a.Topic == b.Topic && a.Partition == b.Partition && a.Offset == b.Offset &&
			a.LeaderEpoch == b.LeaderEpoch && a.Metadata == b.Metadata && a.CommittedAt.Equal(b.CommittedAt)
	}
	for _, groups := range [][]string{nil, {"nope", "empty"}, {"g002", "g001", "nope", "g001"}, append(all, "empty")} {
		got, err := s.FetchGroupsOffsets(ctx, groups)
		if err != nil {
			t.Fatalf("FetchGroupsOffsets(%d groups): %v", len(groups), err)
		}
		byGroup := map[string][]metadata.GroupOffset{}
		for i, o := range got {
			if _, seen := byGroup[o.Group]; seen && got[i-1].Group != o.Group {
				t.Fatalf("FetchGroupsOffsets: the rows of %s are not together", o.Group)
			}
			byGroup[o.Group] = append(byGroup[o.Group], o)
		}
		want := 0
		for _, g := range slices.Compact(slices.Sorted(slices.Values(groups))) {
			one, err := s.FetchGroupOffsets(ctx, g)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.EqualFunc(byGroup[g], one, eq) {
				t.Errorf("FetchGroupsOffsets: %s: %+v, want %+v", g, byGroup[g], one)
			}
			want += len(one)
		}
		if len(got) != want {
			t.Errorf("FetchGroupsOffsets(%d groups): %d rows, want %d", len(groups), len(got), want)
		}
	}
}

func testCreateGroup(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	checkGroups := func(want ...string) {
		t.Helper()
		got, err := s.ListGroups(ctx)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("ListGroups = %v, %v; want %v", got, err, want)
		}
	}
	if err := s.CreateGroup(ctx, "empty"); err != nil {
		t.Fatalf("CreateGroup: %v", err)
	}
	mustCommitOffsets(t, s, metadata.GroupOffset{Group: "active", Topic: "t", Offset: 1})
	checkGroups("active", "empty")
	if offs, err := s.FetchGroupOffsets(ctx, "empty"); err != nil || len(offs) != 0 {
		t.Errorf("FetchGroupOffsets of an empty group = %+v, %v", offs, err)
	}
	for _, g := range []string{"empty", "active"} {
		if err := s.CreateGroup(ctx, g); !errors.Is(err, metadata.ErrGroupExists) {
			t.Errorf("CreateGroup(%s) again: %v, want ErrGroupExists", g, err)
		}
	}
	// A registered group that gets offsets is listed once, and deleting it
	// removes both.
	mustCommitOffsets(t, s, metadata.GroupOffset{Group: "empty", Topic: "t", Offset: 2})
	checkGroups("active", "empty")
	if err := s.DeleteGroup(ctx, "empty"); err != nil {
		t.Fatalf("DeleteGroup: %v", err)
	}
	checkGroups("active")
	if err := s.DeleteGroup(ctx, "empty"); !errors.Is(err, metadata.ErrGroupNotFound) {
		t.Errorf("DeleteGroup of a deleted group: %v, want ErrGroupNotFound", err)
	}
	if err := s.CreateGroup(ctx, "empty"); err != nil {
		t.Errorf("CreateGroup after delete: %v", err)
	}
	if err := s.DeleteGroup(ctx, "empty"); err != nil {
		t.Errorf("DeleteGroup of a group without offsets: %v", err)
	}
	checkGroups("active")
}

func testNextProducerID(t *testing.T, s metadata.Store) {
	const workers, each = 8, 25
	ids := make([][]int64, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for range each {
				id, err := s.NextProducerID(t.Context())
				if err != nil {
					t.Errorf("NextProducerID: %v", err)
					return
				}
				ids[w] = append(ids[w], id)
			}
		})
	}
	wg.Wait()
	seen := map[int64]bool{}
	for _, ws := range ids {
		for _, id := range ws {
			if id < 0 || seen[id] {
				t.Fatalf("NextProducerID handed out %d twice or negative", id)
			}
			seen[id] = true
		}
	}
	if len(seen) != workers*each {
		t.Errorf("%d distinct ids, want %d", len(seen), workers*each)
	}
}

// Producer state keeps the time it was last updated, and ExpireProducers
// deletes, across partitions, exactly the rows older than the cutoff; a
// state committed without a time counts as updated at the commit.
func testExpireProducers(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	topic := mustCreateTopic(t, s, "t", 2)
	p0, p1 := tpOf(topic, 0), tpOf(topic, 1)
	l0, l1 := mustAcquire(t, s, p0, "a", now), mustAcquire(t, s, p1, "a", now)
	old, recent := now.Add(-2*time.Hour), now.Add(-time.Minute)
	c0 := partCommit(p0, l0.Epoch, 0, 3)
	c0.Producers = []metadata.ProducerState{
		{ProducerID: 1, Epoch: 0, Batches: []metadata.ProducerBatch{}, UpdatedAt: old},
		{ProducerID: 2, Epoch: 0, Batches: []metadata.ProducerBatch{}, UpdatedAt: recent},
	}
	c1 := partCommit(p1, l1.Epoch, 0, 3)
	c1.Producers = []metadata.ProducerState{
		{ProducerID: 1, Epoch: 0, Batches: []metadata.ProducerBatch{}, UpdatedAt: old},
		{ProducerID: 3, Epoch: 0, Batches: []metadata.ProducerBatch{}}, // the commit's time
	}
	commit := commitOf("obj-1", "a", c0, c1)
	commit.CreatedAt = now
	mustCommit(t, s, commit)
	got, err := s.ProducerStates(ctx, p0)
	if err != nil || len(got) != 2 || !got[0].UpdatedAt.Equal(old) || !got[1].UpdatedAt.Equal(recent) {
		t.Fatalf("ProducerStates(p0) = %+v, %v; want updated at %v and %v", got, err, old, recent)
	}
	if n, err := s.ExpireProducers(ctx, now.Add(-time.Hour)); err != nil || n != 2 {
		t.Fatalf("ExpireProducers(an hour ago) = %d, %v; want the 2 rows of producer 1", n, err)
	}
	checkProducers(t, s, p0, c0.Producers[1])
	checkProducers(t, s, p1, c1.Producers[1])
	if got, _ := s.ProducerStates(ctx, p1); len(got) != 1 || !got[0].UpdatedAt.Equal(now) {
		t.Fatalf("ProducerStates(p1) = %+v; want producer 3 updated at the commit, %v", got, now)
	}
	if n, err := s.ExpireProducers(ctx, now.Add(-time.Hour)); err != nil || n != 0 {
		t.Fatalf("ExpireProducers again = %d, %v; want 0", n, err)
	}
	if n, err := s.ExpireProducers(ctx, now.Add(time.Second)); err != nil || n != 2 {
		t.Fatalf("ExpireProducers(now+1s) = %d, %v; want 2", n, err)
	}
}
