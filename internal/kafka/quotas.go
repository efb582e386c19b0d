package kafka

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/auth"
	"github.com/streamhouse/streamhouse/internal/quota"
)

// Client quotas on the wire (KIP-219), internal/quota deciding.
//
// Produce: a request's bytes (its whole frame, as Kafka counts them) are
// counted when it is read, and a request that overdraws its key's bucket
// gets throttle_time_ms, the time that pays the debt back, in its answer,
// which is sent at once; the connection is muted for that time: no
// request after this one is read past its size, handled or counted until
// then (it holds none of the shared request budget meanwhile), while
// requests already being handled go on. The read loop is where a
// connection is held back, so a client that pipelines requests or ignores
// throttle_time_ms is held to its quota just the same. acks=0 requests,
// which get no answer, are muted the same way. A request that arrives
// while its connection is muted for more than maxMuteWait (30 s) more
// closes the connection rather than wait: a muted connection does not
// read, so it would not notice the client leaving meanwhile.
//
// Fetch: the response's MaxBytes is cut to one bucket of the consumer's
// quota (MinBytes with it). A response whose record bytes would overdraw
// the bucket is sent without records, with throttle_time_ms the time
// until it would fit, and nothing is counted; the client fetches the same
// offsets again after the throttle (its fetch session does not move). One
// that fits is counted and sent; the connection is muted whenever
// throttle_time_ms is set.

// quotaUser is the user name quotas apply to for a request: its
// principal's name, ANONYMOUS when the connection did not authenticate.
func quotaUser(ctx context.Context) string { return auth.PrincipalFrom(ctx).Name }

// quotaClient is who a request is from, for quotas.
func (c *conn) quotaClient(ctx context.Context) quota.Client {
	return quota.Client{Listener: quota.ListenerKafka, User: quotaUser(ctx), ClientID: requestClientID(ctx)}
}

// throttleKey carries a produce request's throttle from the read loop to
// its handler.
type throttleKey struct{}

// throttleProduce counts a produce request of size bytes, just read, and
// mutes the connection if it overdrew its quota; the returned ctx carries
// the throttle for the handler's answer.
func (c *conn) throttleProduce(ctx context.Context, size int32) context.Context {
	d := c.s.quotas.RecordProduce(c.quotaClient(ctx), int64(size))
	if d <= 0 {
		return ctx
	}
	c.mute(d)
	return context.WithValue(ctx, throttleKey{}, d)
}

// produceThrottle is the throttle_time_ms of a produce request's answer.
func produceThrottle(ctx context.Context) int32 {
	d, _ := ctx.Value(throttleKey{}).(time.Duration)
	return quota.Millis(d)
}

// throttleFetch counts a fetch's records against the consumer's quota: a
// response that would overdraw it loses its records; either way a throttle
// goes in the answer and mutes the connection.
func (c *conn) throttleFetch(client quota.Client, resp *kmsg.FetchResponse, parts []fetchPart) {
	total := 0
	for i := range parts {
		total += parts[i].size
	}
	d, deliver := c.s.quotas.RecordFetch(client, int64(total))
	if !deliver {
		for i := range parts {
			parts[i].records, parts[i].size, parts[i].aborted = nil, 0, nil
		}
	}
	resp.ThrottleMillis = quota.Millis(d)
	c.mute(d)
}

// quotaMute is when a connection may be read from again.
type quotaMute struct {
	mu    sync.Mutex
	until time.Time
}

// mute stops reading from c for d (from now), or longer if it is muted
// longer already.
func (c *conn) mute(d time.Duration) {
	if d <= 0 {
		return
	}
	until := time.Now().Add(d)
	c.muted.mu.Lock()
	defer c.muted.mu.Unlock()
	if until.After(c.muted.until) {
		c.muted.until = until
	}
}

// maxMuteWait bounds how long a request that arrived on a muted
// connection waits to be read: Kafka clients' default request.timeout.ms,
// after which such a client has given up on the request (and usually on
// the connection). While it waits the connection cannot notice that its
// client left, so a longer wait would only hold a connection slot.
const maxMuteWait = 30 * time.Second

// errMutedTooLong closes a connection whose client sent a request although
// the connection is muted for longer than maxMuteWait.
var errMutedTooLong = errors.New("request sent on a connection throttled for longer than 30s: the client ignores throttle_time_ms")

// waitMuted waits until c is no longer muted, or c closes. A request that
// would wait over maxMuteWait closes the connection instead: its client
// did not wait out the throttle it was told. The quota's debt stays with
// the client's bucket, so a new connection is throttled just the same.
func (c *conn) waitMuted() error {
	for {
		c.muted.mu.Lock()
		d := time.Until(c.muted.until)
		c.muted.mu.Unlock()
		if d <= 0 {
			return nil
		}
		if d > maxMuteWait {
			c.s.metrics.requestsRejected.WithLabelValues("throttled").Inc()
			return errMutedTooLong
		}
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-c.ctx.Done():
			t.Stop()
			return c.ctx.Err()
		}
	}
}

// runQuotas makes the server's own quota manager, over the broker's
// metadata store, and runs it; stop ends it.
func (s *Server) runQuotas() (m *quota.Manager, stop func()) {
	m = quota.New(quota.Config{
		Store:      s.broker.Store(),
		LiveAgents: s.liveAgents,
		Logger:     s.cfg.Logger,
		Registry:   s.cfg.Registry,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.Run(ctx)
	}()
	return m, sync.OnceFunc(func() {
		cancel()
		<-done
	})
}

// liveAgents counts the live agents, this one included, for the quota
// share each agent enforces.
func (s *Server) liveAgents(ctx context.Context) (int, error) {
	agents, err := s.broker.Agents(ctx)
	if err != nil {
		return 0, err
	}
	n, self := 0, false
	for _, a := range agents {
		n++
		self = self || a.ID == s.broker.AgentID()
	}
	if !self {
		n++
	}
	return n, nil
}
