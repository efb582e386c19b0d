package wal

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// BenchmarkWAL measures the writer: writers goroutines each queue an
// entry of size bytes, flush, wait for its sync and release it (as a
// commit would), in a loop, with WAL_SYNC_INTERVAL_MS=0 (what a buffered
// append does: partlog's walhook.go). It reports the bytes acknowledged a
// second, the syncs per entry, and the add-to-acknowledgement latency
// (p50, p99). The WAL is in a temporary directory on the disk of
// $TMPDIR.
//
//	go test -run '^$' -bench BenchmarkWAL -benchtime 4000x ./internal/wal
func BenchmarkWAL(b *testing.B) {
	for _, c := range []struct{ writers, size int }{
		{1, 1 << 10},   // one producer: latency is a write and a sync
		{8, 1 << 10},   // small entries: group commit
		{8, 64 << 10},  // bigger entries
		{64, 16 << 10}, // many producers
		{1, 1 << 20},   // one producer, big requests
		{8, 1 << 20},
	} {
		b.Run(fmt.Sprintf("writers=%d/entry=%dKiB", c.writers, c.size>>10), func(b *testing.B) {
			benchWAL(b, c.writers, c.size)
		})
	}
}

func benchWAL(b *testing.B, writers, size int) {
	reg := prometheus.NewRegistry()
	w, _, err := Open(Options{Dir: b.TempDir(), WriterID: "bench", Metrics: reg,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	// Start with a prepared segment, as a running server has.
	for deadline := time.Now().Add(time.Minute); ; {
		w.mu.Lock()
		ready := w.next != nil
		w.mu.Unlock()
		if ready {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("no segment prepared")
		}
		time.Sleep(time.Millisecond)
	}
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i)
	}
	lat := make([][]time.Duration, writers)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	b.SetBytes(int64(size))
	b.ResetTimer()
	for g := 0; g < writers; g++ {
		n := b.N / writers
		if g < b.N%writers {
			n++
		}
		wg.Add(1)
		go func(g, n int) {
			defer wg.Done()
			ls := make([]time.Duration, 0, n)
			for i := 0; i < n; i++ {
				start := time.Now()
				if err := w.Reserve(context.Background(), FrameSize(size)); err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
					return
				}
				e := w.Queue(Header{Partition: int32(g), BaseOffset: int64(i), LastOffset: int64(i), Records: 1}, [][]byte{data}, FrameSize(size))
				w.Flush(context.Background())
				<-e.Done()
				ls = append(ls, time.Since(start))
				if err := e.Err(); err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
					return
				}
				w.Release(e)
			}
			lat[g] = ls
		}(g, n)
	}
	wg.Wait()
	b.StopTimer()
	if firstErr != nil {
		b.Fatal(firstErr)
	}
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	if len(all) > 0 {
		b.ReportMetric(float64(all[len(all)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
	}
	b.ReportMetric(testutil.ToFloat64(w.metrics.fsyncs)/float64(b.N), "syncs/op")
}
