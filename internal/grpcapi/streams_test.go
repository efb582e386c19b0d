package grpcapi

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/streamhouse/streamhouse/internal/acl"
	"github.com/streamhouse/streamhouse/internal/auth"
	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/metadata/metadatatest"
	"github.com/streamhouse/streamhouse/internal/objstore"
	pb "github.com/streamhouse/streamhouse/proto/streamhousepb"
)

// streamEnv is one agent with logins required (root, a super user; alice
// and bob) and ACLs enforced, over a real store, with topic "t" and READ
// on it for alice and bob.
type streamEnv struct {
	*env
	authn *auth.Authenticator
	acl   *acl.Authorizer
}

func newStreamEnv(t *testing.T, store metadata.Store, lifetime time.Duration) *streamEnv {
	t.Helper()
	ctx := context.Background()
	logger := slog.New(slog.DiscardHandler)
	authn := auth.New(auth.Config{Store: store, Enabled: true, SuperUsers: []string{"root"}, Logger: logger, SessionLifetime: lifetime,
		LoginRecheck: 20 * time.Millisecond})
	users := []auth.BootstrapUser{{Name: "root", Password: "root-pw"}, {Name: "alice", Password: "alice-pw"}, {Name: "bob", Password: "bob-pw"}}
	if err := authn.Bootstrap(ctx, users); err != nil {
		t.Fatal(err)
	}
	a, err := acl.New(ctx, acl.Config{Store: store, Logger: logger, SuperUsers: []string{"root"}, Enforce: true})
	if err != nil {
		t.Fatal(err)
	}
	bucket, err := objstore.NewLocal(filepath.Join(t.TempDir(), "bucket"))
	if err != nil {
		t.Fatal(err)
	}
	e := newSecureAgentEnv(t, ServerOptions{}, store, bucket, "a", nil, func(c *Config) { c.Auth, c.ACL = authn, a })
	if _, err := e.c.CreateTopic(as(t, "root"), &pb.CreateTopicRequest{Name: "t", PartitionCount: 1}); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"User:alice", "User:bob"} {
		grantTo(t, a, u, acl.ResourceTopic, acl.PatternLiteral, "t", acl.OpRead)
	}
	return &streamEnv{env: e, authn: authn, acl: a}
}

// produce writes one record to t as root and returns its offset.
func (e *streamEnv) produce(t *testing.T, value string) uint64 {
	t.Helper()
	res, err := e.c.Produce(as(t, "root"), &pb.ProduceRequest{Topic: "t", Value: []byte(value)})
	if err != nil {
		t.Fatal(err)
	}
	return res.GetOffset()
}

// subscription is a Subscribe as one user, read by a goroutine until it
// ends.
type subscription struct {
	recs   chan *pb.ConsumedRecord
	end    chan error // the error that ended it
	endAt  time.Time  // when it ended (set before end is sent)
	cancel context.CancelFunc
}

