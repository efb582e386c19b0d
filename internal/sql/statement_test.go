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
