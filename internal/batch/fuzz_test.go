package batch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// fuzzSeeds are valid batches of every codec plus a few broken ones; the
// committed corpus under testdata/fuzz holds more.
func fuzzSeeds(tb testing.TB) [][]byte {
	recs := []Record{
		{Timestamp: 1, Key: []byte("k"), Value: []byte("v"), Headers: []RecordHeader{{Key: "h", Value: nil}}},
		{Timestamp: 2, Value: nil},
		{Timestamp: 3, Key: []byte{}, Value: []byte("a somewhat longer value, a somewhat longer value")},
	}
	var seeds [][]byte
	for _, c := range allCodecs {
		b := mustBuild(tb, recs, BuildOptions{Codec: c, ProducerID: -1})
		seeds = append(seeds, b, b[:len(b)/2])
		if c == CodecNone {
			continue
		}
		// Framed right, records wrong: garbage for the codec, the
		// compressed records cut short, claimed one record too many, and
		// a small bomb (1 MiB of zeros).
		comp := b[HeaderSize:]
		seeds = append(seeds,
			kmsgBatch(c, 3, []byte("these bytes are not compressed records"), nil),
			kmsgBatch(c, 3, comp[:len(comp)/2], nil),
			kmsgBatch(c, 4, comp, nil),
			mustBuild(tb, []Record{{Value: make([]byte, 1<<20), Timestamp: 1}}, BuildOptions{Codec: c, ProducerID: -1}),
		)
	}
	return seeds
}

// fixFraming makes b's Length and CRC agree with its bytes, so that the
// fuzzer gets past them to the records and the codecs.
func fixFraming(b []byte) []byte {
	if len(b) < HeaderSize {
		return nil
	}
	c := bytes.Clone(b)
	c[offMagic] = byte(magicV2)
	binary.BigEndian.PutUint32(c[offLength:], uint32(len(c)-lengthFieldEnd))
	setCRC(c)
	return c
}

func FuzzValidate(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkBatch(t, b)
		if c := fixFraming(b); c != nil {
			checkBatch(t, c)
		}
	})
}

// checkBatch runs everything that reads a batch over b: nothing may panic,
// every error must wrap exactly one sentinel, and whatever deep validation
// accepts, Records must decode, with contiguous offsets.
func checkBatch(t *testing.T, b []byte) {
	_, _ = ParseHeader(b)
	_, errShallow := Validate(b, 0, false)
	h, errDeep := Validate(b, 0, true)
	_, recs, errRecords := Records(b)
	for _, err := range []error{errShallow, errDeep, errRecords} {
		if err != nil && countSentinels(err) != 1 {
			t.Fatalf("%v wraps %d sentinels", err, countSentinels(err))
		}
	}
	if errShallow != nil && errDeep == nil {
		t.Fatalf("deep validation accepted what shallow refused: %v", errShallow)
	}
	// Check is deep validation: with no bound but MaxDecompressedSize it
	// agrees with it; with a small records bound it refuses more, never
	// less, and what it refuses more is ErrTooLarge.
	_, st, errCheck := Check(b, Limits{})
	if (errCheck == nil) != (errDeep == nil) {
		t.Fatalf("Check: %v; deep Validate: %v", errCheck, errDeep)
	}
	// Under a bound below MaxDecompressedSize, zstd decodes as a stream
	// (the produce path) instead of whole frames (the readers' path): the
	// two must agree, or a batch produce accepts could poison readers.
	_, _, errStream := Check(b, Limits{MaxRecordsBytes: MaxDecompressedSize - 1})
	if (errStream == nil) != (errCheck == nil) && !errors.Is(errStream, ErrTooLarge) {
		t.Fatalf("Check under a bound: %v; without: %v", errStream, errCheck)
	}
	_, _, errSmall := Check(b, Limits{MaxRecordsBytes: 4 << 10})
	if errSmall != nil && countSentinels(errSmall) != 1 {
		t.Fatalf("%v wraps %d sentinels", errSmall, countSentinels(errSmall))
	}
	if errCheck != nil && errSmall == nil {
		t.Fatalf("a bound accepted what no bound refused: %v", errCheck)
	}
	if errCheck == nil && errSmall != nil && !errors.Is(errSmall, ErrTooLarge) {
		t.Fatalf("a bound refused with %v, want ErrTooLarge", errSmall)
	}
	// The Decoder decodes like Records.
	var dec Decoder
	defer dec.Release()
	_, drecs, _, errDec := dec.Decode(b)
	if (errDec == nil) != (errRecords == nil) || len(drecs) != len(recs) {
		t.Fatalf("Decoder: %d records, %v; Records: %d records, %v", len(drecs), errDec, len(recs), errRecords)
	}
	for i := range drecs {
		if drecs[i].Offset != recs[i].Offset || drecs[i].Timestamp != recs[i].Timestamp ||
			!sameBytes(drecs[i].Key, recs[i].Key) || !sameBytes(drecs[i].Value, recs[i].Value) {
			t.Fatalf("Decoder record %d differs from Records", i)
		}
	}
	if errDeep != nil {
		return
	}
	if errRecords != nil {
		t.Fatalf("Validate(deep) accepted, Records failed: %v", errRecords)
	}
	if len(recs) != int(h.NumRecords) {
		t.Fatalf("Records: %d records, header says %d", len(recs), h.NumRecords)
	}
	lo, hi := int64(-1), int64(-1)
	for i, r := range recs {
		if r.Offset != h.BaseOffset+int64(i) {
			t.Fatalf("record %d: offset %d", i, r.Offset)
		}
		if r.Timestamp != -1 {
			if lo == -1 || r.Timestamp < lo {
				lo = r.Timestamp
			}
			if hi == -1 || r.Timestamp > hi {
				hi = r.Timestamp
			}
		}
	}
	if st.MinTimestamp != lo || st.MaxTimestamp != hi {
		t.Fatalf("Check stats %d..%d, records span %d..%d", st.MinTimestamp, st.MaxTimestamp, lo, hi)
	}
	// A valid batch survives the broker's header edits.
	c := bytes.Clone(b)
	SetBaseOffset(c, 12345)
	SetPartitionLeaderEpoch(c, 3)
	SetLogAppendTime(c, 99)
	if _, err := Validate(c, 0, true); err != nil {
		t.Fatalf("after header edits: %v", err)
	}
}

