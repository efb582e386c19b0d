package partlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/internal/batch"
	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/metadata/metadatatest"
	"github.com/streamhouse/streamhouse/internal/objstore"
	"github.com/streamhouse/streamhouse/internal/testutil"
)

// env is one test's world: a bucket and a metadata store shared by the logs
// (agents) the test opens.
type env struct {
	t      *testing.T
	bucket objstore.Bucket
	store  metadata.Store
	clock  *clock
}

// clock is a settable clock for lease and GC tests; it runs with real time
// plus an offset.
type clock struct{ offset atomic.Int64 }

func (c *clock) Now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

// storeOpener opens a fresh metadata store for one test.
type storeOpener = func(testing.TB) metadata.Store

// onBackends runs a test on both metadata stores: SQLite, and PostgreSQL
// when scripts/services.sh runs it (in CI it must).
func onBackends(t *testing.T, fn func(*testing.T, storeOpener)) {
	t.Parallel()
	t.Run("sqlite", func(t *testing.T) { fn(t, metadatatest.OpenSQLite) })
	t.Run("postgres", func(t *testing.T) { fn(t, metadatatest.OpenPostgres) })
}

func newEnv(t *testing.T, open storeOpener, bucket objstore.Bucket) *env {
	t.Helper()
	if bucket == nil {
		bucket = objstore.NewMemory()
	}
	return &env{t: t, bucket: bucket, store: open(t), clock: &clock{}}
}

func (e *env) config(agent string) Config {
	return Config{
		AgentID:  agent,
		Bucket:   e.bucket,
		Store:    e.store,
		Now:      e.clock.Now,
		LeaseTTL: 10 * time.Second,
		GCGrace:  time.Minute,
	}
}

func (e *env) open(cfg Config) *Log {
	e.t.Helper()
	l, err := Open(context.Background(), cfg)
	if err != nil {
		e.t.Fatalf("open log: %v", err)
	}
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = l.Close(ctx)
	})
	return l
}

func (e *env) topic(name string, partitions int32, config map[string]string) metadata.Topic {
	e.t.Helper()
	tp, err := e.store.CreateTopic(context.Background(), metadata.Topic{Name: name, Partitions: partitions, Config: config})
	if err != nil {
		e.t.Fatalf("create topic: %v", err)
	}
	return tp
}

func lead(t *testing.T, l *Log, topic metadata.Topic) {
	t.Helper()
	for p := int32(0); p < topic.Partitions; p++ {
		if err := l.Lead(context.Background(), topic, p); err != nil {
			t.Fatalf("lead %s/%d: %v", topic.Name, p, err)
		}
	}
}

func tpOf(topic metadata.Topic, p int32) metadata.TopicPartition {
	return metadata.TopicPartition{TopicID: topic.ID, Partition: p}
}

