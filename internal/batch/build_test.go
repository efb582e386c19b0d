package batch

import (
	"bytes"
	stdgzip "compress/gzip"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestBuildRecordsRoundTrip(t *testing.T) {
	t.Parallel()
	const ts = 1_700_000_000_000
	cases := []struct {
		name string
		recs []Record
	}{
		{"one record", []Record{{Timestamp: ts, Key: []byte("k"), Value: []byte("v")}}},
		{"null key", []Record{{Timestamp: ts, Value: []byte("v")}}},
		{"null value", []Record{{Timestamp: ts, Key: []byte("k")}}},
		{"empty key and value", []Record{{Timestamp: ts, Key: []byte{}, Value: []byte{}}}},
		{"headers", []Record{{Timestamp: ts, Key: []byte("k"), Value: []byte("v"), Headers: []RecordHeader{
			{Key: "trace", Value: []byte("abc")},
			{Key: "trace", Value: []byte("def")}, // duplicate keys keep their order
			{Key: "nil", Value: nil},
			{Key: "empty", Value: []byte{}},
			{Key: "", Value: []byte("empty key")},
		}}}},
		{"timestamps before, after and equal to the first", []Record{
			{Timestamp: ts, Value: []byte("a")},
			{Timestamp: ts - 5000, Value: []byte("b")},
			{Timestamp: ts + 1<<40, Value: []byte("c")},
			{Timestamp: ts, Value: []byte("d")},
		}},
		{"1000 records", sizedRecords(1000, 100)},
		{"large value", []Record{{Timestamp: ts, Value: textValue(1, 3<<20)}}},
	}
	for _, c := range allCodecs {
		for _, tc := range cases {
			t.Run(c.String()+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				opts := DefaultBuildOptions()
				opts.Codec = c
				b := mustBuild(t, tc.recs, opts)
				h, err := Validate(b, 0, true)
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				if h.Codec() != c || h.NumRecords != int32(len(tc.recs)) || h.ProducerID != -1 ||
					h.ProducerEpoch != -1 || h.BaseSequence != -1 || h.PartitionLeaderEpoch != -1 || h.BaseOffset != 0 {
					t.Fatalf("header %+v", h)
				}
				maxTs := tc.recs[0].Timestamp
				for _, r := range tc.recs {
					maxTs = max(maxTs, r.Timestamp)
				}
				if h.FirstTimestamp != tc.recs[0].Timestamp || h.MaxTimestamp != maxTs {
					t.Errorf("timestamps first %d max %d, want %d %d", h.FirstTimestamp, h.MaxTimestamp, tc.recs[0].Timestamp, maxTs)
				}
				h2, got, err := Records(b)
				if err != nil {
					t.Fatalf("Records: %v", err)
				}
				if h2 != h {
					t.Errorf("Records header %+v, Validate header %+v", h2, h)
				}
				want := make([]Record, len(tc.recs))
				for i, r := range tc.recs {
					want[i] = r
					want[i].Offset = int64(i)
				}
				if !reflect.DeepEqual(got, want) {
					for i := range got {
						if !reflect.DeepEqual(got[i], want[i]) {
							t.Fatalf("record %d:\n got %+v\nwant %+v", i, got[i], want[i])
						}
					}
					t.Fatalf("got %d records, want %d", len(got), len(want))
				}
			})
		}
	}
}

func TestBuildZeroTimestampIsNow(t *testing.T) {
	t.Parallel()
	before := time.Now().UnixMilli()
	b := mustBuild(t, []Record{{Value: []byte("a")}, {Timestamp: 5, Value: []byte("b")}, {Value: []byte("c")}}, DefaultBuildOptions())
	after := time.Now().UnixMilli()
	h, recs, err := Records(b)
	if err != nil {
		t.Fatal(err)
	}
	if h.FirstTimestamp < before || h.FirstTimestamp > after {
		t.Errorf("FirstTimestamp %d not in [%d, %d]", h.FirstTimestamp, before, after)
	}
	if recs[0].Timestamp != h.FirstTimestamp || recs[1].Timestamp != 5 || recs[2].Timestamp != h.FirstTimestamp {
		t.Errorf("timestamps %d %d %d", recs[0].Timestamp, recs[1].Timestamp, recs[2].Timestamp)
	}
	if h.MaxTimestamp != h.FirstTimestamp {
		t.Errorf("MaxTimestamp %d, want %d", h.MaxTimestamp, h.FirstTimestamp)
	}
}

