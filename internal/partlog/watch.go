package partlog

// Long polls on partitions this agent does not lead.
//
// A Read at the high watermark (or, read_committed, at the last stable
// offset) of a partition led by another agent learns of that agent's
// commits from the metadata store. Its waiters do not poll the
// store themselves: the waiters of one partition share one watcher, which
// wakes them when the partition's high watermark moves past theirs. The
// store's load so grows with the partitions being waited on, not with the
// waiters.
//
// A store that announces commits (metadata.CommitNotifier: PostgreSQL
// LISTEN/NOTIFY, one connection per agent) tells the watchers at once; they
// then read the partition's state only every feedPollFactor intervals, to
// cover notices lost while the feed was down (and all of them at once when
// it comes back). Without a feed, or while it is down, a watcher reads the
// partition's state once per interval.
//
// A watcher stops when its last waiter leaves; at most a bounded number run
// at once, and a long poll that finds no free watcher waits out its max wait
// and looks once more at the end.

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamhouse/streamhouse/internal/metadata"
)

// feedPollFactor: while the store's commit feed is up, watchers read the
// store every feedPollFactor intervals (1s by default).
const feedPollFactor = 20

// maxRecent bounds the high watermarks announced by the feed that are kept
// for partitions without a watcher; past it they are forgotten.
const maxRecent = 1 << 16

// watchers are the watchers of one Log, by partition.
type watchers struct {
	store     metadata.Store
	interval  time.Duration
	limit     int
	log       *slog.Logger
	polls     prometheus.Counter
	active    prometheus.Gauge
	listening atomic.Bool        // the store's commit feed is up
	stopFeed  context.CancelFunc // nil without a feed

	mu     sync.Mutex
	m      map[metadata.TopicPartition]*watcher
	recent map[metadata.TopicPartition]int64 // high watermarks of unwatched partitions: announced, or seen by a watcher that stopped
	closed bool
	wg     sync.WaitGroup // the feed and the watchers' goroutines
}

// watcher is the shared view of one partition's stored state. Its fields are
// guarded by watchers.mu.
type watcher struct {
	tp      metadata.TopicPartition
	waiters int
	hw, ls  int64 // the newest high watermark and log start offset seen
	lso     int64 // the newest last stable offset seen
	// committed counts the read_committed waiters: they wait for the LSO,
	// which commit notices do not carry, so a notice makes the watcher
	// read the store while any wait.
	committed int
	err       error // a permanent failure (partition gone), for the waiters
	changed   chan struct{}
	poll      chan struct{}      // asks for a store read now (buffered 1)
	cancel    context.CancelFunc // stops the goroutine
}

// newWatchers starts the commit feed if the store has one; close stops it.
func newWatchers(store metadata.Store, interval time.Duration, limit int, log *slog.Logger, reg prometheus.Registerer) *watchers {
	ws := &watchers{
		store:    store,
		interval: interval,
		limit:    limit,
		log:      log,
		m:        make(map[metadata.TopicPartition]*watcher),
		recent:   make(map[metadata.TopicPartition]int64),
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
	if feed, ok := store.(metadata.CommitNotifier); ok {
		ctx, cancel := context.WithCancel(context.Background())
		ws.stopFeed = cancel
		ws.wg.Add(1)
		go func() {
			defer ws.wg.Done()
			_ = feed.WatchCommits(ctx, metadata.CommitWatch{Advanced: ws.advanced, Listening: ws.setListening})
			ws.listening.Store(false)
		}()
	}
	return ws
}

// advanced takes a commit notice.
func (ws *watchers) advanced(tp metadata.TopicPartition, hw int64) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	w := ws.m[tp]
	if w == nil {
		if len(ws.recent) >= maxRecent {
			clear(ws.recent)
		}
		ws.recent[tp] = max(ws.recent[tp], hw)
		return
	}
	if hw > w.hw {
		w.hw = hw
		ws.broadcast(w)
		if w.committed > 0 {
			w.pollNow()
		}
	}
}

// pollNow asks w's goroutine for a store read. ws.mu is held.
func (w *watcher) pollNow() {
	select {
	case w.poll <- struct{}{}:
	default:
	}
}

// setListening takes the feed's state. Notices may have been lost before it
// came (back) up: every watcher reads the store now.
func (ws *watchers) setListening(ok bool) {
	ws.listening.Store(ok)
	if !ok {
		return
	}
	ws.mu.Lock()
	defer ws.mu.Unlock()
	for _, w := range ws.m {
		w.pollNow()
	}
}

// errNoWatcher: every watcher slot is taken.
var errNoWatcher = errors.New("too many watched partitions")

