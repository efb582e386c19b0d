package cli

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/internal/testutil"
)

// These tests need no server: usage errors, an unreachable server, help,
// shell completion scripts.

func TestServerDown(t *testing.T) {
	t.Parallel()
	url := closedURL(t)
	for _, args := range [][]string{
		{"topic", "list"},
		{"produce", "t", "--value", "v"},
		{"consume", "t", "--offset", "0"},
		{"consumer", "list"},
		{"offset", "get", "--group", "g", "--topic", "t", "--partition", "0"},
		{"sql", "query", "SELECT 1"},
	} {
		r := runCLI(t, url, "", args...)
		want := "streamctl: cannot connect to the StreamHouse server at " + url + ": connection refused (is it running? set STREAMHOUSE_API_URL or --api-url)\n"
		if r.code != 1 || r.stderr != want || r.stdout != "" {
			t.Errorf("%q with the server down: %v", args, r)
		}
	}
	r := runCLI(t, url, "", "schema", "list")
	if r.code != 1 || !strings.Contains(r.stderr, "cannot connect to the schema registry at "+url+"/schemas: connection refused") {
		t.Errorf("schema list with the server down: %v", r)
	}
	// host:port without a scheme is taken as http.
	r = runCLI(t, "", "", "--api-url", strings.TrimPrefix(url, "http://"), "topic", "list")
	if r.code != 1 || !strings.Contains(r.stderr, "at "+url+": connection refused") {
		t.Errorf("--api-url host:port: %v", r)
	}
	r = runCLI(t, "", "", "--schema-registry-url", url+"/registry/", "schema", "list")
	if r.code != 1 || !strings.Contains(r.stderr, "schema registry at "+url+"/registry: connection refused") {
		t.Errorf("--schema-registry-url: %v", r)
	}
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	url := closedURL(t) // never reached: usage errors come first
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"tpoic", "list"}, `unknown command "tpoic" for "streamctl"; did you mean topic?`},
		{[]string{"topic", "creat"}, `unknown command "creat" for "streamctl topic"; did you mean create?`},
		{[]string{"topic", "list", "--bogus"}, "unknown flag: --bogus (see 'streamctl topic list --help')"},
		{[]string{"-o", "yaml", "topic", "list"}, `--output "yaml": use table or json`},
		{[]string{"--api-url", "ftp://x", "topic", "list"}, `--api-url "ftp://x" is not an http:// or https:// URL`},
		{[]string{"produce"}, "produce: missing TOPIC"},
		{[]string{"consume", "t", "--partition", "x"}, `invalid argument "x" for "-p, --partition"`},
		{[]string{"schema", "register", "s"}, "schema register: missing FILE"},
		{[]string{"consumer", "get"}, "consumer get: missing GROUP"},
		{[]string{"offset", "commit", "--group", "g", "--topic", "t", "--partition", "0", "--offset", "-1"}, "must not be negative"},
	} {
		r := runCLI(t, url, "", tc.args...)
		if r.code != ExitUsage || !strings.HasPrefix(r.stderr, "streamctl: ") || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%q: want exit 2 and %q, got %v", tc.args, tc.want, r)
		}
	}
}

func TestHelpAndExit(t *testing.T) {
	t.Parallel()
	url := closedURL(t)
	for _, args := range [][]string{{"help"}, {"--help"}, {"-h"}} {
		r := runCLI(t, url, "", args...)
		if r.code != 0 || !strings.Contains(r.stdout, "Available Commands:") || !strings.Contains(r.stdout, "every command talks to the server over its REST API") && !strings.Contains(r.stdout, "REST API") {
			t.Errorf("%q: %v", args, r)
		}
	}
	r := runCLI(t, url, "", "help", "produce")
	if r.code != 0 || !strings.Contains(r.stdout, "--ack string") || !strings.Contains(r.stdout, "one record per line") {
		t.Errorf("help produce: %v", r)
	}
	r = runCLI(t, url, "", "consume", "--help")
	if r.code != 0 || !strings.Contains(r.stdout, "--follow") {
		t.Errorf("consume --help: %v", r)
	}
	if r := runCLI(t, url, "", "exit"); r.code != 0 || r.stdout != "" || r.stderr != "" {
		t.Errorf("exit on the command line: %v", r)
	}
	// --grpc-addr and STREAMHOUSE_ADDR are accepted.
	if r := runCLI(t, url, "", "--grpc-addr", "http://localhost:1", "exit"); r.code != 0 {
		t.Errorf("--grpc-addr: %v", r)
	}
}

