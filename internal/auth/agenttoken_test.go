package auth

import (
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/internal/metadata/metadatatest"
)

// Agent tokens over one real store: a token from agent a is good at agent
// b for the one method it names, once, while it is recent, at this
// incarnation of b; never elsewhere, and it holds no password.
func TestAgentToken(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := metadatatest.OpenSQLite(t)
	var skew atomic.Int64
	clock := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	agent := func(id string) (*Authenticator, string) {
		a := New(Config{Store: st, Enabled: true, Now: clock})
		_, pw, err := a.AgentLogin(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return a, pw
	}
	a, pwA := agent("a")
	b, _ := agent("b")
	c, _ := agent("c")
	const m = "/streamhouse.StreamHouse/InitProducer"
	token := func(method string) string {
		tk, err := a.AgentToken(ctx, "b", method)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(tk, pwA) || !IsAgentToken(tk) {
			t.Fatalf("token %q: holds the password or is not an agent token", tk)
		}
		return tk
	}
	refused := func(what string, at *Authenticator, tk, method string) {
		t.Helper()
		if p, err := at.VerifyAgentToken(ctx, tk, method); !errors.Is(err, ErrBadCredentials) {
			t.Errorf("%s: %v %v, want ErrBadCredentials", what, p, err)
		}
	}

	tk := token(m)
	refused("at another agent", c, tk, m)
	refused("for another method", b, tk, "/streamhouse.StreamHouse/CommitTransaction")
	p, err := b.VerifyAgentToken(ctx, tk, m)
	if err != nil || p != User(AgentUserName("a")) || !b.IsSuperUser(p) {
		t.Fatalf("the token at b: %v %v", p, err)
	}
	refused("replayed", b, tk, m)

	for _, off := range []time.Duration{AgentTokenWindow + time.Second, -AgentTokenWindow - time.Second} {
		tk := token(m)
		skew.Store(int64(off))
		refused("checked "+off.String()+" after it was made", b, tk, m)
		skew.Store(0)
		if _, err := b.VerifyAgentToken(ctx, tk, m); err != nil {
			t.Fatalf("the same token checked at once: %v", err)
		}
	}

	// Out of order within the window: each accepted once.
	t1, t2 := token(m), token(m)
	for _, tk := range []string{t2, t1} {
		if _, err := b.VerifyAgentToken(ctx, tk, m); err != nil {
			t.Fatalf("out-of-order token: %v", err)
		}
	}
	refused("the older of two, again", b, t1, m)

	// b restarts: a token made for its previous incarnation is refused.
	stale := token(m)
	if _, _, err := b.AgentLogin(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	refused("for b's previous incarnation", b, stale, m)
	if _, err := b.VerifyAgentToken(ctx, token(m), m); err != nil {
		t.Fatalf("a token for b's new incarnation: %v", err)
	}

	// Tampering and malformed tokens.
	good := token(m)
	fields := strings.SplitN(good, " ", 2)
	for name, bad := range map[string]string{
		"proof flipped":  fields[0] + " " + strings.Replace(fields[1], ",p=", ",p=A", 1),
		"time changed":   strings.Replace(good, ",t=", ",t=1", 1),
		"nonce changed":  strings.Replace(good, ",n=", ",n=x", 1),
		"no proof":       good[:strings.Index(good, ",p=")],
		"Basic":          "Basic YTpi",
		"empty":          AgentTokenScheme + " ",
		"huge":           AgentTokenScheme + " " + strings.Repeat("u", 4096),
		"counter zero":   strings.Join(strings.SplitAfter(good, ".")[:1], "") + "0,p=x",
		"user not agent": AgentTokenScheme + " u=Ym9i,a=Yg,t=1,n=e.1,p=AA==",
	} {
		refused(name, b, bad, m)
	}
	if _, err := b.VerifyAgentToken(ctx, good, m); err != nil {
		t.Fatalf("the untampered token after the tampered ones: %v", err)
	}

	// An agent's password is never a login.
	if _, err := b.VerifyPassword(ctx, AgentUserName("a"), pwA); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("agent password as PLAIN/Basic: %v", err)
	}
	// Logins on without an agent login: no token to send or take.
	plain, _ := newTestAuth(t)
	if _, err := plain.AgentToken(ctx, "b", m); err == nil {
		t.Fatal("AgentToken without an agent login succeeded")
	}
	refused("at an agent without an agent login", plain, token(m), m)
}

// The replay window: each counter once; counters replayWindow behind the
// highest refused; idle senders forgotten, the count bounded.
func TestReplayGuard(t *testing.T) {
	t.Parallel()
	g := newReplayGuard()
	now := time.Now()
	for _, step := range []struct {
		n    uint64
		want bool
	}{{1, true}, {1, false}, {3, true}, {2, true}, {2, false}, {replayWindow + 2, true}, {2, false}, {3, false}, {5, true}, {5, false}, {10 * replayWindow, true}, {9 * replayWindow, false}} {
		if got := g.accept("s", step.n, now); got != step.want {
			t.Fatalf("accept(%d) = %v, want %v", step.n, got, step.want)
		}
	}
	// A full table within the window refuses new senders rather than
	// forget one whose recent tokens would then be accepted again.
	g = newReplayGuard()
	if !g.accept("victim", 7, now) {
		t.Fatal("first token refused")
	}
	for i := range replaySenders + 10 {
		ok := g.accept(strings.Repeat("x", i+1), 1, now.Add(time.Duration(i)*time.Millisecond))
		if want := i < replaySenders-1; ok != want {
			t.Fatalf("sender %d of a table of %d: accepted %v", i+1, replaySenders, ok)
		}
	}
	if n := len(g.senders); n > replaySenders {
		t.Fatalf("%d senders tracked, bound %d", n, replaySenders)
	}
	if g.accept("victim", 7, now.Add(2*time.Second)) {
		t.Fatal("a replay was accepted after the table filled")
	}
	// Senders idle for twice the window are forgotten: room again.
	if !g.accept("late", 1, now.Add(2*AgentTokenWindow+time.Minute)) {
		t.Fatal("a new sender refused after the others went idle")
	}
}
