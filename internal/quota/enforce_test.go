package quota

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/metadata/metadatatest"
)

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// newTestManager returns a Manager over a fresh SQLite store with quotas
// set, loaded, and a fake clock.
func newTestManager(t *testing.T, cfg Config, quotas ...metadata.QuotaAlteration) (*Manager, *fakeClock) {
	t.Helper()
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	if cfg.Store == nil {
		cfg.Store = metadatatest.OpenSQLite(t)
	}
	cfg.Now = clock.now
	m := New(cfg)
	if len(quotas) > 0 {
		if err := cfg.Store.AlterClientQuotas(t.Context(), quotas); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	return m, clock
}

func set(e metadata.QuotaEntity, kv ...any) metadata.QuotaAlteration {
	a := metadata.QuotaAlteration{Entity: e, Set: map[string]float64{}}
	for i := 0; i < len(kv); i += 2 {
		a.Set[kv[i].(string)] = float64(kv[i+1].(int))
	}
	return a
}

// The eight levels of Kafka's precedence, each tried with every less
// specific level also set: the most specific present wins, and its level
// decides who shares the bucket (Kafka's metric tags).
func TestPrecedence(t *testing.T) {
	t.Parallel()
	const user, client = "alice", "app"
	levels := []struct {
		entity  metadata.QuotaEntity
		keyUser string
		keyID   string
	}{
		{metadata.QuotaEntity{HasUser: true, User: user, HasClientID: true, ClientID: client}, user, client}, // /config/users/alice/clients/app
		{metadata.QuotaEntity{HasUser: true, User: user, HasClientID: true}, user, client},                   // /config/users/alice/clients/<default>
		{metadata.QuotaEntity{HasUser: true, User: user}, user, ""},                                          // /config/users/alice
		{metadata.QuotaEntity{HasUser: true, HasClientID: true, ClientID: client}, user, client},             // /config/users/<default>/clients/app
		{metadata.QuotaEntity{HasUser: true, HasClientID: true}, user, client},                               // /config/users/<default>/clients/<default>
		{metadata.QuotaEntity{HasUser: true}, user, ""},                                                      // /config/users/<default>
		{metadata.QuotaEntity{HasClientID: true, ClientID: client}, "", client},                              // /config/clients/app
		{metadata.QuotaEntity{HasClientID: true}, "", client},                                                // /config/clients/<default>
	}
	// Entities of other users and client ids never apply.
	others := []metadata.QuotaAlteration{
		set(metadata.QuotaEntity{HasUser: true, User: "bob", HasClientID: true, ClientID: client}, KeyProducerByteRate, 1),
		set(metadata.QuotaEntity{HasUser: true, User: user, HasClientID: true, ClientID: "other"}, KeyProducerByteRate, 2),
		set(metadata.QuotaEntity{HasUser: true, User: "bob"}, KeyProducerByteRate, 3),
		set(metadata.QuotaEntity{HasClientID: true, ClientID: "other"}, KeyProducerByteRate, 4),
		set(metadata.QuotaEntity{HasUser: true, HasClientID: true, ClientID: "other"}, KeyProducerByteRate, 5),
	}
	for want := range levels {
		t.Run(fmt.Sprintf("level%d", want+1), func(t *testing.T) {
			t.Parallel()
			alts := append([]metadata.QuotaAlteration(nil), others...)
			for i := want; i < len(levels); i++ {
				// The consumer quota sits one level lower, to show the
				// kinds resolve apart.
				a := set(levels[i].entity, KeyProducerByteRate, 1000*(i+1))
				if i > want {
					a.Set[KeyConsumerByteRate] = float64(7000 * (i + 1))
				}
				alts = append(alts, a)
			}
			m, _ := newTestManager(t, Config{}, alts...)
			l := m.limits.Load()
			v, level, key := l.lookup(Produce, user, client)
			if level != want+1 || v != float64(1000*(want+1)) {
				t.Fatalf("produce: level %d value %v, want level %d value %d", level, v, want+1, 1000*(want+1))
			}
			if wantKey := (bucketKey{Produce, levels[want].keyUser, levels[want].keyID}); key != wantKey {
				t.Errorf("produce bucket key %+v, want %+v", key, wantKey)
			}
			v, level, _ = l.lookup(Fetch, user, client)
			if want+1 < len(levels) {
				if level != want+2 || v != float64(7000*(want+2)) {
					t.Errorf("fetch: level %d value %v, want level %d", level, v, want+2)
				}
			} else if level != 0 {
				t.Errorf("fetch: level %d, want no quota", level)
			}
		})
	}
	t.Run("none", func(t *testing.T) {
		t.Parallel()
		m, _ := newTestManager(t, Config{}, others...)
		if v, level := m.Limit(Produce, Client{User: user, ClientID: client}); level != 0 {
			t.Fatalf("level %d value %v with only other entities set", level, v)
		}
		if d := m.RecordProduce(Client{User: user, ClientID: client}, 1<<30); d != 0 {
			t.Fatalf("throttled %v without a quota", d)
		}
	})
	t.Run("empty client id", func(t *testing.T) {
		t.Parallel()
		m, _ := newTestManager(t, Config{},
			set(metadata.QuotaEntity{HasUser: true, User: user, HasClientID: true}, KeyProducerByteRate, 10),
			set(metadata.QuotaEntity{HasClientID: true}, KeyConsumerByteRate, 20))
		if v, level := m.Limit(Produce, Client{User: user}); v != 10 || level != 2 {
			t.Errorf("produce: %v at level %d, want the user's default client-id quota", v, level)
		}
		if v, level := m.Limit(Fetch, Client{User: AnonymousUser}); v != 20 || level != 8 {
			t.Errorf("fetch: %v at level %d, want the default client-id quota", v, level)
		}
	})
}

// A producer sending back to back, each request waiting out its throttle
// (as the muted connection makes it), is held to its quota after one
// bucket's burst: 10 MiB at 1 MiB/s takes at least 8 s, whatever the
// request size.
func TestProduceRate(t *testing.T) {
	t.Parallel()
	for _, req := range []int64{1 << 10, 16 << 10, 100 << 10, 1 << 20, 3 << 20} {
		t.Run(fmt.Sprint(req), func(t *testing.T) {
			t.Parallel()
			m, clock := newTestManager(t, Config{}, set(metadata.QuotaEntity{HasClientID: true}, KeyProducerByteRate, 1<<20))
			start := clock.now()
			c := Client{User: AnonymousUser, ClientID: "p"}
			var lastRead time.Time
			for sent := int64(0); sent < 10<<20; sent += req {
				lastRead = clock.now()
				d := m.RecordProduce(c, req)
				clock.advance(d + time.Millisecond)
			}
			took := lastRead.Sub(start)
			// The last request is read once the bucket paid back all but a
			// burst and that request.
			if lo := time.Duration(float64(10<<20-(1<<20)-req) / (1 << 20) * float64(time.Second)); took < lo {
				t.Fatalf("10 MiB in %d-byte requests read within %v, want at least %v", req, took, lo)
			}
			if took > 11*time.Second {
				t.Fatalf("10 MiB in %d-byte requests took %v: throttled more than the quota asks", req, took)
			}
		})
	}
}

func TestProduceThrottleArithmetic(t *testing.T) {
	t.Parallel()
	m, clock := newTestManager(t, Config{}, set(metadata.QuotaEntity{HasUser: true}, KeyProducerByteRate, 1000))
	c := Client{User: "u", ClientID: "c"}
	steps := []struct {
		advance time.Duration
		bytes   int64
		want    time.Duration
	}{
		{0, 600, 0},                                         // a full bucket (1000) takes it
		{0, 600, 200 * time.Millisecond},                    // 200 bytes of debt at 1000 B/s
		{time.Second, 500, 0},                               // refilled to 800, leaves 300
		{0, 1300, time.Second},                              // 1000 of debt
		{10 * time.Second, 0, 0},                            // capped at the bucket size, not 9000
		{0, 2000, time.Second},                              // so 2000 leaves 1000 of debt
		{500 * time.Millisecond, 0, 500 * time.Millisecond}, // nothing added, 500 still owed
		{0, 1, 501 * time.Millisecond},                      // plus one byte
	}
	for i, st := range steps {
		clock.advance(st.advance)
		if d := m.RecordProduce(c, st.bytes); d.Round(time.Millisecond) != st.want {
			t.Fatalf("step %d: throttle %v, want %v", i, d, st.want)
		}
	}
	if Millis(1500*time.Microsecond) != 2 || Millis(0) != 0 || Millis(1000*time.Hour) != 1<<31-1 {
		t.Errorf("Millis rounds wrong: %d %d %d", Millis(1500*time.Microsecond), Millis(0), Millis(1000*time.Hour))
	}
}

// Each agent enforces its share: with three live agents, a third.
func TestShare(t *testing.T) {
	t.Parallel()
	agents := 3
	m, _ := newTestManager(t, Config{LiveAgents: func(context.Context) (int, error) { return agents, nil }},
		set(metadata.QuotaEntity{HasClientID: true, ClientID: "c"}, KeyProducerByteRate, 3000))
	m.countAgents(t.Context())
	c := Client{ClientID: "c", User: AnonymousUser}
	if d := m.RecordProduce(c, 1000); d != 0 {
		t.Fatalf("first request throttled %v", d)
	}
	if d := m.RecordProduce(c, 1000); d.Round(time.Millisecond) != time.Second {
		t.Fatalf("throttle %v at a share of 1000 B/s, want 1s", d)
	}
	if got := m.FetchMaxBytes(c, 1<<20); got != 1<<20 {
		t.Errorf("FetchMaxBytes without a fetch quota = %d", got)
	}
	agents = 0 // a count of none is one (this agent)
	m.countAgents(t.Context())
	if m.Share() != 1 {
		t.Errorf("share %v with no agent counted", m.Share())
	}
}

func TestFetch(t *testing.T) {
	t.Parallel()
	m, clock := newTestManager(t, Config{}, set(metadata.QuotaEntity{HasClientID: true}, KeyConsumerByteRate, 1000))
	c := Client{User: AnonymousUser, ClientID: "consumer"}
	if got := m.FetchMaxBytes(c, 1<<20); got != 1000 {
		t.Fatalf("FetchMaxBytes = %d, want one bucket (1000)", got)
	}
	if got := m.FetchMaxBytes(c, 10); got != 10 {
		t.Fatalf("FetchMaxBytes of a small request = %d", got)
	}
	steps := []struct {
		advance  time.Duration
		bytes    int64
		throttle time.Duration
		deliver  bool
	}{
		{0, 700, 0, true},
		{0, 700, 400 * time.Millisecond, false},         // 300 left: not sent, nothing counted
		{400 * time.Millisecond, 700, 0, true},          // 700 now: sent
		{0, 0, 0, true},                                 // an empty response, no debt
		{10 * time.Second, 3000, 2 * time.Second, true}, // larger than a bucket: from a full one, in debt
		{time.Second, 0, time.Second, true},             // an empty response still waits out the debt
		{0, 10, 1010 * time.Millisecond, false},
	}
	for i, st := range steps {
		clock.advance(st.advance)
		d, ok := m.RecordFetch(c, st.bytes)
		if d.Round(time.Millisecond) != st.throttle || ok != st.deliver {
			t.Fatalf("step %d: throttle %v deliver %v, want %v %v", i, d, ok, st.throttle, st.deliver)
		}
	}
}

// Buckets that refilled are forgotten; past MaxBuckets a new key is not
// tracked (served from a full bucket) rather than growing memory.
func TestBuckets(t *testing.T) {
	t.Parallel()
	m, clock := newTestManager(t, Config{MaxBuckets: 2}, set(metadata.QuotaEntity{HasClientID: true}, KeyProducerByteRate, 1000))
	rec := func(id string, n int64) time.Duration { return m.RecordProduce(Client{ClientID: id}, n) }
	rec("a", 1000)
	rec("b", 1000)
	if d := rec("c", 1000); d != 0 || m.Buckets() != 2 {
		t.Fatalf("third key: throttle %v, %d buckets; want an untracked full bucket", d, m.Buckets())
	}
	if d := rec("c", 1000); d != 0 || m.Buckets() != 2 {
		t.Fatalf("third key again: throttle %v, %d buckets; want an untracked full bucket", d, m.Buckets())
	}
	clock.advance(2 * time.Second)
	rec("c", 1500) // a and b refilled: pruned to make room
	if m.Buckets() != 1 {
		t.Fatalf("%d buckets after pruning, want 1", m.Buckets())
	}
	if d := rec("c", 1); d.Round(time.Millisecond) != 501*time.Millisecond {
		t.Fatalf("tracked key: throttle %v", d)
	}
	clock.advance(time.Hour)
	m.prune(clock.now())
	if m.Buckets() != 0 {
		t.Fatalf("%d buckets after an idle hour", m.Buckets())
	}
}

// A bucket's key holds a long client id as a bounded digest, whatever its
// length; two long ids that differ only at the end keep buckets of their
// own, and a quota named for a long id still finds its bucket again.
func TestBucketKeysBounded(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 100)
	m, clock := newTestManager(t, Config{},
		set(metadata.QuotaEntity{HasUser: true, User: "u", HasClientID: true}, KeyProducerByteRate, 1000),
		set(metadata.QuotaEntity{HasClientID: true, ClientID: long}, KeyProducerByteRate, 2000))
	a, b := strings.Repeat("a", 10<<10)+"1", strings.Repeat("a", 10<<10)+"2"
	if d := m.RecordProduce(Client{User: "u", ClientID: a}, 2000); d <= 0 {
		t.Fatalf("first long id over its quota: throttle %v", d)
	}
	if d := m.RecordProduce(Client{User: "u", ClientID: b}, 500); d != 0 {
		t.Fatalf("second long id throttled (%v) by the first one's debt", d)
	}
	if d := m.RecordProduce(Client{ClientID: long}, 4000); d <= 0 {
		t.Fatalf("named long id over its quota: throttle %v", d)
	}
	m.mu.Lock()
	n := len(m.buckets)
	for k := range m.buckets {
		if len(k.clientID) > keyPrefix+1+sha256.Size || len(k.user) > keyPrefix+1+sha256.Size {
			t.Errorf("bucket key of %d+%d bytes", len(k.user), len(k.clientID))
		}
	}
	m.mu.Unlock()
	if n != 3 {
		t.Fatalf("%d buckets, want 3", n)
	}
	// Half a second on, the named long id's bucket is still in debt: a
	// prune keeps it (its key finds its quota), and the debt stays.
	clock.advance(500 * time.Millisecond)
	m.prune(clock.now())
	if d := m.RecordProduce(Client{ClientID: long}, 1); d <= 0 {
		t.Fatalf("named long id's debt forgotten by a prune: throttle %v", d)
	}
}

