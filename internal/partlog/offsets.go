package partlog

import (
	"context"
	"fmt"

	"github.com/streamhouse/streamhouse/internal/batch"
	"github.com/streamhouse/streamhouse/internal/metadata"
)

// DeleteRecords moves tp's log start offset up to offset (-1: the high
// watermark), as Kafka's DeleteRecords. Records below it are no longer
// readable; objects no index row references any more are collected later.
// It returns the new log start offset.
func (l *Log) DeleteRecords(ctx context.Context, tp metadata.TopicPartition, offset int64) (int64, error) {
	v, err := l.view(ctx, tp)
	if err != nil {
		return 0, err
	}
	if offset == -1 {
		offset = v.hw
	}
	if offset < 0 || offset > v.hw {
		return 0, fmt.Errorf("delete records of %s below %d (log %d..%d): %w", tp, offset, v.logStart, v.hw, ErrOffsetOutOfRange)
	}
	ls, err := l.store.SetLogStartOffset(ctx, tp, offset)
	if err != nil {
		return 0, fmt.Errorf("delete records of %s below %d: %w", tp, offset, err)
	}
	if v.p != nil {
		v.p.setLogStart(ls)
	}
	return ls, nil
}

// setLogStart raises the log start offset and drops index entries wholly
// below it.
func (p *partition) setLogStart(ls int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if ls <= p.logStart {
		return
	}
	p.logStart = ls
	i := 0
	for i < len(p.index) && p.index[i].LastOffset < ls {
		i++
	}
	p.index = append(p.index[:0], p.index[i:]...)
	close(p.changed)
	p.changed = make(chan struct{})
}

// AbortedTxns returns tp's aborted transactions overlapping [from, to)
// (marker at or after from, first offset before to), ordered by first
// offset: from the led partition's index when it covers from, else from the
// store. ErrOffsetOutOfRange when the log start passes from meanwhile.
func (l *Log) AbortedTxns(ctx context.Context, tp metadata.TopicPartition, from, to int64) ([]metadata.AbortedTxn, error) {
	v, err := l.view(ctx, tp)
	if err != nil {
		return nil, err
	}
	return l.abortedIn(ctx, tp, v, from, to)
}

// OffsetForTime returns the first offset of tp whose record timestamp is at
// or after ts (ms), with that record's timestamp, as Kafka's ListOffsets by
// timestamp. found is false when no record is that recent.
func (l *Log) OffsetForTime(ctx context.Context, tp metadata.TopicPartition, ts int64) (offset, timestamp int64, found bool, err error) {
	v, err := l.view(ctx, tp)
	if err != nil {
		return 0, 0, false, err
	}
	from := v.logStart
	for from < v.hw {
		entries, err := l.store.ListIndex(ctx, tp, from, indexBatch)
		if err != nil {
			return 0, 0, false, fmt.Errorf("offset for time in %s: %w", tp, err)
		}
		if len(entries) == 0 {
			break
		}
		for _, e := range entries {
			if e.BaseOffset >= v.hw {
				return 0, 0, false, nil
			}
			if e.MaxTimestamp < ts {
				continue
			}
			off, t, ok, err := l.scanRun(ctx, e, v.logStart, func(r batch.Record) bool { return r.Timestamp >= ts })
			if err != nil || ok {
				return off, t, ok, err
			}
		}
		from = entries[len(entries)-1].LastOffset + 1
	}
	return 0, 0, false, nil
}

// MaxTimestampOffset returns the offset and timestamp of the record with
// the largest timestamp in tp (the earliest such record on ties), as Kafka's
// ListOffsets with timestamp -3. found is false for an empty log.
func (l *Log) MaxTimestampOffset(ctx context.Context, tp metadata.TopicPartition) (offset, timestamp int64, found bool, err error) {
	v, err := l.view(ctx, tp)
	if err != nil {
		return 0, 0, false, err
	}
	var best metadata.IndexEntry
	bestTs := int64(-1)
	from := v.logStart
	for from < v.hw {
		entries, err := l.store.ListIndex(ctx, tp, from, 1000)
		if err != nil {
			return 0, 0, false, fmt.Errorf("max timestamp of %s: %w", tp, err)
		}
		if len(entries) == 0 {
			break
		}
		for _, e := range entries {
			if e.BaseOffset < v.hw && e.MaxTimestamp > bestTs {
				best, bestTs = e, e.MaxTimestamp
			}
		}
		from = entries[len(entries)-1].LastOffset + 1
	}
	if bestTs < 0 {
		return 0, 0, false, nil
	}
	return l.scanRun(ctx, best, v.logStart, func(r batch.Record) bool { return r.Timestamp >= bestTs })
}

// scanRun returns the first record of an index entry's run, at or after
// logStart, for which match is true.
func (l *Log) scanRun(ctx context.Context, e metadata.IndexEntry, logStart int64, match func(batch.Record) bool) (int64, int64, bool, error) {
	sp, err := l.reader.read(ctx, e)
	if err != nil {
		return 0, 0, false, err
	}
	raws, err := batch.Split(sp.bytes())
	if err != nil {
		return 0, 0, false, fmt.Errorf("object %s at %d: %w", e.ObjectKey, e.Pos, err)
	}
	// One decompression buffer for the run: a run of many compressed
	// batches holds one batch's records at a time.
	var dec batch.Decoder
	defer dec.Release()
	for _, raw := range raws {
		h, err := batch.ParseHeader(raw)
		if err != nil {
			return 0, 0, false, err
		}
		if h.IsControl() || h.LastOffset() < logStart {
			continue
		}
		_, recs, _, err := dec.Decode(raw)
		if err != nil {
			return 0, 0, false, fmt.Errorf("object %s at %d: %w", e.ObjectKey, e.Pos, err)
		}
		for _, r := range recs {
			if r.Offset >= logStart && match(r) {
				return r.Offset, r.Timestamp, true, nil
			}
		}
	}
	return 0, 0, false, nil
}
