package sasl

import (
	"strings"
	"testing"
)

func TestParsePlain(t *testing.T) {
	t.Parallel()
	good := map[string][3]string{
		"\x00alice\x00pw":      {"", "alice", "pw"},
		"alice\x00alice\x00pw": {"alice", "alice", "pw"},
		"\x00ü\x00pässword":    {"", "ü", "pässword"},
	}
	for in, want := range good {
		a, u, p, err := ParsePlain([]byte(in))
		if err != nil || [3]string{a, u, p} != want {
			t.Errorf("ParsePlain(%q) = %q %q %q %v", in, a, u, p, err)
		}
	}
	for _, in := range []string{"", "alice", "\x00alice", "\x00\x00pw", "\x00alice\x00", "\x00a\x00b\x00c", "\x00\xff\x00pw",
		"\x00alice\x00" + strings.Repeat("p", maxMessage)} {
		if _, _, _, err := ParsePlain([]byte(in)); err == nil {
			t.Errorf("ParsePlain(%q) accepted", in)
		}
	}
}

func TestPlainSession(t *testing.T) {
	t.Parallel()
	u := newUsers(t)
	ctx := t.Context()
	step := func(msg string) (Session, error) {
		s := u.plain()
		resp, done, err := s.Step(ctx, []byte(msg))
		if !done || len(resp) != 0 {
			t.Fatalf("PLAIN %q: %q %v", msg, resp, done)
		}
		return s, err
	}
	s, err := step("\x00alice\x00alice-secret")
	if err != nil || s.User() != "alice" {
		t.Fatalf("good login: %q %v", s.User(), err)
	}
	if _, err := step("alice\x00alice\x00alice-secret"); err != nil {
		t.Fatalf("authzid = user: %v", err)
	}
	_, err = step("bob\x00alice\x00alice-secret")
	wantErr(t, err, ErrBadCredentials, "authzid of another user")
	_, err = step("\x00alice\x00nope")
	wantErr(t, err, ErrBadCredentials, "wrong password")
	_, err = step("\x00ghost\x00nope")
	wantErr(t, err, ErrBadCredentials, "unknown user")
	_, err = step("alice")
	wantErr(t, err, ErrMalformed, "no separators")
}
