package kafka

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/acl"
)

// The ACL APIs through kadm, as rpk and applications call them, and at
// every version on the wire for what Kafka refuses.

// storedACLs returns what the metadata store holds.
func (s *testServer) storedACLs(t *testing.T) []acl.Binding {
	t.Helper()
	bs, err := s.store.ListACLs(context.Background(), acl.AnyFilter)
	if err != nil {
		t.Fatal(err)
	}
	return bs
}

// describedKeys flattens kadm's describe answers to sorted strings.
func describedKeys(t *testing.T, rs kadm.DescribeACLsResults) []string {
	t.Helper()
	var out []string
	for _, r := range rs {
		if r.Err != nil {
			t.Fatalf("describe filter %+v: %v (%s)", r, r.Err, r.ErrMessage)
		}
		for _, d := range r.Described {
			out = append(out, aclKey(d.Type, d.Name, d.Pattern, d.Principal, d.Host, d.Operation, d.Permission))
		}
	}
	slices.Sort(out)
	return out
}

func aclKey(rt kmsg.ACLResourceType, name string, pt kmsg.ACLResourcePatternType, principal, host string, op kmsg.ACLOperation, perm kmsg.ACLPermissionType) string {
	return strings.Join([]string{rt.String(), name, pt.String(), principal, host, op.String(), perm.String()}, " ")
}

func bindingKeys(bs []acl.Binding) []string {
	var out []string
	for _, b := range bs {
		out = append(out, aclKey(kmsg.ACLResourceType(b.ResourceType), b.ResourceName, kmsg.ACLResourcePatternType(b.PatternType),
			b.Principal, b.Host, kmsg.ACLOperation(b.Operation), kmsg.ACLPermissionType(b.Permission)))
	}
	slices.Sort(out)
	return out
}

// everything is the kadm filter for every binding.
func everything() *kadm.ACLBuilder {
	return kadm.NewACLs().AnyResource().Allow().AllowHosts().Deny().DenyHosts().Operations().ResourcePatternType(kadm.ACLPatternAny)
}

