// Package wal owns the agent's local write-ahead log: the record batches a
// partition log has given offsets to but not yet committed, framed and
// checksummed in segment files in one directory, fsynced in groups, so a
// buffered acknowledgement survives a crash of the process (docs/format.md,
// "Write-ahead log"; docs/architecture.md, "Write-ahead log").
//
// Writers never do I/O: Add queues an entry (cheap, safe under the
// caller's own locks) and one background writer writes every queued entry
// in queue order, then fsyncs once for all of them (group commit) and
// closes their Done channels. Release marks an entry's data as committed
// elsewhere; a segment whose entries are all released is deleted. The
// bytes of live entries (queued, written, or reserved by Reserve) are
// bounded by Options.MaxSize: Reserve waits while the bound is reached.
//
// Lock order: a caller's locks before WAL.mu; WAL.mu is never held across
// file I/O except for deleting a segment file.
package wal

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
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
	segMagic = "SHWAL\x00\x00\x01" // 8 bytes; the last byte is the version
	// frame: length uint32 | crc uint32 | header (44 bytes) | batches.
	frameHeader = 8
	entryHeader = 16 + 4 + 4 + 8 + 8 + 4
	// maxEntry bounds one entry's length field, so a corrupt length never
	// makes replay allocate more than this.
	maxEntry = 1 << 30
	segExt   = ".wal"
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// testAfterSync, when set (tests only), runs in the writer after a group's
// fsync and before its entries complete.
var testAfterSync func()

