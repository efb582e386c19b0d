package wal

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func hdr(base int64, n int32) Header {
	return Header{TopicID: [16]byte{1, 2, 3}, Partition: 7, LeaderEpoch: 3, BaseOffset: base, LastOffset: base + int64(n) - 1, Records: n}
}

func payload(i int) []byte { return bytes.Repeat([]byte{byte(i)}, 100+i) }

func open(t *testing.T, dir string, opts Options) (*WAL, []Recovered) {
	t.Helper()
	opts.Dir = dir
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if opts.SegmentSize == 0 {
		opts.SegmentSize = testSegSize
	}
	if opts.WriterID == "" {
		opts.WriterID = "boot1"
	}
	w, rec, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w, rec
}

func add(t *testing.T, w *WAL, h Header, batches ...[]byte) *Entry {
	t.Helper()
	n := 0
	for _, b := range batches {
		n += len(b)
	}
	if err := w.Reserve(context.Background(), FrameSize(n)); err != nil {
		t.Fatal(err)
	}
	return w.Add(h, batches, FrameSize(n))
}

// setHook sets a test hook for the rest of the test.
func setHook(t *testing.T, hook *atomic.Pointer[func()], f func()) {
	hook.Store(&f)
	t.Cleanup(func() { hook.Store(nil) })
}

func waitDone(t *testing.T, e *Entry) {
	t.Helper()
	select {
	case <-e.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("entry not synced")
	}
	if err := e.Err(); err != nil {
		t.Fatal(err)
	}
}

// waitPrepared waits until the preparer has a segment ready, so the next
// rotation (or the first write) goes into a preallocated one.
func waitPrepared(t *testing.T, w *WAL) *segment {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		w.mu.Lock()
		n := w.next
		w.mu.Unlock()
		if n != nil {
			return n
		}
		if time.Now().After(deadline) {
			t.Fatal("no segment prepared")
		}
		time.Sleep(time.Millisecond)
	}
}

func curSegment(w *WAL) *segment {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.cur
}

// testSegSize is the segment size of writeN's WAL.
const testSegSize = 64 << 10

// writeN writes n entries into a fresh WAL in dir (in one preallocated
// segment) and closes it; it returns the segment's path.
func writeN(t *testing.T, dir string, n int) string {
	t.Helper()
	w, _ := open(t, dir, Options{})
	waitPrepared(t, w)
	for i := 0; i < n; i++ {
		waitDone(t, add(t, w, hdr(int64(i*10), 10), payload(i), []byte("tail")))
	}
	path := curSegment(w).path
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// frames returns the start of each frame of the segment file at path and
// the end of the last one.
func frames(t *testing.T, path string) (starts []int64, end int64) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	sc := newScanner(f, st.Size())
	_, salt, pos, err := sc.header()
	if err != nil {
		t.Fatal(err)
	}
	for {
		fr, next, err := sc.frame(pos, salt)
		if err != nil {
			t.Fatal(err)
		}
		if fr == nil {
			return starts, pos
		}
		starts = append(starts, pos)
		pos = next
	}
}

func TestFramingRoundTrip(t *testing.T) {
	dir := t.TempDir()
	writeN(t, dir, 5)
	_, rec := open(t, dir, Options{WriterID: "boot2"})
	if len(rec) != 5 {
		t.Fatalf("recovered %d entries, want 5", len(rec))
	}
	for i, r := range rec {
		if got, want := r.Header(), hdr(int64(i*10), 10); got != want {
			t.Errorf("entry %d header %+v, want %+v", i, got, want)
		}
		if r.Writer != "boot1" {
			t.Errorf("entry %d writer %q, want boot1", i, r.Writer)
		}
		data, err := r.Read()
		if err != nil {
			t.Fatal(err)
		}
		if want := append(payload(i), "tail"...); !bytes.Equal(data, want) {
			t.Errorf("entry %d data differs", i)
		}
	}
}

