package partlog

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/internal/batch"
	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/metadata/metadatatest"
	"github.com/streamhouse/streamhouse/internal/objstore"
	"github.com/streamhouse/streamhouse/internal/testutil"
)

// appendShared appends rounds of batches to every partition of topic so
// that each object holds a run of every partition: the first PUT is held
// while the round gathers in the buffer. It returns the records appended
// per partition, in order.
func appendShared(t *testing.T, l *Log, f *objstore.Faulty, topic metadata.Topic, rounds, perBatch int) map[int32][]string {
	t.Helper()
	ctx := context.Background()
	want := make(map[int32][]string)
	for r := 0; r < rounds; r++ {
		f.Inject(objstore.Fault{Op: objstore.OpPut, Hang: true, Times: 1})
		if _, err := l.Append(ctx, tpOf(topic, 0), mkBatch(t, fmt.Sprintf("hold%d", r), 1), AckBuffered); err != nil {
			t.Fatal(err)
		}
		want[0] = append(want[0], fmt.Sprintf("hold%d-0", r))
		testutil.WaitFor(t, "held upload", func() bool { return f.Hanging() == 1 })
		var wg sync.WaitGroup
		for p := int32(0); p < topic.Partitions; p++ {
			prefix := fmt.Sprintf("r%d-p%d", r, p)
			for i := 0; i < perBatch; i++ {
				want[p] = append(want[p], fmt.Sprintf("%s-%d", prefix, i))
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := l.Append(ctx, tpOf(topic, p), mkBatch(t, prefix, perBatch), AckDurable); err != nil {
					t.Error(err)
				}
			}()
		}
		testutil.WaitFor(t, "round buffered", func() bool {
			l.mu.Lock()
			defer l.mu.Unlock()
			return len(l.buf.order) == int(topic.Partitions)
		})
		f.Release()
		wg.Wait()
	}
	return want
}

// readEnv is a log over a counted, fault-injecting bucket, configured to
// read everything from the bucket (no hot tail) and to seal only when the
// previous upload is done (appendShared).
func readEnv(t *testing.T, open storeOpener) (*objstore.Counting, *objstore.Faulty, *env, Config) {
	counting := objstore.NewCounting(objstore.NewMemory())
	f := objstore.NewFaulty(counting)
	e := newEnv(t, open, f)
	cfg := e.config("a1")
	cfg.DurableMaxAge = time.Hour
	cfg.HotTailBytes = -1
	return counting, f, e, cfg
}

func values(recs []batch.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = string(r.Value)
	}
	return out
}

// Reads through small chunks return exactly what was written, for runs
// that start, end and lie inside chunks and span several; partitions that
// share objects share chunks; the cache stays within its bound.
func TestChunkedReads(t *testing.T) { onBackends(t, testChunkedReads) }

func testChunkedReads(t *testing.T, open storeOpener) {
	t.Parallel()
	_, f, e, cfg := readEnv(t, open)
	cfg.ReadChunkBytes = 1000 // runs of ~100 records straddle chunks
	cfg.ReadCacheBytes = 5000 // a few chunks
	cfg.ReadAheadBytes = -1
	l := e.open(cfg)
	topic := e.topic("t", 3, nil)
	lead(t, l, topic)
	want := appendShared(t, l, f, topic, 3, 100)
	for p := int32(0); p < topic.Partitions; p++ {
		got := values(readAll(t, l, tpOf(topic, p)))
		if fmt.Sprint(got) != fmt.Sprint(want[p]) {
			t.Fatalf("partition %d: read %d records, want %d (first %q, want %q)", p, len(got), len(want[p]), got[:min(1, len(got))], want[p][0])
		}
		// Small maxBytes: a read at every offset returns the batch holding it.
		for off := int64(0); off < int64(len(want[p])); off += 37 {
			res, err := l.Read(context.Background(), tpOf(topic, p), off, 1, 0)
			if err != nil || res.Size == 0 {
				t.Fatalf("partition %d at %d: %v (%d bytes)", p, off, err, res.Size)
			}
			raws, err := batch.Split(res.Bytes())
			if err != nil {
				t.Fatal(err)
			}
			h, _ := batch.ParseHeader(raws[0])
			if h.BaseOffset > off || h.LastOffset() < off {
				t.Fatalf("partition %d at %d: batch %d..%d", p, off, h.BaseOffset, h.LastOffset())
			}
		}
	}
	c := l.reader.chunks
	c.mu.Lock()
	used, n := c.used, c.lru.Len()
	c.mu.Unlock()
	if used > cfg.ReadCacheBytes || n == 0 {
		t.Fatalf("read cache holds %d bytes in %d chunks, bound %d", used, n, cfg.ReadCacheBytes)
	}
}

// Partitions stored side by side in objects are read with one GET per
// object (one chunk each), not one per partition; and a read starts loading
// what follows, so reading on finds it in memory. Runs too small for their
// chunk are read exactly instead.
func TestChunksSharedAndReadAhead(t *testing.T) { onBackends(t, testChunksSharedAndReadAhead) }

