package kafka

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/auth"
)

// SaslHandshake, key 17.
//
// Versions 0-1. v0 is advertised because librdkafka starts SASL only when
// it is; a client that sends v0 then exchanges raw SASL tokens (auth.go,
// readRawSASL), v1 SaslAuthenticate requests. The answer lists the
// mechanisms offered: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512. Handled in the
// read loop (auth.go). Errors, each followed by closing the connection as
// Kafka does: UNSUPPORTED_SASL_MECHANISM for another mechanism;
// ILLEGAL_SASL_STATE with logins off (a PLAINTEXT listener), for a second
// handshake before the exchange ends, and for a re-authentication with
// v0 or another mechanism.

const saslHandshakeKey = 17

func init() { register(saslHandshakeKey, 0, 1, handleSaslHandshake) }

func handleSaslHandshake(_ context.Context, c *conn, req kmsg.Request) (kmsg.Response, error) {
	r := req.(*kmsg.SASLHandshakeRequest)
	resp := r.ResponseKind().(*kmsg.SASLHandshakeResponse)
	resp.SupportedMechanisms = auth.Mechanisms()
	illegal := func(why string) (kmsg.Response, error) {
		c.log.Debug("kafka SASL handshake refused", "mechanism", r.Mechanism, "why", why)
		resp.ErrorCode = kerr.IllegalSaslState.Code
		c.login.closeAfter = true
		return resp, nil
	}
	switch {
	case !c.s.cfg.Auth.Enabled():
		return illegal("authentication is off")
	case c.login.session != nil:
		return illegal("a SASL exchange is already under way")
	case c.login.authenticated && c.login.mechanism != "" && r.Version < 1:
		return illegal("re-authentication needs SaslHandshake v1")
	case c.login.authenticated && c.login.mechanism != "" && r.Mechanism != c.login.mechanism:
		return illegal(fmt.Sprintf("re-authentication with %s after %s", r.Mechanism, c.login.mechanism))
	}
	sess, ok := c.s.cfg.Auth.NewSession(r.Mechanism)
	if !ok {
		resp.ErrorCode = kerr.UnsupportedSaslMechanism.Code
		c.login.closeAfter = true
		return resp, nil
	}
	c.login.session = sess
	c.login.raw = r.Version == 0
	return resp, nil
}