func TestACLsThroughKadm(t *testing.T) {
	t.Parallel()
	s := startServer(t, testOptions{})
	adm, ctx := s.admin(), adminCtx(t)
	create := func(b *kadm.ACLBuilder) {
		t.Helper()
		rs, err := adm.CreateACLs(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			if r.Err != nil {
				t.Fatalf("create %+v: %v (%s)", r, r.Err, r.ErrMessage)
			}
		}
	}
	builders := []*kadm.ACLBuilder{
		kadm.NewACLs().Allow("User:alice").Topics("orders").Operations(kadm.OpRead, kadm.OpWrite),
		kadm.NewACLs().Allow("User:alice").Groups("app-").ResourcePatternType(kadm.ACLPatternPrefixed).Operations(kadm.OpRead),
		kadm.NewACLs().Deny("User:mallory").DenyHosts("10.0.0.9").Topics("orders", "*").Operations(kadm.OpAll),
		kadm.NewACLs().Allow("User:producer").Clusters().Operations(kadm.OpIdempotentWrite),
		kadm.NewACLs().Allow("User:producer").TransactionalIDs("tx-1").Operations(kadm.OpWrite, kadm.OpDescribe),
	}
	for _, b := range builders {
		create(b)
	}
	stored := s.storedACLs(t)
	if len(stored) != 8 {
		t.Fatalf("stored %d bindings, want 8: %v", len(stored), stored)
	}
	// Creating them again succeeds and stores nothing new.
	version := s.acl.Version()
	for _, b := range builders {
		create(b)
	}
	if again := s.storedACLs(t); !slices.Equal(again, stored) || s.acl.Version() != version {
		t.Fatalf("creating again changed the store: %v (version %d -> %d)", again, version, s.acl.Version())
	}
	all, err := adm.DescribeACLs(ctx, everything())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := describedKeys(t, all), bindingKeys(stored); !slices.Equal(got, want) {
		t.Fatalf("described\n%v\nwant\n%v", got, want)
	}

	// Literal filter: the bindings named orders, not the wildcard.
	orders, err := adm.DescribeACLs(ctx, kadm.NewACLs().Topics("orders").Allow().AllowHosts().Deny().DenyHosts().Operations())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		aclKey(kmsg.ACLResourceTypeTopic, "orders", kmsg.ACLResourcePatternTypeLiteral, "User:alice", "*", kmsg.ACLOperationRead, kmsg.ACLPermissionTypeAllow),
		aclKey(kmsg.ACLResourceTypeTopic, "orders", kmsg.ACLResourcePatternTypeLiteral, "User:alice", "*", kmsg.ACLOperationWrite, kmsg.ACLPermissionTypeAllow),
		aclKey(kmsg.ACLResourceTypeTopic, "orders", kmsg.ACLResourcePatternTypeLiteral, "User:mallory", "10.0.0.9", kmsg.ACLOperationAll, kmsg.ACLPermissionTypeDeny),
	}
	slices.Sort(want)
	if got := describedKeys(t, orders); !slices.Equal(got, want) {
		t.Errorf("literal orders:\n%v\nwant\n%v", got, want)
	}
	// MATCH: what applies to the group app-7 is the app- prefix.
	match, err := adm.DescribeACLs(ctx, kadm.NewACLs().Groups("app-7").ResourcePatternType(kadm.ACLPatternMatch).Allow().AllowHosts().Deny().DenyHosts().Operations())
	if err != nil {
		t.Fatal(err)
	}
	if got := describedKeys(t, match); len(got) != 1 || !strings.Contains(got[0], "app- PREFIXED User:alice") {
		t.Errorf("match app-7: %v", got)
	}

	// Delete mallory's denies; the rest stays, and this agent stops
	// enforcing them at once.
	dels, err := adm.DeleteACLs(ctx, kadm.NewACLs().Deny("User:mallory").DenyHosts().AnyResource().Operations().ResourcePatternType(kadm.ACLPatternAny))
	if err != nil {
		t.Fatal(err)
	}
	var deleted []string
	for _, d := range dels {
		if d.Err != nil {
			t.Fatalf("delete %+v: %v", d, d.Err)
		}
		for _, m := range d.Deleted {
			deleted = append(deleted, m.Principal+" "+m.Name+" "+m.Operation.String()+" "+m.Permission.String())
		}
	}
	slices.Sort(deleted)
	if want := []string{"User:mallory * ALL DENY", "User:mallory orders ALL DENY"}; !slices.Equal(deleted, want) {
		t.Errorf("deleted %v, want %v", deleted, want)
	}
	if left := s.storedACLs(t); len(left) != 6 || slices.ContainsFunc(left, func(b acl.Binding) bool { return b.Principal == "User:mallory" }) {
		t.Errorf("left after the delete: %v", left)
	}
	if s.acl.Version() == version {
		t.Error("the delete did not reach this agent's Authorizer when it answered")
	}
}

