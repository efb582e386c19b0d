package kafka

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	shtestutil "github.com/streamhouse/streamhouse/internal/testutil"
	"github.com/streamhouse/streamhouse/internal/testutil/testcerts"
	"github.com/streamhouse/streamhouse/internal/tlsconf"
)

// A TLS listener with client certificates required: a client with a good
// certificate produces and consumes, and its connection holds the verified
// certificate (the principal); a client without one, with one of another
// CA, or speaking plaintext is dropped at the handshake, counted, and the
// listener goes on serving.
func TestKafkaMutualTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := testcerts.NewCA(t, "kafka test CA")
	certFile, keyFile := ca.Server(t).Write(t, dir, "server")
	r, err := tlsconf.New(tlsconf.Config{CertFile: certFile, KeyFile: keyFile, ClientCAFile: ca.Write(t, dir, "ca"),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, testOptions{kafka: func(c *Config) {
		c.TLS = r.ServerConfig()
	}})
	dropped := func() float64 {
		return testutil.ToFloat64(s.srv.metrics.requestsRejected.WithLabelValues("tls_handshake"))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Refused clients first: each costs one dropped handshake.
	other := testcerts.NewCA(t, "other CA")
	for i, opt := range []kgo.Opt{
		kgo.DialTLSConfig(ca.ClientTLS(nil)),
		kgo.DialTLSConfig(ca.ClientTLS(other.Client(t, "mallory"))),
	} {
		cl := s.client(opt, kgo.RequestRetries(0), kgo.RetryTimeout(time.Second))
		if err := cl.Ping(ctx); err == nil {
			t.Fatalf("client %d was served", i)
		}
	}
	shtestutil.WaitFor(t, "two dropped handshakes", func() bool { return dropped() >= 2 })

	// Plaintext to the TLS port: the connection is closed, nothing else.
	before := dropped()
	nc, err := net.DialTimeout("tcp", s.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	// An ApiVersions v0 request, as a plaintext Kafka client sends first.
	if _, err := nc.Write([]byte{0, 0, 0, 10, 0, 18, 0, 0, 0, 0, 0, 1, 0, 0}); err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(nc); err != nil || len(b) > 7 {
		// At most a TLS alert (7 bytes) comes back, then EOF.
		t.Fatalf("plaintext client read %q, %v; want the connection closed", b, err)
	}
	nc.Close()
	shtestutil.WaitFor(t, "the plaintext handshake counted", func() bool { return dropped() > before })

	s.mustCreate(t, "secure", 1, nil)
	alice := s.client(kgo.DialTLSConfig(ca.ClientTLS(ca.Client(t, "alice"))),
		kgo.ConsumeTopics("secure"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err := alice.ProduceSync(ctx, &kgo.Record{Topic: "secure", Value: []byte("over TLS")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	fs := alice.PollFetches(ctx)
	if err := fs.Err(); err != nil {
		t.Fatal(err)
	}
	if recs := fs.Records(); len(recs) != 1 || string(recs[0].Value) != "over TLS" {
		t.Fatalf("consumed %v", recs)
	}
	var cns []string
	s.srv.mu.Lock()
	for c := range s.srv.conns {
		if cn, ok := tlsconf.PeerCommonName(c.tlsState); ok {
			cns = append(cns, cn)
		}
	}
	s.srv.mu.Unlock()
	if len(cns) == 0 {
		t.Fatal("no connection holds a verified client certificate")
	}
	for _, cn := range cns {
		if cn != "alice" {
			t.Fatalf("a connection's principal is %q, want alice", cn)
		}
	}
}
