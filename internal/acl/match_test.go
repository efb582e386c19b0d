package acl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
)

// Decision tables for the authorizer's matching, against an index built
// from the bindings given (authorizer_test.go covers the store around it).

// enforcing returns an enforcing Authorizer over bindings, without a store.
func enforcing(t *testing.T, super []string, bs ...Binding) *Authorizer {
	t.Helper()
	a := &Authorizer{cfg: Config{Enforce: true}, log: slog.New(slog.NewTextHandler(io.Discard, nil)), super: map[string]bool{}}
	for _, u := range super {
		a.super[QualifyPrincipal(u)] = true
	}
	for _, b := range bs {
		if err := b.Validate(); err != nil {
			t.Fatalf("test binding %s: %v", b, err)
		}
	}
	a.snap.Store(buildSnapshot(Version{Number: 1}, bs))
	return a
}

// bind is a binding with the common defaults: TOPIC, LITERAL, User:alice,
// host *, ALLOW.
func bind(op Operation, name string, opts ...func(*Binding)) Binding {
	b := Binding{ResourceType: ResourceTopic, ResourceName: name, PatternType: PatternLiteral,
		Principal: "User:alice", Host: "*", Operation: op, Permission: PermissionAllow}
	for _, o := range opts {
		o(&b)
	}
	return b
}

func prefixed(b *Binding) { b.PatternType = PatternPrefixed }
func denied(b *Binding)   { b.Permission = PermissionDeny }
func onGroup(b *Binding)  { b.ResourceType = ResourceGroup }
func onTxnID(b *Binding)  { b.ResourceType = ResourceTransactionalID }
func principal(p string) func(*Binding) {
	return func(b *Binding) { b.Principal = p }
}
func host(h string) func(*Binding) {
	return func(b *Binding) { b.Host = h }
}

// ask is one Authorize call and its expected answer.
type ask struct {
	principal, host string
	op              Operation
	res             Resource
	want            bool
}

func alice(op Operation, res Resource, want bool) ask {
	return ask{"User:alice", "10.0.0.1", op, res, want}
}

