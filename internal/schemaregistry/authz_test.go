package schemaregistry

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamhouse/streamhouse/internal/acl"
	"github.com/streamhouse/streamhouse/internal/auth"
	"github.com/streamhouse/streamhouse/internal/metadata/metadatatest"
)

// authAPI is the registry as the server serves it with AUTH_ENABLED: under
// /schemas, behind the HTTP login middleware, with users root
// (SUPER_USERS), alice and bob, and ACLs enforced from a real store.
type authAPI struct {
	t   *testing.T
	url string
	acl *acl.Authorizer
	reg *prometheus.Registry // the Authorizer's metrics
}

func newAuthAPI(t *testing.T) *authAPI {
	t.Helper()
	ctx := context.Background()
	logger := slog.New(slog.DiscardHandler)
	store := metadatatest.OpenSQLite(t)
	authn := auth.New(auth.Config{Store: store, Enabled: true, SuperUsers: []string{"root"}, Logger: logger})
	if err := authn.Bootstrap(ctx, []auth.BootstrapUser{{Name: "root", Password: "root-pw"}, {Name: "alice", Password: "alice-pw"}, {Name: "bob", Password: "bob-pw"}}); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	a, err := acl.New(ctx, acl.Config{Store: store, Logger: logger, SuperUsers: []string{"root"}, Enforce: true, Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/schemas/", http.StripPrefix("/schemas", New(Config{Store: store, Logger: logger, ACL: a})))
	srv := httptest.NewServer(authn.HTTP(mux))
	t.Cleanup(srv.Close)
	return &authAPI{t: t, url: srv.URL, acl: a, reg: reg}
}

// do sends a request as user ("" none; password user+"-pw") and returns
// the status and the body.
func (a *authAPI) do(user, method, path, body string) (int, string) {
	a.t.Helper()
	req, err := http.NewRequest(method, a.url+"/schemas"+path, strings.NewReader(body))
	if err != nil {
		a.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", ContentType)
	}
	if user != "" {
		req.SetBasicAuth(user, user+"-pw")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}

func (a *authAPI) must(user, method, path, body string, status int) string {
	a.t.Helper()
	code, raw := a.do(user, method, path, body)
	if code != status {
		a.t.Fatalf("%s %s as %q: %d %s, want %d", method, path, user, code, raw, status)
	}
	return raw
}

func (a *authAPI) grant(typ acl.ResourceType, name string, op acl.Operation) {
	a.t.Helper()
	a.grantTo("alice", typ, name, op)
}

func (a *authAPI) grantTo(user string, typ acl.ResourceType, name string, op acl.Operation) {
	a.t.Helper()
	b := acl.Binding{ResourceType: typ, ResourceName: name, PatternType: acl.PatternLiteral,
		Principal: "User:" + user, Host: acl.WildcardHost, Operation: op, Permission: acl.PermissionAllow}
	for _, err := range a.acl.CreateACLs(context.Background(), []acl.Binding{b}) {
		if err != nil {
			a.t.Fatal(err)
		}
	}
}

func (a *authAPI) revokeAll() {
	a.t.Helper()
	for _, r := range a.acl.DeleteACLs(context.Background(), []acl.Filter{acl.AnyFilter}) {
		if r.Err != nil {
			a.t.Fatal(r.Err)
		}
	}
}

// schemaBody is a registration body of an Avro record of its own name.
func schemaBody(name string) string {
	s, _ := json.Marshal(fmt.Sprintf(`{"type":"record","name":"R%s","fields":[{"name":"f","type":"string"}]}`, name))
	return `{"schema":` + string(s) + `}`
}

// register registers a schema of its own under subject as root and
// returns its ID.
func (a *authAPI) register(subject string) int64 {
	a.t.Helper()
	var out struct{ ID int64 }
	raw := a.must("root", "POST", "/subjects/"+subject+"/versions", schemaBody(recordName(subject)), 200)
	if err := json.Unmarshal([]byte(raw), &out); err != nil {
		a.t.Fatal(err)
	}
	return out.ID
}

// recordName is the name of the record register registers under subject.
func recordName(subject string) string {
	return strings.NewReplacer(".", "_", "-", "_").Replace(subject)
}

// isForbidden checks the registry's 403: {"error_code":40301,"message"}.
func isForbidden(t *testing.T, what string, code int, raw string) {
	t.Helper()
	var body map[string]any
	_ = json.Unmarshal([]byte(raw), &body)
	if code != 403 || body["error_code"] != float64(40301) || len(body) != 2 {
		t.Fatalf("%s: %d %s, want 403 with error_code 40301", what, code, raw)
	}
}

// Every schema registry endpoint, from one table: without a login 401 in
// the registry's format; logged in without the ACL the mapping asks
// (docs/security.md: a subject <topic>-value or <topic>-key is its topic,
// any other subject the cluster), 403 with error_code 40301; with it, or
// as a super user, served. Each case acts on subjects of its own.
func TestRegistryEndpointsAuthorization(t *testing.T) {
	t.Parallel()
	api := newAuthAPI(t)
	type grant struct {
		typ  acl.ResourceType
		name string // "%s" is the case's topic
		op   acl.Operation
	}
	topic := func(op acl.Operation) []grant { return []grant{{acl.ResourceTopic, "%s", op}} }
	cluster := func(op acl.Operation) []grant { return []grant{{acl.ResourceCluster, acl.ClusterName, op}} }
	const (
		valueSubject   = "%s-value"
		keySubject     = "%s-key"
		clusterSubject = "com.acme.%s"
	)
	cases := []struct {
		name     string
		subject  string // of the case's topic; "" none
		register bool   // root registers the subject first
		method   string
		path     string // {subject}, and {id} the ID root registered
		body     string // "schema": a new schema's registration body; "registered": root's
		grants   []grant
		ok       int
	}{
		{"list versions", valueSubject, true, "GET", "/subjects/{subject}/versions", "", topic(acl.OpDescribe), 200},
		{"register", valueSubject, false, "POST", "/subjects/{subject}/versions", "schema", topic(acl.OpWrite), 200},
		{"register a key schema", keySubject, false, "POST", "/subjects/{subject}/versions", "schema", topic(acl.OpWrite), 200},
		{"get version", valueSubject, true, "GET", "/subjects/{subject}/versions/1", "", topic(acl.OpDescribe), 200},
		{"get latest", valueSubject, true, "GET", "/subjects/{subject}/versions/latest", "", topic(acl.OpDescribe), 200},
		{"version schema", valueSubject, true, "GET", "/subjects/{subject}/versions/1/schema", "", topic(acl.OpDescribe), 200},
		{"referenced by", valueSubject, true, "GET", "/subjects/{subject}/versions/1/referencedby", "", topic(acl.OpDescribe), 200},
		{"delete version", valueSubject, true, "DELETE", "/subjects/{subject}/versions/1", "", topic(acl.OpDelete), 200},
		{"lookup", valueSubject, true, "POST", "/subjects/{subject}", "registered", topic(acl.OpDescribe), 200},
		{"delete subject", valueSubject, true, "DELETE", "/subjects/{subject}", "", topic(acl.OpDelete), 200},
		{"schema by id", valueSubject, true, "GET", "/schemas/ids/{id}", "", topic(acl.OpDescribe), 200},
		{"schema text by id", valueSubject, true, "GET", "/schemas/ids/{id}/schema", "", topic(acl.OpDescribe), 200},
		{"schema versions by id", valueSubject, true, "GET", "/schemas/ids/{id}/versions", "", topic(acl.OpDescribe), 200},
		{"schema subjects by id", valueSubject, true, "GET", "/schemas/ids/{id}/subjects", "", topic(acl.OpDescribe), 200},
		{"subject config", valueSubject, true, "GET", "/config/{subject}?defaultToGlobal=true", "", topic(acl.OpDescribeConfigs), 200},
		{"set subject config", valueSubject, true, "PUT", "/config/{subject}", `{"compatibility":"FULL"}`, topic(acl.OpAlterConfigs), 200},
		{"delete subject config", valueSubject, true, "DELETE", "/config/{subject}", "", topic(acl.OpAlterConfigs), 200},
		{"compatibility with latest", valueSubject, true, "POST", "/compatibility/subjects/{subject}/versions/latest", "schema", topic(acl.OpDescribe), 200},
		{"compatibility with all", valueSubject, true, "POST", "/compatibility/subjects/{subject}/versions", "schema", topic(acl.OpDescribe), 200},
		{"global config", "", false, "GET", "/config", "", cluster(acl.OpDescribeConfigs), 200},
		{"set global config", "", false, "PUT", "/config", `{"compatibility":"BACKWARD"}`, cluster(acl.OpAlterConfigs), 200},
		{"register a record-name subject", clusterSubject, false, "POST", "/subjects/{subject}/versions", "schema", cluster(acl.OpAlter), 200},
		{"read a record-name subject", clusterSubject, true, "GET", "/subjects/{subject}/versions/1", "", cluster(acl.OpDescribe), 200},
		{"delete a record-name subject", clusterSubject, true, "DELETE", "/subjects/{subject}", "", cluster(acl.OpAlter), 200},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			api.t = t
			defer api.revokeAll()
			mine, roots := fmt.Sprintf("a%d", i), fmt.Sprintf("r%d", i)
			ids := map[string]int64{}
			subjectOf := func(res string) string {
				if tc.subject == "" {
					return ""
				}
				return fmt.Sprintf(tc.subject, res)
			}
			for _, res := range []string{mine, roots} {
				if tc.register {
					ids[res] = api.register(subjectOf(res))
					// A level of its own, for DELETE /config/{subject}.
					api.must("root", "PUT", "/config/"+subjectOf(res), `{"compatibility":"FORWARD"}`, 200)
				}
			}
			req := func(user, res string) (int, string) {
				path := strings.NewReplacer("{subject}", subjectOf(res), "{id}", fmt.Sprint(ids[res])).Replace(tc.path)
				body := tc.body
				switch body {
				case "schema":
					body = schemaBody("new" + res)
				case "registered":
					body = schemaBody(recordName(subjectOf(res)))
				}
				return api.do(user, tc.method, path, body)
			}
			code, raw := req("", mine)
			if code != 401 || !strings.Contains(raw, `"error_code":401`) {
				t.Fatalf("without a login: %d %s", code, raw)
			}
			code, raw = req("alice", mine)
			isForbidden(t, "alice without ACLs", code, raw)
			for _, g := range tc.grants {
				api.grant(g.typ, strings.ReplaceAll(g.name, "%s", mine), g.op)
			}
			if code, raw := req("alice", mine); code != tc.ok {
				t.Fatalf("alice with %v: %d %s", tc.grants, code, raw)
			}
			if code, raw := req("root", roots); code != tc.ok {
				t.Fatalf("root: %d %s", code, raw)
			}
		})
	}
	// Endpoints that name no resource need a login only.
	for _, path := range []string{"/", "/schemas/types"} {
		if code, raw := api.do("", "GET", path, ""); code != 401 {
			t.Errorf("GET %s without a login: %d %s", path, code, raw)
		}
		api.must("alice", "GET", path, "", 200)
	}
}

// Listings show only the subjects the caller may read: GET /subjects, and
// the usages of a schema ID; a schema ID or subject the caller may not
// read is refused alike whether it exists or not; a registration that
// references a subject the caller may not read is refused.
func TestRegistryListingsAndUnknownsAlike(t *testing.T) {
	t.Parallel()
	api := newAuthAPI(t)
	seen := api.register("seen-value")
	if id := api.register("hidden-value"); id == seen {
		t.Fatal("two schemas share an ID")
	}
	// The same schema under a subject alice may read and one she may not.
	shared := api.must("root", "POST", "/subjects/seen-key/versions", schemaBody("shared"), 200)
	api.must("root", "POST", "/subjects/hidden-key/versions", schemaBody("shared"), 200)
	var sh struct{ ID int64 }
	if err := json.Unmarshal([]byte(shared), &sh); err != nil {
		t.Fatal(err)
	}
	api.register("com.acme.Shared")
	api.grant(acl.ResourceTopic, "seen", acl.OpRead)

	var subjects []string
	if err := json.Unmarshal([]byte(api.must("alice", "GET", "/subjects", "", 200)), &subjects); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(subjects, []string{"seen-key", "seen-value"}) {
		t.Errorf("alice's subjects: %v", subjects)
	}
	if err := json.Unmarshal([]byte(api.must("root", "GET", "/subjects", "", 200)), &subjects); err != nil {
		t.Fatal(err)
	}
	if len(subjects) != 5 {
		t.Errorf("root's subjects: %v", subjects)
	}
	if got := api.must("alice", "GET", fmt.Sprintf("/schemas/ids/%d/subjects", sh.ID), "", 200); got != `["seen-key"]`+"\n" {
		t.Errorf("alice's usages of the shared schema: %s", got)
	}
	// DESCRIBE on the cluster reads the subjects named otherwise.
	api.grant(acl.ResourceCluster, acl.ClusterName, acl.OpDescribe)
	if err := json.Unmarshal([]byte(api.must("alice", "GET", "/subjects", "", 200)), &subjects); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(subjects, []string{"com.acme.Shared", "seen-key", "seen-value"}) {
		t.Errorf("alice's subjects with DESCRIBE on the cluster: %v", subjects)
	}

	alike := func(what, path, there, missing string) {
		t.Helper()
		c1, r1 := api.do("alice", "GET", fmt.Sprintf(path, there), "")
		c2, r2 := api.do("alice", "GET", fmt.Sprintf(path, missing), "")
		isForbidden(t, what, c1, r1)
		if c1 != c2 || strings.ReplaceAll(r1, there, "X") != strings.ReplaceAll(r2, missing, "X") {
			t.Errorf("%s: existing %d %s, missing %d %s", what, c1, r1, c2, r2)
		}
	}
	var hiddenID int64
	{
		var out struct{ ID int64 }
		raw := api.must("root", "GET", "/subjects/hidden-value/versions/1", "", 200)
		if err := json.Unmarshal([]byte(raw), &out); err != nil {
			t.Fatal(err)
		}
		hiddenID = out.ID
	}
	alike("schema by ID", "/schemas/ids/%s", fmt.Sprint(hiddenID), "99999")
	alike("subject versions", "/subjects/%s-value/versions", "hidden", "nowhere")
	if code, raw := api.do("root", "GET", "/schemas/ids/99999", ""); code != 404 {
		t.Errorf("root, missing schema ID: %d %s", code, raw)
	}

	// A reference to a subject alice may not read.
	api.grant(acl.ResourceTopic, "mine", acl.OpWrite)
	ref := `{"schema":"{\"type\":\"record\",\"name\":\"U\",\"fields\":[{\"name\":\"r\",\"type\":\"Rhidden_value\"}]}",` +
		`"references":[{"name":"Rhidden_value","subject":"hidden-value","version":1}]}`
	code, raw := api.do("alice", "POST", "/subjects/mine-value/versions", ref)
	isForbidden(t, "a reference to hidden-value", code, raw)
	api.grant(acl.ResourceTopic, "hidden", acl.OpDescribe)
	api.must("alice", "POST", "/subjects/mine-value/versions", ref, 200)
}

// registryError decodes the registry's error body.
func registryError(t *testing.T, raw string) (code int, message string) {
	t.Helper()
	var body struct {
		ErrorCode int    `json:"error_code"`
		Message   string `json:"message"`
	}
	if err := json.Unmarshal([]byte(raw), &body); err != nil {
		t.Fatalf("not a registry error: %s", raw)
	}
	return body.ErrorCode, body.Message
}

// The schemas referencing a version are shown only as far as the caller
// may read them: GET .../referencedby lists the IDs of referencing
// schemas under a subject the caller may read (as GET /schemas/ids/{id}
// asks), and a delete refused because of references (42206) is still
// refused but names only those, never an ID or subject the caller may not
// read. alice may read base, lone and seen but not hidden; bob may read
// all four.
func TestRegistryReferencesShownAsFarAsReadable(t *testing.T) {
	t.Parallel()
	api := newAuthAPI(t)
	api.register("base-value")
	api.register("lone-value")
	refBody := func(record string, subjects ...string) string {
		var fields, refs []string
		for i, s := range subjects {
			fields = append(fields, fmt.Sprintf(`{"name":"f%d","type":"%s"}`, i, "R"+recordName(s)))
			refs = append(refs, fmt.Sprintf(`{"name":"R%s","subject":"%s","version":1}`, recordName(s), s))
		}
		schema, _ := json.Marshal(fmt.Sprintf(`{"type":"record","name":"%s","fields":[%s]}`, record, strings.Join(fields, ",")))
		return `{"schema":` + string(schema) + `,"references":[` + strings.Join(refs, ",") + `]}`
	}
	id := func(raw string) int64 {
		var out struct{ ID int64 }
		if err := json.Unmarshal([]byte(raw), &out); err != nil || out.ID == 0 {
			t.Fatalf("register: %s %v", raw, err)
		}
		return out.ID
	}
	seen := id(api.must("root", "POST", "/subjects/seen-value/versions", refBody("S", "base-value"), 200))
	hidden := id(api.must("root", "POST", "/subjects/hidden-value/versions", refBody("H", "base-value", "lone-value"), 200))
	for _, topic := range []string{"base", "lone"} {
		api.grant(acl.ResourceTopic, topic, acl.OpDescribe)
		api.grant(acl.ResourceTopic, topic, acl.OpDelete)
	}
	api.grant(acl.ResourceTopic, "seen", acl.OpDescribe)
	for _, topic := range []string{"base", "lone", "seen", "hidden"} {
		api.grantTo("bob", acl.ResourceTopic, topic, acl.OpDescribe)
	}

	referencedBy := func(user, subject string) string {
		t.Helper()
		return strings.TrimSpace(api.must(user, "GET", "/subjects/"+subject+"/versions/1/referencedby", "", 200))
	}
	if got, want := referencedBy("alice", "base-value"), fmt.Sprintf("[%d]", seen); got != want {
		t.Errorf("alice: base-value referenced by %s, want %s", got, want)
	}
	if got, want := referencedBy("bob", "base-value"), fmt.Sprintf("[%d,%d]", seen, hidden); got != want {
		t.Errorf("bob: base-value referenced by %s, want %s", got, want)
	}
	if got := referencedBy("alice", "lone-value"); got != "[]" {
		t.Errorf("alice: lone-value referenced by %s, want []", got)
	}
	if got, want := referencedBy("bob", "lone-value"), fmt.Sprintf("[%d]", hidden); got != want {
		t.Errorf("bob: lone-value referenced by %s, want %s", got, want)
	}

	// Deletes are refused all the same, naming what alice may read only.
	refused := func(user, path, wantMsg string) {
		t.Helper()
		status, raw := api.do(user, "DELETE", path, "")
		code, msg := registryError(t, raw)
		if status != 422 || code != 42206 || msg != wantMsg {
			t.Errorf("%s DELETE %s: %d %d %q, want 422 42206 %q", user, path, status, code, msg, wantMsg)
		}
	}
	const unreadable = "schemas under subjects you may not read"
	refused("alice", "/subjects/base-value/versions/1",
		fmt.Sprintf("One or more references exist to the schema {subject=base-value, version=1}: schema ids [%d], and %s", seen, unreadable))
	refused("alice", "/subjects/base-value",
		fmt.Sprintf("One or more references exist to the schema {subject=base-value, version=1}: schema ids [%d], and %s", seen, unreadable))
	refused("alice", "/subjects/lone-value/versions/latest",
		"One or more references exist to the schema {subject=lone-value, version=1}: from "+unreadable)
	refused("alice", "/subjects/lone-value", "One or more references exist to the schema {subject=lone-value, version=1}: from "+unreadable)
	refused("root", "/subjects/base-value/versions/1",
		fmt.Sprintf("One or more references exist to the schema {subject=base-value, version=1}: schema ids [%d %d]", seen, hidden))
	for _, subject := range []string{"base-value", "lone-value"} {
		if got := strings.TrimSpace(api.must("root", "GET", "/subjects/"+subject+"/versions", "", 200)); got != "[1]" {
			t.Errorf("%s after refused deletes: versions %s", subject, got)
		}
	}
}

// Registry refusals are counted as the HTTP listener's denials, by
// resource type and operation; a filtered listing is not a refusal.
func TestRegistryCountsDenials(t *testing.T) {
	t.Parallel()
	api := newAuthAPI(t)
	hiddenID := api.register("hidden-value")
	sharedID := api.register("com.acme.Shared")
	value := func(typ acl.ResourceType, op acl.Operation) float64 {
		t.Helper()
		mfs, err := api.reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != "streamhouse_authorization_denials_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				got := map[string]string{}
				for _, l := range m.GetLabel() {
					got[l.GetName()] = l.GetValue()
				}
				if got["listener"] == auth.ListenerHTTP && got["resource_type"] == typ.String() && got["operation"] == op.String() {
					return m.GetCounter().GetValue()
				}
			}
		}
		t.Fatalf("no series for http %s %s", typ, op)
		return 0
	}
	if v := value(acl.ResourceTopic, acl.OpDescribe); v != 0 {
		t.Fatalf("before any request: %v", v)
	}
	api.must("alice", "GET", "/subjects", "", 200) // filtered: nothing refused
	code, raw := api.do("alice", "GET", "/subjects/hidden-value/versions", "")
	isForbidden(t, "versions of hidden-value", code, raw)
	code, raw = api.do("alice", "GET", fmt.Sprintf("/schemas/ids/%d", hiddenID), "")
	isForbidden(t, "hidden schema by ID", code, raw)
	code, raw = api.do("alice", "DELETE", "/subjects/com.acme.Shared", "")
	isForbidden(t, "delete a cluster subject", code, raw)
	if v := value(acl.ResourceTopic, acl.OpDescribe); v != 2 {
		t.Errorf("TOPIC DESCRIBE denials: %v, want 2", v)
	}
	if v := value(acl.ResourceCluster, acl.OpAlter); v != 1 {
		t.Errorf("CLUSTER ALTER denials: %v, want 1", v)
	}
	// A schema ID only record-name subjects use is the cluster's to
	// refuse; an unknown ID, which no subject uses, a topic's.
	code, raw = api.do("alice", "GET", fmt.Sprintf("/schemas/ids/%d", sharedID), "")
	isForbidden(t, "schema of a record-name subject by ID", code, raw)
	if v := value(acl.ResourceCluster, acl.OpDescribe); v != 1 {
		t.Errorf("CLUSTER DESCRIBE denials after a record-name subject's schema ID: %v, want 1", v)
	}
	code, raw = api.do("alice", "GET", "/schemas/ids/999999", "")
	isForbidden(t, "unknown schema ID", code, raw)
	if v := value(acl.ResourceTopic, acl.OpDescribe); v != 3 {
		t.Errorf("TOPIC DESCRIBE denials after an unknown schema ID: %v, want 3", v)
	}
	if v := value(acl.ResourceCluster, acl.OpDescribe); v != 1 {
		t.Errorf("CLUSTER DESCRIBE denials after an unknown schema ID: %v, want 1", v)
	}
	api.must("root", "GET", "/subjects/hidden-value/versions", "", 200)
	if v := value(acl.ResourceTopic, acl.OpDescribe); v != 3 {
		t.Errorf("after the super user's read: %v, want 3", v)
	}
}
