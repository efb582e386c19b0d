package authz

// Wakeups returns how many wakeups g's goroutine has handled.
func Wakeups(g *Guard) int64 { return g.wakeups.Load() }

// Waits returns how many times g's goroutine began to wait: from the
// first, a change of the ACLs wakes it.
func Waits(g *Guard) int64 { return g.waits.Load() }
