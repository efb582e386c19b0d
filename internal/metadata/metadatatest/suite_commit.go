package metadatatest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/streamhouse/streamhouse/internal/metadata"
)

var commitTests = []suiteTest{
	{"CommitObject", testCommitObject},
	{"CommitFenced", testCommitFenced},
	{"CommitAllOrNothing", testCommitAllOrNothing},
	{"CommitIdempotent", testCommitIdempotent},
	{"CommitKeyConflict", testCommitKeyConflict},
	{"CommitInvalid", testCommitInvalid},
	{"CommitRace", testCommitRace},
	{"CommitConcurrentPartitions", testCommitConcurrentPartitions},
	{"CommitManyPartitions", testCommitManyPartitions},
	{"StoredBytes", testStoredBytes},
	{"ListAllPartitions", testListAllPartitions},
}

// testListAllPartitions checks that ListAllPartitions answers every
// partition of every topic, as ListPartitions does, ordered by topic ID
// and partition.
func testListAllPartitions(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	all, err := s.ListAllPartitions(ctx)
	if err != nil || len(all) != 0 {
		t.Fatalf("ListAllPartitions on an empty store = %v, %v", all, err)
	}
	a, b := mustCreateTopic(t, s, "a", 3), mustCreateTopic(t, s, "b", 2)
	a1, b0 := tpOf(a, 1), tpOf(b, 0)
	la1, lb0 := mustAcquire(t, s, a1, "x", now), mustAcquire(t, s, b0, "y", now)
	mustCommit(t, s, commitOf("obj-1", "x", partCommit(a1, la1.Epoch, 0, 5)))
	mustCommit(t, s, commitOf("obj-2", "y", partCommit(b0, lb0.Epoch, 0, 2)))
	var want []metadata.PartitionState
	for _, topic := range []metadata.Topic{a, b} {
		ps, err := s.ListPartitions(ctx, topic.ID)
		if err != nil {
			t.Fatalf("ListPartitions %s: %v", topic.Name, err)
		}
		want = append(want, ps...)
	}
	slices.SortFunc(want, func(x, y metadata.PartitionState) int {
		if c := bytes.Compare(x.TopicID[:], y.TopicID[:]); c != 0 {
			return c
		}
		return int(x.Partition - y.Partition)
	})
	all, err = s.ListAllPartitions(ctx)
	if err != nil {
		t.Fatalf("ListAllPartitions: %v", err)
	}
	if fmt.Sprint(all) != fmt.Sprint(want) {
		t.Fatalf("ListAllPartitions = %+v, want %+v", all, want)
	}
	var hw int64
	for _, p := range all {
		hw += p.HighWatermark
	}
	if hw != 7 {
		t.Fatalf("high watermarks sum to %d, want 7", hw)
	}
	if err := s.DeleteTopic(ctx, "a"); err != nil {
		t.Fatalf("DeleteTopic: %v", err)
	}
	if all, err = s.ListAllPartitions(ctx); err != nil || len(all) != 2 || all[0].TopicID != b.ID || all[1].Partition != 1 {
		t.Fatalf("after deleting a: %+v, %v", all, err)
	}
}

// testStoredBytes checks that StoredBytes sums the index entries of every
// partition and follows what the index drops.
func testStoredBytes(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	stored := func(want int64) {
		t.Helper()
		n, err := s.StoredBytes(ctx)
		if err != nil {
			t.Fatalf("StoredBytes: %v", err)
		}
		if n != want {
			t.Fatalf("StoredBytes = %d, want %d", n, want)
		}
	}
	stored(0)
	a, b := mustCreateTopic(t, s, "a", 2), mustCreateTopic(t, s, "b", 1)
	a0, a1, b0 := tpOf(a, 0), tpOf(a, 1), tpOf(b, 0)
	la0, la1, lb0 := mustAcquire(t, s, a0, "x", now), mustAcquire(t, s, a1, "x", now), mustAcquire(t, s, b0, "x", now)
	stored(0)
	// entry(base, n, pos) is n*10 bytes long.
	mustCommit(t, s, commitOf("obj-1", "x", partCommit(a0, la0.Epoch, 0, 5), partCommit(b0, lb0.Epoch, 0, 2)))
	mustCommit(t, s, commitOf("obj-2", "x", partCommit(a0, la0.Epoch, 5, 3), partCommit(a1, la1.Epoch, 0, 4)))
	stored(50 + 20 + 30 + 40)
	// Entries wholly below the log start offset leave the index.
	if _, err := s.SetLogStartOffset(ctx, a0, 5); err != nil {
		t.Fatalf("SetLogStartOffset: %v", err)
	}
	stored(20 + 30 + 40)
	if err := s.DeleteTopic(ctx, "a"); err != nil {
		t.Fatalf("DeleteTopic: %v", err)
	}
	stored(20)
}