// Entries are written into a segment zero-filled ahead of use: the file
// is a whole segment long, and the zeros after the last entry are a clean
// end (no damage counted, nothing truncated).
func TestPreallocatedZeroTailIsCleanEnd(t *testing.T) {
	dir := t.TempDir()
	path := writeN(t, dir, 3)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(testSegSize); st.Size() != want {
		t.Fatalf("segment is %d bytes, want the preallocated %d", st.Size(), want)
	}
	_, end := frames(t, path)
	if end >= st.Size() {
		t.Fatalf("entries end at %d of %d: no zero tail to test", end, st.Size())
	}
	w, rec := open(t, dir, Options{})
	if len(rec) != 3 {
		t.Fatalf("recovered %d entries, want 3", len(rec))
	}
	if got := testutil.ToFloat64(w.metrics.tornTails); got != 0 {
		t.Fatalf("torn tails %v for a zero tail, want 0", got)
	}
	if st2, _ := os.Stat(path); st2.Size() != st.Size() {
		t.Fatalf("segment truncated from %d to %d", st.Size(), st2.Size())
	}
}

func segFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"+segExt))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// copyFile copies the segment at path alone into a new directory.
func copyFile(t *testing.T, path string) (dir, to string) {
	t.Helper()
	dir = t.TempDir()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	to = filepath.Join(dir, filepath.Base(path))
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, to
}

// A crash while the last entry was being written leaves it on disk up to
// some byte; after it the file holds what was there before: zeros (a
// preallocated segment) or, in a recycled segment, bytes of its earlier
// use. Every such cut keeps the two entries before it and drops the torn
// one.
func TestTornTailAtEveryByte(t *testing.T) {
	src := t.TempDir()
	path := writeN(t, src, 3)
	starts, end := frames(t, path)
	if len(starts) != 3 {
		t.Fatalf("%d frames, want 3", len(starts))
	}
	last := starts[2]
	stale := bytes.Repeat([]byte{0xa5, 0x17, 0x00, 0x3c}, int(end-last+endMarker)/4+1)
	for _, tail := range []string{"zeros", "stale"} {
		for cut := last; cut < end; cut++ {
			dir, f := copyFile(t, path)
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for i := cut; i < end+endMarker; i++ {
				if tail == "zeros" {
					b[i] = 0
				} else {
					b[i] = stale[i-cut]
				}
			}
			if err := os.WriteFile(f, b, 0o644); err != nil {
				t.Fatal(err)
			}
			// Zeros where the frame header is are a clean end; anything
			// else there is a torn entry, truncated away.
			clean := allZero(b[last : last+frameHeader])
			w, rec := open(t, dir, Options{})
			if len(rec) != 2 {
				t.Fatalf("%s after cut at %d (entry at %d-%d): recovered %d entries, want 2", tail, cut, last, end, len(rec))
			}
			wantTorn, wantSize := 1.0, last
			if clean {
				wantTorn, wantSize = 0, int64(len(b))
			}
			if got := testutil.ToFloat64(w.metrics.tornTails); got != wantTorn {
				t.Fatalf("%s after cut at %d: torn tails %v, want %v", tail, cut, got, wantTorn)
			}
			if st, err := os.Stat(f); err != nil || st.Size() != wantSize {
				t.Fatalf("%s after cut at %d: file is %v bytes (%v), want %d", tail, cut, st.Size(), err, wantSize)
			}
			w.Close()
		}
	}
}

func TestCorruptEntryInTheMiddle(t *testing.T) {
	dir := t.TempDir()
	f := writeN(t, dir, 4)
	starts, _ := frames(t, f)
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	b[starts[1]+frameHeader+entryHeader+5] ^= 0xff // in the second entry's payload
	if err := os.WriteFile(f, b, 0o644); err != nil {
		t.Fatal(err)
	}
	w, rec := open(t, dir, Options{})
	if len(rec) != 1 || rec[0].Header().BaseOffset != 0 {
		t.Fatalf("recovered %d entries, want the first only", len(rec))
	}
	if got := testutil.ToFloat64(w.metrics.tornTails); got != 1 {
		t.Fatalf("torn tails %v, want 1", got)
	}
	st, _ := os.Stat(f)
	if st.Size() != starts[1] {
		t.Fatalf("file is %d bytes after recovery, want %d", st.Size(), starts[1])
	}
}

// frameBytes is one frame as the writer writes it into a segment with salt.
func frameBytes(salt uint64, h Header, data []byte) []byte {
	e := &Entry{hdr: h, batches: [][]byte{data}, size: FrameSize(len(data))}
	b := make([]byte, frameHeader+entryHeader)
	encodeFrameHeader(b, e, salt)
	return append(b, data...)
}

