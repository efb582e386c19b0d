// Package compactiontest runs compaction end to end: the real server
// binary, data produced and consumed with franz-go.
package compactiontest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamhouse/streamhouse/internal/e2e"
)

// metric returns the value of an unlabelled counter from /metrics.
func metric(t *testing.T, p *e2e.Proc, name string) float64 {
	t.Helper()
	resp, err := http.Get(p.URL + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s: %v", name, err)
			}
			return f
		}
	}
	return 0
}

// Object compaction with the real binary: many small flushes across
// partitions are rewritten into per-partition segments while the agent
// runs, and a consumer then reads back exactly what was produced.
func TestObjectCompaction(t *testing.T) {
	t.Parallel()
	for _, b := range e2e.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			env := append(b.Env(t, dir), "COMPACTION_INTERVAL_SECS=1", "SEGMENT_MAX_SIZE=4096", "SEGMENT_MAX_AGE_MS=300",
				"FLUSH_MIN_INTERVAL_MS=0", "COMPACTION_PASS_MAX_MS=4500")
			p := e2e.Start(t, dir, env)
			defer p.Stop(syscall.SIGTERM)
			// COMPACTION_PASS_MAX_MS reaches the log (its default would be
			// the interval, 1 s).
			if got := metric(t, p, "streamhouse_log_compaction_pass_max_seconds"); got != 4.5 {
				t.Fatalf("streamhouse_log_compaction_pass_max_seconds %v, want 4.5 (COMPACTION_PASS_MAX_MS=4500)", got)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()

			const topic, partitions, perPartition = "compacted-objects", 4, 300
			if code := p.Call(http.MethodPost, "/api/v1/topics", map[string]any{"name": topic, "partitions": partitions}, nil); code/100 != 2 {
				t.Fatalf("create topic: HTTP %d", code)
			}
			prod, err := kgo.NewClient(kgo.SeedBrokers(p.KafkaAddr), kgo.DefaultProduceTopic(topic),
				kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0), kgo.MaxBufferedRecords(8))
			if err != nil {
				t.Fatal(err)
			}
			defer prod.Close()
			want := make([][]*kgo.Record, partitions)
			for i := range perPartition * partitions {
				part := int32(i % partitions)
				r := &kgo.Record{
					Partition: part,
					Key:       []byte(fmt.Sprintf("key-%d", i)),
					Value:     bytes.Repeat([]byte{byte(i)}, 50+i%200),
					Headers:   []kgo.RecordHeader{{Key: "h", Value: []byte(strconv.Itoa(i))}},
				}
				// One at a time: a flush per record or few, as a
				// trickle of small produces makes them.
				if err := prod.ProduceSync(ctx, r).FirstErr(); err != nil {
					t.Fatalf("produce %d: %v", i, err)
				}
				want[part] = append(want[part], r)
			}

			// Bounded poll: the agent's passes rewrite the runs once they
			// are old enough (5 s, plus SEGMENT_MAX_AGE_MS for the last
			// segment of each partition).
			deadline := time.Now().Add(90 * time.Second)
			for metric(t, p, "streamhouse_log_compaction_entries_replaced_total") < float64(perPartition*partitions)/2 {
				if time.Now().After(deadline) {
					t.Fatalf("compaction replaced %v index entries in 90 s, want at least half of %d; logs:\n%s",
						metric(t, p, "streamhouse_log_compaction_entries_replaced_total"), perPartition*partitions, p.Logs())
				}
				time.Sleep(200 * time.Millisecond)
			}
			if n := metric(t, p, "streamhouse_log_compaction_objects_written_total"); n == 0 {
				t.Fatalf("no segment objects written")
			}

			cons, err := kgo.NewClient(kgo.SeedBrokers(p.KafkaAddr), kgo.ConsumeTopics(topic),
				kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
			if err != nil {
				t.Fatal(err)
			}
			defer cons.Close()
			got := make([][]*kgo.Record, partitions)
			for n := 0; n < perPartition*partitions; {
				fs := cons.PollFetches(ctx)
				if err := fs.Err0(); err != nil {
					t.Fatalf("consume: %v", err)
				}
				fs.EachRecord(func(r *kgo.Record) {
					got[r.Partition] = append(got[r.Partition], r)
					n++
				})
			}
			for part := range partitions {
				if len(got[part]) != len(want[part]) {
					t.Fatalf("partition %d: %d records, want %d", part, len(got[part]), len(want[part]))
				}
				for i, g := range got[part] {
					w := want[part][i]
					if g.Offset != int64(i) || !bytes.Equal(g.Key, w.Key) || !bytes.Equal(g.Value, w.Value) ||
						!slices.EqualFunc(g.Headers, w.Headers, func(a, b kgo.RecordHeader) bool { return a.Key == b.Key && bytes.Equal(a.Value, b.Value) }) ||
						!g.Timestamp.Equal(w.Timestamp) {
						t.Fatalf("partition %d record %d = offset %d key %q, want offset %d key %q (same value, headers, timestamp)",
							part, i, g.Offset, g.Key, i, w.Key)
					}
				}
			}
		})
	}
}