// Options configure a WAL.
type Options struct {
	Dir string
	// SyncInterval spaces fsyncs: 0 fsyncs as soon as something is
	// written (one fsync for everything queued meanwhile); > 0 at most
	// once per interval.
	SyncInterval time.Duration
	// MaxSize bounds the bytes of live entries (frames), default 1 GiB.
	MaxSize int64
	// SegmentSize is the size past which the writer starts a new segment
	// file. Default min(64 MiB, MaxSize/4).
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

type segment struct {
	path string
	live int  // entries written and not released
	cur  bool // the segment being written
}

// WAL is the write-ahead log. Create it with Open, stop it with Close.
type WAL struct {
	lock    *os.File // holds the directory's LOCK file (flock) until Close
	opts    Options
	log     *slog.Logger
	metrics *metrics

	mu         sync.Mutex
	queue      []*Entry
	live       int64 // bytes of live entries and reservations
	spaceFreed chan struct{}
	closed     bool
	failed     error // a write or fsync failed: the WAL accepts nothing more
	nextSeq    uint64
	kick       chan struct{}
	cur        *segment // the segment being written

	// Owned by the writer goroutine.
	rotated    []*segment // rotated away from in the current write
	curFile    *os.File
	curW       *bufio.Writer
	curSize    int64
	curEntries int

	stop chan struct{}
	wg   sync.WaitGroup
}

// Open opens (creating) the directory, recovers the entries of the segment
// files found there (truncating each file at its first torn or corrupt
// entry) and starts the writer. New entries go to a new segment file.
func Open(opts Options) (*WAL, []Recovered, error) {
	if opts.Dir == "" {
		return nil, nil, errors.New("open wal: no directory")
	}
	if opts.MaxSize <= 0 {
		opts.MaxSize = 1 << 30
	}
	if opts.SegmentSize <= 0 {
		opts.SegmentSize = min(64<<20, max(opts.MaxSize/4, 1<<20))
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
		kick:       make(chan struct{}, 1),
		stop:       make(chan struct{}),
	}
	rec, err := w.recover()
	if err != nil {
		lock.Close()
		return nil, nil, err
	}
	w.metrics.liveBytes.Set(float64(w.live))
	w.wg.Add(1)
	go w.writer()
	return w, rec, nil
}

func segName(seq uint64) string { return fmt.Sprintf("%020d%s", seq, segExt) }

// recover reads every segment file in sequence order.
func (w *WAL) recover() ([]Recovered, error) {
	des, err := os.ReadDir(w.opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("open wal: %w", err)
	}
	type file struct {
		seq  uint64
		name string
	}
	var files []file
	for _, de := range des {
		name := de.Name()
		if de.IsDir() || !strings.HasSuffix(name, segExt) {
			continue
		}
		seq, err := strconv.ParseUint(strings.TrimSuffix(name, segExt), 10, 64)
		if err != nil {
			continue
		}
		files = append(files, file{seq, name})
	}
	sort.Slice(files, func(i, j int) bool { return files[i].seq < files[j].seq })
	var out []Recovered
	for _, f := range files {
		w.nextSeq = max(w.nextSeq, f.seq+1)
		path := filepath.Join(w.opts.Dir, f.name)
		rec, err := w.recoverSegment(path)
		if err != nil {
			return nil, err
		}
		out = append(out, rec...)
	}
	return out, nil
}

// recoverSegment reads one segment file; it keeps the entries before the
// first torn or corrupt one and truncates the file there.
func (w *WAL) recoverSegment(path string) ([]Recovered, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("open wal segment %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("open wal segment %s: %w", path, err)
	}
	size := st.Size()
	r := bufio.NewReaderSize(f, 1<<20)
	writer, pos, herr := readSegmentHeader(r)
	if errors.Is(herr, errForeignSegment) {
		return nil, fmt.Errorf("open wal: %s: %w (move it away to start without it)", path, herr)
	}
	seg := &segment{path: path}
	var out []Recovered
	var damage error
	if herr != nil {
		damage = herr
		pos = 0
	}
	for damage == nil && pos < size {
		var fh [frameHeader]byte
		if _, err := io.ReadFull(r, fh[:]); err != nil {
			damage = fmt.Errorf("torn frame header: %w", err)
			break
		}
		n := int64(binary.BigEndian.Uint32(fh[0:4]))
		sum := binary.BigEndian.Uint32(fh[4:8])
		if n < entryHeader || n > maxEntry || pos+frameHeader+n > size {
			damage = fmt.Errorf("bad entry length %d", n)
			break
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(r, body); err != nil {
			damage = fmt.Errorf("torn entry: %w", err)
			break
		}
		if crc32.Checksum(body, crcTable) != sum {
			damage = errors.New("entry checksum mismatch")
			break
		}
		h := decodeHeader(body)
		e := &Entry{hdr: h, size: frameHeader + n, done: make(chan struct{}), seg: seg}
		close(e.done)
		out = append(out, Recovered{Entry: e, Writer: writer, path: path, pos: pos + frameHeader + entryHeader, n: int(n - entryHeader)})
		pos += frameHeader + n
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
	}
	if len(out) == 0 {
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove empty wal segment %s: %w", path, err)
		}
		return nil, nil
	}
	seg.live = len(out)
	for _, rc := range out {
		w.live += rc.size
	}
	return out, nil
}

// errForeignSegment: a segment file this build cannot read (another
// format version, or not a WAL segment at all). Recovery refuses to start
// rather than delete what may hold acknowledged data.
var errForeignSegment = errors.New("wal segment not readable by this build")

func readSegmentHeader(r io.Reader) (writer string, n int64, err error) {
	var h [len(segMagic) + 1]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return "", 0, fmt.Errorf("torn segment header: %w", err)
	}
	if string(h[:len(segMagic)-1]) != segMagic[:len(segMagic)-1] {
		return "", 0, fmt.Errorf("%w: not a wal segment (bad magic)", errForeignSegment)
	}
	if h[len(segMagic)-1] != segMagic[len(segMagic)-1] {
		return "", 0, fmt.Errorf("%w: wal format version %d, this build reads %d", errForeignSegment, h[len(segMagic)-1], segMagic[len(segMagic)-1])
	}
	id := make([]byte, int(h[len(segMagic)])+4)
	if _, err := io.ReadFull(r, id); err != nil {
		return "", 0, fmt.Errorf("torn segment header: %w", err)
	}
	sum := binary.BigEndian.Uint32(id[len(id)-4:])
	c := crc32.Update(crc32.Checksum(h[:], crcTable), crcTable, id[:len(id)-4])
	if c != sum {
		return "", 0, errors.New("segment header checksum mismatch")
	}
	return string(id[:len(id)-4]), int64(len(h) + len(id)), nil
}

func segmentHeader(writer string) []byte {
	b := append([]byte(segMagic), byte(len(writer)))
	b = append(b, writer...)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, crcTable))
}

func encodeHeader(b []byte, h Header) []byte {
	b = append(b, h.TopicID[:]...)
	b = binary.BigEndian.AppendUint32(b, uint32(h.Partition))
	b = binary.BigEndian.AppendUint32(b, uint32(h.LeaderEpoch))
	b = binary.BigEndian.AppendUint64(b, uint64(h.BaseOffset))
	b = binary.BigEndian.AppendUint64(b, uint64(h.LastOffset))
	return binary.BigEndian.AppendUint32(b, uint32(h.Records))
}

