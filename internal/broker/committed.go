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

// hiddenBatch reports whether a committed reader never sees the batch
// with header h: a control batch (a transaction marker), or a batch of an
// aborted transaction (aborted: the read's aborted list).
func hiddenBatch(h batch.Header, aborted []metadata.AbortedTxn) bool {
	return h.IsControl() || inAbortedTxn(h, aborted)
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

// maxHiddenScanBytes bounds what one PastHidden call reads.
const maxHiddenScanBytes = 16 << 20

// PastHidden returns the first offset at or after from whose batch a
// reader gets records from: it moves over the batches hiddenBatch names
// (markers, records of aborted transactions), which every read_committed
// reader steps over without returning anything, and over offsets key
// compaction emptied. It returns to when nothing before to is returned,
// and also once maxHiddenScanBytes of hidden batches were read.
//
// OffsetForLeaderEpoch uses it for the end of an epoch (see
// internal/kafka/23_offset_for_leader_epoch.go): a reader's position can
// be past such batches of a newer epoch while the epoch it validates with
// is that of the last record it returned, so the end of that epoch must
// not fall before them. An end too far is harmless (a StreamHouse log is
// never truncated, so there is no loss for it to hide); one too near makes
// the reader report records lost and move back.
func (b *Broker) PastHidden(ctx context.Context, topic string, partition int32, from, to int64) (int64, error) {
	_, tp, err := b.partition(ctx, topic, partition)
	if err != nil {
		return 0, err
	}
	// The first read takes one batch (usually the one a reader gets
	// records from, so the answer); each further read twice as much.
	readBytes := 1
	for scanned := 0; from < to && scanned < maxHiddenScanBytes; readBytes = min(2*max(readBytes, 64<<10), consumeReadBytes) {
		res, err := b.plog.ReadWith(ctx, tp, from, partlog.ReadOptions{MaxBytes: readBytes})
		if err != nil {
			return 0, fmt.Errorf("past hidden batches of %s/%d at %d: %w", topic, partition, from, err)
		}
		if res.Size == 0 {
			return to, nil // nothing left up to the high watermark
		}
		scanned += res.Size
		raws, err := batch.Split(res.Bytes())
		if err != nil {
			return 0, fmt.Errorf("past hidden batches of %s/%d at %d: %w", topic, partition, from, err)
		}
		aborted, err := b.plog.AbortedTxns(ctx, tp, from, res.NextOffset)
		if err != nil {
			return 0, fmt.Errorf("past hidden batches of %s/%d at %d: %w", topic, partition, from, err)
		}
		for _, raw := range raws {
			h, err := batch.ParseHeader(raw)
			if err != nil {
				return 0, fmt.Errorf("past hidden batches of %s/%d at %d: %w", topic, partition, from, err)
			}
			switch {
			case h.LastOffset() < from:
				continue // the first batch may start before from
			case h.BaseOffset >= to:
				return to, nil
			case !hiddenBatch(h, aborted):
				return max(h.BaseOffset, from), nil
			}
			from = h.LastOffset() + 1
		}
	}
	return to, nil
}

// TxnPartitionOf names partition p of topic as a transaction's partition.
func (b *Broker) TxnPartitionOf(ctx context.Context, topic string, partition int32) (metadata.TxnPartition, error) {
	t, tp, err := b.partition(ctx, topic, partition)
	if err != nil {
		return metadata.TxnPartition{}, err
	}
	return metadata.TxnPartition{TopicID: tp.TopicID, Topic: t.Name, Partition: tp.Partition}, nil
}

// AppendTxnRecords is AppendRecords for a batch of the transactional
// producer of transactional ID txnID (opts.Transactional, with the
// producer's ID, epoch and sequence): ONE
// batch, appended here if this agent leads the partition, else forwarded
// to its leader (forward.go), whose log admits it only if the coordinator
// has the partition in the producer's open transaction.
func (b *Broker) AppendTxnRecords(ctx context.Context, txnID, topic string, partition int32, records []Record, mode partlog.AckMode, opts batch.BuildOptions) (partlog.AppendResult, error) {
	if !opts.Transactional || opts.ProducerID < 0 || txnID == "" {
		return partlog.AppendResult{}, fmt.Errorf("%w: not a transactional batch", ErrInvalidRequest)
	}
	t, _, raw, err := b.buildOne(ctx, topic, partition, records, opts)
	if err != nil {
		return partlog.AppendResult{}, err
	}
	return b.append(ctx, t, partition, raw, mode, txnID)
}

// StoredTxn returns the transaction state stored for transactional ID id
// (found false if none), read from the metadata store on any agent: for
// answers that must not depend on which agent coordinates the ID (a gRPC
// Heartbeat). Changes go through the coordinator.
func (b *Broker) StoredTxn(ctx context.Context, id string) (t metadata.Txn, found bool, err error) {
	t, found, err = b.store.GetTxn(ctx, id)
	if err != nil {
		return t, false, fmt.Errorf("transaction %q: %w", id, err)
	}
	return t, found, nil
}

// TxnOfProducer returns the stored transaction state of the transactional
// ID whose current producer is producerID (found false if none), from any
// agent.
func (b *Broker) TxnOfProducer(ctx context.Context, producerID int64) (t metadata.Txn, found bool, err error) {
	ts, err := b.store.ListTxns(ctx, metadata.TxnFilter{ProducerIDs: []int64{producerID}})
	if err != nil {
		return t, false, fmt.Errorf("transaction of producer %d: %w", producerID, err)
	}
	for _, t := range ts {
		if t.ProducerID == producerID {
			return t, true, nil
		}
	}
	return metadata.Txn{}, false, nil
}
