//go:build cgo

package sql

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"testing"

	"github.com/streamhouse/streamhouse/internal/batch"
	"github.com/streamhouse/streamhouse/internal/broker"
)

// BenchmarkGroupBy is the benchmark query over SQL_BENCH_RECORDS
// (default 200000) JSON records of about 200 bytes over 8 partitions, on
// the local backend (SQLite metadata, local bucket), with SQL_BENCH_THREADS
// engine threads (default 1, the server's default on 2 cores):
//
//	SQL_BENCH_RECORDS=1000000 go test -run '^$' -bench GroupBy -benchtime 3x ./internal/sql
func BenchmarkGroupBy(b *testing.B) {
	n := 200000
	if s := os.Getenv("SQL_BENCH_RECORDS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	threads := 1
	if s := os.Getenv("SQL_BENCH_THREADS"); s != "" {
		threads, _ = strconv.Atoi(s)
	}
	br := newBroker(b, openSQLite(b))
	ctx := context.Background()
	if _, err := br.CreateTopic(ctx, broker.TopicSpec{Name: "orders", Partitions: 8}, false); err != nil {
		b.Fatal(err)
	}
	cats := []string{"books", "games", "tools", "food", "garden", "music"}
	var total int
	for p := 0; p < 8; p++ {
		var rs []broker.Record
		for i := p; i < n; i += 8 {
			v, _ := json.Marshal(map[string]any{"id": i, "category": cats[i%len(cats)], "price": float64(i%1000) / 10,
				"customer": fmt.Sprintf("customer-%06d", i%50000), "note": "a note of some length to reach about two hundred bytes per record, as the issue says",
				"items": []int{i % 7, i % 11}})
			total += len(v)
			rs = append(rs, broker.Record{Key: []byte(strconv.Itoa(i)), Value: v, Timestamp: int64(1_767_225_600_000 + i)})
			if len(rs) == 2000 {
				if _, err := br.ProduceRecords(ctx, "orders", int32(p), rs, broker.AckDurable, batch.DefaultBuildOptions()); err != nil {
					b.Fatal(err)
				}
				rs = rs[:0]
			}
		}
		if len(rs) > 0 {
			if _, err := br.ProduceRecords(ctx, "orders", int32(p), rs, broker.AckDurable, batch.DefaultBuildOptions()); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Logf("%d records, %d value bytes on average", n, total/n)
	e := newEngine(b, br, Config{Threads: threads})
	q := `SELECT json_extract(value, '$.category'), COUNT(*), AVG(json_extract(value, '$.price')) FROM orders GROUP BY 1`
	b.ResetTimer()
	for range b.N {
		res, err := e.Query(ctx, Request{Query: q})
		if err != nil {
			b.Fatal(err)
		}
		if res.ScannedRecords != int64(n) || len(res.Rows) != len(cats) {
			b.Fatalf("scanned %d, %d rows", res.ScannedRecords, len(res.Rows))
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
