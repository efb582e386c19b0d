package auth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/streamhouse/streamhouse/internal/metadata"
)

// Agent tokens: how an agent proves it is an agent on a gRPC call it
// forwards to another (internal/grpcapi forward.go), without sending its
// password.
//
// An agent's own user has a SCRAM-SHA-512 credential in the store
// (AgentLogin): a salt, an iteration count and StoredKey = H(ClientKey),
// ClientKey = HMAC(SaltedPassword, "Client Key"). The sender knows the
// password, so it knows ClientKey; the receiver reads StoredKey from the
// store. A token is SCRAM's client proof (RFC 5802 section 3) over a
// message that names everything the token is good for, in one message
// instead of SCRAM's round trip:
//
//	StreamHouse-Agent u=<user>,a=<audience>,t=<unix ms>,n=<epoch>.<counter>,p=<proof>
//
// (u and a in unpadded base64url, p in base64), where
//
//	proof = ClientKey XOR HMAC-SHA-512(StoredKey, message)
//	message = "streamhouse-agent-token-v1" and, each length-prefixed:
//	  the sender's user, the receiving agent's ID, the receiving agent's
//	  current credential salt, t, n, and the full gRPC method
//
// The receiver builds the message from what it knows itself (its own ID
// and salt, the method being called), recovers ClientKey = proof XOR
// HMAC(StoredKey, message) and checks H(ClientKey) == StoredKey in
// constant time, as a SCRAM server checks client-final-message. So a token
// is good for one method, at one agent incarnation (its salt changes at
// every start), within AgentTokenWindow of t by the receiver's clock, and
// once: n is a random epoch per sender process and a counter, and the
// receiver accepts each counter of an epoch once (a sliding window of
// replayWindow counters, as IPsec's anti-replay window, RFC 4303 3.4.3).
// A sniffer learns neither the password nor ClientKey; a store reader
// (StoredKey) cannot make a proof either, as in SCRAM.

// AgentTokenScheme is the authorization scheme of agent tokens.
const AgentTokenScheme = "StreamHouse-Agent"

// AgentTokenWindow is how far a token's time may be from the receiver's
// clock, either way.
const AgentTokenWindow = 60 * time.Second

// agentTokenMax bounds the metadata value a receiver parses.
const agentTokenMax = 2048

const agentTokenVersion = "streamhouse-agent-token-v1"

// agentIdentity is this agent's own login, kept in memory (AgentLogin).
type agentIdentity struct {
	id        string // AGENT_ID: the audience of tokens sent here
	user      string
	salt      []byte // of this incarnation's credential
	storedKey []byte
	clientKey []byte
	epoch     string // random, per process: the first part of n
	counter   atomic.Uint64
}

// HasAgentLogin reports whether this agent made its own login
// (AgentLogin), so it can send agent tokens.
func (a *Authenticator) HasAgentLogin() bool { return a != nil && a.agent.Load() != nil }

// IsAgentToken reports whether an authorization metadata value is an
// agent token (by its scheme, case-insensitively).
func IsAgentToken(v string) bool {
	scheme, _, _ := strings.Cut(strings.TrimSpace(v), " ")
	return strings.EqualFold(scheme, AgentTokenScheme)
}

// agentMessage is the message a token's proof covers.
func agentMessage(user, audience string, salt []byte, ms int64, nonce, method string) string {
	var b strings.Builder
	b.WriteString(agentTokenVersion)
	for _, part := range []string{user, audience, string(salt), strconv.FormatInt(ms, 10), nonce, method} {
		b.WriteString(",")
		b.WriteString(strconv.Itoa(len(part)))
		b.WriteString(":")
		b.WriteString(part)
	}
	return b.String()
}

