package kafka

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/batch"
)

// Raw wire helpers for the data-path tests: requests sent at exactly the
// version set on them (a kgo client always picks the highest), frames
// built by hand for bad input, and the fuzz seed corpus.

// dpFrame encodes a request as conn.parse receives it: header and body,
// without the size prefix.
func dpFrame(req kmsg.Request, corr int32) []byte {
	var b []byte
	b = kbin.AppendInt16(b, req.Key())
	b = kbin.AppendInt16(b, req.GetVersion())
	b = kbin.AppendInt32(b, corr)
	b = kbin.AppendNullableString(b, kmsg.StringPtr("dp-test"))
	if req.IsFlexible() {
		b = append(b, 0) // no header tags
	}
	return req.AppendTo(b)
}

// dpWire is one raw connection to a test server.
type dpWire struct {
	t    *testing.T
	nc   net.Conn
	br   *bufio.Reader
	corr int32
}

func (s *testServer) dpDial(t *testing.T) *dpWire {
	t.Helper()
	nc, err := net.DialTimeout("tcp", s.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	return &dpWire{t: t, nc: nc, br: bufio.NewReader(nc)}
}

// writeRaw sends a frame with its size prefix.
func (w *dpWire) writeRaw(frame []byte) {
	w.t.Helper()
	_ = w.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := w.nc.Write(binary.BigEndian.AppendUint32(nil, uint32(len(frame)))); err != nil {
		w.t.Fatal(err)
	}
	if _, err := w.nc.Write(frame); err != nil {
		w.t.Fatal(err)
	}
}

// send writes req at its version and returns its correlation ID.
func (w *dpWire) send(req kmsg.Request) int32 {
	w.t.Helper()
	w.corr++
	w.writeRaw(dpFrame(req, w.corr))
	return w.corr
}

// read reads the next response, which must answer req sent as corr.
func (w *dpWire) read(req kmsg.Request, corr int32) (kmsg.Response, error) {
	_ = w.nc.SetReadDeadline(time.Now().Add(20 * time.Second))
	var size [4]byte
	if _, err := io.ReadFull(w.br, size[:]); err != nil {
		return nil, err
	}
	buf := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(w.br, buf); err != nil {
		return nil, err
	}
	r := kbin.Reader{Src: buf}
	if got := r.Int32(); got != corr {
		return nil, fmt.Errorf("correlation ID %d, want %d", got, corr)
	}
	resp := req.ResponseKind()
	if resp.IsFlexible() && req.Key() != apiVersionsKey {
		skipTags(&r)
	}
	if !r.Ok() {
		return nil, fmt.Errorf("truncated response header")
	}
	return resp, resp.ReadFrom(r.Src)
}

// do sends req at its version and returns the response.
func (w *dpWire) do(req kmsg.Request) kmsg.Response {
	w.t.Helper()
	resp, err := w.read(req, w.send(req))
	if err != nil {
		w.t.Fatalf("api key %d v%d: %v", req.Key(), req.GetVersion(), err)
	}
	return resp
}

// closed reports whether the server closed the connection (reading gives
// EOF or a reset rather than a timeout).
func (w *dpWire) closed(within time.Duration) bool {
	_ = w.nc.SetReadDeadline(time.Now().Add(within))
	var b [1]byte
	_, err := w.br.Read(b[:])
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return false
	}
	return err != nil
}

// dpBatch builds one RecordBatch v2 as a producer would send it.
func dpBatch(t testing.TB, opts batch.BuildOptions, recs ...batch.Record) []byte {
	t.Helper()
	if len(recs) == 0 {
		recs = []batch.Record{{Key: []byte("k"), Value: []byte("v")}}
	}
	b, err := batch.Build(recs, opts)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// dpSetAttrs ORs attribute bits into a batch and fixes its CRC.
func dpSetAttrs(b []byte, bits uint16) []byte {
	b = append([]byte(nil), b...)
	binary.BigEndian.PutUint16(b[21:], binary.BigEndian.Uint16(b[21:])|bits)
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)))
	return b
}

// dpProduceReq is a one-partition produce request.
func dpProduceReq(version int16, topic string, partition int32, acks int16, records []byte) *kmsg.ProduceRequest {
	req := kmsg.NewPtrProduceRequest()
	req.Version = version
	req.Acks = acks
	req.TimeoutMillis = 10000
	req.Topics = []kmsg.ProduceRequestTopic{{Topic: topic, Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: partition, Records: records}}}}
	return req
}

// dpFetchReq is a sessionless fetch of the given partitions from their
// offsets.
func dpFetchReq(version int16, topic string, offsets map[int32]int64) *kmsg.FetchRequest {
	req := kmsg.NewPtrFetchRequest()
	req.Version = version
	req.ReplicaID = -1
	req.MaxBytes = 50 << 20
	req.MinBytes = 1
	rt := kmsg.FetchRequestTopic{Topic: topic}
	for p := int32(0); p < int32(len(offsets)); p++ {
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = p, offsets[p], 1<<20
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = []kmsg.FetchRequestTopic{rt}
	return req
}