func testChunksSharedAndReadAhead(t *testing.T, open storeOpener) {
	t.Parallel()
	counting, f, e, cfg := readEnv(t, open)
	cfg.ReadAheadBytes = 1 << 20
	cfg.ReadChunkBytes = 4096 // a whole object; runs of ~200 bytes count as dense
	l := e.open(cfg)
	topic := e.topic("t", 4, nil)
	lead(t, l, topic)
	const rounds = 3 // each makes two objects: the held one and the round
	want := appendShared(t, l, f, topic, rounds, 10)
	objects := counting.Puts()
	if objects != 2*rounds {
		t.Fatalf("%d objects, want %d", objects, 2*rounds)
	}
	before := counting.GetRanges()
	// One small read of partition 1 loads its first object's chunk and
	// reads ahead the others holding partition 1 (all but the held ones).
	ctx := context.Background()
	if res, err := l.Read(ctx, tpOf(topic, 1), 0, 1, 0); err != nil || res.Size == 0 {
		t.Fatalf("read: %v", err)
	}
	testutil.WaitFor(t, "read-ahead of partition 1's objects", func() bool {
		return counting.GetRanges()-before == rounds
	})
	for p := int32(0); p < topic.Partitions; p++ {
		if got := values(readAll(t, l, tpOf(topic, p))); fmt.Sprint(got) != fmt.Sprint(want[p]) {
			t.Fatalf("partition %d: read %v, want %v", p, got, want[p])
		}
	}
	// Partition 0 also lives in the held objects; nothing else was fetched.
	if n := counting.GetRanges() - before; n != objects {
		t.Fatalf("%d GETs to read %d partitions from %d objects, want one per object", n, topic.Partitions, objects)
	}

	// The same log read with big chunks: runs are sparse, read exactly, one
	// GET per partition and object, and nothing is read ahead.
	cfg2 := cfg
	cfg2.AgentID = "a2"
	cfg2.ReadChunkBytes = 1 << 20
	l2 := e.open(cfg2)
	before = counting.GetRanges()
	for p := int32(0); p < topic.Partitions; p++ {
		if got := values(readAll(t, l2, tpOf(topic, p))); fmt.Sprint(got) != fmt.Sprint(want[p]) {
			t.Fatalf("partition %d, sparse: read %v, want %v", p, got, want[p])
		}
	}
	if n := int(counting.GetRanges() - before); n != int(topic.Partitions)*rounds+rounds {
		t.Fatalf("%d GETs for sparse runs, want %d (one per run)", n, int(topic.Partitions)*rounds+rounds)
	}
}

// A reader's cancellation ends its read, and Close stops a GET in progress
// rather than waiting for it, for chunk loads and exact reads alike.
func TestCloseStopsChunkLoads(t *testing.T) {
	t.Parallel()
	t.Run("chunk", func(t *testing.T) { testCloseStopsLoads(t, 4096) })
	t.Run("exact", func(t *testing.T) { testCloseStopsLoads(t, 1<<20) })
}

func testCloseStopsLoads(t *testing.T, chunk int64) {
	t.Parallel()
	f := objstore.NewFaulty(objstore.NewMemory())
	e := newEnv(t, metadatatest.OpenSQLite, f)
	cfg := e.config("a1")
	cfg.HotTailBytes = -1
	cfg.ReadChunkBytes = chunk
	l, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	topic := e.topic("t", 1, nil)
	lead(t, l, topic)
	ctx := context.Background()
	if _, err := l.Append(ctx, tpOf(topic, 0), mkBatch(t, "x", 3), AckDurable); err != nil {
		t.Fatal(err)
	}
	f.Inject(objstore.Fault{Op: objstore.OpGetRange, Hang: true})
	readErr := make(chan error, 1)
	rctx, cancel := context.WithCancel(ctx)
	go func() {
		_, err := l.Read(rctx, tpOf(topic, 0), 0, 1<<20, 0)
		readErr <- err
	}()
	testutil.WaitFor(t, "GET in progress", func() bool { return f.Hanging() == 1 })
	cancel()
	if err := <-readErr; err == nil {
		t.Fatal("read with a cancelled context returned no error")
	}
	closed := make(chan error, 1)
	go func() {
		cctx, ccancel := context.WithTimeout(ctx, 30*time.Second)
		defer ccancel()
		closed <- l.Close(cctx)
	}()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Close waited on a hanging GET")
	}
}

// A span cut anywhere reads the same headers and ranges as the whole.
func TestSpanPieces(t *testing.T) {
	t.Parallel()
	var whole []byte
	var starts []int
	for i := 0; i < 20; i++ {
		starts = append(starts, len(whole))
		whole = append(whole, mkBatch(t, fmt.Sprintf("b%d", i), 1+i%5)...)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	var scratch [batch.HeaderSize]byte
	for round := 0; round < 200; round++ {
		var sp span
		for rest := whole; len(rest) > 0; {
			n := 1 + rng.IntN(min(len(rest), 1+rng.IntN(200)))
			sp, rest = append(sp, rest[:n]), rest[n:]
		}
		for _, pos := range starts {
			want, err := batch.ParseHeader(whole[pos:])
			if err != nil {
				t.Fatal(err)
			}
			got, err := sp.header(pos, scratch[:])
			if err != nil || got != want {
				t.Fatalf("round %d: header at %d: %+v, %v; want %+v", round, pos, got, err, want)
			}
		}
		lo := rng.IntN(len(whole))
		hi := lo + rng.IntN(len(whole)-lo+1)
		var joined []byte
		for _, p := range sp.appendRange(nil, lo, hi) {
			if len(p) == 0 {
				t.Fatalf("round %d: empty piece in range [%d,%d)", round, lo, hi)
			}
			joined = append(joined, p...)
		}
		if !bytes.Equal(joined, whole[lo:hi]) {
			t.Fatalf("round %d: range [%d,%d) differs", round, lo, hi)
		}
		if !bytes.Equal(sp.bytes(), whole) {
			t.Fatalf("round %d: joined span differs", round)
		}
	}
	if _, err := (span{whole[:30]}).header(0, scratch[:]); err == nil {
		t.Fatal("header from 30 bytes: no error")
	}
}
