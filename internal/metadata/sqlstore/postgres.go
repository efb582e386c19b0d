package sqlstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/streamhouse/streamhouse/internal/metadata"
)

// pgMaxAttempts bounds how often a transaction that hit a deadlock or a
// serialization failure is run.
const pgMaxAttempts = 8

// OpenPostgres connects to the PostgreSQL database at url (a postgres://
// URL or a keyword/value connection string; pool settings such as
// pool_max_conns are accepted) and migrates it to the current schema.
// Several agents may open the same database at once.
func OpenPostgres(ctx context.Context, url string, logger *slog.Logger) (*Store, error) {
	logger = defaultLogger(logger)
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("open postgres metadata: parse url: %w", err)
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "streamhouse"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open postgres metadata: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open postgres metadata %s@%s/%s: %w", cfg.ConnConfig.User, cfg.ConnConfig.Host, cfg.ConnConfig.Database, err)
	}
	db := stdlib.OpenDBFromPool(pool)
	err = migrate(ctx, db, goose.DialectPostgres, "postgres", logger)
	err = errors.Join(err, db.Close())
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("open postgres metadata: %w", err)
	}
	logger.InfoContext(ctx, "metadata store open", "backend", "postgres", "host", cfg.ConnConfig.Host, "database", cfg.ConnConfig.Database)
	return &Store{b: &pgBackend{pool: pool, logger: logger, announcer: newPGAnnouncer(pool, logger)}, logger: logger}, nil
}

type pgBackend struct {
	pool    *pgxpool.Pool
	logger  *slog.Logger
	retried atomic.Int64 // transactions retried after a deadlock or serialization failure
	// announcer NOTIFYs commits to the other agents (notify.go).
	announcer *pgAnnouncer
	// listenPing, when set, replaces the default quiet time after which a
	// listening connection is pinged (tests); pings counts the pings.
	listenPing time.Duration
	pings      atomic.Int64
}

func (b *pgBackend) reader() querier { return pgQuerier{b.pool} }

func (b *pgBackend) lockRows() string { return " FOR UPDATE" }

func (b *pgBackend) tx(ctx context.Context, fn func(q querier) error) error {
	return b.runTx(ctx, func(tx pgx.Tx) error { return fn(pgQuerier{tx}) })
}

// runTx runs fn in a READ COMMITTED transaction (the SQL is written for its
// re-check-after-lock-wait semantics), retrying deadlocks and serialization
// failures with jittered backoff.
func (b *pgBackend) runTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	for attempt := 1; ; attempt++ {
		err := pgx.BeginTxFunc(ctx, b.pool, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, fn)
		if err == nil || attempt == pgMaxAttempts || !retryable(err) {
			return unavailable(err)
		}
		b.retried.Add(1)
		wait := time.Duration(1<<min(attempt, 7)) * time.Millisecond
		wait = wait/2 + rand.N(wait)
		b.logger.DebugContext(ctx, "retrying metadata transaction", "attempt", attempt, "wait", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return unavailable(errors.Join(err, ctx.Err()))
		case <-t.C:
		}
	}
}

func retryable(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	switch pgErr.Code {
	case "40001", "40P01": // serialization_failure, deadlock_detected
		return true
	}
	return false
}

// The commit statements take one array per column, so their text never
// changes with the number of partitions and stays in pgx's statement cache.
const (
	pgFence = `UPDATE partitions AS p SET high_watermark = v.new_hw, last_stable_offset = v.lso
		FROM unnest($2::bytea[], $3::integer[], $4::integer[], $5::bigint[], $6::bigint[], $7::bigint[])
			AS v (topic_id, partition_id, epoch, expected_hw, new_hw, lso)
		WHERE p.topic_id = v.topic_id AND p.partition_id = v.partition_id
			AND p.leader_agent = $1 AND p.leader_epoch = v.epoch AND p.high_watermark = v.expected_hw
		RETURNING p.topic_id, p.partition_id`
	// pgRenewFree renews the leases whose rows no other transaction has
	// locked, without waiting for any (see RenewLeases).
	pgRenewFree = `WITH free AS (
			SELECT topic_id, partition_id FROM partitions WHERE leader_agent = $1 FOR UPDATE SKIP LOCKED)
		UPDATE partitions AS p SET lease_expires_at = $2
		FROM free WHERE p.topic_id = free.topic_id AND p.partition_id = free.partition_id
		RETURNING p.topic_id, p.partition_id, p.leader_epoch, p.lease_expires_at, p.high_watermark, p.log_start_offset`
	pgSegments = segmentInsert + `
		SELECT t, p, b, l, $1::text, pos, len, ts, r
		FROM unnest($2::bytea[], $3::integer[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[], $8::bigint[], $9::integer[])
			AS u (t, p, b, l, pos, len, ts, r)`
	pgProducers = producerUpsert + `
		SELECT * FROM unnest($1::bytea[], $2::integer[], $3::bigint[], $4::integer[], $5::text[], $6::bigint[],
			$7::integer[], $8::bigint[], $9::integer[]) ` + producerTail
	pgAborted = abortedInsert + `
		SELECT * FROM unnest($1::bytea[], $2::integer[], $3::bigint[], $4::bigint[], $5::bigint[]) ` + abortedTail
)

