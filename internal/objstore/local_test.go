// Tests specific to the local folder backend: crash leftovers, directory
// layout, key conflicts and path safety.

package objstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/streamhouse/streamhouse/internal/objstore"
	"github.com/streamhouse/streamhouse/internal/objstore/objstoretest"
)

func TestLocalLeftoverTempFilesAreHiddenAndCleaned(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	l := newLocal(t, root)
	ctx := t.Context()
	if err := l.Put(ctx, "seg/1", []byte("committed")); err != nil {
		t.Fatal(err)
	}
	l.Close()

	// What a writer killed mid-Put leaves behind: a private temp directory
	// nobody holds a lock on, with a half-written file in it; also a stray
	// file directly in .tmp and a same-directory temp file as other tools
	// write them.
	dead := filepath.Join(root, ".tmp", "deadbeefdeadbeef")
	mustWrite(t, filepath.Join(dead, "0123456789abcdef"), "half an obj")
	mustWrite(t, filepath.Join(root, ".tmp", "stray"), "junk")
	mustWrite(t, filepath.Join(root, "seg", ".tmp-123"), "junk")

	l2 := newLocal(t, root)
	if got := keysOf(t, l2, ""); !slices.Equal(got, []string{"seg/1"}) {
		t.Fatalf("List = %q, want only the committed object", got)
	}
	for _, p := range []string{dead, filepath.Join(root, ".tmp", "stray")} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("NewLocal left %s behind (stat: %v)", p, err)
		}
	}
	if got, err := l2.Get(ctx, "seg/1"); err != nil || string(got) != "committed" {
		t.Fatalf("Get(seg/1) = %q, %v", got, err)
	}
}

func TestLocalSecondInstanceKeepsFirstInstancesTempFiles(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	first := newLocal(t, root)
	second := newLocal(t, root) // its cleanup must not touch first's temp directory
	ctx := t.Context()
	for i, b := range []*objstore.Local{first, second, first} {
		key := []string{"a", "b", "c"}[i]
		if err := b.Put(ctx, key, []byte(key)); err != nil {
			t.Fatalf("Put(%s) on instance %d after a second NewLocal: %v", key, i, err)
		}
	}
	if got := keysOf(t, second, ""); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("List = %q", got)
	}
	// Closing removes the instance's temp directory.
	first.Close()
	second.Close()
	entries, err := os.ReadDir(filepath.Join(root, ".tmp"))
	if err != nil || len(entries) != 0 {
		t.Fatalf("after Close, .tmp holds %v (err %v), want nothing", entries, err)
	}
}

func TestLocalNestedKeyLayout(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	l := newLocal(t, root)
	ctx := t.Context()
	key := "topics/orders/3/00000000000000001000.seg"
	if err := l.Put(ctx, key, []byte("segment")); err != nil {
		t.Fatal(err)
	}
	// One file per object, at the path the key names: operators can look.
	data, err := os.ReadFile(filepath.Join(root, "topics", "orders", "3", "00000000000000001000.seg"))
	if err != nil || string(data) != "segment" {
		t.Fatalf("object file = %q, %v", data, err)
	}
	if l.Root() != root {
		t.Errorf("Root() = %s, want %s", l.Root(), root)
	}
}

