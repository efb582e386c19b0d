package batch

import (
	"bytes"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// FilterHorizon writes Kafka's KIP-534 delete horizon into a batch that
// keeps a tombstone: attribute bit 6, FirstTimestamp = the horizon, the
// records' timestamp deltas recomputed so that every record keeps its
// timestamp, as Records and kmsg (franz-go's decoder) compute it.
func TestFilterHorizonKeepsRecordTimestamps(t *testing.T) {
	const horizon = 1_800_000_000_000
	for _, codec := range allCodecs {
		t.Run(codec.String(), func(t *testing.T) {
			recs := sizedRecords(5, 40)
			recs[1].Value = nil // a tombstone
			recs[3].Headers = []RecordHeader{{Key: "h", Value: []byte("v")}}
			b := mustBuild(t, recs, BuildOptions{Codec: codec, ProducerID: 7, ProducerEpoch: 3, BaseSequence: 40})
			SetBaseOffset(b, 100)
			orig, _ := ParseHeader(b)

			for _, drop := range []int64{-1, 102} { // keep all; drop one
				out, kept, err := FilterHorizon(b, horizon, func(r FilterRecord) bool { return r.Offset != drop })
				if err != nil {
					t.Fatal(err)
				}
				h, got, err := Records(out) // checks the CRC
				if err != nil {
					t.Fatal(err)
				}
				if hz, ok := h.DeleteHorizon(); !ok || hz != horizon || h.FirstTimestamp != horizon {
					t.Fatalf("drop %d: delete horizon %d %v, first timestamp %d, want %d", drop, hz, ok, h.FirstTimestamp, horizon)
				}
				if h.MaxTimestamp != orig.MaxTimestamp || h.Codec() != codec || h.ProducerID != 7 || h.BaseSequence != 40 || h.LastOffsetDelta != 4 {
					t.Fatalf("drop %d: header %+v", drop, h)
				}
				var want []Record
				for i, r := range recs {
					if int64(100+i) != drop {
						want = append(want, r)
					}
				}
				if kept != len(want) || len(got) != len(want) {
					t.Fatalf("drop %d: kept %d, decoded %d, want %d", drop, kept, len(got), len(want))
				}
				for i, r := range got {
					w := want[i]
					if r.Timestamp != w.Timestamp || !bytes.Equal(r.Key, w.Key) || (r.Value == nil) != (w.Value == nil) || !bytes.Equal(r.Value, w.Value) || len(r.Headers) != len(w.Headers) {
						t.Fatalf("drop %d: record %d = %+v, want %+v", drop, i, r, w)
					}
				}
				// franz-go's decoding: FirstTimestamp + TimestampDelta64.
				var kb kmsg.RecordBatch
				if err := kb.ReadFrom(out); err != nil {
					t.Fatal(err)
				}
				if kb.Attributes&0x40 == 0 || kb.FirstTimestamp != horizon {
					t.Fatalf("kmsg sees attributes %#x first timestamp %d", kb.Attributes, kb.FirstTimestamp)
				}

				// A later filter keeps the horizon and the timestamps.
				again, _, err := FilterHorizon(out, horizon+5, func(r FilterRecord) bool {
					if r.Timestamp != want[0].Timestamp && r.Offset == 100 {
						t.Errorf("keep sees timestamp %d at 100, want %d", r.Timestamp, want[0].Timestamp)
					}
					return r.Offset != 104
				})
				if err != nil {
					t.Fatal(err)
				}
				h2, got2, err := Records(again)
				if err != nil {
					t.Fatal(err)
				}
				if hz, ok := h2.DeleteHorizon(); !ok || hz != horizon {
					t.Fatalf("horizon after a second filter %d %v, want %d", hz, ok, horizon)
				}
				for i, r := range got2 {
					if r.Timestamp != want[i].Timestamp {
						t.Fatalf("second filter: record %d timestamp %d, want %d", i, r.Timestamp, want[i].Timestamp)
					}
				}
			}

			// No tombstone kept: no horizon, the batch unchanged.
			out, _, err := FilterHorizon(b, horizon, func(r FilterRecord) bool { return !r.Null })
			if err != nil {
				t.Fatal(err)
			}
			if h, _ := ParseHeader(out); h.Attributes&0x40 != 0 || h.FirstTimestamp != orig.FirstTimestamp {
				t.Fatalf("batch without tombstones got a horizon: %+v", h)
			}
			if out, _, _ := FilterHorizon(b, -1, func(FilterRecord) bool { return true }); !bytes.Equal(out, b) {
				t.Fatal("horizon -1 changed a batch whose records are all kept")
			}
		})
	}
}