// Every version refuses what Kafka refuses with INVALID_REQUEST, per
// creation or filter, and changes nothing for it.
func TestACLRefusalsAtEveryVersion(t *testing.T) {
	t.Parallel()
	s := startServer(t, testOptions{})
	w := s.wire()
	valid := kmsg.NewCreateACLsRequestCreation()
	valid.ResourceType, valid.ResourceName, valid.Principal, valid.Host = kmsg.ACLResourceTypeTopic, "t", "User:alice", "*"
	valid.Operation, valid.PermissionType = kmsg.ACLOperationRead, kmsg.ACLPermissionTypeAllow
	with := func(edit func(*kmsg.CreateACLsRequestCreation)) kmsg.CreateACLsRequestCreation {
		c := valid
		edit(&c)
		return c
	}
	for v := int16(0); v <= 3; v++ {
		bad := []kmsg.CreateACLsRequestCreation{
			with(func(c *kmsg.CreateACLsRequestCreation) { c.ResourceType = kmsg.ACLResourceTypeAny }),
			with(func(c *kmsg.CreateACLsRequestCreation) { c.ResourceType = 99 }),
			with(func(c *kmsg.CreateACLsRequestCreation) { c.ResourceType = kmsg.ACLResourceTypeUser }),
			with(func(c *kmsg.CreateACLsRequestCreation) { c.ResourceType = kmsg.ACLResourceTypeDelegationToken }),
			with(func(c *kmsg.CreateACLsRequestCreation) { c.ResourceName = "" }),
			with(func(c *kmsg.CreateACLsRequestCreation) {
				c.ResourceType, c.ResourceName = kmsg.ACLResourceTypeCluster, "my-cluster"
			}),
			with(func(c *kmsg.CreateACLsRequestCreation) { c.Principal = "alice" }),
			with(func(c *kmsg.CreateACLsRequestCreation) { c.Host = "client.example.com" }),
			with(func(c *kmsg.CreateACLsRequestCreation) { c.Operation = kmsg.ACLOperationAny }),
			with(func(c *kmsg.CreateACLsRequestCreation) { c.Operation = kmsg.ACLOperationUnknown }),
			with(func(c *kmsg.CreateACLsRequestCreation) { c.Operation = kmsg.ACLOperationCreateTokens }),
			with(func(c *kmsg.CreateACLsRequestCreation) { c.PermissionType = kmsg.ACLPermissionTypeAny }),
		}
		if v >= 1 { // v0 has no pattern type: LITERAL
			bad = append(bad, with(func(c *kmsg.CreateACLsRequestCreation) { c.ResourcePatternType = kmsg.ACLResourcePatternTypeMatch }),
				with(func(c *kmsg.CreateACLsRequestCreation) { c.ResourcePatternType = kmsg.ACLResourcePatternTypeAny }))
		}
		req := kmsg.NewPtrCreateACLsRequest()
		req.Version = v
		req.Creations = append(bad, valid)
		resp := w.do(req).(*kmsg.CreateACLsResponse)
		if len(resp.Results) != len(req.Creations) {
			t.Fatalf("v%d: %d results for %d creations", v, len(resp.Results), len(req.Creations))
		}
		for i, r := range resp.Results[:len(bad)] {
			if r.ErrorCode != kerr.InvalidRequest.Code || r.ErrorMessage == nil || *r.ErrorMessage == "" {
				t.Errorf("v%d creation %d (%+v): code %d, message %v; want INVALID_REQUEST with a message", v, i, bad[i], r.ErrorCode, r.ErrorMessage)
			}
		}
		if last := resp.Results[len(bad)]; last.ErrorCode != 0 {
			t.Errorf("v%d: the valid creation beside refused ones got %d", v, last.ErrorCode)
		}
		if got := s.storedACLs(t); len(got) != 1 || got[0].ResourceName != "t" {
			t.Fatalf("v%d: stored %v", v, got)
		}

		// A filter with an UNKNOWN value.
		dreq := kmsg.NewPtrDescribeACLsRequest()
		dreq.Version = v
		dreq.ResourceType, dreq.Operation, dreq.PermissionType = kmsg.ACLResourceTypeUnknown, kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAny
		if v >= 1 {
			dreq.ResourcePatternType = kmsg.ACLResourcePatternTypeAny
		}
		dresp := w.do(dreq).(*kmsg.DescribeACLsResponse)
		if dresp.ErrorCode != kerr.InvalidRequest.Code || len(dresp.Resources) != 0 {
			t.Errorf("v%d describe with an UNKNOWN resource type: %+v", v, dresp)
		}
		dreq.ResourceType = kmsg.ACLResourceTypeAny
		dresp = w.do(dreq).(*kmsg.DescribeACLsResponse)
		if dresp.ErrorCode != 0 || len(dresp.Resources) != 1 || len(dresp.Resources[0].ACLs) != 1 || dresp.Resources[0].ResourceName != "t" {
			t.Errorf("v%d describe all: %+v", v, dresp)
		}

		badFilter := kmsg.NewDeleteACLsRequestFilter()
		badFilter.ResourceType, badFilter.Operation, badFilter.PermissionType = kmsg.ACLResourceTypeAny, kmsg.ACLOperationAny, 42
		delReq := kmsg.NewPtrDeleteACLsRequest()
		delReq.Version = v
		delReq.Filters = []kmsg.DeleteACLsRequestFilter{badFilter}
		delResp := w.do(delReq).(*kmsg.DeleteACLsResponse)
		if len(delResp.Results) != 1 || delResp.Results[0].ErrorCode != kerr.InvalidRequest.Code || len(delResp.Results[0].MatchingACLs) != 0 {
			t.Errorf("v%d delete with an unknown permission: %+v", v, delResp)
		}
		if got := s.storedACLs(t); len(got) != 1 {
			t.Fatalf("v%d: a refused delete left %v", v, got)
		}
		goodFilter := badFilter
		goodFilter.PermissionType = kmsg.ACLPermissionTypeAny
		delReq.Filters = []kmsg.DeleteACLsRequestFilter{badFilter, goodFilter}
		delResp = w.do(delReq).(*kmsg.DeleteACLsResponse)
		if len(delResp.Results) != 2 || delResp.Results[0].ErrorCode != kerr.InvalidRequest.Code ||
			delResp.Results[1].ErrorCode != 0 || len(delResp.Results[1].MatchingACLs) != 1 || delResp.Results[1].MatchingACLs[0].Principal != "User:alice" {
			t.Errorf("v%d delete with a refused and a valid filter: %+v", v, delResp)
		}
		if got := s.storedACLs(t); len(got) != 0 {
			t.Fatalf("v%d: left %v", v, got)
		}
	}
}

