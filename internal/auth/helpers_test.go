package auth

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	authsasl "github.com/streamhouse/streamhouse/internal/auth/sasl"
	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/metadata/metadatatest"
)

// newTestAuth returns an Authenticator over a fresh SQLite store, logins
// required, with one user alice/alice-secret (both SCRAM mechanisms).
func newTestAuth(t *testing.T, mutate ...func(*Config)) (*Authenticator, metadata.Store) {
	t.Helper()
	st := metadatatest.OpenSQLite(t)
	cfg := Config{Store: st, Enabled: true}
	for _, m := range mutate {
		m(&cfg)
	}
	a := New(cfg)
	if err := a.Bootstrap(t.Context(), []BootstrapUser{{"alice", "alice-secret"}}); err != nil {
		t.Fatal(err)
	}
	return a, st
}

// scramClient returns franz-go's SCRAM client mechanism (an independent
// implementation) for user and password.
func scramClient(mech, user, password string) sasl.Mechanism {
	a := scram.Auth{User: user, Pass: password}
	if mech == MechanismScramSHA512 {
		return a.AsSha512Mechanism()
	}
	return a.AsSha256Mechanism()
}

// runExchange drives a server session with a client mechanism to the end.
func runExchange(ctx context.Context, srv authsasl.Session, client sasl.Mechanism) error {
	sess, msg, err := client.Authenticate(ctx, "host")
	if err != nil {
		return err
	}
	for {
		resp, done, err := srv.Step(ctx, msg)
		if err != nil {
			return err
		}
		cdone, next, err := sess.Challenge(resp)
		if err != nil {
			return errors.New("client: " + err.Error())
		}
		if done {
			if !cdone {
				return errors.New("server done before the client")
			}
			return nil
		}
		msg = next
	}
}

func wantErr(t *testing.T, err, target error, what string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: %v, want %v", what, err, target)
	}
}

func contains(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
