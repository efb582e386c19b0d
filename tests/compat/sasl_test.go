package compat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
)

// SASL_PLAINTEXT with every Kafka client the tests drive: kcat and
// confluent-kafka-python (librdkafka), franz-go and sarama. Each logs in
// with PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 and reads back what it
// produced; a wrong password is refused with SASL_AUTHENTICATION_FAILED;
// a client without SASL is disconnected (the server counts the closes).

const (
	saslUser     = "alice"
	saslPassword = "alice-Secret-1"
)

var saslMechanisms = []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"}

// startAuthServer runs streamhouse with logins required and alice as a
// bootstrap user; Call logs in as her.
func startAuthServer(t *testing.T, be e2e.Backend, extra ...string) *server {
	t.Helper()
	dir := t.TempDir()
	env := append(be.Env(t, dir), "KAFKA_ADDR="+freeAddr(t), "AUTH_ENABLED=true",
		"AUTH_BOOTSTRAP_USERS=admin:admin-pw,"+saslUser+":"+saslPassword,
		// ACLs are enforced with AUTH_ENABLED; these tests are about
		// logins (tests/security covers ACLs), so alice bypasses them.
		"SUPER_USERS="+saslUser)
	env = append(env, extra...)
	s := &server{Proc: e2e.Start(t, dir, env), t: t, dir: dir, env: env}
	s.User, s.Password = saslUser, saslPassword
	return s
}

// metric reads one sample of the server's /metrics (open without a
// login): the sum of the series of name whose labels include labels.
func (s *server) metric(name, labels string) float64 {
	s.t.Helper()
	resp, err := http.Get(s.URL + "/metrics")
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

func kcatSASL(addr, mech, user, password string) []string {
	return []string{"-b", addr, "-X", "security.protocol=SASL_PLAINTEXT", "-X", "sasl.mechanisms=" + mech,
		"-X", "sasl.username=" + user, "-X", "sasl.password=" + password}
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
	DeliveryErrors []string       `json:"delivery_errors"`
	Undelivered    int            `json:"undelivered"`
	MetadataError  *confluentErr  `json:"metadata_error"`
	Errors         []confluentErr `json:"errors"`
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
		t.Fatalf("sasl.py %s: %v %v\n%s\nstderr:\n%s", args[0], err, jerr, out, tail(stderr.String(), 50))
	}
	return sum
}

func hasError(errs []confluentErr, name, contains string) bool {
	return slices.ContainsFunc(errs, func(e confluentErr) bool { return e.Name == name && strings.Contains(e.Str, contains) })
}

