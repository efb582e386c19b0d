package grpcapi

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/metadata/metadatatest"
	pb "github.com/streamhouse/streamhouse/proto/streamhousepb"
)

// A transaction_id names its transactional ID, producer, epoch and start,
// and nothing else is taken for one.
func TestTxnTokenRoundTripAndStaleness(t *testing.T) {
	t.Parallel()
	tok := txnToken{id: "orders-tx", producerID: 42, epoch: 3, startMs: 1_700_000_000_123}
	got, err := txnTokenArg(tok.String())
	if err != nil || got != tok {
		t.Fatalf("round trip: %+v %v, want %+v", got, err, tok)
	}
	for _, bad := range []string{"", "x", "AAAA", "Ag" + tok.String()[2:], tok.String() + "!", strings.Repeat("A", 50000)} {
		if _, err := txnTokenArg(bad); err == nil {
			t.Errorf("%.20q: accepted", bad)
		}
	}
	start := time.UnixMilli(tok.startMs)
	open := metadata.Txn{TransactionalID: tok.id, ProducerID: 42, ProducerEpoch: 3, State: metadata.TxnOngoing, StartedAt: start}
	if r := staleReason(open, tok); r != "" {
		t.Fatalf("the open transaction: %s", r)
	}
	for name, st := range map[string]metadata.Txn{
		"fenced":    {ProducerID: 42, ProducerEpoch: 4, State: metadata.TxnOngoing, StartedAt: start},
		"new id":    {ProducerID: 43, ProducerEpoch: 0, State: metadata.TxnOngoing, StartedAt: start},
		"committed": {ProducerID: 42, ProducerEpoch: 3, State: metadata.TxnCompleteCommit},
		"deciding":  {ProducerID: 42, ProducerEpoch: 3, State: metadata.TxnPrepareAbort, StartedAt: start},
		"a later":   {ProducerID: 42, ProducerEpoch: 3, State: metadata.TxnOngoing, StartedAt: start.Add(time.Millisecond)},
	} {
		if r := staleReason(st, tok); r == "" {
			t.Errorf("%s: the transaction_id was taken as current", name)
		}
	}
}

// txnProducer is a transactional gRPC producer in a test.
type txnProducer struct {
	e     *env
	id    string
	epoch uint32
	seq   map[uint32]int64
}

func (e *env) initTxn(t *testing.T, txnID string) *txnProducer {
	t.Helper()
	r, err := e.c.InitProducer(testCtx(t), &pb.InitProducerRequest{TransactionalId: ptr(txnID), TimeoutMs: 60000})
	if err != nil {
		t.Fatalf("InitProducer %s: %v", txnID, err)
	}
	return &txnProducer{e: e, id: r.ProducerId, epoch: r.Epoch, seq: map[uint32]int64{}}
}

func (p *txnProducer) begin(t *testing.T) string {
	t.Helper()
	r, err := p.e.c.BeginTransaction(testCtx(t), &pb.BeginTransactionRequest{ProducerId: p.id, ProducerEpoch: p.epoch})
	if err != nil {
		t.Fatalf("BeginTransaction: %v", err)
	}
	return r.TransactionId
}

func (p *txnProducer) produce(ctx context.Context, txnID, topic string, partition uint32, values ...string) (*pb.ProduceBatchResponse, error) {
	recs := make([]*pb.Record, len(values))
	for i, v := range values {
		recs[i] = &pb.Record{Value: []byte(v)}
	}
	r, err := p.e.c.ProduceBatch(ctx, &pb.ProduceBatchRequest{
		Topic: topic, Partition: partition, Records: recs, TransactionId: ptr(txnID), AckMode: pb.AckMode_ACK_DURABLE,
		ProducerId: ptr(p.id), ProducerEpoch: ptr(p.epoch), BaseSequence: ptr(p.seq[partition]),
	})
	if err == nil {
		p.seq[partition] += int64(len(values))
	}
	return r, err
}

func (p *txnProducer) heartbeat(t *testing.T, txnID string) *pb.HeartbeatResponse {
	t.Helper()
	req := &pb.HeartbeatRequest{ProducerId: p.id, ProducerEpoch: p.epoch}
	if txnID != "" {
		req.TransactionId = ptr(txnID)
	}
	r, err := p.e.c.Heartbeat(testCtx(t), req)
	if err != nil {
		t.Fatalf("Heartbeat: %v", err)
	}
	return r
}

func valuesOf(recs []*pb.ConsumedRecord) string {
	var out []string
	for _, r := range recs {
		out = append(out, string(r.Value))
	}
	return strings.Join(out, ",")
}

