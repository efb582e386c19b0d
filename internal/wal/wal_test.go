package wal

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
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

// writeN writes n entries into a fresh WAL in dir and closes it.
func writeN(t *testing.T, dir string, n int) {
	t.Helper()
	w, _ := open(t, dir, Options{})
	for i := 0; i < n; i++ {
		waitDone(t, add(t, w, hdr(int64(i*10), 10), payload(i), []byte("tail")))
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
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

func segFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"+segExt))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func copyDir(t *testing.T, from string) string {
	t.Helper()
	to := t.TempDir()
	for _, f := range segFiles(t, from) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, filepath.Base(f)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return to
}

func TestTornTailAtEveryByte(t *testing.T) {
	src := t.TempDir()
	writeN(t, src, 3)
	files := segFiles(t, src)
	if len(files) != 1 {
		t.Fatalf("%d segment files, want 1", len(files))
	}
	st, err := os.Stat(files[0])
	if err != nil {
		t.Fatal(err)
	}
	size := st.Size()
	last := size - FrameSize(len(payload(2))+4)
	for cut := last; cut < size; cut++ {
		dir := copyDir(t, src)
		f := filepath.Join(dir, filepath.Base(files[0]))
		if err := os.Truncate(f, cut); err != nil {
			t.Fatal(err)
		}
		w, rec := open(t, dir, Options{})
		if len(rec) != 2 {
			t.Fatalf("cut at %d of %d: recovered %d entries, want 2", cut, size, len(rec))
		}
		wantTorn := 1.0
		if cut == last {
			wantTorn = 0 // a clean end
		}
		if got := testutil.ToFloat64(w.metrics.tornTails); got != wantTorn {
			t.Fatalf("cut at %d: torn tails %v, want %v", cut, got, wantTorn)
		}
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() != last {
			t.Fatalf("cut at %d: file truncated to %d, want %d", cut, st.Size(), last)
		}
		w.Close()
	}
}

func TestCorruptEntryInTheMiddle(t *testing.T) {
	dir := t.TempDir()
	writeN(t, dir, 4)
	f := segFiles(t, dir)[0]
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	// The second entry's payload starts after the segment header, the
	// first frame and the second's headers.
	segHdr := int64(len(segmentHeader("boot1")))
	pos := segHdr + FrameSize(len(payload(0))+4) + frameHeader + entryHeader + 5
	b[pos] ^= 0xff
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
	if want := segHdr + FrameSize(len(payload(0))+4); st.Size() != want {
		t.Fatalf("file is %d bytes after recovery, want %d", st.Size(), want)
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
	// Releasing all but the newest entry deletes every segment but the
	// one being written.
	for _, e := range es[:len(es)-1] {
		w.Release(e)
	}
	if got := segFiles(t, dir); len(got) != 1 {
		t.Fatalf("%d segment files left after releasing all but the last entry, want 1: %v", len(got), got)
	}
	if got := w.LiveBytes(); got != es[0].size {
		t.Fatalf("live bytes %d, want one entry's %d", got, es[0].size)
	}
	w.Release(es[len(es)-1])
	w.Close()
	// Nothing live: a reopened WAL recovers nothing and removes the file.
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
	if err := os.WriteFile(filepath.Join(dir, segName(3)), []byte("garbage!"), 0o644); err != nil {
		t.Fatal(err)
	}
	w, rec := open(t, dir, Options{})
	if len(rec) != 0 || testutil.ToFloat64(w.metrics.tornTails) != 1 {
		t.Fatalf("recovered %d, torn %v", len(rec), testutil.ToFloat64(w.metrics.tornTails))
	}
	// New segments are numbered after the old ones.
	waitDone(t, add(t, w, hdr(0, 1), payload(0)))
	if got := segFiles(t, dir); len(got) != 1 || filepath.Base(got[0]) != segName(4) {
		t.Fatalf("segments %v, want only %s", got, segName(4))
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
	testAfterSync = func() {
		if armed {
			armed = false
			w.Release(e1) // e1's commit lands while the group is in flight
		}
	}
	defer func() { testAfterSync = nil }()
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
		"newer version": append([]byte(segMagic[:len(segMagic)-1]), 2, 0, 0, 0, 0, 0),
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
