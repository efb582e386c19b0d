package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/streamhouse/streamhouse/internal/e2e"
	"github.com/streamhouse/streamhouse/internal/testutil"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// streamctl builds this command (with the race detector) once.
func streamctl(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "streamctl-test")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "streamctl")
		out, err := exec.Command("go", "build", "-race", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func startServer(t *testing.T) *e2e.Proc {
	t.Helper()
	dir := t.TempDir()
	return e2e.Start(t, dir, e2e.Local.Env(t, dir))
}

// command is the real binary with env (and nothing else of ours).
func command(t *testing.T, stdin string, env []string, args ...string) *exec.Cmd {
	cmd := exec.Command(streamctl(t), args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	cmd.Stdin = strings.NewReader(stdin)
	return cmd
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// run runs the binary and returns its exit status and output.
func run(t *testing.T, url, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := command(t, stdin, []string{"STREAMHOUSE_API_URL=" + url}, args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	return exitCode(err), out.String(), errOut.String()
}

// TestBinary runs the built streamctl against a real server: commands,
// stdin, a piped REPL, exit statuses, and SIGINT stopping consume
// --follow.
func TestBinary(t *testing.T) {
	t.Parallel()
	p := startServer(t)
	topic := "bin-orders"

	if code, out, errOut := run(t, p.URL, "", "topic", "create", topic, "--partitions", "2"); code != 0 || out != `Created topic "bin-orders" with 2 partitions.`+"\n" {
		t.Fatalf("topic create: %d %q %q", code, out, errOut)
	}
	if code, out, errOut := run(t, p.URL, "a\nb\n", "produce", topic, "--partition", "1"); code != 0 || !strings.HasPrefix(out, "Produced 2 records") {
		t.Fatalf("produce from stdin: %d %q %q", code, out, errOut)
	}
	code, out, errOut := run(t, p.URL, "", "-o", "json", "consume", topic, "--partition", "1")
	var ans struct {
		Records []struct {
			Value string `json:"value"`
		} `json:"records"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &ans) != nil || len(ans.Records) != 2 || ans.Records[1].Value != "b" {
		t.Fatalf("consume -o json: %d %q %q", code, out, errOut)
	}
	if code, _, errOut := run(t, p.URL, "", "topic", "get", "nope"); code != 1 || errOut != `streamctl: topic "nope" does not exist (HTTP 404, not_found)`+"\n" {
		t.Fatalf("unknown topic: %d %q", code, errOut)
	}
	if code, _, errOut := run(t, p.URL, "", "topic", "list", "--nope"); code != 2 || !strings.HasPrefix(errOut, "streamctl: unknown flag: --nope") {
		t.Fatalf("unknown flag: %d %q", code, errOut)
	}
	if code, out, errOut := run(t, p.URL, "", "sql", "query", `SELECT key, value FROM "bin-orders" ORDER BY "offset" LIMIT 1`); code != 0 || !strings.Contains(out, "(1 row)") {
		t.Fatalf("sql: %d %q %q", code, out, errOut)
	}
	if code, _, errOut := run(t, p.URL, "", "sql", "query", "SELECT * FROM nope"); code != 1 || !strings.Contains(errOut, "(HTTP 404, topic_not_found)") {
		t.Fatalf("sql of an unknown topic: %d %q", code, errOut)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + l.Addr().String()
	l.Close()
	if code, _, errOut := run(t, down, "", "topic", "list"); code != 1 || !strings.Contains(errOut, "connection refused (is it running?") {
		t.Fatalf("server down: %d %q", code, errOut)
	}
	if code, out, _ := run(t, p.URL, "", "completion", "bash"); code != 0 || !strings.Contains(out, "__start_streamctl") {
		t.Fatalf("completion bash: %d", code)
	}

	// A piped REPL session.
	script := "produce " + topic + ` --partition 0 --value '{"event": "signup", "user": "alice"}'` + "\nconsume " + topic + " --partition 0\nexit\n"
	if code, out, errOut := run(t, p.URL, script); code != 0 || !strings.Contains(out, `  {"event": "signup", "user": "alice"}`) {
		t.Fatalf("piped REPL: %d\n%s\n%s", code, out, errOut)
	}

	// SIGINT stops consume --follow with exit status 0.
	cmd := command(t, "", []string{"STREAMHOUSE_API_URL=" + p.URL}, "consume", topic, "--partition", "1", "--follow")
	var fout, ferr testutil.SyncBuffer
	cmd.Stdout, cmd.Stderr = &fout, &ferr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "followed records", func() bool { return strings.Contains(fout.String(), "b\n") })
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := exitCode(cmd.Wait()); code != 0 || ferr.String() != "" {
		t.Fatalf("consume --follow after SIGINT: exit %d, stderr %q", code, ferr.String())
	}
}

// TestTerminalREPL drives the interactive REPL through a real
// pseudo-terminal: typing commands, tab completion, Ctrl+C during
// consume --follow returning to the prompt, exit, and history kept across
// runs.
func TestTerminalREPL(t *testing.T) {
	t.Parallel()
	p := startServer(t)
	state := t.TempDir()
	env := []string{"STREAMHOUSE_API_URL=" + p.URL, "XDG_STATE_HOME=" + state, "TERM=xterm"}

	term := startTerminal(t, env)
	term.expect("streamctl> ")
	term.typeLine("topic create ptytopic --partitions 1")
	term.expect(`Created topic "ptytopic" with 1 partition.`)
	term.expect("streamctl> ")
	term.typeLine(`produce ptytopic --value '{"event": "signup", "user": "alice"}'`)
	term.expect(`Produced to "ptytopic" partition 0 at offset 0.`)
	term.expect("streamctl> ")

	// Tab completes the command word and the topic name (from the server).
	term.write("topic descr\t")
	term.expect("describe ")
	term.write("ptyt\t")
	term.expect("ptytopic ")
	term.write("\r")
	term.expect("PARTITION  LEADER")
	term.expect("streamctl> ")

	// Ctrl+C during consume --follow returns to the prompt.
	term.typeLine("consume ptytopic --follow")
	term.expect(`{"event": "signup", "user": "alice"}`)
	if code := p.Call(http.MethodPost, "/api/v1/produce", map[string]string{"topic": "ptytopic", "value": "while following"}, nil); code != http.StatusOK {
		t.Fatalf("produce: %d", code)
	}
	term.expect("while following")
	term.write("\x03")
	term.expect("streamctl> ")
	term.typeLine("topic get ptytopic")
	term.expect("Messages:    2")
	term.expect("streamctl> ")

	// Ctrl+C at the prompt drops the line; exit leaves.
	term.write("garbage\x03")
	term.expect("streamctl> ")
	term.typeLine("exit")
	if code := term.wait(); code != 0 {
		t.Fatalf("exit: status %d\n%s", code, term.out.String())
	}

	hist, err := os.ReadFile(filepath.Join(state, "streamctl", "history"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"topic create ptytopic --partitions 1\n", `produce ptytopic --value '{"event": "signup", "user": "alice"}'` + "\n", "exit\n"} {
		if !strings.Contains(string(hist), want) {
			t.Fatalf("history has no %q:\n%s", want, hist)
		}
	}
	if strings.Contains(string(hist), "garbage") {
		t.Fatalf("an aborted line is in the history:\n%s", hist)
	}

	// The next run has the history: Up recalls "exit", which runs.
	term = startTerminal(t, env)
	term.expect("streamctl> ")
	term.write("\x1b[A")
	term.expect("exit")
	term.write("\r")
	if code := term.wait(); code != 0 {
		t.Fatalf("recalled exit: status %d\n%s", code, term.out.String())
	}

	// Ctrl+D on an empty line leaves too.
	term = startTerminal(t, env)
	term.expect("streamctl> ")
	term.write("\x04")
	if code := term.wait(); code != 0 {
		t.Fatalf("Ctrl+D: status %d\n%s", code, term.out.String())
	}
}

// terminal is streamctl running on a pseudo-terminal.
type terminal struct {
	t    *testing.T
	cmd  *exec.Cmd
	pty  *os.File
	out  testutil.SyncBuffer
	seen int // output before this was matched already
	done chan struct{}
}

func startTerminal(t *testing.T, env []string) *terminal {
	t.Helper()
	cmd := command(t, "", env)
	cmd.Stdin = nil
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 50, Cols: 200})
	if err != nil {
		t.Fatal(err)
	}
	term := &terminal{t: t, cmd: cmd, pty: f, done: make(chan struct{})}
	go func() {
		defer close(term.done)
		io.Copy(&term.out, f) // ends with EIO when the process exits
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
		f.Close()
	})
	return term
}

func (term *terminal) write(s string) {
	term.t.Helper()
	if _, err := term.pty.WriteString(s); err != nil {
		term.t.Fatal(err)
	}
}

func (term *terminal) typeLine(s string) { term.t.Helper(); term.write(s + "\r") }

// expect waits until the output after the last match holds s.
func (term *terminal) expect(s string) {
	term.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		out := term.out.String()
		if i := strings.Index(out[term.seen:], s); i >= 0 {
			term.seen += i + len(s)
			return
		}
		if time.Now().After(deadline) {
			term.t.Fatalf("no %q on the terminal; it shows:\n%q", s, out[term.seen:])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// wait waits for the process to exit and returns its status.
func (term *terminal) wait() int {
	term.t.Helper()
	errc := make(chan error, 1)
	go func() { errc <- term.cmd.Wait() }()
	select {
	case err := <-errc:
		return exitCode(err)
	case <-time.After(30 * time.Second):
		term.t.Fatalf("streamctl did not exit; the terminal shows:\n%q", term.out.String()[term.seen:])
		return -1
	}
}

// A user without a password: the REPL asks for it on the terminal, without
// echo, and logs every command in with it.
func TestTerminalPasswordPrompt(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := e2e.Start(t, dir, append(e2e.Local.Env(t, dir), "AUTH_ENABLED=true", "AUTH_BOOTSTRAP_USERS=admin:Secret-Pw-42", "SUPER_USERS=admin"))
	env := []string{"STREAMHOUSE_API_URL=" + p.URL, "XDG_STATE_HOME=" + t.TempDir(), "TERM=xterm", "STREAMHOUSE_USER=admin"}

	term := startTerminal(t, env)
	term.expect("Password for admin: ")
	term.typeLine("Secret-Pw-42")
	term.expect("streamctl> ")
	term.typeLine("topic create prompted --partitions 1")
	term.expect(`Created topic "prompted" with 1 partition.`)
	term.expect("streamctl> ")
	term.typeLine("exit")
	if code := term.wait(); code != 0 {
		t.Fatalf("exit: status %d\n%s", code, term.out.String())
	}
	if strings.Contains(term.out.String(), "Secret-Pw-42") {
		t.Fatalf("the password was echoed:\n%q", term.out.String())
	}

	// A wrong password: the commands are refused with 401.
	term = startTerminal(t, env)
	term.expect("Password for admin: ")
	term.typeLine("wrong")
	term.expect("streamctl> ")
	term.typeLine("topic list")
	term.expect("HTTP 401")
	term.typeLine("exit")
	term.wait()
}
