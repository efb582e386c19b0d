// Package tlsconf owns StreamHouse's TLS: the server certificate, its key
// and the CA certificates read from PEM files (TLS_CERT_FILE, TLS_KEY_FILE,
// TLS_CLIENT_CA_FILE, TLS_PEER_CA_FILE), reloaded when the files change;
// the *tls.Config each listener serves with; the client configuration an
// agent uses to call another agent; the TLS metrics; and, for streamctl, a
// client configuration from a CA file.
//
// Reloading: Run polls the files (every ReloadInterval, 10 s by default)
// and, when their contents changed, loads them all again. New connections
// get the new certificate and CAs; open connections keep theirs. A set of
// files that does not load (missing, not PEM, key not matching, expired)
// is logged and counted in streamhouse_tls_reload_errors_total, and the
// previous set stays in use; it is tried again when the files change
// again. Comparing contents rather than modification times catches every
// way of replacing a file (rename, copy, a Kubernetes secret's symlink
// swap) on every platform; the files are small.
//
// Policy: TLS 1.2 at least, Go's default cipher suites and curves (no
// insecure ones). With a client CA, every client must present a
// certificate that chains to it (tls.RequireAndVerifyClientCert); the
// verified chain is in the connection's tls.ConnectionState, where
// PeerCommonName finds the principal.
package tlsconf

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// DefaultReloadInterval is how often Run looks at the files by default:
// well within the 30 s in which a replaced certificate must be in use.
const DefaultReloadInterval = 10 * time.Second

// maxFileBytes bounds one PEM file read (a system CA bundle is ~200 KiB).
const maxFileBytes = 4 << 20

// Config names the files and what to report to.
type Config struct {
	CertFile string // server certificate (chain), PEM; required
	KeyFile  string // its private key, PEM; may be CertFile when it holds both
	// ClientCAFile holds the CA certificates client certificates must
	// chain to. "" asks clients for no certificate.
	ClientCAFile string
	// PeerCAFile holds the CA certificates that verify other agents'
	// certificates when this agent calls them. "": ClientCAFile when set,
	// else the system's roots.
	PeerCAFile     string
	ReloadInterval time.Duration // default DefaultReloadInterval
	Logger         *slog.Logger  // default slog.Default()
	// Registry receives the TLS metrics; nil means none.
	Registry prometheus.Registerer
	// Now is the clock for expiry checks and the expiry metric; default
	// time.Now.
	Now func() time.Time
}

// Reloader holds the current certificate and CAs and reloads them when the
// files change. Create with New; Run polls.
type Reloader struct {
	cfg   Config
	log   *slog.Logger
	state atomic.Pointer[state]

	// mu serialises reloads; lastTried is the contents of the last set of
	// files that failed to load, so a bad set is reported once.
	mu        sync.Mutex
	lastTried [][]byte

	reloads      prometheus.Counter
	reloadErrors prometheus.Counter
}

// state is one loaded set of files. It is never changed once stored.
type state struct {
	raw       [][]byte // file contents, in Config.files order
	cert      *tls.Certificate
	clientCAs *x509.CertPool // nil: no client certificates asked
	peerRoots *x509.CertPool // nil: the system's roots
	// Earliest NotAfter of the certificate and of each CA file.
	certExpiry, clientCAExpiry, peerCAExpiry time.Time

	// configs are the server configurations built from this state, by
	// listener (NextProtos joined); a handshake reuses one.
	mu      sync.Mutex
	configs map[string]*tls.Config
}

// New loads the files once and returns a Reloader serving them, or an
// error naming the file that is missing or wrong.
func New(cfg Config) (*Reloader, error) {
	if cfg.CertFile == "" || cfg.KeyFile == "" {
		return nil, errors.New("tls: a certificate file and a key file are both required")
	}
	if cfg.ReloadInterval <= 0 {
		cfg.ReloadInterval = DefaultReloadInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	r := &Reloader{
		cfg: cfg,
		log: cfg.Logger.With("component", "tls"),
		reloads: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamhouse_tls_reloads_total",
			Help: "Times the TLS certificate, key and CA files were loaded again after they changed.",
		}),
		reloadErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamhouse_tls_reload_errors_total",
			Help: "Changed TLS certificate, key or CA files that did not load (the previous ones stay in use).",
		}),
	}
	raw, err := r.read()
	if err != nil {
		return nil, err
	}
	st, err := r.load(raw)
	if err != nil {
		return nil, err
	}
	r.state.Store(st)
	if cfg.Registry != nil {
		cfg.Registry.MustRegister(r.reloads, r.reloadErrors, expiryCollector{r})
	}
	r.log.Info("TLS on", st.logAttrs(cfg)...)
	return r, nil
}

