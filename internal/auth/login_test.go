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

// bootAuth is an Authenticator with logins on over st, on a test clock,
// with users made.
func bootAuth(t *testing.T, st metadata.Store, users ...BootstrapUser) (*Authenticator, *testClock) {
	t.Helper()
	clk := newTestClock()
	a := New(Config{Store: st, Enabled: true, Now: clk.Now})
	if err := a.Bootstrap(t.Context(), users); err != nil {
		t.Fatal(err)
	}
	return a, clk
}

func loginOf(user string, at time.Time) Login {
	return Login{Principal: User(user), Mechanism: MechanismBasic, At: at}
}

// Many streams of one user re-checking it cost one store read per
// DefaultLoginRecheck between them (one read for a user found before, under the
// mechanism it was found under), not one each.
func TestCheckLoginOneReadPerUserAndTTL(t *testing.T) {
	t.Parallel()
	st := faulty.New(metadatatest.OpenSQLite(t))
	a, clk := bootAuth(t, st, BootstrapUser{"alice", "alice-secret"})
	ctx := t.Context()
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

// Streams of one user share a lookup, but not their contexts: the
// lookup goes on when the stream that started it leaves (its answer
// serves the others), and a stream that leaves while another's lookup
// is under way returns at once (its Guard's Stop does not wait for the
// store).
func TestCheckLoginSharedLookupCallerLeaves(t *testing.T) {
	t.Parallel()
	st := faulty.New(metadatatest.OpenSQLite(t))
	a, clk := bootAuth(t, st, BootstrapUser{"alice", "alice-secret"}, BootstrapUser{"bob", "bob-secret"})
	since := clk.Now()
	clk.Add(time.Millisecond)
	waitHanging := func() {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for st.Hanging() == 0 {
			if time.Now().After(deadline) {
				t.Fatal("the lookup never reached the store")
			}
			time.Sleep(time.Millisecond)
		}
	}
	returns := func(what string, errc <-chan error, want func(error) bool) {
		t.Helper()
		select {
		case err := <-errc:
			if !want(err) {
				t.Fatalf("%s: %v", what, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: no answer", what)
		}
	}
	canceled := func(err error) bool { return errors.Is(err, context.Canceled) }

	// The stream that started alice's lookup leaves; the lookup goes on.
	st.Inject(faulty.Fault{Op: faulty.OpGetCredential, Hang: true, Times: 1})
	leaving, leave := context.WithCancel(t.Context())
	first := make(chan error, 1)
	go func() { first <- a.CheckLogin(leaving, loginOf("alice", since)) }()
	waitHanging()
	leave()
	returns("the stream that left", first, canceled)
	st.Release()
	// Its answer is cached: with the store now failing, alice's check
	// is answered from it.
	st.Inject(faulty.Fault{Op: faulty.OpGetCredential, Err: metadata.ErrUnavailable})
	deadline := time.Now().Add(10 * time.Second)
	for a.CheckLogin(t.Context(), loginOf("alice", since)) != nil {
		if time.Now().After(deadline) {
			t.Fatal("the lookup of the stream that left was not finished and cached")
		}
		time.Sleep(time.Millisecond)
	}
	st.Clear()

	// Another stream's lookup of bob hangs; one that joins and leaves
	// returns at once.
	st.Inject(faulty.Fault{Op: faulty.OpGetCredential, Hang: true, Times: 1})
	owner := make(chan error, 1)
	go func() { owner <- a.CheckLogin(t.Context(), loginOf("bob", since)) }()
	waitHanging()
	joining, leaveToo := context.WithCancel(t.Context())
	joined := make(chan error, 1)
	go func() { joined <- a.CheckLogin(joining, loginOf("bob", since)) }()
	leaveToo()
	returns("a stream that left during another's lookup", joined, canceled)
	st.Release()
	returns("the stream that stayed", owner, func(err error) bool { return err == nil })
}

// A user deleted and made again (on another agent) logs in anew: its new
// streams are not refused on the cached answer from between.
func TestCheckLoginRecreatedUser(t *testing.T) {
	t.Parallel()
	st := metadatatest.OpenSQLite(t)
	a, clk := bootAuth(t, st, BootstrapUser{"alice", "alice-secret"})
	ctx := t.Context()
	old := loginOf("alice", clk.Now())
	for _, m := range ScramMechanisms {
		if err := st.DeleteScramCredential(ctx, "alice", m.Name); err != nil {
			t.Fatal(err)
		}
	}
	clk.Add(time.Millisecond)
	if err := a.CheckLogin(ctx, old); !errors.Is(err, ErrUserDeleted) {
		t.Fatalf("deleted elsewhere: %v", err)
	}
	c, err := ScramSHA256.NewCredential("alice", "new-secret", MinIterations)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.PutScramCredential(ctx, c); err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Millisecond) // within LoginRecheck of the "deleted" answer
	if err := a.CheckLogin(ctx, loginOf("alice", clk.Now())); err != nil {
		t.Fatalf("a new login after the user was made again: %v", err)
	}
	// Made again here: the cached answer is dropped at once.
	for _, m := range ScramMechanisms {
		if err := st.DeleteScramCredential(ctx, "alice", m.Name); err != nil && !errors.Is(err, metadata.ErrCredentialNotFound) {
			t.Fatal(err)
		}
	}
	clk.Add(DefaultLoginRecheck)
	if err := a.CheckLogin(ctx, old); !errors.Is(err, ErrUserDeleted) {
		t.Fatalf("deleted elsewhere again: %v", err)
	}
	if _, err := a.SetPassword(ctx, "alice", "third-secret", nil); err != nil {
		t.Fatal(err)
	}
	if err := a.CheckLogin(ctx, old); err != nil {
		t.Fatalf("after SetPassword here: %v", err)
	}
}

// gateStore answers GetScramCredential from the inner store; once armed,
// the blockAt-th read holds its answer until open is closed.
type gateStore struct {
	metadata.Store
	armed   atomic.Bool
	blockAt int32
	reads   atomic.Int32
	reading chan struct{} // closed when the blockAt-th read has its answer
	open    chan struct{}
}

func newGateStore(inner metadata.Store) *gateStore {
	return &gateStore{Store: inner, blockAt: 1, reading: make(chan struct{}), open: make(chan struct{})}
}

func (s *gateStore) GetScramCredential(ctx context.Context, user, mech string) (metadata.ScramCredential, error) {
	c, err := s.Store.GetScramCredential(ctx, user, mech)
	if s.armed.Load() && s.reads.Add(1) == s.blockAt {
		close(s.reading)
		<-s.open
	}
	return c, err
}

func waitClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("no %s within 10 s", what)
	}
}

