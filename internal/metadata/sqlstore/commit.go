package sqlstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/streamhouse/streamhouse/internal/metadata"
)

// CommitObject records an uploaded object and advances every partition it
// carries, all or nothing; see metadata.Store.
func (s *Store) CommitObject(ctx context.Context, c metadata.ObjectCommit) error {
	if err := validateCommit(&c); err != nil {
		return fmt.Errorf("commit object %s: %w: %w", c.ObjectKey, metadata.ErrInvalidCommit, err)
	}
	if c.CreatedAt.IsZero() {
		c.CreatedAt = time.Now()
	}
	err := s.b.commitObject(ctx, &c)
	if errors.Is(err, errAlreadyCommitted) {
		// A retry of a commit whose answer was lost, unless the key was
		// committed with other contents: the index rows decide.
		if err := s.verifyCommitted(ctx, &c); err != nil {
			return fmt.Errorf("commit object %s: %w", c.ObjectKey, err)
		}
		s.logger.DebugContext(ctx, "object already committed", "object", c.ObjectKey)
		return nil
	}
	if err != nil {
		return fmt.Errorf("commit object %s: %w", c.ObjectKey, err)
	}
	s.announce(&c)
	return nil
}

// verifyCommitted checks that an object key already committed was
// committed by c: every index entry of c is in the index, under the key,
// with c's byte range. Otherwise the key names another commit's object
// and c stored nothing (metadata.ErrObjectConflict).
func (s *Store) verifyCommitted(ctx context.Context, c *metadata.ObjectCommit) error {
	for _, p := range c.Partitions {
		for _, e := range p.Entries {
			var (
				key            string
				last, pos, len int64
			)
			found, err := queryOne(ctx, s.b.reader(), []any{&key, &last, &pos, &len},
				`SELECT object_key, last_offset, pos, len FROM segments
				WHERE topic_id = $1 AND partition_id = $2 AND base_offset = $3`,
				p.TopicID[:], p.Partition, e.BaseOffset)
			if err != nil {
				return fmt.Errorf("verify earlier commit: %w", err)
			}
			if !found || key != c.ObjectKey || last != e.LastOffset || pos != e.Pos || len != e.Len {
				return fmt.Errorf("%s at offset %d: %w", p.TopicPartition, e.BaseOffset, metadata.ErrObjectConflict)
			}
		}
	}
	return nil
}

// validateCommit rejects commits that could break the index's invariants:
// each partition's entries must be dense, start at the expected high
// watermark and end just below the new one.
func validateCommit(c *metadata.ObjectCommit) error {
	if c.ObjectKey == "" {
		return errors.New("empty object key")
	}
	if c.AgentID == "" {
		return errors.New("empty agent id")
	}
	seen := make(map[metadata.TopicPartition]bool, len(c.Partitions))
	for i := range c.Partitions {
		p := &c.Partitions[i]
		if seen[p.TopicPartition] {
			return fmt.Errorf("partition %s listed twice", p.TopicPartition)
		}
		seen[p.TopicPartition] = true
		if err := validatePartitionCommit(p); err != nil {
			return fmt.Errorf("partition %s: %w", p.TopicPartition, err)
		}
	}
	return nil
}

