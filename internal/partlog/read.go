package partlog

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/streamhouse/streamhouse/internal/batch"
	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/objstore"
)

// ReadResult is what Read returns: raw record batches, as stored.
type ReadResult struct {
	// Pieces hold whole RecordBatch v2 batches once concatenated (see
	// Bytes): a run of batches that spans several of the read cache's
	// chunks comes in one piece per chunk, so a batch may be cut between
	// pieces.
	// The first batch may start before the requested offset (Kafka clients
	// skip those records). Empty when there is nothing at the offset yet.
	// They share memory with the log's caches: callers must not modify
	// them. They are not joined so that the Kafka fetch path can write
	// them to the socket without copying.
	Pieces [][]byte
	// Size is the total length of Pieces.
	Size           int
	HighWatermark  int64
	LogStartOffset int64
	// NextOffset is the offset after the last returned batch (the offset to
	// read next); equal to the requested offset when Records is empty.
	NextOffset int64
	// LastStableOffset is the partition's LSO (ReadWith fills it for
	// both isolation levels).
	LastStableOffset int64
	// Aborted lists, for a ReadCommitted read, the aborted transactions
	// whose range overlaps the returned batches, ordered by FirstOffset.
	// It is left empty when the returned batches hold no transactional
	// data (only those can belong to an aborted transaction).
	Aborted []metadata.AbortedTxn

	txnData bool // a returned batch is transactional data (not a marker)
}

// Bytes returns the records as one slice: Pieces joined (without copying
// when there is one piece).
func (r ReadResult) Bytes() []byte {
	switch len(r.Pieces) {
	case 0:
		return nil
	case 1:
		return r.Pieces[0]
	}
	out := make([]byte, 0, r.Size)
	for _, p := range r.Pieces {
		out = append(out, p...)
	}
	return out
}

// indexBatch is how many index entries one Read looks at.
const indexBatch = 64

// Read returns batches of tp from offset, up to maxBytes (at least one batch
// when any is available, as Kafka's KIP-74). When offset equals the high
// watermark it waits up to maxWait for data. Offsets below the log start or
// above the high watermark give ErrOffsetOutOfRange. It reads uncommitted
// (ReadWith with ReadUncommitted).
//
// A partition this agent leads is read from its in-memory state; any other
// from the metadata store, and a wait on it shares the partition's watcher
// (watch.go) with every other waiter on it.
func (l *Log) Read(ctx context.Context, tp metadata.TopicPartition, offset int64, maxBytes int, maxWait time.Duration) (ReadResult, error) {
	return l.ReadWith(ctx, tp, offset, ReadOptions{MaxBytes: maxBytes, MaxWait: maxWait})
}

