package grpcapi

import (
	"context"
	"errors"
	"math"
	"strconv"

	"github.com/twmb/franz-go/pkg/kerr"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/streamhouse/streamhouse/internal/batch"
	"github.com/streamhouse/streamhouse/internal/broker"
	"github.com/streamhouse/streamhouse/internal/metadata"
)

// codeOf maps a broker, log, batch or metadata error to its gRPC code:
//
//   - InvalidArgument: bad input, including a partition number the topic
//     does not have and a batch over max.message.bytes.
//   - NotFound: an unknown topic or group (GetOffset also answers NotFound
//     for a partition the group has no offset for).
//   - AlreadyExists: the topic or group exists.
//   - OutOfRange: an offset below the log start or above the high
//     watermark (gRPC's code for reading past the end).
//   - FailedPrecondition: an idempotent producer's sequence gap or fenced
//     (older) epoch, a fenced transactional producer (Kafka's
//     PRODUCER_FENCED, INVALID_PRODUCER_EPOCH), a transaction in a state
//     that does not admit the call (INVALID_TXN_STATE, a batch for a
//     transaction not open on the partition): the request is well formed,
//     the producer's state is not, and resending it unchanged cannot
//     succeed.
//   - NotFound also: a transactional ID the coordinator does not know.
//   - Unavailable: this agent does not lead the partition (or lost it while
//     committing) or does not coordinate the transactional ID, the
//     transaction is busy finishing its previous end
//     (CONCURRENT_TRANSACTIONS), the agent is shutting down, or cannot
//     reach the metadata or object store for now; retrying, possibly
//     elsewhere, helps.
//   - DeadlineExceeded, Canceled: the caller's context.
//   - Internal: anything else (logged).
func codeOf(err error) codes.Code {
	var (
		fenced *metadata.FencedError
		ke     *kerr.Error
	)
	switch {
	case errors.Is(err, broker.ErrUnknownTopic), errors.Is(err, metadata.ErrTopicNotFound),
		errors.Is(err, broker.ErrUnknownGroup), errors.Is(err, metadata.ErrGroupNotFound):
		return codes.NotFound
	case errors.Is(err, broker.ErrTopicExists), errors.Is(err, metadata.ErrTopicExists),
		errors.Is(err, broker.ErrGroupExists), errors.Is(err, metadata.ErrGroupExists):
		return codes.AlreadyExists
	case errors.Is(err, broker.ErrInvalidTopic), errors.Is(err, broker.ErrInvalidPartitions),
		errors.Is(err, broker.ErrInvalidConfig), errors.Is(err, broker.ErrInvalidRequest),
		errors.Is(err, broker.ErrUnknownPartition), errors.Is(err, metadata.ErrPartitionNotFound),
		errors.Is(err, metadata.ErrInvalidPartitions),
		errors.Is(err, batch.ErrInvalidRecord), errors.Is(err, batch.ErrCorrupt),
		errors.Is(err, batch.ErrUnsupportedMagic), errors.Is(err, batch.ErrTooLarge):
		return codes.InvalidArgument
	case errors.Is(err, broker.ErrOffsetOutOfRange), errors.Is(err, metadata.ErrOffsetOutOfRange):
		return codes.OutOfRange
	case errors.Is(err, broker.ErrOutOfOrderSequence), errors.Is(err, broker.ErrInvalidProducerEpoch),
		errors.Is(err, broker.ErrInvalidTxnState), errors.Is(err, metadata.ErrTxnFenced), errors.Is(err, metadata.ErrTxnState):
		return codes.FailedPrecondition
	case errors.Is(err, metadata.ErrTxnNotFound):
		return codes.NotFound
	case errors.Is(err, broker.ErrNotCoordinator):
		return codes.Unavailable
	case errors.As(err, &ke):
		return kerrCode(ke)
	case errors.Is(err, broker.ErrNotLeader), errors.Is(err, metadata.ErrLeaseHeld),
		errors.As(err, &fenced), errors.Is(err, broker.ErrClosed), broker.IsUnavailable(err):
		return codes.Unavailable
	case errors.Is(err, context.DeadlineExceeded):
		return codes.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		return codes.Canceled
	}
	return codes.Internal
}

// kerrCode maps the Kafka outcomes of the transaction coordinator (and of
// a forwarded produce).
func kerrCode(ke *kerr.Error) codes.Code {
	switch ke {
	case kerr.ProducerFenced, kerr.InvalidProducerEpoch, kerr.InvalidTxnState, kerr.InvalidProducerIDMapping,
		kerr.TransactionAbortable, kerr.OutOfOrderSequenceNumber:
		return codes.FailedPrecondition
	case kerr.TransactionalIDNotFound:
		return codes.NotFound
	case kerr.InvalidTransactionTimeout, kerr.InvalidRequest, kerr.InvalidRecord:
		return codes.InvalidArgument
	case kerr.ConcurrentTransactions:
		return codes.Unavailable
	}
	if ke.Retriable {
		return codes.Unavailable
	}
	return codes.Internal
}

// toStatus turns err into a status error. Internal errors are logged and
// their text kept from the client.
func (s *Server) toStatus(method string, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	code := codeOf(err)
	msg := err.Error()
	switch code {
	case codes.Internal:
		s.log.Error("grpc request failed", "method", method, "err", err)
		msg = "internal error; see the server log"
	case codes.Unavailable:
		switch {
		case errors.Is(err, broker.ErrClosed):
			msg = "the server is shutting down: " + msg
		case broker.IsUnavailable(err):
			msg = "storage is unavailable for now; retry: " + msg
		case errors.Is(err, broker.ErrNotCoordinator), errors.Is(err, kerr.ConcurrentTransactions),
			errors.Is(err, kerr.NotCoordinator), errors.Is(err, kerr.CoordinatorNotAvailable), errors.Is(err, kerr.CoordinatorLoadInProgress):
			msg = "the transaction coordinator is busy or elsewhere; retry: " + msg
		default:
			msg = "this agent does not lead the partition; retry: " + msg
		}
	}
	return status.Error(code, msg)
}

func invalid(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, format, args...)
}

// Input checks shared by the methods. Each answers InvalidArgument.

func checkTopic(name string) error {
	if err := broker.ValidateTopicName(name); err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	return nil
}

func checkGroup(group string) error {
	if err := broker.ValidateGroupID(group); err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	return nil
}

// partitionArg converts a wire partition number.
func partitionArg(p uint32) (int32, error) {
	if p > math.MaxInt32 {
		return 0, invalid("partition %d is out of range", p)
	}
	return int32(p), nil
}

// int64Arg converts a wire offset or timestamp.
func int64Arg(what string, v uint64) (int64, error) {
	if v > math.MaxInt64 {
		return 0, invalid("%s %d is out of range", what, v)
	}
	return int64(v), nil
}

// producerIDArg parses a producer ID as InitProducer hands it out.
func producerIDArg(s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id < 0 {
		return 0, invalid("producer_id %q is not a producer id (a non-negative decimal integer from InitProducer)", s)
	}
	return id, nil
}

// epochArg converts a wire producer epoch (Kafka's are int16).
func epochArg(e uint32) (int16, error) {
	if e > math.MaxInt16 {
		return 0, invalid("producer_epoch %d is out of range 0..%d", e, math.MaxInt16)
	}
	return int16(e), nil
}
