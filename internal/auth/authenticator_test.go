package auth

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/metadata/faulty"
	"github.com/streamhouse/streamhouse/internal/metadata/metadatatest"
)

// fakeClock is a settable clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestVerifyPasswordCache(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	a, _ := newTestAuth(t, func(c *Config) { c.Now = clock.Now })
	ctx := t.Context()
	verify := func(user, pw string) error {
		_, err := a.VerifyPassword(ctx, user, pw)
		return err
	}
	if err := verify("alice", "alice-secret"); err != nil {
		t.Fatal(err)
	}
	if err := verify("alice", "alice-secret"); err != nil {
		t.Fatal(err)
	}
	if n := a.derivations.Load(); n != 1 {
		t.Fatalf("two checks of one password ran PBKDF2 %d times, want 1 (cached)", n)
	}
	// Failures are never cached.
	for range 2 {
		wantErr(t, verify("alice", "wrong"), ErrBadCredentials, "wrong password")
	}
	if n := a.derivations.Load(); n != 3 {
		t.Fatalf("PBKDF2 runs after two failures: %d, want 3", n)
	}
	// A password change takes effect at once: the old password's cache
	// entry belongs to the old salt.
	if _, err := a.SetPassword(ctx, "alice", "new-secret", nil); err != nil {
		t.Fatal(err)
	}
	wantErr(t, verify("alice", "alice-secret"), ErrBadCredentials, "old password after a change")
	if err := verify("alice", "new-secret"); err != nil {
		t.Fatalf("new password: %v", err)
	}
	// So does a deletion.
	if err := a.DeleteUser(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	wantErr(t, verify("alice", "new-secret"), ErrBadCredentials, "deleted user")
	// Entries expire.
	if _, err := a.SetPassword(ctx, "bob", "bob-secret", nil); err != nil {
		t.Fatal(err)
	}
	_ = verify("bob", "bob-secret")
	before := a.derivations.Load()
	clock.Add(verifiedTTL)
	if err := verify("bob", "bob-secret"); err != nil || a.derivations.Load() != before+1 {
		t.Fatalf("after the TTL: %v, %d runs (want %d)", err, a.derivations.Load(), before+1)
	}
}

func TestVerifiedCacheBounded(t *testing.T) {
	t.Parallel()
	c := newVerifiedCache(time.Minute, 3)
	now := time.Unix(0, 0)
	for i := range 10 {
		c.put([32]byte{byte(i)}, []byte{1}, now)
	}
	if n := c.len(); n != 3 {
		t.Fatalf("cache holds %d entries, bound 3", n)
	}
	if _, ok := c.get([32]byte{9}, now); !ok {
		t.Fatal("the newest entry is missing")
	}
}

func TestVerifyOnlySHA512(t *testing.T) {
	t.Parallel()
	a, _ := newTestAuth(t)
	ctx := t.Context()
	salt := []byte("0123456789abcdef")
	sp, err := ScramSHA512.SaltedPassword("carol-secret", salt, 4096)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.PutSaltedCredential(ctx, "carol", ScramSHA512, salt, sp, 4096); err != nil {
		t.Fatal(err)
	}
	if p, err := a.VerifyPassword(ctx, "carol", "carol-secret"); err != nil || p != User("carol") {
		t.Fatalf("SHA-512-only user: %v %v", p, err)
	}
	srv, _ := a.NewSession(MechanismScramSHA512)
	if err := runExchange(ctx, srv, scramClient(MechanismScramSHA512, "carol", "carol-secret")); err != nil {
		t.Fatalf("SCRAM-SHA-512 with an upserted salted password: %v", err)
	}
}

func TestStoreOutageIsNoVerdict(t *testing.T) {
	t.Parallel()
	st := faulty.New(metadatatest.OpenSQLite(t))
	a := New(Config{Store: st, Enabled: true})
	ctx := t.Context()
	if err := a.Bootstrap(ctx, []BootstrapUser{{"alice", "alice-secret"}}); err != nil {
		t.Fatal(err)
	}
	st.Inject(faulty.Fault{Op: faulty.OpGetCredential, Err: metadata.ErrUnavailable})
	_, err := a.VerifyPassword(ctx, "alice", "alice-secret")
	if !errors.Is(err, metadata.ErrUnavailable) || errors.Is(err, ErrBadCredentials) {
		t.Fatalf("verify during an outage: %v", err)
	}
	srv, _ := a.NewSession(MechanismScramSHA256)
	_, _, err = srv.Step(ctx, []byte("n,,n=alice,r=abc"))
	if !errors.Is(err, metadata.ErrUnavailable) || errors.Is(err, ErrBadCredentials) || errors.Is(err, ErrMalformed) {
		t.Fatalf("SCRAM during an outage: %v", err)
	}
}

