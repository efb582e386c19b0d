// This file owns the local folder backend (LOCAL_STORAGE_PATH): one file per
// object under a root directory, with "/" in keys mapped to subdirectories.
//
// Crash safety. A Put writes the whole object to a temporary file, makes it
// durable with fdatasync, renames it over the final name (atomic on POSIX
// filesystems) and fsyncs the final name's directory so that the rename
// itself survives a crash. Directories created for a key are fsynced into
// their parents before the rename. A reader therefore sees no object or the
// whole object, and an acknowledged Put survives power loss.
//
// Temporary files do not live next to the objects but in a private directory
// per Local instance, root/.tmp/<random>/, held under an exclusive flock
// while the instance is open. That keeps crash cleanup cheap and safe:
// NewLocal removes the .tmp subdirectories nobody holds a lock on, without
// walking the whole tree (cold start stays fast with millions of objects)
// and without touching the in-flight files of another live instance sharing
// the root (several agents in one test process, for example). Key rules
// (ValidateKey) reserve ".tmp" so no key can collide with this directory.
//
// Directories are never removed, even when empty: removing one would race
// with a concurrent Put into it, and empty directories cost next to nothing.
// A path cannot be both an object and a directory, so keys "a" and "a/b"
// cannot both exist here (S3 allows it); such a Put fails with a clear error.
package objstore

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// Local is a Bucket stored in a local folder. Create it with NewLocal.
type Local struct {
	root   string   // absolute, clean
	tmpDir string   // this instance's private temp directory
	lock   *os.File // open on tmpDir and flocked while the instance lives
	// noDirect is set once the filesystem refused O_DIRECT.
	noDirect atomic.Bool
}

var _ Bucket = (*Local)(nil)

const tmpDirName = reservedPrefix // root/.tmp

// NewLocal opens (creating if needed) the folder bucket at root and removes
// temporary files left behind by crashed writers.
func NewLocal(root string) (*Local, error) {
	if root == "" {
		return nil, errors.New("local object store: empty root path")
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("local object store %s: %w", root, err)
	}
	if err := os.MkdirAll(filepath.Join(abs, tmpDirName), 0o755); err != nil {
		return nil, fmt.Errorf("local object store %s: %w", abs, err)
	}
	// The root may have just been created: make its entry durable, or a
	// crash could take every object written under it along.
	if err := syncDir(filepath.Dir(abs)); err != nil {
		return nil, fmt.Errorf("local object store %s: %w", abs, err)
	}
	if err := syncDir(abs); err != nil {
		return nil, fmt.Errorf("local object store %s: %w", abs, err)
	}
	l := &Local{root: abs}
	if err := l.claimTmpDir(); err != nil {
		return nil, fmt.Errorf("local object store %s: %w", abs, err)
	}
	if err := l.removeStaleTmp(); err != nil {
		l.Close()
		return nil, fmt.Errorf("local object store %s: remove stale temporary files: %w", abs, err)
	}
	return l, nil
}

// Root returns the absolute folder the bucket lives in.
func (l *Local) Root() string { return l.root }

// claimTmpDir creates and locks this instance's private temp directory.
func (l *Local) claimTmpDir() error {
	for range 10 {
		dir := filepath.Join(l.root, tmpDirName, randomName())
		if err := os.Mkdir(dir, 0o755); err != nil {
			if errors.Is(err, fs.ErrExist) {
				continue
			}
			return err
		}
		f, err := os.Open(dir)
		if err != nil {
			return err
		}
		if err := flock(f, unix.LOCK_EX|unix.LOCK_NB); err != nil {
			// Another NewLocal's cleanup locked it in the window between our
			// Mkdir and flock and will delete it: pick another name.
			f.Close()
			continue
		}
		// The cleanup may also have locked, removed and released it before
		// our flock; then the path no longer leads to the directory we hold.
		held, err1 := f.Stat()
		now, err2 := os.Stat(dir)
		if err1 != nil || err2 != nil || !os.SameFile(held, now) {
			f.Close()
			continue
		}
		l.tmpDir, l.lock = dir, f
		return nil
	}
	return errors.New("cannot claim a private temporary directory")
}

// removeStaleTmp deletes every entry of root/.tmp that no live instance holds.
func (l *Local) removeStaleTmp() error {
	parent := filepath.Join(l.root, tmpDirName)
	entries, err := os.ReadDir(parent)
	if err != nil {
		return err
	}
	for _, e := range entries {
		p := filepath.Join(parent, e.Name())
		if p == l.tmpDir {
			continue
		}
		if e.IsDir() {
			f, err := os.Open(p)
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					continue // its owner closed it meanwhile
				}
				return err
			}
			err = flock(f, unix.LOCK_EX|unix.LOCK_NB)
			if errors.Is(err, unix.EWOULDBLOCK) {
				f.Close() // a live instance owns it
				continue
			}
			if err != nil {
				f.Close()
				return err
			}
			err = os.RemoveAll(p)
			f.Close()
			if err != nil {
				return err
			}
			continue
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// path maps a validated key to its file.
func (l *Local) path(key string) string {
	return filepath.Join(l.root, filepath.FromSlash(key))
}

// Put implements Bucket. It cannot be interrupted once the write starts:
// ctx is only checked before, since abandoning a half-synced file gains
// nothing.
func (l *Local) Put(ctx context.Context, key string, data []byte) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	if err := ValidateKey(key); err != nil {
		return fmt.Errorf("put: %w", err)
	}
	tmp, err := l.writeTemp(data)
	if err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	final := l.path(key)
	if err := l.publish(tmp, final); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("put %s: %w", key, err)
	}
	if err := syncDir(filepath.Dir(final)); err != nil {
		return fmt.Errorf("put %s: sync directory: %w", key, err)
	}
	return nil
}

