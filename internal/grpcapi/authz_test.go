package grpcapi

import (
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	grpcmd "google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/streamhouse/streamhouse/internal/acl"
	"github.com/streamhouse/streamhouse/internal/auth"
	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/metadata/metadatatest"
	"github.com/streamhouse/streamhouse/internal/objstore"
	"github.com/streamhouse/streamhouse/internal/testutil/testcerts"
	pb "github.com/streamhouse/streamhouse/proto/streamhousepb"
)

// authGRPC is one agent with logins required (users root, a super user,
// and alice) and ACLs enforced, from a real store.
type authGRPC struct {
	*env
	acl *acl.Authorizer
}

// newAuthz is the authenticator and authorizer of agents over store.
func newAuthz(t *testing.T, store metadata.Store) (*auth.Authenticator, *acl.Authorizer) {
	t.Helper()
	ctx := context.Background()
	logger := slog.New(slog.DiscardHandler)
	authn := auth.New(auth.Config{Store: store, Enabled: true, SuperUsers: []string{"root"}, Logger: logger})
	if err := authn.Bootstrap(ctx, []auth.BootstrapUser{{Name: "root", Password: "root-pw"}, {Name: "alice", Password: "alice-pw"}}); err != nil {
		t.Fatal(err)
	}
	a, err := acl.New(ctx, acl.Config{Store: store, Logger: logger, SuperUsers: []string{"root"}, Enforce: true})
	if err != nil {
		t.Fatal(err)
	}
	return authn, a
}

func newAuthGRPC(t *testing.T) *authGRPC {
	t.Helper()
	store := metadatatest.OpenSQLite(t)
	authn, a := newAuthz(t, store)
	bucket, err := objstore.NewLocal(filepath.Join(t.TempDir(), "bucket"))
	if err != nil {
		t.Fatal(err)
	}
	e := newSecureAgentEnv(t, ServerOptions{}, store, bucket, "a", nil, func(c *Config) { c.Auth, c.ACL = authn, a })
	return &authGRPC{env: e, acl: a}
}