func TestSASLClients(t *testing.T) {
	t.Parallel()
	needTool(t, "kcat")
	py := confluentPython(t)
	for _, be := range e2e.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			t.Parallel()
			s := startAuthServer(t, be)
			addr := s.KafkaAddr
			for _, mech := range saslMechanisms {
				t.Run(mech, func(t *testing.T) {
					lower := strings.ToLower(mech)
					t.Run("kcat", func(t *testing.T) {
						topic := "kcat-" + lower
						s.createTopic(topic, 1)
						recs := []sent{{str("k1"), str("v1-" + mech)}, {nil, str("v2")}, {str("k3"), str("v3")}}
						run(t, 60*time.Second, kcatInput(recs), "kcat", append(kcatSASL(addr, mech, saslUser, saslPassword),
							"-P", "-t", topic, "-K", "\t", "-Z")...)
						out := run(t, 60*time.Second, "", "kcat", append(kcatSASL(addr, mech, saslUser, saslPassword),
							"-C", "-t", topic, "-o", "beginning", "-e", "-J", "-q")...)
						if n := strings.Count(string(out), `"payload"`); n != 3 || !strings.Contains(string(out), "v1-"+mech) {
							t.Fatalf("kcat read back %d records:\n%s", n, out)
						}
					})
					t.Run("confluent-kafka", func(t *testing.T) {
						topic := "confluent-" + lower
						s.createTopic(topic, 1)
						sum := runSASLPy(t, py, "roundtrip", addr, mech, saslUser, saslPassword, topic)
						if sum.Undelivered != 0 || len(sum.DeliveryErrors) != 0 || !slices.Equal(sum.Consumed, sum.Produced) || len(sum.Produced) != 3 {
							t.Fatalf("round trip: %+v", sum)
						}
					})
					t.Run("franz-go", func(t *testing.T) {
						topic := "franz-" + lower
						s.createTopic(topic, 1)
						ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
						defer cancel()
						m := franzMechanism(mech, saslUser, saslPassword)
						p, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.SASL(m), kgo.DefaultProduceTopic(topic))
						if err != nil {
							t.Fatal(err)
						}
						defer p.Close()
						for i := range 3 {
							if err := p.ProduceSync(ctx, &kgo.Record{Value: []byte(fmt.Sprint(i))}).FirstErr(); err != nil {
								t.Fatalf("produce: %v", err)
							}
						}
						c, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.SASL(m), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
						if err != nil {
							t.Fatal(err)
						}
						defer c.Close()
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
						// SaslHandshake v1 (SaslAuthenticate) and v0 (raw
						// tokens).
						for _, hs := range []int16{sarama.SASLHandshakeV1, sarama.SASLHandshakeV0} {
							topic := fmt.Sprintf("sarama-%s-v%d", lower, hs)
							s.createTopic(topic, 1)
							client := saramaClient(t, addr, saramaSASL(mech, saslUser, saslPassword, hs))
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
				})
			}

			t.Run("wrong password", func(t *testing.T) {
				// One mechanism per client: failed logins from one address
				// are answered more and more slowly (up to 5 s each), and
				// librdkafka tries again on its own.
				out, err := runErr(60*time.Second, "", "kcat", append(kcatSASL(addr, "SCRAM-SHA-512", saslUser, "wrong"), "-L", "-m", "30")...)
				if err == nil || !strings.Contains(err.Error(), "Authentication failed") {
					t.Fatalf("kcat with a wrong password: %v\n%s", err, out)
				}
				sum := runSASLPy(t, py, "refused", addr, "SCRAM-SHA-256", saslUser, "wrong")
				if sum.MetadataError == nil || !hasError(sum.Errors, "_AUTHENTICATION", "invalid credentials with SASL mechanism SCRAM-SHA-256") {
					t.Fatalf("confluent-kafka with a wrong password: %+v", sum)
				}
				cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.SASL(franzMechanism("PLAIN", "nobody", saslPassword)), kgo.RequestRetries(0))
				if err != nil {
					t.Fatal(err)
				}
				_, err = kmsg.NewPtrMetadataRequest().RequestWith(context.Background(), cl)
				cl.Close()
				if !errors.Is(err, kerr.SaslAuthenticationFailed) {
					t.Fatalf("franz-go as an unknown user: %v", err)
				}
				_, err = sarama.NewClient([]string{addr}, saramaSASL("SCRAM-SHA-512", saslUser, "wrong", sarama.SASLHandshakeV1))
				if !errors.Is(err, sarama.ErrSASLAuthenticationFailed) {
					t.Fatalf("sarama with a wrong password: %v", err)
				}
				for mech, least := range map[string]float64{"SCRAM-SHA-512": 2, "SCRAM-SHA-256": 1, "PLAIN": 1} {
					if n := s.metric("streamhouse_auth_failures_total", `listener="kafka",mechanism="`+mech+`"`); n < least {
						t.Fatalf("%s failures counted: %v", mech, n)
					}
				}
			})

			t.Run("no SASL", func(t *testing.T) {
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
			})
		})
	}
}

// KIP-368 with real clients: franz-go and sarama re-authenticate on their
// connections and go on producing; librdkafka 2.0 (Debian's kcat) does not
// re-authenticate, so its connection is cut when its login expires, and
// it reconnects.
func TestSASLReauthentication(t *testing.T) {
	t.Parallel()
	needTool(t, "kcat")
	s := startAuthServer(t, e2e.Local, "AUTH_SESSION_LIFETIME_MS=2500")
	addr := s.KafkaAddr
	s.createTopic("reauth", 1)
	logins := func() float64 { return s.metric("streamhouse_auth_successes_total", `listener="kafka"`) }
	expired := func() float64 {
		return s.metric("streamhouse_kafka_connections_dropped_total", `reason="session_expired"`)
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.SASL(franzMechanism("SCRAM-SHA-256", saslUser, saslPassword)), kgo.DefaultProduceTopic("reauth"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	sc := saramaClient(t, addr, saramaSASL("SCRAM-SHA-512", saslUser, saslPassword, sarama.SASLHandshakeV1))
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
	out, _ := runErr(8*time.Second, "", "kcat", append(kcatSASL(addr, "SCRAM-SHA-256", saslUser, saslPassword),
		"-C", "-t", "reauth", "-o", "beginning", "-q")...)
	if n := expired(); n <= cut {
		t.Fatalf("librdkafka's connection was not cut at expiry (%v cuts)", n)
	}
	if !strings.Contains(string(out), "sarama") {
		t.Fatalf("kcat read nothing across the cut:\n%s", out)
	}
}
