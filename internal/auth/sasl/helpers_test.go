package sasl

import (
	"context"
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/streamhouse/streamhouse/internal/metadata"
)

// users is an in-memory credential store: alice/alice-secret for both
// SCRAM mechanisms.
type users map[string]metadata.ScramCredential

func newUsers(t testing.TB) users {
	t.Helper()
	u := users{}
	for _, m := range ScramMechanisms {
		c, err := m.NewCredential("alice", "alice-secret", MinIterations)
		if err != nil {
			t.Fatal(err)
		}
		u[m.Name+"/alice"] = c
	}
	return u
}

func (u users) lookup(m *Mechanism) CredentialLookup {
	return func(_ context.Context, user string) (metadata.ScramCredential, error) {
		if c, ok := u[m.Name+"/"+user]; ok {
			return c, nil
		}
		return metadata.ScramCredential{}, metadata.ErrCredentialNotFound
	}
}

// fake is a made-up credential, the same for a user on every call.
func fake(m *Mechanism, user string) metadata.ScramCredential {
	salt := m.digest([]byte("salt/" + user))
	return metadata.ScramCredential{User: user, Mechanism: m.Name, Salt: salt, Iterations: MinIterations,
		StoredKey: m.digest([]byte("stored/" + user)), ServerKey: m.digest([]byte("server/" + user))}
}

func (u users) scram(mech string) Session {
	m := ScramMechanism(mech)
	return NewScramServer(m, u.lookup(m), fake, nil)
}

func (u users) plain() Session {
	return NewPlainServer(func(ctx context.Context, user, password string) error {
		c, err := u.lookup(ScramSHA256)(ctx, user)
		if err != nil {
			return errors.Join(ErrBadCredentials, err)
		}
		if _, ok, err := ScramSHA256.CheckPassword(c, password); err != nil || !ok {
			return ErrBadCredentials
		}
		return nil
	})
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
func runExchange(ctx context.Context, srv Session, client sasl.Mechanism) error {
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