// mkBatch builds an uncompressed batch of n records with values "prefix-i".
func mkBatch(t testing.TB, prefix string, n int) []byte {
	t.Helper()
	recs := make([]batch.Record, n)
	for i := range recs {
		recs[i] = batch.Record{Key: []byte(fmt.Sprintf("k%d", i)), Value: []byte(fmt.Sprintf("%s-%d", prefix, i)), Timestamp: 1700000000000 + int64(i)}
	}
	b, err := batch.Build(recs, batch.DefaultBuildOptions())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func idemBatch(t testing.TB, pid int64, epoch int16, seq int32, n int) []byte {
	t.Helper()
	recs := make([]batch.Record, n)
	for i := range recs {
		recs[i] = batch.Record{Value: []byte(fmt.Sprintf("p%d-s%d", pid, int(seq)+i))}
	}
	opts := batch.DefaultBuildOptions()
	opts.ProducerID, opts.ProducerEpoch, opts.BaseSequence = pid, epoch, seq
	b, err := batch.Build(recs, opts)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// readAll reads tp from offset 0 to the high watermark and returns every
// record, checking offsets are dense from the log start.
func readAll(t *testing.T, l *Log, tp metadata.TopicPartition) []batch.Record {
	t.Helper()
	ctx := context.Background()
	var out []batch.Record
	off := int64(0)
	for {
		res, err := l.Read(ctx, tp, off, 1<<20, 0)
		if err != nil {
			t.Fatalf("read %s at %d: %v", tp, off, err)
		}
		if res.Size == 0 {
			if off != res.HighWatermark {
				t.Fatalf("read stopped at %d before high watermark %d", off, res.HighWatermark)
			}
			return out
		}
		bs, err := batch.Split(res.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range bs {
			if _, err := batch.Validate(b, 0, true); err != nil {
				t.Fatalf("stored batch invalid: %v", err)
			}
			_, recs, err := batch.Records(b)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				if r.Offset < off {
					continue
				}
				if r.Offset != int64(len(out)) {
					t.Fatalf("offset %d, want dense %d", r.Offset, len(out))
				}
				out = append(out, r)
			}
		}
		off = res.NextOffset
	}
}

func TestAppendAndReadBack(t *testing.T) { onBackends(t, testAppendAndReadBack) }

func testAppendAndReadBack(t *testing.T, open storeOpener) {
	t.Parallel()
	e := newEnv(t, open, nil)
	l := e.open(e.config("a1"))
	topic := e.topic("orders", 3, nil)
	lead(t, l, topic)
	ctx := context.Background()

	var want [3][][]byte
	for i := 0; i < 30; i++ {
		p := int32(i % 3)
		b := mkBatch(t, fmt.Sprintf("b%d", i), 1+i%4)
		orig := append([]byte(nil), b...)
		res, err := l.Append(ctx, tpOf(topic, p), b, AckDurable)
		if err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		if res.BaseOffset != int64(countRecords(t, want[p])) {
			t.Fatalf("append %d: base offset %d, want %d", i, res.BaseOffset, countRecords(t, want[p]))
		}
		want[p] = append(want[p], orig)
	}
	for p := int32(0); p < 3; p++ {
		res, err := l.Read(ctx, tpOf(topic, p), 0, 1<<20, 0)
		if err != nil {
			t.Fatal(err)
		}
		got, err := batch.Split(res.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want[p]) {
			t.Fatalf("partition %d: %d batches, want %d", p, len(got), len(want[p]))
		}
		off := int64(0)
		for i, g := range got {
			// Byte-for-byte what the client sent, but for the base offset
			// and partition leader epoch, which the leader fills in.
			if !bytes.Equal(g[12:], withEpoch(want[p][i], 1)[12:]) || !bytes.Equal(g[8:12], want[p][i][8:12]) {
				t.Fatalf("partition %d batch %d differs from what was sent", p, i)
			}
			h, _ := batch.ParseHeader(g)
			if h.BaseOffset != off {
				t.Fatalf("partition %d batch %d: base offset %d, want %d", p, i, h.BaseOffset, off)
			}
			off = h.LastOffset() + 1
		}
		if res.HighWatermark != off {
			t.Fatalf("high watermark %d, want %d", res.HighWatermark, off)
		}
	}
}

func withEpoch(b []byte, epoch int32) []byte {
	c := append([]byte(nil), b...)
	batch.SetPartitionLeaderEpoch(c, epoch)
	return c
}

func countRecords(t *testing.T, bs [][]byte) int {
	n := 0
	for _, b := range bs {
		h, err := batch.ParseHeader(b)
		if err != nil {
			t.Fatal(err)
		}
		n += int(h.NumRecords)
	}
	return n
}

func TestAppendRejectsBadInputAndStoresNothing(t *testing.T) {
	onBackends(t, testAppendRejectsBadInputAndStoresNothing)
}

func testAppendRejectsBadInputAndStoresNothing(t *testing.T, open storeOpener) {
	t.Parallel()
	e := newEnv(t, open, nil)
	l := e.open(e.config("a1"))
	topic := e.topic("t", 1, map[string]string{"max.message.bytes": "2000"})
	lead(t, l, topic)
	tp := tpOf(topic, 0)
	ctx := context.Background()

	good := mkBatch(t, "ok", 2)
	badCRC := mkBatch(t, "x", 2)
	badCRC[len(badCRC)-1] ^= 0xff
	big := mkBatch(t, string(bytes.Repeat([]byte("v"), 3000)), 1)
	cases := map[string]struct {
		records []byte
		want    error
	}{
		"crc":           {badCRC, batch.ErrCorrupt},
		"truncated":     {good[:len(good)-3], batch.ErrCorrupt},
		"empty":         {nil, batch.ErrCorrupt},
		"too large":     {big, batch.ErrTooLarge},
		"good then bad": {append(append([]byte(nil), good...), badCRC...), batch.ErrCorrupt},
	}
	for name, c := range cases {
		if _, err := l.Append(ctx, tp, c.records, AckDurable); !errors.Is(err, c.want) {
			t.Errorf("%s: err %v, want %v", name, err, c.want)
		}
	}
	other := metadata.TopicPartition{TopicID: topic.ID, Partition: 7}
	if _, err := l.Append(ctx, other, mkBatch(t, "x", 1), AckDurable); !errors.Is(err, ErrNotLeader) {
		t.Errorf("unled partition: err %v, want ErrNotLeader", err)
	}
	st, err := e.store.GetPartition(ctx, tp)
	if err != nil {
		t.Fatal(err)
	}
	if st.HighWatermark != 0 {
		t.Fatalf("high watermark %d after rejected appends, want 0", st.HighWatermark)
	}
	if _, err := l.Append(ctx, tp, good, AckDurable); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, l, tp); len(got) != 2 {
		t.Fatalf("%d records, want 2", len(got))
	}
}

// Invariant 1: a durable ack means the object is stored and committed.
// Buffered and none acks return before that.
func TestAckModes(t *testing.T) { onBackends(t, testAckModes) }

func testAckModes(t *testing.T, open storeOpener) {
	t.Parallel()
	f := objstore.NewFaulty(objstore.NewMemory())
	e := newEnv(t, open, f)
	l := e.open(e.config("a1"))
	topic := e.topic("t", 1, nil)
	lead(t, l, topic)
	tp := tpOf(topic, 0)
	ctx := context.Background()

	f.Inject(objstore.Fault{Op: objstore.OpPut, Hang: true})
	for _, mode := range []AckMode{AckNone, AckBuffered} {
		if _, err := l.Append(ctx, tp, mkBatch(t, mode.String(), 1), mode); err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
	}
	testutil.WaitFor(t, "upload to hang", func() bool { return f.Hanging() > 0 })
	durable := make(chan error, 1)
	go func() {
		_, err := l.Append(ctx, tp, mkBatch(t, "durable", 1), AckDurable)
		durable <- err
	}()
	// The durable append cannot return while the PUT hangs.
	select {
	case err := <-durable:
		t.Fatalf("durable append returned (%v) while its upload hangs", err)
	case <-time.After(50 * time.Millisecond):
	}
	if hw, _, _ := l.HighWatermark(ctx, tp); hw != 0 {
		t.Fatalf("high watermark %d before any commit", hw)
	}
	f.Clear()
	f.Release()
	if err := <-durable; err != nil {
		t.Fatal(err)
	}
	st, _ := e.store.GetPartition(ctx, tp)
	if st.HighWatermark != 3 {
		t.Fatalf("stored high watermark %d after durable ack, want 3", st.HighWatermark)
	}
	if got := readAll(t, l, tp); len(got) != 3 {
		t.Fatalf("%d records, want 3", len(got))
	}
}

// A PUT that fails is retried; the durable ack waits for success, and
// offsets stay dense.
func TestPutFailuresAreRetried(t *testing.T) { onBackends(t, testPutFailuresAreRetried) }

func testPutFailuresAreRetried(t *testing.T, open storeOpener) {
	t.Parallel()
	f := objstore.NewFaulty(objstore.NewMemory())
	e := newEnv(t, open, f)
	l := e.open(e.config("a1"))
	topic := e.topic("t", 1, nil)
	lead(t, l, topic)
	tp := tpOf(topic, 0)
	ctx := context.Background()

	f.Inject(objstore.Fault{Op: objstore.OpPut, Times: 3})
	// A PUT that lands but reports failure must not create a duplicate.
	f.Inject(objstore.Fault{Op: objstore.OpPut, Times: 1, AfterWrite: true})
	for i := 0; i < 5; i++ {
		if _, err := l.Append(ctx, tp, mkBatch(t, "v", 2), AckDurable); err != nil {
			t.Fatal(err)
		}
	}
	if got := readAll(t, l, tp); len(got) != 10 {
		t.Fatalf("%d records, want 10", len(got))
	}
	if f.Calls(objstore.OpPut) < 5 {
		t.Fatalf("only %d PUT calls", f.Calls(objstore.OpPut))
	}
}

// faultyStore wraps a Store to fail or lose commits.
type faultyStore struct {
	metadata.Store
	mu          sync.Mutex
	failCommits int  // fail this many commits before running them
	lostCommits int  // run this many commits, then report failure
	hang        bool // block commits until ctx is done
	commits     int
}

func (s *faultyStore) CommitObject(ctx context.Context, c metadata.ObjectCommit) error {
	s.mu.Lock()
	s.commits++
	fail, lost, hang := s.failCommits > 0, s.lostCommits > 0, s.hang
	if fail {
		s.failCommits--
	} else if lost {
		s.lostCommits--
	}
	s.mu.Unlock()
	switch {
	case hang:
		<-ctx.Done()
		return ctx.Err()
	case fail:
		return errors.New("injected commit failure")
	case lost:
		if err := s.Store.CommitObject(ctx, c); err != nil {
			return err
		}
		return errors.New("injected: commit succeeded but the answer was lost")
	}
	return s.Store.CommitObject(ctx, c)
}

func TestCommitFailuresAreRetried(t *testing.T) { onBackends(t, testCommitFailuresAreRetried) }

func testCommitFailuresAreRetried(t *testing.T, open storeOpener) {
	t.Parallel()
	e := newEnv(t, open, nil)
	fs := &faultyStore{Store: e.store, failCommits: 2, lostCommits: 2}
	cfg := e.config("a1")
	cfg.Store = fs
	l := e.open(cfg)
	topic := e.topic("t", 2, nil)
	lead(t, l, topic)
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if _, err := l.Append(ctx, tpOf(topic, int32(i%2)), mkBatch(t, "v", 3), AckDurable); err != nil {
				t.Error(err)
			}
		}(i)
	}
	wg.Wait()
	for p := int32(0); p < 2; p++ {
		if got := readAll(t, l, tpOf(topic, p)); len(got) != 30 {
			t.Fatalf("partition %d: %d records, want 30", p, len(got))
		}
		st, _ := e.store.GetPartition(ctx, tpOf(topic, p))
		if st.HighWatermark != 30 {
			t.Fatalf("stored high watermark %d, want 30", st.HighWatermark)
		}
	}
}

