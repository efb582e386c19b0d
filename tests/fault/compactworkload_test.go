package fault

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The compacted workload, beside the others: idempotent producers
// (acks=all) writing a bounded key space, with some tombstones, to a topic
// with cleanup.policy=compact whose settings make key compaction run
// every few seconds; a reader that reads the topic from the start again
// and again during the run, recording what it sees. Every record carries
// its identity in a header (a tombstone has no value), so each record read
// is matched to its write.

const (
	compactTopic      = "fault-compact"
	compactPartitions = 3
	compactProducers  = 2
	compactKeys       = 48                    // key k goes to partition k % compactPartitions
	compactEvery      = 20 * time.Millisecond // per producer: 50 records/s
	compactTombstones = 8                     // one write in this many is a tombstone (seeded)
	compactIDHeader   = "fault-id"
)

// compactConfig makes key compaction run during the run: every pass of the
// agents' compaction loop (COMPACTION_INTERVAL_SECS=3) finds the topic
// dirty, records are cleanable once their object is half a second old, and
// tombstones go 5 s after the pass that first kept them.
var compactConfig = map[string]*string{
	"cleanup.policy":            kadm.StringPtr("compact"),
	"min.compaction.lag.ms":     kadm.StringPtr("0"),
	"segment.ms":                kadm.StringPtr("500"),
	"delete.retention.ms":       kadm.StringPtr("5000"),
	"min.cleanable.dirty.ratio": kadm.StringPtr("0.01"),
}

func compactKey(k int) string { return fmt.Sprintf("k%02d", k) }

// compactID names producer id's seq'th write.
func compactID(id, seq int) string { return fmt.Sprintf("c%d-%09d", id, seq) }

// compactWrite is one record the compacted workload sent.
type compactWrite struct {
	Key       string
	Tombstone bool
}

// compactRec is one record read from the compacted topic.
type compactRec struct {
	ID        string // its identity header ("" if it had none)
	Key       string
	Tombstone bool
	Value     string
}

// compactHistory is what the compacted workload's clients saw.
type compactHistory struct {
	mu        sync.Mutex
	sent      map[string]compactWrite // id -> what was sent
	acks      map[string]position     // id -> where its ack put it
	ackDups   []string
	prodErrs  map[string]*errCount
	seen      map[position]string   // every (partition, offset) -> id observed (acks, the reader, the final read)
	readAt    map[string][]position // id -> where reads found it
	conflicts []string              // observations that disagreed with an earlier one
	bad       []string              // records read that match no write, or not the write of their identity
	back      []string              // a pass of the reader saw offsets go back
	passes    int                   // the reader's complete passes
	reads     int
	readErrs  map[string]*errCount
}

func newCompactHistory() *compactHistory {
	return &compactHistory{
		sent: map[string]compactWrite{}, acks: map[string]position{}, prodErrs: map[string]*errCount{},
		seen: map[position]string{}, readAt: map[string][]position{}, readErrs: map[string]*errCount{},
	}
}

func (c *compactHistory) sentOne(id string, w compactWrite) {
	c.mu.Lock()
	c.sent[id] = w
	c.mu.Unlock()
}

func (c *compactHistory) acked(id string, pos position) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if prev, ok := c.acks[id]; ok {
		c.ackDups = append(c.ackDups, fmt.Sprintf("%s acknowledged at %s and at %s", id, prev, pos))
		return
	}
	c.acks[id] = pos
	for _, at := range c.readAt[id] {
		if at != pos {
			c.bad = append(c.bad, fmt.Sprintf("%s acknowledged at %s was read at %s", id, pos, at))
		}
	}
	c.observeLocked(pos, id, "a produce ack")
}

func (c *compactHistory) produceFailed(err error) {
	c.mu.Lock()
	countErr(c.prodErrs, err)
	c.mu.Unlock()
}

func (c *compactHistory) readFailed(err error) {
	c.mu.Lock()
	countErr(c.readErrs, err)
	c.mu.Unlock()
}

