// Package wal owns the agent's local write-ahead log: the record batches a
// partition log has given offsets to but not yet committed, framed and
// checksummed in segment files in one directory, fsynced in groups, so a
// buffered acknowledgement survives a crash of the process (docs/format.md,
// "Write-ahead log"; docs/architecture.md, "Write-ahead log").
//
// Queue (cheap, no I/O, safe under the caller's own locks) queues an
// entry; Flush, called outside locks when the acknowledgement is wanted,
// writes everything queued in queue order (one pwritev per segment) and
// fdatasyncs once for all of it (group commit), closing the entries' Done
// channels. It does so in its caller's goroutine when no other write or
// sync is in flight; otherwise the write in progress takes its entries
// and the syncer goroutine syncs back to back while anything written is
// unsynced, so writes overlap the sync in flight. Add queues and wakes
// the writer goroutine instead. The preparer goroutine keeps the next
// segment file ready: a recycled segment whose entries were all released,
// or a new one zero-filled to the segment size, so a sync of data written
// into it updates no file metadata.
//
// Release marks an entry's data as committed elsewhere; a segment whose
// entries are all released is recycled (kept as a spare for the preparer)
// or deleted. The bytes of live entries (queued, written, or reserved by
// Reserve) are bounded by Options.MaxSize: Reserve waits while the bound
// is reached.
//
// Lock order: a caller's locks before WAL.mu; WAL.mu is never held across
// file I/O.
package wal

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ErrClosed is returned by Reserve and reported by entries added after
// Close.
var ErrClosed = errors.New("wal closed")

// ErrFailed is returned by Reserve once a write or fsync has failed: the
// WAL takes nothing more until the process restarts.
var ErrFailed = errors.New("wal failed")

// Header describes one entry: a run of record batches of one partition with
// their offsets already assigned.
type Header struct {
	TopicID     [16]byte
	Partition   int32
	LeaderEpoch int32
	BaseOffset  int64
	LastOffset  int64
	Records     int32
}

const (
	// frame: length uint32 | crc uint32 | header (44 bytes) | batches.
	frameHeader = 8
	entryHeader = 16 + 4 + 4 + 8 + 8 + 4
	// endMarker is the zero frame header written after every group: a
	// reader stops there cleanly, whatever a recycled file held after it.
	endMarker = frameHeader
	// maxEntry bounds one entry's length field, so a corrupt length never
	// makes replay allocate more than this.
	maxEntry = 1 << 30
	segExt   = ".wal"
	spareExt = ".spare"
	// maxSpares bounds the released segment files kept for reuse.
	maxSpares = 4
	// fillChunk is the size of one write of zeros preparing a segment.
	fillChunk = 1 << 20
)

var (
	crcTable = crc32.MakeTable(crc32.Castagnoli)
	zeros    = make([]byte, fillChunk)
)

// testAfterSync, when set (tests only), runs in the syncer after a
// group's fsync and before its entries complete.
var testAfterSync atomic.Pointer[func()]

// testBeforeInstall, when set (tests only), runs in the preparer when a
// segment is prepared, before it is offered to the writer.
var testBeforeInstall atomic.Pointer[func()]

// testBeforeWrite, when set (tests only), runs when a group starts being
// written, before anything of it is.
var testBeforeWrite atomic.Pointer[func()]

// Options configure a WAL.
type Options struct {
	Dir string
	// SyncInterval spaces fsyncs: 0 fsyncs as soon as something is
	// written (one fsync for everything written meanwhile); > 0 at most
	// once per interval.
	SyncInterval time.Duration
	// MaxSize bounds the bytes of live entries (frames), default 1 GiB.
	MaxSize int64
	// SegmentSize is the size of a segment file: new ones are zero-filled
	// to it, and the writer starts a new one when the next entry would
	// pass it. Default min(16 MiB, MaxSize/4), at least 1 MiB.
	SegmentSize int64
	// WriterID names the process writing the new segments (the partition
	// log's boot id); replay reports it with each recovered entry.
	WriterID string
	Logger   *slog.Logger
	Metrics  prometheus.Registerer
}

// Entry is one queued or written entry.
type Entry struct {
	hdr     Header
	batches [][]byte
	size    int64 // frame bytes
	done    chan struct{}
	err     error // set before done closes

	// guarded by WAL.mu
	seg      *segment // nil until written
	released bool
}

// Header returns the entry's header.
func (e *Entry) Header() Header { return e.hdr }

// Done is closed once the entry is written and fsynced (or the WAL failed
// or closed: see Err).
func (e *Entry) Done() <-chan struct{} { return e.done }

// Err is the outcome once Done is closed: nil when the entry is on disk.
func (e *Entry) Err() error { return e.err }

