package grpcapi

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	grpcmd "google.golang.org/grpc/metadata"

	"github.com/streamhouse/streamhouse/internal/auth"
	"github.com/streamhouse/streamhouse/internal/testutil"
	pb "github.com/streamhouse/streamhouse/proto/streamhousepb"
)

// capturedCall is the metadata of one call an agent authenticated.
type capturedCall struct {
	method string
	md     grpcmd.MD
}

// With logins on and no TLS (what a sniffer between agents sees), a
// transaction run through the agent that does not coordinate it still
// works, every call forwarded to the coordinator under an agent token,
// never the agent's password. A token taken off the wire is good for
// nothing else: replayed for its own method, used for another method, or
// (a fresh one) presented too late, the coordinator refuses it.
func TestForwardedCallsCarryAgentTokens(t *testing.T) {
	t.Parallel()
	open := sharedOpeners["sqlite"](t)
	store := open()
	var (
		mu        sync.Mutex
		seen      []capturedCall // at a, the coordinator
		passwords = map[string]string{}
		authns    = map[string]*auth.Authenticator{}
		skew      atomic.Int64 // a's clock offset, ns
	)
	withAuth := func(id string, c *Config) {
		authn := auth.New(auth.Config{Store: store, Enabled: true, SuperUsers: []string{"root"},
			Now:   func() time.Time { return time.Now().Add(time.Duration(skew.Load())) },
			Sleep: func(context.Context, time.Duration) error { return nil }}) // no slowdown of the refusals below
		if err := authn.Bootstrap(context.Background(), []auth.BootstrapUser{{Name: "root", Password: "root-pw"}}); err != nil {
			t.Fatal(err)
		}
		_, pw, err := authn.AgentLogin(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		passwords[id], authns[id] = pw, authn
		mu.Unlock()
		c.Auth = authn
		if id == "a" {
			c.observeAuth = func(method string, md grpcmd.MD) {
				mu.Lock()
				defer mu.Unlock()
				seen = append(seen, capturedCall{method, md.Copy()})
			}
		}
	}
	rootClient := &agentTLS{login: "root:root-pw"} // plaintext
	a, b, txnID, onA, onB := twoSecureAgents(t, open, rootClient, rootClient, withAuth)
	root := as(t, "root")
	p, err := b.c.InitProducer(root, &pb.InitProducerRequest{TransactionalId: &txnID, TimeoutMs: 60000})
	if err != nil {
		t.Fatalf("InitProducer through b: %v", err)
	}
	tok, err := b.c.BeginTransaction(root, &pb.BeginTransactionRequest{ProducerId: p.ProducerId, ProducerEpoch: p.Epoch})
	if err != nil {
		t.Fatalf("BeginTransaction through b: %v", err)
	}
	for _, part := range []uint32{onA, onB} {
		if _, err := b.c.ProduceBatch(root, &pb.ProduceBatchRequest{Topic: "t", Partition: part, TransactionId: &tok.TransactionId,
			ProducerId: &p.ProducerId, ProducerEpoch: &p.Epoch, BaseSequence: ptr(int64(0)), AckMode: pb.AckMode_ACK_DURABLE,
			Records: []*pb.Record{{Value: []byte(fmt.Sprintf("v%d", part))}}}); err != nil {
			t.Fatalf("transactional ProduceBatch to %d through b: %v", part, err)
		}
	}
	if _, err := b.c.CommitTransaction(root, &pb.CommitTransactionRequest{ProducerId: p.ProducerId, ProducerEpoch: p.Epoch, TransactionId: tok.TransactionId}); err != nil {
		t.Fatalf("CommitTransaction through b: %v", err)
	}
	// The committed record becomes readable once the commit's marker is
	// written (asynchronously).
	testutil.WaitFor(t, "the committed record on a", func() bool {
		res, err := a.c.Consume(as(t, "root"), &pb.ConsumeRequest{Topic: "t", Partition: onA})
		if err != nil {
			t.Fatalf("consume partition %d at a: %v", onA, err)
		}
		return len(res.Records) == 1 && string(res.Records[0].Value) == fmt.Sprintf("v%d", onA)
	})

	mu.Lock()
	calls := append([]capturedCall(nil), seen...)
	pwB := passwords["b"]
	mu.Unlock()
	tokens := map[string]string{} // method -> a token b sent for it
	for _, c := range calls {
		if len(c.md.Get(forwardedKey)) == 0 {
			continue
		}
		for k, vs := range c.md {
			for _, v := range vs {
				if strings.Contains(v, pwB) || strings.Contains(v, base64.StdEncoding.EncodeToString([]byte(auth.AgentUserName("b")+":"+pwB))) {
					t.Fatalf("forwarded %s carries b's password in %s: %q", c.method, k, v)
				}
			}
		}
		v := c.md.Get("authorization")
		if len(v) != 1 || !auth.IsAgentToken(v[0]) {
			t.Fatalf("forwarded %s: authorization %q, want one agent token", c.method, v)
		}
		tokens[c.method] = v[0]
	}
	const (
		initM   = "/" + ServiceName + "/InitProducer"
		beginM  = "/" + ServiceName + "/BeginTransaction"
		commitM = "/" + ServiceName + "/CommitTransaction"
	)
	for _, m := range []string{initM, beginM, commitM, "/" + ServiceName + "/ProduceBatch"} {
		if tokens[m] == "" {
			t.Fatalf("no forwarded %s seen at a (saw %d calls)", m, len(calls))
		}
	}

	// Replayed by someone who read them off the wire, straight to a (a
	// connection of its own, without the root login).
	conn, err := grpc.NewClient(a.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	at := pb.NewStreamHouseClient(conn)
	bearing := func(token string) context.Context {
		return grpcmd.AppendToOutgoingContext(testCtx(t), "authorization", token, forwardedKey, "1")
	}
	other := txnID + "-replayed"
	_, err = at.InitProducer(bearing(tokens[initM]), &pb.InitProducerRequest{TransactionalId: &other})
	wantCode(t, "InitProducer with a replayed token", err, codes.Unauthenticated)
	_, err = at.BeginTransaction(bearing(tokens[commitM]), &pb.BeginTransactionRequest{ProducerId: p.ProducerId, ProducerEpoch: p.Epoch})
	wantCode(t, "BeginTransaction with CommitTransaction's token", err, codes.Unauthenticated)
	_, err = at.ListTopics(bearing(tokens[beginM]), &pb.ListTopicsRequest{})
	wantCode(t, "ListTopics with BeginTransaction's token", err, codes.Unauthenticated)

	// A fresh token for another method is refused too; for its own
	// method it is accepted, but only while it is recent.
	fresh := func(method string) string {
		tk, err := authns["b"].AgentToken(testCtx(t), "a", method)
		if err != nil {
			t.Fatal(err)
		}
		return tk
	}
	_, err = at.ListTopics(bearing(fresh(initM)), &pb.ListTopicsRequest{})
	wantCode(t, "ListTopics with a fresh InitProducer token", err, codes.Unauthenticated)
	listM := "/" + ServiceName + "/ListTopics"
	late := fresh(listM)
	skew.Store(int64(auth.AgentTokenWindow + 5*time.Second))
	_, err = at.ListTopics(bearing(late), &pb.ListTopicsRequest{})
	wantCode(t, "ListTopics with a token made over a minute ago", err, codes.Unauthenticated)
	skew.Store(0)
	if _, err := at.ListTopics(bearing(late), &pb.ListTopicsRequest{}); err != nil {
		t.Fatalf("ListTopics with the same token, recent again: %v", err)
	}
	_, err = at.ListTopics(bearing(late), &pb.ListTopicsRequest{})
	wantCode(t, "ListTopics with the token a second time", err, codes.Unauthenticated)
	// b's password is refused as a Basic login: agents never use one.
	_, err = at.ListTopics(grpcmd.AppendToOutgoingContext(testCtx(t), "authorization",
		"Basic "+base64.StdEncoding.EncodeToString([]byte(auth.AgentUserName("b")+":"+pwB))), &pb.ListTopicsRequest{})
	wantCode(t, "ListTopics with b's password", err, codes.Unauthenticated)
}