// writeTemp writes data to a new durable temporary file and returns its path.
func (l *Local) writeTemp(data []byte) (string, error) {
	var f *os.File
	var name string
	direct := !l.noDirect.Load() && len(data) >= directMin
	for {
		name = filepath.Join(l.tmpDir, randomName())
		var err error
		if direct {
			var unsupported bool
			f, unsupported, err = openDirect(name)
			if unsupported {
				l.noDirect.Store(true)
				direct = false
				continue
			}
		} else {
			f, err = os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		}
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrExist) {
			return "", err
		}
	}
	var err error
	if direct {
		err = writeDirect(f, data)
	} else {
		_, err = f.Write(data)
	}
	if err == nil {
		err = fdatasync(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(name)
		return "", err
	}
	return name, nil
}

// publish links tmp to final, creating final's directory on first use, and
// removes tmp. A hard link, unlike a rename, never replaces an existing
// file: a key that exists fails with ErrExists. The directory is created
// lazily (on ENOENT) so the common case costs no stat.
func (l *Local) publish(tmp, final string) error {
	err := os.Link(tmp, final)
	if errors.Is(err, fs.ErrNotExist) {
		if err := l.mkdirAll(filepath.Dir(final)); err != nil {
			return err
		}
		err = os.Link(tmp, final)
	}
	if err != nil {
		var le *os.LinkError
		if errors.As(err, &le) && errors.Is(le.Err, syscall.EEXIST) {
			if st, serr := os.Lstat(final); serr == nil && st.Mode().IsRegular() {
				return ErrExists
			}
		}
		if errors.As(err, &le) && (errors.Is(le.Err, syscall.EISDIR) ||
			errors.Is(le.Err, syscall.ENOTDIR) || errors.Is(le.Err, syscall.EEXIST) ||
			errors.Is(le.Err, syscall.ENOTEMPTY)) {
			return fmt.Errorf("key conflicts with an existing object or directory (the local backend cannot store both \"a\" and \"a/b\"): %w", err)
		}
		return err
	}
	// The object is published; the temporary name is only clutter now
	// (NewLocal removes what a crash leaves).
	_ = os.Remove(tmp)
	return nil
}

// mkdirAll creates dir and its missing ancestors below the root, fsyncing
// each parent that gained an entry so the new path survives a crash. A
// directory a concurrent Put just created may not be synced yet, so EEXIST
// also syncs the parent; this path runs only on a key's first directory use.
func (l *Local) mkdirAll(dir string) error {
	if dir == l.root || !strings.HasPrefix(dir, l.root+string(filepath.Separator)) {
		return nil
	}
	parent := filepath.Dir(dir)
	err := os.Mkdir(dir, 0o755)
	if errors.Is(err, fs.ErrNotExist) {
		if err := l.mkdirAll(parent); err != nil {
			return err
		}
		err = os.Mkdir(dir, 0o755)
	}
	if err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	if err != nil { // exists: it must be a directory, not an object
		st, serr := os.Stat(dir)
		if serr != nil {
			return serr
		}
		if !st.IsDir() {
			return fmt.Errorf("key conflicts with an existing object %s (the local backend cannot store both \"a\" and \"a/b\")", dir)
		}
	}
	return syncDir(parent)
}

// Get implements Bucket.
func (l *Local) Get(ctx context.Context, key string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	if err := ValidateKey(key); err != nil {
		return nil, fmt.Errorf("get: %w", err)
	}
	data, err := os.ReadFile(l.path(key))
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, mapNotFound(err))
	}
	return data, nil
}

// GetRange implements Bucket with one pread; ranges of directMin bytes and
// more are read with O_DIRECT (see readDirect).
func (l *Local) GetRange(ctx context.Context, key string, off, length int64) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("get range %s: %w", key, err)
	}
	if err := ValidateKey(key); err != nil {
		return nil, fmt.Errorf("get range: %w", err)
	}
	if err := checkRange(off, length); err != nil {
		return nil, fmt.Errorf("get range %s: %w", key, err)
	}
	direct := !l.noDirect.Load() && length >= directMin
	f, err := openRead(l.path(key), direct)
	if direct && errors.Is(err, unix.EINVAL) {
		l.noDirect.Store(true)
		direct = false
		f, err = openRead(l.path(key), false)
	}
	if err != nil {
		return nil, fmt.Errorf("get range %s: %w", key, mapNotFound(err))
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("get range %s: %w", key, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("get range %s: %w", key, ErrNotFound)
	}
	end, err := clampRange(st.Size(), off, length)
	if err != nil {
		return nil, fmt.Errorf("get range %s: %w", key, err)
	}
	if direct {
		buf, err := readDirect(f, off, end)
		if err != nil {
			return nil, fmt.Errorf("get range %s: %w", key, err)
		}
		return buf, nil
	}
	buf := make([]byte, end-off)
	if _, err := f.ReadAt(buf, off); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF // objects are immutable; a short file is damage
		}
		return nil, fmt.Errorf("get range %s: %w", key, err)
	}
	return buf, nil
}

