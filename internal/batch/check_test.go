package batch

import (
	"errors"
	"runtime"
	"testing"

	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestCheckStats(t *testing.T) {
	t.Parallel()
	recs := []Record{{Value: []byte("a"), Timestamp: 500}, {Value: []byte("b"), Timestamp: 100}, {Value: []byte("c"), Timestamp: 900}}
	for _, c := range allCodecs {
		b := mustBuild(t, recs, BuildOptions{Codec: c, ProducerID: -1})
		_, st, err := Check(b, Limits{})
		if err != nil {
			t.Fatalf("%s: %v", c, err)
		}
		if st.MinTimestamp != 100 || st.MaxTimestamp != 900 || st.RecordsBytes <= 0 {
			t.Errorf("%s: stats %+v, want timestamps 100..900", c, st)
		}
	}
	// Records without a timestamp (-1) are left out.
	none := kmsgBatch(CodecNone, 3, kmsgRecords(simpleKmsgRecords(3)), func(rb *kmsg.RecordBatch) { rb.FirstTimestamp, rb.MaxTimestamp = -1, -1 })
	// Deltas 0, 1, 2 from -1: no timestamp, 0, 1.
	if _, st, err := Check(none, Limits{}); err != nil || st.MinTimestamp != 0 || st.MaxTimestamp != 1 {
		t.Errorf("no base timestamp: %+v %v, want 0..1", st, err)
	}
	one := kmsgBatch(CodecNone, 1, kmsgRecords(simpleKmsgRecords(1)), func(rb *kmsg.RecordBatch) { rb.FirstTimestamp, rb.MaxTimestamp = -1, -1 })
	if _, st, err := Check(one, Limits{}); err != nil || st.MinTimestamp != -1 || st.MaxTimestamp != -1 {
		t.Errorf("no timestamp at all: %+v %v, want -1", st, err)
	}
	// A LogAppendTime batch's records all have MaxTimestamp.
	lat := mustBuild(t, recs, DefaultBuildOptions())
	SetLogAppendTime(lat, 7777)
	if _, st, err := Check(lat, Limits{}); err != nil || st.MinTimestamp != 7777 || st.MaxTimestamp != 7777 {
		t.Errorf("log append time: %+v %v", st, err)
	}
}

// TestCheckBoundsDecompression: records decompressing past the caller's
// bound are ErrTooLarge for every codec, and are found without allocating
// much more than the bound (a zstd frame that declares its size not even
// that).
func TestCheckBoundsDecompression(t *testing.T) {
	const limit = 256 << 10
	bombs := map[string][]byte{}
	for _, c := range allCodecs[1:] {
		if c == CodecSnappy {
			continue // snappy expands at most ~22x: the test's 4 MiB would not fit a small batch
		}
		bombs[c.String()] = mustBuild(t, []Record{{Value: make([]byte, 4<<20), Timestamp: 1}}, BuildOptions{Codec: c, ProducerID: -1})
	}
	raw := kmsgRecords([]kmsg.Record{{Value: make([]byte, 4<<20)}})
	bombs["snappy"] = kmsgBatch(CodecSnappy, 1, snappy.Encode(nil, raw), nil)
	bombs["zstd stream"] = kmsgBatch(CodecZstd, 1, zstdStream(t, raw), nil)
	for name, b := range bombs {
		if _, _, err := Check(b, Limits{MaxRecordsBytes: limit}); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("%s: %v, want ErrTooLarge", name, err)
		}
		if _, _, err := Check(b, Limits{}); err != nil {
			t.Fatalf("%s within MaxDecompressedSize: %v", name, err)
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		const runs = 10
		for range runs {
			_, _, _ = Check(b, Limits{MaxRecordsBytes: limit})
		}
		runtime.ReadMemStats(&after)
		perRun := (after.TotalAlloc - before.TotalAlloc) / runs
		t.Logf("%s: %d bytes allocated per refused Check (%d byte batch)", name, perRun, len(b))
		if perRun > 3*limit {
			t.Errorf("%s: %d bytes allocated per refused Check, want under %d", name, perRun, 3*limit)
		}
	}
	// A zstd frame declaring its size is refused before decoding.
	zb := bombs["zstd"]
	var fh zstd.Header
	if err := fh.Decode(zb[HeaderSize:]); err != nil || !fh.HasFCS {
		t.Fatalf("zstd bomb does not declare its size: %v", err)
	}
	// Measured in bytes, not allocations: the refusal's error wrapping
	// makes a few small ones (more under -race), while decoding even a
	// little of the frame would take a buffer of tens of KiB.
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	const runs = 100
	for range runs {
		_, _, _ = Check(zb, Limits{MaxRecordsBytes: limit})
	}
	runtime.ReadMemStats(&after)
	if perRun := (after.TotalAlloc - before.TotalAlloc) / runs; perRun > 4<<10 {
		t.Errorf("zstd with a declared size: %d bytes allocated per refused Check, want under 4 KiB (refused before decoding)", perRun)
	}
}

// TestDecoderReusesItsBuffer: decoding compressed batches one after
// another through a Decoder keeps one buffer and one records slice.
func TestDecoderReusesItsBuffer(t *testing.T) {
	for _, c := range allCodecs[1:] {
		b := mustBuild(t, sizedRecords(16, 1000), BuildOptions{Codec: c, ProducerID: -1})
		var d Decoder
		_, want, err := Records(b)
		if err != nil {
			t.Fatal(err)
		}
		h, got, size, err := d.Decode(b)
		if err != nil || h.NumRecords != 16 || len(got) != len(want) || size < 16000 {
			t.Fatalf("%s: %d records, size %d, %v", c, len(got), size, err)
		}
		for i := range got {
			if string(got[i].Value) != string(want[i].Value) || got[i].Offset != want[i].Offset {
				t.Fatalf("%s: record %d differs", c, i)
			}
		}
		n := testing.AllocsPerRun(50, func() { _, _, _, _ = d.Decode(b) })
		d.Release()
		t.Logf("%s: %v allocations per Decode", c, n)
		if n > 0 && !raceEnabled {
			t.Errorf("%s: %v allocations per Decode, want none", c, n)
		}
	}
}

// TestCheckAllocs: Check with a topic's bounds (the produce path) reuses
// pooled buffers and decoders; after warming up it allocates (next to)
// nothing, for every codec. Not parallel: AllocsPerRun counts every
// goroutine's allocations.
func TestCheckAllocs(t *testing.T) {
	lim := Limits{MaxBatchBytes: 1 << 20, MaxRecordsBytes: 32 << 20}
	for _, c := range allCodecs {
		b := mustBuild(t, sizedRecords(16, 1000), BuildOptions{Codec: c, ProducerID: -1})
		if _, _, err := Check(b, lim); err != nil {
			t.Fatal(err)
		}
		n := testing.AllocsPerRun(100, func() { _, _, _ = Check(b, lim) })
		t.Logf("%s: %v allocations per Check", c, n)
		if n > 1 && !raceEnabled {
			t.Errorf("%s: %v allocations per Check, want at most 1", c, n)
		}
	}
}
