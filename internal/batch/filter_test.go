package batch

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

func TestFilterKeepsOffsetsAndProducerFields(t *testing.T) {
	for _, codec := range allCodecs {
		t.Run(codec.String(), func(t *testing.T) {
			recs := sizedRecords(5, 40)
			recs[3].Value = nil // a tombstone
			recs[2].Headers = []RecordHeader{{Key: "h", Value: []byte("v")}}
			opts := BuildOptions{Codec: codec, ProducerID: 7, ProducerEpoch: 3, BaseSequence: 40, Transactional: true}
			b := mustBuild(t, recs, opts)
			SetBaseOffset(b, 100)
			SetPartitionLeaderEpoch(b, 9)
			orig, _ := ParseHeader(b)

			var seen []int64
			out, kept, err := Filter(b, func(r FilterRecord) bool {
				seen = append(seen, r.Offset)
				if r.Offset == 103 && !r.Null {
					t.Errorf("record 103 is a tombstone, Null is false")
				}
				return r.Offset == 101 || r.Offset == 102 || r.Offset == 103
			})
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(seen) != "[100 101 102 103 104]" {
				t.Fatalf("keep saw offsets %v", seen)
			}
			if kept != 3 {
				t.Fatalf("kept %d, want 3", kept)
			}
			h, got, err := Records(out) // checks the CRC and the framing
			if err != nil {
				t.Fatal(err)
			}
			if h.BaseOffset != 100 || h.LastOffsetDelta != 4 || h.NumRecords != 3 {
				t.Fatalf("header base %d last delta %d records %d, want 100 4 3", h.BaseOffset, h.LastOffsetDelta, h.NumRecords)
			}
			if h.ProducerID != 7 || h.ProducerEpoch != 3 || h.BaseSequence != 40 || !h.IsTransactional() || h.Codec() != codec || h.PartitionLeaderEpoch != 9 {
				t.Fatalf("producer fields/attributes changed: %+v", h)
			}
			if h.FirstTimestamp != orig.FirstTimestamp || h.MaxTimestamp != recs[3].Timestamp {
				t.Fatalf("timestamps first %d max %d, want %d %d", h.FirstTimestamp, h.MaxTimestamp, orig.FirstTimestamp, recs[3].Timestamp)
			}
			for i, r := range got {
				want := recs[i+1]
				if r.Offset != int64(101+i) || r.Timestamp != want.Timestamp || !bytes.Equal(r.Key, want.Key) || !bytes.Equal(r.Value, want.Value) || (r.Value == nil) != (want.Value == nil) || len(r.Headers) != len(want.Headers) {
					t.Fatalf("record %d = %+v, want offset %d and %+v", i, r, 101+i, want)
				}
			}
			if _, err := Validate(out, 0, true); err == nil {
				t.Fatal("a filtered batch with gaps passed producer validation; it must not look like a client batch")
			}
		})
	}
}

func TestFilterAllOrNothing(t *testing.T) {
	b := mustBuild(t, sizedRecords(3, 10), DefaultBuildOptions())
	out, kept, err := Filter(b, func(FilterRecord) bool { return true })
	if err != nil || kept != 3 || &out[0] != &b[0] {
		t.Fatalf("keep all: kept %d err %v, same slice %v", kept, err, err == nil && &out[0] == &b[0])
	}
	out, kept, err = Filter(b, func(FilterRecord) bool { return false })
	if err != nil || kept != 0 || out != nil {
		t.Fatalf("keep none: %d bytes kept %d err %v", len(out), kept, err)
	}
	b[len(b)-1] ^= 1
	if _, _, err := Filter(b, func(FilterRecord) bool { return true }); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("bad crc: %v, want ErrCorrupt", err)
	}
}

func TestFilterLogAppendTimeKeepsMaxTimestamp(t *testing.T) {
	b := mustBuild(t, sizedRecords(3, 10), DefaultBuildOptions())
	SetLogAppendTime(b, 1_800_000_000_000)
	out, _, err := Filter(b, func(r FilterRecord) bool { return r.Offset == 0 })
	if err != nil {
		t.Fatal(err)
	}
	h, recs, err := Records(out)
	if err != nil {
		t.Fatal(err)
	}
	if h.MaxTimestamp != 1_800_000_000_000 || len(recs) != 1 || recs[0].Timestamp != 1_800_000_000_000 {
		t.Fatalf("max timestamp %d, records %+v", h.MaxTimestamp, recs)
	}
}

func TestCheckRequireKeys(t *testing.T) {
	for _, codec := range allCodecs {
		recs := sizedRecords(3, 10)
		recs[1].Key = nil
		b := mustBuild(t, recs, BuildOptions{Codec: codec, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1})
		if _, _, err := Check(b, Limits{}); err != nil {
			t.Fatalf("%s: without RequireKeys: %v", codec, err)
		}
		if _, _, err := Check(b, Limits{RequireKeys: true}); !errors.Is(err, ErrInvalidRecord) {
			t.Fatalf("%s: keyless record with RequireKeys: %v, want ErrInvalidRecord", codec, err)
		}
		recs[1].Key = []byte{} // empty is not null
		b = mustBuild(t, recs, BuildOptions{Codec: codec, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1})
		if _, _, err := Check(b, Limits{RequireKeys: true}); err != nil {
			t.Fatalf("%s: empty key with RequireKeys: %v", codec, err)
		}
	}
	ctl, err := BuildControl(EndTxnMarker{ProducerID: 1, ProducerEpoch: 0, Commit: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := Check(ctl, Limits{RequireKeys: true}); err != nil {
		t.Fatalf("control batch with RequireKeys: %v", err)
	}
}
