package metadatatest

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/internal/metadata"
)

// ReplaceIndex is the switch of object compaction (and key compaction):
// a partition's run of index entries replaced by entries in a new object,
// fenced by the lease, all or nothing.
var replaceTests = []suiteTest{
	{"ReplaceIndex", testReplaceIndex},
	{"ReplaceIndexFenced", testReplaceIndexFenced},
	{"ReplaceIndexChanged", testReplaceIndexChanged},
	{"ReplaceIndexRetry", testReplaceIndexRetry},
	{"ReplaceIndexInvalid", testReplaceIndexInvalid},
}

// replaceFixture commits three objects: obj-1 and obj-3 hold p0's runs
// only, obj-2 holds runs of p0 and p1. p0 has entries [0,9] [10,19]
// [20,29]; p1 has [0,4].
type replaceFixture struct {
	p0, p1 metadata.TopicPartition
	lease  metadata.Lease
	old    []metadata.IndexEntry // p0's entries as listed
}

func newReplaceFixture(t *testing.T, s metadata.Store) replaceFixture {
	t.Helper()
	topic := mustCreateTopic(t, s, "t", 2)
	f := replaceFixture{p0: tpOf(topic, 0), p1: tpOf(topic, 1)}
	f.lease = mustAcquire(t, s, f.p0, "a", now)
	l1 := mustAcquire(t, s, f.p1, "a", now)
	mustCommit(t, s, commitOf("obj-1", "a", partCommit(f.p0, f.lease.Epoch, 0, 10)))
	c := commitOf("obj-2", "a", partCommit(f.p0, f.lease.Epoch, 10, 10), partCommit(f.p1, l1.Epoch, 0, 5))
	c.CreatedAt = now.Add(time.Second)
	mustCommit(t, s, c)
	c = commitOf("obj-3", "a", partCommit(f.p0, f.lease.Epoch, 20, 10))
	c.CreatedAt = now.Add(2 * time.Second)
	mustCommit(t, s, c)
	f.old = mustListIndex(t, s, f.p0, 0, 0)
	if len(f.old) != 3 {
		t.Fatalf("fixture: %d entries, want 3", len(f.old))
	}
	return f
}

// replacement replaces old with one entry in key.
func (f replaceFixture) replacement(key string, old []metadata.IndexEntry) metadata.IndexReplacement {
	e := metadata.IndexEntry{
		BaseOffset: old[0].BaseOffset, LastOffset: old[len(old)-1].LastOffset, ObjectKey: key,
		Pos: 32, MaxTimestamp: old[len(old)-1].MaxTimestamp,
	}
	for _, o := range old {
		e.Len += o.Len
		e.Records += o.Records
	}
	return metadata.IndexReplacement{
		TopicPartition: f.p0, AgentID: "a", Epoch: f.lease.Epoch, Old: old, New: []metadata.IndexEntry{e},
		ObjectKey: key, Size: e.Len + 100, CreatedAt: now.Add(2 * time.Second),
	}
}

// checkIndex fails t unless tp's index is want (offsets, key, range).
func checkIndex(t *testing.T, s metadata.Store, tp metadata.TopicPartition, want []metadata.IndexEntry) {
	t.Helper()
	got := mustListIndex(t, s, tp, 0, 0)
	same := len(got) == len(want)
	for i := 0; same && i < len(got); i++ {
		g, w := got[i], want[i]
		same = g.BaseOffset == w.BaseOffset && g.LastOffset == w.LastOffset && g.ObjectKey == w.ObjectKey &&
			g.Pos == w.Pos && g.Len == w.Len && g.Records == w.Records && g.MaxTimestamp == w.MaxTimestamp
	}
	if !same {
		t.Errorf("index of %s = %+v, want %+v", tp, got, want)
	}
}

