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
	"github.com/streamhouse/streamhouse/internal/metadata/metadatatest"
)

// guardEnv is an authorizer and authenticator over a real store, with
// alice allowed to READ topic t, and alice's stream context.
func guardEnv(t testing.TB, store metadata.Store, lifetime time.Duration, extra int) (*acl.Authorizer, *auth.Authenticator, context.Context) {
	t.Helper()
	ctx := context.Background()
	logger := slog.New(slog.DiscardHandler)
	authn := auth.New(auth.Config{Store: store, Enabled: true, Logger: logger, SessionLifetime: lifetime})
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
	sctx := auth.WithLogin(auth.WithPrincipal(ctx, p), auth.Login{Principal: p, Mechanism: auth.MechanismBasic, At: time.Now()})
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
		// Another topic's binding: no effect.
		for _, err := range a.CreateACLs(context.Background(), []acl.Binding{{ResourceType: acl.ResourceTopic, ResourceName: "u", PatternType: acl.PatternLiteral,
			Principal: "User:alice", Host: acl.WildcardHost, Operation: acl.OpRead, Permission: acl.PermissionDeny}}) {
			if err != nil {
				t.Fatal(err)
			}
		}
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
// read): why a stream looks its user up every LoginRecheck rather than at
// every batch.
func BenchmarkCheckLogin(b *testing.B) {
	for name, open := range map[string]func(testing.TB) metadata.Store{
		"sqlite": metadatatest.OpenSQLite, "postgres": metadatatest.OpenPostgres} {
		b.Run(name, func(b *testing.B) {
			_, authn, sctx := guardEnv(b, open(b), 0, 0)
			l, _ := auth.LoginFrom(sctx)
			for b.Loop() {
				if err := authn.CheckLogin(sctx, l); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
