// Package batch owns Kafka RecordBatch v2 bytes: validating client batches
// without re-encoding them, building batches from plain records for REST and
// gRPC, and decoding records for readers.
//
// A batch is kept as the bytes the producer sent. The broker only ever edits
// the fields the CRC does not cover (base offset, partition leader epoch), so
// assigning offsets is a few stores into the header, and SetLogAppendTime is
// the one edit that has to recompute the CRC.
//
// The v2 header layout (all big endian, offsets in bytes):
//
//	 0 BaseOffset            int64
//	 8 Length                int32   bytes after this field
//	12 PartitionLeaderEpoch  int32
//	16 Magic                 int8    always 2
//	17 CRC                   uint32  CRC-32C of bytes [21:]
//	21 Attributes            int16   codec 0-2, timestamp type 3, transactional 4, control 5
//	23 LastOffsetDelta       int32
//	27 FirstTimestamp        int64
//	35 MaxTimestamp          int64
//	43 ProducerID            int64
//	51 ProducerEpoch         int16
//	53 BaseSequence          int32
//	57 NumRecords            int32
//	61 records (compressed as a whole when the codec is not none)
package batch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"

	"github.com/twmb/franz-go/pkg/kbin"
)

// Errors callers map to Kafka error codes. Every error this package returns
// wraps exactly one of them.
var (
	// ErrCorrupt is CORRUPT_MESSAGE: the bytes are not a well-framed batch
	// (truncated, bad Length, CRC mismatch, unknown codec, compressed data
	// that does not decompress).
	ErrCorrupt = errors.New("corrupt record batch")
	// ErrUnsupportedMagic is a batch whose magic byte is not 2 (message
	// format v0/v1, which this broker does not store).
	ErrUnsupportedMagic = errors.New("unsupported record batch magic")
	// ErrTooLarge is MESSAGE_TOO_LARGE: the batch is bigger than allowed,
	// as sent or once its records are decompressed (Limits,
	// MaxDecompressedSize).
	ErrTooLarge = errors.New("record batch too large")
	// ErrInvalidRecord is INVALID_RECORD: the batch is intact (its CRC
	// matches) but what it says is inconsistent: record counts and offset
	// deltas that disagree, records that do not parse. Kafka answers these
	// with INVALID_RECORD too; unlike CORRUPT_MESSAGE it is not retriable,
	// so a client does not resend the same bad batch until it times out.
	ErrInvalidRecord = errors.New("invalid record")
)

// Codec is the compression codec of a batch: attributes & 0x07.
type Codec int8

// The codecs Kafka defines.
const (
	CodecNone   Codec = 0
	CodecGzip   Codec = 1
	CodecSnappy Codec = 2
	CodecLZ4    Codec = 3
	CodecZstd   Codec = 4
)

// ParseCodec parses a codec name as used in Kafka's compression.type
// ("none", "gzip", "snappy", "lz4", "zstd"; "uncompressed" is taken as
// "none"). Case does not matter.
func ParseCodec(s string) (Codec, error) {
	switch strings.ToLower(s) {
	case "none", "uncompressed":
		return CodecNone, nil
	case "gzip":
		return CodecGzip, nil
	case "snappy":
		return CodecSnappy, nil
	case "lz4":
		return CodecLZ4, nil
	case "zstd":
		return CodecZstd, nil
	}
	return 0, fmt.Errorf("unknown compression codec %q", s)
}

func (c Codec) String() string {
	switch c {
	case CodecNone:
		return "none"
	case CodecGzip:
		return "gzip"
	case CodecSnappy:
		return "snappy"
	case CodecLZ4:
		return "lz4"
	case CodecZstd:
		return "zstd"
	}
	return fmt.Sprintf("codec(%d)", int8(c))
}

func (c Codec) valid() bool { return c >= CodecNone && c <= CodecZstd }

// HeaderSize is the size of the fixed RecordBatch v2 header.
const HeaderSize = 61

