package broker

import (
	"errors"

	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/objstore"
	"github.com/streamhouse/streamhouse/internal/partlog"
)

// The names front ends need from the partition log, re-exported so that a
// front end (Kafka, REST, gRPC, SQL) imports the broker and never the log:
// the broker is the one API every front end calls (DESIGN.md §1).

// AckMode says when a produce returns.
type AckMode = partlog.AckMode

// Ack modes: none answers at once, buffered once the batch is in the write
// buffer, durable once it is committed in the metadata store.
const (
	AckNone     = partlog.AckNone
	AckBuffered = partlog.AckBuffered
	AckDurable  = partlog.AckDurable
)

type (
	// AppendResult is what a produce assigned: base offset, timestamp, log start.
	AppendResult = partlog.AppendResult
	// Appending is a produce in flight; Wait returns its AppendResult.
	Appending = partlog.Appending
	// ReadResult is a fetch's answer: record bytes as stored plus
	// watermarks (high watermark, last stable offset, log start) and, for
	// a read_committed read, the aborted transactions of the range.
	ReadResult = partlog.ReadResult
	// ReadOptions are a fetch's limits and isolation level.
	ReadOptions = partlog.ReadOptions
	// Isolation is a reader's isolation level.
	Isolation = partlog.Isolation
	// Marker is a transaction marker for one partition.
	Marker = partlog.Marker
	// MarkerResult says whether a marker was written, and where.
	MarkerResult = partlog.MarkerResult
)

// Isolation levels: read_uncommitted reads to the high watermark,
// read_committed to the last stable offset.
const (
	ReadUncommitted = partlog.ReadUncommitted
	ReadCommitted   = partlog.ReadCommitted
)

// Errors front ends map to their protocol's codes.
var (
	ErrNotLeader            = partlog.ErrNotLeader
	ErrOffsetOutOfRange     = partlog.ErrOffsetOutOfRange
	ErrOutOfOrderSequence   = partlog.ErrOutOfOrderSequence
	ErrInvalidProducerEpoch = partlog.ErrInvalidProducerEpoch
	// ErrInvalidTxnState: a transactional write the transaction's
	// coordinator did not admit (Kafka INVALID_TXN_STATE).
	ErrInvalidTxnState = partlog.ErrInvalidTxnState
	// ErrCoordinatorFenced: a transaction marker from a coordinator epoch
	// older than the last marker's (Kafka TRANSACTION_COORDINATOR_FENCED).
	ErrCoordinatorFenced = partlog.ErrCoordinatorFenced
	ErrClosed            = partlog.ErrClosed
	// ErrInvalidTimestamp wraps batch.ErrInvalidRecord (Kafka answers
	// INVALID_TIMESTAMP).
	ErrInvalidTimestamp = partlog.ErrInvalidTimestamp
)

// IsUnavailable reports whether err is a transient failure of the metadata
// store or the object store (unreachable, restarting, overloaded, too
// slow): the request may succeed when retried, so front ends answer with
// their protocol's retriable code and keep "unknown error" for bugs.
func IsUnavailable(err error) bool {
	return errors.Is(err, metadata.ErrUnavailable) || errors.Is(err, objstore.ErrUnavailable)
}
