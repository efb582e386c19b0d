// Package metadatatest is the acceptance suite every metadata.Store
// implementation must pass, and helpers that give other packages' tests a
// fresh store on either backend.
package metadatatest

import (
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/internal/metadata"
)

// now is the suite's clock: the API takes explicit times, so the suite never
// waits for real time to pass.
var now = time.UnixMilli(1_700_000_000_000).UTC()

const ttl = 10 * time.Second

type suiteTest struct {
	name string
	fn   func(t *testing.T, s metadata.Store)
}

// Run runs the acceptance suite. open must return a fresh, empty store that
// is closed at t's cleanup; every subtest opens its own and runs in
// parallel.
func Run(t *testing.T, open func(t *testing.T) metadata.Store) {
	var tests []suiteTest
	tests = append(tests, topicTests...)
	tests = append(tests, leaseTests...)
	tests = append(tests, commitTests...)
	tests = append(tests, gcAndGroupTests...)
	tests = append(tests, schemaTests...)
	tests = append(tests, groupStateTests...)
	tests = append(tests, txnTests...)
	tests = append(tests, replaceTests...)
	tests = append(tests, aclTests...)
	tests = append(tests, userTests...)
	tests = append(tests, quotaTests...)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open(t))
		})
	}
}

var topicTests = []suiteTest{
	{"CreateAndGetTopic", testCreateAndGetTopic},
	{"TopicErrors", testTopicErrors},
	{"ListTopics", testListTopics},
	{"UpdateTopicConfig", testUpdateTopicConfig},
	{"AddPartitions", testAddPartitions},
	{"DeleteTopic", testDeleteTopic},
	{"SetLogStartOffset", testSetLogStartOffset},
	{"Ping", testPing},
}

func testCreateAndGetTopic(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	cfg := map[string]string{"retention.ms": "1000", "cleanup.policy": "delete"}
	created, err := s.CreateTopic(ctx, metadata.Topic{Name: "orders", Partitions: 3, Config: cfg, CreatedAt: now})
	if err != nil {
		t.Fatalf("CreateTopic: %v", err)
	}
	if created.ID == (metadata.TopicID{}) {
		t.Fatal("CreateTopic did not assign an ID")
	}
	want := metadata.Topic{ID: created.ID, Name: "orders", Partitions: 3, Config: cfg, CreatedAt: now}
	checkTopic(t, "CreateTopic", created, want)
	got, err := s.GetTopic(ctx, "orders")
	if err != nil {
		t.Fatalf("GetTopic: %v", err)
	}
	checkTopic(t, "GetTopic", got, want)
	got, err = s.GetTopicByID(ctx, created.ID)
	if err != nil {
		t.Fatalf("GetTopicByID: %v", err)
	}
	checkTopic(t, "GetTopicByID", got, want)

	ps, err := s.ListPartitions(ctx, created.ID)
	if err != nil {
		t.Fatalf("ListPartitions: %v", err)
	}
	if len(ps) != 3 {
		t.Fatalf("ListPartitions: %d partitions, want 3", len(ps))
	}
	for i, p := range ps {
		want := metadata.PartitionState{TopicID: created.ID, Partition: int32(i)}
		if p != want {
			t.Errorf("partition %d = %+v, want %+v", i, p, want)
		}
		got, err := s.GetPartition(ctx, tpOf(created, int32(i)))
		if err != nil || got != want {
			t.Errorf("GetPartition(%d) = %+v, %v; want %+v", i, got, err, want)
		}
	}

	// A caller-chosen ID is kept; a zero CreatedAt is filled in.
	id := metadata.TopicID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	other, err := s.CreateTopic(ctx, metadata.Topic{ID: id, Name: "with-id", Partitions: 1})
	if err != nil {
		t.Fatalf("CreateTopic with ID: %v", err)
	}
	if other.ID != id || other.CreatedAt.IsZero() {
		t.Errorf("CreateTopic with ID = %+v, want ID %s and a creation time", other, id)
	}
	if got, err := s.GetTopicByID(ctx, id); err != nil || got.Name != "with-id" || len(got.Config) != 0 {
		t.Errorf("GetTopicByID(%s) = %+v, %v", id, got, err)
	}
}

