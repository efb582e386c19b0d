package batch

import (
	"fmt"
	"math"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// RecordHeader is one record header. Keys may repeat; a nil Value is a
// null header value.
type RecordHeader struct {
	Key   string
	Value []byte
}

// Record is one record as REST, gRPC and readers see it.
type Record struct {
	Offset    int64  // filled by Records (BaseOffset + delta); ignored by Build
	Timestamp int64  // ms since the epoch; 0 means "now" to Build
	Key       []byte // nil is a null key
	Value     []byte // nil is a null value (a tombstone); empty is not
	Headers   []RecordHeader
}

// BuildOptions says how Build writes a batch.
//
// The producer fields are written as given when ProducerID >= 0, and all
// three are written as -1 (no idempotence, what a plain producer sends) when
// ProducerID < 0. Producer id 0 is a real id, so the zero BuildOptions
// describes producer 0, epoch 0, sequence 0: start from DefaultBuildOptions
// unless the batch really belongs to an idempotent producer.
type BuildOptions struct {
	Codec         Codec
	ProducerID    int64 // < 0: no producer
	ProducerEpoch int16
	BaseSequence  int32
	Transactional bool // needs ProducerID >= 0
}

// DefaultBuildOptions is an uncompressed batch from no producer.
func DefaultBuildOptions() BuildOptions {
	return BuildOptions{Codec: CodecNone, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}
}

// Build encodes records (at least one) into one RecordBatch v2 with base
// offset 0, partition leader epoch -1, create-time timestamps, the codec
// and producer fields of opts, and the CRC set: the batch a Kafka producer
// would send, ready for Validate and the same path as client batches.
//
// A record whose Timestamp is 0 gets the current time (read once per
// call); FirstTimestamp is the first record's timestamp and each record
// stores its delta from it. Offset is ignored. Bad input (no records, an
// unknown codec, inconsistent producer fields) wraps ErrInvalidRecord; a
// batch whose size does not fit Kafka's int32 lengths wraps ErrTooLarge.
func Build(records []Record, opts BuildOptions) ([]byte, error) {
	if len(records) == 0 {
		return nil, fmt.Errorf("build: no records: %w", ErrInvalidRecord)
	}
	if len(records) > math.MaxInt32 {
		return nil, fmt.Errorf("build: %d records: %w", len(records), ErrTooLarge)
	}
	if !opts.Codec.valid() {
		return nil, fmt.Errorf("build: unknown codec %d: %w", opts.Codec, ErrInvalidRecord)
	}
	hdr := kmsg.RecordBatch{
		PartitionLeaderEpoch: noLeaderEpoch,
		Magic:                magicV2,
		Attributes:           int16(opts.Codec),
		LastOffsetDelta:      int32(len(records) - 1),
		ProducerID:           -1,
		ProducerEpoch:        -1,
		FirstSequence:        -1,
		NumRecords:           int32(len(records)),
	}
	if opts.ProducerID >= 0 {
		if opts.ProducerEpoch < 0 || opts.BaseSequence < 0 {
			return nil, fmt.Errorf("build: producer %d needs an epoch and base sequence >= 0, have %d and %d: %w",
				opts.ProducerID, opts.ProducerEpoch, opts.BaseSequence, ErrInvalidRecord)
		}
		hdr.ProducerID, hdr.ProducerEpoch, hdr.FirstSequence = opts.ProducerID, opts.ProducerEpoch, opts.BaseSequence
	}
	if opts.Transactional {
		if opts.ProducerID < 0 {
			return nil, fmt.Errorf("build: a transactional batch needs a producer id: %w", ErrInvalidRecord)
		}
		hdr.Attributes |= attrTransactional
	}

	now := time.Now().UnixMilli()
	first := timestamp(&records[0], now)
	hdr.FirstTimestamp, hdr.MaxTimestamp = first, first
	size, maxHeaders := 0, 0
	for i := range records {
		r := &records[i]
		ts := timestamp(r, now)
		hdr.MaxTimestamp = max(hdr.MaxTimestamp, ts)
		_, n, err := recordSize(r, ts-first, int32(i))
		if err != nil {
			return nil, fmt.Errorf("build: record %d: %w", i, err)
		}
		if size += n; size > math.MaxInt32-minLength {
			return nil, fmt.Errorf("build: records exceed %d bytes: %w", math.MaxInt32-minLength, ErrTooLarge)
		}
		maxHeaders = max(maxHeaders, len(r.Headers))
	}
	enc := recordEncoder{first: first, now: now, headers: make([]kmsg.Header, 0, maxHeaders)}

	if opts.Codec == CodecNone {
		// The size is known, so the records go straight after the header
		// in a buffer of exactly the batch's size.
		hdr.Length = int32(minLength + size)
		out, err := enc.appendRecords(hdr.AppendTo(make([]byte, 0, HeaderSize+size)), records)
		if err != nil {
			return nil, err
		}
		setCRC(out)
		return out, nil
	}

	rawBuf, compBuf := scratch.Get().(*[]byte), scratch.Get().(*[]byte)
	defer putScratch(rawBuf)
	defer putScratch(compBuf)
	raw, err := enc.appendRecords((*rawBuf)[:0], records)
	if err != nil {
		return nil, err
	}
	*rawBuf = raw
	comp, err := compress(opts.Codec, (*compBuf)[:0], raw)
	*compBuf = comp
	if err != nil {
		return nil, fmt.Errorf("build: %s: %w: %w", opts.Codec, err, ErrInvalidRecord)
	}
	if len(comp) > math.MaxInt32-minLength {
		return nil, fmt.Errorf("build: compressed records exceed %d bytes: %w", math.MaxInt32-minLength, ErrTooLarge)
	}
	hdr.Length = int32(minLength + len(comp))
	hdr.Records = comp
	out := hdr.AppendTo(make([]byte, 0, HeaderSize+len(comp)))
	setCRC(out)
	return out, nil
}

func putScratch(b *[]byte) {
	if cap(*b) <= maxPooledScratch {
		*b = (*b)[:0]
		scratch.Put(b)
	}
}

func timestamp(r *Record, now int64) int64 {
	if r.Timestamp == 0 {
		return now
	}
	return r.Timestamp
}

// recordSize returns the size of a record's body (what its length varint
// counts) and of the whole record, so a batch's Length is known before it
// is written. It mirrors what kmsg.Record.AppendTo writes.
func recordSize(r *Record, tsDelta int64, offsetDelta int32) (body, total int, err error) {
	body = 1 + kbin.VarlongLen(tsDelta) + kbin.VarintLen(offsetDelta) // attributes, deltas
	kl, err := bytesSize(r.Key, "key")
	if err != nil {
		return 0, 0, err
	}
	vl, err := bytesSize(r.Value, "value")
	if err != nil {
		return 0, 0, err
	}
	body += kl + vl + kbin.VarintLen(int32(len(r.Headers)))
	for i := range r.Headers {
		h := &r.Headers[i]
		if len(h.Key) > math.MaxInt32 {
			return 0, 0, fmt.Errorf("header key of %d bytes: %w", len(h.Key), ErrTooLarge)
		}
		hv, err := bytesSize(h.Value, "header value")
		if err != nil {
			return 0, 0, err
		}
		body += kbin.VarintLen(int32(len(h.Key))) + len(h.Key) + hv
	}
	if body > math.MaxInt32 {
		return 0, 0, fmt.Errorf("record of %d bytes: %w", body, ErrTooLarge)
	}
	return body, kbin.VarintLen(int32(body)) + body, nil
}

// bytesSize is the encoded size of a varint-length-prefixed nullable byte
// string.
func bytesSize(b []byte, what string) (int, error) {
	if b == nil {
		return 1, nil // varint -1
	}
	if len(b) > math.MaxInt32 {
		return 0, fmt.Errorf("%s of %d bytes: %w", what, len(b), ErrTooLarge)
	}
	return kbin.VarintLen(int32(len(b))) + len(b), nil
}

// recordEncoder appends records with kmsg, reusing one kmsg.Record and one
// header slice across the batch.
type recordEncoder struct {
	first, now int64
	rec        kmsg.Record
	headers    []kmsg.Header
}

// appendRecords appends the records, which recordSize has already checked.
// It fails only if recordSize and kmsg disagree on a record's size, which
// would be a bug here, but one that must not reach a partition.
func (e *recordEncoder) appendRecords(dst []byte, records []Record) ([]byte, error) {
	for i := range records {
		r := &records[i]
		delta := timestamp(r, e.now) - e.first
		body, total, _ := recordSize(r, delta, int32(i))
		e.headers = e.headers[:0]
		for _, h := range r.Headers {
			e.headers = append(e.headers, kmsg.Header{Key: h.Key, Value: h.Value})
		}
		e.rec = kmsg.Record{
			Length:           int32(body),
			TimestampDelta64: delta,
			TimestampDelta:   int32(delta),
			OffsetDelta:      int32(i),
			Key:              r.Key,
			Value:            r.Value,
			Headers:          e.headers,
		}
		at := len(dst)
		dst = e.rec.AppendTo(dst)
		if len(dst)-at != total {
			return nil, fmt.Errorf("build: record %d encoded to %d bytes, sized as %d: %w", i, len(dst)-at, total, ErrInvalidRecord)
		}
	}
	return dst, nil
}