func decodeHeader(b []byte) Header {
	var h Header
	copy(h.TopicID[:], b[0:16])
	h.Partition = int32(binary.BigEndian.Uint32(b[16:20]))
	h.LeaderEpoch = int32(binary.BigEndian.Uint32(b[20:24]))
	h.BaseOffset = int64(binary.BigEndian.Uint64(b[24:32]))
	h.LastOffset = int64(binary.BigEndian.Uint64(b[32:40]))
	h.Records = int32(binary.BigEndian.Uint32(b[40:44]))
	return h
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
// frame size is given back or taken). It never blocks on I/O.
func (w *WAL) Add(h Header, batches [][]byte, reserved int64) *Entry {
	n := 0
	for _, b := range batches {
		n += len(b)
	}
	e := &Entry{hdr: h, batches: batches, size: FrameSize(n), done: make(chan struct{})}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.live += e.size - reserved
	w.metrics.liveBytes.Set(float64(w.live))
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
	select {
	case w.kick <- struct{}{}:
	default:
	}
	return e
}

// Release says e's data no longer needs the WAL (it is committed, or it
// will never be). A segment whose entries are all released is deleted
// once no longer written to. Releasing twice is a no-op.
func (w *WAL) Release(e *Entry) {
	var remove string
	w.mu.Lock()
	if !e.released {
		e.released = true
		w.freeLocked(e.size)
		if s := e.seg; s != nil {
			s.live--
			if s.live == 0 && !s.cur {
				remove = s.path
			}
		}
	}
	w.mu.Unlock()
	if remove != "" {
		w.removeSegment(remove)
	}
}

func (w *WAL) removeSegment(path string) {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		w.log.Warn("remove committed wal segment", "segment", path, "err", err)
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
// operators).
func (w *WAL) Segments() ([]string, error) {
	m, err := filepath.Glob(filepath.Join(w.opts.Dir, "*"+segExt))
	sort.Strings(m)
	return m, err
}

// Close writes and fsyncs what is queued, stops the writer and closes the
// current segment. Entries stay on disk until released by a later
// process's replay.
func (w *WAL) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	w.wakeLocked()
	w.mu.Unlock()
	close(w.stop)
	w.wg.Wait()
	defer w.lock.Close() // releases the flock
	var err error
	if w.curFile != nil {
		err = w.curFile.Close()
		w.curFile = nil
	}
	// A current segment whose entries are all released is not needed.
	w.mu.Lock()
	cur := w.cur
	empty := cur != nil && cur.live == 0 && len(w.queue) == 0
	if cur != nil {
		cur.cur = false
	}
	w.mu.Unlock()
	if empty && err == nil {
		w.removeSegment(cur.path)
	}
	w.mu.Lock()
	fail := w.queue
	w.queue = nil
	w.mu.Unlock()
	for _, e := range fail {
		e.err = ErrClosed
		close(e.done)
	}
	if err != nil {
		return fmt.Errorf("close wal: %w", err)
	}
	return nil
}

// writer writes queued entries in order and fsyncs them in groups.
func (w *WAL) writer() {
	defer w.wg.Done()
	var lastSync time.Time
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		w.mu.Lock()
		n := len(w.queue)
		w.mu.Unlock()
		if n == 0 {
			select {
			case <-w.kick:
				continue
			case <-w.stop:
				// An entry may have been queued since n was read: Close
				// writes and fsyncs what is queued.
				w.mu.Lock()
				batch := w.queue
				w.queue = nil
				w.mu.Unlock()
				w.writeAndSync(batch)
				return
			}
		}
		stopping := false
		if iv := w.opts.SyncInterval; iv > 0 {
			if wait := time.Until(lastSync.Add(iv)); wait > 0 {
				timer.Reset(wait)
				select {
				case <-timer.C:
				case <-w.stop:
					stopping = true
					if !timer.Stop() {
						<-timer.C
					}
				}
			}
		}
		w.mu.Lock()
		batch := w.queue
		w.queue = nil
		w.mu.Unlock()
		lastSync = time.Now()
		w.writeAndSync(batch)
		if stopping {
			w.mu.Lock()
			batch = w.queue
			w.queue = nil
			w.mu.Unlock()
			w.writeAndSync(batch)
			return
		}
		select {
		case <-w.stop:
			w.mu.Lock()
			batch = w.queue
			w.queue = nil
			w.mu.Unlock()
			w.writeAndSync(batch)
			return
		default:
		}
	}
}

