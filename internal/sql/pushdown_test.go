//go:build cgo

package sql

import (
	"fmt"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/internal/metadata"
)

// Pushdown is proved by what was read (Result.ScannedRecords), not by time.
func TestPushdownCounts(t *testing.T) {
	eachBackend(t, func(t *testing.T, store metadata.Store) {
		b := newBroker(t, store)
		recs := genRecords(8000, 4) // 2000 per partition; record i at t0 + i s
		produce(t, b, "t", 4, recs)
		e := newEngine(t, b, Config{})
		ts := func(i int) string { return time.UnixMilli(t0 + int64(i)*1000).UTC().Format(time.RFC3339) }
		for _, c := range []struct {
			query         string
			rows, scanned int64
		}{
			{`SELECT count(*) FROM t`, 8000, 8000},
			{`SELECT count(*) FROM t WHERE partition = 3 AND "offset" BETWEEN 500 AND 599`, 100, 100},
			// offset unquoted, as a user writes it (a reserved word otherwise).
			{`SELECT count(*) FROM t WHERE partition = 3 AND offset BETWEEN 500 AND 599`, 100, 100},
			{`SELECT count(*) FROM (SELECT offset FROM t WHERE partition = 1 ORDER BY offset LIMIT 20 OFFSET 5) WHERE offset >= 5`, 20, 2000},
			{`SELECT count(*) FROM t WHERE partition IN (1, 2)`, 4000, 4000},
			{`SELECT count(*) FROM t WHERE partition >= 2 AND partition < 3`, 2000, 2000},
			{`SELECT count(*) FROM t WHERE "offset" >= 1990`, 40, 40},
			{`SELECT count(*) FROM t WHERE "offset" < 10 AND value IS NOT NULL`, 38, 40},
			{`SELECT count(*) FROM t WHERE 1995 <= "offset"`, 20, 20},
			{fmt.Sprintf(`SELECT count(*) FROM t WHERE timestamp >= '%s'`, ts(7000)), 1000, 1000},
			{fmt.Sprintf(`SELECT count(*) FROM t WHERE timestamp > %d AND partition = 0`, t0+7000*1000), 249, 249},
			{`SELECT count(*) FROM t WHERE partition = 9`, 0, 0},
			{`SELECT count(*) FROM t WHERE partition = 1 AND partition = 2`, 0, 0},
			{`SELECT count(*) FROM t WHERE "offset" > 5 AND "offset" < 3`, 0, 0},
			// OR is not pushed down: everything is read, the answer is right.
			{`SELECT count(*) FROM t WHERE partition = 0 OR partition = 1`, 4000, 8000},
			// A topic read twice is read whole each time.
			{`SELECT count(*) FROM t a JOIN t b USING (partition, "offset") WHERE a.partition = 0 AND a."offset" < 10`, 10, 16000},
			// With an alias.
			{`SELECT count(*) FROM t x WHERE x.partition = 2 AND x."offset" < 7`, 7, 7},
		} {
			res := mustQuery(t, e, c.query)
			if got := res.Rows[0][0]; got != c.rows {
				t.Errorf("%s: %v rows, want %d", c.query, got, c.rows)
			}
			if res.ScannedRecords != c.scanned {
				t.Errorf("%s: scanned %d records, want %d", c.query, res.ScannedRecords, c.scanned)
			}
		}
		// LIMIT without ORDER BY stops the scan early.
		res := mustQuery(t, e, `SELECT * FROM t LIMIT 5`)
		if len(res.Rows) != 5 || res.ScannedRecords > 4096 {
			t.Errorf("LIMIT 5: %d rows, scanned %d records of 8000", len(res.Rows), res.ScannedRecords)
		}
		res = mustQuery(t, e, `SELECT * FROM t WHERE key = 'k3' LIMIT 3`)
		if len(res.Rows) != 3 || res.ScannedRecords > 4096 {
			t.Errorf("filtered LIMIT 3: %d rows, scanned %d records", len(res.Rows), res.ScannedRecords)
		}
	})
}

// The same offset-bounded query reads the same on a small and a large topic.
func TestPushdownIndependentOfSize(t *testing.T) {
	b := newBroker(t, openSQLite(t))
	produce(t, b, "small", 4, genRecords(4000, 4))
	produce(t, b, "large", 4, genRecords(40000, 4))
	e := newEngine(t, b, Config{})
	for _, topic := range []string{"small", "large"} {
		res := mustQuery(t, e, `SELECT count(*) FROM `+topic+` WHERE partition = 3 AND "offset" BETWEEN 500 AND 599`)
		if res.Rows[0][0] != int64(100) || res.ScannedRecords != 100 {
			t.Errorf("%s: %v rows, scanned %d", topic, res.Rows[0][0], res.ScannedRecords)
		}
	}
}

func TestExplain(t *testing.T) {
	b := newBroker(t, openSQLite(t))
	produce(t, b, "t", 4, genRecords(400, 4))
	e := newEngine(t, b, Config{})
	res := mustQuery(t, e, fmt.Sprintf(`EXPLAIN SELECT * FROM t WHERE partition IN (1, 3) AND "offset" BETWEEN 10 AND 19 AND timestamp >= %d`, t0+50*1000))
	// Partition 1 holds records 1, 5, 9, …: timestamp >= t0+50 s starts at record 53 (offset 13).
	want := [][]any{{"t", int64(1), int64(13), int64(20), int64(7), t0 + 50_000}, {"t", int64(3), int64(12), int64(20), int64(8), t0 + 50_000}}
	if fmt.Sprint(res.Rows) != fmt.Sprint(want) {
		t.Fatalf("EXPLAIN rows %v, want %v", res.Rows, want)
	}
	if res.ScannedRecords != 0 {
		t.Fatalf("EXPLAIN read %d records", res.ScannedRecords)
	}
}

func TestShowTopicsAndDescribe(t *testing.T) {
	b := newBroker(t, openSQLite(t))
	produce(t, b, "a.b-c", 2, genRecords(10, 2))
	produce(t, b, "z", 1, genRecords(3, 1))
	e := newEngine(t, b, Config{})
	res := mustQuery(t, e, "show topics;")
	if fmt.Sprint(res.Rows) != "[[a.b-c 2] [z 1]]" {
		t.Fatalf("SHOW TOPICS: %v", res.Rows)
	}
	for _, q := range []string{`DESCRIBE "a.b-c"`, `describe a.b-c`} {
		res = mustQuery(t, e, q)
		if fmt.Sprint(res.Rows) != "[[partition INTEGER NO] [offset BIGINT NO] [timestamp BIGINT NO] [key VARCHAR YES] [value VARCHAR YES] [headers JSON NO]]" {
			t.Fatalf("%s: %v", q, res.Rows)
		}
	}
	res = mustQuery(t, e, `SELECT * FROM "a.b-c" LIMIT 1`)
	var names []string
	for _, c := range res.Columns {
		names = append(names, c.Name+" "+c.DataType)
	}
	if fmt.Sprint(names) != "[partition INTEGER offset BIGINT timestamp BIGINT key VARCHAR value VARCHAR headers JSON]" {
		t.Fatalf("SELECT * columns: %v", names)
	}
}
