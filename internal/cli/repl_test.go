package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/internal/testutil"
)

// testREPLPiped drives a REPL session from piped input: quoting, JSON
// values with spaces, comments, a failing command that does not end the
// session, a line of global flags, and exit.
func testREPLPiped(t *testing.T, s *server) {
	name := uniq("repl")
	script := strings.Join([]string{
		"# a REPL session",
		"topic create " + name + " --partitions 2",
		"",
		`produce ` + name + ` --partition 1 --value '{"event": "signup", "user": "alice"}'`,
		`produce ` + name + ` --partition 1 --key user-1 --value {"event": "click", "n": [1, 2]}`,
		`produce ` + name + ` --partition 1 --value {"event":"legacy","user":"bob"}`,
		`produce ` + name + ` --partition 1 --value "double \"quoted\" text"`,
		"consume " + name + " --partition 1",
		"topic get no-such-topic",
		"produce " + name + ` --value 'unterminated`,
		"produce " + name,
		"-o json",
		"consume " + name + " --partition 1 --offset 3",
		"exit",
		"topic delete " + name, // not run: after exit
	}, "\n") + "\n"
	r := runCLI(t, s.url, script)
	if r.code != 1 {
		t.Fatalf("want exit status 1 (the first failing command's): %v", r)
	}
	values := []string{
		`{"event": "signup", "user": "alice"}`,
		`{"event": "click", "n": [1, 2]}`,
		`{"event":"legacy","user":"bob"}`,
		`double "quoted" text`,
	}
	for i, v := range values {
		want := fmt.Sprintf("Produced to %q partition 1 at offset %d.", name, i)
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("no %q in\n%v", want, r)
		}
		if !strings.Contains(r.stdout, "  "+v+"\n") {
			t.Fatalf("consume table has no value %q:\n%v", v, r)
		}
	}
	for _, want := range []string{
		`streamctl: topic "no-such-topic" does not exist (HTTP 404, not_found)`,
		"streamctl: unterminated quote",
		"streamctl: produce: --value is required in the REPL",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Fatalf("no %q on stderr:\n%v", want, r)
		}
	}
	// After "-o json" the session prints JSON.
	i := strings.Index(r.stdout, "\n{\n")
	var a consumeAnswer
	if i < 0 || json.Unmarshal([]byte(r.stdout[i:]), &a) != nil || len(a.Records) != 1 {
		t.Fatalf("want JSON after -o json:\n%v", r)
	}
	var rec consumedRecord
	json.Unmarshal(a.Records[0], &rec)
	if *rec.Value != values[3] {
		t.Fatalf("JSON record: %+v", rec)
	}
	// exit ended the session: the topic is still there.
	s.ok(t, "topic", "get", name)

	// A session that only succeeds exits 0; one ending without exit too.
	if r := runCLI(t, s.url, "topic list\nhelp\n"); r.code != 0 || !strings.Contains(r.stdout, "Available Commands:") {
		t.Fatalf("help in the REPL: %v", r)
	}
	if r := runCLI(t, s.url, "quit\ntopic frob\n"); r.code != 0 || r.stderr != "" {
		t.Fatalf("quit: %v", r)
	}
}

