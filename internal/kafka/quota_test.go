package kafka

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	promtest "github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/batch"
	"github.com/streamhouse/streamhouse/internal/metadata/metadatatest"
	"github.com/streamhouse/streamhouse/internal/quota"
	"github.com/streamhouse/streamhouse/internal/testutil"
)

// throttleHook counts the throttles a franz-go client is told of.
type throttleHook struct {
	n   atomic.Int64
	max atomic.Int64 // ms
}

func (h *throttleHook) OnBrokerThrottle(_ kgo.BrokerMetadata, d time.Duration, _ bool) {
	h.n.Add(1)
	for {
		old := h.max.Load()
		if int64(d/time.Millisecond) <= old || h.max.CompareAndSwap(old, int64(d/time.Millisecond)) {
			return
		}
	}
}

// setQuota sets key to v on entity through kadm.
func setQuota(t *testing.T, adm *kadm.Client, entity kadm.ClientQuotaEntity, key string, v float64) {
	t.Helper()
	res, err := adm.AlterClientQuotas(t.Context(), []kadm.AlterClientQuotaEntry{{Entity: entity, Ops: []kadm.AlterClientQuotaOp{{Key: key, Value: v}}}})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Err != nil {
		t.Fatalf("set %s on %v: %v %s", key, entity, res[0].Err, res[0].ErrMessage)
	}
}

func clientEntity(id string) kadm.ClientQuotaEntity {
	return kadm.ClientQuotaEntity{{Type: quota.EntityClientID, Name: strp(id)}}
}

