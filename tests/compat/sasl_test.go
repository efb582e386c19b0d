package compat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	xdgscram "github.com/xdg-go/scram"

	"github.com/streamhouse/streamhouse/internal/e2e"
	"github.com/streamhouse/streamhouse/internal/testutil/testcerts"
)

// SASL_PLAINTEXT and SASL_SSL with every Kafka client the tests drive:
// kcat and confluent-kafka-python (librdkafka), franz-go and sarama. Each
// logs in with PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 and reads back what
// it produced; a wrong password is refused with SASL_AUTHENTICATION_FAILED;
// a client without SASL is disconnected (the server counts the closes).

const (
	saslUser     = "alice"
	saslPassword = "alice-Secret-1"
)

var saslMechanisms = []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"}

// startAuthServer runs streamhouse with logins required and alice as a
// bootstrap user; Call logs in as her. With useTLS every listener serves
// TLS with a certificate for the loopback addresses (SASL_SSL on Kafka),
// and s.ca / s.caFile are what clients trust.
func startAuthServer(t *testing.T, be e2e.Backend, useTLS bool, extra ...string) *server {
	t.Helper()
	dir := t.TempDir()
	env := append(be.Env(t, dir), "KAFKA_ADDR="+freeAddr(t), "AUTH_ENABLED=true",
		"AUTH_BOOTSTRAP_USERS=admin:admin-pw,"+saslUser+":"+saslPassword,
		// ACLs are enforced with AUTH_ENABLED; the login tests are not
		// about them, so alice bypasses them.
		"SUPER_USERS="+saslUser)
	s := &server{t: t, dir: dir}
	if useTLS {
		s.ca = testcerts.NewCA(t, "compat SASL_SSL CA")
		s.caFile = s.ca.Write(t, dir, "ca")
		certFile, keyFile := s.ca.Server(t).Write(t, dir, "server")
		env = append(env, "TLS_CERT_FILE="+certFile, "TLS_KEY_FILE="+keyFile)
	}
	s.env = append(env, extra...)
	s.Proc = e2e.Start(t, dir, s.env)
	if useTLS {
		s.Client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: s.ca.ClientTLS(nil)}}
	}
	s.User, s.Password = saslUser, saslPassword
	return s
}

// login is how one client reaches an auth server's Kafka listener: SASL
// with mech as user, over TLS (SASL_SSL) when ca is set, else in
// plaintext (SASL_PLAINTEXT). Its methods render it for each client.
type login struct {
	addr, mech, user, password string
	ca                         *testcerts.CA
	caFile                     string
}

func (s *server) login(mech, user, password string) login {
	return login{addr: s.KafkaAddr, mech: mech, user: user, password: password, ca: s.ca, caFile: s.caFile}
}

func (l login) protocol() string {
	if l.ca != nil {
		return "SASL_SSL"
	}
	return "SASL_PLAINTEXT"
}

// kcat is kcat's (librdkafka's) arguments for l, then args.
func (l login) kcat(args ...string) []string {
	out := []string{"-b", l.addr, "-X", "security.protocol=" + l.protocol(), "-X", "sasl.mechanisms=" + l.mech,
		"-X", "sasl.username=" + l.user, "-X", "sasl.password=" + l.password}
	if l.ca != nil {
		out = append(out, "-X", "ssl.ca.location="+l.caFile)
	}
	return append(out, args...)
}

// franz is franz-go's options for l, then opts.
func (l login) franz(opts ...kgo.Opt) []kgo.Opt {
	out := []kgo.Opt{kgo.SeedBrokers(l.addr), kgo.SASL(franzMechanism(l.mech, l.user, l.password))}
	if l.ca != nil {
		out = append(out, kgo.DialTLSConfig(l.ca.ClientTLS(nil)))
	}
	return append(out, opts...)
}

