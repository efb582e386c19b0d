package acl_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/internal/acl"
	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/metadata/faulty"
	"github.com/streamhouse/streamhouse/internal/metadata/metadatatest"
	"github.com/streamhouse/streamhouse/internal/testutil"
)

func manyBindings(n int, principal string) []acl.Binding {
	bs := make([]acl.Binding, n)
	for i := range bs {
		bs[i] = readTopic(fmt.Sprintf("t%06d", i), principal)
	}
	return bs
}

// A CreateAcls request holds at most MaxCreatePerRequest creations, and
// the store at most MaxBindings bindings: past either, nothing is stored.
func TestCreateLimits(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	store := metadatatest.OpenSQLite(t)
	a := newAuthorizer(t, acl.Config{Store: store, Enforce: true})
	errs := a.CreateACLs(ctx, manyBindings(acl.MaxCreatePerRequest+1, "User:alice"))
	for i, err := range errs {
		if !errors.Is(err, acl.ErrInvalid) {
			t.Fatalf("creation %d of %d: %v, want ErrInvalid", i, acl.MaxCreatePerRequest+1, err)
		}
	}
	if bs, err := store.ListACLs(ctx, acl.AnyFilter); err != nil || len(bs) != 0 {
		t.Fatalf("after a refused request the store holds %d bindings (%v)", len(bs), err)
	}
	if errs := a.CreateACLs(ctx, manyBindings(acl.MaxCreatePerRequest, "User:alice")); errs[0] != nil || errs[len(errs)-1] != nil {
		t.Fatalf("a request of exactly %d creations: %v", acl.MaxCreatePerRequest, errs[0])
	}

	// Fill the store to MaxBindings straight through it, then one more
	// through the Authorizer.
	all := manyBindings(acl.MaxBindings, "User:bob")
	if err := store.CreateACLs(ctx, all[:len(all)-acl.MaxCreatePerRequest]); err != nil {
		t.Fatal(err)
	}
	errs = a.CreateACLs(ctx, []acl.Binding{readTopic("one-too-many", "User:carol")})
	if !errors.Is(errs[0], acl.ErrLimit) {
		t.Fatalf("creation past %d bindings: %v, want ErrLimit", acl.MaxBindings, errs[0])
	}
	if bs, err := store.ListACLs(ctx, acl.AnyFilter); err != nil || len(bs) != acl.MaxBindings {
		t.Fatalf("store holds %d bindings (%v), want %d", len(bs), err, acl.MaxBindings)
	}
	// Creating a binding already stored changes nothing and is fine.
	if errs := a.CreateACLs(ctx, []acl.Binding{all[0]}); errs[0] != nil {
		t.Fatalf("re-creating a stored binding at the limit: %v", errs[0])
	}
}

