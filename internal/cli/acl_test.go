package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
)

// TestACLCommands walks ACLs through acl create, list and delete with
// rpk's flags, in both output formats, against the real server's Kafka
// port and against franz-go's kfake (the commands speak plain Kafka).
func TestACLCommands(t *testing.T) {
	t.Parallel()
	for _, target := range []struct {
		name  string
		start func(t *testing.T) string // the bootstrap address
	}{
		{"streamhouse", func(t *testing.T) string { return startServer(t).proc.KafkaAddr }},
		{"kfake", func(t *testing.T) string {
			c, err := kfake.NewCluster(kfake.NumBrokers(1))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(c.Close)
			return c.ListenAddrs()[0]
		}},
	} {
		t.Run(target.name, func(t *testing.T) {
			t.Parallel()
			brokers := target.start(t)
			run := func(args ...string) runResult {
				t.Helper()
				return runCLI(t, "", "", append(args, "--brokers", brokers)...)
			}
			ok := func(args ...string) string {
				t.Helper()
				r := run(args...)
				if r.code != 0 || r.stderr != "" {
					t.Fatalf("streamctl %q: %v", args, r)
				}
				return r.stdout
			}
			listJSON := func(args ...string) []aclRow {
				t.Helper()
				var rs []aclRow
				out := ok(append([]string{"-o", "json", "acl", "list"}, args...)...)
				if err := json.Unmarshal([]byte(out), &rs); err != nil {
					t.Fatalf("acl list %q: %q: %v", args, out, err)
				}
				return rs
			}

			// A bare name is a user; operations repeat or come comma-separated.
			out := ok("acl", "create", "--allow-principal", "alice", "--operation", "read,write", "--topic", "orders")
			if !strings.Contains(out, "PRINCIPAL") || !rowWith(out, "User:alice", "*", "TOPIC", "orders", "LITERAL", "READ", "ALLOW") ||
				!rowWith(out, "User:alice", "WRITE") {
				t.Fatalf("acl create:\n%s", out)
			}
			ok("acl", "create", "--deny-principal", "User:mallory", "--deny-host", "10.0.0.9", "--operation", "all", "--topic", "*")
			ok("acl", "create", "--allow-principal", "User:alice", "--operation", "read", "--operation", "describe",
				"--group", "app-", "--resource-pattern-type", "prefixed")
			ok("acl", "create", "--allow-principal", "producer", "--operation", "idempotent_write", "--cluster")
			ok("acl", "create", "--allow-principal", "producer", "--operation", "write", "--transactional-id", "tx-1")

			all := listJSON()
			if len(all) != 7 {
				t.Fatalf("acl list: %d ACLs, want 7: %+v", len(all), all)
			}
			table := ok("acl", "list")
			for _, want := range [][]string{
				{"User:mallory", "10.0.0.9", "TOPIC", "*", "LITERAL", "ALL", "DENY"},
				{"User:alice", "GROUP", "app-", "PREFIXED", "DESCRIBE", "ALLOW"},
				{"User:producer", "CLUSTER", "kafka-cluster", "IDEMPOTENT_WRITE"},
				{"User:producer", "TRANSACTIONAL_ID", "tx-1", "WRITE"},
			} {
				if !rowWith(table, want...) {
					t.Errorf("acl list has no row with %q:\n%s", want, table)
				}
			}
			// The name's own ACLs (any pattern), or every one that applies
			// to it (match: the * wildcard too).
			if got := listJSON("--topic", "orders"); len(got) != 2 {
				t.Errorf("acl list --topic orders: %+v", got)
			}
			// (kfake's MATCH compares names exactly, unlike Kafka's.)
			if target.name == "streamhouse" {
				if got := listJSON("--topic", "orders", "--resource-pattern-type", "match"); len(got) != 3 {
					t.Errorf("acl list --topic orders --resource-pattern-type match: %+v", got)
				}
				if got := listJSON("--group", "app-7", "--resource-pattern-type", "match"); len(got) != 2 {
					t.Errorf("acl list --group app-7 match: %+v", got)
				}
			}
			if got := listJSON("--deny-principal", "mallory"); len(got) != 1 || got[0].Permission != "DENY" {
				t.Errorf("acl list --deny-principal mallory: %+v", got)
			}
			if got := listJSON("--allow-principal", "producer", "--operation", "write"); len(got) != 1 || got[0].ResourceType != "TRANSACTIONAL_ID" {
				t.Errorf("acl list --allow-principal producer --operation write: %+v", got)
			}

			// Delete: a dry run deletes nothing; then alice's WRITE on
			// orders; then everything.
			dry := ok("acl", "delete", "--topic", "orders", "--dry-run")
			if !rowWith(dry, "User:alice", "READ") || len(listJSON()) != 7 {
				t.Fatalf("acl delete --dry-run:\n%s", dry)
			}
			del := ok("acl", "delete", "--topic", "orders", "--allow-principal", "alice", "--operation", "write")
			if !rowWith(del, "User:alice", "orders", "WRITE") || rowWith(del, "READ") {
				t.Fatalf("acl delete:\n%s", del)
			}
			if got := listJSON("--topic", "orders"); len(got) != 1 || got[0].Operation != "READ" {
				t.Fatalf("after the delete: %+v", got)
			}
			if n := len(ok("acl", "delete", "--all", "-o", "json")); n == 0 {
				t.Fatal("acl delete --all printed nothing")
			}
			if out := ok("acl", "list"); strings.TrimSpace(out) != "No ACLs." {
				t.Fatalf("acl list after deleting all: %q", out)
			}
			if got := listJSON(); got == nil || len(got) != 0 {
				t.Fatalf("acl list -o json after deleting all: %#v", got)
			}

			// Bad command lines: exit 2, nothing sent.
			for _, args := range [][]string{
				{"acl", "create", "--operation", "read", "--topic", "t"},
				{"acl", "create", "--allow-principal", "a", "--operation", "read"},
				{"acl", "create", "--allow-principal", "a", "--topic", "t"},
				{"acl", "create", "--allow-principal", "a", "--topic", "t", "--operation", "any"},
				{"acl", "create", "--allow-principal", "a", "--topic", "t", "--operation", "reed"},
				{"acl", "create", "--allow-principal", "a", "--topic", "t", "--operation", "read", "--resource-pattern-type", "match"},
				{"acl", "create", "--deny-principal", "a", "--allow-host", "10.0.0.1", "--topic", "t", "--operation", "read"},
				{"acl", "list", "--resource-pattern-type", "globbed"},
				{"acl", "delete"},
				{"acl", "delete", "--all", "--topic", "t"},
				{"acl", "list", "extra"},
			} {
				if r := run(args...); r.code != 2 || !strings.HasPrefix(r.stderr, "streamctl: ") {
					t.Errorf("streamctl %q: want exit 2, got %v", args, r)
				}
			}
			if len(listJSON()) != 0 {
				t.Fatal("a refused command line created ACLs")
			}
		})
	}
}

// What the server refuses comes back per ACL, with exit status 1; the
// valid ones of the same command are created.
func TestACLCreateRefused(t *testing.T) {
	t.Parallel()
	brokers := startServer(t).proc.KafkaAddr
	r := runCLI(t, "", "", "acl", "create", "--allow-principal", "alice", "--allow-host", "10.0.0.1,client.example.com",
		"--operation", "read", "--topic", "t", "--brokers", brokers)
	if r.code != 1 || !strings.Contains(r.stderr, "1 of 2 refused") {
		t.Fatalf("create with a host name: %v", r)
	}
	if !strings.Contains(r.stdout, "ERROR") || !strings.Contains(r.stdout, "INVALID_REQUEST") || !strings.Contains(r.stdout, "client.example.com") {
		t.Fatalf("create with a host name printed:\n%s", r.stdout)
	}
	list := runCLI(t, "", "", "acl", "list", "--brokers", brokers)
	if list.code != 0 || !rowWith(list.stdout, "User:alice", "10.0.0.1", "READ") || strings.Contains(list.stdout, "example") {
		t.Fatalf("acl list after a partly refused create: %v", list)
	}
}
