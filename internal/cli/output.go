package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// printer writes a command's result: aligned tables for people, or JSON
// for scripts.
type printer struct {
	w    io.Writer
	json bool
}

// raw prints an answer's JSON as the server sent it, indented.
func (p printer) raw(raw []byte) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, bytes.TrimSpace(raw), "", "  "); err != nil {
		return fmt.Errorf("server answered malformed JSON: %w", err)
	}
	buf.WriteByte('\n')
	_, err := p.w.Write(buf.Bytes())
	return err
}

// value prints v as indented JSON.
func (p printer) value(v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(p.w, "%s\n", b)
	return err
}

// line prints v as one line of compact JSON (a stream of records).
func (p printer) line(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(p.w, "%s\n", b)
	return err
}

// table prints rows under a header, columns aligned.
func (p printer) table(header []string, rows [][]string) error {
	tw := newTabWriter(p.w)
	writeRow(tw, header)
	for _, r := range rows {
		writeRow(tw, r)
	}
	return tw.Flush()
}

// fields prints name/value pairs, the values aligned.
func (p printer) fields(pairs [][2]string) error {
	tw := newTabWriter(p.w)
	for _, kv := range pairs {
		fmt.Fprintf(tw, "%s:\t%s\n", kv[0], cell(kv[1]))
	}
	return tw.Flush()
}

// textf prints a line of text (table mode's messages).
func (p printer) textf(format string, args ...any) error {
	_, err := fmt.Fprintf(p.w, format+"\n", args...)
	return err
}

func newTabWriter(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
}

func writeRow(tw *tabwriter.Writer, cols []string) {
	for i, c := range cols {
		if i > 0 {
			tw.Write([]byte{'\t'})
		}
		tw.Write([]byte(cell(c)))
	}
	tw.Write([]byte{'\n'})
}

// cell makes s safe for one table cell: control characters (newlines,
// tabs) are shown escaped so they cannot break the alignment.
func cell(s string) string {
	if !strings.ContainsFunc(s, isControl) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\r':
			b.WriteString(`\r`)
		case isControl(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// formatMillis shows a Unix time in milliseconds as UTC RFC 3339.
func formatMillis(ms int64) string {
	if ms <= 0 {
		return "-"
	}
	return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z")
}

// formatMap shows k=v pairs sorted by key, comma-separated.
func formatMap(m map[string]string) string {
	if len(m) == 0 {
		return ""
	}
	keys := sortedKeys(m)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, ",")
}

// parsePairs reads repeated k=v flag values into a map.
func parsePairs(flag string, vals []string) (map[string]string, error) {
	if len(vals) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(vals))
	for _, v := range vals {
		k, val, ok := strings.Cut(v, "=")
		if !ok || k == "" {
			return nil, usagef("--%s %q: expected key=value", flag, v)
		}
		out[k] = val
	}
	return out, nil
}

// jsonCell shows one JSON value in a table cell: strings unquoted, null
// as NULL, anything else as compact JSON.
func jsonCell(raw json.RawMessage) string {
	t := strings.TrimSpace(string(raw))
	if t == "null" || t == "" {
		return "NULL" // before the string case: null decodes into a string as ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var buf bytes.Buffer
	if json.Compact(&buf, raw) == nil {
		return buf.String()
	}
	return t
}

func itoa[T ~int | ~int32 | ~int64](n T) string { return fmt.Sprint(n) }
