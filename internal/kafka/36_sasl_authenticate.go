package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// SaslAuthenticate, key 36.
//
// Versions 0-2. v1 added session_lifetime_ms (KIP-368: AUTH_SESSION_LIFETIME_MS,
// 0 when logins do not expire); v2 is flexible. One step of the exchange
// a SaslHandshake v1 started (auth.go, in the read loop). A refused login
// answers SASL_AUTHENTICATION_FAILED with a message that names the
// mechanism, never which of user or password was wrong, after the client
// address's slowdown, and the connection closes; so does
// ILLEGAL_SASL_STATE, for a SaslAuthenticate without a handshake (or with
// logins off).

const saslAuthenticateKey = 36

func init() { register(saslAuthenticateKey, 0, 2, handleSaslAuthenticate) }

func handleSaslAuthenticate(ctx context.Context, c *conn, req kmsg.Request) (kmsg.Response, error) {
	r := req.(*kmsg.SASLAuthenticateRequest)
	resp := r.ResponseKind().(*kmsg.SASLAuthenticateResponse)
	if !c.s.cfg.Auth.Enabled() || c.login.session == nil || c.login.raw {
		msg := "SaslAuthenticate without a SaslHandshake v1 before it"
		if !c.s.cfg.Auth.Enabled() {
			msg = "authentication is off on this listener"
		}
		resp.ErrorCode, resp.ErrorMessage = kerr.IllegalSaslState.Code, &msg
		c.login.closeAfter = true
		return resp, nil
	}
	mechanism := c.login.session.Mechanism()
	token, done, refused, err := c.saslStep(ctx, r.SASLAuthBytes)
	if err != nil {
		return nil, err
	}
	if refused != nil {
		msg := "Authentication failed during authentication due to invalid credentials with SASL mechanism " + mechanism
		resp.ErrorCode, resp.ErrorMessage = kerr.SaslAuthenticationFailed.Code, &msg
		return resp, nil
	}
	resp.SASLAuthBytes = token
	if done && r.Version >= 1 {
		resp.SessionLifetimeMillis = c.s.cfg.Auth.SessionLifetime().Milliseconds()
	}
	return resp, nil
}
