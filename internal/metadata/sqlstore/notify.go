package sqlstore

// Commit notices: every agent learns which partitions a commit advanced as
// it lands, so that long polls on partitions led elsewhere wake without
// polling the store (partlog/watch.go).
//
// On PostgreSQL, once a commit has succeeded, the Store NOTIFYs
// commitChannel with the partitions and their new high watermarks. It does
// so from one goroutine, off the commit's path (a NOTIFY takes a lock that
// serializes every notifying transaction of the server, so it stays out of
// the commit transaction), coalescing the commits made meanwhile into one
// notifying transaction, which does not wait for its WAL flush. A notice
// never announces what is not committed; it can be lost (a failed send, an
// agent killed right after its commit). WatchCommits holds one listening
// connection, outside the pool, and reconnects when it drops; notices sent
// while it was down are lost, so it tells the caller to re-read. Callers
// poll slowly as well, for lost notices. Every backend also hands the
// commits made through this Store to its own watchers directly: on SQLite,
// where one process has the database, that is every commit.

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/streamhouse/streamhouse/internal/metadata"
)

// commitChannel is the PostgreSQL notification channel of commit notices.
// A notice's payload is a comma-separated list of
// "<topic id hex>/<partition>/<new high watermark>".
const commitChannel = "streamhouse_commits"

// maxNoticeBytes bounds one notice's payload (PostgreSQL refuses 8000 bytes
// or more); a commit of many partitions sends several.
const maxNoticeBytes = 7000

var _ metadata.CommitNotifier = (*Store)(nil)

// watchSet holds the watches of one kind registered with one Store (the
// commit, ACL and change watches), for the changes made through it.
type watchSet[W any] struct {
	mu      sync.Mutex
	next    int
	watches map[int]W
}

func (l *watchSet[W]) add(w W) (remove func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.watches == nil {
		l.watches = make(map[int]W)
	}
	id := l.next
	l.next++
	l.watches[id] = w
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		delete(l.watches, id)
	}
}

// each calls f with every watch, under the set's lock (a watch added or
// removed meanwhile waits).
func (l *watchSet[W]) each(f func(W)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, w := range l.watches {
		f(w)
	}
}

// publishCommit tells the commit watches of c's partitions' new high
// watermarks.
func publishCommit(l *watchSet[metadata.CommitWatch], c *metadata.ObjectCommit) {
	l.each(func(w metadata.CommitWatch) {
		for _, p := range c.Partitions {
			w.Advanced(p.TopicPartition, p.NewHighWatermark)
		}
	})
}

// WatchCommits hands w the commits of every agent as they land, until ctx
// ends; see metadata.CommitNotifier. On SQLite every commit reaches w; on
// PostgreSQL a notice can be lost while the listening connection is down,
// which w.Listening reports.
func (s *Store) WatchCommits(ctx context.Context, w metadata.CommitWatch) error {
	remove := s.local.add(w)
	defer remove()
	b, ok := s.b.(*pgBackend)
	if !ok {
		w.Listening(true)
		<-ctx.Done()
		return ctx.Err()
	}
	return b.listenLoop(ctx, commitChannel, w.Listening, func(payload string) {
		if err := parseNotice(payload, w.Advanced); err != nil {
			// A notice this version cannot read: treat it as lost.
			b.logger.WarnContext(ctx, "commit notices: unreadable notice", "err", err)
			w.Listening(true)
		}
	})
}