// The process dies between PUT and commit: acknowledged durable data
// survives, the next leader resumes from the committed high watermark, and
// the orphaned object is collected after the grace period.
func TestCrashBetweenPutAndCommit(t *testing.T) { onBackends(t, testCrashBetweenPutAndCommit) }

func testCrashBetweenPutAndCommit(t *testing.T, open storeOpener) {
	t.Parallel()
	counting := objstore.NewCounting(objstore.NewMemory())
	e := newEnv(t, open, counting)
	fs := &faultyStore{Store: e.store}
	cfg := e.config("a1")
	cfg.Store = fs
	l1, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	topic := e.topic("t", 1, nil)
	lead(t, l1, topic)
	tp := tpOf(topic, 0)
	ctx := context.Background()
	for i := 0; i < 4; i++ {
		if _, err := l1.Append(ctx, tp, mkBatch(t, "acked", 2), AckDurable); err != nil {
			t.Fatal(err)
		}
	}
	fs.mu.Lock()
	fs.hang = true
	fs.mu.Unlock()
	putsBefore := counting.Puts()
	// Buffered appends: uploaded, never committed.
	for i := 0; i < 3; i++ {
		if _, err := l1.Append(ctx, tp, mkBatch(t, "lost", 1), AckBuffered); err != nil {
			t.Fatal(err)
		}
	}
	testutil.WaitFor(t, "the upload of the unacknowledged data", func() bool { return counting.Puts() > putsBefore })
	// "Die": stop without draining.
	dead, cancel := context.WithCancel(ctx)
	cancel()
	_ = l1.Close(dead)

	l2 := e.open(e.config("a2-restarted"))
	e.clock.Advance(11 * time.Second) // a1's lease expires
	lead(t, l2, topic)
	got := readAll(t, l2, tp)
	if len(got) != 8 {
		t.Fatalf("%d records after restart, want the 8 acknowledged", len(got))
	}
	for _, r := range got {
		if !bytes.HasPrefix(r.Value, []byte("acked")) {
			t.Fatalf("unacknowledged record %q became visible", r.Value)
		}
	}
	if _, err := l2.Append(ctx, tp, mkBatch(t, "after", 1), AckDurable); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, l2, tp); len(got) != 9 || got[8].Offset != 8 {
		t.Fatalf("append after restart: %d records", len(got))
	}

	countObjects := func() int {
		n := 0
		_ = counting.List(ctx, "segments/", func(objstore.ObjectInfo) error { n++; return nil })
		return n
	}
	before := countObjects()
	if st, err := l2.CollectGarbage(ctx); err != nil || st.Orphans != 0 {
		t.Fatalf("gc within grace: %+v, %v", st, err)
	}
	e.clock.Advance(2 * time.Minute)
	st, err := l2.CollectGarbage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Orphans < 1 {
		t.Fatalf("gc deleted %d orphans, want at least 1", st.Orphans)
	}
	if after := countObjects(); after != before-st.Orphans {
		t.Fatalf("%d objects after gc, want %d", after, before-st.Orphans)
	}
	if got := readAll(t, l2, tp); len(got) != 9 {
		t.Fatalf("gc broke committed data: %d records", len(got))
	}
}