// Version 0 knows no pattern types: its filters are LITERAL, so a PREFIXED
// binding is neither listed nor deleted by them; v1 and later see it.
func TestACLVersionZeroIsLiteral(t *testing.T) {
	t.Parallel()
	s := startServer(t, testOptions{})
	w := s.wire()
	req := kmsg.NewPtrCreateACLsRequest()
	req.Version = 1
	for _, pt := range []kmsg.ACLResourcePatternType{kmsg.ACLResourcePatternTypeLiteral, kmsg.ACLResourcePatternTypePrefixed} {
		c := kmsg.NewCreateACLsRequestCreation()
		c.ResourceType, c.ResourceName, c.ResourcePatternType, c.Principal, c.Host = kmsg.ACLResourceTypeTopic, "t", pt, "User:alice", "*"
		c.Operation, c.PermissionType = kmsg.ACLOperationRead, kmsg.ACLPermissionTypeAllow
		req.Creations = append(req.Creations, c)
	}
	if resp := w.do(req).(*kmsg.CreateACLsResponse); resp.Results[0].ErrorCode != 0 || resp.Results[1].ErrorCode != 0 {
		t.Fatalf("create: %+v", resp)
	}
	for v, want := range map[int16]int{0: 1, 1: 2, 3: 2} {
		dreq := kmsg.NewPtrDescribeACLsRequest()
		dreq.Version = v
		dreq.ResourceType, dreq.ResourceName, dreq.Operation, dreq.PermissionType = kmsg.ACLResourceTypeTopic, kmsg.StringPtr("t"), kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAny
		if v >= 1 {
			dreq.ResourcePatternType = kmsg.ACLResourcePatternTypeAny
		}
		if got := len(w.do(dreq).(*kmsg.DescribeACLsResponse).Resources); got != want {
			t.Errorf("v%d describe: %d resources, want %d", v, got, want)
		}
	}
	dreq := kmsg.NewPtrDeleteACLsRequest()
	dreq.Version = 0
	f := kmsg.NewDeleteACLsRequestFilter()
	f.ResourceType, f.Operation, f.PermissionType = kmsg.ACLResourceTypeAny, kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAny
	dreq.Filters = []kmsg.DeleteACLsRequestFilter{f}
	resp := w.do(dreq).(*kmsg.DeleteACLsResponse)
	if len(resp.Results) != 1 || len(resp.Results[0].MatchingACLs) != 1 {
		t.Fatalf("v0 delete: %+v", resp)
	}
	if left := s.storedACLs(t); len(left) != 1 || left[0].PatternType != acl.PatternPrefixed {
		t.Errorf("after a v0 delete-all: %v, want the PREFIXED binding", left)
	}
}

