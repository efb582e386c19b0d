package sqlstore_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/metadata/metadatatest"
	"github.com/streamhouse/streamhouse/internal/metadata/sqlstore"
	"github.com/streamhouse/streamhouse/internal/testutil"
)

// noticeLog records what a CommitWatch receives.
type noticeLog struct {
	mu        sync.Mutex
	hw        map[metadata.TopicPartition]int64
	listening bool
	downs     int
}

func (n *noticeLog) watch() metadata.CommitWatch {
	return metadata.CommitWatch{
		Advanced: func(tp metadata.TopicPartition, hw int64) {
			n.mu.Lock()
			defer n.mu.Unlock()
			n.hw[tp] = max(n.hw[tp], hw)
		},
		Listening: func(ok bool) {
			n.mu.Lock()
			defer n.mu.Unlock()
			n.listening = ok
			if !ok {
				n.downs++
			}
		},
	}
}

func (n *noticeLog) get(tp metadata.TopicPartition) int64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.hw[tp]
}

func (n *noticeLog) state() (listening bool, downs int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.listening, n.downs
}

// Every commit is announced to the watchers of every store on the database
// (on PostgreSQL through NOTIFY, in notices split under PostgreSQL's
// payload limit); a fenced commit announces nothing; after the listening
// connection is lost, the watch says so, reconnects and hears commits again.
func TestCommitNotices(t *testing.T) {
	t.Parallel()
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		s, err := sqlstore.OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "meta.db"), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		testCommitNotices(t, s, s, "")
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		url := metadatatest.PostgresDatabase(t)
		open := func() *sqlstore.Store {
			s, err := sqlstore.OpenPostgres(t.Context(), url, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close() })
			return s
		}
		testCommitNotices(t, open(), open(), url)
	})
}

// startWatch runs watcher.WatchCommits until the test ends, checking it
// then stops only because it was cancelled, and waits until it listens.
func startWatch(t *testing.T, watcher *sqlstore.Store) *noticeLog {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	n := &noticeLog{hw: make(map[metadata.TopicPartition]int64)}
	done := make(chan error, 1)
	go func() { done <- watcher.WatchCommits(ctx, n.watch()) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("WatchCommits returned %v", err)
		}
	})
	testutil.WaitFor(t, "the watch to listen", func() bool { ok, _ := n.state(); return ok })
	return n
}

func testCommitNotices(t *testing.T, committer, watcher *sqlstore.Store, pgURL string) {
	ctx := t.Context()
	n := startWatch(t, watcher)

	tps := newPartition(t, committer, 1000)
	if _, err := committer.AcquireLeases(ctx, tps, "a", now, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := committer.CommitObject(ctx, commit("o1", "a", 0, 1, tps...)); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "notices of 1000 partitions", func() bool {
		for _, tp := range tps {
			if n.get(tp) != 10 {
				return false
			}
		}
		return true
	})

	// Fenced (wrong epoch): nothing committed, nothing announced. Notices
	// arrive in commit order, so once the next commit's is in, a notice of
	// the fenced one would have been seen.
	var fenced *metadata.FencedError
	if err := committer.CommitObject(ctx, commit("o2", "a", 10, 7, tps[5])); !errors.As(err, &fenced) {
		t.Fatalf("commit at a wrong epoch: %v", err)
	}
	if err := committer.CommitObject(ctx, commit("o3", "a", 10, 1, tps[0])); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "the next commit's notice", func() bool { return n.get(tps[0]) == 20 })
	if hw := n.get(tps[5]); hw != 10 {
		t.Fatalf("a fenced commit was announced: partition 5 at %d", hw)
	}
	if pgURL == "" {
		return
	}

	// Cut the listening connection: the watch reports it, reconnects, and
	// hears the next commit.
	conn, err := pgx.Connect(ctx, pgURL)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	if _, err := conn.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = current_database() AND query = 'LISTEN streamhouse_commits'`); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "the watch to reconnect", func() bool { ok, downs := n.state(); return ok && downs == 1 })
	if err := committer.CommitObject(ctx, commit("o4", "a", 20, 1, tps[0])); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "a notice after reconnecting", func() bool { return n.get(tps[0]) == 30 })
}

// A quiet listening connection is pinged (a half-open one would otherwise
// wait forever while watchers poll slowly, believing notices flow); pings
// that succeed keep it, and notices still arrive on it.
func TestQuietListenerIsPinged(t *testing.T) {
	t.Parallel()
	url := metadatatest.PostgresDatabase(t)
	open := func() *sqlstore.Store {
		s, err := sqlstore.OpenPostgres(t.Context(), url, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	committer, watcher := open(), open()
	pings := sqlstore.SetListenPing(watcher, 20*time.Millisecond)
	ctx := t.Context()
	n := startWatch(t, watcher)
	testutil.WaitFor(t, "three pings of the quiet connection", func() bool { return pings() >= 3 })
	tps := newPartition(t, committer, 1)
	if _, err := committer.AcquireLeases(ctx, tps, "a", now, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := committer.CommitObject(ctx, commit("o1", "a", 0, 1, tps...)); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "the notice after the pings", func() bool { return n.get(tps[0]) == 10 })
	if ok, downs := n.state(); !ok || downs != 0 {
		t.Fatalf("listening %v after %d losses: pings replaced a healthy connection", ok, downs)
	}
}