func FuzzSplit(f *testing.F) {
	seeds := fuzzSeeds(f)
	f.Add(bytes.Join(seeds[:4], nil))
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		parts, err := Split(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) || parts != nil {
				t.Fatalf("Split: %d parts, %v", len(parts), err)
			}
			return
		}
		if len(b) == 0 {
			if parts != nil {
				t.Fatal("Split(empty) returned parts")
			}
			return
		}
		// The parts tile b exactly, in order, without copying.
		at := 0
		for i, p := range parts {
			if len(p) <= offMagic || cap(p) != len(p) || &p[0] != &b[at] {
				t.Fatalf("part %d: len %d cap %d at %d", i, len(p), cap(p), at)
			}
			at += len(p)
			checkBatch(t, p)
		}
		if at != len(b) {
			t.Fatalf("parts cover %d of %d bytes", at, len(b))
		}
	})
}

// FuzzBuild round-trips arbitrary records through Build and Records; it
// checks that Build's size arithmetic agrees with kmsg's encoding.
func FuzzBuild(f *testing.F) {
	f.Add(uint8(0), int64(1), []byte("k"), []byte("v"), "h", []byte("hv"), uint8(3))
	f.Add(uint8(4), int64(-5), []byte(nil), []byte{}, "", []byte(nil), uint8(0))
	f.Fuzz(func(t *testing.T, codec uint8, ts int64, key, value []byte, hk string, hv []byte, n uint8) {
		c := Codec(codec % 5)
		recs := make([]Record, int(n%20)+1)
		for i := range recs {
			recs[i] = Record{Timestamp: ts + int64(i)*int64(n), Key: key, Value: value}
			if i%2 == 1 {
				recs[i].Headers = []RecordHeader{{Key: hk, Value: hv}, {Key: hk}}
			}
		}
		b, err := Build(recs, BuildOptions{Codec: c, ProducerID: -1})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Validate(b, 0, true); err != nil {
			t.Fatal(err)
		}
		_, got, err := Records(b)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range got {
			want := recs[i]
			if want.Timestamp == 0 {
				want.Timestamp = r.Timestamp // "now"
			}
			want.Offset = int64(i)
			if r.Offset != want.Offset || r.Timestamp != want.Timestamp || !sameBytes(r.Key, want.Key) ||
				!sameBytes(r.Value, want.Value) || len(r.Headers) != len(want.Headers) {
				t.Fatalf("record %d: got %+v, want %+v", i, r, want)
			}
			for j, h := range r.Headers {
				if h.Key != want.Headers[j].Key || !sameBytes(h.Value, want.Headers[j].Value) {
					t.Fatalf("record %d header %d: got %+v, want %+v", i, j, h, want.Headers[j])
				}
			}
		}
	})
}

// sameBytes is bytes.Equal that also tells nil from empty.
func sameBytes(a, b []byte) bool { return (a == nil) == (b == nil) && bytes.Equal(a, b) }
