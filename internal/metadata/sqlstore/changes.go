package sqlstore

// Change notices: every agent learns that a setting it caches (client
// quotas) changed, so that it reloads at once.
//
// A write that changes such a setting NOTIFYs changeChannel, on
// PostgreSQL, inside its own transaction: PostgreSQL delivers the notice
// when the transaction commits and drops it when it rolls back, so a
// notice never announces what is not committed. (Unlike commit notices,
// these writes are rare administrative ones, so the serializing NOTIFY
// lock is no cost.) WatchChanges holds one listening connection, outside
// the pool (listenLoop, notify.go), and reconnects when it drops, telling
// the watcher that notices may have been lost so it reloads. Every backend also hands the changes
// made through this Store to its own watchers directly: on SQLite, where
// one process has the database, that is every change.

import (
	"context"
	"fmt"

	"github.com/streamhouse/streamhouse/internal/metadata"
)

// changeChannel is the PostgreSQL notification channel of change notices;
// a notice's payload is the metadata.Change.
const changeChannel = "streamhouse_changes"

var _ metadata.ChangeNotifier = (*Store)(nil)

// noticeInTx queues a change notice in a write transaction (PostgreSQL;
// nothing on SQLite, where changed reaches every watcher).
func (s *Store) noticeInTx(ctx context.Context, q querier, c metadata.Change) error {
	if _, ok := s.b.(*pgBackend); !ok {
		return nil
	}
	if _, err := q.exec(ctx, `SELECT pg_notify($1, $2)`, changeChannel, string(c)); err != nil {
		return fmt.Errorf("notify %s change: %w", c, err)
	}
	return nil
}

// changed tells this Store's watchers of a committed change.
func (s *Store) changed(c metadata.Change) {
	s.changes.each(func(w metadata.ChangeWatch) { w.Changed(c) })
}

// WatchChanges hands w the changes of every agent as they are committed,
// until ctx ends; see metadata.ChangeNotifier.
func (s *Store) WatchChanges(ctx context.Context, w metadata.ChangeWatch) error {
	remove := s.changes.add(w)
	defer remove()
	b, ok := s.b.(*pgBackend)
	if !ok {
		w.Listening(true)
		<-ctx.Done()
		return ctx.Err()
	}
	return b.listenLoop(ctx, changeChannel, w.Listening, func(payload string) { w.Changed(metadata.Change(payload)) })
}
