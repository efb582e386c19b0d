package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/streamhouse/streamhouse/internal/metadata"
)

// ReplaceIndex switches a run of a partition's index entries to entries in
// a new object, fenced by the partition's lease; see metadata.Store.
//
// The transaction locks the partition row first (the fence), so it is
// serialised with everything else that changes the partition's index rows:
// commits (whose fence UPDATE locks the row), SetLogStartOffset and
// DeleteTopic. The check of the old rows and their deletion then see the
// same rows, on PostgreSQL at READ COMMITTED too.
func (s *Store) ReplaceIndex(ctx context.Context, r metadata.IndexReplacement) error {
	if err := validateReplacement(&r); err != nil {
		return fmt.Errorf("replace index of %s with %s: %w: %w", r.TopicPartition, r.ObjectKey, metadata.ErrInvalidCommit, err)
	}
	if r.CreatedAt.IsZero() {
		r.CreatedAt = time.Now()
	}
	err := s.b.tx(ctx, func(q querier) error { return s.replaceIndex(ctx, q, &r) })
	if errors.Is(err, errAlreadyCommitted) {
		err = s.verifyReplaced(ctx, &r)
	}
	if err != nil {
		return fmt.Errorf("replace index of %s with %s: %w", r.TopicPartition, r.ObjectKey, err)
	}
	return nil
}

func (s *Store) replaceIndex(ctx context.Context, q querier, r *metadata.IndexReplacement) error {
	id := r.TopicID[:]
	found, err := queryOne(ctx, q, []any{new(int)},
		`SELECT 1 FROM partitions WHERE topic_id = $1 AND partition_id = $2 AND leader_agent = $3 AND leader_epoch = $4`+s.b.lockRows(),
		id, r.Partition, r.AgentID, r.Epoch)
	if err != nil {
		return fmt.Errorf("fence: %w", err)
	}
	if !found {
		return &metadata.FencedError{Partitions: []metadata.TopicPartition{r.TopicPartition}}
	}
	// The object first: a retry of a switch that landed finds its key
	// recorded (and its old entries gone).
	n, err := q.exec(ctx, objectInsert, r.ObjectKey, r.Size, r.AgentID, toMillis(r.CreatedAt))
	if err != nil {
		return fmt.Errorf("insert object: %w", err)
	}
	if n == 0 {
		return errAlreadyCommitted
	}
	first, last := r.Old[0].BaseOffset, r.Old[len(r.Old)-1].BaseOffset
	stored, err := queryAll(ctx, q, func(rs rows) (metadata.IndexEntry, error) {
		var e metadata.IndexEntry
		err := rs.Scan(&e.BaseOffset, &e.LastOffset, &e.ObjectKey, &e.Pos, &e.Len)
		return e, err
	}, `SELECT base_offset, last_offset, object_key, pos, len FROM segments
		WHERE topic_id = $1 AND partition_id = $2 AND base_offset >= $3 AND base_offset <= $4
		ORDER BY base_offset`, id, r.Partition, first, last)
	if err != nil {
		return fmt.Errorf("read old entries: %w", err)
	}
	if len(stored) != len(r.Old) {
		return fmt.Errorf("%d entries at offsets [%d, %d], want %d: %w", len(stored), first, last, len(r.Old), metadata.ErrIndexChanged)
	}
	for i, e := range stored {
		o := r.Old[i]
		if e.BaseOffset != o.BaseOffset || e.LastOffset != o.LastOffset || e.ObjectKey != o.ObjectKey || e.Pos != o.Pos || e.Len != o.Len {
			return fmt.Errorf("entry at offset %d is %s [%d,+%d] up to %d, want %s [%d,+%d] up to %d: %w",
				o.BaseOffset, e.ObjectKey, e.Pos, e.Len, e.LastOffset, o.ObjectKey, o.Pos, o.Len, o.LastOffset, metadata.ErrIndexChanged)
		}
	}
	n, err = q.exec(ctx, `DELETE FROM segments WHERE topic_id = $1 AND partition_id = $2 AND base_offset >= $3 AND base_offset <= $4`,
		id, r.Partition, first, last)
	if err != nil {
		return fmt.Errorf("delete old entries: %w", err)
	}
	if n != int64(len(r.Old)) {
		// The partition row lock makes this impossible; refuse rather
		// than trust it.
		return fmt.Errorf("deleted %d entries, want %d: %w", n, len(r.Old), metadata.ErrIndexChanged)
	}
	rowsNew := make([][]any, len(r.New))
	for i, e := range r.New {
		rowsNew[i] = []any{id, r.Partition, e.BaseOffset, e.LastOffset, r.ObjectKey, e.Pos, e.Len, e.MaxTimestamp, e.Records}
	}
	if err := insertRows(ctx, q, segmentInsert, "", rowsNew); err != nil {
		return fmt.Errorf("insert new entries: %w", err)
	}
	return nil
}

