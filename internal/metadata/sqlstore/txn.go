package sqlstore

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/streamhouse/streamhouse/internal/metadata"
)

// Transactions: the coordinator's rows (txns), pending transactional
// offsets (txn_offsets) and each partition's aborted-transaction index
// (aborted_txns, written by CommitObject). Coordinator writes are fenced by
// the coordinator slot's lease in their own transaction, as group writes
// are (groups_state.go). AddTxnOffsets reads the transaction's row under a
// share lock and PutTxn rewrites it under an exclusive one, so pending
// offsets are either stored before a decision (and moved or dropped by it)
// or refused after it: none is left behind once a transaction is decided.

// storedTxnPartition is one element of txns.partition_list.
type storedTxnPartition struct {
	TopicID   string `json:"topic_id"` // hex
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
}

const txnColumns = `transactional_id, producer_id, producer_epoch, last_producer_id, last_producer_epoch,
	state, timeout_ms, partition_list, group_list, started_at, updated_at, client_version, next_producer_id`

func scanTxn(r rows) (metadata.Txn, error) {
	var (
		t                  metadata.Txn
		epoch, lastEpoch   int32
		state, parts, grps string
		started, updated   int64
		clientVersion      int32
		stored             []storedTxnPartition
	)
	if err := r.Scan(&t.TransactionalID, &t.ProducerID, &epoch, &t.LastProducerID, &lastEpoch,
		&state, &t.TimeoutMs, &parts, &grps, &started, &updated, &clientVersion, &t.NextProducerID); err != nil {
		return t, err
	}
	t.ClientVersion = int8(clientVersion)
	t.ProducerEpoch, t.LastProducerEpoch, t.State = int16(epoch), int16(lastEpoch), metadata.TxnStatus(state)
	t.StartedAt, t.UpdatedAt = fromMillis(started), fromMillis(updated)
	if err := json.Unmarshal([]byte(parts), &stored); err != nil {
		return t, fmt.Errorf("decode partitions of transaction %q: %w", t.TransactionalID, err)
	}
	for _, p := range stored {
		raw, err := hex.DecodeString(p.TopicID)
		if err != nil {
			return t, fmt.Errorf("decode partitions of transaction %q: %w", t.TransactionalID, err)
		}
		id, err := topicIDFrom(raw)
		if err != nil {
			return t, fmt.Errorf("decode partitions of transaction %q: %w", t.TransactionalID, err)
		}
		t.Partitions = append(t.Partitions, metadata.TxnPartition{TopicID: id, Topic: p.Topic, Partition: p.Partition})
	}
	if err := json.Unmarshal([]byte(grps), &t.Groups); err != nil {
		return t, fmt.Errorf("decode groups of transaction %q: %w", t.TransactionalID, err)
	}
	if len(t.Groups) == 0 {
		t.Groups = nil
	}
	return t, nil
}

func validTxnStatus(s metadata.TxnStatus) bool {
	switch s {
	case metadata.TxnEmpty, metadata.TxnOngoing, metadata.TxnPrepareCommit, metadata.TxnPrepareAbort,
		metadata.TxnCompleteCommit, metadata.TxnCompleteAbort:
		return true
	}
	return false
}

// encodeTxnLists returns the stored partition and group lists of t, sorted
// and without duplicates.
func encodeTxnLists(t *metadata.Txn) (parts, groups string, err error) {
	ps := slices.Clone(t.Partitions)
	slices.SortFunc(ps, func(a, b metadata.TxnPartition) int {
		if c := bytes.Compare(a.TopicID[:], b.TopicID[:]); c != 0 {
			return c
		}
		return int(a.Partition) - int(b.Partition)
	})
	ps = slices.CompactFunc(ps, func(a, b metadata.TxnPartition) bool { return a.TP() == b.TP() })
	stored := make([]storedTxnPartition, len(ps))
	for i, p := range ps {
		stored[i] = storedTxnPartition{TopicID: hex.EncodeToString(p.TopicID[:]), Topic: p.Topic, Partition: p.Partition}
	}
	gs := slices.Clone(t.Groups)
	slices.Sort(gs)
	gs = slices.Compact(gs)
	if gs == nil {
		gs = []string{}
	}
	pb, err := json.Marshal(stored)
	if err != nil {
		return "", "", err
	}
	gb, err := json.Marshal(gs)
	if err != nil {
		return "", "", err
	}
	return string(pb), string(gb), nil
}

