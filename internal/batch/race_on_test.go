//go:build race

package batch

// raceEnabled: the race detector makes sync.Pool drop items on purpose, so
// allocation counts that rely on pooling do not hold under it.
const raceEnabled = true
