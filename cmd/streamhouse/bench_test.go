package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/internal/e2e"
)

// BenchmarkRESTProduceBatch measures REST batch produce against the real
// binary (built without the race detector) on the embedded defaults:
// batches of 100 records of 1 KiB, durable acks, 16 concurrent clients, 8
// partitions. docs/benchmarks.md has the numbers:
//
//	go test -run '^$' -bench RESTProduceBatch -benchtime 2000x ./cmd/streamhouse
func BenchmarkRESTProduceBatch(b *testing.B) {
	e2e.Race = false
	dir := b.TempDir()
	s := e2e.Start(b, dir, e2e.Local.Env(b, dir))
	if code := s.Call("POST", "/api/v1/topics", map[string]any{"name": "bench", "partitions": 8}, nil); code != 201 {
		b.Fatalf("create topic: %d", code)
	}
	value := strings.Repeat("v", 1024)
	bodies := make([][]byte, 8)
	for p := range bodies {
		recs := make([]map[string]any, 100)
		for i := range recs {
			recs[i] = map[string]any{"key": fmt.Sprint(i), "value": value}
		}
		bodies[p], _ = json.Marshal(map[string]any{"topic": "bench", "partition": p, "records": recs})
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	var mu sync.Mutex
	var lat []time.Duration
	var n int
	b.SetBytes(100 * 1024)
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		mu.Lock()
		body := bodies[n%len(bodies)]
		n++
		mu.Unlock()
		var mine []time.Duration
		for pb.Next() {
			start := time.Now()
			resp, err := client.Post(s.URL+"/api/v1/produce/batch", "application/json", bytes.NewReader(body))
			if err != nil {
				b.Error(err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
			mine = append(mine, time.Since(start))
		}
		mu.Lock()
		lat = append(lat, mine...)
		mu.Unlock()
	})
	b.StopTimer()
	slices.Sort(lat)
	if len(lat) > 0 {
		b.ReportMetric(float64(len(lat)*100)/b.Elapsed().Seconds(), "records/s")
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	}
}
