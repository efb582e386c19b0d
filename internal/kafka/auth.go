package kafka

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/auth"
	"github.com/streamhouse/streamhouse/internal/auth/sasl"
)

// Authentication of a Kafka connection (Config.Auth, AUTH_ENABLED).
//
// A connection starts unauthenticated. Until it has logged in, only
// ApiVersions, SaslHandshake and SaslAuthenticate are served; any other
// request closes the connection, as Kafka does. A login is a SASL
// exchange (17_sasl_handshake.go, 36_sasl_authenticate.go; PLAIN,
// SCRAM-SHA-256, SCRAM-SHA-512, internal/auth) or a verified client
// certificate (mutual TLS: the connection is authenticated as User:CN
// from its first request, without SASL).
//
// The SASL requests are handled in the read loop itself, one at a time:
// the next request is read only once the login step is done, so a request
// pipelined behind a SaslAuthenticate is judged with its outcome. A
// refused login (bad credentials or a malformed exchange) is answered
// SASL_AUTHENTICATION_FAILED, after the client address's slowdown
// (auth.Authenticator.Failed), and the connection closes; only that
// connection. A store that cannot check the login closes the connection
// without an answer (the client reconnects and tries again).
//
// Re-authentication (KIP-368): with AUTH_SESSION_LIFETIME_MS set,
// SaslAuthenticate v1 and later tell the client session_lifetime_ms, and
// the login expires then. Before it does, the client repeats the exchange
// on the same connection (SaslHandshake v1 and SaslAuthenticate, same
// mechanism, same user; requests in flight go on). After it has expired,
// the next request that does not start re-authentication closes the
// connection, as Kafka does (a client too old to re-authenticate, one
// that used SaslHandshake v0, is cut too).
//
// SaslHandshake v0 (KIP-43's original framing): the exchange that follows
// is raw SASL tokens, each a size-prefixed frame without a Kafka request
// header, answered the same way (readRawSASL); framing returns to Kafka
// requests once it is done.

// maxRawSASLFrame bounds a raw SASL token frame (a SCRAM or PLAIN message
// is well under 1 KiB).
const maxRawSASLFrame = 64 << 10

// login is a connection's authentication state. principal is read by
// handlers on any goroutine; the rest belongs to the read loop.
type login struct {
	principal atomic.Pointer[auth.Principal]
	checked   bool // the TLS certificate has been looked at
	// authenticated: logged in (SASL or certificate); expiry (zero: none)
	// ends a SASL login.
	authenticated bool
	expiry        time.Time
	// mechanism of the last successful SASL login, which a
	// re-authentication must use again.
	mechanism string
	// session is the SASL exchange under way after a SaslHandshake.
	session sasl.Session
	// raw: the exchange runs in raw token frames (SaslHandshake v0).
	raw bool
	// closeAfter: the SASL answer just queued is the connection's last.
	closeAfter bool
}

// errLoginClosed ends a connection whose login failed or expired.
var errLoginClosed = errors.New("connection closed by authentication")

// Principal is the connection's authenticated principal: its SASL user,
// its client certificate's user, or auth.Anonymous (logins off, or not
// logged in yet). Handlers also find it with auth.PrincipalFrom(ctx).
func (c *conn) Principal() auth.Principal {
	if p := c.login.principal.Load(); p != nil {
		return *p
	}
	return auth.Anonymous
}

func (c *conn) setPrincipal(p auth.Principal) { c.login.principal.Store(&p) }

// tlsPrincipal is the user of a verified client certificate on a TLS
// connection (mutual TLS), if any.
func (c *conn) tlsPrincipal() (auth.Principal, bool) {
	tc, ok := c.nc.(*tls.Conn)
	if !ok {
		return auth.Principal{}, false
	}
	cs := tc.ConnectionState()
	return auth.PrincipalFromTLS(&cs)
}

func isSASLKey(key int16) bool { return key == saslHandshakeKey || key == saslAuthenticateKey }

// gate decides whether a request of key may be served now; an error
// closes the connection.
func (c *conn) gate(key int16) error {
	a := c.s.cfg.Auth
	if !c.login.checked {
		// The TLS handshake is done once a request has been read.
		c.login.checked = true
		if p, ok := c.tlsPrincipal(); ok {
			c.setPrincipal(p)
			c.login.authenticated = true
			if a.Enabled() {
				a.Succeeded(auth.ListenerKafka, auth.MechanismMTLS)
			}
		}
	}
	if !a.Enabled() {
		return nil
	}
	switch {
	case !c.login.authenticated:
		if key == apiVersionsKey || isSASLKey(key) {
			return nil
		}
		a.Missing(auth.ListenerKafka)
		c.s.metrics.requestsRejected.WithLabelValues("unauthenticated").Inc()
		return fmt.Errorf("%s request before authentication: %w", apiName(key), errLoginClosed)
	case !c.login.expiry.IsZero() && !a.Now().Before(c.login.expiry):
		// KIP-368: only a re-authentication may follow an expired login.
		if isSASLKey(key) {
			return nil
		}
		c.s.metrics.requestsRejected.WithLabelValues("session_expired").Inc()
		return fmt.Errorf("%s request after the SASL session of %s expired: %w", apiName(key), c.Principal(), errLoginClosed)
	}
	return nil
}

