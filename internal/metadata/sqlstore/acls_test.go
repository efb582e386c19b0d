package sqlstore_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/streamhouse/streamhouse/internal/acl"
	"github.com/streamhouse/streamhouse/internal/metadata/metadatatest"
	"github.com/streamhouse/streamhouse/internal/metadata/sqlstore"
	"github.com/streamhouse/streamhouse/internal/testutil"
)

// aclNotices records what an acl.Watch receives.
type aclNotices struct {
	mu        sync.Mutex
	changes   int
	listening bool
	downs     int
}

func (n *aclNotices) watch() acl.Watch {
	return acl.Watch{
		Changed: func() { n.mu.Lock(); n.changes++; n.mu.Unlock() },
		Listening: func(ok bool) {
			n.mu.Lock()
			defer n.mu.Unlock()
			n.listening = ok
			if !ok {
				n.downs++
			}
		},
	}
}

func (n *aclNotices) state() (changes int, listening bool, downs int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.changes, n.listening, n.downs
}

// An ACL change made through one PostgreSQL store is announced to the
// watchers of another store on the database (another agent); a call that
// changes nothing announces nothing; after the listening connection is
// lost, the watch says so, reconnects and hears changes again.
func TestACLNoticesAcrossStores(t *testing.T) {
	t.Parallel()
	url := metadatatest.PostgresDatabase(t)
	open := func() *sqlstore.Store {
		s, err := sqlstore.OpenPostgres(t.Context(), url, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	changer, watcher := open(), open()
	ctx, cancel := context.WithCancel(t.Context())
	n := &aclNotices{}
	done := make(chan error, 1)
	go func() { done <- watcher.WatchACLs(ctx, n.watch()) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("WatchACLs returned %v", err)
		}
	})
	testutil.WaitFor(t, "the watch to listen", func() bool { _, ok, _ := n.state(); return ok })

	b := acl.Binding{ResourceType: acl.ResourceTopic, ResourceName: "t", PatternType: acl.PatternLiteral,
		Principal: "User:alice", Host: "*", Operation: acl.OpRead, Permission: acl.PermissionAllow}
	if err := changer.CreateACLs(t.Context(), []acl.Binding{b}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "the notice of a create", func() bool { c, _, _ := n.state(); return c == 1 })
	// Creating it again changes nothing and announces nothing; notices
	// arrive in commit order, so the delete's notice, once in, would
	// have followed one for it.
	if err := changer.CreateACLs(t.Context(), []acl.Binding{b}); err != nil {
		t.Fatal(err)
	}
	if _, err := changer.DeleteACLs(t.Context(), []acl.Filter{acl.ExactFilter(b)}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "the notice of the delete", func() bool { c, _, _ := n.state(); return c >= 2 })
	if c, _, _ := n.state(); c != 2 {
		t.Fatalf("%d notices for one create, one idempotent create and one delete, want 2", c)
	}

	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	if _, err := conn.Exec(t.Context(), `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = current_database() AND query = 'LISTEN streamhouse_acls'`); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "the watch to reconnect", func() bool { _, ok, downs := n.state(); return ok && downs == 1 })
	if err := changer.CreateACLs(t.Context(), []acl.Binding{b}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "a notice after reconnecting", func() bool { c, _, _ := n.state(); return c == 3 })
}