// DeleteAcls deletes each selected binding once however many filters
// select it, and refuses (deleting nothing) filters whose answer would
// list more than MaxDeleteMatches bindings.
func TestDeleteIsSetBasedAndBounded(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	store := metadatatest.OpenSQLite(t)
	a := newAuthorizer(t, acl.Config{Store: store, Enforce: true})
	const filters = 1000
	perFilter := acl.MaxDeleteMatches / filters
	if errs := a.CreateACLs(ctx, manyBindings(perFilter+1, "User:alice")); errs[0] != nil {
		t.Fatal(errs[0])
	}
	fs := make([]acl.Filter, filters)
	for i := range fs {
		fs[i] = acl.AnyFilter
	}
	for i, r := range a.DeleteACLs(ctx, fs) {
		if !errors.Is(r.Err, acl.ErrInvalid) || len(r.Deleted) != 0 {
			t.Fatalf("filter %d selecting %d matches in all: %v, %d deleted; want ErrInvalid", i, filters*(perFilter+1), r.Err, len(r.Deleted))
		}
	}
	if !a.Authorize(ctx, "User:alice", "", acl.OpRead, acl.Topic("t000000")) {
		t.Fatal("a refused DeleteACLs revoked a binding")
	}
	// One binding fewer: exactly MaxDeleteMatches listed, each binding
	// deleted once.
	name := fmt.Sprintf("t%06d", perFilter)
	if r := a.DeleteACLs(ctx, []acl.Filter{acl.ExactFilter(readTopic(name, "User:alice"))}); r[0].Err != nil || len(r[0].Deleted) != 1 {
		t.Fatalf("DeleteACLs of one binding = %+v", r)
	}
	v := a.Version()
	res := a.DeleteACLs(ctx, fs)
	for i, r := range res {
		if r.Err != nil || len(r.Deleted) != perFilter {
			t.Fatalf("filter %d: %v, %d listed, want %d", i, r.Err, len(r.Deleted), perFilter)
		}
	}
	if bs, err := store.ListACLs(ctx, acl.AnyFilter); err != nil || len(bs) != 0 {
		t.Fatalf("after deleting everything the store holds %d bindings (%v)", len(bs), err)
	}
	if got := a.Version(); got != v+1 {
		t.Errorf("version %d after one DeleteACLs from %d: want one change", got, v)
	}
}

// A DeleteACLs answer means this agent no longer enforces what it
// deleted, even when reading the store back fails.
func TestRevocationEnforcedWhenReloadFails(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	store := faulty.New(metadatatest.OpenSQLite(t))
	a := newAuthorizer(t, acl.Config{Store: store, Enforce: true, RefreshInterval: time.Hour})
	keep, revoke := readTopic("keep", "User:alice"), readTopic("revoke", "User:alice")
	if errs := a.CreateACLs(ctx, []acl.Binding{keep, revoke}); errs[0] != nil || errs[1] != nil {
		t.Fatal(errs)
	}
	store.Inject(faulty.Fault{Op: faulty.OpACLVersion, Err: metadata.ErrUnavailable})
	store.Inject(faulty.Fault{Op: faulty.OpListACLs, Err: metadata.ErrUnavailable})
	if r := a.DeleteACLs(ctx, []acl.Filter{acl.ExactFilter(revoke)}); r[0].Err != nil || len(r[0].Deleted) != 1 {
		t.Fatalf("DeleteACLs = %+v", r)
	}
	if a.Authorize(ctx, "User:alice", "", acl.OpRead, acl.Topic("revoke")) {
		t.Fatal("a revoked binding is still enforced after DeleteACLs answered (the reload failed)")
	}
	if !a.Authorize(ctx, "User:alice", "", acl.OpRead, acl.Topic("keep")) {
		t.Fatal("a binding the delete did not select was dropped")
	}
	store.Clear()
	if err := a.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if v, err := store.ACLVersion(ctx); err != nil || a.Version() != v.Number {
		t.Fatalf("after the store answers again: loaded version %d, store %+v (%v)", a.Version(), v, err)
	}
}

// switchStore is the metadata database an agent is pointed at: an
// operator restoring a backup points it at another one.
type switchStore struct {
	cur atomic.Pointer[metadata.Store]
}

func (s *switchStore) use(st metadata.Store) { s.cur.Store(&st) }
func (s *switchStore) get() metadata.Store   { return *s.cur.Load() }

func (s *switchStore) CreateACLs(ctx context.Context, bs []acl.Binding) error {
	return s.get().CreateACLs(ctx, bs)
}
func (s *switchStore) ListACLs(ctx context.Context, f acl.Filter) ([]acl.Binding, error) {
	return s.get().ListACLs(ctx, f)
}
func (s *switchStore) DeleteACLs(ctx context.Context, fs []acl.Filter) ([][]acl.Binding, error) {
	return s.get().DeleteACLs(ctx, fs)
}
func (s *switchStore) ACLVersion(ctx context.Context) (acl.Version, error) {
	return s.get().ACLVersion(ctx)
}

