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
	piece int    // next piece of res
	rest  []byte // what is left of the current piece
	// carry assembles a batch cut between two pieces (a run of batches
	// spanning two cache chunks); carrying while it is not whole.
	carry    []byte
	carrying bool
	dec      batch.Decoder
}

// scanFirstRead is a Scanner's first read; each read doubles it up to
// consumeReadBytes, so a scan stopped early (a LIMIT) read little.
const scanFirstRead = 64 << 10

// framePrefix is what batch.FramedSize needs: the base offset and length.
const framePrefix = 12

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
// of it is readable (the rest aborted). A range start that retention has
// since removed is ErrOffsetOutOfRange. The
// records and their bytes are valid until the next Next or Close.
func (s *Scanner) Next(ctx context.Context) ([]Record, error) {
	for s.next < s.to {
		raw, err := s.nextRaw()
		if err != nil {
			return nil, fmt.Errorf("scan %s/%d: %w", s.name, s.tp.Partition, err)
		}
		if raw == nil {
			res, err := s.b.plog.ReadWith(ctx, s.tp, s.next, partlog.ReadOptions{MaxBytes: s.readSize, Isolation: partlog.ReadCommitted})
			if err != nil {
				return nil, fmt.Errorf("scan %s/%d at %d: %w", s.name, s.tp.Partition, s.next, err)
			}
			s.readSize = min(2*s.readSize, consumeReadBytes)
			if res.Size == 0 {
				s.next = s.to // at the LSO: nothing more is readable
				return nil, nil
			}
			s.res, s.piece, s.rest = res, 0, nil
			continue
		}
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
		if hiddenBatch(h, s.res.Aborted) {
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

// nextRaw returns the next whole batch of the current read; nil when the
// read is used up.
func (s *Scanner) nextRaw() ([]byte, error) {
	for {
		if len(s.rest) == 0 {
			if s.piece == len(s.res.Pieces) {
				if s.carrying {
					return nil, fmt.Errorf("a read ends inside a batch: %w", batch.ErrCorrupt)
				}
				return nil, nil
			}
			s.rest, s.piece = s.res.Pieces[s.piece], s.piece+1
		}
		if s.carrying {
			size, ok, err := batch.FramedSize(s.carry)
			if err != nil {
				return nil, err
			}
			need := framePrefix - len(s.carry) // the length field first
			if ok {
				need = size - len(s.carry)
			}
			take := min(need, len(s.rest))
			s.carry, s.rest = append(s.carry, s.rest[:take]...), s.rest[take:]
			if ok && len(s.carry) == size {
				s.carrying = false
				return s.carry, nil
			}
			continue
		}
		size, ok, err := batch.FramedSize(s.rest)
		if err != nil {
			return nil, err
		}
		if ok && size <= len(s.rest) {
			raw := s.rest[:size:size]
			s.rest = s.rest[size:]
			return raw, nil
		}
		// Cut by the piece's end: assembled from the next ones.
		s.carry, s.carrying, s.rest = append(s.carry[:0], s.rest...), true, nil
	}
}

// Close releases the Scanner's buffers; records it returned are no longer
// valid.
func (s *Scanner) Close() {
	s.dec.Release()
	s.res, s.rest, s.carry = partlog.ReadResult{}, nil, nil
}
