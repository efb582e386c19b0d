package cli

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/internal/e2e"
	"github.com/streamhouse/streamhouse/internal/testutil"
)

// A server that requires logins: every transport streamctl speaks logs
// in with --user/--password (or the environment), and user create, list
// and delete manage the users.
func TestLogins(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := e2e.Start(t, dir, append(e2e.Local.Env(t, dir), "AUTH_ENABLED=true", "AUTH_BOOTSTRAP_USERS=admin:admin-pw", "SUPER_USERS=admin"))
	run := func(env map[string]string, args ...string) runResult {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
		defer cancel()
		env["STREAMHOUSE_API_URL"] = p.URL
		var out, errOut testutil.SyncBuffer
		code := Run(ctx, args, strings.NewReader(""), &out, &errOut, envOf(env))
		return runResult{code: code, stdout: out.String(), stderr: errOut.String()}
	}
	ok := func(env map[string]string, args ...string) string {
		t.Helper()
		r := run(env, args...)
		if r.code != 0 {
			t.Fatalf("streamctl %q: %v", args, r)
		}
		return r.stdout
	}
	admin := func(args ...string) []string {
		return append([]string{"--user", "admin", "--password", "admin-pw"}, args...)
	}

	// Without a login: refused, saying why.
	if r := run(map[string]string{}, "topic", "list"); r.code != ExitError || !strings.Contains(r.stderr, "HTTP 401") {
		t.Fatalf("topic list without a login: %v", r)
	}
	if r := run(map[string]string{}, "schema", "list"); r.code != ExitError || !strings.Contains(r.stderr, "401") {
		t.Fatalf("schema list without a login: %v", r)
	}
	// Flags, then the environment.
	ok(map[string]string{}, admin("topic", "create", "logins", "--partitions", "1")...)
	env := map[string]string{"STREAMHOUSE_USER": "admin", "STREAMHOUSE_PASSWORD": "admin-pw"}
	if out := ok(env, "topic", "list"); !strings.Contains(out, "logins") {
		t.Fatalf("topic list as admin: %q", out)
	}
	ok(env, "produce", "logins", "--value", "v1")
	if out := ok(env, "consume", "logins", "--limit", "1"); !strings.Contains(out, "v1") {
		t.Fatalf("consume as admin: %q", out)
	}
	ok(env, "schema", "list")
	// A user without a password, off a terminal: a usage error.
	if r := run(map[string]string{}, "--user", "admin", "topic", "list"); r.code != ExitUsage || !strings.Contains(r.stderr, "needs a password") {
		t.Fatalf("--user without a password: %v", r)
	}

	// Users.
	if out := ok(env, "user", "create", "bob", "--new-password", "bob-pw"); !strings.Contains(out, "SCRAM-SHA-256") || !strings.Contains(out, "SCRAM-SHA-512") {
		t.Fatalf("user create: %q", out)
	}
	ok(env, "user", "create", "carol", "--new-password", "carol-pw", "--mechanism", "SCRAM-SHA-512")
	var listed struct {
		Users []userInfo `json:"users"`
	}
	if err := json.Unmarshal([]byte(ok(env, "-o", "json", "user", "list")), &listed); err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, u := range listed.Users {
		got[u.Name] = len(u.Credentials)
	}
	if len(got) != 3 || got["admin"] != 2 || got["bob"] != 2 || got["carol"] != 1 {
		t.Fatalf("user list: %+v", listed)
	}
	if out := ok(env, "user", "list"); !strings.Contains(out, "carol") || !strings.Contains(out, "NAME") {
		t.Fatalf("user list table: %q", out)
	}
	// bob logs in; a new password replaces the old one.
	bob := map[string]string{"STREAMHOUSE_USER": "bob", "STREAMHOUSE_PASSWORD": "bob-pw"}
	ok(bob, "topic", "list")
	ok(env, "user", "create", "bob", "--new-password", "bob-pw2")
	if r := run(bob, "topic", "list"); r.code != ExitError || !strings.Contains(r.stderr, "401") {
		t.Fatalf("bob's old password: %v", r)
	}
	bob["STREAMHOUSE_PASSWORD"] = "bob-pw2"
	ok(bob, "topic", "list")
	// A SCRAM-SHA-512-only user logs in over Kafka with that mechanism.
	brokers := p.KafkaAddr
	// ACLs are enforced with logins on: carol needs them on the topic.
	ok(env, "acl", "create", "--brokers", brokers, "--allow-principal", "User:carol", "--operation", "all", "--topic", "logins")
	ok(map[string]string{}, "--user", "carol", "--password", "carol-pw", "--sasl-mechanism", "SCRAM-SHA-512",
		"perf", "produce", "--brokers", brokers, "--topic", "logins", "--num-records", "5")
	// Kafka commands log in with SCRAM-SHA-256 by default.
	ok(env, "transaction", "list", "--brokers", brokers)
	if r := run(map[string]string{}, "transaction", "list", "--brokers", brokers, "--timeout", "5s"); r.code == 0 {
		t.Fatalf("transaction list without a login: %v", r)
	}
	if r := run(map[string]string{}, "--sasl-mechanism", "GSSAPI", "topic", "list"); r.code != ExitUsage {
		t.Fatalf("--sasl-mechanism GSSAPI: %v", r)
	}
	// Delete.
	ok(env, "user", "delete", "carol", "--mechanism", "SCRAM-SHA-512")
	ok(env, "user", "delete", "bob")
	if r := run(bob, "topic", "list"); r.code != ExitError {
		t.Fatalf("deleted bob: %v", r)
	}
	if r := run(env, "user", "delete", "bob"); r.code != ExitError || !strings.Contains(r.stderr, "404") {
		t.Fatalf("delete a deleted user: %v", r)
	}
	if r := run(env, "user", "create", "x:y", "--new-password", "p"); r.code != ExitError || !strings.Contains(r.stderr, "400") {
		t.Fatalf("bad user name: %v", r)
	}
	if r := run(env, "user", "create", "dave"); r.code != ExitUsage {
		t.Fatalf("user create without --new-password: %v", r)
	}
}