// MutualTLS reports whether clients must present a certificate (a client
// CA file is configured).
func (r *Reloader) MutualTLS() bool { return r.cfg.ClientCAFile != "" }

// Certificate returns the certificate in use now (for tests and logs).
func (r *Reloader) Certificate() *x509.Certificate { return r.state.Load().cert.Leaf }

// Run polls the files every ReloadInterval until ctx is done.
func (r *Reloader) Run(ctx context.Context) {
	t := time.NewTicker(r.cfg.ReloadInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.Check()
		}
	}
}

// Check reloads the files now if they changed since they were last loaded
// (or last failed to load). It returns the load error, if any.
func (r *Reloader) Check() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	cur := r.state.Load()
	raw, err := r.read()
	if err == nil && sameFiles(raw, cur.raw) {
		r.lastTried = nil // back to the files in use: a new failure is news
		return nil
	}
	if err == nil && sameFiles(raw, r.lastTried) {
		return nil
	}
	if err != nil {
		// A missing or unreadable file: report it once, until it changes.
		key := [][]byte{[]byte("\x00error: " + err.Error())}
		if sameFiles(key, r.lastTried) {
			return err
		}
		r.lastTried = key
	} else {
		r.lastTried = raw
		var st *state
		if st, err = r.load(raw); err == nil {
			r.state.Store(st)
			r.lastTried = nil
			r.reloads.Inc()
			r.log.Info("TLS files reloaded", st.logAttrs(r.cfg)...)
			return nil
		}
	}
	r.reloadErrors.Inc()
	r.log.Error("TLS files changed but do not load; still serving the previous certificate", "err", err,
		"serial", cur.cert.Leaf.SerialNumber.String(), "not_after", cur.certExpiry)
	return err
}

// files are the configured files in a fixed order (unset ones as "").
func (c *Config) files() []string {
	return []string{c.CertFile, c.KeyFile, c.ClientCAFile, c.PeerCAFile}
}

// read reads every configured file.
func (r *Reloader) read() ([][]byte, error) {
	var out [][]byte
	for i, path := range r.cfg.files() {
		if path == "" {
			out = append(out, nil)
			continue
		}
		b, err := readFile(path)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", fileRoles[i], path, err)
		}
		out = append(out, b)
	}
	return out, nil
}

var fileRoles = []string{"certificate file", "key file", "client CA file", "peer CA file"}

func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxFileBytes {
		return nil, fmt.Errorf("larger than %d MiB", maxFileBytes>>20)
	}
	return b, nil
}

func sameFiles(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// load parses one set of file contents.
func (r *Reloader) load(raw [][]byte) (*state, error) {
	c := r.cfg
	cert, err := tls.X509KeyPair(raw[0], raw[1])
	if err != nil {
		return nil, fmt.Errorf("certificate file %s with key file %s: %w", c.CertFile, c.KeyFile, err)
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("certificate file %s: %w", c.CertFile, err)
		}
		cert.Leaf = leaf
	}
	if now := c.Now(); now.After(leaf.NotAfter) {
		return nil, fmt.Errorf("certificate file %s: the certificate (serial %s) expired at %s",
			c.CertFile, leaf.SerialNumber, leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	st := &state{raw: raw, cert: &cert, certExpiry: leaf.NotAfter, configs: map[string]*tls.Config{}}
	if c.ClientCAFile != "" {
		if st.clientCAs, st.clientCAExpiry, err = parseCAs(raw[2]); err != nil {
			return nil, fmt.Errorf("client CA file %s: %w", c.ClientCAFile, err)
		}
	}
	switch {
	case c.PeerCAFile != "":
		if st.peerRoots, st.peerCAExpiry, err = parseCAs(raw[3]); err != nil {
			return nil, fmt.Errorf("peer CA file %s: %w", c.PeerCAFile, err)
		}
	case st.clientCAs != nil:
		st.peerRoots, st.peerCAExpiry = st.clientCAs, st.clientCAExpiry
	}
	return st, nil
}

// parseCAs parses every certificate of a PEM file; it wants at least one
// and nothing that is not a certificate.
func parseCAs(b []byte) (*x509.CertPool, time.Time, error) {
	pool := x509.NewCertPool()
	var expiry time.Time
	n := 0
	for rest := b; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			if len(bytes.TrimSpace(rest)) > 0 {
				return nil, expiry, errors.New("text that is not a PEM block")
			}
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, expiry, fmt.Errorf("a %q PEM block; want only CERTIFICATE blocks", block.Type)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, expiry, fmt.Errorf("certificate %d: %w", n+1, err)
		}
		pool.AddCert(cert)
		if n == 0 || cert.NotAfter.Before(expiry) {
			expiry = cert.NotAfter
		}
		n++
	}
	if n == 0 {
		return nil, expiry, errors.New("no PEM certificate in it")
	}
	return pool, expiry, nil
}