func testCommitObject(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	topic := mustCreateTopic(t, s, "t", 2)
	p0, p1 := tpOf(topic, 0), tpOf(topic, 1)
	l0, l1 := mustAcquire(t, s, p0, "a", now), mustAcquire(t, s, p1, "a", now)

	c0 := metadata.PartitionCommit{
		TopicPartition: p0, Epoch: l0.Epoch, ExpectedHighWatermark: 0, NewHighWatermark: 10,
		Entries: []metadata.IndexEntry{entry(0, 5, 0), entry(5, 5, 100)},
		Producers: []metadata.ProducerState{{ProducerID: 7, Epoch: 1, Batches: []metadata.ProducerBatch{
			{FirstSeq: 0, LastSeq: 4, BaseOffset: 0, LastOffset: 4, Timestamp: 11},
			{FirstSeq: 5, LastSeq: 9, BaseOffset: 5, LastOffset: 9, Timestamp: 12},
		}}},
	}
	c1 := partCommit(p1, l1.Epoch, 0, 3)
	c1.Entries[0].Pos = 200
	mustCommit(t, s, commitOf("obj-1", "a", c0, c1))

	for tp, hw := range map[metadata.TopicPartition]int64{p0: 10, p1: 3} {
		if p, err := s.GetPartition(ctx, tp); err != nil || p.HighWatermark != hw || p.Leader != "a" {
			t.Errorf("partition %s = %+v, %v; want high watermark %d", tp, p, err, hw)
		}
	}
	e0, e1 := c0.Entries[0], c0.Entries[1]
	e0.ObjectKey, e1.ObjectKey = "obj-1", "obj-1"
	// ListIndex tells when the run's object was created (retention's
	// fallback for timestamps it cannot trust).
	e0.ObjectCreatedAt, e1.ObjectCreatedAt = now.UnixMilli(), now.UnixMilli()
	for _, c := range []struct {
		from  int64
		limit int
		want  []metadata.IndexEntry
	}{
		{0, 0, []metadata.IndexEntry{e0, e1}},
		{3, 0, []metadata.IndexEntry{e0, e1}}, // the entry holding 3, then the rest
		{4, 100, []metadata.IndexEntry{e0, e1}},
		{5, 0, []metadata.IndexEntry{e1}},
		{7, 1, []metadata.IndexEntry{e1}},
		{0, 1, []metadata.IndexEntry{e0}},
		{10, 0, nil},
		{-5, 0, []metadata.IndexEntry{e0, e1}},
	} {
		if got := mustListIndex(t, s, p0, c.from, c.limit); !slices.Equal(got, c.want) {
			t.Errorf("ListIndex(p0, %d, %d) = %+v, want %+v", c.from, c.limit, got, c.want)
		}
	}
	if got := mustListIndex(t, s, p1, 0, 0); len(got) != 1 || got[0].Pos != 200 || got[0].ObjectKey != "obj-1" {
		t.Errorf("ListIndex(p1) = %+v", got)
	}
	checkProducers(t, s, p0, c0.Producers...)
	checkProducers(t, s, p1)
	if ok, err := s.IsObjectCommitted(ctx, "obj-1"); err != nil || !ok {
		t.Errorf("IsObjectCommitted(obj-1) = %v, %v", ok, err)
	}
	if ok, err := s.IsObjectCommitted(ctx, "obj-0"); err != nil || ok {
		t.Errorf("IsObjectCommitted(obj-0) = %v, %v", ok, err)
	}
	// Many keys at once, over several of the store's batches.
	keys := make([]string, 1200)
	for i := range keys {
		keys[i] = fmt.Sprintf("obj-x%d", i)
	}
	keys[1100] = "obj-1"
	if got, err := s.CommittedObjects(ctx, keys); err != nil || len(got) != 1 || !got["obj-1"] {
		t.Errorf("CommittedObjects(1200 keys with obj-1) = %v, %v", got, err)
	}
	if got, err := s.CommittedObjects(ctx, nil); err != nil || len(got) != 0 {
		t.Errorf("CommittedObjects(none) = %v, %v", got, err)
	}

	// The next commit continues the log and upserts producer state.
	c2 := partCommit(p0, l0.Epoch, 10, 10)
	p7 := metadata.ProducerState{ProducerID: 7, Epoch: 2, Batches: []metadata.ProducerBatch{{FirstSeq: 0, LastSeq: 9, BaseOffset: 10, LastOffset: 19, Timestamp: 13}}}
	p3 := metadata.ProducerState{ProducerID: 3, Epoch: 0, Batches: []metadata.ProducerBatch{}}
	c2.Producers = []metadata.ProducerState{p7, p3}
	mustCommit(t, s, commitOf("obj-2", "a", c2))
	checkProducers(t, s, p0, p3, p7)
	got := mustListIndex(t, s, p0, 12, 0)
	if len(got) != 1 || got[0].BaseOffset != 10 || got[0].LastOffset != 19 || got[0].ObjectKey != "obj-2" {
		t.Errorf("ListIndex(p0, 12) = %+v, want the second object's entry", got)
	}
	if got := mustListIndex(t, s, p0, 0, 0); len(got) != 3 {
		t.Errorf("ListIndex(p0, 0) has %d entries, want 3", len(got))
	}
}

