package auth

import (
	"sync"
	"time"
)

// Slowing failed logins. Each client address (IP) has a count of failed
// logins, forgotten once it has had none for throttleWindow. Before a
// failure is answered, the caller waits throttleDelay(count): nothing for
// the first, then 100 ms doubling up to 5 s. Only the failing request
// waits, in its own goroutine (its connection's, or its HTTP or gRPC
// request's), and no lock is held while it waits, so no other address,
// and no successful login, is slowed. Nothing is ever refused for it: the
// answer comes, later. The table is bounded (throttleMaxIPs): when full,
// the entry whose last failure is oldest goes.

const (
	throttleWindow = time.Minute
	throttleBase   = 100 * time.Millisecond
	throttleMax    = 5 * time.Second
	throttleMaxIPs = 10000
)

// throttleDelay is the wait before answering the n-th failure in a row.
func throttleDelay(n int) time.Duration {
	if n <= 1 {
		return 0
	}
	if n-2 >= 6 { // 100 ms << 6 > 5 s
		return throttleMax
	}
	return min(throttleBase<<(n-2), throttleMax)
}

type throttle struct {
	mu   sync.Mutex
	byIP map[string]*ipFailures
}

type ipFailures struct {
	n    int
	last time.Time
}

func newThrottle() *throttle { return &throttle{byIP: make(map[string]*ipFailures)} }

// failure records a failure from ip and returns how long to wait before
// answering it.
func (t *throttle) failure(ip string, now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.byIP[ip]
	if f == nil || now.Sub(f.last) >= throttleWindow {
		if f == nil && len(t.byIP) >= throttleMaxIPs {
			t.evictLocked(now)
		}
		f = &ipFailures{}
		t.byIP[ip] = f
	}
	f.n++
	f.last = now
	return throttleDelay(f.n)
}

// evictLocked makes room: forgotten entries go, and if none is, the one
// whose last failure is oldest.
func (t *throttle) evictLocked(now time.Time) {
	var oldest string
	var oldestAt time.Time
	for ip, f := range t.byIP {
		if now.Sub(f.last) >= throttleWindow {
			delete(t.byIP, ip)
			continue
		}
		if oldest == "" || f.last.Before(oldestAt) {
			oldest, oldestAt = ip, f.last
		}
	}
	if len(t.byIP) >= throttleMaxIPs {
		delete(t.byIP, oldest)
	}
}
