//go:build cgo

package sql

// Live queries: the statement runs again, as an ordinary query, over each
// new slice of committed records ([previous LSO, current LSO) of every
// partition it reads), polled every streamPoll.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"
)

const (
	streamPoll = 100 * time.Millisecond
	// windowGrace is how long after its end a live TUMBLE window waits
	// for records still being committed (timestamps are set before).
	windowGrace = time.Second
)

var _ Streamer = (*engine)(nil)

func (e *engine) Stream(ctx context.Context, req Request, emit func([]Column, []any) error) error {
	start := time.Now()
	timeout := req.Timeout
	if timeout <= 0 {
		timeout = e.cfg.Timeout
	}
	deadline, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var read Result // what the stream's queries scanned
	err := e.stream(deadline, req, &read, emit)
	switch {
	case err == nil:
	case ctx.Err() != nil:
		err = ctx.Err() // the client left
		if cause := context.Cause(ctx); cause != err && !errors.Is(cause, context.Canceled) && !errors.Is(cause, context.DeadlineExceeded) {
			// Its context ended for a reason of the server's (its
			// access ended: authz.Guard), not the client's.
			err = &EndedError{Cause: cause}
		}
	case errors.Is(deadline.Err(), context.DeadlineExceeded):
		err = nil // timeout_ms ends a live query normally
	default:
		err = e.classify(deadline, err)
	}
	read.ExecutionTime = time.Since(start)
	e.metrics.observe(read, err, true)
	return err
}

// stream runs a live query, adding what each of its runs scanned to read.
func (e *engine) stream(ctx context.Context, req Request, read *Result, emit func([]Column, []any) error) error {
	if len(req.Query) > maxQueryBytes {
		return &Error{Code: CodeResourceLimit, Message: "the query is too long"}
	}
	st, err := classifyStatement(req.Query)
	if err != nil {
		return err
	}
	if st.kind != stmtSelect {
		return &Error{Code: CodeUnsupported, Message: "a live query is a SELECT"}
	}
	a, err := e.parse(ctx, req.Query, st)
	if err != nil {
		return err
	}
	if a.notLive != "" {
		return &Error{Code: CodeUnsupported, Message: "a live query filters and projects records, or groups them by TUMBLE: " + a.notLive + " is not supported"}
	}
	if len(a.topics) != 1 {
		return &Error{Code: CodeUnsupported, Message: "a live query reads one topic"}
	}
	win, windowed := a.windows[a.topics[0]]
	if a.grouped && (!windowed || win.kind != "tumble") {
		return &Error{Code: CodeUnsupported, Message: "a live query groups only by TUMBLE (windows are sent when they close)"}
	}
	// A TUMBLE window closes when the clock passes its end (plus
	// windowGrace): it is then
	// computed over the records read since the stream began (the first
	// window is the first that starts after it), and sent once.
	now := func() int64 { return time.Now().UnixMilli() }
	floorTo := func(t, size int64) int64 { return t - ((t%size)+size)%size }
	var emitted int64 // windows ending at or before it are sent
	if windowed {
		emitted = floorTo(now(), win.size) + win.size
	}
	// Where each partition's stream starts: the records committed from now on.
	first := &queryState{}
	if err := e.plan(ctx, first, a); err != nil {
		return err
	}
	start := map[int32]int64{}
	for _, r := range first.topics[0].ranges {
		start[r.partition] = r.to
	}
	b := a.bounds[a.topics[0]]
	if _, ok := a.bounds[a.topics[0]]; !ok {
		b = allBounds()
	}
	topic, err := e.topic(ctx, a.topics[0], true)
	if err != nil {
		return err
	}
	parts := b.partitions
	if parts == nil {
		for p := int32(0); p < topic.Partitions; p++ {
			parts = append(parts, p)
		}
	}
	if !b.empty {
		for _, p := range parts {
			if int64(p) < b.pLo || int64(p) > b.pHi || p >= topic.Partitions {
				continue
			}
			if _, ok := start[p]; !ok {
				_, lso, _, err := e.cfg.Source.StableOffsets(ctx, topic.Name, p)
				if err != nil {
					return err
				}
				start[p] = lso
			}
		}
	} else {
		start = nil
	}
	remaining := a.limit
	if remaining == 0 {
		return nil
	}
	if err := emit(nil, nil); err != nil { // accepted
		return err
	}
	batchRows := max(req.MaxRows, e.cfg.MaxRows)
	tick := time.NewTicker(streamPoll)
	defer tick.Stop()
	origin := map[int32]int64{}
	for p, from := range start {
		origin[p] = from
	}
	for {
		// Still allowed? Asked at every poll, before the offsets are
		// read, and again before rows are sent: once the caller may no
		// longer READ the topic (an ACL deleted, a DENY added), the
		// stream ends with Access's refusal, without a row of a record
		// committed after that.
		if err := e.access(ctx, topic.Name); err != nil {
			return err
		}
		q := &queryState{id: e.nextID.Add(1)}
		tp := &topicPlan{name: topic.Name}
		q.topics = []*topicPlan{tp}
		closed := int64(0)
		if windowed {
			closed = floorTo(now()-windowGrace.Milliseconds(), win.size)
			if closed <= emitted {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-tick.C:
				}
				continue
			}
			q.viewFilter = fmt.Sprintf("window_start >= %d AND window_end <= %d", emitted, closed)
		}
		for p, from := range start {
			if windowed {
				from = origin[p]
			}
			_, lso, _, err := e.cfg.Source.StableOffsets(ctx, topic.Name, p)
			if err != nil {
				return err
			}
			to := lso
			if b.offHi < math.MaxInt64 {
				to = min(to, b.offHi+1)
			}
			if lo := max(from, b.offLo); lo < to {
				tp.ranges = append(tp.ranges, partRange{partition: p, from: lo, to: to, tsFrom: math.MinInt64})
			}
			start[p] = max(from, lso)
		}
		if len(tp.ranges) > 0 {
			res, err := e.execute(ctx, q, a, st.text, batchRows)
			read.ScannedRecords += res.ScannedRecords
			read.ScannedBytes += res.ScannedBytes
			if err != nil {
				return err
			}
			if res.Truncated {
				return &Error{Code: CodeResourceLimit, Message: "more new matching rows at once than SQL_MAX_ROWS"}
			}
			if err := e.access(ctx, topic.Name); err != nil {
				return err
			}
			for _, row := range res.Rows {
				if err := emit(res.Columns, row); err != nil {
					return err
				}
				if remaining > 0 {
					if remaining--; remaining == 0 {
						return nil
					}
				}
			}
		}
		if windowed {
			emitted = closed
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// access asks Access again whether the stream's caller may READ topic.
func (e *engine) access(ctx context.Context, topic string) error {
	if e.cfg.Access == nil {
		return nil
	}
	return e.cfg.Access.Use(ctx, topic, true)
}