func TestLocalKeyConflicts(t *testing.T) {
	t.Parallel()
	l := newLocal(t, t.TempDir())
	ctx := t.Context()
	if err := l.Put(ctx, "obj", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := l.Put(ctx, "obj/below", []byte("y")); err == nil {
		t.Fatal("Put(obj/below) with object obj present succeeded; a folder cannot hold both")
	}
	if err := l.Put(ctx, "dir/leaf", []byte("z")); err != nil {
		t.Fatal(err)
	}
	err := l.Put(ctx, "dir", []byte("w"))
	if err == nil || !strings.Contains(err.Error(), "conflicts") {
		t.Fatalf("Put(dir) over directory dir = %v, want a conflict error", err)
	}
	if got, err := l.Get(ctx, "dir/leaf"); err != nil || string(got) != "z" {
		t.Fatalf("Get(dir/leaf) = %q, %v", got, err)
	}
	if got := keysOf(t, l, ""); !slices.Equal(got, []string{"dir/leaf", "obj"}) {
		t.Fatalf("failed Puts left objects: List = %q", got)
	}
}

func TestLocalKeysCannotEscapeRoot(t *testing.T) {
	t.Parallel()
	parent := t.TempDir()
	root := filepath.Join(parent, "store")
	l := newLocal(t, root)
	ctx := t.Context()
	for _, key := range []string{"../outside", "a/../../outside", "/etc/outside", "..", "a/..", "./x"} {
		if err := l.Put(ctx, key, []byte("x")); !errors.Is(err, objstore.ErrInvalidKey) {
			t.Errorf("Put(%q) = %v, want ErrInvalidKey", key, err)
		}
	}
	entries, err := os.ReadDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "store" {
		t.Fatalf("files appeared outside the root: %v", entries)
	}
	if _, err := objstore.NewLocal(""); err == nil {
		t.Error("NewLocal(\"\") succeeded")
	}
}

func TestLocalRelativeRoot(t *testing.T) {
	// Not parallel: changes the working directory.
	t.Chdir(t.TempDir())
	l := newLocal(t, "data/storage")
	if !filepath.IsAbs(l.Root()) {
		t.Fatalf("Root() = %s, want an absolute path", l.Root())
	}
	if err := l.Put(t.Context(), "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join("data", "storage", "k")); err != nil {
		t.Fatal(err)
	}
}

func TestValidateKey(t *testing.T) {
	t.Parallel()
	for _, key := range []string{
		"a", "a/b", "topics/t/0/00000000000000000000.seg", "é/ü", "a.b", "a..b", ".hidden", "a/.x", "tmp", "x.tmp",
		strings.Repeat("k", objstore.MaxKeyLen),
	} {
		if err := objstore.ValidateKey(key); err != nil {
			t.Errorf("ValidateKey(%q) = %v, want nil", key, err)
		}
	}
	for _, key := range []string{
		"", "/a", "a/", "a//b", ".", "..", "a/./b", "a/../b", "../a", "a\x00", "\xc3", ".tmp", ".tmp/a", "a/.tmp-1",
		strings.Repeat("k", objstore.MaxKeyLen+1),
	} {
		err := objstore.ValidateKey(key)
		if !errors.Is(err, objstore.ErrInvalidKey) {
			t.Errorf("ValidateKey(%q) = %v, want ErrInvalidKey", key, err)
		}
	}
}

func mustWrite(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func keysOf(t *testing.T, b objstore.Bucket, prefix string) []string {
	t.Helper()
	var keys []string
	if err := b.List(t.Context(), prefix, func(info objstore.ObjectInfo) error {
		keys = append(keys, info.Key)
		return nil
	}); err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	return keys
}

// Objects large enough for the O_DIRECT path, at aligned and unaligned
// sizes and from unaligned buffers, read back exactly; also on tmpfs,
// where O_DIRECT may be refused and Put falls back to buffered writes.
func TestLocalDirectWrites(t *testing.T) {
	t.Parallel()
	roots := directRoots(t)
	for _, root := range roots {
		l := newLocal(t, root)
		ctx := context.Background()
		for i, n := range []int{64 << 10, 64<<10 + 1, 4096*37 - 1, 4096 * 37, 1<<20 + 123} {
			for _, shift := range []int{0, 1} {
				buf := objstoretest.Data(uint64(n+shift), n+shift)
				data := buf[shift:]
				key := fmt.Sprintf("d/%d-%d", i, shift)
				if err := l.Put(ctx, key, data); err != nil {
					t.Fatalf("%s: put %d bytes: %v", root, n, err)
				}
				got, err := l.Get(ctx, key)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, data) {
					t.Fatalf("%s: %d bytes (shift %d) read back as %d different bytes", root, n, shift, len(got))
				}
			}
		}
	}
}

// Ranges large enough for O_DIRECT reads, starting and ending inside
// blocks, at the end of the object and past it, read back exactly; also on
// tmpfs, where O_DIRECT may be refused and reads fall back to buffered.
func TestLocalDirectRangeReads(t *testing.T) {
	t.Parallel()
	roots := directRoots(t)
	const size = 1<<20 + 123
	data := objstoretest.Data(7, size)
	for _, root := range roots {
		l := newLocal(t, root)
		ctx := context.Background()
		if err := l.Put(ctx, "r/obj", data); err != nil {
			t.Fatal(err)
		}
		for _, r := range [][2]int64{
			{0, 64 << 10}, {1, 64 << 10}, {4095, 64<<10 + 2}, {4096, 128 << 10},
			{size - 64<<10, 64 << 10}, {size - 64<<10 - 1, 64 << 10}, {0, size},
			{size - 100<<10, 200 << 10}, // clamped at the end, like S3
		} {
			got, err := l.GetRange(ctx, "r/obj", r[0], r[1])
			if err != nil {
				t.Fatalf("%s: range %v: %v", root, r, err)
			}
			want := data[r[0]:min(r[0]+r[1], size)]
			if !bytes.Equal(got, want) {
				t.Fatalf("%s: range %v: got %d bytes, want %d (equal %v)", root, r, len(got), len(want), bytes.Equal(got[:min(len(got), len(want))], want[:min(len(got), len(want))]))
			}
		}
	}
}

// directRoots returns folders to test direct I/O in: a disk folder, and one
// on tmpfs (where O_DIRECT may be refused) when there is /dev/shm.
func directRoots(t *testing.T) []string {
	roots := []string{t.TempDir()}
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		dir, err := os.MkdirTemp("/dev/shm", "sh-direct")
		if err == nil {
			t.Cleanup(func() { os.RemoveAll(dir) })
			roots = append(roots, dir)
		}
	}
	return roots
}
