package broker

import (
	"context"
	"fmt"
	"time"

	"github.com/streamhouse/streamhouse/internal/batch"
	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/partlog"
)

// Read committed for every reader that is not a Kafka client (REST and
// gRPC consume, gRPC Subscribe, and anything else built on ConsumeBytes):
// they have no isolation level to choose, so they always get Kafka's
// read_committed view (DESIGN.md invariant 9). The log stops the read at
// the last stable offset (LSO) and lists the aborted transactions of the
// range it returned; here, in one place for every front end, the records
// of those transactions and the control batches (transaction markers) are
// dropped, and the next offset moves past them so a reader never stalls
// on a range that holds nothing it may see.

// readCommitted reads tp from offset up to its LSO, waiting up to wait
// while offset is at the LSO.
func (b *Broker) readCommitted(ctx context.Context, tp metadata.TopicPartition, offset int64, wait time.Duration) (partlog.ReadResult, error) {
	return b.plog.ReadWith(ctx, tp, offset, partlog.ReadOptions{MaxBytes: consumeReadBytes, MaxWait: wait, Isolation: partlog.ReadCommitted})
}

// CommittedOffsets returns a partition's log start offset, last stable
// offset and high watermark: a read_committed reader sees offsets below
// the LSO only (Subscribe with no offset starts there).
func (b *Broker) CommittedOffsets(ctx context.Context, topic string, partition int32) (logStart, lso, hw int64, err error) {
	_, tp, err := b.partition(ctx, topic, partition)
	if err != nil {
		return 0, 0, 0, err
	}
	logStart, lso, hw, err = b.plog.StableOffsets(ctx, tp)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("offsets of %s/%d: %w", topic, partition, err)
	}
	return logStart, lso, hw, nil
}

// inAbortedTxn reports whether the batch with header h holds records of an
// aborted transaction: a transactional data batch whose producer has an
// aborted transaction (from aborted, the log's index for the range read)
// that began at or before the batch and whose abort marker comes after it.
// This is the rule of Kafka's read_committed consumers.
func inAbortedTxn(h batch.Header, aborted []metadata.AbortedTxn) bool {
	if !h.IsTransactional() || h.IsControl() {
		return false
	}
	for _, a := range aborted {
		if a.ProducerID == h.ProducerID && a.FirstOffset <= h.BaseOffset && h.BaseOffset < a.LastOffset {
			return true
		}
	}
	return false
}