// as is a call context logged in as user (password user+"-pw"); "" none.
func as(t *testing.T, user string) context.Context {
	ctx := testCtx(t)
	if user == "" {
		return ctx
	}
	return grpcmd.AppendToOutgoingContext(ctx, "authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(user+":"+user+"-pw")))
}

func grantTo(t *testing.T, a *acl.Authorizer, principal string, typ acl.ResourceType, pattern acl.PatternType, name string, op acl.Operation) {
	t.Helper()
	b := acl.Binding{ResourceType: typ, ResourceName: name, PatternType: pattern,
		Principal: principal, Host: acl.WildcardHost, Operation: op, Permission: acl.PermissionAllow}
	for _, err := range a.CreateACLs(context.Background(), []acl.Binding{b}) {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// txnState is what a case's setup made for a resource.
type txnState struct {
	pid   string
	epoch uint32
	tok   string
}

// Every method of streamhouse.StreamHouse, from one table: without a login
// Unauthenticated; logged in without the ACL its Kafka equivalent needs,
// PermissionDenied naming Kafka's error; with that ACL, or as a super
// user, served. Each case acts on resources of its own (res), made by
// setup: alice's copy and root's.
func TestGRPCMethodsAuthorization(t *testing.T) {
	t.Parallel()
	e := newAuthGRPC(t)
	root := func() context.Context { return as(t, "root") }
	topic := func(t *testing.T, res string) txnState { e.createTopicAs(t, root(), res); return txnState{} }
	committed := func(t *testing.T, res string) txnState {
		topic(t, res)
		if _, err := e.c.CommitOffset(root(), &pb.CommitOffsetRequest{ConsumerGroup: res, Topic: res, Offset: 0}); err != nil {
			t.Fatal(err)
		}
		return txnState{}
	}
	txnProducer := func(t *testing.T, res string) txnState {
		p, err := e.c.InitProducer(root(), &pb.InitProducerRequest{TransactionalId: &res})
		if err != nil {
			t.Fatal(err)
		}
		return txnState{pid: p.ProducerId, epoch: p.Epoch}
	}
	begun := func(t *testing.T, res string) txnState {
		st := txnProducer(t, res)
		b, err := e.c.BeginTransaction(root(), &pb.BeginTransactionRequest{ProducerId: st.pid, ProducerEpoch: st.epoch})
		if err != nil {
			t.Fatal(err)
		}
		st.tok = b.TransactionId
		return st
	}
	topicAndTxn := func(t *testing.T, res string) txnState { topic(t, res); return begun(t, res) }
	subscribe := func(ctx context.Context, res string) error {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stream, err := e.c.Subscribe(ctx, &pb.SubscribeRequest{Topic: res})
		if err != nil {
			return err
		}
		h, err := stream.Header()
		if err != nil {
			return err
		}
		if len(h.Get(StartOffsetHeader)) == 1 {
			return nil // subscribed
		}
		_, err = stream.Recv()
		return err
	}
	type grant struct {
		typ     acl.ResourceType
		pattern acl.PatternType
		name    string // "%s" is res
		op      acl.Operation
	}
	lit := func(typ acl.ResourceType, op acl.Operation) grant { return grant{typ, acl.PatternLiteral, "%s", op} }
	cases := []struct {
		name   string
		setup  func(t *testing.T, res string) txnState
		call   func(ctx context.Context, res string, st txnState) error
		grants []grant
		denied string // Kafka's error in the PermissionDenied without ACLs
		after  string // with grants not enough: the error then ("" the grants are enough)
	}{
		{"CreateTopic", nil, func(ctx context.Context, res string, _ txnState) error {
			_, err := e.c.CreateTopic(ctx, &pb.CreateTopicRequest{Name: res, PartitionCount: 1})
			return err
		}, []grant{lit(acl.ResourceTopic, acl.OpCreate)}, "TOPIC_AUTHORIZATION_FAILED", ""},
		{"GetTopic", topic, func(ctx context.Context, res string, _ txnState) error {
			_, err := e.c.GetTopic(ctx, &pb.GetTopicRequest{Name: res})
			return err
		}, []grant{lit(acl.ResourceTopic, acl.OpDescribe)}, "TOPIC_AUTHORIZATION_FAILED", ""},
		{"DeleteTopic", topic, func(ctx context.Context, res string, _ txnState) error {
			_, err := e.c.DeleteTopic(ctx, &pb.DeleteTopicRequest{Name: res})
			return err
		}, []grant{lit(acl.ResourceTopic, acl.OpDelete)}, "TOPIC_AUTHORIZATION_FAILED", ""},
		{"Produce", topic, func(ctx context.Context, res string, _ txnState) error {
			_, err := e.c.Produce(ctx, &pb.ProduceRequest{Topic: res, Value: []byte("v")})
			return err
		}, []grant{lit(acl.ResourceTopic, acl.OpWrite)}, "TOPIC_AUTHORIZATION_FAILED", ""},
		{"ProduceBatch", topic, func(ctx context.Context, res string, _ txnState) error {
			_, err := e.c.ProduceBatch(ctx, &pb.ProduceBatchRequest{Topic: res, Records: []*pb.Record{{Value: []byte("v")}}})
			return err
		}, []grant{lit(acl.ResourceTopic, acl.OpWrite)}, "TOPIC_AUTHORIZATION_FAILED", ""},
		{"Consume", topic, func(ctx context.Context, res string, _ txnState) error {
			_, err := e.c.Consume(ctx, &pb.ConsumeRequest{Topic: res})
			return err
		}, []grant{lit(acl.ResourceTopic, acl.OpRead)}, "TOPIC_AUTHORIZATION_FAILED", ""},
		{"Subscribe", topic, func(ctx context.Context, res string, _ txnState) error { return subscribe(ctx, res) },
			[]grant{lit(acl.ResourceTopic, acl.OpRead)}, "TOPIC_AUTHORIZATION_FAILED", ""},
		{"CommitOffset needs the group", topic, func(ctx context.Context, res string, _ txnState) error {
			_, err := e.c.CommitOffset(ctx, &pb.CommitOffsetRequest{ConsumerGroup: res, Topic: res, Offset: 0})
			return err
		}, []grant{lit(acl.ResourceTopic, acl.OpRead)}, "GROUP_AUTHORIZATION_FAILED", "GROUP_AUTHORIZATION_FAILED"},
		{"CommitOffset", topic, func(ctx context.Context, res string, _ txnState) error {
			_, err := e.c.CommitOffset(ctx, &pb.CommitOffsetRequest{ConsumerGroup: res, Topic: res, Offset: 0})
			return err
		}, []grant{lit(acl.ResourceTopic, acl.OpRead), lit(acl.ResourceGroup, acl.OpRead)}, "GROUP_AUTHORIZATION_FAILED", ""},
		{"GetOffset needs the topic", committed, func(ctx context.Context, res string, _ txnState) error {
			_, err := e.c.GetOffset(ctx, &pb.GetOffsetRequest{ConsumerGroup: res, Topic: res})
			return err
		}, []grant{lit(acl.ResourceGroup, acl.OpDescribe)}, "GROUP_AUTHORIZATION_FAILED", "TOPIC_AUTHORIZATION_FAILED"},
		{"GetOffset", committed, func(ctx context.Context, res string, _ txnState) error {
			_, err := e.c.GetOffset(ctx, &pb.GetOffsetRequest{ConsumerGroup: res, Topic: res})
			return err
		}, []grant{lit(acl.ResourceGroup, acl.OpDescribe), lit(acl.ResourceTopic, acl.OpDescribe)}, "GROUP_AUTHORIZATION_FAILED", ""},
		{"InitProducer idempotent", nil, func(ctx context.Context, _ string, _ txnState) error {
			_, err := e.c.InitProducer(ctx, &pb.InitProducerRequest{})
			return err
		}, []grant{{acl.ResourceCluster, acl.PatternLiteral, acl.ClusterName, acl.OpIdempotentWrite}}, "CLUSTER_AUTHORIZATION_FAILED", ""},
		{"InitProducer idempotent with WRITE on a topic", nil, func(ctx context.Context, _ string, _ txnState) error {
			_, err := e.c.InitProducer(ctx, &pb.InitProducerRequest{})
			return err
		}, []grant{lit(acl.ResourceTopic, acl.OpWrite)}, "CLUSTER_AUTHORIZATION_FAILED", ""},
		{"InitProducer transactional", nil, func(ctx context.Context, res string, _ txnState) error {
			_, err := e.c.InitProducer(ctx, &pb.InitProducerRequest{TransactionalId: &res})
			return err
		}, []grant{lit(acl.ResourceTransactionalID, acl.OpWrite)}, "TRANSACTIONAL_ID_AUTHORIZATION_FAILED", ""},
		{"BeginTransaction", txnProducer, func(ctx context.Context, _ string, st txnState) error {
			_, err := e.c.BeginTransaction(ctx, &pb.BeginTransactionRequest{ProducerId: st.pid, ProducerEpoch: st.epoch})
			return err
		}, []grant{lit(acl.ResourceTransactionalID, acl.OpWrite)}, "TRANSACTIONAL_ID_AUTHORIZATION_FAILED", ""},
		{"ProduceBatch transactional needs the transactional id", topicAndTxn, func(ctx context.Context, res string, st txnState) error {
			return produceTxn(ctx, e.c, res, st)
		}, []grant{lit(acl.ResourceTopic, acl.OpWrite)}, "TOPIC_AUTHORIZATION_FAILED", "TRANSACTIONAL_ID_AUTHORIZATION_FAILED"},
		{"ProduceBatch transactional", topicAndTxn, func(ctx context.Context, res string, st txnState) error {
			return produceTxn(ctx, e.c, res, st)
		}, []grant{lit(acl.ResourceTopic, acl.OpWrite), lit(acl.ResourceTransactionalID, acl.OpWrite)}, "TOPIC_AUTHORIZATION_FAILED", ""},
		{"CommitTransaction", begun, func(ctx context.Context, _ string, st txnState) error {
			_, err := e.c.CommitTransaction(ctx, &pb.CommitTransactionRequest{ProducerId: st.pid, ProducerEpoch: st.epoch, TransactionId: st.tok})
			return err
		}, []grant{lit(acl.ResourceTransactionalID, acl.OpWrite)}, "TRANSACTIONAL_ID_AUTHORIZATION_FAILED", ""},
		{"AbortTransaction", begun, func(ctx context.Context, _ string, st txnState) error {
			_, err := e.c.AbortTransaction(ctx, &pb.AbortTransactionRequest{ProducerId: st.pid, ProducerEpoch: st.epoch, TransactionId: st.tok})
			return err
		}, []grant{lit(acl.ResourceTransactionalID, acl.OpWrite)}, "TRANSACTIONAL_ID_AUTHORIZATION_FAILED", ""},
		{"Heartbeat of a transaction", begun, func(ctx context.Context, _ string, st txnState) error {
			return heartbeat(ctx, e.c, &pb.HeartbeatRequest{ProducerId: st.pid, ProducerEpoch: st.epoch, TransactionId: &st.tok})
		}, []grant{lit(acl.ResourceTransactionalID, acl.OpDescribe)}, "TRANSACTIONAL_ID_AUTHORIZATION_FAILED", ""},
		{"Heartbeat of a transactional producer", txnProducer, func(ctx context.Context, _ string, st txnState) error {
			return heartbeat(ctx, e.c, &pb.HeartbeatRequest{ProducerId: st.pid, ProducerEpoch: st.epoch})
		}, []grant{lit(acl.ResourceTransactionalID, acl.OpDescribe)}, "TRANSACTIONAL_ID_AUTHORIZATION_FAILED", ""},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				for _, r := range e.acl.DeleteACLs(context.Background(), []acl.Filter{acl.AnyFilter}) {
					if r.Err != nil {
						t.Fatal(r.Err)
					}
				}
			}()
			mine, roots := fmt.Sprintf("a%d", i), fmt.Sprintf("r%d", i)
			var stMine, stRoots txnState
			if tc.setup != nil {
				stMine, stRoots = tc.setup(t, mine), tc.setup(t, roots)
			}
			wantCode(t, "without a login", tc.call(as(t, ""), mine, stMine), codes.Unauthenticated)
			wantDenied(t, "alice without ACLs", tc.call(as(t, "alice"), mine, stMine), tc.denied)
			for _, g := range tc.grants {
				grantTo(t, e.acl, "User:alice", g.typ, g.pattern, strings.ReplaceAll(g.name, "%s", mine), g.op)
			}
			if tc.after != "" {
				wantDenied(t, "alice with some ACLs", tc.call(as(t, "alice"), mine, stMine), tc.after)
				return
			}
			if err := tc.call(as(t, "alice"), mine, stMine); err != nil {
				t.Fatalf("alice with %v: %v", tc.grants, err)
			}
			if err := tc.call(root(), roots, stRoots); err != nil {
				t.Fatalf("root: %v", err)
			}
		})
	}
}

