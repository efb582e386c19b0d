package auth

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/streamhouse/streamhouse/internal/metadata"
)

// Logins of long-lived streams. A REST request or a gRPC call is
// authenticated when it starts; a stream (a gRPC Subscribe, a live SQL
// query) then runs on. Login records how and when its caller logged in,
// so the stream can end when that login would no longer be accepted: its
// user deleted, or AUTH_SESSION_LIFETIME_MS passed (internal/authz.Guard).

// Login is how and when a request's caller logged in.
type Login struct {
	Principal Principal
	// Mechanism is MechanismBasic, MechanismMTLS or a SASL mechanism.
	Mechanism string
	At        time.Time
}

// Password reports whether the login proved a password (it expires, and
// ends with its user), not a client certificate.
func (l Login) Password() bool {
	return l.Mechanism != "" && l.Mechanism != MechanismMTLS && l.Mechanism != MechanismNone
}

type loginKey struct{}

// WithLogin returns ctx carrying l (the HTTP middleware and the gRPC
// stream interceptor put it there).
func WithLogin(ctx context.Context, l Login) context.Context {
	return context.WithValue(ctx, loginKey{}, l)
}

// LoginFrom returns the login WithLogin put in ctx; false when none
// (logins off, an open path).
func LoginFrom(ctx context.Context) (Login, bool) {
	l, ok := ctx.Value(loginKey{}).(Login)
	return l, ok
}

// The reasons a login stops holding.
var (
	ErrSessionExpired = errors.New("the login expired (AUTH_SESSION_LIFETIME_MS): log in again")
	ErrUserDeleted    = errors.New("the user was deleted")
)

// Expires returns when l stops holding, as a Kafka SASL session does
// (AUTH_SESSION_LIFETIME_MS after the login); zero for never: logins
// off, no lifetime set, or a certificate login.
func (a *Authenticator) Expires(l Login) time.Time {
	if !a.Enabled() || a.cfg.SessionLifetime <= 0 || !l.Password() {
		return time.Time{}
	}
	return l.At.Add(a.cfg.SessionLifetime)
}

// CheckLogin returns nil while l still holds: ErrSessionExpired once
// Expires passed, else CheckUser's answer.
func (a *Authenticator) CheckLogin(ctx context.Context, l Login) error {
	if !a.Enabled() || !l.Password() {
		return nil
	}
	if exp := a.Expires(l); !exp.IsZero() && !a.cfg.Now().Before(exp) {
		return ErrSessionExpired
	}
	return a.CheckUser(ctx, l)
}

// CheckUser returns ErrUserDeleted when the user of a password login has
// no credential left, another error when the store cannot tell (no
// verdict), else nil. The user is looked up at most once per
// LoginRecheck however many streams ask (userExists).
func (a *Authenticator) CheckUser(ctx context.Context, l Login) error {
	if !a.Enabled() || !l.Password() {
		return nil
	}
	exists, err := a.userExists(ctx, l.Principal.Name, l.At)
	switch {
	case err != nil:
		return fmt.Errorf("look up user %q: %w", l.Principal.Name, err)
	case !exists:
		return fmt.Errorf("%w: %q", ErrUserDeleted, l.Principal.Name)
	}
	return nil
}

// DefaultLoginRecheck is Config.LoginRecheck's default.
const DefaultLoginRecheck = time.Second

// LoginRecheck is how often a stream looks its user up
// (Config.LoginRecheck), and how long one lookup's answer is reused.
func (a *Authenticator) LoginRecheck() time.Duration { return a.cfg.LoginRecheck }

// userChecks caches CheckLogin's user lookups (per Authenticator).
type userChecks struct {
	mu     sync.Mutex
	m      map[string]userCheck
	gen    uint64 // forgetUser calls
	flight singleflight.Group
	// afterJoin, when set (tests), runs once a caller joined or started
	// a lookup.
	afterJoin func()
}

// userCheck is one lookup's answer: when, whether the user exists, and
// the mechanism its credential was found under (asked first next time).
type userCheck struct {
	at     time.Time
	exists bool
	mech   *Mechanism
}

