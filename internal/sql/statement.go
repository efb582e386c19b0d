package sql

import (
	"strings"
	"unicode"
)

type stmtKind int

const (
	stmtSelect stmtKind = iota
	stmtExplain
	stmtShowTopics
	stmtDescribe
)

// statement is the query's outer form, recognised before parsing:
// SHOW TOPICS and DESCRIBE are answered here; EXPLAIN's text after the
// keyword (at offset) is parsed as a SELECT.
type statement struct {
	kind   stmtKind
	text   string // what DuckDB parses
	offset int    // where text starts in the query (for error positions)
	topic  string // DESCRIBE's topic
}

func classifyStatement(query string) (statement, error) {
	trimmed := strings.TrimRightFunc(query, func(r rune) bool { return unicode.IsSpace(r) || r == ';' })
	lead := skipComments(trimmed)
	body := trimmed[lead:]
	if body == "" {
		return statement{}, &Error{Code: CodeParse, Line: 1, Column: 1, Message: "empty query (line 1, column 1)"}
	}
	word, rest := firstWord(body)
	switch strings.ToLower(word) {
	case "show":
		w2, after := firstWord(rest)
		if (strings.EqualFold(w2, "topics") || strings.EqualFold(w2, "tables")) && strings.TrimSpace(after) == "" {
			return statement{kind: stmtShowTopics}, nil
		}
		return statement{}, &Error{Code: CodeUnsupported, Message: "only SHOW TOPICS is supported"}
	case "describe", "desc":
		name, ok := identifier(strings.TrimSpace(rest))
		if !ok {
			return statement{}, &Error{Code: CodeUnsupported, Message: "use DESCRIBE topic"}
		}
		return statement{kind: stmtDescribe, topic: name}, nil
	case "explain":
		w2, _ := firstWord(rest)
		if strings.EqualFold(w2, "analyze") || strings.EqualFold(w2, "analyse") {
			return statement{}, &Error{Code: CodeUnsupported, Message: "EXPLAIN ANALYZE is not supported: use EXPLAIN SELECT"}
		}
		off := lead + len(word)
		return statement{kind: stmtExplain, text: trimmed[off:], offset: off}, nil
	}
	return statement{kind: stmtSelect, text: trimmed}, nil
}

// skipComments returns the length of s's leading white space and SQL
// comments (-- to the end of the line, /* … */).
func skipComments(s string) int {
	i := 0
	for i < len(s) {
		switch {
		case unicode.IsSpace(rune(s[i])):
			i++
		case strings.HasPrefix(s[i:], "--"):
			end := strings.IndexByte(s[i:], '\n')
			if end < 0 {
				return len(s)
			}
			i += end + 1
		case strings.HasPrefix(s[i:], "/*"):
			end := strings.Index(s[i+2:], "*/")
			if end < 0 {
				return i // unterminated: DuckDB says where
			}
			i += 2 + end + 2
		default:
			return i
		}
	}
	return i
}

// firstWord splits off a leading keyword (letters only).
func firstWord(s string) (string, string) {
	s = strings.TrimLeftFunc(s, unicode.IsSpace)
	i := 0
	for i < len(s) && (s[i] >= 'a' && s[i] <= 'z' || s[i] >= 'A' && s[i] <= 'Z') {
		i++
	}
	return s[:i], s[i:]
}

// identifier reads a whole topic name: "quoted" ("" escapes a quote) or
// bare (letters, digits, '.', '_', '-').
func identifier(s string) (string, bool) {
	if s == "" {
		return "", false
	}
	if s[0] == '"' {
		var b strings.Builder
		for i := 1; i < len(s); i++ {
			if s[i] != '"' {
				b.WriteByte(s[i])
				continue
			}
			if i+1 < len(s) && s[i+1] == '"' {
				b.WriteByte('"')
				i++
				continue
			}
			return b.String(), i == len(s)-1 && b.Len() > 0
		}
		return "", false
	}
	for _, r := range s {
		if !(r == '.' || r == '_' || r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return "", false
		}
	}
	return s, true
}

// quoteIdent quotes a name for SQL.
func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