// commitObject pipelines the whole commit in one batch inside a
// transaction: three round trips (BEGIN, batch, COMMIT) whatever the number
// of partitions.
func (b *pgBackend) commitObject(ctx context.Context, c *metadata.ObjectCommit) error {
	// Partitions are fenced in key order so that two commits touching the
	// same partitions lock them in the same order (fewer deadlocks).
	order := make([]int, len(c.Partitions))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(x, y int) int {
		a, b := c.Partitions[x], c.Partitions[y]
		if c := bytes.Compare(a.TopicID[:], b.TopicID[:]); c != 0 {
			return c
		}
		return int(a.Partition) - int(b.Partition)
	})
	var (
		fence     pgFenceCols
		segments  pgSegmentCols
		producers pgProducerCols
		aborted   pgAbortedCols
	)
	for _, i := range order {
		p := &c.Partitions[i]
		fence.add(p)
		for _, e := range p.Entries {
			segments.add(p.TopicPartition, e)
		}
		for _, ps := range p.Producers {
			if err := producers.add(p.TopicPartition, ps, producerUpdated(ps, c)); err != nil {
				return err
			}
		}
		for _, a := range p.AbortedTxns {
			aborted.add(p.TopicPartition, a)
		}
	}
	return b.runTx(ctx, func(tx pgx.Tx) error {
		batch := &pgx.Batch{}
		batch.Queue(objectInsert, c.ObjectKey, c.Size, c.AgentID, toMillis(c.CreatedAt))
		batch.Queue(pgFence, c.AgentID, fence.ids, fence.parts, fence.epochs, fence.expected, fence.next, fence.lso)
		if len(segments.ids) > 0 {
			batch.Queue(pgSegments, c.ObjectKey, segments.ids, segments.parts, segments.base, segments.last,
				segments.pos, segments.length, segments.maxTS, segments.records)
		}
		if len(producers.ids) > 0 {
			batch.Queue(pgProducers, producers.ids, producers.parts, producers.producers, producers.epochs, producers.batches, producers.updated,
				producers.inTxn, producers.txnFirst, producers.coordEpochs)
		}
		if len(aborted.ids) > 0 {
			batch.Queue(pgAborted, aborted.ids, aborted.parts, aborted.last, aborted.producers, aborted.first)
		}
		br := tx.SendBatch(ctx, batch)
		// Statements after a failed check may fail too (the transaction is
		// rolled back anyway); their errors are not the news.
		defer func() { _ = br.Close() }()
		tag, err := br.Exec()
		if err != nil {
			return fmt.Errorf("insert object: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return errAlreadyCommitted
		}
		rs, err := br.Query()
		if err != nil {
			return fmt.Errorf("advance high watermarks: %w", err)
		}
		advanced := make(map[metadata.TopicPartition]bool, len(c.Partitions))
		for rs.Next() {
			tp, err := scanTopicPartition(rs)
			if err != nil {
				rs.Close()
				return fmt.Errorf("advance high watermarks: %w", err)
			}
			advanced[tp] = true
		}
		rs.Close()
		if err := rs.Err(); err != nil {
			return fmt.Errorf("advance high watermarks: %w", err)
		}
		if err := fencedPartitions(c, advanced); err != nil {
			return err
		}
		if len(segments.ids) > 0 {
			if _, err := br.Exec(); err != nil {
				return fmt.Errorf("insert index entries: %w", err)
			}
		}
		if len(producers.ids) > 0 {
			if _, err := br.Exec(); err != nil {
				return fmt.Errorf("upsert producer state: %w", err)
			}
		}
		if len(aborted.ids) > 0 {
			if _, err := br.Exec(); err != nil {
				return fmt.Errorf("insert aborted transactions: %w", err)
			}
		}
		return br.Close()
	})
}

