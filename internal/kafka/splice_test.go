package kafka

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// A spliced Fetch response is, byte for byte, what kmsg encodes with the
// records in place, at every Fetch version, for record sets of sizes whose
// length prefixes take one, two and three varint bytes, split in pieces,
// next to empty ones, with topic names, aborted transactions and leader
// hints around them.
func TestSpliceMatchesEncoding(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	sizes := []int{0, 1, 126, 127, 128, 16383, 16384, 70000, 300000}
	for v := int16(4); v <= 18; v++ {
		for round := 0; round < 20; round++ {
			ref := kmsg.NewPtrFetchResponse()
			ref.SetVersion(v)
			ref.SessionID = rng.Int32()
			sr := &splicedResponse{Response: kmsg.NewPtrFetchResponse()}
			spl := sr.Response.(*kmsg.FetchResponse)
			spl.SetVersion(v)
			spl.SessionID = ref.SessionID
			for ti := range 1 + rng.IntN(3) {
				rt := kmsg.NewFetchResponseTopic()
				rt.Topic = string(rune('a'+ti)) + "-topic"
				rt.TopicID[0] = byte(ti + 1)
				st := rt
				for pi := range 1 + rng.IntN(4) {
					rp := kmsg.NewFetchResponseTopicPartition()
					rp.Partition = int32(pi)
					rp.HighWatermark, rp.LastStableOffset, rp.LogStartOffset = rng.Int64N(1e9), rng.Int64N(1e9), rng.Int64N(1e9)
					if rng.IntN(3) == 0 {
						at := kmsg.NewFetchResponseTopicPartitionAbortedTransaction()
						at.ProducerID, at.FirstOffset = 7, 9
						rp.AbortedTransactions = append(rp.AbortedTransactions, at)
					}
					if rng.IntN(3) == 0 {
						rp.CurrentLeader.LeaderID, rp.CurrentLeader.LeaderEpoch = 3, 4
					}
					size := sizes[rng.IntN(len(sizes))]
					data := make([]byte, size)
					for i := range data {
						data[i] = byte(rng.Uint32())
					}
					var pieces [][]byte
					for rest := data; len(rest) > 0; {
						n := 1 + rng.IntN(len(rest))
						pieces, rest = append(pieces, rest[:n]), rest[n:]
					}
					sp := rp
					rp.RecordBatches = append([]byte{}, data...)
					sp.RecordBatches = sr.splice(pieces, size)
					rt.Partitions = append(rt.Partitions, rp)
					st.Partitions = append(st.Partitions, sp)
				}
				ref.Topics = append(ref.Topics, rt)
				spl.Topics = append(spl.Topics, st)
			}
			if v >= 16 {
				b := kmsg.NewFetchResponseBroker()
				b.NodeID, b.Host, b.Port = 3, "h", 9092
				ref.Brokers = append(ref.Brokers, b)
				spl.Brokers = append(spl.Brokers, b)
			}
			h := requestHeader{key: fetchKey, version: v, correlationID: 42}
			want := encodeResponse(nil, h, ref)
			bufs, _, err := encodeSpliced(nil, h, sr)
			if err != nil {
				t.Fatalf("v%d: %v", v, err)
			}
			var got []byte
			for _, b := range bufs {
				got = append(got, b...)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("v%d round %d: spliced response differs from kmsg's encoding (%d vs %d bytes)", v, round, len(got), len(want))
			}
			// And it decodes as the response it is.
			back := kmsg.NewPtrFetchResponse()
			back.SetVersion(v)
			if err := back.ReadFrom(got[8+boolInt(v >= 12):]); err != nil {
				t.Fatalf("v%d: decode: %v", v, err)
			}
		}
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// A response whose markers do not match its fields is an error, never a
// frame with the wrong bytes.
func TestSpliceMismatch(t *testing.T) {
	sr := &splicedResponse{Response: kmsg.NewPtrFetchResponse()}
	resp := sr.Response.(*kmsg.FetchResponse)
	resp.SetVersion(12)
	rt := kmsg.NewFetchResponseTopic()
	rp := kmsg.NewFetchResponseTopicPartition()
	rp.RecordBatches = sr.splice([][]byte{[]byte("abc")}, 3)
	rt.Partitions = append(rt.Partitions, rp)
	resp.Topics = append(resp.Topics, rt)
	h := requestHeader{key: fetchKey, version: 12}
	// A field with no marker in the response.
	sr.fields = append(sr.fields, splicedField{pieces: [][]byte{[]byte("x")}, size: 1})
	if _, _, err := encodeSpliced(nil, h, sr); err == nil {
		t.Fatal("two fields for one marker: no error")
	}
	// A marker with no field.
	sr.fields = nil
	if _, _, err := encodeSpliced(nil, h, sr); err == nil {
		t.Fatal("a marker and no fields: no error")
	}
	sr.fields = []splicedField{{pieces: [][]byte{[]byte("abc")}, size: 3}}
	rp2 := rp
	resp.Topics[0].Partitions = append(resp.Topics[0].Partitions, rp2)
	if _, _, err := encodeSpliced(nil, h, sr); err == nil {
		t.Fatal("two markers for one field: no error")
	}
}