// GetTxn returns the transaction of id.
func (s *Store) GetTxn(ctx context.Context, id string) (metadata.Txn, bool, error) {
	ts, err := queryAll(ctx, s.b.reader(), scanTxn, `SELECT `+txnColumns+` FROM txns WHERE transactional_id = $1`, id)
	if err != nil {
		return metadata.Txn{}, false, fmt.Errorf("get transaction %q: %w", id, err)
	}
	if len(ts) == 0 {
		return metadata.Txn{}, false, nil
	}
	return ts[0], true, nil
}

// ListTxns returns the transactions matching f, ordered by ID.
func (s *Store) ListTxns(ctx context.Context, f metadata.TxnFilter) ([]metadata.Txn, error) {
	q := s.b.reader()
	var (
		where []string
		args  []any
	)
	in := func(column string, vals []any) {
		where = append(where, column+` IN (`+placeholders(q, len(args)+1, len(vals))+`)`)
		args = append(args, vals...)
	}
	if len(f.States) > 0 {
		vals := make([]any, len(f.States))
		for i, st := range f.States {
			vals[i] = string(st)
		}
		in("state", vals)
	}
	if len(f.ProducerIDs) > 0 {
		vals := make([]any, len(f.ProducerIDs))
		for i, id := range f.ProducerIDs {
			vals[i] = id
		}
		in("producer_id", vals)
	}
	if len(f.TransactionalIDs) > 0 {
		vals := make([]any, len(f.TransactionalIDs))
		for i, id := range f.TransactionalIDs {
			vals[i] = id
		}
		in("transactional_id", vals)
	}
	if len(args) > maxParams {
		return nil, fmt.Errorf("list transactions: %d filter values, at most %d", len(args), maxParams)
	}
	stmt := `SELECT ` + txnColumns + ` FROM txns`
	if len(where) > 0 {
		stmt += ` WHERE ` + strings.Join(where, ` AND `)
	}
	ts, err := queryAll(ctx, q, scanTxn, stmt+` ORDER BY transactional_id`, args...)
	if err != nil {
		return nil, fmt.Errorf("list transactions: %w", err)
	}
	return ts, nil
}

