package auth

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/metadata/faulty"
	"github.com/streamhouse/streamhouse/internal/metadata/metadatatest"
)

// testClock is a settable clock for Config.Now.
type testClock struct{ ns atomic.Int64 }

func newTestClock() *testClock {
	c := &testClock{}
	c.ns.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}
func (c *testClock) Now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *testClock) Add(d time.Duration) { c.ns.Add(int64(d)) }
func loginOf(user string, at time.Time) Login {
	return Login{Principal: User(user), Mechanism: MechanismBasic, At: at}
}

// Many streams of one user re-checking it cost one store read per
// DefaultLoginRecheck between them (one read for a user found before, under the
// mechanism it was found under), not one each.
func TestCheckLoginOneReadPerUserAndTTL(t *testing.T) {
	t.Parallel()
	st := faulty.New(metadatatest.OpenSQLite(t))
	clk := newTestClock()
	a := New(Config{Store: st, Enabled: true, Now: clk.Now})
	ctx := t.Context()
	if err := a.Bootstrap(ctx, []BootstrapUser{{"alice", "alice-secret"}}); err != nil {
		t.Fatal(err)
	}
	// carol has only SCRAM-SHA-512: her first lookup reads both mechanisms.
	if err := a.PutSaltedCredential(ctx, "carol", ScramSHA512, []byte("salt"), make([]byte, 64), MinIterations); err != nil {
		t.Fatal(err)
	}
	check := func(user string, streams int) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make(chan error, streams)
		for range streams {
			wg.Go(func() { errs <- a.CheckLogin(ctx, loginOf(user, clk.Now())) })
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("CheckLogin(%s): %v", user, err)
			}
		}
	}
	base := st.Calls(faulty.OpGetCredential)
	reads := func() int { return st.Calls(faulty.OpGetCredential) - base }
	check("alice", 200)
	check("alice", 200)
	if n := reads(); n != 1 {
		t.Fatalf("400 checks of alice within the TTL: %d reads, want 1", n)
	}
	clk.Add(DefaultLoginRecheck)
	check("alice", 200)
	if n := reads(); n != 2 {
		t.Fatalf("after the TTL: %d reads, want 2", n)
	}
	check("carol", 100)
	if n := reads(); n != 4 {
		t.Fatalf("carol's first lookup: %d reads in all, want 4", n)
	}
	clk.Add(DefaultLoginRecheck)
	check("carol", 100)
	if n := reads(); n != 5 {
		t.Fatalf("carol again: %d reads in all, want 5 (her mechanism first)", n)
	}
	// A deletion made here is seen at once; one elsewhere within the TTL.
	if err := a.DeleteUser(ctx, "carol"); err != nil {
		t.Fatal(err)
	}
	if err := a.CheckLogin(ctx, loginOf("carol", clk.Now())); !errors.Is(err, ErrUserDeleted) {
		t.Fatalf("deleted carol: %v", err)
	}
	if err := st.DeleteScramCredential(ctx, "alice", MechanismScramSHA256); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteScramCredential(ctx, "alice", MechanismScramSHA512); err != nil {
		t.Fatal(err)
	}
	clk.Add(DefaultLoginRecheck)
	if err := a.CheckLogin(ctx, loginOf("alice", clk.Now())); !errors.Is(err, ErrUserDeleted) {
		t.Fatalf("alice deleted on another agent: %v", err)
	}
	// Store errors are no verdict and are not cached.
	st.Inject(faulty.Fault{Op: faulty.OpGetCredential, Err: metadata.ErrUnavailable, Times: 1})
	clk.Add(DefaultLoginRecheck)
	if err := a.CheckLogin(ctx, loginOf("bob", clk.Now())); err == nil || errors.Is(err, ErrUserDeleted) {
		t.Fatalf("outage: %v, want no verdict", err)
	}
	if err := a.CheckLogin(ctx, loginOf("bob", clk.Now())); !errors.Is(err, ErrUserDeleted) {
		t.Fatalf("bob (never existed) after the outage: %v", err)
	}
}

// swapStore moves user's credential from SCRAM-SHA-512 to SCRAM-SHA-256
// (upsert, then delete: as AlterUserScramCredentials does) right after
// the first read of its SCRAM-SHA-256 answered: one pass over the
// mechanisms then finds neither.
type swapStore struct {
	metadata.Store
	user    string
	swapped atomic.Bool
}

func (s *swapStore) GetScramCredential(ctx context.Context, user, mech string) (metadata.ScramCredential, error) {
	c, err := s.Store.GetScramCredential(ctx, user, mech)
	if user == s.user && mech == MechanismScramSHA256 && s.swapped.CompareAndSwap(false, true) {
		old, gerr := s.Store.GetScramCredential(ctx, user, MechanismScramSHA512)
		if gerr != nil {
			return c, gerr
		}
		old.Mechanism = MechanismScramSHA256
		if perr := s.Store.PutScramCredential(ctx, old); perr != nil {
			return c, perr
		}
		if derr := s.Store.DeleteScramCredential(ctx, user, MechanismScramSHA512); derr != nil {
			return c, derr
		}
	}
	return c, err
}

// A user whose credential moves between mechanisms while it is looked up
// is not taken for deleted.
func TestCheckLoginMechanismSwap(t *testing.T) {
	t.Parallel()
	st := &swapStore{Store: metadatatest.OpenSQLite(t), user: "carol"}
	a := New(Config{Store: st, Enabled: true})
	ctx := t.Context()
	if err := a.PutSaltedCredential(ctx, "carol", ScramSHA512, []byte("salt"), make([]byte, 64), MinIterations); err != nil {
		t.Fatal(err)
	}
	if err := a.CheckLogin(ctx, loginOf("carol", a.Now())); err != nil {
		t.Fatalf("carol during the swap: %v", err)
	}
	if !st.swapped.Load() {
		t.Fatal("the swap did not happen during the lookup")
	}
}
