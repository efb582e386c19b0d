// This file owns the S3 back-pressure limiter (THROTTLE_ENABLED): an AIMD
// bound on the number of S3 requests in flight, fed by every attempt's
// outcome.
//
// Why: S3 answers overload with 503 SlowDown (other stores with 429
// TooManyRequests or RequestLimitExceeded). The SDK retryer backs off the
// request that was refused, but every other caller keeps firing requests at
// full concurrency, so the refusals continue. The limiter makes the whole
// client slow down, the way TCP congestion control does:
//
//   - every HTTP attempt (retries included) takes a slot before it is sent
//     and returns it when the response arrives (for GETs, when the headers
//     arrive: S3 throttles on request rate, not on bytes streamed);
//   - a back-pressure response halves the limit (never below 1). Responses to
//     requests sent before the previous halving do not halve again: one
//     burst of SlowDowns is one congestion signal, not N;
//   - a successful response raises the limit by 1, up to the ceiling;
//   - other errors (404, network failures) leave the limit alone;
//   - callers that find no free slot wait (or give up when their ctx ends).
//
// The limit starts at the ceiling, so an unthrottled client behaves as if
// the limiter did not exist.
package objstore

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// DefaultS3MaxConcurrency is the limiter's ceiling and starting point.
const DefaultS3MaxConcurrency = 64

// backPressureCodes are error codes that mean "send fewer requests".
var backPressureCodes = func() map[string]struct{} {
	codes := map[string]struct{}{"TooManyRequests": {}}
	for c := range retry.DefaultThrottleErrorCodes {
		codes[c] = struct{}{}
	}
	return codes
}()

// isBackPressure reports whether err is a store's request to slow down:
// SlowDown, TooManyRequests, RequestLimitExceeded and friends, or any 429 or
// 503 (S3 sends SlowDown as 503, sometimes without a parsable body).
func isBackPressure(err error) bool {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		if _, ok := backPressureCodes[apiErr.ErrorCode()]; ok {
			return true
		}
	}
	var respErr *smithyhttp.ResponseError
	if errors.As(err, &respErr) {
		code := respErr.HTTPStatusCode()
		return code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable
	}
	return false
}

// aimdLimiter is the limiter described in the file comment.
type aimdLimiter struct {
	logger *slog.Logger

	mu        sync.Mutex
	limit     int
	max       int
	inFlight  int
	epoch     uint64        // bumped by every halving
	waiters   int           // callers blocked in acquire
	wake      chan struct{} // closed (and replaced) to wake the waiters
	throttled int64         // back-pressure responses seen
}

func newAIMDLimiter(max int, logger *slog.Logger) *aimdLimiter {
	return &aimdLimiter{logger: logger, limit: max, max: max, wake: make(chan struct{})}
}

// acquire waits for a free slot and returns the epoch it was taken in.
func (l *aimdLimiter) acquire(ctx context.Context) (uint64, error) {
	l.mu.Lock()
	for l.inFlight >= l.limit {
		wake := l.wake
		l.waiters++
		l.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			l.mu.Lock()
			l.waiters--
			l.mu.Unlock()
			return 0, ctx.Err()
		}
		l.mu.Lock()
		l.waiters--
	}
	l.inFlight++
	epoch := l.epoch
	l.mu.Unlock()
	return epoch, nil
}

// outcome of one attempt, as the limiter sees it.
type attemptOutcome int

const (
	attemptOK attemptOutcome = iota
	attemptThrottled
	attemptOtherError
)

// release returns a slot taken in epoch and adjusts the limit.
func (l *aimdLimiter) release(epoch uint64, outcome attemptOutcome) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.inFlight--
	switch outcome {
	case attemptOK:
		if l.limit < l.max {
			l.limit++
		}
	case attemptThrottled:
		l.throttled++
		if epoch == l.epoch {
			l.epoch++
			l.limit = max(1, l.limit/2)
			l.logger.Debug("s3 back-pressure: concurrency limit halved", "limit", l.limit)
		}
	}
	if l.waiters > 0 {
		close(l.wake)
		l.wake = make(chan struct{})
	}
}

// state returns the current limit, requests in flight and back-pressure
// responses seen.
func (l *aimdLimiter) state() (limit, inFlight int, throttled int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.limit, l.inFlight, l.throttled
}

// ID implements middleware.FinalizeMiddleware.
func (l *aimdLimiter) ID() string { return "StreamHouseAIMDLimiter" }

// HandleFinalize implements middleware.FinalizeMiddleware. It sits after
// the SDK's retry middleware, so it sees every attempt, not just the
// operation's final result.
func (l *aimdLimiter) HandleFinalize(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (
	middleware.FinalizeOutput, middleware.Metadata, error,
) {
	epoch, err := l.acquire(ctx)
	if err != nil {
		// RequestCanceledError tells the retryer not to retry.
		return middleware.FinalizeOutput{}, middleware.Metadata{}, &aws.RequestCanceledError{Err: err}
	}
	out, md, err := next.HandleFinalize(ctx, in)
	outcome := attemptOK
	switch {
	case err == nil:
	case isBackPressure(err):
		outcome = attemptThrottled
	default:
		outcome = attemptOtherError
	}
	l.release(epoch, outcome)
	return out, md, err
}

// addToStack installs the limiter in an operation's middleware stack.
func (l *aimdLimiter) addToStack(stack *middleware.Stack) error {
	return stack.Finalize.Insert(l, "Retry", middleware.After)
}
