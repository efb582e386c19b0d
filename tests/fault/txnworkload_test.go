package fault

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The transactional workload, beside the plain one: transactional
// producers (distinct transactional IDs, acks=all) running small
// transactions over the partitions of their own topic, each committed or
// aborted as a seeded draw decides; a read_committed reader recording what
// it sees during the run; and a consume-transform-produce pipeline (a
// GroupTransactSession) copying the topic's committed records to a second
// topic with its input offsets committed in the same transactions.

const (
	txnTopic      = "fault-txn"
	eosTopic      = "fault-txn-out"
	eosGroup      = "fault-eos"
	txnPartitions = 4
	txnProducers  = 3
	eosMembers    = 2
	txnEvery      = 100 * time.Millisecond // per producer: at most 10 transactions/s
	// txnTimeout is the producers' transaction.timeout.ms: an open
	// transaction whose producer vanished is aborted by the coordinator
	// after it, which bounds how long the end of the run waits for the
	// last stable offsets.
	txnTimeout = 10 * time.Second
	// txnOpTimeout bounds one transaction's produce, flush and end: a
	// producer stuck longer (a fault outlasting franz-go's retries) gives
	// the transaction up and starts over with a new client.
	txnOpTimeout = 30 * time.Second
)

// txnValue is record idx of count in producer p's n'th transaction;
// parseTxnValue inverts it.
func txnValue(p, n, idx, count int) string { return fmt.Sprintf("t%d-%09d-%d-%d", p, n, idx, count) }

func parseTxnValue(v string) (k txnKey, idx, count int, ok bool) {
	n, err := fmt.Sscanf(v, "t%d-%d-%d-%d", &k.Producer, &k.N, &idx, &count)
	return k, idx, count, err == nil && n == 4 && idx >= 0 && idx < count
}

// eosValue is what the pipeline writes for an input record.
func eosValue(in string) string { return "eos:" + in }

func txnID(p int) string { return fmt.Sprintf("fault-txn-%d", p) }

// txnWorkload runs the transactional clients until stopped.
type txnWorkload struct {
	h     *history
	seeds []string
	seed  uint64

	producers []*txnProducer
	prodStop  context.CancelFunc
	prodWG    sync.WaitGroup

	consStop context.CancelFunc // the read_committed reader and the pipeline
	consWG   sync.WaitGroup
}

func (w *txnWorkload) start() {
	prodCtx, prodStop := context.WithCancel(context.Background())
	consCtx, consStop := context.WithCancel(context.Background())
	w.prodStop, w.consStop = prodStop, consStop
	for i := range txnProducers {
		p := &txnProducer{w: w, idx: i, tid: txnID(i), rng: rand.New(rand.NewPCG(w.seed, uint64(i)+1))}
		p.committing.Store(-1)
		w.producers = append(w.producers, p)
		w.prodWG.Go(func() { p.run(prodCtx) })
	}
	w.consWG.Go(func() { w.readCommitted(consCtx) })
	for i := range eosMembers {
		w.consWG.Go(func() { w.pipeline(consCtx, i) })
	}
}

// stopProducers stops the transactional producers: each finishes the
// transaction it is in (bounded by txnOpTimeout) and closes its client.
func (w *txnWorkload) stopProducers() {
	if w.prodStop != nil {
		w.prodStop()
	}
	w.prodWG.Wait()
}

// stopConsumers stops the read_committed reader and the pipeline.
func (w *txnWorkload) stopConsumers() {
	if w.consStop != nil {
		w.consStop()
	}
	w.consWG.Wait()
}

func (w *txnWorkload) close() {
	w.stopProducers()
	w.stopConsumers()
}

// told describes what k's producer was told, relative to the kill at
// killed: for the nemesis's log.
func (w *txnWorkload) told(k txnKey, killed time.Time) string {
	w.h.mu.Lock()
	defer w.h.mu.Unlock()
	t := w.h.txns[k]
	switch {
	case t == nil:
		return "the transaction is not recorded"
	case t.Outcome == txnOpen:
		return "its producer has no answer yet"
	case t.End.Before(killed):
		return fmt.Sprintf("its producer was told %s %v before the kill", t.Outcome, killed.Sub(t.End).Round(100*time.Microsecond))
	default:
		return fmt.Sprintf("its producer was told %s%s %v after the kill", t.Outcome, errSuffix(t.Err), t.End.Sub(killed).Round(time.Millisecond))
	}
}

// endTxnWrite is an EndTxn(commit) request written to an agent, or its
// answer read.
type endTxnWrite struct {
	Addr string // the agent's Kafka address
	Txn  int    // the transaction being committed
	At   time.Time
}

// armed is what the nemesis waits for: the next EndTxn(commit) written,
// or (answered) the next one's answer read.
type armed struct {
	ch       chan endTxnWrite
	answered bool
}

