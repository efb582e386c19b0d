// Unit tests of the AIMD limiter, without any HTTP.

package objstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

func TestAIMDLimiterBlocksAtLimitAndWakes(t *testing.T) {
	t.Parallel()
	l := newAIMDLimiter(2, slog.New(slog.DiscardHandler))
	ctx := t.Context()
	e1, _ := l.acquire(ctx)
	if _, err := l.acquire(ctx); err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		_, err := l.acquire(ctx)
		got <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		l.mu.Lock()
		waiting := l.waiters
		l.mu.Unlock()
		if waiting == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("third acquire never waited")
		}
		time.Sleep(time.Millisecond)
	}
	l.release(e1, attemptOK)
	if err := <-got; err != nil {
		t.Fatalf("waiter woke with %v", err)
	}
	if limit, inFlight, _ := l.state(); limit != 2 || inFlight != 2 {
		t.Fatalf("limit %d inFlight %d, want 2 and 2", limit, inFlight)
	}
}

func TestAIMDLimiterCancelWhileWaiting(t *testing.T) {
	t.Parallel()
	l := newAIMDLimiter(1, slog.New(slog.DiscardHandler))
	if _, err := l.acquire(t.Context()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := l.acquire(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("acquire with a cancelled ctx at the limit = %v", err)
	}
	if _, inFlight, _ := l.state(); inFlight != 1 {
		t.Fatalf("a cancelled acquire took a slot: inFlight %d", inFlight)
	}
}

func TestAIMDLimiterHalvesOncePerCongestionEvent(t *testing.T) {
	t.Parallel()
	l := newAIMDLimiter(64, slog.New(slog.DiscardHandler))
	ctx := t.Context()
	// Ten requests in flight all get SlowDown: one signal, one halving.
	var epochs []uint64
	for range 10 {
		e, _ := l.acquire(ctx)
		epochs = append(epochs, e)
	}
	for _, e := range epochs {
		l.release(e, attemptThrottled)
	}
	if limit, _, throttled := l.state(); limit != 32 || throttled != 10 {
		t.Fatalf("after one burst: limit %d throttled %d, want 32 and 10", limit, throttled)
	}
	// A request sent after the halving that is refused again halves again.
	e, _ := l.acquire(ctx)
	l.release(e, attemptThrottled)
	if limit, _, _ := l.state(); limit != 16 {
		t.Fatalf("after a second event: limit %d, want 16", limit)
	}
	// Never below 1.
	for range 10 {
		e, _ := l.acquire(ctx)
		l.release(e, attemptThrottled)
	}
	if limit, _, _ := l.state(); limit != 1 {
		t.Fatalf("limit %d, want the floor 1", limit)
	}
	// Other errors leave it alone; successes add 1 up to the ceiling.
	e, _ = l.acquire(ctx)
	l.release(e, attemptOtherError)
	if limit, _, _ := l.state(); limit != 1 {
		t.Fatalf("a non-throttle error changed the limit to %d", limit)
	}
	for range 100 {
		e, _ := l.acquire(ctx)
		l.release(e, attemptOK)
	}
	if limit, inFlight, _ := l.state(); limit != 64 || inFlight != 0 {
		t.Fatalf("after 100 successes: limit %d inFlight %d, want 64 and 0", limit, inFlight)
	}
}

func TestIsBackPressure(t *testing.T) {
	t.Parallel()
	respErr := func(status int, err error) error {
		return &smithyhttp.ResponseError{Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}}, Err: err}
	}
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{respErr(503, &smithy.GenericAPIError{Code: "SlowDown"}), true},
		{respErr(503, errors.New("no body")), true},
		{respErr(429, errors.New("no body")), true},
		{respErr(400, &smithy.GenericAPIError{Code: "TooManyRequests"}), true},
		{respErr(400, &smithy.GenericAPIError{Code: "RequestLimitExceeded"}), true},
		{fmt.Errorf("wrapped: %w", respErr(503, &smithy.GenericAPIError{Code: "SlowDown"})), true},
		{respErr(500, &smithy.GenericAPIError{Code: "InternalError"}), false},
		{respErr(404, &smithy.GenericAPIError{Code: "NoSuchKey"}), false},
		{errors.New("connection reset"), false},
	} {
		if got := isBackPressure(tc.err); got != tc.want {
			t.Errorf("isBackPressure(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestJitterBackoff(t *testing.T) {
	t.Parallel()
	b := jitterBackoff{base: 100 * time.Millisecond, max: time.Second}
	for attempt, want := range map[int]time.Duration{0: 100 * time.Millisecond, 1: 100 * time.Millisecond,
		2: 200 * time.Millisecond, 3: 400 * time.Millisecond, 5: time.Second, 1000: time.Second} {
		for range 20 {
			d, _ := b.BackoffDelay(attempt, nil)
			if d < want/2 || d > want {
				t.Fatalf("attempt %d: delay %v outside [%v, %v]", attempt, d, want/2, want)
			}
		}
	}
}
