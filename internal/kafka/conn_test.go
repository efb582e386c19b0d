package kafka

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/batch"
	"github.com/streamhouse/streamhouse/internal/metadata"
)

// TestConnBadInput sends what a client must never send; each connection is
// closed, nothing is stored, and the server goes on serving others.
func TestConnBadInput(t *testing.T) {
	t.Parallel()
	s := startServer(t, testOptions{})
	s.dpTopic(t, "conn", 1, nil)
	good := dpBatch(t, batch.DefaultBuildOptions())

	header := func(key, version int16) []byte {
		var b []byte
		b = kbin.AppendInt16(b, key)
		b = kbin.AppendInt16(b, version)
		b = kbin.AppendInt32(b, 1)
		return kbin.AppendNullableString(b, nil)
	}
	truncated := dpFrame(dpProduceReq(9, "conn", 0, -1, good), 1)
	truncated = truncated[:len(truncated)-10]
	badAcks0 := dpProduceReq(9, "conn", 0, 0, good[:len(good)-1]) // acks=0 with a corrupt batch
	for _, tc := range []struct {
		name  string
		frame []byte // sent with a correct size prefix
		raw   []byte // sent as is
	}{
		{name: "unknown api key", frame: append(header(9999, 0), 0, 0, 0, 0)},
		{name: "api key of a broker-only api", frame: append(header(4, 0), make([]byte, 16)...)}, // LeaderAndIsr
		{name: "produce v2 (below our minimum)", frame: header(0, 2)},
		{name: "fetch v99", frame: header(1, 99)},
		{name: "truncated header", frame: []byte{0, 1, 0}},
		{name: "truncated body", frame: truncated},
		{name: "garbage", frame: []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")},
		{name: "size below a header", raw: []byte{0, 0, 0, 3, 1, 2, 3}},
		{name: "negative size", raw: []byte{0xff, 0xff, 0xff, 0xfe}},
		{name: "size above the limit", raw: binary.BigEndian.AppendUint32(nil, 200<<20)},
		{name: "acks=0 produce that fails", frame: dpFrame(badAcks0, 1)},
	} {
		w := s.dpDial(t)
		if tc.raw != nil {
			if _, err := w.nc.Write(tc.raw); err != nil {
				t.Fatal(err)
			}
		} else {
			w.writeRaw(tc.frame)
		}
		if !w.closed(10 * time.Second) {
			t.Errorf("%s: connection left open", tc.name)
		}
	}
	if ls, hw := s.dpHW(t, "conn", 0); ls != 0 || hw != 0 {
		t.Fatalf("offsets %d..%d after bad input", ls, hw)
	}

	// A good acks=0 produce gets no response, and the connection goes on.
	w := s.dpDial(t)
	w.send(dpProduceReq(9, "conn", 0, 0, good))
	req := kmsg.NewPtrApiVersionsRequest()
	req.Version = 3
	req.ClientSoftwareName, req.ClientSoftwareVersion = "dp", "1"
	if resp := w.do(req).(*kmsg.ApiVersionsResponse); resp.ErrorCode != 0 {
		t.Fatalf("api versions after acks=0: %v", kerr.ErrorForCode(resp.ErrorCode))
	}
	// acks=0 answers before the commit: wait for it, bounded.
	top, err := s.broker.Topic(dpCtx(t), "conn")
	if err != nil {
		t.Fatal(err)
	}
	timeout := time.After(10 * time.Second)
	for {
		changed := s.broker.Watch(metadata.TopicPartition{TopicID: top.ID, Partition: 0})
		if _, hw := s.dpHW(t, "conn", 0); hw == 1 {
			break
		}
		select {
		case <-changed:
		case <-timeout:
			t.Fatal("acks=0 produce never committed")
		}
	}

	// Pipelined requests are answered in order.
	var corrs []int32
	var reqs []kmsg.Request
	for i := range 20 {
		var r kmsg.Request
		switch i % 3 {
		case 0:
			r = dpMetadataReq(12, false, "conn")
		case 1:
			r = dpListReq(7, "conn", 0, -1)
		default:
			r = dpProduceReq(9, "conn", 0, 1, dpBatch(t, batch.DefaultBuildOptions()))
		}
		reqs = append(reqs, r)
		corrs = append(corrs, w.send(r))
	}
	for i, r := range reqs {
		if _, err := w.read(r, corrs[i]); err != nil {
			t.Fatalf("pipelined request %d: %v", i, err)
		}
	}

	// The server still serves a real client.
	ctx := dpCtx(t)
	cl := s.client(kgo.DefaultProduceTopic("conn"))
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("still here")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
}