// read records a record who read at pos, checking it is the write its
// identity names (key, tombstone or value).
func (c *compactHistory) read(pos position, r compactRec, who string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reads++
	w, ok := c.sent[r.ID]
	switch {
	case !ok:
		c.bad = append(c.bad, fmt.Sprintf("%s: %s read a record no producer sent (identity %q, key %q)", pos, who, r.ID, r.Key))
	case w.Key != r.Key || w.Tombstone != r.Tombstone || (!r.Tombstone && r.Value != r.ID):
		c.bad = append(c.bad, fmt.Sprintf("%s: %s read %s with key %q, tombstone %v, value %q; it was sent with key %q, tombstone %v", pos, who, r.ID, r.Key, r.Tombstone, r.Value, w.Key, w.Tombstone))
	}
	// An acknowledged record is at its acknowledged offset, wherever it
	// is read; one that was not may be in the log more than once.
	if a, ok := c.acks[r.ID]; ok && a != pos {
		c.bad = append(c.bad, fmt.Sprintf("%s: %s read %s, acknowledged at %s", pos, who, r.ID, a))
	}
	if !slices.Contains(c.readAt[r.ID], pos) {
		c.readAt[r.ID] = append(c.readAt[r.ID], pos)
	}
	c.observeLocked(pos, r.ID, who)
}

func (c *compactHistory) observeLocked(pos position, id, who string) {
	prev, ok := c.seen[pos]
	switch {
	case !ok:
		c.seen[pos] = id
	case prev != id:
		c.conflicts = append(c.conflicts, fmt.Sprintf("%s: %s saw %s where %s was seen before", pos, who, id, prev))
	}
}

// compactWorkload runs the compacted topic's clients until stopped.
type compactWorkload struct {
	h     *compactHistory
	seeds []string
	seed  uint64

	prodStop    context.CancelFunc
	prodWG      sync.WaitGroup
	prodClients []*kgo.Client

	readStop context.CancelFunc
	readWG   sync.WaitGroup
}

func (w *compactWorkload) start() error {
	prodCtx, prodStop := context.WithCancel(context.Background())
	readCtx, readStop := context.WithCancel(context.Background())
	w.prodStop, w.readStop = prodStop, readStop
	for id := range compactProducers {
		cl, err := newClient(w.seeds, kgo.DefaultProduceTopic(compactTopic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
		if err != nil {
			return err
		}
		w.prodClients = append(w.prodClients, cl)
		rng := rand.New(rand.NewPCG(w.seed, 0xc0+uint64(id)))
		w.prodWG.Go(func() { w.produce(prodCtx, cl, id, rng) })
	}
	w.readWG.Go(func() { w.reread(readCtx) })
	return nil
}

// produce writes one record every compactEvery to a seeded key, a
// tombstone one time in compactTombstones, recording every answer.
func (w *compactWorkload) produce(ctx context.Context, cl *kgo.Client, id int, rng *rand.Rand) {
	tick := time.NewTicker(compactEvery)
	defer tick.Stop()
	for seq := 0; ; seq++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		k := rng.IntN(compactKeys)
		tomb := rng.IntN(compactTombstones) == 0
		rid := compactID(id, seq)
		r := &kgo.Record{Partition: int32(k % compactPartitions), Key: []byte(compactKey(k)),
			Headers: []kgo.RecordHeader{{Key: compactIDHeader, Value: []byte(rid)}}}
		if !tomb {
			r.Value = []byte(rid)
		}
		w.h.sentOne(rid, compactWrite{Key: compactKey(k), Tombstone: tomb})
		// Not the loop's context: stopping the loop must not cancel what
		// is buffered (the end of the run flushes).
		cl.Produce(context.WithoutCancel(ctx), r, func(r *kgo.Record, err error) {
			switch {
			case err == nil:
				w.h.acked(rid, position{r.Partition, r.Offset})
			case errors.Is(err, kgo.ErrClientClosed) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
			default:
				w.h.produceFailed(err)
			}
		})
	}
}

// stopProducers stops producing and waits (up to wait) for every buffered
// record's answer.
func (w *compactWorkload) stopProducers(wait time.Duration) error {
	if w.prodStop != nil {
		w.prodStop()
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	var errs []error
	for _, cl := range w.prodClients {
		if err := cl.Flush(ctx); err != nil {
			errs = append(errs, fmt.Errorf("flush: %w", err))
		}
		cl.Close()
	}
	w.prodClients = nil
	w.prodWG.Wait()
	return errors.Join(errs...)
}

func (w *compactWorkload) stopReader() {
	if w.readStop != nil {
		w.readStop()
	}
	w.readWG.Wait()
}

func (w *compactWorkload) close() {
	_ = w.stopProducers(0)
	w.stopReader()
}

// reread reads the topic from the start to its high watermarks of the
// moment, again and again (a second between passes), so its reads cross
// key compaction's index switches; each pass is a fresh client, bounded
// by 30 s.
func (w *compactWorkload) reread(ctx context.Context) {
	for ctx.Err() == nil {
		if done := w.pass(ctx, 30*time.Second); done {
			w.h.mu.Lock()
			w.h.passes++
			w.h.mu.Unlock()
		}
		if sleep(ctx, time.Second) != nil {
			return
		}
	}
}

// pass is one read from offset 0 to the high watermarks listed first;
// it reports whether it got there.
func (w *compactWorkload) pass(ctx context.Context, d time.Duration) bool {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	adm, err := newClient(w.seeds)
	if err != nil {
		w.h.readFailed(err)
		return false
	}
	defer adm.Close()
	ends, err := kadm.NewClient(adm).ListEndOffsets(ctx, compactTopic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		if ctx.Err() == nil {
			w.h.readFailed(err)
		}
		return false
	}
	hwm := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) { hwm[o.Partition] = o.Offset })
	_, order, incomplete := readCompact(ctx, w.seeds, hwm, "the reader", w.h)
	w.h.mu.Lock()
	w.h.back = append(w.h.back, order...)
	w.h.mu.Unlock()
	return len(incomplete) == 0
}