func testTopicErrors(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	topic := mustCreateTopic(t, s, "t", 2)
	if _, err := s.CreateTopic(ctx, metadata.Topic{Name: "t", Partitions: 1}); !errors.Is(err, metadata.ErrTopicExists) {
		t.Errorf("CreateTopic existing: %v, want ErrTopicExists", err)
	}
	for _, n := range []int32{0, -1} {
		if _, err := s.CreateTopic(ctx, metadata.Topic{Name: "bad", Partitions: n}); !errors.Is(err, metadata.ErrInvalidPartitions) {
			t.Errorf("CreateTopic with %d partitions: %v, want ErrInvalidPartitions", n, err)
		}
	}
	if _, err := s.GetTopic(ctx, "bad"); !errors.Is(err, metadata.ErrTopicNotFound) {
		t.Errorf("a failed CreateTopic left a topic behind: %v", err)
	}
	missing := metadata.TopicID{0xff}
	checks := map[string]error{
		"GetTopic":          second(s.GetTopic(ctx, "nope")),
		"GetTopicByID":      second(s.GetTopicByID(ctx, missing)),
		"ListPartitions":    second(s.ListPartitions(ctx, missing)),
		"DeleteTopic":       s.DeleteTopic(ctx, "nope"),
		"UpdateTopicConfig": s.UpdateTopicConfig(ctx, "nope", map[string]string{"a": "b"}),
		"AddPartitions":     s.AddPartitions(ctx, "nope", 5),
	}
	for name, err := range checks {
		if !errors.Is(err, metadata.ErrTopicNotFound) {
			t.Errorf("%s of a missing topic: %v, want ErrTopicNotFound", name, err)
		}
	}
	for _, tp := range []metadata.TopicPartition{{TopicID: missing}, tpOf(topic, 2), tpOf(topic, -1)} {
		if _, err := s.GetPartition(ctx, tp); !errors.Is(err, metadata.ErrPartitionNotFound) {
			t.Errorf("GetPartition(%s): %v, want ErrPartitionNotFound", tp, err)
		}
	}
}

func testListTopics(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	ts, err := s.ListTopics(ctx)
	if err != nil || len(ts) != 0 {
		t.Fatalf("ListTopics of an empty store = %v, %v", ts, err)
	}
	for _, name := range []string{"b", "c", "a"} {
		mustCreateTopic(t, s, name, 1)
	}
	ts, err = s.ListTopics(ctx)
	if err != nil {
		t.Fatalf("ListTopics: %v", err)
	}
	var names []string
	for _, tp := range ts {
		names = append(names, tp.Name)
	}
	if !slices.Equal(names, []string{"a", "b", "c"}) {
		t.Errorf("ListTopics names = %v, want [a b c]", names)
	}
}

func testUpdateTopicConfig(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	if _, err := s.CreateTopic(ctx, metadata.Topic{Name: "t", Partitions: 1, Config: map[string]string{"a": "1", "b": "2"}}); err != nil {
		t.Fatal(err)
	}
	for _, cfg := range []map[string]string{{"c": "3"}, {}, {"a": "x", "segment.bytes": "1048576"}} {
		if err := s.UpdateTopicConfig(ctx, "t", cfg); err != nil {
			t.Fatalf("UpdateTopicConfig(%v): %v", cfg, err)
		}
		got, err := s.GetTopic(ctx, "t")
		if err != nil {
			t.Fatal(err)
		}
		if !maps.Equal(got.Config, cfg) {
			t.Errorf("config after UpdateTopicConfig(%v) = %v", cfg, got.Config)
		}
	}
}

func testAddPartitions(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	topic := mustCreateTopic(t, s, "t", 2)
	if err := s.AddPartitions(ctx, "t", 5); err != nil {
		t.Fatalf("AddPartitions: %v", err)
	}
	got, err := s.GetTopic(ctx, "t")
	if err != nil || got.Partitions != 5 {
		t.Fatalf("GetTopic after AddPartitions = %+v, %v; want 5 partitions", got, err)
	}
	ps, err := s.ListPartitions(ctx, topic.ID)
	if err != nil || len(ps) != 5 {
		t.Fatalf("ListPartitions = %d, %v; want 5", len(ps), err)
	}
	for i, p := range ps {
		if p.Partition != int32(i) || p.HighWatermark != 0 || p.Leader != "" {
			t.Errorf("partition %d = %+v", i, p)
		}
	}
	for _, n := range []int32{5, 3, 0} {
		if err := s.AddPartitions(ctx, "t", n); !errors.Is(err, metadata.ErrInvalidPartitions) {
			t.Errorf("AddPartitions(%d) of a 5-partition topic: %v, want ErrInvalidPartitions", n, err)
		}
	}
}

