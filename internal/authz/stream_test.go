package authz_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/internal/acl"
	"github.com/streamhouse/streamhouse/internal/auth"
	"github.com/streamhouse/streamhouse/internal/authz"
	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/metadata/faulty"
	"github.com/streamhouse/streamhouse/internal/metadata/metadatatest"
)

// guardEnv is an authorizer and authenticator over a real store, with
// alice allowed to READ topic t, and alice's stream context.
// The user is looked up every 20 ms unless mutate says otherwise.
func guardEnv(t testing.TB, store metadata.Store, lifetime time.Duration, extra int, mutate ...func(*auth.Config)) (*acl.Authorizer, *auth.Authenticator, context.Context) {
	t.Helper()
	ctx := context.Background()
	logger := slog.New(slog.DiscardHandler)
	cfg := auth.Config{Store: store, Enabled: true, Logger: logger, SessionLifetime: lifetime, LoginRecheck: 20 * time.Millisecond}
	for _, m := range mutate {
		m(&cfg)
	}
	authn := auth.New(cfg)
	if err := authn.Bootstrap(ctx, []auth.BootstrapUser{{Name: "alice", Password: "alice-pw"}}); err != nil {
		t.Fatal(err)
	}
	a, err := acl.New(ctx, acl.Config{Store: store, Logger: logger, Enforce: true})
	if err != nil {
		t.Fatal(err)
	}
	bs := []acl.Binding{{ResourceType: acl.ResourceTopic, ResourceName: "t", PatternType: acl.PatternLiteral,
		Principal: "User:alice", Host: acl.WildcardHost, Operation: acl.OpRead, Permission: acl.PermissionAllow}}
	// Others' bindings, as a cluster has them.
	for i := range extra {
		bs = append(bs, acl.Binding{ResourceType: acl.ResourceTopic, ResourceName: fmt.Sprintf("topic-%d", i), PatternType: acl.PatternPrefixed,
			Principal: fmt.Sprintf("User:u%d", i), Host: acl.WildcardHost, Operation: acl.OpRead, Permission: acl.PermissionAllow})
	}
	for len(bs) > 0 {
		n := min(len(bs), acl.MaxCreatePerRequest)
		for _, err := range a.CreateACLs(ctx, bs[:n]) {
			if err != nil {
				t.Fatal(err)
			}
		}
		bs = bs[n:]
	}
	p := auth.User("alice")
	sctx := auth.WithLogin(auth.WithPrincipal(ctx, p), auth.Login{Principal: p, Mechanism: auth.MechanismBasic, At: authn.Now()})
	return a, authn, sctx
}

// waitEnded waits (at most 10 s) for the guard's context to end and
// returns the guard's reason.
func waitEnded(t *testing.T, ctx context.Context, g *authz.Guard) error {
	t.Helper()
	select {
	case <-ctx.Done():
		return g.Err()
	case <-time.After(10 * time.Second):
		t.Fatal("the guard's context still runs 10 s after the change")
	}
	return nil
}

