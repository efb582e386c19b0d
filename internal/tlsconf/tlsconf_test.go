package tlsconf

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/streamhouse/streamhouse/internal/testutil/testcerts"
)

// fixture is a Reloader over files in a temporary folder.
type fixture struct {
	t                         *testing.T
	dir                       string
	ca                        *testcerts.CA
	certFile, keyFile, caFile string
	reg                       *prometheus.Registry
	r                         *Reloader
	// states receives the server side of each handshake that succeeded.
	states chan tls.ConnectionState
}

func newFixture(t *testing.T, mutual bool, adjust ...func(*Config)) *fixture {
	t.Helper()
	f := &fixture{t: t, dir: t.TempDir(), ca: testcerts.NewCA(t, "test CA"), reg: prometheus.NewRegistry(), states: make(chan tls.ConnectionState, 100)}
	f.certFile, f.keyFile = f.ca.Server(t).Write(t, f.dir, "server")
	cfg := Config{CertFile: f.certFile, KeyFile: f.keyFile, Registry: f.reg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if mutual {
		f.caFile = f.ca.Write(t, f.dir, "ca")
		cfg.ClientCAFile = f.caFile
	}
	for _, a := range adjust {
		a(&cfg)
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.r = r
	return f
}

// serve runs a TLS listener with the Reloader's server configuration that
// writes "ok" on each connection after the handshake, and returns its
// address.
func (f *fixture) serve(next ...string) string {
	f.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { ln.Close() })
	tln := tls.NewListener(ln, f.r.ServerConfig(next...))
	go func() {
		for {
			c, err := tln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				tc := c.(*tls.Conn)
				if err := tc.Handshake(); err != nil {
					return
				}
				select {
				case f.states <- tc.ConnectionState():
				default:
				}
				_, _ = c.Write([]byte("ok"))
				_, _ = io.Copy(io.Discard, c) // until the client closes
			}()
		}
	}()
	return ln.Addr().String()
}