// AgentToken returns the authorization metadata value of a gRPC call to
// fullMethod that this agent forwards to the agent target (its AGENT_ID).
// It reads target's credential salt from the store; an error when this
// agent has no agent login (logins off) or target none.
func (a *Authenticator) AgentToken(ctx context.Context, target, fullMethod string) (string, error) {
	me := a.agent.Load()
	if me == nil {
		return "", errors.New("agent token: this agent has no agent login")
	}
	tc, err := a.cfg.Store.GetScramCredential(ctx, agentUserPrefix+target, MechanismScramSHA512)
	if err != nil {
		return "", fmt.Errorf("agent token for %s: its credential: %w", target, err)
	}
	ms := a.cfg.Now().UnixMilli()
	nonce := me.epoch + "." + strconv.FormatUint(me.counter.Add(1), 10)
	proof := ScramSHA512.ClientProof(me.clientKey, me.storedKey, agentMessage(me.user, target, tc.Salt, ms, nonce, fullMethod))
	b64 := base64.RawURLEncoding.EncodeToString
	return AgentTokenScheme + " u=" + b64([]byte(me.user)) + ",a=" + b64([]byte(target)) +
		",t=" + strconv.FormatInt(ms, 10) + ",n=" + nonce + ",p=" + base64.StdEncoding.EncodeToString(proof), nil
}

// agentToken is a parsed token.
type agentToken struct {
	user, audience string
	ms             int64
	nonce, epoch   string
	counter        uint64
	proof          []byte
}

func parseAgentToken(v string) (agentToken, error) {
	var t agentToken
	if len(v) > agentTokenMax {
		return t, fmt.Errorf("%w: agent token longer than %d bytes", ErrMalformed, agentTokenMax)
	}
	scheme, rest, ok := strings.Cut(strings.TrimSpace(v), " ")
	if !ok || !strings.EqualFold(scheme, AgentTokenScheme) {
		return t, fmt.Errorf("%w: not an agent token", ErrMalformed)
	}
	fields := strings.Split(strings.TrimSpace(rest), ",")
	keys := []string{"u=", "a=", "t=", "n=", "p="}
	if len(fields) != len(keys) {
		return t, fmt.Errorf("%w: agent token needs u, a, t, n and p", ErrMalformed)
	}
	vals := make([]string, len(keys))
	for i, k := range keys {
		val, ok := strings.CutPrefix(fields[i], k)
		if !ok {
			return t, fmt.Errorf("%w: agent token field %d is not %s", ErrMalformed, i+1, k)
		}
		vals[i] = val
	}
	user, err1 := base64.RawURLEncoding.DecodeString(vals[0])
	aud, err2 := base64.RawURLEncoding.DecodeString(vals[1])
	ms, err3 := strconv.ParseInt(vals[2], 10, 64)
	proof, err4 := base64.StdEncoding.DecodeString(vals[4])
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return t, fmt.Errorf("%w: agent token: %v", ErrMalformed, err)
	}
	if vals[2] != strconv.FormatInt(ms, 10) {
		return t, fmt.Errorf("%w: agent token time %q is not canonical", ErrMalformed, vals[2])
	}
	epoch, counter, ok := strings.Cut(vals[3], ".")
	n, err := strconv.ParseUint(counter, 10, 64)
	if !ok || epoch == "" || err != nil || n == 0 {
		return t, fmt.Errorf("%w: agent token nonce %q", ErrMalformed, vals[3])
	}
	return agentToken{user: string(user), audience: string(aud), ms: ms, nonce: vals[3], epoch: epoch, counter: n, proof: proof}, nil
}