// read is ReadWith.
func (l *Log) read(ctx context.Context, tp metadata.TopicPartition, offset int64, opts ReadOptions) (ReadResult, error) {
	committed := opts.Isolation == ReadCommitted
	var deadline <-chan time.Time
	if opts.MaxWait > 0 {
		t := time.NewTimer(opts.MaxWait)
		defer t.Stop()
		deadline = t.C
	}
	var watched *partView // the watcher's view after it woke this read
	for {
		var view partView
		if watched != nil {
			view, watched = *watched, nil
		} else {
			var err error
			if view, err = l.view(ctx, tp); err != nil {
				return ReadResult{}, err
			}
		}
		res := ReadResult{HighWatermark: view.hw, LogStartOffset: view.logStart, LastStableOffset: view.lso, NextOffset: offset}
		if offset < view.logStart || offset > view.hw {
			return res, fmt.Errorf("read %s at %d (log %d..%d): %w", tp, offset, view.logStart, view.hw, ErrOffsetOutOfRange)
		}
		limit := view.hw
		if committed {
			limit = view.lso
		}
		if offset < limit {
			r, err := l.readAt(ctx, tp, view, offset, opts.MaxBytes, limit)
			// Readers use the aborted list only to drop transactional
			// data batches: a range without any needs no lookup (so
			// topics without transactions pay nothing for it).
			if err == nil && committed && r.txnData {
				r.Aborted, err = l.abortedIn(ctx, tp, view, offset, r.NextOffset)
			}
			if err != nil || r.Size > 0 || deadline == nil {
				return r, err
			}
			// Nothing in [offset, limit): key compaction emptied it. The
			// reader is as good as at the limit: wait like there.
			res = r
		}
		if deadline == nil {
			return res, nil
		}
		if view.changed == nil {
			// Not led here: wait on the partition's watcher.
			v, woken, err := l.watch.wait(ctx, tp, view, committed, deadline)
			switch {
			case errors.Is(err, errNoWatcher):
				// Every watcher is taken: wait out maxWait, then look
				// once more.
				select {
				case <-deadline:
				case <-ctx.Done():
					return res, ctx.Err()
				}
				deadline = nil
			case err != nil && ctx.Err() != nil:
				return res, ctx.Err()
			case err != nil:
				return res, fmt.Errorf("read %s: %w", tp, err)
			case !woken:
				return res, nil
			default:
				watched = &v
			}
			continue
		}
		select {
		case <-view.changed:
		case <-deadline:
			return res, nil
		case <-ctx.Done():
			return res, ctx.Err()
		}
	}
}

// abortedIn returns the aborted transactions of tp overlapping [from, to):
// from the led partition's index when it covers from, else from the store.
func (l *Log) abortedIn(ctx context.Context, tp metadata.TopicPartition, v partView, from, to int64) ([]metadata.AbortedTxn, error) {
	if v.p != nil {
		v.p.mu.Lock()
		out, ok := v.p.aborted.overlapping(from, to)
		v.p.mu.Unlock()
		if ok {
			return out, nil
		}
	}
	out, err := l.store.ListAbortedTxns(ctx, tp, from, to)
	if err != nil {
		return nil, fmt.Errorf("read %s: aborted transactions: %w", tp, err)
	}
	// Raising the log start deletes the aborted entries below it, while
	// the data read before may still be served from its objects (kept for
	// the GC grace). The list is complete only if the log start was still
	// at or below from when it was read; it never goes back, so reading it
	// after the list proves that. Otherwise the read is out of range, as
	// it would have been a moment later.
	st, err := l.store.GetPartition(ctx, tp)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", tp, err)
	}
	if st.LogStartOffset > from {
		return nil, fmt.Errorf("read %s at %d: the log start moved to %d during the read: %w", tp, from, st.LogStartOffset, ErrOffsetOutOfRange)
	}
	return out, nil
}

// Watch returns a channel closed when tp's high watermark (and with it the
// last stable offset) next changes (or leadership is lost), for callers
// that wait on many partitions at once. For partitions not led here it
// returns nil.
func (l *Log) Watch(tp metadata.TopicPartition) <-chan struct{} {
	l.mu.Lock()
	p := l.partitions[tp]
	l.mu.Unlock()
	if p == nil {
		return nil
	}
	_, _, ch, _ := p.committedState()
	return ch
}

// HighWatermark returns tp's committed high watermark and log start offset.
func (l *Log) HighWatermark(ctx context.Context, tp metadata.TopicPartition) (hw, logStart int64, err error) {
	v, err := l.view(ctx, tp)
	return v.hw, v.logStart, err
}

// partView is a consistent look at a partition for one read.
type partView struct {
	hw, logStart int64
	// lso is the last stable offset, never below logStart (as Kafka's).
	lso     int64
	p       *partition      // nil if not led here
	changed <-chan struct{} // nil if not led here
}

