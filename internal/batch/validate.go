package batch

import (
	"errors"
	"fmt"
	"hash/crc32"
	"sync"

	"github.com/twmb/franz-go/pkg/kbin"
)

// Limits bound what Check accepts.
type Limits struct {
	// MaxBatchBytes bounds the batch as sent (the topic's
	// max.message.bytes); 0 is no bound.
	MaxBatchBytes int
	// MaxRecordsBytes bounds the records area of a compressed batch once
	// decompressed; 0, or anything above MaxDecompressedSize, is
	// MaxDecompressedSize. Going over is ErrTooLarge, found without
	// decompressing more than the bound.
	MaxRecordsBytes int
	// RequireKeys refuses a data batch holding a record with a null key
	// (ErrInvalidRecord), as Kafka's broker does for a topic with
	// cleanup.policy=compact: key compaction cannot place a keyless
	// record. Control batches are not checked.
	RequireKeys bool
}

// Stats is what Check learned by walking a batch's records.
type Stats struct {
	// MinTimestamp and MaxTimestamp span the records' timestamps (as
	// Records reports them), leaving out records without one (-1); both
	// are -1 when no record has a timestamp.
	MinTimestamp, MaxTimestamp int64
	// RecordsBytes is the size of the records area, decompressed.
	RecordsBytes int
}

// Check is what a broker runs on a produced batch: everything Validate
// checks, with the records of a compressed batch decompressed (within
// lim.MaxRecordsBytes) and walked like those of an uncompressed one, as
// Kafka's broker does before appending. A batch that passes Check can be
// decoded by Records. Decompression goes into a pooled buffer, so at
// steady state Check does not allocate.
func Check(b []byte, lim Limits) (Header, Stats, error) {
	h, err := checkHeader(b, lim.MaxBatchBytes)
	if err != nil {
		return h, Stats{}, err
	}
	recs := b[HeaderSize:]
	keys := lim.RequireKeys && !h.IsControl()
	if h.Codec() == CodecNone {
		st, err := walkRecords(h, recs, keys)
		return h, st, err
	}
	st, err := checkCompressed(h, recs, recordsLimit(lim.MaxRecordsBytes), keys)
	return h, st, err
}

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
// deep is true, after decompressing it (bounded by MaxDecompressedSize,
// beyond which it is ErrTooLarge; data that does not decompress is
// ErrCorrupt). Deep validation is Check with no bound but
// MaxDecompressedSize.
//
// Validate does not judge what a broker may refuse by policy: control
// batches, producer fields, LogAppendTime set by a client, timestamps too
// far from now. Those are in the returned Header, which is filled whenever
// the header could be read, even with an error (but not for a magic other
// than 2, whose layout differs).
func Validate(b []byte, maxBatchBytes int, deep bool) (Header, error) {
	if deep {
		h, _, err := Check(b, Limits{MaxBatchBytes: maxBatchBytes})
		return h, err
	}
	h, err := checkHeader(b, maxBatchBytes)
	if err == nil && h.Codec() == CodecNone {
		_, err = walkRecords(h, b[HeaderSize:], false)
	}
	return h, err
}

// checkHeader makes Validate's checks that need no decompression.
func checkHeader(b []byte, maxBatchBytes int) (Header, error) {
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
	return h, nil
}

// recordsLimit applies MaxDecompressedSize to a caller's bound.
func recordsLimit(n int) int {
	if n <= 0 || n > MaxDecompressedSize {
		return MaxDecompressedSize
	}
	return n
}

// scratch holds decompressed records for checking and for Decoder: the
// records are walked or copied out before the buffer goes back.
var scratch = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledScratch keeps one huge batch from pinning its buffer in the pool.
const maxPooledScratch = 4 << 20

func getScratch() *[]byte { return scratch.Get().(*[]byte) }

func checkCompressed(h Header, recs []byte, limit int, requireKeys bool) (Stats, error) {
	buf := getScratch()
	out, err := decompressRecords(h, (*buf)[:0], recs, limit)
	var st Stats
	if err == nil {
		st, err = walkRecords(h, out, requireKeys)
	}
	*buf = out
	putScratch(buf)
	return st, err
}

// decompressRecords decompresses a batch's records area into dst, wrapping
// errors in the sentinel that says what went wrong: ErrTooLarge beyond
// limit, ErrCorrupt for data that does not decompress.
func decompressRecords(h Header, dst, recs []byte, limit int) ([]byte, error) {
	out, err := decompress(h.Codec(), dst, recs, limit)
	switch {
	case errors.Is(err, errDecompressLimit):
		return out, fmt.Errorf("%s records: decompressed size exceeds %d bytes: %w", h.Codec(), limit, ErrTooLarge)
	case err != nil:
		return out, fmt.Errorf("%s records: %w: %w", h.Codec(), err, ErrCorrupt)
	}
	return out, nil
}

