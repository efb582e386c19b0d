// Package objstoretest owns the acceptance suite every objstore.Bucket
// implementation must pass: one test of the contract written once, run
// against memory, the local folder, S3 and the wrappers, so the backends
// cannot drift apart.
package objstoretest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/streamhouse/streamhouse/internal/objstore"
)

// LargeSize is the size of the large round-trip object: above 16 MiB, so
// an S3 bucket configured with a 5 MiB multipart threshold and part size
// uploads it in four parts, the last one short.
const LargeSize = 17<<20 + 123

// Run runs the suite. newBucket is called once per subtest and must return
// an empty bucket; Run closes it when the subtest ends. Subtests run in
// parallel.
func Run(t *testing.T, newBucket func(t *testing.T) objstore.Bucket) {
	tests := []struct {
		name string
		fn   func(t *testing.T, b objstore.Bucket)
	}{
		{"RoundTrip", testRoundTrip},
		{"DataNotAliased", testDataNotAliased},
		{"NoOverwrite", testNoOverwrite},
		{"ConcurrentCreate", testConcurrentCreate},
		{"GetRange", testGetRange},
		{"GetRangeEmptyObject", testGetRangeEmpty},
		{"NotFound", testNotFound},
		{"DeleteIdempotent", testDeleteIdempotent},
		{"ListOrderAndPrefix", testListOrderAndPrefix},
		{"ListEmpty", testListEmpty},
		{"ListCallbackError", testListCallbackError},
		{"KeysWithSlashes", testKeysWithSlashes},
		{"InvalidKeys", testInvalidKeys},
		{"Concurrent", testConcurrent},
		{"CanceledContext", testCanceledContext},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := newBucket(t)
			t.Cleanup(func() {
				if err := b.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tc.fn(t, b)
		})
	}
}

// Data returns n deterministic pseudo-random bytes for seed.
func Data(seed uint64, n int) []byte {
	var s [32]byte
	s[0], s[1] = byte(seed), byte(seed>>8)
	buf := make([]byte, n)
	rand.NewChaCha8(s).Read(buf)
	return buf
}

func put(t *testing.T, b objstore.Bucket, key string, data []byte) {
	t.Helper()
	if err := b.Put(t.Context(), key, data); err != nil {
		t.Fatalf("Put(%q, %d bytes): %v", key, len(data), err)
	}
}

func mustGet(t *testing.T, b objstore.Bucket, key string) []byte {
	t.Helper()
	data, err := b.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	return data
}

func listAll(t *testing.T, b objstore.Bucket, prefix string) []objstore.ObjectInfo {
	t.Helper()
	var infos []objstore.ObjectInfo
	if err := b.List(t.Context(), prefix, func(info objstore.ObjectInfo) error {
		infos = append(infos, info)
		return nil
	}); err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	return infos
}

func listKeys(t *testing.T, b objstore.Bucket, prefix string) []string {
	t.Helper()
	var keys []string
	for _, info := range listAll(t, b, prefix) {
		keys = append(keys, info.Key)
	}
	return keys
}

func testRoundTrip(t *testing.T, b objstore.Bucket) {
	for i, size := range []int{0, 1, 4096, LargeSize} {
		key := fmt.Sprintf("roundtrip/%d", size)
		want := Data(uint64(i), size)
		put(t, b, key, want)
		got := mustGet(t, b, key)
		if !bytes.Equal(got, want) {
			t.Fatalf("Get(%q) returned %d bytes that differ from the %d put", key, len(got), len(want))
		}
		infos := listAll(t, b, key)
		if len(infos) != 1 || infos[0].Key != key || infos[0].Size != int64(size) {
			t.Fatalf("List(%q) = %+v, want one object of %d bytes", key, infos, size)
		}
		if infos[0].ModTime.IsZero() {
			t.Errorf("List(%q): zero ModTime", key)
		}
	}
}

func testDataNotAliased(t *testing.T, b objstore.Bucket) {
	data := []byte("immutable")
	put(t, b, "alias", data)
	data[0] = 'X' // the caller reuses its buffer
	got := mustGet(t, b, "alias")
	if string(got) != "immutable" {
		t.Fatalf("stored object changed with the caller's buffer: %q", got)
	}
	got[0] = 'Y'
	if again := mustGet(t, b, "alias"); string(again) != "immutable" {
		t.Fatalf("stored object changed with a returned buffer: %q", again)
	}
}