func TestUserManagement(t *testing.T) {
	t.Parallel()
	a, _ := newTestAuth(t)
	ctx := t.Context()
	created, err := a.SetPassword(ctx, "bob", "pw", []*Mechanism{ScramSHA512})
	if err != nil || !created {
		t.Fatalf("create bob: %v %v", created, err)
	}
	if created, err := a.SetPassword(ctx, "bob", "pw2", nil); err != nil || created {
		t.Fatalf("change bob: %v %v", created, err)
	}
	agent, agentPw, err := a.AgentLogin(ctx, "agent-1")
	if err != nil {
		t.Fatal(err)
	}
	users, err := a.Users(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, u := range users {
		for _, c := range u.Credentials {
			got = append(got, u.Name+"/"+c.Mechanism)
		}
	}
	if want := "alice/SCRAM-SHA-256 alice/SCRAM-SHA-512 bob/SCRAM-SHA-256 bob/SCRAM-SHA-512"; strings.Join(got, " ") != want {
		t.Fatalf("Users: %v, want %s (agents not listed)", got, want)
	}
	// The agent logs in like anyone and is a super user.
	srv, _ := a.NewSession(MechanismScramSHA512)
	if err := runExchange(ctx, srv, scramClient(MechanismScramSHA512, agent, agentPw)); err != nil {
		t.Fatalf("agent login: %v", err)
	}
	if !IsAgent(User(srv.User())) || !a.IsSuperUser(User(srv.User())) || a.IsSuperUser(User("bob")) {
		t.Fatalf("super users: agent %v", User(srv.User()))
	}
	if err := a.ForgetAgent(ctx, "agent-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.VerifyPassword(ctx, agent, agentPw); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("forgotten agent logs in: %v", err)
	}
	// Reserved and bad names are refused; nothing is stored.
	for _, name := range []string{"", "a:b", "tab\tname", agent, strings.Repeat("x", 257)} {
		if _, err := a.SetPassword(ctx, name, "pw", nil); !errors.Is(err, ErrInvalidUser) {
			t.Errorf("SetPassword(%q): %v", name, err)
		}
	}
	if _, err := a.SetPassword(ctx, "dave", "", nil); !errors.Is(err, ErrInvalidUser) {
		t.Errorf("empty password: %v", err)
	}
	if err := a.DeleteCredential(ctx, "bob", ScramSHA256); err != nil {
		t.Fatal(err)
	}
	if err := a.DeleteCredential(ctx, "bob", ScramSHA256); !errors.Is(err, ErrUserNotFound) {
		t.Fatalf("delete a missing credential: %v", err)
	}
	if err := a.DeleteUser(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if err := a.DeleteUser(ctx, "bob"); !errors.Is(err, ErrUserNotFound) {
		t.Fatalf("delete a missing user: %v", err)
	}
}

func TestBootstrapKeepsExistingUsers(t *testing.T) {
	t.Parallel()
	a, _ := newTestAuth(t)
	ctx := t.Context()
	if err := a.Bootstrap(ctx, []BootstrapUser{{"alice", "other"}, {"erin", "erin-secret"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.VerifyPassword(ctx, "alice", "alice-secret"); err != nil {
		t.Fatalf("a second bootstrap changed alice's password: %v", err)
	}
	for _, mech := range []string{MechanismScramSHA256, MechanismScramSHA512} {
		srv, _ := a.NewSession(mech)
		if err := runExchange(ctx, srv, scramClient(mech, "erin", "erin-secret")); err != nil {
			t.Fatalf("bootstrap user over %s: %v", mech, err)
		}
	}
	if err := a.Bootstrap(ctx, []BootstrapUser{{"bad:name", "x"}}); !errors.Is(err, ErrInvalidUser) {
		t.Fatalf("bad bootstrap name: %v", err)
	}
}

func TestThrottleDelays(t *testing.T) {
	t.Parallel()
	th := newThrottle()
	now := time.Unix(0, 0)
	var got []time.Duration
	for range 10 {
		got = append(got, th.failure("10.0.0.1", now))
	}
	want := []time.Duration{0, 100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond,
		1600 * time.Millisecond, 3200 * time.Millisecond, 5 * time.Second, 5 * time.Second, 5 * time.Second}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("delays %v, want %v", got, want)
		}
	}
	// Another address starts from nothing.
	if d := th.failure("10.0.0.2", now); d != 0 {
		t.Fatalf("first failure of another address waits %v", d)
	}
	// A quiet window forgets.
	if d := th.failure("10.0.0.1", now.Add(throttleWindow)); d != 0 {
		t.Fatalf("after a quiet window: %v", d)
	}
	// Bounded: the table never holds more than throttleMaxIPs.
	for i := range throttleMaxIPs + 50 {
		th.failure("ip-"+string(rune('a'+i%26))+time.Duration(i).String(), now.Add(time.Duration(i)))
	}
	th.mu.Lock()
	n := len(th.byIP)
	th.mu.Unlock()
	if n > throttleMaxIPs {
		t.Fatalf("throttle holds %d addresses, bound %d", n, throttleMaxIPs)
	}
}

// A failing address waits; another address's failure is answered while
// it does (ordering, not timing).
func TestFailedSlowsOnlyItsAddress(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	waiting := make(chan time.Duration, 10)
	a, _ := newTestAuth(t, func(c *Config) {
		c.Sleep = func(ctx context.Context, d time.Duration) error {
			if d <= 0 {
				return nil
			}
			waiting <- d
			select {
			case <-release:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	})
	ctx := t.Context()
	bad := errors.New("bad")
	if err := a.Failed(ctx, ListenerKafka, MechanismPlain, "127.0.0.1:1000", bad); err != nil {
		t.Fatal(err) // the first failure does not wait
	}
	aDone := make(chan error, 1)
	go func() { aDone <- a.Failed(ctx, ListenerKafka, MechanismPlain, "127.0.0.1:1001", bad) }()
	if d := <-waiting; d != throttleBase {
		t.Fatalf("second failure waits %v, want %v", d, throttleBase)
	}
	// While the first address waits, the other is answered at once.
	if err := a.Failed(ctx, ListenerKafka, MechanismPlain, "127.0.0.2:1000", bad); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-aDone:
		t.Fatalf("the slowed address was answered before its wait ended: %v", err)
	default:
	}
	close(release)
	if err := <-aDone; err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(a.metrics.failures.WithLabelValues(ListenerKafka, MechanismPlain)); got != 3 {
		t.Fatalf("failures counted: %v, want 3", got)
	}
}

func TestMetricsStartAtZero(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	New(Config{Store: metadatatest.OpenSQLite(t), Registry: reg})
	n, err := testutil.GatherAndCount(reg, "streamhouse_auth_failures_total")
	if err != nil || n != 9 {
		t.Fatalf("failure series: %d, %v; want 9 (kafka 4, http 2, grpc 3)", n, err)
	}
	for _, want := range []string{`listener="kafka",mechanism="SCRAM-SHA-512"`, `listener="http",mechanism="basic"`, `listener="grpc",mechanism="none"`, `listener="grpc",mechanism="agent"`} {
		mfs, _ := reg.Gather()
		found := false
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				var labels []string
				for _, l := range m.GetLabel() {
					labels = append(labels, l.GetName()+`="`+l.GetValue()+`"`)
				}
				if mf.GetName() == "streamhouse_auth_failures_total" && strings.Join(labels, ",") == want && m.GetCounter().GetValue() == 0 {
					found = true
				}
			}
		}
		if !found {
			t.Errorf("no zero series %s", want)
		}
	}
}

func TestHTTPMiddleware(t *testing.T) {
	t.Parallel()
	st := faulty.New(metadatatest.OpenSQLite(t))
	a := New(Config{Store: st, Enabled: true})
	if err := a.Bootstrap(t.Context(), []BootstrapUser{{"alice", "alice-secret"}}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.HTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(PrincipalFrom(r.Context()).String()))
	})))
	t.Cleanup(srv.Close)
	do := func(path, user, pw string) (int, string, http.Header) {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+path, nil)
		if user != "" {
			req.SetBasicAuth(user, pw)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		buf := make([]byte, 512)
		for {
			n, err := resp.Body.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		return resp.StatusCode, b.String(), resp.Header
	}
	for _, open := range []string{"/health", "/live", "/ready", "/metrics"} {
		if code, body, _ := do(open, "", ""); code != 200 || body != "User:ANONYMOUS" {
			t.Errorf("%s without login: %d %q", open, code, body)
		}
	}
	code, body, h := do("/api/v1/topics", "", "")
	if code != 401 || h.Get("WWW-Authenticate") != `Basic realm="streamhouse"` || !contains(body, `"error":"unauthorized"`) {
		t.Fatalf("no credentials: %d %q %v", code, body, h)
	}
	if code, body, _ := do("/api/v1/topics", "alice", "wrong"); code != 401 || !contains(body, "invalid user or password") {
		t.Fatalf("wrong password: %d %q", code, body)
	}
	if code, body, _ := do("/schemas/subjects", "", ""); code != 401 || !contains(body, `"error_code":401`) {
		t.Fatalf("schema registry without login: %d %q", code, body)
	}
	if code, body, _ := do("/api/v1/topics", "alice", "alice-secret"); code != 200 || body != "User:alice" {
		t.Fatalf("good login: %d %q", code, body)
	}
	// /healthz is not /health: the open set is exact.
	if code, _, _ := do("/healthz", "", ""); code != 401 {
		t.Fatalf("/healthz without login: %d", code)
	}
	st.Inject(faulty.Fault{Op: faulty.OpGetCredential, Err: metadata.ErrUnavailable})
	if code, _, h := do("/api/v1/topics", "alice", "alice-secret"); code != 503 || h.Get("Retry-After") == "" {
		t.Fatalf("store outage: %d, want 503 with Retry-After", code)
	}
	st.Clear()
	if got := testutil.ToFloat64(a.metrics.failures.WithLabelValues(ListenerHTTP, MechanismNone)); got != 3 {
		t.Fatalf("missing-credential failures: %v, want 3", got)
	}
}

func TestHTTPAuthOff(t *testing.T) {
	t.Parallel()
	a := New(Config{Store: metadatatest.OpenSQLite(t)})
	rec := httptest.NewRecorder()
	a.HTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(PrincipalFrom(r.Context()).String()))
	})).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v1/topics", nil))
	if rec.Code != 200 || rec.Body.String() != "User:ANONYMOUS" {
		t.Fatalf("auth off: %d %q", rec.Code, rec.Body.String())
	}
}
