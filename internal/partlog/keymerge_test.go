package partlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/internal/batch"
	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/metadata/faulty"
	"github.com/streamhouse/streamhouse/internal/objstore"
)

// mergeSegMax is SEGMENT_MAX_SIZE in the merge tests: a few input runs
// per key compaction group.
const mergeSegMax = 4096

// mergeConfig is compactConfig with small segments and every read of an
// old run a GET (no cache, no hot tail), so a deleted object would show.
func mergeConfig(e *env, coord *txnCoord) Config {
	cfg := e.compactConfig("a1", mergeSegMax)
	cfg.ReadCacheBytes, cfg.HotTailBytes = -1, -1
	cfg.VerifyTxn = coord.verify
	return cfg
}

// fillHot appends rounds batches to tp, starting at round from: each a
// record of a key of its own (with a header) and six updates of one hot
// key, about 800 bytes, of which key compaction keeps about 60. Round 5
// of each 16 also deletes an earlier key (a tombstone, kept: its
// retention is long), round 9 is a committed transaction, round 13 an
// aborted one (each with its marker).
func fillHot(t *testing.T, l *Log, coord *txnCoord, tp metadata.TopicPartition, from, rounds int) {
	t.Helper()
	ctx := context.Background()
	t0 := int64(1_700_000_000_000)
	plain := batch.DefaultBuildOptions()
	for i := from; i < from+rounds; i++ {
		recs := []batch.Record{{Key: []byte(fmt.Sprintf("u%04d", i)), Value: []byte(fmt.Sprintf("value-%04d", i)), Timestamp: t0 + int64(i)*10,
			Headers: []batch.RecordHeader{{Key: "round", Value: []byte(fmt.Sprint(i))}}}}
		for j := range 6 {
			recs = append(recs, batch.Record{Key: []byte("hot"), Value: bytes.Repeat([]byte{byte('a' + j)}, 100), Timestamp: t0 + int64(i)*10 + int64(j)})
		}
		opts := plain
		switch i % 16 {
		case 5:
			recs = append(recs, batch.Record{Key: []byte(fmt.Sprintf("u%04d", i-3)), Timestamp: t0 + int64(i)*10 + 7})
		case 9, 13:
			pid := int64(100 + i)
			opts.ProducerID, opts.ProducerEpoch, opts.BaseSequence, opts.Transactional = pid, 0, 0, true
			coord.begin(pid, 0)
		}
		b, err := batch.Build(recs, opts)
		if err != nil {
			t.Fatal(err)
		}
		appendOK(t, l, tp, b)
		if opts.Transactional {
			if _, err := l.WriteMarker(ctx, tp, Marker{ProducerID: opts.ProducerID, Commit: i%16 == 9, CoordinatorEpoch: 1}); err != nil {
				t.Fatal(err)
			}
			coord.end(opts.ProducerID)
		}
	}
}

// readKept reads tp from its log start to its high watermark, following
// NextOffset across gaps, and returns the batches as stored.
func readKept(t *testing.T, l *Log, tp metadata.TopicPartition) [][]byte {
	t.Helper()
	ctx := context.Background()
	hw, off, err := l.HighWatermark(ctx, tp)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for off < hw {
		res, err := l.Read(ctx, tp, off, 1000, 0)
		if err != nil {
			t.Fatalf("read at %d: %v", off, err)
		}
		if res.Size == 0 || res.NextOffset <= off {
			t.Fatalf("read at %d below the high watermark %d: %d bytes, next %d", off, hw, res.Size, res.NextOffset)
		}
		bs, err := batch.Split(res.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range bs {
			h, err := batch.ParseHeader(b)
			if err != nil {
				t.Fatal(err)
			}
			if h.LastOffset() >= off {
				out = append(out, bytes.Clone(b))
			}
		}
		off = res.NextOffset
	}
	return out
}

// sameBatches fails unless got holds exactly the batches of want, byte
// for byte (offsets, timestamps, keys, values, headers, attributes,
// delete horizons, markers).
func sameBatches(t *testing.T, what string, got, want [][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d batches, want %d", what, len(got), len(want))
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			h, _ := batch.ParseHeader(want[i])
			t.Fatalf("%s: batch %d (base offset %d) differs", what, i, h.BaseOffset)
		}
	}
}

// segment is one object's consecutive entries in a partition's index.
type segment struct {
	key   string
	bytes int64
}

