package batch

import (
	"bytes"
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestValidateRejects(t *testing.T) {
	t.Parallel()
	good := mustBuild(t, sizedRecords(3, 40), DefaultBuildOptions())
	zstdGood := mustBuild(t, sizedRecords(3, 40), BuildOptions{Codec: CodecZstd, ProducerID: -1})

	// edit returns a changed copy of b; withCRC also fixes the CRC, so the
	// check under test is the one that fails.
	edit := func(b []byte, f func([]byte) []byte) []byte { return f(bytes.Clone(b)) }
	withCRC := func(b []byte, f func([]byte)) []byte {
		c := bytes.Clone(b)
		f(c)
		setCRC(c)
		return c
	}
	uncompressed := func(recs []byte, n int32) []byte { return kmsgBatch(CodecNone, n, recs, nil) }
	threeRecs := kmsgRecords(simpleKmsgRecords(3))

	cases := []struct {
		name    string
		b       []byte
		max     int
		shallow error // want from Validate(deep=false)
		deep    error // want from Validate(deep=true)
	}{
		{"crc: flipped record byte", edit(good, func(b []byte) []byte { b[len(b)-3] ^= 1; return b }), 0, ErrCorrupt, ErrCorrupt},
		{"crc: flipped attribute", edit(good, func(b []byte) []byte { b[offAttributes+1] ^= 0x40; return b }), 0, ErrCorrupt, ErrCorrupt},
		{"crc: wrong field", edit(good, func(b []byte) []byte { b[offCRC] ^= 1; return b }), 0, ErrCorrupt, ErrCorrupt},
		{"truncated by one", good[:len(good)-1], 0, ErrCorrupt, ErrCorrupt},
		{"truncated header", good[:40], 0, ErrCorrupt, ErrCorrupt},
		{"empty", nil, 0, ErrCorrupt, ErrCorrupt},
		{"trailing byte", append(bytes.Clone(good), 0), 0, ErrCorrupt, ErrCorrupt},
		{"length too small", edit(good, func(b []byte) []byte { putInt32(b, offLength, minLength-1); return b }), 0, ErrCorrupt, ErrCorrupt},
		{"length too large", edit(good, func(b []byte) []byte { putInt32(b, offLength, int32(len(b))); return b }), 0, ErrCorrupt, ErrCorrupt},
		{"length negative", edit(good, func(b []byte) []byte { putInt32(b, offLength, -100); return b }), 0, ErrCorrupt, ErrCorrupt},
		{"magic 0", edit(good, func(b []byte) []byte { b[offMagic] = 0; return b }), 0, ErrUnsupportedMagic, ErrUnsupportedMagic},
		{"magic 1", edit(good, func(b []byte) []byte { b[offMagic] = 1; return b }), 0, ErrUnsupportedMagic, ErrUnsupportedMagic},
		{"magic 3", edit(good, func(b []byte) []byte { b[offMagic] = 3; return b }), 0, ErrUnsupportedMagic, ErrUnsupportedMagic},
		{"too large", good, len(good) - 1, ErrTooLarge, ErrTooLarge},
		{"exactly the limit", good, len(good), nil, nil},
		{"unknown codec 5", withCRC(good, func(b []byte) { b[offAttributes+1] |= 5 }), 0, ErrCorrupt, ErrCorrupt},
		{"record count 0", withCRC(good, func(b []byte) { putInt32(b, 57, 0); putInt32(b, 23, -1) }), 0, ErrInvalidRecord, ErrInvalidRecord},
		{"record count negative", withCRC(good, func(b []byte) { putInt32(b, 57, -3) }), 0, ErrInvalidRecord, ErrInvalidRecord},
		{"last offset delta too big", withCRC(good, func(b []byte) { putInt32(b, 23, 3) }), 0, ErrInvalidRecord, ErrInvalidRecord},
		{"last offset delta too small", withCRC(good, func(b []byte) { putInt32(b, 23, 1) }), 0, ErrInvalidRecord, ErrInvalidRecord},
		{"max timestamp before first", withCRC(good, func(b []byte) { putInt64(b, 35, 5) }), 0, ErrInvalidRecord, ErrInvalidRecord},
		{"no timestamps", withCRC(good, func(b []byte) { putInt64(b, 27, -1); putInt64(b, 35, -1) }), 0, nil, nil},
		{"header counts 4, has 3", uncompressed(threeRecs, 4), 0, ErrInvalidRecord, ErrInvalidRecord},
		{"header counts 2, has 3", uncompressed(threeRecs, 2), 0, ErrInvalidRecord, ErrInvalidRecord},
		{"count cannot fit", uncompressed(threeRecs, 1<<30), 0, ErrInvalidRecord, ErrInvalidRecord},
		{"bad length varint", uncompressed(bytes.Repeat([]byte{0xff}, 14), 1), 0, ErrInvalidRecord, ErrInvalidRecord},
		{"bad key varint", uncompressed([]byte{20, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0}, 1), 0, ErrInvalidRecord, ErrInvalidRecord},
		{"record longer than the batch", uncompressed(append([]byte{100}, make([]byte, 10)...), 1), 0, ErrInvalidRecord, ErrInvalidRecord},
		{"record length too short", uncompressed([]byte{2, 0, 0, 0, 1, 1, 0, 0, 0, 0}, 1), 0, ErrInvalidRecord, ErrInvalidRecord},
		{"value runs past record", uncompressed(recordWithBody([]byte{0, 0, 0, 1, 20, 'x', 0}), 1), 0, ErrInvalidRecord, ErrInvalidRecord},
		{"slack inside record", uncompressed(recordWithBody([]byte{0, 0, 0, 1, 1, 0, 9, 9}), 1), 0, ErrInvalidRecord, ErrInvalidRecord},
		{"negative header count", uncompressed(recordWithBody([]byte{0, 0, 0, 1, 1, 1}), 1), 0, ErrInvalidRecord, ErrInvalidRecord},
		{"negative header key length", uncompressed(recordWithBody([]byte{0, 0, 0, 1, 1, 2, 1, 1}), 1), 0, ErrInvalidRecord, ErrInvalidRecord},
		{"huge header count", uncompressed(recordWithBody([]byte{0, 0, 0, 1, 1, 0xfe, 0xff, 0xff, 0xff, 0x0f}), 1), 0, ErrInvalidRecord, ErrInvalidRecord},
		{"null key, null value, null header value", uncompressed(recordWithBody([]byte{0, 0, 0, 1, 1, 2, 2, 'h', 1}), 1), 0, nil, nil},
		{"offset deltas out of order", uncompressed(kmsgRecords(reorder(simpleKmsgRecords(3))), 3), 0, ErrInvalidRecord, ErrInvalidRecord},
		{"zstd intact", zstdGood, 0, nil, nil},
		{"zstd garbage", kmsgBatch(CodecZstd, 3, []byte("not zstd at all"), nil), 0, nil, ErrCorrupt},
		{"zstd count mismatch", kmsgBatch(CodecZstd, 4, zstdAll(t, threeRecs, 1), nil), 0, nil, ErrInvalidRecord},
		{"gzip truncated", kmsgBatch(CodecGzip, 3, stdGzip(t, threeRecs, 6)[:20], nil), 0, nil, ErrCorrupt},
		{"gzip trailing garbage", kmsgBatch(CodecGzip, 3, append(stdGzip(t, threeRecs, 6), 1, 2, 3), nil), 0, nil, ErrCorrupt},
		{"snappy garbage", kmsgBatch(CodecSnappy, 3, []byte{0x40, 1, 2, 3}, nil), 0, nil, ErrCorrupt},
		{"xerial truncated block", kmsgBatch(CodecSnappy, 3, xerial(threeRecs, 1<<10)[:30], nil), 0, nil, ErrCorrupt},
		{"lz4 garbage", kmsgBatch(CodecLZ4, 3, []byte{4, 0x22, 0x4d, 0x18, 0, 0, 0}, nil), 0, nil, ErrCorrupt},
		{"lz4 offsets out of order", kmsgBatch(CodecLZ4, 3, lz4Frame(t, kmsgRecords(reorder(simpleKmsgRecords(3)))), nil), 0, nil, ErrInvalidRecord},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for _, deep := range []bool{false, true} {
				want := tc.shallow
				if deep {
					want = tc.deep
				}
				_, err := Validate(tc.b, tc.max, deep)
				if want == nil && err != nil {
					t.Errorf("deep=%v: %v", deep, err)
				} else if want != nil && !errors.Is(err, want) {
					t.Errorf("deep=%v: err = %v, want %v", deep, err, want)
				}
				if err != nil && countSentinels(err) != 1 {
					t.Errorf("deep=%v: %v wraps %d sentinels, want 1", deep, err, countSentinels(err))
				}
			}
		})
	}
}

