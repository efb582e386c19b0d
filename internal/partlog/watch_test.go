package partlog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/metadata/metadatatest"
	"github.com/streamhouse/streamhouse/internal/metadata/sqlstore"
	"github.com/streamhouse/streamhouse/internal/testutil"
)

// countingStore counts the partition state reads (GetPartition) made
// through it: what a long poll on a partition led elsewhere costs the
// metadata store.
type countingStore struct {
	metadata.Store
	failing        atomic.Bool // GetPartition fails
	partitionReads atomic.Int64
	mu             sync.Mutex
	byPartition    map[metadata.TopicPartition]int64
}

// GetPartition counts a read once it has its answer.
func (s *countingStore) GetPartition(ctx context.Context, tp metadata.TopicPartition) (metadata.PartitionState, error) {
	st, err := s.Store.GetPartition(ctx, tp)
	if s.failing.Load() {
		err = errors.New("injected: store unavailable")
	}
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

// countingNotifier is a countingStore that passes on the store's commit
// notices (a countingStore alone hides them, so its watchers poll).
type countingNotifier struct {
	*countingStore
	feed metadata.CommitNotifier
}

func (s countingNotifier) WatchCommits(ctx context.Context, w metadata.CommitWatch) error {
	return s.feed.WatchCommits(ctx, w)
}

// twoAgents is a leader and a reader agent on one bucket and metadata
// database: on PostgreSQL each through its own store (connections), so
// that commit notices travel by NOTIFY; on SQLite, which one process
// opens, through one.
type twoAgents struct {
	e      *env
	leader *Log
	topic  metadata.Topic
}

// onTwoAgents runs fn on each backend with the reader's store counting
// partition reads; with notify false the counting store hides the commit
// notices.
func onTwoAgents(t *testing.T, notify bool, fn func(*testing.T, *twoAgents, metadata.Store, *countingStore)) {
	t.Parallel()
	for name, opener := range map[string]func(testing.TB) func() metadata.Store{
		"sqlite":   metadatatest.SQLiteOpener,
		"postgres": metadatatest.PostgresOpener,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			open := opener(t)
			leaderStore := open()
			readerStore := leaderStore
			if name == "postgres" {
				readerStore = open()
			}
			e := newEnv(t, func(testing.TB) metadata.Store { return leaderStore }, nil)
			a := &twoAgents{e: e}
			a.leader = e.open(e.config("leader"))
			a.topic = e.topic("t", 2, nil)
			lead(t, a.leader, a.topic)
			counted := &countingStore{Store: readerStore}
			var store metadata.Store = counted
			if notify {
				store = countingNotifier{counted, readerStore.(metadata.CommitNotifier)}
			}
			fn(t, a, store, counted)
		})
	}
}

// Many idle long polls on a partition another agent leads cost the store a
// number of reads that grows with time and partitions, not with waiters:
// one read per interval by the partition's watcher, fewer with commit
// notices.
func TestIdleWaitersCostOneWatcher(t *testing.T) {
	t.Run("poll", func(t *testing.T) { onTwoAgents(t, false, testIdleWaitersCostOneWatcher) })
	t.Run("notify", func(t *testing.T) { onTwoAgents(t, true, testIdleWaitersCostOneWatcher) })
}

func testIdleWaitersCostOneWatcher(t *testing.T, a *twoAgents, store metadata.Store, counted *countingStore) {
	const (
		waiters  = 200
		interval = 100 * time.Millisecond
		window   = 2 * time.Second
	)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tp := tpOf(a.topic, 0)
	if _, err := a.leader.Append(ctx, tp, mkBatch(t, "x", 2), AckDurable); err != nil {
		t.Fatal(err)
	}
	cfg := a.e.config("reader")
	cfg.Store = store
	cfg.ReadPollInterval = interval
	reader := a.e.open(cfg)

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
	t.Logf("%s: %d idle waiters: %d partition reads in %v (%.0f/s)", t.Name(), waiters, reads, elapsed.Round(time.Millisecond), float64(reads)/elapsed.Seconds())
	if limit := int64(3*elapsed/interval) + 10; reads > limit {
		t.Fatalf("%d idle waiters made %d partition reads in %v, want at most %d (one watcher reading every %v)", waiters, reads, elapsed, limit, interval)
	}
}

