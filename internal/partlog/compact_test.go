package partlog

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/streamhouse/streamhouse/internal/batch"
	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/metadata/faulty"
	"github.com/streamhouse/streamhouse/internal/objstore"
)

// compactConfig is the test agent's config with compaction as tests want
// it: runs eligible at once, segments bounded by size only, GC grace short
// enough to step the clock over.
func (e *env) compactConfig(agent string, segBytes int64) Config {
	cfg := e.config(agent)
	cfg.CommitTimeout = 5 * time.Second
	cfg.GCGrace = 20 * time.Second
	cfg.Compaction = CompactionConfig{SegmentMaxBytes: segBytes, SegmentMaxAge: time.Hour, MinAge: time.Millisecond}
	return cfg
}

// readBatches reads tp from its log start to its high watermark and
// returns the batches whole, as stored.
func readBatches(ctx context.Context, l *Log, tp metadata.TopicPartition) ([][]byte, error) {
	hw, off, err := l.HighWatermark(ctx, tp)
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for off < hw {
		res, err := l.Read(ctx, tp, off, 64<<10, 0)
		if err != nil {
			return nil, fmt.Errorf("read %s at %d: %w", tp, off, err)
		}
		bs, err := batch.Split(res.Bytes())
		if err != nil {
			return nil, err
		}
		for _, b := range bs {
			h, err := batch.ParseHeader(b)
			if err != nil {
				return nil, err
			}
			if h.LastOffset() < off {
				continue
			}
			if h.BaseOffset != off {
				return nil, fmt.Errorf("read %s: batch at %d, want %d", tp, h.BaseOffset, off)
			}
			out = append(out, slices.Clone(b))
			off = h.LastOffset() + 1
		}
	}
	return out, nil
}

// sent is what a producer appended to one partition, as the log must
// return it: the client's bytes with the base offset and epoch filled in.
type sent struct {
	mu      sync.Mutex
	batches map[metadata.TopicPartition][][]byte
}

func (s *sent) add(tp metadata.TopicPartition, b []byte, base int64, epoch int32) {
	c := withEpoch(b, epoch)
	batch.SetBaseOffset(c, base)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.batches[tp] = append(s.batches[tp], c)
}

// check fails t unless every partition reads back exactly what was sent.
func (s *sent) check(t *testing.T, l *Log) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for tp, want := range s.batches {
		got, err := readBatches(context.Background(), l, tp)
		if err != nil {
			t.Fatalf("read back %s: %v", tp, err)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: %d batches, want %d", tp, len(got), len(want))
		}
		for i := range got {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("%s: batch %d differs from what was sent", tp, i)
			}
		}
	}
}

// produce appends n small batches round-robin over the topic's
// partitions, each in its own flush.
func produce(t *testing.T, l *Log, topic metadata.Topic, s *sent, n int, prefix string) {
	t.Helper()
	for i := range n {
		tp := tpOf(topic, int32(i)%topic.Partitions)
		b := mkBatch(t, fmt.Sprintf("%s%d", prefix, i), 1+i%3)
		orig := slices.Clone(b)
		res, err := l.Append(context.Background(), tp, b, AckDurable)
		if err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		epoch, _ := l.LeaderEpoch(tp)
		s.add(tp, orig, res.BaseOffset, epoch)
	}
}