// saslFailed waits the client address's slowdown for a refused login and
// marks the connection to close after its answer.
func (c *conn) saslFailed(ctx context.Context, mechanism string, why error) error {
	c.login.session = nil
	c.login.raw = false
	c.login.closeAfter = true
	return c.s.cfg.Auth.Failed(ctx, auth.ListenerKafka, mechanism, c.nc.RemoteAddr().String(), why)
}

// saslStep runs one step of the exchange under way. done with a nil
// error: logged in. refused: the client's login failed (answer it, then
// close). Any other error: the store could not check it (close without
// an answer).
func (c *conn) saslStep(ctx context.Context, msg []byte) (resp []byte, done bool, refused, err error) {
	sess := c.login.session
	resp, done, err = sess.Step(ctx, msg)
	if err != nil {
		if errors.Is(err, auth.ErrMalformed) || errors.Is(err, auth.ErrBadCredentials) {
			if werr := c.saslFailed(ctx, sess.Mechanism(), err); werr != nil {
				return nil, true, nil, werr
			}
			return nil, true, err, nil
		}
		return nil, true, nil, fmt.Errorf("SASL %s: %w", sess.Mechanism(), err)
	}
	if !done {
		return resp, false, nil, nil
	}
	p := auth.User(sess.User())
	c.login.session = nil
	if c.login.authenticated && c.login.mechanism != "" && p != c.Principal() {
		// KIP-368: a re-authentication may not change the principal. A
		// connection known so far by its client certificate only is not
		// re-authenticating: its first SASL login decides the principal
		// (an agent's connection to another agent shows its server
		// certificate, then logs in as its agent user).
		why := fmt.Errorf("%w: re-authentication as %s on a connection of %s", auth.ErrBadCredentials, p, c.Principal())
		if werr := c.saslFailed(ctx, sess.Mechanism(), why); werr != nil {
			return nil, true, nil, werr
		}
		return nil, true, why, nil
	}
	a := c.s.cfg.Auth
	c.setPrincipal(p)
	c.login.authenticated = true
	c.login.mechanism = sess.Mechanism()
	c.login.expiry = time.Time{}
	if lt := a.SessionLifetime(); lt > 0 {
		c.login.expiry = a.Now().Add(lt)
	}
	a.Succeeded(auth.ListenerKafka, sess.Mechanism())
	c.log.Debug("kafka client authenticated", "principal", p.String(), "mechanism", sess.Mechanism())
	return resp, true, nil, nil
}

// rawSASLResponse is a raw SASL token answer (after SaslHandshake v0):
// a size-prefixed frame without a response header.
type rawSASLResponse struct {
	kmsg.Response // never used: satisfies the queue's type
	token         []byte
}

// readRawSASL reads one raw SASL token frame, runs the exchange step and
// queues the raw answer.
func (c *conn) readRawSASL(br *bufio.Reader, queue chan<- *pending) error {
	size, err := c.readSize(br)
	if err != nil {
		return err
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(c.s.cfg.FrameReadTimeout))
	if size < 0 || size > maxRawSASLFrame {
		c.s.metrics.requestsRejected.WithLabelValues("malformed").Inc()
		return fmt.Errorf("raw SASL frame of %d bytes: %w", size, errLoginClosed)
	}
	token := make([]byte, size)
	if _, err := io.ReadFull(br, token); err != nil {
		c.dropReason(err)
		return fmt.Errorf("read raw SASL frame: %w", err)
	}
	resp, done, refused, err := c.saslStep(c.ctx, token)
	if err != nil {
		return err
	}
	if refused != nil {
		// The raw framing has no error answer: close.
		return fmt.Errorf("SASL login refused: %v: %w", refused, errLoginClosed)
	}
	if done {
		c.login.raw = false
	}
	p := &pending{done: make(chan struct{}), resp: &rawSASLResponse{token: resp}}
	close(p.done)
	c.unanswered.Add(1)
	select {
	case queue <- p:
		return nil
	case <-c.ctx.Done():
		return c.ctx.Err()
	}
}