// testREPLPipedInterrupt: Ctrl+C during consume --follow in the REPL
// stops it and the session goes on with the next command.
func testREPLPipedInterrupt(t *testing.T, s *server) {
	name := s.createTopic(t, "repli", 1)
	s.ok(t, "produce", name, "--value", "first")
	pr, pw := io.Pipe()
	sigs := make(chan os.Signal, 1)
	var out, errOut testutil.SyncBuffer
	done := make(chan int, 1)
	go func() {
		done <- Run(WithInterrupts(t.Context(), sigs), nil, pr, &out, &errOut, envOf(map[string]string{"STREAMHOUSE_API_URL": s.url}))
	}()
	fmt.Fprintf(pw, "consume %s --follow\n", name)
	testutil.WaitFor(t, "the followed record", func() bool { return strings.Contains(out.String(), "first") })
	s.ok(t, "produce", name, "--value", "second")
	testutil.WaitFor(t, "a record produced while following", func() bool { return strings.Contains(out.String(), "second") })
	sigs <- os.Interrupt
	fmt.Fprintf(pw, "topic get %s\n", name)
	testutil.WaitFor(t, "the next command's output", func() bool { return strings.Contains(out.String(), "Messages:    2") })
	pw.Close()
	select {
	case code := <-done:
		if code != 0 || errOut.String() != "" {
			t.Fatalf("exit %d, stderr %q", code, errOut.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the REPL did not end at the end of its input")
	}

	// An interrupt while waiting for input ends the session.
	pr, pw = io.Pipe()
	defer pw.Close()
	go func() {
		done <- Run(WithInterrupts(t.Context(), sigs), nil, pr, io.Discard, io.Discard, envOf(map[string]string{"STREAMHOUSE_API_URL": s.url}))
	}()
	sigs <- os.Interrupt
	select {
	case code := <-done:
		if code != ExitInterrupted {
			t.Fatalf("idle interrupt: exit %d", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the REPL did not end on an idle interrupt")
	}
}

// replSession is a REPL session on the server at url with no input or
// output, for calling its methods directly.
func replSession(t *testing.T, url string) *session {
	sess := &session{
		stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard,
		getenv:    func(string) string { return "" },
		defaults:  settings{output: "table", apiURL: url},
		transport: newTransport(),
		repl:      true,
	}
	t.Cleanup(sess.transport.CloseIdleConnections)
	return sess
}

// testREPLCompletion checks the REPL's tab completion: command words,
// flags, and topic names fetched from the server.
func testREPLCompletion(t *testing.T, s *server) {
	name := s.createTopic(t, "compl", 1)
	sess := replSession(t, s.url)
	ctx := t.Context()
	for _, tc := range []struct {
		line, head string
		want       []string
		exact      bool
	}{
		{"top", "", []string{"topic "}, true},
		{"topic d", "topic ", []string{"delete", "describe"}, true},
		{"consume " + name + " --fo", "consume " + name + " ", []string{"--follow "}, true},
		{"topic get " + name[:len(name)-2], "topic get ", []string{name + " "}, false},
		{"produce " + name + " --ack d", "produce " + name + " --ack ", []string{"durable "}, true},
		{"offset get --topic " + name[:6], "offset get --topic ", []string{name}, false},
		{"", "", []string{"acl", "consume", "consumer", "exit", "help", "offset", "perf", "produce", "schema", "sql", "topic", "transaction"}, true},
		{"", "", []string{"consume", "consumer", "exit", "help", "offset", "perf", "produce", "schema", "sql", "topic", "transaction", "user"}, true},
	} {
		head, got, tail := sess.complete(ctx, tc.line, len([]rune(tc.line)))
		if head != tc.head || tail != "" {
			t.Errorf("complete(%q): head %q tail %q, want head %q", tc.line, head, tail, tc.head)
		}
		if tc.exact && !slices.Equal(got, tc.want) {
			t.Errorf("complete(%q) = %q, want %q", tc.line, got, tc.want)
		}
		for _, w := range tc.want {
			if !tc.exact && !slices.Contains(got, w) && !slices.Contains(got, w+" ") {
				t.Errorf("complete(%q) = %q, want it to hold %q", tc.line, got, w)
			}
		}
	}
	// The cursor inside the line: the rest is kept.
	line := "topic ge orders"
	head, got, tail := sess.complete(ctx, line, len("topic ge"))
	if head != "topic " || !slices.Equal(got, []string{"get "}) || tail != " orders" {
		t.Errorf("complete mid-line: %q %q %q", head, got, tail)
	}
	// Names are cached briefly: a new topic shows after the cache is
	// dropped (a create in this session drops it).
	other := s.createTopic(t, "compl2", 1)
	sess.names.forget()
	if _, got, _ := sess.complete(ctx, "topic get "+other, len("topic get "+other)); !slices.Equal(got, []string{other + " "}) {
		t.Errorf("complete new topic: %q", got)
	}
}

// TestCompleteOffline: with no server, completion of names offers nothing
// (and does not hang), while commands still complete.
func TestCompleteOffline(t *testing.T) {
	t.Parallel()
	sess := &session{
		stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard,
		getenv:    func(string) string { return "" },
		defaults:  settings{output: "table", apiURL: closedURL(t)},
		transport: newTransport(),
		repl:      true,
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, got, _ := sess.complete(ctx, "topic get ", len("topic get ")); len(got) != 0 {
		t.Errorf("topic names with no server: %q", got)
	}
	if _, got, _ := sess.complete(ctx, "cons", 4); !slices.Equal(got, []string{"consume", "consumer"}) {
		t.Errorf("commands: %q", got)
	}
}
