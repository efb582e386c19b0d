//go:build !cgo

package sql

// New returns ErrUnavailable: the engine (DuckDB) needs cgo.
func New(cfg Config) (Engine, error) { return nil, ErrUnavailable }