// readCompact reads the compacted topic from offset 0 to hwm with a fresh
// client, recording every record in h as who's. It returns what it read,
// the places offsets did not increase along a partition, and the
// partitions it did not finish (before ctx ends).
func readCompact(ctx context.Context, seeds []string, hwm map[int32]int64, who string, h *compactHistory) (map[position]compactRec, []string, []string) {
	log := map[position]compactRec{}
	offsets := map[int32]kgo.Offset{}
	next := map[int32]int64{}
	for p, end := range hwm {
		if end > 0 {
			offsets[p] = kgo.NewOffset().At(0)
			next[p] = -1
		}
	}
	if len(offsets) == 0 {
		return log, nil, nil
	}
	cl, err := newClient(seeds, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{compactTopic: offsets}),
		kgo.FetchMaxWait(500*time.Millisecond))
	if err != nil {
		return log, nil, []string{"reader: " + err.Error()}
	}
	defer cl.Close()
	var order []string
	lastErr := map[int32]string{}
	done := func() bool {
		for p, end := range hwm {
			if end > 0 && next[p]+1 < end {
				return false
			}
		}
		return true
	}
	for !done() && ctx.Err() == nil {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		fs := cl.PollFetches(pctx)
		cancel()
		fs.EachError(func(_ string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				lastErr[p] = err.Error()
				h.readFailed(err)
			}
		})
		fs.EachRecord(func(r *kgo.Record) {
			pos := position{r.Partition, r.Offset}
			if r.Offset <= next[r.Partition] {
				order = append(order, fmt.Sprintf("%s: %s read offset %d after offset %d", pos, who, r.Offset, next[r.Partition]))
			}
			next[r.Partition] = max(next[r.Partition], r.Offset)
			cr := compactRec{Key: string(r.Key), Tombstone: r.Value == nil, Value: string(r.Value)}
			for _, hd := range r.Headers {
				if hd.Key == compactIDHeader {
					cr.ID = string(hd.Value)
				}
			}
			log[pos] = cr
			h.read(pos, cr, who)
		})
	}
	var incomplete []string
	for _, p := range slices.Sorted(maps.Keys(hwm)) {
		if hwm[p] > 0 && next[p]+1 < hwm[p] {
			incomplete = append(incomplete, fmt.Sprintf("%s partition %d: %s got to offset %d of %d; last fetch error: %s", compactTopic, p, who, next[p]+1, hwm[p], lastErr[p]))
		}
	}
	return log, order, incomplete
}
