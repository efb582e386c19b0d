package rest_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/internal/acl"
	"github.com/streamhouse/streamhouse/internal/auth"
	"github.com/streamhouse/streamhouse/internal/broker"
	"github.com/streamhouse/streamhouse/internal/metadata/faulty"
	"github.com/streamhouse/streamhouse/internal/metadata/sqlstore"
	"github.com/streamhouse/streamhouse/internal/objstore"
	"github.com/streamhouse/streamhouse/internal/partlog"
	"github.com/streamhouse/streamhouse/internal/rest"
)

// pollEnv is authEnv with the authenticator at hand (over creds, its
// store counting the credential reads), topic "t" (READ for alice), and
// a signal for each request of alice's that reaches the REST handler.
type pollEnv struct {
	*authEnv
	authn   *auth.Authenticator
	creds   *faulty.Store
	entered chan string
}

// newPollEnv: the user is looked up every 20 ms; mutate changes more.
func newPollEnv(t *testing.T, mutate ...func(*auth.Config)) *pollEnv {
	t.Helper()
	ctx := context.Background()
	logger := slog.New(slog.DiscardHandler)
	store, err := sqlstore.OpenSQLite(ctx, filepath.Join(t.TempDir(), "meta.db"), logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	bucket, err := objstore.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	plog, err := partlog.Open(ctx, partlog.Config{AgentID: "test", Bucket: bucket, Store: store, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = plog.Close(context.Background()) })
	b, err := broker.New(ctx, broker.Config{AgentID: "test", Store: store, Log: plog, Logger: logger, LeaseTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	creds := faulty.New(store)
	cfg := auth.Config{Store: creds, Enabled: true, SuperUsers: []string{"root"}, Logger: logger, LoginRecheck: 20 * time.Millisecond}
	for _, m := range mutate {
		m(&cfg)
	}
	authn := auth.New(cfg)
	if err := authn.Bootstrap(ctx, []auth.BootstrapUser{{Name: "root", Password: "root-pw"}, {Name: "alice", Password: "alice-pw"}}); err != nil {
		t.Fatal(err)
	}
	a, err := acl.New(ctx, acl.Config{Store: store, Logger: logger, SuperUsers: []string{"root"}, Enforce: true})
	if err != nil {
		t.Fatal(err)
	}
	entered := make(chan string, 10)
	api := rest.New(rest.Config{Broker: b, Logger: logger, Users: authn, ACL: a})
	srv := httptest.NewServer(authn.HTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if auth.PrincipalFrom(r.Context()).Name == "alice" {
			entered <- r.URL.Path
		}
		api.ServeHTTP(w, r)
	})))
	t.Cleanup(srv.Close)
	e := &pollEnv{authEnv: &authEnv{t: t, b: b, acl: a, url: srv.URL}, authn: authn, creds: creds, entered: entered}
	e.topic("t")
	e.grant(acl.ResourceTopic, "t", acl.OpRead)
	return e
}

// longPoll starts alice's GET /api/v1/consume of t at offset 1 with
// wait_ms 30000, returns once the request's guard is in place (it looked
// the user up: a credential read after the login's), and then its
// answer.
func (e *pollEnv) longPoll() <-chan resp {
	e.t.Helper()
	out := make(chan resp, 1)
	go func() {
		req, err := http.NewRequest(http.MethodGet, e.url+"/api/v1/consume?topic=t&offset=1&wait_ms=30000", nil)
		if err != nil {
			out <- resp{status: -1, body: []byte(err.Error())}
			return
		}
		req.SetBasicAuth("alice", "alice-pw")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			out <- resp{status: -1, body: []byte(err.Error())}
			return
		}
		defer res.Body.Close()
		raw, _ := io.ReadAll(res.Body)
		out <- resp{status: res.StatusCode, body: raw}
	}()
	select {
	case <-e.entered:
	case <-time.After(20 * time.Second):
		e.t.Fatal("the long poll did not reach the handler in 20 s")
	}
	// The login's reads are done once the handler runs.
	reads := e.creds.Calls(faulty.OpGetCredential)
	deadline := time.Now().Add(20 * time.Second)
	for e.creds.Calls(faulty.OpGetCredential) == reads {
		select {
		case r := <-out:
			e.t.Fatalf("the long poll answered before its guard looked the user up: %d %s", r.status, r.body)
		default:
		}
		if time.Now().After(deadline) {
			e.t.Fatal("the long poll's guard did not look the user up in 20 s")
		}
		time.Sleep(time.Millisecond)
	}
	return out
}