// txnProducer runs one transactional ID's transactions one after the
// other, with a new client after any error it cannot recover from.
type txnProducer struct {
	w   *txnWorkload
	idx int
	tid string
	rng *rand.Rand // used by the producer's goroutine only

	committing atomic.Int64 // the transaction whose EndTxn(commit) is in flight, -1 for none

	mu  sync.Mutex
	arm *armed // the nemesis waits for the next commit's EndTxn
}

// armCommit returns a channel that gets the next EndTxn(commit) request
// this producer writes (answered: whose answer it reads), once.
func (p *txnProducer) armCommit(answered bool) <-chan endTxnWrite {
	a := &armed{ch: make(chan endTxnWrite, 1), answered: answered}
	p.mu.Lock()
	p.arm = a
	p.mu.Unlock()
	return a.ch
}

func (p *txnProducer) disarm() {
	p.mu.Lock()
	p.arm = nil
	p.mu.Unlock()
}

// OnBrokerWrite (kgo.HookBrokerWrite) fires the armed channel when an
// EndTxn request of a commit has been written to an agent: the nemesis
// kills that agent while the commit is in flight.
func (p *txnProducer) OnBrokerWrite(meta kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	p.fire(meta, key, false, err)
}

// OnBrokerRead (kgo.HookBrokerRead) fires the armed channel when the
// answer to an EndTxn request of a commit has been read: the nemesis kills
// the agent while it writes the commit's markers.
func (p *txnProducer) OnBrokerRead(meta kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	p.fire(meta, key, true, err)
}

func (p *txnProducer) fire(meta kgo.BrokerMetadata, key int16, answered bool, err error) {
	if key != int16(kmsg.EndTxn) || err != nil {
		return
	}
	n := p.committing.Load()
	if n < 0 {
		return
	}
	p.mu.Lock()
	a := p.arm
	if a != nil && a.answered == answered {
		p.arm = nil
	} else {
		a = nil
	}
	p.mu.Unlock()
	if a != nil {
		a.ch <- endTxnWrite{Addr: net.JoinHostPort(meta.Host, strconv.Itoa(int(meta.Port))), Txn: int(n), At: time.Now()}
	}
}

func (p *txnProducer) newClient() (*kgo.Client, error) {
	return newClient(p.w.seeds,
		kgo.TransactionalID(p.tid),
		kgo.TransactionTimeout(txnTimeout),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.DefaultProduceTopic(txnTopic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.WithHooks(p),
	)
}

func (p *txnProducer) run(ctx context.Context) {
	var cl *kgo.Client
	defer func() {
		if cl != nil {
			cl.Close()
		}
	}()
	tick := time.NewTicker(txnEvery)
	defer tick.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if cl == nil {
			var err error
			if cl, err = p.newClient(); err != nil {
				p.w.h.txnFailed(fmt.Errorf("new client: %w", err))
				continue
			}
		}
		if !p.transaction(ctx, cl, n) {
			cl.Close() // the next transaction starts with a new client (InitProducerId bumps the epoch)
			cl = nil
		}
	}
}

// transaction runs transaction n and records its outcome. It reports
// whether the client can go on (else the caller replaces it).
func (p *txnProducer) transaction(ctx context.Context, cl *kgo.Client, n int) bool {
	k := txnKey{p.idx, n}
	count := 1 + p.rng.IntN(4)
	commit := p.rng.IntN(4) != 0
	first := p.rng.IntN(txnPartitions)
	// Stopping the run lets the transaction finish: its context is not the
	// loop's.
	octx, cancel := context.WithTimeout(context.WithoutCancel(ctx), txnOpTimeout)
	defer cancel()
	if err := cl.BeginTransaction(); err != nil {
		// Nothing was produced: no transaction to record. A fenced
		// producer ID (franz-go: fatal) ends up here after an abort that
		// could not reload it.
		p.w.h.txnFailed(fmt.Errorf("begin: %w", err))
		return false
	}
	p.w.h.txnBegun(k, count)
	var mu sync.Mutex
	var produceErr error
	for i := range count {
		r := &kgo.Record{Partition: int32((first + i) % txnPartitions), Value: []byte(txnValue(p.idx, n, i, count))}
		cl.Produce(octx, r, func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				if produceErr == nil {
					produceErr = err
				}
				mu.Unlock()
			}
		})
	}
	err := cl.Flush(octx) // every promise has run when it returns nil
	mu.Lock()
	if err == nil {
		err = produceErr
	}
	mu.Unlock()
	if err != nil {
		// No commit was asked: the transaction can only end aborted.
		// franz-go: abort what is buffered, then end with an abort.
		err = fmt.Errorf("produce: %w", err)
		aerr := cl.AbortBufferedRecords(octx)
		if aerr == nil {
			aerr = cl.EndTransaction(octx, kgo.TryAbort)
		}
		p.w.h.txnEnded(k, txnAborted, aerr == nil, err)
		if aerr != nil {
			p.w.h.txnFailed(fmt.Errorf("abort after a produce error: %w", aerr))
		}
		return aerr == nil
	}
	if !commit {
		err := cl.EndTransaction(octx, kgo.TryAbort)
		if err != nil {
			err = fmt.Errorf("abort: %w", err)
		}
		p.w.h.txnEnded(k, txnAborted, err == nil, err)
		return err == nil
	}
	p.committing.Store(int64(n))
	err = cl.EndTransaction(octx, kgo.TryCommit)
	p.committing.Store(-1)
	if err == nil {
		p.w.h.txnEnded(k, txnCommitted, false, nil)
		return true
	}
	// The commit's outcome is unknown (it may have been decided before the
	// answer was lost). franz-go: retry the end as an abort, which
	// reloads the producer ID (an epoch bump that fence-aborts whatever is
	// still open; a decided commit stays committed).
	p.w.h.txnEnded(k, txnUnknown, false, fmt.Errorf("commit: %w", err))
	if errors.Is(err, kerr.ProducerFenced) {
		return false // fatal in franz-go: a new client
	}
	if err := cl.EndTransaction(octx, kgo.TryAbort); err != nil {
		p.w.h.txnFailed(fmt.Errorf("abort after a failed commit: %w", err))
		return false
	}
	return true
}