// A Guard cancels its context, with the reason in Err, when a DENY is
// added, when the user is deleted, and when the login's lifetime passes;
// a change that does not concern it leaves it running. Stop ends its
// goroutine (go test -race and the checks of goroutines leaking in the
// packages using it).
func TestGuard(t *testing.T) {
	t.Parallel()
	t.Run("deny", func(t *testing.T) {
		a, _, sctx := guardEnv(t, metadatatest.OpenSQLite(t), 0, 0)
		// No authenticator: nothing but the ACLs' change notice wakes
		// the guard (no user lookups every LoginRecheck).
		ctx, g := authz.New(a, auth.ListenerGRPC).Guard(sctx, nil, authz.Need(acl.OpRead, acl.Topic("t")))
		defer g.Stop()
		// Another topic's binding: no effect, once the guard handled
		// the change's wakeup (it waits for changes first: one made
		// before would not wake it, only be seen by its first check).
		waitFor(t, "the guard to wait", func() bool { return authz.Waits(g) > 0 })
		woken := authz.Wakeups(g)
		for _, err := range a.CreateACLs(context.Background(), []acl.Binding{{ResourceType: acl.ResourceTopic, ResourceName: "u", PatternType: acl.PatternLiteral,
			Principal: "User:alice", Host: acl.WildcardHost, Operation: acl.OpRead, Permission: acl.PermissionDeny}}) {
			if err != nil {
				t.Fatal(err)
			}
		}
		waitFor(t, "the guard's wakeup", func() bool { return authz.Wakeups(g) > woken || ctx.Err() != nil })
		if err := g.Err(); err != nil || ctx.Err() != nil {
			t.Fatalf("after an unrelated change: %v %v", err, ctx.Err())
		}
		for _, err := range a.CreateACLs(context.Background(), []acl.Binding{{ResourceType: acl.ResourceTopic, ResourceName: "*", PatternType: acl.PatternLiteral,
			Principal: "User:*", Host: acl.WildcardHost, Operation: acl.OpAll, Permission: acl.PermissionDeny}}) {
			if err != nil {
				t.Fatal(err)
			}
		}
		// The change is visible here once CreateACLs returned: Err says
		// so at once, before the goroutine wakes.
		var denied *authz.DeniedError
		if err := g.Err(); !errors.As(err, &denied) {
			t.Fatalf("Err after the DENY: %v", err)
		}
		if err := waitEnded(t, ctx, g); !errors.As(err, &denied) {
			t.Fatalf("ended with %v", err)
		}
	})
	t.Run("user deleted", func(t *testing.T) {
		_, authn, sctx := guardEnv(t, metadatatest.OpenSQLite(t), 0, 0)
		ctx, g := authz.New(nil, auth.ListenerGRPC).Guard(sctx, authn) // no ACLs: the login only
		defer g.Stop()
		if err := authn.DeleteUser(context.Background(), "alice"); err != nil {
			t.Fatal(err)
		}
		err := waitEnded(t, ctx, g)
		var ended *authz.LoginEndedError
		if !errors.As(err, &ended) || !errors.Is(err, auth.ErrUserDeleted) || !errors.Is(err, authz.ErrUnauthenticated) {
			t.Fatalf("ended with %v", err)
		}
	})
	t.Run("lifetime", func(t *testing.T) {
		a, authn, sctx := guardEnv(t, metadatatest.OpenSQLite(t), 500*time.Millisecond, 0)
		start := time.Now()
		ctx, g := authz.New(a, auth.ListenerGRPC).Guard(sctx, authn, authz.Need(acl.OpRead, acl.Topic("t")))
		defer g.Stop()
		if err := waitEnded(t, ctx, g); !errors.Is(err, auth.ErrSessionExpired) {
			t.Fatalf("ended with %v", err)
		}
		if d := time.Since(start); d < 500*time.Millisecond {
			t.Fatalf("ended after %s", d)
		}
	})
	t.Run("lifetime by the authenticator's clock", func(t *testing.T) {
		// A clock running at half speed: the real-time expiry timer
		// fires before the login expired by it; the guard waits again
		// (no user lookup in between to notice: LoginRecheck 1 h).
		start := time.Now()
		slow := func() time.Time { return start.Add(time.Since(start) / 2) }
		a, authn, sctx := guardEnv(t, metadatatest.OpenSQLite(t), 200*time.Millisecond, 0, func(c *auth.Config) {
			c.Now, c.LoginRecheck = slow, time.Hour
		})
		ctx, g := authz.New(a, auth.ListenerGRPC).Guard(sctx, authn, authz.Need(acl.OpRead, acl.Topic("t")))
		defer g.Stop()
		if err := waitEnded(t, ctx, g); !errors.Is(err, auth.ErrSessionExpired) {
			t.Fatalf("ended with %v", err)
		}
		if d := time.Since(start); d < 400*time.Millisecond {
			t.Fatalf("ended after %s, before the login's 200 ms by its clock", d)
		}
		if cause := context.Cause(ctx); !errors.Is(cause, auth.ErrSessionExpired) {
			t.Fatalf("the context's cause: %v", cause)
		}
	})
	t.Run("request ignores the lifetime", func(t *testing.T) {
		a, authn, sctx := guardEnv(t, metadatatest.OpenSQLite(t), 50*time.Millisecond, 0)
		ctx, g := authz.New(a, auth.ListenerHTTP).GuardRequest(sctx, authn, authz.Need(acl.OpRead, acl.Topic("t")))
		defer g.Stop()
		l, _ := auth.LoginFrom(sctx)
		exp := authn.Expires(l)
		waitFor(t, "the lifetime and two lookups to pass", func() bool { return authz.Wakeups(g) >= 3 && time.Now().After(exp) })
		if err := g.Err(); err != nil || ctx.Err() != nil {
			t.Fatalf("a request's guard past the lifetime: %v %v", err, ctx.Err())
		}
		if err := authn.DeleteUser(context.Background(), "alice"); err != nil {
			t.Fatal(err)
		}
		if err := waitEnded(t, ctx, g); !errors.Is(err, auth.ErrUserDeleted) {
			t.Fatalf("ended with %v", err)
		}
	})
	t.Run("no perms: no ACL wakeups", func(t *testing.T) {
		// A live SQL query's guard watches the login only (the engine
		// asks the ACLs itself): an ACL change does not wake it.
		a, authn, sctx := guardEnv(t, metadatatest.OpenSQLite(t), 0, 0, func(c *auth.Config) { c.LoginRecheck = time.Hour })
		c := authz.New(a, auth.ListenerHTTP)
		_, login := c.Guard(sctx, authn)
		defer login.Stop()
		_, read := c.Guard(sctx, authn, authz.Need(acl.OpRead, acl.Topic("t")))
		defer read.Stop()
		waitFor(t, "both guards to wait", func() bool { return authz.Waits(read) > 0 && authz.Waits(login) > 0 })
		for _, err := range a.CreateACLs(context.Background(), []acl.Binding{{ResourceType: acl.ResourceTopic, ResourceName: "u", PatternType: acl.PatternLiteral,
			Principal: "User:alice", Host: acl.WildcardHost, Operation: acl.OpRead, Permission: acl.PermissionAllow}}) {
			if err != nil {
				t.Fatal(err)
			}
		}
		waitFor(t, "the READ guard's wakeup", func() bool { return authz.Wakeups(read) > 0 })
		deadline := time.Now().Add(200 * time.Millisecond)
		for time.Now().Before(deadline) {
			if n := authz.Wakeups(login); n != 0 {
				t.Fatalf("the guard without perms woke %d times on an ACL change", n)
			}
			time.Sleep(time.Millisecond)
		}
	})
	t.Run("stop", func(t *testing.T) {
		a, authn, sctx := guardEnv(t, metadatatest.OpenSQLite(t), 0, 0)
		ctx, g := authz.New(a, auth.ListenerGRPC).Guard(sctx, authn, authz.Need(acl.OpRead, acl.Topic("t")))
		g.Stop() // returns once its goroutine has
		g.Stop()
		if ctx.Err() == nil || g.Err() != nil {
			t.Fatalf("after Stop: %v %v", ctx.Err(), g.Err())
		}
	})
}