func testCommitFenced(t *testing.T, s metadata.Store) {
	topic := mustCreateTopic(t, s, "t", 1)
	tp := tpOf(topic, 0)
	mustAcquire(t, s, tp, "a", now)
	l := mustAcquire(t, s, tp, "a", now) // epoch 2
	mustCommit(t, s, commitOf("base", "a", partCommit(tp, l.Epoch, 0, 10)))

	other := tpOf(topic, 0)
	other.TopicID[0] ^= 0xff
	for _, c := range []struct {
		name  string
		agent string
		pc    metadata.PartitionCommit
	}{
		{"wrong agent", "b", partCommit(tp, l.Epoch, 10, 1)},
		{"stale epoch", "a", partCommit(tp, l.Epoch-1, 10, 1)},
		{"future epoch", "a", partCommit(tp, l.Epoch+1, 10, 1)},
		{"high watermark behind", "a", partCommit(tp, l.Epoch, 5, 1)},
		{"high watermark ahead", "a", partCommit(tp, l.Epoch, 11, 1)},
		{"unknown partition", "a", partCommit(other, l.Epoch, 10, 1)},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.pc.Producers = []metadata.ProducerState{{ProducerID: 99, Batches: []metadata.ProducerBatch{{}}}}
			key := "fenced-" + c.name
			err := s.CommitObject(t.Context(), commitOf(key, c.agent, c.pc))
			checkFenced(t, err, c.pc.TopicPartition)
			checkUntouched(t, s, tp, 10, 1, key)
		})
	}
}

// checkUntouched checks that a failed commit of key left tp as it was.
func checkUntouched(t *testing.T, s metadata.Store, tp metadata.TopicPartition, hw int64, entries int, key string) {
	t.Helper()
	if p, err := s.GetPartition(t.Context(), tp); err != nil || p.HighWatermark != hw {
		t.Errorf("partition %s = %+v, %v; want high watermark %d", tp, p, err, hw)
	}
	if es := mustListIndex(t, s, tp, 0, 0); len(es) != entries {
		t.Errorf("partition %s has %d index entries, want %d", tp, len(es), entries)
	}
	if ps, err := s.ProducerStates(t.Context(), tp); err != nil || slices.ContainsFunc(ps, func(p metadata.ProducerState) bool { return p.ProducerID == 99 }) {
		t.Errorf("producer state of %s = %+v, %v; want no producer 99", tp, ps, err)
	}
	if ok, err := s.IsObjectCommitted(t.Context(), key); err != nil || ok {
		t.Errorf("IsObjectCommitted(%s) = %v, %v; want false", key, ok, err)
	}
}