func (l *Log) view(ctx context.Context, tp metadata.TopicPartition) (partView, error) {
	l.mu.Lock()
	p := l.partitions[tp]
	l.mu.Unlock()
	if p != nil {
		p.mu.Lock()
		v := partView{hw: p.committed, logStart: p.logStart, lso: max(p.lso, p.logStart), p: p, changed: p.changed}
		fenced := !p.leadingLocked() || p.uncertain
		p.mu.Unlock()
		if !fenced {
			return v, nil
		}
	}
	st, err := l.store.GetPartition(ctx, tp)
	if err != nil {
		return partView{}, fmt.Errorf("read %s: %w", tp, err)
	}
	return partView{hw: st.HighWatermark, logStart: st.LogStartOffset, lso: max(st.LastStableOffset, st.LogStartOffset)}, nil
}

// readAt collects batches from offset (below limit: the high watermark,
// or the last stable offset for read_committed; no batch from limit on).
// Key compaction leaves offsets without records, whole runs of them
// possibly: a page of index entries holding no batch at or after offset
// is skipped, so a read returns the next batch there is below limit.
func (l *Log) readAt(ctx context.Context, tp metadata.TopicPartition, v partView, offset int64, maxBytes int, limit int64) (ReadResult, error) {
	from := offset
	for {
		res, next, err := l.readPage(ctx, tp, v, from, maxBytes, limit)
		if err != nil || res.Size > 0 || next <= from || next >= limit {
			if res.Size == 0 {
				res.NextOffset = offset
			}
			return res, err
		}
		from = next
	}
}

// readPage is readAt over one page of index entries; next is the offset
// after the page's last entry when it returned nothing and was not cut
// short (else offset).
func (l *Log) readPage(ctx context.Context, tp metadata.TopicPartition, v partView, offset int64, maxBytes int, limit int64) (res ReadResult, next int64, err error) {
	next = offset
	res = ReadResult{HighWatermark: v.hw, LogStartOffset: v.logStart, LastStableOffset: v.lso, NextOffset: offset}
	var entries []metadata.IndexEntry
	ok := false
	if v.p != nil {
		entries, ok = v.p.lookup(offset, indexBatch)
	}
	if !ok {
		if entries, err = l.store.ListIndex(ctx, tp, offset, indexBatch); err != nil {
			return res, offset, fmt.Errorf("read %s: index: %w", tp, err)
		}
	}
	// Each entry contributes one contiguous run of whole batches, returned
	// without copying (in pieces where the run spans chunks).
	// Start loading what this read and the next ones will need, from the
	// first entry holding offset on.
	for i, e := range entries {
		if e.LastOffset >= offset {
			l.reader.prefetch(entries[i:], maxBytes)
			break
		}
	}
	var pieces [][]byte
	total, records := 0, 0
	full := false
	var scratch [batch.HeaderSize]byte
	for _, e := range entries {
		if e.BaseOffset >= limit || full {
			break
		}
		data, err := l.reader.read(ctx, e)
		if err != nil {
			return res, offset, fmt.Errorf("read %s at %d: %w", tp, offset, err)
		}
		if n := data.len(); n != int(e.Len) {
			return res, offset, fmt.Errorf("read %s: object %s at %d: %d bytes, the index says %d: %w", tp, e.ObjectKey, e.Pos, n, e.Len, batch.ErrCorrupt)
		}
		start, end := -1, 0
		for pos := 0; pos < int(e.Len); {
			h, err := data.header(pos, scratch[:])
			if err == nil && pos+h.Size() > int(e.Len) {
				err = fmt.Errorf("batch truncated: length says %d bytes, have %d: %w", h.Size(), int(e.Len)-pos, batch.ErrCorrupt)
			}
			if err != nil {
				return res, offset, fmt.Errorf("read %s: object %s at %d: %w", tp, e.ObjectKey, e.Pos+int64(pos), err)
			}
			size := h.Size()
			if h.BaseOffset >= limit {
				full = true // the rest is past the limit
				break
			}
			if h.LastOffset() >= offset {
				if total > 0 && total+size > maxBytes {
					full = true
					break
				}
				if start < 0 {
					start = pos
				}
				end = pos + size
				total += size
				records += int(h.NumRecords)
				res.NextOffset = h.LastOffset() + 1
				if h.IsTransactional() && !h.IsControl() {
					res.txnData = true
				}
			}
			pos += size
		}
		if start >= 0 {
			pieces = data.appendRange(pieces, start, end)
		}
		if total >= maxBytes {
			break
		}
	}
	res.Pieces, res.Size = pieces, total
	l.metrics.readBytes.Add(float64(total))
	l.metrics.readRecords.Add(float64(records))
	if total == 0 && !full && len(entries) > 0 {
		next = max(offset, entries[len(entries)-1].LastOffset+1)
	}
	return res, next, nil
}

