package cli

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamhouse/streamhouse/internal/tlsconf"
)

// TLS. A StreamHouse server with TLS serves it on every listener, so one
// set of files serves every transport streamctl uses: --ca-file (env
// STREAMHOUSE_CA_FILE) is the CA that signed the server's certificate, and
// --cert-file/--key-file (STREAMHOUSE_CERT_FILE, STREAMHOUSE_KEY_FILE) a
// client certificate for a server that requires one. With any of them:
//   - the REST URL, unless given, is https:// (the default, or the one
//     derived from --server);
//   - the Kafka commands (perf, transaction) connect with TLS, as they do
//     whenever the REST URL is https://.

// tlsFiles are the TLS settings of one invocation.
type tlsFiles struct {
	caFile, certFile, keyFile string
}

func (f tlsFiles) set() bool { return f.caFile != "" || f.certFile != "" || f.keyFile != "" }

// config loads the files into a client configuration (nil when none is
// set).
func (f tlsFiles) config() (*tls.Config, error) {
	if !f.set() {
		return nil, nil
	}
	if (f.certFile == "") != (f.keyFile == "") {
		return nil, usagef("--cert-file and --key-file go together (env STREAMHOUSE_CERT_FILE, STREAMHOUSE_KEY_FILE)")
	}
	cfg, err := tlsconf.ClientConfig(f.caFile, f.certFile, f.keyFile)
	if err != nil {
		return nil, err
	}
	return withoutClientCert(cfg), nil
}

// httpsDefault turns an http:// URL that was not given into https://
// when TLS files are set.
func httpsDefault(raw string) string {
	if rest, ok := strings.CutPrefix(raw, "http://"); ok {
		return "https://" + rest
	}
	return raw
}

// transportFor is the session's HTTP transport for set: the plain one, or
// one per set of TLS files (kept for the session, so the REPL reuses its
// connections).
func (s *session) transportFor(set settings) (*http.Transport, error) {
	if !set.tls.set() {
		return s.transport, nil
	}
	if t := s.tlsTransports[set.tls]; t != nil {
		return t, nil
	}
	cfg, err := set.tls.config()
	if err != nil {
		return nil, err
	}
	t := newTransport()
	t.TLSClientConfig = cfg
	if s.tlsTransports == nil {
		s.tlsTransports = map[tlsFiles]*http.Transport{}
	}
	s.tlsTransports[set.tls] = t
	return t, nil
}

// closeTransports closes the idle connections of every transport.
func (s *session) closeTransports() {
	s.transport.CloseIdleConnections()
	for _, t := range s.tlsTransports {
		t.CloseIdleConnections()
	}
}

// httpClient is an HTTP client for set; TLS files that do not load leave
// the plain transport (the command then reports the server's refusal).
func (s *session) httpClient(set settings) *http.Client {
	t, err := s.transportFor(set)
	if err != nil {
		t = s.transport
	}
	return &http.Client{Transport: t}
}

// kafkaOpts are the client options every Kafka command adds: the SASL
// login when a user is given (kafkaLogin), and TLS when TLS files are set
// or the REST URL is https:// (the server then has TLS on its Kafka
// listener too).
func (inv *invocation) kafkaOpts() ([]kgo.Opt, error) {
	opts := inv.kafkaLogin()
	cfg, err := inv.set.tls.config()
	if err != nil {
		return nil, err
	}
	if cfg == nil {
		if u, err := url.Parse(inv.set.apiURL); err != nil || u.Scheme != "https" {
			return opts, nil
		}
		cfg = withoutClientCert(&tls.Config{MinVersion: tls.VersionTLS12}) // the system's roots
	}
	return append(opts, kgo.DialTLSConfig(cfg)), nil
}

// errClientCertWanted ends a handshake in which the server asks for a
// client certificate and none is configured. A StreamHouse server asks only
// when it requires one, and saying so at once beats the reset or closed
// connection that its refusal may otherwise show as under TLS 1.3.
var errClientCertWanted = errors.New("the server requires a client certificate: give one with --cert-file and --key-file, or STREAMHOUSE_CERT_FILE and STREAMHOUSE_KEY_FILE")

// withoutClientCert makes cfg, when it has no client certificate, fail the
// handshake with errClientCertWanted if the server asks for one.
func withoutClientCert(cfg *tls.Config) *tls.Config {
	if len(cfg.Certificates) == 0 && cfg.GetClientCertificate == nil {
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return nil, errClientCertWanted
		}
	}
	return cfg
}

// tlsHint says what to set when a connection failed because the server's
// certificate is not trusted.
func tlsHint(err error) string {
	var unknown x509.UnknownAuthorityError
	var name x509.HostnameError
	switch {
	case errors.As(err, &unknown):
		return " (trust the CA that signed the server's certificate with --ca-file or STREAMHOUSE_CA_FILE)"
	case errors.As(err, &name):
		return " (the server's certificate does not name this host: connect by a name it lists)"
	}
	return ""
}
