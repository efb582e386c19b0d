// Package objstore owns StreamHouse's view of an object store: a small,
// context-first Bucket interface and its backends (memory, local folder, S3),
// plus wrappers that inject faults or record metrics.
//
// Objects are immutable once written: Put never replaces an existing object
// (it is a conditional create, If-None-Match: * on S3), so two writers that
// pick one key cannot silently destroy each other's data.
package objstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrNotFound is returned (possibly wrapped) when a key does not exist.
// Test for it with IsNotFound or errors.Is.
var ErrNotFound = errors.New("object not found")

// IsNotFound reports whether err means the object does not exist.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// ErrExists is returned (possibly wrapped) by Put when an object already
// exists under the key: Put never overwrites. A writer that retried a Put
// whose first answer was lost gets it for its own object; it tells that
// apart from a collision by reading the object back (see PutOrMatch).
var ErrExists = errors.New("object already exists")

// IsExists reports whether err means the key was already taken.
func IsExists(err error) bool { return errors.Is(err, ErrExists) }

// ErrInvalidRange is returned (possibly wrapped) by GetRange when the range
// cannot be served: a negative offset, a length that is not positive, or an
// offset at or past the end of the object.
var ErrInvalidRange = errors.New("invalid object range")

// ObjectInfo describes one stored object.
type ObjectInfo struct {
	Key     string
	Size    int64
	ModTime time.Time
}

// Bucket is the contract every backend fulfils.
//
//   - Keys follow the rules of ValidateKey in every backend, so a key that
//     works against the in-memory bucket also works against a folder or S3.
//   - Put stores data under key atomically: a reader sees either no object or
//     the whole object, never a prefix, even across a crash of the writer.
//     When Put returns nil the object is durable. When Put returns an error the
//     object may or may not exist (the write may have landed before the
//     failure was seen); callers must treat it as garbage-to-be.
//   - Put only creates: when key already exists it fails with ErrExists and
//     leaves the existing object as it was (S3's conditional write,
//     If-None-Match: *; a hard link on the folder). Of concurrent Puts of
//     one key at most one succeeds.
//   - Get returns the whole object; GetRange returns length bytes starting at
//     off. A range past the end of the object is an error; a range that
//     starts inside the object and runs past the end is truncated. Precisely:
//     off < 0, length <= 0 or off >= size fail with ErrInvalidRange (so every
//     GetRange of an empty object fails); a missing key fails with
//     ErrNotFound.
//   - Delete is idempotent: deleting a missing key returns nil.
//   - List calls fn for every key with the prefix, in lexical key order, and
//     stops at the first error fn returns (which List then returns).
//   - Close releases resources; the Bucket must not be used afterwards.
//   - A call whose ctx is already done fails with an error wrapping
//     ctx.Err(). A Put that has started writing may finish regardless (the
//     local folder does not abandon a half-synced file), which the rule for
//     failed Puts above already covers.
//
// All methods are safe for concurrent use.
type Bucket interface {
	Put(ctx context.Context, key string, data []byte) error
	Get(ctx context.Context, key string) ([]byte, error)
	GetRange(ctx context.Context, key string, off, length int64) ([]byte, error)
	Delete(ctx context.Context, key string) error
	List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error
	Close() error
}

// PutOrMatch puts data under key and, when the key already exists, reads
// the object back: if it holds exactly data (a retried Put whose first
// answer was lost, or an SDK-level retry of the same request) the Put
// counts as done; otherwise it fails with ErrExists (another writer's
// object).
func PutOrMatch(ctx context.Context, b Bucket, key string, data []byte) error {
	err := b.Put(ctx, key, data)
	if err == nil || !IsExists(err) {
		return err
	}
	got, gerr := b.Get(ctx, key)
	if gerr != nil {
		return fmt.Errorf("put %s: exists, read back: %w", key, gerr)
	}
	if !bytes.Equal(got, data) {
		return fmt.Errorf("put %s: another object holds the key: %w", key, err)
	}
	return nil
}