func TestAuthorizeMatching(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		bindings []Binding
		asks     []ask
	}{
		{"no binding denies", nil, []ask{
			alice(OpRead, Topic("t"), false),
			alice(OpDescribe, Cluster(), false),
		}},
		{"literal matches its name only", []Binding{bind(OpRead, "t")}, []ask{
			alice(OpRead, Topic("t"), true),
			alice(OpRead, Topic("t2"), false),
			alice(OpRead, Topic("T"), false),
			alice(OpRead, Topic(""), false),
		}},
		{"literal is not a prefix", []Binding{bind(OpRead, "orders")}, []ask{
			alice(OpRead, Topic("orders-eu"), false),
			alice(OpRead, Topic("order"), false),
		}},
		{"prefixed matches names starting with it", []Binding{bind(OpRead, "orders-", prefixed)}, []ask{
			alice(OpRead, Topic("orders-"), true),
			alice(OpRead, Topic("orders-eu"), true),
			alice(OpRead, Topic("orders"), false),
			alice(OpRead, Topic("x-orders-eu"), false),
		}},
		{"several prefixes of one name", []Binding{bind(OpRead, "a", prefixed), bind(OpWrite, "abc", prefixed), bind(OpDelete, "abcdef", prefixed)}, []ask{
			alice(OpRead, Topic("abcd"), true),
			alice(OpWrite, Topic("abcd"), true),
			alice(OpDelete, Topic("abcd"), false),
			alice(OpDelete, Topic("abcdefg"), true),
			alice(OpWrite, Topic("ab"), false),
		}},
		{"literal * matches every name of its type", []Binding{bind(OpRead, "*")}, []ask{
			alice(OpRead, Topic("t"), true),
			alice(OpRead, Topic("*"), true),
			alice(OpRead, Group("t"), false),
		}},
		{"prefixed * is a prefix, not a wildcard", []Binding{bind(OpRead, "*", prefixed)}, []ask{
			alice(OpRead, Topic("t"), false),
			alice(OpRead, Topic("*t"), true),
		}},
		{"resource types are separate", []Binding{bind(OpRead, "x", onGroup)}, []ask{
			alice(OpRead, Group("x"), true),
			alice(OpRead, Topic("x"), false),
			alice(OpRead, TransactionalID("x"), false),
		}},
		{"transactional id", []Binding{bind(OpWrite, "tx-", prefixed, onTxnID)}, []ask{
			alice(OpWrite, TransactionalID("tx-1"), true),
			alice(OpDescribe, TransactionalID("tx-1"), true),
			alice(OpWrite, Topic("tx-1"), false),
		}},
		{"cluster", []Binding{bind(OpIdempotentWrite, ClusterName, func(b *Binding) { b.ResourceType = ResourceCluster })}, []ask{
			alice(OpIdempotentWrite, Cluster(), true),
			alice(OpCreate, Cluster(), false),
		}},
		{"principal must be equal", []Binding{bind(OpRead, "t")}, []ask{
			{"User:bob", "10.0.0.1", OpRead, Topic("t"), false},
			{"User:Alice", "10.0.0.1", OpRead, Topic("t"), false},
			{"Group:alice", "10.0.0.1", OpRead, Topic("t"), false},
			{"alice", "10.0.0.1", OpRead, Topic("t"), false},
		}},
		{"User:* matches every principal", []Binding{bind(OpRead, "t", principal(WildcardPrincipal))}, []ask{
			alice(OpRead, Topic("t"), true),
			{"User:bob", "10.0.0.1", OpRead, Topic("t"), true},
			{"User:ANONYMOUS", "10.0.0.1", OpRead, Topic("t"), true},
		}},
		{"host must be equal", []Binding{bind(OpRead, "t", host("10.0.0.1"))}, []ask{
			alice(OpRead, Topic("t"), true),
			{"User:alice", "10.0.0.2", OpRead, Topic("t"), false},
			{"User:alice", "::ffff:10.0.0.1", OpRead, Topic("t"), true},
			{"User:alice", "", OpRead, Topic("t"), false},
			{"User:alice", "not-an-ip", OpRead, Topic("t"), false},
		}},
		{"IPv6 hosts compare as addresses", []Binding{bind(OpRead, "t", host("0:0:0:0:0:0:0:1"))}, []ask{
			{"User:alice", "::1", OpRead, Topic("t"), true},
			{"User:alice", "127.0.0.1", OpRead, Topic("t"), false},
		}},
		{"host * matches any client, even without an address", []Binding{bind(OpRead, "t")}, []ask{
			{"User:alice", "", OpRead, Topic("t"), true},
			{"User:alice", "2001:db8::1", OpRead, Topic("t"), true},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := enforcing(t, nil, tc.bindings...)
			for _, q := range tc.asks {
				if got := a.Authorize(context.Background(), q.principal, q.host, q.op, q.res); got != q.want {
					t.Errorf("%s from %q: %s on %s = %v, want %v", q.principal, q.host, q.op, q.res, got, q.want)
				}
			}
		})
	}
}

// concreteOps are the operations a binding may carry.
var concreteOps = []Operation{OpAll, OpRead, OpWrite, OpCreate, OpDelete, OpAlter, OpDescribe,
	OpClusterAction, OpDescribeConfigs, OpAlterConfigs, OpIdempotentWrite}

