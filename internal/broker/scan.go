package broker

import (
	"context"
	"fmt"

	"github.com/streamhouse/streamhouse/internal/batch"
	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/partlog"
)

// Scanner reads a range of a partition's committed records batch by batch
// without copying them (the SQL scan's read path). It reads what
// ConsumeBytes reads (committed.go: never past the last stable offset, no
// control records, no records of aborted transactions) through the same
// log reads and caches, but hands out each batch's records where they lie:
// in the log's cache for an uncompressed batch, in the Scanner's reused
// decompression buffer for a compressed one. What it holds at once is one
// read of stored data (at most 1 MiB) and one decompressed batch.
//
// A Scanner is not safe for concurrent use.
type Scanner struct {
	b        *Broker
	name     string
	tp       metadata.TopicPartition
	next, to int64
	readSize int // stored bytes asked for by the next read

	res   partlog.ReadResult
	piece int      // next piece of res to split
	raws  [][]byte // batches of the current piece not yet read
	dec   batch.Decoder
}

// scanFirstRead is a Scanner's first read; each read doubles it up to
// consumeReadBytes, so a scan stopped early (a LIMIT) read little.
const scanFirstRead = 64 << 10

// Scan returns a Scanner over the committed records of topic's partition
// with offsets in [from, to). Close it when done.
func (b *Broker) Scan(ctx context.Context, topic string, partition int32, from, to int64) (*Scanner, error) {
	_, tp, err := b.partition(ctx, topic, partition)
	if err != nil {
		return nil, err
	}
	return &Scanner{b: b, name: topic, tp: tp, next: from, to: to, readSize: scanFirstRead}, nil
}

// Next returns the records of the next batch within the range, in offset
// order; none (and no error) once the range is read, or when nothing more
// of it is readable (the rest removed by retention or aborted). The
// records and their bytes are valid until the next Next or Close.
func (s *Scanner) Next(ctx context.Context) ([]Record, error) {
	for s.next < s.to {
		for len(s.raws) == 0 {
			if s.piece < len(s.res.Pieces) {
				raws, err := batch.Split(s.res.Pieces[s.piece])
				if err != nil {
					return nil, fmt.Errorf("scan %s/%d: %w", s.name, s.tp.Partition, err)
				}
				s.raws, s.piece = raws, s.piece+1
				continue
			}
			res, err := s.b.plog.ReadWith(ctx, s.tp, s.next, partlog.ReadOptions{MaxBytes: s.readSize, Isolation: partlog.ReadCommitted})
			if err != nil {
				return nil, fmt.Errorf("scan %s/%d at %d: %w", s.name, s.tp.Partition, s.next, err)
			}
			s.readSize = min(2*s.readSize, consumeReadBytes)
			if res.Size == 0 {
				s.next = s.to // at the LSO: nothing more is readable
				return nil, nil
			}
			s.res, s.piece = res, 0
		}
		raw := s.raws[0]
		s.raws = s.raws[1:]
		h, err := batch.ParseHeader(raw)
		if err != nil {
			return nil, fmt.Errorf("scan %s/%d: %w", s.name, s.tp.Partition, err)
		}
		if h.BaseOffset >= s.res.LastStableOffset || h.BaseOffset >= s.to {
			s.next = s.to // the range ends before this batch
			return nil, nil
		}
		if h.LastOffset() < s.next {
			continue // a read may start with a batch before the offset asked for
		}
		if h.IsControl() || inAbortedTxn(h, s.res.Aborted) {
			s.next = h.LastOffset() + 1
			continue
		}
		_, recs, _, err := s.dec.Decode(raw)
		if err != nil {
			return nil, fmt.Errorf("scan %s/%d: %w", s.name, s.tp.Partition, err)
		}
		// Offsets rise within a batch; compaction may leave gaps.
		lo, hi := 0, len(recs)
		for lo < hi && recs[lo].Offset < s.next {
			lo++
		}
		for hi > lo && recs[hi-1].Offset >= s.to {
			hi--
		}
		s.next = h.LastOffset() + 1
		if lo < hi {
			return recs[lo:hi], nil
		}
	}
	return nil, nil
}

// Close releases the Scanner's buffers; records it returned are no longer
// valid.
func (s *Scanner) Close() {
	s.dec.Release()
	s.res, s.raws = partlog.ReadResult{}, nil
}