func testCommitAllOrNothing(t *testing.T, s metadata.Store) {
	topic := mustCreateTopic(t, s, "t", 4)
	var tps []metadata.TopicPartition
	var leases []metadata.Lease
	for i := range int32(4) {
		tps = append(tps, tpOf(topic, i))
		leases = append(leases, mustAcquire(t, s, tps[i], "a", now))
	}
	parts := []metadata.PartitionCommit{
		partCommit(tps[0], leases[0].Epoch, 0, 5),
		partCommit(tps[1], leases[1].Epoch, 3, 5), // wrong high watermark
		partCommit(tps[2], leases[2].Epoch+1, 0, 5),
		partCommit(tps[3], leases[3].Epoch, 0, 5),
	}
	for i := range parts {
		parts[i].Producers = []metadata.ProducerState{{ProducerID: 99}}
	}
	err := s.CommitObject(t.Context(), commitOf("obj", "a", parts...))
	checkFenced(t, err, tps[1], tps[2])
	for _, tp := range tps {
		checkUntouched(t, s, tp, 0, 0, "obj")
	}
	// Nothing of the failed commit was kept, so the key can be committed.
	parts[1] = partCommit(tps[1], leases[1].Epoch, 0, 5)
	parts[2] = partCommit(tps[2], leases[2].Epoch, 0, 5)
	mustCommit(t, s, commitOf("obj", "a", parts...))
	for _, tp := range tps {
		if p, err := s.GetPartition(t.Context(), tp); err != nil || p.HighWatermark != 5 {
			t.Errorf("partition %s = %+v, %v; want high watermark 5", tp, p, err)
		}
	}
}

func testCommitIdempotent(t *testing.T, s metadata.Store) {
	topic := mustCreateTopic(t, s, "t", 1)
	tp := tpOf(topic, 0)
	l := mustAcquire(t, s, tp, "a", now)
	c := commitOf("obj", "a", partCommit(tp, l.Epoch, 0, 10))
	mustCommit(t, s, c)
	// A retry of a commit whose answer was lost succeeds without effect,
	// though its expected high watermark is now stale.
	mustCommit(t, s, c)
	if p, err := s.GetPartition(t.Context(), tp); err != nil || p.HighWatermark != 10 {
		t.Errorf("partition after re-commit = %+v, %v; want high watermark 10", p, err)
	}
	if es := mustListIndex(t, s, tp, 0, 0); len(es) != 1 {
		t.Errorf("index after re-commit has %d entries, want 1", len(es))
	}
}

// "Already committed" is verified against the index rows: a commit of an
// object key that another commit used fails with ErrObjectConflict and
// stores nothing, instead of reporting a success that stored nothing.
func testCommitKeyConflict(t *testing.T, s metadata.Store) {
	topic := mustCreateTopic(t, s, "t", 2)
	tp, tp1 := tpOf(topic, 0), tpOf(topic, 1)
	l := mustAcquire(t, s, tp, "a", now)
	l1 := mustAcquire(t, s, tp1, "a", now)
	mustCommit(t, s, commitOf("obj", "a", partCommit(tp, l.Epoch, 0, 10)))
	for name, c := range map[string]metadata.ObjectCommit{
		"next offsets":    commitOf("obj", "a", partCommit(tp, l.Epoch, 10, 5)),
		"other partition": commitOf("obj", "a", partCommit(tp1, l1.Epoch, 0, 10)),
		"one of two":      commitOf("obj", "a", partCommit(tp, l.Epoch, 0, 10), partCommit(tp1, l1.Epoch, 0, 3)),
	} {
		if err := s.CommitObject(t.Context(), c); !errors.Is(err, metadata.ErrObjectConflict) {
			t.Errorf("%s: commit under a used key: err %v, want ErrObjectConflict", name, err)
		}
	}
	if p, err := s.GetPartition(t.Context(), tp); err != nil || p.HighWatermark != 10 {
		t.Errorf("partition 0 = %+v, %v; want high watermark 10", p, err)
	}
	if p, err := s.GetPartition(t.Context(), tp1); err != nil || p.HighWatermark != 0 {
		t.Errorf("partition 1 = %+v, %v; want high watermark 0", p, err)
	}
}