// AlterClientQuotas and DescribeClientQuotas through kadm, on both
// backends: set, validate only, describe with filters, refuse what is not
// enforced, remove.
func TestClientQuotasKadm(t *testing.T) {
	t.Parallel()
	for name, open := range metadatatest.Backends(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := startServer(t, testOptions{store: open(t)})
			adm := s.admin()
			ctx := t.Context()

			versions, err := adm.ApiVersions(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, bv := range versions {
				for _, key := range []int16{describeClientQuotasKey, alterClientQuotasKey} {
					if v, ok := bv.KeyMaxVersion(key); !ok || v != 1 {
						t.Errorf("ApiVersions: key %d max version %d (advertised %v), want 1", key, v, ok)
					}
				}
			}

			alice := kadm.ClientQuotaEntity{{Type: "user", Name: strp("alice")}}
			defaults := kadm.ClientQuotaEntity{{Type: "user"}, {Type: "client-id"}}
			app := clientEntity("app")
			entries := []kadm.AlterClientQuotaEntry{
				{Entity: alice, Ops: []kadm.AlterClientQuotaOp{{Key: "producer_byte_rate", Value: 1 << 20}}},
				{Entity: defaults, Ops: []kadm.AlterClientQuotaOp{{Key: "consumer_byte_rate", Value: 2048}}},
				{Entity: app, Ops: []kadm.AlterClientQuotaOp{{Key: "producer_byte_rate", Value: 100}, {Key: "consumer_byte_rate", Value: 200}}},
			}
			// Validate only: the same answers, nothing stored.
			for _, validate := range []bool{true, false} {
				alter := adm.AlterClientQuotas
				if validate {
					alter = adm.ValidateAlterClientQuotas
				}
				res, err := alter(ctx, entries)
				if err != nil || len(res) != 3 {
					t.Fatalf("alter (validate %v): %v, %v", validate, res, err)
				}
				for i, r := range res {
					if r.Err != nil || r.Entity.String() != entries[i].Entity.String() {
						t.Errorf("alter (validate %v) entry %d: %v %v %s", validate, i, r.Entity, r.Err, r.ErrMessage)
					}
				}
				if validate {
					if got, err := adm.DescribeClientQuotas(ctx, false, nil); err != nil || len(got) != 0 {
						t.Fatalf("after validate only: %v, %v", got, err)
					}
				}
			}

			got, err := adm.DescribeClientQuotas(ctx, false, nil)
			if err != nil {
				t.Fatal(err)
			}
			want := []string{
				"{client-id=app}: consumer_byte_rate=200.000000 producer_byte_rate=100.000000",
				"{user=<default>, client-id=<default>}: consumer_byte_rate=2048.000000",
				"{user=alice}: producer_byte_rate=1048576.000000",
			}
			if d := describeStrings(got); !slices.Equal(d, want) {
				t.Fatalf("describe all:\n%v\nwant\n%v", d, want)
			}
			got, err = adm.DescribeClientQuotas(ctx, true, []kadm.DescribeClientQuotaComponent{{Type: "user", MatchType: kmsg.QuotasMatchTypeAny}})
			if err != nil || !slices.Equal(describeStrings(got), want[2:]) {
				t.Fatalf("describe users strictly: %v, %v", describeStrings(got), err)
			}
			got, err = adm.DescribeClientQuotas(ctx, false, []kadm.DescribeClientQuotaComponent{{Type: "client-id", MatchType: kmsg.QuotasMatchTypeDefault}})
			if err != nil || !slices.Equal(describeStrings(got), want[1:2]) {
				t.Fatalf("describe the default client id: %v, %v", describeStrings(got), err)
			}
			if _, err := adm.DescribeClientQuotas(ctx, false, []kadm.DescribeClientQuotaComponent{{Type: "group", MatchType: kmsg.QuotasMatchTypeAny}}); !errors.Is(err, kerr.UnsupportedVersion) {
				t.Errorf("describe an unknown entity type: %v, want UNSUPPORTED_VERSION", err)
			}

			// Not enforced, so refused: never stored and ignored.
			res, err := adm.AlterClientQuotas(ctx, []kadm.AlterClientQuotaEntry{
				{Entity: alice, Ops: []kadm.AlterClientQuotaOp{{Key: "request_percentage", Value: 50}}},
				{Entity: kadm.ClientQuotaEntity{{Type: "ip", Name: strp("10.0.0.1")}}, Ops: []kadm.AlterClientQuotaOp{{Key: "connection_creation_rate", Value: 5}}},
				{Entity: app, Ops: []kadm.AlterClientQuotaOp{{Key: "producer_byte_rate", Value: 0.5}}},
			})
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range res {
				if !errors.Is(r.Err, kerr.InvalidRequest) || r.ErrMessage == "" {
					t.Errorf("refused entry %d: %v %q, want INVALID_REQUEST with a reason", i, r.Err, r.ErrMessage)
				}
			}

			// Removing every key of an entity removes it.
			res, err = adm.AlterClientQuotas(ctx, []kadm.AlterClientQuotaEntry{{Entity: app, Ops: []kadm.AlterClientQuotaOp{
				{Key: "producer_byte_rate", Remove: true}, {Key: "consumer_byte_rate", Remove: true}}}})
			if err != nil || res[0].Err != nil {
				t.Fatalf("remove: %v, %v", res, err)
			}
			got, err = adm.DescribeClientQuotas(ctx, false, nil)
			if err != nil || !slices.Equal(describeStrings(got), want[1:]) {
				t.Fatalf("after removing client-id=app: %v, %v", describeStrings(got), err)
			}
		})
	}
}

