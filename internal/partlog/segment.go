package partlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/streamhouse/streamhouse/internal/metadata"
)

// Segment object layout (docs/format.md is the reference):
//
//	header  32 bytes: magic "SHSEGMNT", version u16, flags u16, reserved u32,
//	                  created unix ms i64, run count u32, header crc32c u32
//	body    runs of Kafka RecordBatch v2 bytes, one run per partition, in
//	        footer order, each run the partition's batches in offset order
//	footer  run count × 64-byte entries, then crc32c u32 of the entries
//	trailer 16 bytes: footer position u64, magic "SHSEGEND"
//
// All integers are big-endian, as in Kafka. Readers on the hot path never
// parse the footer: the metadata index gives them the byte range of a run.
// The footer makes every object self-describing, for verification, repair
// and compaction.
const (
	segmentMagic      = "SHSEGMNT"
	segmentEndMagic   = "SHSEGEND"
	segmentVersion    = 1
	segmentHeaderSize = 32
	segmentEntrySize  = 64
	segmentTrailer    = 16
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// ErrCorruptSegment is wrapped by every segment decoding error.
var ErrCorruptSegment = errors.New("corrupt segment object")

// SegmentRun describes one partition's run of batches in a segment object.
type SegmentRun struct {
	TopicID      metadata.TopicID
	Partition    int32
	BaseOffset   int64
	LastOffset   int64
	Pos          int64 // byte position of the run in the object
	Len          int64
	Records      int32
	MaxTimestamp int64
	CRC          uint32 // crc32c of the run's bytes
}

// segmentSize returns the encoded size of an object holding runs with the
// given total body size.
func segmentSize(runs int, body int) int {
	return segmentHeaderSize + body + runs*segmentEntrySize + 4 + segmentTrailer
}

// encodeSegmentHeader writes the header into dst[:segmentHeaderSize].
func encodeSegmentHeader(dst []byte, createdMs int64, runs int) {
	copy(dst[0:8], segmentMagic)
	binary.BigEndian.PutUint16(dst[8:10], segmentVersion)
	binary.BigEndian.PutUint16(dst[10:12], 0)
	binary.BigEndian.PutUint32(dst[12:16], 0)
	binary.BigEndian.PutUint64(dst[16:24], uint64(createdMs))
	binary.BigEndian.PutUint32(dst[24:28], uint32(runs))
	binary.BigEndian.PutUint32(dst[28:32], crc32.Checksum(dst[0:28], crcTable))
}

// appendSegmentFooter appends footer and trailer for runs to dst, whose
// current length is the footer position.
func appendSegmentFooter(dst []byte, runs []SegmentRun) []byte {
	footerPos := len(dst)
	var e [segmentEntrySize]byte
	for _, r := range runs {
		copy(e[0:16], r.TopicID[:])
		binary.BigEndian.PutUint32(e[16:20], uint32(r.Partition))
		binary.BigEndian.PutUint64(e[20:28], uint64(r.BaseOffset))
		binary.BigEndian.PutUint64(e[28:36], uint64(r.LastOffset))
		binary.BigEndian.PutUint64(e[36:44], uint64(r.Pos))
		binary.BigEndian.PutUint32(e[44:48], uint32(r.Len))
		binary.BigEndian.PutUint32(e[48:52], uint32(r.Records))
		binary.BigEndian.PutUint64(e[52:60], uint64(r.MaxTimestamp))
		binary.BigEndian.PutUint32(e[60:64], r.CRC)
		dst = append(dst, e[:]...)
	}
	dst = binary.BigEndian.AppendUint32(dst, crc32.Checksum(dst[footerPos:], crcTable))
	dst = binary.BigEndian.AppendUint64(dst, uint64(footerPos))
	return append(dst, segmentEndMagic...)
}

// DecodeSegment checks a whole segment object (header, footer, trailer and
// each run's checksum) and returns its runs. It never panics on bad input.
// A run may be empty (length 0, no records): key compaction writes one for
// index entries it left without records.
func DecodeSegment(obj []byte) (createdMs int64, runs []SegmentRun, err error) {
	if len(obj) < segmentHeaderSize+4+segmentTrailer {
		return 0, nil, fmt.Errorf("%w: %d bytes is shorter than an empty segment", ErrCorruptSegment, len(obj))
	}
	h := obj[:segmentHeaderSize]
	if string(h[0:8]) != segmentMagic {
		return 0, nil, fmt.Errorf("%w: bad header magic", ErrCorruptSegment)
	}
	if got, want := crc32.Checksum(h[0:28], crcTable), binary.BigEndian.Uint32(h[28:32]); got != want {
		return 0, nil, fmt.Errorf("%w: header checksum %08x, want %08x", ErrCorruptSegment, got, want)
	}
	if v := binary.BigEndian.Uint16(h[8:10]); v != segmentVersion {
		return 0, nil, fmt.Errorf("%w: unsupported version %d", ErrCorruptSegment, v)
	}
	createdMs = int64(binary.BigEndian.Uint64(h[16:24]))
	n := int(binary.BigEndian.Uint32(h[24:28]))

	t := obj[len(obj)-segmentTrailer:]
	if string(t[8:16]) != segmentEndMagic {
		return 0, nil, fmt.Errorf("%w: bad trailer magic", ErrCorruptSegment)
	}
	footerPos := binary.BigEndian.Uint64(t[0:8])
	footerEnd := uint64(len(obj) - segmentTrailer - 4)
	if n > len(obj)/segmentEntrySize || footerPos < segmentHeaderSize || footerPos > footerEnd ||
		footerEnd-footerPos != uint64(n)*segmentEntrySize {
		return 0, nil, fmt.Errorf("%w: footer of %d runs does not fit at %d", ErrCorruptSegment, n, footerPos)
	}
	footer := obj[footerPos:footerEnd]
	if got, want := crc32.Checksum(footer, crcTable), binary.BigEndian.Uint32(obj[footerEnd:footerEnd+4]); got != want {
		return 0, nil, fmt.Errorf("%w: footer checksum %08x, want %08x", ErrCorruptSegment, got, want)
	}
	runs = make([]SegmentRun, n)
	next := int64(segmentHeaderSize)
	for i := range runs {
		e := footer[i*segmentEntrySize : (i+1)*segmentEntrySize]
		r := &runs[i]
		copy(r.TopicID[:], e[0:16])
		r.Partition = int32(binary.BigEndian.Uint32(e[16:20]))
		r.BaseOffset = int64(binary.BigEndian.Uint64(e[20:28]))
		r.LastOffset = int64(binary.BigEndian.Uint64(e[28:36]))
		r.Pos = int64(binary.BigEndian.Uint64(e[36:44]))
		r.Len = int64(binary.BigEndian.Uint32(e[44:48]))
		r.Records = int32(binary.BigEndian.Uint32(e[48:52]))
		r.MaxTimestamp = int64(binary.BigEndian.Uint64(e[52:60]))
		r.CRC = binary.BigEndian.Uint32(e[60:64])
		if r.Pos != next || r.Len < 0 || (r.Len == 0 && r.Records != 0) || r.Pos+r.Len > int64(footerPos) || r.Pos+r.Len < r.Pos {
			return 0, nil, fmt.Errorf("%w: run %d at [%d,+%d) is not contiguous in a %d-byte body", ErrCorruptSegment, i, r.Pos, r.Len, footerPos)
		}
		if r.BaseOffset < 0 || r.LastOffset < r.BaseOffset || r.Partition < 0 {
			return 0, nil, fmt.Errorf("%w: run %d has offsets [%d,%d] partition %d", ErrCorruptSegment, i, r.BaseOffset, r.LastOffset, r.Partition)
		}
		if got := crc32.Checksum(obj[r.Pos:r.Pos+r.Len], crcTable); got != r.CRC {
			return 0, nil, fmt.Errorf("%w: run %d checksum %08x, want %08x", ErrCorruptSegment, i, got, r.CRC)
		}
		next = r.Pos + r.Len
	}
	if next != int64(footerPos) {
		return 0, nil, fmt.Errorf("%w: %d body bytes not covered by runs", ErrCorruptSegment, int64(footerPos)-next)
	}
	return createdMs, runs, nil
}
