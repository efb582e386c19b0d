package partlog

import (
	"context"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/internal/metadata/metadatatest"
)

// logGoroutines returns the ids of the goroutines running code of this
// package outside tests, with their stacks.
func logGoroutines() map[string]string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	out := map[string]string{}
	head := regexp.MustCompile(`^goroutine (\d+) `)
	for _, g := range strings.Split(string(buf), "\n\n") {
		m := head.FindStringSubmatch(g)
		if m == nil || !strings.Contains(g, "/internal/partlog.") {
			continue
		}
		// Frames of this package outside its tests.
		own := false
		lines := strings.Split(g, "\n")
		for i := 1; i+1 < len(lines); i += 2 {
			if strings.Contains(lines[i], "/internal/partlog.") && !strings.Contains(lines[i+1], "_test.go") {
				own = true
			}
		}
		if own {
			out[m[1]] = g
		}
	}
	return out
}

// Close stops every goroutine the log started: sealer, uploads,
// committer, lease renewer, the background GC loop and the readers' loads.
// Not parallel: it counts the package's goroutines.
func TestCloseLeavesNoGoroutine(t *testing.T) {
	before := logGoroutines()
	e := newEnv(t, metadatatest.OpenSQLite, nil)
	cfg := e.config("a1")
	cfg.GCInterval = 5 * time.Millisecond
	cfg.ProducerExpiration = time.Hour
	l, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	topic := e.topic("t", 2, map[string]string{"retention.ms": "-1"})
	lead(t, l, topic)
	ctx := context.Background()
	for i := range 20 {
		if _, err := l.Append(ctx, tpOf(topic, int32(i%2)), mkBatch(t, "x", 10), AckDurable); err != nil {
			t.Fatal(err)
		}
	}
	if got := readAll(t, l, tpOf(topic, 0)); len(got) != 100 {
		t.Fatalf("%d records, want 100", len(got))
	}
	// A long poll in flight when the log closes.
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = l.Read(ctx, tpOf(topic, 1), 100, 1<<20, 50*time.Millisecond)
	}()
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := l.Close(cctx); err != nil {
		t.Fatal(err)
	}
	<-done
	var left []string
	deadline := time.Now().Add(10 * time.Second)
	for {
		left = left[:0]
		for id, g := range logGoroutines() {
			if _, ok := before[id]; !ok {
				left = append(left, g)
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(left) > 0 {
		slices.Sort(left)
		t.Fatalf("%d goroutines of the log still running after Close:\n%s", len(left), strings.Join(left, "\n\n"))
	}
}
