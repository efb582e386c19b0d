package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/streamhouse/streamhouse/internal/metadata"
)

// IsObjectCommitted reports whether key was committed.
func (s *Store) IsObjectCommitted(ctx context.Context, key string) (bool, error) {
	var one int
	found, err := queryOne(ctx, s.b.reader(), []any{&one}, `SELECT 1 FROM objects WHERE object_key = $1`, key)
	if err != nil {
		return false, fmt.Errorf("is object %s committed: %w", key, err)
	}
	return found, nil
}

// committedBatch is how many keys one CommittedObjects query checks.
const committedBatch = 500

// CommittedObjects returns which of keys are committed objects.
func (s *Store) CommittedObjects(ctx context.Context, keys []string) (map[string]bool, error) {
	out := make(map[string]bool)
	q := s.b.reader()
	for start := 0; start < len(keys); start += committedBatch {
		part := keys[start:min(start+committedBatch, len(keys))]
		args := make([]any, len(part))
		for i, k := range part {
			args[i] = k
		}
		found, err := queryAll(ctx, q, func(r rows) (string, error) {
			var k string
			err := r.Scan(&k)
			return k, err
		}, `SELECT object_key FROM objects WHERE object_key IN (`+placeholders(q, 1, len(part))+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("committed objects: %w", err)
		}
		for _, k := range found {
			out[k] = true
		}
	}
	return out, nil
}

