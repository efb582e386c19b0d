package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/internal/e2e"
	"github.com/streamhouse/streamhouse/internal/testutil"
)

// server is a real streamhouse process shared by the subtests of one
// test; each subtest uses its own topics and groups.
type server struct {
	proc *e2e.Proc
	url  string
}

// startServer runs the real binary on the embedded defaults in a
// temporary folder.
func startServer(t *testing.T) *server {
	t.Helper()
	dir := t.TempDir()
	p := e2e.Start(t, dir, e2e.Local.Env(t, dir))
	return &server{proc: p, url: p.URL}
}

var uniqCounter atomic.Int64

// uniq returns a name no other subtest uses.
func uniq(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, time.Now().UnixNano()%1e6, uniqCounter.Add(1))
}

// result is one in-process run of streamctl.
type runResult struct {
	code           int
	stdout, stderr string
}

func (r runResult) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// envOf is getenv over a map.
func envOf(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

// runCLI runs streamctl in-process against url with stdin.
func runCLI(t *testing.T, url, stdin string, args ...string) runResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	return runCtx(ctx, url, strings.NewReader(stdin), args...)
}

func runCtx(ctx context.Context, url string, stdin io.Reader, args ...string) runResult {
	var out, errOut testutil.SyncBuffer
	code := Run(ctx, args, stdin, &out, &errOut, envOf(map[string]string{"STREAMHOUSE_API_URL": url}))
	return runResult{code: code, stdout: out.String(), stderr: errOut.String()}
}

// run is runCLI with no stdin.
func (s *server) run(t *testing.T, args ...string) runResult {
	t.Helper()
	return runCLI(t, s.url, "", args...)
}

// ok runs a command that must succeed and returns its stdout.
func (s *server) ok(t *testing.T, args ...string) string {
	t.Helper()
	r := s.run(t, args...)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("streamctl %q: %v", args, r)
	}
	return r.stdout
}

// fails runs a command that must exit with code and say want on stderr.
func (s *server) fails(t *testing.T, code int, want string, args ...string) runResult {
	t.Helper()
	r := s.run(t, args...)
	if r.code != code || !strings.HasPrefix(r.stderr, "streamctl: ") || !strings.Contains(r.stderr, want) {
		t.Fatalf("streamctl %q: want exit %d and %q on stderr, got %v", args, code, want, r)
	}
	return r
}

// jsonOut runs a command with -o json and decodes its stdout into v.
func (s *server) jsonOut(t *testing.T, v any, args ...string) {
	t.Helper()
	out := s.ok(t, append([]string{"-o", "json"}, args...)...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("streamctl %q: decode %q: %v", args, out, err)
	}
}

// createTopic creates a topic with n partitions and returns its name.
func (s *server) createTopic(t *testing.T, prefix string, n int) string {
	t.Helper()
	name := uniq(prefix)
	s.ok(t, "topic", "create", name, "--partitions", fmt.Sprint(n))
	return name
}

// rows splits table output into lines of fields.
func rows(out string) [][]string {
	var rs [][]string
	for _, l := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		rs = append(rs, strings.Fields(l))
	}
	return rs
}

// closedURL is the URL of a port nothing listens on.
func closedURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}
