// Package sqltest runs SQL over topics end to end: the real server binary
// (with its DuckDB engine), data produced over REST and Kafka, and queries
// over REST, on both storage backends. The engine's own tests (the golden
// suite, pushdown counts, windows) are in internal/sql.
package sqltest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamhouse/streamhouse/internal/cli"
	"github.com/streamhouse/streamhouse/internal/e2e"
)

type answer struct {
	Columns []struct {
		Name     string `json:"name"`
		DataType string `json:"dataType"`
	} `json:"columns"`
	Rows            [][]json.RawMessage `json:"rows"`
	RowCount        int                 `json:"rowCount"`
	Truncated       bool                `json:"truncated"`
	ExecutionTimeMs *int64              `json:"executionTimeMs"`
	Error           string              `json:"error"`
	Message         string              `json:"message"`
}

func query(t *testing.T, p *e2e.Proc, body map[string]any) (int, answer) {
	t.Helper()
	var a answer
	code := p.Call(http.MethodPost, "/api/v1/sql", body, &a)
	return code, a
}

// cells renders each row as its cells' JSON joined by "|".
func cells(a answer) []string {
	out := make([]string, len(a.Rows))
	for i, r := range a.Rows {
		parts := make([]string, len(r))
		for j, c := range r {
			parts[j] = string(c)
		}
		out[i] = strings.Join(parts, "|")
	}
	return out
}

