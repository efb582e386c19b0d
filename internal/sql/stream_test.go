//go:build cgo

package sql

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/streamhouse/streamhouse/internal/batch"
	"github.com/streamhouse/streamhouse/internal/broker"
	"github.com/streamhouse/streamhouse/internal/metadata"
)

// A live query sends the matching records committed after it started,
// never older or non-matching ones, and ends at its LIMIT.
func TestStreamMatchesAndEndsAtLimit(t *testing.T) {
	eachBackend(t, func(t *testing.T, store metadata.Store) {
		ctx := context.Background()
		b := newBroker(t, store)
		if _, err := b.CreateTopic(ctx, broker.TopicSpec{Name: "live", Partitions: 2}, false); err != nil {
			t.Fatal(err)
		}
		put := func(p int32, v string) {
			if _, err := b.ProduceRecords(ctx, "live", p, []broker.Record{{Value: []byte(v)}}, broker.AckDurable, batch.DefaultBuildOptions()); err != nil {
				t.Error(err)
			}
		}
		put(0, "match-old")
		put(1, "match-old")
		e := newEngine(t, b, Config{})
		s := e.(Streamer)
		var mu sync.Mutex
		var got []string
		done := make(chan error, 1)
		go func() {
			done <- s.Stream(ctx, Request{Query: `SELECT value, partition FROM live WHERE value LIKE 'match%' LIMIT 3`, Timeout: 20 * time.Second},
				func(cols []Column, row []any) error {
					if row == nil {
						return nil // accepted
					}
					if len(cols) != 2 || cols[0].Name != "value" {
						return fmt.Errorf("columns %v", cols)
					}
					mu.Lock()
					got = append(got, row[0].(string))
					mu.Unlock()
					return nil
				})
		}()
		// Produce until the stream has ended (it started at some point).
		stop := make(chan struct{})
		prodDone := make(chan struct{})
		go func() {
			defer close(prodDone)
			for k := 0; k < 400; k++ {
				select {
				case <-stop:
					return
				case <-time.After(20 * time.Millisecond):
				}
				put(int32(k%2), fmt.Sprintf("nomatch-%03d", k))
				put(int32(k%2), fmt.Sprintf("match-%03d", k))
			}
		}()
		var err error
		select {
		case err = <-done:
		case <-time.After(30 * time.Second):
			t.Fatal("the live query did not end at its LIMIT")
		}
		close(stop)
		<-prodDone
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(got) != 3 {
			t.Fatalf("%d rows, want 3: %v", len(got), got)
		}
		if n := testutil.ToFloat64(e.(*engine).metrics.records); n < 3 {
			t.Errorf("the live query scanned %v records, want at least the 3 it sent", n)
		}
		for _, v := range got {
			if !strings.HasPrefix(v, "match-") || v == "match-old" {
				t.Fatalf("rows %v: a non-matching or old record", got)
			}
		}
	})
}

func TestStreamEnds(t *testing.T) {
	b := newBroker(t, openSQLite(t))
	produce(t, b, "live", 1, genRecords(10, 1))
	reg := prometheus.NewRegistry()
	e := newEngine(t, b, Config{Registry: reg})
	s := e.(Streamer)
	noRow := func(_ []Column, row []any) error {
		if row == nil {
			return nil // accepted
		}
		return errors.New("no row expected")
	}

	// timeout_ms ends it normally.
	start := time.Now()
	if err := s.Stream(context.Background(), Request{Query: `SELECT * FROM live`, Timeout: 300 * time.Millisecond}, noRow); err != nil {
		t.Fatalf("timeout: %v", err)
	}
	if d := time.Since(start); d < 300*time.Millisecond || d > 10*time.Second {
		t.Fatalf("ended after %v", d)
	}
	// The client leaving ends it with ctx's error.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := s.Stream(ctx, Request{Query: `SELECT * FROM live`}, noRow); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("client gone: %v", err)
	}
	// A client that goes away (its request's context canceled, or past its
	// own deadline, as just above) is counted as canceled, and a stream's
	// duration is its whole life, in the live queries' histogram.
	cctx, ccancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, ccancel)
	if err := s.Stream(cctx, Request{Query: `SELECT * FROM live`}, noRow); !errors.Is(err, context.Canceled) {
		t.Fatalf("client canceled: %v", err)
	}
	if n := testutil.ToFloat64(e.(*engine).metrics.queries.WithLabelValues("canceled")); n != 2 {
		t.Errorf("%v streams counted canceled, want 2", n)
	}
	var m dto.Metric
	if err := e.(*engine).metrics.live.Write(&m); err != nil {
		t.Fatal(err)
	}
	if sum := m.GetHistogram().GetSampleSum(); sum < 0.7 {
		t.Errorf("streams of 0.3, 0.2 and 0.2 s observed as %.3f s in all", sum)
	}
	// Refusals.
	for _, q := range []string{`SELECT count(*) FROM live`, `SELECT * FROM live ORDER BY "offset"`, `SHOW TOPICS`,
		`SELECT DISTINCT key FROM live`, `SELECT * FROM live a JOIN live b USING ("offset")`} {
		var qe *Error
		if err := s.Stream(context.Background(), Request{Query: q}, noRow); !errors.As(err, &qe) || qe.Code != CodeUnsupported {
			t.Errorf("%s: %v, want unsupported_operation", q, err)
		}
	}
	var qe *Error
	if err := s.Stream(context.Background(), Request{Query: `SELECT * FROM nope`}, noRow); !errors.As(err, &qe) || qe.Code != CodeTopicNotFound {
		t.Errorf("unknown topic: %v", err)
	}
}

// A live TUMBLE query sends each window once, when the clock passes its
// end, with the records committed in it.
func TestStreamTumble(t *testing.T) {
	ctx := context.Background()
	b := newBroker(t, openSQLite(t))
	if _, err := b.CreateTopic(ctx, broker.TopicSpec{Name: "live", Partitions: 1}, false); err != nil {
		t.Fatal(err)
	}
	e := newEngine(t, b, Config{})
	stop := make(chan struct{})
	prodDone := make(chan struct{})
	var produced sync.Map // window start → records produced in it
	go func() {
		defer close(prodDone)
		for k := 0; k < 1000; k++ {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			ts := time.Now().UnixMilli()
			if _, err := b.ProduceRecords(ctx, "live", 0, []broker.Record{{Value: []byte("x"), Timestamp: ts}}, broker.AckDurable, batch.DefaultBuildOptions()); err != nil {
				t.Error(err)
				return
			}
			n, _ := produced.LoadOrStore(ts-ts%1000, new(int64))
			*n.(*int64)++
		}
	}()
	var rows [][]any
	err := e.(Streamer).Stream(ctx, Request{Query: `SELECT window_start, window_end, count(*) AS n FROM live GROUP BY TUMBLE(timestamp, INTERVAL '1' SECOND) LIMIT 2`, Timeout: 20 * time.Second},
		func(_ []Column, row []any) error {
			if row != nil {
				rows = append(rows, row)
			}
			return nil
		})
	close(stop)
	<-prodDone
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 {
		t.Fatalf("%d windows, want 2: %v", len(rows), rows)
	}
	for i, r := range rows {
		ws, we, n := r[0].(int64), r[1].(int64), r[2].(int64)
		if we-ws != 1000 || (i > 0 && ws <= rows[i-1][0].(int64)) {
			t.Fatalf("windows %v", rows)
		}
		if p, ok := produced.Load(ws); !ok || *p.(*int64) != n {
			t.Fatalf("window %d: %d records, produced %v", ws, n, p)
		}
	}
}