// readCommitted records every record a read_committed reader (no group,
// from the start) gets from the transactional topic during the run.
func (w *txnWorkload) readCommitted(ctx context.Context) {
	cl, err := newClient(w.seeds,
		kgo.ConsumeTopics(txnTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	)
	if err != nil {
		w.h.rcFailed(fmt.Errorf("new client: %w", err))
		return
	}
	defer cl.Close()
	for ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		fs.EachError(func(_ string, _ int32, err error) {
			if ctx.Err() == nil && !errors.Is(err, kgo.ErrClientClosed) {
				w.h.rcFailed(err)
			}
		})
		fs.EachRecord(func(r *kgo.Record) { w.h.rcRead(position{r.Partition, r.Offset}, string(r.Value)) })
	}
}

// pipeline is one member of the consume-transform-produce pipeline: it
// copies what it reads (read_committed) from the transactional topic to
// the output topic, same partition, committing its input offsets in the
// same transaction. An error ends the session (franz-go: no error of End
// is retryable); a new one with the same transactional ID takes over.
func (w *txnWorkload) pipeline(ctx context.Context, member int) {
	for ctx.Err() == nil {
		sess, err := kgo.NewGroupTransactSession(
			kgo.SeedBrokers(w.seeds...),
			kgo.TransactionalID(fmt.Sprintf("fault-eos-%d", member)),
			kgo.TransactionTimeout(txnTimeout),
			kgo.FetchIsolationLevel(kgo.ReadCommitted()),
			kgo.ConsumerGroup(eosGroup),
			kgo.ConsumeTopics(txnTopic),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.RequireStableFetchOffsets(),
			kgo.DefaultProduceTopic(eosTopic),
			kgo.RecordPartitioner(kgo.ManualPartitioner()),
		)
		if err != nil {
			w.h.eosFailed(fmt.Errorf("new session: %w", err))
			if sleep(ctx, time.Second) != nil {
				return
			}
			continue
		}
		w.session(ctx, sess)
		sess.Close()
	}
}

// session runs transactions until ctx is done or one fails.
func (w *txnWorkload) session(ctx context.Context, sess *kgo.GroupTransactSession) {
	for {
		fs := sess.PollFetches(ctx)
		if ctx.Err() != nil {
			return
		}
		fs.EachError(func(_ string, _ int32, err error) {
			if !errors.Is(err, kgo.ErrClientClosed) && !errors.Is(err, context.Canceled) {
				w.h.eosFailed(fmt.Errorf("fetch: %w", err))
			}
		})
		if fs.NumRecords() == 0 {
			continue
		}
		if err := sess.Begin(); err != nil {
			w.h.eosEnded(false, 0, fmt.Errorf("begin: %w", err))
			return
		}
		octx, cancel := context.WithTimeout(context.WithoutCancel(ctx), txnOpTimeout)
		var mu sync.Mutex
		var produceErr error
		n := 0
		fs.EachRecord(func(r *kgo.Record) {
			n++
			sess.Produce(octx, &kgo.Record{Partition: r.Partition, Value: []byte(eosValue(string(r.Value)))}, func(_ *kgo.Record, err error) {
				if err != nil {
					mu.Lock()
					if produceErr == nil {
						produceErr = err
					}
					mu.Unlock()
				}
			})
		})
		// End flushes first; a failed record makes it abort.
		committed, err := sess.End(octx, kgo.TryCommit)
		cancel()
		mu.Lock()
		if err == nil && !committed && produceErr != nil {
			w.h.eosFailed(fmt.Errorf("produce: %w", produceErr))
		}
		mu.Unlock()
		w.h.eosEnded(committed, n, err)
		if err != nil {
			return
		}
	}
}