func (e *pollEnv) produceAsRoot(value string) {
	e.t.Helper()
	if r := e.do("root", http.MethodPost, "/api/v1/produce", `{"topic":"t","value":"`+value+`"}`); r.status != http.StatusOK {
		e.t.Fatalf("produce: %d %s", r.status, r.body)
	}
}

// answered waits (at most 10 s, far less than the poll's 30 s) for the
// long poll's answer and checks its status and error code.
func answered(t *testing.T, ch <-chan resp, status int, code string) {
	t.Helper()
	select {
	case r := <-ch:
		var body struct{ Error, Message string }
		_ = json.Unmarshal(r.body, &body)
		if r.status != status || body.Error != code {
			t.Fatalf("long poll answered %d %s, want %d %s", r.status, r.body, status, code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the long poll still waits 10 s after its access ended")
	}
}

// A REST long poll (GET /api/v1/consume with wait_ms) waiting for data
// ends when its caller's access does, in the REST error format: 403
// topic_authorization_failed at once when the ACL is deleted (and the
// record committed after it is not answered), 401 unauthorized once the
// user is deleted.
func TestLongPollEndsWhenAccessEnds(t *testing.T) {
	t.Parallel()
	t.Run("acl deleted", func(t *testing.T) {
		e := newPollEnv(t)
		e.produceAsRoot("before")
		ch := e.longPoll()
		e.revokeAll()
		e.produceAsRoot("after") // offset 1: what the poll waits for
		answered(t, ch, http.StatusForbidden, "topic_authorization_failed")
	})
	t.Run("user deleted", func(t *testing.T) {
		e := newPollEnv(t)
		e.produceAsRoot("before")
		ch := e.longPoll()
		if err := e.authn.DeleteUser(context.Background(), "alice"); err != nil {
			t.Fatal(err)
		}
		answered(t, ch, http.StatusUnauthorized, "unauthorized")
	})
	t.Run("session lifetime", func(t *testing.T) {
		// The login is the request's own (Basic): the lifetime caps
		// the wait, and the poll answers as one that found nothing,
		// not 401 (a browser would ask for the password again).
		e := newPollEnv(t, func(c *auth.Config) { c.SessionLifetime = 300 * time.Millisecond })
		e.produceAsRoot("before")
		start := time.Now()
		ch := e.longPoll()
		select {
		case r := <-ch:
			if r.status != http.StatusOK || !strings.Contains(string(r.body), `"records":[]`) {
				t.Fatalf("long poll past the lifetime: %d %s", r.status, r.body)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("the long poll still waits 20 s after the lifetime")
		}
		if d := time.Since(start); d < 300*time.Millisecond {
			t.Fatalf("answered after %s, before the lifetime", d)
		}
	})
	t.Run("unaffected", func(t *testing.T) {
		// Another topic's ACL going leaves the poll waiting; it answers
		// the record when it comes.
		e := newPollEnv(t)
		e.topic("other")
		e.grant(acl.ResourceTopic, "other", acl.OpRead)
		e.produceAsRoot("before")
		ch := e.longPoll()
		name, principal := "other", "User:alice"
		for _, r := range e.acl.DeleteACLs(context.Background(), []acl.Filter{{ResourceType: acl.ResourceTopic, ResourceName: &name,
			PatternType: acl.PatternLiteral, Principal: &principal, Operation: acl.OpAny, Permission: acl.PermissionAny}}) {
			if r.Err != nil || len(r.Deleted) != 1 {
				t.Fatalf("delete: %+v", r)
			}
		}
		e.produceAsRoot("after")
		select {
		case r := <-ch:
			if r.status != http.StatusOK || !strings.Contains(string(r.body), `"value":"after"`) {
				t.Fatalf("long poll: %d %s", r.status, r.body)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("no answer in 20 s")
		}
	})
}
