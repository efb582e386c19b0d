package fault

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The workload: idempotent producers (franz-go defaults: acks=all,
// unbounded retries) writing unique values, consumer groups (one
// cooperative-sticky, one range, default group timings) reading and
// committing, and two outside observers: Metadata every 100 ms (who leads
// each partition) and committed offsets every 250 ms.

const (
	topic        = "fault"
	partitions   = 6
	producers    = 4
	produceEvery = 10 * time.Millisecond // per producer: 100 records/s
)

// groups are the consumer groups and how many members each has.
var groups = []struct {
	name     string
	members  int
	balancer kgo.GroupBalancer
}{
	{"fault-coop", 3, kgo.CooperativeStickyBalancer()},
	{"fault-range", 2, kgo.RangeBalancer()},
}

// value is what producer id writes as its seq'th record; parseValue
// inverts it.
func value(id, seq int) string { return fmt.Sprintf("p%d-%09d", id, seq) }

func parseValue(v string) (id, seq int, ok bool) {
	n, err := fmt.Sscanf(v, "p%d-%d", &id, &seq)
	return id, seq, err == nil && n == 2
}

// workload runs the clients until stopped.
type workload struct {
	h     *history
	seeds []string

	prodStop    context.CancelFunc
	prodWG      sync.WaitGroup
	prodClients []*kgo.Client

	consStop context.CancelFunc
	consWG   sync.WaitGroup

	obsStop context.CancelFunc
	obsWG   sync.WaitGroup

	closers []func()

	mu        sync.Mutex
	abandoned int // records given up at the end of the run (not acked, not failed by the server)
}

func newClient(seeds []string, opts ...kgo.Opt) (*kgo.Client, error) {
	return kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(seeds...)}, opts...)...)
}

func (w *workload) start() error {
	prodCtx, prodStop := context.WithCancel(context.Background())
	consCtx, consStop := context.WithCancel(context.Background())
	obsCtx, obsStop := context.WithCancel(context.Background())
	w.prodStop, w.consStop, w.obsStop = prodStop, consStop, obsStop

	for id := range producers {
		cl, err := newClient(w.seeds, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
		if err != nil {
			return err
		}
		w.prodClients = append(w.prodClients, cl)
		w.prodWG.Add(1)
		go func() {
			defer w.prodWG.Done()
			w.produce(prodCtx, cl, id)
		}()
	}
	for _, g := range groups {
		for m := range g.members {
			mem := &member{w: w, group: g.name, idx: m, owned: map[int32]bool{}}
			cl, err := newClient(w.seeds,
				kgo.ConsumerGroup(g.name),
				kgo.ConsumeTopics(topic),
				kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
				kgo.Balancers(g.balancer),
				kgo.BlockRebalanceOnPoll(),
				kgo.OnPartitionsAssigned(mem.assigned),
				kgo.OnPartitionsRevoked(mem.revoked),
				kgo.OnPartitionsLost(mem.lost),
				kgo.AutoCommitCallback(mem.commitDone),
			)
			if err != nil {
				return err
			}
			w.consWG.Add(1)
			go func() {
				defer w.consWG.Done()
				mem.consume(consCtx, cl)
			}()
		}
	}
	obs, err := newClient(w.seeds)
	if err != nil {
		return err
	}
	w.closers = append(w.closers, obs.Close)
	w.obsWG.Add(2)
	go func() {
		defer w.obsWG.Done()
		pollMetadata(obsCtx, obs, w.seeds, w.h)
	}()
	go func() {
		defer w.obsWG.Done()
		pollCommitted(obsCtx, kadm.NewClient(obs), w.h)
	}()
	return nil
}

// produce writes one record every produceEvery, to the partitions in turn,
// recording every answer.
func (w *workload) produce(ctx context.Context, cl *kgo.Client, id int) {
	tick := time.NewTicker(produceEvery)
	defer tick.Stop()
	for seq := 0; ; seq++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		v := value(id, seq)
		w.h.sentOne()
		// The record's context is not the loop's: stopping the loop must
		// not cancel what is already buffered (the end of the run flushes).
		cl.Produce(context.WithoutCancel(ctx), &kgo.Record{Partition: int32(seq % partitions), Value: []byte(v)},
			func(r *kgo.Record, err error) {
				switch {
				case err == nil:
					w.h.acked(v, position{r.Partition, r.Offset})
				case errors.Is(err, kgo.ErrClientClosed) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
					w.mu.Lock()
					w.abandoned++
					w.mu.Unlock()
				default:
					w.h.produceFailed(err)
				}
			})
	}
}

// stopProducers stops producing and waits (up to wait) for every buffered
// record's answer; what is still unanswered then is abandoned.
func (w *workload) stopProducers(wait time.Duration) error {
	w.prodStop()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	var errs []error
	for _, cl := range w.prodClients {
		if err := cl.Flush(ctx); err != nil {
			errs = append(errs, fmt.Errorf("flush: %w", err))
		}
	}
	w.closeProducers()
	return errors.Join(errs...)
}

