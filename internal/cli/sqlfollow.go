package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// followSQL runs a live query (POST /api/v1/sql/stream) and prints each
// row as it arrives, until the query's LIMIT, its timeout or ctx's end
// (Ctrl+C, which is a normal end): one JSON object per line with -o json,
// otherwise "column=value" pairs.
func (c *client) followSQL(ctx context.Context, body map[string]any, p printer) error {
	b, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("encode request: %w", err)
	}
	r := request{method: http.MethodPost, base: c.api, path: "/api/v1/sql/stream"}
	req, err := http.NewRequestWithContext(ctx, r.method, r.base+r.path, bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("bad URL %q: %w", r.base+r.path, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "streamctl")
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return reachError(ctx, r, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return decodeError(resp.StatusCode, raw, false)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), maxLineBytes)
	rows := 0
	for sc.Scan() {
		line := sc.Bytes()
		if msg, code, ok := streamError(line); ok {
			return fmt.Errorf("%s (%s)", msg, code)
		}
		rows++
		if p.json {
			if _, err := fmt.Fprintf(p.w, "%s\n", line); err != nil {
				return err
			}
			continue
		}
		pairs, err := orderedPairs(line)
		if err != nil {
			return fmt.Errorf("unexpected row from the server: %w: %.200q", err, line)
		}
		if _, err := fmt.Fprintln(p.w, strings.Join(pairs, "  ")); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		return reachError(ctx, r, fmt.Errorf("read rows: %w", err))
	}
	if p.json {
		return nil
	}
	return p.textf("(%d %s)", rows, plural(rows, "row"))
}

// orderedPairs renders a JSON object's members as "key=value", in order.
func orderedPairs(line []byte) ([]string, error) {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, fmt.Errorf("not a JSON object")
	}
	var out []string
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return nil, err
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		out = append(out, fmt.Sprintf("%v=%s", k, jsonCell(v)))
	}
	return out, nil
}

// streamError recognises the server's last line when a live query fails
// after rows went out: an object of exactly "error" and "message".
func streamError(line []byte) (msg, code string, ok bool) {
	var m map[string]json.RawMessage
	if json.Unmarshal(line, &m) != nil || len(m) != 2 {
		return "", "", false
	}
	var e struct {
		Error   string `json:"error"`
		Message string `json:"message"`
	}
	if m["error"] == nil || m["message"] == nil || json.Unmarshal(line, &e) != nil || e.Error == "" {
		return "", "", false
	}
	return e.Message, e.Error, true
}