// subscribe subscribes to t from offset 0 as user, and returns once the
// subscription is in place (its headers arrived).
func (e *streamEnv) subscribe(t *testing.T, user string) *subscription {
	t.Helper()
	ctx, cancel := context.WithCancel(as(t, user))
	st, err := e.c.Subscribe(ctx, &pb.SubscribeRequest{Topic: "t", Offset: ptr[uint64](0)})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if _, err := st.Header(); err != nil {
		cancel()
		t.Fatalf("%s's subscription: %v", user, err)
	}
	s := &subscription{recs: make(chan *pb.ConsumedRecord, 1000), end: make(chan error, 1), cancel: cancel}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			res, err := st.Recv()
			if err != nil {
				s.endAt = time.Now()
				s.end <- err
				return
			}
			for _, r := range res.GetRecords() {
				s.recs <- r
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return s
}

// next waits (at most 20 s) for the subscription's next record.
func (s *subscription) next(t *testing.T, who string) *pb.ConsumedRecord {
	t.Helper()
	select {
	case r := <-s.recs:
		return r
	case err := <-s.end:
		t.Fatalf("%s's subscription ended: %v", who, err)
	case <-time.After(20 * time.Second):
		t.Fatalf("%s's subscription: no record in 20 s", who)
	}
	return nil
}

// ended waits (at most within) for the subscription to end with code,
// failing on any record at or after offset from meanwhile.
func (s *subscription) ended(t *testing.T, who string, code codes.Code, from uint64, within time.Duration) {
	t.Helper()
	timeout := time.After(within)
	for {
		select {
		case r := <-s.recs:
			if r.GetOffset() >= from {
				t.Fatalf("%s received offset %d, committed after the change (from %d)", who, r.GetOffset(), from)
			}
		case err := <-s.end:
			if status.Code(err) != code {
				t.Fatalf("%s's subscription ended with %v, want %s", who, err, code)
			}
			// Drain what arrived before the end.
			for {
				select {
				case r := <-s.recs:
					if r.GetOffset() >= from {
						t.Fatalf("%s received offset %d, committed after the change (from %d)", who, r.GetOffset(), from)
					}
				default:
					return
				}
			}
		case <-timeout:
			t.Fatalf("%s's subscription still runs %s after the change", who, within)
		}
	}
}

// A Subscribe stays authorized: once alice's READ is deleted, or a DENY
// added, her subscription ends with PermissionDenied (at once, even with
// nothing to send) without a record committed after the change; once her
// user is deleted, with Unauthenticated. Bob's subscription, which the
// change does not concern, keeps delivering. On both backends.
func TestSubscribeEndsWhenAccessEnds(t *testing.T) {
	t.Parallel()
	for name, open := range metadatatest.Backends(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			t.Run("acl deleted", func(t *testing.T) {
				e := newStreamEnv(t, open(t), 0)
				alice, bob := e.subscribe(t, "alice"), e.subscribe(t, "bob")
				e.produce(t, "before")
				alice.next(t, "alice")
				bob.next(t, "bob")
				principal, name := "User:alice", "t"
				for _, r := range e.acl.DeleteACLs(context.Background(), []acl.Filter{{ResourceType: acl.ResourceTopic, ResourceName: &name,
					PatternType: acl.PatternLiteral, Principal: &principal, Operation: acl.OpAny, Permission: acl.PermissionAny}}) {
					if r.Err != nil || len(r.Deleted) != 1 {
						t.Fatalf("delete alice's ACL: %+v", r)
					}
				}
				after := e.produce(t, "after")
				alice.ended(t, "alice", codes.PermissionDenied, after, 10*time.Second)
				if r := bob.next(t, "bob"); r.GetOffset() != after {
					t.Fatalf("bob got offset %d, want %d", r.GetOffset(), after)
				}
				// A new subscription of alice's is refused; bob's runs on.
				ctx, cancel := context.WithCancel(as(t, "alice"))
				defer cancel()
				st, err := e.c.Subscribe(ctx, &pb.SubscribeRequest{Topic: "t", Offset: ptr[uint64](0)})
				if err == nil {
					_, err = st.Recv()
				}
				wantCode(t, "alice subscribes again", err, codes.PermissionDenied)
				last := e.produce(t, "later")
				if r := bob.next(t, "bob"); r.GetOffset() != last {
					t.Fatalf("bob got offset %d, want %d", r.GetOffset(), last)
				}
			})
			t.Run("deny added", func(t *testing.T) {
				e := newStreamEnv(t, open(t), 0)
				alice, bob := e.subscribe(t, "alice"), e.subscribe(t, "bob")
				e.produce(t, "before")
				alice.next(t, "alice")
				bob.next(t, "bob")
				deny := acl.Binding{ResourceType: acl.ResourceTopic, ResourceName: "t", PatternType: acl.PatternPrefixed,
					Principal: "User:alice", Host: acl.WildcardHost, Operation: acl.OpRead, Permission: acl.PermissionDeny}
				for _, err := range e.acl.CreateACLs(context.Background(), []acl.Binding{deny}) {
					if err != nil {
						t.Fatal(err)
					}
				}
				// Nothing is produced: the idle subscription ends anyway,
				// well before its 10 s wait for data would.
				alice.ended(t, "alice", codes.PermissionDenied, 1, 5*time.Second)
				after := e.produce(t, "after")
				if r := bob.next(t, "bob"); r.GetOffset() != after {
					t.Fatalf("bob got offset %d, want %d", r.GetOffset(), after)
				}
			})
			t.Run("user deleted", func(t *testing.T) {
				e := newStreamEnv(t, open(t), 0)
				alice, bob := e.subscribe(t, "alice"), e.subscribe(t, "bob")
				e.produce(t, "before")
				alice.next(t, "alice")
				bob.next(t, "bob")
				if err := e.authn.DeleteUser(context.Background(), "alice"); err != nil {
					t.Fatal(err)
				}
				alice.ended(t, "alice", codes.Unauthenticated, 1<<62, 10*time.Second)
				after := e.produce(t, "after")
				if r := bob.next(t, "bob"); r.GetOffset() != after {
					t.Fatalf("bob got offset %d, want %d", r.GetOffset(), after)
				}
			})
		})
	}
}

