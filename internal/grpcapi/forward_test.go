package grpcapi

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	grpcmd "google.golang.org/grpc/metadata"

	"github.com/streamhouse/streamhouse/internal/batch"
	"github.com/streamhouse/streamhouse/internal/broker"
	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/metadata/metadatatest"
	"github.com/streamhouse/streamhouse/internal/objstore"
	pb "github.com/streamhouse/streamhouse/proto/streamhousepb"
)

// sharedOpeners make one metadata database per test and return the store
// each agent opens on it: the same SQLite store (a file only one process
// opens), a PostgreSQL store (connection pool) per agent.
var sharedOpeners = map[string]func(testing.TB) func() metadata.Store{
	"sqlite": func(t testing.TB) func() metadata.Store {
		s := metadatatest.OpenSQLite(t)
		return func() metadata.Store { return s }
	},
	"postgres": metadatatest.PostgresOpener,
}

// twoAgents is agents a and b over one metadata database (a store each)
// and one bucket, a transactional ID that a coordinates (and b sees a
// coordinate), and topic "t" with partition onA led by a and onB led by b.
func twoAgents(t *testing.T, open func() metadata.Store) (a, b *env, txnID string, onA, onB uint32) {
	t.Helper()
	return twoSecureAgents(t, open, nil, nil)
}