func TestSQLOverREST(t *testing.T) {
	t.Parallel()
	for _, b := range e2e.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			p := e2e.Start(t, dir, b.Env(t, dir))
			defer p.Stop(syscall.SIGTERM)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()

			if code := p.Call(http.MethodPost, "/api/v1/topics", map[string]any{"name": "orders", "partitions": 2}, nil); code != http.StatusCreated {
				t.Fatalf("create topic: %d", code)
			}
			// 10 orders on each partition: category c<i%3>, price i, a
			// nested item; every fifth has no price; key k<i>.
			for part := range 2 {
				var recs []map[string]any
				for i := range 10 {
					n := part*10 + i
					v := fmt.Sprintf(`{"category":"c%d","price":%d,"item":{"sku":"s%d","tags":["a","b"]}}`, n%3, n, n)
					if n%5 == 4 {
						v = fmt.Sprintf(`{"category":"c%d","item":{"sku":"s%d"}}`, n%3, n)
					}
					recs = append(recs, map[string]any{"key": fmt.Sprintf("k%d", n), "value": v, "headers": map[string]string{"source": "e2e"}})
				}
				if code := p.Call(http.MethodPost, "/api/v1/produce/batch", map[string]any{"topic": "orders", "partition": part, "records": recs}, nil); code != http.StatusOK {
					t.Fatalf("produce batch: %d", code)
				}
			}
			// An aborted transaction on partition 0: never visible.
			tx, err := kgo.NewClient(kgo.SeedBrokers(p.KafkaAddr), kgo.TransactionalID("sql-e2e"), kgo.DefaultProduceTopic("orders"),
				kgo.RecordPartitioner(kgo.ManualPartitioner()))
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Close()
			if err := tx.BeginTransaction(); err != nil {
				t.Fatal(err)
			}
			if err := tx.ProduceSync(ctx, &kgo.Record{Partition: 0, Value: []byte(`{"category":"aborted","price":1000}`)}).FirstErr(); err != nil {
				t.Fatal(err)
			}
			if err := tx.EndTransaction(ctx, kgo.TryAbort); err != nil {
				t.Fatal(err)
			}

			ok := func(q string, want ...string) answer {
				t.Helper()
				code, a := query(t, p, map[string]any{"query": q})
				if code != http.StatusOK {
					t.Fatalf("%s: %d %s %s", q, code, a.Error, a.Message)
				}
				if got := cells(a); !slices.Equal(got, want) {
					t.Errorf("%s:\n got  %q\n want %q", q, got, want)
				}
				if a.RowCount != len(a.Rows) || a.ExecutionTimeMs == nil {
					t.Errorf("%s: rowCount %d for %d rows, executionTimeMs %v", q, a.RowCount, len(a.Rows), a.ExecutionTimeMs)
				}
				return a
			}
			// The aborted record's offset and its abort marker follow
			// partition 0's ten records; neither is a row.
			ok(`SELECT COUNT(*) FROM orders`, "20")
			ok("-- a SQL editor's comment\n/* and another */ SELECT COUNT(*) FROM orders", "20")
			ok(`SELECT COUNT(*) FROM orders WHERE value LIKE '%aborted%'`, "0")
			ok(`SELECT partition, "offset", key FROM orders WHERE partition = 1 AND "offset" = 3`, `1|3|"k13"`)
			ok(`SELECT key, json_extract(value, '$.price') FROM orders WHERE partition = 0 ORDER BY "offset" LIMIT 3`,
				`"k0"|0`, `"k1"|1`, `"k2"|2`)
			ok(`SELECT json_extract_string(value, '$.category') AS c, COUNT(*), SUM(json_extract(value, '$.price'))
				FROM orders GROUP BY c ORDER BY c`,
				`"c0"|7|54`, `"c1"|7|47`, `"c2"|6|43`)
			ok(`SELECT value->>'$.item.sku' FROM "orders" WHERE partition = 1 AND "offset" BETWEEN 2 AND 3 ORDER BY "offset"`, `"s12"`, `"s13"`)
			ok(`SELECT COUNT(*) FROM orders WHERE json_extract(value, '$.price') IS NULL`, "4")
			ok(`SELECT headers->>'$.source', COUNT(*) FROM orders GROUP BY 1`, `"e2e"|20`)

			// SELECT * has SPEC's columns, in order.
			code, star := query(t, p, map[string]any{"query": `SELECT * FROM orders LIMIT 1`})
			if code != http.StatusOK {
				t.Fatalf("SELECT *: %d %s", code, star.Message)
			}
			var names []string
			for _, c := range star.Columns {
				names = append(names, c.Name)
			}
			if want := []string{"partition", "offset", "timestamp", "key", "value", "headers"}; !slices.Equal(names, want) {
				t.Errorf("SELECT * columns %v, want %v", names, want)
			}

			// max_rows truncates.
			code, tr := query(t, p, map[string]any{"query": `SELECT "offset" FROM orders`, "max_rows": 5})
			if code != http.StatusOK || len(tr.Rows) != 5 || !tr.Truncated {
				t.Errorf("max_rows 5: %d, %d rows, truncated %v", code, len(tr.Rows), tr.Truncated)
			}

			// SHOW TOPICS and DESCRIBE.
			code, st := query(t, p, map[string]any{"query": `SHOW TOPICS`})
			if code != http.StatusOK || !slices.ContainsFunc(cells(st), func(s string) bool { return strings.Contains(s, `"orders"`) }) {
				t.Errorf("SHOW TOPICS: %d %q", code, cells(st))
			}
			code, d := query(t, p, map[string]any{"query": `DESCRIBE orders`})
			if code != http.StatusOK || len(d.Rows) != 6 {
				t.Errorf("DESCRIBE orders: %d %q", code, cells(d))
			}

			// Errors in SPEC's terms, never a 500.
			for _, tc := range []struct {
				q      string
				status int
				code   string
				msg    string
			}{
				{"SELECT * FROM orders WHERE", 400, "parse_error", "line 1"},
				{"SELECT *\nFROM orders\nWHERE partition = = 1", 400, "parse_error", "line 3"},
				{"SELECT nope FROM orders", 400, "invalid_query", "nope"},
				{"SELECT no_such_function(value) FROM orders", 400, "invalid_query", "no_such_function"},
				{"SELECT * FROM missing", 404, "topic_not_found", "missing"},
				{"INSERT INTO orders VALUES (1)", 400, "unsupported_operation", ""},
				{"DROP TABLE orders", 400, "unsupported_operation", ""},
				{"SELECT 1; SELECT 2", 400, "unsupported_operation", ""},
				{"COPY orders TO '/tmp/x.csv'", 400, "unsupported_operation", ""},
				{"SELECT * FROM read_csv('/etc/passwd')", 400, "", ""},
				// Values without bound escape the memory limit: refused.
				{"SELECT length(list_reduce(['x', '', ''], lambda a, b: a || a || b)) FROM orders", 400, "unsupported_operation", "list_reduce"},
				{"SELECT regexp_replace(value, '', 'y', 'g') FROM orders", 400, "unsupported_operation", "regexp_replace"},
				{"SELECT repeat('x', 2000000000)", 400, "unsupported_operation", "repeat"},
				// A CTE may not hide a system table's name from the check.
				{"SELECT name, setting FROM (WITH pg_settings AS (SELECT 1) SELECT 1) x, pg_settings y", 400, "unsupported_operation", "pg_settings"},
			} {
				code, a := query(t, p, map[string]any{"query": tc.q})
				if code != tc.status || (tc.code != "" && a.Error != tc.code) || !strings.Contains(a.Message, tc.msg) {
					t.Errorf("%q: %d %s %q, want %d %s containing %q", tc.q, code, a.Error, a.Message, tc.status, tc.code, tc.msg)
				}
			}
		})
	}
}