// franzClient is a franz-go client for l, closed when the test ends.
func (l login) franzClient(t *testing.T, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(l.franz(opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// sarama is sarama's configuration for l, with SaslHandshake at handshake.
func (l login) sarama(handshake int16) *sarama.Config {
	c := saramaSASL(l.mech, l.user, l.password, handshake)
	if l.ca != nil {
		c.Net.TLS.Enable = true
		c.Net.TLS.Config = l.ca.ClientTLS(nil)
	}
	return c
}

// py is python/sasl.py's arguments for mode with l, then args.
func (l login) py(mode string, args ...string) []string {
	var out []string
	if l.ca != nil {
		out = []string{"--ca", l.caFile}
	}
	return append(append(out, mode, l.addr, l.mech, l.user, l.password), args...)
}

// metric reads one sample of the server's /metrics (open without a
// login): the sum of the series of name whose labels include labels.
func (s *server) metric(name, labels string) float64 {
	s.t.Helper()
	hc := s.Client
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Get(s.URL + "/metrics")
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		s.t.Fatalf("/metrics: %d", resp.StatusCode)
	}
	re := regexp.MustCompile(`(?m)^` + name + `\{([^}]*)\} (\S+)$`)
	var sum float64
	for _, m := range re.FindAllStringSubmatch(string(body), -1) {
		if strings.Contains(m[1], labels) {
			v, _ := strconv.ParseFloat(m[2], 64)
			sum += v
		}
	}
	return sum
}

func franzMechanism(mech, user, password string) sasl.Mechanism {
	switch mech {
	case "PLAIN":
		return plain.Auth{User: user, Pass: password}.AsMechanism()
	case "SCRAM-SHA-512":
		return scram.Auth{User: user, Pass: password}.AsSha512Mechanism()
	}
	return scram.Auth{User: user, Pass: password}.AsSha256Mechanism()
}

// xdgSCRAM is sarama's SCRAM client, from github.com/xdg-go/scram: an
// implementation independent of the server's and of franz-go's.
type xdgSCRAM struct {
	hash xdgscram.HashGeneratorFcn
	conv *xdgscram.ClientConversation
}

func (x *xdgSCRAM) Begin(user, password, authz string) error {
	c, err := x.hash.NewClient(user, password, authz)
	if err != nil {
		return err
	}
	x.conv = c.NewConversation()
	return nil
}
func (x *xdgSCRAM) Step(challenge string) (string, error) { return x.conv.Step(challenge) }
func (x *xdgSCRAM) Done() bool                            { return x.conv.Done() }

func saramaSASL(mech, user, password string, handshake int16) *sarama.Config {
	c := saramaConfig()
	c.Metadata.Retry.Max = 1
	c.Net.SASL.Enable = true
	c.Net.SASL.Handshake = true
	c.Net.SASL.Version = handshake
	// sarama sends raw SASL tokens (SaslHandshake v0) only without an
	// ApiVersions request first.
	c.ApiVersionsRequest = handshake != sarama.SASLHandshakeV0
	c.Net.SASL.User, c.Net.SASL.Password = user, password
	switch mech {
	case "PLAIN":
		c.Net.SASL.Mechanism = sarama.SASLTypePlaintext
	case "SCRAM-SHA-256":
		c.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA256
		c.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &xdgSCRAM{hash: xdgscram.SHA256} }
	case "SCRAM-SHA-512":
		c.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA512
		c.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &xdgSCRAM{hash: xdgscram.SHA512} }
	}
	return c
}

// saslSummary is what python/sasl.py prints.
type saslSummary struct {
	Produced       []string       `json:"produced"`
	Consumed       []string       `json:"consumed"`
	DeliveryErrors []confluentErr `json:"delivery_errors"`
	Undelivered    int            `json:"undelivered"`
	MetadataError  *confluentErr  `json:"metadata_error"`
	TxnError       *confluentErr  `json:"txn_error"`
	Errors         []confluentErr `json:"errors"`
	Throttles      []struct {
		Broker string `json:"broker"`
		Ms     int    `json:"ms"`
	} `json:"throttles"`
}