// A recycled segment still holds its earlier use's frames after the new
// ones. With equal frame sizes they start exactly where a new frame would;
// a crash that lost the last new frame and the end marker after it (not
// yet synced) leaves the reader there. Those frames are checksummed with
// the old salt and must not be read as entries.
func TestStaleFramesOfRecycledSegmentRejected(t *testing.T) {
	dir := t.TempDir()
	const oldSalt, newSalt = 0x1111111111111111, 0x2222222222222222
	// The file's earlier use: three entries at offsets 100-129.
	old := segmentHeader("boot1", oldSalt)
	for i := 0; i < 3; i++ {
		old = append(old, frameBytes(oldSalt, hdr(int64(100+10*i), 10), payload(0))...)
	}
	// Its new use: the same header length, one entry at 0 over the old
	// first one.
	b := append([]byte(nil), old...)
	h := segmentHeader("boot1", newSalt)
	copy(b, h)
	copy(b[len(h):], frameBytes(newSalt, hdr(0, 10), payload(0)))
	if err := os.WriteFile(filepath.Join(dir, segName(5)), b, 0o644); err != nil {
		t.Fatal(err)
	}
	w, rec := open(t, dir, Options{})
	if len(rec) != 1 || rec[0].Header() != hdr(0, 10) {
		var got []Header
		for _, r := range rec {
			got = append(got, r.Header())
		}
		t.Fatalf("recovered %v, want only the new entry at 0", got)
	}
	if got := testutil.ToFloat64(w.metrics.tornTails); got != 1 {
		t.Fatalf("torn tails %v, want 1 (the stale frame)", got)
	}
}

// Segments of format version 1 (no salt, no end marker) written by an
// earlier build are read, and their torn tails truncated as before.
func TestReadsVersion1Segments(t *testing.T) {
	dir := t.TempDir()
	v1 := append([]byte(magicPrefix), version1, byte(len("old")))
	v1 = append(v1, "old"...)
	v1 = binary.BigEndian.AppendUint32(v1, crc32.Checksum(v1, crcTable))
	for i := 0; i < 2; i++ {
		v1 = append(v1, frameBytes(0, hdr(int64(10*i), 10), payload(i))...)
	}
	good := len(v1)
	v1 = append(v1, frameBytes(0, hdr(20, 10), payload(2))[:30]...) // torn
	path := filepath.Join(dir, segName(1))
	if err := os.WriteFile(path, v1, 0o644); err != nil {
		t.Fatal(err)
	}
	w, rec := open(t, dir, Options{})
	if len(rec) != 2 {
		t.Fatalf("recovered %d entries of a version 1 segment, want 2", len(rec))
	}
	for i, r := range rec {
		if r.Header() != hdr(int64(10*i), 10) || r.Writer != "old" {
			t.Fatalf("entry %d: %+v by %q", i, r.Header(), r.Writer)
		}
		if data, err := r.Read(); err != nil || !bytes.Equal(data, payload(i)) {
			t.Fatalf("entry %d data: %v", i, err)
		}
	}
	if got := testutil.ToFloat64(w.metrics.tornTails); got != 1 {
		t.Fatalf("torn tails %v, want 1", got)
	}
	if st, _ := os.Stat(path); st.Size() != int64(good) {
		t.Fatalf("version 1 segment is %d bytes, want it truncated to %d", st.Size(), good)
	}
	// Released, the old segment goes; new entries are version 2.
	for _, r := range rec {
		w.Release(r.Entry)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("released version 1 segment still there: %v", err)
	}
}