// Invariant 3: a writer with a stale epoch can never advance the partition.
func TestStaleLeaderIsFenced(t *testing.T) { onBackends(t, testStaleLeaderIsFenced) }

func testStaleLeaderIsFenced(t *testing.T, open storeOpener) {
	t.Parallel()
	e := newEnv(t, open, nil)
	cfgA := e.config("agent-a")
	cfgA.LeaseTTL = time.Hour // A never notices on its own
	cfgA.GCGrace = 2 * time.Hour
	a := e.open(cfgA)
	topic := e.topic("t", 2, nil)
	lead(t, a, topic)
	ctx := context.Background()
	tp := tpOf(topic, 0)
	if _, err := a.Append(ctx, tp, mkBatch(t, "a", 2), AckDurable); err != nil {
		t.Fatal(err)
	}

	// B takes partition 0 after A's lease "expires" (B's clock runs ahead).
	bClock := &clock{}
	bClock.Advance(2 * time.Hour)
	cfgB := e.config("agent-b")
	cfgB.Now = bClock.Now
	b := e.open(cfgB)
	if err := b.Lead(ctx, topic, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Append(ctx, tp, mkBatch(t, "b", 3), AckDurable); err != nil {
		t.Fatal(err)
	}

	// A still believes it leads; its durable append must fail, and store
	// nothing; partition 1, which A still leads, is unaffected.
	_, err := a.Append(ctx, tp, mkBatch(t, "stale", 5), AckDurable)
	if !errors.Is(err, ErrNotLeader) {
		t.Fatalf("stale leader append: err %v, want ErrNotLeader", err)
	}
	if _, err := a.Append(ctx, tpOf(topic, 1), mkBatch(t, "a1", 1), AckDurable); err != nil {
		t.Fatalf("partition 1: %v", err)
	}
	if a.Leads(tp) {
		t.Fatal("A still claims partition 0")
	}
	got := readAll(t, b, tp)
	if len(got) != 5 {
		t.Fatalf("%d records, want 5 (2 from A, 3 from B)", len(got))
	}
	for i, r := range got {
		if bytes.HasPrefix(r.Value, []byte("stale")) {
			t.Fatalf("record %d from the stale leader was stored", i)
		}
	}
	if _, err := a.Append(ctx, tp, mkBatch(t, "stale2", 1), AckBuffered); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("append after losing lease: %v", err)
	}
}

func TestIdempotentProducer(t *testing.T) { onBackends(t, testIdempotentProducer) }

