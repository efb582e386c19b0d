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
	// TxnSlot returns the coordinator slot of transactional ID id (a
	// partition of the slot topic), wherever it is led.
	TxnSlot(ctx context.Context, id string) (metadata.TopicPartition, error)
	// NextProducerID allocates a never reused producer ID.
	NextProducerID(ctx context.Context) (int64, error)
	// WriteMarker writes m to partition p at its leader (this agent, or
	// another one over the Kafka protocol's WriteTxnMarkers) and returns
	// once it is durable; retriable errors (no leader yet, leader moved,
	// store unavailable) are returned for the caller to retry.
	WriteMarker(ctx context.Context, p metadata.TxnPartition, m partlog.Marker) error
	// RemoteAddToTxn adds partitions and a consumer group (either may be
	// empty) to the open transaction of id at the agent coordinating it
	// (another one), opening it: the implicit adds of transactions V2.
	// The coordinator's refusals are returned as its kerr errors.
	RemoteAddToTxn(ctx context.Context, id string, producerID int64, epoch int16, parts []metadata.TxnPartition, group string) error
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
	// MarkerTimeout bounds one attempt to write a marker at a partition's
	// leader. After an attempt that timed out, the next one waits as long
	// again, so an attempt still queued at the leader has given up (the
	// leader bounds its own handling by the same timeout) before a
	// retry can succeed and the transaction move on. Default 10 s.
	MarkerTimeout time.Duration
	// CompletionWait bounds how long a request for a transactional ID
	// waits for the markers of its previous transaction before it is
	// answered CONCURRENT_TRANSACTIONS (which clients retry). Default 5 s.
	CompletionWait time.Duration
	// IDExpiration is how long a transactional ID with no open
	// transaction may stay unused before it is forgotten (Kafka's
	// transactional.id.expiration.ms): its producer ID and epoch are
	// dropped, and its next InitProducerId starts over with a new producer
	// ID. Checked every ExpirationInterval. Defaults 7 days and 1 hour.
	IDExpiration       time.Duration
	ExpirationInterval time.Duration
	// MaxPartitions bounds the partitions one transaction may add (a
	// client-caused allocation in memory and in the store). Default
	// 10000.
	MaxPartitions int
}

// DefaultMarkerTimeout is Config.MarkerTimeout's default, which the
// leaders' WriteTxnMarkers handling is bounded by too.
const DefaultMarkerTimeout = 10 * time.Second

func (c *Config) setDefaults() error {
	if c.Backend == nil {
		return errors.New("txn config: Backend is required")
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.MaxTimeout <= 0 {
		c.MaxTimeout = 15 * time.Minute
	}
	if c.ScanInterval <= 0 {
		c.ScanInterval = time.Second
	}
	if c.MarkerTimeout <= 0 {
		c.MarkerTimeout = DefaultMarkerTimeout
	}
	if c.CompletionWait <= 0 {
		c.CompletionWait = 5 * time.Second
	}
	if c.IDExpiration <= 0 {
		c.IDExpiration = 7 * 24 * time.Hour
	}
	if c.ExpirationInterval <= 0 {
		c.ExpirationInterval = time.Hour
	}
	if c.MaxPartitions <= 0 {
		c.MaxPartitions = 10000
	}
	return nil
}