func testDeleteTopic(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	topic := mustCreateTopic(t, s, "doomed", 2)
	keep := mustCreateTopic(t, s, "kept", 1)
	tp := tpOf(topic, 0)
	lease := mustAcquire(t, s, tp, "a", now)
	c := commitOf("obj-1", "a", partCommit(tp, lease.Epoch, 0, 10))
	c.Partitions[0].Producers = []metadata.ProducerState{{ProducerID: 1, Epoch: 0, Batches: []metadata.ProducerBatch{{FirstSeq: 0, LastSeq: 9, BaseOffset: 0, LastOffset: 9}}}}
	mustCommit(t, s, c)
	keptLease := mustAcquire(t, s, tpOf(keep, 0), "a", now)
	mustCommit(t, s, commitOf("obj-2", "a", partCommit(tpOf(keep, 0), keptLease.Epoch, 0, 5)))
	mustCommitOffsets(t, s,
		metadata.GroupOffset{Group: "g", Topic: "doomed", Partition: 0, Offset: 3},
		metadata.GroupOffset{Group: "g", Topic: "kept", Partition: 0, Offset: 4})

	if err := s.DeleteTopic(ctx, "doomed"); err != nil {
		t.Fatalf("DeleteTopic: %v", err)
	}
	if _, err := s.GetTopic(ctx, "doomed"); !errors.Is(err, metadata.ErrTopicNotFound) {
		t.Errorf("GetTopic after delete: %v, want ErrTopicNotFound", err)
	}
	if _, err := s.GetTopicByID(ctx, topic.ID); !errors.Is(err, metadata.ErrTopicNotFound) {
		t.Errorf("GetTopicByID after delete: %v, want ErrTopicNotFound", err)
	}
	if _, err := s.GetPartition(ctx, tp); !errors.Is(err, metadata.ErrPartitionNotFound) {
		t.Errorf("GetPartition after delete: %v, want ErrPartitionNotFound", err)
	}
	if es := mustListIndex(t, s, tp, 0, 0); len(es) != 0 {
		t.Errorf("index after delete = %v", es)
	}
	if ps, err := s.ProducerStates(ctx, tp); err != nil || len(ps) != 0 {
		t.Errorf("ProducerStates after delete = %v, %v", ps, err)
	}
	offs, err := s.FetchGroupOffsets(ctx, "g")
	if err != nil || len(offs) != 1 || offs[0].Topic != "kept" {
		t.Errorf("group offsets after delete = %+v, %v; want only those of kept", offs, err)
	}
	// A commit racing the deletion is fenced.
	err = s.CommitObject(ctx, commitOf("obj-3", "a", partCommit(tp, lease.Epoch, 10, 5)))
	checkFenced(t, err, tp)

	// The name can be reused; the new topic is a different one.
	again := mustCreateTopic(t, s, "doomed", 1)
	if again.ID == topic.ID {
		t.Error("recreated topic got the deleted topic's ID")
	}
	if p, err := s.GetPartition(ctx, tpOf(again, 0)); err != nil || p.HighWatermark != 0 {
		t.Errorf("recreated partition = %+v, %v", p, err)
	}
	// The deleted topic's object is now unreferenced; the kept one is not.
	if n, err := s.MarkUnreferencedObjects(ctx, now, 0); err != nil || n != 1 {
		t.Errorf("MarkUnreferencedObjects after delete = %d, %v; want 1", n, err)
	}
}

func testSetLogStartOffset(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	topic := mustCreateTopic(t, s, "t", 1)
	tp := tpOf(topic, 0)
	lease := mustAcquire(t, s, tp, "a", now)
	pc := partCommit(tp, lease.Epoch, 0, 10)
	pc.Entries = append(pc.Entries, entry(10, 10, 100), entry(20, 10, 200))
	pc.NewHighWatermark = 30
	mustCommit(t, s, commitOf("obj", "a", pc))

	steps := []struct {
		offset, want int64
		err          error
		firstEntry   int64 // base offset of the first remaining index entry, -1 if none
	}{
		{offset: 15, want: 15, firstEntry: 10}, // the entry holding 15 stays
		{offset: 5, want: 15, firstEntry: 10},  // never lowered
		{offset: 15, want: 15, firstEntry: 10},
		{offset: 31, err: metadata.ErrOffsetOutOfRange, firstEntry: 10},
		{offset: 20, want: 20, firstEntry: 20},
		{offset: 30, want: 30, firstEntry: -1}, // up to the high watermark
	}
	for _, st := range steps {
		got, err := s.SetLogStartOffset(ctx, tp, st.offset)
		if st.err != nil {
			if !errors.Is(err, st.err) {
				t.Errorf("SetLogStartOffset(%d): %v, want %v", st.offset, err, st.err)
			}
		} else if err != nil || got != st.want {
			t.Errorf("SetLogStartOffset(%d) = %d, %v; want %d", st.offset, got, err, st.want)
		}
		es := mustListIndex(t, s, tp, 0, 0)
		first := int64(-1)
		if len(es) > 0 {
			first = es[0].BaseOffset
		}
		if first != st.firstEntry {
			t.Errorf("after SetLogStartOffset(%d) the index starts at %d, want %d", st.offset, first, st.firstEntry)
		}
	}
	p, err := s.GetPartition(ctx, tp)
	if err != nil || p.LogStartOffset != 30 || p.HighWatermark != 30 {
		t.Errorf("partition = %+v, %v; want log start and high watermark 30", p, err)
	}
	if _, err := s.SetLogStartOffset(ctx, tpOf(topic, 7), 0); !errors.Is(err, metadata.ErrPartitionNotFound) {
		t.Errorf("SetLogStartOffset of a missing partition: %v, want ErrPartitionNotFound", err)
	}
}