// waitConsume polls Consume until the partition's values are want (the
// markers follow the commit's answer), failing after a bound.
func (e *env) waitConsume(t *testing.T, topic string, partition uint32, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := valuesOf(e.consumeAll(t, topic, partition, 0))
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s/%d holds %q, want %q", topic, partition, got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The gRPC transaction methods end to end on one agent: records of an open
// transaction (and everything after them) are not read, a commit makes
// them visible on every partition, an abort never does, a transaction_id
// is good for its own transaction only, and a second InitProducer fences
// the first producer.
// On both metadata backends.
func TestTransactionCommitAbortAndFencing(t *testing.T) {
	t.Parallel()
	for name, open := range metadatatest.Backends(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testTransactionCommitAbortAndFencing(t, newEnvOn(t, ServerOptions{}, open(t)))
		})
	}
}

func testTransactionCommitAbortAndFencing(t *testing.T, e *env) {
	ctx := testCtx(t)
	e.createTopic(t, "t", 2, nil)
	p := e.initTxn(t, "tx")
	if hb := p.heartbeat(t, ""); !hb.Valid {
		t.Fatalf("heartbeat of a new transactional producer: %s", hb.GetError())
	}

	tx1 := p.begin(t)
	if hb := p.heartbeat(t, tx1); !hb.Valid {
		t.Fatalf("heartbeat of an open transaction: %s", hb.GetError())
	}
	_, err := p.e.c.BeginTransaction(ctx, &pb.BeginTransactionRequest{ProducerId: p.id, ProducerEpoch: p.epoch})
	wantCode(t, "a second BeginTransaction while one is open", err, codes.FailedPrecondition)
	if _, err := p.produce(ctx, tx1, "t", 0, "c1", "c2"); err != nil {
		t.Fatalf("transactional produce: %v", err)
	}
	if _, err := p.produce(ctx, tx1, "t", 1, "c3"); err != nil {
		t.Fatalf("transactional produce: %v", err)
	}
	// A plain record after the open transaction waits behind it.
	if _, err := e.c.Produce(ctx, &pb.ProduceRequest{Topic: "t", Partition: 0, Value: []byte("plain")}); err != nil {
		t.Fatal(err)
	}
	if got := e.consumeAll(t, "t", 0, 0); len(got) != 0 {
		t.Fatalf("read records of an open transaction: %s", valuesOf(got))
	}
	before := time.Now().UnixMilli()
	cr, err := e.c.CommitTransaction(ctx, &pb.CommitTransactionRequest{ProducerId: p.id, ProducerEpoch: p.epoch, TransactionId: tx1})
	if err != nil || !cr.Success {
		t.Fatalf("commit: %+v %v", cr, err)
	}
	if ts := int64(cr.CommitTimestamp); ts < before || ts > time.Now().UnixMilli() {
		t.Fatalf("commit_timestamp %d is not the time of the commit (%d..now)", ts, before)
	}
	e.waitConsume(t, "t", 0, "c1,c2,plain")
	e.waitConsume(t, "t", 1, "c3")

	// tx1 is over: it cannot be aborted, nor written to; a retried commit
	// succeeds while its markers are written, then names its final state.
	_, err = e.c.AbortTransaction(ctx, &pb.AbortTransactionRequest{ProducerId: p.id, ProducerEpoch: p.epoch, TransactionId: tx1})
	wantCode(t, "abort of a committed transaction", err, codes.FailedPrecondition)
	_, err = e.c.CommitTransaction(ctx, &pb.CommitTransactionRequest{ProducerId: p.id, ProducerEpoch: p.epoch, TransactionId: tx1})
	if err != nil && (status.Code(err) != codes.FailedPrecondition || !strings.Contains(status.Convert(err).Message(), "CompleteCommit")) {
		t.Fatalf("a retried commit: %v, want success or FailedPrecondition naming CompleteCommit", err)
	}
	_, err = p.produce(ctx, tx1, "t", 0, "late")
	wantCode(t, "produce to an ended transaction", err, codes.FailedPrecondition)
	if hb := p.heartbeat(t, tx1); hb.Valid {
		t.Fatal("heartbeat calls an ended transaction valid")
	}

	// An aborted transaction is never read; what follows it is.
	tx2 := p.begin(t)
	if _, err := p.produce(ctx, tx2, "t", 0, "ABORTED"); err != nil {
		t.Fatal(err)
	}
	ar, err := e.c.AbortTransaction(ctx, &pb.AbortTransactionRequest{ProducerId: p.id, ProducerEpoch: p.epoch, TransactionId: tx2})
	if err != nil || !ar.Success {
		t.Fatalf("abort: %+v %v", ar, err)
	}
	if _, err := e.c.Produce(ctx, &pb.ProduceRequest{Topic: "t", Partition: 0, Value: []byte("after")}); err != nil {
		t.Fatal(err)
	}
	e.waitConsume(t, "t", 0, "c1,c2,plain,after")

	// Subscribe reads committed too.
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sub, err := e.c.Subscribe(sctx, &pb.SubscribeRequest{Topic: "t", Partition: 0, Offset: ptr[uint64](0)})
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	for len(seen) < 4 {
		m, err := sub.Recv()
		if err != nil {
			t.Fatalf("subscribe after %v: %v", seen, err)
		}
		for _, r := range m.Records {
			seen = append(seen, string(r.Value))
		}
	}
	if got := strings.Join(seen, ","); got != "c1,c2,plain,after" {
		t.Fatalf("subscribe read %s", got)
	}
	cancel()

	// A second InitProducer of the ID fences the first producer.
	tx3 := p.begin(t)
	if _, err := p.produce(ctx, tx3, "t", 1, "ZOMBIE"); err != nil {
		t.Fatal(err)
	}
	q := e.initTxn(t, "tx")
	if q.id == p.id && q.epoch <= p.epoch {
		t.Fatalf("the second InitProducer got producer %s epoch %d, the first had epoch %d", q.id, q.epoch, p.epoch)
	}
	if hb := p.heartbeat(t, ""); hb.Valid {
		t.Fatal("heartbeat calls a fenced producer valid")
	}
	_, err = e.c.CommitTransaction(ctx, &pb.CommitTransactionRequest{ProducerId: p.id, ProducerEpoch: p.epoch, TransactionId: tx3})
	wantCode(t, "commit by a fenced producer", err, codes.FailedPrecondition)
	_, err = p.produce(ctx, tx3, "t", 1, "ZOMBIE2")
	wantCode(t, "produce by a fenced producer", err, codes.FailedPrecondition)
	tx4 := q.begin(t)
	if _, err := q.produce(ctx, tx4, "t", 1, "c4"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.CommitTransaction(ctx, &pb.CommitTransactionRequest{ProducerId: q.id, ProducerEpoch: q.epoch, TransactionId: tx4}); err != nil {
		t.Fatal(err)
	}
	e.waitConsume(t, "t", 1, "c3,c4")
}

// A transactional producer's heartbeat reads the coordinator's state, and
// BeginTransaction refuses a timeout other than the one InitProducer set.
func TestTransactionTimeoutIsInitProducers(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ServerOptions{})
	p := e.initTxn(t, "tx-timeout")
	_, err := e.c.BeginTransaction(testCtx(t), &pb.BeginTransactionRequest{ProducerId: p.id, ProducerEpoch: p.epoch, TimeoutMs: 5000})
	wantCode(t, "BeginTransaction with another timeout", err, codes.InvalidArgument)
	if _, err := e.c.BeginTransaction(testCtx(t), &pb.BeginTransactionRequest{ProducerId: p.id, ProducerEpoch: p.epoch, TimeoutMs: 60000}); err != nil {
		t.Fatalf("BeginTransaction with InitProducer's timeout: %v", err)
	}
	pid, _ := strconv.ParseInt(p.id, 10, 64)
	_, err = e.c.BeginTransaction(testCtx(t), &pb.BeginTransactionRequest{ProducerId: fmt.Sprint(pid + 1000), ProducerEpoch: 0})
	wantCode(t, "BeginTransaction of an unknown producer", err, codes.NotFound)
}