// Recovered is an entry found by Open in a segment left by an earlier
// process; Read returns its batches. Release it once its data is committed
// or dropped.
type Recovered struct {
	*Entry
	Writer string // Options.WriterID of the process that wrote it
	path   string
	pos    int64 // of the batches in the file
	n      int
}

// Read returns the entry's record batches, concatenated as appended.
func (r Recovered) Read() ([]byte, error) {
	f, err := os.Open(r.path)
	if err != nil {
		return nil, fmt.Errorf("read wal entry: %w", err)
	}
	defer f.Close()
	b := make([]byte, r.n)
	if _, err := f.ReadAt(b, r.pos); err != nil {
		return nil, fmt.Errorf("read wal entry in %s at %d: %w", r.path, r.pos, err)
	}
	return b, nil
}

// segment is one segment file. Its fields are guarded by WAL.mu, except
// f (set before the segment is shared, closed only once it is disposed).
type segment struct {
	seq  uint64
	path string
	salt uint64   // seeds its frames' checksums (0: format version 1)
	f    *os.File // nil for a recovered segment
	// fileSize is the file's length: preallocated (zero-filled) or as
	// found; grown writes raise it.
	fileSize int64

	live    int  // entries written into it and not released
	cur     bool // the segment being written
	pinned  bool // the writer is writing into it
	dirty   bool // written since the syncer last took it
	syncing bool // in the syncer's current sync
	gone    bool // disposed of (closed, recycled or deleted)
}

// WAL is the write-ahead log. Create it with Open, stop it with Close.
type WAL struct {
	lock    *os.File // holds the directory's LOCK file (flock) until Close
	opts    Options
	log     *slog.Logger
	metrics *metrics

	mu         sync.Mutex
	queue      []*Entry // added, not yet taken by the writer
	live       int64    // bytes of live entries and reservations
	spaceFreed chan struct{}
	closed     bool
	failed     error // a write or fsync failed: the WAL accepts nothing more
	nextSeq    uint64
	cur        *segment       // the segment being written
	lastSeq    uint64         // the highest sequence number the writer has started
	next       *segment       // prepared by the preparer, not yet written
	spares     []string       // released segment files kept for reuse
	open       []*segment     // segments with an open file
	unsynced   []*Entry       // written (or failed), in queue order, for the syncer
	dirty      []*segment     // written since the syncer last took them
	writing    bool           // a goroutine is writing (drain)
	syncBusy   bool           // a goroutine is syncing (syncGroup)
	inline     sync.WaitGroup // Flush calls writing or syncing; Close waits for them

	writerKick chan struct{}
	syncKick   chan struct{}
	prepKick   chan struct{}
	stopWriter chan struct{}
	stopSyncer chan struct{}
	stopPrep   chan struct{}
	writerDone chan struct{}
	syncerDone chan struct{}
	prepDone   chan struct{}

	// Owned by the writer goroutine.
	curSize    int64 // bytes written into cur (header and frames)
	curEntries int
}