// The original streamctl's --server/-s (and --grpc-addr, STREAMHOUSE_ADDR)
// names the server when no REST URL is given: its host, at the REST port.
func TestServerFlag(t *testing.T) {
	t.Parallel()
	for addr, want := range map[string]string{
		"http://host:50051": "http://host:8080", "host:9090": "http://host:8080", "https://h.example:443": "https://h.example:8080",
		"[::1]:50051": "http://[::1]:8080", "127.0.0.3": "http://127.0.0.3:8080",
	} {
		if got, err := serverAPIURL(addr); err != nil || got != want {
			t.Errorf("serverAPIURL(%q) = %q, %v; want %q", addr, got, err, want)
		}
	}
	if _, err := serverAPIURL("http://:1"); err == nil {
		t.Error("an address without a host was accepted")
	}
	run := func(env map[string]string, args ...string) runResult {
		var out, errOut testutil.SyncBuffer
		code := Run(t.Context(), args, strings.NewReader(""), &out, &errOut, envOf(env))
		return runResult{code: code, stdout: out.String(), stderr: errOut.String()}
	}
	// Nothing may listen at 127.0.0.3:8080 (a server on *:8080 does): the
	// error then names the URL tried.
	if c, err := net.DialTimeout("tcp", "127.0.0.3:8080", time.Second); err == nil {
		_ = c.Close()
		t.Fatal("something listens on port 8080 of every address (a StreamHouse on its defaults?): stop it, this test needs 127.0.0.3:8080 closed")
	}
	for _, c := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{nil, []string{"-s", "http://127.0.0.3:50051", "topic", "list"}, "http://127.0.0.3:8080"},
		{nil, []string{"--server", "127.0.0.3:9090", "topic", "list"}, "http://127.0.0.3:8080"},
		{nil, []string{"--grpc-addr", "127.0.0.3:9090", "topic", "list"}, "http://127.0.0.3:8080"},
		{map[string]string{"STREAMHOUSE_ADDR": "http://127.0.0.3:50051"}, []string{"topic", "list"}, "http://127.0.0.3:8080"},
		// A REST URL given wins.
		{map[string]string{"STREAMHOUSE_API_URL": "http://127.0.0.1:1"}, []string{"-s", "127.0.0.3:9090", "topic", "list"}, "http://127.0.0.1:1"},
		{nil, []string{"-s", "127.0.0.3:9090", "--api-url", "http://127.0.0.1:1", "topic", "list"}, "http://127.0.0.1:1"},
		{nil, []string{"topic", "list", "--api-url", "http://127.0.0.1:1"}, "http://127.0.0.1:1"},
	} {
		r := run(c.env, c.args...)
		if r.code != 1 || !strings.Contains(r.stderr, "server at "+c.want+":") {
			t.Errorf("%v %q: want a connection error naming %s, got %v", c.env, c.args, c.want, r)
		}
	}
	if r := run(nil, "-s", "http://:1", "topic", "list"); r.code != ExitUsage {
		t.Errorf("-s without a host: %v", r)
	}
}

func TestCompletionScripts(t *testing.T) {
	t.Parallel()
	for _, shell := range []string{"bash", "zsh", "fish"} {
		r := runCLI(t, closedURL(t), "", "completion", shell)
		if r.code != 0 || len(r.stdout) < 500 || !strings.Contains(r.stdout, "streamctl") || !strings.Contains(r.stdout, "__complete") {
			t.Errorf("completion %s: exit %d, %d bytes, stderr %q", shell, r.code, len(r.stdout), r.stderr)
		}
	}
	if r := runCLI(t, closedURL(t), "", "completion", "tcsh"); r.code != ExitUsage {
		t.Errorf("completion tcsh: %v", r)
	}
}

