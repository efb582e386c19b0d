package kafka

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/streamhouse/streamhouse/internal/batch"
	"github.com/streamhouse/streamhouse/internal/broker"
	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/objstore"
)

// dpCtx is a bounded context for one data-path test.
func dpCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// dpTopic creates a topic through the broker API.
func (s *testServer) dpTopic(t *testing.T, name string, partitions int32, cfg map[string]string) metadata.Topic {
	t.Helper()
	top, err := s.broker.CreateTopic(context.Background(), broker.TopicSpec{Name: name, Partitions: partitions, Config: cfg}, false)
	if err != nil {
		t.Fatal(err)
	}
	return top
}

// dpHW returns a partition's log start offset and high watermark.
func (s *testServer) dpHW(t *testing.T, topic string, partition int32) (int64, int64) {
	t.Helper()
	ls, hw, err := s.broker.Offsets(context.Background(), topic, partition)
	if err != nil {
		t.Fatal(err)
	}
	return ls, hw
}

// dpConsume reads n records of topic from the start with a new consumer.
func (s *testServer) dpConsume(t *testing.T, ctx context.Context, topic string, n int, opts ...kgo.Opt) []*kgo.Record {
	t.Helper()
	cl := s.client(append([]kgo.Opt{kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}, opts...)...)
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of %d records: %v", len(out), n, err)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		out = append(out, fs.Records()...)
	}
	return out
}

// versionProfiles pin kgo to the protocol versions of older Kafka
// releases, so both ends of every supported range are exercised (Produce
// v5/v8/v9/v13, Fetch v8/v11/v12/v18, Metadata v5/v9/v12/v13).
var versionProfiles = []struct {
	name string
	v    *kversion.Versions
}{
	{"kafka-1.1", kversion.V1_1_0()},
	{"kafka-2.4", kversion.V2_4_0()},
	{"kafka-3.0", kversion.V3_0_0()},
	{"latest", nil},
}

func TestProduceConsumeCodecsAndVersions(t *testing.T) {
	t.Parallel()
	s := startServer(t, testOptions{})
	codecs := []struct {
		name  string
		codec kgo.CompressionCodec
	}{
		{"none", kgo.NoCompression()},
		{"gzip", kgo.GzipCompression()},
		{"snappy", kgo.SnappyCompression()},
		{"lz4", kgo.Lz4Compression()},
		{"zstd", kgo.ZstdCompression()},
	}
	ts := time.UnixMilli(1_700_000_000_000)
	binKey := make([]byte, 256)
	for i := range binKey {
		binKey[i] = byte(i)
	}
	want := []*kgo.Record{
		{Key: []byte("k0"), Value: []byte("v0"), Timestamp: ts, Headers: []kgo.RecordHeader{{Key: "h1", Value: []byte("x")}, {Key: "h1", Value: []byte("dup key")}, {Key: "empty", Value: []byte{}}}},
		{Key: []byte("tombstone"), Value: nil, Timestamp: ts.Add(time.Millisecond)},
		{Key: nil, Value: bytes.Repeat([]byte("compressible "), 500), Timestamp: ts.Add(-time.Hour)},
		{Key: binKey, Value: []byte{}, Timestamp: ts.Add(time.Second)},
	}
	for _, vp := range versionProfiles {
		for _, c := range codecs {
			t.Run(vp.name+"/"+c.name, func(t *testing.T) {
				t.Parallel()
				ctx := dpCtx(t)
				topic := "codec-" + vp.name + "-" + c.name
				s.dpTopic(t, topic, 1, nil)
				var opts []kgo.Opt
				if vp.v != nil {
					opts = append(opts, kgo.MaxVersions(vp.v))
				}
				cl := s.client(append(opts, kgo.DefaultProduceTopic(topic), kgo.ProducerBatchCompression(c.codec), kgo.ProducerLinger(50*time.Millisecond))...)
				// Produced together, so they share one batch.
				var recs []*kgo.Record
				for _, r := range want {
					cp := *r
					recs = append(recs, &cp)
				}
				if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
					t.Fatal(err)
				}
				got := s.dpConsume(t, ctx, topic, len(want), opts...)
				for i, r := range got {
					w := want[i]
					if r.Offset != int64(i) || !bytes.Equal(r.Key, w.Key) || (r.Key == nil) != (w.Key == nil) ||
						!bytes.Equal(r.Value, w.Value) || (r.Value == nil) != (w.Value == nil) || !r.Timestamp.Equal(w.Timestamp) {
						t.Fatalf("record %d: got key %q value %.20q ts %v offset %d; want key %q value %.20q ts %v",
							i, r.Key, r.Value, r.Timestamp, r.Offset, w.Key, w.Value, w.Timestamp)
					}
					if len(r.Headers) != len(w.Headers) {
						t.Fatalf("record %d headers %+v, want %+v", i, r.Headers, w.Headers)
					}
					for j := range r.Headers {
						if r.Headers[j].Key != w.Headers[j].Key || !bytes.Equal(r.Headers[j].Value, w.Headers[j].Value) {
							t.Fatalf("record %d header %d: %+v, want %+v", i, j, r.Headers[j], w.Headers[j])
						}
					}
				}
			})
		}
	}
}