// Open opens (creating) the directory, recovers the entries of the segment
// files found there (truncating each file at its first torn or corrupt
// entry) and starts the writer, the syncer and the preparer. New entries
// go to new segment files.
func Open(opts Options) (*WAL, []Recovered, error) {
	if opts.Dir == "" {
		return nil, nil, errors.New("open wal: no directory")
	}
	if opts.MaxSize <= 0 {
		opts.MaxSize = 1 << 30
	}
	if opts.SegmentSize <= 0 {
		opts.SegmentSize = min(16<<20, max(opts.MaxSize/4, 1<<20))
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Metrics == nil {
		opts.Metrics = prometheus.NewRegistry()
	}
	if len(opts.WriterID) > 255 {
		return nil, nil, errors.New("open wal: writer id longer than 255 bytes")
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("open wal: %w", err)
	}
	// One process per WAL directory: a second one would recover (and
	// truncate) the first one's live segment.
	lock, err := lockDir(opts.Dir)
	if err != nil {
		return nil, nil, err
	}
	w := &WAL{
		lock:       lock,
		opts:       opts,
		log:        opts.Logger.With("component", "wal"),
		metrics:    newMetrics(opts.Metrics),
		spaceFreed: make(chan struct{}),
		writerKick: make(chan struct{}, 1),
		syncKick:   make(chan struct{}, 1),
		prepKick:   make(chan struct{}, 1),
		stopWriter: make(chan struct{}),
		stopSyncer: make(chan struct{}),
		stopPrep:   make(chan struct{}),
		writerDone: make(chan struct{}),
		syncerDone: make(chan struct{}),
		prepDone:   make(chan struct{}),
	}
	rec, err := w.recover()
	if err != nil {
		lock.Close()
		return nil, nil, err
	}
	w.metrics.liveBytes.Set(float64(w.live))
	go w.writer()
	go w.syncer()
	go w.preparer()
	kick(w.prepKick)
	return w, rec, nil
}

func segName(seq uint64) string   { return fmt.Sprintf("%020d%s", seq, segExt) }
func spareName(seq uint64) string { return fmt.Sprintf("%020d%s", seq, spareExt) }

func kick(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// recover reads every segment file in sequence order and adopts the spare
// files of earlier processes.
func (w *WAL) recover() ([]Recovered, error) {
	des, err := os.ReadDir(w.opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("open wal: %w", err)
	}
	type file struct {
		seq  uint64
		name string
	}
	var segs, spares []file
	for _, de := range des {
		name := de.Name()
		if de.IsDir() {
			continue
		}
		list := &segs
		ext := segExt
		if strings.HasSuffix(name, spareExt) {
			list, ext = &spares, spareExt
		} else if !strings.HasSuffix(name, segExt) {
			continue
		}
		seq, err := strconv.ParseUint(strings.TrimSuffix(name, ext), 10, 64)
		if err != nil {
			continue
		}
		// Sequence numbers are never reused, spares' included: a spare
		// keeps the number of the segment it was.
		w.nextSeq = max(w.nextSeq, seq+1)
		*list = append(*list, file{seq, name})
	}
	sort.Slice(segs, func(i, j int) bool { return segs[i].seq < segs[j].seq })
	for _, f := range spares {
		w.keepOrRemove(filepath.Join(w.opts.Dir, f.name), f.seq)
	}
	var out []Recovered
	for _, f := range segs {
		path := filepath.Join(w.opts.Dir, f.name)
		rec, err := w.recoverSegment(path, f.seq)
		if err != nil {
			return nil, err
		}
		out = append(out, rec...)
	}
	return out, nil
}

// keepOrRemove keeps a file an earlier process left as a spare when it is
// a whole segment long and there is room among the spares, and deletes it
// otherwise (a crash while preparing leaves a short one).
func (w *WAL) keepOrRemove(path string, seq uint64) {
	if st, err := os.Stat(path); err == nil && st.Size() >= w.opts.SegmentSize && len(w.spares) < maxSpares {
		if !strings.HasSuffix(path, spareExt) {
			to := filepath.Join(w.opts.Dir, spareName(seq))
			if err := os.Rename(path, to); err == nil {
				w.spares = append(w.spares, to)
				return
			}
		} else {
			w.spares = append(w.spares, path)
			return
		}
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		w.log.Warn("remove wal file", "file", path, "err", err)
	}
}

// recoverSegment reads one segment file; it keeps the entries before the
// first torn or corrupt one and truncates the file there. A zero frame
// header (the end marker, or the zeros of a preallocated segment) ends the
// segment cleanly.
func (w *WAL) recoverSegment(path string, seq uint64) ([]Recovered, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("open wal segment %s: %w", path, err)
	}
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("open wal segment %s: %w", path, err)
	}
	size := st.Size()
	sc := newScanner(f, size)
	seg := &segment{seq: seq, path: path, fileSize: size}
	var out []Recovered
	writer, salt, pos, damage := sc.header()
	if errors.Is(damage, errForeignSegment) {
		return nil, fmt.Errorf("open wal: %s: %w (move it away to start without it)", path, damage)
	}
	seg.salt = salt
	if damage != nil {
		pos = 0
	}
	for damage == nil {
		fr, next, err := sc.frame(pos, salt)
		if err != nil {
			damage = err
			break
		}
		if fr == nil {
			break // clean end
		}
		e := &Entry{hdr: fr.hdr, size: next - pos, done: make(chan struct{}), seg: seg}
		close(e.done)
		out = append(out, Recovered{Entry: e, Writer: writer, path: path, pos: pos + frameHeader + entryHeader, n: fr.n})
		pos = next
	}
	if damage != nil {
		w.metrics.tornTails.Inc()
		w.log.Warn("wal segment damaged: keeping the entries before the damage and truncating the rest", "segment", path, "at", pos, "size", size, "entries_kept", len(out), "err", damage)
		if err := f.Truncate(pos); err != nil {
			return nil, fmt.Errorf("truncate wal segment %s: %w", path, err)
		}
		if err := f.Sync(); err != nil {
			return nil, fmt.Errorf("sync wal segment %s: %w", path, err)
		}
		seg.fileSize = pos
	}
	if len(out) == 0 {
		f.Close()
		f = nil
		w.keepOrRemove(path, seq)
		return nil, nil
	}
	seg.live = len(out)
	for _, rc := range out {
		w.live += rc.size
	}
	return out, nil
}

// FrameSize is the bytes an entry of batches takes in a segment: what
// Reserve must reserve for it.
func FrameSize(batchBytes int) int64 { return int64(frameHeader + entryHeader + batchBytes) }

