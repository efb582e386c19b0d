package metadatatest

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/internal/acl"
	"github.com/streamhouse/streamhouse/internal/metadata"
)

var aclTests = []suiteTest{
	{"ACLCreateAndList", testACLCreateAndList},
	{"ACLCreateIdempotent", testACLCreateIdempotent},
	{"ACLCreateInvalid", testACLCreateInvalid},
	{"ACLDelete", testACLDelete},
	{"ACLDeleteInvalid", testACLDeleteInvalid},
	{"ACLLimitsAndText", testACLLimitsAndText},
	{"ACLWatch", testACLWatch},
}

// aclOf is a TOPIC LITERAL ALLOW binding for principal on name from host *.
func aclOf(name, principal string, op acl.Operation) acl.Binding {
	return acl.Binding{ResourceType: acl.ResourceTopic, ResourceName: name, PatternType: acl.PatternLiteral,
		Principal: principal, Host: acl.WildcardHost, Operation: op, Permission: acl.PermissionAllow}
}

func mustCreateACLs(t *testing.T, s metadata.Store, bs ...acl.Binding) {
	t.Helper()
	if err := s.CreateACLs(t.Context(), bs); err != nil {
		t.Fatalf("CreateACLs: %v", err)
	}
}

func mustListACLs(t *testing.T, s metadata.Store, f acl.Filter) []acl.Binding {
	t.Helper()
	bs, err := s.ListACLs(t.Context(), f)
	if err != nil {
		t.Fatalf("ListACLs: %v", err)
	}
	return bs
}

func mustACLVersion(t *testing.T, s metadata.Store) int64 {
	t.Helper()
	return mustACLVersionID(t, s).Number
}

func mustACLVersionID(t *testing.T, s metadata.Store) acl.Version {
	t.Helper()
	v, err := s.ACLVersion(t.Context())
	if err != nil {
		t.Fatalf("ACLVersion: %v", err)
	}
	return v
}

func checkACLs(t *testing.T, what string, got []acl.Binding, want ...acl.Binding) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s:\n got %v\nwant %v", what, got, want)
	}
}

func str(s string) *string { return &s }

func testACLCreateAndList(t *testing.T, s metadata.Store) {
	if got := mustListACLs(t, s, acl.AnyFilter); len(got) != 0 {
		t.Fatalf("a new store lists %v", got)
	}
	v0 := mustACLVersion(t, s)
	// Given out of order; listed by type, name, pattern, principal,
	// host, operation, permission, in byte order.
	topicB := aclOf("b", "User:alice", acl.OpRead)
	topicA := aclOf("a", "User:bob", acl.OpWrite)
	topicAUpper := aclOf("B", "User:bob", acl.OpWrite)
	prefixA := topicA
	prefixA.PatternType = acl.PatternPrefixed
	deny := topicA
	deny.Permission, deny.Host = acl.PermissionDeny, "10.0.0.1"
	wildcard := aclOf("*", acl.WildcardPrincipal, acl.OpDescribe)
	group := acl.Binding{ResourceType: acl.ResourceGroup, ResourceName: "a", PatternType: acl.PatternLiteral,
		Principal: "User:alice", Host: "*", Operation: acl.OpRead, Permission: acl.PermissionAllow}
	cluster := acl.Binding{ResourceType: acl.ResourceCluster, ResourceName: acl.ClusterName, PatternType: acl.PatternLiteral,
		Principal: "User:alice", Host: "*", Operation: acl.OpIdempotentWrite, Permission: acl.PermissionAllow}
	txn := acl.Binding{ResourceType: acl.ResourceTransactionalID, ResourceName: "tx-", PatternType: acl.PatternPrefixed,
		Principal: "User:alice", Host: "*", Operation: acl.OpWrite, Permission: acl.PermissionAllow}
	mustCreateACLs(t, s, txn, group, topicB, deny, topicAUpper, cluster, wildcard, prefixA, topicA)
	if v := mustACLVersion(t, s); v <= v0 {
		t.Errorf("ACLVersion after a create = %d, want above %d", v, v0)
	}
	checkACLs(t, "all", mustListACLs(t, s, acl.AnyFilter), wildcard, topicAUpper, topicA, deny, prefixA, topicB, group, cluster, txn)
	topics := acl.AnyFilter
	topics.ResourceType = acl.ResourceTopic
	checkACLs(t, "topics", mustListACLs(t, s, topics), wildcard, topicAUpper, topicA, deny, prefixA, topicB)
	match := acl.Filter{ResourceType: acl.ResourceTopic, ResourceName: str("abc"), PatternType: acl.PatternMatch, Operation: acl.OpAny, Permission: acl.PermissionAny}
	checkACLs(t, "what applies to topic abc", mustListACLs(t, s, match), wildcard, prefixA)
	byPrincipal := acl.AnyFilter
	byPrincipal.Principal = str("User:bob")
	byPrincipal.Permission = acl.PermissionAllow
	checkACLs(t, "bob's allows", mustListACLs(t, s, byPrincipal), topicAUpper, topicA, prefixA)
	if _, err := s.ListACLs(t.Context(), acl.Filter{}); !errors.Is(err, acl.ErrInvalid) {
		t.Errorf("ListACLs with an UNKNOWN filter: %v, want ErrInvalid", err)
	}
}