// ClaimOrphans records each key not yet in the objects table as an object
// garbage collection owns (no index row, deletable a grace from now), in
// one transaction, and returns the keys it recorded; see metadata.Store.
func (s *Store) ClaimOrphans(ctx context.Context, keys []string, now time.Time, grace time.Duration) ([]string, error) {
	var claimed []string
	err := s.b.tx(ctx, func(q querier) error {
		claimed = claimed[:0]
		for _, k := range keys {
			n, err := q.exec(ctx, `INSERT INTO objects (object_key, size, agent_id, created_at, deletable_at)
				VALUES ($1, 0, '', $2, $3) ON CONFLICT (object_key) DO NOTHING`,
				k, toMillis(now), toMillis(now.Add(grace)))
			if err != nil {
				return err
			}
			if n == 1 {
				claimed = append(claimed, k)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("claim orphans: %w", err)
	}
	return claimed, nil
}

// MarkUnreferencedObjects schedules the deletion of objects no index row
// references any more.
func (s *Store) MarkUnreferencedObjects(ctx context.Context, now time.Time, grace time.Duration) (int, error) {
	var marked int64
	err := s.b.tx(ctx, func(q querier) error {
		var err error
		marked, err = q.exec(ctx, `UPDATE objects SET deletable_at = $1
			WHERE deletable_at = 0
				AND NOT EXISTS (SELECT 1 FROM segments WHERE segments.object_key = objects.object_key)`,
			toMillis(now.Add(grace)))
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("mark unreferenced objects: %w", err)
	}
	return int(marked), nil
}

// DeletableObjects returns up to limit objects due for deletion at now,
// oldest deadline first.
func (s *Store) DeletableObjects(ctx context.Context, now time.Time, limit int) ([]metadata.ObjectRecord, error) {
	if limit <= 0 {
		return nil, nil
	}
	recs, err := queryAll(ctx, s.b.reader(), func(r rows) (metadata.ObjectRecord, error) {
		var (
			o                  metadata.ObjectRecord
			created, deletable int64
		)
		err := r.Scan(&o.Key, &o.Size, &o.AgentID, &created, &deletable)
		o.CreatedAt, o.DeletableAt = fromMillis(created), fromMillis(deletable)
		return o, err
	}, `SELECT object_key, size, agent_id, created_at, deletable_at FROM objects
		WHERE deletable_at > 0 AND deletable_at <= $1
		ORDER BY deletable_at, object_key LIMIT $2`, toMillis(now), int64(limit))
	if err != nil {
		return nil, fmt.Errorf("list deletable objects: %w", err)
	}
	return recs, nil
}

// errObjectReferenced refuses to forget an object an index row references:
// a GC bug must not turn into data loss.
var errObjectReferenced = errors.New("object still referenced by the index")

// ForgetObject removes the object's row, unless an index row still
// references the object.
func (s *Store) ForgetObject(ctx context.Context, key string) error {
	err := s.b.tx(ctx, func(q querier) error {
		n, err := q.exec(ctx, `DELETE FROM objects WHERE object_key = $1
			AND NOT EXISTS (SELECT 1 FROM segments WHERE object_key = $1)`, key)
		if err != nil || n > 0 {
			return err
		}
		found, err := queryOne(ctx, q, []any{new(int)}, `SELECT 1 FROM objects WHERE object_key = $1`, key)
		if err == nil && found {
			err = errObjectReferenced
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("forget object %s: %w", key, err)
	}
	return nil
}

// CommitGroupOffsets upserts offsets in one transaction.
func (s *Store) CommitGroupOffsets(ctx context.Context, offsets []metadata.GroupOffset) error {
	return s.commitGroupOffsets(ctx, nil, offsets) // groups_state.go
}

// FetchGroupOffsets returns the group's offsets ordered by topic and
// partition; none (and no error) for an unknown group.
func (s *Store) FetchGroupOffsets(ctx context.Context, group string) ([]metadata.GroupOffset, error) {
	recs, err := queryAll(ctx, s.b.reader(), func(r rows) (metadata.GroupOffset, error) {
		o := metadata.GroupOffset{Group: group}
		var committed int64
		err := r.Scan(&o.Topic, &o.Partition, &o.Offset, &o.LeaderEpoch, &o.Metadata, &committed)
		o.CommittedAt = fromMillis(committed)
		return o, err
	}, `SELECT topic, partition_id, committed_offset, leader_epoch, metadata, committed_at FROM group_offsets
		WHERE group_id = $1 ORDER BY topic, partition_id`, group)
	if err != nil {
		return nil, fmt.Errorf("fetch offsets of group %q: %w", group, err)
	}
	return recs, nil
}

// groupsPerQuery bounds the groups (the parameters) of one query of
// FetchGroupsOffsets, well under either database's parameter limit.
const groupsPerQuery = 500

// FetchGroupsOffsets returns the offsets of groups, groupsPerQuery groups a
// query, each group's together and ordered by topic and partition.
func (s *Store) FetchGroupsOffsets(ctx context.Context, groups []string) ([]metadata.GroupOffset, error) {
	groups = slices.Compact(slices.Sorted(slices.Values(groups)))
	var out []metadata.GroupOffset
	q := s.b.reader()
	for chunk := range slices.Chunk(groups, groupsPerQuery) {
		args := make([]any, len(chunk))
		for i, g := range chunk {
			args[i] = g
		}
		recs, err := queryAll(ctx, q, func(r rows) (metadata.GroupOffset, error) {
			var o metadata.GroupOffset
			var committed int64
			err := r.Scan(&o.Group, &o.Topic, &o.Partition, &o.Offset, &o.LeaderEpoch, &o.Metadata, &committed)
			o.CommittedAt = fromMillis(committed)
			return o, err
		}, `SELECT group_id, topic, partition_id, committed_offset, leader_epoch, metadata, committed_at FROM group_offsets
			WHERE group_id IN (`+placeholders(q, 1, len(chunk))+`) ORDER BY group_id, topic, partition_id`, args...)
		if err != nil {
			return nil, fmt.Errorf("fetch offsets of %d groups: %w", len(groups), err)
		}
		out = append(out, recs...)
	}
	return out, nil
}

// DeleteGroupOffsets removes the group's offsets of some partitions of topic.
func (s *Store) DeleteGroupOffsets(ctx context.Context, group, topic string, partitions []int32) error {
	if len(partitions) == 0 {
		return nil
	}
	args := make([]any, 0, 2+len(partitions))
	args = append(args, group, topic)
	for _, p := range partitions {
		args = append(args, p)
	}
	err := s.b.tx(ctx, func(q querier) error {
		_, err := q.exec(ctx, `DELETE FROM group_offsets WHERE group_id = `+q.bulkParam(1)+` AND topic = `+q.bulkParam(2)+`
			AND partition_id IN (`+placeholders(q, 3, len(partitions))+`)`, args...)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete offsets of group %q topic %q: %w", group, topic, err)
	}
	return nil
}

// CreateGroup registers a group that has no offsets yet.
func (s *Store) CreateGroup(ctx context.Context, group string) error {
	err := s.b.tx(ctx, func(q querier) error {
		found, err := queryOne(ctx, q, []any{new(int)}, `SELECT 1 FROM group_offsets WHERE group_id = $1 LIMIT 1`, group)
		if err != nil {
			return err
		}
		if found {
			return metadata.ErrGroupExists
		}
		n, err := q.exec(ctx, `INSERT INTO consumer_groups (group_id, created_at) VALUES ($1, $2)
			ON CONFLICT (group_id) DO NOTHING`, group, toMillis(time.Now()))
		if err == nil && n == 0 {
			err = metadata.ErrGroupExists
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("create group %q: %w", group, err)
	}
	return nil
}

// DeleteGroup removes every offset of the group and its registration.
func (s *Store) DeleteGroup(ctx context.Context, group string) error {
	err := s.b.tx(ctx, func(q querier) error {
		offsets, err := q.exec(ctx, `DELETE FROM group_offsets WHERE group_id = $1`, group)
		if err != nil {
			return err
		}
		registered, err := q.exec(ctx, `DELETE FROM consumer_groups WHERE group_id = $1`, group)
		if err != nil {
			return err
		}
		// Pending transactional offsets go with the group, as in Kafka: a
		// later commit of their transaction finds nothing to move.
		for _, stmt := range []string{
			`DELETE FROM group_state WHERE group_id = $1`,
			`DELETE FROM txn_offsets WHERE group_id = $1`,
		} {
			if _, err := q.exec(ctx, stmt, group); err != nil {
				return err
			}
		}
		if offsets+registered == 0 {
			return metadata.ErrGroupNotFound
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete group %q: %w", group, err)
	}
	return nil
}

// ListGroups returns the groups registered or with committed offsets,
// ordered.
func (s *Store) ListGroups(ctx context.Context) ([]string, error) {
	gs, err := queryAll(ctx, s.b.reader(), func(r rows) (string, error) {
		var g string
		err := r.Scan(&g)
		return g, err
	}, `SELECT group_id FROM consumer_groups UNION SELECT group_id FROM group_offsets ORDER BY 1`)
	if err != nil {
		return nil, fmt.Errorf("list groups: %w", err)
	}
	return gs, nil
}
