package sqlstore

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"time"

	"github.com/streamhouse/streamhouse/internal/metadata"
)

const topicColumns = `id, name, partitions, config, created_at`

func scanTopic(r rows) (metadata.Topic, error) {
	var (
		t       metadata.Topic
		id      []byte
		config  string
		created int64
	)
	if err := r.Scan(&id, &t.Name, &t.Partitions, &config, &created); err != nil {
		return t, err
	}
	var err error
	if t.ID, err = topicIDFrom(id); err != nil {
		return t, err
	}
	t.Config = map[string]string{}
	if err := json.Unmarshal([]byte(config), &t.Config); err != nil {
		return t, fmt.Errorf("decode config of topic %q: %w", t.Name, err)
	}
	t.CreatedAt = fromMillis(created)
	return t, nil
}

// newTopicID returns a random (version 4) UUID.
func newTopicID() metadata.TopicID {
	var id metadata.TopicID
	_, _ = rand.Read(id[:]) // never fails (crypto/rand documents it)
	id[6] = id[6]&0x0f | 0x40
	id[8] = id[8]&0x3f | 0x80
	return id
}

func encodeConfig(config map[string]string) (string, error) {
	if config == nil {
		return "{}", nil
	}
	b, err := json.Marshal(config)
	return string(b), err
}

// CreateTopic creates the topic and its partitions.
func (s *Store) CreateTopic(ctx context.Context, t metadata.Topic) (metadata.Topic, error) {
	if t.Partitions < 1 {
		return metadata.Topic{}, fmt.Errorf("create topic %q with %d partitions: %w", t.Name, t.Partitions, metadata.ErrInvalidPartitions)
	}
	if t.Name == "" {
		return metadata.Topic{}, fmt.Errorf("create topic: empty name")
	}
	if t.ID == (metadata.TopicID{}) {
		t.ID = newTopicID()
	}
	if t.CreatedAt.IsZero() {
		t.CreatedAt = time.Now()
	}
	t.CreatedAt = fromMillis(toMillis(t.CreatedAt)) // as it reads back
	config, err := encodeConfig(t.Config)
	if err != nil {
		return metadata.Topic{}, fmt.Errorf("create topic %q: encode config: %w", t.Name, err)
	}
	t.Config = cloneConfig(t.Config)
	err = s.b.tx(ctx, func(q querier) error {
		n, err := q.exec(ctx, `INSERT INTO topics (`+topicColumns+`) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (name) DO NOTHING`,
			t.ID[:], t.Name, t.Partitions, config, toMillis(t.CreatedAt))
		if err != nil {
			return err
		}
		if n == 0 {
			return metadata.ErrTopicExists
		}
		return insertPartitions(ctx, q, t.ID, 0, t.Partitions)
	})
	if err != nil {
		return metadata.Topic{}, fmt.Errorf("create topic %q: %w", t.Name, err)
	}
	return t, nil
}

func cloneConfig(c map[string]string) map[string]string {
	out := make(map[string]string, len(c))
	for k, v := range c {
		out[k] = v
	}
	return out
}

// insertPartitions creates partitions [from, to) of a topic.
func insertPartitions(ctx context.Context, q querier, id metadata.TopicID, from, to int32) error {
	rows := make([][]any, 0, to-from)
	for p := from; p < to; p++ {
		rows = append(rows, []any{id[:], p})
	}
	return insertRows(ctx, q, `INSERT INTO partitions (topic_id, partition_id)`, ``, rows)
}

// GetTopic returns the topic named name.
func (s *Store) GetTopic(ctx context.Context, name string) (metadata.Topic, error) {
	ts, err := queryAll(ctx, s.b.reader(), scanTopic,
		`SELECT `+topicColumns+` FROM topics WHERE name = $1`, name)
	if err != nil {
		return metadata.Topic{}, fmt.Errorf("get topic %q: %w", name, err)
	}
	if len(ts) == 0 {
		return metadata.Topic{}, fmt.Errorf("get topic %q: %w", name, metadata.ErrTopicNotFound)
	}
	return ts[0], nil
}