// Reserve waits, bounded by ctx, until n more bytes fit under MaxSize (a
// lone reservation larger than MaxSize passes once nothing else is live),
// and reserves them. The caller hands them to Add or gives them back with
// Unreserve.
func (w *WAL) Reserve(ctx context.Context, n int64) error {
	w.mu.Lock()
	for w.live > 0 && w.live+n > w.opts.MaxSize && !w.closed && w.failed == nil {
		ch := w.spaceFreed
		w.mu.Unlock()
		w.metrics.fullWaits.Inc()
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("wait for wal space: %w", ctx.Err())
		}
		w.mu.Lock()
	}
	defer w.mu.Unlock()
	if w.closed {
		return ErrClosed
	}
	if w.failed != nil {
		return fmt.Errorf("%w: %v", ErrFailed, w.failed)
	}
	w.live += n
	w.metrics.liveBytes.Set(float64(w.live))
	return nil
}

// Unreserve gives back reserved bytes that no entry took.
func (w *WAL) Unreserve(n int64) {
	if n == 0 {
		return
	}
	w.mu.Lock()
	w.freeLocked(n)
	w.mu.Unlock()
}

// wakeLocked wakes every Reserve waiting for space (space freed, or the
// WAL closed or failed: they must not wait for space that never comes).
func (w *WAL) wakeLocked() {
	close(w.spaceFreed)
	w.spaceFreed = make(chan struct{})
}

func (w *WAL) freeLocked(n int64) {
	w.live -= n
	w.metrics.liveBytes.Set(float64(w.live))
	w.wakeLocked()
}

// Add queues an entry of batches (not copied: they must not change until
// Done is closed) using reserved bytes from Reserve (the difference to its
// frame size is given back or taken), and wakes the writer goroutine for
// it. It never blocks on I/O.
func (w *WAL) Add(h Header, batches [][]byte, reserved int64) *Entry {
	e := w.Queue(h, batches, reserved)
	kick(w.writerKick)
	return e
}

// Queue is Add without waking the writer: the entry is written with the
// next Flush or Add. A caller queueing several entries at once (one per
// partition of a request) flushes after the last, so they share one write
// and one sync instead of trailing each other's syncs.
func (w *WAL) Queue(h Header, batches [][]byte, reserved int64) *Entry {
	n := 0
	for _, b := range batches {
		n += len(b)
	}
	e := &Entry{hdr: h, batches: batches, size: FrameSize(n), done: make(chan struct{})}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.live += e.size - reserved
	w.metrics.liveBytes.Set(float64(w.live))
	if e.size < reserved {
		w.wakeLocked() // space a waiting Reserve may take
	}
	switch {
	case w.closed:
		e.err = ErrClosed
	case w.failed != nil:
		e.err = w.failed
	}
	if e.err != nil {
		e.released = true
		w.freeLocked(e.size)
		close(e.done)
		return e
	}
	w.queue = append(w.queue, e)
	w.metrics.appends.Inc()
	return e
}

// Release says e's data no longer needs the WAL (it is committed, or it
// will never be). A segment whose entries are all released is recycled
// or deleted once no longer written to. Releasing twice is a no-op.
func (w *WAL) Release(e *Entry) {
	var free *segment
	w.mu.Lock()
	if !e.released {
		e.released = true
		w.freeLocked(e.size)
		if s := e.seg; s != nil {
			s.live--
			free = w.freeableLocked(s)
		}
	}
	w.mu.Unlock()
	if free != nil {
		w.dispose(free)
	}
}

// freeableLocked marks s gone and returns it when nothing needs it any
// more: no live entry, not being written, nothing unsynced in it.
func (w *WAL) freeableLocked(s *segment) *segment {
	if s.gone || s.cur || s == w.next || s.live > 0 || s.pinned || s.dirty || s.syncing {
		return nil
	}
	s.gone = true
	w.dropOpenLocked(s)
	return s
}

func (w *WAL) dropOpenLocked(s *segment) {
	for i, o := range w.open {
		if o == s {
			w.open = append(w.open[:i], w.open[i+1:]...)
			return
		}
	}
}

// dispose closes a segment nothing needs and keeps its file as a spare
// (a whole segment long, and room among the spares) or deletes it.
func (w *WAL) dispose(s *segment) {
	w.mu.Lock()
	f := s.f
	s.f = nil
	keep := s.fileSize >= w.opts.SegmentSize && len(w.spares) < maxSpares
	w.mu.Unlock()
	if f != nil {
		if err := f.Close(); err != nil {
			w.log.Warn("close wal segment", "segment", s.path, "err", err)
		}
	}
	if keep {
		to := filepath.Join(w.opts.Dir, spareName(s.seq))
		if err := os.Rename(s.path, to); err == nil {
			w.mu.Lock()
			w.spares = append(w.spares, to)
			w.mu.Unlock()
			w.metrics.segmentsRecycled.Inc()
			kick(w.prepKick)
			return
		} else {
			w.log.Warn("keep released wal segment for reuse", "segment", s.path, "err", err)
		}
	}
	if err := os.Remove(s.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		w.log.Warn("remove committed wal segment", "segment", s.path, "err", err)
		return
	}
	w.metrics.segmentsDeleted.Inc()
}

