package grpcapi

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/streamhouse/streamhouse/internal/testutil/testcerts"
	"github.com/streamhouse/streamhouse/internal/tlsconf"
	pb "github.com/streamhouse/streamhouse/proto/streamhousepb"
)

// secureAgent is an agent's TLS: its own certificate (CN id, for the
// loopback addresses) from ca, client certificates required from ca, and
// the test's client presenting "alice".
func secureAgent(t *testing.T, ca *testcerts.CA, id string) *agentTLS {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile := ca.Issue(t, testcerts.Spec{CommonName: id, Hosts: testcerts.LoopbackHosts}).Write(t, dir, id)
	r, err := tlsconf.New(tlsconf.Config{CertFile: certFile, KeyFile: keyFile, ClientCAFile: ca.Write(t, dir, "ca"),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return &agentTLS{sec: r, client: ca.ClientTLS(ca.Client(t, "alice"))}
}

// Two agents that require client certificates on every listener: a
// transaction run through the agent that neither coordinates it nor leads
// one of its partitions works, its calls forwarded to the coordinator over
// gRPC with TLS and its batch to the leader over Kafka with TLS, each agent
// presenting its own certificate.
func TestForwardingOverMutualTLS(t *testing.T) {
	t.Parallel()
	ca := testcerts.NewCA(t, "cluster CA")
	a, b, txnID, onA, onB := twoSecureAgents(t, sharedOpeners["sqlite"](t), secureAgent(t, ca, "agent-a"), secureAgent(t, ca, "agent-b"))
	ctx := testCtx(t)
	p := b.initTxn(t, txnID) // forwarded to a over gRPC
	tok := p.begin(t)
	for _, part := range []uint32{onA, onB} { // onA forwarded to a over Kafka
		if _, err := p.produce(ctx, tok, "t", part, fmt.Sprintf("tls-%d", part)); err != nil {
			t.Fatalf("transactional produce to %d through b: %v", part, err)
		}
	}
	if _, err := b.c.CommitTransaction(ctx, &pb.CommitTransactionRequest{ProducerId: p.id, ProducerEpoch: p.epoch, TransactionId: tok}); err != nil {
		t.Fatalf("CommitTransaction through b: %v", err)
	}
	for _, e := range []*env{a, b} {
		e.waitConsume(t, "t", onA, fmt.Sprintf("tls-%d", onA))
		e.waitConsume(t, "t", onB, fmt.Sprintf("tls-%d", onB))
	}
	if n := counterValue(t, a.srv.metrics.requests.WithLabelValues("/streamhouse.StreamHouse/CommitTransaction", "OK")); n != 1 {
		t.Errorf("a answered %v CommitTransaction calls, want the one forwarded", n)
	}

	// The gRPC listener refuses clients without a good certificate.
	other := testcerts.NewCA(t, "other")
	for name, creds := range map[string]credentials.TransportCredentials{
		"plaintext":      insecure.NewCredentials(),
		"no certificate": credentials.NewTLS(ca.ClientTLS(nil)),
		"another CA":     credentials.NewTLS(ca.ClientTLS(other.Client(t, "mallory"))),
	} {
		cc, err := grpc.NewClient(a.addr, grpc.WithTransportCredentials(creds))
		if err != nil {
			t.Fatal(err)
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err = healthpb.NewHealthClient(cc).Check(cctx, &healthpb.HealthCheckRequest{})
		cancel()
		cc.Close()
		wantCode(t, name, err, codes.Unavailable)
	}
}