func testNoOverwrite(t *testing.T, b objstore.Bucket) {
	first := []byte("first version, longer")
	put(t, b, "over", first)
	if err := b.Put(t.Context(), "over", []byte("second")); !objstore.IsExists(err) {
		t.Fatalf("Put over an existing key: err %v, want ErrExists", err)
	}
	if got := mustGet(t, b, "over"); !bytes.Equal(got, first) {
		t.Fatalf("after a refused Put, Get = %q, want %q", got, first)
	}
	infos := listAll(t, b, "over")
	if len(infos) != 1 || infos[0].Size != int64(len(first)) {
		t.Fatalf("after a refused Put, List = %+v, want the first object", infos)
	}
	// A retried Put of the same bytes is recognised as our own write; other
	// bytes are another writer's.
	if err := objstore.PutOrMatch(t.Context(), b, "over", first); err != nil {
		t.Fatalf("PutOrMatch with the stored bytes: %v", err)
	}
	if err := objstore.PutOrMatch(t.Context(), b, "over", []byte("second")); !objstore.IsExists(err) {
		t.Fatalf("PutOrMatch with other bytes: err %v, want ErrExists", err)
	}
	// The same for a large object (a multipart upload on S3).
	big := Data(7, 5<<20+17)
	put(t, b, "over-big", big)
	if err := b.Put(t.Context(), "over-big", Data(8, 5<<20+17)); !objstore.IsExists(err) {
		t.Fatalf("large Put over an existing key: err %v, want ErrExists", err)
	}
	if got := mustGet(t, b, "over-big"); !bytes.Equal(got, big) {
		t.Fatal("a refused large Put changed the object")
	}
}

// testConcurrentCreate races Puts of one key: exactly one wins, and the
// object is the winner's.
func testConcurrentCreate(t *testing.T, b objstore.Bucket) {
	const writers = 6
	var wg sync.WaitGroup
	results := make([]error, writers)
	for w := range writers {
		wg.Go(func() { results[w] = b.Put(t.Context(), "race", Data(uint64(100+w), 4096)) })
	}
	wg.Wait()
	winner := -1
	for w, err := range results {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("writers %d and %d both created the key", winner, w)
		case err == nil:
			winner = w
		case !objstore.IsExists(err):
			t.Logf("writer %d: %v (a retriable conflict)", w, err)
		}
	}
	if winner < 0 {
		t.Fatal("no writer created the key")
	}
	if got := mustGet(t, b, "race"); !bytes.Equal(got, Data(uint64(100+winner), 4096)) {
		t.Fatal("the object is not the winner's")
	}
}

func testGetRange(t *testing.T, b objstore.Bucket) {
	data := Data(7, 1000)
	put(t, b, "range", data)
	ok := []struct {
		off, length int64
		want        []byte
	}{
		{0, 10, data[:10]},                     // start
		{500, 100, data[500:600]},              // middle
		{990, 10, data[990:]},                  // exactly the end
		{995, 100, data[995:]},                 // runs past the end: truncated
		{999, 1, data[999:]},                   // last byte
		{0, 1000, data},                        // whole
		{0, math.MaxInt64, data},               // huge length must not overflow
		{1, math.MaxInt64, data[1:]},           // nor here
		{0, 1 << 40, data},                     // far past the end
		{100, 1, data[100:101]},                // one byte
		{250, 250, data[250:500]},              // aligned
		{int64(len(data)) - 2, 2, data[998:]},  // tail
		{int64(len(data)) - 2, 3, data[998:]},  // tail, past end
		{int64(len(data)) - 1, 10, data[999:]}, // last byte, past end
	}
	for _, tc := range ok {
		got, err := b.GetRange(t.Context(), "range", tc.off, tc.length)
		if err != nil {
			t.Errorf("GetRange(%d, %d): %v", tc.off, tc.length, err)
			continue
		}
		if !bytes.Equal(got, tc.want) {
			t.Errorf("GetRange(%d, %d) = %d bytes, want %d (or different contents)", tc.off, tc.length, len(got), len(tc.want))
		}
	}
	bad := []struct{ off, length int64 }{
		{1000, 1},  // starts at the end
		{1001, 1},  // starts past the end
		{5000, 10}, // far past
		{-1, 5},    // negative offset
		{0, 0},     // empty range
		{10, -1},   // negative length
	}
	for _, tc := range bad {
		got, err := b.GetRange(t.Context(), "range", tc.off, tc.length)
		if !errors.Is(err, objstore.ErrInvalidRange) {
			t.Errorf("GetRange(%d, %d) = %d bytes, %v; want ErrInvalidRange", tc.off, tc.length, len(got), err)
		}
		if objstore.IsNotFound(err) {
			t.Errorf("GetRange(%d, %d): an invalid range on an existing object must not look like not-found: %v", tc.off, tc.length, err)
		}
	}
}

func testGetRangeEmpty(t *testing.T, b objstore.Bucket) {
	put(t, b, "empty", nil)
	got, err := b.GetRange(t.Context(), "empty", 0, 1)
	if !errors.Is(err, objstore.ErrInvalidRange) {
		t.Fatalf("GetRange on an empty object = %d bytes, %v; want ErrInvalidRange", len(got), err)
	}
	if data := mustGet(t, b, "empty"); len(data) != 0 {
		t.Fatalf("Get(empty) = %d bytes", len(data))
	}
}

