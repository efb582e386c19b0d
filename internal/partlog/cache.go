package partlog

import (
	"container/list"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
)

// diskCache is an LRU cache of object byte ranges in a local folder
// (STREAMHOUSE_CACHE), bounded by total size (STREAMHOUSE_CACHE_SIZE).
//
// Each entry is one file: the bytes followed by their crc32c (4 bytes,
// big-endian). Files are written to a temporary name and renamed, without
// fsync: after a crash a file may be short or hold garbage, which the
// checksum catches on read, and the entry is dropped and fetched again. At
// open, existing files are adopted in modification-time order (oldest
// first to evict), so a restart reuses the cache.
type diskCache struct {
	dir   string
	limit int64
	log   *slog.Logger

	mu    sync.Mutex
	size  int64
	lru   *list.List // front = most recent; values are *cacheEntry
	items map[string]*list.Element
}

type cacheEntry struct {
	name string
	size int64
}

func cacheKey(objectKey string, pos, n int64) string {
	sum := sha256.Sum256([]byte(objectKey))
	return fmt.Sprintf("%s-%d-%d", hex.EncodeToString(sum[:16]), pos, n)
}

func openDiskCache(dir string, limit int64, logger *slog.Logger) (*diskCache, error) {
	if limit <= 0 {
		limit = 1 << 30
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("open cache %s: %w", dir, err)
	}
	c := &diskCache{dir: dir, limit: limit, log: logger, lru: list.New(), items: make(map[string]*list.Element)}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("open cache %s: %w", dir, err)
	}
	type found struct {
		name string
		size int64
		mod  int64
	}
	var files []found
	for _, e := range ents {
		name := e.Name()
		if e.IsDir() {
			continue
		}
		if strings.HasPrefix(name, ".tmp-") {
			_ = os.Remove(filepath.Join(dir, name))
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		files = append(files, found{name, info.Size(), info.ModTime().UnixNano()})
	}
	sort.Slice(files, func(i, j int) bool { return files[i].mod < files[j].mod })
	c.mu.Lock()
	for _, f := range files {
		c.items[f.name] = c.lru.PushFront(&cacheEntry{name: f.name, size: f.size})
		c.size += f.size
	}
	c.evictLocked()
	c.mu.Unlock()
	logger.Info("disk cache opened", "dir", dir, "entries", len(c.items), "bytes", c.size, "limit", limit)
	return c, nil
}

// get returns the cached bytes or nil.
func (c *diskCache) get(key string) []byte {
	c.mu.Lock()
	el := c.items[key]
	if el != nil {
		c.lru.MoveToFront(el)
	}
	c.mu.Unlock()
	if el == nil {
		return nil
	}
	b, err := os.ReadFile(filepath.Join(c.dir, key))
	if err == nil && len(b) >= 4 {
		data := b[:len(b)-4]
		if crc32.Checksum(data, crcTable) == binary.BigEndian.Uint32(b[len(b)-4:]) {
			return data
		}
		err = fmt.Errorf("checksum mismatch")
	}
	if err == nil {
		err = fmt.Errorf("short file")
	}
	c.log.Warn("dropping bad cache entry", "key", key, "err", err)
	c.remove(key)
	return nil
}

// put stores data under key, evicting least recently used entries.
func (c *diskCache) put(key string, data []byte) {
	size := int64(len(data) + 4)
	if size > c.limit {
		return
	}
	f, err := os.CreateTemp(c.dir, ".tmp-")
	if err != nil {
		c.log.Warn("cache write", "err", err)
		return
	}
	var sum [4]byte
	binary.BigEndian.PutUint32(sum[:], crc32.Checksum(data, crcTable))
	_, err = f.Write(data)
	if err == nil {
		_, err = f.Write(sum[:])
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), filepath.Join(c.dir, key))
	}
	if err != nil {
		_ = os.Remove(f.Name())
		c.log.Warn("cache write", "err", err)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el := c.items[key]; el != nil {
		c.size -= el.Value.(*cacheEntry).size
		c.lru.Remove(el)
	}
	c.items[key] = c.lru.PushFront(&cacheEntry{name: key, size: size})
	c.size += size
	c.evictLocked()
}

func (c *diskCache) remove(key string) {
	c.mu.Lock()
	if el := c.items[key]; el != nil {
		c.size -= el.Value.(*cacheEntry).size
		c.lru.Remove(el)
		delete(c.items, key)
	}
	c.mu.Unlock()
	_ = os.Remove(filepath.Join(c.dir, key))
}

func (c *diskCache) evictLocked() {
	for c.size > c.limit {
		el := c.lru.Back()
		if el == nil {
			return
		}
		e := el.Value.(*cacheEntry)
		c.lru.Remove(el)
		delete(c.items, e.name)
		c.size -= e.size
		_ = os.Remove(filepath.Join(c.dir, e.name))
	}
}
