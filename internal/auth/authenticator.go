package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamhouse/streamhouse/internal/auth/sasl"
	"github.com/streamhouse/streamhouse/internal/metadata"
)

// The SASL names, errors and SCRAM mechanisms (internal/auth/sasl), for
// the listeners.
const (
	MechanismPlain       = sasl.MechanismPlain
	MechanismScramSHA256 = sasl.MechanismScramSHA256
	MechanismScramSHA512 = sasl.MechanismScramSHA512
	MinIterations        = sasl.MinIterations
	MaxIterations        = sasl.MaxIterations
)

// Mechanism is a SCRAM mechanism.
type Mechanism = sasl.Mechanism

var (
	ErrMalformed         = sasl.ErrMalformed
	ErrBadCredentials    = sasl.ErrBadCredentials
	ScramSHA256          = sasl.ScramSHA256
	ScramSHA512          = sasl.ScramSHA512
	ScramMechanisms      = sasl.ScramMechanisms
	ScramMechanism       = sasl.ScramMechanism
	ScramMechanismByType = sasl.ScramMechanismByType
)

// Listener names, the "listener" label of the metrics.
const (
	ListenerKafka = "kafka"
	ListenerHTTP  = "http" // REST and the schema registry
	ListenerGRPC  = "grpc"
)

// Mechanism labels of the metrics besides the SASL mechanisms.
const (
	MechanismBasic = "basic" // HTTP Basic (REST, schema registry) and gRPC authorization: Basic
	MechanismMTLS  = "mtls"  // a verified client certificate
	MechanismAgent = "agent" // an agent token on a gRPC call another agent forwarded (agenttoken.go)
	MechanismNone  = "none"  // no credentials at all
)

// Sentinel errors of the user management methods.
var (
	ErrUserNotFound = errors.New("user not found")
	ErrInvalidUser  = errors.New("invalid user")
)

