package partlog

import (
	"context"
	"errors"
	"testing"
	"time"
)

// Producers idle for longer than the expiration are forgotten in memory
// and in the store, like Kafka's producer.id.expiration.ms; active ones are
// kept, and a new leader does not bring expired ones back.
func TestProducerExpiry(t *testing.T) { onBackends(t, testProducerExpiry) }

func testProducerExpiry(t *testing.T, open storeOpener) {
	t.Parallel()
	e := newEnv(t, open, nil)
	cfg := e.config("a1")
	cfg.LeaseTTL = 24 * time.Hour // the clock jumps hours; the lease must outlast it
	cfg.GCGrace = 48 * time.Hour
	l := e.open(cfg)
	topic := e.topic("t", 1, nil)
	lead(t, l, topic)
	tp := tpOf(topic, 0)
	ctx := context.Background()

	if _, err := l.Append(ctx, tp, idemBatch(t, 5, 0, 0, 3), AckDurable); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(2 * time.Hour)
	if _, err := l.Append(ctx, tp, idemBatch(t, 6, 0, 0, 2), AckDurable); err != nil {
		t.Fatal(err)
	}
	n, err := l.ExpireProducers(ctx, time.Hour)
	if err != nil || n != 1 {
		t.Fatalf("ExpireProducers = %d, %v; want producer 5's row", n, err)
	}
	// Producer 5 is unknown now: continuing its sequence is out of order,
	// starting over is fine. Producer 6 goes on.
	if _, err := l.Append(ctx, tp, idemBatch(t, 5, 0, 3, 1), AckDurable); !errors.Is(err, ErrOutOfOrderSequence) {
		t.Fatalf("expired producer continuing: %v, want ErrOutOfOrderSequence", err)
	}
	if _, err := l.Append(ctx, tp, idemBatch(t, 6, 0, 2, 1), AckDurable); err != nil {
		t.Fatalf("active producer: %v", err)
	}
	states, err := e.store.ProducerStates(ctx, tp)
	if err != nil || len(states) != 1 || states[0].ProducerID != 6 || states[0].UpdatedAt.Before(e.clock.Now().Add(-time.Minute)) {
		t.Fatalf("stored producers = %+v, %v; want only producer 6, updated now", states, err)
	}

	// A new leader loads only what the store kept.
	e.clock.Advance(2 * time.Hour)
	if _, err := l.ExpireProducers(ctx, time.Hour); err != nil {
		t.Fatal(err)
	}
	cfg2 := cfg
	cfg2.AgentID = "a2"
	l2 := e.open(cfg2)
	if err := l.Release(ctx, tp); err != nil {
		t.Fatal(err)
	}
	lead(t, l2, topic)
	if _, err := l2.Append(ctx, tp, idemBatch(t, 6, 0, 3, 1), AckDurable); !errors.Is(err, ErrOutOfOrderSequence) {
		t.Fatalf("producer 6 after expiry on a new leader: %v, want ErrOutOfOrderSequence", err)
	}
}
