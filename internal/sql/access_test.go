//go:build cgo

package sql

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/internal/acl"
	"github.com/streamhouse/streamhouse/internal/auth"
	"github.com/streamhouse/streamhouse/internal/authz"
	"github.com/streamhouse/streamhouse/internal/metadata"
)

// With ACLs enforced, every topic a statement names is authorized before
// anything of it is read, wherever it appears (FROM, JOIN, a subquery, a
// CTE body, a set operation, EXPLAIN, a live query): READ to read it,
// DESCRIBE to describe it; SHOW TOPICS lists the topics the caller may
// DESCRIBE; an unauthorized topic is refused alike whether it exists or
// not; a super user reads everything; a caller without a login is
// refused as such. On both metadata backends.
func TestAccessAuthorizesEveryTopicReference(t *testing.T) {
	eachBackend(t, func(t *testing.T, store metadata.Store) {
		ctx := context.Background()
		b := newBroker(t, store)
		produce(t, b, "pub", 1, genRecords(10, 1))
		produce(t, b, "secret", 1, genRecords(10, 1))
		produce(t, b, "seen", 1, genRecords(3, 1))
		a, err := acl.New(ctx, acl.Config{Store: store, Enforce: true, SuperUsers: []string{"root"}})
		if err != nil {
			t.Fatal(err)
		}
		allow := func(topic string, op acl.Operation) acl.Binding {
			return acl.Binding{ResourceType: acl.ResourceTopic, ResourceName: topic, PatternType: acl.PatternLiteral,
				Principal: "User:alice", Host: acl.WildcardHost, Operation: op, Permission: acl.PermissionAllow}
		}
		for _, err := range a.CreateACLs(ctx, []acl.Binding{allow("pub", acl.OpRead), allow("seen", acl.OpDescribe)}) {
			if err != nil {
				t.Fatal(err)
			}
		}
		e := newEngine(t, b, Config{Access: authz.Topics{C: authz.New(a, auth.ListenerHTTP)}})
		alice := auth.WithPrincipal(ctx, auth.User("alice"))
		root := auth.WithPrincipal(ctx, auth.User("root"))

		denied := func(t *testing.T, err error, topic string) {
			t.Helper()
			var de *authz.DeniedError
			if !errors.As(err, &de) || de.Res != acl.Topic(topic) {
				t.Fatalf("got %v, want TOPIC_AUTHORIZATION_FAILED for %q", err, topic)
			}
		}
		for _, tc := range []struct {
			query  string
			denied string // "" allowed
		}{
			{`SELECT count(*) FROM pub`, ""},
			{`SELECT * FROM secret`, "secret"},
			{`SELECT * FROM ghost`, "ghost"}, // missing: refused the same way
			{`SELECT p.key FROM pub p JOIN secret s ON p.key = s.key`, "secret"},
			{`SELECT key FROM pub WHERE key IN (SELECT key FROM secret)`, "secret"},
			{`WITH x AS (SELECT * FROM secret) SELECT count(*) FROM x`, "secret"},
			{`WITH x AS (SELECT * FROM pub) SELECT count(*) FROM x`, ""},
			{`SELECT key FROM pub UNION ALL SELECT key FROM secret`, "secret"},
			{`SELECT count(*) FROM (SELECT * FROM secret) t`, "secret"},
			{`EXPLAIN SELECT * FROM secret`, "secret"},
			{`SELECT * FROM seen`, "seen"}, // DESCRIBE does not read
			{`DESCRIBE secret`, "secret"},
			{`DESCRIBE ghost`, "ghost"},
			{`DESCRIBE seen`, ""},
			{`DESCRIBE pub`, ""}, // READ implies DESCRIBE
		} {
			_, err := e.Query(alice, Request{Query: tc.query})
			if tc.denied == "" {
				if err != nil {
					t.Errorf("alice: %s: %v", tc.query, err)
				}
			} else {
				denied(t, err, tc.denied)
			}
			// A super user is refused nothing but what does not exist.
			if _, err := e.Query(root, Request{Query: tc.query}); err != nil && tc.denied != "ghost" {
				t.Errorf("root: %s: %v", tc.query, err)
			}
		}
		// SHOW TOPICS: what each may DESCRIBE.
		names := func(ctx context.Context) []string {
			res, err := e.Query(ctx, Request{Query: `SHOW TOPICS`})
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, r := range res.Rows {
				out = append(out, r[0].(string))
			}
			slices.Sort(out)
			return out
		}
		if got := names(alice); !slices.Equal(got, []string{"pub", "seen"}) {
			t.Errorf("alice's SHOW TOPICS: %v", got)
		}
		if got := names(root); !slices.Equal(got, []string{"pub", "secret", "seen"}) {
			t.Errorf("root's SHOW TOPICS: %v", got)
		}
		// No login at all.
		if _, err := e.Query(ctx, Request{Query: `SELECT * FROM pub`}); !errors.Is(err, authz.ErrUnauthenticated) {
			t.Errorf("anonymous: %v", err)
		}
		// Live queries.
		st := e.(Streamer)
		live := func(ctx context.Context, q string) error {
			return st.Stream(ctx, Request{Query: q, Timeout: 300 * time.Millisecond}, func([]Column, []any) error { return nil })
		}
		denied(t, live(alice, `SELECT * FROM secret`), "secret")
		if err := live(alice, `SELECT * FROM pub`); err != nil {
			t.Errorf("alice's live query on pub: %v", err)
		}
	})
}