// VerifyAgentToken checks an agent token (IsAgentToken) sent to this
// agent on a call of fullMethod and returns the sending agent's
// principal. It returns an error wrapping ErrBadCredentials for any token
// that does not hold (malformed, not an agent's user, for another agent,
// another incarnation of this one or another method, too old or too far
// ahead, a wrong proof, or seen before), and any other error when the
// store does not answer.
func (a *Authenticator) VerifyAgentToken(ctx context.Context, value, fullMethod string) (Principal, error) {
	bad := func(format string, args ...any) (Principal, error) {
		return Principal{}, fmt.Errorf("%w: agent token: %s", ErrBadCredentials, fmt.Sprintf(format, args...))
	}
	me := a.agent.Load()
	if me == nil {
		return bad("this agent has no agent login")
	}
	t, err := parseAgentToken(value)
	if err != nil {
		return bad("%v", err)
	}
	if !strings.HasPrefix(t.user, agentUserPrefix) {
		return bad("user %q is not an agent", t.user)
	}
	if t.audience != me.id {
		return bad("for agent %q, not this one (%q)", t.audience, me.id)
	}
	now := a.cfg.Now()
	if d := now.Sub(time.UnixMilli(t.ms)); d > AgentTokenWindow || d < -AgentTokenWindow {
		return bad("made %v from this agent's clock, more than %v", d.Round(time.Millisecond), AgentTokenWindow)
	}
	cred, err := a.cfg.Store.GetScramCredential(ctx, t.user, MechanismScramSHA512)
	switch {
	case errors.Is(err, metadata.ErrCredentialNotFound):
		return bad("user %q has no credential", t.user)
	case err != nil:
		return Principal{}, err
	}
	if !ScramSHA512.VerifyProof(cred.StoredKey, t.proof, agentMessage(t.user, me.id, me.salt, t.ms, t.nonce, fullMethod)) {
		return bad("the proof does not hold for %s at this agent", fullMethod)
	}
	if !a.replay.accept(t.user+"\x00"+t.epoch, t.counter, now) {
		return bad("nonce %s already used or too old", t.nonce)
	}
	return User(t.user), nil
}

// Replays. Each (user, epoch) a valid token came from has a window of
// the last replayWindow counters; a counter is accepted once, and not at
// all once replayWindow later ones were seen. An entry idle for twice
// AgentTokenWindow is dropped: every token it accepted is then too old
// for the time check anyway. At most replaySenders entries (agent
// processes forwarding here within two windows); past that the least
// recently used goes.

const (
	replayWindow  = 4096
	replaySenders = 1024
)

type replayGuard struct {
	mu      sync.Mutex
	senders map[string]*replayState
}

type replayState struct {
	max  uint64
	bits [replayWindow / 64]uint64
	used time.Time
}

func newReplayGuard() *replayGuard { return &replayGuard{senders: make(map[string]*replayState)} }

// accept records counter n of sender and reports whether it was new.
func (g *replayGuard) accept(sender string, n uint64, now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.senders[sender]
	if s == nil {
		if len(g.senders) >= replaySenders {
			g.evictLocked(now)
		}
		if len(g.senders) >= replaySenders {
			// Every sender was seen within the window: forgetting one
			// would let its recent tokens through again, so the new
			// sender is refused (it fails closed; its caller retries).
			return false
		}
		s = &replayState{}
		g.senders[sender] = s
	}
	s.used = now
	bit := func(c uint64) (*uint64, uint64) { i := c % replayWindow; return &s.bits[i/64], 1 << (i % 64) }
	switch {
	case n > s.max:
		if n-s.max >= replayWindow {
			s.bits = [replayWindow / 64]uint64{}
		} else {
			for c := s.max + 1; c < n; c++ {
				w, m := bit(c)
				*w &^= m
			}
		}
		s.max = n
		w, m := bit(n)
		*w |= m
		return true
	case s.max-n >= replayWindow:
		return false
	}
	w, m := bit(n)
	if *w&m != 0 {
		return false
	}
	*w |= m
	return true
}

// evictLocked forgets the senders idle for longer than twice the token
// window: any token of theirs is too old to be accepted anyway.
func (g *replayGuard) evictLocked(now time.Time) {
	for k, s := range g.senders {
		if now.Sub(s.used) > 2*AgentTokenWindow {
			delete(g.senders, k)
		}
	}
}

// newAgentIdentity derives the sender's keys of a fresh agent credential.
func newAgentIdentity(agentID, user, password string, c metadata.ScramCredential) (*agentIdentity, error) {
	salted, err := ScramSHA512.SaltedPassword(password, c.Salt, int(c.Iterations))
	if err != nil {
		return nil, err
	}
	e := make([]byte, 12)
	_, _ = rand.Read(e)
	return &agentIdentity{id: agentID, user: user, salt: c.Salt, storedKey: c.StoredKey,
		clientKey: ScramSHA512.ClientKey(salted), epoch: base64.RawURLEncoding.EncodeToString(e)}, nil
}
