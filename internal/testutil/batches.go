package testutil

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/batch"
)

// Hostile record batches: each is framed correctly (Length and CRC-32C
// agree with its bytes), so only a broker that looks inside the records
// can tell it apart from a good one.

// FramedBatch returns a v2 batch of numRecords records whose records area
// is exactly records (compressed with codec or not), with timestamps
// firstTs..maxTs, no producer, and a correct CRC.
func FramedBatch(codec batch.Codec, numRecords int32, records []byte, firstTs, maxTs int64) []byte {
	rb := kmsg.RecordBatch{
		PartitionLeaderEpoch: -1,
		Magic:                2,
		Attributes:           int16(codec),
		LastOffsetDelta:      numRecords - 1,
		FirstTimestamp:       firstTs,
		MaxTimestamp:         maxTs,
		ProducerID:           -1,
		ProducerEpoch:        -1,
		FirstSequence:        -1,
		NumRecords:           numRecords,
		Records:              records,
	}
	rb.Length = int32(batch.HeaderSize - 12 + len(records))
	b := rb.AppendTo(nil)
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)))
	return b
}

// GarbageBatch is a batch marked compressed with codec whose records area
// is not data of that codec: the poison batch a broker that checks only
// the CRC stores, and every reader then fails on.
func GarbageBatch(codec batch.Codec, timestamp int64) []byte {
	return FramedBatch(codec, 3, []byte("these bytes are not compressed records, whatever the codec says"), timestamp, timestamp)
}

// BombBatch builds a batch of n records, each with a value of size 'x'
// bytes, compressed with codec: a few KB that decompress to n*size bytes.
func BombBatch(t testing.TB, codec batch.Codec, n, size int, timestamp int64) []byte {
	t.Helper()
	value := bytes.Repeat([]byte{'x'}, size)
	recs := make([]batch.Record, n)
	for i := range recs {
		recs[i] = batch.Record{Value: value, Timestamp: timestamp}
	}
	b, err := batch.Build(recs, batch.BuildOptions{Codec: codec, ProducerID: -1})
	if err != nil {
		t.Fatalf("build bomb: %v", err)
	}
	return b
}
