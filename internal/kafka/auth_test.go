package kafka

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/streamhouse/streamhouse/internal/auth"
	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/metadata/faulty"
	"github.com/streamhouse/streamhouse/internal/metadata/metadatatest"
)

// authClock is a settable clock for session lifetimes.
type authClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *authClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *authClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type authServer struct {
	*testServer
	auth *auth.Authenticator
	reg  *prometheus.Registry
}

// startAuthServer runs a Kafka listener that requires logins, over
// o.store (default SQLite), with users alice/alice-secret and
// bob/bob-secret (both SCRAM credentials).
func startAuthServer(t *testing.T, o testOptions, mutate ...func(*auth.Config)) *authServer {
	t.Helper()
	if o.store == nil {
		o.store = metadatatest.OpenSQLite(t)
	}
	reg := prometheus.NewRegistry()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(testWriter{t}, nil))
	}
	cfg := auth.Config{Store: o.store, Enabled: true, Registry: reg, Logger: logger}
	for _, m := range mutate {
		m(&cfg)
	}
	a := auth.New(cfg)
	if err := a.Bootstrap(t.Context(), []auth.BootstrapUser{{Name: "alice", Password: "alice-secret"}, {Name: "bob", Password: "bob-secret"}}); err != nil {
		t.Fatal(err)
	}
	prev := o.kafka
	o.kafka = func(c *Config) {
		if prev != nil {
			prev(c)
		}
		c.Auth = a
	}
	return &authServer{testServer: startServer(t, o), auth: a, reg: reg}
}