// A DeleteAcls request answers at most maxDeleteACLFilters filters; the
// rest are INVALID_REQUEST and delete nothing.
func TestDeleteACLsFilterLimit(t *testing.T) {
	t.Parallel()
	s := startServer(t, testOptions{})
	ctx := adminCtx(t)
	if errs := s.acl.CreateACLs(ctx, []acl.Binding{{ResourceType: acl.ResourceTopic, ResourceName: "last", PatternType: acl.PatternLiteral,
		Principal: "User:alice", Host: "*", Operation: acl.OpRead, Permission: acl.PermissionAllow}}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	req := kmsg.NewPtrDeleteACLsRequest()
	for i := range maxDeleteACLFilters + 1 {
		f := kmsg.NewDeleteACLsRequestFilter()
		f.ResourceType, f.Operation, f.PermissionType = kmsg.ACLResourceTypeTopic, kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAny
		f.ResourceName = kmsg.StringPtr("nothing")
		if i == maxDeleteACLFilters {
			f.ResourceName = kmsg.StringPtr("last")
		}
		req.Filters = append(req.Filters, f)
	}
	resp, err := req.RequestWith(ctx, s.client())
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Results) != maxDeleteACLFilters+1 || resp.Results[0].ErrorCode != 0 || resp.Results[maxDeleteACLFilters].ErrorCode != kerr.InvalidRequest.Code {
		t.Fatalf("%d results, first code %d, last code %d", len(resp.Results), resp.Results[0].ErrorCode, resp.Results[len(resp.Results)-1].ErrorCode)
	}
	if left := s.storedACLs(t); len(left) != 1 {
		t.Errorf("a filter past the limit deleted: left %v", left)
	}
}

// The ACL of one agent is another's: a binding created through one agent
// is listed by the other (both read the metadata store) and reaches the
// other's Authorizer.
func TestACLsTwoAgents(t *testing.T) {
	t.Parallel()
	store, bucket := sharedStorage(t)
	s1 := startServer(t, testOptions{store: store, bucket: bucket, agentID: "agent-1"})
	s2 := startServer(t, testOptions{store: store, bucket: bucket, agentID: "agent-2"})
	ctx := adminCtx(t)
	rs, err := s1.admin().CreateACLs(ctx, kadm.NewACLs().Allow("User:alice").Topics("t").Operations(kadm.OpRead))
	if err != nil || rs[0].Err != nil {
		t.Fatalf("create: %+v, %v", rs, err)
	}
	got, err := s2.admin().DescribeACLs(ctx, everything())
	if err != nil {
		t.Fatal(err)
	}
	if keys := describedKeys(t, got); len(keys) != 1 || !strings.Contains(keys[0], "t LITERAL User:alice * READ ALLOW") {
		t.Fatalf("agent-2 lists %v", keys)
	}
	waitFor(t, ctx, "agent-2's Authorizer to load the binding", func() bool { return s2.acl.Version() == s1.acl.Version() })
}

// A listener built without an Authorizer says so, as Kafka does without
// one.
func TestACLsWithoutAuthorizer(t *testing.T) {
	t.Parallel()
	s := startServer(t, testOptions{kafka: func(c *Config) { c.ACL = nil }})
	adm, ctx := s.admin(), adminCtx(t)
	rs, err := adm.CreateACLs(ctx, kadm.NewACLs().Allow("User:alice").Topics("t").Operations(kadm.OpRead))
	if err != nil || len(rs) != 1 || !errors.Is(rs[0].Err, kerr.SecurityDisabled) {
		t.Fatalf("create: %+v, %v", rs, err)
	}
	if got := s.storedACLs(t); len(got) != 0 {
		t.Fatalf("stored %v without an Authorizer", got)
	}
	ds, err := adm.DescribeACLs(ctx, everything())
	if err != nil || len(ds) != 1 || !errors.Is(ds[0].Err, kerr.SecurityDisabled) {
		t.Fatalf("describe: %+v, %v", ds, err)
	}
}