// A Subscribe started while a transaction is open starts at its first
// offset (the LSO) and waits there; the commit wakes it with the
// transaction's records and what was produced after them, an abort
// never shows its records.
func TestSubscribeWaitsAtTheLastStableOffset(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ServerOptions{})
	ctx := testCtx(t)
	e.createTopic(t, "t", 1, nil)
	p := e.initTxn(t, "tx-sub")
	aborted := p.begin(t)
	if _, err := p.produce(ctx, aborted, "t", 0, "ABORTED"); err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sub, err := e.c.Subscribe(sctx, &pb.SubscribeRequest{Topic: "t", Partition: 0})
	if err != nil {
		t.Fatal(err)
	}
	hdr, err := sub.Header()
	if err != nil {
		t.Fatal(err)
	}
	if got := hdr.Get(StartOffsetHeader); len(got) != 1 || got[0] != "0" {
		t.Fatalf("start offset %v, want 0 (the open transaction's first offset)", got)
	}
	if _, err := e.c.AbortTransaction(ctx, &pb.AbortTransactionRequest{ProducerId: p.id, ProducerEpoch: p.epoch, TransactionId: aborted}); err != nil {
		t.Fatal(err)
	}
	committed := p.begin(t)
	if _, err := p.produce(ctx, committed, "t", 0, "c1"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.Produce(ctx, &pb.ProduceRequest{Topic: "t", Partition: 0, Value: []byte("plain")}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.CommitTransaction(ctx, &pb.CommitTransactionRequest{ProducerId: p.id, ProducerEpoch: p.epoch, TransactionId: committed}); err != nil {
		t.Fatal(err)
	}
	var seen []string
	for len(seen) < 2 {
		m, err := sub.Recv()
		if err != nil {
			t.Fatalf("subscribe after %v: %v", seen, err)
		}
		for _, r := range m.Records {
			seen = append(seen, string(r.Value))
		}
	}
	if got := strings.Join(seen, ","); got != "c1,plain" {
		t.Fatalf("subscribe read %s, want c1,plain", got)
	}
}