func testIdempotentProducer(t *testing.T, open storeOpener) {
	t.Parallel()
	e := newEnv(t, open, nil)
	l := e.open(e.config("a1"))
	topic := e.topic("t", 1, nil)
	lead(t, l, topic)
	tp := tpOf(topic, 0)
	ctx := context.Background()

	pid, err := e.store.NextProducerID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r0, err := l.Append(ctx, tp, idemBatch(t, pid, 0, 0, 3), AckDurable)
	if err != nil {
		t.Fatal(err)
	}
	r1, err := l.Append(ctx, tp, idemBatch(t, pid, 0, 3, 2), AckDurable)
	if err != nil {
		t.Fatal(err)
	}
	// A resend of the first batch is answered with its original offsets.
	dup, err := l.Append(ctx, tp, idemBatch(t, pid, 0, 0, 3), AckDurable)
	if err != nil || !dup.Duplicate || dup.BaseOffset != r0.BaseOffset || dup.LastOffset != r0.LastOffset {
		t.Fatalf("resend: %+v, %v; want duplicate of %+v", dup, err, r0)
	}
	if _, err := l.Append(ctx, tp, idemBatch(t, pid, 0, 9, 1), AckDurable); !errors.Is(err, ErrOutOfOrderSequence) {
		t.Fatalf("gap: err %v, want ErrOutOfOrderSequence", err)
	}
	if _, err := l.Append(ctx, tp, idemBatch(t, pid+1, 0, 4, 1), AckDurable); !errors.Is(err, ErrOutOfOrderSequence) {
		t.Fatalf("new producer at sequence 4: err %v", err)
	}
	// A new epoch restarts sequences; an old epoch is refused.
	if _, err := l.Append(ctx, tp, idemBatch(t, pid, 1, 0, 1), AckDurable); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, tp, idemBatch(t, pid, 0, 5, 1), AckDurable); !errors.Is(err, ErrInvalidProducerEpoch) {
		t.Fatalf("old epoch: err %v", err)
	}
	if got := readAll(t, l, tp); len(got) != 6 {
		t.Fatalf("%d records, want 6", len(got))
	}

	// Producer state survives a restart: the resend is still a duplicate.
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	l2 := e.open(e.config("a1"))
	lead(t, l2, topic)
	dup, err = l2.Append(ctx, tp, idemBatch(t, pid, 1, 0, 1), AckDurable)
	if err != nil || !dup.Duplicate || dup.BaseOffset != 5 {
		t.Fatalf("resend after restart: %+v, %v", dup, err)
	}
	if _, err := l2.Append(ctx, tp, idemBatch(t, pid, 1, 1, 1), AckDurable); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, l2, tp); len(got) != 7 {
		t.Fatalf("%d records after restart, want 7", len(got))
	}
	_ = r1
}

// Invariant 7: when uploads stall, appends wait instead of growing memory.
func TestBackpressure(t *testing.T) { onBackends(t, testBackpressure) }

func testBackpressure(t *testing.T, open storeOpener) {
	t.Parallel()
	f := objstore.NewFaulty(objstore.NewMemory())
	e := newEnv(t, open, f)
	cfg := e.config("a1")
	cfg.MaxPendingBytes = 64 << 10
	l := e.open(cfg)
	topic := e.topic("t", 1, nil)
	lead(t, l, topic)
	tp := tpOf(topic, 0)
	ctx := context.Background()

	f.Inject(objstore.Fault{Op: objstore.OpPut, Hang: true})
	b := mkBatch(t, string(bytes.Repeat([]byte("x"), 1000)), 4) // ~4 KiB
	accepted := 0
	for i := 0; i < 100; i++ {
		actx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		_, err := l.Append(actx, tp, append([]byte(nil), b...), AckBuffered)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		accepted++
	}
	if accepted*len(b) > cfg.MaxPendingBytes+len(b) || accepted == 100 {
		t.Fatalf("accepted %d batches of %d bytes with a %d-byte bound", accepted, len(b), cfg.MaxPendingBytes)
	}
	f.Clear()
	f.Release()
	if _, err := l.Append(ctx, tp, append([]byte(nil), b...), AckDurable); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, l, tp); len(got) != 4*(accepted+1) {
		t.Fatalf("%d records, want %d", len(got), 4*(accepted+1))
	}
}

func TestLongPoll(t *testing.T) { onBackends(t, testLongPoll) }

func testLongPoll(t *testing.T, open storeOpener) {
	t.Parallel()
	e := newEnv(t, open, nil)
	l := e.open(e.config("a1"))
	topic := e.topic("t", 1, nil)
	lead(t, l, topic)
	tp := tpOf(topic, 0)
	ctx := context.Background()

	res, err := l.Read(ctx, tp, 0, 1<<20, 10*time.Millisecond)
	if err != nil || res.Size != 0 {
		t.Fatalf("empty read: %+v %v", res, err)
	}
	got := make(chan ReadResult, 1)
	go func() {
		res, err := l.Read(ctx, tp, 0, 1<<20, time.Minute)
		if err != nil {
			t.Error(err)
		}
		got <- res
	}()
	if _, err := l.Append(ctx, tp, mkBatch(t, "x", 2), AckBuffered); err != nil {
		t.Fatal(err)
	}
	select {
	case res := <-got:
		if res.NextOffset != 2 || res.HighWatermark != 2 {
			t.Fatalf("long poll got %+v", res)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("long poll did not wake")
	}
	if _, err := l.Read(ctx, tp, 5, 1<<20, 0); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("read past end: %v", err)
	}
}

// Reads miss the hot tail and go to the object store, through the disk
// cache, with concurrent misses collapsed; the cache survives a restart and
// drops corrupted entries.
func TestReadPathCacheAndCollapse(t *testing.T) { onBackends(t, testReadPathCacheAndCollapse) }

