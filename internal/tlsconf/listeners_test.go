package tlsconf

import (
	"context"
	"crypto/tls"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/streamhouse/streamhouse/internal/testutil/testcerts"
)

// The HTTP and gRPC listeners are wired as internal/server wires them:
// http.Server.ServeTLS with ServerConfig("h2", "http/1.1"), and gRPC with
// credentials.NewTLS(ServerConfig("h2")). A handler finds the verified
// client certificate in r.TLS, a gRPC method in the peer's TLSInfo.

func TestHTTPSPeerCertificate(t *testing.T) {
	t.Parallel()
	f := newFixture(t, true)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			cn, ok := PeerCommonName(r.TLS)
			if !ok {
				http.Error(w, "no verified client certificate", http.StatusUnauthorized)
				return
			}
			_, _ = io.WriteString(w, r.Proto+" "+cn)
		}),
		TLSConfig:         f.r.ServerConfig("h2", "http/1.1"),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { srv.Close() })
	url := "https://" + ln.Addr().String() + "/"

	get := func(cfg *tls.Config, h2 bool) (string, error) {
		tr := &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: h2}
		defer tr.CloseIdleConnections()
		c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
		resp, err := c.Get(url)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	for _, h2 := range []bool{false, true} {
		body, err := get(f.ca.ClientTLS(f.ca.Client(t, "alice")), h2)
		want := "HTTP/1.1 alice"
		if h2 {
			want = "HTTP/2.0 alice"
		}
		if err != nil || body != want {
			t.Fatalf("h2=%v: %q, %v; want %q", h2, body, err, want)
		}
	}
	if _, err := get(f.ca.ClientTLS(nil), false); err == nil {
		t.Fatal("served a client without a certificate")
	}
	other := testcerts.NewCA(t, "other")
	if _, err := get(f.ca.ClientTLS(other.Client(t, "mallory")), false); err == nil {
		t.Fatal("served a client of another CA")
	}
	// Plain HTTP to the HTTPS port: a clean 400, no crash.
	resp, err := http.Get("http://" + ln.Addr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "HTTPS") {
		t.Fatalf("plain HTTP: %d %q", resp.StatusCode, b)
	}
}

func TestGRPCPeerCertificate(t *testing.T) {
	t.Parallel()
	f := newFixture(t, true)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	seen := make(chan string, 10)
	gs := grpc.NewServer(grpc.Creds(credentials.NewTLS(f.r.ServerConfig("h2"))),
		grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			p, _ := peer.FromContext(ctx)
			info, ok := p.AuthInfo.(credentials.TLSInfo)
			if !ok {
				return nil, status.Error(codes.Unauthenticated, "not TLS")
			}
			cn, _ := PeerCommonName(&info.State)
			seen <- cn
			return h(ctx, req)
		}))
	healthpb.RegisterHealthServer(gs, health.NewServer())
	go func() { _ = gs.Serve(ln) }()
	t.Cleanup(gs.Stop)

	check := func(cfg *tls.Config) error {
		cc, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
		if err != nil {
			return err
		}
		defer cc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err = healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
		return err
	}
	if err := check(f.ca.ClientTLS(f.ca.Client(t, "alice"))); err != nil {
		t.Fatal(err)
	}
	if cn := <-seen; cn != "alice" {
		t.Fatalf("the method saw %q, want alice", cn)
	}
	for name, cfg := range map[string]*tls.Config{
		"no certificate":   f.ca.ClientTLS(nil),
		"another CA":       f.ca.ClientTLS(testcerts.NewCA(t, "other").Client(t, "mallory")),
		"untrusted server": testcerts.NewCA(t, "x").ClientTLS(f.ca.Client(t, "alice")),
	} {
		err := check(cfg)
		if status.Code(err) != codes.Unavailable {
			t.Errorf("%s: %v, want Unavailable", name, err)
		}
	}
	select {
	case cn := <-seen:
		t.Fatalf("a refused client reached a method as %q", cn)
	default:
	}
}
