package kafka

import (
	"crypto/rand"
	"encoding/binary"
	"sort"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/metadata"
)

// Fetch sessions (KIP-227), Fetch v7+.
//
// A consumer that fetches the same partitions over and over sends them once
// (a full fetch, SessionEpoch 0) and from then on only what changed (an
// incremental fetch: SessionID and the next SessionEpoch, new or updated
// partitions, ForgottenTopics). The agent remembers each partition's fetch
// offset and what it last answered, and an incremental response leaves out
// the partitions with nothing new: no records, no error, the same high
// watermark, last stable offset and log start offset.
//
// As in Kafka:
//   - SessionEpoch -1 closes the session named by SessionID (if any) and is
//     a sessionless full fetch; SessionEpoch 0 closes it and asks for a new
//     one, created after the fetch is answered if the cache admits it
//     (otherwise the response carries SessionID 0 and the client goes on
//     with full fetches).
//   - An incremental fetch for a session the agent does not have gets
//     FETCH_SESSION_ID_NOT_FOUND; one with another epoch than expected gets
//     INVALID_FETCH_SESSION_EPOCH. The epoch advances when the request is
//     accepted, so a long poll does not hold the session.
//   - Partitions that returned records move to the back of the session's
//     order, so a response that hits MaxBytes does not starve the others.
//   - The cache holds at most slots sessions (Kafka's
//     max.incremental.fetch.session.cache.slots, 1000). A new session may
//     evict the least recently used session idle for longer than
//     fetchSessionStaleAfter, or else the smallest session older than that
//     if the new one has more partitions; otherwise it is not cached.
//
// Sessions live in memory on the agent that created them: a consumer that
// reconnects to another agent gets FETCH_SESSION_ID_NOT_FOUND and starts a
// new one, as with a restarted Kafka broker.
//
// A session belongs to the connection that created it and dies with it.
// Its ID is crypto-random (positive, never 0) and not handed out again
// while the session lives or soon after it ends (the last retiredIDs IDs
// are remembered), so an ID cannot be guessed from another's. A request on
// another connection that names the session, whatever its epoch, is
// answered as if the session did not exist: an incremental fetch gets
// FETCH_SESSION_ID_NOT_FOUND, and epoch -1 or 0 neither closes nor
// replaces it. Another client can thus neither read a session's
// partitions, advance its epoch nor end it.

const (
	defaultFetchSessionSlots = 1000
	fetchSessionStaleAfter   = 2 * time.Minute
)

// sessionKey names a partition within a session: by topic ID from Fetch
// v13, by name below.
type sessionKey struct {
	id        metadata.TopicID
	topic     string // "" from v13
	partition int32
}

// fetchWant is one partition a fetch reads, from the request or from the
// session.
type fetchWant struct {
	key          sessionKey
	topic        string // resolved name; "" for an unknown topic ID
	topicID      metadata.TopicID
	partition    int32
	offset       int64
	maxBytes     int32
	currentEpoch int32
}

// sessionPart is a partition a session remembers.
type sessionPart struct {
	want fetchWant
	// What the last response said; answered is false until one did.
	answered          bool
	hw, lso, logStart int64
	seq               uint64 // order within the session
}

type fetchSession struct {
	id    int32
	owner *conn // the connection that created it; fixed

	mu       sync.Mutex
	epoch    int32 // the epoch the next request must carry
	parts    map[sessionKey]*sessionPart
	nextSeq  uint64
	created  time.Time
	lastUsed time.Time
}

// fetchSessionCache holds the fetch sessions of one Server.
type fetchSessionCache struct {
	slots int
	now   func() time.Time

	mu       sync.Mutex // before fetchSession.mu
	sessions map[int32]*fetchSession
	// retired remembers the IDs of ended sessions, oldest first, so that
	// an ID is not reused soon; retiredSet indexes it.
	retired    []int32
	retiredSet map[int32]struct{}
}

func newFetchSessionCache(slots int) *fetchSessionCache {
	return &fetchSessionCache{slots: slots, now: time.Now, sessions: make(map[int32]*fetchSession), retiredSet: make(map[int32]struct{})}
}