func testReadPathCacheAndCollapse(t *testing.T, open storeOpener) {
	t.Parallel()
	counting := objstore.NewCounting(objstore.NewMemory())
	f := objstore.NewFaulty(counting)
	e := newEnv(t, open, f)
	cfg := e.config("a1")
	cfg.HotTailBytes = -1
	cfg.CacheDir = t.TempDir()
	cfg.CacheBytes = 1 << 20
	l := e.open(cfg)
	topic := e.topic("t", 1, nil)
	lead(t, l, topic)
	tp := tpOf(topic, 0)
	ctx := context.Background()
	if _, err := l.Append(ctx, tp, mkBatch(t, "x", 10), AckDurable); err != nil {
		t.Fatal(err)
	}

	// Slow GETs so that concurrent readers overlap.
	f.Inject(objstore.Fault{Op: objstore.OpGetRange, Delay: 100 * time.Millisecond})
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if res, err := l.Read(ctx, tp, 0, 1<<20, 0); err != nil || res.Size == 0 {
				t.Errorf("read: %v", err)
			}
		}()
	}
	wg.Wait()
	if n := counting.GetRanges(); n != 1 {
		t.Fatalf("%d ranged GETs for 8 concurrent reads of one range, want 1", n)
	}
	f.Clear()
	if got := readAll(t, l, tp); len(got) != 10 {
		t.Fatal("bad read")
	}
	if n := counting.GetRanges(); n != 1 {
		t.Fatalf("cached read went to the store (%d GETs)", n)
	}

	// A new log on the same cache folder reuses it.
	l2cfg := cfg
	l2cfg.AgentID = "a2"
	l2 := e.open(l2cfg)
	if got := readAll(t, l2, tp); len(got) != 10 {
		t.Fatal("bad read after reopen")
	}
	if n := counting.GetRanges(); n != 1 {
		t.Fatalf("cache not reused after restart (%d GETs)", n)
	}
	// Corrupt every cache file: a read that misses memory (a new log) must
	// notice and refetch.
	corruptDir(t, cfg.CacheDir)
	l3cfg := cfg
	l3cfg.AgentID = "a3"
	l3 := e.open(l3cfg)
	if got := readAll(t, l3, tp); len(got) != 10 {
		t.Fatal("bad read after corruption")
	}
	if n := counting.GetRanges(); n != 2 {
		t.Fatalf("%d GETs after corrupting the cache, want 2", n)
	}
}

// Writing from many partitions at the same byte rate makes the same number
// of objects: PUTs follow flushes, not partitions.
func TestOneObjectPerFlushAcrossPartitions(t *testing.T) {
	onBackends(t, testOneObjectPerFlushAcrossPartitions)
}

func testOneObjectPerFlushAcrossPartitions(t *testing.T, open storeOpener) {
	t.Parallel()
	counting := objstore.NewCounting(objstore.NewMemory())
	e := newEnv(t, open, counting)
	f := objstore.NewFaulty(counting)
	cfg := e.config("a1")
	cfg.Bucket = f
	cfg.DurableMaxAge = time.Hour // seal only when the first upload is done
	l := e.open(cfg)
	topic := e.topic("t", 200, nil)
	lead(t, l, topic)
	ctx := context.Background()
	// Hold the first upload so the rest gather in one buffer.
	f.Inject(objstore.Fault{Op: objstore.OpPut, Hang: true, Times: 1})
	if _, err := l.Append(ctx, tpOf(topic, 0), mkBatch(t, "first", 1), AckBuffered); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "first upload", func() bool { return f.Hanging() == 1 })
	var wg sync.WaitGroup
	for p := int32(0); p < 200; p++ {
		wg.Add(1)
		go func(p int32) {
			defer wg.Done()
			if _, err := l.Append(ctx, tpOf(topic, p), mkBatch(t, "v", 1), AckDurable); err != nil {
				t.Error(err)
			}
		}(p)
	}
	testutil.WaitFor(t, "200 appends buffered", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return len(l.buf.order) == 200
	})
	f.Release()
	wg.Wait()
	if n := counting.Puts(); n != 2 {
		t.Fatalf("%d PUTs for 200 partitions, want 2", n)
	}
}

func TestReleaseHandsOverWithoutWaitingForExpiry(t *testing.T) {
	onBackends(t, testReleaseHandsOverWithoutWaitingForExpiry)
}

func testReleaseHandsOverWithoutWaitingForExpiry(t *testing.T, open storeOpener) {
	t.Parallel()
	e := newEnv(t, open, nil)
	a := e.open(e.config("a"))
	b := e.open(e.config("b"))
	topic := e.topic("t", 1, nil)
	lead(t, a, topic)
	tp := tpOf(topic, 0)
	ctx := context.Background()
	if _, err := a.Append(ctx, tp, mkBatch(t, "a", 2), AckBuffered); err != nil {
		t.Fatal(err)
	}
	if err := a.Release(ctx, tp); err != nil {
		t.Fatal(err)
	}
	if err := b.Lead(ctx, topic, 0); err != nil {
		t.Fatalf("lead after release: %v", err)
	}
	if _, err := b.Append(ctx, tp, mkBatch(t, "b", 1), AckDurable); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, b, tp); len(got) != 3 {
		t.Fatalf("%d records, want 3", len(got))
	}
	// A non-leader still serves reads, from the metadata store.
	if got := readAll(t, a, tp); len(got) != 3 {
		t.Fatalf("non-leader read %d records, want 3", len(got))
	}
}

