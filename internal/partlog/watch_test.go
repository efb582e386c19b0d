package partlog

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/testutil"
)

// countingStore counts the partition state reads (GetPartition) made
// through it: what a long poll on a partition led elsewhere costs the
// metadata store.
type countingStore struct {
	metadata.Store
	partitionReads atomic.Int64
	mu             sync.Mutex
	byPartition    map[metadata.TopicPartition]int64
}

// GetPartition counts a read once it has its answer.
func (s *countingStore) GetPartition(ctx context.Context, tp metadata.TopicPartition) (metadata.PartitionState, error) {
	st, err := s.Store.GetPartition(ctx, tp)
	s.partitionReads.Add(1)
	s.mu.Lock()
	if s.byPartition == nil {
		s.byPartition = make(map[metadata.TopicPartition]int64)
	}
	s.byPartition[tp]++
	s.mu.Unlock()
	return st, err
}

func (s *countingStore) reads(tp metadata.TopicPartition) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byPartition[tp]
}

// Many idle long polls on a partition another agent leads cost the store a
// number of reads that grows with time and partitions, not with waiters.
func TestIdleWaitersCostOneWatcher(t *testing.T) { onBackends(t, testIdleWaitersCostOneWatcher) }

func testIdleWaitersCostOneWatcher(t *testing.T, open storeOpener) {
	t.Parallel()
	const (
		waiters  = 200
		interval = 100 * time.Millisecond
		window   = 2 * time.Second
	)
	e := newEnv(t, open, nil)
	leader := e.open(e.config("leader"))
	topic := e.topic("t", 1, nil)
	lead(t, leader, topic)
	tp := tpOf(topic, 0)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := leader.Append(ctx, tp, mkBatch(t, "x", 2), AckDurable); err != nil {
		t.Fatal(err)
	}

	counted := &countingStore{Store: e.store}
	cfg := e.config("reader")
	cfg.Store = counted
	cfg.ReadPollInterval = interval
	reader := e.open(cfg)

	var wg sync.WaitGroup
	for range waiters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := reader.Read(ctx, tp, 2, 1<<20, time.Minute)
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("long poll: %v", err)
			}
			if err == nil && res.Size != 0 {
				t.Errorf("idle long poll returned %d bytes", res.Size)
			}
		}()
	}
	// Each Read looks at the partition once before it waits.
	testutil.WaitFor(t, "every waiter's first read", func() bool { return counted.partitionReads.Load() >= waiters })
	before := counted.partitionReads.Load()
	start := time.Now()
	testutil.WaitFor(t, "the measuring window", func() bool { return time.Since(start) >= window })
	reads := counted.partitionReads.Load() - before
	elapsed := time.Since(start)
	if n := reader.watch.count(); n != 1 {
		t.Errorf("%d watchers for one partition", n)
	}
	cancel()
	wg.Wait()
	testutil.WaitFor(t, "the watcher to stop with its last waiter", func() bool { return reader.watch.count() == 0 })
	t.Logf("%d idle waiters: %d partition reads in %v (%.0f/s)", waiters, reads, elapsed.Round(time.Millisecond), float64(reads)/elapsed.Seconds())
	if limit := int64(3*elapsed/interval) + 10; reads > limit {
		t.Fatalf("%d idle waiters made %d partition reads in %v, want at most %d (one watcher polling every %v)", waiters, reads, elapsed, limit, interval)
	}
}

// A long poll on a partition another agent leads wakes when that agent
// commits, with the data; waiters on other partitions do not wake, and the
// watchers stop with their waiters.
func TestWaiterWakesOnOtherAgentsCommit(t *testing.T) {
	onBackends(t, testWaiterWakesOnOtherAgentsCommit)
}

