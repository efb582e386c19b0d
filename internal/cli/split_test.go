package cli

import (
	"errors"
	"slices"
	"testing"
)

func TestSplitLine(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		line string
		want []string
	}{
		{``, nil},
		{`   `, nil},
		{`topic list`, []string{"topic", "list"}},
		{"  topic\tcreate  orders  ", []string{"topic", "create", "orders"}},
		// Quoted JSON with spaces, the case the original REPL could not do.
		{`produce orders --value '{"event": "signup", "user": "alice"}'`,
			[]string{"produce", "orders", "--value", `{"event": "signup", "user": "alice"}`}},
		{`--value "{\"a\": \"b\"}"`, []string{"--value", `{"a": "b"}`}},
		// Unquoted JSON keeps its quotes, as in the original REPL, and may
		// now hold blanks.
		{`--value {"event":"signup","user":"alice"}`, []string{"--value", `{"event":"signup","user":"alice"}`}},
		{`--value {"event": "signup", "n": [1, 2]} --key k`, []string{"--value", `{"event": "signup", "n": [1, 2]}`, "--key", "k"}},
		{`--value {"a": "}"} x`, []string{"--value", `{"a": "}"}`, "x"}},
		{`--value {"a": "\"}"} x`, []string{"--value", `{"a": "\"}"}`, "x"}},
		{`[1, [2, 3]]`, []string{`[1, [2, 3]]`}},
		{`{"a":1}tail`, []string{`{"a":1}tail`}},
		// Unbalanced brackets: literal up to the next blank.
		{`--value { x`, []string{"--value", "{", "x"}},
		{`--value {"a": 1 x`, []string{"--value", `{"a":`, "1", "x"}},
		// Shell rules.
		{`'it''s'`, []string{"its"}},
		{`'it'\''s'`, []string{"it's"}},
		{`a\ b c`, []string{"a b", "c"}},
		{`"a\\b\$c\d"`, []string{`a\b$c\d`}},
		{`k="v w"`, []string{"k=v w"}},
		{`''`, []string{""}},
		{`a "" b`, []string{"a", "", "b"}},
		{`sql query SELECT * FROM orders`, []string{"sql", "query", "SELECT", "*", "FROM", "orders"}},
		{`x\`, []string{"x"}},
		{`# not a comment here`, []string{"#", "not", "a", "comment", "here"}},
	} {
		got, err := splitLine(tc.line)
		if err != nil {
			t.Errorf("splitLine(%q): %v", tc.line, err)
			continue
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("splitLine(%q) = %q, want %q", tc.line, got, tc.want)
		}
	}
}

func TestSplitLineUnterminated(t *testing.T) {
	t.Parallel()
	for _, line := range []string{`produce x --value 'abc`, `a "b`, `"a\"`} {
		if _, err := splitLine(line); !errors.Is(err, errUnterminated) {
			t.Errorf("splitLine(%q) error = %v, want unterminated quote", line, err)
		}
	}
}

func TestSplitPartial(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		line      string
		want      []string
		lastStart int
	}{
		{``, []string{""}, 0},
		{`top`, []string{"top"}, 0},
		{`topic `, []string{"topic", ""}, 6},
		{`topic get or`, []string{"topic", "get", "or"}, 10},
		{`produce x --value 'ab`, []string{"produce", "x", "--value", "ab"}, 18},
	} {
		ws := splitPartial(tc.line)
		var got []string
		for _, w := range ws {
			got = append(got, w.text)
		}
		if !slices.Equal(got, tc.want) || ws[len(ws)-1].start != tc.lastStart {
			t.Errorf("splitPartial(%q) = %q (last at %d), want %q (last at %d)", tc.line, got, ws[len(ws)-1].start, tc.want, tc.lastStart)
		}
	}
}

func TestQuoteWordRoundTrip(t *testing.T) {
	t.Parallel()
	for _, w := range []string{"orders", "", "a b", "it's", `{"a": 1}`, `[x`, `back\slash`, "tab\there"} {
		got, err := splitLine(quoteWord(w))
		if err != nil || len(got) != 1 || got[0] != w {
			t.Errorf("splitLine(quoteWord(%q)) = %q, %v", w, got, err)
		}
	}
}

// FuzzSplit checks that splitting never panics and that quoting any word
// reads back as that word.
func FuzzSplit(f *testing.F) {
	for _, s := range []string{`produce o --value '{"a": 1}'`, `{"a": "}"}`, `a\ b "c\"d" 'e'`, `[[[`, `'`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = splitLine(s)
		_ = splitPartial(s)
		got, err := splitLine(quoteWord(s))
		if err != nil || len(got) != 1 || got[0] != s {
			t.Fatalf("splitLine(quoteWord(%q)) = %q, %v", s, got, err)
		}
	})
}