func TestBuildProducerFields(t *testing.T) {
	t.Parallel()
	recs := sizedRecords(2, 5)
	b := mustBuild(t, recs, BuildOptions{Codec: CodecSnappy, ProducerID: 0, ProducerEpoch: 0, BaseSequence: 0})
	h, err := Validate(b, 0, true)
	if err != nil {
		t.Fatal(err)
	}
	if h.ProducerID != 0 || h.ProducerEpoch != 0 || h.BaseSequence != 0 || h.IsTransactional() {
		t.Errorf("header %+v", h)
	}
	b = mustBuild(t, recs, BuildOptions{ProducerID: 9, ProducerEpoch: 1, BaseSequence: 100, Transactional: true})
	if h, _ = Validate(b, 0, true); h.ProducerID != 9 || h.BaseSequence != 100 || !h.IsTransactional() {
		t.Errorf("header %+v", h)
	}
	// No producer: the other two fields are ignored.
	b = mustBuild(t, recs, BuildOptions{ProducerID: -5, ProducerEpoch: 3, BaseSequence: 3})
	if h, _ = Validate(b, 0, true); h.ProducerID != -1 || h.ProducerEpoch != -1 || h.BaseSequence != -1 {
		t.Errorf("header %+v", h)
	}

	for _, tc := range []struct {
		name string
		recs []Record
		opts BuildOptions
	}{
		{"no records", nil, DefaultBuildOptions()},
		{"unknown codec", recs, BuildOptions{Codec: 5, ProducerID: -1}},
		{"transactional without producer", recs, BuildOptions{ProducerID: -1, Transactional: true}},
		{"producer without sequence", recs, BuildOptions{ProducerID: 4, ProducerEpoch: 0, BaseSequence: -1}},
		{"producer without epoch", recs, BuildOptions{ProducerID: 4, ProducerEpoch: -1, BaseSequence: 0}},
	} {
		if _, err := Build(tc.recs, tc.opts); !errors.Is(err, ErrInvalidRecord) {
			t.Errorf("%s: err = %v, want ErrInvalidRecord", tc.name, err)
		}
	}
}

// TestBuildDecodesWithKmsg checks Build's output against kmsg and
// independent decompressors: the batch frame and CRC, and every record.
func TestBuildDecodesWithKmsg(t *testing.T) {
	t.Parallel()
	in := []Record{
		{Timestamp: 1000, Key: []byte("a"), Value: []byte("1"), Headers: []RecordHeader{{Key: "x", Value: nil}}},
		{Timestamp: 900, Value: nil},
		{Timestamp: 1500, Key: []byte{}, Value: textValue(3, 200_000)}, // several lz4 blocks
	}
	for _, c := range allCodecs {
		t.Run(c.String(), func(t *testing.T) {
			t.Parallel()
			b := mustBuild(t, in, BuildOptions{Codec: c, ProducerID: -1})
			var rb kmsg.RecordBatch
			if err := rb.ReadFrom(b); err != nil {
				t.Fatal(err)
			}
			if int(rb.Length)+12 != len(b) || rb.Magic != 2 || rb.NumRecords != 3 || rb.LastOffsetDelta != 2 ||
				rb.FirstTimestamp != 1000 || rb.MaxTimestamp != 1500 || rb.Attributes != int16(c) {
				t.Fatalf("kmsg batch %+v", rb)
			}
			if crc := int32(crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli))); crc != rb.CRC {
				t.Fatalf("crc %08x, batch says %08x", crc, rb.CRC)
			}
			raw := independentDecompress(t, c, rb.Records)
			for i := range in {
				var kr kmsg.Record
				if err := kr.ReadFrom(raw); err != nil {
					t.Fatalf("record %d: %v", i, err)
				}
				n := int(kr.Length) + len(binary.AppendVarint(nil, int64(kr.Length)))
				raw = raw[n:]
				if kr.OffsetDelta != int32(i) || rb.FirstTimestamp+kr.TimestampDelta64 != in[i].Timestamp ||
					!reflect.DeepEqual(kr.Key, in[i].Key) || !reflect.DeepEqual(kr.Value, in[i].Value) ||
					len(kr.Headers) != len(in[i].Headers) {
					t.Fatalf("record %d: %+v", i, kr)
				}
			}
			if len(raw) != 0 {
				t.Fatalf("%d bytes after the records", len(raw))
			}
		})
	}
}