func testACLCreateIdempotent(t *testing.T, s metadata.Store) {
	a, b := aclOf("t", "User:alice", acl.OpRead), aclOf("t", "User:bob", acl.OpRead)
	if v := mustACLVersionID(t, s); v.ChangeID == "" {
		t.Errorf("a new store's ACL version %+v has no change ID", v)
	}
	mustCreateACLs(t, s, a, a) // twice in one call
	v := mustACLVersionID(t, s)
	mustCreateACLs(t, s, a)
	if got := mustACLVersionID(t, s); got != v {
		t.Errorf("creating a stored binding again changed the version %+v -> %+v", v, got)
	}
	mustCreateACLs(t, s, a, b)
	if got := mustACLVersionID(t, s); got.Number <= v.Number || got.ChangeID == v.ChangeID || got.ChangeID == "" {
		t.Errorf("creating a new binding beside a stored one: version %+v -> %+v, want a higher number and a new change ID", v, got)
	}
	checkACLs(t, "after creating twice", mustListACLs(t, s, acl.AnyFilter), a, b)
	if err := s.CreateACLs(t.Context(), nil); err != nil {
		t.Errorf("CreateACLs(nil): %v", err)
	}
}

func testACLCreateInvalid(t *testing.T, s metadata.Store) {
	good := aclOf("t", "User:alice", acl.OpRead)
	for _, bad := range []acl.Binding{
		aclOf("", "User:alice", acl.OpRead),
		aclOf("t", "alice", acl.OpRead),
		aclOf("t", "User:alice", acl.OpAny),
		func() acl.Binding { b := good; b.PatternType = acl.PatternMatch; return b }(),
		func() acl.Binding { b := good; b.ResourceType = acl.ResourceAny; return b }(),
		func() acl.Binding { b := good; b.Permission = acl.PermissionAny; return b }(),
		func() acl.Binding { b := good; b.Host = "somewhere"; return b }(),
	} {
		v := mustACLVersion(t, s)
		if err := s.CreateACLs(t.Context(), []acl.Binding{good, bad}); !errors.Is(err, acl.ErrInvalid) {
			t.Errorf("CreateACLs with %s: %v, want ErrInvalid", bad, err)
		}
		if got := mustListACLs(t, s, acl.AnyFilter); len(got) != 0 {
			t.Fatalf("a refused CreateACLs stored %v", got)
		}
		if got := mustACLVersion(t, s); got != v {
			t.Errorf("a refused CreateACLs changed the version")
		}
	}
}