// A metadata store restored from a backup holds other ACLs than the
// agent loaded, under a lower version number, or, once changed after the
// restore, the very number the agent loaded. Either way the agent loads
// the restored store's ACLs on its next check of the version (the number
// and the change ID written with it), on both backends; a check of an
// unchanged store reads no ACLs.
func TestReloadAfterStoreRestore(t *testing.T) {
	t.Parallel()
	x, y, z := readTopic("x", "User:alice"), readTopic("y", "User:alice"), readTopic("z", "User:alice")
	for name, open := range map[string]func(testing.TB) metadata.Store{
		"sqlite": metadatatest.OpenSQLite, "postgres": metadatatest.OpenPostgres,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			// The live store: x granted, y granted, x revoked (version 3).
			live := faulty.New(open(t))
			for _, step := range []func() error{
				func() error { return live.CreateACLs(ctx, []acl.Binding{x}) },
				func() error { return live.CreateACLs(ctx, []acl.Binding{y}) },
				func() error { _, err := live.DeleteACLs(ctx, []acl.Filter{acl.ExactFilter(x)}); return err },
			} {
				if err := step(); err != nil {
					t.Fatal(err)
				}
			}
			// A backup taken after the first change (version 1: x).
			backup := open(t)
			if err := backup.CreateACLs(ctx, []acl.Binding{x}); err != nil {
				t.Fatal(err)
			}
			sw := &switchStore{}
			sw.use(live)
			// Only the test's checks reload: the refresh interval is
			// longer than the test.
			a := newAuthorizer(t, acl.Config{Store: sw, Enforce: true, RefreshInterval: time.Hour})
			liveV, _ := live.ACLVersion(ctx)
			if a.Version() != liveV.Number || a.Authorize(ctx, "User:alice", "", acl.OpRead, acl.Topic("x")) {
				t.Fatalf("loaded version %d, live %+v", a.Version(), liveV)
			}
			lists := live.Calls(faulty.OpListACLs)
			if err := a.Reload(ctx); err != nil || live.Calls(faulty.OpListACLs) != lists {
				t.Fatalf("a check of an unchanged store listed the ACLs (%v)", err)
			}
			enforces := func(want ...string) {
				t.Helper()
				for _, tp := range []string{"x", "y", "z"} {
					if got := a.Authorize(ctx, "User:alice", "", acl.OpRead, acl.Topic(tp)); got != slices.Contains(want, tp) {
						t.Fatalf("topic %s allowed %v; want only %v allowed (loaded version %d)", tp, got, want, a.Version())
					}
				}
			}

			// Restored: a lower version, loaded on the next check.
			sw.use(backup)
			if err := a.Reload(ctx); err != nil {
				t.Fatal(err)
			}
			enforces("x")

			// Back on the live store (version 3), then restored again and
			// changed twice since: version 3 again, other ACLs.
			sw.use(live)
			if err := a.Reload(ctx); err != nil {
				t.Fatal(err)
			}
			enforces("y")
			if err := backup.CreateACLs(ctx, []acl.Binding{z}); err != nil {
				t.Fatal(err)
			}
			if _, err := backup.DeleteACLs(ctx, []acl.Filter{acl.ExactFilter(x)}); err != nil {
				t.Fatal(err)
			}
			if v, _ := backup.ACLVersion(ctx); v.Number != liveV.Number || v.ChangeID == liveV.ChangeID {
				t.Fatalf("restored store at %+v, live at %+v: want the same number, another change ID", v, liveV)
			}
			sw.use(backup)
			if err := a.Reload(ctx); err != nil {
				t.Fatal(err)
			}
			enforces("z")
		})
	}
}