// A segment whose entries are all released is kept as a spare and becomes
// a later segment (no zero-filling, the same file); a restart then finds
// exactly the entries not released, none of the file's earlier ones.
func TestRecycledSegmentReused(t *testing.T) {
	dir := t.TempDir()
	const segSize = 4096
	// Process 1 leaves 10 entries (offsets 1000-1099) in one segment.
	w1, _ := open(t, dir, Options{SegmentSize: segSize})
	waitPrepared(t, w1)
	for i := 0; i < 10; i++ {
		waitDone(t, add(t, w1, hdr(int64(1000+10*i), 10), payload(i)))
	}
	first := curSegment(w1).path
	firstInfo, err := os.Stat(first)
	if err != nil {
		t.Fatal(err)
	}
	if err := w1.Close(); err != nil {
		t.Fatal(err)
	}

	// Process 2 commits them (releases all): the file becomes a spare,
	// the preparer makes it the segment after the first one written.
	w2, rec := open(t, dir, Options{SegmentSize: segSize, WriterID: "boot2"})
	if len(rec) != 10 {
		t.Fatalf("recovered %d, want 10", len(rec))
	}
	waitPrepared(t, w2)
	for _, r := range rec {
		w2.Release(r.Entry)
	}
	if got := testutil.ToFloat64(w2.metrics.segmentsRecycled); got != 1 {
		t.Fatalf("segments recycled %v, want 1", got)
	}
	var kept []int64
	i := 0
	write := func() {
		e := add(t, w2, hdr(int64(2000+10*i), 10), payload(i))
		waitDone(t, e)
		kept = append(kept, e.Header().BaseOffset)
		i++
	}
	write()
	second := curSegment(w2)
	next := waitPrepared(t, w2)
	if fi, err := os.Stat(next.path); err != nil || !os.SameFile(fi, firstInfo) {
		t.Fatalf("prepared segment %s is not the recycled file (%v)", next.path, err)
	}
	for curSegment(w2) == second {
		write()
	}
	if got := curSegment(w2); got != next {
		t.Fatalf("rotated to %s, want the recycled %s", got.path, next.path)
	}
	write()
	waitPrepared(t, w2)
	created := testutil.ToFloat64(w2.metrics.segmentsCreated)
	if err := w2.Close(); err != nil {
		t.Fatal(err)
	}
	// Process 1's prepared segment, unused, was a spare too: process 2
	// zero-filled only the one after the recycled one.
	if created != 1 {
		t.Fatalf("process 2 created %v segment files, want 1", created)
	}

	w3, rec := open(t, dir, Options{SegmentSize: segSize, WriterID: "boot3"})
	var got []int64
	for _, r := range rec {
		got = append(got, r.Header().BaseOffset)
	}
	if len(got) != len(kept) {
		t.Fatalf("recovered offsets %v, want %v", got, kept)
	}
	for j := range got {
		if got[j] != kept[j] {
			t.Fatalf("recovered offsets %v, want %v", got, kept)
		}
	}
	if n := testutil.ToFloat64(w3.metrics.tornTails); n != 0 {
		t.Fatalf("torn tails %v after a clean close, want 0", n)
	}
}

// A crash can leave a short spare (while zero-filling) and a prepared
// segment nothing was written to: the short spare is deleted, the empty
// segment kept as a spare (it is whole), and neither counts as damage.
func TestLeftoversOfPreparation(t *testing.T) {
	dir := t.TempDir()
	w1, _ := open(t, dir, Options{SegmentSize: 8192})
	prepared := waitPrepared(t, w1).path
	// Keep the prepared file as a crash would leave it.
	b, err := os.ReadFile(prepared)
	if err != nil {
		t.Fatal(err)
	}
	w1.Close() // made it a spare
	spares, _ := filepath.Glob(filepath.Join(dir, "*"+spareExt))
	for _, f := range spares {
		os.Remove(f)
	}
	if err := os.WriteFile(prepared, b, 0o644); err != nil {
		t.Fatal(err)
	}
	short := filepath.Join(dir, spareName(42))
	if err := os.WriteFile(short, make([]byte, 100), 0o644); err != nil {
		t.Fatal(err)
	}
	w2, rec := open(t, dir, Options{SegmentSize: 8192})
	if len(rec) != 0 || testutil.ToFloat64(w2.metrics.tornTails) != 0 {
		t.Fatalf("recovered %d, torn %v", len(rec), testutil.ToFloat64(w2.metrics.tornTails))
	}
	if _, err := os.Stat(short); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("short spare kept: %v", err)
	}
	waitPrepared(t, w2)
	if got := testutil.ToFloat64(w2.metrics.segmentsCreated); got != 0 {
		t.Fatalf("created %v segment files, want the leftovers reused", got)
	}
	// Sequence numbers go on after every file found, spares included.
	e := add(t, w2, hdr(0, 1), payload(0))
	waitDone(t, e)
	if s := curSegment(w2); s.seq <= 42 {
		t.Fatalf("new segment numbered %d, want after 42", s.seq)
	}
}