func validatePartitionCommit(p *metadata.PartitionCommit) error {
	next := p.ExpectedHighWatermark
	if next < 0 {
		return fmt.Errorf("negative expected high watermark %d", next)
	}
	for _, e := range p.Entries {
		if e.BaseOffset != next {
			return fmt.Errorf("entry at offset %d, want %d", e.BaseOffset, next)
		}
		if e.LastOffset < e.BaseOffset {
			return fmt.Errorf("entry last offset %d below base offset %d", e.LastOffset, e.BaseOffset)
		}
		if e.Pos < 0 || e.Len < 0 {
			return fmt.Errorf("entry at offset %d has byte range %d+%d", e.BaseOffset, e.Pos, e.Len)
		}
		next = e.LastOffset + 1
	}
	if p.NewHighWatermark != next {
		return fmt.Errorf("new high watermark %d, entries end at %d", p.NewHighWatermark, next)
	}
	producers := make(map[int64]bool, len(p.Producers))
	for _, ps := range p.Producers {
		if producers[ps.ProducerID] {
			return fmt.Errorf("producer %d listed twice", ps.ProducerID)
		}
		producers[ps.ProducerID] = true
	}
	if p.HasOpenTxn && (p.OpenTxnFirstOffset < 0 || p.OpenTxnFirstOffset > p.NewHighWatermark) {
		return fmt.Errorf("open transaction at offset %d, outside [0, %d]", p.OpenTxnFirstOffset, p.NewHighWatermark)
	}
	markers := make(map[int64]bool, len(p.AbortedTxns))
	for _, a := range p.AbortedTxns {
		if a.FirstOffset < 0 || a.FirstOffset > a.LastOffset || a.LastOffset >= p.NewHighWatermark {
			return fmt.Errorf("aborted transaction of producer %d at [%d, %d], want 0 <= first <= last < %d",
				a.ProducerID, a.FirstOffset, a.LastOffset, p.NewHighWatermark)
		}
		if markers[a.LastOffset] {
			return fmt.Errorf("two aborted transactions end at offset %d", a.LastOffset)
		}
		markers[a.LastOffset] = true
	}
	return nil
}

// lastStable is the partition's last stable offset after p.
func lastStable(p *metadata.PartitionCommit) int64 {
	if p.HasOpenTxn {
		return p.OpenTxnFirstOffset
	}
	return p.NewHighWatermark
}

// boolInt is a flag's stored form.
func boolInt(b bool) int32 {
	if b {
		return 1
	}
	return 0
}

// storedBatch is the stored form of metadata.ProducerBatch, named apart from
// the Go type so renaming a field cannot silently change the stored format.
type storedBatch struct {
	FirstSeq   int32 `json:"first_seq"`
	LastSeq    int32 `json:"last_seq"`
	BaseOffset int64 `json:"base_offset"`
	LastOffset int64 `json:"last_offset"`
	Timestamp  int64 `json:"timestamp"`
}

func encodeBatches(bs []metadata.ProducerBatch) (string, error) {
	out := make([]storedBatch, len(bs))
	for i, b := range bs {
		out[i] = storedBatch(b)
	}
	enc, err := json.Marshal(out)
	return string(enc), err
}

func decodeBatches(s string) ([]metadata.ProducerBatch, error) {
	var in []storedBatch
	if err := json.Unmarshal([]byte(s), &in); err != nil {
		return nil, err
	}
	out := make([]metadata.ProducerBatch, len(in))
	for i, b := range in {
		out[i] = metadata.ProducerBatch(b)
	}
	return out, nil
}

// commitRows are the rows a commit inserts, in the column order of
// segmentInsert and producerUpsert.
type commitRows struct {
	segments  [][]any
	producers [][]any
	aborted   [][]any
}

const (
	segmentInsert  = `INSERT INTO segments (topic_id, partition_id, base_offset, last_offset, object_key, pos, len, max_timestamp, records)`
	producerUpsert = `INSERT INTO producer_state (topic_id, partition_id, producer_id, epoch, batches, updated_at, in_txn, txn_first_offset, coordinator_epoch)`
	producerTail   = `ON CONFLICT (topic_id, partition_id, producer_id) DO UPDATE SET epoch = excluded.epoch, batches = excluded.batches,
		updated_at = excluded.updated_at, in_txn = excluded.in_txn, txn_first_offset = excluded.txn_first_offset,
		coordinator_epoch = excluded.coordinator_epoch`
	objectInsert = `INSERT INTO objects (object_key, size, agent_id, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (object_key) DO NOTHING`
	// abortedInsert adds to the aborted-transaction index. A marker's
	// offset is unique in its partition and the commit carrying it is
	// stored once, so a conflict cannot happen; DO NOTHING keeps the
	// index a set even so.
	abortedInsert = `INSERT INTO aborted_txns (topic_id, partition_id, last_offset, producer_id, first_offset)`
	abortedTail   = `ON CONFLICT (topic_id, partition_id, last_offset, producer_id) DO NOTHING`
)