// retiredIDs bounds how many ended session IDs are kept from reuse.
const retiredIDs = 4096

// fetchSessionState is how one fetch request relates to a session.
type fetchSessionState struct {
	session     *fetchSession // the incremental session; nil otherwise
	createNew   bool          // SessionEpoch 0: create a session after the fetch
	owner       *conn         // the connection a new session belongs to
	incremental bool
}

// begin resolves the session of req, received on connection from. wants
// are the request's partitions; it returns the partitions to fetch, in
// order, or a top-level error code.
func (c *fetchSessionCache) begin(from *conn, req *kmsg.FetchRequest, wants []fetchWant, forgotten []sessionKey) (fetchSessionState, []fetchWant, int16) {
	if req.Version < 7 {
		return fetchSessionState{}, wants, 0
	}
	if req.SessionEpoch == -1 || req.SessionEpoch == 0 {
		if req.SessionID != 0 {
			c.removeOwned(from, req.SessionID)
		}
		return fetchSessionState{createNew: req.SessionEpoch == 0, owner: from}, wants, 0
	}
	c.mu.Lock()
	s := c.sessions[req.SessionID]
	c.mu.Unlock()
	if s == nil || s.owner != from {
		return fetchSessionState{}, nil, kerr.FetchSessionIDNotFound.Code
	}
	out, errCode := s.update(req.SessionEpoch, wants, forgotten, c.now())
	switch {
	case errCode != 0:
		return fetchSessionState{}, nil, errCode
	case out == nil:
		// Nothing left to remember: Kafka drops the session and answers
		// this request as a sessionless one.
		c.remove(s.id)
		return fetchSessionState{}, nil, 0
	}
	return fetchSessionState{session: s, incremental: true}, out, 0
}

// update applies an incremental request to the session and returns every
// partition it now holds, in fetch order (nil if none).
func (s *fetchSession) update(epoch int32, wants []fetchWant, forgotten []sessionKey, now time.Time) ([]fetchWant, int16) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if epoch != s.epoch {
		return nil, kerr.InvalidFetchSessionEpoch.Code
	}
	for _, w := range wants {
		if p := s.parts[w.key]; p != nil {
			p.want = w
		} else {
			s.parts[w.key] = &sessionPart{want: w, seq: s.nextSeq}
			s.nextSeq++
		}
	}
	for _, k := range forgotten {
		delete(s.parts, k)
	}
	if len(s.parts) == 0 {
		return nil, 0
	}
	s.epoch = nextFetchEpoch(s.epoch)
	s.lastUsed = now
	all := make([]*sessionPart, 0, len(s.parts))
	for _, p := range s.parts {
		all = append(all, p)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].seq < all[j].seq })
	out := make([]fetchWant, len(all))
	for i, p := range all {
		out[i] = p.want
	}
	return out, 0
}

func nextFetchEpoch(e int32) int32 {
	if e == 1<<31-1 {
		return 1
	}
	return e + 1
}

// fetchResult is what a response says about one partition, for sessions.
type fetchResult struct {
	errCode           int16
	hw, lso, logStart int64
	hasRecords        bool
}

// finish records the response of a fetch in its session and returns the
// SessionID to answer with and which partitions the response includes
// (all, except in an incremental response).
func (c *fetchSessionCache) finish(st fetchSessionState, wants []fetchWant, res []fetchResult) (int32, []bool) {
	include := make([]bool, len(wants))
	for i := range include {
		include[i] = true
	}
	switch {
	case st.createNew:
		return c.create(st.owner, wants, res), include
	case st.session == nil:
		return 0, include
	}
	s := st.session
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, w := range wants {
		r := res[i]
		p := s.parts[w.key]
		if p == nil {
			continue // forgotten by a later request meanwhile
		}
		changed := !p.answered || r.errCode != 0 || r.hasRecords || r.hw != p.hw || r.lso != p.lso || r.logStart != p.logStart
		include[i] = changed
		// An error is always worth repeating: forget what was said.
		p.answered = r.errCode == 0
		p.hw, p.lso, p.logStart = r.hw, r.lso, r.logStart
		if r.hasRecords {
			p.seq = s.nextSeq
			s.nextSeq++
		}
	}
	return s.id, include
}

