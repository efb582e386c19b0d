package kafka

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/streamhouse/streamhouse/internal/batch"
	"github.com/streamhouse/streamhouse/internal/broker"
	"github.com/streamhouse/streamhouse/internal/metadata"
)

// errorCode maps an error from the broker API to the Kafka error code a
// client understands, for the group and admin APIs. nil maps to 0. A
// transient storage failure (broker.IsUnavailable) is
// COORDINATOR_NOT_AVAILABLE, which clients retry (after finding the
// coordinator again). Unknown errors are UNKNOWN_SERVER_ERROR, kept for
// bugs (and should be logged by the caller).
func errorCode(err error) int16 {
	return errorCodeOr(err, kerr.CoordinatorNotAvailable.Code)
}

// codeFor maps a broker error to its Kafka code for the data path (what
// names the API: "produce", "fetch", "metadata" ...), logging the ones that
// are not the client's doing. A transient storage failure is
// KAFKA_STORAGE_ERROR, which producers and consumers retry after
// refreshing metadata; in Metadata responses it is LEADER_NOT_AVAILABLE.
func (s *Server) codeFor(err error, what string) int16 {
	unavailable := kerr.KafkaStorageError.Code
	if what == "metadata" {
		unavailable = kerr.LeaderNotAvailable.Code
	}
	code := errorCodeOr(err, unavailable)
	switch {
	case code == kerr.UnknownServerError.Code && !errors.Is(err, context.Canceled):
		s.log.Warn("kafka "+what+" failed", "err", err)
	case code == unavailable && broker.IsUnavailable(err):
		s.log.Debug("kafka "+what+" met unavailable storage", "err", err)
	}
	return code
}

// errorCodeOr is errorCode with unavailable as the code of a transient
// storage failure.
func errorCodeOr(err error, unavailable int16) int16 {
	if err == nil {
		return 0
	}
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return ke.Code
	}
	switch {
	case errors.Is(err, broker.ErrNotLeader), errors.Is(err, metadata.ErrLeaseHeld):
		return kerr.NotLeaderForPartition.Code
	case errors.Is(err, broker.ErrOffsetOutOfRange):
		return kerr.OffsetOutOfRange.Code
	case errors.Is(err, broker.ErrOutOfOrderSequence):
		return kerr.OutOfOrderSequenceNumber.Code
	case errors.Is(err, broker.ErrInvalidProducerEpoch):
		return kerr.InvalidProducerEpoch.Code
	case errors.Is(err, broker.ErrInvalidTxnState):
		return kerr.InvalidTxnState.Code
	case errors.Is(err, broker.ErrCoordinatorFenced):
		return kerr.TransactionCoordinatorFenced.Code
	case errors.Is(err, broker.ErrNotCoordinator):
		return kerr.NotCoordinator.Code
	case errors.Is(err, broker.ErrClosed):
		return kerr.NotLeaderForPartition.Code
	case errors.Is(err, batch.ErrTooLarge):
		return kerr.MessageTooLarge.Code
	case errors.Is(err, batch.ErrCorrupt):
		return kerr.CorruptMessage.Code
	case errors.Is(err, batch.ErrUnsupportedMagic):
		return kerr.UnsupportedForMessageFormat.Code
	case errors.Is(err, broker.ErrInvalidTimestamp):
		// Before ErrInvalidRecord, which it wraps for front ends that have
		// no code of their own for it.
		return kerr.InvalidTimestamp.Code
	case errors.Is(err, batch.ErrInvalidRecord):
		return kerr.InvalidRecord.Code
	case errors.Is(err, broker.ErrUnknownTopic), errors.Is(err, broker.ErrUnknownPartition):
		return kerr.UnknownTopicOrPartition.Code
	case errors.Is(err, broker.ErrInvalidTopic):
		return kerr.InvalidTopicException.Code
	case errors.Is(err, broker.ErrTopicExists):
		return kerr.TopicAlreadyExists.Code
	case errors.Is(err, broker.ErrInvalidPartitions):
		return kerr.InvalidPartitions.Code
	case errors.Is(err, broker.ErrInvalidConfig):
		return kerr.InvalidConfig.Code
	case errors.Is(err, broker.ErrUnknownGroup):
		return kerr.GroupIDNotFound.Code
	case errors.Is(err, broker.ErrInvalidRequest):
		return kerr.InvalidRequest.Code
	case errors.Is(err, context.DeadlineExceeded):
		return kerr.RequestTimedOut.Code
	case broker.IsUnavailable(err):
		return unavailable
	}
	return kerr.UnknownServerError.Code
}