// reader fetches index entries' bytes: from the hot tail, else from the
// chunk cache (which reads through the disk cache and the object store and
// reads ahead). With the chunk cache disabled it reads the exact ranges,
// with concurrent misses for the same range collapsed into one GET.
type reader struct {
	bucket    objstore.Bucket
	hot       *hotTail
	chunks    *chunkCache // nil if disabled
	cache     *diskCache  // nil if disabled
	readAhead int64
	flight    singleflight.Group
	metrics   *metrics
	ctx       context.Context // cancelled by close: ends reads in progress
	cancel    context.CancelFunc
}

func newReader(cfg Config, m *metrics) (*reader, error) {
	r := &reader{bucket: cfg.Bucket, hot: newHotTail(cfg.HotTailBytes), readAhead: cfg.ReadAheadBytes, metrics: m}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	if cfg.CacheDir != "" {
		c, err := openDiskCache(cfg.CacheDir, cfg.CacheBytes, cfg.Logger)
		if err != nil {
			return nil, err
		}
		r.cache = c
	}
	if cfg.ReadCacheBytes > 0 {
		r.chunks = newChunkCache(r.ctx, cfg.Bucket, r.cache, cfg.ReadChunkBytes, cfg.ReadCacheBytes, m)
	}
	return r, nil
}

func (r *reader) close() {
	r.cancel()
	if r.chunks != nil {
		r.chunks.close()
	}
}

// prefetch starts background loads of what entries (in log order) will
// need: the first maxBytes a read returns plus the read-ahead window.
func (r *reader) prefetch(entries []metadata.IndexEntry, maxBytes int) {
	if r.chunks == nil {
		return
	}
	budget := int64(maxBytes) + max(r.readAhead, 0)
	for _, e := range entries {
		if budget <= 0 {
			return
		}
		budget -= e.Len
		if !r.chunked(e) || r.hot.has(e.ObjectKey) {
			continue
		}
		r.chunks.prefetch(e)
	}
}

// chunked reports whether e is read through the chunk cache: runs of at
// least 1/denseRun of a chunk. Smaller runs are read exactly: a consumer of
// one partition among many in each object would otherwise read a whole
// chunk for each of its small runs (and on S3 pay for the bytes and the
// time), while the partitions that make chunks worth sharing are the ones
// with large runs, the topics being read in bulk.
func (r *reader) chunked(e metadata.IndexEntry) bool {
	return r.chunks != nil && e.Len*denseRun >= r.chunks.chunk
}

// denseRun: runs of at least 1/denseRun of a chunk go through the chunk
// cache.
const denseRun = 32