// A live query answers NDJSON rows as matching records are committed,
// skips the others, and ends at its LIMIT.
func TestSQLStreamOverREST(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := e2e.Start(t, dir, e2e.Local.Env(t, dir))
	defer p.Stop(syscall.SIGTERM)
	if code := p.Call(http.MethodPost, "/api/v1/topics", map[string]any{"name": "live", "partitions": 1}, nil); code != http.StatusCreated {
		t.Fatalf("create topic: %d", code)
	}
	// Committed before the query: not part of a live query's answer.
	if code := p.Call(http.MethodPost, "/api/v1/produce", map[string]any{"topic": "live", "key": "old", "value": `{"n":0}`}, nil); code != http.StatusOK {
		t.Fatalf("produce: %d", code)
	}
	body, _ := json.Marshal(map[string]any{
		"query":      `SELECT key, json_extract(value, '$.n') AS n FROM live WHERE json_extract(value, '$.n') > 10 LIMIT 2`,
		"timeout_ms": 60000,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.URL+"/api/v1/sql/stream", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	type result struct {
		lines []string
		err   error
	}
	done := make(chan result, 1)
	headers := make(chan struct{})
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/x-ndjson" {
			done <- result{err: fmt.Errorf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))}
			return
		}
		close(headers)
		var out []string
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			out = append(out, sc.Text())
		}
		done <- result{lines: out, err: sc.Err()}
	}()
	// The answer's headers come once the query is accepted, before any
	// record matches: from then on every committed record is seen.
	select {
	case <-headers:
	case r := <-done:
		t.Fatalf("the live query ended before its headers: %v", r.err)
	case <-time.After(30 * time.Second):
		t.Fatal("no headers from an accepted live query while nothing matched")
	}
	for _, n := range []int{1, 11, 2, 12, 13} {
		produceN(t, p, "live", n)
	}
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatal(r.err)
		}
		if want := []string{`{"key":"k11","n":11}`, `{"key":"k12","n":12}`}; !slices.Equal(r.lines, want) {
			t.Fatalf("live query lines %q, want %q", r.lines, want)
		}
	case <-ctx.Done():
		t.Fatal("the live query never ended")
	}
}

