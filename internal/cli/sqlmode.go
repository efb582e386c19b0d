package cli

import (
	"context"
	"slices"
	"strings"
	"unicode"
)

// The REPL's SQL mode. The line "sql" on its own enters it: the prompt
// becomes "sql> ", and every statement, which may span lines and ends
// with ";", runs as `sql query` would run it (same output, -o json too).
// exit, quit or \q on a line of their own (or Ctrl+D at the prompt) go
// back to commands. SQL statements have their own history, and Tab
// completes SQL keywords, functions, the columns every topic has and the
// server's topic names (quoted when they need it).

const (
	sqlPrompt     = "sql> "
	sqlMorePrompt = "...> "
)

// sqlState is the SQL mode of a REPL session.
type sqlState struct {
	on  bool
	buf strings.Builder // the statement so far, until its ";"
}

// prompt is the REPL's prompt for the session's mode.
func (s *session) prompt() string {
	switch {
	case !s.sql.on:
		return replPrompt
	case s.sql.buf.Len() > 0:
		return sqlMorePrompt
	}
	return sqlPrompt
}

// enterSQL reports whether words ask for SQL mode, and enters it.
func (s *session) enterSQL(words []string) bool {
	if !s.repl || s.sql.on || len(words) != 1 || words[0] != "sql" {
		return false
	}
	s.sql.on = true
	s.sql.buf.Reset()
	return true
}

// leaveSQL goes back to commands, dropping an unfinished statement.
func (s *session) leaveSQL() {
	s.sql.on = false
	s.sql.buf.Reset()
}

// sqlLine takes one line in SQL mode: it runs the statement it completes.
func (s *session) sqlLine(ctx context.Context, line string) (code int) {
	t := strings.TrimSpace(line)
	if s.sql.buf.Len() == 0 {
		switch strings.ToLower(strings.TrimSuffix(t, ";")) {
		case "exit", "quit", `\q`:
			s.leaveSQL()
			return ExitOK
		case "":
			return ExitOK
		}
	}
	if s.sql.buf.Len() > 0 {
		s.sql.buf.WriteByte('\n')
	}
	s.sql.buf.WriteString(line)
	if !strings.HasSuffix(t, ";") {
		return ExitOK // the statement goes on
	}
	q := strings.TrimSpace(s.sql.buf.String())
	s.sql.buf.Reset()
	q = strings.TrimSpace(strings.TrimSuffix(q, ";"))
	if q == "" {
		return ExitOK
	}
	return s.execute(ctx, []string{"sql", "query", q}).code
}

// sqlWords are what SQL mode completes besides topic names: the keywords
// and functions of SPEC.md's SQL, and every topic's columns.
var sqlWords = []string{
	"SELECT", "FROM", "WHERE", "GROUP", "BY", "HAVING", "ORDER", "LIMIT", "OFFSET", "ASC", "DESC",
	"DISTINCT", "AS", "AND", "OR", "NOT", "LIKE", "ILIKE", "IN", "BETWEEN", "IS", "NULL",
	"CASE", "WHEN", "THEN", "ELSE", "END", "CAST", "COALESCE", "INTERVAL",
	"SHOW", "TOPICS", "DESCRIBE", "EXPLAIN",
	"COUNT", "SUM", "AVG", "MIN", "MAX",
	"TUMBLE", "HOP", "SESSION", "window_start", "window_end",
	"MILLISECOND", "SECOND", "MINUTE", "HOUR", "DAY",
	"json_extract", "lower", "upper", "length", "substr", "abs", "round",
	"partition", "offset", "timestamp", "key", "value", "headers",
}

// completeSQL completes the word before the cursor in SQL mode.
func (s *session) completeSQL(ctx context.Context, line string, pos int) (head string, completions []string, tail string) {
	runes := []rune(line)
	pos = max(0, min(pos, len(runes)))
	start := pos
	for start > 0 && sqlWordRune(runes[start-1]) {
		start--
	}
	head, word, tail := string(runes[:start]), string(runes[start:pos]), string(runes[pos:])
	quoted := strings.HasPrefix(word, `"`)
	prefix := strings.ToLower(strings.TrimPrefix(word, `"`))
	var cands []string
	if !quoted {
		upper := word != "" && strings.ToUpper(word) == word && strings.ToLower(word) != word
		for _, w := range sqlWords {
			if strings.HasPrefix(strings.ToLower(w), prefix) {
				if !upper && word != "" && isKeyword(w) {
					w = strings.ToLower(w)
				}
				cands = append(cands, w)
			}
		}
	}
	c := &client{hc: s.httpClient(s.defaults), api: s.defaults.apiURL, user: s.defaults.user, password: s.defaults.password}
	for _, t := range s.names.get(ctx, "topic "+c.api, c.topicNames) {
		if strings.HasPrefix(strings.ToLower(t), prefix) {
			cands = append(cands, sqlName(t))
		}
	}
	slices.Sort(cands)
	cands = slices.Compact(cands)
	for _, c := range cands {
		if len(cands) == 1 {
			c += " "
		}
		completions = append(completions, c)
	}
	return head, completions, tail
}

// sqlWordRune is a rune of a word SQL mode completes (a quoted name's
// opening quote included).
func sqlWordRune(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune(`_-."`, r)
}

// isKeyword tells keywords (written in capitals above) from names.
func isKeyword(w string) bool { return strings.ToUpper(w) == w }

// sqlName is a topic name as SQL names it: quoted unless it is a plain
// identifier.
func sqlName(name string) string {
	plain := name != ""
	for i, r := range name {
		if !(r == '_' || unicode.IsLetter(r) || (i > 0 && unicode.IsDigit(r))) {
			plain = false
		}
	}
	if plain && !slices.ContainsFunc(sqlWords, func(w string) bool { return strings.EqualFold(w, name) }) {
		return name
	}
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}
