//go:build cgo

package sql

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// A live query whose context the server cancels with a cause (authz.Guard
// once the caller's access ends) ends with that cause and is counted as
// "revoked"; one the client cancels, as "canceled".
func TestLiveQueryEndedByTheServerIsRevoked(t *testing.T) {
	b := newBroker(t, openSQLite(t))
	produce(t, b, "t", 1, genRecords(10, 1))
	reg := prometheus.NewRegistry()
	e := newEngine(t, b, Config{Registry: reg})
	m := e.(*engine).metrics
	live := func(end func(context.CancelCauseFunc)) error {
		ctx, cancel := context.WithCancelCause(context.Background())
		defer cancel(nil)
		done := make(chan error, 1)
		accepted := make(chan struct{})
		go func() {
			done <- e.(Streamer).Stream(ctx, Request{Query: `SELECT "offset" FROM t`, Timeout: time.Minute}, func(_ []Column, row []any) error {
				if row == nil {
					close(accepted)
				}
				return nil
			})
		}()
		select {
		case <-accepted:
		case err := <-done:
			t.Fatalf("live query: %v", err)
		case <-time.After(20 * time.Second):
			t.Fatal("live query not accepted in 20 s")
		}
		end(cancel)
		select {
		case err := <-done:
			return err
		case <-time.After(20 * time.Second):
			t.Fatal("live query still runs 20 s after its context ended")
		}
		return nil
	}
	revoked := errors.New("not authorized to READ topic t")
	err := live(func(c context.CancelCauseFunc) { c(revoked) })
	var ended *EndedError
	if !errors.As(err, &ended) || !errors.Is(err, revoked) {
		t.Fatalf("ended by the server: %v", err)
	}
	if got := testutil.ToFloat64(m.queries.WithLabelValues("revoked")); got != 1 {
		t.Errorf("revoked %v, want 1", got)
	}
	if err := live(func(c context.CancelCauseFunc) { c(nil) }); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled by the client: %v", err)
	}
	if got := testutil.ToFloat64(m.queries.WithLabelValues("canceled")); got != 1 {
		t.Errorf("canceled %v, want 1 (the client's cancel only)", got)
	}
}