// dial handshakes with addr and reads the server's "ok"; it returns the
// connection state or the first error.
func dial(addr string, cfg *tls.Config) (tls.ConnectionState, error) {
	d := tls.Dialer{Config: cfg, NetDialer: &net.Dialer{Timeout: 10 * time.Second}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	// In TLS 1.3 the server checks the client certificate after the
	// client's handshake is done: a refusal shows on the first read.
	buf := make([]byte, 2)
	if _, err := io.ReadFull(c, buf); err != nil {
		return tls.ConnectionState{}, err
	}
	if string(buf) != "ok" {
		return tls.ConnectionState{}, errors.New("unexpected answer " + string(buf))
	}
	return c.(*tls.Conn).ConnectionState(), nil
}

func serialOf(cs tls.ConnectionState) string { return cs.PeerCertificates[0].SerialNumber.String() }

func TestNewRefusesBadFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := testcerts.NewCA(t, "ca")
	good, goodKey := ca.Server(t).Write(t, dir, "good")
	_, otherKey := ca.Server(t).Write(t, dir, "other")
	expired, expiredKey := ca.Issue(t, testcerts.Spec{CommonName: "old", Hosts: []string{"localhost"},
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)}).Write(t, dir, "expired")
	caFile := ca.Write(t, dir, "ca")
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	garbage := write("garbage.pem", "not a certificate\n")
	keyAsCA := goodKey
	missing := filepath.Join(dir, "missing.pem")
	for _, tc := range []struct {
		name string
		cfg  Config
		want []string // substrings of the error
	}{
		{"missing cert", Config{CertFile: missing, KeyFile: goodKey}, []string{"certificate file " + missing, "no such file"}},
		{"missing key", Config{CertFile: good, KeyFile: missing}, []string{"key file " + missing, "no such file"}},
		{"key of another certificate", Config{CertFile: good, KeyFile: otherKey}, []string{good, otherKey, "private key does not match"}},
		{"not PEM", Config{CertFile: garbage, KeyFile: goodKey}, []string{garbage}},
		{"expired", Config{CertFile: expired, KeyFile: expiredKey}, []string{expired, "expired at"}},
		{"missing client CA", Config{CertFile: good, KeyFile: goodKey, ClientCAFile: missing}, []string{"client CA file " + missing}},
		{"client CA not PEM", Config{CertFile: good, KeyFile: goodKey, ClientCAFile: garbage}, []string{"client CA file " + garbage, "not a PEM block"}},
		{"client CA holds a key", Config{CertFile: good, KeyFile: goodKey, ClientCAFile: keyAsCA}, []string{"client CA file " + keyAsCA, `"PRIVATE KEY"`}},
		{"peer CA empty", Config{CertFile: good, KeyFile: goodKey, PeerCAFile: write("empty.pem", "")}, []string{"peer CA file", "no PEM certificate"}},
		{"no key", Config{CertFile: good}, []string{"both required"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg)
			if err == nil {
				t.Fatal("New accepted bad files")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
	if _, err := New(Config{CertFile: good, KeyFile: goodKey, ClientCAFile: caFile, PeerCAFile: caFile}); err != nil {
		t.Fatalf("good files: %v", err)
	}
}

func TestServesTLS12AtLeast(t *testing.T) {
	t.Parallel()
	f := newFixture(t, false)
	addr := f.serve()
	cs, err := dial(addr, f.ca.ClientTLS(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cs.Version != tls.VersionTLS13 {
		t.Errorf("negotiated version %x, want TLS 1.3", cs.Version)
	}
	if _, err := dial(addr, &tls.Config{RootCAs: f.ca.Pool(), MaxVersion: tls.VersionTLS12}); err != nil {
		t.Fatalf("TLS 1.2 client refused: %v", err)
	}
	old := &tls.Config{RootCAs: f.ca.Pool(), MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}
	if _, err := dial(addr, old); err == nil {
		t.Fatal("a TLS 1.1 client was served")
	}
	// Without a client CA no client certificate is asked for.
	if _, err := dial(addr, f.ca.ClientTLS(f.ca.Client(t, "alice"))); err != nil {
		t.Fatal(err)
	}
}

func TestMutualTLS(t *testing.T) {
	t.Parallel()
	f := newFixture(t, true)
	addr := f.serve()
	other := testcerts.NewCA(t, "other CA")
	for _, tc := range []struct {
		name   string
		client *testcerts.Pair
	}{
		{"no certificate", nil},
		{"certificate of another CA", other.Client(t, "mallory")},
		{"self-signed server certificate of another CA", other.Server(t)},
	} {
		if _, err := dial(addr, f.ca.ClientTLS(tc.client)); err == nil {
			t.Errorf("%s: served", tc.name)
		}
	}
	cs, err := dial(addr, f.ca.ClientTLS(f.ca.Client(t, "alice")))
	if err != nil {
		t.Fatal(err)
	}
	if len(cs.PeerCertificates) == 0 {
		t.Fatal("no server certificate")
	}
	// The server side sees the verified principal.
	state := <-f.states
	if cn, ok := PeerCommonName(&state); !ok || cn != "alice" {
		t.Fatalf("PeerCommonName = %q, %v; want alice", cn, ok)
	}
	if !f.r.MutualTLS() {
		t.Error("MutualTLS() false with a client CA")
	}
}

func TestReloadOnRename(t *testing.T) {
	t.Parallel()
	f := newFixture(t, false, func(c *Config) { c.ReloadInterval = 20 * time.Millisecond })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go f.r.Run(ctx)
	addr := f.serve()
	cs, err := dial(addr, f.ca.ClientTLS(nil))
	if err != nil {
		t.Fatal(err)
	}
	first := serialOf(cs)

	// A new certificate and key, each renamed over the old file.
	next := f.ca.Server(t)
	testcerts.Replace(t, f.keyFile, next.KeyPEM)
	testcerts.Replace(t, f.certFile, next.CertPEM)
	waitServing(t, addr, f.ca.ClientTLS(nil), next.Cert.SerialNumber.String())
	if got := testutil.ToFloat64(f.r.reloads); got < 1 {
		t.Errorf("reloads_total = %v, want at least 1", got)
	}
	if next.Cert.SerialNumber.String() == first {
		t.Fatal("test bug: same serial")
	}
}

// waitServing polls new connections until the server presents the
// certificate with serial want.
func waitServing(t *testing.T, addr string, cfg *tls.Config, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		cs, err := dial(addr, cfg)
		if err == nil && serialOf(cs) == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("new connections do not get certificate %s (last: err %v)", want, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestBadReplacementKeepsTheOldCertificate(t *testing.T) {
	t.Parallel()
	f := newFixture(t, false)
	addr := f.serve()
	before := f.r.Certificate().SerialNumber.String()
	errs := func() float64 {
		return testutil.ToFloat64(f.r.reloadErrors)
	}
	steps := []struct {
		name string
		do   func()
	}{
		{"corrupt certificate", func() { testcerts.Replace(t, f.certFile, []byte("-----BEGIN CERTIFICATE-----\nnope\n")) }},
		{"certificate file removed", func() { os.Remove(f.certFile) }},
		{"certificate of another key", func() { testcerts.Replace(t, f.certFile, f.ca.Server(t).CertPEM) }},
		{"expired certificate", func() {
			old := f.ca.Issue(t, testcerts.Spec{CommonName: "old", Hosts: testcerts.LoopbackHosts,
				NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})
			testcerts.Replace(t, f.keyFile, old.KeyPEM)
			testcerts.Replace(t, f.certFile, old.CertPEM)
		}},
	}
	for i, s := range steps {
		s.do()
		if err := f.r.Check(); err == nil {
			t.Fatalf("%s: Check accepted it", s.name)
		}
		if got := errs(); got != float64(i+1) {
			t.Fatalf("%s: reload_errors_total = %v, want %d", s.name, got, i+1)
		}
		// Reported once: the same bad files are not counted again.
		if err := f.r.Check(); err != nil && !strings.Contains(err.Error(), "no such file") {
			t.Fatalf("%s: second Check: %v", s.name, err)
		}
		if got := errs(); got != float64(i+1) {
			t.Fatalf("%s: counted again: %v", s.name, got)
		}
		cs, err := dial(addr, f.ca.ClientTLS(nil))
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if serialOf(cs) != before {
			t.Fatalf("%s: serving %s, want the old %s", s.name, serialOf(cs), before)
		}
	}
	// A good pair afterwards is taken.
	good := f.ca.Server(t)
	testcerts.Replace(t, f.keyFile, good.KeyPEM)
	testcerts.Replace(t, f.certFile, good.CertPEM)
	if err := f.r.Check(); err != nil {
		t.Fatal(err)
	}
	cs, err := dial(addr, f.ca.ClientTLS(nil))
	if err != nil || serialOf(cs) != good.Cert.SerialNumber.String() {
		t.Fatalf("after a good replacement: %v, serving %v", err, cs.PeerCertificates)
	}
}

// A failure after the files went back to those in use is counted again.
func TestFailureAfterRestoreCountedAgain(t *testing.T) {
	t.Parallel()
	f := newFixture(t, false)
	orig, err := os.ReadFile(f.certFile)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 2; i++ {
		testcerts.Replace(t, f.certFile, []byte("garbage"))
		if err := f.r.Check(); err == nil {
			t.Fatal("garbage accepted")
		}
		if got := testutil.ToFloat64(f.r.reloadErrors); got != float64(i) {
			t.Fatalf("round %d: reload_errors_total = %v", i, got)
		}
		testcerts.Replace(t, f.certFile, orig)
		if err := f.r.Check(); err != nil {
			t.Fatal(err)
		}
	}
	if got := testutil.ToFloat64(f.r.reloads); got != 0 {
		t.Errorf("reloads_total = %v after returning to the same files, want 0", got)
	}
}

func TestClientCAReload(t *testing.T) {
	t.Parallel()
	f := newFixture(t, true)
	addr := f.serve()
	cache := tls.NewLRUClientSessionCache(8)
	alice := f.ca.ClientTLS(f.ca.Client(t, "alice"))
	alice.ClientSessionCache = cache
	if _, err := dial(addr, alice); err != nil {
		t.Fatal(err)
	}
	// The session resumes while the CA stays.
	cs, err := dial(addr, alice)
	if err != nil {
		t.Fatal(err)
	}
	if !cs.DidResume {
		t.Fatal("test bug: the second connection did not resume its session")
	}

	ca2 := testcerts.NewCA(t, "second CA")
	testcerts.Replace(t, f.caFile, ca2.PEM)
	if err := f.r.Check(); err != nil {
		t.Fatal(err)
	}
	// alice's CA is gone: neither a new handshake nor her resumed session
	// is served.
	if _, err := dial(addr, alice); err == nil {
		t.Fatal("a client of the removed CA was served (resumed session)")
	}
	fresh := f.ca.ClientTLS(f.ca.Client(t, "alice"))
	if _, err := dial(addr, fresh); err == nil {
		t.Fatal("a client of the removed CA was served")
	}
	// A client of the new CA is (it trusts the server's CA, which did not
	// change).
	bob := f.ca.ClientTLS(ca2.Client(t, "bob"))
	if _, err := dial(addr, bob); err != nil {
		t.Fatalf("client of the new CA: %v", err)
	}
}

func TestExpiryMetric(t *testing.T) {
	t.Parallel()
	now := time.Now()
	f := newFixture(t, true, func(c *Config) { c.Now = func() time.Time { return now } })
	want := f.r.Certificate().NotAfter.Sub(now).Seconds()
	got := map[string]float64{}
	mfs, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "streamhouse_tls_certificate_expiry_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			got[m.GetLabel()[0].GetValue()] = m.GetGauge().GetValue()
		}
	}
	if got["server"] != want {
		t.Errorf("server expiry %v, want %v", got["server"], want)
	}
	if ca := f.ca.Cert.NotAfter.Sub(now).Seconds(); got["client_ca"] != ca {
		t.Errorf("client CA expiry %v, want %v", got["client_ca"], ca)
	}
	if _, ok := got["peer_ca"]; ok || len(got) != 2 {
		t.Errorf("series %v, want server and client_ca", got)
	}
}

func TestPeerConfig(t *testing.T) {
	t.Parallel()
	// Two agents with certificates of one CA, requiring client
	// certificates: each calls the other with PeerConfig.
	f := newFixture(t, true)
	addr := f.serve()
	cfg := f.r.PeerConfig()
	cfg.ServerName = "127.0.0.1"
	if _, err := dial(addr, cfg); err != nil {
		t.Fatal(err)
	}
	state := <-f.states
	if cn, ok := PeerCommonName(&state); !ok || cn != "localhost" {
		t.Fatalf("the server sees %q, %v; want the agent's own certificate", cn, ok)
	}
	// A peer CA file that does not hold the server's CA: refused.
	other := testcerts.NewCA(t, "other")
	g := newFixture(t, false, func(c *Config) { c.PeerCAFile = other.Write(t, t.TempDir(), "peer") })
	cfg = g.r.PeerConfig()
	cfg.ServerName = "127.0.0.1"
	if _, err := dial(addr, cfg); err == nil {
		t.Fatal("a server outside the peer CAs was trusted")
	}
}

func TestClientConfig(t *testing.T) {
	t.Parallel()
	f := newFixture(t, true)
	addr := f.serve()
	dir := t.TempDir()
	caFile := f.ca.Write(t, dir, "ca")
	certFile, keyFile := f.ca.Client(t, "carol").Write(t, dir, "carol")
	cfg, err := ClientConfig(caFile, certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dial(addr, cfg); err != nil {
		t.Fatal(err)
	}
	noCert, err := ClientConfig(caFile, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dial(addr, noCert); err == nil {
		t.Fatal("served without a client certificate")
	}
	var uerr x509.UnknownAuthorityError
	sys, err := ClientConfig("", "", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dial(addr, sys); !errors.As(err, &uerr) {
		t.Fatalf("system roots trusted the test CA: %v", err)
	}
	if _, err := ClientConfig(filepath.Join(dir, "nope.pem"), "", ""); err == nil || !strings.Contains(err.Error(), "nope.pem") {
		t.Fatalf("missing CA file: %v", err)
	}
	if _, err := ClientConfig(caFile, certFile, ""); err == nil {
		t.Fatal("a certificate without a key was accepted")
	}
}