func (st *state) logAttrs(c Config) []any {
	leaf := st.cert.Leaf
	return []any{
		"cert_file", c.CertFile, "subject", leaf.Subject.String(), "dns_names", strings.Join(leaf.DNSNames, ","),
		"serial", leaf.SerialNumber.String(), "not_after", leaf.NotAfter.UTC(),
		"client_ca_file", c.ClientCAFile, "mutual_tls", st.clientCAs != nil,
	}
}

// ServerConfig returns the configuration a listener serves with: on every
// handshake it takes the certificate and client CAs in use then. next are
// the ALPN protocols of the listener ("h2" for gRPC, "h2" and "http/1.1"
// for HTTP, none for Kafka).
func (r *Reloader) ServerConfig(next ...string) *tls.Config {
	next = append([]string(nil), next...)
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: next,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return r.state.Load().serverConfig(next), nil
		},
	}
}

// serverConfig returns the configuration of st for a listener with ALPN
// protocols next, built once.
func (st *state) serverConfig(next []string) *tls.Config {
	key := strings.Join(next, ",")
	st.mu.Lock()
	defer st.mu.Unlock()
	if cfg := st.configs[key]; cfg != nil {
		return cfg
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		NextProtos:   next,
		Certificates: []tls.Certificate{*st.cert},
	}
	if pool := st.clientCAs; pool != nil {
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
		cfg.ClientCAs = pool
		// A resumed session is served only if its verified chain still
		// ends at one of these CAs (crypto/tls checks it; TestClientCAReload).
	}
	st.configs[key] = cfg
	return cfg
}

// PeerConfig returns a client configuration for calling another agent,
// made from the files in use now: it trusts the peer CAs (TLS_PEER_CA_FILE,
// else TLS_CLIENT_CA_FILE, else the system's roots) and presents this
// agent's certificate when asked for one. The caller sets ServerName (gRPC
// takes it from the address). Call it per connection to follow reloads.
func (r *Reloader) PeerConfig() *tls.Config {
	st := r.state.Load()
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		RootCAs:    st.peerRoots,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return st.cert, nil
		},
	}
}

// PeerCommonName returns the common name of a connection's verified client
// certificate: the principal of a mutual TLS client. ok is false when the
// client presented no certificate that was verified.
func PeerCommonName(cs *tls.ConnectionState) (cn string, ok bool) {
	if cs == nil || len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return "", false
	}
	return cs.VerifiedChains[0][0].Subject.CommonName, true
}

// ClientConfig is the configuration of a client (streamctl) of a TLS
// server: it trusts the CA certificates of caFile ("" the system's roots)
// and, when certFile and keyFile are given, presents that certificate.
func ClientConfig(caFile, certFile, keyFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		b, err := readFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("CA file %s: %w", caFile, err)
		}
		if cfg.RootCAs, _, err = parseCAs(b); err != nil {
			return nil, fmt.Errorf("CA file %s: %w", caFile, err)
		}
	}
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("a client certificate needs both a certificate file and a key file")
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("client certificate %s with key %s: %w", certFile, keyFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// expiryCollector exports streamhouse_tls_certificate_expiry_seconds,
// computed at scrape time from the files in use.
type expiryCollector struct{ r *Reloader }

var expiryDesc = prometheus.NewDesc("streamhouse_tls_certificate_expiry_seconds",
	"Seconds until the TLS certificate in use expires (negative once expired); for a CA file, until its first certificate expires. certificate: server, client_ca, peer_ca.",
	[]string{"certificate"}, nil)

func (expiryCollector) Describe(ch chan<- *prometheus.Desc) { ch <- expiryDesc }

func (e expiryCollector) Collect(ch chan<- prometheus.Metric) {
	st, now := e.r.state.Load(), e.r.cfg.Now()
	emit := func(which string, at time.Time) {
		ch <- prometheus.MustNewConstMetric(expiryDesc, prometheus.GaugeValue, at.Sub(now).Seconds(), which)
	}
	emit("server", st.certExpiry)
	if e.r.cfg.ClientCAFile != "" {
		emit("client_ca", st.clientCAExpiry)
	}
	if e.r.cfg.PeerCAFile != "" {
		emit("peer_ca", st.peerCAExpiry)
	}
}