func testNotFound(t *testing.T, b objstore.Bucket) {
	ctx := t.Context()
	if _, err := b.Get(ctx, "missing"); !objstore.IsNotFound(err) {
		t.Errorf("Get(missing) error = %v, want not found", err)
	}
	if _, err := b.GetRange(ctx, "missing", 0, 10); !objstore.IsNotFound(err) {
		t.Errorf("GetRange(missing) error = %v, want not found", err)
	}
	if _, err := b.Get(ctx, "missing/deeper/key"); !objstore.IsNotFound(err) {
		t.Errorf("Get(missing/deeper/key) error = %v, want not found", err)
	}
	// A prefix of an existing key is not an object.
	put(t, b, "dir/leaf", []byte("x"))
	if _, err := b.Get(ctx, "dir"); !objstore.IsNotFound(err) {
		t.Errorf("Get(dir) with only dir/leaf stored: error = %v, want not found", err)
	}
	if _, err := b.GetRange(ctx, "dir", 0, 1); !objstore.IsNotFound(err) {
		t.Errorf("GetRange(dir) with only dir/leaf stored: error = %v, want not found", err)
	}
	// A key below an existing object is not an object either.
	if _, err := b.Get(ctx, "dir/leaf/below"); !objstore.IsNotFound(err) {
		t.Errorf("Get(dir/leaf/below) error = %v, want not found", err)
	}
}

func testDeleteIdempotent(t *testing.T, b objstore.Bucket) {
	ctx := t.Context()
	if err := b.Delete(ctx, "never-existed"); err != nil {
		t.Fatalf("Delete(missing) = %v, want nil", err)
	}
	put(t, b, "del/me", []byte("bye"))
	put(t, b, "del/keep", []byte("stay"))
	for i := range 2 {
		if err := b.Delete(ctx, "del/me"); err != nil {
			t.Fatalf("Delete #%d = %v", i+1, err)
		}
	}
	if _, err := b.Get(ctx, "del/me"); !objstore.IsNotFound(err) {
		t.Fatalf("Get after Delete: error = %v, want not found", err)
	}
	if got := listKeys(t, b, "del/"); !slices.Equal(got, []string{"del/keep"}) {
		t.Fatalf("List after Delete = %q, want [del/keep]", got)
	}
	if err := b.Delete(ctx, "del"); err != nil { // a "directory", not an object
		t.Fatalf("Delete(del) = %v, want nil", err)
	}
	if got := mustGet(t, b, "del/keep"); string(got) != "stay" {
		t.Fatalf("Delete(del) damaged del/keep: %q", got)
	}
}

func testListOrderAndPrefix(t *testing.T, b objstore.Bucket) {
	// Byte order: '-' < '.' < '/' < '0' < 'a' < 0xC3 (é). A folder walk
	// yields "b/..." before "b-c" unless it orders directories carefully.
	keys := []string{"b/y/z", "c", "b-c", "ba", "b0", "b.txt", "b/x", "é", "b/y0"}
	for i, k := range keys {
		put(t, b, k, Data(uint64(i), i))
	}
	sorted := slices.Sorted(slices.Values(keys))
	for _, tc := range []struct {
		prefix string
		want   []string
	}{
		{"", sorted},
		{"b", []string{"b-c", "b.txt", "b/x", "b/y/z", "b/y0", "b0", "ba"}},
		{"b/", []string{"b/x", "b/y/z", "b/y0"}},
		{"b/y", []string{"b/y/z", "b/y0"}},
		{"b/y/", []string{"b/y/z"}},
		{"b/y/z", []string{"b/y/z"}},
		{"b.", []string{"b.txt"}},
		{"c", []string{"c"}},
		{"é", []string{"é"}},
		{"zz", nil},
		{"b/q", nil},
		{"nothing/here/", nil},
		{"b//", nil},
		{"../", nil},
	} {
		if got := listKeys(t, b, tc.prefix); !slices.Equal(got, tc.want) {
			t.Errorf("List(%q) = %q, want %q", tc.prefix, got, tc.want)
		}
	}
	for _, info := range listAll(t, b, "") {
		i := slices.Index(keys, info.Key)
		if info.Size != int64(i) {
			t.Errorf("List: %s has Size %d, want %d", info.Key, info.Size, i)
		}
	}
}

func testListEmpty(t *testing.T, b objstore.Bucket) {
	if got := listAll(t, b, ""); len(got) != 0 {
		t.Fatalf("List of an empty bucket = %+v", got)
	}
}

