package sasl

import (
	"encoding/base64"
	"strings"
	"testing"
)

func TestScramRoundTrip(t *testing.T) {
	t.Parallel()
	u := newUsers(t)
	ctx := t.Context()
	for _, mech := range []string{MechanismScramSHA256, MechanismScramSHA512} {
		t.Run(mech, func(t *testing.T) {
			srv := u.scram(mech)
			if err := runExchange(ctx, srv, scramClient(mech, "alice", "alice-secret")); err != nil {
				t.Fatalf("good password: %v", err)
			}
			if user := srv.User(); user != "alice" {
				t.Fatalf("user %q", user)
			}
			srv = u.scram(mech)
			wantErr(t, runExchange(ctx, srv, scramClient(mech, "alice", "wrong")), ErrBadCredentials, "wrong password")
			srv = u.scram(mech)
			wantErr(t, runExchange(ctx, srv, scramClient(mech, "nobody", "x")), ErrBadCredentials, "unknown user")
		})
	}
	if ScramMechanism("SCRAM-SHA-1") != nil || ScramMechanismByType(3) != nil || ScramMechanismByType(2) != ScramSHA512 {
		t.Fatal("mechanism lookup")
	}
}

// An unknown user is not told apart at the first step: it gets a salt,
// the same one on every attempt, as a real user would.
func TestScramUnknownUserLooksKnown(t *testing.T) {
	t.Parallel()
	u := newUsers(t)
	ctx := t.Context()
	first := func(user string) string {
		srv := u.scram(MechanismScramSHA256)
		resp, done, err := srv.Step(ctx, []byte("n,,n="+user+",r=abc"))
		if err != nil || done {
			t.Fatalf("first step for %s: %q, %v, %v", user, resp, done, err)
		}
		_, salt, _ := strings.Cut(string(resp), ",s=")
		salt, _, _ = strings.Cut(salt, ",")
		return salt
	}
	if s1, s2 := first("ghost"), first("ghost"); s1 != s2 || s1 == "" {
		t.Fatalf("made-up salts differ between attempts: %q %q", s1, s2)
	}
	if first("ghost") == first("alice") {
		t.Fatal("made-up salt equals a real one")
	}
}

// clientProof computes an RFC 5802 client-final message for a server-first
// message, with the nonce the test chooses.
func clientFinal(t *testing.T, m *Mechanism, password, clientBare, serverFirst, nonce string) string {
	t.Helper()
	var salt []byte
	var iters int
	for _, f := range strings.Split(serverFirst, ",") {
		switch {
		case strings.HasPrefix(f, "s="):
			salt, _ = base64.StdEncoding.DecodeString(f[2:])
		case strings.HasPrefix(f, "i="):
			for _, c := range f[2:] {
				iters = iters*10 + int(c-'0')
			}
		}
	}
	sp, err := m.SaltedPassword(password, salt, iters)
	if err != nil {
		t.Fatal(err)
	}
	clientKey := m.hmac(sp, "Client Key")
	storedKey := m.digest(clientKey)
	withoutProof := "c=biws,r=" + nonce
	sig := m.hmac(storedKey, clientBare+","+serverFirst+","+withoutProof)
	proof := make([]byte, len(sig))
	for i := range sig {
		proof[i] = sig[i] ^ clientKey[i]
	}
	return withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof)
}

// Kafka (and librdkafka, which relies on it) accepts a final nonce that
// ends with the server's, not only one equal to it.
func TestScramFinalNonceEndsWithServers(t *testing.T) {
	t.Parallel()
	u := newUsers(t)
	ctx := t.Context()
	cases := []struct {
		name   string
		nonce  func(full string) string
		accept bool
	}{
		{"equal", func(full string) string { return full }, true},
		{"prefixed", func(full string) string { return "xyz" + full }, true},
		{"truncated", func(full string) string { return full[:len(full)-1] }, false},
		{"client nonce only", func(string) string { return "cnonce" }, false},
		{"suffixed", func(full string) string { return full + "x" }, false},
	}
	for _, tc := range cases {
		srv := u.scram(MechanismScramSHA256)
		bare := "n=alice,r=cnonce"
		sf, _, err := srv.Step(ctx, []byte("n,,"+bare))
		if err != nil {
			t.Fatal(err)
		}
		full, _, _ := strings.Cut(strings.TrimPrefix(string(sf), "r="), ",")
		final := clientFinal(t, ScramSHA256, "alice-secret", bare, string(sf), tc.nonce(full))
		resp, done, err := srv.Step(ctx, []byte(final))
		if tc.accept != (err == nil) || !done {
			t.Errorf("%s: %q, %v, %v; accept=%v", tc.name, resp, done, err, tc.accept)
		}
		if !tc.accept {
			wantErr(t, err, ErrMalformed, tc.name)
		}
	}
}