// userChecksMax bounds the cache; past it, answers older than
// LoginRecheck are dropped (each entry is a user with a stream open).
const userChecksMax = 4096

// userExists reports whether user has a credential, from an answer less
// than LoginRecheck old when there is one (a "no" only if read after
// since, the login being checked, which the store verified: a user
// deleted and made again is not refused on an answer from between);
// concurrent callers for one user share one lookup. Store errors are not
// cached. The shared lookup runs on its own context (bounded by
// userLookupTimeout), so a caller that leaves returns at once and
// neither cancels nor holds up the others.
func (a *Authenticator) userExists(ctx context.Context, user string, since time.Time) (bool, error) {
	c := &a.checks
	now := a.cfg.Now()
	c.mu.Lock()
	prev, ok := c.m[user]
	afterJoin := c.afterJoin
	c.mu.Unlock()
	usable := func(e userCheck) bool {
		return now.Sub(e.at) < a.cfg.LoginRecheck && !now.Before(e.at) && (e.exists || !e.at.Before(since))
	}
	if ok && usable(prev) {
		return prev.exists, nil
	}
	ch := c.flight.DoChan(user, func() (any, error) {
		// A lookup that ended between the read above and this one
		// answers for this one too.
		c.mu.Lock()
		e, ok := c.m[user]
		gen := c.gen
		c.mu.Unlock()
		if ok && usable(e) {
			return e, nil
		}
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), userLookupTimeout)
		defer cancel()
		at := a.cfg.Now() // before the read: the answer is at least this fresh
		uc, err := a.lookupUser(lctx, user, prev.mech)
		if err != nil {
			return nil, err
		}
		uc.at = at
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.m == nil {
			c.m = make(map[string]userCheck)
		}
		if len(c.m) >= userChecksMax {
			for u, e := range c.m {
				if age := at.Sub(e.at); age >= a.cfg.LoginRecheck || age < 0 {
					delete(c.m, u)
				}
			}
		}
		// Not when a user was altered here meanwhile: what was read
		// before may be stale already (forgetUser).
		if len(c.m) < userChecksMax && c.gen == gen {
			c.m[user] = uc
		}
		return uc, nil
	})
	if afterJoin != nil {
		afterJoin()
	}
	select {
	case <-ctx.Done():
		return false, ctx.Err()
	case r := <-ch:
		if r.Err != nil {
			return false, r.Err
		}
		// The answer may be another caller's: a "no" read before this
		// login (which the store verified) says nothing against it.
		uc := r.Val.(userCheck)
		return uc.exists || uc.at.Before(since), nil
	}
}

// userLookupTimeout bounds one shared user lookup.
const userLookupTimeout = 10 * time.Second

// lookupUser looks for a credential of user, under hint's mechanism first
// (one read for a user found before). Not finding one is asked twice in a
// row: a credential moving between mechanisms (one upserted, then the
// other deleted: AlterUserScramCredentials) can be missed by one pass
// over the mechanisms, never by two.
func (a *Authenticator) lookupUser(ctx context.Context, user string, hint *Mechanism) (userCheck, error) {
	mechs := ScramMechanisms
	if hint != nil {
		mechs = append([]*Mechanism{hint}, mechs...)
	}
	for range 2 {
		for i, m := range mechs {
			if i > 0 && m == hint {
				continue
			}
			_, err := a.cfg.Store.GetScramCredential(ctx, user, m.Name)
			if err == nil {
				return userCheck{exists: true, mech: m}, nil
			}
			if !errors.Is(err, metadata.ErrCredentialNotFound) {
				return userCheck{}, err
			}
		}
	}
	return userCheck{exists: false}, nil
}

// forgetUser drops user's cached lookup (it was just altered here), and
// keeps lookups under way from caching what they read before.
func (a *Authenticator) forgetUser(user string) {
	a.checks.mu.Lock()
	delete(a.checks.m, user)
	a.checks.gen++
	a.checks.mu.Unlock()
}