// closeProducers closes the producers (failing what they still buffer)
// and waits for their loops.
func (w *workload) closeProducers() {
	for _, cl := range w.prodClients {
		cl.Close()
	}
	w.prodClients = nil
	w.prodWG.Wait()
}

func (w *workload) stopConsumers() {
	w.consStop()
	w.consWG.Wait()
}

// close stops everything (idempotent, for cleanup after a failure).
func (w *workload) close() {
	for _, stop := range []context.CancelFunc{w.prodStop, w.consStop, w.obsStop} {
		if stop != nil {
			stop()
		}
	}
	w.closeProducers()
	w.consWG.Wait()
	w.obsWG.Wait()
	for _, c := range w.closers {
		c()
	}
	w.closers = nil
}

// member is one consumer group member. It tracks what it owns from
// franz-go's callbacks and records its full ownership at every generation.
type member struct {
	w     *workload
	group string
	idx   int

	mu    sync.Mutex
	owned map[int32]bool
}

func (m *member) consume(ctx context.Context, cl *kgo.Client) {
	defer cl.Close() // leaves the group: revokes (and commits) what it owns
	for ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		fs.EachError(func(_ string, _ int32, err error) {
			if ctx.Err() == nil && !errors.Is(err, kgo.ErrClientClosed) {
				m.w.h.fetchFailed(err)
			}
		})
		fs.EachRecord(func(r *kgo.Record) {
			m.w.h.read(m.group, m.idx, position{r.Partition, r.Offset}, string(r.Value))
		})
		// Every record polled is recorded before a rebalance may commit
		// it (BlockRebalanceOnPoll).
		cl.AllowRebalance()
	}
}

func (m *member) assigned(_ context.Context, cl *kgo.Client, added map[string][]int32) {
	m.mu.Lock()
	for _, p := range added[topic] {
		m.owned[p] = true
	}
	var owned []int32
	for p := range m.owned {
		owned = append(owned, p)
	}
	m.mu.Unlock()
	slices.Sort(owned)
	// The generation this assignment belongs to: franz-go stores it from
	// the JoinGroup answer before it syncs and calls this, and does not
	// join again until this returns.
	_, gen := cl.GroupMetadata()
	m.w.h.owned(m.group, m.idx, gen, owned)
}

// revoked commits what was consumed, as franz-go's default revoke does,
// then forgets the partitions.
func (m *member) revoked(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
	cl.CommitOffsetsSync(ctx, cl.UncommittedOffsets(), m.commitDone)
	m.lost(ctx, cl, revoked)
}

func (m *member) lost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range lost[topic] {
		delete(m.owned, p)
	}
}

// commitDone records every partition whose commit the coordinator
// accepted.
func (m *member) commitDone(_ *kgo.Client, req *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
	if err != nil || resp == nil {
		return
	}
	now := time.Now()
	asked := map[int32]int64{}
	for _, t := range req.Topics {
		if t.Topic == topic {
			for _, p := range t.Partitions {
				asked[p.Partition] = p.Offset
			}
		}
	}
	for _, t := range resp.Topics {
		if t.Topic != topic {
			continue
		}
		for _, p := range t.Partitions {
			if off, ok := asked[p.Partition]; ok && p.ErrorCode == 0 {
				m.w.h.committed(m.group, commitObs{At: now, Member: m.idx, Generation: req.Generation, Offset: off}, p.Partition)
			}
		}
	}
}

// pollMetadata records the leader of every partition every 100 ms.
func pollMetadata(ctx context.Context, cl *kgo.Client, agentAddrs []string, h *history) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		req := kmsg.NewPtrMetadataRequest()
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(topic)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(rctx, cl)
		cancel()
		if err != nil || len(resp.Topics) != 1 || resp.Topics[0].ErrorCode != 0 {
			continue // no answer is no evidence either way
		}
		s := metaSample{At: time.Now(), Leaders: map[int32]int32{}, Agents: map[int32]int{}}
		for _, b := range resp.Brokers {
			s.Agents[b.NodeID] = slices.Index(agentAddrs, fmt.Sprintf("%s:%d", b.Host, b.Port))
		}
		for _, p := range resp.Topics[0].Partitions {
			s.Leaders[p.Partition] = p.Leader
		}
		h.metadata(s)
	}
}

// pollCommitted records every group's committed offsets every 250 ms,
// one request at a time, so the series per partition is in the order the
// store held the values.
func pollCommitted(ctx context.Context, adm *kadm.Client, h *history) {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		for _, g := range groups {
			rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			resps, err := adm.FetchOffsets(rctx, g.name)
			cancel()
			if err != nil {
				continue
			}
			now := time.Now()
			resps.Each(func(r kadm.OffsetResponse) {
				if r.Err == nil && r.Topic == topic && r.At >= 0 {
					h.polledOffset(g.name, r.Partition, now, r.At)
				}
			})
		}
	}
}
