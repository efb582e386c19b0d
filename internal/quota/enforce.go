package quota

import (
	"crypto/sha256"
	"math"
	"time"

	"github.com/streamhouse/streamhouse/internal/metadata"
)

// Which quota applies, and to which key its bytes are counted.
//
// Kafka's precedence (ClientQuotaManager), most specific first; the first
// level with a quota of the kind wins:
//
//	1. /config/users/<user>/clients/<client-id>
//	2. /config/users/<user>/clients/<default>
//	3. /config/users/<user>
//	4. /config/users/<default>/clients/<client-id>
//	5. /config/users/<default>/clients/<default>
//	6. /config/users/<default>
//	7. /config/clients/<client-id>
//	8. /config/clients/<default>
//
// The level also decides who shares the bytes, as Kafka's metric tags do:
// at levels 3 and 6 every client id of the user shares one bucket, at 7
// and 8 every user of the client id, and at the others each (user, client
// id) pair has its own. A default level gives each user or client id a
// bucket of its own; it is not shared by all of them.
//
// An empty client id (none sent) skips the levels that name a client id:
// entities with an empty name cannot be created, so only the default
// client-id levels can apply to it.

// bucketKey names a bucket: the kind and the user and client id its level
// counts by ("" for the part the level does not count by).
type bucketKey struct {
	kind     Kind
	user     string
	clientID string
}

// maxKeyPart is the longest user or client id a bucket key holds as is;
// a longer one (a client id may be up to 32 KiB) is held as its first
// keyPrefix bytes, "#" and its SHA-256, so that a bucket's key takes at
// most keyPrefix+1+32 bytes whatever a client sends. The form is longer
// than maxKeyPart, so it equals no name held as is.
const (
	maxKeyPart = 64
	keyPrefix  = 32
)

// boundKeyPart returns s as a bucket key holds it.
func boundKeyPart(s string) string {
	if len(s) <= maxKeyPart {
		return s
	}
	sum := sha256.Sum256([]byte(s))
	return s[:keyPrefix] + "#" + string(sum[:])
}

// Lookup returns the quota of kind that applies to (user, clientID), the
// level (1-8) it comes from, and the bucket key its bytes count to; level
// 0 when no quota applies.
func (l *limits) lookup(kind Kind, user, clientID string) (limit float64, level int, key bucketKey) {
	return l.find(l.byKind[kind], kind, user, clientID, boundKeyPart)
}

// find is lookup in byEntity, the key's names made by part.
func (l *limits) find(byEntity map[metadata.QuotaEntity]float64, kind Kind, user, clientID string, part func(string) string) (limit float64, level int, key bucketKey) {
	present := l.levels[kind]
	if present == 0 {
		return 0, 0, bucketKey{}
	}
	// Levels naming a user or client id cannot match an empty one (no
	// entity has an empty name): its default's levels apply.
	if user == "" {
		present &^= 1<<0 | 1<<1 | 1<<2
	}
	if clientID == "" {
		present &^= 1<<0 | 1<<3 | 1<<6
	}
	type candidate struct {
		e            metadata.QuotaEntity
		byUser, byID bool
	}
	levels := [8]candidate{
		{metadata.QuotaEntity{HasUser: true, User: user, HasClientID: true, ClientID: clientID}, true, true},
		{metadata.QuotaEntity{HasUser: true, User: user, HasClientID: true}, true, true},
		{metadata.QuotaEntity{HasUser: true, User: user}, true, false},
		{metadata.QuotaEntity{HasUser: true, HasClientID: true, ClientID: clientID}, true, true},
		{metadata.QuotaEntity{HasUser: true, HasClientID: true}, true, true},
		{metadata.QuotaEntity{HasUser: true}, true, false},
		{metadata.QuotaEntity{HasClientID: true, ClientID: clientID}, false, true},
		{metadata.QuotaEntity{HasClientID: true}, false, true},
	}
	for i, c := range levels {
		if present&(1<<i) == 0 {
			continue
		}
		v, ok := byEntity[c.e]
		if !ok {
			continue
		}
		key = bucketKey{kind: kind}
		if c.byUser {
			key.user = part(user)
		}
		if c.byID {
			key.clientID = part(clientID)
		}
		return v, i + 1, key
	}
	return 0, 0, bucketKey{}
}

// levelOf is the level of precedence (1-8) an entity sits at.
func levelOf(e metadata.QuotaEntity) int {
	switch {
	case e.HasUser && e.User != "":
		switch {
		case e.HasClientID && e.ClientID != "":
			return 1
		case e.HasClientID:
			return 2
		}
		return 3
	case e.HasUser:
		switch {
		case e.HasClientID && e.ClientID != "":
			return 4
		case e.HasClientID:
			return 5
		}
		return 6
	case e.ClientID != "":
		return 7
	}
	return 8
}

// Limit returns the quota of kind that applies to c (bytes per second,
// before this agent's share) and the level of precedence (1-8) it comes
// from; 0, 0 when none applies.
func (m *Manager) Limit(kind Kind, c Client) (float64, int) {
	v, level, _ := m.limits.Load().lookup(kind, c.User, c.ClientID)
	return v, level
}

// bucket is one key's token bucket: tokens are bytes, refilled at the
// key's rate up to burst seconds' worth; a request takes its bytes and may
// leave the bucket in debt, which its throttle pays back.
type bucket struct {
	tokens float64
	last   time.Time
}

// refill brings b to now at rate, capped at size.
func (b *bucket) refill(now time.Time, rate, size float64) {
	if el := now.Sub(b.last); el > 0 {
		b.tokens = min(size, b.tokens+rate*el.Seconds())
	}
	b.last = now
}

