package authz

// Wakeups returns how many wakeups g's goroutine has handled.
func Wakeups(g *Guard) int64 { return g.wakeups.Load() }