// A long poll on a partition another agent leads wakes when that agent
// commits, with the data; waiters on other partitions do not wake, and the
// watchers stop with their waiters. With commit notices the watchers read
// the store only once a minute here: the wake-up comes from the notice
// (PostgreSQL NOTIFY from the other agent's store).
func TestWaiterWakesOnOtherAgentsCommit(t *testing.T) {
	t.Run("poll", func(t *testing.T) { onTwoAgents(t, false, testWaiterWakesOnOtherAgentsCommit) })
	t.Run("notify", func(t *testing.T) { onTwoAgents(t, true, testWaiterWakesOnOtherAgentsCommit) })
}

func testWaiterWakesOnOtherAgentsCommit(t *testing.T, a *twoAgents, store metadata.Store, _ *countingStore) {
	cfg := a.e.config("reader")
	cfg.Store = store
	_, notify := store.(metadata.CommitNotifier)
	if notify {
		cfg.ReadPollInterval = time.Minute
	}
	reader := a.e.open(cfg)
	topic := a.topic
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	type result struct {
		res ReadResult
		err error
	}
	poll := func(p int32, offset int64, n int) []chan result {
		out := make([]chan result, n)
		for i := range out {
			ch := make(chan result, 1)
			out[i] = ch
			go func() {
				res, err := reader.Read(ctx, tpOf(topic, p), offset, 1<<20, time.Minute)
				ch <- result{res, err}
			}()
		}
		return out
	}
	for round := range 3 {
		woken, idle := poll(0, int64(3*round), 5), poll(1, 0, 3)
		testutil.WaitFor(t, "both partitions watched", func() bool { return reader.watch.count() == 2 })
		if round == 0 {
			testutil.WaitFor(t, "commit notices", func() bool { return reader.watch.listening.Load() == notify })
		}
		if _, err := a.leader.Append(ctx, tpOf(topic, 0), mkBatch(t, "x", 3), AckDurable); err != nil {
			t.Fatal(err)
		}
		for i, ch := range woken {
			select {
			case r := <-ch:
				if r.err != nil || r.res.NextOffset != int64(3*(round+1)) || countRecords(t, r.res.Pieces) != 3 {
					t.Fatalf("round %d: waiter %d: %+v %v", round, i, r.res, r.err)
				}
			case <-time.After(20 * time.Second):
				t.Fatalf("round %d: waiter %d did not wake on the other agent's commit", round, i)
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
	}
	cancel()
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

// When the LISTEN connections are cut just before a commit, whose notice may
// so be lost, the waiters still wake: the watchers poll at the short
// interval while notices are down and read the store once they flow again.
func TestWaitersWakeWhenNoticesAreLost(t *testing.T) {
	t.Parallel()
	url := metadatatest.PostgresDatabase(t)
	open := func() metadata.Store {
		s, err := sqlstore.OpenPostgres(context.Background(), url, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	leaderStore, readerStore := open(), open()
	e := newEnv(t, func(testing.TB) metadata.Store { return leaderStore }, nil)
	leader := e.open(e.config("leader"))
	topic := e.topic("t", 1, nil)
	lead(t, leader, topic)
	tp := tpOf(topic, 0)
	cfg := e.config("reader")
	cfg.Store = readerStore
	reader := e.open(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	testutil.WaitFor(t, "commit notices", reader.watch.listening.Load)

	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	for round := range 2 {
		done := make(chan ReadResult, 1)
		go func() {
			res, err := reader.Read(ctx, tp, int64(round), 1<<20, time.Minute)
			if err != nil {
				t.Error(err)
			}
			done <- res
		}()
		testutil.WaitFor(t, "the waiter", func() bool { return reader.watch.count() == 1 })
		// Every agent's listening connection on this database.
		if _, err := conn.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
			WHERE datname = current_database() AND query = 'LISTEN streamhouse_commits'`); err != nil {
			t.Fatal(err)
		}
		if _, err := leader.Append(ctx, tp, mkBatch(t, "x", 1), AckDurable); err != nil {
			t.Fatal(err)
		}
		select {
		case res := <-done:
			if res.NextOffset != int64(round+1) {
				t.Fatalf("round %d: woke with %+v", round, res)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("round %d: the waiter did not wake after its notice was lost", round)
		}
	}
}

// While the store fails (PostgreSQL restarting), a watcher backs off instead
// of reading every interval, its waiters keep waiting, and once the store
// answers again they wake on the data committed meanwhile.
func TestWatcherBacksOffWhileStoreFails(t *testing.T) {
	onBackends(t, testWatcherBacksOffWhileStoreFails)
}

func testWatcherBacksOffWhileStoreFails(t *testing.T, open storeOpener) {
	t.Parallel()
	const interval = 20 * time.Millisecond
	e := newEnv(t, open, nil)
	leader := e.open(e.config("leader"))
	topic := e.topic("t", 1, nil)
	lead(t, leader, topic)
	tp := tpOf(topic, 0)
	counted := &countingStore{Store: e.store}
	cfg := e.config("reader")
	cfg.Store = counted
	cfg.ReadPollInterval = interval
	reader := e.open(cfg)
	ctx := context.Background()

	done := make(chan error, 1)
	go func() {
		res, err := reader.Read(ctx, tp, 0, 1<<20, time.Minute)
		if err == nil && res.NextOffset != 1 {
			err = fmt.Errorf("woke with %+v", res)
		}
		done <- err
	}()
	testutil.WaitFor(t, "the waiter", func() bool { return reader.watch.count() == 1 })
	counted.failing.Store(true)
	before := counted.partitionReads.Load()
	start := time.Now()
	testutil.WaitFor(t, "the failing window", func() bool { return time.Since(start) >= 2*time.Second })
	reads := counted.partitionReads.Load() - before
	if limit := int64(12); reads > limit {
		t.Fatalf("%d reads of a failing store in %v at a %v interval, want at most %d (backing off)", reads, time.Since(start), interval, limit)
	}
	if _, err := leader.Append(ctx, tp, mkBatch(t, "x", 1), AckDurable); err != nil {
		t.Fatal(err)
	}
	counted.failing.Store(false)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the waiter did not wake once the store answered again")
	}
}

// A watcher that stops (its last waiter left) remembers the newest high
// watermark it saw: a long poll whose view predates that commit and that
// joins after the watcher stopped wakes at once, instead of waiting for
// the next store read (a minute here) or the next commit.
func TestWatcherRemembersHighWatermarkWhenItStops(t *testing.T) {
	t.Parallel()
	store := metadatatest.OpenSQLite(t)
	ws := newWatchers(store, time.Minute, 10, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	defer ws.close()
	topic, err := store.CreateTopic(context.Background(), metadata.Topic{Name: "t", Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	tp := tpOf(topic, 0)
	ctx := context.Background()
	stale := partView{hw: 0}

	first := make(chan bool, 1)
	go func() {
		_, woken, _ := ws.wait(ctx, tp, stale, false, nil)
		first <- woken
	}()
	testutil.WaitFor(t, "the first waiter to join", func() bool { return ws.count() == 1 })
	ws.advanced(tp, 3) // a commit notice
	if !<-first {
		t.Fatal("the first waiter did not wake")
	}
	testutil.WaitFor(t, "the watcher to stop", func() bool { return ws.count() == 0 })

	done := make(chan time.Time)
	timer := time.AfterFunc(10*time.Second, func() { close(done) })
	defer timer.Stop()
	v, woken, err := ws.wait(ctx, tp, stale, false, done)
	if err != nil || !woken || v.hw != 3 {
		t.Fatalf("a waiter with a view older than the stopped watcher's: woken %v, hw %d, %v", woken, v.hw, err)
	}
}