// The statements of a PostgreSQL commit take one array per column.

type pgFenceCols struct {
	ids                 [][]byte
	parts, epochs       []int32
	expected, next, lso []int64
}

func (f *pgFenceCols) add(p *metadata.PartitionCommit) {
	f.ids, f.parts, f.epochs = append(f.ids, p.TopicID[:]), append(f.parts, p.Partition), append(f.epochs, p.Epoch)
	f.expected, f.next = append(f.expected, p.ExpectedHighWatermark), append(f.next, p.NewHighWatermark)
	f.lso = append(f.lso, lastStable(p))
}

type pgSegmentCols struct {
	ids                            [][]byte
	parts, records                 []int32
	base, last, pos, length, maxTS []int64
}

func (s *pgSegmentCols) add(tp metadata.TopicPartition, e metadata.IndexEntry) {
	s.ids, s.parts, s.records = append(s.ids, tp.TopicID[:]), append(s.parts, tp.Partition), append(s.records, e.Records)
	s.base, s.last, s.pos = append(s.base, e.BaseOffset), append(s.last, e.LastOffset), append(s.pos, e.Pos)
	s.length, s.maxTS = append(s.length, e.Len), append(s.maxTS, e.MaxTimestamp)
}

type pgProducerCols struct {
	ids                [][]byte
	parts, epochs      []int32
	producers          []int64
	batches            []string
	updated            []int64
	inTxn, coordEpochs []int32
	txnFirst           []int64
}

func (p *pgProducerCols) add(tp metadata.TopicPartition, ps metadata.ProducerState, updated int64) error {
	enc, err := encodeBatches(ps.Batches)
	if err != nil {
		return fmt.Errorf("encode producer %d state: %w", ps.ProducerID, err)
	}
	p.ids, p.parts, p.epochs = append(p.ids, tp.TopicID[:]), append(p.parts, tp.Partition), append(p.epochs, int32(ps.Epoch))
	p.producers, p.batches = append(p.producers, ps.ProducerID), append(p.batches, enc)
	p.updated = append(p.updated, updated)
	p.inTxn, p.txnFirst = append(p.inTxn, boolInt(ps.InTxn)), append(p.txnFirst, ps.TxnFirstOffset)
	p.coordEpochs = append(p.coordEpochs, ps.CoordinatorEpoch)
	return nil
}

type pgAbortedCols struct {
	ids                    [][]byte
	parts                  []int32
	last, producers, first []int64
}

func (c *pgAbortedCols) add(tp metadata.TopicPartition, a metadata.AbortedTxn) {
	c.ids, c.parts = append(c.ids, tp.TopicID[:]), append(c.parts, tp.Partition)
	c.last, c.producers, c.first = append(c.last, a.LastOffset), append(c.producers, a.ProducerID), append(c.first, a.FirstOffset)
}

func (b *pgBackend) ping(ctx context.Context) error { return unavailable(b.pool.Ping(ctx)) }

func (b *pgBackend) close() error {
	b.announcer.close()
	b.pool.Close()
	return nil
}

// pgQuerier adapts a pgx pool or transaction to querier.
type pgQuerier struct {
	c interface {
		Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
		Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	}
}

func (q pgQuerier) exec(ctx context.Context, query string, args ...any) (int64, error) {
	tag, err := q.c.Exec(ctx, query, args...)
	return tag.RowsAffected(), unavailable(err)
}

func (pgQuerier) bulkParam(i int) string { return dollarParam(i) }

func (q pgQuerier) query(ctx context.Context, query string, args ...any) (rows, error) {
	rs, err := q.c.Query(ctx, query, args...)
	if err != nil {
		return nil, unavailable(err)
	}
	return classifiedRows{rs}, nil
}