// Byte offsets of the header fields, and the format's other constants.
const (
	offBaseOffset   = 0
	offLength       = 8
	offLeaderEpoch  = 12
	offMagic        = 16
	offCRC          = 17
	offAttributes   = 21
	offMaxTimestamp = 35

	lengthFieldEnd  = 12              // BaseOffset and Length are not counted by Length
	minLength       = HeaderSize - 12 // Length of a batch with an empty records area
	legacyMinLength = 5               // v0/v1 entries hold at least a crc and the magic byte
	minRecordSize   = 7               // length, attributes, ts delta, offset delta, key, value, header count

	attrCodecMask     = 0x07
	attrTimestampType = 0x08 // set: log append time
	attrTransactional = 0x10
	attrControl       = 0x20
	attrDeleteHorizon = 0x40 // KIP-534: FirstTimestamp is the delete horizon

	magicV2       int8  = 2
	noTimestamp   int64 = -1 // Kafka's RecordBatch.NO_TIMESTAMP
	noLeaderEpoch int32 = -1 // what producers write as PartitionLeaderEpoch
)

// castagnoli is built once; crc32 uses the SSE4.2/ARMv8 instructions for it.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Header is the fixed 61-byte RecordBatch v2 header.
type Header struct {
	BaseOffset           int64
	Length               int32
	PartitionLeaderEpoch int32
	Magic                int8
	CRC                  uint32
	Attributes           int16
	LastOffsetDelta      int32
	FirstTimestamp       int64
	MaxTimestamp         int64
	ProducerID           int64
	ProducerEpoch        int16
	BaseSequence         int32
	NumRecords           int32
}

// Codec is the batch's compression codec.
func (h Header) Codec() Codec { return Codec(h.Attributes & attrCodecMask) }

// IsTransactional reports attribute bit 4.
func (h Header) IsTransactional() bool { return h.Attributes&attrTransactional != 0 }

// IsControl reports attribute bit 5: the batch holds transaction markers.
func (h Header) IsControl() bool { return h.Attributes&attrControl != 0 }

// DeleteHorizon reports attribute bit 6 (Kafka's KIP-534 "delete horizon
// flag"): a log cleaner set it when it first cleaned the batch, and the
// batch's FirstTimestamp is then the time after which its tombstones may
// be removed. Record timestamps stay FirstTimestamp + delta: the cleaner
// recomputed the deltas.
func (h Header) DeleteHorizon() (int64, bool) {
	if h.Attributes&attrDeleteHorizon != 0 {
		return h.FirstTimestamp, true
	}
	return 0, false
}

// TimestampType is attribute bit 3: 0 for create time, 1 for log append time.
func (h Header) TimestampType() int8 {
	if h.Attributes&attrTimestampType != 0 {
		return 1
	}
	return 0
}

// Size is the whole batch's size in bytes: 12 + Length.
func (h Header) Size() int { return lengthFieldEnd + int(h.Length) }

// LastOffset is BaseOffset + LastOffsetDelta.
func (h Header) LastOffset() int64 { return h.BaseOffset + int64(h.LastOffsetDelta) }

// ParseHeader reads the header at the start of b. It checks only that b
// holds a header and that Length is sane: at least 49 and no more than b
// holds. It does not look at the magic byte or the CRC; Validate does.
func ParseHeader(b []byte) (Header, error) {
	h, err := DecodeHeader(b)
	if err == nil && h.Size() > len(b) {
		return h, fmt.Errorf("batch truncated: length says %d bytes, have %d: %w", h.Size(), len(b), ErrCorrupt)
	}
	return h, err
}

// DecodeHeader reads the header at the start of b, which must hold at least
// HeaderSize bytes, and checks that Length is at least 49; unlike
// ParseHeader it does not need the rest of the batch (callers holding a
// batch in pieces check its size themselves).
func DecodeHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, fmt.Errorf("batch header: have %d bytes, need %d: %w", len(b), HeaderSize, ErrCorrupt)
	}
	r := kbin.Reader{Src: b[:HeaderSize]}
	var h Header
	h.BaseOffset = r.Int64()
	h.Length = r.Int32()
	h.PartitionLeaderEpoch = r.Int32()
	h.Magic = r.Int8()
	h.CRC = r.Uint32()
	h.Attributes = r.Int16()
	h.LastOffsetDelta = r.Int32()
	h.FirstTimestamp = r.Int64()
	h.MaxTimestamp = r.Int64()
	h.ProducerID = r.Int64()
	h.ProducerEpoch = r.Int16()
	h.BaseSequence = r.Int32()
	h.NumRecords = r.Int32()
	if h.Length < minLength {
		return h, fmt.Errorf("batch length %d is below the minimum %d: %w", h.Length, minLength, ErrCorrupt)
	}
	return h, nil
}

