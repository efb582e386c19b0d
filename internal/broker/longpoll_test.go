package broker

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/metadata/metadatatest"
	"github.com/streamhouse/streamhouse/internal/objstore"
	"github.com/streamhouse/streamhouse/internal/partlog"
)

// A REST/gRPC consume long-polling on an agent that does not lead the
// partition wakes when the leader commits, on both metadata backends (on
// PostgreSQL each agent has its own store, as separate processes do).
func TestConsumeLongPollOnPartitionLedElsewhere(t *testing.T) {
	t.Parallel()
	for name, opener := range map[string]func(testing.TB) func() metadata.Store{
		"sqlite":   metadatatest.SQLiteOpener,
		"postgres": metadatatest.PostgresOpener,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			open := opener(t)
			storeA := open()
			storeB := storeA
			if name == "postgres" {
				storeB = open()
			}
			bucket, err := objstore.NewLocal(filepath.Join(t.TempDir(), "s"))
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			a := agent(t, "a", storeA, bucket)
			topic, err := a.CreateTopic(ctx, TopicSpec{Name: "t", Partitions: 1}, false)
			if err != nil {
				t.Fatal(err)
			}
			b := agent(t, "b", storeB, bucket)
			if leaderOf(topic, 0, a, b) != a {
				t.Fatal("a does not lead the partition")
			}
			type result struct {
				c   ConsumedRecords
				err error
			}
			const waiters = 20
			done := make(chan result, waiters)
			for range waiters {
				go func() {
					c, err := b.Consume(ctx, "t", 0, 0, 10, time.Minute)
					done <- result{c, err}
				}()
			}
			if _, err := a.ProduceRecords(ctx, "t", 0, []Record{{Value: []byte("late")}}, partlog.AckDurable, defaultOpts()); err != nil {
				t.Fatal(err)
			}
			for i := range waiters {
				select {
				case r := <-done:
					if r.err != nil || len(r.c.Records) != 1 || string(r.c.Records[0].Value) != "late" || r.c.NextOffset != 1 {
						t.Fatalf("consume %d on b: %+v %v", i, r.c, r.err)
					}
				case <-time.After(20 * time.Second):
					t.Fatalf("consume %d on b did not wake on a's commit", i)
				}
			}
		})
	}
}