// TestImplications checks every (granted, asked) pair against Kafka's
// table, for ALLOW and for DENY bindings.
func TestImplications(t *testing.T) {
	t.Parallel()
	// allows[g] lists what an ALLOW of g allows besides g itself.
	allows := map[Operation][]Operation{
		OpAll:          concreteOps,
		OpRead:         {OpDescribe},
		OpWrite:        {OpDescribe},
		OpDelete:       {OpDescribe},
		OpAlter:        {OpDescribe},
		OpAlterConfigs: {OpDescribeConfigs},
	}
	for _, granted := range concreteOps {
		for _, asked := range concreteOps[1:] { // one asks for a concrete operation, never ALL
			wantAllow := granted == asked || slices.Contains(allows[granted], asked)
			res := Topic("t")
			if got := enforcing(t, nil, bind(granted, "t")).Authorize(context.Background(), "User:alice", "10.0.0.1", asked, res); got != wantAllow {
				t.Errorf("ALLOW %s, asked %s: %v, want %v", granted, asked, got, wantAllow)
			}
			// A DENY applies to its own operation or, as ALL, to every
			// one; it never spreads by implication. An ALLOW ALL beside
			// it shows what it denies.
			wantDeny := granted == OpAll || granted == asked
			a := enforcing(t, nil, bind(OpAll, "t"), bind(granted, "t", denied))
			if got := a.Authorize(context.Background(), "User:alice", "10.0.0.1", asked, res); got == wantDeny {
				t.Errorf("ALLOW ALL and DENY %s, asked %s: allowed %v, want %v", granted, asked, got, !wantDeny)
			}
		}
	}
}

func TestDenyOverAllow(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		bindings []Binding
		asks     []ask
	}{
		{"deny beats allow of the same", []Binding{bind(OpRead, "t"), bind(OpRead, "t", denied)}, []ask{
			alice(OpRead, Topic("t"), false),
		}},
		{"deny READ leaves the DESCRIBE READ implies", []Binding{bind(OpRead, "t"), bind(OpRead, "t", denied)}, []ask{
			alice(OpDescribe, Topic("t"), true),
		}},
		{"deny DESCRIBE leaves READ", []Binding{bind(OpRead, "t"), bind(OpDescribe, "t", denied)}, []ask{
			alice(OpRead, Topic("t"), true),
			alice(OpDescribe, Topic("t"), false),
		}},
		{"deny ALL beats everything", []Binding{bind(OpAll, "t"), bind(OpAll, "t", denied)}, []ask{
			alice(OpRead, Topic("t"), false),
			alice(OpDescribe, Topic("t"), false),
			alice(OpAlterConfigs, Topic("t"), false),
		}},
		{"wildcard deny beats a literal allow", []Binding{bind(OpRead, "t"), bind(OpRead, "*", denied)}, []ask{
			alice(OpRead, Topic("t"), false),
		}},
		{"prefixed deny beats a literal allow", []Binding{bind(OpRead, "orders-eu"), bind(OpRead, "orders-", denied, prefixed)}, []ask{
			alice(OpRead, Topic("orders-eu"), false),
		}},
		{"literal deny beats a prefixed allow for its name only", []Binding{bind(OpRead, "orders-", prefixed), bind(OpRead, "orders-eu", denied)}, []ask{
			alice(OpRead, Topic("orders-eu"), false),
			alice(OpRead, Topic("orders-us"), true),
		}},
		{"deny for everyone beats an allow for one", []Binding{bind(OpRead, "t"), bind(OpRead, "t", denied, principal(WildcardPrincipal))}, []ask{
			alice(OpRead, Topic("t"), false),
		}},
		{"deny for one leaves an allow for everyone to the others", []Binding{bind(OpRead, "t", principal(WildcardPrincipal)), bind(OpRead, "t", denied, principal("User:mallory"))}, []ask{
			alice(OpRead, Topic("t"), true),
			{"User:mallory", "10.0.0.1", OpRead, Topic("t"), false},
		}},
		{"deny from one host", []Binding{bind(OpRead, "t"), bind(OpRead, "t", denied, host("10.0.0.66"))}, []ask{
			alice(OpRead, Topic("t"), true),
			{"User:alice", "10.0.0.66", OpRead, Topic("t"), false},
		}},
		{"deny on another name changes nothing", []Binding{bind(OpRead, "t"), bind(OpRead, "u", denied), bind(OpRead, "tt", denied, prefixed)}, []ask{
			alice(OpRead, Topic("t"), true),
		}},
		{"deny alone denies", []Binding{bind(OpRead, "t", denied)}, []ask{
			alice(OpRead, Topic("t"), false),
			alice(OpWrite, Topic("t"), false),
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := enforcing(t, nil, tc.bindings...)
			for _, q := range tc.asks {
				if got := a.Authorize(context.Background(), q.principal, q.host, q.op, q.res); got != q.want {
					t.Errorf("%s from %q: %s on %s = %v, want %v", q.principal, q.host, q.op, q.res, got, q.want)
				}
			}
			// The same decisions whatever order the bindings are in.
			rev := slices.Clone(tc.bindings)
			slices.Reverse(rev)
			b := enforcing(t, nil, rev...)
			for _, q := range tc.asks {
				if got := b.Authorize(context.Background(), q.principal, q.host, q.op, q.res); got != q.want {
					t.Errorf("reversed: %s on %s = %v, want %v", q.op, q.res, got, q.want)
				}
			}
		})
	}
}