// walkRecords checks that recs holds exactly h.NumRecords records with
// offset deltas 0 to n-1 and nothing after them, and gathers their stats.
// With requireKeys a record with a null key is ErrInvalidRecord.
func walkRecords(h Header, recs []byte, requireKeys bool) (Stats, error) {
	st := Stats{MinTimestamp: noTimestamp, MaxTimestamp: noTimestamp, RecordsBytes: len(recs)}
	n := h.NumRecords
	if int64(n) > int64(len(recs)/minRecordSize) {
		return st, fmt.Errorf("%d records cannot fit in %d bytes: %w", n, len(recs), ErrInvalidRecord)
	}
	logAppend := h.TimestampType() == 1
	for i := range n {
		_, rest, delta, tsDelta, err := nextRecord(recs)
		if err != nil {
			return st, fmt.Errorf("record %d: %w", i, err)
		}
		if delta != i {
			return st, fmt.Errorf("record %d has offset delta %d: %w", i, delta, ErrInvalidRecord)
		}
		if requireKeys && keyIsNull(recs) {
			return st, fmt.Errorf("record %d has a null key, which a compacted topic refuses: %w", i, ErrInvalidRecord)
		}
		ts := h.FirstTimestamp + tsDelta
		if logAppend {
			ts = h.MaxTimestamp
		}
		if ts != noTimestamp {
			if st.MinTimestamp == noTimestamp || ts < st.MinTimestamp {
				st.MinTimestamp = ts
			}
			if st.MaxTimestamp == noTimestamp || ts > st.MaxTimestamp {
				st.MaxTimestamp = ts
			}
		}
		recs = rest
	}
	if len(recs) != 0 {
		return st, fmt.Errorf("%d bytes after the last of %d records: %w", len(recs), n, ErrInvalidRecord)
	}
	return st, nil
}

// nextRecord splits the first record off recs and checks that its fields
// parse and end exactly where its length says, the way Kafka's
// DefaultRecord.readFrom does. rec includes the length prefix, so it can be
// handed to kmsg.Record.ReadFrom. Errors wrap ErrInvalidRecord.
func nextRecord(recs []byte) (rec, rest []byte, offsetDelta int32, timestampDelta int64, err error) {
	length, n := kbin.Varint(recs)
	if n <= 0 {
		return nil, nil, 0, 0, fmt.Errorf("bad length varint: %w", ErrInvalidRecord)
	}
	if length < minRecordSize-1 || int64(length) > int64(len(recs)-n) {
		return nil, nil, 0, 0, fmt.Errorf("length %d with %d bytes left: %w", length, len(recs)-n, ErrInvalidRecord)
	}
	end := n + int(length)
	r := kbin.Reader{Src: recs[n:end]}
	r.Int8() // attributes: unused by v2 records
	timestampDelta = r.Varlong()
	offsetDelta = r.Varint()
	r.VarintBytes() // key; any negative length is null, as in Kafka
	r.VarintBytes() // value
	headers := r.Varint()
	if headers < 0 || int64(headers) > int64(len(r.Src)/2) { // a header takes at least 2 bytes
		return nil, nil, 0, 0, fmt.Errorf("header count %d: %w", headers, ErrInvalidRecord)
	}
	for range headers {
		kl := r.Varint()
		if kl < 0 {
			return nil, nil, 0, 0, fmt.Errorf("header key length %d: %w", kl, ErrInvalidRecord)
		}
		r.Span(int(kl))
		r.VarintBytes() // header value; negative is null
	}
	if !r.Ok() {
		return nil, nil, 0, 0, fmt.Errorf("fields run past the record's length %d: %w", length, ErrInvalidRecord)
	}
	if len(r.Src) != 0 {
		return nil, nil, 0, 0, fmt.Errorf("%d bytes left inside the record's length %d: %w", len(r.Src), length, ErrInvalidRecord)
	}
	return recs[:end:end], recs[end:], offsetDelta, timestampDelta, nil
}

// keyIsNull reports whether the record at the start of recs (which
// nextRecord has walked) has a null key.
func keyIsNull(recs []byte) bool {
	r := kbin.Reader{Src: recs}
	r.Varint() // length
	r.Int8()   // attributes
	r.Varlong()
	r.Varint()
	return r.Varint() < 0 && r.Ok()
}