// counter reads one series of a counter vector from the registry.
func counter(t *testing.T, reg prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if v, ok := labels[l.GetName()]; ok && v != l.GetValue() {
					continue metric
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no series %s %v", name, labels)
	return 0
}

func mechanism(name, user, password string) sasl.Mechanism {
	switch name {
	case auth.MechanismPlain:
		return plain.Auth{User: user, Pass: password}.AsMechanism()
	case auth.MechanismScramSHA512:
		return scram.Auth{User: user, Pass: password}.AsSha512Mechanism()
	}
	return scram.Auth{User: user, Pass: password}.AsSha256Mechanism()
}

// roundTrip produces records with a logged-in franz-go client and reads
// them back with another.
func roundTrip(t *testing.T, s *authServer, topic string, mech sasl.Mechanism) {
	t.Helper()
	ctx := dpCtx(t)
	p := s.client(kgo.SASL(mech), kgo.DefaultProduceTopic(topic))
	var want []string
	for i := range 3 {
		v := topic + "-" + string(rune('a'+i))
		want = append(want, v)
		if err := p.ProduceSync(ctx, &kgo.Record{Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatalf("produce over %s: %v", mech.Name(), err)
		}
	}
	c := s.client(kgo.SASL(mech), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var got []string
	for len(got) < len(want) {
		fs := c.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consume over %s: got %v: %v", mech.Name(), got, err)
		}
		for _, e := range fs.Errors() {
			t.Fatalf("consume over %s: %v", mech.Name(), e.Err)
		}
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("read %v, want %v", got, want)
	}
}

func TestSASLRoundTrip(t *testing.T) {
	t.Parallel()
	for be, open := range metadatatest.Backends(t) {
		t.Run(be, func(t *testing.T) {
			t.Parallel()
			s := startAuthServer(t, testOptions{store: open(t)})
			for _, mech := range auth.Mechanisms() {
				topic := "sasl-" + strings.ToLower(mech)
				s.dpTopic(t, topic, 1, nil)
				roundTrip(t, s, topic, mechanism(mech, "alice", "alice-secret"))
				if n := counter(t, s.reg, "streamhouse_auth_successes_total", map[string]string{"listener": "kafka", "mechanism": mech}); n < 2 {
					t.Fatalf("%s logins counted: %v", mech, n)
				}
			}
		})
	}
}

func TestSASLWrongPasswordRefused(t *testing.T) {
	t.Parallel()
	s := startAuthServer(t, testOptions{})
	s.dpTopic(t, "refused", 1, nil)
	for _, mech := range auth.Mechanisms() {
		for _, login := range [][2]string{{"alice", "wrong"}, {"nobody", "alice-secret"}} {
			cl := s.client(kgo.SASL(mechanism(mech, login[0], login[1])), kgo.RequestRetries(0))
			_, err := kmsg.NewPtrMetadataRequest().RequestWith(dpCtx(t), cl)
			if !errors.Is(err, kerr.SaslAuthenticationFailed) {
				t.Fatalf("%s as %s: %v, want SASL_AUTHENTICATION_FAILED", mech, login[0], err)
			}
			cl.Close()
		}
		if n := counter(t, s.reg, "streamhouse_auth_failures_total", map[string]string{"listener": "kafka", "mechanism": mech}); n < 2 {
			t.Fatalf("%s failures counted: %v", mech, n)
		}
	}
	if ls, hw := s.dpHW(t, "refused", 0); ls != 0 || hw != 0 {
		t.Fatalf("a refused client stored records: %d..%d", ls, hw)
	}
}

// Before a login only ApiVersions, SaslHandshake and SaslAuthenticate are
// served; anything else closes the connection.
func TestNoSASLConnectionClosed(t *testing.T) {
	t.Parallel()
	s := startAuthServer(t, testOptions{})
	s.dpTopic(t, "closed", 1, nil)
	w := s.dpDial(t)
	if !w.alive() {
		t.Fatal("ApiVersions before a login is not answered")
	}
	w.send(dpMetadataReq(12, false, "closed"))
	if !w.closed(10 * time.Second) {
		t.Fatal("Metadata before a login: connection left open")
	}
	// A client without SASL gets nothing.
	cl := s.client(kgo.DefaultProduceTopic("closed"), kgo.RequestRetries(0), kgo.RetryTimeout(time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("x")}).FirstErr(); err == nil {
		t.Fatal("a client without SASL produced")
	}
	if n := testutil.ToFloat64(s.srv.metrics.requestsRejected.WithLabelValues("unauthenticated")); n < 1 {
		t.Fatalf("unauthenticated closes counted: %v", n)
	}
	if ls, hw := s.dpHW(t, "closed", 0); ls != 0 || hw != 0 {
		t.Fatalf("records stored without a login: %d..%d", ls, hw)
	}
}

// wire-level logins.

func (w *dpWire) handshake(version int16, mech string) *kmsg.SASLHandshakeResponse {
	w.t.Helper()
	req := kmsg.NewPtrSASLHandshakeRequest()
	req.Version, req.Mechanism = version, mech
	return w.do(req).(*kmsg.SASLHandshakeResponse)
}

func (w *dpWire) authenticate(version int16, b []byte) *kmsg.SASLAuthenticateResponse {
	w.t.Helper()
	req := kmsg.NewPtrSASLAuthenticateRequest()
	req.Version, req.SASLAuthBytes = version, b
	return w.do(req).(*kmsg.SASLAuthenticateResponse)
}

// login runs a whole exchange with SaslHandshake v1 and SaslAuthenticate
// v2 and returns the last answer.
func (w *dpWire) login(mech sasl.Mechanism) *kmsg.SASLAuthenticateResponse {
	w.t.Helper()
	if hs := w.handshake(1, mech.Name()); hs.ErrorCode != 0 {
		w.t.Fatalf("handshake %s: %v", mech.Name(), kerr.ErrorForCode(hs.ErrorCode))
	}
	sess, msg, err := mech.Authenticate(context.Background(), "host")
	if err != nil {
		w.t.Fatal(err)
	}
	for {
		resp := w.authenticate(2, msg)
		if resp.ErrorCode != 0 {
			return resp
		}
		done, next, err := sess.Challenge(resp.SASLAuthBytes)
		if err != nil {
			w.t.Fatalf("client: %v", err)
		}
		if done {
			return resp
		}
		msg = next
	}
}

func (w *dpWire) metadataOK() bool {
	w.t.Helper()
	req := dpMetadataReq(12, false)
	resp, err := w.read(req, w.send(req))
	return err == nil && resp != nil
}

func TestSASLWireErrors(t *testing.T) {
	t.Parallel()
	s := startAuthServer(t, testOptions{})

	// An unknown mechanism: the mechanisms offered, then the close.
	w := s.dpDial(t)
	hs := w.handshake(1, "GSSAPI")
	if hs.ErrorCode != kerr.UnsupportedSaslMechanism.Code || strings.Join(hs.SupportedMechanisms, ",") != "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512" {
		t.Fatalf("GSSAPI: %v %v", kerr.ErrorForCode(hs.ErrorCode), hs.SupportedMechanisms)
	}
	if !w.closed(10 * time.Second) {
		t.Fatal("unsupported mechanism: connection left open")
	}

	// SaslAuthenticate without a handshake.
	w = s.dpDial(t)
	if resp := w.authenticate(1, []byte("\x00alice\x00alice-secret")); resp.ErrorCode != kerr.IllegalSaslState.Code {
		t.Fatalf("authenticate without handshake: %v", kerr.ErrorForCode(resp.ErrorCode))
	}
	if !w.closed(10 * time.Second) {
		t.Fatal("authenticate without handshake: connection left open")
	}

	// A second handshake during an exchange.
	w = s.dpDial(t)
	w.handshake(1, auth.MechanismScramSHA256)
	if hs := w.handshake(1, auth.MechanismScramSHA256); hs.ErrorCode != kerr.IllegalSaslState.Code {
		t.Fatalf("second handshake: %v", kerr.ErrorForCode(hs.ErrorCode))
	}
	if !w.closed(10 * time.Second) {
		t.Fatal("second handshake: connection left open")
	}

	// A malformed exchange closes that connection only.
	good := s.dpDial(t)
	if resp := good.login(mechanism(auth.MechanismScramSHA256, "alice", "alice-secret")); resp.ErrorCode != 0 {
		t.Fatalf("login: %v", kerr.ErrorForCode(resp.ErrorCode))
	}
	bad := s.dpDial(t)
	bad.handshake(1, auth.MechanismScramSHA256)
	resp := bad.authenticate(2, []byte("not scram"))
	if resp.ErrorCode != kerr.SaslAuthenticationFailed.Code || resp.ErrorMessage == nil || !strings.Contains(*resp.ErrorMessage, "SCRAM-SHA-256") {
		t.Fatalf("malformed SCRAM: %v %v", kerr.ErrorForCode(resp.ErrorCode), resp.ErrorMessage)
	}
	if !bad.closed(10 * time.Second) {
		t.Fatal("malformed SCRAM: connection left open")
	}
	if !good.metadataOK() {
		t.Fatal("another connection's malformed exchange closed this one")
	}
}

func TestSASLOffIsIllegalState(t *testing.T) {
	t.Parallel()
	s := startServer(t, testOptions{})
	w := s.dpDial(t)
	if hs := w.handshake(1, auth.MechanismPlain); hs.ErrorCode != kerr.IllegalSaslState.Code {
		t.Fatalf("handshake with logins off: %v", kerr.ErrorForCode(hs.ErrorCode))
	}
	if !w.closed(10 * time.Second) {
		t.Fatal("connection left open")
	}
	// Without logins every request is served, as User:ANONYMOUS.
	w = s.dpDial(t)
	if !w.metadataOK() {
		t.Fatal("metadata with logins off")
	}
}

// SaslHandshake v0: the exchange is raw size-prefixed tokens.
func TestSASLRawV0(t *testing.T) {
	t.Parallel()
	s := startAuthServer(t, testOptions{})
	for _, mech := range auth.Mechanisms() {
		w := s.dpDial(t)
		if hs := w.handshake(0, mech); hs.ErrorCode != 0 {
			t.Fatalf("handshake v0 %s: %v", mech, kerr.ErrorForCode(hs.ErrorCode))
		}
		sess, msg, err := mechanism(mech, "bob", "bob-secret").Authenticate(context.Background(), "host")
		if err != nil {
			t.Fatal(err)
		}
		for done := false; !done; {
			w.writeRaw(msg)
			token := w.readRawToken()
			if done, msg, err = sess.Challenge(token); err != nil {
				t.Fatalf("%s client: %v", mech, err)
			}
		}
		if !w.metadataOK() {
			t.Fatalf("%s: metadata after a raw login", mech)
		}
	}
	// A refused raw login closes the connection (the framing has no error).
	w := s.dpDial(t)
	w.handshake(0, auth.MechanismPlain)
	w.writeRaw([]byte("\x00bob\x00wrong"))
	if !w.closed(10 * time.Second) {
		t.Fatal("refused raw login: connection left open")
	}
}

func (w *dpWire) readRawToken() []byte {
	w.t.Helper()
	_ = w.nc.SetReadDeadline(time.Now().Add(20 * time.Second))
	var size [4]byte
	if _, err := readFull(w, size[:]); err != nil {
		w.t.Fatalf("raw token size: %v", err)
	}
	b := make([]byte, int(size[0])<<24|int(size[1])<<16|int(size[2])<<8|int(size[3]))
	if _, err := readFull(w, b); err != nil {
		w.t.Fatalf("raw token: %v", err)
	}
	return b
}

func readFull(w *dpWire, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := w.br.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// KIP-368: a login expires after AUTH_SESSION_LIFETIME_MS; the connection
// may log in again on itself, as the same user with the same mechanism,
// and is closed at its next other request once expired.
func TestSASLSessionExpiry(t *testing.T) {
	t.Parallel()
	clock := &authClock{now: time.Unix(1_700_000_000, 0)}
	s := startAuthServer(t, testOptions{}, func(c *auth.Config) {
		c.SessionLifetime = time.Minute
		c.Now = clock.Now
	})
	alice := mechanism(auth.MechanismScramSHA512, "alice", "alice-secret")

	// v1 tells the lifetime; v0 has no field for it.
	w := s.dpDial(t)
	if resp := w.login(alice); resp.ErrorCode != 0 || resp.SessionLifetimeMillis != 60000 {
		t.Fatalf("login: %v, lifetime %d", kerr.ErrorForCode(resp.ErrorCode), resp.SessionLifetimeMillis)
	}
	clock.Add(59 * time.Second)
	if !w.metadataOK() {
		t.Fatal("request within the lifetime refused")
	}
	// Re-authentication before expiry renews it, requests go on.
	if resp := w.login(alice); resp.ErrorCode != 0 {
		t.Fatalf("re-authentication: %v", kerr.ErrorForCode(resp.ErrorCode))
	}
	clock.Add(59 * time.Second)
	if !w.metadataOK() {
		t.Fatal("request within the renewed lifetime refused")
	}
	// Expired: re-authentication is still allowed.
	clock.Add(2 * time.Second)
	if resp := w.login(alice); resp.ErrorCode != 0 {
		t.Fatalf("re-authentication after expiry: %v", kerr.ErrorForCode(resp.ErrorCode))
	}
	if !w.metadataOK() {
		t.Fatal("request after re-authentication refused")
	}
	// A client that does not re-authenticate is cut at its next request.
	clock.Add(time.Minute)
	w.send(dpMetadataReq(12, false))
	if !w.closed(10 * time.Second) {
		t.Fatal("request after expiry: connection left open")
	}
	if n := testutil.ToFloat64(s.srv.metrics.requestsRejected.WithLabelValues("session_expired")); n != 1 {
		t.Fatalf("expired sessions counted: %v", n)
	}

	// Re-authentication may not change the user...
	w = s.dpDial(t)
	w.login(alice)
	if resp := w.login(mechanism(auth.MechanismScramSHA512, "bob", "bob-secret")); resp.ErrorCode != kerr.SaslAuthenticationFailed.Code {
		t.Fatalf("re-authentication as bob: %v", kerr.ErrorForCode(resp.ErrorCode))
	}
	if !w.closed(10 * time.Second) {
		t.Fatal("re-authentication as another user: connection left open")
	}
	// ... nor the mechanism, nor use SaslHandshake v0.
	for _, v := range []struct {
		version int16
		mech    string
	}{{1, auth.MechanismPlain}, {0, auth.MechanismScramSHA512}} {
		w = s.dpDial(t)
		w.login(alice)
		if hs := w.handshake(v.version, v.mech); hs.ErrorCode != kerr.IllegalSaslState.Code {
			t.Fatalf("re-authentication with %s v%d: %v", v.mech, v.version, kerr.ErrorForCode(hs.ErrorCode))
		}
		if !w.closed(10 * time.Second) {
			t.Fatalf("re-authentication with %s v%d: connection left open", v.mech, v.version)
		}
	}
}

// franz-go re-authenticates on its own when the server gives a lifetime:
// with a short one, a client keeps producing across several of them.
func TestSASLReauthFranzGo(t *testing.T) {
	t.Parallel()
	s := startAuthServer(t, testOptions{}, func(c *auth.Config) { c.SessionLifetime = 1500 * time.Millisecond })
	s.dpTopic(t, "reauth", 1, nil)
	mech := mechanism(auth.MechanismScramSHA256, "alice", "alice-secret")
	logins := func() float64 {
		return counter(t, s.reg, "streamhouse_auth_successes_total", map[string]string{"listener": "kafka", "mechanism": auth.MechanismScramSHA256})
	}
	cl := s.client(kgo.SASL(mech), kgo.DefaultProduceTopic("reauth"))
	ctx := dpCtx(t)
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("first")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	start := logins()
	produced := 1
	// Go on until the client has logged in again three times (bounded by
	// dpCtx): every produce must succeed.
	for logins() < start+3 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("more")}).FirstErr(); err != nil {
			t.Fatalf("produce %d across re-authentications: %v", produced, err)
		}
		produced++
		select {
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			t.Fatalf("no re-authentication after %d produces", produced)
		}
	}
	if n := testutil.ToFloat64(s.srv.metrics.requestsRejected.WithLabelValues("session_expired")); n != 0 {
		t.Fatalf("a re-authenticating client was cut %v times", n)
	}
	if _, hw := s.dpHW(t, "reauth", 0); hw != int64(produced) {
		t.Fatalf("high watermark %d, produced %d", hw, produced)
	}
}