func TestGracefulCloseFlushesBufferedData(t *testing.T) {
	onBackends(t, testGracefulCloseFlushesBufferedData)
}

func testGracefulCloseFlushesBufferedData(t *testing.T, open storeOpener) {
	t.Parallel()
	e := newEnv(t, open, nil)
	cfg := e.config("a1")
	cfg.FlushMinInterval = time.Hour // only Close can flush
	l := e.open(cfg)
	topic := e.topic("t", 1, nil)
	lead(t, l, topic)
	tp := tpOf(topic, 0)
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if _, err := l.Append(ctx, tp, mkBatch(t, "x", 2), AckBuffered); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	st, _ := e.store.GetPartition(ctx, tp)
	if st.HighWatermark != 6 {
		t.Fatalf("high watermark %d after close, want 6", st.HighWatermark)
	}
}

func TestDeleteRecordsAndOffsetForTime(t *testing.T) {
	onBackends(t, testDeleteRecordsAndOffsetForTime)
}

func testDeleteRecordsAndOffsetForTime(t *testing.T, open storeOpener) {
	t.Parallel()
	e := newEnv(t, open, nil)
	l := e.open(e.config("a1"))
	topic := e.topic("t", 1, nil)
	lead(t, l, topic)
	tp := tpOf(topic, 0)
	ctx := context.Background()
	// Three batches of 3 records with timestamps 1000+10*offset.
	for b := 0; b < 3; b++ {
		recs := make([]batch.Record, 3)
		for i := range recs {
			off := b*3 + i
			recs[i] = batch.Record{Value: []byte(fmt.Sprint(off)), Timestamp: 1000 + 10*int64(off)}
		}
		raw, err := batch.Build(recs, batch.DefaultBuildOptions())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.Append(ctx, tp, raw, AckDurable); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		ts    int64
		off   int64
		found bool
	}{{0, 0, true}, {1000, 0, true}, {1001, 1, true}, {1040, 4, true}, {1080, 8, true}, {1081, 0, false}} {
		off, ts, found, err := l.OffsetForTime(ctx, tp, c.ts)
		if err != nil || found != c.found || (found && (off != c.off || ts != 1000+10*c.off)) {
			t.Errorf("OffsetForTime(%d) = %d, %d, %v, %v; want %d, %v", c.ts, off, ts, found, err, c.off, c.found)
		}
	}
	if off, ts, found, err := l.MaxTimestampOffset(ctx, tp); err != nil || !found || off != 8 || ts != 1080 {
		t.Fatalf("MaxTimestampOffset = %d, %d, %v, %v", off, ts, found, err)
	}

	ls, err := l.DeleteRecords(ctx, tp, 4)
	if err != nil || ls != 4 {
		t.Fatalf("DeleteRecords(4) = %d, %v", ls, err)
	}
	if _, err := l.Read(ctx, tp, 3, 1<<20, 0); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("read below log start: %v", err)
	}
	res, err := l.Read(ctx, tp, 4, 1<<20, 0)
	if err != nil || res.LogStartOffset != 4 || res.Size == 0 {
		t.Fatalf("read at log start: %+v, %v", res, err)
	}
	if off, _, found, _ := l.OffsetForTime(ctx, tp, 0); !found || off != 4 {
		t.Fatalf("OffsetForTime(0) after delete = %d, %v; want 4", off, found)
	}
	if _, err := l.DeleteRecords(ctx, tp, 10); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("DeleteRecords past the high watermark: %v", err)
	}
	if ls, err := l.DeleteRecords(ctx, tp, -1); err != nil || ls != 9 {
		t.Fatalf("DeleteRecords(-1) = %d, %v", ls, err)
	}
}

// Leadership moves back and forth between two agents while both keep
// writing: the new leader takes over without a release (the old one is
// "paused" and still believes it leads). Every acknowledged record must be
// readable at the offset it was acknowledged with, offsets stay dense, and
// nothing the stale leader was refused becomes visible (invariants 1–3).
func TestLeadershipChurn(t *testing.T) { onBackends(t, testLeadershipChurn) }