// read returns e's bytes, in one piece or (when they span chunks) several.
func (r *reader) read(ctx context.Context, e metadata.IndexEntry) (span, error) {
	if e.Len == 0 {
		return span{}, nil // a run key compaction emptied
	}
	if data := r.hot.get(e.ObjectKey, e.Pos, e.Len); data != nil {
		r.metrics.reads.WithLabelValues("hot").Inc()
		return span{data}, nil
	}
	if r.chunked(e) {
		data, source, err := r.chunks.read(ctx, e)
		if err != nil {
			return nil, err
		}
		r.metrics.reads.WithLabelValues(source).Inc()
		return data, nil
	}
	ck := cacheKey(e.ObjectKey, e.Pos, e.Len)
	if r.cache != nil {
		if data := r.cache.get(ck); data != nil {
			r.metrics.reads.WithLabelValues("cache").Inc()
			return span{data}, nil
		}
	}
	ch := r.flight.DoChan(ck, func() (any, error) {
		// Detached from one caller's cancellation (others share the
		// result), not from the log's.
		gctx, cancel := context.WithTimeout(r.ctx, 60*time.Second)
		defer cancel()
		data, err := r.bucket.GetRange(gctx, e.ObjectKey, e.Pos, e.Len)
		if err != nil {
			return nil, fmt.Errorf("get %s [%d,+%d): %w", e.ObjectKey, e.Pos, e.Len, err)
		}
		if int64(len(data)) != e.Len {
			return nil, fmt.Errorf("get %s [%d,+%d): short read of %d bytes", e.ObjectKey, e.Pos, e.Len, len(data))
		}
		if r.cache != nil {
			r.cache.put(ck, data)
		}
		return data, nil
	})
	var res singleflight.Result
	select {
	case res = <-ch:
	case <-ctx.Done():
		return nil, fmt.Errorf("get %s [%d,+%d): %w", e.ObjectKey, e.Pos, e.Len, ctx.Err())
	}
	if res.Err != nil {
		return nil, res.Err
	}
	r.metrics.reads.WithLabelValues("object").Inc()
	return span{res.Val.([]byte)}, nil
}

// span is a range of an object as consecutive pieces of memory.
type span [][]byte

// len is the span's total length.
func (s span) len() int {
	n := 0
	for _, p := range s {
		n += len(p)
	}
	return n
}

// bytes returns the span as one slice, copying only if it is in pieces.
func (s span) bytes() []byte {
	if len(s) == 1 {
		return s[0]
	}
	var out []byte
	for _, p := range s {
		out = append(out, p...)
	}
	return out
}

// header decodes the batch header at pos, copying it into scratch
// (HeaderSize bytes) if it straddles pieces.
func (s span) header(pos int, scratch []byte) (batch.Header, error) {
	i := 0
	for i < len(s) && pos >= len(s[i]) {
		pos -= len(s[i])
		i++
	}
	if i < len(s) && pos+batch.HeaderSize <= len(s[i]) {
		return batch.DecodeHeader(s[i][pos:])
	}
	n := 0
	for ; i < len(s) && n < batch.HeaderSize; i++ {
		n += copy(scratch[n:batch.HeaderSize], s[i][pos:])
		pos = 0
	}
	return batch.DecodeHeader(scratch[:n])
}

// appendRange appends [start, end) of s to dst as sub-slices of its pieces.
func (s span) appendRange(dst [][]byte, start, end int) [][]byte {
	for _, p := range s {
		if start >= end {
			break
		}
		if start >= len(p) {
			start -= len(p)
			end -= len(p)
			continue
		}
		hi := min(end, len(p))
		dst = append(dst, p[start:hi:hi])
		start, end = 0, end-len(p)
	}
	return dst
}

// hotTail keeps recently committed objects in memory, oldest evicted first.
type hotTail struct {
	mu    sync.Mutex
	limit int
	size  int
	objs  map[string][]byte
	order []string
}

func newHotTail(limit int) *hotTail {
	return &hotTail{limit: limit, objs: make(map[string][]byte)}
}

func (h *hotTail) add(key string, data []byte) {
	if h.limit <= 0 || len(data) > h.limit {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.objs[key] = data
	h.order = append(h.order, key)
	h.size += len(data)
	for h.size > h.limit && len(h.order) > 0 {
		old := h.order[0]
		h.order = h.order[1:]
		h.size -= len(h.objs[old])
		delete(h.objs, old)
	}
}

func (h *hotTail) has(key string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.objs[key] != nil
}

func (h *hotTail) get(key string, pos, n int64) []byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	data := h.objs[key]
	if data == nil || pos+n > int64(len(data)) {
		return nil
	}
	return data[pos : pos+n : pos+n]
}