func testReplaceIndex(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	f := newReplaceFixture(t, s)
	r := f.replacement("seg-1", f.old)
	if err := s.ReplaceIndex(ctx, r); err != nil {
		t.Fatalf("ReplaceIndex: %v", err)
	}
	checkIndex(t, s, f.p0, r.New)
	got := mustListIndex(t, s, f.p0, 15, 0)
	if len(got) != 1 || got[0].ObjectCreatedAt != r.CreatedAt.UnixMilli() {
		t.Errorf("ListIndex from 15 = %+v, want the new entry created at %d", got, r.CreatedAt.UnixMilli())
	}
	if ok, err := s.IsObjectCommitted(ctx, "seg-1"); err != nil || !ok {
		t.Errorf("IsObjectCommitted(seg-1) = %v, %v; want true", ok, err)
	}
	// The partition itself is untouched; p1 still reads obj-2.
	if p, err := s.GetPartition(ctx, f.p0); err != nil || p.HighWatermark != 30 || p.LogStartOffset != 0 {
		t.Errorf("partition = %+v, %v; want high watermark 30, log start 0", p, err)
	}
	if b, err := s.IndexBytes(ctx, f.p0, 0); err != nil || b != r.New[0].Len {
		t.Errorf("IndexBytes = %d, %v; want %d", b, err, r.New[0].Len)
	}
	// obj-1 and obj-3 are garbage now; obj-2 is not while p1 uses it.
	if n, err := s.MarkUnreferencedObjects(ctx, now, time.Minute); err != nil || n != 2 {
		t.Errorf("MarkUnreferencedObjects = %d, %v; want 2", n, err)
	}
	recs, err := s.DeletableObjects(ctx, now.Add(time.Minute), 10)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range recs {
		keys = append(keys, o.Key)
	}
	slices.Sort(keys)
	if !slices.Equal(keys, []string{"obj-1", "obj-3"}) {
		t.Errorf("deletable = %v, want obj-1 and obj-3", keys)
	}
	// A later commit appends after the switched run as usual.
	mustCommit(t, s, commitOf("obj-4", "a", partCommit(f.p0, f.lease.Epoch, 30, 5)))
	if es := mustListIndex(t, s, f.p0, 0, 0); len(es) != 2 || es[1].ObjectKey != "obj-4" {
		t.Errorf("index after a later commit = %+v", es)
	}
	// Part of a run can be replaced as well, and a replaced run again.
	es := mustListIndex(t, s, f.p0, 0, 0)
	r2 := f.replacement("seg-2", es)
	if err := s.ReplaceIndex(ctx, r2); err != nil {
		t.Fatalf("second ReplaceIndex: %v", err)
	}
	checkIndex(t, s, f.p0, r2.New)
}

// checkUnswitched checks that a refused switch to key left p0 as the
// fixture made it.
func checkUnswitched(t *testing.T, s metadata.Store, f replaceFixture, want []metadata.IndexEntry, key string) {
	t.Helper()
	checkIndex(t, s, f.p0, want)
	if ok, err := s.IsObjectCommitted(t.Context(), key); err != nil || ok {
		t.Errorf("IsObjectCommitted(%s) = %v, %v; want false", key, ok, err)
	}
}

func testReplaceIndexFenced(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	f := newReplaceFixture(t, s)
	for _, c := range []struct {
		name  string
		agent string
		epoch int32
	}{
		{"wrong agent", "b", f.lease.Epoch},
		{"stale epoch", "a", f.lease.Epoch - 1},
		{"future epoch", "a", f.lease.Epoch + 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := f.replacement("seg-"+c.name, f.old)
			r.AgentID, r.Epoch = c.agent, c.epoch
			checkFenced(t, s.ReplaceIndex(ctx, r), f.p0)
			checkUnswitched(t, s, f, f.old, r.ObjectKey)
		})
	}
	// A new leader (same agent again: epoch + 1) fences the old term.
	r := f.replacement("seg-old-term", f.old)
	mustAcquire(t, s, f.p0, "a", now)
	checkFenced(t, s.ReplaceIndex(ctx, r), f.p0)
	checkUnswitched(t, s, f, f.old, r.ObjectKey)
	// Another agent after the lease expired.
	mustAcquire(t, s, f.p0, "b", now.Add(time.Hour))
	r.ObjectKey, r.New[0].ObjectKey = "seg-expired", "seg-expired"
	r.Epoch++
	checkFenced(t, s.ReplaceIndex(ctx, r), f.p0)
	checkUnswitched(t, s, f, f.old, r.ObjectKey)
}