func testPing(t *testing.T, s metadata.Store) {
	if err := s.Ping(t.Context()); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

// Helpers shared by the suite's files.

func second[T any](_ T, err error) error { return err }

func tpOf(t metadata.Topic, p int32) metadata.TopicPartition {
	return metadata.TopicPartition{TopicID: t.ID, Partition: p}
}

func mustCreateTopic(t *testing.T, s metadata.Store, name string, partitions int32) metadata.Topic {
	t.Helper()
	topic, err := s.CreateTopic(t.Context(), metadata.Topic{Name: name, Partitions: partitions, CreatedAt: now})
	if err != nil {
		t.Fatalf("CreateTopic(%s): %v", name, err)
	}
	return topic
}

func checkTopic(t *testing.T, what string, got, want metadata.Topic) {
	t.Helper()
	if got.ID != want.ID || got.Name != want.Name || got.Partitions != want.Partitions ||
		!maps.Equal(got.Config, want.Config) || !got.CreatedAt.Equal(want.CreatedAt) {
		t.Errorf("%s = %+v, want %+v", what, got, want)
	}
}

func mustAcquire(t *testing.T, s metadata.Store, tp metadata.TopicPartition, agent string, at time.Time) metadata.Lease {
	t.Helper()
	l, err := s.AcquireLease(t.Context(), tp, agent, at, ttl)
	if err != nil {
		t.Fatalf("AcquireLease(%s, %s): %v", tp, agent, err)
	}
	return l
}

// entry is an index entry of n records at base, stored at pos.
func entry(base int64, n int32, pos int64) metadata.IndexEntry {
	return metadata.IndexEntry{BaseOffset: base, LastOffset: base + int64(n) - 1, Pos: pos, Len: int64(n) * 10, MaxTimestamp: now.UnixMilli() + base, Records: n}
}

// partCommit commits n records to tp from high watermark hw as one entry.
func partCommit(tp metadata.TopicPartition, epoch int32, hw int64, n int32) metadata.PartitionCommit {
	return metadata.PartitionCommit{
		TopicPartition:        tp,
		Epoch:                 epoch,
		ExpectedHighWatermark: hw,
		NewHighWatermark:      hw + int64(n),
		Entries:               []metadata.IndexEntry{entry(hw, n, 0)},
	}
}

func commitOf(key, agent string, parts ...metadata.PartitionCommit) metadata.ObjectCommit {
	c := metadata.ObjectCommit{ObjectKey: key, Size: 1000, AgentID: agent, CreatedAt: now, Partitions: parts}
	for i := range c.Partitions {
		for j := range c.Partitions[i].Entries {
			c.Partitions[i].Entries[j].ObjectKey = key
		}
	}
	return c
}

func mustCommit(t *testing.T, s metadata.Store, c metadata.ObjectCommit) {
	t.Helper()
	if err := s.CommitObject(t.Context(), c); err != nil {
		t.Fatalf("CommitObject(%s): %v", c.ObjectKey, err)
	}
}

func mustListIndex(t *testing.T, s metadata.Store, tp metadata.TopicPartition, from int64, limit int) []metadata.IndexEntry {
	t.Helper()
	es, err := s.ListIndex(t.Context(), tp, from, limit)
	if err != nil {
		t.Fatalf("ListIndex(%s, %d, %d): %v", tp, from, limit, err)
	}
	return es
}

func mustCommitOffsets(t *testing.T, s metadata.Store, offs ...metadata.GroupOffset) {
	t.Helper()
	if err := s.CommitGroupOffsets(t.Context(), offs); err != nil {
		t.Fatalf("CommitGroupOffsets: %v", err)
	}
}

// checkFenced fails t unless err is a *FencedError naming exactly want.
func checkFenced(t *testing.T, err error, want ...metadata.TopicPartition) {
	t.Helper()
	var fe *metadata.FencedError
	if !errors.As(err, &fe) {
		t.Fatalf("error %v, want a *metadata.FencedError", err)
	}
	got := slices.Clone(fe.Partitions)
	sortTPs(got)
	want = slices.Clone(want)
	sortTPs(want)
	if !slices.Equal(got, want) {
		t.Errorf("fenced partitions = %v, want %v", fe.Partitions, want)
	}
}

func sortTPs(tps []metadata.TopicPartition) {
	slices.SortFunc(tps, func(a, b metadata.TopicPartition) int {
		if c := slices.Compare(a.TopicID[:], b.TopicID[:]); c != 0 {
			return c
		}
		return int(a.Partition - b.Partition)
	})
}