func testWaiterWakesOnOtherAgentsCommit(t *testing.T, open storeOpener) {
	t.Parallel()
	e := newEnv(t, open, nil)
	leader := e.open(e.config("leader"))
	topic := e.topic("t", 2, nil)
	lead(t, leader, topic)
	reader := e.open(e.config("reader"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	type result struct {
		res ReadResult
		err error
	}
	poll := func(p int32, n int) []chan result {
		out := make([]chan result, n)
		for i := range out {
			ch := make(chan result, 1)
			out[i] = ch
			go func() {
				res, err := reader.Read(ctx, tpOf(topic, p), 0, 1<<20, time.Minute)
				ch <- result{res, err}
			}()
		}
		return out
	}
	woken, idle := poll(0, 5), poll(1, 3)
	testutil.WaitFor(t, "both partitions watched", func() bool { return reader.watch.count() == 2 })
	if _, err := leader.Append(ctx, tpOf(topic, 0), mkBatch(t, "x", 3), AckDurable); err != nil {
		t.Fatal(err)
	}
	for i, ch := range woken {
		select {
		case r := <-ch:
			if r.err != nil || r.res.NextOffset != 3 || r.res.HighWatermark != 3 || countRecords(t, r.res.Pieces) != 3 {
				t.Fatalf("waiter %d: %+v %v", i, r.res, r.err)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("waiter %d did not wake on the other agent's commit", i)
		}
	}
	testutil.WaitFor(t, "the woken partition's watcher to stop", func() bool { return reader.watch.count() == 1 })
	for i, ch := range idle {
		select {
		case r := <-ch:
			t.Fatalf("waiter %d on the other partition woke: %+v %v", i, r.res, r.err)
		default:
		}
	}
	cancel()
	for _, ch := range idle {
		if r := <-ch; !errors.Is(r.err, context.Canceled) {
			t.Fatalf("cancelled waiter: %+v %v", r.res, r.err)
		}
	}
	testutil.WaitFor(t, "every watcher to stop", func() bool { return reader.watch.count() == 0 })
}

// Past MaxReadWatchers, a long poll on a further partition makes no store
// reads while it waits and looks once at the end of its max wait; Close
// ends the waits in progress.
func TestWatcherLimitAndClose(t *testing.T) { onBackends(t, testWatcherLimitAndClose) }

func testWatcherLimitAndClose(t *testing.T, open storeOpener) {
	t.Parallel()
	e := newEnv(t, open, nil)
	leader := e.open(e.config("leader"))
	topic := e.topic("t", 2, nil)
	lead(t, leader, topic)
	counted := &countingStore{Store: e.store}
	cfg := e.config("reader")
	cfg.Store = counted
	cfg.MaxReadWatchers = 1
	reader, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	first := make(chan error, 1)
	go func() {
		_, err := reader.Read(ctx, tpOf(topic, 0), 0, 1<<20, time.Minute)
		first <- err
	}()
	testutil.WaitFor(t, "the first partition watched", func() bool { return reader.watch.count() == 1 })
	tp1 := tpOf(topic, 1)
	if _, err := leader.Append(ctx, tp1, mkBatch(t, "x", 1), AckDurable); err != nil {
		t.Fatal(err)
	}
	// A long poll on the second partition: its first look finds nothing at
	// offset 1, it finds no free watcher and waits out its max wait without
	// reading the store, then looks once more and finds the record
	// committed meanwhile.
	type result struct {
		res ReadResult
		err error
	}
	second := make(chan result, 1)
	go func() {
		res, err := reader.Read(ctx, tp1, 1, 1<<20, 5*time.Second)
		second <- result{res, err}
	}()
	testutil.WaitFor(t, "the second long poll's first look", func() bool { return counted.reads(tp1) == 1 })
	if _, err := leader.Append(ctx, tp1, mkBatch(t, "y", 1), AckDurable); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-second:
		if r.err != nil || r.res.NextOffset != 2 || countRecords(t, r.res.Pieces) != 1 {
			t.Fatalf("long poll past the watcher limit: %+v %v", r.res, r.err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("long poll past the watcher limit did not return")
	}
	if n := counted.reads(tp1); n != 2 {
		t.Fatalf("%d partition reads by a long poll past the watcher limit, want 2 (before and after its wait)", n)
	}

	closeCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := reader.Close(closeCtx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-first:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("long poll at close: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Close left a long poll waiting")
	}
	if n := reader.watch.count(); n != 0 {
		t.Fatalf("%d watchers after close", n)
	}
}