func runSASLPy(t *testing.T, py string, args ...string) saslSummary {
	t.Helper()
	script, err := filepath.Abs(filepath.Join("python", "sasl.py"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, append([]string{script}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.Output()
	var sum saslSummary
	if jerr := json.Unmarshal(out, &sum); jerr != nil || err != nil {
		t.Fatalf("sasl.py %s: %v %v\n%s\nstderr:\n%s", strings.Join(args, " "), err, jerr, out, tail(stderr.String(), 50))
	}
	return sum
}

func hasError(errs []confluentErr, name, contains string) bool {
	return slices.ContainsFunc(errs, func(e confluentErr) bool { return e.Name == name && strings.Contains(e.Str, contains) })
}

// TestSASLClients runs each mechanism with each client over
// SASL_PLAINTEXT and over SASL_SSL (TLS on the listener), one server per
// backend and protocol; then wrong passwords, and clients without SASL.
func TestSASLClients(t *testing.T) {
	t.Parallel()
	needTool(t, "kcat")
	py := confluentPython(t)
	for _, be := range e2e.Backends() {
		for _, useTLS := range []bool{false, true} {
			t.Run(be.Name+"/"+map[bool]string{false: "SASL_PLAINTEXT", true: "SASL_SSL"}[useTLS], func(t *testing.T) {
				t.Parallel()
				s := startAuthServer(t, be, useTLS)
				if useTLS {
					t.Run("metadata", func(t *testing.T) { advertisesListener(t, s) })
				}
				t.Run("logins", func(t *testing.T) {
					for _, mech := range saslMechanisms {
						t.Run(mech, func(t *testing.T) {
							t.Parallel()
							saslRoundTrips(t, s, py, s.login(mech, saslUser, saslPassword))
						})
					}
				})
				// librdkafka's refusals take its timeouts (about a minute):
				// once, in plaintext; franz-go and sarama over both.
				t.Run("wrong password", func(t *testing.T) { wrongPasswords(t, s, py, !useTLS) })
				if !useTLS {
					t.Run("no SASL", func(t *testing.T) { noSASL(t, s, py) })
				}
			})
		}
	}
}

// advertisesListener: Kafka Metadata, asked over SASL_SSL by franz-go and
// by librdkafka, names exactly the listener they asked (the address the
// certificate covers), so clients go on connecting there with SASL_SSL.
func advertisesListener(t *testing.T, s *server) {
	l := s.login("SCRAM-SHA-256", saslUser, saslPassword)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, l.franzClient(t))
	if err != nil {
		t.Fatalf("franz-go Metadata over SASL_SSL: %v", err)
	}
	if len(resp.Brokers) != 1 || net.JoinHostPort(resp.Brokers[0].Host, fmt.Sprint(resp.Brokers[0].Port)) != s.KafkaAddr {
		t.Fatalf("Metadata advertises %+v, want the listener %s", resp.Brokers, s.KafkaAddr)
	}
	out := run(t, 60*time.Second, "", "kcat", l.kcat("-L", "-J", "-m", "30")...)
	var md struct {
		Brokers []struct {
			Name string `json:"name"`
		} `json:"brokers"`
	}
	if err := json.Unmarshal(out, &md); err != nil || len(md.Brokers) != 1 || md.Brokers[0].Name != s.KafkaAddr {
		t.Fatalf("kcat -L over SASL_SSL: %v\n%s\nwant the one broker %s", err, out, s.KafkaAddr)
	}
}

// saslRoundTrips: each client logs in as l and reads back what it produced
// to a topic of its own.
func saslRoundTrips(t *testing.T, s *server, py string, l login) {
	lower := strings.ToLower(l.mech)
	t.Run("kcat", func(t *testing.T) {
		topic := "kcat-" + lower
		s.createTopic(topic, 1)
		recs := []sent{{str("k1"), str("v1-" + l.mech)}, {nil, str("v2")}, {str("k3"), str("v3")}}
		run(t, 60*time.Second, kcatInput(recs), "kcat", l.kcat("-P", "-t", topic, "-K", "\t", "-Z")...)
		out := run(t, 60*time.Second, "", "kcat", l.kcat("-C", "-t", topic, "-o", "beginning", "-e", "-J", "-q")...)
		if n := strings.Count(string(out), `"payload"`); n != 3 || !strings.Contains(string(out), "v1-"+l.mech) {
			t.Fatalf("kcat read back %d records:\n%s", n, out)
		}
	})
	t.Run("confluent-kafka", func(t *testing.T) {
		topic := "confluent-" + lower
		s.createTopic(topic, 1)
		sum := runSASLPy(t, py, l.py("roundtrip", topic)...)
		if sum.Undelivered != 0 || len(sum.DeliveryErrors) != 0 || !slices.Equal(sum.Consumed, sum.Produced) || len(sum.Produced) != 3 {
			t.Fatalf("round trip: %+v", sum)
		}
	})
	t.Run("franz-go", func(t *testing.T) {
		topic := "franz-" + lower
		s.createTopic(topic, 1)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		p := l.franzClient(t, kgo.DefaultProduceTopic(topic))
		for i := range 3 {
			if err := p.ProduceSync(ctx, &kgo.Record{Value: []byte(fmt.Sprint(i))}).FirstErr(); err != nil {
				t.Fatalf("produce: %v", err)
			}
		}
		c := l.franzClient(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		var got []string
		for len(got) < 3 && ctx.Err() == nil {
			fs := c.PollFetches(ctx)
			fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
		}
		if strings.Join(got, ",") != "0,1,2" {
			t.Fatalf("read back %v", got)
		}
	})
	t.Run("sarama", func(t *testing.T) {
		// SaslHandshake v1 (SaslAuthenticate) and v0 (raw tokens).
		for _, hs := range []int16{sarama.SASLHandshakeV1, sarama.SASLHandshakeV0} {
			topic := fmt.Sprintf("sarama-%s-v%d", lower, hs)
			s.createTopic(topic, 1)
			client := saramaClient(t, l.addr, l.sarama(hs))
			prod, err := sarama.NewSyncProducerFromClient(client)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 3 {
				if _, _, err := prod.SendMessage(&sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder(fmt.Sprint(i))}); err != nil {
					t.Fatalf("handshake v%d: produce: %v", hs, err)
				}
			}
			_ = prod.Close()
			msgs := consumePartition(t, client, topic, 0, sarama.OffsetOldest, 3, 30*time.Second)
			if string(msgs[2].Value) != "2" {
				t.Fatalf("handshake v%d: read %q", hs, msgs[2].Value)
			}
		}
	})
}

// wrongPasswords: each client is refused in its own terms (with
// librdkafka, kcat and confluent-kafka too). One mechanism per client:
// failed logins from one address are answered more and more slowly (up to
// 5 s each), and librdkafka tries again on its own.
func wrongPasswords(t *testing.T, s *server, py string, librdkafka bool) {
	failures := map[string]float64{"SCRAM-SHA-512": 1, "PLAIN": 1} // at least, by mechanism
	if librdkafka {
		out, err := runErr(60*time.Second, "", "kcat", s.login("SCRAM-SHA-512", saslUser, "wrong").kcat("-L", "-m", "30")...)
		if err == nil || !strings.Contains(err.Error(), "Authentication failed") {
			t.Fatalf("kcat with a wrong password: %v\n%s", err, out)
		}
		sum := runSASLPy(t, py, s.login("SCRAM-SHA-256", saslUser, "wrong").py("refused")...)
		if sum.MetadataError == nil || !hasError(sum.Errors, "_AUTHENTICATION", "invalid credentials with SASL mechanism SCRAM-SHA-256") {
			t.Fatalf("confluent-kafka with a wrong password: %+v", sum)
		}
		failures["SCRAM-SHA-512"], failures["SCRAM-SHA-256"] = 2, 1
	}
	cl, err := kgo.NewClient(s.login("PLAIN", "nobody", saslPassword).franz(kgo.RequestRetries(0))...)
	if err != nil {
		t.Fatal(err)
	}
	_, err = kmsg.NewPtrMetadataRequest().RequestWith(context.Background(), cl)
	cl.Close()
	if !errors.Is(err, kerr.SaslAuthenticationFailed) {
		t.Fatalf("franz-go as an unknown user: %v", err)
	}
	_, err = sarama.NewClient([]string{s.KafkaAddr}, s.login("SCRAM-SHA-512", saslUser, "wrong").sarama(sarama.SASLHandshakeV1))
	if !errors.Is(err, sarama.ErrSASLAuthenticationFailed) {
		t.Fatalf("sarama with a wrong password: %v", err)
	}
	for mech, least := range failures {
		if n := s.metric("streamhouse_auth_failures_total", `listener="kafka",mechanism="`+mech+`"`); n < least {
			t.Fatalf("%s failures counted: %v", mech, n)
		}
	}
}

// noSASL: a client without SASL is disconnected by the server.
func noSASL(t *testing.T, s *server, py string) {
	addr := s.KafkaAddr
	before := s.metric("streamhouse_kafka_connections_dropped_total", `reason="unauthenticated"`)
	if out, err := runErr(30*time.Second, "", "kcat", "-b", addr, "-L", "-m", "5"); err == nil {
		t.Fatalf("kcat without SASL listed metadata:\n%s", out)
	}
	if sum := runSASLPy(t, py, "nosasl", addr); sum.MetadataError == nil {
		t.Fatalf("confluent-kafka without SASL got metadata: %+v", sum)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RequestRetries(0))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	_, err = kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl)
	cancel()
	cl.Close()
	if err == nil {
		t.Fatal("franz-go without SASL got metadata")
	}
	cfg := saramaConfig()
	cfg.Metadata.Retry.Max = 1
	if _, err := sarama.NewClient([]string{addr}, cfg); err == nil {
		t.Fatal("sarama without SASL got metadata")
	}
	// The server closed them (not a client timeout).
	if after := s.metric("streamhouse_kafka_connections_dropped_total", `reason="unauthenticated"`); after < before+4 {
		t.Fatalf("unauthenticated connections closed: %v, then %v", before, after)
	}
}

// KIP-368 with real clients: franz-go and sarama re-authenticate on their
// connections and go on producing; librdkafka 2.0 (Debian's kcat) does not
// re-authenticate, so its connection is cut when its login expires, and
// it reconnects.
func TestSASLReauthentication(t *testing.T) {
	t.Parallel()
	needTool(t, "kcat")
	s := startAuthServer(t, e2e.Local, false, "AUTH_SESSION_LIFETIME_MS=2500")
	addr := s.KafkaAddr
	s.createTopic("reauth", 1)
	logins := func() float64 { return s.metric("streamhouse_auth_successes_total", `listener="kafka"`) }
	expired := func() float64 {
		return s.metric("streamhouse_kafka_connections_dropped_total", `reason="session_expired"`)
	}

	cl := s.login("SCRAM-SHA-256", saslUser, saslPassword).franzClient(t, kgo.DefaultProduceTopic("reauth"))
	sc := saramaClient(t, addr, s.login("SCRAM-SHA-512", saslUser, saslPassword).sarama(sarama.SASLHandshakeV1))
	sp, err := sarama.NewSyncProducerFromClient(sc)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	produce := func() {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("franz")}).FirstErr(); err != nil {
			t.Fatalf("franz-go produce across re-authentications: %v", err)
		}
		if _, _, err := sp.SendMessage(&sarama.ProducerMessage{Topic: "reauth", Value: sarama.StringEncoder("sarama")}); err != nil {
			t.Fatalf("sarama produce across re-authentications: %v", err)
		}
	}
	produce()
	start, cut := logins(), expired()
	// Three lifetimes' worth of produces (each client's produce connection
	// logs in again at least twice), none of them refused or cut.
	for deadline := time.Now().Add(7500 * time.Millisecond); time.Now().Before(deadline); {
		produce()
		time.Sleep(100 * time.Millisecond)
	}
	if n := logins(); n < start+4 {
		t.Fatalf("logins %v -> %v: the clients did not re-authenticate", start, n)
	}
	if n := expired(); n != cut {
		t.Fatalf("re-authenticating clients were cut: %v -> %v", cut, n)
	}

	// librdkafka 2.0 does not re-authenticate: a kcat consumer tailing the
	// topic for three lifetimes is cut at expiry, reconnects (logging in
	// again) and reads.
	out, _ := runErr(8*time.Second, "", "kcat", s.login("SCRAM-SHA-256", saslUser, saslPassword).kcat(
		"-C", "-t", "reauth", "-o", "beginning", "-q")...)
	if n := expired(); n <= cut {
		t.Fatalf("librdkafka's connection was not cut at expiry (%v cuts)", n)
	}
	if !strings.Contains(string(out), "sarama") {
		t.Fatalf("kcat read nothing across the cut:\n%s", out)
	}
}
