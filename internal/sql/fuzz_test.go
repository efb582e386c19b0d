//go:build cgo

package sql

import (
	"context"
	"errors"
	"testing"
	"time"
)

// FuzzQuery: whatever the text, Query answers rows or an *Error with a
// SPEC code, never a panic or an unclassified error (a 500).
func FuzzQuery(f *testing.F) {
	b := newBroker(f, openSQLite(f))
	produce(f, b, "t", 2, genRecords(50, 2))
	produce(f, b, "a.b-c", 1, genRecords(5, 1))
	e := newEngine(f, b, Config{MaxRows: 20, MaxMemoryBytes: 64 << 20})
	for _, g := range goldenQueries() {
		f.Add(g.query)
	}
	for _, s := range []string{
		"", ";", "SELECT", "SHOW TOPICS", "DESCRIBE t", `DESCRIBE "a.b-c"`, "EXPLAIN SELECT * FROM t WHERE partition = 1",
		"SELECT value->'a'->>'b' FROM t", "SELECT json_extract(json_extract(value, '$.nested'), '$.a') FROM t",
		"SELECT * FROM t WHERE timestamp > '2026-01-01T00:00:00Z' OR timestamp < '2027-01-01T00:00:00Z'",
		"SELECT list_transform([1,2], x -> x + 1)", "SELECT x FROM t GROUP BY HOP(timestamp, INTERVAL '1' SECOND, INTERVAL '3' SECOND)",
		"WITH t AS (SELECT 1 AS x) SELECT * FROM t", "SELECT * FROM t, t", "SELECT 'it''s', \"offset\"::INT FROM t",
		"/* c */ SELECT 1 -- x", "SELECT * FROM t WHERE partition IN (SELECT 1)", "SELECT $1", "CALL pragma_version()",
	} {
		f.Add(s)
	}
	codes := map[Code]bool{CodeParse: true, CodeInvalid: true, CodeUnsupported: true, CodeResourceLimit: true, CodeTopicNotFound: true, CodeTimeout: true}
	f.Fuzz(func(t *testing.T, q string) {
		_, err := e.Query(context.Background(), Request{Query: q, Timeout: 5 * time.Second})
		if err == nil {
			return
		}
		var qe *Error
		if !errors.As(err, &qe) || !codes[qe.Code] {
			t.Fatalf("%q: unclassified error %v", q, err)
		}
	})
}
