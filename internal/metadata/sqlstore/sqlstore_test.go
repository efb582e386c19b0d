package sqlstore_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/metadata/metadatatest"
	"github.com/streamhouse/streamhouse/internal/metadata/sqlstore"
)

var now = time.UnixMilli(1_700_000_000_000)

func TestSQLite(t *testing.T) {
	t.Parallel()
	metadatatest.Run(t, func(t *testing.T) metadata.Store { return metadatatest.OpenSQLite(t) })
}

func TestPostgres(t *testing.T) {
	t.Parallel()
	metadatatest.Run(t, func(t *testing.T) metadata.Store { return metadatatest.OpenPostgres(t) })
}

func TestPersistence(t *testing.T) {
	t.Parallel()
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		metadatatest.RunPersistence(t, func(t *testing.T) func() metadata.Store { return metadatatest.SQLiteOpener(t) })
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		metadatatest.RunPersistence(t, func(t *testing.T) func() metadata.Store { return metadatatest.PostgresOpener(t) })
	})
}

// TestSQLiteLocked: one SQLite database, one process (one Store).
func TestSQLiteLocked(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "meta.db")
	s, err := sqlstore.OpenSQLite(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = sqlstore.OpenSQLite(ctx, path, nil)
	if !errors.Is(err, sqlstore.ErrLocked) {
		t.Fatalf("second open: %v, want ErrLocked", err)
	}
	t.Logf("second open: %v", err)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	s, err = sqlstore.OpenSQLite(ctx, path, nil)
	if err != nil {
		t.Fatalf("open after close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestForgetReferencedObject: the index's foreign key keeps an object row
// alive while an index row references it, whatever the GC believes.
func TestForgetReferencedObject(t *testing.T) {
	t.Parallel()
	for name, open := range metadatatest.Backends(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := open(t)
			tp := newPartition(t, s, 1)[0]
			l, err := s.AcquireLease(t.Context(), tp, "a", now, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.CommitObject(t.Context(), commit("obj", "a", 0, l.Epoch, tp)); err != nil {
				t.Fatal(err)
			}
			if err := s.ForgetObject(t.Context(), "obj"); err == nil {
				t.Error("ForgetObject of a referenced object succeeded")
			}
			if ok, err := s.IsObjectCommitted(t.Context(), "obj"); err != nil || !ok {
				t.Errorf("IsObjectCommitted = %v, %v; want true", ok, err)
			}
		})
	}
}

func TestAcquireLeases(t *testing.T) {
	t.Parallel()
	for name, open := range metadatatest.Backends(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := open(t).(*sqlstore.Store)
			ctx := t.Context()
			tps := newPartition(t, s, 5)
			if _, err := s.AcquireLease(ctx, tps[2], "b", now, time.Minute); err != nil {
				t.Fatal(err)
			}
			if _, err := s.AcquireLease(ctx, tps[3], "a", now, time.Minute); err != nil {
				t.Fatal(err)
			}
			missing := metadata.TopicPartition{TopicID: tps[0].TopicID, Partition: 9}
			leases, err := s.AcquireLeases(ctx, append(tps, missing), "a", now, time.Minute)
			if err != nil {
				t.Fatalf("AcquireLeases: %v", err)
			}
			var got []string
			for _, l := range leases {
				got = append(got, fmt.Sprintf("%d@%d", l.Partition, l.Epoch))
				if !l.ExpiresAt.Equal(now.Add(time.Minute)) {
					t.Errorf("lease %+v expires at %v", l, l.ExpiresAt)
				}
			}
			if want := "[0@1 1@1 3@2 4@1]"; fmt.Sprint(got) != want {
				t.Errorf("AcquireLeases took %v, want %s", got, want)
			}
			if p, err := s.GetPartition(ctx, tps[2]); err != nil || p.Leader != "b" || p.LeaderEpoch != 1 {
				t.Errorf("partition held by b = %+v, %v", p, err)
			}
		})
	}
}

