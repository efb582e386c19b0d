package authz

import (
	"context"
	"errors"
	"math/rand/v2"
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
// caller's user is deleted (looked up about every
// auth.Config.LoginRecheck: jittered, backing off while the store fails,
// and shared by the streams of one user: auth.Authenticator.CheckLogin),
// and when its login's AUTH_SESSION_LIFETIME_MS passes (not for a
// GuardRequest). The stream asks Err before
// each delivery (no I/O: the in-memory ACLs), so nothing committed after
// a revocation was visible here is delivered, and the Guard cancels the
// stream's context so that a stream waiting for data ends at once.

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
	expiry bool // the login's lifetime ends the stream (not GuardRequest)
	ended  atomic.Pointer[error]
	denied atomic.Bool // the stream's denial was counted
	stop   sync.Once
	done   chan struct{}
	// wakeups counts the wakeups the Guard's goroutine handled, waits the
	// times it began to wait, holding its change notice (tests).
	wakeups, waits atomic.Int64
}

// Guard returns a context derived from ctx (the stream's, carrying its
// caller and login: auth.WithLogin) that is cancelled when the caller
// may no longer perform every one of perms, its user is deleted, or its
// login expires (logins checks those two; nil: not checked), and the
// Guard that says why (Err). Call Stop when the stream ends. The
// stream's handler has authorized perms already, so a Guard that would
// refuse them at once is a change since.
//
// The context's cause (context.Cause) is the Guard's reason once it ends
// the stream, context.Canceled after Stop.
func (c *Checker) Guard(ctx context.Context, logins *auth.Authenticator, perms ...Perm) (context.Context, *Guard) {
	return c.guard(ctx, logins, true, perms)
}

// GuardRequest is Guard for one request that waits (a REST long poll):
// its login is the request's own (HTTP Basic sends the password with
// every request), so AUTH_SESSION_LIFETIME_MS does not end it; the
// request caps its wait at the login's remaining lifetime instead. A
// deleted user and the ACLs still do.
func (c *Checker) GuardRequest(ctx context.Context, logins *auth.Authenticator, perms ...Perm) (context.Context, *Guard) {
	return c.guard(ctx, logins, false, perms)
}

func (c *Checker) guard(ctx context.Context, logins *auth.Authenticator, expiry bool, perms []Perm) (context.Context, *Guard) {
	gctx, cancel := context.WithCancelCause(ctx)
	g := &Guard{c: c, ctx: ctx, perms: perms, logins: logins, expiry: expiry, cancel: cancel, done: make(chan struct{})}
	g.login, g.hasLog = auth.LoginFrom(ctx)
	if !(c.Enforcing() && len(perms) > 0) && !(g.hasLog && logins.Enabled() && g.login.Password()) {
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
	if g.hasLog && g.expiry {
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
	var interval, wait time.Duration
	var recheckT, expiryT *time.Timer
	var exp time.Time
	if g.hasLog && g.logins.Enabled() && g.login.Password() {
		// The first lookup at a random point of the interval: streams
		// opened together (an agent's restart) do not ask together.
		interval = g.logins.LoginRecheck()
		wait = interval
		recheckT = time.NewTimer(time.Duration(rand.Int64N(int64(interval))) + 1)
		defer recheckT.Stop()
		recheck = recheckT.C
		if exp = g.logins.Expires(g.login); !exp.IsZero() && g.expiry {
			expiryT = time.NewTimer(exp.Sub(g.logins.Now()))
			defer expiryT.Stop()
			expired = expiryT.C
		}
	}
	for {
		var changed <-chan struct{} // nil: never (no ACLs, nothing to ask them)
		if g.c.Enforcing() && len(g.perms) > 0 {
			changed = g.c.a.Changed() // before asking: a change meanwhile still wakes us
		}
		if err := g.Err(); err != nil {
			g.end(err)
			return
		}
		g.waits.Add(1)
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-expired:
			// Err decides by the authenticator's clock; while that says
			// not yet, wait again for what it says is left.
			expiryT.Reset(exp.Sub(g.logins.Now()))
		case <-recheck:
			var err error
			if g.expiry {
				err = g.logins.CheckLogin(ctx, g.login)
			} else {
				err = g.logins.CheckUser(ctx, g.login)
			}
			switch {
			case errors.Is(err, auth.ErrUserDeleted), errors.Is(err, auth.ErrSessionExpired):
				g.end(&LoginEndedError{Err: err})
				return
			case err != nil:
				// The store cannot tell (an outage): no verdict, as a
				// new login would get none; ask again later, less
				// often while it lasts.
				wait = min(2*wait, maxRecheckBackoff*interval)
			default:
				wait = interval
			}
			recheckT.Reset(jitter(wait))
		}
		g.wakeups.Add(1)
	}
}

// maxRecheckBackoff bounds the wait between user lookups while the store
// fails, in LoginRecheck intervals.
const maxRecheckBackoff = 32

// jitter returns d ± 25 %, at random.
func jitter(d time.Duration) time.Duration {
	return d - d/4 + time.Duration(rand.Int64N(int64(d/2)+1))
}