// keySegments lists tp's index: every entry tiles the offsets from the
// log start, and the objects of the key-compacted prefix, in order.
func keySegments(t *testing.T, store metadata.Store, tp metadata.TopicPartition) (prefix []segment, objects int) {
	t.Helper()
	es, err := store.ListIndex(context.Background(), tp, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	inPrefix := true
	for i, e := range es {
		if i > 0 && e.BaseOffset != es[i-1].LastOffset+1 {
			t.Fatalf("index entry at %d after one ending at %d", e.BaseOffset, es[i-1].LastOffset)
		}
		if !seen[e.ObjectKey] {
			seen[e.ObjectKey] = true
			objects++
		}
		inPrefix = inPrefix && strings.HasSuffix(e.ObjectKey, keyCompactedSuffix)
		if !inPrefix {
			continue
		}
		if n := len(prefix); n > 0 && prefix[n-1].key == e.ObjectKey {
			prefix[n-1].bytes += e.Len
		} else {
			prefix = append(prefix, segment{e.ObjectKey, e.Len})
		}
	}
	return prefix, objects
}

// packed is the number of segments segs become when every maximal run of
// adjacent segments under half of mergeSegMax is packed, first to last,
// into segments of at most mergeSegMax.
func packed(segs []segment) int {
	n := 0
	var fill int64 = -1 // bytes of the segment being packed; -1: none
	for _, s := range segs {
		switch {
		case 2*s.bytes >= mergeSegMax:
			n++
			fill = -1
		case fill >= 0 && fill+s.bytes <= mergeSegMax:
			fill += s.bytes
		default:
			n++
			fill = s.bytes
		}
	}
	return n
}

// mergeable reports two adjacent undersized segments that fit together.
func mergeable(segs []segment) (int, bool) {
	for i := 1; i < len(segs); i++ {
		a, b := segs[i-1].bytes, segs[i].bytes
		if 2*a < mergeSegMax && 2*b < mergeSegMax && a+b <= mergeSegMax {
			return i, true
		}
	}
	return 0, false
}

// A key compaction pass over a hot key leaves a small segment per group
// of runs it rewrote; merging packs adjacent small ones into segments of
// up to SEGMENT_MAX_SIZE, to the expected count, over several passes,
// and every batch read afterwards is byte for byte what it was
// (offsets, timestamps, keys, values, headers, tombstones with their
// delete horizon, transaction markers); the time index, the high
// watermark and the leader's in-memory index stay right, and garbage
// collection of the replaced objects breaks no read.
func TestKeyCompactionMergesSmallSegments(t *testing.T) {
	onBackends(t, testKeyCompactionMergesSmallSegments)
}

func testKeyCompactionMergesSmallSegments(t *testing.T, open storeOpener) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, open, nil)
	coord := newTxnCoord()
	l := e.open(mergeConfig(e, coord))
	topic := e.topic("kc", 1, map[string]string{"cleanup.policy": "compact", "delete.retention.ms": "3600000"})
	lead(t, l, topic)
	tp := tpOf(topic, 0)
	l.compaction.noMerge = true // the log as key compaction leaves it

	fillHot(t, l, coord, tp, 0, 64)
	e.clock.Advance(time.Second)
	if st := compactOK(t, l); st.KeyPasses != 1 || st.RecordsRemoved == 0 || st.Merges != 0 {
		t.Fatalf("key pass: %+v", st)
	}
	before, objectsBefore := keySegments(t, e.store, tp)
	want := packed(before)
	if _, ok := mergeable(before); !ok || want > objectsBefore/3 {
		t.Fatalf("the key pass left %d objects, %d after packing: the test needs many small segments", objectsBefore, want)
	}
	batches := readKept(t, l, tp)
	records := readRecords(t, l, tp, 0)
	hw, logStart, err := l.HighWatermark(ctx, tp)
	if err != nil {
		t.Fatal(err)
	}
	type at struct {
		off int64
		ok  bool
	}
	timeIndex := func() []at {
		var out []at
		for _, ts := range []int64{1_700_000_000_000, 1_700_000_000_055, 1_700_000_000_333, 1_700_000_000_631} {
			off, _, ok, err := l.OffsetForTime(ctx, tp, ts)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, at{off, ok})
		}
		off, _, ok, err := l.MaxTimestampOffset(ctx, tp)
		if err != nil {
			t.Fatal(err)
		}
		return append(out, at{off, ok})
	}
	times := timeIndex()

	l.compaction.noMerge = false
	var merged int
	for pass := range 3 {
		st := compactOK(t, l)
		if st.KeyPasses != 0 {
			t.Fatalf("pass %d ran a key pass after merging: %+v", pass, st)
		}
		if pass > 0 && st.Merges != 0 {
			t.Fatalf("pass %d merged again: %+v", pass, st)
		}
		merged += st.SegmentsMerged
	}
	after, objectsAfter := keySegments(t, e.store, tp)
	if objectsAfter != want {
		t.Fatalf("%d objects after merging (%d before), want %d", objectsAfter, objectsBefore, want)
	}
	if merged != countNotIn(before, after) {
		t.Errorf("stats count %d segments merged; the index went from %d to %d objects", merged, objectsBefore, objectsAfter)
	}
	if i, ok := mergeable(after); ok {
		t.Fatalf("segments %d and %d (%d and %d bytes) still fit together", i-1, i, after[i-1].bytes, after[i].bytes)
	}
	sameBatches(t, "after merging", readKept(t, l, tp), batches)
	if tomb, abort := mergedKinds(t, l, e.store, tp, before); !tomb || !abort {
		t.Fatalf("merged segments hold a tombstone with its delete horizon: %v, an abort marker: %v; the test needs both", tomb, abort)
	}
	if got := readRecords(t, l, tp, 0); strings.Join(got, ",") != strings.Join(records, ",") {
		t.Fatalf("records after merging:\n%v\nwant\n%v", got, records)
	}
	if h, s, err := l.HighWatermark(ctx, tp); err != nil || h != hw || s != logStart {
		t.Fatalf("high watermark %d log start %d (%v), want %d %d", h, s, err, hw, logStart)
	}
	if got := timeIndex(); fmt.Sprint(got) != fmt.Sprint(times) {
		t.Fatalf("time index after merging %v, want %v", got, times)
	}
	memIndexMatches(t, l, e.store, []metadata.TopicPartition{tp})

	// The replaced objects are garbage a grace after the switch; reads
	// (every one a GET) still find everything.
	replaced := 0
	for _, s := range before {
		if _, err := e.bucket.Get(ctx, s.key); err == nil && countNotIn([]segment{s}, after) == 1 {
			replaced++
		}
	}
	if replaced == 0 {
		t.Fatal("no replaced object in the bucket before garbage collection")
	}
	for range 3 {
		e.clock.Advance(21 * time.Second)
		if _, err := l.CollectGarbage(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range before {
		if _, err := e.bucket.Get(ctx, s.key); err == nil && countNotIn([]segment{s}, after) == 1 {
			t.Errorf("replaced object %s still there after garbage collection", s.key)
		}
	}
	sameBatches(t, "after garbage collection", readKept(t, l, tp), batches)
}

// mergedKinds reports whether the batches in tp's objects that are not
// among before (the merged segments) hold a tombstone in a batch with a
// delete horizon, and an abort marker.
func mergedKinds(t *testing.T, l *Log, store metadata.Store, tp metadata.TopicPartition, before []segment) (tomb, abort bool) {
	t.Helper()
	old := map[string]bool{}
	for _, s := range before {
		old[s.key] = true
	}
	es, err := store.ListIndex(context.Background(), tp, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	inMerged := func(off int64) bool {
		for _, e := range es {
			if off >= e.BaseOffset && off <= e.LastOffset {
				return !old[e.ObjectKey]
			}
		}
		return false
	}
	for _, b := range readKept(t, l, tp) {
		h, recs, err := batch.Records(b)
		if err != nil {
			t.Fatal(err)
		}
		if !inMerged(h.BaseOffset) {
			continue
		}
		if h.IsControl() {
			if commit, _, err := batch.ParseEndTxnMarker(recs[0]); err == nil && !commit {
				abort = true
			}
			continue
		}
		if _, ok := h.DeleteHorizon(); ok {
			for _, r := range recs {
				tomb = tomb || r.Value == nil
			}
		}
	}
	return tomb, abort
}

// countNotIn counts the segments of a whose object is not in b.
func countNotIn(a, b []segment) int {
	in := map[string]bool{}
	for _, s := range b {
		in[s.key] = true
	}
	n := 0
	for _, s := range a {
		if !in[s.key] {
			n++
		}
	}
	return n
}

// Over rounds of new data, each followed by a compaction pass, the
// key-compacted prefix never keeps two small segments that fit together,
// it ends with fewer objects than the same rounds without merging (5
// against 8 here: each round's merged segment is just over half a
// segment, so it is not merged again),
// and reads return the same records as the log compacted without
// merging (the batches themselves differ between the two logs only in
// the delete horizons their passes wrote, from the clock).
func TestKeyCompactionMergeRounds(t *testing.T) { onBackends(t, testKeyCompactionMergeRounds) }

func testKeyCompactionMergeRounds(t *testing.T, open storeOpener) {
	t.Parallel()
	run := func(merge bool) (records []string, objects int) {
		e := newEnv(t, open, nil)
		coord := newTxnCoord()
		l := e.open(mergeConfig(e, coord))
		topic := e.topic("kc", 1, map[string]string{"cleanup.policy": "compact", "delete.retention.ms": "3600000"})
		lead(t, l, topic)
		tp := tpOf(topic, 0)
		l.compaction.noMerge = !merge
		for round := range 5 {
			fillHot(t, l, coord, tp, round*24, 24)
			e.clock.Advance(time.Second)
			compactOK(t, l)
			segs, _ := keySegments(t, e.store, tp)
			if i, ok := mergeable(segs); merge && ok {
				t.Fatalf("round %d: segments %d and %d (%d and %d bytes) fit together", round, i-1, i, segs[i-1].bytes, segs[i].bytes)
			}
		}
		_, objects = keySegments(t, e.store, tp)
		return readRecords(t, l, tp, 0), objects
	}
	without, many := run(false)
	with, few := run(true)
	if few >= many {
		t.Fatalf("%d objects with merging, %d without: want fewer", few, many)
	}
	if strings.Join(with, ",") != strings.Join(without, ",") {
		t.Fatalf("records with merging:\n%v\nwithout:\n%v", with, without)
	}
}

// A merge that fails at any step (the PUT, its answer, the switch, the
// switch's answer), and an agent crash between the merged object's PUT
// and the switch, leave a log that reads the same; a later pass (of the
// restarted agent) merges, and garbage collection deletes the orphan.
func TestKeyCompactionMergeFaults(t *testing.T) { onBackends(t, testKeyCompactionMergeFaults) }

func testKeyCompactionMergeFaults(t *testing.T, open storeOpener) {
	t.Parallel()
	for _, c := range []struct {
		name   string
		inject func(b *objstore.Faulty, s *faulty.Store)
		landed bool // the switch happened although the pass saw a failure
		crash  bool // the agent stops after the failed switch; another run restarts it
	}{
		{name: "put segment", inject: func(b *objstore.Faulty, _ *faulty.Store) {
			b.Inject(objstore.Fault{Op: objstore.OpPut})
		}},
		{name: "put landed, answer lost", inject: func(b *objstore.Faulty, _ *faulty.Store) {
			b.Inject(objstore.Fault{Op: objstore.OpPut, AfterWrite: true})
		}},
		{name: "switch fails", inject: func(_ *objstore.Faulty, s *faulty.Store) {
			s.Inject(faulty.Fault{Op: faulty.OpReplaceIndex})
		}},
		{name: "switch lands, answer lost", landed: true, inject: func(_ *objstore.Faulty, s *faulty.Store) {
			s.Inject(faulty.Fault{Op: faulty.OpReplaceIndex, AfterWrite: true})
		}},
		{name: "crash between put and switch", crash: true, inject: func(_ *objstore.Faulty, s *faulty.Store) {
			s.Inject(faulty.Fault{Op: faulty.OpReplaceIndex})
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			bucket := objstore.NewFaulty(objstore.NewMemory())
			e := newEnv(t, open, bucket)
			store := faulty.New(e.store)
			e.store = store
			coord := newTxnCoord()
			cfg := mergeConfig(e, coord)
			cfg.CommitTimeout = 2 * time.Second
			l := e.open(cfg)
			topic := e.topic("kc", 1, map[string]string{"cleanup.policy": "compact", "delete.retention.ms": "3600000"})
			lead(t, l, topic)
			tp := tpOf(topic, 0)
			l.compaction.noMerge = true
			fillHot(t, l, coord, tp, 0, 48)
			e.clock.Advance(time.Second)
			compactOK(t, l)
			batches := readKept(t, l, tp)
			_, objectsBefore := keySegments(t, e.store, tp)
			objectsInBucket := len(bucketKeys(t, bucket))

			l.compaction.noMerge = false
			c.inject(bucket, store)
			st := compactOK(t, l)
			bucket.Clear()
			store.Clear()
			store.Release()
			if !c.landed && (st.Conflicts == 0 || st.Merges != 0) {
				t.Fatalf("pass with a fault: %+v, want the failure counted and no merge", st)
			}
			_, objects := keySegments(t, e.store, tp)
			switch {
			case c.landed && objects >= objectsBefore:
				t.Fatalf("the switch landed, yet %d objects (%d before)", objects, objectsBefore)
			case !c.landed && objects != objectsBefore:
				t.Fatalf("a failed merge changed the index: %d objects, %d before", objects, objectsBefore)
			}
			if c.name != "put segment" && len(bucketKeys(t, bucket)) <= objectsInBucket {
				t.Fatalf("no merged object in the bucket after its PUT")
			}
			sameBatches(t, "after the failed merge", readKept(t, l, tp), batches)
			memIndexMatches(t, l, e.store, []metadata.TopicPartition{tp})
			if c.crash {
				// The agent stops before it could retry; its restart
				// (same agent, another boot) reads the same log.
				cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				err := l.Close(cctx)
				cancel()
				if err != nil {
					t.Fatal(err)
				}
				l = e.open(cfg)
				lead(t, l, topic)
				sameBatches(t, "after the restart", readKept(t, l, tp), batches)
			}
			// A later pass merges; garbage collection then deletes the
			// orphan and the replaced objects, and reads go on.
			compactOK(t, l)
			segs, objects := keySegments(t, e.store, tp)
			if objects >= objectsBefore {
				t.Fatalf("%d objects after a clean pass, %d before", objects, objectsBefore)
			}
			if i, ok := mergeable(segs); ok {
				t.Fatalf("segments %d and %d still fit together", i-1, i)
			}
			sameBatches(t, "after the merge", readKept(t, l, tp), batches)
			for range 3 {
				e.clock.Advance(21 * time.Second)
				if _, err := l.CollectGarbage(ctx); err != nil {
					t.Fatal(err)
				}
			}
			referenced, _ := indexKeys(t, e.store, []metadata.TopicPartition{tp})
			for k := range bucketKeys(t, bucket) {
				if strings.HasSuffix(k, compactedSuffix) && !referenced[k] {
					t.Errorf("segment %s not in the index survived garbage collection", k)
				}
			}
			sameBatches(t, "after garbage collection", readKept(t, l, tp), batches)
		})
	}
}

// keyPassOnly fills a compacted topic's partition with a hot key and runs
// a key pass without merging: many small key-compacted segments.
func keyPassOnly(t *testing.T, e *env, l *Log, coord *txnCoord) (metadata.Topic, metadata.TopicPartition) {
	t.Helper()
	topic := e.topic("kc", 1, map[string]string{"cleanup.policy": "compact", "delete.retention.ms": "3600000"})
	lead(t, l, topic)
	tp := tpOf(topic, 0)
	l.compaction.noMerge = true
	fillHot(t, l, coord, tp, 0, 64)
	e.clock.Advance(time.Second)
	if st := compactOK(t, l); st.KeyPasses != 1 || st.Merges != 0 {
		t.Fatalf("key pass: %+v", st)
	}
	l.compaction.noMerge = false
	return topic, tp
}

// A merge group whose switch fails on its own rows (ErrIndexChanged) is
// counted and left for the next pass; the later groups of the same pass
// are merged all the same, and the next pass merges the one that failed.
func TestKeyCompactionMergeContinuesPastFailure(t *testing.T) {
	// The group's own rows changed, or a commit the store refuses for
	// good (never an outage): the later groups still merge.
	for _, fail := range []error{metadata.ErrIndexChanged, metadata.ErrInvalidCommit} {
		t.Run(fail.Error(), func(t *testing.T) {
			onBackends(t, func(t *testing.T, open storeOpener) { testKeyCompactionMergeContinuesPastFailure(t, open, fail) })
		})
	}
}

func testKeyCompactionMergeContinuesPastFailure(t *testing.T, open storeOpener, fail error) {
	t.Parallel()
	e := newEnv(t, open, nil)
	store := faulty.New(e.store)
	e.store = store
	coord := newTxnCoord()
	l := e.open(mergeConfig(e, coord))
	_, tp := keyPassOnly(t, e, l, coord)
	before, objectsBefore := keySegments(t, e.store, tp)
	want := packed(before)
	if objectsBefore-want < 4 {
		t.Fatalf("%d objects, %d after packing: the test needs several groups", objectsBefore, want)
	}
	batches := readKept(t, l, tp)
	store.Inject(faulty.Fault{Op: faulty.OpReplaceIndex, Times: 1, Err: fail}) // the first group's switch
	st := compactOK(t, l)
	if st.Conflicts != 1 || st.Merges == 0 {
		t.Fatalf("pass with the first switch failing: %+v; want one conflict and the later groups merged", st)
	}
	_, objects := keySegments(t, e.store, tp)
	if objects >= objectsBefore || objects <= want {
		t.Fatalf("%d objects after the pass (%d before, %d when all merged): want all groups but the failed one merged", objects, objectsBefore, want)
	}
	if errors.Is(fail, metadata.ErrInvalidCommit) {
		// A lasting failure is not tried again every pass (each try
		// would upload an orphan): merging waits until it is due again.
		if st := compactOK(t, l); st.Merges != 0 || st.Conflicts != 0 {
			t.Fatalf("next pass after a lasting failure: %+v; want no merge tried", st)
		}
		sameBatches(t, "after merging", readKept(t, l, tp), batches)
		memIndexMatches(t, l, e.store, []metadata.TopicPartition{tp})
		return
	}
	if st := compactOK(t, l); st.Merges != 1 || st.Conflicts != 0 {
		t.Fatalf("next pass: %+v; want the failed group merged", st)
	}
	if _, objects := keySegments(t, e.store, tp); objects != want {
		t.Fatalf("%d objects after the retry, want %d", objects, want)
	}
	sameBatches(t, "after merging", readKept(t, l, tp), batches)
	memIndexMatches(t, l, e.store, []metadata.TopicPartition{tp})
}

// A merge switch failing for another reason than the group's own rows
// (the store unavailable) stops the merge step: the later groups are not
// read nor uploaded (each would be an orphan when its switch fails too),
// and the next pass, the store back, merges them all.
func TestKeyCompactionMergeStopsOnOutage(t *testing.T) {
	onBackends(t, testKeyCompactionMergeStopsOnOutage)
}

func testKeyCompactionMergeStopsOnOutage(t *testing.T, open storeOpener) {
	t.Parallel()
	bucket := objstore.NewFaulty(objstore.NewMemory())
	e := newEnv(t, open, bucket)
	store := faulty.New(e.store)
	e.store = store
	coord := newTxnCoord()
	l := e.open(mergeConfig(e, coord))
	_, tp := keyPassOnly(t, e, l, coord)
	before, objectsBefore := keySegments(t, e.store, tp)
	want := packed(before)
	if objectsBefore-want < 4 {
		t.Fatalf("%d objects, %d after packing: the test needs several groups", objectsBefore, want)
	}
	batches := readKept(t, l, tp)
	inBucket := len(bucketKeys(t, bucket))
	outage := fmt.Errorf("metadata store unavailable: %w", faulty.ErrInjected) // an error of no known kind: taken for an outage
	switches := store.Calls(faulty.OpReplaceIndex)
	store.Inject(faulty.Fault{Op: faulty.OpReplaceIndex, Err: outage}) // every switch
	st := compactOK(t, l)
	switches = store.Calls(faulty.OpReplaceIndex) - switches
	store.Clear()
	if st.Conflicts != 1 || st.Merges != 0 {
		t.Fatalf("pass with the store failing every switch: %+v; want one failure and no merge", st)
	}
	if switches != 1 {
		t.Errorf("%d switches tried during the outage, want 1 (the step stops at the first)", switches)
	}
	if n := len(bucketKeys(t, bucket)) - inBucket; n > 1 {
		t.Errorf("%d objects uploaded during the outage, want at most 1 orphan", n)
	}
	if _, objects := keySegments(t, e.store, tp); objects != objectsBefore {
		t.Fatalf("%d objects after the failed pass, %d before", objects, objectsBefore)
	}
	if st := compactOK(t, l); st.Conflicts != 0 || st.Merges == 0 {
		t.Fatalf("pass after the outage: %+v; want the groups merged", st)
	}
	if _, objects := keySegments(t, e.store, tp); objects != want {
		t.Fatalf("%d objects after the pass, want %d", objects, want)
	}
	sameBatches(t, "after merging", readKept(t, l, tp), batches)
	memIndexMatches(t, l, e.store, []metadata.TopicPartition{tp})
}

// Merging lists the key-compacted prefix only when it may find
// something: after a key pass rewrote part of the partition, and on the
// first pass of a leadership term (a restarted agent looks at what it
// finds); a pass with nothing new lists the index no more than one with
// merging off.
func TestKeyCompactionMergeOnlyWhenDue(t *testing.T) {
	onBackends(t, testKeyCompactionMergeOnlyWhenDue)
}

func testKeyCompactionMergeOnlyWhenDue(t *testing.T, open storeOpener) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, open, nil)
	spy := &listSpy{Store: e.store, froms: make(map[metadata.TopicPartition][]int64)}
	e.store = spy
	coord := newTxnCoord()
	cfg := mergeConfig(e, coord)
	l := e.open(cfg)
	topic, tp := keyPassOnly(t, e, l, coord)
	if st := compactOK(t, l); st.Merges == 0 {
		t.Fatalf("first pass with merging: %+v; want merges", st)
	}
	lists := func(merge bool) int {
		l.compaction.noMerge = !merge
		spy.mu.Lock()
		clear(spy.froms)
		spy.mu.Unlock()
		if st := compactOK(t, l); st.Merges != 0 || st.KeyPasses != 0 {
			t.Fatalf("pass with nothing new: %+v", st)
		}
		spy.mu.Lock()
		defer spy.mu.Unlock()
		return len(spy.froms[tp])
	}
	if with, without := lists(true), lists(false); with != without {
		t.Fatalf("a pass with nothing to merge listed the index %d times, %d with merging off", with, without)
	}

	// New data: the key pass rewrites, so the merge is due again and
	// leaves nothing mergeable.
	fillHot(t, l, coord, tp, 64, 48)
	e.clock.Advance(time.Second)
	l.compaction.noMerge = false
	if st := compactOK(t, l); st.KeyPasses != 1 {
		t.Fatalf("key pass: %+v", st)
	}
	segs, _ := keySegments(t, e.store, tp)
	if i, ok := mergeable(segs); ok {
		t.Fatalf("segments %d and %d still fit together after the key pass", i-1, i)
	}
	batches := readKept(t, l, tp)
	if l.compaction.keys.mergeDue(l.partitions[tp]) {
		t.Fatal("merge due after a complete one")
	}

	// A restarted agent (another term) looks at the prefix again on its
	// first pass, and the log still reads the same.
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err := l.Close(cctx)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	l = e.open(cfg)
	lead(t, l, topic)
	if !l.compaction.keys.mergeDue(l.partitions[tp]) {
		t.Fatal("no merge due in a new term")
	}
	compactOK(t, l)
	if l.compaction.keys.mergeDue(l.partitions[tp]) {
		t.Fatal("merge still due after the new term's first pass")
	}
	segs, _ = keySegments(t, e.store, tp)
	if i, ok := mergeable(segs); ok {
		t.Fatalf("segments %d and %d still fit together after the restart's pass", i-1, i)
	}
	sameBatches(t, "after the restart", readKept(t, l, tp), batches)
}