// A login made after its user was made again, joining a lookup that
// read the user gone before: not refused on that answer.
func TestCheckLoginJoinsALookupFromBefore(t *testing.T) {
	t.Parallel()
	st := newGateStore(metadatatest.OpenSQLite(t))
	a, clk := bootAuth(t, st, BootstrapUser{"alice", "alice-secret"})
	ctx := t.Context()
	old := loginOf("alice", clk.Now())
	for _, m := range ScramMechanisms {
		if err := st.Store.DeleteScramCredential(ctx, "alice", m.Name); err != nil {
			t.Fatal(err)
		}
	}
	clk.Add(time.Millisecond)
	// The lookup's last read (two passes over both mechanisms) holds
	// its "not found".
	st.blockAt = int32(2 * len(ScramMechanisms))
	st.armed.Store(true)
	first := make(chan error, 1)
	go func() { first <- a.CheckLogin(ctx, old) }()
	waitClosed(t, st.reading, "read")
	// Made again on another agent; a new login joins the lookup.
	c, err := ScramSHA256.NewCredential("alice", "new-secret", MinIterations)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Store.PutScramCredential(ctx, c); err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Millisecond)
	joined := make(chan struct{})
	var joinOnce sync.Once
	a.checks.mu.Lock()
	a.checks.afterJoin = func() { joinOnce.Do(func() { close(joined) }) }
	a.checks.mu.Unlock()
	second := make(chan error, 1)
	go func() { second <- a.CheckLogin(ctx, loginOf("alice", clk.Now())) }()
	waitClosed(t, joined, "join")
	close(st.open)
	if err := <-first; !errors.Is(err, ErrUserDeleted) {
		t.Fatalf("the old login: %v", err)
	}
	if err := <-second; err != nil {
		t.Fatalf("the new login, on the shared answer: %v", err)
	}
}

// A lookup that read the user before a deletion made here does not
// cache that answer after it.
func TestCheckLoginLookupDuringLocalDelete(t *testing.T) {
	t.Parallel()
	st := newGateStore(metadatatest.OpenSQLite(t))
	a, clk := bootAuth(t, st, BootstrapUser{"alice", "alice-secret"})
	ctx := t.Context()
	login := loginOf("alice", clk.Now())
	st.armed.Store(true)
	first := make(chan error, 1)
	go func() { first <- a.CheckLogin(ctx, login) }()
	waitClosed(t, st.reading, "read")
	st.armed.Store(false)
	if err := a.DeleteUser(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	close(st.open)
	if err := <-first; err != nil {
		t.Fatalf("the lookup read before the deletion: %v", err)
	}
	if err := a.CheckLogin(ctx, login); !errors.Is(err, ErrUserDeleted) {
		t.Fatalf("after the deletion here: %v", err)
	}
}