// Delete implements Bucket. It uses unlink, never rmdir, so deleting a key
// that names a directory is a no-op like any other missing key. The
// directory is not fsynced: a delete lost in a crash leaves an unreferenced
// object, which garbage collection finds again by listing.
func (l *Local) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	if err := ValidateKey(key); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	err := ignoringEINTR(func() error { return unix.Unlink(l.path(key)) })
	if err == nil || errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.EISDIR) {
		return nil
	}
	return fmt.Errorf("delete %s: %w", key, err)
}

// List implements Bucket. A directory walk is not in key order by itself
// ("a/b" sorts after "a.txt" although directory "a" sorts before it), so
// each directory's entries are ordered with directories compared as
// name+"/", which is exactly how their keys compare.
func (l *Local) List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	dir, namePrefix := "", prefix
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		dir, namePrefix = prefix[:i], prefix[i+1:]
		if ValidateKey(dir) != nil {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("list %s: %w", prefix, err)
			}
			return nil // no valid key lives under an invalid directory
		}
	}
	if err := l.walk(ctx, dir, namePrefix, fn); err != nil {
		if stop, ok := err.(stopList); ok {
			return stop.err // fn's own error, passed through unwrapped
		}
		return fmt.Errorf("list %s: %w", prefix, err)
	}
	return nil
}

// stopList carries an error returned by List's fn up through the walk, so it
// is not confused with (and wrapped like) a filesystem error.
type stopList struct{ err error }

func (s stopList) Error() string { return s.err.Error() }

func (l *Local) walk(ctx context.Context, rel, namePrefix string, fn func(ObjectInfo) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	entries, err := os.ReadDir(filepath.Join(l.root, filepath.FromSlash(rel)))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return nil
		}
		return err
	}
	type entry struct {
		sortKey string
		de      fs.DirEntry
	}
	list := make([]entry, 0, len(entries))
	for _, de := range entries {
		name := de.Name()
		if !strings.HasPrefix(name, namePrefix) || strings.HasPrefix(name, reservedPrefix) {
			continue
		}
		switch {
		case de.IsDir():
			list = append(list, entry{name + "/", de})
		case de.Type().IsRegular():
			list = append(list, entry{name, de})
		}
	}
	slices.SortFunc(list, func(a, b entry) int { return strings.Compare(a.sortKey, b.sortKey) })
	for _, e := range list {
		key := e.de.Name()
		if rel != "" {
			key = rel + "/" + key
		}
		if e.de.IsDir() {
			if err := l.walk(ctx, key, "", fn); err != nil {
				return err
			}
			continue
		}
		info, err := e.de.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted since ReadDir
		}
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(ObjectInfo{Key: key, Size: info.Size(), ModTime: info.ModTime()}); err != nil {
			return stopList{err}
		}
	}
	return nil
}

// Close implements Bucket: it releases and removes this instance's
// temporary directory.
func (l *Local) Close() error {
	if l.lock == nil {
		return nil
	}
	err := os.RemoveAll(l.tmpDir)
	if cerr := l.lock.Close(); err == nil {
		err = cerr
	}
	l.lock = nil
	return err
}

// mapNotFound turns "no such file" (and "a path component is a file", or "a
// directory, not an object") into ErrNotFound, keeping the original text.
func mapNotFound(err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.EISDIR) {
		return fmt.Errorf("%w: %v", ErrNotFound, err)
	}
	return err
}

// fdatasync flushes f's data and the metadata needed to read it back (its
// size), skipping the timestamp-only inode writes that fsync adds.
func fdatasync(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = ignoringEINTR(func() error { return unix.Fdatasync(int(fd)) })
	}); err != nil {
		return err
	}
	if serr != nil {
		return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: serr}
	}
	return nil
}

// syncDir makes directory entry changes in dir (creates, renames) durable.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func flock(f *os.File, how int) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) {
		ferr = ignoringEINTR(func() error { return unix.Flock(int(fd), how) })
	}); err != nil {
		return err
	}
	return ferr
}

func ignoringEINTR(fn func() error) error {
	for {
		err := fn()
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// randomName returns a name for a temporary file or directory; uniqueness is
// enforced by O_EXCL / mkdir, randomness only avoids retries.
func randomName() string {
	return hex.EncodeToString(binary.LittleEndian.AppendUint64(nil, rand.Uint64()))
}
