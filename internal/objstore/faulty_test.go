// Tests of the Faulty wrapper's rules.

package objstore_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/internal/objstore"
	"github.com/streamhouse/streamhouse/internal/testutil"
)

func TestFaultyFailNTimesThenSucceed(t *testing.T) {
	t.Parallel()
	f := objstore.NewFaulty(objstore.NewMemory())
	boom := errors.New("boom")
	f.Inject(objstore.Fault{Op: objstore.OpPut, Err: boom, Times: 2})
	ctx := t.Context()
	for i := range 2 {
		if err := f.Put(ctx, "k", []byte("v")); !errors.Is(err, boom) {
			t.Fatalf("Put #%d = %v, want boom", i+1, err)
		}
	}
	if _, err := f.Get(ctx, "k"); !objstore.IsNotFound(err) {
		t.Fatalf("a failed Put (without AfterWrite) stored the object: Get = %v", err)
	}
	if err := f.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatalf("Put #3 = %v, want success once the fault expired", err)
	}
	if got := f.Calls(objstore.OpPut); got != 3 {
		t.Fatalf("Calls(OpPut) = %d, want 3", got)
	}
	if got := f.Calls(objstore.OpGet); got != 1 {
		t.Fatalf("Calls(OpGet) = %d, want 1", got)
	}
}

func TestFaultyAfterWriteLandsButReportsFailure(t *testing.T) {
	t.Parallel()
	inner := objstore.NewMemory()
	f := objstore.NewFaulty(inner)
	f.Inject(objstore.Fault{Op: objstore.OpPut, AfterWrite: true, Times: 1})
	ctx := t.Context()
	err := f.Put(ctx, "lost-ack", []byte("data"))
	if !errors.Is(err, objstore.ErrInjected) {
		t.Fatalf("Put = %v, want ErrInjected", err)
	}
	if got, err := inner.Get(ctx, "lost-ack"); err != nil || string(got) != "data" {
		t.Fatalf("object after an AfterWrite failure: %q, %v; want it present", got, err)
	}
}

func TestFaultyHangRespectsContext(t *testing.T) {
	t.Parallel()
	f := objstore.NewFaulty(objstore.NewMemory())
	f.Inject(objstore.Fault{Op: objstore.OpGet, Hang: true})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := f.Get(ctx, "k")
		done <- err
	}()
	testutil.WaitFor(t, "the Get to hang", func() bool { return f.Hanging() == 1 })
	select {
	case err := <-done:
		t.Fatalf("hung Get returned before cancel: %v", err)
	default:
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("hung Get after cancel = %v, want context.Canceled", err)
	}
	if n := f.Hanging(); n != 0 {
		t.Fatalf("Hanging() = %d after the call returned", n)
	}
}

func TestFaultyHangUntilRelease(t *testing.T) {
	t.Parallel()
	f := objstore.NewFaulty(objstore.NewMemory())
	ctx := t.Context()
	if err := f.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	f.Inject(objstore.Fault{Op: objstore.OpGet, Hang: true, Times: 2})
	var wg sync.WaitGroup
	results := make(chan string, 2)
	for range 2 {
		wg.Go(func() {
			data, err := f.Get(ctx, "k")
			if err != nil {
				results <- err.Error()
				return
			}
			results <- string(data)
		})
	}
	testutil.WaitFor(t, "both Gets to hang", func() bool { return f.Hanging() == 2 })
	f.Release()
	wg.Wait()
	close(results)
	for r := range results {
		if r != "v" {
			t.Fatalf("released Get returned %q, want the object", r)
		}
	}
	if data, err := f.Get(ctx, "k"); err != nil || string(data) != "v" { // the rule expired
		t.Fatalf("Get after the rule expired = %q, %v", data, err)
	}
}

func TestFaultyMatchAndClear(t *testing.T) {
	t.Parallel()
	f := objstore.NewFaulty(objstore.NewMemory())
	f.Inject(objstore.Fault{Op: objstore.OpPut, Match: func(k string) bool { return strings.HasPrefix(k, "seg/") }})
	ctx := t.Context()
	if err := f.Put(ctx, "other", nil); err != nil {
		t.Fatalf("Put(other) = %v; the rule matches only seg/", err)
	}
	for range 3 { // Times 0: every matching call
		if err := f.Put(ctx, "seg/1", nil); !errors.Is(err, objstore.ErrInjected) {
			t.Fatalf("Put(seg/1) = %v, want ErrInjected", err)
		}
	}
	f.Clear()
	if err := f.Put(ctx, "seg/1", nil); err != nil {
		t.Fatalf("Put after Clear = %v", err)
	}
}

func TestFaultyFirstMatchingRuleWins(t *testing.T) {
	t.Parallel()
	f := objstore.NewFaulty(objstore.NewMemory())
	first, second := errors.New("first"), errors.New("second")
	f.Inject(objstore.Fault{Op: objstore.OpDelete, Err: first, Times: 1})
	f.Inject(objstore.Fault{Op: objstore.OpDelete, Err: second, Times: 1})
	ctx := t.Context()
	for _, want := range []error{first, second, nil} {
		if err := f.Delete(ctx, "k"); !errors.Is(err, want) {
			t.Fatalf("Delete = %v, want %v", err, want)
		}
	}
}

func TestFaultyDelay(t *testing.T) {
	t.Parallel()
	f := objstore.NewFaulty(objstore.NewMemory())
	const d = 30 * time.Millisecond
	f.Inject(objstore.Fault{Op: objstore.OpList, Delay: d, Times: 2})
	start := time.Now()
	if err := f.List(t.Context(), "", func(objstore.ObjectInfo) error { return nil }); err != nil {
		t.Fatalf("delayed List = %v, want success (Delay without Err)", err)
	}
	if elapsed := time.Since(start); elapsed < d {
		t.Fatalf("List took %v, want at least the injected %v", elapsed, d)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := f.List(ctx, "", func(objstore.ObjectInfo) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("delayed List with a cancelled ctx = %v, want context.Canceled", err)
	}
}

func TestFaultyTimesIsExactUnderConcurrency(t *testing.T) {
	t.Parallel()
	f := objstore.NewFaulty(objstore.NewMemory())
	f.Inject(objstore.Fault{Op: objstore.OpPut, Times: 5})
	var mu sync.Mutex
	failed := 0
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			if err := f.Put(t.Context(), fmt.Sprintf("k%d", i), nil); err != nil {
				mu.Lock()
				failed++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if failed != 5 || f.Calls(objstore.OpPut) != 50 {
		t.Fatalf("failed %d of %d calls, want exactly 5 of 50", failed, f.Calls(objstore.OpPut))
	}
}
