//go:build cgo

package sql

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/internal/acl"
	"github.com/streamhouse/streamhouse/internal/auth"
	"github.com/streamhouse/streamhouse/internal/authz"
	"github.com/streamhouse/streamhouse/internal/batch"
	"github.com/streamhouse/streamhouse/internal/broker"
	"github.com/streamhouse/streamhouse/internal/metadata"
)

// A live query stays authorized: once alice's READ on its topic is
// deleted, her query ends with Access's refusal without a row of a record
// committed after; an idle one too (a DENY added, nothing produced);
// bob's query on the same topic runs on. On both metadata backends.
func TestLiveQueryEndsWhenAccessEnds(t *testing.T) {
	eachBackend(t, func(t *testing.T, store metadata.Store) {
		ctx := context.Background()
		b := newBroker(t, store)
		if _, err := b.CreateTopic(ctx, broker.TopicSpec{Name: "live", Partitions: 1}, false); err != nil {
			t.Fatal(err)
		}
		put := func(v string) int64 {
			t.Helper()
			res, err := b.ProduceRecords(ctx, "live", 0, []broker.Record{{Value: []byte(v)}}, broker.AckDurable, batch.DefaultBuildOptions())
			if err != nil {
				t.Fatal(err)
			}
			return res[0].Offset
		}
		a, err := acl.New(ctx, acl.Config{Store: store, Enforce: true})
		if err != nil {
			t.Fatal(err)
		}
		grant := func(user string, perm acl.Permission) acl.Binding {
			bd := acl.Binding{ResourceType: acl.ResourceTopic, ResourceName: "live", PatternType: acl.PatternLiteral,
				Principal: "User:" + user, Host: acl.WildcardHost, Operation: acl.OpRead, Permission: perm}
			for _, err := range a.CreateACLs(ctx, []acl.Binding{bd}) {
				if err != nil {
					t.Fatal(err)
				}
			}
			return bd
		}
		grant("alice", acl.PermissionAllow)
		grant("bob", acl.PermissionAllow)
		grant("carol", acl.PermissionAllow)
		e := newEngine(t, b, Config{Access: authz.Topics{C: authz.New(a, auth.ListenerHTTP)}})
		type run struct {
			rows chan int64
			end  chan error
		}
		start := func(user string) run {
			r := run{rows: make(chan int64, 100), end: make(chan error, 1)}
			accepted := make(chan struct{})
			uctx, cancel := context.WithCancel(auth.WithPrincipal(ctx, auth.User(user)))
			t.Cleanup(cancel)
			go func() {
				r.end <- e.(Streamer).Stream(uctx, Request{Query: `SELECT "offset" AS o FROM live`, Timeout: time.Minute},
					func(_ []Column, row []any) error {
						if row == nil {
							close(accepted)
							return nil
						}
						r.rows <- row[0].(int64)
						return nil
					})
			}()
			select {
			case <-accepted:
			case err := <-r.end:
				t.Fatalf("%s's live query: %v", user, err)
			case <-time.After(20 * time.Second):
				t.Fatalf("%s's live query not accepted in 20 s", user)
			}
			t.Cleanup(func() { cancel(); <-r.end })
			return r
		}
		row := func(r run, who string, want int64) {
			t.Helper()
			select {
			case got := <-r.rows:
				if got != want {
					t.Fatalf("%s got offset %d, want %d", who, got, want)
				}
			case err := <-r.end:
				t.Fatalf("%s's live query ended: %v", who, err)
			case <-time.After(20 * time.Second):
				t.Fatalf("%s: no row in 20 s", who)
			}
		}
		denied := func(r run, who string, from int64) {
			t.Helper()
			timeout := time.After(10 * time.Second)
			for {
				select {
				case got := <-r.rows:
					if got >= from {
						t.Fatalf("%s got offset %d, committed after the change (from %d)", who, got, from)
					}
				case err := <-r.end:
					var de *authz.DeniedError
					if !errors.As(err, &de) || de.Res != acl.Topic("live") {
						t.Fatalf("%s's live query ended with %v, want TOPIC_AUTHORIZATION_FAILED", who, err)
					}
					r.end <- err // for the cleanup
					return
				case <-timeout:
					t.Fatalf("%s's live query still runs 10 s after the change", who)
				}
			}
		}
		alice, bob, carol := start("alice"), start("bob"), start("carol")
		first := put("a")
		row(alice, "alice", first)
		row(bob, "bob", first)
		row(carol, "carol", first)

		name, principal := "live", "User:alice"
		for _, r := range a.DeleteACLs(ctx, []acl.Filter{{ResourceType: acl.ResourceTopic, ResourceName: &name,
			PatternType: acl.PatternLiteral, Principal: &principal, Operation: acl.OpAny, Permission: acl.PermissionAny}}) {
			if r.Err != nil || len(r.Deleted) != 1 {
				t.Fatalf("delete alice's ACL: %+v", r)
			}
		}
		second := put("b")
		denied(alice, "alice", second)
		row(bob, "bob", second)

		grant("carol", acl.PermissionDeny) // nothing produced after
		denied(carol, "carol", second+1)
		third := put("c")
		row(bob, "bob", third)
	})
}