func TestSuperUsersAndEnforcement(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a := enforcing(t, []string{"root", "User:admin", " "}, bind(OpAll, "t", denied, principal(WildcardPrincipal)))
	for _, p := range []string{"User:root", "User:admin"} {
		if !a.Authorize(ctx, p, "10.0.0.1", OpDelete, Topic("t")) || !a.AuthorizeAny(ctx, p, "", OpWrite, ResourceTopic) {
			t.Errorf("super user %s denied", p)
		}
		if got := a.AuthorizedOperations(ctx, p, "", Cluster()); got != 1<<OpCreate|1<<OpClusterAction|1<<OpDescribeConfigs|1<<OpAlterConfigs|1<<OpIdempotentWrite|1<<OpAlter|1<<OpDescribe {
			t.Errorf("super user %s cluster operations %b", p, got)
		}
	}
	a.cfg.SuperUser = func(p string) bool { return p == "User:agent-1" }
	if !a.Authorize(ctx, "User:agent-1", "", OpClusterAction, Cluster()) {
		t.Error("a principal the SuperUser hook names was denied")
	}
	for _, p := range []string{"User:alice", "root", "User:", "User:root2", "User:agent-2"} {
		if a.Authorize(ctx, p, "10.0.0.1", OpRead, Topic("t")) {
			t.Errorf("%q is no super user, but was allowed", p)
		}
	}
	// Not enforcing: everything is allowed, DENY bindings included.
	a.cfg.Enforce = false
	if !a.Authorize(ctx, "User:alice", "10.0.0.1", OpRead, Topic("t")) || !a.AuthorizeAny(ctx, "User:alice", "", OpWrite, ResourceTopic) {
		t.Error("not enforcing, yet denied")
	}
	if got := a.DescribableTopics(ctx, "User:alice", "", []string{"t", "u"}); !slices.Equal(got, []string{"t", "u"}) {
		t.Errorf("not enforcing, describable topics %v", got)
	}
}