// A merge group holds at most min(SEGMENT_MAX_SIZE, the compaction
// buffer) bytes (rewriteRun holds them and then the segment), so merging
// stays within the memory bound the buffer documents.
func TestKeyCompactionMergeWithinBuffer(t *testing.T) {
	onBackends(t, testKeyCompactionMergeWithinBuffer)
}

func testKeyCompactionMergeWithinBuffer(t *testing.T, open storeOpener) {
	t.Parallel()
	e := newEnv(t, open, nil)
	coord := newTxnCoord()
	cfg := mergeConfig(e, coord)
	const buffer = mergeSegMax / 2
	cfg.Compaction.BufferBytes = buffer
	l := e.open(cfg)
	_, tp := keyPassOnly(t, e, l, coord)
	before, _ := keySegments(t, e.store, tp)
	batches := readKept(t, l, tp)
	if st := compactOK(t, l); st.Merges == 0 {
		t.Fatalf("pass: %+v; want merges", st)
	}
	after, _ := keySegments(t, e.store, tp)
	old := map[string]bool{}
	for _, s := range before {
		old[s.key] = true
	}
	merged := 0
	for _, s := range after {
		if old[s.key] {
			continue
		}
		merged++
		if s.bytes > buffer {
			t.Errorf("merged segment %s holds %d bytes, over the %d-byte buffer", s.key, s.bytes, buffer)
		}
	}
	if merged == 0 {
		t.Fatal("no merged segment")
	}
	sameBatches(t, "after merging", readKept(t, l, tp), batches)
}

