package wal

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
)

// The on-disk format (docs/format.md, "Write-ahead log").
//
// Version 2 (written): segment header magic | writer id | salt | CRC;
// frames checksummed with the segment's salt first, so the frames a
// recycled file still holds from its earlier use do not check; a zero
// frame header ends the segment (the end marker written after every group,
// or the zeros of a preallocated file).
//
// Version 1 (read, never written): no salt, frames checksummed alone, the
// segment ends at the end of the file.

const (
	magicPrefix = "SHWAL\x00\x00" // then one version byte
	version1    = 1
	version2    = 2
)

var errForeignSegment = errors.New("wal segment not readable by this build")

// segmentHeader is a version 2 segment header.
func segmentHeader(writer string, salt uint64) []byte {
	b := append([]byte(magicPrefix), version2, byte(len(writer)))
	b = append(b, writer...)
	b = binary.BigEndian.AppendUint64(b, salt)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, crcTable))
}

// frameCRC is the checksum of a frame's body (entry header and batches)
// in a segment with salt: seeded with the salt in version 2, plain in
// version 1 (salt 0; version 2 salts are never 0). Extend it over further
// bytes with crc32.Update.
func frameCRC(salt uint64, body []byte) uint32 {
	if salt == 0 {
		return crc32.Checksum(body, crcTable)
	}
	var s [8]byte
	binary.BigEndian.PutUint64(s[:], salt)
	return crc32.Update(crc32.Checksum(s[:], crcTable), crcTable, body)
}

func putUint32(b []byte, v uint32) { binary.BigEndian.PutUint32(b, v) }

func putEntryHeader(b []byte, h Header) {
	copy(b[0:16], h.TopicID[:])
	binary.BigEndian.PutUint32(b[16:20], uint32(h.Partition))
	binary.BigEndian.PutUint32(b[20:24], uint32(h.LeaderEpoch))
	binary.BigEndian.PutUint64(b[24:32], uint64(h.BaseOffset))
	binary.BigEndian.PutUint64(b[32:40], uint64(h.LastOffset))
	binary.BigEndian.PutUint32(b[40:44], uint32(h.Records))
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

// scanner reads one segment file from its start.
type scanner struct {
	r       *bufio.Reader
	size    int64
	version byte
}

func newScanner(f *os.File, size int64) *scanner {
	return &scanner{r: bufio.NewReaderSize(f, 1<<20), size: size}
}

// header reads the segment header: the writer id, the salt (0 in version
// 1) and the header's length. errForeignSegment for a file of another
// format; any other error is damage.
func (sc *scanner) header() (writer string, salt uint64, n int64, err error) {
	var h [len(magicPrefix) + 2]byte
	if _, err := io.ReadFull(sc.r, h[:]); err != nil {
		return "", 0, 0, fmt.Errorf("torn segment header: %w", err)
	}
	if string(h[:len(magicPrefix)]) != magicPrefix {
		return "", 0, 0, fmt.Errorf("%w: not a wal segment (bad magic)", errForeignSegment)
	}
	sc.version = h[len(magicPrefix)]
	var saltLen int
	switch sc.version {
	case version1:
	case version2:
		saltLen = 8
	default:
		return "", 0, 0, fmt.Errorf("%w: wal format version %d, this build reads %d and %d", errForeignSegment, sc.version, version1, version2)
	}
	rest := make([]byte, int(h[len(h)-1])+saltLen+4)
	if _, err := io.ReadFull(sc.r, rest); err != nil {
		return "", 0, 0, fmt.Errorf("torn segment header: %w", err)
	}
	body := rest[:len(rest)-4]
	sum := binary.BigEndian.Uint32(rest[len(rest)-4:])
	if crc32.Update(crc32.Checksum(h[:], crcTable), crcTable, body) != sum {
		return "", 0, 0, errors.New("segment header checksum mismatch")
	}
	writer = string(body[:len(body)-saltLen])
	if saltLen > 0 {
		salt = binary.BigEndian.Uint64(body[len(body)-saltLen:])
		if salt == 0 {
			return "", 0, 0, errors.New("segment header with a zero salt")
		}
	}
	return writer, salt, int64(len(h) + len(rest)), nil
}

// scanned is one frame read back.
type scanned struct {
	hdr Header
	n   int // batch bytes
}

// frame reads the frame at pos (the scanner is there). It returns nil at a
// clean end: the end of the file, or (version 2) a zero frame header; an
// error for a torn or corrupt frame.
func (sc *scanner) frame(pos int64, salt uint64) (*scanned, int64, error) {
	left := sc.size - pos
	if left == 0 {
		return nil, pos, nil
	}
	if left < frameHeader {
		b := make([]byte, left)
		if _, err := io.ReadFull(sc.r, b); err != nil {
			return nil, pos, fmt.Errorf("torn frame header: %w", err)
		}
		if sc.version >= version2 && allZero(b) {
			return nil, pos, nil
		}
		return nil, pos, fmt.Errorf("torn frame header: %d bytes at the end", left)
	}
	var fh [frameHeader]byte
	if _, err := io.ReadFull(sc.r, fh[:]); err != nil {
		return nil, pos, fmt.Errorf("torn frame header: %w", err)
	}
	if sc.version >= version2 && allZero(fh[:]) {
		return nil, pos, nil
	}
	n := int64(binary.BigEndian.Uint32(fh[0:4]))
	sum := binary.BigEndian.Uint32(fh[4:8])
	if n < entryHeader || n > maxEntry || pos+frameHeader+n > sc.size {
		return nil, pos, fmt.Errorf("bad entry length %d", n)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(sc.r, body); err != nil {
		return nil, pos, fmt.Errorf("torn entry: %w", err)
	}
	if frameCRC(salt, body) != sum {
		return nil, pos, errors.New("entry checksum mismatch")
	}
	return &scanned{hdr: decodeHeader(body), n: int(n - entryHeader)}, pos + frameHeader + n, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