// TestInterruptedRequest: Ctrl+C during a request that gets no answer
// stops it with exit status 130.
func TestInterruptedRequest(t *testing.T) {
	t.Parallel()
	// A listener that accepts and never answers.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	sigs := make(chan os.Signal, 1)
	done := make(chan runResult, 1)
	go func() {
		done <- runCtx(WithInterrupts(t.Context(), sigs), "http://"+l.Addr().String(), strings.NewReader(""), "topic", "list")
	}()
	time.Sleep(200 * time.Millisecond)
	sigs <- os.Interrupt
	select {
	case r := <-done:
		if r.code != ExitInterrupted || r.stderr != "streamctl: interrupted\n" {
			t.Fatalf("interrupted: %v", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the interrupt did not stop the request")
	}

	// Cancelling the context (no interrupts) stops it too.
	ctx, cancel := context.WithCancel(t.Context())
	go func() { done <- runCtx(ctx, "http://"+l.Addr().String(), strings.NewReader(""), "topic", "list") }()
	time.Sleep(200 * time.Millisecond)
	cancel()
	if r := <-done; r.code != ExitInterrupted || r.stderr != "streamctl: cancelled\n" {
		t.Fatalf("cancelled: %v", r)
	}
}

func TestHistoryPath(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"XDG_STATE_HOME": "/state", "HOME": "/home/u"}, "/state/streamctl/history"},
		{map[string]string{"HOME": "/home/u"}, "/home/u/.streamctl_history"},
		{map[string]string{}, ""},
	} {
		s := &session{getenv: envOf(tc.env)}
		if got := s.historyPath(); got != tc.want {
			t.Errorf("historyPath with %v = %q, want %q", tc.env, got, tc.want)
		}
	}
}

func TestCompleteFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "orders.avsc"), nil, 0o600)
	os.WriteFile(filepath.Join(dir, "orders.json"), nil, 0o600)
	os.Mkdir(filepath.Join(dir, "schemas"), 0o700)
	got, _ := completeFiles(filepath.Join(dir, "ord"))
	if !slices.Equal(got, []string{filepath.Join(dir, "orders.avsc"), filepath.Join(dir, "orders.json")}) {
		t.Errorf("files: %q", got)
	}
	got, noSpace := completeFiles(filepath.Join(dir, "sch"))
	if !slices.Equal(got, []string{filepath.Join(dir, "schemas") + "/"}) || !noSpace {
		t.Errorf("directory: %q %v", got, noSpace)
	}
}

// TestStreamTable: rows printed in batches line up with earlier ones.
func TestStreamTable(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	st := &streamTable{header: []string{"PARTITION", "OFFSET", "VALUE"}}
	st.write(&b, [][]string{{"0", "7", "a"}})
	st.write(&b, [][]string{{"0", "8", "multi\nline"}, {"0", "12345678", "c"}})
	want := "PARTITION  OFFSET  VALUE\n" +
		"0          7       a\n" +
		"0          8         multi\\nline\n" + // the batch's widest offset widens the column

		"0          12345678  c\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestServerErrorMessages(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		status   int
		body     string
		registry bool
		want     string
	}{
		{404, `{"error":"not_found","message":"topic \"x\" does not exist"}`, false, `topic "x" does not exist (HTTP 404, not_found)`},
		{404, `{"error_code":40401,"message":"Subject 'x' not found."}`, true, `Subject 'x' not found. (HTTP 404, error code 40401)`},
		{409, `{"error_code":409,"message":"Schema being registered is incompatible with an earlier schema"}`, true, `Schema being registered is incompatible with an earlier schema (HTTP 409, error code 409)`},
		{404, `{"error":"not_found","message":"no such endpoint: GET /schemas/subjects"}`, true, `the schema registry is not available at this URL: no such endpoint: GET /schemas/subjects (HTTP 404, not_found)`},
		{502, "<html>bad gateway</html>", false, `<html>bad gateway</html> (HTTP 502 Bad Gateway)`},
		{500, "", false, `Internal Server Error (HTTP 500 Internal Server Error)`},
	} {
		if got := decodeError(tc.status, []byte(tc.body), tc.registry).Error(); got != tc.want {
			t.Errorf("decodeError(%d, %s) = %q, want %q", tc.status, tc.body, got, tc.want)
		}
	}
}