// One request far over the quota is throttled in proportion (KIP-219):
// 50 MB against 1 MB/s from a full bucket (1 MB) owes 49 MB, 49 s, and
// the next request within that time adds to it. Kafka's byte-rate quotas
// do not cap this throttle either (only request_percentage's is capped,
// at one quota window); the Kafka listener closes, instead of holding,
// a connection whose next request would wait over 30 s.
func TestLargeProduceThrottleIsProportional(t *testing.T) {
	t.Parallel()
	const mb = 1_000_000
	m, clock := newTestManager(t, Config{}, set(metadata.QuotaEntity{HasClientID: true}, KeyProducerByteRate, mb))
	c := Client{User: AnonymousUser, ClientID: "big"}
	if d := m.RecordProduce(c, 50*mb); d.Round(time.Millisecond) != 49*time.Second {
		t.Fatalf("50 MB at 1 MB/s: throttle %v, want 49s", d)
	}
	clock.advance(10 * time.Second)
	if d := m.RecordProduce(c, mb); d.Round(time.Millisecond) != 40*time.Second {
		t.Fatalf("1 MB more after 10 s: throttle %v, want 40s", d)
	}
	if Millis(40*time.Second) != 40000 {
		t.Fatalf("throttle_time_ms of 40 s: %d", Millis(40*time.Second))
	}
}