func testReplaceIndexChanged(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	f := newReplaceFixture(t, s)
	refused := func(name string, r metadata.IndexReplacement, want []metadata.IndexEntry) {
		t.Helper()
		err := s.ReplaceIndex(ctx, r)
		if !errors.Is(err, metadata.ErrIndexChanged) {
			t.Errorf("%s: err %v, want ErrIndexChanged", name, err)
		}
		checkUnswitched(t, s, f, want, r.ObjectKey)
	}
	// The caller's view of an entry differs from the stored one.
	moved := slices.Clone(f.old)
	moved[1].Pos++
	refused("other byte range", f.replacement("seg-a", moved), f.old)
	moved = slices.Clone(f.old)
	moved[2].ObjectKey = "obj-x"
	refused("other object", f.replacement("seg-b", moved), f.old)
	// Entries the caller does not know of, or that are gone.
	merged := []metadata.IndexEntry{f.old[0], f.old[1]}
	merged[1].LastOffset = 29
	refused("entry the index splits", f.replacement("seg-c", merged), f.old)
	beyond := append(slices.Clone(f.old), metadata.IndexEntry{BaseOffset: 30, LastOffset: 39, ObjectKey: "obj-9", Len: 10})
	refused("entry past the end", f.replacement("seg-g", beyond), f.old)

	// Retention dropped the first entry meanwhile: the switch is refused
	// and what retention left is kept.
	if _, err := s.SetLogStartOffset(ctx, f.p0, 10); err != nil {
		t.Fatal(err)
	}
	refused("after retention", f.replacement("seg-d", f.old), f.old[1:])
	// Another compaction switched the run meanwhile.
	if err := s.ReplaceIndex(ctx, f.replacement("seg-e", f.old[1:])); err != nil {
		t.Fatalf("ReplaceIndex of what retention left: %v", err)
	}
	want := f.replacement("seg-e", f.old[1:]).New
	refused("after another switch", f.replacement("seg-f", f.old[1:]), want)
}

func testReplaceIndexRetry(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	f := newReplaceFixture(t, s)
	r := f.replacement("seg-1", f.old)
	if err := s.ReplaceIndex(ctx, r); err != nil {
		t.Fatal(err)
	}
	// A retry of a switch whose answer was lost succeeds, changing nothing.
	if err := s.ReplaceIndex(ctx, r); err != nil {
		t.Errorf("retried ReplaceIndex: %v", err)
	}
	checkIndex(t, s, f.p0, r.New)
	// A key garbage collection claimed as an orphan cannot be switched to.
	claimed, err := s.ClaimOrphans(ctx, []string{"seg-orphan"}, now, time.Hour)
	if err != nil || len(claimed) != 1 {
		t.Fatalf("ClaimOrphans = %v, %v", claimed, err)
	}
	es := mustListIndex(t, s, f.p0, 0, 0)
	err = s.ReplaceIndex(ctx, f.replacement("seg-orphan", es))
	if !errors.Is(err, metadata.ErrObjectConflict) {
		t.Errorf("switch to a claimed key: err %v, want ErrObjectConflict", err)
	}
	checkIndex(t, s, f.p0, r.New)
	// Nor can a key a commit used.
	err = s.ReplaceIndex(ctx, f.replacement("obj-2", es))
	if !errors.Is(err, metadata.ErrObjectConflict) {
		t.Errorf("switch to a committed key: err %v, want ErrObjectConflict", err)
	}
	checkIndex(t, s, f.p0, r.New)
}

func testReplaceIndexInvalid(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	f := newReplaceFixture(t, s)
	for _, c := range []struct {
		name   string
		modify func(r *metadata.IndexReplacement)
	}{
		{"no key", func(r *metadata.IndexReplacement) { r.ObjectKey = "" }},
		{"no agent", func(r *metadata.IndexReplacement) { r.AgentID = "" }},
		{"no old entries", func(r *metadata.IndexReplacement) { r.Old = nil }},
		{"no new entries", func(r *metadata.IndexReplacement) { r.New = nil }},
		{"old not dense", func(r *metadata.IndexReplacement) { r.Old = []metadata.IndexEntry{f.old[0], f.old[2]} }},
		{"new shorter", func(r *metadata.IndexReplacement) { r.New[0].LastOffset-- }},
		{"new starts later", func(r *metadata.IndexReplacement) { r.New[0].BaseOffset++ }},
		{"new in another object", func(r *metadata.IndexReplacement) { r.New[0].ObjectKey = "elsewhere" }},
		{"new key is an old one", func(r *metadata.IndexReplacement) { r.ObjectKey, r.New[0].ObjectKey = "obj-1", "obj-1" }},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := f.replacement("seg-"+c.name, slices.Clone(f.old))
			c.modify(&r)
			err := s.ReplaceIndex(ctx, r)
			if !errors.Is(err, metadata.ErrInvalidCommit) {
				t.Errorf("err %v, want ErrInvalidCommit", err)
			}
			checkIndex(t, s, f.p0, f.old)
		})
	}
}
