//go:build !cgo

package sql

import (
	"errors"
	"testing"
)

// Built without cgo there is no engine: the front ends answer 501.
func TestNewUnavailableWithoutCgo(t *testing.T) {
	if _, err := New(Config{}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("New: %v, want ErrUnavailable", err)
	}
}