func TestRotationAndTruncation(t *testing.T) {
	dir := t.TempDir()
	w, _ := open(t, dir, Options{SegmentSize: 1000})
	var es []*Entry
	for i := 0; i < 30; i++ {
		e := add(t, w, hdr(int64(i), 1), bytes.Repeat([]byte{1}, 300))
		waitDone(t, e)
		es = append(es, e)
	}
	n := len(segFiles(t, dir))
	if n < 5 {
		t.Fatalf("%d segment files for 30 entries of ~350 bytes in 1000-byte segments", n)
	}
	// Releasing all but the newest entry leaves only the segment being
	// written and the prepared one.
	for _, e := range es[:len(es)-1] {
		w.Release(e)
	}
	next := waitPrepared(t, w)
	got := segFiles(t, dir)
	keep := map[string]bool{curSegment(w).path: true, next.path: true}
	for _, f := range got {
		if !keep[f] {
			t.Fatalf("segment files %v left after releasing all but the last entry; want only %v", got, keep)
		}
	}
	if spares, _ := filepath.Glob(filepath.Join(dir, "*"+spareExt)); len(spares) > maxSpares {
		t.Fatalf("%d spare files, at most %d kept", len(spares), maxSpares)
	}
	if got := w.LiveBytes(); got != es[0].size {
		t.Fatalf("live bytes %d, want one entry's %d", got, es[0].size)
	}
	w.Release(es[len(es)-1])
	w.Close()
	if got := segFiles(t, dir); len(got) != 0 {
		t.Fatalf("segment files %v after closing with nothing live", got)
	}
	// Nothing live: a reopened WAL recovers nothing.
	_, rec := open(t, dir, Options{})
	if len(rec) != 0 {
		t.Fatalf("recovered %d entries after all were released, want 0", len(rec))
	}
}

func TestFullWaitsAndResumes(t *testing.T) {
	dir := t.TempDir()
	w, _ := open(t, dir, Options{MaxSize: 1000})
	e, got := fullAndWaiting(t, w)
	deadline := time.Now().Add(30 * time.Second)
	select {
	case err := <-got:
		t.Fatalf("reserve returned %v while the WAL is full", err)
	default:
	}
	w.Release(e)
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("writer did not resume after release")
	}
	// A waiting writer respects its context.
	ctx, cancel := context.WithCancel(context.Background())
	go func() { got <- w.Reserve(ctx, FrameSize(900)) }()
	for testutil.ToFloat64(w.metrics.fullWaits) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("third writer never waited")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-got; !errors.Is(err, context.Canceled) {
		t.Fatalf("reserve after cancel: %v", err)
	}
}

func TestGroupCommitSharesFsync(t *testing.T) {
	dir := t.TempDir()
	w, _ := open(t, dir, Options{SyncInterval: time.Hour})
	// The first write syncs at once (no sync yet in the interval).
	waitDone(t, add(t, w, hdr(0, 1), payload(0)))
	if got := testutil.ToFloat64(w.metrics.fsyncs); got != 1 {
		t.Fatalf("fsyncs %v, want 1", got)
	}
	var es []*Entry
	for i := 1; i <= 20; i++ {
		es = append(es, add(t, w, hdr(int64(i), 1), payload(i)))
	}
	for _, e := range es {
		select {
		case <-e.Done():
			t.Fatal("entry synced before the sync interval passed")
		default:
		}
	}
	// Close writes and syncs them: one fsync for all 20.
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		waitDone(t, e)
	}
	if got := testutil.ToFloat64(w.metrics.fsyncs); got != 2 {
		t.Fatalf("fsyncs %v after 21 entries, want 2", got)
	}
	_, rec := open(t, dir, Options{})
	if len(rec) != 21 {
		t.Fatalf("recovered %d, want 21", len(rec))
	}
}

