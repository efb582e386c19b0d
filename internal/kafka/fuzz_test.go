package kafka

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/batch"
	"github.com/streamhouse/streamhouse/internal/broker"
	"github.com/streamhouse/streamhouse/internal/metadata/metadatatest"
	"github.com/streamhouse/streamhouse/internal/objstore"
	"github.com/streamhouse/streamhouse/internal/partlog"
	"github.com/streamhouse/streamhouse/internal/txn"
)

// fuzzHandled are the keys whose handlers FuzzRequest runs on what parses;
// every other key is only parsed.
var fuzzHandled = map[int16]bool{
	produceKey: true, fetchKey: true, listOffsetsKey: true, metadataKey: true,
	initProducerIDKey: true, offsetForLeaderEpochKey: true, apiVersionsKey: true,
	addPartitionsToTxnKey: true, addOffsetsToTxnKey: true, endTxnKey: true, writeTxnMarkersKey: true,
	txnOffsetCommitKey: true, describeProducersKey: true, describeTransactionsKey: true, listTransactionsKey: true,
	describeClientQuotasKey: true, alterClientQuotasKey: true,
}

// dpServerTB is a Server over a real broker (SQLite, local folder) with a
// topic "fuzz" of two partitions, serving on a random port, for callers
// that have a testing.TB rather than a *testing.T (fuzz targets and
// benchmarks). It returns the server and its address.
func dpServerTB(tb testing.TB) (*Server, string) {
	tb.Helper()
	ctx := context.Background()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	store := metadatatest.OpenSQLite(tb)
	bucket, err := objstore.NewLocal(filepath.Join(tb.TempDir(), "storage"))
	if err != nil {
		tb.Fatal(err)
	}
	verifier := &txnVerifier{}
	plog, err := partlog.Open(ctx, partlog.Config{AgentID: "tb", Bucket: bucket, Store: store, Logger: logger, VerifyTxn: verifier.verify})
	if err != nil {
		tb.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	b, err := broker.New(ctx, broker.Config{AgentID: "tb", Addr: ln.Addr().String(), Store: store, Log: plog, Logger: logger})
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := b.CreateTopic(ctx, broker.TopicSpec{Name: "fuzz", Partitions: 2}, false); err != nil {
		tb.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	go b.Run(runCtx)
	co, err := txn.New(txn.Config{Backend: b, Logger: logger, CompletionWait: 100 * time.Millisecond})
	if err != nil {
		tb.Fatal(err)
	}
	verifier.c.Store(co)
	coDone := make(chan struct{})
	go func() { defer close(coDone); co.Run(runCtx) }()
	srv := New(Config{Broker: b, Logger: logger, AdvertisedAddr: ln.Addr().String(), DefaultPartitions: 1, Txn: co})
	go func() { _ = srv.Serve(ln) }()
	tb.Cleanup(func() {
		_ = srv.Close()
		stop()
		<-coDone
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = b.Shutdown(cctx)
		_ = plog.Close(cctx)
	})
	return srv, ln.Addr().String()
}

// FuzzRequest feeds arbitrary frames (a request without its size prefix)
// to conn.parse and, for the data-path keys, to the handler, then encodes
// the answer. Nothing may panic: handlers run here without the recover
// the connection puts around them.
func FuzzRequest(f *testing.F) {
	srv, _ := dpServerTB(f)
	nc, peer := net.Pipe()
	f.Cleanup(func() { _ = nc.Close(); _ = peer.Close() })
	c := newConn(srv, nc)
	f.Cleanup(c.close)
	f.Fuzz(func(t *testing.T, frame []byte) {
		p, fn, req, err := c.parse(frame)
		if err != nil {
			return
		}
		if fn == nil {
			encodeResponse(nil, p.hdr, p.resp)
			return
		}
		if !fuzzHandled[p.hdr.key] {
			return
		}
		// Keep every input quick: no long polls, no long durable waits.
		switch r := req.(type) {
		case *kmsg.FetchRequest:
			r.MaxWaitMillis = min(r.MaxWaitMillis, 10)
		case *kmsg.ProduceRequest:
			if r.TimeoutMillis <= 0 || r.TimeoutMillis > 2000 {
				r.TimeoutMillis = 2000
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, err := fn(ctx, c, req)
		if sr, ok := resp.(*splicedResponse); ok && err == nil {
			if _, _, err := encodeSpliced(nil, p.hdr, sr); err != nil {
				t.Fatalf("fetch response: %v", err)
			}
		} else if err == nil && resp != nil {
			encodeResponse(nil, p.hdr, resp)
		}
	})
}

// fuzzSeeds are real requests of the data-path keys at the edges of their
// version ranges.
func fuzzSeeds(tb testing.TB) map[string]kmsg.Request {
	good := dpBatch(tb, batch.DefaultBuildOptions(), batch.Record{Key: []byte("k"), Value: []byte("v"), Timestamp: 1})
	gz := dpBatch(tb, batch.BuildOptions{Codec: batch.CodecGzip, ProducerID: 1, ProducerEpoch: 0, BaseSequence: 0}, batch.Record{Value: []byte("z"), Timestamp: 1})
	seeds := map[string]kmsg.Request{
		"produce-v3":  dpProduceReq(3, "fuzz", 0, -1, good),
		"produce-v9":  dpProduceReq(9, "fuzz", 1, 1, gz),
		"produce-v13": dpProduceReq(13, "", 0, -1, good),
		"fetch-v4":    dpFetchReq(4, "fuzz", map[int32]int64{0: 0, 1: 0}),
		"fetch-v12":   dpFetchReq(12, "fuzz", map[int32]int64{0: 0}),
		"fetch-v18":   dpFetchReq(18, "", map[int32]int64{0: 0}),
		"list-v1":     dpListReq(1, "fuzz", 0, -2),
		"list-v7":     dpListReq(7, "fuzz", 1, -3),
		"list-v10":    dpListReq(10, "fuzz", 0, 1000),
		"metadata-v0": dpMetadataReq(0, false, "fuzz"),
		"metadata-v9": dpMetadataReq(9, true, "fuzz", "other"),
		"metadata-v13": func() kmsg.Request {
			r := dpMetadataReq(13, false)
			r.Topics = []kmsg.MetadataRequestTopic{{TopicID: [16]byte{1}}}
			return r
		}(),
	}
	incr := dpFetchReq(13, "", map[int32]int64{0: 0})
	incr.SessionID, incr.SessionEpoch = 1, 1
	incr.ForgottenTopics = []kmsg.FetchRequestForgottenTopic{{Partitions: []int32{1}}}
	seeds["fetch-v13-incremental"] = incr
	for _, v := range []int16{0, 3, 5} {
		r := kmsg.NewPtrInitProducerIDRequest()
		r.Version = v
		if v == 5 {
			r.TransactionalID, r.TransactionTimeoutMillis = kmsg.StringPtr("txn"), 60000
		}
		seeds[fmt.Sprintf("init-producer-id-v%d", v)] = r
	}
	for _, v := range []int16{2, 4} {
		r := kmsg.NewPtrOffsetForLeaderEpochRequest()
		r.Version, r.ReplicaID = v, -1
		r.Topics = []kmsg.OffsetForLeaderEpochRequestTopic{{Topic: "fuzz", Partitions: []kmsg.OffsetForLeaderEpochRequestTopicPartition{{Partition: 0, CurrentLeaderEpoch: -1, LeaderEpoch: 1}}}}
		seeds[fmt.Sprintf("offset-for-leader-epoch-v%d", v)] = r
	}
	for _, v := range []int16{0, 3} {
		r := kmsg.NewPtrAddPartitionsToTxnRequest()
		r.Version, r.TransactionalID, r.ProducerID, r.ProducerEpoch = v, "txn", 1, 0
		r.Topics = []kmsg.AddPartitionsToTxnRequestTopic{{Topic: "fuzz", Partitions: []int32{0, 1}}}
		seeds[fmt.Sprintf("add-partitions-to-txn-v%d", v)] = r
		ao := kmsg.NewPtrAddOffsetsToTxnRequest()
		ao.Version, ao.TransactionalID, ao.ProducerID, ao.Group = v, "txn", 1, "g"
		seeds[fmt.Sprintf("add-offsets-to-txn-v%d", v)] = ao
		et := kmsg.NewPtrEndTxnRequest()
		et.Version, et.TransactionalID, et.ProducerID, et.Commit = v, "txn", 1, v == 3
		seeds[fmt.Sprintf("end-txn-v%d", v)] = et
		oc := kmsg.NewPtrTxnOffsetCommitRequest()
		oc.Version, oc.TransactionalID, oc.Group, oc.ProducerID = v, "txn", "g", 1
		oc.Topics = []kmsg.TxnOffsetCommitRequestTopic{{Topic: "fuzz", Partitions: []kmsg.TxnOffsetCommitRequestTopicPartition{{Partition: 0, Offset: 1}}}}
		seeds[fmt.Sprintf("txn-offset-commit-v%d", v)] = oc
	}
	wm := kmsg.NewPtrWriteTxnMarkersRequest()
	wm.Version = 1
	wm.Markers = []kmsg.WriteTxnMarkersRequestMarker{{ProducerID: 1, Committed: true, Topics: []kmsg.WriteTxnMarkersRequestMarkerTopic{{Topic: "fuzz", Partitions: []int32{0}}}}}
	seeds["write-txn-markers-v1"] = wm
	dp := kmsg.NewPtrDescribeProducersRequest()
	dp.Topics = []kmsg.DescribeProducersRequestTopic{{Topic: "fuzz", Partitions: []int32{0, 1}}}
	seeds["describe-producers-v0"] = dp
	dt := kmsg.NewPtrDescribeTransactionsRequest()
	dt.TransactionalIDs = []string{"txn", ""}
	seeds["describe-transactions-v0"] = dt
	lt := kmsg.NewPtrListTransactionsRequest()
	lt.Version, lt.StateFilters, lt.TransactionalIDPattern = 2, []string{"Ongoing"}, kmsg.StringPtr("t.*")
	seeds["list-transactions-v2"] = lt
	return seeds
}

// TestFuzzCorpus keeps the committed seed corpus in step with fuzzSeeds;
// run with STREAMHOUSE_WRITE_FUZZ_CORPUS=1 to rewrite it.
func TestFuzzCorpus(t *testing.T) {
	t.Parallel()
	dir := filepath.Join("testdata", "fuzz", "FuzzRequest")
	write := os.Getenv("STREAMHOUSE_WRITE_FUZZ_CORPUS") != ""
	if write {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, req := range fuzzSeeds(t) {
		want := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", dpFrame(req, 1))
		path := filepath.Join(dir, name)
		if write {
			if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != want {
			t.Errorf("seed %s is missing or stale (%v); rewrite with STREAMHOUSE_WRITE_FUZZ_CORPUS=1", name, err)
		}
	}
}
