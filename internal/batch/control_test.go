package batch

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// A marker batch is one Check and Records accept, laid out as Kafka's
// broker writes it, and one franz-go's own types parse.
func TestBuildControl(t *testing.T) {
	for _, commit := range []bool{false, true} {
		m := EndTxnMarker{ProducerID: 42, ProducerEpoch: 7, Commit: commit, CoordinatorEpoch: 9, Timestamp: 1700000000123}
		b, err := BuildControl(m)
		if err != nil {
			t.Fatal(err)
		}
		h, _, err := Check(b, Limits{})
		if err != nil {
			t.Fatalf("Check: %v", err)
		}
		if !h.IsControl() || !h.IsTransactional() || h.Codec() != CodecNone || h.ProducerID != 42 || h.ProducerEpoch != 7 ||
			h.BaseSequence != -1 || h.NumRecords != 1 || h.LastOffsetDelta != 0 || h.PartitionLeaderEpoch != -1 ||
			h.FirstTimestamp != m.Timestamp || h.MaxTimestamp != m.Timestamp {
			t.Fatalf("header %+v", h)
		}
		_, recs, err := Records(b)
		if err != nil || len(recs) != 1 {
			t.Fatalf("Records: %d records, %v", len(recs), err)
		}
		gotCommit, epoch, err := ParseEndTxnMarker(recs[0])
		if err != nil || gotCommit != commit || epoch != 9 {
			t.Fatalf("ParseEndTxnMarker = %v %d %v", gotCommit, epoch, err)
		}

		// franz-go: the batch, its record, the key and the value.
		var rb kmsg.RecordBatch
		if err := rb.ReadFrom(b); err != nil {
			t.Fatalf("kmsg.RecordBatch: %v", err)
		}
		if rb.Attributes&0x20 == 0 || rb.Attributes&0x10 == 0 || rb.FirstSequence != -1 || rb.ProducerID != 42 {
			t.Fatalf("kmsg batch %+v", rb)
		}
		var rec kmsg.Record
		if err := rec.ReadFrom(rb.Records); err != nil {
			t.Fatalf("kmsg.Record: %v", err)
		}
		var key kmsg.ControlRecordKey
		if err := key.ReadFrom(rec.Key); err != nil {
			t.Fatalf("kmsg.ControlRecordKey: %v", err)
		}
		wantType := kmsg.ControlRecordKeyType(0)
		if commit {
			wantType = 1
		}
		if key.Version != 0 || key.Type != wantType {
			t.Fatalf("control key %+v, want type %v", key, wantType)
		}
		var val kmsg.EndTxnMarker
		if err := val.ReadFrom(rec.Value); err != nil {
			t.Fatalf("kmsg.EndTxnMarker: %v", err)
		}
		if val.Version != 0 || val.CoordinatorEpoch != 9 {
			t.Fatalf("marker value %+v", val)
		}
		if len(rec.Key) != 4 || len(rec.Value) != 6 {
			t.Fatalf("key %d bytes, value %d bytes; want 4 and 6", len(rec.Key), len(rec.Value))
		}
	}
	if _, err := BuildControl(EndTxnMarker{ProducerID: -1}); err == nil {
		t.Fatal("a marker without a producer built")
	}
}
