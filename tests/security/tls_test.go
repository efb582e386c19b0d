package security

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/streamhouse/streamhouse/internal/e2e"
	"github.com/streamhouse/streamhouse/internal/testutil"
	"github.com/streamhouse/streamhouse/internal/testutil/testcerts"
	pb "github.com/streamhouse/streamhouse/proto/streamhousepb"
)

// server is streamhouse with TLS on, its CA and the files it serves.
type server struct {
	*e2e.Proc
	ca                *testcerts.CA
	dir               string
	certFile, keyFile string
	alice             *tls.Config // client config with a good client certificate
}

// start runs streamhouse with a server certificate from a fresh CA, client
// certificates required when mutual, and TLS files checked every 100 ms.
func start(t *testing.T, mutual bool) *server {
	t.Helper()
	dir := t.TempDir()
	s := &server{ca: testcerts.NewCA(t, "security CA"), dir: dir}
	s.certFile, s.keyFile = s.ca.Server(t).Write(t, dir, "server")
	env := append(e2e.Local.Env(t, dir), "TLS_CERT_FILE="+s.certFile, "TLS_KEY_FILE="+s.keyFile, "TLS_RELOAD_INTERVAL_MS=100")
	if mutual {
		env = append(env, "TLS_CLIENT_CA_FILE="+s.ca.Write(t, dir, "ca"))
	}
	s.Proc = e2e.Start(t, dir, env)
	s.alice = s.ca.ClientTLS(s.ca.Client(t, "alice"))
	s.Proc.Client = httpsClient(s.alice)
	return s
}

func httpsClient(cfg *tls.Config) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true}}
}

