package cli

import (
	"errors"
	"strings"
)

// errUnterminated is a line that ends inside quotes.
var errUnterminated = errors.New("unterminated quote")

// word is one word of a REPL line and where it starts in the line (a byte
// index), which completion needs to replace the word being typed.
type word struct {
	text  string
	start int
}

// splitLine splits a REPL line into words as a POSIX shell would, without
// any expansion (no globbing, no variables):
//
//   - blanks (space, tab) separate words;
//   - '...' is taken literally;
//   - "..." is literal except for \" \\ \$ and \` (the backslash is dropped);
//   - outside quotes, a backslash makes the next character literal;
//   - a word that begins with { or [ is a JSON value: it runs to the
//     matching bracket with its quotes, backslashes and blanks kept as
//     typed, so both the original REPL's --value {"a":"b"} and
//     --value {"a": "b"} produce the JSON that was typed. A JSON word whose
//     brackets never balance is taken literally up to the next blank, as the
//     original REPL did.
func splitLine(line string) ([]string, error) {
	ws, err := scanWords(line, false)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(ws))
	for i, w := range ws {
		out[i] = w.text
	}
	return out, nil
}

// splitPartial splits the part of a line before the cursor for completion:
// an unterminated quote ends the last word instead of failing, and a line
// that ends in a blank gets an empty last word (the one being started).
func splitPartial(line string) []word {
	ws, _ := scanWords(line, true)
	return ws
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func scanWords(s string, partial bool) ([]word, error) {
	var words []word
	i := 0
	for {
		for i < len(s) && isBlank(s[i]) {
			i++
		}
		if i >= len(s) {
			if partial && (len(s) == 0 || isBlank(s[len(s)-1])) {
				words = append(words, word{start: len(s)})
			}
			return words, nil
		}
		start := i
		text, next, err := scanWord(s, i)
		if err != nil {
			if !partial {
				return nil, err
			}
			words = append(words, word{text: text, start: start})
			return words, nil
		}
		words = append(words, word{text: text, start: start})
		i = next
	}
}

// scanWord reads the word starting at s[i] and returns it and the index
// after it. On an unterminated quote it returns what it read so far.
func scanWord(s string, i int) (string, int, error) {
	var b strings.Builder
	if s[i] == '{' || s[i] == '[' {
		if end, ok := jsonEnd(s, i); ok {
			b.WriteString(s[i:end])
			i = end
		} else {
			end := i
			for end < len(s) && !isBlank(s[end]) {
				end++
			}
			return s[i:end], end, nil
		}
	}
	for i < len(s) && !isBlank(s[i]) {
		switch c := s[i]; c {
		case '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				b.WriteString(s[i+1:])
				return b.String(), len(s), errUnterminated
			}
			b.WriteString(s[i+1 : i+1+j])
			i += j + 2
		case '"':
			i++
			closed := false
			for i < len(s) {
				if s[i] == '"' {
					closed = true
					i++
					break
				}
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\"\\$`", s[i+1]) >= 0 {
					i++
				}
				b.WriteByte(s[i])
				i++
			}
			if !closed {
				return b.String(), len(s), errUnterminated
			}
		case '\\':
			if i+1 < len(s) {
				b.WriteByte(s[i+1])
				i += 2
			} else {
				i++ // a lone trailing backslash is dropped
			}
		default:
			b.WriteByte(c)
			i++
		}
	}
	return b.String(), i, nil
}

// jsonEnd finds the end of the JSON-looking value starting at s[i] (a {
// or [): the index after the bracket that closes it, skipping brackets
// inside JSON strings. ok is false when the brackets never balance.
func jsonEnd(s string, i int) (end int, ok bool) {
	depth := 0
	inString := false
	for j := i; j < len(s); j++ {
		c := s[j]
		if inString {
			switch c {
			case '\\':
				j++
			case '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return j + 1, true
			}
		}
	}
	return 0, false
}

// quoteWord returns w as the splitter reads it back: unchanged when it
// holds nothing special, otherwise single-quoted.
func quoteWord(w string) string {
	if w != "" && !strings.ContainsAny(w, " \t\n\r'\"\\{[") {
		return w
	}
	return "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
}
