package authz

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/streamhouse/streamhouse/internal/acl"
	"github.com/streamhouse/streamhouse/internal/auth"
	"github.com/streamhouse/streamhouse/internal/metadata/metadatatest"
)

const denialsMetric = "streamhouse_authorization_denials_total"

// denials reads every series of streamhouse_authorization_denials_total,
// by "listener/resource_type/operation".
func denials(t *testing.T, reg prometheus.Gatherer) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != denialsMetric {
			continue
		}
		for _, m := range mf.GetMetric() {
			out[label(m, "listener")+"/"+label(m, "resource_type")+"/"+label(m, "operation")] = m.GetCounter().GetValue()
		}
	}
	return out
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// nonZero is the series of m above zero.
func nonZero(m map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range m {
		if v != 0 {
			out[k] = v
		}
	}
	return out
}

// A Checker counts what it refuses (Require, RequireAny, Refused) under
// its listener, by resource type and operation, and nothing else: not
// what May, MayAny and Allowed answer (listings' filters, choices between
// rules), not a missing login (an authentication failure, counted by
// internal/auth), not super users or agents. The series of every listener
// a Checker was made for exist at zero from the start, and no label
// carries a resource name or a principal.
func TestCheckerCountsDenials(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := metadatatest.OpenSQLite(t)
	reg := prometheus.NewRegistry()
	a, err := acl.New(ctx, acl.Config{Store: store, Logger: slog.New(slog.DiscardHandler), Enforce: true,
		SuperUsers: []string{"root"}, Registry: reg,
		SuperUser: func(p string) bool { return auth.IsAgent(auth.ParsePrincipal(p)) }})
	if err != nil {
		t.Fatal(err)
	}
	allow := func(typ acl.ResourceType, name string, op acl.Operation) acl.Binding {
		return acl.Binding{ResourceType: typ, ResourceName: name, PatternType: acl.PatternLiteral,
			Principal: "User:alice", Host: acl.WildcardHost, Operation: op, Permission: acl.PermissionAllow}
	}
	for _, err := range a.CreateACLs(ctx, []acl.Binding{allow(acl.ResourceTopic, "mine", acl.OpRead)}) {
		if err != nil {
			t.Fatal(err)
		}
	}
	rest := New(a, auth.ListenerHTTP)
	grpc := New(a, auth.ListenerGRPC)

	// Every series of both listeners exists, at zero.
	before := denials(t, reg)
	for _, want := range []string{"http/TOPIC/DESCRIBE", "http/GROUP/READ", "http/CLUSTER/ALTER", "http/TRANSACTIONAL_ID/WRITE",
		"grpc/TOPIC/READ", "grpc/CLUSTER/IDEMPOTENT_WRITE"} {
		if v, ok := before[want]; !ok || v != 0 {
			t.Errorf("series %s before any refusal: %v %v", want, v, ok)
		}
	}
	if len(before) != 2*22 {
		t.Errorf("%d series for two listeners, want 44 (the operations of each resource type)", len(before))
	}

	alice := auth.WithPrincipal(ctx, auth.User("alice"))
	root := auth.WithPrincipal(ctx, auth.User("root"))
	agent := auth.WithPrincipal(ctx, auth.User("__streamhouse-agent-a1"))

	// Refusals are counted, once each.
	var denied *DeniedError
	if err := rest.Require(alice, Need(acl.OpRead, acl.Topic("mine")), Need(acl.OpWrite, acl.Topic("mine"))); !errors.As(err, &denied) {
		t.Fatalf("WRITE without a grant: %v", err)
	}
	if err := rest.RequireAny(alice, Need(acl.OpCreate, acl.Cluster()), Need(acl.OpCreate, acl.Topic("new"))); !errors.As(err, &denied) {
		t.Fatalf("CREATE without a grant: %v", err)
	}
	if err := grpc.Require(alice, NeedUnnamed(acl.OpDescribe, acl.TransactionalID("tx"))); !errors.As(err, &denied) {
		t.Fatalf("DESCRIBE transactional ID without a grant: %v", err)
	}
	rest.Refused(alice, acl.OpDescribe, acl.ResourceTopic)

	// Allowed, filtered, unauthenticated or unrestricted: nothing counted.
	if err := rest.Require(alice, Need(acl.OpRead, acl.Topic("mine"))); err != nil {
		t.Fatal(err)
	}
	if err := rest.RequireAny(alice, Need(acl.OpWrite, acl.Topic("other")), Need(acl.OpDescribe, acl.Topic("mine"))); err != nil {
		t.Fatal(err)
	}
	if rest.May(alice, acl.OpDescribe, acl.Cluster()) || grpc.MayAny(alice, acl.OpWrite, acl.ResourceTopic) {
		t.Fatal("May / MayAny allowed what no binding grants")
	}
	if got := rest.Allowed(alice, acl.OpDescribe, acl.ResourceTopic, []string{"secret", "mine", "other"}); !slices.Equal(got, []string{"mine"}) {
		t.Fatalf("Allowed: %v", got)
	}
	if err := rest.Require(ctx, Need(acl.OpRead, acl.Topic("mine"))); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("no login: %v", err)
	}
	for _, who := range []context.Context{root, agent} {
		if err := grpc.Require(who, Need(acl.OpAlter, acl.Cluster())); err != nil {
			t.Fatal(err)
		}
	}
	// Refused, as Require: not without a login, nor for the unrestricted.
	for _, who := range []context.Context{ctx, root, agent} {
		rest.Refused(who, acl.OpDescribe, acl.ResourceCluster)
	}

	got := nonZero(denials(t, reg))
	want := map[string]float64{
		"http/TOPIC/WRITE":               1,
		"http/TOPIC/CREATE":              1,
		"http/TOPIC/DESCRIBE":            1,
		"grpc/TRANSACTIONAL_ID/DESCRIBE": 1,
	}
	if len(got) != len(want) {
		t.Errorf("denials counted: %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %v, want %v (all: %v)", k, got[k], v, got)
		}
	}

	// Without enforcement nothing is refused, so nothing is counted.
	offReg := prometheus.NewRegistry()
	off, err := acl.New(ctx, acl.Config{Store: store, Logger: slog.New(slog.DiscardHandler), Registry: offReg})
	if err != nil {
		t.Fatal(err)
	}
	c := New(off, auth.ListenerHTTP)
	if err := c.Require(alice, Need(acl.OpAlter, acl.Cluster())); err != nil {
		t.Fatal(err)
	}
	c.Refused(alice, acl.OpDescribe, acl.ResourceTopic)
	if n := nonZero(denials(t, offReg)); len(n) != 0 || len(denials(t, offReg)) != 22 {
		t.Fatalf("not enforcing: %v counted", n)
	}
}
