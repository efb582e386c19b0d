package batch

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Control record types of a transaction marker's key (Kafka's
// ControlRecordType).
const (
	ControlAbort  int16 = 0
	ControlCommit int16 = 1
)

// EndTxnMarker is what a transaction marker's one control record says.
type EndTxnMarker struct {
	ProducerID       int64
	ProducerEpoch    int16
	Commit           bool  // commit marker; false: abort
	CoordinatorEpoch int32 // the epoch of the coordinator that wrote it
	Timestamp        int64 // ms; the batch's first and max timestamp
}

// BuildControl encodes m as a transaction marker batch, as Kafka's broker
// writes it: one control record whose key is the int16 version 0 and the
// int16 type (0 abort, 1 commit) and whose value is the int16 version 0 and
// the int32 coordinator epoch; attributes control and transactional,
// uncompressed, create time; the producer's id and epoch and base sequence
// -1; base offset 0 and partition leader epoch -1 (set when appended).
func BuildControl(m EndTxnMarker) ([]byte, error) {
	if m.ProducerID < 0 || m.ProducerEpoch < 0 {
		return nil, fmt.Errorf("build control batch: producer %d epoch %d: %w", m.ProducerID, m.ProducerEpoch, ErrInvalidRecord)
	}
	typ := kmsg.ControlRecordKeyType(ControlAbort)
	if m.Commit {
		typ = kmsg.ControlRecordKeyType(ControlCommit)
	}
	key := (&kmsg.ControlRecordKey{Version: 0, Type: typ}).AppendTo(make([]byte, 0, 4))
	value := (&kmsg.EndTxnMarker{Version: 0, CoordinatorEpoch: m.CoordinatorEpoch}).AppendTo(make([]byte, 0, 6))
	rec := Record{Key: key, Value: value, Timestamp: m.Timestamp}
	_, size, err := recordSize(&rec, 0, 0)
	if err != nil {
		return nil, fmt.Errorf("build control batch: %w", err)
	}
	hdr := kmsg.RecordBatch{
		Length:               int32(minLength + size),
		PartitionLeaderEpoch: noLeaderEpoch,
		Magic:                magicV2,
		Attributes:           attrControl | attrTransactional,
		LastOffsetDelta:      0,
		FirstTimestamp:       m.Timestamp,
		MaxTimestamp:         m.Timestamp,
		ProducerID:           m.ProducerID,
		ProducerEpoch:        m.ProducerEpoch,
		FirstSequence:        -1,
		NumRecords:           1,
	}
	enc := recordEncoder{first: m.Timestamp, now: m.Timestamp}
	out, err := enc.appendRecords(hdr.AppendTo(make([]byte, 0, HeaderSize+size)), []Record{rec})
	if err != nil {
		return nil, err
	}
	setCRC(out)
	return out, nil
}

// ParseEndTxnMarker decodes the control record of a transaction marker
// batch (one that Records returned with Header.IsControl): commit is true
// for a commit marker. Other control records wrap ErrInvalidRecord.
func ParseEndTxnMarker(r Record) (commit bool, coordinatorEpoch int32, err error) {
	var k kmsg.ControlRecordKey
	if err := k.ReadFrom(r.Key); err != nil {
		return false, 0, fmt.Errorf("control record key: %v: %w", err, ErrInvalidRecord)
	}
	if k.Version != 0 || (int16(k.Type) != ControlAbort && int16(k.Type) != ControlCommit) {
		return false, 0, fmt.Errorf("control record key version %d type %d is not a transaction marker: %w", k.Version, k.Type, ErrInvalidRecord)
	}
	var v kmsg.EndTxnMarker
	if err := v.ReadFrom(r.Value); err != nil {
		return false, 0, fmt.Errorf("transaction marker value: %v: %w", err, ErrInvalidRecord)
	}
	return int16(k.Type) == ControlCommit, v.CoordinatorEpoch, nil
}
