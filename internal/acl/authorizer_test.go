package acl_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/internal/acl"
	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/metadata/faulty"
	"github.com/streamhouse/streamhouse/internal/metadata/metadatatest"
	"github.com/streamhouse/streamhouse/internal/metadata/sqlstore"
	"github.com/streamhouse/streamhouse/internal/testutil"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newAuthorizer(t *testing.T, cfg acl.Config) *acl.Authorizer {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quiet()
	}
	a, err := acl.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// run runs a.Run until the test ends.
func run(t *testing.T, a *acl.Authorizer) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

func readTopic(name, principal string) acl.Binding {
	return acl.Binding{ResourceType: acl.ResourceTopic, ResourceName: name, PatternType: acl.PatternLiteral,
		Principal: principal, Host: "*", Operation: acl.OpRead, Permission: acl.PermissionAllow}
}

// The Authorizer creates, lists and deletes through the store, and
// enforces a change made through it when the call returns; it loads what
// the store holds when it starts.
func TestAuthorizerManagesACLs(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	store := metadatatest.OpenSQLite(t)
	if err := store.CreateACLs(ctx, []acl.Binding{readTopic("old", "User:alice")}); err != nil {
		t.Fatal(err)
	}
	a := newAuthorizer(t, acl.Config{Store: store, Enforce: true})
	if !a.Authorize(ctx, "User:alice", "10.0.0.1", acl.OpRead, acl.Topic("old")) {
		t.Fatal("a binding stored before New is not enforced")
	}
	if a.Authorize(ctx, "User:alice", "10.0.0.1", acl.OpRead, acl.Topic("new")) {
		t.Fatal("allowed without a binding")
	}

	bad := readTopic("", "User:alice")
	errs := a.CreateACLs(ctx, []acl.Binding{readTopic("new", "User:alice"), bad, readTopic("new", "User:bob")})
	if errs[0] != nil || !errors.Is(errs[1], acl.ErrInvalid) || errs[2] != nil {
		t.Fatalf("CreateACLs errors = %v", errs)
	}
	for _, p := range []string{"User:alice", "User:bob"} {
		if !a.Authorize(ctx, p, "10.0.0.1", acl.OpRead, acl.Topic("new")) {
			t.Errorf("%s: a binding created through the Authorizer is not enforced when CreateACLs returns", p)
		}
	}
	got, err := a.DescribeACLs(ctx, acl.AnyFilter)
	if err != nil || len(got) != 3 {
		t.Fatalf("DescribeACLs = %v, %v", got, err)
	}
	if _, err := a.DescribeACLs(ctx, acl.Filter{}); !errors.Is(err, acl.ErrInvalid) {
		t.Errorf("DescribeACLs with an UNKNOWN filter: %v", err)
	}

	name := "new"
	byName := acl.Filter{ResourceType: acl.ResourceTopic, ResourceName: &name, PatternType: acl.PatternLiteral, Operation: acl.OpAny, Permission: acl.PermissionAny}
	bob := "User:bob"
	bobOnly := byName
	bobOnly.Principal = &bob
	res := a.DeleteACLs(ctx, []acl.Filter{{}, bobOnly})
	if !errors.Is(res[0].Err, acl.ErrInvalid) || res[1].Err != nil || !slices.Equal(res[1].Deleted, []acl.Binding{readTopic("new", "User:bob")}) {
		t.Fatalf("DeleteACLs = %+v", res)
	}
	if a.Authorize(ctx, "User:bob", "10.0.0.1", acl.OpRead, acl.Topic("new")) {
		t.Error("a binding deleted through the Authorizer is still enforced when DeleteACLs returns")
	}
	if !a.Authorize(ctx, "User:alice", "10.0.0.1", acl.OpRead, acl.Topic("new")) {
		t.Error("a binding the delete did not select is no longer enforced")
	}
}