// GetTopicByID returns the topic with the given ID.
func (s *Store) GetTopicByID(ctx context.Context, id metadata.TopicID) (metadata.Topic, error) {
	ts, err := queryAll(ctx, s.b.reader(), scanTopic,
		`SELECT `+topicColumns+` FROM topics WHERE id = $1`, id[:])
	if err != nil {
		return metadata.Topic{}, fmt.Errorf("get topic %s: %w", id, err)
	}
	if len(ts) == 0 {
		return metadata.Topic{}, fmt.Errorf("get topic %s: %w", id, metadata.ErrTopicNotFound)
	}
	return ts[0], nil
}

// ListTopics returns every topic, ordered by name.
func (s *Store) ListTopics(ctx context.Context) ([]metadata.Topic, error) {
	ts, err := queryAll(ctx, s.b.reader(), scanTopic,
		`SELECT `+topicColumns+` FROM topics ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list topics: %w", err)
	}
	return ts, nil
}

// DeleteTopic removes the topic with everything hanging off it.
func (s *Store) DeleteTopic(ctx context.Context, name string) error {
	err := s.b.tx(ctx, func(q querier) error {
		var id []byte
		found, err := queryOne(ctx, q, []any{&id}, `SELECT id FROM topics WHERE name = $1`+s.b.lockRows(), name)
		if err != nil {
			return err
		}
		if !found {
			return metadata.ErrTopicNotFound
		}
		// Lock the partitions first: an in-flight commit finishes before we
		// delete its index rows, and a later one finds the partition gone and
		// is fenced.
		if _, err := queryAll(ctx, q, scanNothing,
			`SELECT partition_id FROM partitions WHERE topic_id = $1`+s.b.lockRows(), id); err != nil {
			return err
		}
		for _, stmt := range []string{
			`DELETE FROM segments WHERE topic_id = $1`,
			`DELETE FROM producer_state WHERE topic_id = $1`,
			`DELETE FROM aborted_txns WHERE topic_id = $1`,
			`DELETE FROM partitions WHERE topic_id = $1`,
			`DELETE FROM topics WHERE id = $1`,
		} {
			if _, err := q.exec(ctx, stmt, id); err != nil {
				return err
			}
		}
		// Pending transactional offsets of the name go too, or a
		// transaction's commit would bring them back for a new topic.
		for _, stmt := range []string{
			`DELETE FROM group_offsets WHERE topic = $1`,
			`DELETE FROM txn_offsets WHERE topic = $1`,
		} {
			if _, err := q.exec(ctx, stmt, name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete topic %q: %w", name, err)
	}
	return nil
}

func scanNothing(rows) (struct{}, error) { return struct{}{}, nil }

// UpdateTopicConfig replaces the topic's config.
func (s *Store) UpdateTopicConfig(ctx context.Context, name string, config map[string]string) error {
	enc, err := encodeConfig(config)
	if err != nil {
		return fmt.Errorf("update config of topic %q: encode: %w", name, err)
	}
	err = s.b.tx(ctx, func(q querier) error {
		n, err := q.exec(ctx, `UPDATE topics SET config = $2 WHERE name = $1`, name, enc)
		if err != nil {
			return err
		}
		if n == 0 {
			return metadata.ErrTopicNotFound
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("update config of topic %q: %w", name, err)
	}
	return nil
}

// AddPartitions grows the topic to total partitions.
func (s *Store) AddPartitions(ctx context.Context, name string, total int32) error {
	err := s.b.tx(ctx, func(q querier) error {
		var (
			id  []byte
			cur int32
		)
		found, err := queryOne(ctx, q, []any{&id, &cur},
			`SELECT id, partitions FROM topics WHERE name = $1`+s.b.lockRows(), name)
		if err != nil {
			return err
		}
		if !found {
			return metadata.ErrTopicNotFound
		}
		if total <= cur {
			return fmt.Errorf("grow from %d to %d: %w", cur, total, metadata.ErrInvalidPartitions)
		}
		tid, err := topicIDFrom(id)
		if err != nil {
			return err
		}
		if err := insertPartitions(ctx, q, tid, cur, total); err != nil {
			return err
		}
		_, err = q.exec(ctx, `UPDATE topics SET partitions = $2 WHERE id = $1`, id, total)
		return err
	})
	if err != nil {
		return fmt.Errorf("add partitions to topic %q: %w", name, err)
	}
	return nil
}

const partitionColumns = `topic_id, partition_id, log_start_offset, high_watermark, leader_agent, leader_epoch, lease_expires_at, last_stable_offset`

func scanPartition(r rows) (metadata.PartitionState, error) {
	var (
		p       metadata.PartitionState
		id      []byte
		expires int64
	)
	if err := r.Scan(&id, &p.Partition, &p.LogStartOffset, &p.HighWatermark, &p.Leader, &p.LeaderEpoch, &expires, &p.LastStableOffset); err != nil {
		return p, err
	}
	var err error
	p.TopicID, err = topicIDFrom(id)
	p.LeaseExpiresAt = fromMillis(expires)
	return p, err
}

// GetPartition returns one partition's state.
func (s *Store) GetPartition(ctx context.Context, tp metadata.TopicPartition) (metadata.PartitionState, error) {
	ps, err := queryAll(ctx, s.b.reader(), scanPartition,
		`SELECT `+partitionColumns+` FROM partitions WHERE topic_id = $1 AND partition_id = $2`,
		tp.TopicID[:], tp.Partition)
	if err != nil {
		return metadata.PartitionState{}, fmt.Errorf("get partition %s: %w", tp, err)
	}
	if len(ps) == 0 {
		return metadata.PartitionState{}, fmt.Errorf("get partition %s: %w", tp, metadata.ErrPartitionNotFound)
	}
	return ps[0], nil
}

// ListPartitions returns the topic's partitions ordered by number;
// ErrTopicNotFound if the topic does not exist.
func (s *Store) ListPartitions(ctx context.Context, id metadata.TopicID) ([]metadata.PartitionState, error) {
	ps, err := queryAll(ctx, s.b.reader(), scanPartition,
		`SELECT `+partitionColumns+` FROM partitions WHERE topic_id = $1 ORDER BY partition_id`, id[:])
	if err != nil {
		return nil, fmt.Errorf("list partitions of topic %s: %w", id, err)
	}
	if len(ps) == 0 {
		// Every topic has at least one partition.
		return nil, fmt.Errorf("list partitions of topic %s: %w", id, metadata.ErrTopicNotFound)
	}
	return ps, nil
}

// ListAllPartitions returns every partition of every topic in one query.
func (s *Store) ListAllPartitions(ctx context.Context) ([]metadata.PartitionState, error) {
	ps, err := queryAll(ctx, s.b.reader(), scanPartition,
		`SELECT `+partitionColumns+` FROM partitions ORDER BY topic_id, partition_id`)
	if err != nil {
		return nil, fmt.Errorf("list all partitions: %w", err)
	}
	return ps, nil
}

// SetLogStartOffset raises the log start offset and drops the index entries
// wholly below it.
func (s *Store) SetLogStartOffset(ctx context.Context, tp metadata.TopicPartition, offset int64) (int64, error) {
	var result int64
	err := s.b.tx(ctx, func(q querier) error {
		var lso, hw int64
		found, err := queryOne(ctx, q, []any{&lso, &hw},
			`SELECT log_start_offset, high_watermark FROM partitions WHERE topic_id = $1 AND partition_id = $2`+s.b.lockRows(),
			tp.TopicID[:], tp.Partition)
		if err != nil {
			return err
		}
		if !found {
			return metadata.ErrPartitionNotFound
		}
		if offset > hw {
			return fmt.Errorf("offset %d above high watermark %d: %w", offset, hw, metadata.ErrOffsetOutOfRange)
		}
		if offset <= lso {
			result = lso
			return nil
		}
		if _, err := q.exec(ctx, `UPDATE partitions SET log_start_offset = $3 WHERE topic_id = $1 AND partition_id = $2`,
			tp.TopicID[:], tp.Partition, offset); err != nil {
			return err
		}
		for _, stmt := range []string{
			`DELETE FROM segments WHERE topic_id = $1 AND partition_id = $2 AND last_offset < $3`,
			// An aborted transaction whose marker is below the log start
			// has nothing left to hide.
			`DELETE FROM aborted_txns WHERE topic_id = $1 AND partition_id = $2 AND last_offset < $3`,
		} {
			if _, err := q.exec(ctx, stmt, tp.TopicID[:], tp.Partition, offset); err != nil {
				return err
			}
		}
		result = offset
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("set log start offset of %s to %d: %w", tp, offset, err)
	}
	return result, nil
}