// full reports whether b would be at size by now: such a bucket is no
// different from a new one, and may be forgotten.
func (b *bucket) full(now time.Time, rate, size float64) bool {
	return b.tokens+rate*now.Sub(b.last).Seconds() >= size
}

// rateFor returns the rate (bytes/s, this agent's share) and bucket size
// of limit.
func (m *Manager) rateFor(limit float64) (rate, size float64) {
	rate = limit * m.Share()
	return rate, rate * m.cfg.Burst.Seconds()
}

// bucketLocked returns key's bucket, creating it full; with MaxBuckets
// tracked and none idle enough to forget, a fresh bucket that is not kept
// (its key goes unthrottled this once). Called with m.mu held.
func (m *Manager) bucketLocked(key bucketKey, now time.Time, size float64) *bucket {
	if b, ok := m.buckets[key]; ok {
		return b
	}
	b := &bucket{tokens: size, last: now}
	if len(m.buckets) >= m.cfg.MaxBuckets {
		// At most once a second, so a full table costs one sweep a
		// second, not one per request.
		if now.Sub(m.lastPrune) >= time.Second {
			m.pruneLocked(now)
		}
		if len(m.buckets) >= m.cfg.MaxBuckets {
			return b
		}
	}
	m.buckets[key] = b
	return b
}

// prune forgets the buckets that are full again.
func (m *Manager) prune(now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pruneLocked(now)
}

func (m *Manager) pruneLocked(now time.Time) {
	m.lastPrune = now
	l := m.limits.Load()
	for k, b := range m.buckets {
		limit := l.limitOf(k)
		if limit <= 0 {
			delete(m.buckets, k) // the quota is gone
			continue
		}
		rate, size := m.rateFor(limit)
		if b.full(now, rate, size) {
			delete(m.buckets, k)
		}
	}
}

// limitOf is the quota a bucket key counts against now: the first level
// that could have made the key. A key whose quota moved to another level
// is counted afresh there.
func (l *limits) limitOf(k bucketKey) float64 {
	v, _, key := l.find(l.byKey[k.kind], k.kind, k.user, k.clientID, func(s string) string { return s })
	if key != k {
		return 0
	}
	return v
}

// Buckets returns how many keys are tracked (tests, metrics).
func (m *Manager) Buckets() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.buckets)
}

// RecordProduce counts a Produce request of bytes (the whole request, as
// Kafka counts it) from c, and returns how long c must wait before its
// next request: the time that pays back what the request overdrew, zero
// when within quota. The request itself is served whatever the answer
// (KIP-219: the broker answers at once with throttle_time_ms and mutes
// the connection for as long).
func (m *Manager) RecordProduce(c Client, bytes int64) time.Duration {
	limit, level, key := m.limits.Load().lookup(Produce, c.User, c.ClientID)
	if level == 0 {
		return 0
	}
	now := m.now()
	rate, size := m.rateFor(limit)
	m.mu.Lock()
	b := m.bucketLocked(key, now, size)
	b.refill(now, rate, size)
	b.tokens -= float64(bytes)
	debt := -b.tokens
	m.mu.Unlock()
	d := durationFor(debt, rate)
	m.metrics.observe(c.Listener, Produce, d)
	return d
}

// FetchMaxBytes bounds a Fetch response for c: at most one bucket's worth
// (Burst seconds of c's share of its quota), so that a response always
// fits a full bucket, as Kafka bounds it by one quota window. Without a
// quota it returns requested.
func (m *Manager) FetchMaxBytes(c Client, requested int32) int32 {
	limit, level, _ := m.limits.Load().lookup(Fetch, c.User, c.ClientID)
	if level == 0 {
		return requested
	}
	_, size := m.rateFor(limit)
	return int32(max(1, min(float64(requested), math.Floor(size))))
}

// RecordFetch decides whether a Fetch response of bytes goes to c. As in
// Kafka, a response that would overdraw c's bucket is not sent: deliver is
// false, c gets an empty response, nothing is counted, and throttle is the
// time until the bucket holds bytes. A response that fits is counted and
// sent (an empty one always is, with the time any debt still takes). One
// exception keeps a consumer moving whose single first batch is
// larger than a bucket: a response is sent from a full bucket whatever its
// size, and its debt is paid back by the throttle.
func (m *Manager) RecordFetch(c Client, bytes int64) (throttle time.Duration, deliver bool) {
	limit, level, key := m.limits.Load().lookup(Fetch, c.User, c.ClientID)
	if level == 0 {
		return 0, true
	}
	now := m.now()
	rate, size := m.rateFor(limit)
	m.mu.Lock()
	b := m.bucketLocked(key, now, size)
	b.refill(now, rate, size)
	var debt float64
	switch n := float64(bytes); {
	case n == 0 || n <= b.tokens || b.tokens >= size:
		b.tokens -= n
		debt, deliver = -b.tokens, true
	default:
		debt = n - b.tokens
	}
	m.mu.Unlock()
	throttle = durationFor(debt, rate)
	m.metrics.observe(c.Listener, Fetch, throttle)
	return throttle, deliver
}

// durationFor is the time rate takes to pay back debt bytes (none when
// not in debt).
func durationFor(debt, rate float64) time.Duration {
	if debt <= 0 || rate <= 0 {
		return 0
	}
	s := debt / rate
	if s >= math.MaxInt32/1000 {
		return time.Duration(math.MaxInt32) * time.Millisecond
	}
	return time.Duration(s * float64(time.Second))
}