// LiveBytes is the bytes of live entries and reservations.
func (w *WAL) LiveBytes() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.live
}

// Segments lists the segment files now in the directory (for tests and
// operators); spare files are not segments.
func (w *WAL) Segments() ([]string, error) {
	m, err := filepath.Glob(filepath.Join(w.opts.Dir, "*"+segExt))
	sort.Strings(m)
	return m, err
}

// Close writes and fsyncs what is queued, stops the goroutines and closes
// the segment files. Entries stay on disk until released by a later
// process's replay; a prepared segment nothing was written to, and the
// current one if all its entries are released, become spares (or go).
func (w *WAL) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	w.wakeLocked()
	w.mu.Unlock()
	close(w.stopWriter)
	<-w.writerDone
	w.inline.Wait()
	// A Flush writing as the writer stopped hands what was queued behind
	// it to the writer, gone now: write it here.
	w.drain(false)
	close(w.stopSyncer)
	<-w.syncerDone
	close(w.stopPrep)
	<-w.prepDone
	defer w.lock.Close() // releases the flock

	w.mu.Lock()
	fail := w.queue
	w.queue = nil
	var dispose []*segment
	if n := w.next; n != nil {
		w.next = nil
		n.gone = true
		dispose = append(dispose, n)
	}
	if c := w.cur; c != nil {
		c.cur = false
		if s := w.freeableLocked(c); s != nil {
			dispose = append(dispose, s)
		}
	}
	// Segments still holding live entries: their files close; the
	// entries stay for the next start (a late Release still disposes of
	// the file).
	var files []*os.File
	for _, s := range w.open {
		if s.f != nil {
			files = append(files, s.f)
			s.f = nil
		}
	}
	w.open = nil
	w.mu.Unlock()
	var err error
	for _, f := range files {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}
	for _, s := range dispose {
		w.dispose(s)
	}
	for _, e := range fail {
		e.err = ErrClosed
		close(e.done)
	}
	if err != nil {
		return fmt.Errorf("close wal: %w", err)
	}
	return nil
}

// Flush writes every entry queued and syncs it, in the caller's goroutine
// when no other goroutine is writing or syncing (an acknowledgement then
// waits for no goroutine handoff), or leaves the work to the one that is:
// it runs on, or hands over to the writer and syncer goroutines, until
// nothing is left; the writes go on meanwhile. With SyncInterval > 0 the
// syncer goroutine syncs. Flush does one write and one sync at most, and
// file I/O: call it outside locks. With ctx done it only wakes the writer.
func (w *WAL) Flush(ctx context.Context) {
	if ctx.Err() != nil {
		kick(w.writerKick)
		return
	}
	w.drain(true)
	if w.opts.SyncInterval > 0 {
		kick(w.syncKick)
		return
	}
	w.mu.Lock()
	if w.syncBusy || w.closed || len(w.unsynced) == 0 {
		w.mu.Unlock()
		return
	}
	w.syncBusy = true
	w.inline.Add(1)
	w.mu.Unlock()
	defer w.inline.Done()
	w.syncGroup()
	w.mu.Lock()
	w.syncBusy = false
	more := len(w.unsynced) > 0
	w.mu.Unlock()
	if more {
		kick(w.syncKick)
	}
}

// drain writes what is queued, in order, group after group, unless another
// goroutine is writing: that one goes on until the queue is empty (or
// hands what is left to the writer goroutine), so it writes these too.
// inline: a Flush (not the writer goroutine), which writes one group (its
// own entries are in it) and hands the rest to the writer goroutine, does
// not start writing once the WAL is closing, and leaves the sync to its
// caller; the writer goroutine wakes the syncer after each group.
func (w *WAL) drain(inline bool) {
	w.mu.Lock()
	if w.writing || len(w.queue) == 0 || (inline && w.closed) {
		w.mu.Unlock()
		return
	}
	w.writing = true
	if inline {
		w.inline.Add(1)
		defer w.inline.Done()
	}
	for len(w.queue) > 0 {
		batch := w.queue
		w.queue = nil
		w.mu.Unlock()
		w.writeGroup(batch)
		if !inline {
			kick(w.syncKick)
		}
		w.mu.Lock()
		if inline && len(w.queue) > 0 {
			// Queued meanwhile by others: not this caller's to wait for.
			w.writing = false
			w.mu.Unlock()
			kick(w.writerKick)
			return
		}
	}
	w.writing = false
	w.mu.Unlock()
}

