package metadata

import (
	"context"
	"errors"
	"time"
)

// Transactions (Kafka exactly-once). A transaction coordinator keeps one
// Txn row per transactional ID; a partition's log keeps, per producer, the
// first offset of the producer's open transaction there (ProducerState),
// the partition's last stable offset (PartitionState.LastStableOffset) and
// an index of aborted transactions (AbortedTxn). docs/architecture.md,
// "Transactions", has the protocol and its proof.

// Sentinel errors of the transaction methods.
var (
	// ErrTxnFenced: a write to a transaction named a producer ID or epoch
	// that is not the transaction's current one (a zombie producer, or a
	// coordinator request under an older epoch). Nothing was written.
	ErrTxnFenced = errors.New("transaction producer fenced")
	// ErrTxnState: the transaction is not in a state that admits the
	// write (offsets for a transaction that is not ongoing, or for a
	// group it did not add). Nothing was written.
	ErrTxnState = errors.New("invalid transaction state")
	// ErrTxnNotFound: no transaction has the transactional ID.
	ErrTxnNotFound = errors.New("transactional id not found")
)

// TxnStatus is a transaction's state, Kafka's names.
type TxnStatus string

const (
	TxnEmpty          TxnStatus = "Empty"          // a producer ID, no transaction open
	TxnOngoing        TxnStatus = "Ongoing"        // partitions or groups added
	TxnPrepareCommit  TxnStatus = "PrepareCommit"  // decided: commit; markers being written
	TxnPrepareAbort   TxnStatus = "PrepareAbort"   // decided: abort; markers being written
	TxnCompleteCommit TxnStatus = "CompleteCommit" // every commit marker written
	TxnCompleteAbort  TxnStatus = "CompleteAbort"  // every abort marker written
)

// TxnPartition is one partition a transaction wrote to.
type TxnPartition struct {
	TopicID   TopicID
	Topic     string // the name when it was added, for describing
	Partition int32
}

// TP returns the partition's TopicPartition.
func (p TxnPartition) TP() TopicPartition {
	return TopicPartition{TopicID: p.TopicID, Partition: p.Partition}
}

// Txn is the coordinator's stored state of one transactional ID.
type Txn struct {
	TransactionalID string
	ProducerID      int64
	ProducerEpoch   int16
	// LastProducerID/LastProducerEpoch are the producer the ID had before
	// its epoch was exhausted and it got a new producer ID (-1 if none),
	// so a KIP-360 retry naming the old one is recognised.
	//
	// Under transactions V2 (ClientVersion 2) they are also the producer
	// ID and epoch before the last EndTxn bumped them, so a retried EndTxn
	// carrying them is recognised.
	LastProducerID    int64
	LastProducerEpoch int16
	// NextProducerID is the producer ID a V2 EndTxn that exhausted the
	// epoch handed to its producer (0: none; producer IDs start at 1): it
	// becomes ProducerID, at epoch 0, once the markers are written.
	NextProducerID int64
	// ClientVersion is the transaction version (Kafka's
	// transaction.version) of the client that last ended a transaction of
	// the ID: 2 for EndTxn v5 and later (every EndTxn bumps the epoch, and
	// the markers carry the bumped epoch), 0 before.
	ClientVersion int8
	State         TxnStatus
	TimeoutMs     int32
	Partitions    []TxnPartition // ordered by topic ID, partition; no duplicates
	Groups        []string       // consumer groups whose offsets it commits, sorted
	// StartedAt is when the open transaction (Ongoing, Prepare*) began;
	// zero otherwise. The coordinator aborts an Ongoing transaction at
	// StartedAt + TimeoutMs.
	StartedAt time.Time
	UpdatedAt time.Time
}

// TxnFilter selects transactions; zero fields match all.
type TxnFilter struct {
	States           []TxnStatus
	ProducerIDs      []int64
	TransactionalIDs []string
}

// AbortedTxn is one entry of a partition's aborted-transaction index: the
// producer's records in [FirstOffset, LastOffset) were aborted, and its
// abort marker is at LastOffset.
type AbortedTxn struct {
	ProducerID  int64
	FirstOffset int64
	LastOffset  int64
}

// TxnStore is the transaction part of Store.
type TxnStore interface {
	// GetTxn returns the transaction of id; found is false if none.
	GetTxn(ctx context.Context, id string) (t Txn, found bool, err error)
	// ListTxns returns the transactions matching f, ordered by
	// transactional ID.
	ListTxns(ctx context.Context, f TxnFilter) ([]Txn, error)
	// PutTxn stores t (insert or replace), fenced: in the same metadata
	// transaction the partition row of fence.Slot must name
	// fence.AgentID at fence.Epoch, else nothing is written and the error
	// wraps ErrGroupFenced. In that same transaction, the pending
	// transactional offsets of t.TransactionalID (AddTxnOffsets) are moved
	// into the group offsets when t.State is TxnPrepareCommit, and dropped
	// for every other state except TxnOngoing. So a transaction's offsets
	// become visible exactly when its commit is decided, and never after
	// an abort.
	PutTxn(ctx context.Context, fence GroupFence, t Txn) error
	// DeleteTxn removes the transaction of id if its producer ID and epoch
	// are still producerID and epoch (transactional.id.expiration.ms),
	// fenced as PutTxn. No error if it is gone.
	DeleteTxn(ctx context.Context, fence GroupFence, id string, producerID int64, epoch int16) error
	// AddTxnOffsets stores offsets (all of one group) as pending offsets of
	// transaction id, fenced by the group coordinator's fence (as
	// CommitFencedGroupOffsets). In the same metadata transaction, with
	// the transaction's row locked against a concurrent PutTxn, it checks
	// that the transaction exists (ErrTxnNotFound), has producerID and
	// epoch (else ErrTxnFenced), is TxnOngoing and has added the group
	// (else ErrTxnState). A pending offset replaces an earlier pending
	// offset of the same transaction, group and partition.
	AddTxnOffsets(ctx context.Context, fence GroupFence, id string, producerID int64, epoch int16, offsets []GroupOffset) error
	// PendingTxnOffsets returns the group's pending transactional offsets
	// (of every transaction), ordered by topic and partition, for KIP-447's
	// require_stable OffsetFetch.
	PendingTxnOffsets(ctx context.Context, group string) ([]GroupOffset, error)
	// ListAbortedTxns returns tp's aborted transactions with LastOffset >=
	// from and FirstOffset < to, ordered by FirstOffset. CommitObject
	// inserts them (PartitionCommit.AbortedTxns); SetLogStartOffset and
	// DeleteTopic delete those wholly below the log start.
	ListAbortedTxns(ctx context.Context, tp TopicPartition, from, to int64) ([]AbortedTxn, error)
}