// TestProduceStoresClientBytes checks invariant 5 on the wire: a fetched
// batch is the produced one, byte for byte, with only the base offset and
// partition leader epoch filled in.
func TestProduceStoresClientBytes(t *testing.T) {
	t.Parallel()
	s := startServer(t, testOptions{})
	s.dpTopic(t, "bytes", 1, nil)
	w := s.dpDial(t)
	var sent [][]byte
	for i, codec := range []batch.Codec{batch.CodecNone, batch.CodecGzip, batch.CodecSnappy, batch.CodecLZ4, batch.CodecZstd} {
		opts := batch.DefaultBuildOptions()
		opts.Codec = codec
		b := dpBatch(t, opts, batch.Record{Key: []byte("k"), Value: bytes.Repeat([]byte{byte(i)}, 300), Timestamp: 1000 + int64(i),
			Headers: []batch.RecordHeader{{Key: "h", Value: nil}}}, batch.Record{Value: []byte("second"), Timestamp: 2000})
		sent = append(sent, append([]byte(nil), b...))
		resp := w.do(dpProduceReq(7, "bytes", 0, -1, b)).(*kmsg.ProduceResponse)
		if p := resp.Topics[0].Partitions[0]; p.ErrorCode != 0 || p.BaseOffset != int64(2*i) {
			t.Fatalf("produce %s: %+v", codec, p)
		}
	}
	resp := w.do(dpFetchReq(11, "bytes", map[int32]int64{0: 0})).(*kmsg.FetchResponse)
	got := resp.Topics[0].Partitions[0].RecordBatches
	var want []byte
	for _, b := range sent {
		want = append(want, b...)
	}
	if len(got) != len(want) {
		t.Fatalf("fetched %d bytes, want %d", len(got), len(want))
	}
	for i, b := range sent {
		g := got[:len(b)]
		got = got[len(b):]
		if !bytes.Equal(g[8:12], b[8:12]) || !bytes.Equal(g[16:], b[16:]) {
			t.Fatalf("batch %d differs beyond base offset and leader epoch", i)
		}
		h, err := batch.ParseHeader(g)
		if err != nil || h.BaseOffset != int64(2*i) || h.PartitionLeaderEpoch < 1 {
			t.Fatalf("batch %d header %+v, %v", i, h, err)
		}
	}
}

func TestProduceAcks(t *testing.T) {
	t.Parallel()
	s := startServer(t, testOptions{})
	for _, tc := range []struct {
		name string
		acks kgo.Acks
	}{{"none", kgo.NoAck()}, {"leader", kgo.LeaderAck()}, {"all", kgo.AllISRAcks()}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := dpCtx(t)
			topic := "acks-" + tc.name
			s.dpTopic(t, topic, 3, nil)
			opts := []kgo.Opt{kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(tc.acks)}
			if tc.name != "all" {
				opts = append(opts, kgo.DisableIdempotentWrite())
			}
			cl := s.client(opts...)
			const n = 60
			for i := range n {
				cl.Produce(ctx, &kgo.Record{Key: []byte(fmt.Sprint(i)), Value: []byte("v")}, func(_ *kgo.Record, err error) {
					if err != nil {
						t.Errorf("produce: %v", err)
					}
				})
			}
			if err := cl.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			got := s.dpConsume(t, ctx, topic, n)
			if len(got) != n {
				t.Fatalf("consumed %d records, want %d", len(got), n)
			}
		})
	}
}