// independentDecompress uses other code paths than the package's:
// the standard library's gzip, the snappy package, lz4 and zstd streams.
func independentDecompress(t *testing.T, c Codec, src []byte) []byte {
	t.Helper()
	var r io.Reader
	switch c {
	case CodecNone:
		return src
	case CodecGzip:
		zr, err := stdgzip.NewReader(bytes.NewReader(src))
		if err != nil {
			t.Fatal(err)
		}
		r = zr
	case CodecSnappy:
		out, err := snappy.Decode(nil, src)
		if err != nil {
			t.Fatal(err)
		}
		return out
	case CodecLZ4:
		r = lz4.NewReader(bytes.NewReader(src))
	case CodecZstd:
		zr, err := zstd.NewReader(bytes.NewReader(src))
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		r = zr
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRecordsReadsForeignBatches decodes batches framed with kmsg and
// compressed the ways other clients do it.
func TestRecordsReadsForeignBatches(t *testing.T) {
	t.Parallel()
	const n = 50
	raw := kmsgRecords(simpleKmsgRecords(n))
	big := kmsgRecords(simpleKmsgRecords(5000)) // spans several 32 KiB xerial blocks

	cases := []struct {
		name  string
		codec Codec
		n     int32
		data  []byte
	}{
		{"uncompressed", CodecNone, n, raw},
		{"stdlib gzip", CodecGzip, n, stdGzip(t, raw, stdgzip.BestCompression)},
		{"stdlib gzip no compression", CodecGzip, n, stdGzip(t, raw, stdgzip.NoCompression)},
		{"raw snappy (franz-go, librdkafka)", CodecSnappy, n, snappy.Encode(nil, raw)},
		{"xerial snappy (java)", CodecSnappy, n, xerial(raw, 32<<10)},
		{"xerial snappy, many blocks", CodecSnappy, 5000, xerial(big, 32<<10)},
		{"lz4 4MB blocks, checksums, content size", CodecLZ4, n, lz4Frame(t, raw, lz4.BlockSizeOption(lz4.Block4Mb),
			lz4.BlockChecksumOption(true), lz4.SizeOption(uint64(len(raw))), lz4.CompressionLevelOption(lz4.Level9))},
		{"lz4 64KB blocks, no checksum", CodecLZ4, 5000, lz4Frame(t, big, lz4.BlockSizeOption(lz4.Block64Kb), lz4.ChecksumOption(false))},
		{"zstd stream", CodecZstd, 5000, zstdStream(t, big)},
		{"zstd best", CodecZstd, n, zstdAll(t, raw, zstd.SpeedBestCompression)},
		{"zstd stream, 8 MiB window (zstd-jni at high levels)", CodecZstd, n, zstdWindowed(t, raw, 8<<20)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := kmsgBatch(tc.codec, tc.n, tc.data, func(rb *kmsg.RecordBatch) { rb.FirstOffset = 500 })
			if _, err := Validate(b, 0, true); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			// The produce path: bounded by a small topic's limits, zstd
			// decoded as a stream.
			if _, _, err := Check(b, Limits{MaxBatchBytes: 1 << 20, MaxRecordsBytes: 512 << 10}); err != nil {
				t.Fatalf("Check: %v", err)
			}
			h, recs, err := Records(b)
			if err != nil {
				t.Fatalf("Records: %v", err)
			}
			if len(recs) != int(tc.n) {
				t.Fatalf("%d records, want %d", len(recs), tc.n)
			}
			for i, r := range recs {
				if r.Offset != 500+int64(i) || r.Timestamp != h.FirstTimestamp+int64(i) ||
					string(r.Key) != "k"+strconv.Itoa(i) || string(r.Value) != "value "+strconv.Itoa(i) ||
					len(r.Headers) != 1 || r.Headers[0].Key != "h" || string(r.Headers[0].Value) != "v" {
					t.Fatalf("record %d: %+v", i, r)
				}
			}
		})
	}
}

func stdGzip(t *testing.T, src []byte, level int) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := stdgzip.NewWriterLevel(&buf, level)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(src); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// xerial frames src the way snappy-java's SnappyOutputStream does.
func xerial(src []byte, blockSize int) []byte {
	out := append([]byte{}, xerialMagic...)
	out = binary.BigEndian.AppendUint32(out, 1) // version
	out = binary.BigEndian.AppendUint32(out, 1) // minimum compatible version
	for len(src) > 0 {
		n := min(blockSize, len(src))
		block := snappy.Encode(nil, src[:n])
		out = binary.BigEndian.AppendUint32(out, uint32(len(block)))
		out = append(out, block...)
		src = src[n:]
	}
	return out
}

func lz4Frame(t *testing.T, src []byte, opts ...lz4.Option) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := lz4.NewWriter(&buf)
	if err := w.Apply(opts...); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(src); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func zstdStream(t *testing.T, src []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := zstd.NewWriter(&buf, zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(1<<15))
	if err != nil {
		t.Fatal(err)
	}
	// Several writes and flushes: many blocks, no content size in the frame.
	for len(src) > 0 {
		n := min(10_000, len(src))
		if _, err := w.Write(src[:n]); err != nil {
			t.Fatal(err)
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		src = src[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// zstdWindowed is one streamed frame (no content size) declaring window.
func zstdWindowed(t *testing.T, src []byte, window int) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := zstd.NewWriter(&buf, zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(window))
	if err != nil {
		t.Fatal(err)
	}
	// Written in flushed pieces, as a stream: no content size.
	for len(src) > 0 {
		n := min(100, len(src))
		if _, err := w.Write(src[:n]); err != nil {
			t.Fatal(err)
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		src = src[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	var fh zstd.Header
	if err := fh.Decode(buf.Bytes()); err != nil || fh.HasFCS || fh.WindowSize != uint64(window) {
		t.Fatalf("frame header %+v, %v", fh, err)
	}
	return buf.Bytes()
}

func zstdAll(t *testing.T, src []byte, level zstd.EncoderLevel) []byte {
	t.Helper()
	e, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(level))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	return e.EncodeAll(src, nil)
}

// TestDecompressionIsBounded feeds each codec data that decompresses past
// MaxDecompressedSize: Validate and Records must refuse it as too large.
func TestDecompressionIsBounded(t *testing.T) {
	t.Parallel()
	zeros := make([]byte, MaxDecompressedSize+1)
	// One record whose value is the zeros, so that what decompresses is a
	// plausible record area.
	raw := kmsgRecords([]kmsg.Record{{Value: zeros}})
	cases := []struct {
		codec Codec
		data  []byte
	}{
		{CodecGzip, stdGzip(t, raw, stdgzip.BestSpeed)},
		{CodecSnappy, snappy.Encode(nil, raw)},
		{CodecSnappy, xerial(raw, 1<<20)},
		{CodecLZ4, lz4Frame(t, raw)},
		{CodecZstd, zstdAll(t, raw, zstd.SpeedFastest)},
		{CodecZstd, zstdStream(t, raw)},
	}
	for _, tc := range cases {
		b := kmsgBatch(tc.codec, 1, tc.data, nil)
		if _, err := Validate(b, 0, false); err != nil {
			t.Errorf("%s: shallow Validate: %v", tc.codec, err)
		}
		if _, err := Validate(b, 0, true); !errors.Is(err, ErrTooLarge) {
			t.Errorf("%s (%d bytes): deep Validate: %v, want the decompression limit", tc.codec, len(tc.data), err)
		}
		if _, _, err := Records(b); !errors.Is(err, ErrTooLarge) {
			t.Errorf("%s: Records: %v, want the decompression limit", tc.codec, err)
		}
	}
}

// TestForgedSizesDoNotAllocate checks that a tiny batch claiming a huge
// decompressed size is refused without allocating for the claim.
func TestForgedSizesDoNotAllocate(t *testing.T) {
	t.Parallel()
	raw := kmsgRecords(simpleKmsgRecords(3))
	snap := snappy.Encode(nil, raw)
	// Replace the snappy length prefix with a claim of 60 MiB.
	n, k := binary.Uvarint(snap)
	if n != uint64(len(raw)) {
		t.Fatal("unexpected snappy prefix")
	}
	forged := append(binary.AppendUvarint(nil, 60<<20), snap[k:]...)
	if _, err := s2.DecodedLen(forged); err != nil {
		t.Fatal(err)
	}
	gz := stdGzip(t, raw, stdgzip.DefaultCompression)
	binary.LittleEndian.PutUint32(gz[len(gz)-4:], 60<<20) // ISIZE
	for _, tc := range []struct {
		codec Codec
		data  []byte
	}{{CodecSnappy, forged}, {CodecGzip, gz}} {
		b := kmsgBatch(tc.codec, 3, tc.data, nil)
		if _, err := Validate(b, 0, true); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", tc.codec, err)
		}
	}
	// Sizes: the forged snappy claim is refused before decoding.
	if _, err := decompress(CodecSnappy, nil, forged, MaxDecompressedSize); err == nil {
		t.Error("forged snappy claim accepted")
	}
	out, _ := decompress(CodecGzip, nil, gz, MaxDecompressedSize)
	if cap(out) > 1<<20 {
		t.Errorf("forged gzip ISIZE made a %d byte buffer", cap(out))
	}
}

// A zstd frame of a few bytes that declares a content size near the bound
// sizes its output from the input it really has, not from the claim.
func TestForgedZstdContentSizeDoesNotAllocate(t *testing.T) {
	t.Parallel()
	frame := []byte{0x28, 0xb5, 0x2f, 0xfd, 0xe0} // magic; single segment, 8-byte content size
	frame = binary.LittleEndian.AppendUint64(frame, 30<<20)
	frame = append(frame, 0x09, 0x00, 0x00, 'x') // one raw block of one byte, the last
	for _, limit := range []int{32 << 20, MaxDecompressedSize} {
		out, err := decompress(CodecZstd, nil, frame, limit)
		if err == nil {
			t.Errorf("limit %d: a frame one byte long claiming 30 MiB decoded", limit)
		}
		if limit < MaxDecompressedSize && cap(out) > 1<<20 {
			t.Errorf("limit %d: forged zstd content size made a %d byte buffer", limit, cap(out))
		}
	}
}
