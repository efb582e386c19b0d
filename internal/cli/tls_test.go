package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/internal/e2e"
	"github.com/streamhouse/streamhouse/internal/testutil"
	"github.com/streamhouse/streamhouse/internal/testutil/testcerts"
)

// runEnv runs streamctl in-process with the environment env.
func runEnv(t *testing.T, env map[string]string, args ...string) runResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	var out, errOut testutil.SyncBuffer
	code := Run(ctx, args, strings.NewReader(""), &out, &errOut, envOf(env))
	return runResult{code: code, stdout: out.String(), stderr: errOut.String()}
}

// streamctl against the real binary with TLS and client certificates
// required on every listener: with --ca-file and a client certificate
// (flags or environment) the REST commands (over HTTPS) and the Kafka
// commands (perf, transaction; over TLS) work; without the CA or without
// the certificate they fail with the TLS error.
func TestTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := testcerts.NewCA(t, "streamctl CA")
	certFile, keyFile := ca.Server(t).Write(t, dir, "server")
	caFile := ca.Write(t, dir, "ca")
	clientCert, clientKey := ca.Client(t, "streamctl").Write(t, dir, "client")
	p := e2e.Start(t, dir, append(e2e.Local.Env(t, dir),
		"TLS_CERT_FILE="+certFile, "TLS_KEY_FILE="+keyFile, "TLS_CLIENT_CA_FILE="+caFile))
	if !strings.HasPrefix(p.URL, "https://") {
		t.Fatalf("server URL %s", p.URL)
	}
	env := map[string]string{"STREAMHOUSE_API_URL": p.URL, "STREAMHOUSE_CA_FILE": caFile,
		"STREAMHOUSE_CERT_FILE": clientCert, "STREAMHOUSE_KEY_FILE": clientKey}
	ok := func(args ...string) string {
		t.Helper()
		r := runEnv(t, env, args...)
		if r.code != 0 {
			t.Fatalf("streamctl %q: %v", args, r)
		}
		return r.stdout
	}
	ok("topic", "create", "tls", "--partitions", "1")
	ok("produce", "tls", "--value", "over https")
	if out := ok("consume", "tls", "--partition", "0", "--offset", "0", "--limit", "1"); !strings.Contains(out, "over https") {
		t.Fatalf("consumed:\n%s", out)
	}
	// The Kafka commands over TLS.
	var perf map[string]any
	if err := json.Unmarshal([]byte(ok("-o", "json", "perf", "produce", "--brokers", p.KafkaAddr, "--topic", "tls-perf", "--num-records", "50")), &perf); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(perf["records"]) != "50" {
		t.Fatalf("perf produce: %v", perf)
	}
	ok("transaction", "list", "--brokers", p.KafkaAddr)

	// The same with flags instead of the environment.
	flags := []string{"--api-url", p.URL, "--ca-file", caFile, "--cert-file", clientCert, "--key-file", clientKey}
	if r := runEnv(t, nil, append(flags, "topic", "list")...); r.code != 0 || !strings.Contains(r.stdout, "tls") {
		t.Fatalf("topic list with flags: %v", r)
	}

	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"no CA", map[string]string{"STREAMHOUSE_API_URL": p.URL}, []string{"topic", "list"}, "--ca-file or STREAMHOUSE_CA_FILE"},
		{"no client certificate", map[string]string{"STREAMHOUSE_API_URL": p.URL, "STREAMHOUSE_CA_FILE": caFile}, []string{"topic", "list"}, "the server requires a client certificate"},
		{"no client certificate, Kafka", map[string]string{"STREAMHOUSE_API_URL": p.URL, "STREAMHOUSE_CA_FILE": caFile},
			[]string{"transaction", "list", "--brokers", p.KafkaAddr, "--timeout", "5s"}, "the server requires a client certificate"},
		{"missing CA file", map[string]string{"STREAMHOUSE_API_URL": p.URL}, []string{"--ca-file", filepath.Join(dir, "nope.pem"), "topic", "list"}, "nope.pem"},
		{"certificate without key", map[string]string{"STREAMHOUSE_API_URL": p.URL, "STREAMHOUSE_CA_FILE": caFile, "STREAMHOUSE_CERT_FILE": clientCert},
			[]string{"topic", "list"}, "--cert-file and --key-file go together"},
	} {
		r := runEnv(t, tc.env, tc.args...)
		if r.code == 0 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%s: want a failure saying %q, got %v", tc.name, tc.want, r)
		}
	}
}

// TLS files make the default REST URL, and the one derived from --server,
// https://; a URL given stays as given.
func TestTLSDefaultsToHTTPS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := testcerts.NewCA(t, "ca")
	caFile := ca.Write(t, dir, "ca")
	for _, tc := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{map[string]string{"STREAMHOUSE_CA_FILE": caFile}, nil, "https://localhost:8080"},
		{nil, []string{"--ca-file", caFile}, "https://localhost:8080"},
		{nil, []string{"--ca-file", caFile, "-s", "broker1:50051"}, "https://broker1:8080"},
		{nil, []string{"--ca-file", caFile, "--api-url", "http://example:8080"}, "http://example:8080"},
		{nil, nil, "http://localhost:8080"},
	} {
		s := &session{getenv: envOf(tc.env), transport: newTransport(), defaults: settings{output: "table", apiURL: defaultAPIURL, grpcAddr: defaultGRPCAddr}}
		if v := tc.env["STREAMHOUSE_CA_FILE"]; v != "" {
			s.defaults.tls.caFile = v
		}
		root, inv := s.newRoot()
		if err := root.ParseFlags(tc.args); err != nil {
			t.Fatal(err)
		}
		if err := inv.validate(); err != nil {
			t.Fatalf("%v %v: %v", tc.env, tc.args, err)
		}
		if inv.set.apiURL != tc.want {
			t.Errorf("%v %v: REST URL %s, want %s", tc.env, tc.args, inv.set.apiURL, tc.want)
		}
	}
}