// create caches a new session of connection owner holding wants, answered
// with res, if there is room or a session to evict; it returns its ID, or
// 0. A connection already closed gets no session (it could never end).
func (c *fetchSessionCache) create(owner *conn, wants []fetchWant, res []fetchResult) int32 {
	if c.slots <= 0 || len(wants) == 0 || owner == nil || owner.ctx.Err() != nil {
		return 0
	}
	now := c.now()
	s := &fetchSession{owner: owner, epoch: 1, parts: make(map[sessionKey]*sessionPart, len(wants)), created: now, lastUsed: now}
	for i, w := range wants {
		r := res[i]
		p := &sessionPart{want: w, seq: s.nextSeq, answered: r.errCode == 0, hw: r.hw, lso: r.lso, logStart: r.logStart}
		s.nextSeq++
		s.parts[w.key] = p
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.sessions) >= c.slots && !c.evictLocked(now, len(s.parts)) {
		return 0
	}
	for {
		id := randomSessionID()
		_, live := c.sessions[id]
		_, retired := c.retiredSet[id]
		if !live && !retired {
			s.id = id
			break
		}
	}
	c.sessions[s.id] = s
	// The connection may have closed since the check above; its dropOwner
	// then ran already or runs after this and finds the session.
	if owner.ctx.Err() != nil {
		c.removeLocked(s.id)
		return 0
	}
	return s.id
}

// randomSessionID returns a crypto-random ID from 1 to 2^31-1.
func randomSessionID() int32 {
	var b [4]byte
	for {
		_, _ = rand.Read(b[:]) // never fails (crypto/rand panics instead)
		if id := int32(binary.BigEndian.Uint32(b[:]) & 0x7fffffff); id != 0 {
			return id
		}
	}
}

// evictLocked makes room for a session of size partitions: the least
// recently used stale session goes first, else the smallest session old
// enough to be judged if it is smaller than the new one. Called with c.mu.
func (c *fetchSessionCache) evictLocked(now time.Time, size int) bool {
	var stale, small *fetchSession
	var staleUsed time.Time
	smallSize := size
	for _, s := range c.sessions {
		s.mu.Lock()
		used, created, n := s.lastUsed, s.created, len(s.parts)
		s.mu.Unlock()
		if now.Sub(used) >= fetchSessionStaleAfter {
			if stale == nil || used.Before(staleUsed) {
				stale, staleUsed = s, used
			}
			continue
		}
		if now.Sub(created) >= fetchSessionStaleAfter && n < smallSize {
			small, smallSize = s, n
		}
	}
	victim := stale
	if victim == nil {
		victim = small
	}
	if victim == nil {
		return false
	}
	c.removeLocked(victim.id)
	return true
}

func (c *fetchSessionCache) remove(id int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.removeLocked(id)
}

// removeOwned ends session id if connection from owns it.
func (c *fetchSessionCache) removeOwned(from *conn, id int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.sessions[id]; s != nil && s.owner == from {
		c.removeLocked(id)
	}
}

// dropOwner ends every session of a closed connection.
func (c *fetchSessionCache) dropOwner(owner *conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, s := range c.sessions {
		if s.owner == owner {
			c.removeLocked(id)
		}
	}
}

// removeLocked ends a session and keeps its ID from reuse. Called with c.mu.
func (c *fetchSessionCache) removeLocked(id int32) {
	if _, ok := c.sessions[id]; !ok {
		return
	}
	delete(c.sessions, id)
	if len(c.retired) >= retiredIDs {
		delete(c.retiredSet, c.retired[0])
		c.retired = c.retired[1:]
	}
	c.retired = append(c.retired, id)
	c.retiredSet[id] = struct{}{}
}

// len reports how many sessions are cached (for tests).
func (c *fetchSessionCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.sessions)
}