// twoSecureAgents is twoAgents with TLS on each agent as atA and atB say
// (nil: plaintext).
func twoSecureAgents(t *testing.T, open func() metadata.Store, atA, atB *agentTLS, cfgOpts ...func(id string, c *Config)) (a, b *env, txnID string, onA, onB uint32) {
	t.Helper()
	bucket, err := objstore.NewLocal(filepath.Join(t.TempDir(), "bucket"))
	if err != nil {
		t.Fatal(err)
	}
	for_ := func(id string) func(*Config) {
		return func(c *Config) {
			for _, o := range cfgOpts {
				o(id, c)
			}
		}
	}
	a = newSecureAgentEnv(t, ServerOptions{}, open(), bucket, "a", atA, for_("a"))
	a.createTopic(t, "t", 4, nil)
	b = newSecureAgentEnv(t, ServerOptions{}, open(), bucket, "b", atB, for_("b"))
	ctx := testCtx(t)
	// Placement splits the slots and partitions between a and b: a hands
	// b its share.
	deadline := time.Now().Add(20 * time.Second)
	for {
		b.b.Place(ctx)
		a.b.Place(ctx)
		b.b.Place(ctx)
		onA, onB = leaderOf(t, a.b, 4), leaderOf(t, b.b, 4)
		txnID = coordinatedBy(t, a.b, b.b)
		if onA < 4 && onB < 4 && txnID != "" {
			return a, b, txnID, onA, onB
		}
		if time.Now().After(deadline) {
			t.Fatalf("placement did not split the partitions and slots between a and b (a leads %d, b leads %d, id %q)", onA, onB, txnID)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// leaderOf returns a partition of "t" that b leads (n if none).
func leaderOf(t *testing.T, b *broker.Broker, n uint32) uint32 {
	t.Helper()
	for p := range n {
		leads, err := b.LeadsPartition(testCtx(t), "t", int32(p))
		if err != nil {
			t.Fatal(err)
		}
		if leads {
			return p
		}
	}
	return n
}

// coordinatedBy returns a transactional ID that coord coordinates and
// other sees coord coordinate ("" if none of 1000).
func coordinatedBy(t *testing.T, coord, other *broker.Broker) string {
	t.Helper()
	ctx := testCtx(t)
	for i := range 1000 {
		id := fmt.Sprintf("tx-%d", i)
		agent, _, err := coord.TxnCoordinator(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if agent != coord.AgentID() {
			continue
		}
		if seen, _, err := other.TxnCoordinator(ctx, id); err == nil && seen == coord.AgentID() {
			return id
		}
	}
	return ""
}

// A transactional gRPC client that talks only to the agent that does not
// coordinate its transactional ID: every transaction call is forwarded to
// the coordinator, batches reach partitions led by either agent, and a
// read_committed reader sees exactly the committed transactions' records.
// On both metadata backends.
func TestTransactionCallsForwardedToTheCoordinator(t *testing.T) {
	t.Parallel()
	for name, opener := range sharedOpeners {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			a, b, txnID, onA, onB := twoAgents(t, opener(t))
			ctx := testCtx(t)

			p := b.initTxn(t, txnID) // through b only
			if hb := p.heartbeat(t, ""); !hb.Valid {
				t.Fatalf("heartbeat: %s", hb.GetError())
			}
			// Committed.
			tok := p.begin(t)
			for _, part := range []uint32{onA, onB} {
				if _, err := p.produce(ctx, tok, "t", part, fmt.Sprintf("c1-%d", part)); err != nil {
					t.Fatalf("transactional produce to %d through b: %v", part, err)
				}
			}
			if _, err := p.produce(ctx, tok, "t", onB, fmt.Sprintf("c1b-%d", onB)); err != nil {
				t.Fatalf("second transactional produce to %d through b: %v", onB, err)
			}
			if _, err := b.c.CommitTransaction(ctx, &pb.CommitTransactionRequest{ProducerId: p.id, ProducerEpoch: p.epoch, TransactionId: tok}); err != nil {
				t.Fatalf("CommitTransaction through b: %v", err)
			}
			// Aborted.
			tok = p.begin(t)
			for _, part := range []uint32{onA, onB} {
				if _, err := p.produce(ctx, tok, "t", part, fmt.Sprintf("x-%d", part)); err != nil {
					t.Fatalf("transactional produce to %d through b: %v", part, err)
				}
			}
			if _, err := b.c.AbortTransaction(ctx, &pb.AbortTransactionRequest{ProducerId: p.id, ProducerEpoch: p.epoch, TransactionId: tok}); err != nil {
				t.Fatalf("AbortTransaction through b: %v", err)
			}
			if hb := p.heartbeat(t, tok); hb.Valid {
				t.Fatal("heartbeat calls the aborted transaction valid")
			}
			// Committed again, after the aborted records.
			tok = p.begin(t)
			for _, part := range []uint32{onA, onB} {
				if _, err := p.produce(ctx, tok, "t", part, fmt.Sprintf("c2-%d", part)); err != nil {
					t.Fatalf("transactional produce to %d through b: %v", part, err)
				}
			}
			if _, err := b.c.CommitTransaction(ctx, &pb.CommitTransactionRequest{ProducerId: p.id, ProducerEpoch: p.epoch, TransactionId: tok}); err != nil {
				t.Fatalf("CommitTransaction through b: %v", err)
			}

			for _, e := range []*env{a, b} {
				e.waitConsume(t, "t", onA, fmt.Sprintf("c1-%d,c2-%d", onA, onA))
				e.waitConsume(t, "t", onB, fmt.Sprintf("c1-%d,c1b-%d,c2-%d", onB, onB, onB))
			}
			// The transactions ran on a, the coordinator.
			st, found, err := a.b.StoredTxn(ctx, txnID)
			if err != nil || !found || st.State != metadata.TxnCompleteCommit {
				t.Fatalf("stored transaction = %+v, %v, %v; want CompleteCommit", st, found, err)
			}
			if n := counterValue(t, a.srv.metrics.requests.WithLabelValues("/streamhouse.StreamHouse/CommitTransaction", "OK")); n != 2 {
				t.Errorf("a answered %v CommitTransaction calls, want the 2 forwarded", n)
			}
		})
	}
}

// A forwarded transaction call that reaches an agent that does not
// coordinate the transactional ID answers Unavailable there and is not
// forwarded again.
func TestForwardedTransactionCallIsNotForwardedAgain(t *testing.T) {
	t.Parallel()
	a, b, txnID, onA, _ := twoAgents(t, sharedOpeners["sqlite"](t))
	ctx := testCtx(t)
	p := a.initTxn(t, txnID)

	fwd := grpcmd.AppendToOutgoingContext(ctx, forwardedKey, "1")
	_, err := b.c.InitProducer(fwd, &pb.InitProducerRequest{TransactionalId: ptr(txnID)})
	wantCode(t, "forwarded InitProducer on the other agent", err, codes.Unavailable)
	_, err = b.c.BeginTransaction(fwd, &pb.BeginTransactionRequest{ProducerId: p.id, ProducerEpoch: p.epoch})
	wantCode(t, "forwarded BeginTransaction on the other agent", err, codes.Unavailable)
	tok := p.begin(t)
	_, err = b.c.ProduceBatch(fwd, &pb.ProduceBatchRequest{
		Topic: "t", Partition: onA, Records: []*pb.Record{{Value: []byte("v")}}, TransactionId: ptr(tok),
		ProducerId: ptr(p.id), ProducerEpoch: ptr(p.epoch), BaseSequence: ptr(int64(0)),
	})
	wantCode(t, "forwarded ProduceBatch on the other agent", err, codes.Unavailable)
	_, err = b.c.CommitTransaction(fwd, &pb.CommitTransactionRequest{ProducerId: p.id, ProducerEpoch: p.epoch, TransactionId: tok})
	wantCode(t, "forwarded CommitTransaction on the other agent", err, codes.Unavailable)
	_, err = b.c.AbortTransaction(fwd, &pb.AbortTransactionRequest{ProducerId: p.id, ProducerEpoch: p.epoch, TransactionId: tok})
	wantCode(t, "forwarded AbortTransaction on the other agent", err, codes.Unavailable)

	// None reached a: its only calls are the test's own two.
	for method, want := range map[string]float64{"InitProducer": 1, "BeginTransaction": 1, "ProduceBatch": 0, "CommitTransaction": 0, "AbortTransaction": 0} {
		total := 0.0
		for _, code := range []codes.Code{codes.OK, codes.Unavailable, codes.FailedPrecondition} {
			total += counterValue(t, a.srv.metrics.requests.WithLabelValues("/streamhouse.StreamHouse/"+method, code.String()))
		}
		if total != want {
			t.Errorf("a answered %v %s calls, want %v", total, method, want)
		}
	}
	// The transaction is still open, and b forwards the same call
	// unmarked.
	if _, err := b.c.CommitTransaction(ctx, &pb.CommitTransactionRequest{ProducerId: p.id, ProducerEpoch: p.epoch, TransactionId: tok}); err != nil {
		t.Fatalf("CommitTransaction through b: %v", err)
	}
}

// A forwarded call carries the caller's metadata and deadline (a default
// one when it has none), not what gRPC sets itself, and the forwarded
// mark.
func TestForwardContext(t *testing.T) {
	t.Parallel()
	in := grpcmd.MD{
		"authorization": {"Bearer x"}, "x-trace": {"1", "2"},
		":authority": {"agent-b:50051"}, "content-type": {"application/grpc"}, "user-agent": {"grpc-go"}, "grpc-accept-encoding": {"gzip"},
	}
	dl := time.Now().Add(time.Minute)
	ctx, cancel := context.WithDeadline(grpcmd.NewIncomingContext(context.Background(), in), dl)
	defer cancel()
	fctx, fcancel := forwardContext(ctx, "")
	defer fcancel()
	out, _ := grpcmd.FromOutgoingContext(fctx)
	want := grpcmd.MD{"authorization": {"Bearer x"}, "x-trace": {"1", "2"}, forwardedKey: {"1"}}
	if fmt.Sprint(out) != fmt.Sprint(want) {
		t.Errorf("outgoing metadata %v, want %v", out, want)
	}
	if got, ok := fctx.Deadline(); !ok || !got.Equal(dl) {
		t.Errorf("deadline %v %v, want the caller's %v", got, ok, dl)
	}
	if isForwarded(ctx) {
		t.Error("the caller's call counts as forwarded")
	}
	if !isForwarded(grpcmd.NewIncomingContext(context.Background(), out)) {
		t.Error("the forwarded call does not count as forwarded")
	}

	nctx, ncancel := forwardContext(context.Background(), "")
	defer ncancel()
	if got, ok := nctx.Deadline(); !ok || time.Until(got) > broker.ForwardTimeout || time.Until(got) < broker.ForwardTimeout-time.Minute {
		t.Errorf("deadline without the caller's: %v %v, want about ForwardTimeout from now", got, ok)
	}
}

// A transactional batch that reaches the partition's leader (another agent)
// after its transaction ended is refused there: the forward must not let
// the leader add the partition to a new transaction (transactions V2's
// implicit add), which would acknowledge a write no one commits and leave a
// transaction open until its timeout.
func TestLateTransactionalForwardIsRefused(t *testing.T) {
	t.Parallel()
	a, _, txnID, _, onB := twoAgents(t, sharedOpeners["sqlite"](t))
	ctx := testCtx(t)
	p := a.initTxn(t, txnID)
	tok := p.begin(t)
	if _, err := p.produce(ctx, tok, "t", onB, "in"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.c.CommitTransaction(ctx, &pb.CommitTransactionRequest{ProducerId: p.id, ProducerEpoch: p.epoch, TransactionId: tok}); err != nil {
		t.Fatal(err)
	}
	// Once the commit's markers are written (before, a late batch still
	// joins the transaction and is committed with it), the batch of a
	// ProduceBatch that passed its open check before the commit arrives,
	// forwarded by a to b, the leader.
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, _, err := a.b.StoredTxn(ctx, txnID)
		if err != nil {
			t.Fatal(err)
		}
		if st.State == metadata.TxnCompleteCommit {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the commit never completed: %+v", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
	pid, err := strconv.ParseInt(p.id, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	_, err = a.b.AppendTxnRecords(ctx, txnID, "t", int32(onB), []broker.Record{{Value: []byte("late")}}, broker.AckDurable,
		batch.BuildOptions{ProducerID: pid, ProducerEpoch: int16(p.epoch), BaseSequence: 1, Transactional: true})
	if !errors.Is(err, broker.ErrInvalidTxnState) {
		t.Fatalf("late forwarded transactional batch: %v, want ErrInvalidTxnState", err)
	}
	st, found, err := a.b.StoredTxn(ctx, txnID)
	if err != nil || !found || st.State == metadata.TxnOngoing {
		t.Fatalf("stored transaction after the late batch: %+v, %v, %v; want no transaction open", st, found, err)
	}
	if _, err := a.c.BeginTransaction(ctx, &pb.BeginTransactionRequest{ProducerId: p.id, ProducerEpoch: p.epoch}); err != nil {
		t.Fatalf("BeginTransaction after the late batch: %v", err)
	}
}