// writeAndSync writes batch to the segments and fsyncs each file written,
// then completes the entries.
func (w *WAL) writeAndSync(batch []*Entry) {
	if len(batch) == 0 {
		return
	}
	w.mu.Lock()
	err := w.failed
	w.mu.Unlock()
	var toSync []*os.File // rotated files, synced and closed below
	written := 0          // entries written by this call
	var hdr []byte
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
		if w.curFile == nil || (w.curSize+e.size > w.opts.SegmentSize && w.curEntries > 0) {
			if w.curFile != nil {
				if err = w.curW.Flush(); err != nil {
					break
				}
				toSync = append(toSync, w.curFile)
			}
			if err = w.rotate(); err != nil {
				break
			}
		}
		hdr = hdr[:0]
		hdr = append(hdr, 0, 0, 0, 0, 0, 0, 0, 0)
		hdr = encodeHeader(hdr, e.hdr)
		sum := crc32.Checksum(hdr[frameHeader:], crcTable)
		for _, b := range e.batches {
			sum = crc32.Update(sum, crcTable, b)
		}
		binary.BigEndian.PutUint32(hdr[0:4], uint32(e.size-frameHeader))
		binary.BigEndian.PutUint32(hdr[4:8], sum)
		if _, err = w.curW.Write(hdr); err != nil {
			break
		}
		for _, b := range e.batches {
			if _, err = w.curW.Write(b); err != nil {
				break
			}
		}
		if err != nil {
			break
		}
		w.curSize += e.size
		w.curEntries++
		// The entry joins its segment now, not after the fsync: a release
		// of an older entry of that segment meanwhile (it may be rotated
		// out by a later entry of this group) must not see it empty and
		// delete it with this entry inside.
		w.mu.Lock()
		seg := w.cur
		if !e.released {
			e.seg = seg
			seg.live++
		}
		w.mu.Unlock()
		written++
	}
	if err == nil && w.curW != nil {
		err = w.curW.Flush()
	}
	if err == nil && (written > 0 || len(toSync) > 0) {
		start := time.Now()
		for _, f := range toSync {
			if err = f.Sync(); err != nil {
				break
			}
		}
		if err == nil && w.curFile != nil {
			err = w.curFile.Sync()
		}
		w.metrics.fsyncs.Inc()
		w.metrics.fsyncSeconds.Observe(time.Since(start).Seconds())
	}
	for _, f := range toSync {
		f.Close()
	}
	if testAfterSync != nil {
		testAfterSync()
	}
	if err != nil {
		err = fmt.Errorf("wal write: %w", err)
		w.log.Error("wal write failed; buffered acknowledgements fail from now on", "err", err)
	}
	// Complete the entries (each joined its segment as it was written):
	// every one's Done closes; rotated segments left empty go.
	var remove []string
	w.mu.Lock()
	if err != nil && w.failed == nil {
		w.failed = err
		w.wakeLocked()
	}
	for _, s := range w.rotated {
		if s.live == 0 {
			remove = append(remove, s.path)
		}
	}
	w.rotated = nil
	w.mu.Unlock()
	for _, e := range batch {
		e.err = err
		e.batches = nil
		close(e.done)
	}
	for _, p := range remove {
		w.removeSegment(p)
	}
}

// rotate starts a new segment file (the writer goroutine only).
func (w *WAL) rotate() error {
	w.mu.Lock()
	seq := w.nextSeq
	w.nextSeq++
	w.mu.Unlock()
	path := filepath.Join(w.opts.Dir, segName(seq))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("create wal segment: %w", err)
	}
	h := segmentHeader(w.opts.WriterID)
	if _, err := f.Write(h); err != nil {
		f.Close()
		return fmt.Errorf("create wal segment: %w", err)
	}
	if err := syncDir(w.opts.Dir); err != nil {
		f.Close()
		return err
	}
	seg := &segment{path: path, cur: true}
	w.mu.Lock()
	old := w.cur
	if old != nil {
		old.cur = false
		w.rotated = append(w.rotated, old)
	}
	w.cur = seg
	w.mu.Unlock()
	w.curFile = f
	if w.curW == nil {
		w.curW = bufio.NewWriterSize(f, 1<<20)
	} else {
		w.curW.Reset(f)
	}
	w.curSize = int64(len(h))
	w.curEntries = 0
	w.metrics.segmentsCreated.Inc()
	return nil
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