// Run's own poll picks up a restored store that reached the loaded version
// number again: no notice comes (the agent's store changed under it), the
// number is the same, only the change ID differs.
func TestPollPicksUpRestoredStore(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	x, y := readTopic("x", "User:alice"), readTopic("y", "User:alice")
	live, backup := metadatatest.OpenSQLite(t), metadatatest.OpenSQLite(t)
	if err := live.CreateACLs(ctx, []acl.Binding{x}); err != nil {
		t.Fatal(err)
	}
	if err := backup.CreateACLs(ctx, []acl.Binding{y}); err != nil {
		t.Fatal(err)
	}
	sw := &switchStore{}
	sw.use(live)
	a := newAuthorizer(t, acl.Config{Store: sw, Enforce: true, RefreshInterval: 20 * time.Millisecond})
	run(t, a)
	sw.use(backup)
	testutil.WaitFor(t, "the poll to load the restored store's ACLs (same version number, another change ID)", func() bool {
		return a.Authorize(ctx, "User:alice", "", acl.OpRead, acl.Topic("y")) && !a.Authorize(ctx, "User:alice", "", acl.OpRead, acl.Topic("x"))
	})
}

// A DENY created while the store cannot be read again is enforced on this
// agent before CreateACLs answers, as a deletion is: a DENY is a
// revocation.
func TestDenyCreationEnforcedWhenReloadFails(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	store := faulty.New(metadatatest.OpenSQLite(t))
	a := newAuthorizer(t, acl.Config{Store: store, Enforce: true, RefreshInterval: time.Hour})
	allow := readTopic("secret", "User:alice")
	if errs := a.CreateACLs(ctx, []acl.Binding{allow}); errs[0] != nil {
		t.Fatal(errs)
	}
	store.Inject(faulty.Fault{Op: faulty.OpACLVersion, Err: metadata.ErrUnavailable})
	store.Inject(faulty.Fault{Op: faulty.OpListACLs, Err: metadata.ErrUnavailable})
	deny := allow
	deny.Permission = acl.PermissionDeny
	if errs := a.CreateACLs(ctx, []acl.Binding{deny}); errs[0] != nil {
		t.Fatal(errs)
	}
	if a.Authorize(ctx, "User:alice", "", acl.OpRead, acl.Topic("secret")) {
		t.Fatal("a DENY is not enforced after CreateACLs answered (the reload failed)")
	}
}

// recreating is a store where someone creates a binding again right after
// each deletion commits (another admin, a reconciling tool).
type recreating struct {
	metadata.Store
	again acl.Binding
}

func (s *recreating) DeleteACLs(ctx context.Context, fs []acl.Filter) ([][]acl.Binding, error) {
	out, err := s.Store.DeleteACLs(ctx, fs)
	if err == nil {
		err = s.Store.CreateACLs(ctx, []acl.Binding{s.again})
	}
	return out, err
}

// A deletion whose reload read the store after a concurrent creation of
// the same binding keeps that binding: the copy read is the store's, and
// dropping the binding from it (keeping its version) left this agent
// allowing what the store denies until an unrelated change.
func TestDeleteKeepsBindingCreatedAgainMeanwhile(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	allow := readTopic("secret", "User:mallory")
	deny := allow
	deny.Permission = acl.PermissionDeny
	store := &recreating{Store: metadatatest.OpenSQLite(t), again: deny}
	a := newAuthorizer(t, acl.Config{Store: store, Enforce: true, RefreshInterval: time.Hour})
	if errs := a.CreateACLs(ctx, []acl.Binding{allow, deny}); errs[0] != nil || errs[1] != nil {
		t.Fatal(errs)
	}
	if r := a.DeleteACLs(ctx, []acl.Filter{acl.ExactFilter(deny)}); r[0].Err != nil || len(r[0].Deleted) != 1 {
		t.Fatalf("DeleteACLs = %+v", r)
	}
	if a.Authorize(ctx, "User:mallory", "", acl.OpRead, acl.Topic("secret")) {
		t.Fatal("the DENY created again after the deletion is not enforced")
	}
}
