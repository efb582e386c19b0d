// Package waltest checks invariant 10 of DESIGN.md against the real
// binary: with WAL_ENABLED, a buffered acknowledgement (REST ack_mode
// buffered, Kafka acks=1) survives kill -9 of the agent, and the restarted
// agent serves every acknowledged record once at its acknowledged offset.
package waltest

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamhouse/streamhouse/internal/e2e"
)

// walEnv turns the WAL on (fsync as soon as possible) and makes flushes
// rare: after the first object, acknowledged buffered data is only in the
// write buffer and the WAL when the process is killed.
func walEnv(dir string) []string {
	return []string{
		"WAL_ENABLED=true",
		"WAL_DIR=" + filepath.Join(dir, "wal"),
		"WAL_SYNC_INTERVAL_MS=0",
		"FLUSH_MIN_INTERVAL_MS=3600000",
		"FLUSH_INTERVAL_SECS=3600",
		"DURABLE_BATCH_MAX_AGE_MS=3600000",
		"LEASE_TTL_MS=30000",
	}
}

type ackedRecord struct {
	partition int32
	offset    int64
	value     string
}

func TestBufferedAcksSurviveKill9(t *testing.T) {
	for _, b := range e2e.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			dir := t.TempDir()
			env := append(b.Env(t, dir), walEnv(dir)...)
			p := e2e.Start(t, dir, env)
			if code := p.Call(http.MethodPost, "/api/v1/topics", map[string]any{"name": "walrest", "partitions": 2}, nil); code != http.StatusCreated {
				t.Fatalf("create topic walrest: %d", code)
			}
			if code := p.Call(http.MethodPost, "/api/v1/topics", map[string]any{"name": "walkafka", "partitions": 2}, nil); code != http.StatusCreated {
				t.Fatalf("create topic walkafka: %d", code)
			}
			acked := map[string][]ackedRecord{}

			// REST, ack_mode buffered.
			for i := 0; i < 40; i++ {
				part := int32(i % 2)
				v := fmt.Sprintf("rest-%d", i)
				var res struct {
					Offset    int64 `json:"offset"`
					Partition int32 `json:"partition"`
				}
				code := p.Call(http.MethodPost, "/api/v1/produce", map[string]any{
					"topic": "walrest", "partition": part, "value": v, "ack_mode": "buffered",
				}, &res)
				if code != http.StatusOK {
					t.Fatalf("produce %d: status %d", i, code)
				}
				acked["walrest"] = append(acked["walrest"], ackedRecord{res.Partition, res.Offset, v})
			}

			// Kafka acks=1, not idempotent.
			cl, err := kgo.NewClient(kgo.SeedBrokers(p.KafkaAddr),
				kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite(),
				kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.RecordRetries(0))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			for i := 0; i < 60; i++ {
				r := &kgo.Record{Topic: "walkafka", Partition: int32(i % 2), Value: []byte(fmt.Sprintf("kafka-%d", i))}
				if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
					t.Fatalf("produce %d: %v", i, err)
				}
				acked["walkafka"] = append(acked["walkafka"], ackedRecord{r.Partition, r.Offset, string(r.Value)})
			}
			cl.Close()

			// Right after the last acknowledgement.
			p.Stop(syscall.SIGKILL)

			p2 := e2e.Start(t, dir, env)
			if !strings.Contains(p2.Logs(), `"msg":"wal replayed"`) {
				t.Fatalf("restart replayed nothing from the WAL: the test did not exercise it\n%s", p2.Logs())
			}
			for topic, want := range acked {
				checkTopic(t, p2.KafkaAddr, topic, want)
			}
		})
	}
}

// checkTopic reads topic's partitions up to their high watermarks and
// checks every acknowledged record is at its offset and stored once.
func checkTopic(t *testing.T, addr, topic string, want []ackedRecord) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	admCl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer admCl.Close()
	ends, err := kadm.NewClient(admCl).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	hw := map[int32]int64{}
	total := int64(0)
	ends.Each(func(o kadm.ListedOffset) {
		hw[o.Partition] = o.Offset
		total += o.Offset
	})
	if total != int64(len(want)) {
		t.Errorf("%s: %d records stored (high watermarks %v), %d acknowledged", topic, total, hw, len(want))
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{
		topic: {0: kgo.NewOffset().AtStart(), 1: kgo.NewOffset().AtStart()},
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	got := map[[2]int64]string{}
	seen := map[string]bool{}
	for int64(len(got)) < total {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%s: read %d of %d records before the deadline", topic, len(got), total)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Logf("fetch: %v", err) })
		fs.EachRecord(func(r *kgo.Record) {
			if seen[string(r.Value)] {
				t.Errorf("%s: %q stored twice (again at %d/%d)", topic, r.Value, r.Partition, r.Offset)
			}
			seen[string(r.Value)] = true
			got[[2]int64{int64(r.Partition), r.Offset}] = string(r.Value)
		})
	}
	for _, a := range want {
		if v := got[[2]int64{int64(a.partition), a.offset}]; v != a.value {
			t.Errorf("%s: partition %d offset %d holds %q, acknowledged %q", topic, a.partition, a.offset, v, a.value)
		}
	}
}