// The writer does not wait for the sync in flight: entries added while
// one runs are written (in the file) before it ends, and acknowledged by
// the next one.
func TestWritesOverlapSync(t *testing.T) {
	dir := t.TempDir()
	w, _ := open(t, dir, Options{})
	waitPrepared(t, w)
	inSync, resume := make(chan struct{}), make(chan struct{})
	armed := true
	setHook(t, &testAfterSync, func() {
		if armed {
			armed = false
			close(inSync)
			<-resume
		}
	})
	first := add(t, w, hdr(0, 1), payload(0))
	select {
	case <-inSync:
	case <-time.After(30 * time.Second):
		t.Fatal("no sync started")
	}
	second := add(t, w, hdr(1, 1), payload(1))
	path := curSegment(w).path
	deadline := time.Now().Add(30 * time.Second)
	for {
		if starts, _ := frames(t, path); len(starts) == 2 {
			break
		}
		if time.Now().After(deadline) {
			close(resume)
			t.Fatal("the second entry was not written while the first one's sync was in flight")
		}
		time.Sleep(time.Millisecond)
	}
	select {
	case <-second.Done():
		t.Fatal("second entry acknowledged before a sync covering it")
	default:
	}
	close(resume)
	waitDone(t, first)
	waitDone(t, second)
}

func TestConcurrentWritersSyncZero(t *testing.T) {
	dir := t.TempDir()
	w, _ := open(t, dir, Options{})
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		go func(g int) {
			for i := 0; i < 50; i++ {
				e := add(t, w, hdr(int64(g*1000+i), 1), payload(i))
				<-e.Done()
				if e.Err() != nil {
					errs <- e.Err()
					return
				}
			}
			errs <- nil
		}(g)
	}
	for g := 0; g < 8; g++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if f := testutil.ToFloat64(w.metrics.fsyncs); f < 1 || f > 400 {
		t.Fatalf("fsyncs %v for 400 entries", f)
	}
	w.Close()
	_, rec := open(t, dir, Options{})
	if len(rec) != 400 {
		t.Fatalf("recovered %d, want 400", len(rec))
	}
}

func TestBadSegmentHeader(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, segName(3)), []byte("SHWAL\x00\x00\x02garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	w, rec := open(t, dir, Options{})
	if len(rec) != 0 || testutil.ToFloat64(w.metrics.tornTails) != 1 {
		t.Fatalf("recovered %d, torn %v", len(rec), testutil.ToFloat64(w.metrics.tornTails))
	}
	// The damaged segment is gone; new segments are numbered after it.
	waitDone(t, add(t, w, hdr(0, 1), payload(0)))
	for _, f := range segFiles(t, dir) {
		if filepath.Base(f) <= segName(3) {
			t.Fatalf("segments %v, want only ones after %s", segFiles(t, dir), segName(3))
		}
	}
}

// An entry written into a segment that the same group write then rotates
// away from survives a release of the segment's last older entry while
// the group is in flight (the segment was deleted with it inside).
func TestRotationRacingRelease(t *testing.T) {
	dir := t.TempDir()
	w, _ := open(t, dir, Options{SegmentSize: 400, SyncInterval: 50 * time.Millisecond})
	e1 := add(t, w, hdr(0, 1), payload(0))
	waitDone(t, e1)
	armed := true
	setHook(t, &testAfterSync, func() {
		if armed {
			armed = false
			w.Release(e1) // e1's commit lands while the group is in flight
		}
	})
	e2 := add(t, w, hdr(1, 1), payload(1))
	e3 := add(t, w, hdr(2, 1), payload(2))
	waitDone(t, e2)
	waitDone(t, e3)
	// e2 and e3 are acked and never released: a crash now keeps both.
	w.Close()
	_, rec := open(t, dir, Options{WriterID: "boot2"})
	got := map[int64]bool{}
	for _, r := range rec {
		got[r.Header().BaseOffset] = true
	}
	if !got[1] || !got[2] {
		t.Fatalf("acked entries lost after restart: recovered %v, want offsets 1 and 2", got)
	}
}

// A writer waiting for space is woken when the WAL closes: it gets
// ErrClosed instead of waiting for space that never comes.
func TestFullWaiterWokenByClose(t *testing.T) {
	dir := t.TempDir()
	w, _ := open(t, dir, Options{MaxSize: 1000})
	_, got := fullAndWaiting(t, w)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("reserve after close: %v, want ErrClosed", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a writer waiting for space was not woken by Close")
	}
}

