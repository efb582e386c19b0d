// This file owns Faulty, the fault-injecting Bucket wrapper used by crash and
// failure tests: it makes an inner bucket fail, slow down, hang, or succeed
// while reporting failure, per operation and per key, on demand.

package objstore

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Op names a Bucket operation, for fault rules, call counters and metrics.
type Op string

// The operations of Bucket (Close excluded).
const (
	OpPut      Op = "put"
	OpGet      Op = "get"
	OpGetRange Op = "get_range"
	OpDelete   Op = "delete"
	OpList     Op = "list"
)

// ErrInjected is the error a Fault returns when it sets no Err of its own.
// It is a transient failure (it wraps ErrUnavailable), like the outages it
// stands for.
var ErrInjected = fmt.Errorf("injected object store fault: %w", ErrUnavailable)

// Fault is one rule: which calls it affects and what happens to them.
//
// Effects apply in this order: wait Delay, then hang if Hang, then either
// fail with Err, or (AfterWrite) run the call on the inner bucket and then
// fail with Err. A Fault with Delay or Hang but no Err lets the call proceed
// normally afterwards; a Fault with none of Err, Delay or Hang fails with
// ErrInjected.
type Fault struct {
	Op Op
	// Match selects keys (the prefix, for List); nil matches every call. It
	// runs under Faulty's lock and must not call the Faulty.
	Match func(key string) bool
	// Times is how many matching calls the fault affects before it expires;
	// 0 means every matching call until Clear.
	Times int
	Err   error
	// AfterWrite runs the call on the inner bucket before reporting Err: a
	// Put that lands yet reports failure, as when a response is lost. It
	// works for every Op (a Delete that happens but reports failure).
	AfterWrite bool
	// Delay is added before the call; a cancelled ctx cuts it short.
	Delay time.Duration
	// Hang blocks the call until its ctx is done (the call then returns the
	// ctx error) or until Release.
	Hang bool
}

// Faulty wraps a Bucket and applies the injected Faults. With no faults it
// is a transparent pass-through. Safe for concurrent use.
//
// Rules are consulted in the order they were injected; the first one whose
// Op and Match fit a call (and which has not expired) applies to it.
type Faulty struct {
	inner Bucket

	mu      sync.Mutex
	rules   []*faultRule
	calls   map[Op]int
	release chan struct{} // closed by Release to free the calls hung so far
	hanging int
}

type faultRule struct {
	Fault
	left int // calls left when Times > 0
}

var _ Bucket = (*Faulty)(nil)

// NewFaulty wraps inner with no faults injected.
func NewFaulty(inner Bucket) *Faulty {
	return &Faulty{inner: inner, calls: make(map[Op]int), release: make(chan struct{})}
}

// Inject adds a rule after the existing ones.
func (f *Faulty) Inject(fault Fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules = append(f.rules, &faultRule{Fault: fault, left: fault.Times})
}

// Clear removes every rule. Calls already hanging stay hung until Release or
// their ctx ends.
func (f *Faulty) Clear() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules = nil
}

// Release frees every call hanging now (they continue with their Fault's
// Err, or normally without one). Later Hang faults hang again.
func (f *Faulty) Release() {
	f.mu.Lock()
	defer f.mu.Unlock()
	close(f.release)
	f.release = make(chan struct{})
}

// Hanging returns how many calls are currently hung, so tests can wait for
// a call to reach the fault before acting.
func (f *Faulty) Hanging() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hanging
}

// Calls returns how many times op has been called, faulted or not.
func (f *Faulty) Calls(op Op) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

// plan is what happens to one call.
type plan struct {
	err        error // nil: proceed normally
	afterWrite bool
}

// before counts the call, picks its rule, and performs the delay and hang.
func (f *Faulty) before(ctx context.Context, op Op, key string) (plan, error) {
	f.mu.Lock()
	f.calls[op]++
	var rule Fault
	matched := false
	for i, r := range f.rules {
		if r.Op != op || (r.Match != nil && !r.Match(key)) {
			continue
		}
		rule, matched = r.Fault, true
		if r.Times > 0 {
			if r.left--; r.left == 0 {
				f.rules = slices.Delete(f.rules, i, i+1)
			}
		}
		break
	}
	release := f.release
	f.mu.Unlock()
	if !matched {
		return plan{}, nil
	}

	if rule.Delay > 0 {
		t := time.NewTimer(rule.Delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return plan{}, fmt.Errorf("%s %s: %w", op, key, ctx.Err())
		}
	}
	if rule.Hang {
		f.mu.Lock()
		f.hanging++
		f.mu.Unlock()
		var err error
		select {
		case <-release:
		case <-ctx.Done():
			err = fmt.Errorf("%s %s: %w", op, key, ctx.Err())
		}
		f.mu.Lock()
		f.hanging--
		f.mu.Unlock()
		if err != nil {
			return plan{}, err
		}
	}
	p := plan{err: rule.Err, afterWrite: rule.AfterWrite}
	if p.err == nil && rule.Delay == 0 && !rule.Hang {
		p.err = ErrInjected
	}
	if p.err != nil {
		p.err = fmt.Errorf("%s %s: %w", op, key, p.err)
	}
	return p, nil
}

// Put implements Bucket.
func (f *Faulty) Put(ctx context.Context, key string, data []byte) error {
	p, err := f.before(ctx, OpPut, key)
	if err != nil {
		return err
	}
	if p.err != nil && !p.afterWrite {
		return p.err
	}
	if err := f.inner.Put(ctx, key, data); err != nil {
		return err
	}
	return p.err
}

// Get implements Bucket.
func (f *Faulty) Get(ctx context.Context, key string) ([]byte, error) {
	p, err := f.before(ctx, OpGet, key)
	if err != nil {
		return nil, err
	}
	if p.err != nil && !p.afterWrite {
		return nil, p.err
	}
	data, err := f.inner.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	if p.err != nil {
		return nil, p.err
	}
	return data, nil
}

// GetRange implements Bucket.
func (f *Faulty) GetRange(ctx context.Context, key string, off, length int64) ([]byte, error) {
	p, err := f.before(ctx, OpGetRange, key)
	if err != nil {
		return nil, err
	}
	if p.err != nil && !p.afterWrite {
		return nil, p.err
	}
	data, err := f.inner.GetRange(ctx, key, off, length)
	if err != nil {
		return nil, err
	}
	if p.err != nil {
		return nil, p.err
	}
	return data, nil
}

// Delete implements Bucket.
func (f *Faulty) Delete(ctx context.Context, key string) error {
	p, err := f.before(ctx, OpDelete, key)
	if err != nil {
		return err
	}
	if p.err != nil && !p.afterWrite {
		return p.err
	}
	if err := f.inner.Delete(ctx, key); err != nil {
		return err
	}
	return p.err
}

// List implements Bucket; Match sees the prefix.
func (f *Faulty) List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	p, err := f.before(ctx, OpList, prefix)
	if err != nil {
		return err
	}
	if p.err != nil && !p.afterWrite {
		return p.err
	}
	if err := f.inner.List(ctx, prefix, fn); err != nil {
		return err
	}
	return p.err
}

// Close implements Bucket by closing the inner bucket.
func (f *Faulty) Close() error { return f.inner.Close() }
