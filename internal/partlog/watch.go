package partlog

// Long polls on partitions this agent does not lead.
//
// A Read at the high watermark of a partition led by another agent learns of
// that agent's commits from the metadata store. Its waiters do not poll the
// store themselves: the waiters of one partition share one watcher, which
// reads the partition's state once per interval and wakes them when its high
// watermark moves past theirs. The store's load so grows with the partitions
// being waited on, not with the waiters. A watcher stops when its last waiter
// leaves; at most a bounded number run at once (each costs one query per
// interval), and a long poll that finds no free watcher waits out its max
// wait and looks once more at the end.

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamhouse/streamhouse/internal/metadata"
)

// watchers are the watchers of one Log, by partition.
type watchers struct {
	store    metadata.Store
	interval time.Duration
	limit    int
	log      *slog.Logger
	polls    prometheus.Counter
	active   prometheus.Gauge

	mu     sync.Mutex
	m      map[metadata.TopicPartition]*watcher
	closed bool
	wg     sync.WaitGroup // one per running watcher goroutine
}

// watcher is the shared view of one partition's stored state. Its fields are
// guarded by watchers.mu.
type watcher struct {
	tp      metadata.TopicPartition
	waiters int
	seen    bool  // a poll succeeded
	hw, ls  int64 // high watermark and log start offset of the last poll
	err     error // a permanent failure (partition gone), for the waiters
	changed chan struct{}
	cancel  context.CancelFunc // stops the goroutine
}

func newWatchers(store metadata.Store, interval time.Duration, limit int, log *slog.Logger, reg prometheus.Registerer) *watchers {
	ws := &watchers{
		store:    store,
		interval: interval,
		limit:    limit,
		log:      log,
		m:        make(map[metadata.TopicPartition]*watcher),
		polls: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamhouse_log_watch_polls_total",
			Help: "Metadata store reads by the watchers of partitions led elsewhere that long polls wait on (one per watched partition per interval, whatever the number of waiters).",
		}),
		active: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "streamhouse_log_watched_partitions",
			Help: "Partitions led elsewhere that long polls of this agent are waiting on (each polled by one watcher).",
		}),
	}
	reg.MustRegister(ws.polls, ws.active)
	return ws
}

// errNoWatcher: every watcher slot is taken.
var errNoWatcher = errors.New("too many watched partitions")

// wait waits until tp's stored high watermark is above hw and returns the
// partition as the watcher last saw it; woken is false when done fired
// first. It returns errNoWatcher at once when no watcher is free.
func (ws *watchers) wait(ctx context.Context, tp metadata.TopicPartition, hw int64, done <-chan time.Time) (v partView, woken bool, err error) {
	w, err := ws.join(tp)
	if err != nil {
		return partView{}, false, err
	}
	defer ws.leave(w)
	for {
		ws.mu.Lock()
		seen, whw, wls, werr, ch := w.seen, w.hw, w.ls, w.err, w.changed
		ws.mu.Unlock()
		if werr != nil {
			return partView{}, false, werr
		}
		// Compared with the waiter's own view, not the watcher's previous
		// one: a commit between the two is not missed. High watermarks
		// never go down.
		if seen && whw > hw {
			return partView{hw: whw, logStart: wls}, true, nil
		}
		select {
		case <-ch:
		case <-done:
			return partView{}, false, nil
		case <-ctx.Done():
			return partView{}, false, ctx.Err()
		}
	}
}

// join registers a waiter on tp's watcher, starting one if needed.
func (ws *watchers) join(tp metadata.TopicPartition) (*watcher, error) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if ws.closed {
		return nil, ErrClosed
	}
	w := ws.m[tp]
	if w == nil {
		if len(ws.m) >= ws.limit {
			return nil, errNoWatcher
		}
		ctx, cancel := context.WithCancel(context.Background())
		w = &watcher{tp: tp, changed: make(chan struct{}), cancel: cancel}
		ws.m[tp] = w
		ws.active.Inc()
		ws.wg.Add(1)
		go ws.run(ctx, w)
	}
	w.waiters++
	return w, nil
}

// leave unregisters a waiter; the last one out stops the watcher.
func (ws *watchers) leave(w *watcher) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	w.waiters--
	if w.waiters == 0 && ws.m[w.tp] == w {
		delete(ws.m, w.tp)
		ws.active.Dec()
		w.cancel()
	}
}

// run polls the store for w until it is cancelled.
func (ws *watchers) run(ctx context.Context, w *watcher) {
	defer ws.wg.Done()
	// The first poll waits an interval: every waiter has just read the
	// partition before joining.
	t := time.NewTicker(ws.interval)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st, err := ws.store.GetPartition(ctx, w.tp)
		ws.polls.Inc()
		if ctx.Err() != nil {
			return
		}
		switch {
		case errors.Is(err, metadata.ErrPartitionNotFound) || errors.Is(err, metadata.ErrTopicNotFound):
			ws.update(w, func() bool { w.err = err; return true })
		case err != nil:
			// Transient: the waiters keep waiting (until their max wait)
			// and the watcher tries again next interval.
			if !failing {
				ws.log.Warn("watch partition", "topic_id", w.tp.TopicID, "partition", w.tp.Partition, "err", err)
			}
			failing = true
		default:
			failing = false
			ws.update(w, func() bool {
				moved := !w.seen || st.HighWatermark != w.hw || st.LogStartOffset != w.ls
				w.seen, w.hw, w.ls = true, st.HighWatermark, st.LogStartOffset
				return moved
			})
		}
	}
}

// update changes w's state under the lock and, if fn reports a change,
// wakes its waiters.
func (ws *watchers) update(w *watcher, fn func() bool) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if fn() {
		close(w.changed)
		w.changed = make(chan struct{})
	}
}

// count returns the number of running watchers.
func (ws *watchers) count() int {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	return len(ws.m)
}

// close stops every watcher and waits for their goroutines; waiters still
// in wait get ErrClosed.
func (ws *watchers) close() {
	ws.mu.Lock()
	ws.closed = true
	for _, w := range ws.m {
		w.cancel()
		if w.err == nil {
			w.err = ErrClosed
		}
		close(w.changed)
		w.changed = make(chan struct{})
	}
	ws.mu.Unlock()
	ws.wg.Wait()
}
