//go:build cgo

package sql

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/internal/metadata"
)

func queryErr(t *testing.T, e Engine, req Request) *Error {
	t.Helper()
	_, err := e.Query(context.Background(), req)
	var qe *Error
	if !errors.As(err, &qe) {
		t.Fatalf("%q: %v, want an *Error", req.Query, err)
	}
	return qe
}

func TestErrorCodes(t *testing.T) {
	eachBackend(t, func(t *testing.T, store metadata.Store) {
		b := newBroker(t, store)
		produce(t, b, "t", 2, genRecords(100, 2))
		e := newEngine(t, b, Config{})
		for _, c := range []struct {
			query string
			code  Code
		}{
			{"SELEC 1", CodeParse},
			{"SELECT * FROM t WHERE (", CodeParse},
			{"", CodeParse},
			{"SELECT nosuch FROM t", CodeInvalid},
			{"SELECT nosuch(value) FROM t", CodeInvalid},
			{"SELECT value + 1 FROM t", CodeInvalid},
			{"SELECT * FROM t WHERE value = ?", CodeInvalid},
			{"SELECT * FROM missing", CodeTopicNotFound},
			{`SELECT * FROM "missing-topic"`, CodeTopicNotFound},
			{"SELECT * FROM main.t", CodeTopicNotFound},
			{"DESCRIBE missing", CodeTopicNotFound},
			{"INSERT INTO t VALUES (1)", CodeUnsupported},
			{"DELETE FROM t", CodeUnsupported},
			{"CREATE TABLE x (a INT)", CodeUnsupported},
			{"DROP MACRO sh_json", CodeUnsupported},
			{"SET threads = 8", CodeUnsupported},
			{"PRAGMA version", CodeUnsupported},
			{"COPY t TO '/tmp/x'", CodeUnsupported},
			{"ATTACH '/tmp/x.db'", CodeUnsupported},
			{"SELECT 1; SELECT 2", CodeUnsupported},
			{"SELECT * FROM read_csv('/etc/passwd')", CodeUnsupported},
			{"SELECT * FROM range(10)", CodeUnsupported},
			{"SELECT * FROM sh_scan(1, 0)", CodeUnsupported},
			{"SHOW DATABASES", CodeUnsupported},
			{"EXPLAIN ANALYZE SELECT * FROM t", CodeUnsupported},
			{"SELECT count(*) FROM t GROUP BY TUMBLE(timestamp, INTERVAL '0' HOUR)", CodeInvalid},
			// Functions that make data without bound from a constant.
			{"SELECT length(repeat('x', 2000000000))", CodeUnsupported},
			{"SELECT len(generate_series(1, 300000000))", CodeUnsupported},
			{"SELECT count(*) FROM (SELECT unnest(range(300000000)))", CodeUnsupported},
			{"SELECT lpad(value, 2000000000, 'x') FROM t", CodeUnsupported},
			{"SELECT count(*) FROM t GROUP BY TUMBLE(value, INTERVAL '1' HOUR)", CodeInvalid},
		} {
			qe := queryErr(t, e, Request{Query: c.query})
			if qe.Code != c.code {
				t.Errorf("%q: %v, want %s", c.query, qe, c.code)
			}
		}
		// A malformed JSON path is an error, not a silent NULL.
		for _, q := range []string{`SELECT json_extract(value, '$.a[') FROM t`, `SELECT value->>'$..' FROM t`} {
			if qe := queryErr(t, e, Request{Query: q}); qe.Code != CodeInvalid || !strings.Contains(qe.Message, "JSON path") {
				t.Errorf("%s: %v, want invalid_query naming the path", q, qe)
			}
		}
		qe := queryErr(t, e, Request{Query: "SELECT 1\nFROM t\nWHERE (x ="})
		if qe.Code != CodeParse || qe.Line != 3 || qe.Column != 10 || !strings.Contains(qe.Message, "line 3") {
			t.Errorf("parse error at %d:%d (%s), want 3:10", qe.Line, qe.Column, qe.Message)
		}
		// After a bare offset (quoted before parsing), still the user's column.
		qe = queryErr(t, e, Request{Query: "SELECT offset, offset FROM t WHERE (x ="})
		if qe.Code != CodeParse || qe.Line != 1 || qe.Column != 39 {
			t.Errorf("parse error after offset at %d:%d (%s), want 1:39 (the =)", qe.Line, qe.Column, qe.Message)
		}
		qe = queryErr(t, e, Request{Query: "EXPLAIN SELEC 1"})
		if qe.Code != CodeParse || qe.Line != 1 || qe.Column != 9 {
			t.Errorf("EXPLAIN parse error at %d:%d, want 1:9", qe.Line, qe.Column)
		}
	})
}

// The limits: MaxRows truncates, the timeout answers query_timeout, the
// memory cap answers resource_limit.
func TestLimits(t *testing.T) {
	b := newBroker(t, openSQLite(t))
	recs := genRecords(3000, 2)
	produce(t, b, "t", 2, recs)
	e := newEngine(t, b, Config{MaxRows: 50, MaxMemoryBytes: 32 << 20})

	res := mustQuery(t, e, `SELECT "offset" FROM t WHERE partition = 0 ORDER BY "offset" DESC`)
	if len(res.Rows) != 50 || !res.Truncated || res.Rows[0][0] != int64(1499) || res.Rows[49][0] != int64(1450) {
		t.Fatalf("%d rows truncated %v, first %v", len(res.Rows), res.Truncated, res.Rows[0])
	}
	res, err := e.Query(context.Background(), Request{Query: `SELECT "offset" FROM t LIMIT 7`, MaxRows: 7})
	if err != nil || len(res.Rows) != 7 || res.Truncated {
		t.Fatalf("LIMIT 7 with MaxRows 7: %d rows truncated %v (%v)", len(res.Rows), res.Truncated, err)
	}

	// A cross join that cannot finish in 200 ms.
	start := time.Now()
	qe := queryErr(t, e, Request{Query: `SELECT count(*) FROM t a, t b, t c WHERE a.value || b.value || c.value LIKE '%zzz%'`, Timeout: 200 * time.Millisecond})
	if qe.Code != CodeTimeout {
		t.Fatalf("timeout: %v", qe)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("timeout took %v", d)
	}

	qe = queryErr(t, e, Request{Query: `SELECT length(string_agg(a.value || b.value, ',')) FROM t a, t b`})
	if qe.Code != CodeResourceLimit {
		t.Fatalf("memory: %v", qe)
	}
	// The engine still answers afterwards.
	mustQuery(t, e, `SELECT count(*) FROM t`)

	// An answer too large to hold, however few its rows.
	small := newEngine(t, b, Config{MaxResultBytes: 64 << 10})
	qe = queryErr(t, small, Request{Query: `SELECT string_agg(value, ',') FROM t`})
	if qe.Code != CodeResourceLimit {
		t.Fatalf("answer bytes: %v", qe)
	}
	mustQuery(t, small, `SELECT count(*) FROM t`)
}

// A client that goes away cancels its query.
func TestCancel(t *testing.T) {
	b := newBroker(t, openSQLite(t))
	produce(t, b, "t", 1, genRecords(2000, 1))
	e := newEngine(t, b, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := e.Query(ctx, Request{Query: `SELECT count(*) FROM t a, t b, t c WHERE a.value || b.value || c.value LIKE '%zzz%'`})
		done <- err
	}()
	time.AfterFunc(100*time.Millisecond, cancel)
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("canceled query: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the canceled query did not stop")
	}
}
