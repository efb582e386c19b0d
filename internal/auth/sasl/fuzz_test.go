package sasl

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/streamhouse/streamhouse/internal/metadata"
)

// The SASL exchanges are fed by unauthenticated clients: fuzz them.
//
//	go test -run '^$' -fuzz FuzzScramServer -fuzztime 30s -fuzzminimizetime 100x ./internal/auth/sasl/
//	go test -run '^$' -fuzz FuzzParsePlain -fuzztime 30s -fuzzminimizetime 100x ./internal/auth/sasl/
//
// (-fuzzminimizetime: the default, 60 s per new input, spends a loaded
// machine's 30 s minimizing the first inputs found; 100 tries each keeps
// it fuzzing: ~550,000 executions in 30 s each on 2 busy cores.)

const fuzzNonce = "SERVERNONCE"

// fuzzServer is a SCRAM-SHA-256 server knowing alice/alice-secret, with a
// fixed server nonce so a seed can carry a whole valid exchange.
func fuzzServer(cred metadata.ScramCredential) *scramServer {
	return &scramServer{
		m: ScramSHA256,
		lookup: func(_ context.Context, user string) (metadata.ScramCredential, error) {
			if user == "alice" {
				return cred, nil
			}
			return metadata.ScramCredential{}, metadata.ErrCredentialNotFound
		},
		fake:  fake,
		nonce: func() string { return fuzzNonce },
	}
}

func FuzzScramServer(f *testing.F) {
	cred, err := ScramSHA256.NewCredential("alice", "alice-secret", MinIterations)
	if err != nil {
		f.Fatal(err)
	}
	// A valid exchange, then variations of it.
	probe := fuzzServer(cred)
	bare := "n=alice,r=cnonce"
	sf, _, err := probe.Step(context.Background(), []byte("n,,"+bare))
	if err != nil {
		f.Fatal(err)
	}
	valid := clientFinalFor(ScramSHA256, "alice-secret", cred, bare, string(sf), "cnonce"+fuzzNonce)
	f.Add([]byte("n,,"+bare), []byte(valid))
	f.Add([]byte("y,a=alice,"+bare+",ext=1"), []byte(valid))
	f.Add([]byte("n,,n=al=2Cice,r=x"), []byte("c=biws,r=x"+fuzzNonce+",p=AAAA"))
	f.Add([]byte("n,,n=ghost,r=x"), []byte("c=biws,r=x"+fuzzNonce+",p="+strings.Repeat("A", 44)))
	f.Add([]byte("p=tls-unique,,n=alice,r=x"), []byte(""))
	f.Add([]byte("n,,m=x,n=alice,r=x"), []byte("c=,r=,p="))
	f.Add([]byte(""), []byte(","))
	f.Fuzz(func(t *testing.T, first, final []byte) {
		ctx := context.Background()
		s := fuzzServer(cred)
		resp, done, err := s.Step(ctx, first)
		if err != nil {
			if !done || (!errors.Is(err, ErrMalformed) && !errors.Is(err, ErrBadCredentials)) {
				t.Fatalf("first step: done=%v err=%v", done, err)
			}
			return
		}
		if done || !bytes.HasPrefix(resp, []byte("r=")) || len(resp) > len(first)+200 {
			t.Fatalf("server-first %q (done=%v) for %q", resp, done, first)
		}
		resp, done, err = s.Step(ctx, final)
		if !done {
			t.Fatal("exchange goes on after client-final")
		}
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrBadCredentials) {
				t.Fatalf("final step: %v", err)
			}
		} else {
			// Success only for the one user with a credential, and only
			// with a proof a client knowing the password computes.
			if s.User() != "alice" || !bytes.HasPrefix(resp, []byte("v=")) {
				t.Fatalf("success as %q answering %q", s.User(), resp)
			}
			withoutProof := string(final[:bytes.LastIndex(final, []byte(",p="))])
			nonce := strings.TrimPrefix(strings.Split(withoutProof, ",")[1], "r=")
			want := clientFinalFor(ScramSHA256, "alice-secret", cred, s.clientBare, s.serverFirst, nonce)
			if !strings.HasSuffix(want, string(final[bytes.LastIndex(final, []byte(",p=")):])) {
				t.Fatalf("accepted a proof no client with the password makes: %q", final)
			}
		}
		if _, _, err := s.Step(ctx, []byte("x")); err == nil {
			t.Fatal("a third message accepted")
		}
	})
}

// clientFinalFor is the client-final message of a client that knows
// password (channel binding "n,,": c=biws).
func clientFinalFor(m *Mechanism, password string, cred metadata.ScramCredential, clientBare, serverFirst, nonce string) string {
	sp, err := m.SaltedPassword(password, cred.Salt, int(cred.Iterations))
	if err != nil {
		panic(err)
	}
	clientKey := m.hmac(sp, "Client Key")
	withoutProof := "c=biws,r=" + nonce
	sig := m.hmac(m.digest(clientKey), clientBare+","+serverFirst+","+withoutProof)
	proof := make([]byte, len(sig))
	for i := range sig {
		proof[i] = sig[i] ^ clientKey[i]
	}
	return fmt.Sprintf("%s,p=%s", withoutProof, b64(proof))
}

func FuzzParsePlain(f *testing.F) {
	for _, s := range []string{"\x00alice\x00pw", "alice\x00alice\x00pw", "\x00\x00", "a\x00b", "\x00ü\x00\xff", "x\x00y\x00z\x00w"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		authz, user, password, err := ParsePlain(msg)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v is not ErrMalformed", err)
			}
			return
		}
		if user == "" || password == "" {
			t.Fatalf("accepted an empty user or password: %q", msg)
		}
		if got := authz + "\x00" + user + "\x00" + password; got != string(msg) {
			t.Fatalf("fields %q %q %q do not make up %q", authz, user, password, msg)
		}
		if strings.Contains(authz+user+password, "\x00") {
			t.Fatalf("a field holds NUL: %q", msg)
		}
	})
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