func countSentinels(err error) int {
	n := 0
	for _, s := range []error{ErrCorrupt, ErrUnsupportedMagic, ErrTooLarge, ErrInvalidRecord} {
		if errors.Is(err, s) {
			n++
		}
	}
	return n
}

// recordWithBody prefixes body with its length varint.
func recordWithBody(body []byte) []byte {
	return append([]byte{byte(len(body) << 1)}, body...)
}

func reorder(recs []kmsg.Record) []kmsg.Record {
	recs[1].OffsetDelta, recs[2].OffsetDelta = 2, 1
	return recs
}

// TestRecordsAcceptsCompactedOffsets: Records, unlike Validate, takes
// offset deltas with gaps, as compaction leaves them.
func TestRecordsAcceptsCompactedOffsets(t *testing.T) {
	t.Parallel()
	krs := simpleKmsgRecords(3)
	krs[1].OffsetDelta, krs[2].OffsetDelta = 4, 9
	b := kmsgBatch(CodecNone, 3, kmsgRecords(krs), func(rb *kmsg.RecordBatch) { rb.FirstOffset = 100; rb.LastOffsetDelta = 9 })
	if _, err := Validate(b, 0, true); !errors.Is(err, ErrInvalidRecord) {
		t.Fatalf("Validate: %v, want ErrInvalidRecord", err)
	}
	_, recs, err := Records(b)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []int64{100, 104, 109} {
		if recs[i].Offset != want {
			t.Errorf("record %d: offset %d, want %d", i, recs[i].Offset, want)
		}
	}

	empty := kmsgBatch(CodecNone, 0, nil, nil)
	if h, recs, err := Records(empty); err != nil || recs != nil || h.NumRecords != 0 {
		t.Errorf("empty batch: %v records, %v", len(recs), err)
	}
}