func TestScramMalformed(t *testing.T) {
	t.Parallel()
	u := newUsers(t)
	ctx := t.Context()
	firsts := map[string]string{
		"empty":               "",
		"no gs2 header":       "n=alice,r=abc",
		"channel binding":     "p=tls-unique,,n=alice,r=abc",
		"bad flag":            "x,,n=alice,r=abc",
		"bad authzid":         "n,b=x,n=alice,r=abc",
		"mandatory ext":       "n,,m=ext,n=alice,r=abc",
		"no username":         "n,,r=abc",
		"empty username":      "n,,n=,r=abc",
		"bad escape":          "n,,n=al=ice,r=abc",
		"no nonce":            "n,,n=alice",
		"empty nonce":         "n,,n=alice,r=",
		"nonce not printable": "n,,n=alice,r=a\x01b",
		"not utf8":            "n,,n=\xff,r=abc",
		"too long":            "n,,n=alice,r=" + strings.Repeat("a", maxMessage),
	}
	for name, msg := range firsts {
		srv := u.scram(MechanismScramSHA256)
		_, done, err := srv.Step(ctx, []byte(msg))
		if !done {
			t.Errorf("%s: exchange goes on", name)
		}
		wantErr(t, err, ErrMalformed, name)
	}
	// Refused as credentials, not as form.
	for name, msg := range map[string]string{
		"authzid of another user": "n,a=bob,n=alice,r=abc",
		"delegation token":        "n,,n=alice,r=abc,tokenauth=true",
	} {
		srv := u.scram(MechanismScramSHA256)
		_, _, err := srv.Step(ctx, []byte(msg))
		wantErr(t, err, ErrBadCredentials, name)
	}
	finals := map[string]string{
		"no proof":      "c=biws,r=%s",
		"bad proof":     "c=biws,r=%s,p=!!!",
		"short proof":   "c=biws,r=%s,p=AAAA",
		"no binding":    "r=%s,p=" + base64.StdEncoding.EncodeToString(make([]byte, 32)),
		"wrong binding": "c=eSws,r=%s,p=" + base64.StdEncoding.EncodeToString(make([]byte, 32)),
	}
	for name, format := range finals {
		srv := u.scram(MechanismScramSHA256)
		sf, _, err := srv.Step(ctx, []byte("n,,n=alice,r=abc"))
		if err != nil {
			t.Fatal(err)
		}
		full, _, _ := strings.Cut(strings.TrimPrefix(string(sf), "r="), ",")
		_, done, err := srv.Step(ctx, []byte(strings.Replace(format, "%s", full, 1)))
		if !done {
			t.Errorf("%s: exchange goes on", name)
		}
		wantErr(t, err, ErrMalformed, name)
		if _, _, err := srv.Step(ctx, []byte("more")); err == nil {
			t.Errorf("%s: a third message accepted", name)
		}
	}
	// A wrong proof of the right form is a credentials failure.
	srv := u.scram(MechanismScramSHA256)
	sf, _, _ := srv.Step(ctx, []byte("n,,n=alice,r=abc"))
	full, _, _ := strings.Cut(strings.TrimPrefix(string(sf), "r="), ",")
	_, _, err := srv.Step(ctx, []byte("c=biws,r="+full+",p="+base64.StdEncoding.EncodeToString(make([]byte, 32))))
	wantErr(t, err, ErrBadCredentials, "wrong proof")
}

func TestDecodeSaslName(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"a": "a", "a=2Cb": "a,b", "a=3Db": "a=b", "=3D=2C": "=,"} {
		if got, ok := decodeSaslName(in); !ok || got != want {
			t.Errorf("decode %q: %q %v, want %q", in, got, ok, want)
		}
	}
	for _, in := range []string{"=", "a=2", "a=2D", "=xx"} {
		if _, ok := decodeSaslName(in); ok {
			t.Errorf("decode %q accepted", in)
		}
	}
}
