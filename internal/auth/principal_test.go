package auth

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"testing"
)

// A verified client certificate authenticates as User:CN, except under an
// agent's reserved name: agent users are super users, proved by their
// own password only, never by a certificate a client CA issued.
func TestPrincipalFromTLS(t *testing.T) {
	state := func(cn string) *tls.ConnectionState {
		c := &x509.Certificate{Subject: pkix.Name{CommonName: cn}}
		return &tls.ConnectionState{HandshakeComplete: true, PeerCertificates: []*x509.Certificate{c}, VerifiedChains: [][]*x509.Certificate{{c}}}
	}
	if p, ok := PrincipalFromTLS(state("alice")); !ok || p != User("alice") {
		t.Errorf("CN alice: %v, %v; want User:alice", p, ok)
	}
	for _, cn := range []string{"", agentUserPrefix + "a1", agentUserPrefix} {
		if p, ok := PrincipalFromTLS(state(cn)); ok {
			t.Errorf("CN %q authenticated as %v", cn, p)
		}
	}
	unverified := state("alice")
	unverified.VerifiedChains = nil
	if p, ok := PrincipalFromTLS(unverified); ok {
		t.Errorf("an unverified certificate authenticated as %v", p)
	}
}