// TestAuthorizeAny follows Kafka's authorizeByResourceType.
func TestAuthorizeAny(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		bindings []Binding
		want     bool
	}{
		{"no bindings", nil, false},
		{"literal allow", []Binding{bind(OpWrite, "t")}, true},
		{"prefixed allow", []Binding{bind(OpWrite, "t", prefixed)}, true},
		{"wildcard allow", []Binding{bind(OpWrite, "*")}, true},
		{"allow ALL", []Binding{bind(OpAll, "t")}, true},
		{"no implication: READ for WRITE", []Binding{bind(OpRead, "t")}, false},
		{"another resource type", []Binding{bind(OpWrite, "t", onGroup)}, false},
		{"another principal", []Binding{bind(OpWrite, "t", principal("User:bob"))}, false},
		{"User:*", []Binding{bind(OpWrite, "t", principal(WildcardPrincipal))}, true},
		{"another host", []Binding{bind(OpWrite, "t", host("10.9.9.9"))}, false},
		{"this host", []Binding{bind(OpWrite, "t", host("10.0.0.1"))}, true},
		{"literal deny of the literal allow", []Binding{bind(OpWrite, "t"), bind(OpWrite, "t", denied)}, false},
		{"literal deny of another name", []Binding{bind(OpWrite, "t"), bind(OpWrite, "u", denied)}, true},
		{"prefixed deny covering the literal allow", []Binding{bind(OpWrite, "topic"), bind(OpWrite, "to", denied, prefixed)}, false},
		{"prefixed deny covering the prefixed allow", []Binding{bind(OpWrite, "foo", prefixed), bind(OpWrite, "f", denied, prefixed)}, false},
		{"prefixed deny narrower than the prefixed allow", []Binding{bind(OpWrite, "foo", prefixed), bind(OpWrite, "foob", denied, prefixed)}, true},
		{"literal deny does not cover a prefixed allow", []Binding{bind(OpWrite, "foo", prefixed), bind(OpWrite, "foo", denied)}, true},
		{"wildcard deny", []Binding{bind(OpWrite, "t"), bind(OpWrite, "*", denied)}, false},
		{"wildcard deny beats wildcard allow", []Binding{bind(OpWrite, "*"), bind(OpWrite, "*", denied)}, false},
		{"deny ALL on the wildcard", []Binding{bind(OpWrite, "t"), bind(OpAll, "*", denied)}, false},
		{"one allow left uncovered", []Binding{bind(OpWrite, "t"), bind(OpWrite, "t", denied), bind(OpWrite, "u")}, true},
		{"deny of another operation", []Binding{bind(OpWrite, "t"), bind(OpRead, "*", denied)}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := enforcing(t, nil, tc.bindings...)
			if got := a.AuthorizeAny(context.Background(), "User:alice", "10.0.0.1", OpWrite, ResourceTopic); got != tc.want {
				t.Errorf("AuthorizeAny(WRITE, TOPIC) = %v, want %v", got, tc.want)
			}
			rev := slices.Clone(tc.bindings)
			slices.Reverse(rev)
			if got := enforcing(t, nil, rev...).AuthorizeAny(context.Background(), "User:alice", "10.0.0.1", OpWrite, ResourceTopic); got != tc.want {
				t.Errorf("reversed: AuthorizeAny(WRITE, TOPIC) = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestListingHelpers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a := enforcing(t, nil,
		bind(OpRead, "a"),
		bind(OpWrite, "logs-", prefixed),
		bind(OpCreate, "c"),
		bind(OpDescribe, "logs-secret", denied),
		bind(OpRead, "g", onGroup),
	)
	topics := []string{"z", "logs-2", "a", "c", "logs-secret", "logs-1"}
	if got, want := a.DescribableTopics(ctx, "User:alice", "10.0.0.1", topics), []string{"logs-2", "a", "logs-1"}; !slices.Equal(got, want) {
		t.Errorf("DescribableTopics = %v, want %v", got, want)
	}
	if got := a.DescribableTopics(ctx, "User:bob", "10.0.0.1", topics); len(got) != 0 {
		t.Errorf("DescribableTopics for bob = %v, want none", got)
	}
	if got, want := a.Allowed(ctx, "User:alice", "10.0.0.1", OpRead, ResourceGroup, []string{"g", "h"}), []string{"g"}; !slices.Equal(got, want) {
		t.Errorf("Allowed groups = %v, want %v", got, want)
	}
	if got, want := a.AuthorizedOperations(ctx, "User:alice", "10.0.0.1", Topic("a")), int32(1<<OpRead|1<<OpDescribe); got != want {
		t.Errorf("AuthorizedOperations(a) = %b, want %b", got, want)
	}
	if got, want := a.AuthorizedOperations(ctx, "User:alice", "10.0.0.1", Topic("logs-secret")), int32(1<<OpWrite); got != want {
		t.Errorf("AuthorizedOperations(logs-secret) = %b, want %b", got, want)
	}
}

func TestFilterMatches(t *testing.T) {
	t.Parallel()
	str := func(s string) *string { return &s }
	lit := func(name string) Binding { return bind(OpRead, name) }
	pre := func(name string) Binding { return bind(OpRead, name, prefixed) }
	all := []Binding{lit("topic1"), lit("*"), lit("top"), pre("top"), pre("topic1"), pre("topic12"), pre("x"),
		bind(OpRead, "topic1", onGroup), bind(OpWrite, "topic1"), bind(OpAll, "topic1"), bind(OpRead, "topic1", denied),
		bind(OpRead, "topic1", principal(WildcardPrincipal)), bind(OpRead, "topic1", host("10.0.0.1"))}
	cases := []struct {
		name string
		f    Filter
		want []int // indexes into all
	}{
		{"any", AnyFilter, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}},
		{"topics", Filter{ResourceType: ResourceTopic, PatternType: PatternAny, Operation: OpAny, Permission: PermissionAny}, []int{0, 1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12}},
		{"literal name", Filter{ResourceType: ResourceTopic, ResourceName: str("top"), PatternType: PatternLiteral, Operation: OpAny, Permission: PermissionAny}, []int{2}},
		{"literal *, the wildcard binding only", Filter{ResourceType: ResourceTopic, ResourceName: str("*"), PatternType: PatternLiteral, Operation: OpAny, Permission: PermissionAny}, []int{1}},
		{"prefixed name", Filter{ResourceType: ResourceTopic, ResourceName: str("top"), PatternType: PatternPrefixed, Operation: OpAny, Permission: PermissionAny}, []int{3}},
		{"all prefixed", Filter{ResourceType: ResourceAny, PatternType: PatternPrefixed, Operation: OpAny, Permission: PermissionAny}, []int{3, 4, 5, 6}},
		{"any pattern, exact name", Filter{ResourceType: ResourceTopic, ResourceName: str("top"), PatternType: PatternAny, Operation: OpAny, Permission: PermissionAny}, []int{2, 3}},
		{"match: what applies to topic1", Filter{ResourceType: ResourceTopic, ResourceName: str("topic1"), PatternType: PatternMatch, Operation: OpAny, Permission: PermissionAny}, []int{0, 1, 3, 4, 8, 9, 10, 11, 12}},
		{"match without a name", Filter{ResourceType: ResourceGroup, PatternType: PatternMatch, Operation: OpAny, Permission: PermissionAny}, []int{7}},
		{"operation exact, ALL not implied", Filter{ResourceType: ResourceAny, ResourceName: str("topic1"), PatternType: PatternLiteral, Operation: OpWrite, Permission: PermissionAny}, []int{8}},
		{"permission", Filter{ResourceType: ResourceAny, PatternType: PatternAny, Operation: OpAny, Permission: PermissionDeny}, []int{10}},
		{"principal exact", Filter{ResourceType: ResourceAny, PatternType: PatternAny, Principal: str(WildcardPrincipal), Operation: OpAny, Permission: PermissionAny}, []int{11}},
		{"host exact", Filter{ResourceType: ResourceAny, PatternType: PatternAny, Host: str("10.0.0.1"), Operation: OpAny, Permission: PermissionAny}, []int{12}},
		{"host * is the wildcard binding's host", Filter{ResourceType: ResourceGroup, PatternType: PatternAny, Host: str("*"), Operation: OpAny, Permission: PermissionAny}, []int{7}},
	}
	for _, tc := range cases {
		if err := tc.f.Validate(); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var got []int
		for i, b := range all {
			if tc.f.Matches(b) {
				got = append(got, i)
			}
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: matches %v, want %v", tc.name, got, tc.want)
		}
	}
	for _, b := range all {
		if f := ExactFilter(b); !f.Matches(b) || f.Validate() != nil {
			t.Errorf("ExactFilter(%s) does not select it", b)
		}
		n := 0
		for _, o := range all {
			if ExactFilter(b).Matches(o) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("ExactFilter(%s) selects %d bindings", b, n)
		}
	}
}

func TestFilterValidate(t *testing.T) {
	t.Parallel()
	for _, f := range []func(*Filter){
		func(f *Filter) { f.ResourceType = ResourceUnknown },
		func(f *Filter) { f.ResourceType = 8 },
		func(f *Filter) { f.ResourceType = -1 },
		func(f *Filter) { f.PatternType = PatternUnknown },
		func(f *Filter) { f.PatternType = 5 },
		func(f *Filter) { f.Operation = OpUnknown },
		func(f *Filter) { f.Operation = 16 },
		func(f *Filter) { f.Permission = PermissionUnknown },
		func(f *Filter) { f.Permission = 4 },
	} {
		flt := AnyFilter
		f(&flt)
		if err := flt.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: Validate = %v, want ErrInvalid", flt, err)
		}
	}
	// Every defined value is a valid filter value, USER and
	// DELEGATION_TOKEN included (they select nothing here).
	for rt := ResourceAny; rt <= ResourceUser; rt++ {
		f := AnyFilter
		f.ResourceType = rt
		if err := f.Validate(); err != nil {
			t.Errorf("%s: %v", rt, err)
		}
	}
}