// writer writes what Add queues (Flush writes in its caller).
func (w *WAL) writer() {
	defer close(w.writerDone)
	for {
		select {
		case <-w.writerKick:
			w.drain(false)
		case <-w.stopWriter:
			// Close: write what was queued before it (Add refuses
			// entries from then on); a Flush writing now writes the
			// rest, and Close waits for it.
			w.drain(false)
			return
		}
	}
}

// run is one pwritev's worth of frames into one segment.
type run struct {
	seg  *segment
	off  int64
	bufs [][]byte
}

// writeGroup writes batch into the segments (rotating as needed), then
// queues the entries for the sync (by the caller's arrangement: drain). Each entry joins its segment as it is
// placed, not after the sync: a release of an older entry of that segment
// meanwhile must not see it empty and dispose of it with this entry in it.
func (w *WAL) writeGroup(batch []*Entry) {
	if len(batch) == 0 {
		return
	}
	if f := testBeforeWrite.Load(); f != nil {
		(*f)()
	}
	w.mu.Lock()
	err := w.failed
	w.mu.Unlock()
	// Frame headers, in one buffer that is never reallocated (the runs
	// point into it).
	heads := make([]byte, 0, len(batch)*(frameHeader+entryHeader))
	var r run
	var pinned []*segment
	flush := func() error {
		if len(r.bufs) == 0 {
			return nil
		}
		r.bufs = append(r.bufs, zeros[:endMarker])
		err := writeAt(r.seg.f, r.bufs, r.off)
		r.bufs = r.bufs[:0]
		return err
	}
	for _, e := range batch {
		if err != nil {
			break
		}
		w.mu.Lock()
		skip := e.released
		w.mu.Unlock()
		if skip {
			continue // committed before it was written
		}
		if w.needRotation(e.size) {
			if err = flush(); err != nil {
				break
			}
			if err = w.rotate(); err != nil {
				break
			}
		}
		seg := w.cur
		if r.seg != seg {
			r = run{seg: seg, off: w.curSize, bufs: r.bufs[:0]}
		}
		h := heads[len(heads) : len(heads)+frameHeader+entryHeader]
		heads = heads[:len(heads)+len(h)]
		encodeFrameHeader(h, e, seg.salt)
		r.bufs = append(r.bufs, h)
		r.bufs = append(r.bufs, e.batches...)
		w.curSize += e.size
		w.curEntries++
		w.mu.Lock()
		if !seg.pinned {
			seg.pinned = true
			pinned = append(pinned, seg)
		}
		if !e.released {
			e.seg = seg
			seg.live++
		}
		if end := w.curSize + endMarker; end > seg.fileSize {
			seg.fileSize = end
		}
		w.mu.Unlock()
	}
	if err == nil {
		err = flush()
	}
	if err != nil {
		err = fmt.Errorf("wal write: %w", err)
		w.log.Error("wal write failed; buffered acknowledgements fail from now on", "err", err)
	}
	w.mu.Lock()
	if err != nil && w.failed == nil {
		w.failed = err
		w.wakeLocked()
	}
	for _, e := range batch {
		if err != nil && e.err == nil {
			e.err = err
		}
	}
	w.unsynced = append(w.unsynced, batch...)
	for _, s := range pinned {
		s.pinned = false
		if !s.dirty {
			s.dirty = true
			w.dirty = append(w.dirty, s)
		}
	}
	w.mu.Unlock()
}

// encodeFrameHeader fills h (frameHeader+entryHeader bytes) for e, with
// the checksum of the entry header and batches seeded with the segment's
// salt.
func encodeFrameHeader(h []byte, e *Entry, salt uint64) {
	putEntryHeader(h[frameHeader:], e.hdr)
	sum := frameCRC(salt, h[frameHeader:])
	for _, b := range e.batches {
		sum = crc32.Update(sum, crcTable, b)
	}
	putUint32(h[0:4], uint32(e.size-frameHeader))
	putUint32(h[4:8], sum)
}

// needRotation reports whether an entry of size bytes goes into a new
// segment: there is none yet; or it would pass the segment's size; or it
// would grow a segment past its preallocated size while a prepared one
// waits (a segment started before the preparer was ready grows).
func (w *WAL) needRotation(size int64) bool {
	cur := w.cur
	if cur == nil {
		return true
	}
	if w.curEntries == 0 {
		return false
	}
	end := w.curSize + size + endMarker
	w.mu.Lock()
	alloc, ready := cur.fileSize, w.next != nil
	w.mu.Unlock()
	if end <= alloc {
		return false
	}
	return ready || w.curSize+size > w.opts.SegmentSize
}