// indexKeys returns every object key tp's index names, and the number of
// its entries.
func indexKeys(t *testing.T, store metadata.Store, tps []metadata.TopicPartition) (keys map[string]bool, entries int) {
	t.Helper()
	keys = make(map[string]bool)
	for _, tp := range tps {
		es, err := store.ListIndex(context.Background(), tp, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		entries += len(es)
		for _, e := range es {
			keys[e.ObjectKey] = true
		}
	}
	return keys, entries
}

func bucketKeys(t *testing.T, b objstore.Bucket) map[string]bool {
	t.Helper()
	keys := make(map[string]bool)
	err := b.List(context.Background(), "", func(o objstore.ObjectInfo) error {
		keys[o.Key] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

func partitionsOf(topic metadata.Topic) []metadata.TopicPartition {
	var tps []metadata.TopicPartition
	for p := range topic.Partitions {
		tps = append(tps, tpOf(topic, p))
	}
	return tps
}

// Compaction while a producer appends and a consumer reads: no read
// fails, everything reads back byte for byte, the index and the bucket
// shrink, and the replaced objects are deleted once the grace period has
// passed, never before.
func TestCompactionUnderLoad(t *testing.T) { onBackends(t, testCompactionUnderLoad) }

func testCompactionUnderLoad(t *testing.T, open storeOpener) {
	t.Parallel()
	e := newEnv(t, open, nil)
	l := e.open(e.compactConfig("a1", 2<<10))
	topic := e.topic("events", 3, nil)
	lead(t, l, topic)
	tps := partitionsOf(topic)
	ctx := context.Background()
	s := &sent{batches: make(map[metadata.TopicPartition][][]byte)}

	// Some history first, so the first passes have work.
	produce(t, l, topic, s, 60, "pre")
	flushObjects := len(bucketKeys(t, e.bucket))

	var done atomic.Bool
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // consumer: reads every partition from the start, again and again
		defer wg.Done()
		for !done.Load() {
			for _, tp := range tps {
				if _, err := readBatches(ctx, l, tp); err != nil {
					t.Errorf("consumer: %v", err)
					return
				}
			}
		}
	}()
	var total CompactionStats
	go func() { // compaction passes, back to back
		defer wg.Done()
		for !done.Load() {
			st, err := l.Compact(ctx)
			if err != nil {
				t.Errorf("compact: %v", err)
				return
			}
			total.Segments += st.Segments
			total.Entries += st.Entries
		}
	}()
	produce(t, l, topic, s, 150, "live")
	done.Store(true)
	wg.Wait()
	st, err := l.Compact(ctx)
	if err != nil {
		t.Fatal(err)
	}
	total.Segments += st.Segments
	total.Entries += st.Entries
	if total.Segments == 0 || total.Entries <= total.Segments {
		t.Fatalf("compaction wrote %d segments replacing %d entries; want some, each replacing several", total.Segments, total.Entries)
	}
	memIndexMatches(t, l, e.store, tps)
	s.check(t, l)
	refs, entries := indexKeys(t, e.store, tps)
	if entries >= 210 {
		t.Errorf("%d index entries after compaction, want fewer than the 210 runs written", entries)
	}

	// Garbage collection: the replaced objects are kept for the grace
	// period (readers may hold entries naming them), then deleted; what
	// the index names is never deleted.
	before := bucketKeys(t, e.bucket)
	if gc, err := l.CollectGarbage(ctx); err != nil || gc.Unreferenced != 0 || gc.Marked == 0 {
		t.Fatalf("first GC = %+v, %v; want objects marked, none deleted", gc, err)
	}
	if n := len(bucketKeys(t, e.bucket)); n != len(before) {
		t.Fatalf("%d objects after the first GC, want all %d kept until the grace period passes", n, len(before))
	}
	s.check(t, l)
	e.clock.Advance(21 * time.Second)
	if gc, err := l.CollectGarbage(ctx); err != nil || gc.Unreferenced == 0 {
		t.Fatalf("GC after the grace period = %+v, %v; want replaced objects deleted", gc, err)
	}
	after := bucketKeys(t, e.bucket)
	for k := range refs {
		if !after[k] {
			t.Errorf("object %s is in the index but was deleted", k)
		}
	}
	for k := range after {
		if !refs[k] {
			t.Errorf("object %s is not in the index but was kept", k)
		}
	}
	if len(after) >= flushObjects+150 {
		t.Errorf("%d objects after compaction and GC, want fewer than the %d flushes", len(after), flushObjects+150)
	}
	s.check(t, l)
}

// A failure at each step of a rewrite (reading the old runs, writing the
// segment, the switch refused before it lands, the switch landing with its
// answer lost) leaves the log readable and complete, and a later pass
// completes the compaction.
func TestCompactionFaults(t *testing.T) { onBackends(t, testCompactionFaults) }

func testCompactionFaults(t *testing.T, open storeOpener) {
	t.Parallel()
	type step struct {
		name   string
		inject func(b *objstore.Faulty, s *faulty.Store)
		// landed: the switch happened although the pass saw a failure.
		landed bool
	}
	for _, c := range []step{
		{name: "read old runs", inject: func(b *objstore.Faulty, _ *faulty.Store) {
			b.Inject(objstore.Fault{Op: objstore.OpGetRange})
			b.Inject(objstore.Fault{Op: objstore.OpGet})
		}},
		{name: "put segment", inject: func(b *objstore.Faulty, _ *faulty.Store) {
			b.Inject(objstore.Fault{Op: objstore.OpPut})
		}},
		{name: "put landed, answer lost", inject: func(b *objstore.Faulty, _ *faulty.Store) {
			b.Inject(objstore.Fault{Op: objstore.OpPut, AfterWrite: true})
		}},
		{name: "switch fails", inject: func(_ *objstore.Faulty, s *faulty.Store) {
			s.Inject(faulty.Fault{Op: faulty.OpReplaceIndex})
		}},
		{name: "switch times out", inject: func(_ *objstore.Faulty, s *faulty.Store) {
			s.Inject(faulty.Fault{Op: faulty.OpReplaceIndex, Hang: true})
		}},
		{name: "switch lands, answer lost", landed: true, inject: func(_ *objstore.Faulty, s *faulty.Store) {
			s.Inject(faulty.Fault{Op: faulty.OpReplaceIndex, AfterWrite: true})
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			bucket := objstore.NewFaulty(objstore.NewMemory())
			e := newEnv(t, open, bucket)
			store := faulty.New(e.store)
			e.store = store
			cfg := e.compactConfig("a1", 1<<20)
			cfg.Compaction.SegmentMaxAge = 1500 * time.Millisecond
			cfg.CommitTimeout = 2 * time.Second           // a hung switch gives up; commits on a loaded machine do not
			cfg.ReadCacheBytes, cfg.HotTailBytes = -1, -1 // every read of an old run is a GET
			l := e.open(cfg)
			topic := e.topic("events", 2, nil)
			lead(t, l, topic)
			tps := partitionsOf(topic)
			s := &sent{batches: make(map[metadata.TopicPartition][][]byte)}
			produce(t, l, topic, s, 20, "x")
			_, entriesBefore := indexKeys(t, e.store, tps)
			// Nothing sealed from now on can join a segment of what is
			// there: each partition's runs make complete segments.
			e.clock.Advance(2 * time.Second)

			c.inject(bucket, store)
			st, err := l.Compact(context.Background())
			if err != nil {
				t.Fatalf("compact with a fault: %v", err)
			}
			bucket.Clear()
			store.Clear()
			store.Release()
			s.check(t, l)
			// The in-memory index never keeps an entry the store's index
			// no longer has (its object is garbage once the grace passes).
			memIndexMatches(t, l, e.store, tps)
			_, entries := indexKeys(t, e.store, tps)
			switch {
			case c.landed && entries >= entriesBefore:
				t.Errorf("switch landed yet %d entries, had %d", entries, entriesBefore)
			case !c.landed && st.Conflicts == 0:
				t.Errorf("pass stats %+v, want the failure counted", st)
			case !c.landed && entries != entriesBefore:
				t.Errorf("failed pass changed the index: %d entries, had %d", entries, entriesBefore)
			}
			// A later pass completes the compaction, and the leader's
			// in-memory index follows the switch.
			if _, err := l.Compact(context.Background()); err != nil {
				t.Fatal(err)
			}
			memIndexMatches(t, l, e.store, tps)
			s.check(t, l)
			keys, entries := indexKeys(t, e.store, tps)
			if entries >= entriesBefore {
				t.Errorf("%d index entries after a clean pass, had %d", entries, entriesBefore)
			}
			for k := range keys {
				if !strings.HasSuffix(k, compactedSuffix) {
					t.Errorf("index still names flush object %s", k)
				}
			}
			// The pieces a failed step left (an orphan segment, replaced
			// objects) are garbage collection's, and reads survive it.
			e.clock.Advance(21 * time.Second)
			for range 2 {
				if _, err := l.CollectGarbage(context.Background()); err != nil {
					t.Fatal(err)
				}
				e.clock.Advance(21 * time.Second)
			}
			s.check(t, l)
		})
	}
}

// OffsetForTime, MaxTimestampOffset and retention work over compacted
// segments as over flush objects.
func TestCompactionTimeIndexAndRetention(t *testing.T) {
	onBackends(t, testCompactionTimeIndexAndRetention)
}

func testCompactionTimeIndexAndRetention(t *testing.T, open storeOpener) {
	t.Parallel()
	e := newEnv(t, open, nil)
	l := e.open(e.compactConfig("a1", 1<<10))
	topic := e.topic("events", 1, map[string]string{"retention.ms": "-1"})
	lead(t, l, topic)
	tp := tpOf(topic, 0)
	ctx := context.Background()
	// Timestamps: old ones (a day and more ago) first, then recent ones.
	nowMs := e.clock.Now().UnixMilli()
	var offsets []int64
	var stamps []int64
	for i := range 40 {
		ts := nowMs - 48*3600*1000 + int64(i)*60_000
		if i >= 20 {
			ts = nowMs - 3600*1000 + int64(i)*1000
		}
		b, err := batch.Build([]batch.Record{{Value: []byte(fmt.Sprint("v", i)), Timestamp: ts}, {Value: []byte("w"), Timestamp: ts + 1}}, batch.DefaultBuildOptions())
		if err != nil {
			t.Fatal(err)
		}
		res, err := l.Append(ctx, tp, b, AckDurable)
		if err != nil {
			t.Fatal(err)
		}
		offsets, stamps = append(offsets, res.BaseOffset), append(stamps, ts)
	}
	type answer struct {
		off, ts int64
		found   bool
	}
	query := func() []answer {
		var out []answer
		for _, ts := range append(slices.Clone(stamps), stamps[0]-1, stamps[39]+1, stamps[10]+1) {
			o, t2, ok, err := l.OffsetForTime(ctx, tp, ts)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, answer{o, t2, ok})
		}
		o, t2, ok, err := l.MaxTimestampOffset(ctx, tp)
		if err != nil {
			t.Fatal(err)
		}
		return append(out, answer{o, t2, ok})
	}
	want := query()
	if want[5].off != offsets[5] || !want[5].found {
		t.Fatalf("OffsetForTime before compaction = %+v, want offset %d", want[5], offsets[5])
	}
	st, err := l.Compact(ctx)
	if err != nil || st.Segments == 0 {
		t.Fatalf("Compact = %+v, %v; want segments written", st, err)
	}
	if got := query(); !slices.Equal(got, want) {
		t.Errorf("time index after compaction = %+v, want %+v", got, want)
	}
	// Retention by time: a week keeps everything, a day drops the old
	// half, segment by segment (never a kept record).
	topic.Config = map[string]string{"retention.ms": fmt.Sprint(24 * 3600 * 1000)}
	l.UpdateTopic(topic)
	if _, err := l.EnforceRetention(ctx); err != nil {
		t.Fatal(err)
	}
	_, logStart, err := l.HighWatermark(ctx, tp)
	if err != nil {
		t.Fatal(err)
	}
	if logStart == 0 || logStart > offsets[20] {
		t.Fatalf("log start after retention %d, want above 0 and at most %d (the first recent record)", logStart, offsets[20])
	}
	got, err := readBatches(ctx, l, tp)
	if err != nil {
		t.Fatal(err)
	}
	if h, _ := batch.ParseHeader(got[len(got)-1]); h.LastOffset() != offsets[39]+1 {
		t.Errorf("last batch ends at %d, want %d", h.LastOffset(), offsets[39]+1)
	}
}

// memIndexMatches fails if the leader's in-memory index of a partition
// names an object the store's index does not (after a switch, the leader
// would read objects garbage collection deletes).
func memIndexMatches(t *testing.T, l *Log, store metadata.Store, tps []metadata.TopicPartition) {
	t.Helper()
	stored, _ := indexKeys(t, store, tps)
	for _, tp := range tps {
		l.mu.Lock()
		part := l.partitions[tp]
		l.mu.Unlock()
		mem, _ := part.lookup(0, 1<<20)
		for _, me := range mem {
			if !stored[me.ObjectKey] {
				t.Errorf("%s: in-memory index names %s, which the store's index no longer does", tp, me.ObjectKey)
			}
		}
	}
}

// A partition with one run (a quiet one) has it rewritten too: otherwise
// its run would keep the whole multi-partition flush object alive.
func TestCompactionSingleRun(t *testing.T) { onBackends(t, testCompactionSingleRun) }

func testCompactionSingleRun(t *testing.T, open storeOpener) {
	t.Parallel()
	e := newEnv(t, open, nil)
	cfg := e.compactConfig("a1", 1<<20)
	cfg.Compaction.SegmentMaxAge = time.Second
	l := e.open(cfg)
	topic := e.topic("quiet", 1, nil)
	lead(t, l, topic)
	tps := partitionsOf(topic)
	s := &sent{batches: make(map[metadata.TopicPartition][][]byte)}
	produce(t, l, topic, s, 1, "only")
	if _, entries := indexKeys(t, e.store, tps); entries != 1 {
		t.Fatalf("%d index entries, want the one run", entries)
	}
	e.clock.Advance(2 * time.Second) // past SEGMENT_MAX_AGE: nothing can join it (within the lease)
	if _, err := l.Compact(context.Background()); err != nil {
		t.Fatal(err)
	}
	keys, entries := indexKeys(t, e.store, tps)
	for k := range keys {
		if entries != 1 || !strings.HasSuffix(k, compactedSuffix) {
			t.Fatalf("index names %v (%d entries), want one compacted segment", keys, entries)
		}
	}
	memIndexMatches(t, l, e.store, tps)
	s.check(t, l)
}

// multiRunHistory writes rounds flushes that each hold a run (one batch of
// runBytes) of every partition of topic, as a busy agent's flushes do, and
// returns what it sent. The seal waits for the last partition's batch:
// with multiRunConfig, once a first object is sealed (the first append,
// alone: an idle agent seals at once) only MaxObjectRecords, the
// partition count, seals.
func multiRunHistory(t *testing.T, l *Log, topic metadata.Topic, rounds, runBytes int) *sent {
	t.Helper()
	s := &sent{batches: make(map[metadata.TopicPartition][][]byte)}
	produce(t, l, topic, s, 1, "first")
	multiRunRounds(t, l, topic, s, rounds, runBytes)
	return s
}

// multiRunRounds is multiRunHistory after its first append, adding to s.
func multiRunRounds(t *testing.T, l *Log, topic metadata.Topic, s *sent, rounds, runBytes int) {
	t.Helper()
	ctx := context.Background()
	for r := range rounds {
		var pending []*Appending
		var origs [][]byte
		for p := range topic.Partitions {
			b := mkBatch(t, fmt.Sprintf("%04d-%0*d", r, runBytes, p), 1)
			origs = append(origs, slices.Clone(b))
			a, err := l.AppendAsync(ctx, tpOf(topic, p), b, AckDurable)
			if err != nil {
				t.Fatal(err)
			}
			pending = append(pending, a)
		}
		for p, a := range pending {
			res, err := a.Wait(ctx)
			if err != nil {
				t.Fatal(err)
			}
			tp := tpOf(topic, int32(p))
			epoch, _ := l.LeaderEpoch(tp)
			s.add(tp, origs[p], res.BaseOffset, epoch)
		}
	}
}

// multiRunConfig is compactConfig for multiRunHistory: a flush seals when
// every partition has appended once, not before, and every read of an
// old run is a GET.
func (e *env) multiRunConfig(partitions int) Config {
	cfg := e.compactConfig("a1", 1<<20)
	cfg.MaxObjectRecords = partitions
	cfg.FlushMinInterval, cfg.FlushInterval, cfg.DurableMaxAge = time.Hour, time.Hour, time.Hour
	cfg.ReadCacheBytes, cfg.HotTailBytes = -1, -1
	cfg.Compaction.SegmentMaxAge = 1500 * time.Millisecond
	return cfg
}

// A pass reads each flush object once, however many partitions' runs it
// holds (one GET per run would cost partitions × flushes GETs).
func TestCompactionReadsEachObjectOnce(t *testing.T) {
	onBackends(t, testCompactionReadsEachObjectOnce)
}

func testCompactionReadsEachObjectOnce(t *testing.T, open storeOpener) {
	t.Parallel()
	bucket := objstore.NewCounting(objstore.NewMemory())
	e := newEnv(t, open, bucket)
	const partitions = 4
	l := e.open(e.multiRunConfig(partitions))
	topic := e.topic("busy", partitions, nil)
	lead(t, l, topic)
	tps := partitionsOf(topic)
	s := multiRunHistory(t, l, topic, 12, 200)
	objects, entries := indexKeys(t, e.store, tps)
	if entries < 2*len(objects) {
		t.Fatalf("%d runs in %d flush objects; the test needs objects holding several runs", entries, len(objects))
	}
	e.clock.Advance(2 * time.Second) // past SegmentMaxAge: every group is complete
	gets := bucket.Gets()
	st, err := l.Compact(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Entries != entries || st.Conflicts != 0 {
		t.Fatalf("pass = %+v; want all %d entries replaced", st, entries)
	}
	if n := bucket.Gets() - gets; n > int64(len(objects)) {
		t.Errorf("the pass made %d GETs for %d runs in %d flush objects; want at most one per object", n, st.Entries, len(objects))
	}
	if st.Yielded != 0 {
		t.Errorf("the pass waited %v for appends; the agent took none (an idle agent compacts at full speed)", st.Yielded)
	}
	if st.ObjectsRead != len(objects) {
		t.Errorf("pass stats count %d objects read, want %d", st.ObjectsRead, len(objects))
	}
	if s := testutil.ToFloat64(l.compaction.seconds); s <= 0 {
		t.Errorf("streamhouse_log_compaction_seconds_total = %v after a pass, want its time", s)
	}
	memIndexMatches(t, l, e.store, tps)
	s.check(t, l)
}

// A pass holds at most CompactionConfig.BufferBytes of runs for segments
// not yet complete (plus one read and its copies), even when one
// partition's segment alone is larger (SegmentMaxBytes above
// BufferBytes): it then writes that segment in pieces, and still reads
// each object once per batch (here one partition a batch) and rewrites
// every run.
func TestCompactionBufferBound(t *testing.T) { onBackends(t, testCompactionBufferBound) }

func testCompactionBufferBound(t *testing.T, open storeOpener) {
	t.Parallel()
	bucket := objstore.NewCounting(objstore.NewMemory())
	e := newEnv(t, open, bucket)
	const partitions = 8
	cfg := e.multiRunConfig(partitions)
	cfg.Compaction.BufferBytes = 4 << 10
	l := e.open(cfg)
	topic := e.topic("busy", partitions, nil)
	lead(t, l, topic)
	tps := partitionsOf(topic)
	s := multiRunHistory(t, l, topic, 10, 400)
	objects, entries := indexKeys(t, e.store, tps)
	var total, largest int64
	err := bucket.List(context.Background(), "", func(o objstore.ObjectInfo) error {
		if objects[o.Key] {
			total += o.Size
			largest = max(largest, o.Size)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	bound := cfg.Compaction.BufferBytes + 2*largest
	if total <= 2*bound {
		t.Fatalf("%d bytes of flush objects; the test needs well over the bound %d", total, bound)
	}
	e.clock.Advance(2 * time.Second)
	gets := bucket.Gets()
	st, err := l.Compact(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Entries != entries || st.Conflicts != 0 || st.Segments <= partitions {
		t.Fatalf("pass = %+v; want all %d entries replaced, in more than one segment per partition", st, entries)
	}
	if st.PeakBytes > bound {
		t.Errorf("the pass held %d bytes at once, want at most %d (BufferBytes + one read of the largest object and its copies)", st.PeakBytes, bound)
	}
	if n := bucket.Gets() - gets; n > int64(partitions*len(objects)) {
		t.Errorf("the pass made %d GETs for %d flush objects; want at most one per object and batch (%d batches)", n, len(objects), partitions)
	}
	keys, _ := indexKeys(t, e.store, tps)
	for k := range keys {
		if !strings.HasSuffix(k, compactedSuffix) {
			t.Errorf("index still names flush object %s", k)
		}
	}
	memIndexMatches(t, l, e.store, tps)
	s.check(t, l)
}

// BufferBytes bounds a pass's memory without fragmenting segments: an
// agent leading more busy partitions than fit the buffer at once
// compacts them in batches of partitions (each batch reads the objects it
// needs once), not by writing every partition's segment in small pieces
// (pieces that are never regrouped).
func TestCompactionBufferKeepsSegmentsWhole(t *testing.T) {
	onBackends(t, testCompactionBufferKeepsSegmentsWhole)
}

func testCompactionBufferKeepsSegmentsWhole(t *testing.T, open storeOpener) {
	t.Parallel()
	bucket := objstore.NewCounting(objstore.NewMemory())
	e := newEnv(t, open, bucket)
	const partitions, rounds = 16, 12
	cfg := e.multiRunConfig(partitions)
	cfg.Compaction.BufferBytes = 16 << 10
	l := e.open(cfg)
	topic := e.topic("busy", partitions, nil)
	lead(t, l, topic)
	tps := partitionsOf(topic)
	s := multiRunHistory(t, l, topic, rounds, 400)
	objects, entries := indexKeys(t, e.store, tps)
	// The partitions' runs together are well over the buffer; each
	// partition's alone fits it.
	var total, largestPartition, largestObject int64
	ctx := context.Background()
	for _, tp := range tps {
		es, err := e.store.ListIndex(ctx, tp, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		for _, en := range es {
			n += en.Len
		}
		total += n
		largestPartition = max(largestPartition, n)
	}
	err := bucket.List(ctx, "", func(o objstore.ObjectInfo) error {
		if objects[o.Key] {
			largestObject = max(largestObject, o.Size)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if total < 4*cfg.Compaction.BufferBytes || largestPartition > cfg.Compaction.BufferBytes/2 {
		t.Fatalf("%d bytes of runs, %d in the largest partition; the test needs well over BufferBytes %d in all and under half of it each",
			total, largestPartition, cfg.Compaction.BufferBytes)
	}
	e.clock.Advance(2 * time.Second)
	gets := bucket.Gets()
	st, err := l.Compact(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Entries != entries || st.Conflicts != 0 {
		t.Fatalf("pass = %+v; want all %d entries replaced", st, entries)
	}
	if perSegment := float64(st.Entries) / float64(st.Segments); perSegment < rounds/2 {
		t.Errorf("%d runs in %d segments (%.1f a segment); want at least %d a segment (BufferBytes must not cut segments short)",
			st.Entries, st.Segments, perSegment, rounds/2)
	}
	if bound := cfg.Compaction.BufferBytes + 2*largestObject; st.PeakBytes > bound {
		t.Errorf("the pass held %d bytes at once, want at most %d (BufferBytes + one read and its copies)", st.PeakBytes, bound)
	}
	// Batches of BufferBytes/largestPartition partitions, each reading an
	// object once.
	batches := (partitions + int(cfg.Compaction.BufferBytes/largestPartition) - 1) / int(cfg.Compaction.BufferBytes/largestPartition)
	if n := bucket.Gets() - gets; n > int64(batches*len(objects)) {
		t.Errorf("the pass made %d GETs for %d flush objects; want at most one per object and batch (%d batches)", n, len(objects), batches)
	}
	memIndexMatches(t, l, e.store, tps)
	s.check(t, l)
}

// A read takes the runs of one object the pass needs, not the wide gaps
// between them: runs of partitions led elsewhere between two taken runs
// split the read when wider than a read chunk.
func TestCompactionReadSkipsGaps(t *testing.T) { onBackends(t, testCompactionReadSkipsGaps) }

func testCompactionReadSkipsGaps(t *testing.T, open storeOpener) {
	t.Parallel()
	bucket := objstore.NewCounting(objstore.NewMemory())
	e := newEnv(t, open, bucket)
	const partitions, bigBatches = 3, 4
	cfg := e.multiRunConfig(partitions)
	cfg.MaxObjectRecords = partitions - 1 + bigBatches
	l := e.open(cfg)
	topic := e.topic("gappy", partitions, nil)
	lead(t, l, topic)
	ctx := context.Background()
	// One flush object: partition 0's run, partition 1's run of several
	// read chunks, partition 2's run, in that order.
	s := &sent{batches: make(map[metadata.TopicPartition][][]byte)}
	produce(t, l, topic, s, 1, "first") // sealed alone
	var pending []*Appending
	var origs [][]byte
	var parts []int32
	for p := range int32(partitions) {
		bs := [][]byte{mkBatch(t, fmt.Sprintf("small-%d", p), 1)}
		if p == 1 {
			bs = nil
			for i := range bigBatches {
				bs = append(bs, mkBatch(t, fmt.Sprintf("%d%s", i, strings.Repeat("x", 900<<10)), 1))
			}
		}
		for _, b := range bs {
			origs = append(origs, slices.Clone(b))
			a, err := l.AppendAsync(ctx, tpOf(topic, p), b, AckDurable)
			if err != nil {
				t.Fatal(err)
			}
			pending = append(pending, a)
			parts = append(parts, p)
		}
	}
	for i, a := range pending {
		res, err := a.Wait(ctx)
		if err != nil {
			t.Fatal(err)
		}
		tp := tpOf(topic, parts[i])
		epoch, _ := l.LeaderEpoch(tp)
		s.add(tp, origs[i], res.BaseOffset, epoch)
	}
	es, err := e.store.ListIndex(ctx, tpOf(topic, 1), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	gap := es[len(es)-1]
	// Partition 1 is led elsewhere from now on: its run stays where it is.
	if err := l.Release(ctx, tpOf(topic, 1)); err != nil {
		t.Fatal(err)
	}
	var around []metadata.IndexEntry
	for _, p := range []int32{0, 2} {
		es, err := e.store.ListIndex(ctx, tpOf(topic, p), 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		around = append(around, es[len(es)-1])
	}
	if around[0].ObjectKey != gap.ObjectKey || around[1].ObjectKey != gap.ObjectKey ||
		!(around[0].Pos < gap.Pos && gap.Pos < around[1].Pos) || gap.Len < 2*cfg.ReadChunkBytes {
		t.Fatalf("runs %+v around %+v; the test needs partition 1's run of several read chunks between the others' in one object", around, gap)
	}
	e.clock.Advance(2 * time.Second)
	st, err := l.Compact(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Segments == 0 || st.Conflicts != 0 {
		t.Fatalf("pass = %+v; want segments written", st)
	}
	if st.ReadBytes > 4*st.Bytes {
		t.Errorf("the pass read %d bytes to rewrite %d; want at most 4 times as many (not the %d-byte gap)", st.ReadBytes, st.Bytes, gap.Len)
	}
	for _, p := range []int32{0, 2} {
		tp := tpOf(topic, p)
		got, err := readBatches(ctx, l, tp)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(s.batches[tp]) {
			t.Errorf("%s: %d batches read back, want %d", tp, len(got), len(s.batches[tp]))
		}
	}
}

// A failed read of a flush object fails every segment needing runs of
// it for this pass, but counts (streamhouse_log_compaction_switch_conflicts_total
// {reason="error"}, CompactionStats.Conflicts) and logs one failure, not
// one per partition. The next pass compacts everything.
func TestCompactionFailedReadCountedOnce(t *testing.T) {
	onBackends(t, testCompactionFailedReadCountedOnce)
}

func testCompactionFailedReadCountedOnce(t *testing.T, open storeOpener) {
	t.Parallel()
	bucket := objstore.NewFaulty(objstore.NewMemory())
	e := newEnv(t, open, bucket)
	const partitions = 4
	l := e.open(e.multiRunConfig(partitions))
	topic := e.topic("busy", partitions, nil)
	lead(t, l, topic)
	tps := partitionsOf(topic)
	s := multiRunHistory(t, l, topic, 3, 200)
	ctx := context.Background()
	// A flush object holding a run of every partition.
	es, err := e.store.ListIndex(ctx, tps[partitions-1], 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	key := es[0].ObjectKey
	e.clock.Advance(2 * time.Second)
	bucket.Inject(objstore.Fault{Op: objstore.OpGetRange, Match: func(k string) bool { return k == key }})
	st, err := l.Compact(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Segments != 0 {
		t.Fatalf("pass = %+v; want every partition's segment, each needing a run of %s, failed", st, key)
	}
	if c := testutil.ToFloat64(l.compaction.conflicts.WithLabelValues("error")); st.Conflicts != 1 || c != 1 {
		t.Errorf("one failed read of an object holding runs of %d partitions counted %d conflicts, metric %v; want 1", partitions, st.Conflicts, c)
	}
	bucket.Clear()
	for pass := 0; ; pass++ {
		st, err := l.Compact(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Entries == 0 {
			break
		}
		if pass == 5 {
			t.Fatal("passes still compacting after 5")
		}
	}
	keys, _ := indexKeys(t, e.store, tps)
	for k := range keys {
		if !strings.HasSuffix(k, compactedSuffix) {
			t.Errorf("index still names flush object %s", k)
		}
	}
	memIndexMatches(t, l, e.store, tps)
	s.check(t, l)
}

// A pass plans at most about passEntries entries; the partition it cuts
// short comes first next time, unless it came first this time too: then
// the next partition does, so one partition with a long history does not
// hold the others back. Passes end up compacting everything.
func TestCompactionPassBound(t *testing.T) { onBackends(t, testCompactionPassBound) }

func testCompactionPassBound(t *testing.T, open storeOpener) {
	t.Parallel()
	e := newEnv(t, open, nil)
	const partitions = 2
	cfg := e.multiRunConfig(partitions)
	cfg.Compaction.SegmentMaxBytes = 600 // two runs of multiRunHistory's 200 bytes
	l := e.open(cfg)
	l.compaction.passEntries = 4
	topic := e.topic("busy", partitions, nil)
	lead(t, l, topic)
	tps := partitionsOf(topic)
	s := multiRunHistory(t, l, topic, 8, 200)
	e.clock.Advance(2 * time.Second)
	compacted := func(tp metadata.TopicPartition) int {
		keys, _ := indexKeys(t, e.store, []metadata.TopicPartition{tp})
		n := 0
		for k := range keys {
			if strings.HasSuffix(k, compactedSuffix) {
				n++
			}
		}
		return n
	}
	ctx := context.Background()
	st, err := l.Compact(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Entries == 0 || st.Entries > 6 || compacted(tps[0]) == 0 || compacted(tps[1]) != 0 {
		t.Fatalf("first pass = %+v, segments %d and %d; want at most 4 entries and a group, all of partition 0",
			st, compacted(tps[0]), compacted(tps[1]))
	}
	if _, err := l.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	if compacted(tps[1]) == 0 {
		t.Fatalf("the second pass left partition 1 alone; it was cut short by partition 0 and should come first")
	}
	for pass := 0; ; pass++ {
		st, err := l.Compact(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Entries == 0 {
			break
		}
		if pass == 20 {
			t.Fatal("passes still compacting after 20")
		}
	}
	keys, _ := indexKeys(t, e.store, tps)
	for k := range keys {
		if !strings.HasSuffix(k, compactedSuffix) {
			t.Errorf("index still names flush object %s", k)
		}
	}
	memIndexMatches(t, l, e.store, tps)
	s.check(t, l)
}

// While appends press the agent, a pass works at most BusyShare of the
// time: it waits after each read and segment write.
func TestCompactionYieldsToAppends(t *testing.T) { onBackends(t, testCompactionYieldsToAppends) }

func testCompactionYieldsToAppends(t *testing.T, open storeOpener) {
	t.Parallel()
	e := newEnv(t, open, nil)
	const partitions = 4
	cfg := e.multiRunConfig(partitions)
	cfg.Compaction.BusyShare = 0.25
	// Room for a round of multiRunHistory's runs, and for the pending
	// append below to fill more than yieldFull of it.
	cfg.MaxPendingBytes = 2 << 10
	l := e.open(cfg)
	topic := e.topic("busy", partitions, nil)
	lead(t, l, topic)
	s := multiRunHistory(t, l, topic, 8, 200)
	e.clock.Advance(2 * time.Second)
	// An append waiting in the buffer (a flush seals only once every
	// partition has one), holding over half of MaxPendingBytes: appends
	// press the agent throughout the pass.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := l.AppendAsync(ctx, tpOf(topic, 0), mkBatch(t, strings.Repeat("p", 1200), 1), AckDurable); err != nil {
		t.Fatal(err)
	}
	if p := l.appendPressure(); p < yieldFull {
		t.Fatalf("append pressure %v; the test needs at least %v", p, yieldFull)
	}
	start := time.Now()
	st, err := l.Compact(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if st.Segments == 0 || st.Conflicts != 0 {
		t.Fatalf("pass = %+v; want segments written", st)
	}
	// Each wait is three times its step (BusyShare 0.25), and timers never
	// fire early.
	if st.Busy <= 0 || st.Yielded < 3*st.Busy || took < st.Yielded {
		t.Errorf("pass worked %v, waited %v, took %v; want waits of at least three times the work, within the pass", st.Busy, st.Yielded, took)
	}
	if y := testutil.ToFloat64(l.compaction.yielded); math.Abs(y-st.Yielded.Seconds()) > 1e-6 {
		t.Errorf("streamhouse_log_compaction_yield_seconds_total = %v, want the pass's %v", y, st.Yielded.Seconds())
	}
	if s := testutil.ToFloat64(l.compaction.seconds); s < st.Yielded.Seconds() || s > took.Seconds() {
		t.Errorf("streamhouse_log_compaction_seconds_total = %v, want between the waits %v and the pass %v", s, st.Yielded.Seconds(), took.Seconds())
	}
	memIndexMatches(t, l, e.store, partitionsOf(topic))
	s.check(t, l)
}

// A trickle of appends (a flush sealed every half second, a batch
// buffered) leaves the agent spare capacity: compaction does not wait for
// it, so it is not slowed down for as long as any traffic comes in.
func TestCompactionTrickleDoesNotYield(t *testing.T) {
	onBackends(t, testCompactionTrickleDoesNotYield)
}

func testCompactionTrickleDoesNotYield(t *testing.T, open storeOpener) {
	t.Parallel()
	e := newEnv(t, open, nil)
	const partitions = 4
	cfg := e.multiRunConfig(partitions)
	cfg.Compaction.BusyShare = 0.25
	l := e.open(cfg)
	topic := e.topic("busy", partitions, nil)
	lead(t, l, topic)
	s := multiRunHistory(t, l, topic, 8, 200)
	e.clock.Advance(2 * time.Second)
	// A flush sealed just now (its runs are newer than MinAge's cut-off
	// once the clock moves on below, and stay out of this pass's plan) and
	// one batch buffered: the agent takes appends when the pass starts.
	multiRunRounds(t, l, topic, s, 1, 200)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := l.AppendAsync(ctx, tpOf(topic, 0), mkBatch(t, "pending", 1), AckDurable); err != nil {
		t.Fatal(err)
	}
	// During the pass, the trickle goes on: a flush sealed every half
	// second (bounded, well within the GC grace the switches check).
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for r := 0; r < 6; r++ {
			select {
			case <-done:
				return
			default:
			}
			e.clock.Advance(500 * time.Millisecond)
			for p := 1; p < partitions; p++ {
				a, err := l.AppendAsync(ctx, tpOf(topic, int32(p)), mkBatch(t, fmt.Sprintf("trickle-%d-%d", r, p), 1), AckDurable)
				if err != nil {
					t.Error(err)
					return
				}
				if r == 0 && p == partitions-1 {
					// The round seals with the pending batch of partition 0.
					if _, err := a.Wait(ctx); err != nil {
						t.Error(err)
						return
					}
				}
			}
			if _, err := l.AppendAsync(ctx, tpOf(topic, 0), mkBatch(t, fmt.Sprintf("trickle-%d-0", r), 1), AckDurable); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	st, err := l.Compact(context.Background())
	close(done)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if st.Segments == 0 || st.Conflicts != 0 {
		t.Fatalf("pass = %+v; want segments written", st)
	}
	if st.Yielded != 0 {
		t.Errorf("the pass waited %v (worked %v) for a trickle of appends; the agent had spare capacity", st.Yielded, st.Busy)
	}
	memIndexMatches(t, l, e.store, partitionsOf(topic))
}

// A pass's rewrites stop at PassMaxDuration: the rest waits for the next
// pass, the pass still succeeds (and goes on to key compaction), and the
// deferred entries are counted. Even a limit shorter than the first
// group's reads does not stop progress: each pass still writes its first
// segment, so passes at that limit compact the whole backlog in turn.
func TestCompactionPassMaxDuration(t *testing.T) {
	onBackends(t, testCompactionPassMaxDuration)
}

func testCompactionPassMaxDuration(t *testing.T, open storeOpener) {
	t.Parallel()
	e := newEnv(t, open, nil)
	const partitions = 4
	cfg := e.multiRunConfig(partitions)
	cfg.Compaction.PassMaxDuration = time.Nanosecond // up after the first step
	l := e.open(cfg)
	topic := e.topic("busy", partitions, nil)
	lead(t, l, topic)
	tps := partitionsOf(topic)
	s := multiRunHistory(t, l, topic, 8, 200)
	_, entries := indexKeys(t, e.store, tps)
	e.clock.Advance(2 * time.Second)
	ctx := context.Background()
	st, err := l.Compact(ctx)
	if err != nil {
		t.Fatalf("pass cut short by its time: %v; want success", err)
	}
	if st.Entries == 0 || st.Segments == 0 || st.Deferred == 0 || st.Entries+st.Deferred != entries || st.Entries == entries {
		t.Fatalf("pass = %+v; want part of the %d entries replaced (at least the first segment) and the rest deferred", st, entries)
	}
	if d := testutil.ToFloat64(l.compaction.deferred); d != float64(st.Deferred) {
		t.Errorf("streamhouse_log_compaction_deferred_entries_total = %v, want %d", d, st.Deferred)
	}
	// Every pass at the same limit replaces something more, until nothing
	// is left: the backlog never stalls.
	left := st.Deferred
	for pass := 2; left > 0; pass++ {
		if pass > entries {
			t.Fatalf("%d passes at a 1ns limit left %d entries", pass, left)
		}
		stn, err := l.Compact(ctx)
		if err != nil || stn.Entries == 0 || stn.Entries+stn.Deferred != left {
			t.Fatalf("pass %d = %+v, %v; want some of the %d entries left replaced", pass, stn, err, left)
		}
		left = stn.Deferred
	}
	l.cfg.Compaction.PassMaxDuration = time.Hour
	if st2, err := l.Compact(ctx); err != nil || st2.Deferred != 0 || st2.Entries != 0 {
		t.Fatalf("last pass = %+v, %v; want nothing left to replace", st2, err)
	}
	memIndexMatches(t, l, e.store, tps)
	s.check(t, l)
}

// listSpy is the real store, recording the offsets object compaction
// lists the index from.
type listSpy struct {
	metadata.Store
	mu    sync.Mutex
	froms map[metadata.TopicPartition][]int64
}

func (s *listSpy) ListIndex(ctx context.Context, tp metadata.TopicPartition, from int64, limit int) ([]metadata.IndexEntry, error) {
	s.mu.Lock()
	s.froms[tp] = append(s.froms[tp], from)
	s.mu.Unlock()
	return s.Store.ListIndex(ctx, tp, from, limit)
}

// A pass lists a partition's index from where the last pass found the
// first entry not in a compacted segment, not from the log start: a
// long-retained log is not read again each pass.
func TestCompactionSkipsCompactedPrefix(t *testing.T) {
	onBackends(t, testCompactionSkipsCompactedPrefix)
}

func testCompactionSkipsCompactedPrefix(t *testing.T, open storeOpener) {
	t.Parallel()
	e := newEnv(t, open, nil)
	spy := &listSpy{Store: e.store, froms: make(map[metadata.TopicPartition][]int64)}
	e.store = spy
	const partitions = 2
	l := e.open(e.multiRunConfig(partitions))
	topic := e.topic("busy", partitions, nil)
	lead(t, l, topic)
	tps := partitionsOf(topic)
	s := multiRunHistory(t, l, topic, 6, 200)
	e.clock.Advance(2 * time.Second)
	ctx := context.Background()
	if st, err := l.Compact(ctx); err != nil || st.Segments == 0 {
		t.Fatalf("first pass = %+v, %v; want segments", st, err)
	}
	// More history: the next pass compacts it, listing from its start.
	multiRunRounds(t, l, topic, s, 4, 200)
	ends := make(map[metadata.TopicPartition]int64)
	for _, tp := range tps {
		es, err := e.store.ListIndex(ctx, tp, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, en := range es {
			if !strings.HasSuffix(en.ObjectKey, compactedSuffix) {
				break
			}
			ends[tp] = en.LastOffset + 1
		}
		if ends[tp] == 0 {
			t.Fatalf("%s: no compacted prefix after the first pass", tp)
		}
	}
	e.clock.Advance(2 * time.Second)
	spy.mu.Lock()
	clear(spy.froms)
	spy.mu.Unlock()
	if st, err := l.Compact(ctx); err != nil || st.Segments == 0 {
		t.Fatalf("second pass = %+v, %v; want the new history compacted", st, err)
	}
	spy.mu.Lock()
	for _, tp := range tps {
		froms := spy.froms[tp]
		if len(froms) == 0 || froms[0] < ends[tp] {
			t.Errorf("%s: the second pass listed the index from %v; want from the end of the compacted prefix, %d", tp, froms, ends[tp])
		}
	}
	spy.mu.Unlock()
	keys, _ := indexKeys(t, e.store, tps)
	for k := range keys {
		if !strings.HasSuffix(k, compactedSuffix) {
			t.Errorf("index still names flush object %s", k)
		}
	}
	memIndexMatches(t, l, e.store, tps)
	s.check(t, l)
}

// Past PassMaxDuration, a group let go under BufferBytes (its runs read
// out of seal order) is no progress (the next pass plans it again, and
// stopping there would never reach the groups after it): the pass reads
// on, at most its plan (each object once), and lets every group go.
func TestCompactionPassTimeAfterLetGo(t *testing.T) {
	onBackends(t, testCompactionPassTimeAfterLetGo)
}

func testCompactionPassTimeAfterLetGo(t *testing.T, open storeOpener) {
	t.Parallel()
	e := newEnv(t, open, nil)
	const partitions = 4
	l := e.open(e.multiRunConfig(partitions))
	topic := e.topic("busy", partitions, nil)
	lead(t, l, topic)
	multiRunHistory(t, l, topic, 8, 200)
	e.clock.Advance(2 * time.Second)
	ctx := context.Background()
	l.compaction.mu.Lock()
	defer l.compaction.mu.Unlock()
	l.mu.Lock()
	var parts []*partition
	for _, p := range l.partitions {
		parts = append(parts, p)
	}
	l.mu.Unlock()
	sort.Slice(parts, func(i, j int) bool { return parts[i].tp.String() < parts[j].tp.String() })
	groups, err := l.planCompaction(ctx, parts)
	if err != nil {
		t.Fatal(err)
	}
	// The objects' creation times reversed: each group's first run is in
	// the object read last, so no group has a read prefix to write.
	created := make(map[string]int64)
	for _, g := range groups {
		for _, en := range g.old {
			created[en.ObjectKey] = en.ObjectCreatedAt
		}
	}
	var lo, hi int64 = math.MaxInt64, 0
	for _, c := range created {
		lo, hi = min(lo, c), max(hi, c)
	}
	multi, entries := 0, 0
	for _, g := range groups {
		for i := range g.old {
			g.old[i].ObjectCreatedAt = lo + hi - created[g.old[i].ObjectKey]
		}
		if len(g.old) > 1 && g.old[0].ObjectKey != g.old[len(g.old)-1].ObjectKey {
			multi++
		}
		entries += len(g.old)
	}
	if multi < 4 {
		t.Fatalf("%d groups spanning objects; the test needs at least 4", multi)
	}
	// A buffer below one run: each partition a batch of its own, each
	// group let go at its first read.
	l.cfg.Compaction.BufferBytes = 1
	l.cfg.Compaction.PassMaxDuration = time.Nanosecond
	var st CompactionStats
	if err := l.rewriteGroups(ctx, groups, &st); err != nil {
		t.Fatal(err)
	}
	if st.ObjectsRead < 3 || st.ObjectsRead > len(created) || st.Segments != 0 || st.Deferred != entries {
		t.Fatalf("pass = %+v over %d groups (%d entries, %d objects); want more than the first group's reads and at most each object once, nothing written, every entry deferred",
			st, len(groups), entries, len(created))
	}
}