// AUTH_SESSION_LIFETIME_MS ends a subscription of a password login as it
// ends a Kafka SASL session: with Unauthenticated, not before the lifetime
// passed, and it delivers until then. A super user's too.
func TestSubscribeEndsWithTheSessionLifetime(t *testing.T) {
	t.Parallel()
	const lifetime = 3 * time.Second
	e := newStreamEnv(t, metadatatest.OpenSQLite(t), lifetime)
	start := time.Now()
	alice, root := e.subscribe(t, "alice"), e.subscribe(t, "root")
	e.produce(t, "x")
	alice.next(t, "alice")
	root.next(t, "root")
	for who, s := range map[string]*subscription{"alice": alice, "root": root} {
		s.ended(t, who, codes.Unauthenticated, 1<<62, lifetime+10*time.Second)
		if d := s.endAt.Sub(start); d < lifetime {
			t.Errorf("%s's subscription ended after %s, before the lifetime %s", who, d, lifetime)
		}
	}
	// A new login starts a new lifetime.
	fresh := e.subscribe(t, "alice")
	if r := fresh.next(t, "alice again"); r.GetOffset() != 0 {
		t.Fatalf("alice again: offset %d", r.GetOffset())
	}
}

// A subscriber that stopped reading (its flow-control window full, the
// server's Send waiting) does not keep its subscription once its access
// ends: the handler returns at once (counted in
// streamhouse_grpc_requests_total), not when the client reads again.
func TestSubscribeEndsWhileSendWaits(t *testing.T) {
	t.Parallel()
	e := newStreamEnv(t, metadatatest.OpenSQLite(t), 0)
	// The smallest windows (no BDP growth): a few 200 KB records fill
	// them.
	conn, err := grpc.NewClient(e.addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(as(t, "alice"))
	defer cancel()
	st, err := pb.NewStreamHouseClient(conn).Subscribe(ctx, &pb.SubscribeRequest{Topic: "t", Offset: ptr[uint64](0), MaxRecords: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Header(); err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("x", 200<<10)
	for range 4 {
		e.produce(t, big)
	}
	ended := func() float64 {
		return testutil.ToFloat64(e.srv.metrics.requests.WithLabelValues(pb.StreamHouse_Subscribe_FullMethodName, codes.PermissionDenied.String()))
	}
	principal, name := "User:alice", "t"
	for _, r := range e.acl.DeleteACLs(context.Background(), []acl.Filter{{ResourceType: acl.ResourceTopic, ResourceName: &name,
		PatternType: acl.PatternLiteral, Principal: &principal, Operation: acl.OpAny, Permission: acl.PermissionAny}}) {
		if r.Err != nil || len(r.Deleted) != 1 {
			t.Fatalf("delete alice's ACL: %+v", r)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for ended() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the subscription's handler still runs 10 s after the ACL went, its client not reading")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// The client, reading again, gets what was sent, then the end.
	for {
		if _, err := st.Recv(); err != nil {
			wantCode(t, "alice's subscription", err, codes.PermissionDenied)
			break
		}
	}
}
