// Package auth owns authentication for every listener: who a client is.
//
//   - Principal, the identity a request runs as ("User:alice"), carried in
//     a request's context (WithPrincipal, PrincipalFrom) for REST, the
//     schema registry and gRPC, and by the Kafka connection for Kafka.
//     "User:ANONYMOUS" when authentication is off.
//   - The SASL server side of Kafka's mechanisms: PLAIN (RFC 4616) and
//     SCRAM-SHA-256 / SCRAM-SHA-512 (RFC 5802, RFC 7677), as Session.
//   - Authenticator: users' SCRAM credentials in the metadata store,
//     password checks for PLAIN and HTTP Basic (with a cache of verified
//     logins, so Basic does not run PBKDF2 on every request), the HTTP
//     middleware, the per-address slowdown of failed logins, the
//     bootstrap users, SUPER_USERS and the metrics.
//
// Authorization (ACLs) is not here: it reads the principal this package
// puts in place.
package auth

import (
	"context"
	"crypto/tls"
	"strings"
)

// Principal is an authenticated identity, Kafka's KafkaPrincipal: a type
// ("User") and a name.
type Principal struct {
	Type string
	Name string
}

// PrincipalTypeUser is the type of every principal StreamHouse makes.
const PrincipalTypeUser = "User"

// User returns the principal User:name.
func User(name string) Principal { return Principal{Type: PrincipalTypeUser, Name: name} }

// Anonymous is the principal of every request when authentication is off,
// as Kafka's PLAINTEXT listener has it.
var Anonymous = User("ANONYMOUS")

// String is "Type:Name", as ACLs name principals ("User:alice").
func (p Principal) String() string { return p.Type + ":" + p.Name }

// IsAnonymous reports whether p is User:ANONYMOUS.
func (p Principal) IsAnonymous() bool { return p == Anonymous }

// ParsePrincipal reads "User:alice"; a name without a type is a user.
func ParsePrincipal(s string) Principal {
	if typ, name, ok := strings.Cut(s, ":"); ok && typ != "" {
		return Principal{Type: typ, Name: name}
	}
	return User(s)
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the principal of a request's context (REST, the
// schema registry, gRPC, and Kafka handlers), or Anonymous when none was
// set.
func PrincipalFrom(ctx context.Context) Principal {
	if p, ok := ctx.Value(principalKey{}).(Principal); ok {
		return p
	}
	return Anonymous
}

// PrincipalFromTLS returns User:CN of a client certificate that the TLS
// handshake verified against the client CA (mutual TLS), and false when
// the connection has no verified client certificate (no TLS, no client
// CA, or no certificate sent) or its CN is an agent's reserved name.
//
// This is the only place that reads certificates: the Kafka connection,
// the HTTP middleware and the gRPC interceptors pass the connection state
// they have (tls.Conn.ConnectionState, http.Request.TLS,
// credentials.TLSInfo.State).
func PrincipalFromTLS(cs *tls.ConnectionState) (Principal, bool) {
	if cs == nil || !cs.HandshakeComplete || len(cs.VerifiedChains) == 0 || len(cs.PeerCertificates) == 0 {
		return Principal{}, false
	}
	cn := cs.PeerCertificates[0].Subject.CommonName
	if cn == "" || strings.HasPrefix(cn, agentUserPrefix) {
		// The agents' reserved names are super users: they are proved by
		// the agent's own password (AgentLogin), never by a certificate
		// a client CA may have issued to anyone.
		return Principal{}, false
	}
	return User(cn), true
}