// A merge that looks at a limited number of index entries (100 000) and
// stops inside an object leaves that object out: a merged object is
// always replaced whole, and the segments merged counted are exactly the
// objects the index no longer names.
func TestKeyCompactionMergeCutObject(t *testing.T) { onBackends(t, testKeyCompactionMergeCutObject) }

func testKeyCompactionMergeCutObject(t *testing.T, open storeOpener) {
	t.Parallel()
	e := newEnv(t, open, nil)
	coord := newTxnCoord()
	cfg := mergeConfig(e, coord)
	cfg.Compaction.EntryMaxBytes = 150 // segments of several entries
	l := e.open(cfg)
	_, tp := keyPassOnly(t, e, l, coord)
	before, _ := keySegments(t, e.store, tp)
	es, err := e.store.ListIndex(context.Background(), tp, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	// The limit: up to the first entry of the first object with several
	// entries that follows two segments a merge can take.
	objs, cut := 0, 0 // objs: objects before es[i-1]'s
	for i := 1; i < len(es); i++ {
		if i >= 2 && es[i-1].ObjectKey != es[i-2].ObjectKey {
			objs++
		}
		if es[i].ObjectKey == es[i-1].ObjectKey && (i < 2 || es[i-2].ObjectKey != es[i-1].ObjectKey) {
			if _, ok := mergeable(before[:min(objs, len(before))]); ok && objs < len(before) && before[objs].key == es[i].ObjectKey && 2*before[objs].bytes < mergeSegMax {
				cut = i
				break
			}
		}
	}
	if cut == 0 {
		t.Fatal("no undersized key-compacted object of several entries after mergeable segments: the test needs one")
	}
	cutKey := es[cut].ObjectKey
	l.compaction.mergeEntries = cut
	batches := readKept(t, l, tp)
	st := compactOK(t, l)
	if st.Merges == 0 {
		t.Fatalf("pass: %+v; want merges", st)
	}
	after, _ := keySegments(t, e.store, tp)
	if n := countNotIn(before, after); st.SegmentsMerged != n {
		t.Errorf("%d segments counted merged, %d objects replaced", st.SegmentsMerged, n)
	}
	es, err = e.store.ListIndex(context.Background(), tp, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, en := range es {
		if en.ObjectKey == cutKey {
			n++
		}
	}
	if n < 2 {
		t.Errorf("object %s cut by the limit keeps %d of its entries in the index; want it left whole", cutKey, n)
	}
	sameBatches(t, "after merging", readKept(t, l, tp), batches)
	memIndexMatches(t, l, e.store, []metadata.TopicPartition{tp})
}

// keyPrefix is the number of entries in p's key-compacted prefix and
// whether an entry follows it.
func keyPrefix(t *testing.T, store metadata.Store, tp metadata.TopicPartition) (int, bool) {
	t.Helper()
	es, err := store.ListIndex(context.Background(), tp, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for n < len(es) && strings.HasSuffix(es[n].ObjectKey, keyCompactedSuffix) {
		n++
	}
	return n, n < len(es)
}

// A key-compacted prefix longer than the merge's entry limit: once the
// window looked at has nothing left to merge, the merge is done (no
// listing every pass); and a prefix ending exactly at the limit is not
// taken as cut, so its last object is merged too and the merge done.
func TestKeyCompactionMergeLimit(t *testing.T) { onBackends(t, testKeyCompactionMergeLimit) }

func testKeyCompactionMergeLimit(t *testing.T, open storeOpener) {
	t.Parallel()
	t.Run("prefix past the limit", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, open, nil)
		coord := newTxnCoord()
		l := e.open(mergeConfig(e, coord))
		_, tp := keyPassOnly(t, e, l, coord)
		if st := compactOK(t, l); st.Merges == 0 {
			t.Fatalf("first pass with merging: %+v; want merges", st)
		}
		n, _ := keyPrefix(t, e.store, tp)
		if n < 2 {
			t.Fatalf("a key-compacted prefix of %d entries; the test needs 2", n)
		}
		p := l.partitions[tp]
		l.compaction.mergeEntries = n - 1
		l.compaction.keys.mergeAgain(p)
		if st := compactOK(t, l); st.Merges != 0 || st.Conflicts != 0 {
			t.Fatalf("pass with nothing to merge: %+v", st)
		}
		if l.compaction.keys.mergeDue(p) {
			t.Fatal("merge still due after a window cut by the limit had nothing to merge: the prefix is listed again every pass")
		}
	})
	t.Run("prefix ends at the limit", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, open, nil)
		coord := newTxnCoord()
		l := e.open(mergeConfig(e, coord))
		_, tp := keyPassOnly(t, e, l, coord)
		l.compaction.noMerge = true
		fillHot(t, l, coord, tp, 64, 4) // not key-compacted yet
		l.compaction.noMerge = false
		n, more := keyPrefix(t, e.store, tp)
		if !more {
			t.Fatal("nothing follows the key-compacted prefix; the test needs an entry")
		}
		before, objectsBefore := keySegments(t, e.store, tp)
		want := packed(before)
		if objectsBefore <= want {
			t.Fatalf("%d objects, %d after packing: the test needs a merge", objectsBefore, want)
		}
		p := l.partitions[tp]
		l.compaction.mergeEntries = n
		batches := readKept(t, l, tp)
		if st := compactOK(t, l); st.Merges == 0 || st.Conflicts != 0 || st.KeyPasses != 0 {
			t.Fatalf("pass: %+v; want merges only", st)
		}
		segs, _ := keySegments(t, e.store, tp)
		if i, ok := mergeable(segs); ok {
			t.Errorf("segments %d and %d still fit together: the prefix ending at the limit was taken as cut", i-1, i)
		}
		if l.compaction.keys.mergeDue(p) {
			t.Error("merge still due after the whole prefix was merged")
		}
		sameBatches(t, "after merging", readKept(t, l, tp), batches)
		memIndexMatches(t, l, e.store, []metadata.TopicPartition{tp})
	})
}