func testCommitInvalid(t *testing.T, s metadata.Store) {
	topic := mustCreateTopic(t, s, "t", 2)
	tp := tpOf(topic, 0)
	l := mustAcquire(t, s, tp, "a", now)
	good := func() metadata.ObjectCommit { return commitOf("obj", "a", partCommit(tp, l.Epoch, 0, 10)) }
	for name, mutate := range map[string]func(c *metadata.ObjectCommit){
		"empty key":           func(c *metadata.ObjectCommit) { c.ObjectKey = "" },
		"empty agent":         func(c *metadata.ObjectCommit) { c.AgentID = "" },
		"entry not at hw":     func(c *metadata.ObjectCommit) { c.Partitions[0].Entries[0].BaseOffset = 1 },
		"new hw mismatch":     func(c *metadata.ObjectCommit) { c.Partitions[0].NewHighWatermark = 11 },
		"last below base":     func(c *metadata.ObjectCommit) { c.Partitions[0].Entries[0].LastOffset = -1 },
		"duplicate partition": func(c *metadata.ObjectCommit) { c.Partitions = append(c.Partitions, c.Partitions[0]) },
		"gap between entries": func(c *metadata.ObjectCommit) {
			c.Partitions[0].Entries = append(c.Partitions[0].Entries, entry(11, 1, 0))
			c.Partitions[0].NewHighWatermark = 12
		},
		"duplicate producer": func(c *metadata.ObjectCommit) {
			c.Partitions[0].Producers = []metadata.ProducerState{{ProducerID: 1}, {ProducerID: 1}}
		},
	} {
		c := good()
		mutate(&c)
		if err := s.CommitObject(t.Context(), c); !errors.Is(err, metadata.ErrInvalidCommit) {
			t.Errorf("%s: %v, want ErrInvalidCommit", name, err)
		}
	}
	checkUntouched(t, s, tp, 0, 0, "obj")
	mustCommit(t, s, good())
}

// testCommitRace has several writers (as a leader and a deposed leader's
// in-flight flushes would) commit at the same high watermark: exactly one
// wins each round, the others are fenced.
func testCommitRace(t *testing.T, s metadata.Store) {
	topic := mustCreateTopic(t, s, "t", 1)
	tp := tpOf(topic, 0)
	l := mustAcquire(t, s, tp, "a", now)
	const rounds, writers = 5, 8
	for r := range rounds {
		hw := int64(r * 10)
		errs := make([]error, writers)
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				errs[w] = s.CommitObject(t.Context(), commitOf(fmt.Sprintf("r%d-w%d", r, w), "a", partCommit(tp, l.Epoch, hw, 10)))
			})
		}
		wg.Wait()
		wins := 0
		for w, err := range errs {
			var fe *metadata.FencedError
			switch {
			case err == nil:
				wins++
			case !errors.As(err, &fe):
				t.Errorf("round %d writer %d: %v, want nil or a FencedError", r, w, err)
			}
		}
		if wins != 1 {
			t.Fatalf("round %d: %d commits won at high watermark %d, want 1", r, wins, hw)
		}
	}
	es := mustListIndex(t, s, tp, 0, 0)
	if len(es) != rounds {
		t.Fatalf("index has %d entries, want %d", len(es), rounds)
	}
	for i, e := range es {
		if e.BaseOffset != int64(i*10) || e.LastOffset != int64(i*10+9) {
			t.Errorf("entry %d = %+v, want offsets %d-%d", i, e, i*10, i*10+9)
		}
	}
}

