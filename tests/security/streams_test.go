package security

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	grpcmd "google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/streamhouse/streamhouse/internal/e2e"
	pb "github.com/streamhouse/streamhouse/proto/streamhousepb"
)

// streamServer is the real binary with logins on (root a super user,
// alice and bob users), topic orders, and READ on it for alice and bob
// granted over Kafka's CreateAcls.
type streamServer struct {
	p     *e2e.Proc
	ctx   context.Context
	admin *kadm.Client
	sh    pb.StreamHouseClient
}

func startStreamServer(t *testing.T, be e2e.Backend, env ...string) *streamServer {
	t.Helper()
	dir := t.TempDir()
	p := e2e.Start(t, dir, append(append(be.Env(t, dir), "AUTH_ENABLED=true",
		"AUTH_BOOTSTRAP_USERS=root:root-pw,alice:alice-pw,bob:bob-pw", "SUPER_USERS=root"), env...))
	p.User, p.Password = "root", "root-pw"
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	if code := p.Call(http.MethodPost, "/api/v1/topics", map[string]any{"name": "orders", "partitions": 1}, nil); code != http.StatusCreated {
		t.Fatalf("create topic: %d", code)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(p.KafkaAddr), kgo.SASL(scram.Auth{User: "root", Pass: "root-pw"}.AsSha256Mechanism()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	admin := kadm.NewClient(cl)
	res, err := admin.CreateACLs(ctx, kadm.NewACLs().Allow("User:alice", "User:bob").Topics("orders").Operations(kadm.OpRead))
	if err != nil || len(res) != 2 || res[0].Err != nil || res[1].Err != nil {
		t.Fatalf("CreateAcls: %v %+v", err, res)
	}
	conn, err := grpc.NewClient(p.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return &streamServer{p: p, ctx: ctx, admin: admin, sh: pb.NewStreamHouseClient(conn)}
}

// produce writes value to orders as root and returns its offset.
func (s *streamServer) produce(t *testing.T, value string) int64 {
	t.Helper()
	var out struct{ Offset int64 }
	if code := s.p.Call(http.MethodPost, "/api/v1/produce", map[string]any{"topic": "orders", "value": value}, &out); code != http.StatusOK {
		t.Fatalf("produce: %d", code)
	}
	return out.Offset
}

// item is what a stream delivered: a record's offset, or its last line
// or status (err).
type item struct {
	offset int64
	err    string
	at     time.Time // when the reader got it
}

// liveStream is one stream being read: items as they come, closed at its
// end.
type liveStream struct {
	who   string
	items chan item
}

// sqlStream opens a live SQL query over orders as user and returns once
// it is accepted (its headers arrived).
func (s *streamServer) sqlStream(t *testing.T, user string) *liveStream {
	t.Helper()
	ctx, cancel := context.WithCancel(s.ctx)
	body, _ := json.Marshal(map[string]any{"query": `SELECT "offset" AS o, value FROM orders`, "timeout_ms": 600000})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.p.URL+"/api/v1/sql/stream", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth(user, user+"-pw")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s's live query: %d", user, resp.StatusCode)
	}
	ls := &liveStream{who: "SQL stream of " + user, items: make(chan item, 1000)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(ls.items)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			var row struct {
				O     *int64 `json:"o"`
				Error string `json:"error"`
			}
			if err := json.Unmarshal(sc.Bytes(), &row); err != nil || (row.O == nil && row.Error == "") {
				ls.items <- item{err: "bad line " + sc.Text(), at: time.Now()}
				return
			}
			if row.O == nil {
				ls.items <- item{err: row.Error, at: time.Now()}
				continue
			}
			ls.items <- item{offset: *row.O}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return ls
}

// subscribe opens a gRPC Subscribe of orders from offset 0 as user and
// returns once it is in place.
func (s *streamServer) subscribe(t *testing.T, user string) *liveStream {
	t.Helper()
	ctx, cancel := context.WithCancel(grpcmd.AppendToOutgoingContext(s.ctx, "authorization",
		"Basic "+base64.StdEncoding.EncodeToString([]byte(user+":"+user+"-pw"))))
	zero := uint64(0)
	st, err := s.sh.Subscribe(ctx, &pb.SubscribeRequest{Topic: "orders", Offset: &zero})
	if err == nil {
		_, err = st.Header()
	}
	if err != nil {
		cancel()
		t.Fatalf("%s subscribes: %v", user, err)
	}
	ls := &liveStream{who: "gRPC subscription of " + user, items: make(chan item, 1000)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(ls.items)
		for {
			res, err := st.Recv()
			if err != nil {
				ls.items <- item{err: status.Code(err).String(), at: time.Now()}
				return
			}
			for _, r := range res.GetRecords() {
				ls.items <- item{offset: int64(r.GetOffset())}
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return ls
}

// next waits for the stream's next record and checks its offset.
func (ls *liveStream) next(t *testing.T, offset int64) {
	t.Helper()
	select {
	case it, ok := <-ls.items:
		if !ok || it.err != "" || it.offset != offset {
			t.Fatalf("%s: %+v (open %v), want offset %d", ls.who, it, ok, offset)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: no record in 30 s", ls.who)
	}
}

// ends waits (at most within) for the stream to end with the error want
// (its last line's "error", or the gRPC code), failing on any record at
// offset from or later meanwhile, and returns when its reader got that
// end.
func (ls *liveStream) ends(t *testing.T, want string, from int64, within time.Duration) time.Time {
	t.Helper()
	timeout := time.After(within)
	var got []string
	var at time.Time
	for {
		select {
		case it, ok := <-ls.items:
			switch {
			case !ok:
				if len(got) != 1 || got[0] != want {
					t.Fatalf("%s ended with %q, want %q", ls.who, got, want)
				}
				return at
			case it.err != "":
				got, at = append(got, it.err), it.at
			case it.offset >= from:
				t.Fatalf("%s delivered offset %d, committed after its access ended (from %d)", ls.who, it.offset, from)
			}
		case <-timeout:
			t.Fatalf("%s still runs %s after its access ended (so far %q)", ls.who, within, got)
		}
	}
}

// Long-lived streams stay authorized on the real binary: alice's live SQL
// query and gRPC subscription end once her ACL is deleted over Kafka's
// DeleteAcls (topic_authorization_failed / PermissionDenied) without a
// record committed after; bob's run on until his user is deleted
// (unauthorized / Unauthenticated); root's, a super user's, run through
// both. On both backends.
func TestStreamsEndWhenAccessEnds(t *testing.T) {
	t.Parallel()
	for _, be := range e2e.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			t.Parallel()
			s := startStreamServer(t, be)
			streams := map[string][]*liveStream{}
			for _, u := range []string{"alice", "bob", "root"} {
				streams[u] = []*liveStream{s.sqlStream(t, u), s.subscribe(t, u)}
			}
			first := s.produce(t, "v1")
			for _, u := range []string{"alice", "bob", "root"} {
				for _, ls := range streams[u] {
					ls.next(t, first)
				}
			}

			res, err := s.admin.DeleteACLs(s.ctx, kadm.NewACLs().Allow("User:alice").AllowHosts("*").Topics("orders").
				Operations(kadm.OpRead).ResourcePatternType(kadm.ACLPatternLiteral))
			if err != nil || len(res) != 1 || res[0].Err != nil || len(res[0].Deleted) != 1 {
				t.Fatalf("DeleteAcls: %v %+v", err, res)
			}
			second := s.produce(t, "v2")
			streams["alice"][0].ends(t, "topic_authorization_failed", second, 20*time.Second)
			streams["alice"][1].ends(t, codes.PermissionDenied.String(), second, 20*time.Second)
			for _, u := range []string{"bob", "root"} {
				for _, ls := range streams[u] {
					ls.next(t, second)
				}
			}

			if code := s.p.Call(http.MethodDelete, "/api/v1/users/bob", nil, nil); code != http.StatusNoContent && code != http.StatusOK {
				t.Fatalf("delete bob: %d", code)
			}
			streams["bob"][0].ends(t, "unauthorized", second+1, 20*time.Second)
			streams["bob"][1].ends(t, codes.Unauthenticated.String(), second+1, 20*time.Second)
			third := s.produce(t, "v3")
			for _, ls := range streams["root"] {
				ls.next(t, third)
			}
		})
	}
}

// AUTH_SESSION_LIFETIME_MS ends the streams of a password login, as it
// ends a Kafka SASL session: the live SQL query with a last line
// {"error":"unauthorized"}, the subscription with Unauthenticated, not
// before the lifetime passed; a new login streams again.
func TestStreamsEndWithTheSessionLifetime(t *testing.T) {
	t.Parallel()
	const lifetime = 4 * time.Second
	for _, be := range e2e.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			t.Parallel()
			s := startStreamServer(t, be, fmt.Sprintf("AUTH_SESSION_LIFETIME_MS=%d", lifetime.Milliseconds()))
			start := time.Now()
			sql, sub := s.sqlStream(t, "alice"), s.subscribe(t, "alice")
			off := s.produce(t, "v1")
			sql.next(t, off)
			sub.next(t, off)
			ends := map[string]time.Time{
				sql.who: sql.ends(t, "unauthorized", off+1, lifetime+20*time.Second),
				sub.who: sub.ends(t, codes.Unauthenticated.String(), off+1, lifetime+20*time.Second),
			}
			for who, end := range ends {
				if d := end.Sub(start); d < lifetime {
					t.Errorf("the %s ended %s after it began, before the lifetime %s", who, d, lifetime)
				}
			}
			again := s.subscribe(t, "alice")
			again.next(t, off)
		})
	}
}
