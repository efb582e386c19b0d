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
// client understands. nil maps to 0. Unknown errors are UNKNOWN_SERVER_ERROR
// (and should be logged by the caller).
func errorCode(err error) int16 {
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
	case errors.Is(err, broker.ErrClosed):
		return kerr.NotLeaderForPartition.Code
	case errors.Is(err, batch.ErrTooLarge):
		return kerr.MessageTooLarge.Code
	case errors.Is(err, batch.ErrCorrupt):
		return kerr.CorruptMessage.Code
	case errors.Is(err, batch.ErrUnsupportedMagic):
		return kerr.UnsupportedForMessageFormat.Code
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
	}
	return kerr.UnknownServerError.Code
}
