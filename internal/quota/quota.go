// Package quota owns Kafka client quotas (KIP-55, KIP-546, KIP-219): the
// rules for setting and describing them (AlterClientQuotas and
// DescribeClientQuotas semantics), which quota applies to a client (Kafka's
// eight levels of precedence), and enforcement: each (user, client-id) key
// draws its bytes from a token bucket, and a request that overdraws it is
// given the time that brings it back (throttle_time_ms, and the connection
// is muted for as long).
//
// Quotas live in the metadata store; every agent caches them (Manager.Run),
// reloading at once when the store announces a change
// (metadata.ChangeNotifier) and every ReloadInterval in any case. Each
// agent enforces its share of a quota: the quota divided by the number of
// live agents, so that a client spread over every agent gets the quota in
// all, and a client on one agent gets its share.
//
// docs/security.md (Quotas) describes the behaviour for operators.
package quota

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamhouse/streamhouse/internal/metadata"
)

// Kind is a kind of quota enforced.
type Kind int

const (
	Produce Kind = iota // producer_byte_rate: bytes of Produce requests
	Fetch               // consumer_byte_rate: bytes of Fetch responses
	numKinds
)

// The quota keys StreamHouse enforces, as Kafka names them.
const (
	KeyProducerByteRate = "producer_byte_rate"
	KeyConsumerByteRate = "consumer_byte_rate"
)

// Key is the kind's quota key.
func (k Kind) Key() string {
	if k == Fetch {
		return KeyConsumerByteRate
	}
	return KeyProducerByteRate
}

// String is the kind's metric label: "produce" or "fetch".
func (k Kind) String() string {
	if k == Fetch {
		return "fetch"
	}
	return "produce"
}

// AnonymousUser is the user name of a client that did not authenticate,
// as Kafka's ANONYMOUS principal: quotas of the default user, or of the
// user ANONYMOUS, apply to it.
const AnonymousUser = "ANONYMOUS"

// ListenerKafka is the listener label of the Kafka front end.
const ListenerKafka = "kafka"

// Client is who a request comes from, for quotas.
type Client struct {
	Listener string // metric label, e.g. ListenerKafka
	User     string // the authenticated user name; AnonymousUser without authentication
	ClientID string // the request header's client id ("" if none)
}

// Defaults of Config.
const (
	DefaultBurst          = time.Second
	DefaultReloadInterval = 30 * time.Second
	DefaultAgentsInterval = 5 * time.Second
	// DefaultMaxBuckets bounds the keys tracked at once (one per
	// throttled user or client id with recent traffic).
	DefaultMaxBuckets = 1 << 16
)

// Config configures a Manager.
type Config struct {
	// Store keeps the quotas; when it is also a metadata.ChangeNotifier,
	// changes are picked up at once.
	Store metadata.QuotaStore
	// LiveAgents returns how many agents are live, this one included;
	// each agent enforces quota / LiveAgents. Nil: one agent.
	LiveAgents func(ctx context.Context) (int, error)
	Logger     *slog.Logger
	// Registry receives the throttle metrics; nil means none.
	Registry prometheus.Registerer
	// Burst is how much a key may send at once after being idle, in
	// seconds' worth of its quota (the bucket's size), and the largest
	// Fetch response a consumer with a quota gets. Default DefaultBurst.
	Burst time.Duration
	// ReloadInterval bounds how long a change whose notice was lost takes
	// to apply. Default DefaultReloadInterval.
	ReloadInterval time.Duration
	// AgentsInterval is how often the live agents are counted. Default
	// DefaultAgentsInterval.
	AgentsInterval time.Duration
	MaxBuckets     int
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
}

// Manager caches the quotas and enforces them. Safe for concurrent use.
type Manager struct {
	cfg     Config
	log     *slog.Logger
	now     func() time.Time
	metrics *metrics

	limits atomic.Pointer[limits] // the cached quotas
	agents atomic.Int64           // live agents, at least 1

	mu         sync.Mutex
	buckets    map[bucketKey]*bucket
	lastPrune  time.Time
	reloadMu   sync.Mutex // serializes reloads, so an older load never replaces a newer one
	reloadKick chan struct{}
}

// limits are the cached quotas: per kind, the value of every entity that
// sets it, and which of the eight levels of precedence (enforce.go) have
// an entity at all (bit level-1), so a lookup tries only those.
type limits struct {
	byKind [numKinds]map[metadata.QuotaEntity]float64
	// byKey is byKind with the names as bucket keys hold them
	// (boundKeyPart), to find a bucket key's quota again.
	byKey  [numKinds]map[metadata.QuotaEntity]float64
	levels [numKinds]uint8
}

