package sqlstore_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/metadata/metadatatest"
	"github.com/streamhouse/streamhouse/internal/metadata/sqlstore"
)

// An agent renews its leases while it commits objects over the same
// partitions, concurrently: both lock the partitions' rows in key order,
// so PostgreSQL never finds a deadlock (each would cost deadlock_timeout,
// a second, before the retry).
func TestPostgresRenewAndCommitDoNotDeadlock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, err := sqlstore.OpenPostgres(ctx, metadatatest.PostgresDatabase(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	const parts = 64
	topic, err := s.CreateTopic(ctx, metadata.Topic{Name: "t", Partitions: parts})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	epochs := make([]int32, parts)
	for p := range int32(parts) {
		l, err := s.AcquireLease(ctx, metadata.TopicPartition{TopicID: topic.ID, Partition: p}, "a", now, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		epochs[p] = l.Epoch
	}
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	wg.Add(2)
	go func() {
		defer wg.Done()
		for range 150 {
			if _, err := s.RenewLeases(ctx, "a", time.Now(), time.Hour); err != nil {
				errs <- err
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		for i := range int64(150) {
			c := metadata.ObjectCommit{ObjectKey: "obj-" + time.Now().Format(time.RFC3339Nano), Size: 1, AgentID: "a", CreatedAt: time.Now()}
			// Partitions listed in reverse, as a commit may list them in
			// any order.
			for p := int32(parts - 1); p >= 0; p-- {
				tp := metadata.TopicPartition{TopicID: topic.ID, Partition: p}
				c.Partitions = append(c.Partitions, metadata.PartitionCommit{
					TopicPartition: tp, Epoch: epochs[p], ExpectedHighWatermark: i, NewHighWatermark: i + 1,
					Entries: []metadata.IndexEntry{{BaseOffset: i, LastOffset: i, ObjectKey: c.ObjectKey, Len: 1, MaxTimestamp: -1, Records: 1}},
				})
			}
			if err := s.CommitObject(ctx, c); err != nil {
				errs <- err
				return
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := s.RetriedTransactions(); n != 0 {
		t.Fatalf("%d transactions retried after deadlocks", n)
	}
}

// A renewal that times out waiting for one partition's row (a slow
// transaction holds it) still reports the leases it did renew, so the
// agent keeps leading everything else.
func TestPostgresRenewReportsWhatItRenewed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := metadatatest.PostgresDatabase(t)
	s, err := sqlstore.OpenPostgres(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	const parts = 8
	topic, err := s.CreateTopic(ctx, metadata.Topic{Name: "t", Partitions: parts})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for p := range int32(parts) {
		if _, err := s.AcquireLease(ctx, metadata.TopicPartition{TopicID: topic.ID, Partition: p}, "a", now, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tx.Rollback(context.Background()) })
	if _, err := tx.Exec(ctx, `SELECT 1 FROM partitions WHERE topic_id = $1 AND partition_id = 3 FOR UPDATE`, topic.ID[:]); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	leases, err := s.RenewLeases(rctx, "a", time.Now(), time.Hour)
	if err == nil {
		t.Fatal("renewal finished while a row it must renew was locked")
	}
	if len(leases) != parts-1 {
		t.Fatalf("renewal reported %d leases with its error (%v), want the %d it renewed", len(leases), err, parts-1)
	}
	for _, l := range leases {
		if l.Partition == 3 {
			t.Fatalf("the locked partition was reported renewed: %+v", l)
		}
	}
}
