package cli

import (
	"slices"
	"strings"
	"testing"
)

// testREPLSQLMode: "sql" enters SQL mode, a statement runs once its ";"
// arrives (over several lines, as `sql query` runs it), exit goes back to
// commands, and the end of input drops an unfinished statement with a
// warning.
func testREPLSQLMode(t *testing.T, s *server) {
	name := s.createTopic(t, "sqlmode", 1)
	script := strings.Join([]string{
		"sql",
		"SELECT COUNT(*) AS how_many",
		`  FROM "` + name + `"`,
		"  WHERE partition = 0;",
		"SHOW TOPICS;",
		"",
		"exit",
		"topic get " + name, // a command again
		"sql",
		"SELECT 1", // never ended
	}, "\n") + "\n"
	r := runCLI(t, s.url, script)
	if r.code != ExitUsage {
		t.Fatalf("want exit status 2 (the unfinished statement): %v", r)
	}
	for _, want := range []string{"SQL mode", "how_many", "(1 row)", name, "Partitions:"} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("no %q in the session's output: %v", want, r)
		}
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
	sess := replSession(t, s.url)
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

func TestSQLFollowLines(t *testing.T) {
	t.Parallel()
	pairs, err := orderedPairs([]byte(`{"z":1,"a":"x y","n":null,"o":{"k":[1,2]}}`))
	if want := []string{"z=1", "a=x y", "n=NULL", `o={"k":[1,2]}`}; err != nil || !slices.Equal(pairs, want) {
		t.Errorf("orderedPairs = %q, %v; want %q", pairs, err, want)
	}
	if _, err := orderedPairs([]byte(`[1]`)); err == nil {
		t.Error("orderedPairs of an array succeeded")
	}
	if msg, code, ok := streamError([]byte(`{"error":"query_timeout","message":"too slow"}`)); !ok || code != "query_timeout" || msg != "too slow" {
		t.Errorf("streamError = %q %q %v", msg, code, ok)
	}
	for _, row := range []string{`{"error":"x"}`, `{"error":"x","message":"y","n":1}`, `{"a":1,"b":2}`, `{"error":1,"message":2}`} {
		if _, _, ok := streamError([]byte(row)); ok {
			t.Errorf("streamError(%s) took a row for an error", row)
		}
	}
}