// describeStrings renders described quotas as "entity: key=value ...".
func describeStrings(qs kadm.DescribedClientQuotas) []string {
	var out []string
	for _, q := range qs {
		var vals []string
		for _, v := range q.Values {
			vals = append(vals, v.String())
		}
		slices.Sort(vals)
		s := q.Entity.String() + ":"
		for _, v := range vals {
			s += " " + v
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// A franz-go producer with producer_byte_rate = 1 MiB/s takes at least 7 s
// to send 10 MiB (SPEC: no burst beyond a few seconds' worth) and is told
// of its throttle.
func TestProduceQuota(t *testing.T) {
	t.Parallel()
	s := startServer(t, testOptions{})
	s.dpTopic(t, "limited", 1, nil)
	setQuota(t, s.admin(), clientEntity("limited-producer"), quota.KeyProducerByteRate, 1<<20)

	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	hook := &throttleHook{}
	limited := s.client(kgo.ClientID("limited-producer"), kgo.DefaultProduceTopic("limited"), kgo.WithHooks(hook),
		kgo.ProducerLinger(0), kgo.ProduceRequestTimeout(60*time.Second))
	const n, size = 640, 16 << 10 // 10 MiB
	start := time.Now()
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range n {
		wg.Add(1)
		limited.Produce(ctx, &kgo.Record{Value: randomValue(size)}, func(_ *kgo.Record, err error) {
			if err != nil {
				failed.Add(1)
			}
			wg.Done()
		})
	}
	wg.Wait()
	took := time.Since(start)
	if failed.Load() > 0 {
		t.Fatalf("%d records failed (within 90 s?)", failed.Load())
	}
	t.Logf("10 MiB at 1 MiB/s: %v, %d throttles (longest %d ms)", took, hook.n.Load(), hook.max.Load())
	if took < 7*time.Second {
		t.Fatalf("10 MiB at 1 MiB/s took %v, want at least 7 s", took)
	}
	if hook.n.Load() == 0 {
		t.Fatal("the producer was never told of a throttle")
	}
	if _, hw := s.dpHW(t, "limited", 0); hw != n {
		t.Fatalf("high watermark %d, want %d", hw, n)
	}
}

// A client without a quota is not held back by another client's
// throttle: while a limited producer's connection is muted (for seconds,
// at 16 KiB/s), an unlimited client on its own connections produces and
// consumes.
func TestQuotaThrottlesOnlyItsClient(t *testing.T) {
	t.Parallel()
	s := startServer(t, testOptions{})
	s.dpTopic(t, "limited", 1, nil)
	s.dpTopic(t, "free", 1, nil)
	setQuota(t, s.admin(), clientEntity("limited-producer"), quota.KeyProducerByteRate, 16<<10)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()

	hook := &throttleHook{}
	limited := s.client(kgo.ClientID("limited-producer"), kgo.DefaultProduceTopic("limited"), kgo.WithHooks(hook))
	limitedDone := make(chan struct{})
	var wg sync.WaitGroup
	for range 64 { // 1 MiB: a minute at 16 KiB/s
		wg.Add(1)
		limited.Produce(ctx, &kgo.Record{Value: randomValue(16 << 10)}, func(*kgo.Record, error) { wg.Done() })
	}
	go func() { wg.Wait(); close(limitedDone) }()

	// The limited producer's connection is muted until some time.
	var mutedUntil time.Time
	for mutedUntil.IsZero() {
		s.srv.mu.Lock()
		for c := range s.srv.conns {
			c.muted.mu.Lock()
			if c.muted.until.After(time.Now().Add(time.Second)) {
				mutedUntil = c.muted.until
			}
			c.muted.mu.Unlock()
		}
		s.srv.mu.Unlock()
		select {
		case <-ctx.Done():
			t.Fatal("the limited producer's connection was never muted")
		case <-limitedDone:
			t.Fatal("the limited producer finished without its connection being muted")
		case <-time.After(5 * time.Millisecond):
		}
	}

	free := s.client(kgo.ClientID("free-client"), kgo.DefaultProduceTopic("free"))
	var recs []*kgo.Record
	for range 16 {
		recs = append(recs, &kgo.Record{Value: randomValue(16 << 10)})
	}
	if err := free.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("unlimited producer: %v", err)
	}
	got := s.dpConsume(t, ctx, "free", len(recs), kgo.ClientID("free-client"))
	if len(got) != len(recs) {
		t.Fatalf("unlimited consumer read %d records", len(got))
	}
	if now := time.Now(); !now.Before(mutedUntil) {
		t.Fatalf("the unlimited client was done %v after the limited connection's mute ended", now.Sub(mutedUntil))
	}
	select {
	case <-limitedDone:
		t.Fatal("the limited producer finished before the unlimited client")
	default:
	}
	t.Logf("the unlimited client was done %v before the limited connection's mute ends; limited throttles: %d", time.Until(mutedUntil), hook.n.Load())
}

// A franz-go consumer with consumer_byte_rate = 1 MiB/s takes at least 7 s
// to read 10 MiB, is told of its throttle, and gets every record once, in
// order.
func TestFetchQuota(t *testing.T) {
	t.Parallel()
	s := startServer(t, testOptions{})
	s.dpTopic(t, "slow", 1, nil)
	const n, size = 640, 16 << 10 // 10 MiB
	loader := s.client(kgo.DefaultProduceTopic("slow"))
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	var recs []*kgo.Record
	for range n {
		recs = append(recs, &kgo.Record{Value: randomValue(size)})
	}
	if err := loader.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	setQuota(t, s.admin(), clientEntity("slow-consumer"), quota.KeyConsumerByteRate, 1<<20)

	hook := &throttleHook{}
	cons := s.client(kgo.ClientID("slow-consumer"), kgo.ConsumeTopics("slow"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.WithHooks(hook))
	start := time.Now()
	var next int64
	for next < n {
		fs := cons.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of %d records in 90 s", next, n)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("fetch: %v", err) })
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset != next || !bytes.Equal(r.Value, recs[next].Value) {
				t.Fatalf("record at offset %d (len %d), want offset %d", r.Offset, len(r.Value), next)
			}
			next++
		})
	}
	took := time.Since(start)
	t.Logf("10 MiB at 1 MiB/s: %v, %d throttles (longest %d ms)", took, hook.n.Load(), hook.max.Load())
	if took < 7*time.Second {
		t.Fatalf("10 MiB at 1 MiB/s read in %v, want at least 7 s", took)
	}
	if hook.n.Load() == 0 {
		t.Fatal("the consumer was never told of a throttle")
	}
}

// The server holds a client to its quota even when the client ignores
// throttle_time_ms: requests pipelined on one connection are read one
// throttle apart (KIP-219's muted channel), and each answer over the quota
// carries its throttle.
func TestProduceQuotaMutesConnection(t *testing.T) {
	t.Parallel()
	s := startServer(t, testOptions{})
	s.dpTopic(t, "mute", 1, nil)
	const rate = 64 << 10 // a bucket of 64 KiB, refilled in 1 s
	setQuota(t, s.admin(), clientEntity("dp-test"), quota.KeyProducerByteRate, rate)
	w := s.dpDial(t)
	b := dpBatch(t, batch.DefaultBuildOptions(), batch.Record{Value: make([]byte, rate), Timestamp: 1000})
	const reqs = 5
	start := time.Now()
	var corrs []int32
	var sent []kmsg.Request
	for range reqs {
		req := dpProduceReq(9, "mute", 0, 1, b)
		sent = append(sent, req)
		corrs = append(corrs, w.send(req))
	}
	var throttles []int32
	var last time.Duration
	for i := range reqs {
		resp, err := w.read(sent[i], corrs[i])
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		pr := resp.(*kmsg.ProduceResponse)
		if code := pr.Topics[0].Partitions[0].ErrorCode; code != 0 {
			t.Fatalf("response %d: %v", i, kerr.ErrorForCode(code))
		}
		throttles = append(throttles, pr.ThrottleMillis)
		last = time.Since(start)
	}
	t.Logf("throttles %v ms; last answer after %v", throttles, last)
	// The first request empties the bucket; each later one is read only
	// once the one before it has paid back its 1 s of debt.
	if last < 2900*time.Millisecond {
		t.Fatalf("%d pipelined requests of 1 s of quota each answered within %v, want at least 3 s", reqs, last)
	}
	for i := 1; i < reqs; i++ {
		if throttles[i] <= 0 {
			t.Fatalf("request %d not throttled (%v ms)", i, throttles)
		}
	}
}

// randomValue returns n random bytes: quotas count the bytes on the wire,
// after compression, so test data must not compress (not even against the
// other records of its batch).
func randomValue(n int) []byte {
	v := make([]byte, n)
	_, _ = rand.Read(v)
	return v
}

// A consumer with a quota gets at most one bucket (1 s of its quota) per
// response, whatever MaxBytes it asks for; a response that would overdraw
// it comes back without records and with a throttle, and the connection is
// not read from until the throttle has passed.
func TestFetchQuotaBoundsResponses(t *testing.T) {
	t.Parallel()
	s := startServer(t, testOptions{})
	s.dpTopic(t, "bounded", 1, nil)
	w := s.dpDial(t)
	for range 8 {
		dpProduceRaw(t, w, "bounded", 0, 1, 256<<10) // 2 MiB in all
	}
	setQuota(t, s.admin(), clientEntity("dp-test"), quota.KeyConsumerByteRate, 1<<20)
	fetch := func(offset int64) *kmsg.FetchRequest {
		req := dpFetchReq(12, "bounded", map[int32]int64{0: offset})
		req.Topics[0].Partitions[0].PartitionMaxBytes = 50 << 20
		return req
	}
	recordBytes := func(r *kmsg.FetchResponse) (int, int64) {
		p := r.Topics[0].Partitions[0]
		if p.ErrorCode != 0 {
			t.Fatalf("fetch: %v", kerr.ErrorForCode(p.ErrorCode))
		}
		var next int64
		for rest := p.RecordBatches; len(rest) > 0; {
			b, err := batch.Split(rest)
			if err != nil || len(b) == 0 {
				t.Fatalf("records: %v", err)
			}
			h, err := batch.ParseHeader(b[0])
			if err != nil {
				t.Fatal(err)
			}
			next = h.BaseOffset + int64(h.LastOffsetDelta) + 1
			rest = rest[len(b[0]):]
		}
		return len(p.RecordBatches), next
	}
	first := w.do(fetch(0)).(*kmsg.FetchResponse)
	n, next := recordBytes(first)
	if n == 0 || n > 1<<20 || first.ThrottleMillis != 0 {
		t.Fatalf("first fetch: %d record bytes, throttle %d ms; want up to one bucket (1 MiB), no throttle", n, first.ThrottleMillis)
	}
	sentAt := time.Now()
	second := w.do(fetch(next)).(*kmsg.FetchResponse)
	if n, _ := recordBytes(second); n != 0 || second.ThrottleMillis <= 0 {
		t.Fatalf("second fetch: %d record bytes, throttle %d ms; want none and a throttle", n, second.ThrottleMillis)
	}
	third := w.do(fetch(next)).(*kmsg.FetchResponse)
	if n, _ := recordBytes(third); n == 0 {
		t.Fatalf("third fetch, after the throttle: no records")
	}
	if waited := time.Since(sentAt); waited < time.Duration(second.ThrottleMillis)*time.Millisecond {
		t.Fatalf("the fetch after a %d ms throttle was answered %v after the throttled one was sent", second.ThrottleMillis, waited)
	}
}

// Each agent enforces its share of a quota: with two live agents, half.
// A quota set through one agent is in effect on the other too.
func TestQuotaShareAcrossAgents(t *testing.T) {
	t.Parallel()
	store, bucket := sharedStorage(t)
	s1 := startServer(t, testOptions{store: store, bucket: bucket, agentID: "agent-1"})
	s2 := startServer(t, testOptions{store: store, bucket: bucket, agentID: "agent-2"})
	for _, s := range []*testServer{s1, s2} {
		testutil.WaitFor(t, "each agent to count two live agents", func() bool { return s.srv.quotas.Share() == 0.5 })
	}
	setQuota(t, s1.admin(), clientEntity("shared"), quota.KeyProducerByteRate, 2000)
	c := quota.Client{User: quota.AnonymousUser, ClientID: "shared"}
	testutil.WaitFor(t, "the quota on the other agent", func() bool { v, _ := s2.srv.quotas.Limit(quota.Produce, c); return v == 2000 })
	// 2000 B/s in all, so 1000 B/s and a 1000-byte bucket here: the second
	// 1000 bytes owe up to a second (with one agent they would fit).
	s2.srv.quotas.RecordProduce(c, 1000)
	if d := s2.srv.quotas.RecordProduce(c, 1000); d < 500*time.Millisecond || d > 1100*time.Millisecond {
		t.Fatalf("throttle %v at half of 2000 B/s after a full bucket, want about 1 s", d)
	}
}

// With logins, a user's quota applies to the clients authenticated as that
// user, whatever their client id, and not to other users.
func TestQuotaByAuthenticatedUser(t *testing.T) {
	t.Parallel()
	s := startAuthServer(t, testOptions{})
	s.dpTopic(t, "users", 1, nil)
	as := func(user string, hook *throttleHook) *kgo.Client {
		return s.client(kgo.SASL(mechanism("SCRAM-SHA-256", user, user+"-secret")), kgo.ClientID("shared-id"),
			kgo.DefaultProduceTopic("users"), kgo.WithHooks(hook))
	}
	setQuota(t, kadm.NewClient(as("alice", &throttleHook{})),
		kadm.ClientQuotaEntity{{Type: "user", Name: strp("alice")}}, quota.KeyProducerByteRate, 32<<10)
	for _, tc := range []struct {
		user      string
		throttled bool
	}{{"alice", true}, {"bob", false}} {
		hook := &throttleHook{}
		cl := as(tc.user, hook)
		// 64 KiB against a 32 KiB bucket: a second of debt.
		if err := cl.ProduceSync(t.Context(), &kgo.Record{Value: randomValue(64 << 10)}).FirstErr(); err != nil {
			t.Fatalf("%s: %v", tc.user, err)
		}
		if got := hook.n.Load() > 0; got != tc.throttled {
			t.Fatalf("%s throttled: %v, want %v", tc.user, got, tc.throttled)
		}
	}
}

// A client that ignores a long throttle and sends another request, then
// leaves, does not keep its connection (and its per-IP slot) until the
// throttle ends: the server closes a connection whose next request would
// wait more than maxMuteWait.
func TestLongThrottleReleasesConnection(t *testing.T) {
	t.Parallel()
	s := startServer(t, testOptions{})
	s.dpTopic(t, "longmute", 1, nil)
	setQuota(t, s.admin(), clientEntity("dp-test"), quota.KeyProducerByteRate, 1<<10)
	conns := func() int {
		s.srv.mu.Lock()
		defer s.srv.mu.Unlock()
		return len(s.srv.conns)
	}
	base := conns()
	w := s.dpDial(t)
	b := dpBatch(t, batch.DefaultBuildOptions(), batch.Record{Value: randomValue(512 << 10), Timestamp: 1000})
	pr := w.do(dpProduceReq(9, "longmute", 0, 1, b)).(*kmsg.ProduceResponse)
	if code := pr.Topics[0].Partitions[0].ErrorCode; code != 0 {
		t.Fatalf("produce: %v", kerr.ErrorForCode(code))
	}
	if pr.ThrottleMillis < int32(maxMuteWait/time.Millisecond) {
		t.Fatalf("throttle %d ms, want over %v (512 KiB at 1 KiB/s)", pr.ThrottleMillis, maxMuteWait)
	}
	// The next request ignores the throttle; then the client leaves.
	w.send(dpProduceReq(9, "longmute", 0, 1, dpBatch(t, batch.DefaultBuildOptions(), batch.Record{Value: []byte("x"), Timestamp: 1000})))
	_ = w.nc.Close()
	deadline := time.Now().Add(10 * time.Second)
	for conns() > base {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections 10s after the throttled client left, want %d", conns(), base)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := promtest.ToFloat64(s.srv.metrics.requestsRejected.WithLabelValues("throttled")); got != 1 {
		t.Fatalf("connections dropped as throttled: %v, want 1", got)
	}
}
