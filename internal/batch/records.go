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
	if len(b) > offMagic && int8(b[offMagic]) != magicV2 {
		return Header{}, nil, fmt.Errorf("magic %d: %w", int8(b[offMagic]), ErrUnsupportedMagic)
	}
	h, err := ParseHeader(b)
	if err != nil {
		return h, nil, err
	}
	if h.Size() != len(b) {
		return h, nil, fmt.Errorf("batch is %d bytes but its length says %d: %w", len(b), h.Size(), ErrCorrupt)
	}
	if crc := crc32.Checksum(b[offAttributes:], castagnoli); crc != h.CRC {
		return h, nil, fmt.Errorf("crc mismatch: header %08x, computed %08x: %w", h.CRC, crc, ErrCorrupt)
	}
	if !h.Codec().valid() {
		return h, nil, fmt.Errorf("unknown compression codec %d: %w", h.Codec(), ErrCorrupt)
	}
	if h.NumRecords < 0 {
		return h, nil, fmt.Errorf("record count %d: %w", h.NumRecords, ErrInvalidRecord)
	}
	data := b[HeaderSize:]
	if h.Codec() != CodecNone {
		if data, err = decompress(h.Codec(), nil, data); err != nil {
			return h, nil, fmt.Errorf("%s records: %w: %w", h.Codec(), err, ErrCorrupt)
		}
	}
	if int64(h.NumRecords) > int64(len(data)/minRecordSize) {
		return h, nil, fmt.Errorf("%d records cannot fit in %d bytes: %w", h.NumRecords, len(data), ErrInvalidRecord)
	}
	if h.NumRecords == 0 && len(data) == 0 {
		return h, nil, nil
	}

	logAppend := h.TimestampType() == 1
	out := make([]Record, h.NumRecords)
	var kr kmsg.Record // reused: ReadFrom keeps the header slice's capacity
	for i := range out {
		rec, rest, delta, err := nextRecord(data)
		if err != nil {
			return h, nil, fmt.Errorf("record %d: %w", i, err)
		}
		if err := kr.ReadFrom(rec); err != nil { // cannot fail: nextRecord walked the same fields
			return h, nil, fmt.Errorf("record %d: %w: %w", i, err, ErrInvalidRecord)
		}
		r := &out[i]
		r.Offset = h.BaseOffset + int64(delta)
		r.Timestamp = h.FirstTimestamp + kr.TimestampDelta64
		if logAppend {
			r.Timestamp = h.MaxTimestamp
		}
		r.Key, r.Value = kr.Key, kr.Value
		if len(kr.Headers) > 0 {
			r.Headers = make([]RecordHeader, len(kr.Headers))
			for j, kh := range kr.Headers {
				r.Headers[j] = RecordHeader{Key: kh.Key, Value: kh.Value}
			}
		}
		data = rest
	}
	if len(data) != 0 {
		return h, nil, fmt.Errorf("%d bytes after the last of %d records: %w", len(data), h.NumRecords, ErrInvalidRecord)
	}
	return h, out, nil
}
