package sqlstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/streamhouse/streamhouse/internal/metadata"
)

// RegisterAgent inserts or updates the agent.
func (s *Store) RegisterAgent(ctx context.Context, a metadata.Agent) error {
	if a.ID == "" {
		return fmt.Errorf("register agent: empty id")
	}
	if a.HeartbeatAt.IsZero() {
		a.HeartbeatAt = time.Now()
	}
	err := s.b.tx(ctx, func(q querier) error {
		_, err := q.exec(ctx, `INSERT INTO agents (id, addr, rack, started_at, heartbeat_at, grpc_addr) VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (id) DO UPDATE SET addr = excluded.addr, rack = excluded.rack,
				started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at, grpc_addr = excluded.grpc_addr`,
			a.ID, a.Addr, a.Rack, toMillis(a.StartedAt), toMillis(a.HeartbeatAt), a.GRPCAddr)
		return err
	})
	if err != nil {
		return fmt.Errorf("register agent %q: %w", a.ID, err)
	}
	return nil
}

// HeartbeatAgent refreshes the agent's heartbeat.
func (s *Store) HeartbeatAgent(ctx context.Context, agentID string, now time.Time) error {
	err := s.b.tx(ctx, func(q querier) error {
		n, err := q.exec(ctx, `UPDATE agents SET heartbeat_at = $2 WHERE id = $1`, agentID, toMillis(now))
		if err != nil {
			return err
		}
		if n == 0 {
			return metadata.ErrAgentNotFound
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("heartbeat agent %q: %w", agentID, err)
	}
	return nil
}

// ListAgents returns the agents heard from at or after since, ordered by ID.
func (s *Store) ListAgents(ctx context.Context, since time.Time) ([]metadata.Agent, error) {
	as, err := queryAll(ctx, s.b.reader(), func(r rows) (metadata.Agent, error) {
		var (
			a                  metadata.Agent
			started, heartbeat int64
		)
		err := r.Scan(&a.ID, &a.Addr, &a.Rack, &started, &heartbeat, &a.GRPCAddr)
		a.StartedAt, a.HeartbeatAt = fromMillis(started), fromMillis(heartbeat)
		return a, err
	}, `SELECT id, addr, rack, started_at, heartbeat_at, grpc_addr FROM agents WHERE heartbeat_at >= $1 ORDER BY id`, toMillis(since))
	if err != nil {
		return nil, fmt.Errorf("list agents: %w", err)
	}
	return as, nil
}

// DeregisterAgent removes the agent and releases its leases.
func (s *Store) DeregisterAgent(ctx context.Context, agentID string) error {
	if agentID == "" {
		return fmt.Errorf("deregister agent: empty id")
	}
	err := s.b.tx(ctx, func(q querier) error {
		if _, err := q.exec(ctx, `UPDATE partitions SET leader_agent = '', lease_expires_at = 0 WHERE leader_agent = $1`, agentID); err != nil {
			return err
		}
		_, err := q.exec(ctx, `DELETE FROM agents WHERE id = $1`, agentID)
		return err
	})
	if err != nil {
		return fmt.Errorf("deregister agent %q: %w", agentID, err)
	}
	return nil
}

func scanLease(r rows) (metadata.Lease, error) {
	var (
		l       metadata.Lease
		id      []byte
		expires int64
	)
	if err := r.Scan(&id, &l.Partition, &l.Epoch, &expires, &l.HighWatermark, &l.LogStartOffset); err != nil {
		return l, err
	}
	var err error
	l.TopicID, err = topicIDFrom(id)
	l.ExpiresAt = fromMillis(expires)
	return l, err
}

const leaseReturning = ` RETURNING topic_id, partition_id, leader_epoch, lease_expires_at, high_watermark, log_start_offset`

// AcquireLease takes tp for agentID with a new epoch when it is free, expired
// or already agentID's.
func (s *Store) AcquireLease(ctx context.Context, tp metadata.TopicPartition, agentID string, now time.Time, ttl time.Duration) (metadata.Lease, error) {
	if agentID == "" {
		return metadata.Lease{}, fmt.Errorf("acquire lease on %s: empty agent id", tp)
	}
	var lease metadata.Lease
	err := s.b.tx(ctx, func(q querier) error {
		var err error
		lease, err = acquire(ctx, q, tp, agentID, now, ttl)
		return err
	})
	if err != nil {
		return metadata.Lease{}, fmt.Errorf("acquire lease on %s for %q: %w", tp, agentID, err)
	}
	return lease, nil
}

// AcquireLeases is AcquireLease for many partitions in one transaction (one
// fsync on SQLite instead of one per partition, which dominates an agent's
// start with thousands of partitions). It returns the leases it took;
// partitions held by another agent or missing are skipped.
//
// Not (yet) part of metadata.Store.
func (s *Store) AcquireLeases(ctx context.Context, tps []metadata.TopicPartition, agentID string, now time.Time, ttl time.Duration) ([]metadata.Lease, error) {
	if agentID == "" {
		return nil, fmt.Errorf("acquire leases: empty agent id")
	}
	var leases []metadata.Lease
	err := s.b.tx(ctx, func(q querier) error {
		leases = leases[:0]
		for _, tp := range tps {
			l, err := acquire(ctx, q, tp, agentID, now, ttl)
			switch {
			case err == nil:
				leases = append(leases, l)
			case errors.Is(err, metadata.ErrLeaseHeld), errors.Is(err, metadata.ErrPartitionNotFound):
			default:
				return fmt.Errorf("%s: %w", tp, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("acquire leases for %q: %w", agentID, err)
	}
	return leases, nil
}

// acquire is one conditional UPDATE: on PostgreSQL a racing acquirer waits
// for the winner's row lock and then re-checks the condition against the
// winner's result, so exactly one wins.
func acquire(ctx context.Context, q querier, tp metadata.TopicPartition, agentID string, now time.Time, ttl time.Duration) (metadata.Lease, error) {
	ls, err := queryAll(ctx, q, scanLease,
		`UPDATE partitions SET leader_agent = $3, leader_epoch = leader_epoch + 1, lease_expires_at = $4
		WHERE topic_id = $1 AND partition_id = $2
			AND (leader_agent = '' OR leader_agent = $3 OR lease_expires_at <= $5)`+leaseReturning,
		tp.TopicID[:], tp.Partition, agentID, toMillis(now.Add(ttl)), toMillis(now))
	if err != nil {
		return metadata.Lease{}, err
	}
	if len(ls) == 1 {
		return ls[0], nil
	}
	var leader string
	found, err := queryOne(ctx, q, []any{&leader},
		`SELECT leader_agent FROM partitions WHERE topic_id = $1 AND partition_id = $2`, tp.TopicID[:], tp.Partition)
	if err != nil {
		return metadata.Lease{}, err
	}
	if !found {
		return metadata.Lease{}, metadata.ErrPartitionNotFound
	}
	return metadata.Lease{}, fmt.Errorf("held by %q: %w", leader, metadata.ErrLeaseHeld)
}

// RenewLeases extends every lease agentID holds, in one statement.
func (s *Store) RenewLeases(ctx context.Context, agentID string, now time.Time, ttl time.Duration) ([]metadata.Lease, error) {
	if agentID == "" {
		return nil, fmt.Errorf("renew leases: empty agent id")
	}
	expires := toMillis(now.Add(ttl))
	var leases []metadata.Lease
	var err error
	if _, ok := s.b.(*pgBackend); ok {
		leases, err = s.renewPostgres(ctx, agentID, expires)
	} else {
		err = s.b.tx(ctx, func(q querier) error {
			var err error
			leases, err = queryAll(ctx, q, scanLease,
				`UPDATE partitions SET lease_expires_at = $2 WHERE leader_agent = $1`+leaseReturning, agentID, expires)
			return err
		})
	}
	if err != nil {
		return leases, fmt.Errorf("renew leases of %q: %w", agentID, err)
	}
	slices.SortFunc(leases, func(a, b metadata.Lease) int {
		if c := bytes.Compare(a.TopicID[:], b.TopicID[:]); c != 0 {
			return c
		}
		return int(a.Partition) - int(b.Partition)
	})
	return leases, nil
}

// renewPostgres renews an agent's leases without ever holding one
// partition's row lock while waiting for another's. One UPDATE over every
// row would lock them in its scan order while this agent's commits lock
// theirs in the commit's order, and the two could deadlock (PostgreSQL then
// aborts one after deadlock_timeout, a second). So the rows no transaction
// holds are renewed at once, skipping locked ones, and the few that a
// commit holds are renewed one row per transaction afterwards: a statement
// that locks a single row can wait, but never in a cycle.
func (s *Store) renewPostgres(ctx context.Context, agentID string, expires int64) ([]metadata.Lease, error) {
	var leases []metadata.Lease
	err := s.b.tx(ctx, func(q querier) error {
		var err error
		leases, err = queryAll(ctx, q, scanLease, pgRenewFree, agentID, expires)
		return err
	})
	if err != nil {
		return nil, err
	}
	held, err := queryAll(ctx, s.b.reader(), scanTopicPartition,
		`SELECT topic_id, partition_id FROM partitions WHERE leader_agent = $1`, agentID)
	if err != nil {
		return leases, err
	}
	if len(held) == len(leases) {
		return leases, nil
	}
	done := make(map[metadata.TopicPartition]bool, len(leases))
	for _, l := range leases {
		done[l.TopicPartition] = true
	}
	for _, tp := range held {
		if done[tp] {
			continue
		}
		err := s.b.tx(ctx, func(q querier) error {
			more, err := queryAll(ctx, q, scanLease, `UPDATE partitions SET lease_expires_at = $4
				WHERE topic_id = $1 AND partition_id = $2 AND leader_agent = $3`+leaseReturning,
				tp.TopicID[:], tp.Partition, agentID, expires)
			leases = append(leases, more...)
			return err
		})
		if err != nil {
			// What was renewed stays renewed: one row held by a slow
			// transaction must not cost the agent every other lease.
			return leases, err
		}
	}
	return leases, nil
}

// ReleaseLease gives up tp if agentID holds it at epoch.
func (s *Store) ReleaseLease(ctx context.Context, tp metadata.TopicPartition, agentID string, epoch int32) error {
	err := s.b.tx(ctx, func(q querier) error {
		_, err := q.exec(ctx, `UPDATE partitions SET leader_agent = '', lease_expires_at = 0
			WHERE topic_id = $1 AND partition_id = $2 AND leader_agent = $3 AND leader_epoch = $4`,
			tp.TopicID[:], tp.Partition, agentID, epoch)
		return err
	})
	if err != nil {
		return fmt.Errorf("release lease on %s for %q: %w", tp, agentID, err)
	}
	return nil
}