// What a stream pays per delivered batch to stay authorized: Guard.Err,
// an in-memory ACL check, with 1 and 10,000 others' bindings.
func BenchmarkGuardErr(b *testing.B) {
	for _, extra := range []int{0, 10000} {
		b.Run(fmt.Sprintf("bindings=%d", extra+1), func(b *testing.B) {
			a, authn, sctx := guardEnv(b, metadatatest.OpenSQLite(b), 0, extra)
			_, g := authz.New(a, auth.ListenerGRPC).Guard(sctx, authn, authz.Need(acl.OpRead, acl.Topic("t")))
			defer g.Stop()
			b.ReportAllocs()
			for b.Loop() {
				if err := g.Err(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// What a user lookup costs (auth.Authenticator.CheckLogin, one credential
// read when its answer is not reused): why a stream looks its user up
// every LoginRecheck rather than at every batch.
func BenchmarkCheckLogin(b *testing.B) {
	for name, open := range map[string]func(testing.TB) metadata.Store{
		"sqlite": metadatatest.OpenSQLite, "postgres": metadatatest.OpenPostgres} {
		b.Run(name, func(b *testing.B) {
			// Every check reads the store (no answer reused).
			_, authn, sctx := guardEnv(b, open(b), 0, 0, func(c *auth.Config) { c.LoginRecheck = time.Nanosecond })
			l, _ := auth.LoginFrom(sctx)
			for b.Loop() {
				if err := authn.CheckLogin(sctx, l); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// waitFor polls cond (at most 10 s).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 10 s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// Many streams of one user cost about one user lookup per LoginRecheck
// between them (auth's per-user answer, shared), not one each.
func TestGuardsShareUserLookups(t *testing.T) {
	t.Parallel()
	const interval = 50 * time.Millisecond
	st := faulty.New(metadatatest.OpenSQLite(t))
	a, authn, sctx := guardEnv(t, st, 0, 0, func(c *auth.Config) { c.LoginRecheck = interval })
	c := authz.New(a, auth.ListenerGRPC)
	base := st.Calls(faulty.OpGetCredential)
	start := time.Now()
	guards := make([]*authz.Guard, 50)
	for i := range guards {
		_, guards[i] = c.Guard(sctx, authn, authz.Need(acl.OpRead, acl.Topic("t")))
		defer guards[i].Stop()
	}
	// Every guard looked its user up at least 5 times.
	waitFor(t, "5 lookups by each guard", func() bool {
		for _, g := range guards {
			if authz.Wakeups(g) < 5 {
				return false
			}
		}
		return true
	})
	reads := st.Calls(faulty.OpGetCredential) - base
	elapsed := time.Since(start)
	if most := int(elapsed/interval) + 2; reads > most {
		t.Fatalf("%d store reads in %s for 50 streams of one user (250+ lookups), want at most %d (one per %s)", reads, elapsed, most, interval)
	}
	t.Logf("%d store reads in %s for 50 streams", reads, elapsed)
}

// While the store fails, a guard asks less and less often (doubling its
// wait), then finds a deleted user once it answers again.
func TestGuardBacksOffOnStoreErrors(t *testing.T) {
	t.Parallel()
	const interval = 10 * time.Millisecond
	st := faulty.New(metadatatest.OpenSQLite(t))
	_, authn, sctx := guardEnv(t, st, 0, 0, func(c *auth.Config) { c.LoginRecheck = interval })
	st.Inject(faulty.Fault{Op: faulty.OpGetCredential, Err: metadata.ErrUnavailable})
	base := st.Calls(faulty.OpGetCredential)
	start := time.Now()
	ctx, g := authz.New(nil, auth.ListenerGRPC).Guard(sctx, authn)
	defer g.Stop()
	waitFor(t, "6 failed lookups", func() bool { return st.Calls(faulty.OpGetCredential)-base >= 6 })
	// Waits after the first: 20, 40, 80, 160, 320 ms, each -25 % at worst.
	if d := time.Since(start); d < 400*time.Millisecond {
		t.Fatalf("6 failed lookups in %s: no backoff", d)
	}
	if ctx.Err() != nil {
		t.Fatalf("an outage ended the stream: %v", g.Err())
	}
	st.Clear()
	if err := authn.DeleteUser(context.Background(), "alice"); err != nil {
		t.Fatal(err)
	}
	if err := waitEnded(t, ctx, g); !errors.Is(err, auth.ErrUserDeleted) {
		t.Fatalf("ended with %v", err)
	}
}
