// This file owns the in-memory backend (for tests) and the range arithmetic
// shared by the backends that slice objects themselves.

package objstore

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// Memory is a Bucket held in a map. It copies data on the way in and out, so
// callers can neither corrupt stored objects nor be surprised by aliasing,
// exactly as with a real store.
type Memory struct {
	mu   sync.RWMutex
	objs map[string]memObject
	now  func() time.Time // modification times
}

type memObject struct {
	data    []byte
	modTime time.Time
}

var _ Bucket = (*Memory)(nil)

// NewMemory returns an empty in-memory bucket.
func NewMemory() *Memory {
	return NewMemoryClock(time.Now)
}

// NewMemoryClock returns an empty in-memory bucket that stamps objects'
// modification times with now, for tests whose clock is not the wall
// clock (the store's clock must agree with the agents' for garbage
// collection, as a real one does within the allowed skew).
func NewMemoryClock(now func() time.Time) *Memory {
	return &Memory{objs: make(map[string]memObject), now: now}
}

// Put implements Bucket.
func (m *Memory) Put(ctx context.Context, key string, data []byte) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	if err := ValidateKey(key); err != nil {
		return fmt.Errorf("put: %w", err)
	}
	obj := memObject{data: slices.Clone(data), modTime: m.now()}
	if obj.data == nil {
		obj.data = []byte{}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.objs[key]; ok {
		return fmt.Errorf("put %s: %w", key, ErrExists)
	}
	m.objs[key] = obj
	return nil
}

// Get implements Bucket.
func (m *Memory) Get(ctx context.Context, key string) ([]byte, error) {
	obj, err := m.lookup(ctx, "get", key)
	if err != nil {
		return nil, err
	}
	return slices.Clone(obj.data), nil
}

// GetRange implements Bucket.
func (m *Memory) GetRange(ctx context.Context, key string, off, length int64) ([]byte, error) {
	if err := checkRange(off, length); err != nil {
		return nil, fmt.Errorf("get range %s: %w", key, err)
	}
	obj, err := m.lookup(ctx, "get range", key)
	if err != nil {
		return nil, err
	}
	end, err := clampRange(int64(len(obj.data)), off, length)
	if err != nil {
		return nil, fmt.Errorf("get range %s: %w", key, err)
	}
	return slices.Clone(obj.data[off:end]), nil
}

func (m *Memory) lookup(ctx context.Context, op, key string) (memObject, error) {
	if err := ctx.Err(); err != nil {
		return memObject{}, fmt.Errorf("%s %s: %w", op, key, err)
	}
	if err := ValidateKey(key); err != nil {
		return memObject{}, fmt.Errorf("%s: %w", op, err)
	}
	m.mu.RLock()
	obj, ok := m.objs[key]
	m.mu.RUnlock()
	if !ok {
		return memObject{}, fmt.Errorf("%s %s: %w", op, key, ErrNotFound)
	}
	return obj, nil
}

// Delete implements Bucket.
func (m *Memory) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	if err := ValidateKey(key); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	m.mu.Lock()
	delete(m.objs, key)
	m.mu.Unlock()
	return nil
}

// List implements Bucket. It snapshots the matching keys first and calls fn
// without holding the lock, so fn may use the bucket.
func (m *Memory) List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("list %s: %w", prefix, err)
	}
	m.mu.RLock()
	infos := make([]ObjectInfo, 0, len(m.objs))
	for k, obj := range m.objs {
		if strings.HasPrefix(k, prefix) {
			infos = append(infos, ObjectInfo{Key: k, Size: int64(len(obj.data)), ModTime: obj.modTime})
		}
	}
	m.mu.RUnlock()
	slices.SortFunc(infos, func(a, b ObjectInfo) int { return strings.Compare(a.Key, b.Key) })
	for _, info := range infos {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("list %s: %w", prefix, err)
		}
		if err := fn(info); err != nil {
			return err
		}
	}
	return nil
}

// Close implements Bucket. The contents stay readable: tests sometimes
// inspect a closed bucket.
func (m *Memory) Close() error { return nil }

// checkRange rejects GetRange arguments that are invalid whatever the object.
func checkRange(off, length int64) error {
	if off < 0 || length <= 0 {
		return fmt.Errorf("%w: offset %d length %d", ErrInvalidRange, off, length)
	}
	return nil
}

// clampRange returns the end of [off, off+length) within an object of size
// bytes, truncating a range that runs past the end. off must already have
// passed checkRange.
func clampRange(size, off, length int64) (end int64, err error) {
	if off >= size {
		return 0, fmt.Errorf("%w: offset %d at or past end of %d-byte object", ErrInvalidRange, off, size)
	}
	if length > size-off { // written this way round so off+length cannot overflow
		return size, nil
	}
	return off + length, nil
}
