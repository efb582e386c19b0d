package auth

import (
	"context"
	"errors"
	"fmt"
	"time"

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
// Expires passed, ErrUserDeleted when its user has no credential left (a
// password login), and another error when the store cannot tell (no
// verdict). It reads the store (one credential) for a password login.
func (a *Authenticator) CheckLogin(ctx context.Context, l Login) error {
	if !a.Enabled() || !l.Password() {
		return nil
	}
	if exp := a.Expires(l); !exp.IsZero() && !a.cfg.Now().Before(exp) {
		return ErrSessionExpired
	}
	_, _, err := a.passwordCredential(ctx, l.Principal.Name)
	switch {
	case errors.Is(err, metadata.ErrCredentialNotFound):
		return fmt.Errorf("%w: %q", ErrUserDeleted, l.Principal.Name)
	case err != nil:
		return fmt.Errorf("look up user %q: %w", l.Principal.Name, err)
	}
	return nil
}
