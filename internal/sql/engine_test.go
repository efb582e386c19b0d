//go:build cgo

package sql

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/streamhouse/streamhouse/internal/broker"
	"github.com/streamhouse/streamhouse/internal/metadata"
)

func mustQuery(t *testing.T, e Engine, q string) Result {
	t.Helper()
	res, err := e.Query(context.Background(), Request{Query: q})
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return res
}

func rowsJSON(t *testing.T, res Result) string {
	t.Helper()
	out, err := json.Marshal(res.Rows)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func TestSmoke(t *testing.T) {
	eachBackend(t, func(t *testing.T, store metadata.Store) {
		b := newBroker(t, store)
		recs := genRecords(200, 4)
		produce(t, b, "my-topic", 4, recs)
		e := newEngine(t, b, Config{})
		res := mustQuery(t, e, `SELECT count(*), sum(json_extract(value, '$.price')) FROM "my-topic"`)
		t.Logf("%v %s %d", res.Columns, rowsJSON(t, res), res.ScannedRecords)
		res = mustQuery(t, e, `SELECT partition, "offset", timestamp, key, value, headers FROM "my-topic" WHERE partition = 1 AND "offset" < 3`)
		t.Logf("%v %s %d", res.Columns, rowsJSON(t, res), res.ScannedRecords)
		_, err := e.Query(context.Background(), Request{Query: "SELECT * FROM nope"})
		var qe *Error
		if !errors.As(err, &qe) || qe.Code != CodeTopicNotFound {
			t.Fatal(err)
		}
	})
}

// Queries run concurrently (more than the connection bound), and the
// metrics count them by outcome with what they read.
func TestConcurrentQueriesAndMetrics(t *testing.T) {
	b := newBroker(t, openSQLite(t))
	produce(t, b, "t", 4, genRecords(400, 4))
	reg := prometheus.NewRegistry()
	e := newEngine(t, b, Config{Registry: reg, Threads: 2})
	var wg sync.WaitGroup
	errs := make(chan error, 12)
	for i := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := e.Query(context.Background(), Request{Query: fmt.Sprintf(`SELECT count(*) FROM t WHERE partition = %d`, i%4)})
			if err == nil && res.Rows[0][0] != int64(100) {
				err = fmt.Errorf("partition %d: %v rows", i%4, res.Rows[0][0])
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.Query(context.Background(), Request{Query: "SELEC"}); err == nil {
		t.Fatal("no parse error")
	}
	if got := testutil.ToFloat64(e.(*engine).metrics.queries.WithLabelValues("ok")); got != 12 {
		t.Errorf("ok queries %v, want 12", got)
	}
	if got := testutil.ToFloat64(e.(*engine).metrics.queries.WithLabelValues(string(CodeParse))); got != 1 {
		t.Errorf("parse_error queries %v, want 1", got)
	}
	if got := testutil.ToFloat64(e.(*engine).metrics.records); got != 1200 {
		t.Errorf("scanned records %v, want 1200", got)
	}
	if n, err := testutil.GatherAndCount(reg, "streamhouse_sql_query_duration_seconds"); err != nil || n != 1 {
		t.Errorf("duration histogram: %d, %v", n, err)
	}
}

// Every kind of value DuckDB can answer comes back as plain JSON: dates
// and times as ISO 8601 text, intervals in DuckDB's own notation, UUIDs
// as text. (No allowed function makes a MAP or a UNION.)
func TestValueRendering(t *testing.T) {
	b := newBroker(t, openSQLite(t))
	e := newEngine(t, b, Config{})
	res := mustQuery(t, e, `SELECT DATE '2026-01-02' AS d, TIME '12:34:56.5' AS t, TIMESTAMP '2026-01-02 03:04:05' AS ts,
		INTERVAL 90 MINUTE AS i1, INTERVAL '1 year 2 months 3 days' AS i2, INTERVAL '-1 day -00:00:01.5' AS i3,
		'6ba7b810-9dad-11d1-80b4-00c04fd430c8'::UUID AS u,
		1.25::DECIMAL(4, 2) AS dec, 'ab'::BLOB AS bl, 'NaN'::DOUBLE AS nan`)
	want := `[["2026-01-02","12:34:56.5","2026-01-02T03:04:05Z","01:30:00","1 year 2 months 3 days","-1 day -00:00:01.5",` +
		`"6ba7b810-9dad-11d1-80b4-00c04fd430c8",1.25,"YWI=","NaN"]]`
	if got := rowsJSON(t, res); got != want {
		t.Errorf("rendered\n %s\nwant\n %s", got, want)
	}
}

// json_extract is typed: where a number is wanted only a JSON number is
// one (a string holding digits stays a string, as SPEC.md says), and a
// string compares as a string.
func TestJSONExtractTyped(t *testing.T) {
	b := newBroker(t, openSQLite(t))
	var recs []rec
	for i, v := range []string{`{"n": 5}`, `{"n": "7"}`, `{"n": true}`, `{"n": null}`, `{"n": 2.5e1}`, `not json`, `{"n": "[1,2]", "o": {"a": [1]}}`} {
		recs = append(recs, rec{partition: 0, Record: broker.Record{Value: []byte(v), Timestamp: int64(i)}})
	}
	produce(t, b, "t", 1, recs)
	e := newEngine(t, b, Config{})
	for q, want := range map[string]string{
		`SELECT SUM(json_extract(value, '$.n')), COUNT(json_extract(value, '$.n')) FROM t`: `[[30,5]]`,
		`SELECT "offset" FROM t WHERE json_extract(value, '$.n') > 4 ORDER BY 1`:           `[[0],[4]]`,
		`SELECT "offset" FROM t WHERE json_extract(value, '$.n') = '7'`:                    `[[1]]`,
		`SELECT "offset" FROM t WHERE json_extract(value, '$.n') + 0 = 7`:                  `[]`,
		// Returned as JSON: a string stays a string, whatever it holds.
		`SELECT json_extract(value, '$.n'), value->'o' FROM t WHERE "offset" IN (1, 6) ORDER BY "offset"`: `[["7",null],["[1,2]",{"a":[1]}]]`,
		// Ordered: JSON numbers by value, then everything else as text.
		`SELECT "offset" FROM t WHERE json_extract(value, '$.n') IS NOT NULL ORDER BY json_extract(value, '$.n'), "offset"`: `[[0],[4],[1],[6],[2]]`,
		// Wildcard paths.
		`SELECT value->>'$.o.*' FROM t WHERE "offset" = 6`: `[[["[1]"]]]`,
	} {
		if got := rowsJSON(t, mustQuery(t, e, q)); got != want {
			t.Errorf("%s: %s, want %s", q, got, want)
		}
	}
}
