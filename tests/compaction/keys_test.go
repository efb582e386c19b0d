package compactiontest

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamhouse/streamhouse/internal/e2e"
)

// Key compaction with the real binary: a topic with cleanup.policy=compact
// is written key after key; the agent's passes remove every record but the
// newest per key (the log's last batch is kept whole), and a franz-go
// consumer and a librdkafka one (kcat) both read the newest value per key
// at its original offset and timestamp, across the gaps (a tombstone, kept
// for delete.retention.ms, included); a keyless record is refused.
func TestKeyCompaction(t *testing.T) {
	t.Parallel()
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Fatal("kcat not installed: scripts/install-test-tools.sh installs it (scripts/test.sh runs it)")
	}
	for _, b := range e2e.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			env := append(b.Env(t, dir), "COMPACTION_INTERVAL_SECS=1", "FLUSH_MIN_INTERVAL_MS=0")
			p := e2e.Start(t, dir, env)
			defer p.Stop(syscall.SIGTERM)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()

			const topic, keys, rounds = "compacted-keys", 10, 8
			cfg := map[string]string{"cleanup.policy": "compact", "segment.ms": "100", "min.cleanable.dirty.ratio": "0.01"}
			if code := p.Call(http.MethodPost, "/api/v1/topics", map[string]any{"name": topic, "partitions": 1, "config": cfg}, nil); code/100 != 2 {
				t.Fatalf("create topic: HTTP %d", code)
			}
			prod, err := kgo.NewClient(kgo.SeedBrokers(p.KafkaAddr), kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(0))
			if err != nil {
				t.Fatal(err)
			}
			defer prod.Close()
			// A client of its own: a refused batch leaves a producer's
			// sequence state to the client's recovery.
			keyless, err := kgo.NewClient(kgo.SeedBrokers(p.KafkaAddr), kgo.DefaultProduceTopic(topic), kgo.DisableIdempotentWrite())
			if err != nil {
				t.Fatal(err)
			}
			err = keyless.ProduceSync(ctx, &kgo.Record{Value: []byte("no key")}).FirstErr()
			keyless.Close()
			if err == nil || !strings.Contains(err.Error(), "INVALID_RECORD") {
				t.Fatalf("keyless produce: %v, want INVALID_RECORD", err)
			}
			newest := map[string]int64{}
			values := map[int64]string{}
			stamps := map[int64]int64{}
			var last int64
			base := time.Now().Add(-time.Hour).Truncate(time.Second)
			for i := range keys * rounds {
				k := fmt.Sprintf("key-%d", (i*3)%keys)
				v := []byte(fmt.Sprintf("value-%d", i))
				if i == keys*rounds-5 {
					// The newest of key-5: a tombstone, kept (with a delete
					// horizon in its batch) for delete.retention.ms, a day.
					v = nil
				}
				ts := base.Add(time.Duration(i*7) * time.Millisecond)
				res, err := prod.ProduceSync(ctx, &kgo.Record{Key: []byte(k), Value: v, Timestamp: ts}).First()
				if err != nil {
					t.Fatalf("produce %d: %v", i, err)
				}
				newest[k] = res.Offset
				values[res.Offset] = k + " " + string(v)
				stamps[res.Offset] = ts.UnixMilli()
				last = res.Offset
			}
			var want []string
			for _, o := range newest {
				want = append(want, fmt.Sprintf("%d %s", o, values[o]))
			}
			sort.Slice(want, func(i, j int) bool { return offsetOf(want[i]) < offsetOf(want[j]) })
			if offsetOf(want[len(want)-1]) != last {
				t.Fatalf("the last record is not the newest of its key: %v", want)
			}

			// Bounded poll: passes run every second once the data is older
			// than segment.ms.
			deadline := time.Now().Add(90 * time.Second)
			var got []string
			for {
				got = consumeFranz(ctx, t, p.KafkaAddr, topic, last)
				if strings.Join(got, "\n") == strings.Join(want, "\n") {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("after 90 s franz-go reads\n%s\nwant\n%s\nlogs:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"), p.Logs())
				}
				time.Sleep(300 * time.Millisecond)
			}
			// The metric is added after the index switch a consumer may
			// already see: a bounded poll.
			for n := 0.0; n != float64(keys*rounds-keys); n = metric(t, p, "streamhouse_log_key_compaction_records_removed_total") {
				if time.Now().After(deadline) {
					t.Fatalf("records removed metric %v, want %d", n, keys*rounds-keys)
				}
				time.Sleep(100 * time.Millisecond)
			}
			// Every record keeps its timestamp, the tombstone's batch (with
			// a delete horizon as its base timestamp) included.
			for o, ts := range consumeStamps(ctx, t, p.KafkaAddr, topic, last) {
				if ts != stamps[o] {
					t.Fatalf("franz-go reads timestamp %d at offset %d, produced %d", ts, o, stamps[o])
				}
			}
			if n := metric(t, p, "streamhouse_log_key_compaction_passes_total"); n == 0 {
				t.Fatalf("no key compaction pass counted")
			}

			kctx, kcancel := context.WithTimeout(ctx, 60*time.Second)
			defer kcancel()
			out, err := exec.CommandContext(kctx, kcat, "-C", "-b", p.KafkaAddr, "-t", topic, "-e", "-q", "-f", "%o %k %s %T\n").CombinedOutput()
			if err != nil {
				t.Fatalf("kcat: %v\n%s", err, out)
			}
			var wantK []string
			for _, w := range want {
				wantK = append(wantK, fmt.Sprintf("%s %d", w, stamps[offsetOf(w)]))
			}
			if g := strings.TrimSpace(string(out)); g != strings.Join(wantK, "\n") {
				t.Fatalf("kcat reads (offset key value timestamp)\n%s\nwant\n%s", g, strings.Join(wantK, "\n"))
			}
		})
	}
}

func offsetOf(line string) int64 {
	var o int64
	fmt.Sscan(line, &o)
	return o
}

// consumeStamps reads topic partition 0 from the start up to offset last
// with franz-go, and returns each record's timestamp by offset.
func consumeStamps(ctx context.Context, t *testing.T, addr, topic string, last int64) map[int64]int64 {
	t.Helper()
	cons, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	out := map[int64]int64{}
	pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for {
		fs := cons.PollFetches(pctx)
		if pctx.Err() != nil {
			t.Fatalf("franz-go did not reach offset %d in 20 s", last)
		}
		if err := fs.Err0(); err != nil {
			t.Fatalf("consume: %v", err)
		}
		done := false
		fs.EachRecord(func(r *kgo.Record) {
			out[r.Offset] = r.Timestamp.UnixMilli()
			done = done || r.Offset >= last
		})
		if done {
			return out
		}
	}
}

// consumeFranz reads topic partition 0 from the start up to offset last
// with franz-go, as "offset key value" lines.
func consumeFranz(ctx context.Context, t *testing.T, addr, topic string, last int64) []string {
	t.Helper()
	cons, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	var out []string
	pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for {
		fs := cons.PollFetches(pctx)
		if pctx.Err() != nil {
			t.Fatalf("franz-go did not reach offset %d in 20 s; read %v", last, out)
		}
		if err := fs.Err0(); err != nil {
			t.Fatalf("consume: %v", err)
		}
		done := false
		fs.EachRecord(func(r *kgo.Record) {
			out = append(out, fmt.Sprintf("%d %s %s", r.Offset, r.Key, r.Value))
			done = done || r.Offset >= last
		})
		if done {
			return out
		}
	}
}