func TestProduceIdempotentAndProducerIDs(t *testing.T) {
	t.Parallel()
	s := startServer(t, testOptions{})
	s.dpTopic(t, "idem", 1, nil)
	w := s.dpDial(t)

	ids := map[int64]bool{}
	for v := int16(0); v <= 5; v++ {
		req := kmsg.NewPtrInitProducerIDRequest()
		req.Version = v
		if v >= 3 {
			req.ProducerID, req.ProducerEpoch = 1, 0 // KIP-360: a new ID anyway
		}
		resp := w.do(req).(*kmsg.InitProducerIDResponse)
		if resp.ErrorCode != 0 || resp.ProducerEpoch != 0 || resp.ProducerID < 0 || ids[resp.ProducerID] {
			t.Fatalf("v%d: %+v", v, resp)
		}
		ids[resp.ProducerID] = true
	}
	for _, tc := range []struct {
		id      string
		timeout int32
		code    int16
	}{
		{"", 60000, kerr.InvalidRequest.Code},
		{"txn", 0, kerr.InvalidTransactionTimeout.Code},
		{"txn", -1, kerr.InvalidTransactionTimeout.Code},
		{"txn", 900001, kerr.InvalidTransactionTimeout.Code}, // over transaction.max.timeout.ms
	} {
		req := kmsg.NewPtrInitProducerIDRequest()
		req.Version, req.TransactionalID, req.TransactionTimeoutMillis = 4, kmsg.StringPtr(tc.id), tc.timeout
		if resp := w.do(req).(*kmsg.InitProducerIDResponse); resp.ErrorCode != tc.code || resp.ProducerID != -1 {
			t.Fatalf("transactional id %q, timeout %d: %+v", tc.id, tc.timeout, resp)
		}
	}

	init := kmsg.NewPtrInitProducerIDRequest()
	init.Version = 4
	pid := w.do(init).(*kmsg.InitProducerIDResponse).ProducerID
	produce := func(epoch int16, seq int32, n int) kmsg.ProduceResponseTopicPartition {
		t.Helper()
		recs := make([]batch.Record, n)
		for i := range recs {
			recs[i] = batch.Record{Value: []byte(fmt.Sprint(seq + int32(i)))}
		}
		b := dpBatch(t, batch.BuildOptions{ProducerID: pid, ProducerEpoch: epoch, BaseSequence: seq}, recs...)
		return w.do(dpProduceReq(9, "idem", 0, -1, b)).(*kmsg.ProduceResponse).Topics[0].Partitions[0]
	}
	steps := []struct {
		epoch int16
		seq   int32
		n     int
		code  int16
		base  int64
	}{
		{0, 0, 2, 0, 0},
		{0, 0, 2, 0, 0}, // duplicate: the original offset, no error
		{0, 2, 3, 0, 2},
		{0, 2, 3, 0, 2}, // duplicate again
		{0, 9, 1, kerr.OutOfOrderSequenceNumber.Code, -1},
		{1, 0, 1, 0, 5}, // epoch bump restarts sequences
		{0, 5, 1, kerr.InvalidProducerEpoch.Code, -1},
	}
	for i, st := range steps {
		p := produce(st.epoch, st.seq, st.n)
		if p.ErrorCode != st.code || p.BaseOffset != st.base {
			t.Fatalf("step %d: %+v", i, p)
		}
	}
	if _, hw := s.dpHW(t, "idem", 0); hw != 6 {
		t.Fatalf("high watermark %d, want 6: duplicates were stored", hw)
	}

	// The default kgo producer is idempotent too.
	ctx := dpCtx(t)
	cl := s.client(kgo.DefaultProduceTopic("idem"))
	for i := range 20 {
		cl.Produce(ctx, &kgo.Record{Value: []byte(fmt.Sprint(i))}, nil)
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if _, hw := s.dpHW(t, "idem", 0); hw != 26 {
		t.Fatalf("high watermark %d, want 26", hw)
	}
}

func TestProduceBadInput(t *testing.T) {
	t.Parallel()
	s := startServer(t, testOptions{})
	top := s.dpTopic(t, "bad", 2, map[string]string{"max.message.bytes": "2000"})
	w := s.dpDial(t)
	good := dpBatch(t, batch.DefaultBuildOptions())
	corrupt := append([]byte(nil), good...)
	corrupt[len(corrupt)-1] ^= 0xff
	magic1 := append([]byte(nil), good...)
	magic1[16] = 1
	big := dpBatch(t, batch.DefaultBuildOptions(), batch.Record{Value: make([]byte, 3000)})
	txn := dpSetAttrs(dpBatch(t, batch.BuildOptions{ProducerID: 7, ProducerEpoch: 0, BaseSequence: 0}), 0x10)
	control := dpSetAttrs(good, 0x20)

	cases := []struct {
		name string
		req  *kmsg.ProduceRequest
		code int16
	}{
		{"crc", dpProduceReq(9, "bad", 0, -1, corrupt), kerr.CorruptMessage.Code},
		{"truncated", dpProduceReq(9, "bad", 0, -1, good[:len(good)-3]), kerr.CorruptMessage.Code},
		{"two batches", dpProduceReq(9, "bad", 0, -1, append(append([]byte(nil), good...), good...)), kerr.InvalidRecord.Code},
		{"no batch", dpProduceReq(9, "bad", 0, -1, nil), kerr.InvalidRecord.Code},
		{"magic 1", dpProduceReq(9, "bad", 0, -1, magic1), kerr.InvalidRecord.Code},
		{"control", dpProduceReq(9, "bad", 0, -1, control), kerr.InvalidRecord.Code},
		{"transactional", dpProduceReq(9, "bad", 0, -1, txn), kerr.TransactionalIDAuthorizationFailed.Code},
		{"too large", dpProduceReq(9, "bad", 0, -1, big), kerr.MessageTooLarge.Code},
		{"acks", dpProduceReq(9, "bad", 0, 2, good), kerr.InvalidRequiredAcks.Code},
		{"unknown topic", dpProduceReq(9, "nope", 0, -1, good), kerr.UnknownTopicOrPartition.Code},
		{"unknown partition", dpProduceReq(9, "bad", 7, -1, good), kerr.UnknownTopicOrPartition.Code},
		{"invalid name", dpProduceReq(9, "bad name!", 0, -1, good), kerr.InvalidTopicException.Code},
		{"unknown topic id", func() *kmsg.ProduceRequest {
			r := dpProduceReq(13, "", 0, -1, good)
			r.Topics[0].TopicID = [16]byte{1, 2, 3}
			return r
		}(), kerr.UnknownTopicID.Code},
	}
	dup := dpProduceReq(9, "bad", 1, -1, good)
	dup.Topics[0].Partitions = append(dup.Topics[0].Partitions, kmsg.ProduceRequestTopicPartition{Partition: 1, Records: good})
	cases = append(cases, struct {
		name string
		req  *kmsg.ProduceRequest
		code int16
	}{"duplicate partition", dup, kerr.InvalidRequest.Code})

	for _, tc := range cases {
		resp := w.do(tc.req).(*kmsg.ProduceResponse)
		for _, rt := range resp.Topics {
			for _, p := range rt.Partitions {
				if p.ErrorCode != tc.code || p.BaseOffset != -1 {
					t.Errorf("%s: code %d (%v), base %d; want %d", tc.name, p.ErrorCode, kerr.ErrorForCode(p.ErrorCode), p.BaseOffset, tc.code)
				}
				if p.ErrorMessage == nil || *p.ErrorMessage == "" {
					t.Errorf("%s: no error message", tc.name)
				}
			}
		}
	}
	for p := int32(0); p < 2; p++ {
		if ls, hw := s.dpHW(t, "bad", p); ls != 0 || hw != 0 {
			t.Fatalf("partition %d: offsets %d..%d after bad input, want nothing stored", p, ls, hw)
		}
	}

	// By topic ID (v13) the same batch goes in.
	req := dpProduceReq(13, "", 0, -1, good)
	req.Topics[0].TopicID = top.ID
	if p := w.do(req).(*kmsg.ProduceResponse).Topics[0]; p.TopicID != top.ID || p.Partitions[0].ErrorCode != 0 || p.Partitions[0].BaseOffset != 0 {
		t.Fatalf("produce by topic id: %+v", p)
	}
}

func TestProduceAutoCreateAndLogAppendTime(t *testing.T) {
	t.Parallel()
	s := startServer(t, testOptions{autoCreateTopics: true})
	w := s.dpDial(t)
	good := dpBatch(t, batch.DefaultBuildOptions())
	if p := w.do(dpProduceReq(9, "auto-produced", 0, -1, good)).(*kmsg.ProduceResponse).Topics[0].Partitions[0]; p.ErrorCode != 0 || p.LogAppendTime != -1 {
		t.Fatalf("produce to a new topic: %+v", p)
	}
	if _, hw := s.dpHW(t, "auto-produced", 0); hw != 1 {
		t.Fatalf("high watermark %d", hw)
	}

	s.dpTopic(t, "lat", 1, map[string]string{"message.timestamp.type": "LogAppendTime"})
	before := time.Now().UnixMilli()
	p := w.do(dpProduceReq(9, "lat", 0, 1, dpBatch(t, batch.DefaultBuildOptions(), batch.Record{Value: []byte("x"), Timestamp: 5}))).(*kmsg.ProduceResponse).Topics[0].Partitions[0]
	if p.ErrorCode != 0 || p.LogAppendTime < before || p.LogStartOffset != 0 {
		t.Fatalf("log append time: %+v", p)
	}
	got := s.dpConsume(t, dpCtx(t), "lat", 1)
	if got[0].Timestamp.UnixMilli() != p.LogAppendTime {
		t.Fatalf("record timestamp %v, want the append time %d", got[0].Timestamp, p.LogAppendTime)
	}
}

func TestProduceTimeout(t *testing.T) {
	t.Parallel()
	inner, err := objstore.NewLocal(filepath.Join(t.TempDir(), "storage"))
	if err != nil {
		t.Fatal(err)
	}
	faulty := objstore.NewFaulty(inner)
	s := startServer(t, testOptions{bucket: faulty})
	t.Cleanup(faulty.Release) // before the server's cleanup, which flushes
	s.dpTopic(t, "slow", 1, nil)
	faulty.Inject(objstore.Fault{Op: objstore.OpPut, Hang: true})
	w := s.dpDial(t)
	req := dpProduceReq(9, "slow", 0, -1, dpBatch(t, batch.DefaultBuildOptions()))
	req.TimeoutMillis = 200
	start := time.Now()
	p := w.do(req).(*kmsg.ProduceResponse).Topics[0].Partitions[0]
	if p.ErrorCode != kerr.RequestTimedOut.Code {
		t.Fatalf("durable produce with a hung upload: %+v", p)
	}
	if d := time.Since(start); d < 150*time.Millisecond || d > 10*time.Second {
		t.Fatalf("answered after %v, want about the 200ms timeout", d)
	}
	// acks=1 does not wait for the upload.
	if p := w.do(dpProduceReq(9, "slow", 0, 1, dpBatch(t, batch.DefaultBuildOptions()))).(*kmsg.ProduceResponse).Topics[0].Partitions[0]; p.ErrorCode != 0 || p.BaseOffset != 1 {
		t.Fatalf("acks=1 with a hung upload: %+v", p)
	}
	faulty.Clear()
	faulty.Release()
}

// TestProducePipelinedOrder sends many produce requests on one connection
// before reading any answer, as producers do (up to 5 in flight): they
// must be appended in the order sent, idempotent or not.
func TestProducePipelinedOrder(t *testing.T) {
	t.Parallel()
	s := startServer(t, testOptions{})
	s.dpTopic(t, "pipe", 1, nil)
	w := s.dpDial(t)
	init := kmsg.NewPtrInitProducerIDRequest()
	init.Version = 4
	pid := w.do(init).(*kmsg.InitProducerIDResponse).ProducerID

	const n = 40
	var reqs []*kmsg.ProduceRequest
	var corrs []int32
	for i := range n {
		opts := batch.DefaultBuildOptions()
		if i%2 == 0 { // idempotent and plain requests interleaved
			opts = batch.BuildOptions{ProducerID: pid, ProducerEpoch: 0, BaseSequence: int32(i / 2 * 3)}
		}
		recs := make([]batch.Record, 3)
		for j := range recs {
			recs[j] = batch.Record{Value: []byte(fmt.Sprintf("%03d-%d", i, j)), Timestamp: 1}
		}
		req := dpProduceReq(9, "pipe", 0, int16([]int{-1, 1}[i%2]), dpBatch(t, opts, recs...))
		reqs = append(reqs, req)
		corrs = append(corrs, w.send(req))
	}
	for i, req := range reqs {
		resp, err := w.read(req, corrs[i])
		if err != nil {
			t.Fatal(err)
		}
		if p := resp.(*kmsg.ProduceResponse).Topics[0].Partitions[0]; p.ErrorCode != 0 || p.BaseOffset != int64(3*i) {
			t.Fatalf("request %d: %v, base offset %d", i, kerr.ErrorForCode(p.ErrorCode), p.BaseOffset)
		}
	}
	for i, r := range s.dpConsume(t, dpCtx(t), "pipe", 3*n) {
		if want := fmt.Sprintf("%03d-%d", i/3, i%3); string(r.Value) != want {
			t.Fatalf("offset %d holds %q, want %q", r.Offset, r.Value, want)
		}
	}
}