// rotate makes the prepared segment (or, if none is ready, a new file
// that grows as written) the current one.
func (w *WAL) rotate() error {
	w.mu.Lock()
	seg := w.next
	w.next = nil
	var stale *segment
	if seg != nil && seg.seq < w.lastSeq {
		// Numbered before a growing segment the writer started while it
		// was being prepared: entries must go to segments in sequence
		// order (replay reads them so), so the file goes back to the
		// spares, to be prepared again under a new number.
		stale, seg = seg, nil
		w.dropOpenLocked(stale)
	}
	w.mu.Unlock()
	if stale != nil {
		stale.f.Close()
		w.mu.Lock()
		w.spares = append(w.spares, stale.path)
		w.mu.Unlock()
	}
	if seg == nil {
		var err error
		if seg, err = w.createGrowing(); err != nil {
			return err
		}
	}
	kick(w.prepKick)
	var free *segment
	w.mu.Lock()
	if old := w.cur; old != nil {
		old.cur = false
		free = w.freeableLocked(old)
	}
	seg.cur = true
	w.cur = seg
	w.lastSeq = max(w.lastSeq, seg.seq)
	w.mu.Unlock()
	if free != nil {
		w.dispose(free)
	}
	w.curSize = int64(len(segmentHeader(w.opts.WriterID, seg.salt)))
	w.curEntries = 0
	return nil
}

// createGrowing creates a segment file holding only its header, for when
// no prepared segment is ready (the writer's goroutine).
func (w *WAL) createGrowing() (*segment, error) {
	w.mu.Lock()
	seq := w.nextSeq
	w.nextSeq++
	w.lastSeq = seq
	w.mu.Unlock()
	path := filepath.Join(w.opts.Dir, segName(seq))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create wal segment: %w", err)
	}
	salt := newSalt()
	h := append(segmentHeader(w.opts.WriterID, salt), zeros[:endMarker]...)
	if _, err := f.WriteAt(h, 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("create wal segment: %w", err)
	}
	if err := syncDir(w.opts.Dir); err != nil {
		f.Close()
		return nil, err
	}
	seg := &segment{seq: seq, path: path, salt: salt, f: f, fileSize: int64(len(h))}
	w.mu.Lock()
	w.open = append(w.open, seg)
	w.mu.Unlock()
	w.metrics.segmentsCreated.Inc()
	return seg, nil
}

func newSalt() uint64 {
	for {
		if s := rand.Uint64(); s != 0 {
			return s
		}
	}
}

// syncer fsyncs what the writer wrote, in groups, and completes the
// entries.
func (w *WAL) syncer() {
	defer close(w.syncerDone)
	var lastSync time.Time
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		stopping := false
		select {
		case <-w.syncKick:
		case <-w.stopSyncer:
			stopping = true
		}
		for {
			if iv := w.opts.SyncInterval; iv > 0 && !stopping {
				if wait := time.Until(lastSync.Add(iv)); wait > 0 {
					timer.Reset(wait)
					select {
					case <-timer.C:
					case <-w.stopSyncer:
						stopping = true
						if !timer.Stop() {
							<-timer.C
						}
					}
				}
			}
			w.mu.Lock()
			if w.syncBusy {
				// A Flush is syncing; it wakes this goroutine if
				// something is left when it is done.
				w.mu.Unlock()
				break
			}
			w.syncBusy = true
			w.mu.Unlock()
			did := w.syncGroup()
			w.mu.Lock()
			w.syncBusy = false
			more := len(w.unsynced) > 0
			w.mu.Unlock()
			if did {
				lastSync = time.Now()
			}
			if !more {
				break
			}
		}
		if stopping {
			// The writer and every Flush have stopped: this took
			// everything written.
			return
		}
	}
}

// syncGroup fsyncs every segment written since the last sync and
// completes the entries written before it; false if there was nothing.
func (w *WAL) syncGroup() bool {
	w.mu.Lock()
	batch := w.unsynced
	w.unsynced = nil
	segs := w.dirty
	w.dirty = nil
	for _, s := range segs {
		s.dirty = false
		s.syncing = true
	}
	err := w.failed
	w.mu.Unlock()
	if len(batch) == 0 && len(segs) == 0 {
		return false
	}
	if err == nil && len(segs) > 0 {
		start := time.Now()
		for _, s := range segs {
			if err = datasync(s.f); err != nil {
				err = fmt.Errorf("wal sync: %w", err)
				w.log.Error("wal sync failed; buffered acknowledgements fail from now on", "err", err)
				break
			}
		}
		w.metrics.fsyncs.Inc()
		w.metrics.fsyncSeconds.Observe(time.Since(start).Seconds())
	}
	if f := testAfterSync.Load(); f != nil {
		(*f)()
	}
	var free []*segment
	w.mu.Lock()
	if err != nil && w.failed == nil {
		w.failed = err
		w.wakeLocked()
	}
	for _, s := range segs {
		s.syncing = false
		if f := w.freeableLocked(s); f != nil {
			free = append(free, f)
		}
	}
	w.mu.Unlock()
	for _, e := range batch {
		if e.err == nil {
			e.err = err
		}
		e.batches = nil
		close(e.done)
	}
	for _, s := range free {
		w.dispose(s)
	}
	return true
}

