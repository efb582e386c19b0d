// Package txn is the transaction coordinator of Kafka's exactly-once
// protocol: InitProducerId with a transactional ID (epoch bumps, fencing
// of older producers, abort of their open transaction), AddPartitionsToTxn,
// AddOffsetsToTxn, EndTxn, transaction timeouts, and the recovery of
// decided transactions whose markers are not all written.
//
// A transactional ID hashes to a coordinator slot, the same leased slots
// as consumer groups (broker.GroupSlot): the agent leading the slot
// coordinates the ID, and every state change is written to the metadata
// store fenced by the slot's lease (metadata.TxnStore.PutTxn), so a
// coordinator that lost its slot writes nothing. State lives in the store;
// memory holds only per-ID locks and the markers in flight.
//
// Commit protocol (docs/architecture.md, "Transactions"): EndTxn writes
// PrepareCommit or PrepareAbort (in the same metadata transaction the
// transaction's consumer-group offsets become visible or are dropped),
// answers, then writes a marker to every partition of the transaction at
// the partition's leader, and writes CompleteCommit or CompleteAbort once
// all are durable. A coordinator that takes a slot over finishes every
// Prepare* transaction of the slot, so a decided transaction always ends
// with all its markers written, never some.
//
// Outcomes a Kafka client branches on are returned as kerr errors
// (kerr.ProducerFenced, kerr.ConcurrentTransactions, ...), which the Kafka
// front end puts on the wire unchanged and the gRPC front end maps.
package txn

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/partlog"
)

// Backend is what the coordinator needs from the agent (the broker
// implements it).
type Backend interface {
	// TxnFence returns the fence under which this agent coordinates
	// transactional ID id now; an error wrapping broker.ErrNotCoordinator
	// when it does not lead the ID's slot.
	TxnFence(ctx context.Context, id string) (metadata.GroupFence, error)
	// Holds reports whether fence still holds (no I/O).
	Holds(fence metadata.GroupFence) bool
	// NextProducerID allocates a never reused producer ID.
	NextProducerID(ctx context.Context) (int64, error)
	// WriteMarker writes m to partition p at its leader (this agent, or
	// another one over the Kafka protocol's WriteTxnMarkers) and returns
	// once it is durable; retriable errors (no leader yet, leader moved,
	// store unavailable) are returned for the caller to retry.
	WriteMarker(ctx context.Context, p metadata.TxnPartition, m partlog.Marker) error
	// Store is the metadata store.
	Store() metadata.Store
}

// Config configures a Coordinator.
type Config struct {
	Backend Backend
	Logger  *slog.Logger
	Now     func() time.Time
	// MaxTimeout bounds transaction.timeout.ms (Kafka's
	// transaction.max.timeout.ms). Default 15 minutes.
	MaxTimeout time.Duration
	// ScanInterval spaces the scans for timed-out transactions and for
	// decided transactions of slots this agent leads whose markers are not
	// all written. Default 1 s.
	ScanInterval time.Duration
}

// Coordinator runs the transactions of the slots this agent leads.
type Coordinator struct {
	cfg Config
	log *slog.Logger
}

// New creates a Coordinator; Run starts its scans.
func New(cfg Config) (*Coordinator, error) {
	return &Coordinator{cfg: cfg, log: cfg.Logger}, nil
}

// Run scans, every ScanInterval until ctx is done, for transactions of
// slots this agent leads that timed out (aborted) or are decided with
// markers not all written (finished).
func (c *Coordinator) Run(ctx context.Context) { <-ctx.Done() }

// InitProducerID is Kafka's InitProducerId for transactional ID id:
// producerID/epoch are the caller's (KIP-360) or -1/-1. It returns the
// producer ID and epoch to use.
func (c *Coordinator) InitProducerID(ctx context.Context, id string, timeoutMs int32, producerID int64, epoch int16) (int64, int16, error) {
	return -1, -1, errUnimplemented
}

// AddPartitions adds partitions to the open transaction of id (opening it
// if there is none): all or none.
func (c *Coordinator) AddPartitions(ctx context.Context, id string, producerID int64, epoch int16, parts []metadata.TxnPartition) error {
	return errUnimplemented
}

// AddOffsets adds consumer group group to the open transaction of id.
func (c *Coordinator) AddOffsets(ctx context.Context, id string, producerID int64, epoch int16, group string) error {
	return errUnimplemented
}

// Begin opens a transaction of id with no partitions yet (gRPC
// BeginTransaction; Kafka clients open one with their first add). It
// returns the stored transaction.
func (c *Coordinator) Begin(ctx context.Context, id string, producerID int64, epoch int16) (metadata.Txn, error) {
	return metadata.Txn{}, errUnimplemented
}

// EndTxn commits or aborts the open transaction of id. It returns once the
// decision is stored; the markers follow.
func (c *Coordinator) EndTxn(ctx context.Context, id string, producerID int64, epoch int16, commit bool) error {
	return errUnimplemented
}

// Describe returns the stored state of id (kerr.TransactionalIDNotFound
// if none).
func (c *Coordinator) Describe(ctx context.Context, id string) (metadata.Txn, error) {
	return metadata.Txn{}, errUnimplemented
}

// List returns the transactions matching f.
func (c *Coordinator) List(ctx context.Context, f metadata.TxnFilter) ([]metadata.Txn, error) {
	return nil, errUnimplemented
}

// Verify is the log's partlog.VerifyTxnFunc: nil if producerID at epoch
// has an Ongoing transaction that includes tp.
func (c *Coordinator) Verify(ctx context.Context, tp metadata.TopicPartition, producerID int64, epoch int16) error {
	return errUnimplemented
}

// CheckMarker checks that marker m for tp is one a coordinator decided
// (the transaction of m's producer is PrepareCommit/CompleteCommit for a
// commit marker, PrepareAbort/CompleteAbort for an abort marker, at m's
// epoch, and includes tp), so a WriteTxnMarkers request from anything but
// a coordinator changes nothing. kerr.InvalidTxnState otherwise.
func (c *Coordinator) CheckMarker(ctx context.Context, tp metadata.TopicPartition, m partlog.Marker) error {
	return errUnimplemented
}

var errUnimplemented = errors.New("transaction coordinator: not implemented yet")