func buildCommitRows(c *metadata.ObjectCommit) (commitRows, error) {
	var r commitRows
	for _, p := range c.Partitions {
		id := p.TopicID[:]
		for _, e := range p.Entries {
			r.segments = append(r.segments, []any{id, p.Partition, e.BaseOffset, e.LastOffset, c.ObjectKey, e.Pos, e.Len, e.MaxTimestamp, e.Records})
		}
		for _, ps := range p.Producers {
			enc, err := encodeBatches(ps.Batches)
			if err != nil {
				return r, fmt.Errorf("encode producer %d state: %w", ps.ProducerID, err)
			}
			r.producers = append(r.producers, []any{id, p.Partition, ps.ProducerID, int32(ps.Epoch), enc, producerUpdated(ps, c),
				boolInt(ps.InTxn), ps.TxnFirstOffset, ps.CoordinatorEpoch})
		}
		for _, a := range p.AbortedTxns {
			r.aborted = append(r.aborted, []any{id, p.Partition, a.LastOffset, a.ProducerID, a.FirstOffset})
		}
	}
	return r, nil
}

// producerUpdated is the stored updated_at of ps: its UpdatedAt, or the
// commit's time when unset.
func producerUpdated(ps metadata.ProducerState, c *metadata.ObjectCommit) int64 {
	if ps.UpdatedAt.IsZero() {
		return toMillis(c.CreatedAt)
	}
	return toMillis(ps.UpdatedAt)
}

// fencedPartitions lists, in commit order, the partitions of c missing from
// advanced.
func fencedPartitions(c *metadata.ObjectCommit, advanced map[metadata.TopicPartition]bool) error {
	var failed []metadata.TopicPartition
	for _, p := range c.Partitions {
		if !advanced[p.TopicPartition] {
			failed = append(failed, p.TopicPartition)
		}
	}
	if len(failed) > 0 {
		return &metadata.FencedError{Partitions: failed}
	}
	return nil
}

func scanTopicPartition(r rows) (metadata.TopicPartition, error) {
	var (
		tp metadata.TopicPartition
		id []byte
	)
	if err := r.Scan(&id, &tp.Partition); err != nil {
		return tp, err
	}
	var err error
	tp.TopicID, err = topicIDFrom(id)
	return tp, err
}

// ListIndex returns up to limit index entries of tp ending at or after from.
func (s *Store) ListIndex(ctx context.Context, tp metadata.TopicPartition, from int64, limit int) ([]metadata.IndexEntry, error) {
	lim := int64(limit)
	if limit <= 0 {
		lim = math.MaxInt64
	}
	// Entries are dense and ordered, so "last_offset >= from" is "base_offset
	// at or after the base of the entry holding from": a range scan of the
	// primary key instead of a filter over the whole partition.
	es, err := queryAll(ctx, s.b.reader(), func(r rows) (metadata.IndexEntry, error) {
		var e metadata.IndexEntry
		err := r.Scan(&e.BaseOffset, &e.LastOffset, &e.ObjectKey, &e.Pos, &e.Len, &e.MaxTimestamp, &e.Records, &e.ObjectCreatedAt)
		return e, err
	}, `SELECT s.base_offset, s.last_offset, s.object_key, s.pos, s.len, s.max_timestamp, s.records, COALESCE(o.created_at, 0)
		FROM segments s LEFT JOIN objects o ON o.object_key = s.object_key
		WHERE s.topic_id = $1 AND s.partition_id = $2 AND s.last_offset >= $3
			AND s.base_offset >= COALESCE((SELECT base_offset FROM segments
				WHERE topic_id = $1 AND partition_id = $2 AND base_offset <= $3
				ORDER BY base_offset DESC LIMIT 1), $3)
		ORDER BY s.base_offset LIMIT $4`, tp.TopicID[:], tp.Partition, from, lim)
	if err != nil {
		return nil, fmt.Errorf("list index of %s from %d: %w", tp, from, err)
	}
	return es, nil
}

