package batch

import (
	"fmt"
	"hash/crc32"
	"sync"

	"github.com/twmb/franz-go/pkg/kbin"
)

// Validate checks that b is exactly one well-formed v2 batch a client may
// produce, without copying or re-encoding it:
//
//   - the magic byte is 2 (else ErrUnsupportedMagic);
//   - len(b) is 12+Length, and the CRC-32C over [21:] matches (else ErrCorrupt);
//   - len(b) <= maxBatchBytes when maxBatchBytes > 0 (else ErrTooLarge);
//   - the codec is one Kafka defines (else ErrCorrupt);
//   - NumRecords >= 1, LastOffsetDelta == NumRecords-1, and MaxTimestamp >=
//     FirstTimestamp unless either is -1 or the batch has LogAppendTime
//     (else ErrInvalidRecord).
//
// For an uncompressed batch it also walks the records' varint framing (no
// allocation) and checks that there are exactly NumRecords records, each
// parsing to exactly its stated length, with offset delta equal to its
// index (else ErrInvalidRecord). A compressed batch gets that walk only when
// deep is true, after decompressing it (bounded by MaxDecompressedSize;
// data that does not decompress is ErrCorrupt).
//
// Validate does not judge what a broker may refuse by policy: control
// batches, producer fields, LogAppendTime set by a client, timestamps too
// far from now. Those are in the returned Header, which is filled whenever
// the header could be read, even with an error (but not for a magic other
// than 2, whose layout differs).
func Validate(b []byte, maxBatchBytes int, deep bool) (Header, error) {
	if len(b) > offMagic && int8(b[offMagic]) != magicV2 {
		return Header{}, fmt.Errorf("magic %d: %w", int8(b[offMagic]), ErrUnsupportedMagic)
	}
	h, err := ParseHeader(b)
	if err != nil {
		return h, err
	}
	if h.Size() != len(b) {
		return h, fmt.Errorf("batch is %d bytes but its length says %d: %w", len(b), h.Size(), ErrCorrupt)
	}
	if maxBatchBytes > 0 && len(b) > maxBatchBytes {
		return h, fmt.Errorf("batch is %d bytes, limit %d: %w", len(b), maxBatchBytes, ErrTooLarge)
	}
	if crc := crc32.Checksum(b[offAttributes:], castagnoli); crc != h.CRC {
		return h, fmt.Errorf("crc mismatch: header %08x, computed %08x: %w", h.CRC, crc, ErrCorrupt)
	}
	if !h.Codec().valid() {
		return h, fmt.Errorf("unknown compression codec %d: %w", h.Codec(), ErrCorrupt)
	}
	if h.NumRecords < 1 {
		return h, fmt.Errorf("record count %d: %w", h.NumRecords, ErrInvalidRecord)
	}
	if h.LastOffsetDelta != h.NumRecords-1 {
		return h, fmt.Errorf("last offset delta %d does not match record count %d: %w", h.LastOffsetDelta, h.NumRecords, ErrInvalidRecord)
	}
	// In a LogAppendTime batch MaxTimestamp is the broker's clock and
	// FirstTimestamp the producer's, so they need not be ordered.
	if h.TimestampType() == 0 && h.FirstTimestamp != noTimestamp && h.MaxTimestamp != noTimestamp && h.MaxTimestamp < h.FirstTimestamp {
		return h, fmt.Errorf("max timestamp %d is before first timestamp %d: %w", h.MaxTimestamp, h.FirstTimestamp, ErrInvalidRecord)
	}
	recs := b[HeaderSize:]
	switch {
	case h.Codec() == CodecNone:
		return h, walkRecords(recs, h.NumRecords)
	case deep:
		return h, validateCompressed(h, recs)
	}
	return h, nil
}

// scratch holds decompressed records for deep validation, which only walks
// them; Records needs its own buffer since its records point into it.
var scratch = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledScratch keeps one huge batch from pinning its buffer in the pool.
const maxPooledScratch = 4 << 20

func validateCompressed(h Header, recs []byte) error {
	buf := scratch.Get().(*[]byte)
	out, err := decompress(h.Codec(), (*buf)[:0], recs)
	if err == nil {
		err = walkRecords(out, h.NumRecords)
	} else {
		err = fmt.Errorf("%s records: %w: %w", h.Codec(), err, ErrCorrupt)
	}
	if cap(out) <= maxPooledScratch {
		*buf = out[:0]
		scratch.Put(buf)
	}
	return err
}

// walkRecords checks that recs holds exactly n records with offset deltas
// 0 to n-1 and nothing after them.
func walkRecords(recs []byte, n int32) error {
	if int64(n) > int64(len(recs)/minRecordSize) {
		return fmt.Errorf("%d records cannot fit in %d bytes: %w", n, len(recs), ErrInvalidRecord)
	}
	for i := range n {
		_, rest, delta, err := nextRecord(recs)
		if err != nil {
			return fmt.Errorf("record %d: %w", i, err)
		}
		if delta != i {
			return fmt.Errorf("record %d has offset delta %d: %w", i, delta, ErrInvalidRecord)
		}
		recs = rest
	}
	if len(recs) != 0 {
		return fmt.Errorf("%d bytes after the last of %d records: %w", len(recs), n, ErrInvalidRecord)
	}
	return nil
}

// nextRecord splits the first record off recs and checks that its fields
// parse and end exactly where its length says, the way Kafka's
// DefaultRecord.readFrom does. rec includes the length prefix, so it can be
// handed to kmsg.Record.ReadFrom. Errors wrap ErrInvalidRecord.
func nextRecord(recs []byte) (rec, rest []byte, offsetDelta int32, err error) {
	length, n := kbin.Varint(recs)
	if n <= 0 {
		return nil, nil, 0, fmt.Errorf("bad length varint: %w", ErrInvalidRecord)
	}
	if length < minRecordSize-1 || int64(length) > int64(len(recs)-n) {
		return nil, nil, 0, fmt.Errorf("length %d with %d bytes left: %w", length, len(recs)-n, ErrInvalidRecord)
	}
	end := n + int(length)
	r := kbin.Reader{Src: recs[n:end]}
	r.Int8()    // attributes: unused by v2 records
	r.Varlong() // timestamp delta
	offsetDelta = r.Varint()
	r.VarintBytes() // key; any negative length is null, as in Kafka
	r.VarintBytes() // value
	headers := r.Varint()
	if headers < 0 || int64(headers) > int64(len(r.Src)/2) { // a header takes at least 2 bytes
		return nil, nil, 0, fmt.Errorf("header count %d: %w", headers, ErrInvalidRecord)
	}
	for range headers {
		kl := r.Varint()
		if kl < 0 {
			return nil, nil, 0, fmt.Errorf("header key length %d: %w", kl, ErrInvalidRecord)
		}
		r.Span(int(kl))
		r.VarintBytes() // header value; negative is null
	}
	if !r.Ok() {
		return nil, nil, 0, fmt.Errorf("fields run past the record's length %d: %w", length, ErrInvalidRecord)
	}
	if len(r.Src) != 0 {
		return nil, nil, 0, fmt.Errorf("%d bytes left inside the record's length %d: %w", len(r.Src), length, ErrInvalidRecord)
	}
	return recs[:end:end], recs[end:], offsetDelta, nil
}