// New returns a Manager with no quotas loaded; Run (or Reload) loads them.
func New(cfg Config) *Manager {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Burst <= 0 {
		cfg.Burst = DefaultBurst
	}
	if cfg.ReloadInterval <= 0 {
		cfg.ReloadInterval = DefaultReloadInterval
	}
	if cfg.AgentsInterval <= 0 {
		cfg.AgentsInterval = DefaultAgentsInterval
	}
	if cfg.MaxBuckets <= 0 {
		cfg.MaxBuckets = DefaultMaxBuckets
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	m := &Manager{
		cfg:        cfg,
		log:        cfg.Logger.With("component", "quota"),
		now:        cfg.Now,
		metrics:    newMetrics(cfg.Registry),
		buckets:    make(map[bucketKey]*bucket),
		reloadKick: make(chan struct{}, 1),
	}
	m.limits.Store(&limits{})
	m.agents.Store(1)
	return m
}

// Run loads the quotas and keeps them current until ctx ends: on every
// change notice, after notices may have been lost, and every
// ReloadInterval. It also counts the live agents every AgentsInterval and
// forgets the buckets of idle keys.
func (m *Manager) Run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	if n, ok := m.cfg.Store.(metadata.ChangeNotifier); ok {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = n.WatchChanges(ctx, metadata.ChangeWatch{
				Changed: func(c metadata.Change) {
					if c == metadata.ChangeQuotas {
						m.kick()
					}
				},
				// Reload once notices flow (again): one may have been
				// lost meanwhile.
				Listening: func(ok bool) {
					if ok {
						m.kick()
					}
				},
			})
		}()
	}
	m.countAgents(ctx)
	if err := m.Reload(ctx); err != nil && ctx.Err() == nil {
		m.log.Warn("load client quotas", "err", err)
	}
	reload := time.NewTicker(m.cfg.ReloadInterval)
	defer reload.Stop()
	agents := time.NewTicker(m.cfg.AgentsInterval)
	defer agents.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.reloadKick:
		case <-reload.C:
		case <-agents.C:
			m.countAgents(ctx)
			m.prune(m.now())
			continue
		}
		if err := m.Reload(ctx); err != nil && ctx.Err() == nil {
			m.log.Warn("reload client quotas; keeping the previous ones", "err", err)
		}
	}
}

func (m *Manager) kick() {
	select {
	case m.reloadKick <- struct{}{}:
	default:
	}
}

// Reload reads the quotas from the store and puts them in effect.
func (m *Manager) Reload(ctx context.Context) error {
	m.reloadMu.Lock()
	defer m.reloadMu.Unlock()
	qs, err := m.cfg.Store.ClientQuotas(ctx)
	if err != nil {
		return err
	}
	l := &limits{}
	for k := range l.byKind {
		l.byKind[k] = make(map[metadata.QuotaEntity]float64)
		l.byKey[k] = make(map[metadata.QuotaEntity]float64)
	}
	for _, q := range qs {
		for k := range numKinds {
			// Only positive values are ever stored (Alter refuses others).
			if v, ok := q.Values[k.Key()]; ok && v > 0 {
				l.byKind[k][q.Entity] = v
				bounded := q.Entity
				bounded.User, bounded.ClientID = boundKeyPart(bounded.User), boundKeyPart(bounded.ClientID)
				l.byKey[k][bounded] = v
				l.levels[k] |= 1 << (levelOf(q.Entity) - 1)
			}
		}
	}
	m.limits.Store(l)
	return nil
}

func (m *Manager) countAgents(ctx context.Context) {
	if m.cfg.LiveAgents == nil {
		return
	}
	n, err := m.cfg.LiveAgents(ctx)
	if err != nil {
		if ctx.Err() == nil {
			m.log.Warn("count live agents for quota shares; keeping the last count", "err", err, "agents", m.agents.Load())
		}
		return
	}
	m.agents.Store(int64(max(n, 1)))
}

// Share is the fraction of each quota this agent enforces: 1 / live
// agents.
func (m *Manager) Share() float64 { return 1 / float64(m.agents.Load()) }

// errors of Alter and Describe, in the protocol's terms.
var (
	// ErrInvalidRequest is Kafka's INVALID_REQUEST.
	ErrInvalidRequest = errors.New("invalid request")
	// ErrUnsupported is Kafka's UNSUPPORTED_VERSION: a feature this
	// broker does not have (an entity type it does not know).
	ErrUnsupported = errors.New("unsupported")
)

// requestError is a refusal with the message clients see.
type requestError struct {
	kind error
	msg  string
}

func (e *requestError) Error() string { return e.msg }
func (e *requestError) Unwrap() error { return e.kind }

func invalid(msg string) error     { return &requestError{kind: ErrInvalidRequest, msg: msg} }
func unsupported(msg string) error { return &requestError{kind: ErrUnsupported, msg: msg} }

// Millis is a throttle as the protocol's int32 throttle_time_ms, rounded
// up so that a client never comes back early.
func Millis(d time.Duration) int32 {
	ms := math.Ceil(float64(d) / float64(time.Millisecond))
	return int32(min(ms, math.MaxInt32))
}