func TestBindingValidate(t *testing.T) {
	t.Parallel()
	ok := bind(OpRead, "t")
	cases := []struct {
		edit  func(*Binding)
		valid bool
	}{
		{func(*Binding) {}, true},
		{func(b *Binding) { b.PatternType = PatternPrefixed }, true},
		{func(b *Binding) { b.ResourceType, b.ResourceName = ResourceCluster, ClusterName }, true},
		{func(b *Binding) { b.ResourceType, b.ResourceName = ResourceCluster, "my-cluster" }, false},
		{func(b *Binding) { b.ResourceType = ResourceGroup }, true},
		{func(b *Binding) { b.ResourceType = ResourceTransactionalID }, true},
		{func(b *Binding) { b.ResourceType = ResourceDelegationToken }, false},
		{func(b *Binding) { b.ResourceType = ResourceUser }, false},
		{func(b *Binding) { b.ResourceType = ResourceAny }, false},
		{func(b *Binding) { b.ResourceType = ResourceUnknown }, false},
		{func(b *Binding) { b.ResourceType = 42 }, false},
		{func(b *Binding) { b.PatternType = PatternAny }, false},
		{func(b *Binding) { b.PatternType = PatternMatch }, false},
		{func(b *Binding) { b.PatternType = PatternUnknown }, false},
		{func(b *Binding) { b.Operation = OpAny }, false},
		{func(b *Binding) { b.Operation = OpUnknown }, false},
		{func(b *Binding) { b.Operation = OpCreateTokens }, false},
		{func(b *Binding) { b.Operation = OpTwoPhaseCommit }, false},
		{func(b *Binding) { b.Operation = 99 }, false},
		{func(b *Binding) { b.Permission = PermissionAny }, false},
		{func(b *Binding) { b.Permission = PermissionUnknown }, false},
		{func(b *Binding) { b.Permission = PermissionDeny }, true},
		{func(b *Binding) { b.ResourceName = "" }, false},
		{func(b *Binding) { b.ResourceName = strings.Repeat("n", MaxNameBytes) }, true},
		{func(b *Binding) { b.ResourceName = strings.Repeat("n", MaxNameBytes+1) }, false},
		{func(b *Binding) { b.Principal = "alice" }, false},
		{func(b *Binding) { b.Principal = "User:" }, false},
		{func(b *Binding) { b.Principal = ":alice" }, false},
		{func(b *Binding) { b.Principal = WildcardPrincipal }, true},
		{func(b *Binding) { b.Principal = "Group:ops" }, true},
		{func(b *Binding) { b.Principal = "User:" + strings.Repeat("p", MaxPrincipalBytes) }, false},
		{func(b *Binding) { b.Host = "10.1.2.3" }, true},
		{func(b *Binding) { b.Host = "2001:db8::1" }, true},
		{func(b *Binding) { b.Host = "" }, false},
		{func(b *Binding) { b.Host = "example.com" }, false},
		{func(b *Binding) { b.Host = "10.0.0.0/8" }, false},
		{func(b *Binding) { b.ResourceName = "a\x00b" }, false},
		{func(b *Binding) { b.ResourceName = "a\xffb" }, false},
		{func(b *Binding) { b.Principal = "User:\x00" }, false},
		{func(b *Binding) { b.ResourceName = "ünïcode-topic" }, true},
	}
	for i, tc := range cases {
		b := ok
		tc.edit(&b)
		err := b.Validate()
		if tc.valid && err != nil {
			t.Errorf("case %d (%s): %v", i, b, err)
		}
		if !tc.valid && !errors.Is(err, ErrInvalid) {
			t.Errorf("case %d (%s): Validate = %v, want ErrInvalid", i, b, err)
		}
	}
}