// preparer keeps one segment ready for the writer's next rotation.
func (w *WAL) preparer() {
	defer close(w.prepDone)
	backoff := 100 * time.Millisecond
	for {
		select {
		case <-w.prepKick:
		case <-w.stopPrep:
			return
		}
		w.mu.Lock()
		need := w.next == nil && w.failed == nil
		var src string
		if need && len(w.spares) > 0 {
			src = w.spares[len(w.spares)-1]
			w.spares = w.spares[:len(w.spares)-1]
		}
		seq := w.nextSeq
		if need {
			w.nextSeq++
		}
		w.mu.Unlock()
		if !need {
			continue
		}
		seg, err := w.prepare(src, seq)
		if errors.Is(err, errStopped) {
			return
		}
		if err != nil {
			// The writer creates growing segments meanwhile.
			w.log.Warn("prepare wal segment", "err", err)
			select {
			case <-time.After(backoff):
				backoff = min(2*backoff, 10*time.Second)
				kick(w.prepKick)
				continue
			case <-w.stopPrep:
				return
			}
		}
		backoff = 100 * time.Millisecond
		if f := testBeforeInstall.Load(); f != nil {
			(*f)()
		}
		w.mu.Lock()
		stale := seg.seq < w.lastSeq
		if !stale {
			w.next = seg
			w.open = append(w.open, seg)
		}
		w.mu.Unlock()
		if stale {
			// The writer started a growing segment after this one's
			// number was taken: entries must go to segments in
			// sequence order, so prepare it again under a new one.
			seg.gone = true
			w.dispose(seg)
			kick(w.prepKick)
		}
	}
}

var errStopped = errors.New("wal closing")

// prepare makes segment seq from the spare file src, or from a new file
// zero-filled to the segment size: header (a new salt, so the frames a
// recycled file still holds no longer check) and end marker written and
// synced, renamed to its segment name, the directory synced.
func (w *WAL) prepare(src string, seq uint64) (*segment, error) {
	fresh := src == ""
	var f *os.File
	var err error
	var size int64
	if fresh {
		src = filepath.Join(w.opts.Dir, spareName(seq))
		if f, err = os.OpenFile(src, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o644); err != nil {
			return nil, fmt.Errorf("create wal segment: %w", err)
		}
		size = w.opts.SegmentSize
		for off := int64(0); off < size; off += fillChunk {
			select {
			case <-w.stopPrep:
				f.Close()
				os.Remove(src)
				return nil, errStopped
			default:
			}
			if _, err = f.WriteAt(zeros[:min(fillChunk, size-off)], off); err != nil {
				f.Close()
				os.Remove(src)
				return nil, fmt.Errorf("fill wal segment: %w", err)
			}
		}
	} else {
		if f, err = os.OpenFile(src, os.O_RDWR, 0); err != nil {
			os.Remove(src)
			return nil, fmt.Errorf("reuse wal segment: %w", err)
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			os.Remove(src)
			return nil, fmt.Errorf("reuse wal segment: %w", err)
		}
		size = st.Size()
	}
	fail := func(err error) (*segment, error) {
		f.Close()
		os.Remove(src)
		return nil, err
	}
	salt := newSalt()
	h := append(segmentHeader(w.opts.WriterID, salt), zeros[:endMarker]...)
	if _, err := f.WriteAt(h, 0); err != nil {
		return fail(fmt.Errorf("prepare wal segment: %w", err))
	}
	// A new file's size and extents are metadata: fsync. A reused one's
	// are unchanged.
	sync := datasync
	if fresh {
		sync = (*os.File).Sync
	}
	if err := sync(f); err != nil {
		return fail(fmt.Errorf("prepare wal segment: %w", err))
	}
	path := filepath.Join(w.opts.Dir, segName(seq))
	if err := os.Rename(src, path); err != nil {
		return fail(fmt.Errorf("prepare wal segment: %w", err))
	}
	if err := syncDir(w.opts.Dir); err != nil {
		f.Close()
		os.Remove(path)
		return nil, err
	}
	if fresh {
		w.metrics.segmentsCreated.Inc()
	}
	return &segment{seq: seq, path: path, salt: salt, f: f, fileSize: max(size, int64(len(h)))}, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync wal dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync wal dir: %w", err)
	}
	return nil
}

// lockDir takes an exclusive flock on dir/LOCK, failing at once if another
// process holds it.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open wal: lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("open wal: %s is in use by another process (lock: %w)", dir, err)
	}
	return f, nil
}
