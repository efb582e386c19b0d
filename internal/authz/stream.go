package authz

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/streamhouse/streamhouse/internal/auth"
)

// Long-lived streams (a gRPC Subscribe, a REST live SQL query, a REST
// long poll) are authorized when they start, like any request, and then
// deliver for as long as they run. A Guard keeps asking for them: when
// this agent's ACLs change (acl.Authorizer.Changed: at once for a change
// made here, within milliseconds for one made on another agent that
// announces it, within the ACL refresh interval at worst), when the
// caller's user is deleted (looked up every LoginRecheck), and when its
// login's AUTH_SESSION_LIFETIME_MS passes. The stream asks Err before
// each delivery (no I/O: the in-memory ACLs), so nothing committed after
// a revocation was visible here is delivered, and the Guard cancels the
// stream's context so that a stream waiting for data ends at once.

// LoginRecheck is how often a Guard looks its caller's user up in the
// store (one credential read), to end the stream once the user is
// deleted.
const LoginRecheck = time.Second

// LoginEndedError ends a stream whose login no longer holds: its user was
// deleted or its session lifetime passed (auth.ErrUserDeleted,
// auth.ErrSessionExpired). It is ErrUnauthenticated too: 401 /
// Unauthenticated, not 403.
type LoginEndedError struct{ Err error }

func (e *LoginEndedError) Error() string   { return e.Err.Error() }
func (e *LoginEndedError) Unwrap() []error { return []error{e.Err, ErrUnauthenticated} }

// Guard re-checks one stream's authorization until Stop. Create with
// Checker.Guard.
type Guard struct {
	c      *Checker
	ctx    context.Context // the stream's, carrying its caller
	perms  []Perm
	logins *auth.Authenticator
	login  auth.Login
	hasLog bool
	cancel context.CancelCauseFunc
	ended  atomic.Pointer[error]
	denied atomic.Bool // the stream's denial was counted
	stop   sync.Once
	done   chan struct{}
}

// Guard returns a context derived from ctx (the stream's, carrying its
// caller and login: auth.WithLogin) that is cancelled when the caller
// may no longer perform every one of perms, its user is deleted, or its
// login expires (logins checks those two; nil: not checked), and the
// Guard that says why (Err). Call Stop when the stream ends. The
// stream's handler has authorized perms already, so a Guard that would
// refuse them at once is a change since.
func (c *Checker) Guard(ctx context.Context, logins *auth.Authenticator, perms ...Perm) (context.Context, *Guard) {
	gctx, cancel := context.WithCancelCause(ctx)
	g := &Guard{c: c, ctx: ctx, perms: perms, logins: logins, cancel: cancel, done: make(chan struct{})}
	g.login, g.hasLog = auth.LoginFrom(ctx)
	if !c.Enforcing() && !(g.hasLog && logins.Enabled()) {
		close(g.done) // nothing to watch
		return gctx, g
	}
	go g.run(gctx)
	return gctx, g
}

// Stop ends the Guard's watch (and cancels its context) and waits for it.
func (g *Guard) Stop() {
	g.stop.Do(func() { g.cancel(context.Canceled) })
	<-g.done
}

// Err returns why the stream must end now, or nil: a *DeniedError when
// the ACLs no longer allow it, a *LoginEndedError when its user was
// deleted or its login expired, ErrUnauthenticated without a login. It
// does no I/O (the user lookups run in the Guard's own goroutine).
func (g *Guard) Err() error {
	if p := g.ended.Load(); p != nil {
		return *p
	}
	if g.hasLog {
		if exp := g.logins.Expires(g.login); !exp.IsZero() && !g.logins.Now().Before(exp) {
			return &LoginEndedError{Err: auth.ErrSessionExpired}
		}
	}
	err := g.c.require(g.ctx, g.perms)
	if err != nil && g.denied.CompareAndSwap(false, true) {
		g.c.count(err) // once per stream, however often it is asked
	}
	return err
}

// end records why the stream ends and cancels its context.
func (g *Guard) end(err error) {
	g.ended.CompareAndSwap(nil, &err)
	g.cancel(err)
}

func (g *Guard) run(ctx context.Context) {
	defer close(g.done)
	var recheck, expired <-chan time.Time
	if g.hasLog && g.logins.Enabled() && g.login.Password() {
		t := time.NewTicker(LoginRecheck)
		defer t.Stop()
		recheck = t.C
		if exp := g.logins.Expires(g.login); !exp.IsZero() {
			timer := time.NewTimer(exp.Sub(g.logins.Now()))
			defer timer.Stop()
			expired = timer.C
		}
	}
	for {
		var changed <-chan struct{} // nil: never (no ACLs)
		if g.c.Enforcing() {
			changed = g.c.a.Changed() // before asking: a change meanwhile still wakes us
		}
		if err := g.Err(); err != nil {
			g.end(err)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-expired:
		case <-recheck:
			err := g.logins.CheckLogin(ctx, g.login)
			switch {
			case errors.Is(err, auth.ErrUserDeleted), errors.Is(err, auth.ErrSessionExpired):
				g.end(&LoginEndedError{Err: err})
				return
			case err != nil:
				// The store cannot tell (an outage): no verdict, as a
				// new login would get none; ask again at the next tick.
			}
		}
	}
}
