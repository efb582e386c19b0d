package partlog

import (
	"context"
	"errors"
	"time"

	"github.com/streamhouse/streamhouse/internal/metadata"
)

// Transactions in the partition log (docs/architecture.md,
// "Transactions"): transactional batches open a transaction of their
// producer on the partition, a marker (a control batch) closes it, the last
// stable offset (LSO) is the first offset of the oldest transaction still
// open, and aborted transactions are indexed so read_committed readers can
// drop their records.

// ErrInvalidTxnState: a transactional batch for a transaction its
// coordinator does not have open on this partition (never added, already
// decided, or from an idempotent producer that set the transactional bit):
// Kafka INVALID_TXN_STATE. Nothing was stored.
var ErrInvalidTxnState = errors.New("invalid transaction state")

// VerifyTxnFunc asks the transaction coordinator whether producerID at
// epoch has a transaction open that includes tp. The log calls it before
// storing a transactional batch that would open a transaction of the
// producer on tp (Kafka's KIP-890 server-side verification), so a late or
// forged transactional write can never leave a transaction open that no
// coordinator will close (a "hanging" transaction that would hold the LSO
// forever). It returns nil to admit the batch, an error wrapping
// ErrInvalidTxnState or ErrInvalidProducerEpoch to refuse it, or another
// error (retriable) when it cannot tell.
type VerifyTxnFunc func(ctx context.Context, tp metadata.TopicPartition, producerID int64, epoch int16) error

// Isolation is a reader's isolation level (Kafka's isolation_level).
type Isolation int8

const (
	// ReadUncommitted reads up to the high watermark.
	ReadUncommitted Isolation = 0
	// ReadCommitted reads up to the last stable offset, and gets the
	// aborted transactions of the range it read.
	ReadCommitted Isolation = 1
)

// Marker is a transaction marker for one partition.
type Marker struct {
	ProducerID       int64
	ProducerEpoch    int16
	Commit           bool  // commit marker; false: abort
	CoordinatorEpoch int32 // the coordinator's slot lease epoch
}

// MarkerResult says what WriteMarker did.
type MarkerResult struct {
	// Written is false when the producer had no transaction open on the
	// partition (the marker was written before, or the producer never
	// wrote there): nothing was stored, and that is success.
	Written bool
	Offset  int64 // the marker's offset when Written
}

// ReadOptions are Read's options beyond the offset.
type ReadOptions struct {
	MaxBytes  int
	MaxWait   time.Duration
	Isolation Isolation
}

var errTxnUnimplemented = errors.New("transactions: not implemented yet")

// WriteMarker appends a marker for m's producer to tp and waits until it
// is committed (durable). If the producer has a transaction open on tp it
// writes the control batch (Kafka's EndTxnMarker: key version 0 and type
// 0 abort / 1 commit; value version 0 and the coordinator epoch), closes
// the transaction, adds it to the aborted index when aborting, raises the
// producer's epoch to m.ProducerEpoch (fencing older writes) and advances
// the LSO. An epoch older than the producer's current one is refused
// (ErrInvalidProducerEpoch). ErrNotLeader when this agent does not lead
// tp.
func (l *Log) WriteMarker(ctx context.Context, tp metadata.TopicPartition, m Marker) (MarkerResult, error) {
	return MarkerResult{}, errTxnUnimplemented
}

// ReadWith is Read with options: with ReadCommitted the read stops at the
// last stable offset (waiting, with MaxWait, while offset is at it) and
// ReadResult.Aborted lists the aborted transactions overlapping the
// returned range.
func (l *Log) ReadWith(ctx context.Context, tp metadata.TopicPartition, offset int64, opts ReadOptions) (ReadResult, error) {
	return ReadResult{}, errTxnUnimplemented
}

// StableOffsets returns tp's log start offset, last stable offset and high
// watermark (from memory when led here, else from the store).
func (l *Log) StableOffsets(ctx context.Context, tp metadata.TopicPartition) (logStart, lso, hw int64, err error) {
	return 0, 0, 0, errTxnUnimplemented
}

// Producers returns tp's producer state: from memory when led here
// (including appends not yet committed), else from the store. For
// DescribeProducers.
func (l *Log) Producers(ctx context.Context, tp metadata.TopicPartition) ([]metadata.ProducerState, error) {
	return nil, errTxnUnimplemented
}