// A second process (here a second Open) cannot use a WAL directory in use.
func TestDirectoryLocked(t *testing.T) {
	dir := t.TempDir()
	w, _ := open(t, dir, Options{})
	if w2, _, err := Open(Options{Dir: dir, WriterID: "boot2"}); err == nil {
		w2.Close()
		t.Fatal("a second WAL opened the directory in use")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w3, _, err := Open(Options{Dir: dir, WriterID: "boot3"})
	if err != nil {
		t.Fatalf("open after the first closed: %v", err)
	}
	w3.Close()
}

// A segment of another format version, or a file that is not a segment at
// all, stops Open instead of being deleted: it may hold acknowledged data
// another build can read.
func TestForeignSegmentRefused(t *testing.T) {
	for name, content := range map[string][]byte{
		"newer version": append([]byte(magicPrefix), 3, 0, 0, 0, 0, 0),
		"not a segment": []byte("this is not a write-ahead log segment"),
	} {
		dir := t.TempDir()
		path := filepath.Join(dir, segName(7))
		if err := os.WriteFile(path, content, 0o644); err != nil {
			t.Fatal(err)
		}
		if w, _, err := Open(Options{Dir: dir, WriterID: "boot1"}); err == nil {
			w.Close()
			t.Errorf("%s: Open accepted it", name)
		}
		if _, err := os.Stat(path); err != nil {
			t.Errorf("%s: the segment is gone: %v", name, err)
		}
	}
}

// fullAndWaiting fills w (MaxSize 1000) with one entry and starts a
// writer that must wait for space; it returns once that writer waits, with
// the entry and the writer's outcome.
func fullAndWaiting(t *testing.T, w *WAL) (*Entry, chan error) {
	t.Helper()
	e := add(t, w, hdr(0, 1), make([]byte, 900))
	waitDone(t, e)
	got := make(chan error, 1)
	go func() { got <- w.Reserve(context.Background(), FrameSize(900)) }()
	deadline := time.Now().Add(30 * time.Second)
	for testutil.ToFloat64(w.metrics.fullWaits) < 1 {
		if time.Now().After(deadline) {
			t.Fatal("the second writer never waited")
		}
		time.Sleep(time.Millisecond)
	}
	return e, got
}

// The preparer numbers a segment when it starts preparing it; if the
// writer meanwhile had to start a growing segment (nothing prepared yet),
// that one has the higher number. Entries must still go to segments in
// sequence order, the order recovery reads them in.
func TestPreparedAfterGrowingKeepsOrder(t *testing.T) {
	dir := t.TempDir()
	hold, release := make(chan struct{}), make(chan struct{})
	armed := true
	setHook(t, &testBeforeInstall, func() {
		if armed {
			armed = false
			close(hold)
			<-release
		}
	})
	w, _ := open(t, dir, Options{})
	<-hold // the first segment is prepared, not yet offered
	waitDone(t, add(t, w, hdr(0, 1), payload(0)))
	growing := curSegment(w)
	close(release)
	waitPrepared(t, w)
	waitDone(t, add(t, w, hdr(1, 1), payload(1)))
	if s := curSegment(w); s.seq < growing.seq {
		t.Fatalf("second entry went to segment %d, before the growing segment %d", s.seq, growing.seq)
	}
	w.Close()
	_, rec := open(t, dir, Options{WriterID: "boot2"})
	if len(rec) != 2 || rec[0].Header().BaseOffset != 0 || rec[1].Header().BaseOffset != 1 {
		var got []int64
		for _, r := range rec {
			got = append(got, r.Header().BaseOffset)
		}
		t.Fatalf("recovered offsets %v, want [0 1]", got)
	}
}

// Queued entries wait for a Flush, then share one write and one sync.
func TestQueuedEntriesShareOneSync(t *testing.T) {
	dir := t.TempDir()
	w, _ := open(t, dir, Options{})
	waitPrepared(t, w)
	var es []*Entry
	for i := 0; i < 5; i++ {
		if err := w.Reserve(context.Background(), FrameSize(len(payload(i)))); err != nil {
			t.Fatal(err)
		}
		es = append(es, w.Queue(hdr(int64(i), 1), [][]byte{payload(i)}, FrameSize(len(payload(i)))))
	}
	// Nothing starts the writer: nothing is written or synced.
	time.Sleep(50 * time.Millisecond)
	if got := testutil.ToFloat64(w.metrics.fsyncs); got != 0 {
		t.Fatalf("%v syncs before Flush", got)
	}
	if cur := curSegment(w); cur != nil {
		t.Fatalf("segment %s started before Flush", cur.path)
	}
	w.Flush(context.Background())
	for _, e := range es {
		waitDone(t, e)
	}
	if got := testutil.ToFloat64(w.metrics.fsyncs); got != 1 {
		t.Fatalf("%v syncs for 5 entries flushed at once, want 1", got)
	}
	if starts, _ := frames(t, curSegment(w).path); len(starts) != 5 {
		t.Fatalf("%d frames written, want 5", len(starts))
	}
}

// With nothing else writing or syncing, Flush writes and syncs in its
// caller: the entries are acknowledged when it returns, without waiting
// for another goroutine to be scheduled.
func TestFlushSyncsInCaller(t *testing.T) {
	w, _ := open(t, t.TempDir(), Options{})
	waitPrepared(t, w)
	for round := 0; round < 3; round++ {
		var es []*Entry
		for i := 0; i < 3; i++ {
			if err := w.Reserve(context.Background(), FrameSize(len(payload(i)))); err != nil {
				t.Fatal(err)
			}
			es = append(es, w.Queue(hdr(int64(10*round+i), 1), [][]byte{payload(i)}, FrameSize(len(payload(i)))))
		}
		w.Flush(context.Background())
		for _, e := range es {
			select {
			case <-e.Done():
				if e.Err() != nil {
					t.Fatal(e.Err())
				}
			default:
				t.Fatalf("round %d: entry not acknowledged when Flush returned", round)
			}
		}
	}
	if got := testutil.ToFloat64(w.metrics.fsyncs); got != 3 {
		t.Fatalf("%v syncs for 3 flushes, want 3", got)
	}
}

// An entry smaller than its reservation (some of its batches were
// duplicates) gives the rest back at once: a writer waiting for that
// space goes on.
func TestUnusedReservationWakesWaiter(t *testing.T) {
	dir := t.TempDir()
	w, _ := open(t, dir, Options{MaxSize: 1000})
	ctx := context.Background()
	if err := w.Reserve(ctx, FrameSize(900)); err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() { got <- w.Reserve(ctx, FrameSize(100)) }()
	deadline := time.Now().Add(30 * time.Second)
	for testutil.ToFloat64(w.metrics.fullWaits) < 1 {
		if time.Now().After(deadline) {
			t.Fatal("the second writer never waited")
		}
		time.Sleep(time.Millisecond)
	}
	e := w.Add(hdr(0, 1), [][]byte{make([]byte, 10)}, FrameSize(900))
	waitDone(t, e)
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the waiting writer was not woken by the space its neighbour did not use")
	}
}

