package grpcapi

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	grpcmd "google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/streamhouse/streamhouse/internal/auth"
	"github.com/streamhouse/streamhouse/internal/metadata/metadatatest"
)

// One rule picks the principal on REST (auth.HTTP) and gRPC alike when a
// request has a verified client certificate and credentials both:
// Kafka's (SASL over mutual TLS: SASL's login is the principal). Sent
// credentials decide and must hold; the certificate counts only when none
// are sent; logins off, nothing sent is checked and the certificate (or
// ANONYMOUS) is the principal. Each row runs against both listeners.
func TestCredentialPreferenceOnEveryListener(t *testing.T) {
	t.Parallel()
	store := metadatatest.OpenSQLite(t)
	noWait := func(context.Context, time.Duration) error { return nil }
	logger := slog.New(slog.DiscardHandler)
	on := auth.New(auth.Config{Store: store, Enabled: true, Logger: logger, Sleep: noWait})
	if err := on.Bootstrap(t.Context(), []auth.BootstrapUser{{Name: "bob", Password: "bob-pw"}}); err != nil {
		t.Fatal(err)
	}
	off := auth.New(auth.Config{Store: store, Logger: logger, Sleep: noWait})
	basic := func(user, pw string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pw))
	}
	cert := &x509.Certificate{Subject: pkix.Name{CommonName: "alice"}}
	aliceTLS := &tls.ConnectionState{HandshakeComplete: true, PeerCertificates: []*x509.Certificate{cert}, VerifiedChains: [][]*x509.Certificate{{cert}}}
	const refused = "" // the request is refused (401, Unauthenticated)
	for _, c := range []struct {
		name          string
		authn         *auth.Authenticator
		tls           *tls.ConnectionState
		authorization string
		want          string
	}{
		{"certificate only", on, aliceTLS, "", "User:alice"},
		{"certificate and Basic", on, aliceTLS, basic("bob", "bob-pw"), "User:bob"},
		{"certificate and a wrong password", on, aliceTLS, basic("bob", "wrong"), refused},
		{"certificate and another scheme", on, aliceTLS, "Bearer x", refused},
		{"Basic only", on, nil, basic("bob", "bob-pw"), "User:bob"},
		{"nothing", on, nil, "", refused},
		{"logins off: certificate and Basic", off, aliceTLS, basic("bob", "wrong"), "User:alice"},
		{"logins off: Basic", off, nil, basic("bob", "bob-pw"), "User:ANONYMOUS"},
	} {
		// REST and the schema registry.
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, "/api/v1/topics", nil)
		req.TLS = c.tls
		if c.authorization != "" {
			req.Header.Set("Authorization", c.authorization)
		}
		c.authn.HTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte(auth.PrincipalFrom(r.Context()).String()))
		})).ServeHTTP(rec, req)
		switch {
		case c.want == refused && rec.Code != http.StatusUnauthorized:
			t.Errorf("%s: REST answered %d %q, want 401", c.name, rec.Code, rec.Body.String())
		case c.want != refused && (rec.Code != http.StatusOK || rec.Body.String() != c.want):
			t.Errorf("%s: REST ran as %d %q, want %s", c.name, rec.Code, rec.Body.String(), c.want)
		}

		// gRPC.
		s := New(Config{Auth: c.authn, Logger: logger})
		pr := &peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5000}}
		if c.tls != nil {
			pr.AuthInfo = credentials.TLSInfo{State: *c.tls}
		}
		ctx := peer.NewContext(t.Context(), pr)
		if c.authorization != "" {
			ctx = grpcmd.NewIncomingContext(ctx, grpcmd.Pairs("authorization", c.authorization))
		}
		got, err := s.authenticate(ctx, "/"+ServiceName+"/ListTopics")
		switch {
		case c.want == refused && status.Code(err) != codes.Unauthenticated:
			t.Errorf("%s: gRPC answered %v, want Unauthenticated", c.name, err)
		case c.want != refused && (err != nil || auth.PrincipalFrom(got).String() != c.want):
			t.Errorf("%s: gRPC ran as %v (%v), want %s", c.name, err, got, c.want)
		}
	}
}