func TestParseNames(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]Operation{
		"read": OpRead, "READ": OpRead, "describe_configs": OpDescribeConfigs, "describe-configs": OpDescribeConfigs,
		"DescribeConfigs": OpDescribeConfigs, "CLUSTER_ACTION": OpClusterAction, "idempotent-write": OpIdempotentWrite,
		"all": OpAll, "any": OpAny,
	} {
		if got, err := ParseOperation(in); err != nil || got != want {
			t.Errorf("ParseOperation(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "unknown", "reed", "UNKNOWN"} {
		if got, err := ParseOperation(in); err == nil {
			t.Errorf("ParseOperation(%q) = %v, want an error", in, got)
		}
	}
	for _, v := range concreteOps {
		if got, err := ParseOperation(v.String()); err != nil || got != v {
			t.Errorf("ParseOperation(%s) = %v, %v", v, got, err)
		}
	}
	if got, err := ParseResourceType("transactional-id"); err != nil || got != ResourceTransactionalID {
		t.Errorf("ParseResourceType = %v, %v", got, err)
	}
	if got, err := ParsePatternType("Prefixed"); err != nil || got != PatternPrefixed {
		t.Errorf("ParsePatternType = %v, %v", got, err)
	}
	if got, err := ParsePermission("deny"); err != nil || got != PermissionDeny {
		t.Errorf("ParsePermission = %v, %v", got, err)
	}
	if s := Operation(42).String(); s != fmt.Sprintf("UNKNOWN(%d)", 42) {
		t.Errorf("Operation(42) = %s", s)
	}
}

// Host matching compares addresses, not spellings: an IPv4-mapped IPv6
// address is its IPv4 address, and a client's IPv6 zone (the interface a
// link-local address was reached on) matches a binding without a zone; a
// binding with a zone matches that interface only.
func TestHostMatchingIPv6(t *testing.T) {
	t.Parallel()
	a := enforcing(t, nil,
		bind(OpRead, "t", host("fe80::1")),
		bind(OpRead, "u", host("10.0.0.1")),
		bind(OpRead, "v", host("::ffff:10.0.0.2")),
		bind(OpRead, "w", host("fe80::2%eth0")),
	)
	for _, c := range []struct {
		host, topic string
		want        bool
	}{
		{"fe80::1%eth0", "t", true},
		{"fe80::1", "t", true},
		{"[fe80::1%eth0]:9092", "t", true},
		{"fe80::3%eth0", "t", false},
		{"::ffff:10.0.0.1", "u", true},
		{"/10.0.0.1", "u", true},
		{"10.0.0.2", "v", true},
		{"::ffff:10.0.0.2", "v", true},
		{"10.0.0.3", "v", false},
		{"fe80::2%eth0", "w", true},
		{"fe80::2%eth1", "w", false},
		{"fe80::2", "w", false},
	} {
		if got := a.Authorize(context.Background(), "User:alice", c.host, OpRead, Topic(c.topic)); got != c.want {
			t.Errorf("READ %s from %s = %v, want %v", c.topic, c.host, got, c.want)
		}
	}
}
