package cli

import (
	"io"
	"slices"
	"strings"
	"testing"
)

// testREPLSQLMode: "sql" enters SQL mode, a statement runs once its ";"
// arrives (over several lines, as `sql query` runs it: here the server has
// no engine, so each statement answers 501), exit goes back to commands,
// and the end of input drops an unfinished statement with a warning.
func testREPLSQLMode(t *testing.T, s *server) {
	name := s.createTopic(t, "sqlmode", 1)
	script := strings.Join([]string{
		"sql",
		"SELECT *",
		"  FROM " + name,
		"  LIMIT 10;",
		"SHOW TOPICS;",
		"",
		"exit",
		"topic get " + name, // a command again
		"sql",
		"SELECT 1", // never ended
	}, "\n") + "\n"
	r := runCLI(t, s.url, script)
	if r.code != 1 {
		t.Fatalf("want exit status 1 (the 501s): %v", r)
	}
	if n := strings.Count(r.stderr, "(HTTP 501, not_implemented)"); n != 2 {
		t.Fatalf("want the two statements run, each answering 501; got %d in %v", n, r)
	}
	if !strings.Contains(r.stdout, "SQL mode") || !strings.Contains(r.stdout, name) {
		t.Fatalf("want the SQL mode hint and topic get's answer: %v", r)
	}
	if !strings.Contains(r.stderr, "unfinished SQL statement") {
		t.Fatalf("want a warning about the statement without its ';': %v", r)
	}
}

// testREPLSQLCompletion: in SQL mode Tab completes keywords (in the case
// typed), columns, and topic names, quoted when SQL needs it.
func testREPLSQLCompletion(t *testing.T, s *server) {
	// Test topics are named name-N-M: quoted in SQL.
	dashed := s.createTopic(t, "sqlcompl", 1)
	sess := &session{
		stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard,
		getenv:    func(string) string { return "" },
		defaults:  settings{output: "table", apiURL: s.url},
		transport: newTransport(),
		repl:      true,
	}
	defer sess.transport.CloseIdleConnections()
	sess.sql.on = true
	ctx := t.Context()
	for _, tc := range []struct {
		line, head string
		want       []string
	}{
		{"SEL", "", []string{"SELECT "}},
		{"sel", "", []string{"select "}},
		{"SELECT * FROM " + dashed[:len(dashed)-2], "SELECT * FROM ", []string{`"` + dashed + `" `}},
		{"SELECT * FROM " + `"` + dashed[:6], "SELECT * FROM ", []string{`"` + dashed + `" `}},
		{"SELECT json_ext", "SELECT ", []string{"json_extract "}},
		{"SELECT COUNT(*) FROM t GROUP BY TUM", "SELECT COUNT(*) FROM t GROUP BY ", []string{"TUMBLE "}},
		{"SELECT tim", "SELECT ", []string{"timestamp "}},
		{"SELECT * FROM orders WHERE part", "SELECT * FROM orders WHERE ", []string{"partition "}},
	} {
		head, got, tail := sess.completeSQL(ctx, tc.line, len([]rune(tc.line)))
		if head != tc.head || tail != "" || !slices.Equal(got, tc.want) {
			t.Errorf("completeSQL(%q) = %q %q %q, want %q %q", tc.line, head, got, tail, tc.head, tc.want)
		}
	}
	if got := sqlName("my-topic"); got != `"my-topic"` {
		t.Errorf("sqlName(my-topic) = %s", got)
	}
	if got := sqlName("select"); got != `"select"` {
		t.Errorf("sqlName(select) = %s", got)
	}
	if got := sqlName("orders_2"); got != "orders_2" {
		t.Errorf("sqlName(orders_2) = %s", got)
	}
}
