package group

import "time"

// Clock schedules the coordinator's timers. Tests pass a fake one to drive
// session expiry and rebalance timeouts without sleeping.
type Clock interface {
	// AfterFunc calls f in its own goroutine after d, unless the returned
	// timer is stopped first.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a scheduled call; Stop reports whether it prevented the call.
type Timer interface {
	Stop() bool
}

type realClock struct{}

func (realClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

// timer is a Timer with the token that makes a call that lost the race
// with Stop (or with a later reschedule) do nothing.
type timer struct {
	t     Timer
	token uint64
}

// schedule (re)arms tm to run fire under c.mu after d. c.mu must be held.
func (c *Coordinator) schedule(tm *timer, d time.Duration, fire func()) {
	c.stop(tm)
	c.seq++
	tok := c.seq
	tm.token = tok
	tm.t = c.clock.AfterFunc(d, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.closed || tm.token != tok {
			return
		}
		tm.t, tm.token = nil, 0
		fire()
	})
}

// stop disarms tm. c.mu must be held.
func (c *Coordinator) stop(tm *timer) {
	if tm.t != nil {
		tm.t.Stop()
		tm.t = nil
	}
	tm.token = 0
}
