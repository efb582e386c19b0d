package rest_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/internal/acl"
	"github.com/streamhouse/streamhouse/internal/auth"
	"github.com/streamhouse/streamhouse/internal/broker"
	"github.com/streamhouse/streamhouse/internal/metadata/sqlstore"
	"github.com/streamhouse/streamhouse/internal/objstore"
	"github.com/streamhouse/streamhouse/internal/partlog"
	"github.com/streamhouse/streamhouse/internal/rest"
)

// authEnv is the REST API as the server wires it with AUTH_ENABLED: the
// HTTP login middleware over the handler, users root (SUPER_USERS) and
// alice, and ACLs enforced from a real store.
type authEnv struct {
	t   *testing.T
	b   *broker.Broker
	acl *acl.Authorizer
	url string
}

func newAuthEnv(t *testing.T) *authEnv {
	t.Helper()
	ctx := context.Background()
	logger := slog.New(slog.DiscardHandler)
	store, err := sqlstore.OpenSQLite(ctx, filepath.Join(t.TempDir(), "meta.db"), logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	bucket, err := objstore.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	plog, err := partlog.Open(ctx, partlog.Config{AgentID: "test", Bucket: bucket, Store: store, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = plog.Close(context.Background()) })
	b, err := broker.New(ctx, broker.Config{AgentID: "test", Store: store, Log: plog, Logger: logger, LeaseTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	authn := auth.New(auth.Config{Store: store, Enabled: true, SuperUsers: []string{"root"}, Logger: logger})
	if err := authn.Bootstrap(ctx, []auth.BootstrapUser{{Name: "root", Password: "root-pw"}, {Name: "alice", Password: "alice-pw"}}); err != nil {
		t.Fatal(err)
	}
	a, err := acl.New(ctx, acl.Config{Store: store, Logger: logger, SuperUsers: []string{"root"}, Enforce: true})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(authn.HTTP(rest.New(rest.Config{Broker: b, Logger: logger, Users: authn, ACL: a, Pprof: true})))
	t.Cleanup(srv.Close)
	return &authEnv{t: t, b: b, acl: a, url: srv.URL}
}

// do sends a request as user ("" none), with password user+"-pw".
func (e *authEnv) do(user, method, path, body string) resp {
	e.t.Helper()
	req, err := http.NewRequest(method, e.url+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if user != "" {
		req.SetBasicAuth(user, user+"-pw")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	return resp{status: res.StatusCode, header: res.Header, body: raw}
}

// grant gives alice op on a resource (literal name), or takes it back.
func (e *authEnv) grant(typ acl.ResourceType, name string, op acl.Operation) acl.Binding {
	e.t.Helper()
	b := acl.Binding{ResourceType: typ, ResourceName: name, PatternType: acl.PatternLiteral,
		Principal: "User:alice", Host: acl.WildcardHost, Operation: op, Permission: acl.PermissionAllow}
	for _, err := range e.acl.CreateACLs(context.Background(), []acl.Binding{b}) {
		if err != nil {
			e.t.Fatal(err)
		}
	}
	return b
}

func (e *authEnv) revokeAll() {
	e.t.Helper()
	for _, r := range e.acl.DeleteACLs(context.Background(), []acl.Filter{acl.AnyFilter}) {
		if r.Err != nil {
			e.t.Fatal(r.Err)
		}
	}
}

func (e *authEnv) topic(name string) {
	e.t.Helper()
	if _, err := e.b.CreateTopic(context.Background(), broker.TopicSpec{Name: name, Partitions: 1}, false); err != nil {
		e.t.Fatal(err)
	}
}

// group makes group commit offset 0 of topic's partition 0.
func (e *authEnv) group(group, topic string) {
	e.t.Helper()
	if err := e.b.CommitOffsets(context.Background(), group, []broker.OffsetCommit{{Topic: topic, Partition: 0, Offset: 0, LeaderEpoch: -1}}); err != nil {
		e.t.Fatal(err)
	}
}

type grantSpec struct {
	typ  acl.ResourceType
	name string // "%s" is the case's resource
	op   acl.Operation
}

// Every REST endpoint, from one table: without a login 401 (with the Basic
// challenge); logged in without the ACL its Kafka equivalent needs, 403
// with Kafka's error name; with that ACL, or as a super user, served. Each
// case acts on resources of its own (res), made by setup: alice's copy
// and root's.
func TestRESTEndpointsAuthorization(t *testing.T) {
	t.Parallel()
	e := newAuthEnv(t)
	topicAndGroup := func(res string) { e.topic(res); e.group(res, res) }
	cases := []struct {
		name   string
		setup  func(res string)
		method string
		path   string // {res} is res
		body   string // {res} is res
		grants []grantSpec
		code   string // the 403's error code
		ok     int    // 0: the grants are not enough, and the 403 is then after's
		after  string
	}{
		{"create topic", nil, "POST", "/api/v1/topics", `{"name":"{res}","partitions":1}`,
			[]grantSpec{{acl.ResourceTopic, "%s", acl.OpCreate}}, "topic_authorization_failed", 201, ""},
		{"get topic", e.topic, "GET", "/api/v1/topics/{res}", "",
			[]grantSpec{{acl.ResourceTopic, "%s", acl.OpDescribe}}, "topic_authorization_failed", 200, ""},
		{"topic partitions", e.topic, "GET", "/api/v1/topics/{res}/partitions", "",
			[]grantSpec{{acl.ResourceTopic, "%s", acl.OpDescribe}}, "topic_authorization_failed", 200, ""},
		{"delete topic", e.topic, "DELETE", "/api/v1/topics/{res}", "",
			[]grantSpec{{acl.ResourceTopic, "%s", acl.OpDelete}}, "topic_authorization_failed", 204, ""},
		{"produce", e.topic, "POST", "/api/v1/produce", `{"topic":"{res}","value":"v"}`,
			[]grantSpec{{acl.ResourceTopic, "%s", acl.OpWrite}}, "topic_authorization_failed", 200, ""},
		{"produce batch", e.topic, "POST", "/api/v1/produce/batch", `{"topic":"{res}","records":[{"value":"v"}]}`,
			[]grantSpec{{acl.ResourceTopic, "%s", acl.OpWrite}}, "topic_authorization_failed", 200, ""},
		{"consume", e.topic, "GET", "/api/v1/consume?topic={res}", "",
			[]grantSpec{{acl.ResourceTopic, "%s", acl.OpRead}}, "topic_authorization_failed", 200, ""},
		{"create group", nil, "POST", "/api/v1/consumer-groups", `{"group_id":"{res}"}`,
			[]grantSpec{{acl.ResourceGroup, "%s", acl.OpRead}}, "group_authorization_failed", 201, ""},
		{"commit needs the group", e.topic, "POST", "/api/v1/consumer-groups/commit", `{"group_id":"{res}","topic":"{res}","partition":0,"offset":0}`,
			[]grantSpec{{acl.ResourceTopic, "%s", acl.OpRead}}, "group_authorization_failed", 0, "group_authorization_failed"},
		{"commit needs the topic", e.topic, "POST", "/api/v1/consumer-groups/commit", `{"group_id":"{res}","topic":"{res}","partition":0,"offset":0}`,
			[]grantSpec{{acl.ResourceGroup, "%s", acl.OpRead}}, "group_authorization_failed", 0, "topic_authorization_failed"},
		{"commit", e.topic, "POST", "/api/v1/consumer-groups/commit", `{"group_id":"{res}","topic":"{res}","partition":0,"offset":0}`,
			[]grantSpec{{acl.ResourceGroup, "%s", acl.OpRead}, {acl.ResourceTopic, "%s", acl.OpRead}}, "group_authorization_failed", 200, ""},
		{"get group", topicAndGroup, "GET", "/api/v1/consumer-groups/{res}", "",
			[]grantSpec{{acl.ResourceGroup, "%s", acl.OpDescribe}}, "group_authorization_failed", 200, ""},
		{"group offsets", topicAndGroup, "GET", "/api/v1/consumer-groups/{res}/offsets", "",
			[]grantSpec{{acl.ResourceGroup, "%s", acl.OpDescribe}}, "group_authorization_failed", 200, ""},
		{"group lag", topicAndGroup, "GET", "/api/v1/consumer-groups/{res}/lag", "",
			[]grantSpec{{acl.ResourceGroup, "%s", acl.OpDescribe}}, "group_authorization_failed", 200, ""},
		{"delete group", topicAndGroup, "DELETE", "/api/v1/consumer-groups/{res}", "",
			[]grantSpec{{acl.ResourceGroup, "%s", acl.OpDelete}}, "group_authorization_failed", 200, ""},
		{"reset needs the topics", topicAndGroup, "POST", "/api/v1/consumer-groups/{res}/reset", `{"strategy":"earliest"}`,
			[]grantSpec{{acl.ResourceGroup, "%s", acl.OpRead}}, "group_authorization_failed", 0, "topic_authorization_failed"},
		{"reset", topicAndGroup, "POST", "/api/v1/consumer-groups/{res}/reset", `{"strategy":"earliest"}`,
			[]grantSpec{{acl.ResourceGroup, "%s", acl.OpRead}, {acl.ResourceTopic, "%s", acl.OpRead}}, "group_authorization_failed", 200, ""},
		{"seek", topicAndGroup, "POST", "/api/v1/consumer-groups/{res}/seek", `{"topic":"{res}","timestamp":0}`,
			[]grantSpec{{acl.ResourceGroup, "%s", acl.OpRead}, {acl.ResourceTopic, "%s", acl.OpRead}}, "group_authorization_failed", 200, ""},
		{"agents", nil, "GET", "/api/v1/agents", "",
			[]grantSpec{{acl.ResourceCluster, acl.ClusterName, acl.OpDescribe}}, "cluster_authorization_failed", 200, ""},
		{"agent", nil, "GET", "/api/v1/agents/test", "",
			[]grantSpec{{acl.ResourceCluster, acl.ClusterName, acl.OpDescribe}}, "cluster_authorization_failed", 200, ""},
		{"agent metrics", nil, "GET", "/api/v1/agents/test/metrics", "",
			[]grantSpec{{acl.ResourceCluster, acl.ClusterName, acl.OpDescribe}}, "cluster_authorization_failed", 200, ""},
		{"metrics summary", nil, "GET", "/api/v1/metrics", "",
			[]grantSpec{{acl.ResourceCluster, acl.ClusterName, acl.OpDescribe}}, "cluster_authorization_failed", 200, ""},
		{"profiler", nil, "GET", "/debug/pprof/", "",
			[]grantSpec{{acl.ResourceCluster, acl.ClusterName, acl.OpAlter}}, "cluster_authorization_failed", 200, ""},
		{"list users", nil, "GET", "/api/v1/users", "",
			[]grantSpec{{acl.ResourceCluster, acl.ClusterName, acl.OpDescribe}}, "cluster_authorization_failed", 200, ""},
		{"create user", nil, "POST", "/api/v1/users", `{"name":"{res}","password":"a-password"}`,
			[]grantSpec{{acl.ResourceCluster, acl.ClusterName, acl.OpAlter}}, "cluster_authorization_failed", 201, ""},
		{"delete user", func(res string) {
			if r := e.do("root", "POST", "/api/v1/users", `{"name":"`+res+`","password":"a-password"}`); r.status != 201 {
				e.t.Fatalf("create user %s: %d %s", res, r.status, r.body)
			}
		}, "DELETE", "/api/v1/users/{res}", "",
			[]grantSpec{{acl.ResourceCluster, acl.ClusterName, acl.OpAlter}}, "cluster_authorization_failed", 204, ""},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e.t = t
			defer e.revokeAll()
			mine, roots := fmt.Sprintf("a%d", i), fmt.Sprintf("r%d", i)
			if tc.setup != nil {
				tc.setup(mine)
				tc.setup(roots)
			}
			req := func(user, res string) resp {
				return e.do(user, tc.method, strings.ReplaceAll(tc.path, "{res}", res), strings.ReplaceAll(tc.body, "{res}", res))
			}
			r := req("", mine)
			if r.status != 401 || r.header.Get("WWW-Authenticate") == "" {
				t.Fatalf("without a login: %d %s", r.status, r.body)
			}
			checkError(t, req("alice", mine), 403, tc.code, "not authorized")
			for _, g := range tc.grants {
				e.grant(g.typ, strings.ReplaceAll(g.name, "%s", mine), g.op)
			}
			if tc.ok == 0 { // a partial grant: still refused
				checkError(t, req("alice", mine), 403, tc.after, "not authorized")
				return
			}
			if r := req("alice", mine); r.status != tc.ok {
				t.Fatalf("alice with %v: %d %s", tc.grants, r.status, r.body)
			}
			if r := req("root", roots); r.status != tc.ok {
				t.Fatalf("root: %d %s", r.status, r.body)
			}
		})
	}
}

// Listings show only what the caller may DESCRIBE: topics; groups (all of
// them with DESCRIBE on the cluster), and in a group only the offsets of
// topics it may DESCRIBE, in the list, the group, its offsets and its lag.
func TestRESTListingsFiltered(t *testing.T) {
	t.Parallel()
	e := newAuthEnv(t)
	for _, name := range []string{"seen", "hidden"} {
		e.topic(name)
	}
	e.group("g-seen", "seen")
	e.group("g-seen", "hidden")
	e.group("g-hidden", "seen")
	e.grant(acl.ResourceTopic, "seen", acl.OpDescribe)
	e.grant(acl.ResourceGroup, "g-seen", acl.OpDescribe)

	topics := func(user string) []string {
		var out []string
		for _, tp := range decodeInto[[]map[string]any](t, e.must(user, "GET", "/api/v1/topics", 200).body) {
			out = append(out, tp["name"].(string))
		}
		slices.Sort(out)
		return out
	}
	if got := topics("alice"); !slices.Equal(got, []string{"seen"}) {
		t.Errorf("alice's topics: %v", got)
	}
	if got := topics("root"); !slices.Equal(got, []string{"hidden", "seen"}) {
		t.Errorf("root's topics: %v", got)
	}

	type groupSummary struct {
		GroupID    string `json:"group_id"`
		Topics     []string
		Partitions []struct{ Topic string }
	}
	groups := func() map[string][]string {
		out := map[string][]string{}
		for _, g := range decodeInto[[]groupSummary](t, e.must("alice", "GET", "/api/v1/consumer-groups", 200).body) {
			out[g.GroupID] = g.Topics
			for _, p := range g.Partitions {
				if p.Topic != "seen" {
					t.Errorf("group %s lists a partition of %q", g.GroupID, p.Topic)
				}
			}
		}
		return out
	}
	if got := groups(); len(got) != 1 || !slices.Equal(got["g-seen"], []string{"seen"}) {
		t.Errorf("alice's groups: %v", got)
	}
	for _, path := range []string{"/api/v1/consumer-groups/g-seen", "/api/v1/consumer-groups/g-seen/offsets", "/api/v1/consumer-groups/g-seen/lag"} {
		if body := string(e.must("alice", "GET", path, 200).body); strings.Contains(body, "hidden") {
			t.Errorf("%s shows the hidden topic: %s", path, body)
		}
		if body := string(e.must("root", "GET", path, 200).body); !strings.Contains(body, "hidden") {
			t.Errorf("%s as root misses the hidden topic: %s", path, body)
		}
	}
	// DESCRIBE on the cluster lists every group (Kafka's ListGroups).
	e.grant(acl.ResourceCluster, acl.ClusterName, acl.OpDescribe)
	if got := groups(); len(got) != 2 {
		t.Errorf("alice's groups with DESCRIBE on the cluster: %v", got)
	}
}

// An unauthorized topic or group is refused the same way whether it
// exists or not: nothing tells them apart but the name in the message.
func TestRESTUnauthorizedExistingAndMissingAlike(t *testing.T) {
	t.Parallel()
	e := newAuthEnv(t)
	e.topic("there")
	e.group("there", "there")
	for _, tc := range []struct{ method, path, body string }{
		{"GET", "/api/v1/topics/{res}", ""},
		{"GET", "/api/v1/topics/{res}/partitions", ""},
		{"DELETE", "/api/v1/topics/{res}", ""},
		{"POST", "/api/v1/produce", `{"topic":"{res}","value":"v"}`},
		{"GET", "/api/v1/consume?topic={res}", ""},
		{"GET", "/api/v1/consumer-groups/{res}", ""},
		{"GET", "/api/v1/consumer-groups/{res}/lag", ""},
		{"DELETE", "/api/v1/consumer-groups/{res}", ""},
		{"POST", "/api/v1/consumer-groups/{res}/reset", `{"strategy":"latest"}`},
	} {
		answer := func(name string) string {
			r := e.do("alice", tc.method, strings.ReplaceAll(tc.path, "{res}", name), strings.ReplaceAll(tc.body, "{res}", name))
			return fmt.Sprintf("%d %s %s", r.status, r.header.Get("Content-Type"), strings.ReplaceAll(string(r.body), name, "NAME"))
		}
		there, missing := answer("there"), answer("nowhere")
		if there != missing || !strings.HasPrefix(there, "403 ") {
			t.Errorf("%s %s: existing %q, missing %q", tc.method, tc.path, there, missing)
		}
	}
	// The same requests of a super user tell them apart.
	if r := e.do("root", "GET", "/api/v1/topics/nowhere", ""); r.status != 404 {
		t.Errorf("root, missing topic: %d %s", r.status, r.body)
	}
}

func (e *authEnv) must(user, method, path string, status int) resp {
	e.t.Helper()
	r := e.do(user, method, path, "")
	if r.status != status {
		e.t.Fatalf("%s %s as %q: %d %s, want %d", method, path, user, r.status, r.body, status)
	}
	return r
}

// The profiler costs the agent CPU and shows its command line: DESCRIBE on
// the cluster (monitoring's grant) is not enough, ALTER is.
func TestRESTProfilerNeedsAlterCluster(t *testing.T) {
	t.Parallel()
	e := newAuthEnv(t)
	e.grant(acl.ResourceCluster, acl.ClusterName, acl.OpDescribe)
	e.must("alice", "GET", "/api/v1/metrics", 200)
	e.must("alice", "GET", "/debug/pprof/", 403)
	e.grant(acl.ResourceCluster, acl.ClusterName, acl.OpAlter)
	e.must("alice", "GET", "/debug/pprof/", 200)
}

// A reset that names no topic moves every topic of the group: refused
// when the caller may not READ one of them, without naming a topic it
// may not see.
func TestRESTResetRefusalNamesNoHiddenTopic(t *testing.T) {
	t.Parallel()
	e := newAuthEnv(t)
	e.topic("payroll-secret")
	e.group("g1", "payroll-secret")
	e.grant(acl.ResourceGroup, "g1", acl.OpRead)
	r := e.do("alice", "POST", "/api/v1/consumer-groups/g1/reset", `{"strategy":"earliest"}`)
	if r.status != 403 || strings.Contains(string(r.body), "payroll-secret") {
		t.Fatalf("reset of a group with a hidden topic: %d %s; want 403 naming no topic", r.status, r.body)
	}
}