// verifyReplaced decides a ReplaceIndex whose object key was already
// recorded: a retry of a switch that landed (r.New is in the index under
// the key) succeeds; anything else is a conflict and stored nothing.
func (s *Store) verifyReplaced(ctx context.Context, r *metadata.IndexReplacement) error {
	got, err := s.ListIndex(ctx, r.TopicPartition, r.New[0].BaseOffset, len(r.New))
	if err != nil {
		return fmt.Errorf("verify earlier switch: %w", err)
	}
	if len(got) != len(r.New) {
		return fmt.Errorf("object key recorded without this switch's entries: %w", metadata.ErrObjectConflict)
	}
	for i, e := range r.New {
		g := got[i]
		if g.ObjectKey != r.ObjectKey || g.BaseOffset != e.BaseOffset || g.LastOffset != e.LastOffset || g.Pos != e.Pos || g.Len != e.Len {
			return fmt.Errorf("object key recorded without this switch's entries: %w", metadata.ErrObjectConflict)
		}
	}
	s.logger.DebugContext(ctx, "index switch already done", "object", r.ObjectKey)
	return nil
}

// validateReplacement rejects a replacement that would break the index:
// both runs dense, covering the same offsets, the new one in the new
// object only.
func validateReplacement(r *metadata.IndexReplacement) error {
	switch {
	case r.ObjectKey == "":
		return errors.New("empty object key")
	case r.AgentID == "":
		return errors.New("empty agent id")
	case len(r.Old) == 0 || len(r.New) == 0:
		return fmt.Errorf("%d old and %d new entries, want at least one of each", len(r.Old), len(r.New))
	}
	dense := func(what string, es []metadata.IndexEntry) error {
		next := es[0].BaseOffset
		for _, e := range es {
			switch {
			case e.BaseOffset != next:
				return fmt.Errorf("%s entry at offset %d, want %d", what, e.BaseOffset, next)
			case e.LastOffset < e.BaseOffset:
				return fmt.Errorf("%s entry last offset %d below base offset %d", what, e.LastOffset, e.BaseOffset)
			case e.Pos < 0 || e.Len < 0:
				return fmt.Errorf("%s entry at offset %d has byte range %d+%d", what, e.BaseOffset, e.Pos, e.Len)
			}
			next = e.LastOffset + 1
		}
		return nil
	}
	if err := dense("old", r.Old); err != nil {
		return err
	}
	if err := dense("new", r.New); err != nil {
		return err
	}
	if r.Old[0].BaseOffset != r.New[0].BaseOffset || r.Old[len(r.Old)-1].LastOffset != r.New[len(r.New)-1].LastOffset {
		return fmt.Errorf("new entries cover [%d, %d], old ones [%d, %d]", r.New[0].BaseOffset, r.New[len(r.New)-1].LastOffset,
			r.Old[0].BaseOffset, r.Old[len(r.Old)-1].LastOffset)
	}
	for _, e := range r.New {
		if e.ObjectKey != "" && e.ObjectKey != r.ObjectKey {
			return fmt.Errorf("new entry at offset %d in object %s, want %s", e.BaseOffset, e.ObjectKey, r.ObjectKey)
		}
	}
	for _, e := range r.Old {
		if e.ObjectKey == r.ObjectKey {
			return fmt.Errorf("old entry at offset %d already in the new object %s", e.BaseOffset, r.ObjectKey)
		}
	}
	return nil
}
