package wal

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// datasync makes f's written data durable with fdatasync, which skips
// the inode's timestamps: a write inside a segment's preallocated (already
// written, zero-filled) extent changes no other metadata, so the sync
// commits no filesystem journal transaction and does not wait behind other
// files' syncs (objects, SQLite). A write that grows the file still
// flushes its new size, as the size is needed to read the data back.
func datasync(f *os.File) error {
	for {
		err := unix.Fdatasync(int(f.Fd()))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: err}
		}
		return nil
	}
}

// maxIovecs bounds the buffers of one pwritev call (Linux's IOV_MAX).
const maxIovecs = 1024

// writeAt writes bufs, concatenated, at off in f with pwritev: the
// batches go from the producers' buffers to the page cache without being
// copied into one buffer first. Short writes continue where they stopped.
func writeAt(f *os.File, bufs [][]byte, off int64) error {
	fd := int(f.Fd())
	for len(bufs) > 0 {
		if len(bufs[0]) == 0 {
			bufs = bufs[1:]
			continue
		}
		n, err := unix.Pwritev(fd, bufs[:min(len(bufs), maxIovecs)], off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return &os.PathError{Op: "pwritev", Path: f.Name(), Err: err}
		}
		if n == 0 {
			return fmt.Errorf("pwritev %s: wrote nothing", f.Name())
		}
		off += int64(n)
		for n > 0 {
			if n < len(bufs[0]) {
				bufs[0] = bufs[0][n:]
				break
			}
			n -= len(bufs[0])
			bufs = bufs[1:]
		}
	}
	return nil
}
