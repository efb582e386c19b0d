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
	// quoted are the positions in the query's text (before quoting) of
	// the bare offset columns quoted in text (see quoteOffsetColumns).
	quoted []int
}

// queryPos maps a byte position in text back to the user's query.
func (st statement) queryPos(pos int) int {
	shift := 0
	for _, q := range st.quoted {
		at := q + shift // where "offset" starts in text
		switch {
		case pos >= at+len(`"offset"`):
			shift += 2
		case pos > at:
			return st.offset + q + min(pos-at-1, len("offset")-1)
		default:
			return st.offset + pos - shift
		}
	}
	return st.offset + pos - shift
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
		text, quoted := quoteOffsetColumns(trimmed[off:])
		return statement{kind: stmtExplain, text: text, offset: off, quoted: quoted}, nil
	}
	text, quoted := quoteOffsetColumns(trimmed)
	return statement{kind: stmtSelect, text: text, quoted: quoted}, nil
}

// columnBefore are the tokens after which a bare word is an operand (a
// column), never the OFFSET of LIMIT … OFFSET, which only follows the end
// of an expression (a number, a name, a closing parenthesis, ALL).
var columnBefore = map[string]bool{
	"select": true, "distinct": true, "where": true, "and": true, "or": true, "not": true, "by": true,
	"on": true, "having": true, "when": true, "then": true, "else": true, "case": true, "between": true,
	"as": true, "like": true, "ilike": true, "from": true, "qualify": true, "exclude": true, "to": true,
	",": true, "(": true, "=": true, "<": true, ">": true, "!": true, "+": true, "-": true, "*": true,
	"/": true, "%": true, ".": true, "|": true, "[": true, ":": true, "^": true, "&": true, "~": true,
	"#": true, "@": true, "{": true,
}

// quoteOffsetColumns quotes the bare word offset where it is a column:
// OFFSET is a reserved word of DuckDB's (PostgreSQL's) grammar, but the
// column is called offset (SPEC.md), and `WHERE offset > 5` is what a user
// writes. Strings, quoted names and comments are left alone. It returns
// the text and the positions of the words it quoted.
func quoteOffsetColumns(text string) (string, []int) {
	var quoted []int
	prev := "" // the last token: a lower-case word or one punctuation byte
	for i := 0; i < len(text); {
		c := text[i]
		switch {
		case unicode.IsSpace(rune(c)):
			i++
		case strings.HasPrefix(text[i:], "--"):
			if end := strings.IndexByte(text[i:], '\n'); end >= 0 {
				i += end + 1
			} else {
				i = len(text)
			}
		case strings.HasPrefix(text[i:], "/*"):
			if end := strings.Index(text[i+2:], "*/"); end >= 0 {
				i += 2 + end + 2
			} else {
				i = len(text)
			}
		case c == '\'' || c == '"':
			// E'…' (after a bare e) takes backslash escapes.
			escapes := c == '\'' && prev == "e" && i > 0 && (text[i-1] == 'e' || text[i-1] == 'E')
			i = skipQuoted(text, i, c, escapes)
			prev = "literal"
		case c == '$':
			// A dollar-quoted string ($$…$$ or $tag$…$tag$), or a parameter.
			end := strings.IndexByte(text[i+1:], '$')
			if end >= 0 && isTag(text[i+1:i+1+end]) {
				tag := text[i : i+end+2]
				if close := strings.Index(text[i+len(tag):], tag); close >= 0 {
					i += len(tag) + close + len(tag)
				} else {
					i = len(text)
				}
			} else {
				i++
			}
			prev = "literal"
		case isWordByte(c):
			j := i
			for j < len(text) && isWordByte(text[j]) {
				j++
			}
			word := strings.ToLower(text[i:j])
			if word == "offset" && (prev == "" || columnBefore[prev]) {
				quoted = append(quoted, i)
			}
			prev, i = word, j
		default:
			prev, i = string(c), i+1
		}
	}
	if len(quoted) == 0 {
		return text, nil
	}
	var b strings.Builder
	last := 0
	for _, q := range quoted {
		b.WriteString(text[last:q])
		b.WriteString(`"offset"`)
		last = q + len("offset")
	}
	b.WriteString(text[last:])
	return b.String(), quoted
}

// skipQuoted returns the position after the string or quoted name that
// starts at i with quote q (a doubled quote escapes it; with escapes, a
// backslash escapes the next byte too).
func skipQuoted(text string, i int, q byte, escapes bool) int {
	for j := i + 1; j < len(text); j++ {
		if escapes && text[j] == '\\' {
			j++
			continue
		}
		if text[j] != q {
			continue
		}
		if j+1 < len(text) && text[j+1] == q {
			j++
			continue
		}
		return j + 1
	}
	return len(text)
}

func isWordByte(c byte) bool {
	return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}

func isTag(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isWordByte(s[i]) || (i == 0 && s[i] >= '0' && s[i] <= '9') {
			return false
		}
	}
	return true
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

// quoteString quotes a string literal for SQL.
func quoteString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// quoteIdent quotes a name for SQL.
func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