// get does one GET with hc and returns the status and body.
func get(hc *http.Client, url string) (int, string, error) {
	resp, err := hc.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// kafkaPing sends ApiVersions over a fresh client with cfg (nil:
// plaintext).
func kafkaPing(addr string, cfg *tls.Config) error {
	opts := []kgo.Opt{kgo.SeedBrokers(addr), kgo.RequestRetries(0), kgo.RetryTimeout(time.Second), kgo.DialTimeout(10 * time.Second)}
	if cfg != nil {
		opts = append(opts, kgo.DialTLSConfig(cfg))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return cl.Ping(ctx)
}

// grpcCheck calls the gRPC health service with creds.
func grpcCheck(addr string, creds credentials.TransportCredentials) error {
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return err
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	_, err = healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
	return err
}

// Every listener serves TLS: REST (with /health, /ready and /metrics) over
// HTTPS and HTTP/2, gRPC over TLS, Kafka over SSL; a plaintext client of
// each is refused cleanly (HTTP 400, gRPC Unavailable, the Kafka
// connection closed) and the server goes on serving.
func TestTLSListeners(t *testing.T) {
	t.Parallel()
	s := start(t, false)
	client := s.ca.ClientTLS(nil)
	hc := httpsClient(client)
	for _, path := range []string{"/health", "/ready", "/metrics", "/api/v1/topics"} {
		code, body, err := get(hc, s.URL+path)
		if err != nil || code != http.StatusOK {
			t.Fatalf("GET %s over HTTPS: %d %v %.200s", path, code, err, body)
		}
		if path == "/metrics" && !strings.Contains(body, "streamhouse_tls_certificate_expiry_seconds") {
			t.Fatal("/metrics lacks streamhouse_tls_certificate_expiry_seconds")
		}
	}
	resp, err := hc.Get(s.URL + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.TLS == nil || resp.TLS.Version != tls.VersionTLS13 {
		t.Fatalf("HTTPS answered over %s, TLS %+v; want HTTP/2 over TLS 1.3", resp.Proto, resp.TLS)
	}
	// The REST API works end to end over HTTPS.
	if code := s.Call("POST", "/api/v1/topics", map[string]any{"name": "secure", "partitions": 1}, nil); code != 201 {
		t.Fatalf("create topic over HTTPS: %d", code)
	}
	if code := s.Call("POST", "/api/v1/produce", map[string]any{"topic": "secure", "partition": 0, "value": "hello"}, nil); code != 200 {
		t.Fatalf("produce over HTTPS: %d", code)
	}
	// gRPC over TLS: the StreamHouse service itself.
	cc, err := grpc.NewClient(s.GRPCAddr, grpc.WithTransportCredentials(credentials.NewTLS(client)))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cons, err := pb.NewStreamHouseClient(cc).Consume(ctx, &pb.ConsumeRequest{Topic: "secure", Partition: 0, Offset: 0, MaxRecords: 10})
	if err != nil {
		t.Fatalf("gRPC Consume over TLS: %v", err)
	}
	if len(cons.Records) != 1 || string(cons.Records[0].Value) != "hello" {
		t.Fatalf("gRPC Consume over TLS read %v", cons.Records)
	}
	if err := kafkaPing(s.KafkaAddr, client); err != nil {
		t.Fatalf("Kafka over SSL: %v", err)
	}

	// Plaintext clients.
	code, body, err := get(&http.Client{Timeout: 10 * time.Second}, "http://"+strings.TrimPrefix(s.URL, "https://")+"/health")
	if err != nil || code != http.StatusBadRequest || !strings.Contains(body, "HTTPS") {
		t.Errorf("plain HTTP to the HTTPS port: %d %q %v; want 400", code, body, err)
	}
	if err := grpcCheck(s.GRPCAddr, insecure.NewCredentials()); status.Code(err) != codes.Unavailable {
		t.Errorf("plaintext gRPC: %v; want Unavailable", err)
	}
	if err := kafkaPing(s.KafkaAddr, nil); err == nil {
		t.Error("plaintext Kafka client served")
	}
	nc, err := net.DialTimeout("tcp", s.KafkaAddr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = nc.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := nc.Write([]byte{0, 0, 0, 10, 0, 18, 0, 0, 0, 0, 0, 1, 0, 0}); err != nil { // ApiVersions v0
		t.Fatal(err)
	}
	if b, err := io.ReadAll(nc); err != nil || len(b) > 7 { // at most a TLS alert, then EOF
		t.Errorf("plaintext Kafka request read %q, %v; want the connection closed", b, err)
	}
	nc.Close()
	// Still serving on every listener.
	if code, _, err := get(hc, s.URL+"/health"); err != nil || code != 200 {
		t.Fatalf("after the plaintext clients: /health %d %v", code, err)
	}
	if err := grpcCheck(s.GRPCAddr, credentials.NewTLS(client)); err != nil {
		t.Fatal(err)
	}
	if err := kafkaPing(s.KafkaAddr, client); err != nil {
		t.Fatal(err)
	}
	if logs := s.Logs(); strings.Contains(logs, "panic") {
		t.Fatalf("the server logged a panic:\n%s", logs)
	}
}

// With TLS_CLIENT_CA_FILE every listener, /health and /metrics included,
// refuses a client without a certificate or with one from another CA at
// the handshake, and serves one with a certificate of the CA.
func TestMutualTLSOnEveryListener(t *testing.T) {
	t.Parallel()
	s := start(t, true)
	other := testcerts.NewCA(t, "other CA")
	refused := map[string]*tls.Config{
		"no certificate":               s.ca.ClientTLS(nil),
		"certificate of another CA":    s.ca.ClientTLS(other.Client(t, "mallory")),
		"server certificate elsewhere": s.ca.ClientTLS(other.Server(t)),
	}
	for name, cfg := range refused {
		for _, path := range []string{"/health", "/metrics", "/api/v1/topics"} {
			if code, _, err := get(httpsClient(cfg), s.URL+path); err == nil {
				t.Errorf("%s: HTTPS %s answered %d", name, path, code)
			}
		}
		if err := grpcCheck(s.GRPCAddr, credentials.NewTLS(cfg)); status.Code(err) != codes.Unavailable {
			t.Errorf("%s: gRPC: %v; want Unavailable", name, err)
		}
		if err := kafkaPing(s.KafkaAddr, cfg); err == nil {
			t.Errorf("%s: Kafka served", name)
		}
	}
	for _, path := range []string{"/health", "/metrics", "/api/v1/topics"} {
		if code, _, err := get(httpsClient(s.alice), s.URL+path); err != nil || code != 200 {
			t.Errorf("alice: HTTPS %s: %d %v", path, code, err)
		}
	}
	if err := grpcCheck(s.GRPCAddr, credentials.NewTLS(s.alice)); err != nil {
		t.Errorf("alice: gRPC: %v", err)
	}
	if err := kafkaPing(s.KafkaAddr, s.alice); err != nil {
		t.Errorf("alice: Kafka: %v", err)
	}
	if n := metric(t, s, `streamhouse_kafka_connections_dropped_total{reason="tls_handshake"}`); n < float64(len(refused)) {
		t.Errorf("Kafka dropped handshakes = %v, want at least %d", n, len(refused))
	}
}

// serials returns the serial number of the certificate each listener
// presents to a new connection.
func serials(t *testing.T, s *server) map[string]string {
	t.Helper()
	out := map[string]string{}
	for name, addr := range map[string]string{"http": strings.TrimPrefix(s.URL, "https://"), "grpc": s.GRPCAddr, "kafka": s.KafkaAddr} {
		d := tls.Dialer{Config: s.alice, NetDialer: &net.Dialer{Timeout: 10 * time.Second}}
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		c, err := d.DialContext(ctx, "tcp", addr)
		cancel()
		if err != nil {
			out[name] = "error: " + err.Error()
			continue
		}
		out[name] = c.(*tls.Conn).ConnectionState().PeerCertificates[0].SerialNumber.String()
		c.Close()
	}
	return out
}

// metric reads one sample from /metrics (name with labels, as exposed);
// NaN when absent.
func metric(t *testing.T, s *server, series string) float64 {
	t.Helper()
	code, body, err := get(s.Client, s.URL+"/metrics")
	if err != nil || code != 200 {
		t.Fatalf("/metrics: %d %v", code, err)
	}
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				t.Fatalf("%s: %v", sc.Text(), err)
			}
			return v
		}
	}
	return math.NaN()
}

// Certificate files replaced by rename are in use for new connections on
// every listener within a bounded time; a corrupt replacement keeps the
// previous certificate serving and counts a reload error; the expiry metric
// follows the certificate in use.
func TestCertificateReload(t *testing.T) {
	t.Parallel()
	s := start(t, true)
	first := serials(t, s)
	for name, serial := range first {
		if strings.HasPrefix(serial, "error") {
			t.Fatalf("%s: %s", name, serial)
		}
	}
	next := s.ca.Issue(t, testcerts.Spec{CommonName: "localhost", Hosts: testcerts.LoopbackHosts, NotAfter: time.Now().Add(72 * time.Hour)})
	testcerts.Replace(t, s.keyFile, next.KeyPEM)
	testcerts.Replace(t, s.certFile, next.CertPEM)
	want := next.Cert.SerialNumber.String()
	if first["kafka"] == want {
		t.Fatal("test bug: same serial")
	}
	// The server checks every 100 ms; the bound is for a loaded machine.
	testutil.WaitFor(t, "every listener to present the new certificate", func() bool {
		got := serials(t, s)
		return got["http"] == want && got["grpc"] == want && got["kafka"] == want
	})
	if v := metric(t, s, "streamhouse_tls_reloads_total"); v != 1 {
		t.Errorf("streamhouse_tls_reloads_total = %v, want 1", v)
	}
	expiry := metric(t, s, `streamhouse_tls_certificate_expiry_seconds{certificate="server"}`)
	if left := time.Until(next.Cert.NotAfter).Seconds(); math.Abs(expiry-left) > 60 {
		t.Errorf("expiry metric %v s, want about %v s (the new certificate's)", expiry, left)
	}

	// A corrupt certificate: kept out, counted, the previous one serves.
	testcerts.Replace(t, s.certFile, []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"))
	testutil.WaitFor(t, "the reload error to be counted", func() bool {
		return metric(t, s, "streamhouse_tls_reload_errors_total") == 1
	})
	got := serials(t, s)
	for name, serial := range got {
		if serial != want {
			t.Errorf("after a corrupt replacement %s presents %s, want %s", name, serial, want)
		}
	}
	if err := kafkaPing(s.KafkaAddr, s.alice); err != nil {
		t.Errorf("Kafka after a corrupt replacement: %v", err)
	}
	if !strings.Contains(s.Logs(), "still serving the previous certificate") {
		t.Error("the reload error was not logged")
	}
}

// Bad TLS settings or files stop the server at start with a message that
// names what is wrong.
func TestTLSStartupErrors(t *testing.T) {
	t.Parallel()
	bin := e2e.Binary(t)
	dir := t.TempDir()
	ca := testcerts.NewCA(t, "ca")
	cert, key := ca.Server(t).Write(t, dir, "server")
	_, otherKey := ca.Server(t).Write(t, dir, "other")
	expired, expiredKey := ca.Issue(t, testcerts.Spec{CommonName: "old", Hosts: testcerts.LoopbackHosts,
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)}).Write(t, dir, "expired")
	missing := filepath.Join(dir, "missing.pem")
	for _, tc := range []struct {
		name string
		env  []string
		code int
		want []string
	}{
		{"key unset", []string{"TLS_CERT_FILE=" + cert}, 2, []string{"TLS_KEY_FILE", "unset while TLS_CERT_FILE is set"}},
		{"cert unset", []string{"TLS_KEY_FILE=" + key}, 2, []string{"TLS_CERT_FILE", "unset while TLS_KEY_FILE is set"}},
		{"client CA without TLS", []string{"TLS_CLIENT_CA_FILE=" + cert}, 2, []string{"TLS_CLIENT_CA_FILE", "TLS is off"}},
		{"missing certificate", []string{"TLS_CERT_FILE=" + missing, "TLS_KEY_FILE=" + key}, 1, []string{"TLS_CERT_FILE", missing, "no such file"}},
		{"key of another certificate", []string{"TLS_CERT_FILE=" + cert, "TLS_KEY_FILE=" + otherKey}, 1, []string{"private key does not match"}},
		{"expired certificate", []string{"TLS_CERT_FILE=" + expired, "TLS_KEY_FILE=" + expiredKey}, 1, []string{expired, "expired at"}},
		{"missing client CA", []string{"TLS_CERT_FILE=" + cert, "TLS_KEY_FILE=" + key, "TLS_CLIENT_CA_FILE=" + missing}, 1, []string{"client CA file " + missing}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sub := t.TempDir()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin)
			cmd.Dir = sub
			cmd.Env = append(os.Environ(), append(e2e.Local.Env(t, sub),
				"HTTP_ADDR=127.0.0.1:0", "GRPC_ADDR=127.0.0.1:0", "KAFKA_ADDR=127.0.0.1:0", "STREAMHOUSE_AGENT_ID=e2e")...)
			cmd.Env = append(cmd.Env, tc.env...)
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != tc.code {
				t.Fatalf("exit %v, want status %d; output:\n%s", err, tc.code, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			if strings.Contains(string(out), "ready to serve") {
				t.Errorf("the server got ready:\n%s", out)
			}
		})
	}
}

// `streamhouse healthcheck` (the image's HEALTHCHECK) asks /ready over
// HTTPS with the agent's own certificate when TLS is on, mutual TLS
// included, and refuses a listener that shows another key.
func TestHealthcheckOverTLS(t *testing.T) {
	t.Parallel()
	s := start(t, true)
	u, err := url.Parse(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	check := func(certFile, keyFile string) (string, error) {
		cmd := exec.Command(e2e.Binary(t), "healthcheck")
		cmd.Env = append(os.Environ(), "HTTP_ADDR="+u.Host, "TLS_CERT_FILE="+certFile, "TLS_KEY_FILE="+keyFile)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := check(s.certFile, s.keyFile); err != nil {
		t.Fatalf("healthcheck of a ready TLS agent: %v: %s", err, out)
	}
	// Another key of the same CA: the probe is not talking to its agent.
	otherCert, otherKey := s.ca.Server(t).Write(t, t.TempDir(), "other")
	if out, err := check(otherCert, otherKey); err == nil || !strings.Contains(out, "not this agent's") {
		t.Fatalf("healthcheck with another key = %v: %s; want a refusal naming the key", err, out)
	}
}

// With mutual TLS and logins, a client certificate authenticates the
// connection, and a SASL login on it then decides the principal (Kafka's
// rule): agents connect to each other that way (their server certificate,
// then their agent user), and a refusal as a "re-authentication" cut every
// forwarded produce and transaction marker.
func TestMutualTLSThenSASL(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := testcerts.NewCA(t, "mtls+sasl CA")
	certFile, keyFile := ca.Server(t).Write(t, dir, "server")
	env := append(e2e.Local.Env(t, dir), "TLS_CERT_FILE="+certFile, "TLS_KEY_FILE="+keyFile,
		"TLS_CLIENT_CA_FILE="+ca.Write(t, dir, "ca"), "AUTH_ENABLED=true",
		"AUTH_BOOTSTRAP_USERS=alice:alice-pw", "SUPER_USERS=alice")
	p := e2e.Start(t, dir, env)
	cl, err := kgo.NewClient(kgo.SeedBrokers(p.KafkaAddr), kgo.DialTLSConfig(ca.ClientTLS(ca.Client(t, "broker1.example.com"))),
		kgo.SASL(scram.Auth{User: "alice", Pass: "alice-pw"}.AsSha512Mechanism()), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Auto-creating a topic needs CREATE: alice (a super user) has it,
	// User:broker1.example.com has nothing.
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "mtls-sasl", Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatalf("produce as alice over mutual TLS: %v", err)
	}
}