// A failed login slows its own address only: while one address waits,
// another's failure and another's login are answered.
func TestSASLFailureSlowsOnlyItsAddress(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	waits := make(chan string, 16)
	s := startAuthServer(t, testOptions{}, func(c *auth.Config) {
		c.Sleep = func(ctx context.Context, d time.Duration) error {
			if d <= 0 {
				return nil
			}
			waits <- d.String()
			select {
			case <-release:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	})
	dialFrom := func(ip string) *dpWire {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
		nc, err := d.Dial("tcp", s.addr)
		if err != nil {
			t.Fatalf("dial from %s: %v", ip, err)
		}
		t.Cleanup(func() { _ = nc.Close() })
		w := &dpWire{t: t, nc: nc}
		w.br = newReader(nc)
		return w
	}
	wrong := mechanism(auth.MechanismPlain, "alice", "wrong")
	// Address A: the first failure is answered at once ...
	a1 := dialFrom("127.0.0.1")
	if resp := a1.login(wrong); resp.ErrorCode != kerr.SaslAuthenticationFailed.Code {
		t.Fatalf("first failure: %v", kerr.ErrorForCode(resp.ErrorCode))
	}
	// ... the second waits.
	a2 := dialFrom("127.0.0.1")
	a2.handshake(1, auth.MechanismPlain)
	req := kmsg.NewPtrSASLAuthenticateRequest()
	req.Version, req.SASLAuthBytes = 2, []byte("\x00alice\x00wrong")
	corr := a2.send(req)
	if d := <-waits; d != "100ms" {
		t.Fatalf("second failure waits %s", d)
	}
	// Meanwhile address B's failure and login are answered.
	b := dialFrom("127.0.0.2")
	if resp := b.login(wrong); resp.ErrorCode != kerr.SaslAuthenticationFailed.Code {
		t.Fatalf("B's failure: %v", kerr.ErrorForCode(resp.ErrorCode))
	}
	b2 := dialFrom("127.0.0.2")
	if resp := b2.login(mechanism(auth.MechanismPlain, "alice", "alice-secret")); resp.ErrorCode != 0 || !b2.metadataOK() {
		t.Fatalf("B's login: %v", kerr.ErrorForCode(resp.ErrorCode))
	}
	// A is still waiting: its answer has not come.
	_ = a2.nc.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if _, err := a2.br.Peek(1); err == nil {
		t.Fatal("A's second failure was answered while it should wait")
	}
	close(release)
	resp, err := a2.read(req, corr)
	if err != nil || resp.(*kmsg.SASLAuthenticateResponse).ErrorCode != kerr.SaslAuthenticationFailed.Code {
		t.Fatalf("A's second failure after the wait: %v %v", resp, err)
	}
}

// A store that cannot check a login closes the connection without a
// verdict: the client reconnects and tries again.
func TestSASLStoreOutage(t *testing.T) {
	t.Parallel()
	st := faulty.New(metadatatest.OpenSQLite(t))
	s := startAuthServer(t, testOptions{store: st})
	st.Inject(faulty.Fault{Op: faulty.OpGetCredential, Err: metadata.ErrUnavailable})
	w := s.dpDial(t)
	w.handshake(1, auth.MechanismScramSHA256)
	req := kmsg.NewPtrSASLAuthenticateRequest()
	req.Version, req.SASLAuthBytes = 2, []byte("n,,n=alice,r=abc")
	if resp, err := w.read(req, w.send(req)); err == nil {
		t.Fatalf("answer during an outage: %+v", resp)
	}
	st.Clear()
	if n := counter(t, s.reg, "streamhouse_auth_failures_total", map[string]string{"listener": "kafka", "mechanism": auth.MechanismScramSHA256}); n != 0 {
		t.Fatalf("an outage counted as a failed login: %v", n)
	}
	w = s.dpDial(t)
	if resp := w.login(mechanism(auth.MechanismScramSHA256, "alice", "alice-secret")); resp.ErrorCode != 0 {
		t.Fatalf("login after the outage: %v", kerr.ErrorForCode(resp.ErrorCode))
	}
}

// Describe/AlterUserScramCredentials through kadm, which sends a salted
// password as every Kafka admin client does.
func TestUserScramCredentialsAPI(t *testing.T) {
	t.Parallel()
	s := startAuthServer(t, testOptions{})
	ctx := dpCtx(t)
	adm := kadm.NewClient(s.client(kgo.SASL(mechanism(auth.MechanismScramSHA256, "alice", "alice-secret"))))

	res, err := adm.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{
		{User: "carol", Mechanism: kadm.ScramSha512, Iterations: 8192, Password: "carol-secret"},
		{User: "erin", Mechanism: kadm.ScramSha256, Iterations: 4096, Password: "x"},
		{User: "erin", Mechanism: kadm.ScramSha256, Iterations: 4096, Password: "y"},
		{User: "a:b", Mechanism: kadm.ScramSha256, Iterations: 4096, Password: "x"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]*kerr.Error{"carol": nil, "erin": kerr.DuplicateResource, "a:b": kerr.UnacceptableCredential}
	for user, code := range want {
		got := res[user].Err
		if (code == nil) != (got == nil) || (code != nil && !errors.Is(got, code)) {
			t.Errorf("alter %s: %v, want %v", user, got, code)
		}
	}
	// The upserted user logs in; the refused ones do not exist.
	roundTripLogin := func(mech sasl.Mechanism) error {
		cl := s.client(kgo.SASL(mech), kgo.RequestRetries(0))
		defer cl.Close()
		return cl.Ping(ctx)
	}
	if err := roundTripLogin(mechanism(auth.MechanismScramSHA512, "carol", "carol-secret")); err != nil {
		t.Fatalf("carol after upsert: %v", err)
	}
	described, err := adm.DescribeUserSCRAMs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d := described["carol"]; len(d.CredInfos) != 1 || d.CredInfos[0].Mechanism != kadm.ScramSha512 || d.CredInfos[0].Iterations != 8192 {
		t.Fatalf("describe carol: %+v", d)
	}
	if _, ok := described["dave"]; ok || len(described) != 3 {
		t.Fatalf("describe all: %+v (want alice, bob, carol)", described)
	}
	for user := range described {
		if strings.HasPrefix(user, "__") {
			t.Fatalf("describe lists an internal user %s", user)
		}
	}
	// Explicit names: unknown and duplicate.
	dreq := kmsg.NewPtrDescribeUserSCRAMCredentialsRequest()
	for _, n := range []string{"alice", "ghost", "bob", "bob"} {
		u := kmsg.NewDescribeUserSCRAMCredentialsRequestUser()
		u.Name = n
		dreq.Users = append(dreq.Users, u)
	}
	dresp, err := dreq.RequestWith(ctx, s.client(kgo.SASL(mechanism(auth.MechanismPlain, "alice", "alice-secret"))))
	if err != nil {
		t.Fatal(err)
	}
	codes := map[string]int16{}
	for _, r := range dresp.Results {
		codes[r.User] = r.ErrorCode
	}
	if len(dresp.Results) != 3 || codes["alice"] != 0 || codes["ghost"] != kerr.ResourceNotFound.Code || codes["bob"] != kerr.DuplicateResource.Code {
		t.Fatalf("describe by name: %+v", dresp.Results)
	}
	// Unknown mechanism; deleting what does not exist; too few or too many
	// iterations (kadm checks those itself: a raw request); then a
	// deletion.
	areq := kmsg.NewPtrAlterUserSCRAMCredentialsRequest()
	for name, iters := range map[string]int32{"dave": 1000, "frank": 16385, "gina": 4096} {
		u := kmsg.NewAlterUserSCRAMCredentialsRequestUpsertion()
		u.Name, u.Mechanism, u.Iterations, u.Salt, u.SaltedPassword = name, 1, iters, []byte("salt"), make([]byte, 32)
		if name == "gina" {
			u.Salt = nil
		}
		areq.Upsertions = append(areq.Upsertions, u)
	}
	del := func(name string, mech int8) {
		d := kmsg.NewAlterUserSCRAMCredentialsRequestDeletion()
		d.Name, d.Mechanism = name, mech
		areq.Deletions = append(areq.Deletions, d)
	}
	del("bob", 3)
	del("carol", 1)
	del("alice", 2)
	aresp, err := areq.RequestWith(ctx, s.client(kgo.SASL(mechanism(auth.MechanismPlain, "alice", "alice-secret"))))
	if err != nil {
		t.Fatal(err)
	}
	codes = map[string]int16{}
	for _, r := range aresp.Results {
		codes[r.User] = r.ErrorCode
	}
	if codes["bob"] != kerr.UnsupportedSaslMechanism.Code || codes["carol"] != kerr.ResourceNotFound.Code || codes["alice"] != 0 ||
		codes["dave"] != kerr.UnacceptableCredential.Code || codes["frank"] != kerr.UnacceptableCredential.Code || codes["gina"] != kerr.UnacceptableCredential.Code {
		t.Fatalf("deletions: %+v", aresp.Results)
	}
	if err := roundTripLogin(mechanism(auth.MechanismScramSHA512, "alice", "alice-secret")); !errors.Is(err, kerr.SaslAuthenticationFailed) {
		t.Fatalf("alice over a deleted SCRAM-SHA-512: %v", err)
	}
	if err := roundTripLogin(mechanism(auth.MechanismScramSHA256, "alice", "alice-secret")); err != nil {
		t.Fatalf("alice over the SCRAM-SHA-256 left: %v", err)
	}
	// The whole user goes with its last credential.
	if _, err := adm.AlterUserSCRAMs(ctx, []kadm.DeleteSCRAM{{User: "carol", Mechanism: kadm.ScramSha512}}, nil); err != nil {
		t.Fatal(err)
	}
	if err := roundTripLogin(mechanism(auth.MechanismPlain, "carol", "carol-secret")); !errors.Is(err, kerr.SaslAuthenticationFailed) {
		t.Fatalf("deleted carol: %v", err)
	}
}

func newReader(nc net.Conn) *bufio.Reader { return bufio.NewReader(nc) }

// gapStore records, at each credential deletion, whether its user still
// had a credential of another mechanism then (a stream's user lookup in
// between would find the user deleted otherwise).
type gapStore struct {
	metadata.Store
	mu   sync.Mutex
	gaps []string // "user mechanism": deletions that left the user with none
}

func (g *gapStore) DeleteScramCredential(ctx context.Context, user, mechanism string) error {
	others := 0
	for _, m := range auth.ScramMechanisms {
		if m.Name == mechanism {
			continue
		}
		if _, err := g.Store.GetScramCredential(ctx, user, m.Name); err == nil {
			others++
		}
	}
	if others == 0 {
		g.mu.Lock()
		g.gaps = append(g.gaps, user+" "+mechanism)
		g.mu.Unlock()
	}
	return g.Store.DeleteScramCredential(ctx, user, mechanism)
}

// Replacing a user's SCRAM-SHA-256 by SCRAM-SHA-512 in one request
// upserts before it deletes: the user has a credential at every moment.
func TestAlterUserScramSwapKeepsACredential(t *testing.T) {
	t.Parallel()
	st := &gapStore{Store: metadatatest.OpenSQLite(t)}
	s := startAuthServer(t, testOptions{store: st})
	ctx := dpCtx(t)
	adm := kadm.NewClient(s.client(kgo.SASL(mechanism(auth.MechanismScramSHA256, "alice", "alice-secret"))))
	if _, err := adm.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{{User: "swap", Mechanism: kadm.ScramSha256, Iterations: 4096, Password: "old"}}); err != nil {
		t.Fatal(err)
	}
	res, err := adm.AlterUserSCRAMs(ctx, []kadm.DeleteSCRAM{{User: "swap", Mechanism: kadm.ScramSha256}},
		[]kadm.UpsertSCRAM{{User: "swap", Mechanism: kadm.ScramSha512, Iterations: 4096, Password: "new"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := res["swap"].Err; err != nil {
		t.Fatalf("swap: %v", err)
	}
	st.mu.Lock()
	gaps := st.gaps
	st.mu.Unlock()
	if len(gaps) != 0 {
		t.Fatalf("deletions that left the user without a credential: %v", gaps)
	}
	d, err := adm.DescribeUserSCRAMs(ctx, "swap")
	if err != nil {
		t.Fatal(err)
	}
	if c := d["swap"].CredInfos; len(c) != 1 || c[0].Mechanism != kadm.ScramSha512 {
		t.Fatalf("swap after the swap: %+v", d["swap"])
	}
}