func produceTxn(ctx context.Context, c pb.StreamHouseClient, topic string, st txnState) error {
	seq := int64(0)
	_, err := c.ProduceBatch(ctx, &pb.ProduceBatchRequest{Topic: topic, Records: []*pb.Record{{Value: []byte("v")}},
		ProducerId: &st.pid, ProducerEpoch: &st.epoch, BaseSequence: &seq, TransactionId: &st.tok})
	return err
}

// heartbeat is a Heartbeat that must find the producer valid.
func heartbeat(ctx context.Context, c pb.StreamHouseClient, req *pb.HeartbeatRequest) error {
	r, err := c.Heartbeat(ctx, req)
	if err == nil && !r.Valid {
		return fmt.Errorf("heartbeat: not valid: %s", r.GetError())
	}
	return err
}

func (e *env) createTopicAs(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	if _, err := e.c.CreateTopic(ctx, &pb.CreateTopicRequest{Name: name, PartitionCount: 1}); err != nil {
		t.Fatalf("create topic %s: %v", name, err)
	}
}

// wantDenied fails unless err is PermissionDenied naming Kafka's error.
func wantDenied(t *testing.T, what string, err error, kafkaError string) {
	t.Helper()
	if st := status.Convert(err); st.Code() != codes.PermissionDenied || !strings.HasPrefix(st.Message(), kafkaError+":") {
		t.Fatalf("%s: %v, want PermissionDenied %s", what, err, kafkaError)
	}
}