// Close writes and syncs what was queued before it even when a Flush was
// writing as it began: the writer goroutine then leaves the rest to that
// Flush, which hands it back to the writer, gone by then.
func TestCloseWritesWhatAnInlineFlushLeft(t *testing.T) {
	dir := t.TempDir()
	w, _ := open(t, dir, Options{})
	entered, proceed := make(chan struct{}), make(chan struct{})
	var once sync.Once
	setHook(t, &testBeforeWrite, func() {
		once.Do(func() {
			close(entered)
			<-proceed
		})
	})
	ctx := context.Background()
	reserve := func(n int) int64 {
		if err := w.Reserve(ctx, FrameSize(n)); err != nil {
			t.Fatal(err)
		}
		return FrameSize(n)
	}
	e1 := w.Queue(hdr(0, 1), [][]byte{payload(1)}, reserve(len(payload(1))))
	flushed := make(chan struct{})
	go func() {
		w.Flush(ctx)
		close(flushed)
	}()
	<-entered // the Flush is writing e1
	e2 := w.Queue(hdr(1, 1), [][]byte{payload(2)}, reserve(len(payload(2))))
	closed := make(chan error, 1)
	go func() { closed <- w.Close() }()
	select {
	case <-w.writerDone: // the writer goroutine left, e2 to the Flush
	case <-time.After(30 * time.Second):
		t.Fatal("the writer goroutine did not stop")
	}
	close(proceed)
	<-flushed
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	for i, e := range []*Entry{e1, e2} {
		waitDone(t, e)
		if err := e.Err(); err != nil {
			t.Errorf("entry %d, queued before Close: %v", i+1, err)
		}
	}
}