// Split walks a produce request's records field (one or more concatenated
// batches) and returns each batch's bytes as sub-slices of b, without
// copying; each has its capacity clipped so appending to one cannot
// overwrite the next. A trailing partial batch is ErrCorrupt. An empty b
// returns nil, nil.
//
// Split only follows the framing every message format shares (offset,
// size, and the magic byte at 16), so a v0/v1 entry comes back as its own
// slice and Validate then reports ErrUnsupportedMagic for it. Kafka accepts
// exactly one v2 batch per partition in a produce request; whether to
// enforce that is the caller's choice.
func Split(b []byte) ([][]byte, error) {
	if len(b) == 0 {
		return nil, nil
	}
	var out [][]byte
	for at := 0; at < len(b); {
		rest := b[at:]
		if len(rest) <= offMagic {
			return nil, fmt.Errorf("partial batch at byte %d: %d bytes left: %w", at, len(rest), ErrCorrupt)
		}
		length := int32(binary.BigEndian.Uint32(rest[offLength:]))
		floor := int32(legacyMinLength)
		if int8(rest[offMagic]) == magicV2 {
			floor = minLength
		}
		if length < floor {
			return nil, fmt.Errorf("batch at byte %d: length %d is below the minimum %d: %w", at, length, floor, ErrCorrupt)
		}
		size := lengthFieldEnd + int(length)
		if size > len(rest) {
			return nil, fmt.Errorf("partial batch at byte %d: length says %d bytes, have %d: %w", at, size, len(rest), ErrCorrupt)
		}
		out = append(out, rest[:size:size])
		at += size
	}
	return out, nil
}

// FramedSize is the size of the RecordBatch v2 that b starts with, from its
// length field; ok is false when b is too short to hold that field (the
// first 12 bytes). A length below a v2 batch's minimum is ErrCorrupt.
func FramedSize(b []byte) (size int, ok bool, err error) {
	if len(b) < lengthFieldEnd {
		return 0, false, nil
	}
	length := int32(binary.BigEndian.Uint32(b[offLength:]))
	if length < minLength {
		return 0, false, fmt.Errorf("batch length %d is below the minimum %d: %w", length, minLength, ErrCorrupt)
	}
	return lengthFieldEnd + int(length), true, nil
}

// SetBaseOffset stores off as the batch's base offset. The CRC does not
// cover it. b must hold at least a header.
func SetBaseOffset(b []byte, off int64) {
	binary.BigEndian.PutUint64(b[offBaseOffset:], uint64(off))
}

// SetPartitionLeaderEpoch stores the leader epoch the batch was appended
// under. The CRC does not cover it. b must hold at least a header.
func SetPartitionLeaderEpoch(b []byte, epoch int32) {
	binary.BigEndian.PutUint32(b[offLeaderEpoch:], uint32(epoch))
}

// SetLogAppendTime marks the batch as timestamped by the broker (attribute
// bit 3) with MaxTimestamp ts, which readers then report as every record's
// timestamp (message.timestamp.type=LogAppendTime). Both fields are covered
// by the CRC, so it is recomputed. b must be one whole batch whose Length is
// right (one that passed Validate).
func SetLogAppendTime(b []byte, ts int64) {
	attrs := binary.BigEndian.Uint16(b[offAttributes:])
	binary.BigEndian.PutUint16(b[offAttributes:], attrs|attrTimestampType)
	binary.BigEndian.PutUint64(b[offMaxTimestamp:], uint64(ts))
	setCRC(b)
}

// setCRC recomputes the CRC over [21:12+Length].
func setCRC(b []byte) {
	end := lengthFieldEnd + int(int32(binary.BigEndian.Uint32(b[offLength:])))
	binary.BigEndian.PutUint32(b[offCRC:], crc32.Checksum(b[offAttributes:end], castagnoli))
}