// streamctl sql query prints a table of a query's answer, and with
// --follow the rows of a live query as they are committed.
func TestStreamctlSQL(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := e2e.Start(t, dir, e2e.Local.Env(t, dir))
	defer p.Stop(syscall.SIGTERM)
	if code := p.Call(http.MethodPost, "/api/v1/topics", map[string]any{"name": "cli", "partitions": 1}, nil); code != http.StatusCreated {
		t.Fatalf("create topic: %d", code)
	}
	for i := range 3 {
		produceN(t, p, "cli", i)
	}
	env := func(k string) string {
		if k == "STREAMHOUSE_API_URL" {
			return p.URL
		}
		return ""
	}
	run := func(ctx context.Context, args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := cli.Run(ctx, args, strings.NewReader(""), &out, &errb, env)
		return code, out.String(), errb.String()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	code, out, errs := run(ctx, "sql", "query", `SELECT key, json_extract(value, '$.n') AS n FROM cli ORDER BY n DESC`)
	if code != 0 || !strings.Contains(out, "k2") || !strings.Contains(out, "(3 rows)") || strings.Index(out, "k2") > strings.Index(out, "k0") {
		t.Fatalf("sql query: %d\n%s%s", code, out, errs)
	}
	if code, out, errs := run(ctx, "sql", "query", "SELECT * FROM nope"); code != 1 || !strings.Contains(errs, "topic_not_found") {
		t.Fatalf("sql query of a missing topic: %d\n%s%s", code, out, errs)
	}
	done := make(chan [3]string, 1)
	go func() {
		code, out, errs := run(ctx, "sql", "query", "--follow", "--timeout", "50s", `SELECT key FROM cli WHERE json_extract(value, '$.n') >= 100 LIMIT 1`)
		done <- [3]string{fmt.Sprint(code), out, errs}
	}()
	for i := 100; ; i++ {
		select {
		case r := <-done:
			if r[0] != "0" || !regexp.MustCompile(`(?m)^key=k1\d\d$`).MatchString(r[1]) || !strings.Contains(r[1], "(1 row)") {
				t.Fatalf("sql query --follow: %s\n%s%s", r[0], r[1], r[2])
			}
			return
		case <-ctx.Done():
			t.Fatal("sql query --follow never ended")
		case <-time.After(50 * time.Millisecond):
		}
		produceN(t, p, "cli", i)
	}
}

// A live query does not hold a server's shutdown: it ends as the shutdown
// starts, and the agent hands its partitions over cleanly.
func TestLiveQueryEndsAtShutdown(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := e2e.Start(t, dir, e2e.Local.Env(t, dir))
	if code := p.Call(http.MethodPost, "/api/v1/topics", map[string]any{"name": "stop", "partitions": 1}, nil); code != http.StatusCreated {
		t.Fatalf("create topic: %d", code)
	}
	body, _ := json.Marshal(map[string]any{"query": `SELECT key FROM stop`, "timeout_ms": 600000})
	req, err := http.NewRequest(http.MethodPost, p.URL+"/api/v1/sql/stream", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	lines := make(chan string, 100)
	ended := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			ended <- err
			return
		}
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
		ended <- sc.Err()
	}()
	// The stream is running once a record produced now comes out of it.
	deadline := time.After(60 * time.Second)
	for running := false; !running; {
		if code := p.Call(http.MethodPost, "/api/v1/produce", map[string]any{"topic": "stop", "key": "k", "value": "v"}, nil); code != http.StatusOK {
			t.Fatalf("produce: %d", code)
		}
		select {
		case <-lines:
			running = true
		case err := <-ended:
			t.Fatalf("the live query ended early: %v", err)
		case <-deadline:
			t.Fatal("the live query never answered")
		case <-time.After(100 * time.Millisecond):
		}
	}
	p.Stop(syscall.SIGTERM)
	select {
	case <-ended:
	case <-time.After(30 * time.Second):
		t.Fatal("the live query's stream did not end with the server")
	}
	if logs := p.Logs(); strings.Contains(logs, "hand over partitions") || strings.Contains(logs, "close partition log") {
		t.Fatalf("the shutdown was not clean:\n%s", logs)
	}
}

// produceN produces the record of n to topic: key k<n>, value {"n":<n>}.
func produceN(t *testing.T, p *e2e.Proc, topic string, n int) {
	t.Helper()
	if code := p.Call(http.MethodPost, "/api/v1/produce", map[string]any{"topic": topic, "key": fmt.Sprintf("k%d", n), "value": fmt.Sprintf(`{"n":%d}`, n)}, nil); code != http.StatusOK {
		t.Fatalf("produce to %s: %d", topic, code)
	}
}