// wait waits until tp's stored high watermark is above the caller's view
// of the partition (its last stable offset, when committed) and returns the
// partition as the watcher last saw it; woken is false when done fired
// first. It returns errNoWatcher at once when no watcher is free.
func (ws *watchers) wait(ctx context.Context, tp metadata.TopicPartition, view partView, committed bool, done <-chan time.Time) (v partView, woken bool, err error) {
	w, err := ws.join(tp, view, committed)
	if err != nil {
		return partView{}, false, err
	}
	defer ws.leave(w, committed)
	for {
		ws.mu.Lock()
		whw, wls, wlso, werr, ch := w.hw, w.ls, w.lso, w.err, w.changed
		ws.mu.Unlock()
		if werr != nil {
			return partView{}, false, werr
		}
		// Compared with the waiter's own view, not with what the watcher
		// saw before: a commit in between is not missed. The watcher's
		// LSO may lag its high watermark (a notice moved that), never
		// lead it.
		if (!committed && whw > view.hw) || (committed && wlso > view.lso) {
			return partView{hw: whw, logStart: wls, lso: max(min(wlso, whw), wls)}, true, nil
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

// join registers a waiter on tp's watcher, starting one if needed; the
// waiter's view is news to the watcher if newer than its own.
func (ws *watchers) join(tp metadata.TopicPartition, view partView, committed bool) (*watcher, error) {
	hw, ls, lso := view.hw, view.logStart, view.lso
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
		// A commit announced between the waiter's look and now counts.
		w = &watcher{tp: tp, hw: max(hw, ws.recent[tp]), ls: ls, lso: lso, changed: make(chan struct{}), poll: make(chan struct{}, 1), cancel: cancel}
		delete(ws.recent, tp)
		ws.m[tp] = w
		ws.active.Inc()
		ws.wg.Add(1)
		go ws.run(ctx, w)
	} else if hw > w.hw || ls > w.ls || lso > w.lso {
		w.hw, w.ls, w.lso = max(w.hw, hw), max(w.ls, ls), max(w.lso, lso)
		ws.broadcast(w)
	}
	if committed && w.hw > hw {
		// A commit announced since the waiter's look may have moved the
		// LSO too, which notices do not say: read it now.
		w.pollNow()
	}
	w.waiters++
	if committed {
		w.committed++
	}
	return w, nil
}

// leave unregisters a waiter; the last one out stops the watcher.
func (ws *watchers) leave(w *watcher, committed bool) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	w.waiters--
	if committed {
		w.committed--
	}
	if w.waiters == 0 && ws.m[w.tp] == w {
		// Remembered as a notice would be: a waiter whose view predates
		// what this watcher saw, joining a new watcher, must not wait for
		// the next store read to learn it.
		if len(ws.recent) >= maxRecent {
			clear(ws.recent)
		}
		ws.recent[w.tp] = max(ws.recent[w.tp], w.hw)
		delete(ws.m, w.tp)
		ws.active.Dec()
		w.cancel()
	}
}

// run reads w's partition from the store until it is cancelled: every
// interval, or every feedPollFactor intervals while the commit feed is up,
// backing off while the store fails, and at once when asked.
func (ws *watchers) run(ctx context.Context, w *watcher) {
	defer ws.wg.Done()
	// The first read waits an interval: every waiter has just read the
	// partition before joining.
	t := time.NewTicker(ws.interval)
	defer t.Stop()
	last := time.Now()
	var backoff time.Duration // while the store fails
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			gap := backoff
			if ws.listening.Load() {
				gap = max(gap, feedPollFactor*ws.interval)
			}
			// Ticks come an interval apart, give or take scheduling.
			if time.Since(last) < gap-ws.interval/2 {
				continue
			}
		case <-w.poll:
		}
		last = time.Now()
		st, err := ws.store.GetPartition(ctx, w.tp)
		ws.polls.Inc()
		if ctx.Err() != nil {
			return
		}
		switch {
		case errors.Is(err, metadata.ErrPartitionNotFound) || errors.Is(err, metadata.ErrTopicNotFound):
			ws.mu.Lock()
			w.err = err
			ws.broadcast(w)
			ws.mu.Unlock()
		case err != nil:
			// Transient: the waiters keep waiting (until their max wait)
			// and the watcher tries again, less and less often.
			if backoff == 0 {
				ws.log.Warn("watch partition", "topic_id", w.tp.TopicID, "partition", w.tp.Partition, "err", err)
			}
			backoff = min(max(2*backoff, 2*ws.interval), maxWatchBackoff)
		default:
			backoff = 0
			ws.mu.Lock()
			if st.HighWatermark > w.hw || st.LogStartOffset > w.ls || st.LastStableOffset > w.lso {
				w.hw, w.ls, w.lso = max(w.hw, st.HighWatermark), max(w.ls, st.LogStartOffset), max(w.lso, st.LastStableOffset)
				ws.broadcast(w)
			}
			ws.mu.Unlock()
		}
	}
}

// maxWatchBackoff bounds how long a watcher waits between reads while the
// store fails.
const maxWatchBackoff = 5 * time.Second

// broadcast wakes w's waiters. ws.mu is held.
func (ws *watchers) broadcast(w *watcher) {
	close(w.changed)
	w.changed = make(chan struct{})
}

// count returns the number of running watchers.
func (ws *watchers) count() int {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	return len(ws.m)
}

// close stops the feed and every watcher and waits for their goroutines;
// waiters still in wait get ErrClosed.
func (ws *watchers) close() {
	if ws.stopFeed != nil {
		ws.stopFeed()
	}
	ws.mu.Lock()
	ws.closed = true
	for _, w := range ws.m {
		w.cancel()
		if w.err == nil {
			w.err = ErrClosed
		}
		ws.broadcast(w)
	}
	ws.mu.Unlock()
	ws.wg.Wait()
}