// testCommitConcurrentPartitions has one writer per partition: commits on
// different partitions never fence each other.
func testCommitConcurrentPartitions(t *testing.T, s metadata.Store) {
	const partitions, commits = 8, 10
	topic := mustCreateTopic(t, s, "t", partitions)
	var wg sync.WaitGroup
	for p := range int32(partitions) {
		tp := tpOf(topic, p)
		l := mustAcquire(t, s, tp, "a", now)
		wg.Go(func() {
			for i := range int64(commits) {
				c := commitOf(fmt.Sprintf("p%d-%d", p, i), "a", partCommit(tp, l.Epoch, i*3, 3))
				if err := s.CommitObject(t.Context(), c); err != nil {
					t.Errorf("partition %d commit %d: %v", p, i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	ps, err := s.ListPartitions(t.Context(), topic.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if p.HighWatermark != commits*3 {
			t.Errorf("partition %d high watermark %d, want %d", p.Partition, p.HighWatermark, commits*3)
		}
	}
}

// testCommitManyPartitions commits one object spanning more partitions than
// one SQL statement can carry parameters for.
func testCommitManyPartitions(t *testing.T, s metadata.Store) {
	// Enough partitions and entries to need several statements where the
	// backend chunks its parameters.
	const partitions, entries = 1100, 4
	topic := mustCreateTopic(t, s, "wide", partitions)
	if err := s.RegisterAgent(t.Context(), metadata.Agent{ID: "a", HeartbeatAt: now}); err != nil {
		t.Fatal(err)
	}
	var parts []metadata.PartitionCommit
	for p := range int32(partitions) {
		tp := tpOf(topic, p)
		l := mustAcquire(t, s, tp, "a", now)
		pc := partCommit(tp, l.Epoch, 0, 2)
		for e := range int64(entries - 1) {
			pc.Entries = append(pc.Entries, entry(2+e, 1, 20+e))
		}
		pc.NewHighWatermark = entries + 1
		pc.Producers = []metadata.ProducerState{{ProducerID: int64(p), Batches: []metadata.ProducerBatch{{LastSeq: 2, LastOffset: 2}}}}
		parts = append(parts, pc)
	}
	// One stale partition at the end fences the whole object.
	last := &parts[partitions-1]
	last.Epoch++
	err := s.CommitObject(t.Context(), commitOf("wide-1", "a", parts...))
	checkFenced(t, err, last.TopicPartition)
	checkUntouched(t, s, parts[0].TopicPartition, 0, 0, "wide-1")
	last.Epoch--
	mustCommit(t, s, commitOf("wide-1", "a", parts...))
	leases, err := s.RenewLeases(t.Context(), "a", now, ttl)
	if err != nil || len(leases) != partitions {
		t.Fatalf("RenewLeases = %d leases, %v; want %d", len(leases), err, partitions)
	}
	for _, l := range leases {
		if l.HighWatermark != entries+1 {
			t.Fatalf("lease %+v, want high watermark %d", l, entries+1)
		}
	}
	tp := tpOf(topic, partitions-1)
	if es := mustListIndex(t, s, tp, 0, 0); len(es) != entries || es[1].Pos != 20 || es[entries-1].LastOffset != entries {
		t.Errorf("ListIndex(%s) = %+v", tp, es)
	}
	checkProducers(t, s, tp, parts[partitions-1].Producers...)
}

func checkProducers(t *testing.T, s metadata.Store, tp metadata.TopicPartition, want ...metadata.ProducerState) {
	t.Helper()
	got, err := s.ProducerStates(t.Context(), tp)
	if err != nil {
		t.Fatalf("ProducerStates(%s): %v", tp, err)
	}
	eq := func(a, b metadata.ProducerState) bool {
		return a.ProducerID == b.ProducerID && a.Epoch == b.Epoch && slices.Equal(a.Batches, b.Batches) &&
			a.InTxn == b.InTxn && a.TxnFirstOffset == b.TxnFirstOffset && a.CoordinatorEpoch == b.CoordinatorEpoch
	}
	if !slices.EqualFunc(got, want, eq) {
		t.Errorf("ProducerStates(%s) = %+v, want %+v", tp, got, want)
	}
}
