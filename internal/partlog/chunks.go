package partlog

import (
	"container/list"
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/objstore"
)

// chunkCache reads objects in aligned chunks (ChunkBytes, 1 MiB by default)
// and keeps them in memory, least recently used evicted first, bounded by
// ReadCacheBytes.
//
// Why chunks and not the ranges readers ask for: one segment object holds
// runs of many partitions side by side, and a consumer catching up on a
// topic reads every partition at about the same place. Reading a chunk once
// serves all the partitions whose runs lie in it: one disk read or one GET
// instead of one per partition (on S3 that is the cost of reads), at the
// price of reading up to a chunk more than one partition needs.
//
// Readers also read ahead: a read starts loading the chunks of the
// partition's next runs in the background (bounded by readAheadLoads
// loads at once), so the disk or the object store works while the client
// processes what it got, instead of the two taking turns.
type chunkCache struct {
	bucket    objstore.Bucket
	disk      *diskCache // nil if disabled
	chunk     int64
	limit     int64
	metrics   *metrics
	ctx       context.Context // loads stop when it ends
	wg        sync.WaitGroup
	readAhead chan struct{} // semaphore of background loads

	mu      sync.Mutex
	used    int64
	lru     *list.List // front = most recent; values are *chunkEntry
	items   map[chunkID]*list.Element
	loading map[chunkID]*chunkLoad
}

// readAheadLoads bounds background chunk loads at once per agent.
const readAheadLoads = 8

type chunkID struct {
	key string
	idx int64
}

type chunkEntry struct {
	id   chunkID
	data []byte
}

// chunkLoad is one chunk being read; done is closed when data or err is set.
type chunkLoad struct {
	done chan struct{}
	data []byte
	err  error
}

// newChunkCache returns a chunk cache whose loads stop when ctx ends.
func newChunkCache(ctx context.Context, bucket objstore.Bucket, disk *diskCache, chunk, limit int64, m *metrics) *chunkCache {
	return &chunkCache{
		bucket: bucket, disk: disk, chunk: chunk, limit: limit, metrics: m,
		ctx:       ctx,
		readAhead: make(chan struct{}, readAheadLoads),
		lru:       list.New(),
		items:     make(map[chunkID]*list.Element),
		loading:   make(map[chunkID]*chunkLoad),
	}
}

// close waits for loads in progress, which stop once the context given to
// newChunkCache ends.
func (c *chunkCache) close() {
	c.wg.Wait()
}

// chunkRange is the chunk indexes that [pos, pos+n) spans.
func (c *chunkCache) chunkRange(pos, n int64) (first, last int64) {
	return pos / c.chunk, (pos + n - 1) / c.chunk
}

// read returns e's bytes, loading the chunks it spans as needed: one
// piece per chunk, sub-slices of the cached chunks.
func (c *chunkCache) read(ctx context.Context, e metadata.IndexEntry) (span, string, error) {
	first, last := c.chunkRange(e.Pos, e.Len)
	source := "memory"
	out := make(span, 0, last-first+1)
	for idx := first; idx <= last; idx++ {
		data, loaded, err := c.get(ctx, chunkID{e.ObjectKey, idx})
		if err != nil {
			return nil, "", err
		}
		if loaded {
			source = "object"
		}
		base := idx * c.chunk
		lo := max(e.Pos, base) - base
		hi := min(e.Pos+e.Len, base+c.chunk) - base
		if hi > int64(len(data)) {
			return nil, "", fmt.Errorf("get %s [%d,+%d): object ends at %d", e.ObjectKey, e.Pos, e.Len, base+int64(len(data)))
		}
		out = append(out, data[lo:hi:hi])
	}
	return out, source, nil
}

// get returns a chunk, from memory or by loading it (or waiting for its
// load in progress); loaded reports that this call waited for a read.
func (c *chunkCache) get(ctx context.Context, id chunkID) (data []byte, loaded bool, err error) {
	c.mu.Lock()
	if el := c.items[id]; el != nil {
		c.lru.MoveToFront(el)
		c.mu.Unlock()
		return el.Value.(*chunkEntry).data, false, nil
	}
	ld := c.startLocked(id)
	c.mu.Unlock()
	select {
	case <-ld.done:
		return ld.data, true, ld.err
	case <-ctx.Done():
		return nil, false, ctx.Err()
	}
}

// prefetch starts loading the chunks e spans that are neither cached nor
// loading, while fewer than readAheadLoads background loads run.
func (c *chunkCache) prefetch(e metadata.IndexEntry) {
	first, last := c.chunkRange(e.Pos, e.Len)
	for idx := first; idx <= last; idx++ {
		id := chunkID{e.ObjectKey, idx}
		c.mu.Lock()
		if c.items[id] != nil || c.loading[id] != nil {
			c.mu.Unlock()
			continue
		}
		select {
		case c.readAhead <- struct{}{}:
		default:
			c.mu.Unlock()
			return // enough in flight; a later read continues
		}
		ld := c.startLocked(id)
		c.mu.Unlock()
		c.metrics.readAheads.Inc()
		go func() {
			<-ld.done
			<-c.readAhead
		}()
	}
}

// startLocked returns id's load in progress or starts one. c.mu is held.
func (c *chunkCache) startLocked(id chunkID) *chunkLoad {
	if ld := c.loading[id]; ld != nil {
		return ld
	}
	ld := &chunkLoad{done: make(chan struct{})}
	if err := c.ctx.Err(); err != nil {
		// Closing: no new loads (close may be waiting on c.wg already).
		ld.err = fmt.Errorf("load %s chunk %d: %w", id.key, id.idx, ErrClosed)
		close(ld.done)
		return ld
	}
	c.loading[id] = ld
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		ld.data, ld.err = c.load(id)
		c.mu.Lock()
		delete(c.loading, id)
		if ld.err == nil {
			c.insertLocked(id, ld.data)
		}
		c.mu.Unlock()
		close(ld.done)
	}()
	return ld
}

// load reads a chunk from the disk cache or the object store. It runs
// detached from any one reader's cancellation (others may share it) but
// stops when the cache closes.
func (c *chunkCache) load(id chunkID) ([]byte, error) {
	off := id.idx * c.chunk
	ck := cacheKey(id.key, off, c.chunk)
	if c.disk != nil {
		if data := c.disk.get(ck); data != nil {
			c.metrics.reads.WithLabelValues("cache").Inc()
			return data, nil
		}
	}
	ctx, cancel := context.WithTimeout(c.ctx, 60*time.Second)
	defer cancel()
	data, err := c.bucket.GetRange(ctx, id.key, off, c.chunk)
	if err != nil {
		return nil, fmt.Errorf("get %s [%d,+%d): %w", id.key, off, c.chunk, err)
	}
	c.metrics.chunkLoadBytes.Add(float64(len(data)))
	if c.disk != nil {
		c.disk.put(ck, data)
	}
	return data, nil
}

func (c *chunkCache) insertLocked(id chunkID, data []byte) {
	if c.limit <= 0 || int64(len(data)) > c.limit {
		return
	}
	if el := c.items[id]; el != nil {
		c.used -= int64(len(el.Value.(*chunkEntry).data))
		c.lru.Remove(el)
	}
	c.items[id] = c.lru.PushFront(&chunkEntry{id: id, data: data})
	c.used += int64(len(data))
	for c.used > c.limit {
		el := c.lru.Back()
		ent := el.Value.(*chunkEntry)
		c.lru.Remove(el)
		delete(c.items, ent.id)
		c.used -= int64(len(ent.data))
	}
	c.metrics.readCacheBytes.Set(float64(c.used))
}