// listenLoop listens on channel, handing each notice's payload to handle,
// until ctx ends, reconnecting (with backoff) when the connection drops;
// listening reports false while notices may be lost and true once they
// flow again.
func (b *pgBackend) listenLoop(ctx context.Context, channel string, listening func(bool), handle func(payload string)) error {
	backoff := 100 * time.Millisecond
	for {
		err := b.listen(ctx, channel, listening, handle)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		listening(false)
		b.logger.WarnContext(ctx, "notices: listening connection lost", "channel", channel, "err", err, "retry_in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// listenPing is how long a listening connection may be quiet before it is
// pinged; listenPingTimeout bounds the ping.
const (
	listenPing        = 15 * time.Second
	listenPingTimeout = 5 * time.Second
)

// listen opens a connection, LISTENs on channel and hands notices to
// handle until the connection fails or ctx ends.
func (b *pgBackend) listen(ctx context.Context, channel string, listening func(bool), handle func(payload string)) error {
	conn, err := pgx.ConnectConfig(ctx, b.pool.Config().ConnConfig.Copy())
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+channel); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	listening(true)
	for {
		// A connection that went half-open (the server or a middlebox gone
		// without a reset) would wait forever while watchers believe
		// notices flow and poll slowly: after a quiet listenPing the
		// connection is pinged, and one that does not answer is replaced.
		quiet := listenPing
		if b.listenPing > 0 {
			quiet = b.listenPing
		}
		wctx, cancel := context.WithTimeout(ctx, quiet)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			pctx, cancel := context.WithTimeout(ctx, listenPingTimeout)
			err = conn.Ping(pctx)
			cancel()
			b.pings.Add(1)
			if err != nil {
				return fmt.Errorf("ping the listening connection: %w", err)
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("wait for notification: %w", err)
		}
		if n.Channel == channel {
			handle(n.Payload)
		}
	}
}

// announce hands a successful commit to the Store's watches and, on
// PostgreSQL, to the announcer.
func (s *Store) announce(c *metadata.ObjectCommit) {
	publishCommit(&s.local, c)
	if b, ok := s.b.(*pgBackend); ok && b.announcer != nil {
		b.announcer.add(c)
	}
}

// maxPendingNotices bounds the partitions awaiting a notice; past it,
// notices are dropped (listeners poll for what they miss).
const maxPendingNotices = 1 << 16

// pgAnnouncer NOTIFYs the commits made through one Store.
type pgAnnouncer struct {
	pool    *pgxpool.Pool
	logger  *slog.Logger
	mu      sync.Mutex
	pending map[metadata.TopicPartition]int64 // new high watermarks to announce
	kick    chan struct{}
	cancel  context.CancelFunc
	done    chan struct{}
}

func newPGAnnouncer(pool *pgxpool.Pool, logger *slog.Logger) *pgAnnouncer {
	ctx, cancel := context.WithCancel(context.Background())
	a := &pgAnnouncer{
		pool: pool, logger: logger, pending: make(map[metadata.TopicPartition]int64),
		kick: make(chan struct{}, 1), cancel: cancel, done: make(chan struct{}),
	}
	go a.run(ctx)
	return a
}

func (a *pgAnnouncer) add(c *metadata.ObjectCommit) {
	a.mu.Lock()
	for _, p := range c.Partitions {
		if hw, ok := a.pending[p.TopicPartition]; ok || len(a.pending) < maxPendingNotices {
			a.pending[p.TopicPartition] = max(hw, p.NewHighWatermark)
		}
	}
	a.mu.Unlock()
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

func (a *pgAnnouncer) run(ctx context.Context) {
	defer close(a.done)
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.kick:
		}
		a.mu.Lock()
		hws := a.pending
		a.pending = make(map[metadata.TopicPartition]int64, len(hws))
		a.mu.Unlock()
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := a.send(sctx, hws)
		cancel()
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			a.logger.WarnContext(ctx, "commit notices: send failed; listeners fall back to polling", "err", err)
			failing = true
		case err == nil:
			failing = false
		}
	}
}

// send NOTIFYs hws in one transaction that does not wait for its WAL flush
// (a notice is worthless after a crash anyway).
func (a *pgAnnouncer) send(ctx context.Context, hws map[metadata.TopicPartition]int64) error {
	b := &pgx.Batch{}
	b.Queue(`SELECT set_config('synchronous_commit', 'off', true)`)
	for _, payload := range notices(hws) {
		b.Queue(`SELECT pg_notify($1, $2)`, commitChannel, payload)
	}
	return a.pool.SendBatch(ctx, b).Close()
}

func (a *pgAnnouncer) close() {
	a.cancel()
	<-a.done
}

// notices returns the payloads announcing hws.
func notices(hws map[metadata.TopicPartition]int64) []string {
	var out []string
	var sb strings.Builder
	for tp, hw := range hws {
		item := hex.EncodeToString(tp.TopicID[:]) + "/" + strconv.Itoa(int(tp.Partition)) + "/" + strconv.FormatInt(hw, 10)
		if sb.Len() > 0 && sb.Len()+1+len(item) > maxNoticeBytes {
			out = append(out, sb.String())
			sb.Reset()
		}
		if sb.Len() > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(item)
	}
	if sb.Len() > 0 {
		out = append(out, sb.String())
	}
	return out
}

// parseNotice calls fn with each partition of a notice's payload.
func parseNotice(payload string, fn func(metadata.TopicPartition, int64)) error {
	for item := range strings.SplitSeq(payload, ",") {
		parts := strings.Split(item, "/")
		if len(parts) != 3 {
			return fmt.Errorf("notice item %q: want id/partition/hw", item)
		}
		var tp metadata.TopicPartition
		id, err := hex.DecodeString(parts[0])
		if err != nil || len(id) != len(tp.TopicID) {
			return fmt.Errorf("notice item %q: bad topic id", item)
		}
		copy(tp.TopicID[:], id)
		part, err1 := strconv.ParseInt(parts[1], 10, 32)
		hw, err2 := strconv.ParseInt(parts[2], 10, 64)
		if err := errors.Join(err1, err2); err != nil {
			return fmt.Errorf("notice item %q: %w", item, err)
		}
		tp.Partition = int32(part)
		fn(tp, hw)
	}
	return nil
}