func testLeadershipChurn(t *testing.T, open storeOpener) {
	t.Parallel()
	e := newEnv(t, open, nil)
	ctx := context.Background()
	var clocks [2]*clock
	var logs [2]*Log
	for i := range logs {
		clocks[i] = &clock{}
		cfg := e.config(fmt.Sprintf("agent-%d", i))
		cfg.Now = clocks[i].Now
		cfg.LeaseTTL = time.Hour // no renewals during the test
		cfg.GCGrace = 2 * time.Hour
		logs[i] = e.open(cfg)
	}
	topic := e.topic("t", 1, nil)
	tp := tpOf(topic, 0)

	var mu sync.Mutex
	acked := map[int64]string{}
	refused := map[string]bool{}
	write := func(l *Log, tag string, n int, wg *sync.WaitGroup) {
		defer wg.Done()
		for i := 0; i < n; i++ {
			v := fmt.Sprintf("%s-%d", tag, i)
			raw, err := batch.Build([]batch.Record{{Value: []byte(v)}}, batch.DefaultBuildOptions())
			if err != nil {
				t.Error(err)
				return
			}
			res, err := l.Append(ctx, tp, raw, AckDurable)
			mu.Lock()
			switch {
			case err == nil:
				if prev, dup := acked[res.BaseOffset]; dup {
					t.Errorf("offset %d acknowledged twice: %q and %q", res.BaseOffset, prev, v)
				}
				acked[res.BaseOffset] = v
			case errors.Is(err, ErrNotLeader):
				refused[v] = true
			default:
				t.Errorf("append %s: %v", v, err)
			}
			mu.Unlock()
		}
	}
	const rounds = 6
	for r := 0; r < rounds; r++ {
		cur, prev := logs[r%2], logs[(r+1)%2]
		// The taker's clock is past every lease the other agent took.
		clocks[r%2].offset.Store(int64(time.Duration(r) * 2 * time.Hour))
		if err := cur.Lead(ctx, topic, 0); err != nil {
			t.Fatalf("round %d: lead: %v", r, err)
		}
		var wg sync.WaitGroup
		for w := 0; w < 3; w++ {
			wg.Add(2)
			go write(cur, fmt.Sprintf("r%d-leader-w%d", r, w), 5, &wg)
			go write(prev, fmt.Sprintf("r%d-stale-w%d", r, w), 2, &wg)
		}
		wg.Wait()
	}
	final := logs[(rounds-1)%2]
	got := readAll(t, final, tp)
	if len(got) < len(acked) {
		t.Fatalf("%d records readable, %d acknowledged", len(got), len(acked))
	}
	for off, v := range acked {
		if off >= int64(len(got)) || string(got[off].Value) != v {
			t.Fatalf("acknowledged %q at offset %d, read %q", v, off, got[min(off, int64(len(got)-1))].Value)
		}
	}
	for _, r := range got {
		if refused[string(r.Value)] {
			t.Fatalf("record %q was refused (not leader) yet is stored at %d", r.Value, r.Offset)
		}
	}
	if len(acked) < rounds*15 {
		t.Fatalf("only %d of the current leaders' %d appends were acknowledged", len(acked), rounds*15)
	}
}

// Retention drops whole runs from the start of the log: by age
// (retention.ms, newest record older than the cutoff) and by size
// (retention.bytes); compacted topics keep everything; garbage collection
// then deletes the objects no longer referenced.
func TestRetention(t *testing.T) { onBackends(t, testRetention) }

func testRetention(t *testing.T, open storeOpener) {
	t.Parallel()
	counting := objstore.NewCounting(objstore.NewMemory())
	e := newEnv(t, open, counting)
	l := e.open(e.config("a1"))
	ctx := context.Background()
	byTime := e.topic("by-time", 1, map[string]string{"retention.ms": "60000"})
	bySize := e.topic("by-size", 1, map[string]string{"retention.ms": "-1", "retention.bytes": "1"})
	compact := e.topic("compacted", 1, map[string]string{"retention.ms": "60000", "cleanup.policy": "compact"})
	old := e.clock.Now().Add(-10 * time.Minute).UnixMilli()
	for _, topic := range []metadata.Topic{byTime, bySize, compact} {
		lead(t, l, topic)
		for i, ts := range []int64{old, old + 1, e.clock.Now().UnixMilli()} {
			raw, err := batch.Build([]batch.Record{{Key: []byte(fmt.Sprint("a", i)), Value: []byte(fmt.Sprint(i)), Timestamp: ts}, {Key: []byte(fmt.Sprint("b", i)), Value: []byte("x"), Timestamp: ts}}, batch.DefaultBuildOptions())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := l.Append(ctx, tpOf(topic, 0), raw, AckDurable); err != nil {
				t.Fatal(err)
			}
		}
	}
	n, err := l.EnforceRetention(ctx)
	if err != nil || n != 2 {
		t.Fatalf("EnforceRetention trimmed %d partitions (%v), want 2", n, err)
	}
	for _, c := range []struct {
		topic metadata.Topic
		start int64
	}{{byTime, 4}, {bySize, 4}, {compact, 0}} {
		_, ls, err := l.HighWatermark(ctx, tpOf(c.topic, 0))
		if err != nil || ls != c.start {
			t.Errorf("%s: log start %d (%v), want %d", c.topic.Name, ls, err, c.start)
		}
	}
	if _, err := l.Read(ctx, tpOf(byTime, 0), 0, 1<<20, 0); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("read of expired records: %v", err)
	}
	res, err := l.Read(ctx, tpOf(byTime, 0), 4, 1<<20, 0)
	if err != nil || res.NextOffset != 6 {
		t.Fatalf("read of retained records: %+v %v", res, err)
	}
	// Nothing more to trim on a second pass.
	if n, err := l.EnforceRetention(ctx); err != nil || n != 0 {
		t.Fatalf("second pass trimmed %d (%v)", n, err)
	}
	// The four objects holding only expired runs are collected after the
	// grace period.
	if _, err := l.CollectGarbage(ctx); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(2 * time.Minute)
	st, err := l.CollectGarbage(ctx)
	if err != nil || st.Unreferenced != 4 {
		t.Fatalf("gc: %+v, %v; want 4 unreferenced objects deleted", st, err)
	}
	if got := readAll(t, l, tpOf(compact, 0)); len(got) != 6 {
		t.Fatalf("compacted topic lost records: %d left", len(got))
	}
}