// A store failure fails the valid half of a CreateACLs or DeleteACLs with
// the store's error (the invalid half keeps ErrInvalid), and changes
// nothing enforced.
func TestAuthorizerStoreFailures(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	store := faulty.New(metadatatest.OpenSQLite(t))
	a := newAuthorizer(t, acl.Config{Store: store, Enforce: true})
	store.Inject(faulty.Fault{Op: faulty.OpCreateACLs, Err: metadata.ErrUnavailable, Times: 1})
	errs := a.CreateACLs(ctx, []acl.Binding{readTopic("t", "User:alice"), readTopic("t", "nobody")})
	if !errors.Is(errs[0], metadata.ErrUnavailable) || !errors.Is(errs[1], acl.ErrInvalid) {
		t.Fatalf("CreateACLs errors = %v", errs)
	}
	if a.Authorize(ctx, "User:alice", "", acl.OpRead, acl.Topic("t")) {
		t.Fatal("a failed create is enforced")
	}
	if errs := a.CreateACLs(ctx, []acl.Binding{readTopic("t", "User:alice")}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	store.Inject(faulty.Fault{Op: faulty.OpDeleteACLs, Err: metadata.ErrUnavailable, Times: 1})
	res := a.DeleteACLs(ctx, []acl.Filter{acl.AnyFilter})
	if !errors.Is(res[0].Err, metadata.ErrUnavailable) || res[0].Deleted != nil {
		t.Fatalf("DeleteACLs = %+v", res)
	}
	if !a.Authorize(ctx, "User:alice", "", acl.OpRead, acl.Topic("t")) {
		t.Fatal("a failed delete took a binding away")
	}
}

// agentsOnOneDatabase opens two PostgreSQL stores on one database, as two
// agents have.
func agentsOnOneDatabase(t *testing.T) (metadata.Store, metadata.Store) {
	t.Helper()
	url := metadatatest.PostgresDatabase(t)
	open := func() metadata.Store {
		s, err := sqlstore.OpenPostgres(t.Context(), url, quiet())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	return open(), open()
}

// A change made on one agent is enforced on another promptly: on
// PostgreSQL the change's NOTIFY makes the other agent reload, so even
// with a refresh interval of an hour a grant and a revocation apply there
// within the bounded poll.
func TestChangesReachOtherAgentsByNotice(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	storeA, storeB := agentsOnOneDatabase(t)
	a := newAuthorizer(t, acl.Config{Store: storeA, Enforce: true, RefreshInterval: time.Hour})
	b := newAuthorizer(t, acl.Config{Store: storeB, Enforce: true, RefreshInterval: time.Hour})
	run(t, a)
	run(t, b)
	// The listening connection is up once a change made before it
	// reaches b; that change proves nothing yet.
	testutil.WaitFor(t, "b to hear a first change", func() bool {
		if errs := a.CreateACLs(ctx, []acl.Binding{readTopic("warmup", "User:alice")}); errs[0] != nil {
			t.Fatal(errs[0])
		}
		return b.Authorize(ctx, "User:alice", "10.0.0.1", acl.OpRead, acl.Topic("warmup"))
	})

	readT := readTopic("t", "User:alice")
	if errs := a.CreateACLs(ctx, []acl.Binding{readT}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	testutil.WaitFor(t, "b to enforce the grant", func() bool {
		return b.Authorize(ctx, "User:alice", "10.0.0.1", acl.OpRead, acl.Topic("t"))
	})
	if res := a.DeleteACLs(ctx, []acl.Filter{acl.ExactFilter(readT)}); res[0].Err != nil || len(res[0].Deleted) != 1 {
		t.Fatalf("DeleteACLs = %+v", res)
	}
	start := time.Now()
	testutil.WaitFor(t, "b to enforce the revocation", func() bool {
		return !b.Authorize(ctx, "User:alice", "10.0.0.1", acl.OpRead, acl.Topic("t"))
	})
	t.Logf("revocation enforced on the other agent after %v", time.Since(start))
	if b.Version() != a.Version() {
		t.Errorf("versions differ after the revocation: a %d, b %d", a.Version(), b.Version())
	}
}

// Without notices (the faulty wrapper announces nothing, as a store whose
// listening connection is down), the periodic version check applies a
// change made on another agent within the refresh interval.
func TestChangesReachOtherAgentsByPolling(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	storeA, storeB := agentsOnOneDatabase(t)
	pollOnly := faulty.New(storeB)
	if _, ok := any(pollOnly).(acl.Notifier); ok {
		t.Fatal("the faulty wrapper announces changes; this test needs a store that does not")
	}
	a := newAuthorizer(t, acl.Config{Store: storeA, Enforce: true, RefreshInterval: time.Hour})
	b := newAuthorizer(t, acl.Config{Store: pollOnly, Enforce: true, RefreshInterval: 50 * time.Millisecond})
	run(t, b)
	readT := readTopic("t", "User:alice")
	if errs := a.CreateACLs(ctx, []acl.Binding{readT}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	testutil.WaitFor(t, "b to enforce the grant", func() bool {
		return b.Authorize(ctx, "User:alice", "10.0.0.1", acl.OpRead, acl.Topic("t"))
	})
	if res := a.DeleteACLs(ctx, []acl.Filter{acl.ExactFilter(readT)}); res[0].Err != nil {
		t.Fatal(res[0].Err)
	}
	testutil.WaitFor(t, "b to enforce the revocation", func() bool {
		return !b.Authorize(ctx, "User:alice", "10.0.0.1", acl.OpRead, acl.Topic("t"))
	})
}

// While the store cannot be read, an agent goes on enforcing the last
// ACLs it loaded (as a Kafka broker cut off from its controller does),
// and catches up once it can read again.
func TestRefreshFailureKeepsLastACLs(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	inner := metadatatest.OpenSQLite(t)
	store := faulty.New(inner)
	b := newAuthorizer(t, acl.Config{Store: store, Enforce: true, RefreshInterval: 20 * time.Millisecond})
	if errs := b.CreateACLs(ctx, []acl.Binding{readTopic("t", "User:alice")}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	store.Inject(faulty.Fault{Op: faulty.OpACLVersion, Err: metadata.ErrUnavailable})
	store.Inject(faulty.Fault{Op: faulty.OpListACLs, Err: metadata.ErrUnavailable})
	run(t, b)
	// Revoke behind b's back, straight in the store.
	if _, err := inner.DeleteACLs(ctx, []acl.Filter{acl.AnyFilter}); err != nil {
		t.Fatal(err)
	}
	calls := store.Calls(faulty.OpACLVersion)
	testutil.WaitFor(t, "failed refreshes", func() bool { return store.Calls(faulty.OpACLVersion) >= calls+3 })
	if !b.Authorize(ctx, "User:alice", "", acl.OpRead, acl.Topic("t")) {
		t.Fatal("a failed refresh dropped the loaded ACLs")
	}
	store.Clear()
	testutil.WaitFor(t, "the revocation once the store answers", func() bool {
		return !b.Authorize(ctx, "User:alice", "", acl.OpRead, acl.Topic("t"))
	})
}