// PutTxn stores t if the fence holds and, in the same transaction, moves
// (PrepareCommit) or drops (every state but Ongoing) its pending offsets.
func (s *Store) PutTxn(ctx context.Context, fence metadata.GroupFence, t metadata.Txn) error {
	if t.TransactionalID == "" {
		return fmt.Errorf("put transaction: empty transactional id")
	}
	if !validTxnStatus(t.State) {
		return fmt.Errorf("put transaction %q: unknown state %q", t.TransactionalID, t.State)
	}
	if t.NextProducerID < 0 || t.ClientVersion < 0 || t.ClientVersion > 2 {
		return fmt.Errorf("put transaction %q: next producer id %d, client version %d", t.TransactionalID, t.NextProducerID, t.ClientVersion)
	}
	parts, groups, err := encodeTxnLists(&t)
	if err != nil {
		return fmt.Errorf("put transaction %q: %w", t.TransactionalID, err)
	}
	updated := t.UpdatedAt
	if updated.IsZero() {
		updated = time.Now()
	}
	err = s.b.tx(ctx, func(q querier) error {
		if err := s.checkGroupFence(ctx, q, fence); err != nil {
			return err
		}
		// The row lock this takes orders the write after every
		// AddTxnOffsets holding the row's share lock, and those waiting
		// for it after this transaction: they see the new state.
		if _, err := q.exec(ctx, `INSERT INTO txns (`+txnColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
			ON CONFLICT (transactional_id) DO UPDATE SET producer_id = excluded.producer_id,
				producer_epoch = excluded.producer_epoch, last_producer_id = excluded.last_producer_id,
				last_producer_epoch = excluded.last_producer_epoch, state = excluded.state,
				timeout_ms = excluded.timeout_ms, partition_list = excluded.partition_list,
				group_list = excluded.group_list, started_at = excluded.started_at, updated_at = excluded.updated_at,
				client_version = excluded.client_version, next_producer_id = excluded.next_producer_id`,
			t.TransactionalID, t.ProducerID, int32(t.ProducerEpoch), t.LastProducerID, int32(t.LastProducerEpoch),
			string(t.State), t.TimeoutMs, parts, groups, toMillis(t.StartedAt), toMillis(updated),
			int32(t.ClientVersion), t.NextProducerID); err != nil {
			return err
		}
		switch t.State {
		case metadata.TxnOngoing:
			return nil
		case metadata.TxnPrepareCommit:
			// In key order, as commitGroupOffsets locks group offsets.
			if _, err := q.exec(ctx, `INSERT INTO group_offsets (group_id, topic, partition_id, committed_offset, leader_epoch, metadata, committed_at)
				SELECT group_id, topic, partition_id, committed_offset, leader_epoch, metadata, committed_at
				FROM txn_offsets WHERE transactional_id = $1 ORDER BY group_id, topic, partition_id
				ON CONFLICT (group_id, topic, partition_id) DO UPDATE SET committed_offset = excluded.committed_offset,
					leader_epoch = excluded.leader_epoch, metadata = excluded.metadata, committed_at = excluded.committed_at`,
				t.TransactionalID); err != nil {
				return fmt.Errorf("commit pending offsets: %w", err)
			}
		}
		if _, err := q.exec(ctx, `DELETE FROM txn_offsets WHERE transactional_id = $1`, t.TransactionalID); err != nil {
			return fmt.Errorf("drop pending offsets: %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("put transaction %q (%s): %w", t.TransactionalID, t.State, err)
	}
	return nil
}

// DeleteTxn removes the transaction of id, and its pending offsets, if it
// still has producerID and epoch and the fence holds.
func (s *Store) DeleteTxn(ctx context.Context, fence metadata.GroupFence, id string, producerID int64, epoch int16) error {
	err := s.b.tx(ctx, func(q querier) error {
		if err := s.checkGroupFence(ctx, q, fence); err != nil {
			return err
		}
		n, err := q.exec(ctx, `DELETE FROM txns WHERE transactional_id = $1 AND producer_id = $2 AND producer_epoch = $3`,
			id, producerID, int32(epoch))
		if err != nil || n == 0 {
			return err
		}
		_, err = q.exec(ctx, `DELETE FROM txn_offsets WHERE transactional_id = $1`, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete transaction %q: %w", id, err)
	}
	return nil
}

// AddTxnOffsets stores pending offsets of transaction id, after checking
// the group coordinator's fence and, with the transaction's row share
// locked, its producer, epoch, state and groups.
func (s *Store) AddTxnOffsets(ctx context.Context, fence metadata.GroupFence, id string, producerID int64, epoch int16, offsets []metadata.GroupOffset) error {
	if len(offsets) == 0 {
		return nil
	}
	group := offsets[0].Group
	// The last offset of a partition wins, as if stored in order; rows in
	// key order, so concurrent writers lock them in the same order.
	type key struct {
		topic     string
		partition int32
	}
	last := make(map[key]int, len(offsets))
	for i, o := range offsets {
		if o.Group != group {
			return fmt.Errorf("add offsets to transaction %q: offsets of groups %q and %q in one call", id, group, o.Group)
		}
		last[key{o.Topic, o.Partition}] = i
	}
	kept := make([]metadata.GroupOffset, 0, len(last))
	for i, o := range offsets {
		if last[key{o.Topic, o.Partition}] == i {
			kept = append(kept, o)
		}
	}
	slices.SortFunc(kept, func(a, b metadata.GroupOffset) int {
		if c := strings.Compare(a.Topic, b.Topic); c != 0 {
			return c
		}
		return int(a.Partition) - int(b.Partition)
	})
	rows := make([][]any, 0, len(kept))
	for _, o := range kept {
		committed := o.CommittedAt
		if committed.IsZero() {
			committed = time.Now()
		}
		rows = append(rows, []any{id, group, o.Topic, o.Partition, o.Offset, o.LeaderEpoch, o.Metadata, toMillis(committed)})
	}
	err := s.b.tx(ctx, func(q querier) error {
		if err := s.checkGroupFence(ctx, q, fence); err != nil {
			return err
		}
		var (
			pid             int64
			ep              int32
			state, groupsJS string
		)
		// FOR SHARE on PostgreSQL (the slot fence's lock clause): a
		// PutTxn of this transaction waits for this one to commit, and
		// this one, if later, waits for it and reads its state.
		found, err := queryOne(ctx, q, []any{&pid, &ep, &state, &groupsJS},
			`SELECT producer_id, producer_epoch, state, group_list FROM txns WHERE transactional_id = $1`+s.slotShareLock(), id)
		if err != nil {
			return err
		}
		if !found {
			return metadata.ErrTxnNotFound
		}
		if pid != producerID || ep != int32(epoch) {
			return fmt.Errorf("%w: the transaction has producer %d epoch %d, not %d epoch %d",
				metadata.ErrTxnFenced, pid, ep, producerID, epoch)
		}
		if metadata.TxnStatus(state) != metadata.TxnOngoing {
			return fmt.Errorf("%w: the transaction is %s, not %s", metadata.ErrTxnState, state, metadata.TxnOngoing)
		}
		var groups []string
		if err := json.Unmarshal([]byte(groupsJS), &groups); err != nil {
			return fmt.Errorf("decode groups: %w", err)
		}
		if !slices.Contains(groups, group) {
			return fmt.Errorf("%w: the transaction has not added group %q", metadata.ErrTxnState, group)
		}
		return insertRows(ctx, q,
			`INSERT INTO txn_offsets (transactional_id, group_id, topic, partition_id, committed_offset, leader_epoch, metadata, committed_at)`,
			`ON CONFLICT (transactional_id, group_id, topic, partition_id) DO UPDATE SET committed_offset = excluded.committed_offset,
				leader_epoch = excluded.leader_epoch, metadata = excluded.metadata, committed_at = excluded.committed_at`,
			rows)
	})
	if err != nil {
		return fmt.Errorf("add offsets of group %q to transaction %q: %w", group, id, err)
	}
	return nil
}

// PendingTxnOffsets returns the group's pending transactional offsets.
func (s *Store) PendingTxnOffsets(ctx context.Context, group string) ([]metadata.GroupOffset, error) {
	offs, err := queryAll(ctx, s.b.reader(), func(r rows) (metadata.GroupOffset, error) {
		o := metadata.GroupOffset{Group: group}
		var committed int64
		err := r.Scan(&o.Topic, &o.Partition, &o.Offset, &o.LeaderEpoch, &o.Metadata, &committed)
		o.CommittedAt = fromMillis(committed)
		return o, err
	}, `SELECT topic, partition_id, committed_offset, leader_epoch, metadata, committed_at FROM txn_offsets
		WHERE group_id = $1 ORDER BY topic, partition_id, transactional_id`, group)
	if err != nil {
		return nil, fmt.Errorf("pending transactional offsets of group %q: %w", group, err)
	}
	return offs, nil
}

// ListAbortedTxns returns tp's aborted transactions overlapping [from, to).
func (s *Store) ListAbortedTxns(ctx context.Context, tp metadata.TopicPartition, from, to int64) ([]metadata.AbortedTxn, error) {
	as, err := queryAll(ctx, s.b.reader(), func(r rows) (metadata.AbortedTxn, error) {
		var a metadata.AbortedTxn
		err := r.Scan(&a.ProducerID, &a.FirstOffset, &a.LastOffset)
		return a, err
	}, `SELECT producer_id, first_offset, last_offset FROM aborted_txns
		WHERE topic_id = $1 AND partition_id = $2 AND last_offset >= $3 AND first_offset < $4
		ORDER BY first_offset, last_offset`, tp.TopicID[:], tp.Partition, from, to)
	if err != nil {
		return nil, fmt.Errorf("aborted transactions of %s in [%d, %d): %w", tp, from, to, err)
	}
	return as, nil
}
