package acl

import "sync"

// Change notices for what holds an authorization for a long time (a gRPC
// or HTTP stream authorized at its start, internal/authz.Guard): it waits
// on Changed and asks again when the bindings change, rather than at
// every record or on a timer.

// changes is a broadcast: the channel handed out is closed, and replaced,
// when a new copy of the bindings is installed.
type changes struct {
	mu sync.Mutex
	ch chan struct{}
}

func (c *changes) wait() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ch == nil {
		c.ch = make(chan struct{})
	}
	return c.ch
}

func (c *changes) fire() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ch != nil {
		close(c.ch)
		c.ch = nil
	}
}

// Changed returns a channel that is closed once this agent's copy of the
// bindings is next replaced (a change made through it, another agent's
// change noticed, a refresh that read a new version). Take it before
// asking Authorize, then wait on it: a change between the two still
// closes it. A waiter woken may find the same answer (a copy rebuilt with
// what the store could not be read for); it just waits again.
func (a *Authorizer) Changed() <-chan struct{} { return a.changes.wait() }

// install makes s the copy Authorize reads and wakes Changed's waiters.
func (a *Authorizer) install(s *snapshot) {
	a.snap.Store(s)
	a.changes.fire()
}