// ListTopics lists what the caller may DESCRIBE; an unauthorized topic is
// refused alike whether it exists or not.
func TestGRPCListingAndUnknownsAlike(t *testing.T) {
	t.Parallel()
	e := newAuthGRPC(t)
	for _, name := range []string{"seen", "hidden", "there"} {
		e.createTopicAs(t, as(t, "root"), name)
	}
	grantTo(t, e.acl, "User:alice", acl.ResourceTopic, acl.PatternLiteral, "seen", acl.OpDescribe)
	names := func(user string) []string {
		r, err := e.c.ListTopics(as(t, user), &pb.ListTopicsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, tp := range r.Topics {
			out = append(out, tp.Name)
		}
		slices.Sort(out)
		return out
	}
	if got := names("alice"); !slices.Equal(got, []string{"seen"}) {
		t.Errorf("alice's topics: %v", got)
	}
	if got := names("root"); !slices.Equal(got, []string{"hidden", "seen", "there"}) {
		t.Errorf("root's topics: %v", got)
	}
	for name, call := range map[string]func(topic string) error{
		"GetTopic": func(tp string) error {
			_, err := e.c.GetTopic(as(t, "alice"), &pb.GetTopicRequest{Name: tp})
			return err
		},
		"Produce": func(tp string) error {
			_, err := e.c.Produce(as(t, "alice"), &pb.ProduceRequest{Topic: tp, Value: []byte("v")})
			return err
		},
		"Consume": func(tp string) error {
			_, err := e.c.Consume(as(t, "alice"), &pb.ConsumeRequest{Topic: tp})
			return err
		},
		"DeleteTopic": func(tp string) error {
			_, err := e.c.DeleteTopic(as(t, "alice"), &pb.DeleteTopicRequest{Name: tp})
			return err
		},
	} {
		there, missing := status.Convert(call("there")), status.Convert(call("nowhere"))
		if there.Code() != codes.PermissionDenied || there.Code() != missing.Code() ||
			strings.ReplaceAll(there.Message(), "there", "X") != strings.ReplaceAll(missing.Message(), "nowhere", "X") {
			t.Errorf("%s: existing %v, missing %v", name, there, missing)
		}
	}
	if _, err := e.c.GetTopic(as(t, "root"), &pb.GetTopicRequest{Name: "nowhere"}); status.Code(err) != codes.NotFound {
		t.Errorf("root, missing topic: %v", err)
	}
}

// With logins and ACLs on and mutual TLS, a client known only by its
// certificate (no authorization metadata) runs a transaction through the
// agent that does not coordinate its transactional ID: that agent
// authorizes each call as the client, then forwards it under its own
// login, which the coordinator lets do anything even though the agent's
// connection presents the agent's certificate. Without the ACL the first
// agent refuses the call itself.
func TestForwardedCallsAuthorizedAtTheFirstAgent(t *testing.T) {
	t.Parallel()
	open := sharedOpeners["sqlite"](t)
	store := open()
	_, a := newAuthz(t, store)
	// alice (her certificate) may create the test's topic and use the
	// transactional IDs tx-*.
	grantTo(t, a, "User:alice", acl.ResourceTopic, acl.PatternLiteral, "t", acl.OpCreate)
	grantTo(t, a, "User:alice", acl.ResourceTransactionalID, acl.PatternPrefixed, "tx-", acl.OpWrite)
	ca := testcerts.NewCA(t, "cluster CA")
	withAuth := func(id string, c *Config) {
		authn, _ := newAuthz(t, store)
		if _, _, err := authn.AgentLogin(context.Background(), id); err != nil {
			t.Fatal(err)
		}
		c.Auth, c.ACL = authn, a
	}
	ea, b, txnID, _, _ := twoSecureAgents(t, open, secureAgent(t, ca, "agent-a"), secureAgent(t, ca, "agent-b"), withAuth)
	ctx := testCtx(t)
	p, err := b.c.InitProducer(ctx, &pb.InitProducerRequest{TransactionalId: &txnID}) // forwarded to a
	if err != nil {
		t.Fatalf("InitProducer through b: %v", err)
	}
	tok, err := b.c.BeginTransaction(ctx, &pb.BeginTransactionRequest{ProducerId: p.ProducerId, ProducerEpoch: p.Epoch})
	if err != nil {
		t.Fatalf("BeginTransaction through b: %v", err)
	}
	if _, err := b.c.CommitTransaction(ctx, &pb.CommitTransactionRequest{ProducerId: p.ProducerId, ProducerEpoch: p.Epoch, TransactionId: tok.TransactionId}); err != nil {
		t.Fatalf("CommitTransaction through b: %v", err)
	}
	for _, m := range []string{"InitProducer", "BeginTransaction", "CommitTransaction"} {
		if n := counterValue(t, ea.srv.metrics.requests.WithLabelValues("/streamhouse.StreamHouse/"+m, "OK")); n != 1 {
			t.Errorf("a answered %v %s calls, want the one forwarded", n, m)
		}
	}
	// A transactional ID alice may not use: refused at b, never forwarded.
	other := "other-" + txnID
	_, err = b.c.InitProducer(ctx, &pb.InitProducerRequest{TransactionalId: &other})
	wantDenied(t, "InitProducer of another ID", err, "TRANSACTIONAL_ID_AUTHORIZATION_FAILED")
	if n := counterValue(t, ea.srv.metrics.requests.WithLabelValues("/streamhouse.StreamHouse/InitProducer", "PermissionDenied")); n != 0 {
		t.Errorf("a saw %v refused InitProducer calls, want none", n)
	}
}

// Calls naming a producer by ID are checked against its transactional ID,
// which the server looks up: a refusal must not tell the caller that ID
// (producer IDs are sequential, so it would list every transactional ID).
func TestGRPCRefusalHidesLookedUpTransactionalID(t *testing.T) {
	t.Parallel()
	e := newAuthGRPC(t)
	secret := "payroll-secret-txn"
	p, err := e.c.InitProducer(as(t, "root"), &pb.InitProducerRequest{TransactionalId: &secret})
	if err != nil {
		t.Fatal(err)
	}
	alice := as(t, "alice")
	_, errBegin := e.c.BeginTransaction(alice, &pb.BeginTransactionRequest{ProducerId: p.ProducerId, ProducerEpoch: p.Epoch})
	_, errBeat := e.c.Heartbeat(alice, &pb.HeartbeatRequest{ProducerId: p.ProducerId, ProducerEpoch: p.Epoch})
	for name, err := range map[string]error{"BeginTransaction": errBegin, "Heartbeat": errBeat} {
		if status.Code(err) != codes.PermissionDenied || strings.Contains(err.Error(), secret) {
			t.Errorf("%s as alice: %v; want PermissionDenied not naming the transactional ID", name, err)
		}
	}
}
