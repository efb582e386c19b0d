package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/streamhouse/streamhouse/internal/config"
)

// healthcheck is `streamhouse healthcheck`: GET /ready on this agent's
// REST listener (HTTP_ADDR, a wildcard host read as 127.0.0.1), for
// container health checks in images without curl (the Dockerfile's
// HEALTHCHECK). With TLS on (TLS_CERT_FILE) it asks over HTTPS,
// presenting the agent's own certificate (mutual TLS requires one on
// every path) and accepting the server only if it shows a certificate
// with the agent's own public key: the probe talks to its own process on
// loopback, by an address the certificate need not name. nil means 200.
func healthcheck(ctx context.Context, cfg *config.Config) error {
	host, port, err := net.SplitHostPort(cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("HTTP_ADDR %q: %w", cfg.HTTPAddr, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	scheme := "http"
	client := &http.Client{}
	if cfg.TLSCertFile != "" {
		tc, err := selfTLS(cfg.TLSCertFile, cfg.TLSKeyFile)
		if err != nil {
			return err
		}
		scheme = "https"
		client.Transport = &http.Transport{TLSClientConfig: tc}
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	url := scheme + "://" + net.JoinHostPort(host, port) + "/ready"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

// selfTLS is the client configuration of a probe of the agent's own TLS
// listener: it presents the agent's certificate and trusts exactly a
// server certificate carrying the agent's public key.
func selfTLS(certFile, keyFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("TLS certificate %s with key %s: %w", certFile, keyFile, err)
	}
	own, err := x509.MarshalPKIXPublicKey(cert.Leaf.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("TLS certificate %s: %w", certFile, err)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		// The chain and name checks are replaced by the key comparison
		// below (VerifyConnection runs either way).
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("the server showed no certificate")
			}
			got, err := x509.MarshalPKIXPublicKey(cs.PeerCertificates[0].PublicKey)
			if err != nil || !bytes.Equal(got, own) {
				return errors.New("the server's certificate is not this agent's (another key)")
			}
			return nil
		},
	}, nil
}
