// Package testcerts makes X.509 certificates at test time, for tests of
// TLS and mutual TLS: a CA, server certificates for the loopback addresses,
// and client certificates whose common name is the principal a server sees.
// Nothing is checked in; every test gets fresh keys (ECDSA P-256, fast to
// make) and random serial numbers.
//
// Typical use:
//
//	ca := testcerts.NewCA(t, "test CA")
//	srv := ca.Server(t)                 // SANs 127.0.0.1, ::1, localhost
//	certFile, keyFile := srv.Write(t, dir, "server")
//	caFile := ca.Write(t, dir, "ca")
//	// server env: TLS_CERT_FILE=certFile TLS_KEY_FILE=keyFile TLS_CLIENT_CA_FILE=caFile
//	alice := ca.Client(t, "alice")      // authenticates as User:alice
//	cfg := ca.ClientTLS(alice)          // *tls.Config trusting ca, presenting alice
//
// Server certificates carry both the serverAuth and clientAuth extended key
// usages, so an agent can present its own certificate when it calls
// another agent of a cluster that requires client certificates.
package testcerts

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// CA is a certificate authority that issues certificates for one test.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
	PEM  []byte // the CA certificate, PEM-encoded
}

// Pair is an issued certificate with its private key.
type Pair struct {
	Cert    *x509.Certificate
	CertPEM []byte // the certificate, PEM-encoded
	KeyPEM  []byte // the private key, PEM-encoded PKCS#8
	TLS     tls.Certificate
}

// Spec says what to issue; Server and Client fill it for the usual cases.
type Spec struct {
	CommonName string
	// Hosts are the subject alternative names: IP addresses or DNS names.
	Hosts []string
	// ExtKeyUsage defaults to serverAuth and clientAuth.
	ExtKeyUsage []x509.ExtKeyUsage
	// NotBefore and NotAfter default to an hour ago and a day from now.
	NotBefore, NotAfter time.Time
}

// LoopbackHosts are the names a server certificate from Server covers.
var LoopbackHosts = []string{"127.0.0.1", "::1", "localhost"}

// NewCA makes a self-signed CA valid from an hour ago for a day.
func NewCA(t testing.TB, name string) *CA {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"StreamHouse tests"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatalf("testcerts: create CA: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("testcerts: parse CA: %v", err)
	}
	return &CA{Cert: cert, Key: key, PEM: pemBlock("CERTIFICATE", der)}
}

// Server issues a server certificate for LoopbackHosts with common name
// "localhost".
func (ca *CA) Server(t testing.TB) *Pair {
	t.Helper()
	return ca.Issue(t, Spec{CommonName: "localhost", Hosts: LoopbackHosts})
}

// Client issues a client certificate with common name cn (the principal
// User:cn).
func (ca *CA) Client(t testing.TB, cn string) *Pair {
	t.Helper()
	return ca.Issue(t, Spec{CommonName: cn, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
}

// Issue issues a certificate as spec says, signed by ca.
func (ca *CA) Issue(t testing.TB, spec Spec) *Pair {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: serial(t),
		Subject:      pkix.Name{CommonName: spec.CommonName},
		NotBefore:    spec.NotBefore,
		NotAfter:     spec.NotAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  spec.ExtKeyUsage,
	}
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore = time.Now().Add(-time.Hour)
	}
	if tmpl.NotAfter.IsZero() {
		tmpl.NotAfter = time.Now().Add(24 * time.Hour)
	}
	if tmpl.ExtKeyUsage == nil {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	}
	for _, h := range spec.Hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		t.Fatalf("testcerts: issue %q: %v", spec.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("testcerts: parse %q: %v", spec.CommonName, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("testcerts: marshal key: %v", err)
	}
	p := &Pair{Cert: cert, CertPEM: pemBlock("CERTIFICATE", der), KeyPEM: pemBlock("PRIVATE KEY", keyDER)}
	if p.TLS, err = tls.X509KeyPair(p.CertPEM, p.KeyPEM); err != nil {
		t.Fatalf("testcerts: key pair: %v", err)
	}
	return p
}

// Pool is a certificate pool holding only ca.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// ClientTLS is a client configuration that trusts only ca and presents
// client (nil: no client certificate).
func (ca *CA) ClientTLS(client *Pair) *tls.Config {
	cfg := &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12}
	if client != nil {
		cfg.Certificates = []tls.Certificate{client.TLS}
	}
	return cfg
}

// Write writes the CA certificate to dir/name.pem and returns its path.
func (ca *CA) Write(t testing.TB, dir, name string) string {
	t.Helper()
	return writeFile(t, filepath.Join(dir, name+".pem"), ca.PEM)
}

// Write writes the certificate to dir/name.pem and the key to
// dir/name-key.pem (mode 0600) and returns their paths.
func (p *Pair) Write(t testing.TB, dir, name string) (certFile, keyFile string) {
	t.Helper()
	return writeFile(t, filepath.Join(dir, name+".pem"), p.CertPEM),
		writeFile(t, filepath.Join(dir, name+"-key.pem"), p.KeyPEM)
}

// Replace writes data to a temporary file next to path and renames it over
// path, as certificate tooling does: a reader sees the old file or the new
// one, never a part.
func Replace(t testing.TB, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatalf("testcerts: %v", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatalf("testcerts: %v", err)
	}
}

func writeFile(t testing.TB, path string, data []byte) string {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatalf("testcerts: %v", err)
	}
	return path
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("testcerts: key: %v", err)
	}
	return key
}

func serial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		t.Fatalf("testcerts: serial: %v", err)
	}
	return n
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}
