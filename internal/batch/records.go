package batch

import (
	"fmt"
	"hash/crc32"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Records decodes every record of one batch b (exactly one batch, as stored
// or as returned by Split), decompressing as needed. Offsets are absolute
// (BaseOffset + the record's offset delta) and so are timestamps
// (FirstTimestamp + delta); in a LogAppendTime batch every record's
// timestamp is MaxTimestamp. Control batches return their records too:
// callers check Header.IsControl.
//
// Key, Value and header values point into b for an uncompressed batch and
// into one freshly allocated buffer for a compressed one: they stay valid as
// long as b is not overwritten; copy them if b's memory is reused.
//
// Records checks the framing, the CRC and the record count like Validate,
// but not offset delta == index, since a compacted batch keeps its offsets
// with records removed; it fails on anything Validate with deep set fails
// on in the records area.
func Records(b []byte) (Header, []Record, error) {
	h, recs, _, err := decodeRecords(b, nil, nil)
	return h, recs, err
}

// Decoder decodes batches as Records does, but decompresses into one buffer
// it reuses (taken from a process-wide pool), so a reader decoding many
// batches for one request holds one batch's decompressed records at a
// time instead of all of them. The Key, Value and header values of the
// records Decode returns for a compressed batch point into that buffer:
// they are valid until the next Decode or Release, so copy what you keep.
// The returned slice of records (and their header slices) is reused as
// well: copy the Record values, not the slice. A Decoder is not safe for
// concurrent use; its zero value is ready.
type Decoder struct {
	buf  *[]byte
	recs []Record
	hdrs []RecordHeader
}

// Decode decodes b like Records. size is the bytes the records took once
// decompressed (len(b) minus the header for an uncompressed batch): what
// decoding b held in memory.
func (d *Decoder) Decode(b []byte) (h Header, recs []Record, size int, err error) {
	if d.buf == nil {
		d.buf = getScratch()
	}
	h, recs, data, err := decodeRecords(b, (*d.buf)[:0], d)
	if cap(recs) <= maxPooledRecords {
		d.recs = recs[:0]
	}
	if h.Codec() != CodecNone && cap(data) > 0 {
		if cap(data) > maxPooledScratch {
			// Do not keep a huge batch's buffer beyond this batch.
			*d.buf = nil
		} else {
			*d.buf = data[:0]
		}
	}
	return h, recs, len(data), err
}

// Release returns the decoder's buffer to the pool; records from earlier
// Decode calls must no longer be used.
func (d *Decoder) Release() {
	if d.buf != nil {
		putScratch(d.buf)
		d.buf = nil
	}
}

// maxPooledRecords is the most records a Decoder keeps room for between
// batches.
const maxPooledRecords = 1 << 14

// decodeRecords is Records, decompressing into dst (nil: a fresh buffer);
// reuse (nil for none) lends its records and headers slices. data is the
// records area it decoded: b's, or the decompressed one.
func decodeRecords(b, dst []byte, reuse *Decoder) (h Header, out []Record, data []byte, err error) {
	if len(b) > offMagic && int8(b[offMagic]) != magicV2 {
		return Header{}, nil, nil, fmt.Errorf("magic %d: %w", int8(b[offMagic]), ErrUnsupportedMagic)
	}
	h, err = ParseHeader(b)
	if err != nil {
		return h, nil, nil, err
	}
	if h.Size() != len(b) {
		return h, nil, nil, fmt.Errorf("batch is %d bytes but its length says %d: %w", len(b), h.Size(), ErrCorrupt)
	}
	if crc := crc32.Checksum(b[offAttributes:], castagnoli); crc != h.CRC {
		return h, nil, nil, fmt.Errorf("crc mismatch: header %08x, computed %08x: %w", h.CRC, crc, ErrCorrupt)
	}
	if !h.Codec().valid() {
		return h, nil, nil, fmt.Errorf("unknown compression codec %d: %w", h.Codec(), ErrCorrupt)
	}
	if h.NumRecords < 0 {
		return h, nil, nil, fmt.Errorf("record count %d: %w", h.NumRecords, ErrInvalidRecord)
	}
	data = b[HeaderSize:]
	if h.Codec() != CodecNone {
		if data, err = decompressRecords(h, dst, data, MaxDecompressedSize); err != nil {
			return h, nil, data, err
		}
	}
	if int64(h.NumRecords) > int64(len(data)/minRecordSize) {
		return h, nil, data, fmt.Errorf("%d records cannot fit in %d bytes: %w", h.NumRecords, len(data), ErrInvalidRecord)
	}
	if h.NumRecords == 0 && len(data) == 0 {
		return h, nil, data, nil
	}

	logAppend := h.TimestampType() == 1
	var hdrs []RecordHeader // backing for the records' headers when reused
	if reuse != nil && cap(reuse.recs) >= int(h.NumRecords) {
		out = reuse.recs[:h.NumRecords]
		hdrs = reuse.hdrs[:0]
	} else {
		out = make([]Record, h.NumRecords)
	}
	var kr kmsg.Record // reused: ReadFrom keeps the header slice's capacity
	rest := data
	for i := range out {
		rec, next, delta, _, err := nextRecord(rest)
		if err != nil {
			return h, nil, data, fmt.Errorf("record %d: %w", i, err)
		}
		if err := kr.ReadFrom(rec); err != nil { // cannot fail: nextRecord walked the same fields
			return h, nil, data, fmt.Errorf("record %d: %w: %w", i, err, ErrInvalidRecord)
		}
		r := &out[i]
		r.Offset = h.BaseOffset + int64(delta)
		r.Timestamp = h.FirstTimestamp + kr.TimestampDelta64
		if logAppend {
			r.Timestamp = h.MaxTimestamp
		}
		r.Key, r.Value, r.Headers = kr.Key, kr.Value, nil
		if len(kr.Headers) > 0 {
			if reuse != nil {
				at := len(hdrs)
				for _, kh := range kr.Headers {
					hdrs = append(hdrs, RecordHeader{Key: kh.Key, Value: kh.Value})
				}
				r.Headers = hdrs[at:len(hdrs):len(hdrs)]
			} else {
				r.Headers = make([]RecordHeader, len(kr.Headers))
				for j, kh := range kr.Headers {
					r.Headers[j] = RecordHeader{Key: kh.Key, Value: kh.Value}
				}
			}
		}
		rest = next
	}
	if len(rest) != 0 {
		return h, nil, data, fmt.Errorf("%d bytes after the last of %d records: %w", len(rest), h.NumRecords, ErrInvalidRecord)
	}
	if reuse != nil && cap(hdrs) <= maxPooledRecords {
		reuse.hdrs = hdrs[:0]
	}
	return h, out, data, nil
}