// TestPostgresAgents runs two stores on one database, as two agents would:
// they migrate at the same time, race for leases and fence each other.
func TestPostgresAgents(t *testing.T) {
	t.Parallel()
	open := metadatatest.PostgresOpener(t)
	stores := make([]metadata.Store, 2)
	var wg sync.WaitGroup
	for i := range stores {
		wg.Go(func() { stores[i] = open() })
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	a, b := stores[0], stores[1]
	tps := newPartition(t, a, 4)
	ctx := t.Context()

	// Both race for every partition; each partition gets exactly one leader.
	leases := map[metadata.TopicPartition][]metadata.Lease{}
	var mu sync.Mutex
	for i, s := range stores {
		agent := fmt.Sprintf("agent-%d", i)
		for _, tp := range tps {
			wg.Go(func() {
				l, err := s.AcquireLease(ctx, tp, agent, now, time.Minute)
				if err != nil && !errors.Is(err, metadata.ErrLeaseHeld) {
					t.Errorf("AcquireLease: %v", err)
				}
				if err == nil {
					mu.Lock()
					leases[tp] = append(leases[tp], l)
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	for _, tp := range tps {
		if len(leases[tp]) != 1 {
			t.Fatalf("partition %s has %d leaders", tp, len(leases[tp]))
		}
	}

	// Agent b takes over partition 0 after expiry while a still believes it
	// leads: a's commits covering partition 0 are fenced, b's go through.
	tp := tps[0]
	p, err := a.GetPartition(ctx, tp)
	if err != nil {
		t.Fatal(err)
	}
	lb, err := b.AcquireLease(ctx, tp, "agent-b", now.Add(2*time.Minute), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	err = a.CommitObject(ctx, commit("from-a", p.Leader, 0, p.LeaderEpoch, tp))
	var fe *metadata.FencedError
	if !errors.As(err, &fe) {
		t.Errorf("deposed leader's commit: %v, want FencedError", err)
	}
	if err := b.CommitObject(ctx, commit("from-b", "agent-b", 0, lb.Epoch, tp)); err != nil {
		t.Errorf("new leader's commit: %v", err)
	}
}

func newPartition(t testing.TB, s metadata.Store, n int32) []metadata.TopicPartition {
	t.Helper()
	topic, err := s.CreateTopic(t.Context(), metadata.Topic{Name: "t", Partitions: n})
	if err != nil {
		t.Fatal(err)
	}
	tps := make([]metadata.TopicPartition, n)
	for i := range tps {
		tps[i] = metadata.TopicPartition{TopicID: topic.ID, Partition: int32(i)}
	}
	return tps
}

// commit writes 10 records at hw to every partition in tps, with one
// producer's state each: the shape of one flushed object.
func commit(key, agent string, hw int64, epoch int32, tps ...metadata.TopicPartition) metadata.ObjectCommit {
	c := metadata.ObjectCommit{ObjectKey: key, Size: int64(len(tps)) * 1000, AgentID: agent, CreatedAt: now}
	for i, tp := range tps {
		c.Partitions = append(c.Partitions, metadata.PartitionCommit{
			TopicPartition:        tp,
			Epoch:                 epoch,
			ExpectedHighWatermark: hw,
			NewHighWatermark:      hw + 10,
			Entries: []metadata.IndexEntry{{
				BaseOffset: hw, LastOffset: hw + 9, ObjectKey: key,
				Pos: int64(i) * 1000, Len: 1000, MaxTimestamp: now.UnixMilli(), Records: 10,
			}},
			Producers: []metadata.ProducerState{{ProducerID: int64(i), Epoch: 0, Batches: []metadata.ProducerBatch{
				{FirstSeq: int32(hw), LastSeq: int32(hw + 9), BaseOffset: hw, LastOffset: hw + 9, Timestamp: now.UnixMilli()},
			}}},
		})
	}
	return c
}

// BenchmarkCommitObject measures the hot path: one object committed over
// 1, 100 and 1000 partitions, each with one index entry and one producer.
func BenchmarkCommitObject(b *testing.B) {
	for name, open := range map[string]func(testing.TB) metadata.Store{
		"sqlite":   metadatatest.OpenSQLite,
		"postgres": metadatatest.OpenPostgres,
	} {
		for _, n := range []int32{1, 100, 1000} {
			b.Run(fmt.Sprintf("%s/partitions=%d", name, n), func(b *testing.B) {
				s := open(b).(*sqlstore.Store)
				tps := newPartition(b, s, n)
				if _, err := s.AcquireLeases(b.Context(), tps, "a", now, time.Hour); err != nil {
					b.Fatal(err)
				}
				const epoch = 1
				var hw int64
				for b.Loop() {
					if err := s.CommitObject(b.Context(), commit(fmt.Sprintf("obj-%d", hw), "a", hw, epoch, tps...)); err != nil {
						b.Fatal(err)
					}
					hw += 10
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/partition")
			})
		}
	}
}