// StoredBytes returns the bytes of every index entry.
func (s *Store) StoredBytes(ctx context.Context) (int64, error) {
	var n int64
	if _, err := queryOne(ctx, s.b.reader(), []any{&n}, `SELECT COALESCE(SUM(len), 0) FROM segments`); err != nil {
		return 0, fmt.Errorf("stored bytes: %w", err)
	}
	return n, nil
}

// IndexBytes returns the bytes of tp's index entries ending at or after
// from.
func (s *Store) IndexBytes(ctx context.Context, tp metadata.TopicPartition, from int64) (int64, error) {
	var n int64
	_, err := queryOne(ctx, s.b.reader(), []any{&n},
		`SELECT COALESCE(SUM(len), 0) FROM segments WHERE topic_id = $1 AND partition_id = $2 AND last_offset >= $3`,
		tp.TopicID[:], tp.Partition, from)
	if err != nil {
		return 0, fmt.Errorf("index bytes of %s from %d: %w", tp, from, err)
	}
	return n, nil
}

// ProducerStates returns tp's idempotent-producer state, ordered by producer.
func (s *Store) ProducerStates(ctx context.Context, tp metadata.TopicPartition) ([]metadata.ProducerState, error) {
	ps, err := queryAll(ctx, s.b.reader(), func(r rows) (metadata.ProducerState, error) {
		var (
			p       metadata.ProducerState
			epoch   int32
			batches string
			updated int64
			inTxn   int32
		)
		if err := r.Scan(&p.ProducerID, &epoch, &batches, &updated, &inTxn, &p.TxnFirstOffset, &p.CoordinatorEpoch); err != nil {
			return p, err
		}
		p.Epoch, p.UpdatedAt, p.InTxn = int16(epoch), fromMillis(updated), inTxn != 0
		var err error
		if p.Batches, err = decodeBatches(batches); err != nil {
			return p, fmt.Errorf("decode producer %d state: %w", p.ProducerID, err)
		}
		return p, nil
	}, `SELECT producer_id, epoch, batches, updated_at, in_txn, txn_first_offset, coordinator_epoch FROM producer_state
		WHERE topic_id = $1 AND partition_id = $2 ORDER BY producer_id`, tp.TopicID[:], tp.Partition)
	if err != nil {
		return nil, fmt.Errorf("producer states of %s: %w", tp, err)
	}
	return ps, nil
}

// ExpireProducers deletes producer state last updated before olderThan,
// except that of producers with a transaction open on the partition: their
// state holds the partition's last stable offset back until a marker
// closes the transaction.
func (s *Store) ExpireProducers(ctx context.Context, olderThan time.Time) (int64, error) {
	var n int64
	err := s.b.tx(ctx, func(q querier) error {
		var err error
		n, err = q.exec(ctx, `DELETE FROM producer_state WHERE updated_at < $1 AND in_txn = 0`, toMillis(olderThan))
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("expire producers: %w", err)
	}
	return n, nil
}

// NextProducerID allocates a producer ID; IDs start at 1 and never repeat.
func (s *Store) NextProducerID(ctx context.Context) (int64, error) {
	var id int64
	err := s.b.tx(ctx, func(q querier) error {
		found, err := queryOne(ctx, q, []any{&id},
			`UPDATE producer_ids SET next_id = next_id + 1 WHERE id = 1 RETURNING next_id - 1`)
		if err == nil && !found {
			err = errors.New("producer id counter missing")
		}
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("next producer id: %w", err)
	}
	return id, nil
}
