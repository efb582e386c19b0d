package batch

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// FilterRecord is what Filter's keep function sees of one record.
type FilterRecord struct {
	Offset    int64  // BaseOffset + the record's offset delta
	Timestamp int64  // as Records reports it
	Key       []byte // nil: a null key; valid only during the call
	Null      bool   // the value is null (a tombstone)
	Size      int    // the record's encoded size
}

// Filter rewrites one stored batch b keeping only the records for which
// keep returns true, the way Kafka's log cleaner rewrites a batch
// (MemoryRecords.filterTo):
//
//   - the kept records are copied byte for byte (their offset and
//     timestamp deltas, key, value and headers unchanged), so each keeps its
//     offset and timestamp;
//   - the header keeps BaseOffset and LastOffsetDelta (Kafka's
//     overrideLastOffset), so the batch still spans the offsets it did and
//     a record's sequence stays BaseSequence + its offset delta; producer
//     id, epoch, base sequence, partition leader epoch and the attributes
//     (codec, timestamp type, transactional, control) are kept;
//   - NumRecords is the kept count; MaxTimestamp is the largest kept
//     timestamp (for a LogAppendTime batch it stays, since it is every
//     record's timestamp); FirstTimestamp stays, the deltas being relative
//     to it; a compressed batch is recompressed with its codec; Length and
//     the CRC are recomputed.
//
// It returns b itself when every record is kept (no copy) and nil with
// kept 0 when none is: the caller drops the batch (Kafka keeps an empty
// batch only to remember a producer's last sequence, which this broker
// keeps in its metadata store instead). b must be one whole v2 batch; its
// CRC is checked first.
func Filter(b []byte, keep func(FilterRecord) bool) (out []byte, kept int, err error) {
	return FilterHorizon(b, noTimestamp, keep)
}

// FilterHorizon is Filter that also writes a delete horizon, as Kafka's
// cleaner does since KIP-534 (MemoryRecords.filterTo): when horizon is not
// -1, the batch has no delete horizon yet (Header.DeleteHorizon) and a
// kept record is a tombstone, the returned batch has attribute bit 6 set
// and FirstTimestamp = horizon, and each kept record's timestamp delta is
// recomputed relative to it (old FirstTimestamp + old delta - horizon, so
// possibly negative), so every record keeps its timestamp; MaxTimestamp
// stays the largest kept timestamp. A batch that has a horizon keeps it.
func FilterHorizon(b []byte, horizon int64, keep func(FilterRecord) bool) (out []byte, kept int, err error) {
	h, err := ParseHeader(b)
	if err != nil {
		return nil, 0, err
	}
	if h.Magic != magicV2 {
		return nil, 0, fmt.Errorf("magic %d: %w", h.Magic, ErrUnsupportedMagic)
	}
	if h.Size() != len(b) {
		return nil, 0, fmt.Errorf("batch is %d bytes but its length says %d: %w", len(b), h.Size(), ErrCorrupt)
	}
	if crc := crc32.Checksum(b[offAttributes:], castagnoli); crc != h.CRC {
		return nil, 0, fmt.Errorf("crc mismatch: header %08x, computed %08x: %w", h.CRC, crc, ErrCorrupt)
	}
	if !h.Codec().valid() {
		return nil, 0, fmt.Errorf("unknown compression codec %d: %w", h.Codec(), ErrCorrupt)
	}
	data := b[HeaderSize:]
	var buf *[]byte
	if h.Codec() != CodecNone {
		buf = getScratch()
		defer putScratch(buf)
		if data, err = decompressRecords(h, (*buf)[:0], data, MaxDecompressedSize); err != nil {
			return nil, 0, err
		}
		*buf = data
	}
	logAppend := h.TimestampType() == 1
	maxTs := noTimestamp
	var kept0 [][]byte
	var deltas []int64 // kept records' timestamp deltas
	keptNull := false
	var kr kmsg.Record
	rest := data
	for i := int32(0); i < h.NumRecords; i++ {
		rec, next, delta, tsDelta, err := nextRecord(rest)
		if err != nil {
			return nil, 0, fmt.Errorf("record %d: %w", i, err)
		}
		if err := kr.ReadFrom(rec); err != nil {
			return nil, 0, fmt.Errorf("record %d: %w: %w", i, err, ErrInvalidRecord)
		}
		ts := h.FirstTimestamp + tsDelta
		if logAppend {
			ts = h.MaxTimestamp
		}
		if keep(FilterRecord{Offset: h.BaseOffset + int64(delta), Timestamp: ts, Key: kr.Key, Null: kr.Value == nil, Size: len(rec)}) {
			kept0 = append(kept0, rec)
			deltas = append(deltas, tsDelta)
			keptNull = keptNull || kr.Value == nil
			if ts != noTimestamp && (maxTs == noTimestamp || ts > maxTs) {
				maxTs = ts
			}
		}
		rest = next
	}
	if len(rest) != 0 {
		return nil, 0, fmt.Errorf("%d bytes after the last of %d records: %w", len(rest), h.NumRecords, ErrInvalidRecord)
	}
	_, hasHorizon := h.DeleteHorizon()
	setHorizon := horizon != noTimestamp && !hasHorizon && keptNull
	switch {
	case len(kept0) == 0:
		return nil, 0, nil
	case len(kept0) == int(h.NumRecords) && !setHorizon:
		return b, len(kept0), nil
	}
	var recs []byte
	for i, r := range kept0 {
		if !setHorizon {
			recs = append(recs, r...)
			continue
		}
		// length varint, attributes int8, timestamp delta varlong, rest.
		_, n := kbin.Varint(r)
		_, m := kbin.Varlong(r[n+1:])
		var body []byte
		body = append(body, r[n])
		body = kbin.AppendVarlong(body, h.FirstTimestamp+deltas[i]-horizon)
		body = append(body, r[n+1+m:]...)
		recs = kbin.AppendVarint(recs, int32(len(body)))
		recs = append(recs, body...)
	}
	if h.Codec() != CodecNone {
		comp, err := compress(h.Codec(), nil, recs)
		if err != nil {
			return nil, 0, fmt.Errorf("%s: %w: %w", h.Codec(), err, ErrCorrupt)
		}
		recs = comp
	}
	if len(recs) > math.MaxInt32-minLength {
		return nil, 0, fmt.Errorf("records of %d bytes: %w", len(recs), ErrTooLarge)
	}
	out = make([]byte, HeaderSize, HeaderSize+len(recs))
	copy(out, b[:HeaderSize])
	if setHorizon {
		attrs := binary.BigEndian.Uint16(out[offAttributes:])
		binary.BigEndian.PutUint16(out[offAttributes:], attrs|attrDeleteHorizon)
		binary.BigEndian.PutUint64(out[offMaxTimestamp-8:], uint64(horizon))
	}
	out = append(out, recs...)
	binary.BigEndian.PutUint32(out[offLength:], uint32(minLength+len(recs)))
	if !logAppend {
		binary.BigEndian.PutUint64(out[offMaxTimestamp:], uint64(maxTs))
	}
	binary.BigEndian.PutUint32(out[HeaderSize-4:], uint32(len(kept0)))
	setCRC(out)
	return out, len(kept0), nil
}
