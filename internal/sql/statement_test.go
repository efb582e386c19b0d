package sql

import "testing"

// The statement forms recognised before parsing (no engine needed).
func TestClassifyStatement(t *testing.T) {
	for _, c := range []struct {
		query string
		kind  stmtKind
		topic string
		text  string
	}{
		{"SELECT 1", stmtSelect, "", "SELECT 1"},
		{"  select 1 ;; ", stmtSelect, "", "  select 1"}, // leading space kept: error positions
		{"show topics", stmtShowTopics, "", ""},
		{"SHOW TABLES;", stmtShowTopics, "", ""},
		{`DESCRIBE "a""b"`, stmtDescribe, `a"b`, ""},
		{"desc my.topic-1", stmtDescribe, "my.topic-1", ""},
		{"EXPLAIN SELECT 1", stmtExplain, "", " SELECT 1"},
		// Comments and parentheses before the statement (a SQL editor's).
		{"-- orders\nSELECT 1", stmtSelect, "", "-- orders\nSELECT 1"},
		{"/* c */ SELECT 1", stmtSelect, "", "/* c */ SELECT 1"},
		{"(SELECT 1)", stmtSelect, "", "(SELECT 1)"},
		{"-- list them\n/* all */ SHOW TOPICS", stmtShowTopics, "", ""},
		{"/* x */ DESCRIBE orders", stmtDescribe, "orders", ""},
	} {
		st, err := classifyStatement(c.query)
		if err != nil || st.kind != c.kind || st.topic != c.topic || (c.text != "" && st.text != c.text) {
			t.Errorf("%q: %+v %v", c.query, st, err)
		}
	}
	for _, q := range []string{"", "  ;", "-- only a comment", "/* only */", "SHOW DATABASES", "DESCRIBE", "DESCRIBE a b", "EXPLAIN ANALYZE SELECT 1"} {
		if _, err := classifyStatement(q); err == nil {
			t.Errorf("%q: no error", q)
		}
	}
}

// The bare column offset is quoted (OFFSET is a reserved word); the
// keyword of LIMIT … OFFSET, strings, quoted names and comments are not.
func TestQuoteOffsetColumns(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`SELECT offset FROM t`, `SELECT "offset" FROM t`},
		{`SELECT * FROM t WHERE partition = 3 AND offset BETWEEN 5 AND 9`, `SELECT * FROM t WHERE partition = 3 AND "offset" BETWEEN 5 AND 9`},
		{`SELECT key, OFFSET, t.offset FROM t ORDER BY offset DESC LIMIT 5 OFFSET 2`, `SELECT key, "offset", t."offset" FROM t ORDER BY "offset" DESC LIMIT 5 OFFSET 2`},
		{`SELECT max(offset) - min(offset) FROM t OFFSET 1`, `SELECT max("offset") - min("offset") FROM t OFFSET 1`},
		{`SELECT 'offset', "offset", $$ offset $$ FROM t -- offset` + "\n" + `LIMIT ALL OFFSET 3`, `SELECT 'offset', "offset", $$ offset $$ FROM t -- offset` + "\n" + `LIMIT ALL OFFSET 3`},
		{`SELECT * FROM t WHERE offset>=2 /* offset */ LIMIT (2) OFFSET (1)`, `SELECT * FROM t WHERE "offset">=2 /* offset */ LIMIT (2) OFFSET (1)`},
		{`SELECT offsets, my_offset FROM t`, `SELECT offsets, my_offset FROM t`},
		// A backslash escapes a quote inside E'…' only.
		{`SELECT E'x\', offset' AS s, offset FROM t`, `SELECT E'x\', offset' AS s, "offset" FROM t`},
		{`SELECT 'x\', offset FROM t`, `SELECT 'x\', "offset" FROM t`},
		{`SELECT {'o': offset}, 2 ^ offset, 3 IS DISTINCT FROM offset FROM t QUALIFY offset > 1`, `SELECT {'o': "offset"}, 2 ^ "offset", 3 IS DISTINCT FROM "offset" FROM t QUALIFY "offset" > 1`},
		{`SELECT * EXCLUDE offset FROM t LIMIT ALL OFFSET 2`, `SELECT * EXCLUDE "offset" FROM t LIMIT ALL OFFSET 2`},
	} {
		got, _ := quoteOffsetColumns(c.in)
		if got != c.want {
			t.Errorf("%s\n got %s\nwant %s", c.in, got, c.want)
		}
	}
	// Positions in the quoted text map back to the user's.
	st, err := classifyStatement("SELECT offset, offset FROM t WHERE x")
	if err != nil {
		t.Fatal(err)
	}
	for pos, want := range map[int]int{0: 0, 7: 7, 8: 7, 14: 12, 15: 13, 17: 15, 25: 21, 37: 33} {
		if got := st.queryPos(pos); got != want {
			t.Errorf("position %d in %q maps to %d, want %d", pos, st.text, got, want)
		}
	}
}
