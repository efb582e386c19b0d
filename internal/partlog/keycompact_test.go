package partlog

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/internal/batch"
	"github.com/streamhouse/streamhouse/internal/metadata"
)

// kv is one record of a key compaction test; a nil value is a tombstone.
type kv struct {
	key, value string
	tomb       bool
	ts         int64
}

func kbatch(t testing.TB, opts batch.BuildOptions, recs ...kv) []byte {
	t.Helper()
	out := make([]batch.Record, len(recs))
	for i, r := range recs {
		out[i] = batch.Record{Key: []byte(r.key), Value: []byte(r.value), Timestamp: r.ts}
		if r.tomb {
			out[i].Value = nil
		}
	}
	b, err := batch.Build(out, opts)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// readRecords reads tp from offset to the high watermark, uncommitted,
// as "offset key=value" (value "<nil>" for a tombstone, "<marker>" for a
// control record), following NextOffset across gaps.
func readRecords(t *testing.T, l *Log, tp metadata.TopicPartition, from int64) []string {
	t.Helper()
	ctx := context.Background()
	hw, _, err := l.HighWatermark(ctx, tp)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for off := from; off < hw; {
		res, err := l.Read(ctx, tp, off, 300, 0) // small: several reads
		if err != nil {
			t.Fatalf("read at %d: %v", off, err)
		}
		if res.Size == 0 {
			t.Fatalf("read at %d below the high watermark %d returned nothing", off, hw)
		}
		bs, err := batch.Split(res.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range bs {
			h, recs, err := batch.Records(b)
			if err != nil {
				t.Fatalf("batch at %d: %v", off, err)
			}
			for _, r := range recs {
				if r.Offset < off {
					continue
				}
				v := string(r.Value)
				switch {
				case h.IsControl():
					v = "<marker>"
				case r.Value == nil:
					v = "<nil>"
				}
				out = append(out, fmt.Sprintf("%d %s=%s", r.Offset, r.Key, v))
			}
		}
		if res.NextOffset <= off {
			t.Fatalf("read at %d: next offset %d", off, res.NextOffset)
		}
		off = res.NextOffset
	}
	return out
}

// keyConfig is compactConfig with a lease long enough for the tests to
// move the clock by hours.
func keyConfig(e *env) Config {
	cfg := e.compactConfig("a1", 1<<20)
	cfg.LeaseTTL = 48 * time.Hour
	cfg.GCGrace = 100 * time.Hour
	return cfg
}

func appendOK(t *testing.T, l *Log, tp metadata.TopicPartition, b []byte) AppendResult {
	t.Helper()
	res, err := l.Append(context.Background(), tp, b, AckDurable)
	if err != nil {
		t.Fatalf("append: %v", err)
	}
	return res
}

func compactOK(t *testing.T, l *Log) CompactionStats {
	t.Helper()
	st, err := l.Compact(context.Background())
	if err != nil {
		t.Fatalf("compact: %v", err)
	}
	return st
}

// The newest record per key is kept at its offset, older ones go;
// compressed batches are rewritten; a consumer in the middle continues
// across the gaps; ListOffsets (earliest, latest, by time, max timestamp)
// stays right; a tombstone is kept until delete.retention.ms has passed,
// then removed.
func TestKeyCompactionNewestWins(t *testing.T) { onBackends(t, testKeyCompactionNewestWins) }

func testKeyCompactionNewestWins(t *testing.T, open storeOpener) {
	t.Parallel()
	e := newEnv(t, open, nil)
	l := e.open(keyConfig(e))
	topic := e.topic("kc", 1, map[string]string{"cleanup.policy": "compact", "delete.retention.ms": "60000"})
	lead(t, l, topic)
	tp := tpOf(topic, 0)
	ctx := context.Background()
	t0 := e.clock.Now().Add(-10 * time.Second).UnixMilli()
	ts := func(o int64) int64 { return t0 + o*100 }
	plain := batch.DefaultBuildOptions()
	zstd := plain
	zstd.Codec = batch.CodecZstd
	appendOK(t, l, tp, kbatch(t, plain, kv{key: "a", value: "1", ts: ts(0)}, kv{key: "b", value: "1", ts: ts(1)}, kv{key: "c", value: "1", ts: ts(2)}))
	appendOK(t, l, tp, kbatch(t, zstd, kv{key: "a", value: "2", ts: ts(3)}, kv{key: "b", value: "2", ts: ts(4)}, kv{key: "d", value: "1", ts: ts(5)}))
	appendOK(t, l, tp, kbatch(t, plain, kv{key: "c", tomb: true, ts: ts(6)}))
	appendOK(t, l, tp, kbatch(t, zstd, kv{key: "b", value: "3", ts: ts(7)}))
	appendOK(t, l, tp, kbatch(t, plain, kv{key: "e", value: "1", ts: ts(8)})) // the active run

	// A consumer that has read up to offset 4.
	mid := readRecords(t, l, tp, 0)[:4]
	if got := strings.Join(mid, ","); got != "0 a=1,1 b=1,2 c=1,3 a=2" {
		t.Fatalf("before compaction: %s", got)
	}

	st := compactOK(t, l)
	if st.KeyPasses != 1 || st.RecordsRemoved != 4 {
		t.Fatalf("stats %+v; want one pass removing a=1, b=1, c=1, b=2 and nothing else", st)
	}
	want := "3 a=2,5 d=1,6 c=<nil>,7 b=3,8 e=1"
	if got := strings.Join(readRecords(t, l, tp, 0), ","); got != want {
		t.Fatalf("after compaction: %s, want %s", got, want)
	}
	if got := strings.Join(readRecords(t, l, tp, 4), ","); got != "5 d=1,6 c=<nil>,7 b=3,8 e=1" {
		t.Fatalf("consumer continuing at 4: %s", got)
	}
	if r, ok := l.DirtyRatio(tp); !ok || r != 1 {
		t.Fatalf("dirty ratio %v %v, want 1 before the pass", r, ok)
	}
	hw, ls, err := l.HighWatermark(ctx, tp)
	if err != nil || hw != 9 || ls != 0 {
		t.Fatalf("hw %d log start %d (%v), want 9 and 0", hw, ls, err)
	}
	if off, _, ok, err := l.OffsetForTime(ctx, tp, ts(1)); err != nil || !ok || off != 3 {
		t.Fatalf("offset for time of the removed offset 1: %d %v %v, want 3", off, ok, err)
	}
	if off, _, ok, err := l.OffsetForTime(ctx, tp, ts(7)); err != nil || !ok || off != 7 {
		t.Fatalf("offset for time 7: %d %v %v", off, ok, err)
	}
	if off, tsm, ok, err := l.MaxTimestampOffset(ctx, tp); err != nil || !ok || off != 8 || tsm != ts(8) {
		t.Fatalf("max timestamp offset %d %d %v %v", off, tsm, ok, err)
	}
	// The index keeps tiling the offsets.
	es, err := e.store.ListIndex(ctx, tp, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	next := int64(0)
	for _, en := range es {
		if en.BaseOffset != next {
			t.Fatalf("index entry at %d, want %d: %+v", en.BaseOffset, next, es)
		}
		next = en.LastOffset + 1
	}

	// Nothing new to do: no pass.
	if st := compactOK(t, l); st.KeyPasses != 0 {
		t.Fatalf("second compaction ran a pass: %+v", st)
	}
	// Past delete.retention.ms the tombstone goes (with a new run, so the
	// old active one is cleanable; the pass is due for the tombstone).
	e.clock.Advance(2 * time.Minute)
	appendOK(t, l, tp, kbatch(t, plain, kv{key: "f", value: "1", ts: e.clock.Now().UnixMilli()}))
	st = compactOK(t, l)
	if st.KeyPasses != 1 || st.RecordsRemoved != 1 {
		t.Fatalf("stats after the retention %+v; want the tombstone removed", st)
	}
	want = "3 a=2,5 d=1,7 b=3,8 e=1,9 f=1"
	if got := strings.Join(readRecords(t, l, tp, 0), ","); got != want {
		t.Fatalf("after the tombstone's retention: %s, want %s", got, want)
	}
}

// min.compaction.lag.ms keeps recent records out of the cleanable range.
func TestKeyCompactionMinLag(t *testing.T) { onBackends(t, testKeyCompactionMinLag) }

func testKeyCompactionMinLag(t *testing.T, open storeOpener) {
	t.Parallel()
	e := newEnv(t, open, nil)
	l := e.open(keyConfig(e))
	topic := e.topic("kc", 1, map[string]string{"cleanup.policy": "compact", "min.compaction.lag.ms": "3600000"})
	lead(t, l, topic)
	tp := tpOf(topic, 0)
	plain := batch.DefaultBuildOptions()
	now := e.clock.Now().UnixMilli()
	for i := range 4 {
		appendOK(t, l, tp, kbatch(t, plain, kv{key: "a", value: fmt.Sprint(i), ts: now}))
	}
	if st := compactOK(t, l); st.RecordsRemoved != 0 {
		t.Fatalf("removed %d records younger than min.compaction.lag.ms", st.RecordsRemoved)
	}
	e.clock.Advance(2 * time.Hour)
	if st := compactOK(t, l); st.RecordsRemoved != 3 {
		t.Fatalf("removed %d records once past the lag, want 3", st.RecordsRemoved)
	}
	if got := strings.Join(readRecords(t, l, tp, 0), ","); got != "3 a=3" {
		t.Fatalf("after compaction: %s", got)
	}
}

// Records of aborted transactions go (they never superseded anything);
// committed ones and the markers stay.
func TestKeyCompactionTransactions(t *testing.T) { onBackends(t, testKeyCompactionTransactions) }

func testKeyCompactionTransactions(t *testing.T, open storeOpener) {
	t.Parallel()
	e := newEnv(t, open, nil)
	coord := newTxnCoord()
	cfg := e.compactConfig("a1", 1<<20)
	cfg.VerifyTxn = coord.verify
	l := e.open(cfg)
	topic := e.topic("kc", 1, map[string]string{"cleanup.policy": "compact,delete"})
	lead(t, l, topic)
	tp := tpOf(topic, 0)
	ctx := context.Background()
	plain := batch.DefaultBuildOptions()
	txn := func(pid int64) batch.BuildOptions {
		o := plain
		o.ProducerID, o.ProducerEpoch, o.BaseSequence, o.Transactional = pid, 0, 0, true
		return o
	}
	appendOK(t, l, tp, kbatch(t, plain, kv{key: "k1", value: "old"}))
	coord.begin(1, 0)
	appendOK(t, l, tp, kbatch(t, txn(1), kv{key: "k1", value: "aborted"}, kv{key: "k3", value: "aborted"}))
	if _, err := l.WriteMarker(ctx, tp, Marker{ProducerID: 1, ProducerEpoch: 0, Commit: false, CoordinatorEpoch: 1}); err != nil {
		t.Fatal(err)
	}
	coord.end(1)
	coord.begin(2, 0)
	appendOK(t, l, tp, kbatch(t, txn(2), kv{key: "k2", value: "committed"}))
	if _, err := l.WriteMarker(ctx, tp, Marker{ProducerID: 2, ProducerEpoch: 0, Commit: true, CoordinatorEpoch: 1}); err != nil {
		t.Fatal(err)
	}
	coord.end(2)
	appendOK(t, l, tp, kbatch(t, plain, kv{key: "z", value: "last"}))
	st := compactOK(t, l)
	if st.RecordsRemoved != 2 {
		t.Fatalf("stats %+v; want the two aborted records removed", st)
	}
	want := "0 k1=old,3 \x00\x00\x00\x00=<marker>,4 k2=committed,5 \x00\x00\x00\x01=<marker>,6 z=last"
	if got := strings.Join(readRecords(t, l, tp, 0), ","); got != want {
		t.Fatalf("after compaction: %q, want %q", got, want)
	}
}

// Keyless records are refused on a compacted topic, and nothing of the
// batch is stored.
func TestKeyCompactionRefusesKeyless(t *testing.T) { onBackends(t, testKeyCompactionRefusesKeyless) }

func testKeyCompactionRefusesKeyless(t *testing.T, open storeOpener) {
	t.Parallel()
	e := newEnv(t, open, nil)
	l := e.open(e.config("a1"))
	topic := e.topic("kc", 1, map[string]string{"cleanup.policy": "compact"})
	other := e.topic("plain", 1, nil)
	lead(t, l, topic)
	lead(t, l, other)
	recs := []batch.Record{{Key: []byte("k"), Value: []byte("v")}, {Value: []byte("no key")}}
	b, err := batch.Build(recs, batch.DefaultBuildOptions())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(context.Background(), tpOf(topic, 0), b, AckDurable); !errors.Is(err, batch.ErrInvalidRecord) {
		t.Fatalf("keyless record on a compacted topic: %v, want ErrInvalidRecord", err)
	}
	if hw := e.hwOf(tpOf(topic, 0)); hw != 0 {
		t.Fatalf("high watermark %d after a refused append", hw)
	}
	appendOK(t, l, tpOf(other, 0), b)
}

// With a key map too small for the keys, passes cover the log a part at a
// time and still keep exactly the newest record per key; a record at a
// kept offset never changes.
func TestKeyCompactionSmallMap(t *testing.T) { onBackends(t, testKeyCompactionSmallMap) }

func testKeyCompactionSmallMap(t *testing.T, open storeOpener) {
	t.Parallel()
	e := newEnv(t, open, nil)
	cfg := e.compactConfig("a1", 300)
	cfg.Compaction.KeyMapBytes = 1 // one run per pass
	l := e.open(cfg)
	topic := e.topic("kc", 1, map[string]string{"cleanup.policy": "compact"})
	lead(t, l, topic)
	tp := tpOf(topic, 0)
	plain := batch.DefaultBuildOptions()
	written := map[int64]string{}
	newest := map[string]int64{}
	var off int64
	for i := range 30 {
		var recs []kv
		for j := range 3 {
			k := fmt.Sprintf("k%d", (i*7+j*3)%11)
			recs = append(recs, kv{key: k, value: fmt.Sprintf("v%d-%d", i, j)})
		}
		appendOK(t, l, tp, kbatch(t, plain, recs...))
		for _, r := range recs {
			written[off] = r.key + "=" + r.value
			newest[r.key] = off
			off++
		}
	}
	passes := 0
	for range 60 {
		st := compactOK(t, l)
		if st.KeyPasses == 0 {
			break
		}
		passes++
	}
	if passes < 2 {
		t.Fatalf("%d passes, want several with a one-key map", passes)
	}
	last := off - 3 // the log's last batch, kept whole
	var want []string
	for o := int64(0); o < off; o++ {
		k := strings.SplitN(written[o], "=", 2)[0]
		if o >= last || newest[k] == o {
			want = append(want, fmt.Sprintf("%d %s", o, written[o]))
		}
	}
	got := readRecords(t, l, tp, 0)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("after %d passes:\n got %v\nwant %v", passes, got, want)
	}
}

// Below min.cleanable.dirty.ratio no pass runs, until the dirty data is
// older than max.compaction.lag.ms.
func TestKeyCompactionMaxLag(t *testing.T) { onBackends(t, testKeyCompactionMaxLag) }

func testKeyCompactionMaxLag(t *testing.T, open storeOpener) {
	t.Parallel()
	e := newEnv(t, open, nil)
	l := e.open(keyConfig(e))
	topic := e.topic("kc", 1, map[string]string{"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.9", "max.compaction.lag.ms": "3600000"})
	lead(t, l, topic)
	tp := tpOf(topic, 0)
	plain := batch.DefaultBuildOptions()
	now := e.clock.Now().UnixMilli()
	var big []kv
	for i := range 20 {
		big = append(big, kv{key: fmt.Sprintf("k%d", i), value: strings.Repeat("v", 100), ts: now})
	}
	appendOK(t, l, tp, kbatch(t, plain, big...))
	appendOK(t, l, tp, kbatch(t, plain, kv{key: "x", value: "1", ts: now}))
	if st := compactOK(t, l); st.KeyPasses != 1 || st.RecordsRemoved != 0 {
		t.Fatalf("first pass: %+v", st)
	}
	appendOK(t, l, tp, kbatch(t, plain, kv{key: "k0", value: "new", ts: now}))
	appendOK(t, l, tp, kbatch(t, plain, kv{key: "y", value: "1", ts: now}))
	if st := compactOK(t, l); st.KeyPasses != 0 {
		t.Fatalf("a pass ran below the dirty ratio: %+v", st)
	}
	if r, ok := l.DirtyRatio(tp); !ok || r <= 0 || r >= 0.9 {
		t.Fatalf("dirty ratio %v %v, want between 0 and 0.9", r, ok)
	}
	e.clock.Advance(2 * time.Hour)
	if st := compactOK(t, l); st.KeyPasses != 1 || st.RecordsRemoved != 1 {
		t.Fatalf("past max.compaction.lag.ms: %+v, want one pass removing the old k0", st)
	}
	got := readRecords(t, l, tp, 0)
	if len(got) != 22 || got[0] != "1 k1="+strings.Repeat("v", 100) || got[20] != "21 k0=new" {
		t.Fatalf("after the forced pass: %v", got)
	}
}