func testListCallbackError(t *testing.T, b objstore.Bucket) {
	for _, k := range []string{"l/1", "l/2", "l/3", "l/4"} {
		put(t, b, k, []byte(k))
	}
	stop := errors.New("stop here")
	var seen []string
	err := b.List(t.Context(), "l/", func(info objstore.ObjectInfo) error {
		seen = append(seen, info.Key)
		if len(seen) == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) {
		t.Fatalf("List returned %v, want the callback's error", err)
	}
	if !slices.Equal(seen, []string{"l/1", "l/2"}) {
		t.Fatalf("List called fn for %q after its error, want exactly [l/1 l/2]", seen)
	}
}

func testKeysWithSlashes(t *testing.T, b objstore.Bucket) {
	keys := []string{
		"topics/orders/0/00000000000000000042.seg",
		"topics/orders/1/00000000000000000000.seg",
		"a/b/c/d/e/f/g/h/i/j/deep",
		"with space/and-dash_under.score~tilde",
	}
	for _, k := range keys {
		put(t, b, k, []byte(k))
		if got := mustGet(t, b, k); string(got) != k {
			t.Fatalf("Get(%q) = %q", k, got)
		}
		if got, err := b.GetRange(t.Context(), k, 1, 3); err != nil || string(got) != k[1:4] {
			t.Fatalf("GetRange(%q, 1, 3) = %q, %v", k, got, err)
		}
	}
	if got := listKeys(t, b, "topics/orders/"); !slices.Equal(got, keys[:2]) {
		t.Fatalf("List(topics/orders/) = %q", got)
	}
	if err := b.Delete(t.Context(), keys[2]); err != nil {
		t.Fatalf("Delete(%q): %v", keys[2], err)
	}
	if got := listKeys(t, b, "a/"); len(got) != 0 {
		t.Fatalf("List(a/) after deleting its only key = %q", got)
	}
}

func testInvalidKeys(t *testing.T, b objstore.Bucket) {
	ctx := t.Context()
	for _, key := range []string{"", "/abs", "../escape", "a/../../escape", "a//b", "a/", "a/./b", "nul\x00byte", ".tmp/x", "x/.tmpfile", "\xff"} {
		if err := b.Put(ctx, key, []byte("x")); !errors.Is(err, objstore.ErrInvalidKey) {
			t.Errorf("Put(%q) = %v, want ErrInvalidKey", key, err)
		}
		if _, err := b.Get(ctx, key); !errors.Is(err, objstore.ErrInvalidKey) {
			t.Errorf("Get(%q) = %v, want ErrInvalidKey", key, err)
		}
		if _, err := b.GetRange(ctx, key, 0, 1); !errors.Is(err, objstore.ErrInvalidKey) {
			t.Errorf("GetRange(%q) = %v, want ErrInvalidKey", key, err)
		}
		if err := b.Delete(ctx, key); !errors.Is(err, objstore.ErrInvalidKey) {
			t.Errorf("Delete(%q) = %v, want ErrInvalidKey", key, err)
		}
	}
	if got := listAll(t, b, ""); len(got) != 0 {
		t.Fatalf("invalid keys left objects behind: %+v", got)
	}
}

func testConcurrent(t *testing.T, b objstore.Bucket) {
	const workers, perWorker = 8, 5
	var wg sync.WaitGroup
	errs := make(chan error, workers*perWorker)
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				key := fmt.Sprintf("conc/%d/%d", w, i)
				want := Data(uint64(w*perWorker+i), 1000+w*i*997)
				if err := b.Put(t.Context(), key, want); err != nil {
					errs <- fmt.Errorf("Put(%s): %w", key, err)
					return
				}
				got, err := b.Get(t.Context(), key)
				if err != nil {
					errs <- fmt.Errorf("Get(%s): %w", key, err)
					return
				}
				if !bytes.Equal(got, want) {
					errs <- fmt.Errorf("Get(%s): contents differ", key)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := listKeys(t, b, "conc/"); len(got) != workers*perWorker {
		t.Fatalf("List(conc/) found %d keys, want %d", len(got), workers*perWorker)
	}
}

func testCanceledContext(t *testing.T, b objstore.Bucket) {
	put(t, b, "cancel/exists", []byte("data"))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	check := func(op string, err error) {
		t.Helper()
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context = %v, want context.Canceled", op, err)
		}
	}
	check("Put", b.Put(ctx, "cancel/new", []byte("x")))
	_, err := b.Get(ctx, "cancel/exists")
	check("Get", err)
	_, err = b.GetRange(ctx, "cancel/exists", 0, 1)
	check("GetRange", err)
	check("Delete", b.Delete(ctx, "cancel/exists"))
	check("List", b.List(ctx, "", func(objstore.ObjectInfo) error { return nil }))
}