func TestRecordsRejects(t *testing.T) {
	t.Parallel()
	good := mustBuild(t, sizedRecords(3, 40), DefaultBuildOptions())
	flipped := bytes.Clone(good)
	flipped[len(flipped)-1] ^= 1
	magic1 := bytes.Clone(good)
	magic1[offMagic] = 1
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"crc", flipped, ErrCorrupt},
		{"magic", magic1, ErrUnsupportedMagic},
		{"truncated", good[:len(good)-1], ErrCorrupt},
		{"trailing", append(bytes.Clone(good), 0), ErrCorrupt},
		{"count", kmsgBatch(CodecNone, 4, kmsgRecords(simpleKmsgRecords(3)), nil), ErrInvalidRecord},
		{"zstd garbage", kmsgBatch(CodecZstd, 3, []byte("nope"), nil), ErrCorrupt},
	} {
		if _, _, err := Records(tc.b); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

// TestValidateAllocs is not parallel: AllocsPerRun counts every
// goroutine's allocations, and parallel tests wait while it runs.
func TestValidateAllocs(t *testing.T) {
	b := mustBuild(t, sizedRecords(16, 1000), DefaultBuildOptions())
	if len(b) < 16<<10-1024 {
		t.Fatalf("batch is %d bytes", len(b))
	}
	for _, deep := range []bool{false, true} {
		var err error
		if n := testing.AllocsPerRun(100, func() { _, err = Validate(b, 1<<20, deep) }); n != 0 {
			t.Errorf("deep=%v: %v allocations per Validate, want 0", deep, n)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	// Deep validation of a compressed batch reuses pooled buffers and
	// codec state; after warming up it allocates (next to) nothing.
	for _, c := range allCodecs[1:] {
		z := mustBuild(t, sizedRecords(16, 1000), BuildOptions{Codec: c, ProducerID: -1})
		n := testing.AllocsPerRun(100, func() { _, _ = Validate(z, 0, true) })
		t.Logf("%s deep: %v allocations per Validate", c, n)
		if n > 2 && !raceEnabled {
			t.Errorf("%s deep: %v allocations per Validate, want at most 2", c, n)
		}
	}
}
