package batch

import (
	"bytes"
	"errors"
	"testing"
)

func TestParseCodec(t *testing.T) {
	t.Parallel()
	for _, c := range allCodecs {
		got, err := ParseCodec(c.String())
		if err != nil || got != c {
			t.Errorf("ParseCodec(%q) = %v, %v; want %v", c.String(), got, err, c)
		}
	}
	for in, want := range map[string]Codec{"ZSTD": CodecZstd, "uncompressed": CodecNone, "Gzip": CodecGzip} {
		if got, err := ParseCodec(in); err != nil || got != want {
			t.Errorf("ParseCodec(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "producer", "brotli"} {
		if _, err := ParseCodec(in); err == nil {
			t.Errorf("ParseCodec(%q): want an error", in)
		}
	}
	if s := Codec(6).String(); s != "codec(6)" {
		t.Errorf("Codec(6).String() = %q", s)
	}
}

func TestParseHeader(t *testing.T) {
	t.Parallel()
	b := mustBuild(t, sizedRecords(3, 10), BuildOptions{Codec: CodecLZ4, ProducerID: 7, ProducerEpoch: 2, BaseSequence: 40, Transactional: true})
	SetBaseOffset(b, 1000)
	SetPartitionLeaderEpoch(b, 5)
	h, err := ParseHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	want := Header{
		BaseOffset: 1000, Length: int32(len(b) - 12), PartitionLeaderEpoch: 5, Magic: 2, CRC: h.CRC,
		Attributes: int16(CodecLZ4) | attrTransactional, LastOffsetDelta: 2,
		FirstTimestamp: 1_700_000_000_000, MaxTimestamp: 1_700_000_000_002,
		ProducerID: 7, ProducerEpoch: 2, BaseSequence: 40, NumRecords: 3,
	}
	if h != want {
		t.Fatalf("ParseHeader:\n got %+v\nwant %+v", h, want)
	}
	if h.Codec() != CodecLZ4 || !h.IsTransactional() || h.IsControl() || h.TimestampType() != 0 ||
		h.Size() != len(b) || h.LastOffset() != 1002 {
		t.Fatalf("accessors wrong for %+v", h)
	}

	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"short", b[:HeaderSize-1]},
		{"truncated", b[:len(b)-1]},
		{"length too small", func() []byte { c := bytes.Clone(b); putInt32(c, offLength, minLength-1); return c }()},
		{"negative length", func() []byte { c := bytes.Clone(b); putInt32(c, offLength, -1); return c }()},
	} {
		if _, err := ParseHeader(tc.b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: err = %v, want ErrCorrupt", tc.name, err)
		}
	}
}

func TestSplit(t *testing.T) {
	t.Parallel()
	var parts [][]byte
	var all []byte
	for i, c := range []Codec{CodecNone, CodecZstd, CodecGzip} {
		p := mustBuild(t, sizedRecords(i+1, 50), BuildOptions{Codec: c, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1})
		parts = append(parts, p)
		all = append(all, p...)
	}

	got, err := Split(all)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(parts) {
		t.Fatalf("Split: %d batches, want %d", len(got), len(parts))
	}
	at := 0
	for i := range got {
		if !bytes.Equal(got[i], parts[i]) {
			t.Errorf("batch %d differs", i)
		}
		if &got[i][0] != &all[at] {
			t.Errorf("batch %d is a copy, want a sub-slice", i)
		}
		if cap(got[i]) != len(got[i]) {
			t.Errorf("batch %d: cap %d, want it clipped to %d", i, cap(got[i]), len(got[i]))
		}
		if _, err := Validate(got[i], 0, true); err != nil {
			t.Errorf("batch %d: %v", i, err)
		}
		at += len(got[i])
	}

	if got, err := Split(nil); got != nil || err != nil {
		t.Errorf("Split(nil) = %v, %v", got, err)
	}

	bad := []struct {
		name string
		b    []byte
	}{
		{"partial trailing batch", all[:len(all)-1]},
		{"trailing stub", append(bytes.Clone(all), 0, 0, 0)},
		{"header only", all[:HeaderSize]},
		{"garbage", bytes.Repeat([]byte{0xff}, 100)},
		{"zeros", make([]byte, 100)},
		{"v2 length below minimum", func() []byte { c := bytes.Clone(parts[0]); putInt32(c, offLength, 20); return c }()},
	}
	for _, tc := range bad {
		if got, err := Split(tc.b); !errors.Is(err, ErrCorrupt) || got != nil {
			t.Errorf("%s: Split = %d batches, %v; want ErrCorrupt", tc.name, len(got), err)
		}
	}

	// A v0 message (offset, size, crc, magic 0, ...) is framed the same
	// way: Split hands it over, Validate names the problem.
	v0 := []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 14, 1, 2, 3, 4, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}
	got, err = Split(v0)
	if err != nil || len(got) != 1 {
		t.Fatalf("Split(v0) = %d batches, %v", len(got), err)
	}
	if _, err := Validate(got[0], 0, false); !errors.Is(err, ErrUnsupportedMagic) {
		t.Errorf("Validate(v0) = %v, want ErrUnsupportedMagic", err)
	}
}

func TestSetOffsetAndEpochKeepBatchValid(t *testing.T) {
	t.Parallel()
	for _, c := range allCodecs {
		t.Run(c.String(), func(t *testing.T) {
			t.Parallel()
			b := mustBuild(t, sizedRecords(5, 20), BuildOptions{Codec: c, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1})
			SetBaseOffset(b, 1<<40)
			SetPartitionLeaderEpoch(b, 17)
			h, err := Validate(b, 0, true)
			if err != nil {
				t.Fatal(err)
			}
			if h.BaseOffset != 1<<40 || h.PartitionLeaderEpoch != 17 || h.LastOffset() != 1<<40+4 {
				t.Fatalf("header %+v", h)
			}
			_, recs, err := Records(b)
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range recs {
				if r.Offset != 1<<40+int64(i) {
					t.Errorf("record %d: offset %d", i, r.Offset)
				}
			}
		})
	}
}

func TestSetLogAppendTime(t *testing.T) {
	t.Parallel()
	for _, c := range allCodecs {
		t.Run(c.String(), func(t *testing.T) {
			t.Parallel()
			in := sizedRecords(4, 20)
			b := mustBuild(t, in, BuildOptions{Codec: c, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1})
			const appendTime = 1_800_000_000_000
			SetLogAppendTime(b, appendTime)
			h, err := Validate(b, 0, true)
			if err != nil {
				t.Fatal(err)
			}
			if h.TimestampType() != 1 || h.MaxTimestamp != appendTime || h.Codec() != c {
				t.Fatalf("header %+v", h)
			}
			if h.FirstTimestamp != in[0].Timestamp {
				t.Errorf("FirstTimestamp changed to %d", h.FirstTimestamp)
			}
			_, recs, err := Records(b)
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range recs {
				if r.Timestamp != appendTime {
					t.Errorf("record %d: timestamp %d, want %d", i, r.Timestamp, appendTime)
				}
				if !bytes.Equal(r.Value, in[i].Value) {
					t.Errorf("record %d: value changed", i)
				}
			}
		})
	}
}
