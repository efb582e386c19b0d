package broker

import (
	"context"
	"fmt"

	"github.com/streamhouse/streamhouse/internal/batch"
	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/partlog"
)

// AppendRecords builds records into ONE RecordBatch v2 for one partition
// and appends it, returning the log's result. Unlike ProduceRecords it
// keeps the batch whole, so an idempotent producer's batch (opts with
// ProducerID >= 0) goes through the log's sequence checks as one unit: a
// resend of an earlier batch stores nothing and comes back with Duplicate
// set and the original's offsets.
func (b *Broker) AppendRecords(ctx context.Context, topic string, partition int32, records []Record, mode partlog.AckMode, opts batch.BuildOptions) (partlog.AppendResult, error) {
	t, tp, raw, err := b.buildOne(ctx, topic, partition, records, opts)
	if err != nil {
		return partlog.AppendResult{}, err
	}
	res, err := b.plog.Append(ctx, tp, raw, mode)
	if err == nil {
		b.countIn(t, raw)
	}
	return res, err
}

// buildOne validates records for partition of topic and builds them into
// one RecordBatch v2 with opts.
func (b *Broker) buildOne(ctx context.Context, topic string, partition int32, records []Record, opts batch.BuildOptions) (metadata.Topic, metadata.TopicPartition, []byte, error) {
	if len(records) == 0 {
		return metadata.Topic{}, metadata.TopicPartition{}, nil, fmt.Errorf("%w: no records", ErrInvalidRequest)
	}
	t, tp, err := b.partition(ctx, topic, partition)
	if err != nil {
		return t, tp, nil, err
	}
	if err := b.validateRecords(ctx, t, records); err != nil {
		return t, tp, nil, err
	}
	raw, err := batch.Build(records, opts)
	if err != nil {
		return t, tp, nil, fmt.Errorf("%w: %w", ErrInvalidRequest, err)
	}
	return t, tp, raw, nil
}