// Config configures an Authenticator.
type Config struct {
	// Store keeps the users' SCRAM credentials.
	Store metadata.UserStore
	// Enabled is AUTH_ENABLED: every listener requires a login. Off, every
	// request is Anonymous (or its verified client certificate's user).
	Enabled bool
	// SuperUsers (SUPER_USERS) are user names that bypass ACLs.
	SuperUsers []string
	// Iterations (AUTH_SCRAM_ITERATIONS) of the credentials the server
	// makes from a password. Default MinIterations.
	Iterations int32
	// SessionLifetime (AUTH_SESSION_LIFETIME_MS) is how long a Kafka SASL
	// login lasts before the client must re-authenticate (KIP-368); 0
	// means for the connection's life.
	SessionLifetime time.Duration
	Logger          *slog.Logger
	// Registry receives the metrics; nil means none.
	Registry prometheus.Registerer
	// Now is the clock of session lifetimes, the verified-login cache and
	// the failed-login slowdown. Default time.Now.
	Now func() time.Time
	// LoginRecheck is how often a long-lived stream looks its user up
	// (authz.Guard), and how long one lookup's answer serves every
	// stream of that user (CheckUser). Default DefaultLoginRecheck.
	LoginRecheck time.Duration
	// Sleep waits before a failed login is answered; default a timer
	// that ctx cuts short. Tests replace it to observe the waits.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Authenticator checks logins on every listener. Safe for concurrent use.
type Authenticator struct {
	cfg      Config
	log      *slog.Logger
	super    map[string]bool
	secret   []byte // per process: the made-up salts of unknown users, the cache keys
	cache    *verifiedCache
	throttle *throttle
	metrics  *metrics
	// derivations counts the PBKDF2 runs of VerifyPassword for known
	// users (what the cache saves).
	derivations atomic.Int64
	// agent is this agent's own login (AgentLogin), nil before; replay
	// remembers the agent tokens it accepted (agenttoken.go).
	agent  atomic.Pointer[agentIdentity]
	replay *replayGuard
	// checks caches CheckLogin's user lookups (login.go).
	checks userChecks
}

// New returns an Authenticator.
func New(cfg Config) *Authenticator {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Iterations <= 0 {
		cfg.Iterations = MinIterations
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Sleep == nil {
		cfg.Sleep = sleep
	}
	if cfg.LoginRecheck <= 0 {
		cfg.LoginRecheck = DefaultLoginRecheck
	}
	a := &Authenticator{
		cfg:      cfg,
		log:      cfg.Logger.With("component", "auth"),
		super:    make(map[string]bool, len(cfg.SuperUsers)),
		secret:   make([]byte, 32),
		cache:    newVerifiedCache(verifiedTTL, verifiedMax),
		throttle: newThrottle(),
		metrics:  newMetrics(cfg.Registry),
		replay:   newReplayGuard(),
	}
	_, _ = rand.Read(a.secret)
	for _, u := range cfg.SuperUsers {
		a.super[u] = true
	}
	return a
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Enabled reports whether logins are required (AUTH_ENABLED).
func (a *Authenticator) Enabled() bool { return a != nil && a.cfg.Enabled }

// SessionLifetime is AUTH_SESSION_LIFETIME_MS; 0 means no expiry.
func (a *Authenticator) SessionLifetime() time.Duration { return a.cfg.SessionLifetime }

// Now is the authenticator's clock.
func (a *Authenticator) Now() time.Time { return a.cfg.Now() }

// IsSuperUser reports whether p bypasses ACLs: a user named in
// SUPER_USERS, or another agent of the cluster (AgentLogin).
func (a *Authenticator) IsSuperUser(p Principal) bool {
	return p.Type == PrincipalTypeUser && (a.super[p.Name] || IsAgent(p))
}

// Mechanisms are the SASL mechanisms the Kafka listener offers, in
// SaslHandshake's order.
func Mechanisms() []string {
	return []string{MechanismPlain, MechanismScramSHA256, MechanismScramSHA512}
}

// NewSession starts a SASL exchange of a mechanism on a Kafka
// connection; false for a mechanism not offered. Its errors:
// sasl.ErrMalformed or sasl.ErrBadCredentials (the client's doing: refuse
// and close), or a failure of the store (no verdict: close without one).
func (a *Authenticator) NewSession(mechanism string) (sasl.Session, bool) {
	if mechanism == MechanismPlain {
		return sasl.NewPlainServer(func(ctx context.Context, user, password string) error {
			_, err := a.VerifyPassword(ctx, user, password)
			return err
		}), true
	}
	m := ScramMechanism(mechanism)
	if m == nil {
		return nil, false
	}
	return sasl.NewScramServer(m, func(ctx context.Context, user string) (metadata.ScramCredential, error) {
		return a.cfg.Store.GetScramCredential(ctx, user, m.Name)
	}, a.fakeCredential, nil), true
}

// fakeCredential is what an unknown user's exchange runs with: a salt
// that is the same on every attempt (as a real one would be) and keys
// that match no proof.
func (a *Authenticator) fakeCredential(m *Mechanism, user string) metadata.ScramCredential {
	mac := hmac.New(sha256.New, a.secret)
	mac.Write([]byte(m.Name + "\x00" + user))
	salt := mac.Sum(nil)
	keys := make([]byte, 2*m.Size())
	_, _ = rand.Read(keys)
	return metadata.ScramCredential{User: user, Mechanism: m.Name, Salt: salt, Iterations: a.cfg.Iterations,
		StoredKey: keys[:m.Size()], ServerKey: keys[m.Size():]}
}

// VerifyPassword checks a user's password (PLAIN, HTTP Basic, gRPC
// Basic) against the user's stored SCRAM credential: SCRAM-SHA-256, or
// SCRAM-SHA-512 for a user with only that one. It returns an error
// wrapping ErrBadCredentials for an unknown user or a wrong password, and
// any other error when the store does not answer.
//
// A check costs PBKDF2 with the credential's iterations (about a
// millisecond at 4096), which an HTTP client would pay on every request.
// So a successful check is remembered for verifiedTTL under a keyed hash
// of (mechanism, user, salt, iterations, password), holding the stored
// key it derived; a later check with the same password finds it and
// compares it with the stored key read from the store again, in constant
// time. The store is still read on every check, so a deleted user or a
// changed password (a new salt: another cache key) takes effect at once
// on every agent; only the PBKDF2 is saved. Failures are never cached.
//
// An agent's own user never logs in with a password (PLAIN, Basic): its
// password never leaves the agent (SCRAM, agent tokens), so one sent is
// refused.
func (a *Authenticator) VerifyPassword(ctx context.Context, user, password string) (Principal, error) {
	if strings.HasPrefix(user, agentUserPrefix) {
		return Principal{}, fmt.Errorf("%w: agent user %q logs in only with SCRAM or an agent token", ErrBadCredentials, user)
	}
	m, cred, err := a.passwordCredential(ctx, user)
	switch {
	case errors.Is(err, metadata.ErrCredentialNotFound):
		// Spend the same work as for a known user.
		_, _, _ = ScramSHA256.CheckPassword(a.fakeCredential(ScramSHA256, user), password)
		return Principal{}, fmt.Errorf("%w: user %q", ErrBadCredentials, user)
	case err != nil:
		return Principal{}, err
	}
	key := a.cacheKey(m, cred, password)
	now := a.cfg.Now()
	if stored, ok := a.cache.get(key, now); ok && subtle.ConstantTimeCompare(stored, cred.StoredKey) == 1 {
		return User(user), nil
	}
	a.derivations.Add(1)
	stored, ok, err := m.CheckPassword(cred, password)
	if err != nil {
		return Principal{}, err
	}
	if !ok {
		return Principal{}, fmt.Errorf("%w: user %q", ErrBadCredentials, user)
	}
	a.cache.put(key, stored, now)
	return User(user), nil
}

// passwordCredential returns the credential a password is checked
// against.
func (a *Authenticator) passwordCredential(ctx context.Context, user string) (*Mechanism, metadata.ScramCredential, error) {
	var err error
	for _, m := range ScramMechanisms {
		var c metadata.ScramCredential
		if c, err = a.cfg.Store.GetScramCredential(ctx, user, m.Name); err == nil {
			return m, c, nil
		}
		if !errors.Is(err, metadata.ErrCredentialNotFound) {
			return nil, c, err
		}
	}
	return nil, metadata.ScramCredential{}, err
}

func (a *Authenticator) cacheKey(m *Mechanism, c metadata.ScramCredential, password string) [32]byte {
	mac := hmac.New(sha256.New, a.secret)
	for _, part := range [][]byte{[]byte(m.Name), []byte(c.User), c.Salt, binary.BigEndian.AppendUint32(nil, uint32(c.Iterations)), []byte(password)} {
		mac.Write(binary.BigEndian.AppendUint32(nil, uint32(len(part))))
		mac.Write(part)
	}
	var k [32]byte
	copy(k[:], mac.Sum(nil))
	return k
}

// Failed records a failed login from remote (host:port or host) on a
// listener, then waits the address's current slowdown before the caller
// answers (see throttle). It returns ctx's error if ctx ends first.
func (a *Authenticator) Failed(ctx context.Context, listener, mechanism, remote string, why error) error {
	a.metrics.failures.WithLabelValues(listener, mechanism).Inc()
	ip := hostOf(remote)
	d := a.throttle.failure(ip, a.cfg.Now())
	a.log.Info("authentication failed", "listener", listener, "mechanism", mechanism, "remote", remote, "delay", d, "err", why)
	return a.cfg.Sleep(ctx, d)
}

// Missing counts a request refused for carrying no credentials at all (an
// HTTP request without Authorization, a Kafka request before SASL). No
// password was tried, so nothing is slowed.
func (a *Authenticator) Missing(listener string) {
	a.metrics.failures.WithLabelValues(listener, MechanismNone).Inc()
}

// Succeeded counts a successful login.
func (a *Authenticator) Succeeded(listener, mechanism string) {
	a.metrics.successes.WithLabelValues(listener, mechanism).Inc()
}

func hostOf(remote string) string {
	if h, _, err := net.SplitHostPort(remote); err == nil {
		return h
	}
	return remote
}

// Users.

// CheckUserName reports what is wrong with a user name, or nil: 1 to 256
// bytes of UTF-8 without control characters or ':' (HTTP Basic's
// separator), and not in the range reserved for agents.
func CheckUserName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty user name", ErrInvalidUser)
	case len(name) > 256:
		return fmt.Errorf("%w: user name longer than 256 bytes", ErrInvalidUser)
	case !utf8.ValidString(name):
		return fmt.Errorf("%w: user name is not UTF-8", ErrInvalidUser)
	case strings.ContainsFunc(name, unicode.IsControl):
		return fmt.Errorf("%w: user name has a control character", ErrInvalidUser)
	case strings.Contains(name, ":"):
		return fmt.Errorf("%w: user name has ':'", ErrInvalidUser)
	case strings.HasPrefix(name, agentUserPrefix):
		return fmt.Errorf("%w: names starting %q are reserved for agents", ErrInvalidUser, agentUserPrefix)
	}
	return nil
}

// CheckPassword reports what is wrong with a new password, or nil: 1 to
// 1024 bytes of UTF-8.
func CheckPassword(p string) error {
	switch {
	case p == "":
		return fmt.Errorf("%w: empty password", ErrInvalidUser)
	case len(p) > 1024:
		return fmt.Errorf("%w: password longer than 1024 bytes", ErrInvalidUser)
	case !utf8.ValidString(p):
		return fmt.Errorf("%w: password is not UTF-8", ErrInvalidUser)
	}
	return nil
}

// CredentialInfo describes one credential without its secrets.
type CredentialInfo struct {
	Mechanism  string
	Iterations int32
}

// UserInfo is a user and its credentials.
type UserInfo struct {
	Name        string
	Credentials []CredentialInfo // in Kafka's mechanism order
}

// Users lists the users (not the agents' own), ordered by name.
func (a *Authenticator) Users(ctx context.Context) ([]UserInfo, error) {
	cs, err := a.cfg.Store.ListScramCredentials(ctx)
	if err != nil {
		return nil, err
	}
	var out []UserInfo
	for _, c := range cs {
		if strings.HasPrefix(c.User, agentUserPrefix) {
			continue
		}
		if len(out) == 0 || out[len(out)-1].Name != c.User {
			out = append(out, UserInfo{Name: c.User})
		}
		u := &out[len(out)-1]
		u.Credentials = append(u.Credentials, CredentialInfo{Mechanism: c.Mechanism, Iterations: c.Iterations})
	}
	return out, nil
}

// SetPassword sets user's credential for each of mechs (every SCRAM
// mechanism when empty) from password, with AUTH_SCRAM_ITERATIONS; it
// reports whether the user had no credential before.
func (a *Authenticator) SetPassword(ctx context.Context, user, password string, mechs []*Mechanism) (created bool, err error) {
	if err := CheckUserName(user); err != nil {
		return false, err
	}
	if err := CheckPassword(password); err != nil {
		return false, err
	}
	if len(mechs) == 0 {
		mechs = ScramMechanisms
	}
	existing, err := a.userCredentials(ctx, user)
	if err != nil {
		return false, err
	}
	defer a.forgetUser(user)
	for _, m := range mechs {
		c, err := m.NewCredential(user, password, a.cfg.Iterations)
		if err != nil {
			return false, err
		}
		if err := a.cfg.Store.PutScramCredential(ctx, c); err != nil {
			return false, err
		}
	}
	return len(existing) == 0, nil
}

// PutSaltedCredential stores the credential of a salted password, as
// Kafka's AlterUserScramCredentials upserts one.
func (a *Authenticator) PutSaltedCredential(ctx context.Context, user string, m *Mechanism, salt, salted []byte, iterations int32) error {
	if err := CheckUserName(user); err != nil {
		return err
	}
	defer a.forgetUser(user)
	return a.cfg.Store.PutScramCredential(ctx, m.CredentialFromSalted(user, salt, salted, iterations))
}

// DeleteCredential removes user's credential of one mechanism;
// ErrUserNotFound when it has none.
func (a *Authenticator) DeleteCredential(ctx context.Context, user string, m *Mechanism) error {
	if err := CheckUserName(user); err != nil {
		return err
	}
	err := a.cfg.Store.DeleteScramCredential(ctx, user, m.Name)
	a.forgetUser(user)
	if errors.Is(err, metadata.ErrCredentialNotFound) {
		return fmt.Errorf("%w: %q has no %s credential", ErrUserNotFound, user, m.Name)
	}
	return err
}

// DeleteUser removes every credential of user; ErrUserNotFound when it
// has none.
func (a *Authenticator) DeleteUser(ctx context.Context, user string) error {
	if err := CheckUserName(user); err != nil {
		return err
	}
	existing, err := a.userCredentials(ctx, user)
	if err != nil {
		return err
	}
	if len(existing) == 0 {
		return fmt.Errorf("%w: %q", ErrUserNotFound, user)
	}
	defer a.forgetUser(user)
	for _, m := range existing {
		if err := a.cfg.Store.DeleteScramCredential(ctx, user, m); err != nil && !errors.Is(err, metadata.ErrCredentialNotFound) {
			return err
		}
	}
	return nil
}

// User describes one user (not an agent's own); ErrUserNotFound when it
// has no credential.
func (a *Authenticator) User(ctx context.Context, name string) (UserInfo, error) {
	if strings.HasPrefix(name, agentUserPrefix) {
		return UserInfo{}, fmt.Errorf("%w: %q", ErrUserNotFound, name)
	}
	u := UserInfo{Name: name}
	for _, m := range ScramMechanisms {
		c, err := a.cfg.Store.GetScramCredential(ctx, name, m.Name)
		switch {
		case err == nil:
			u.Credentials = append(u.Credentials, CredentialInfo{Mechanism: m.Name, Iterations: c.Iterations})
		case !errors.Is(err, metadata.ErrCredentialNotFound):
			return UserInfo{}, err
		}
	}
	if len(u.Credentials) == 0 {
		return UserInfo{}, fmt.Errorf("%w: %q", ErrUserNotFound, name)
	}
	return u, nil
}

// userCredentials returns the mechanisms user has a credential for.
func (a *Authenticator) userCredentials(ctx context.Context, user string) ([]string, error) {
	var out []string
	for _, m := range ScramMechanisms {
		_, err := a.cfg.Store.GetScramCredential(ctx, user, m.Name)
		switch {
		case err == nil:
			out = append(out, m.Name)
		case !errors.Is(err, metadata.ErrCredentialNotFound):
			return nil, err
		}
	}
	return out, nil
}

// BootstrapUser is one entry of AUTH_BOOTSTRAP_USERS.
type BootstrapUser struct {
	Name     string
	Password string
}

// Bootstrap creates each user that does not exist yet, with both SCRAM
// credentials; an existing user is left as it is (its password may have
// been changed since).
func (a *Authenticator) Bootstrap(ctx context.Context, users []BootstrapUser) error {
	for _, u := range users {
		if err := CheckUserName(u.Name); err != nil {
			return err
		}
		if err := CheckPassword(u.Password); err != nil {
			return fmt.Errorf("user %q: %w", u.Name, err)
		}
		var creds []metadata.ScramCredential
		for _, m := range ScramMechanisms {
			c, err := m.NewCredential(u.Name, u.Password, a.cfg.Iterations)
			if err != nil {
				return err
			}
			creds = append(creds, c)
		}
		created, err := a.cfg.Store.CreateScramUser(ctx, creds)
		if err != nil {
			return fmt.Errorf("bootstrap user %q: %w", u.Name, err)
		}
		if created {
			a.log.Info("bootstrap user created", "user", u.Name)
		}
	}
	return nil
}

// CheckHasUsers warns when logins are required and no user exists: only
// a client certificate can then get in.
func (a *Authenticator) CheckHasUsers(ctx context.Context) {
	if !a.Enabled() {
		return
	}
	users, err := a.Users(ctx)
	if err == nil && len(users) == 0 {
		a.log.Warn("AUTH_ENABLED is on and no user exists: set AUTH_BOOTSTRAP_USERS, or only mutual TLS clients can log in")
	}
}

// Agents. Agents send each other Kafka requests (a REST or gRPC produce
// forwarded to the partition's leader, group calls). With logins
// required, each agent makes itself a user at start, named after its
// agent ID with a reserved prefix, with a random password it keeps in
// memory only (SCRAM-SHA-512); a restart replaces it. No secret is shared
// or configured. Agent users are not listed by Users, cannot be made or
// changed through the user APIs, and are super users (IsSuperUser): what
// they forward was already authorized at the agent that received it.

const agentUserPrefix = "__streamhouse-agent-"

// AgentUserName is the name of the agent agentID's own user.
func AgentUserName(agentID string) string { return agentUserPrefix + agentID }

// IsAgent reports whether p is an agent's own user.
func IsAgent(p Principal) bool {
	return p.Type == PrincipalTypeUser && strings.HasPrefix(p.Name, agentUserPrefix)
}

// AgentLogin creates (or replaces) this agent's own user and returns its
// name and password, for the Kafka clients it opens to other agents
// (SCRAM, which never sends the password). It also keeps the keys of the
// tokens this agent's forwarded gRPC calls carry instead of the password
// (AgentToken, VerifyAgentToken).
func (a *Authenticator) AgentLogin(ctx context.Context, agentID string) (user, password string, err error) {
	user = agentUserPrefix + agentID
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	password = base64.RawURLEncoding.EncodeToString(b)
	c, err := ScramSHA512.NewCredential(user, password, MinIterations)
	if err != nil {
		return "", "", err
	}
	id, err := newAgentIdentity(agentID, user, password, c)
	if err != nil {
		return "", "", err
	}
	if err := a.cfg.Store.PutScramCredential(ctx, c); err != nil {
		return "", "", fmt.Errorf("agent user: %w", err)
	}
	a.agent.Store(id)
	return user, password, nil
}

// ForgetAgent removes this agent's own user (at shutdown).
func (a *Authenticator) ForgetAgent(ctx context.Context, agentID string) error {
	err := a.cfg.Store.DeleteScramCredential(ctx, agentUserPrefix+agentID, MechanismScramSHA512)
	if errors.Is(err, metadata.ErrCredentialNotFound) {
		return nil
	}
	return err
}

// Verified-login cache (VerifyPassword).

const (
	verifiedTTL = 5 * time.Minute
	verifiedMax = 10000
)

type verifiedCache struct {
	mu  sync.Mutex
	ttl time.Duration
	max int
	m   map[[32]byte]verifiedEntry
}

type verifiedEntry struct {
	storedKey []byte
	at        time.Time
}

func newVerifiedCache(ttl time.Duration, max int) *verifiedCache {
	return &verifiedCache{ttl: ttl, max: max, m: make(map[[32]byte]verifiedEntry)}
}

func (c *verifiedCache) get(k [32]byte, now time.Time) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	if !ok || now.Sub(e.at) >= c.ttl {
		return nil, false
	}
	return e.storedKey, true
}

func (c *verifiedCache) put(k [32]byte, storedKey []byte, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		for k, e := range c.m {
			if now.Sub(e.at) >= c.ttl {
				delete(c.m, k)
			}
		}
		// Still full: drop any one (map order is random).
		for k := range c.m {
			if len(c.m) < c.max {
				break
			}
			delete(c.m, k)
		}
	}
	c.m[k] = verifiedEntry{storedKey: slices.Clone(storedKey), at: now}
}

func (c *verifiedCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
