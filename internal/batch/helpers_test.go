package batch

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

var allCodecs = []Codec{CodecNone, CodecGzip, CodecSnappy, CodecLZ4, CodecZstd}

// textValue returns n bytes of compressible, JSON-like text, the same for
// the same seed.
func textValue(seed uint64, n int) []byte {
	words := []string{"order", "customer", "amount", "status", "shipped", "pending", "region", "eu-west", "us-east", "sku", "quantity", "price"}
	rng := rand.New(rand.NewPCG(seed, 7))
	var sb strings.Builder
	for sb.Len() < n {
		fmt.Fprintf(&sb, `{"%s":"%s","n":%d},`, words[rng.IntN(len(words))], words[rng.IntN(len(words))], rng.IntN(100000))
	}
	return []byte(sb.String()[:n])
}

// mustBuild builds a batch or fails the test.
func mustBuild(tb testing.TB, recs []Record, opts BuildOptions) []byte {
	tb.Helper()
	b, err := Build(recs, opts)
	if err != nil {
		tb.Fatalf("Build: %v", err)
	}
	return b
}

// sizedRecords returns n records with values of size bytes.
func sizedRecords(n, size int) []Record {
	recs := make([]Record, n)
	for i := range recs {
		recs[i] = Record{
			Timestamp: 1_700_000_000_000 + int64(i),
			Key:       fmt.Appendf(nil, "key-%d", i),
			Value:     textValue(uint64(i), size),
		}
	}
	return recs
}

// kmsgRecords encodes records with kmsg alone, as an independent check of
// Build's encoder: each record is encoded once to learn its length, then
// again with it.
func kmsgRecords(recs []kmsg.Record) []byte {
	var out []byte
	for i := range recs {
		r := recs[i]
		r.Length = 0
		body := len(r.AppendTo(nil)) - 1 // a zero length varint is one byte
		r.Length = int32(body)
		out = r.AppendTo(out)
	}
	return out
}

// kmsgBatch frames already encoded (and perhaps compressed) records as a
// batch with kmsg and sets the CRC; edit may change the header first.
func kmsgBatch(codec Codec, numRecords int32, records []byte, edit func(*kmsg.RecordBatch)) []byte {
	rb := kmsg.RecordBatch{
		FirstOffset:          0,
		PartitionLeaderEpoch: -1,
		Magic:                2,
		Attributes:           int16(codec),
		LastOffsetDelta:      numRecords - 1,
		FirstTimestamp:       1_700_000_000_000,
		MaxTimestamp:         1_700_000_000_000 + int64(numRecords),
		ProducerID:           -1,
		ProducerEpoch:        -1,
		FirstSequence:        -1,
		NumRecords:           numRecords,
		Records:              records,
	}
	if edit != nil {
		edit(&rb)
	}
	rb.Length = int32(minLength + len(rb.Records))
	b := rb.AppendTo(nil)
	setCRC(b)
	return b
}

// simpleKmsgRecords returns n kmsg records with offset deltas 0..n-1.
func simpleKmsgRecords(n int) []kmsg.Record {
	recs := make([]kmsg.Record, n)
	for i := range recs {
		recs[i] = kmsg.Record{
			TimestampDelta64: int64(i),
			OffsetDelta:      int32(i),
			Key:              fmt.Appendf(nil, "k%d", i),
			Value:            fmt.Appendf(nil, "value %d", i),
			Headers:          []kmsg.Header{{Key: "h", Value: []byte("v")}},
		}
	}
	return recs
}

func putInt32(b []byte, off int, v int32) { binary.BigEndian.PutUint32(b[off:], uint32(v)) }
func putInt64(b []byte, off int, v int64) { binary.BigEndian.PutUint64(b[off:], uint64(v)) }