func testACLDelete(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	a := aclOf("a", "User:alice", acl.OpRead)
	aw := aclOf("a", "User:alice", acl.OpWrite)
	b := aclOf("b", "User:bob", acl.OpRead)
	p := aclOf("a", "User:bob", acl.OpRead)
	p.PatternType = acl.PatternPrefixed
	mustCreateACLs(t, s, a, aw, b, p)

	v := mustACLVersion(t, s)
	none := acl.AnyFilter
	none.Principal = str("User:nobody")
	got, err := s.DeleteACLs(ctx, []acl.Filter{none})
	if err != nil || len(got) != 1 || len(got[0]) != 0 {
		t.Fatalf("DeleteACLs matching nothing = %v, %v", got, err)
	}
	if mustACLVersion(t, s) != v {
		t.Error("deleting nothing changed the version")
	}

	// Two filters: alice's READ on a, and everything named a (literal
	// and prefixed). a is listed under both; aw and p under the second.
	readA := acl.ExactFilter(a)
	named := acl.Filter{ResourceType: acl.ResourceAny, ResourceName: str("a"), PatternType: acl.PatternAny, Operation: acl.OpAny, Permission: acl.PermissionAny}
	got, err = s.DeleteACLs(ctx, []acl.Filter{readA, named})
	if err != nil {
		t.Fatalf("DeleteACLs: %v", err)
	}
	if len(got) != 2 {
		t.Fatalf("DeleteACLs answered %d results for 2 filters", len(got))
	}
	checkACLs(t, "deleted by the first filter", got[0], a)
	checkACLs(t, "deleted by the second filter", got[1], a, aw, p)
	checkACLs(t, "left", mustListACLs(t, s, acl.AnyFilter), b)
	if mustACLVersion(t, s) <= v {
		t.Error("a delete did not raise the version")
	}
	// Deleting what is gone deletes nothing.
	got, err = s.DeleteACLs(ctx, []acl.Filter{readA})
	if err != nil || len(got) != 1 || len(got[0]) != 0 {
		t.Errorf("deleting again = %v, %v", got, err)
	}
	got, err = s.DeleteACLs(ctx, []acl.Filter{acl.AnyFilter})
	if err != nil || len(got) != 1 {
		t.Fatalf("delete all = %v, %v", got, err)
	}
	checkACLs(t, "deleted by AnyFilter", got[0], b)
	checkACLs(t, "left after deleting all", mustListACLs(t, s, acl.AnyFilter))
	if got, err := s.DeleteACLs(ctx, nil); err != nil || len(got) != 0 {
		t.Errorf("DeleteACLs(nil) = %v, %v", got, err)
	}
}

func testACLDeleteInvalid(t *testing.T, s metadata.Store) {
	a := aclOf("a", "User:alice", acl.OpRead)
	mustCreateACLs(t, s, a)
	v := mustACLVersion(t, s)
	bad := acl.AnyFilter
	bad.Operation = acl.OpUnknown
	if _, err := s.DeleteACLs(t.Context(), []acl.Filter{acl.AnyFilter, bad}); !errors.Is(err, acl.ErrInvalid) {
		t.Errorf("DeleteACLs with an UNKNOWN operation: %v, want ErrInvalid", err)
	}
	checkACLs(t, "after a refused delete", mustListACLs(t, s, acl.AnyFilter), a)
	if mustACLVersion(t, s) != v {
		t.Error("a refused delete changed the version")
	}
}

// Bindings at the length limits, in any UTF-8, are stored and read back as
// they are (PostgreSQL's index entry limit is not reached).
func testACLLimitsAndText(t *testing.T, s metadata.Store) {
	long := aclOf(strings.Repeat("é", acl.MaxNameBytes/2), "User:"+strings.Repeat("ü", (acl.MaxPrincipalBytes-5)/2), acl.OpAll)
	long.Host = "2001:db8:0:0:0:0:0:1"
	v6 := aclOf("日本語-topic", "User:o'brien \"quoted\"", acl.OpRead)
	v6.Host = "::1"
	for _, b := range []acl.Binding{long, v6} {
		if err := b.Validate(); err != nil {
			t.Fatalf("test binding invalid: %v", err)
		}
	}
	mustCreateACLs(t, s, long, v6)
	got := mustListACLs(t, s, acl.AnyFilter)
	checkACLs(t, "long and non-ASCII bindings", got, long, v6)
	del, err := s.DeleteACLs(t.Context(), []acl.Filter{acl.ExactFilter(long)})
	if err != nil || len(del) != 1 {
		t.Fatalf("DeleteACLs = %v, %v", del, err)
	}
	checkACLs(t, "deleted", del[0], long)
}

// A store that announces ACL changes (acl.Notifier) tells its watchers
// about the changes made through it.
func testACLWatch(t *testing.T, s metadata.Store) {
	n, ok := s.(acl.Notifier)
	if !ok {
		return // polling only
	}
	ctx, cancel := context.WithCancel(t.Context())
	var changed atomic.Int64
	listening := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() {
		done <- n.WatchACLs(ctx, acl.Watch{
			Changed: func() { changed.Add(1) },
			Listening: func(ok bool) {
				if ok {
					select {
					case listening <- struct{}{}:
					default:
					}
				}
			},
		})
	}()
	select {
	case <-listening:
	case <-time.After(30 * time.Second):
		t.Fatal("WatchACLs never listened")
	}
	mustCreateACLs(t, s, aclOf("t", "User:alice", acl.OpRead))
	waitFor(t, "a notice of the create", func() bool { return changed.Load() >= 1 })
	before := changed.Load()
	if _, err := s.DeleteACLs(t.Context(), []acl.Filter{acl.AnyFilter}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a notice of the delete", func() bool { return changed.Load() > before })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("WatchACLs returned %v after its context ended", err)
	}
}

// waitFor polls cond for up to 30 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
