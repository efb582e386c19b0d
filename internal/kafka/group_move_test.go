package kafka

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamhouse/streamhouse/internal/broker"
	"github.com/streamhouse/streamhouse/internal/group"
	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/objstore"
	"github.com/streamhouse/streamhouse/internal/testutil"
)

// pauser freezes a client as SIGSTOP would, as far as the server can
// tell: while paused, nothing the client writes leaves and nothing sent to
// it is delivered, and its owner stops polling.
type pauser struct {
	mu     sync.Mutex
	resume chan struct{} // nil while running
}

func (p *pauser) wait() {
	p.mu.Lock()
	ch := p.resume
	p.mu.Unlock()
	if ch != nil {
		<-ch
	}
}

func (p *pauser) pause() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.resume == nil {
		p.resume = make(chan struct{})
	}
}

func (p *pauser) unpause() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.resume != nil {
		close(p.resume)
		p.resume = nil
	}
}

func (p *pauser) dial(ctx context.Context, network, host string) (net.Conn, error) {
	p.wait()
	c, err := (&net.Dialer{}).DialContext(ctx, network, host)
	if err != nil {
		return nil, err
	}
	return pausedConn{Conn: c, p: p}, nil
}

type pausedConn struct {
	net.Conn
	p *pauser
}

func (c pausedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.p.wait() // bytes that arrive during a pause are seen after it
	return n, err
}

func (c pausedConn) Write(b []byte) (int, error) {
	c.p.wait()
	return c.Conn.Write(b)
}

// offsetWatch polls a group's committed offsets in the metadata store and
// records every time one went backwards.
type offsetWatch struct {
	mu        sync.Mutex
	last      map[int32]int64
	backwards []string
}

func watchOffsets(t *testing.T, ctx context.Context, store metadata.Store, group string) *offsetWatch {
	w := &offsetWatch{last: make(map[int32]int64)}
	done := make(chan struct{})
	wctx, cancel := context.WithCancel(ctx)
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			offs, err := store.FetchGroupOffsets(wctx, group)
			if err == nil {
				w.mu.Lock()
				for _, o := range offs {
					if prev, ok := w.last[o.Partition]; ok && o.Offset < prev {
						w.backwards = append(w.backwards, fmt.Sprintf("partition %d: %d then %d", o.Partition, prev, o.Offset))
					}
					w.last[o.Partition] = o.Offset
				}
				w.mu.Unlock()
			}
			select {
			case <-wctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return w
}

func (w *offsetWatch) check(t *testing.T) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.backwards) > 0 {
		t.Fatalf("committed offsets went backwards: %v", w.backwards)
	}
}

// Consumers with franz-go's default group timings (45 s sessions, 3 s
// heartbeats, cooperative-sticky) keep their generation and membership
// when the group's coordinator slot moves to another agent while one of
// them is paused for 6.5 s: no rebalance, no member removed, and the
// committed offsets never go backwards while records keep flowing.
func TestGroupSurvivesCoordinatorMoveWithPausedMember(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, store metadata.Store, bucket objstore.Bucket) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		const (
			topic      = "moving"
			groupID    = "g-moving"
			partitions = 4
		)
		s1 := startServer(t, testOptions{store: store, bucket: bucket, agentID: "agent-1"})
		if _, err := s1.broker.CreateTopic(ctx, broker.TopicSpec{Name: topic, Partitions: partitions}, false); err != nil {
			t.Fatal(err)
		}
		if err := s1.broker.EnsureGroupSlots(ctx); err != nil {
			t.Fatal(err)
		}
		slot, err := s1.broker.GroupSlot(ctx, groupID)
		if err != nil {
			t.Fatal(err)
		}

		// A producer keeps records flowing through the whole test.
		prod := s1.client(kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
		var produced sync.WaitGroup
		pctx, stopProducing := context.WithCancel(ctx)
		produced.Add(1)
		go func() {
			defer produced.Done()
			for i := 0; pctx.Err() == nil; i++ {
				_ = prod.ProduceSync(pctx, &kgo.Record{Topic: topic, Value: []byte(fmt.Sprint(i))}).FirstErr()
			}
		}()
		defer func() { stopProducing(); produced.Wait() }()

		watch := watchOffsets(t, ctx, store, groupID)
		consumer := func(name string, p *pauser) *kgo.Client {
			cl := s1.client(kgo.ClientID(name), kgo.Dialer(p.dial),
				kgo.ConsumerGroup(groupID), kgo.ConsumeTopics(topic),
				kgo.FetchMaxWait(200*time.Millisecond), kgo.AutoCommitInterval(200*time.Millisecond))
			go func() {
				for {
					p.wait()
					if cl.PollFetches(ctx).IsClientClosed() || ctx.Err() != nil {
						return
					}
				}
			}()
			return cl
		}
		p1, p2 := &pauser{}, &pauser{}
		c1, c2 := consumer("c1", p1), consumer("c2", p2)
		defer p1.unpause()

		// Both members in one stable generation, each owning partitions.
		// stable asks coordinator (only: another agent's memory may be
		// stale) whether both members are in one stable generation.
		stable := func(coordinator *testServer) (int32, []string, bool) {
			d, ok := coordinator.srv.groups.Describe(ctx, groupID)
			if !ok || d.State.String() != "Stable" || len(d.Members) != 2 {
				return 0, nil, false
			}
			for _, m := range d.Members {
				// Settled: cooperative-sticky's follow-up rebalance is
				// over once each member has its half.
				if len(group.DecodeAssignment(m.Assignment)[topic]) != partitions/2 {
					return 0, nil, false
				}
			}
			id1, g1 := c1.GroupMetadata()
			id2, g2 := c2.GroupMetadata()
			ids := []string{d.Members[0].MemberID, d.Members[1].MemberID}
			slices.Sort(ids)
			want := []string{id1, id2}
			slices.Sort(want)
			return d.Generation, ids, g1 == d.Generation && g2 == d.Generation && slices.Equal(ids, want)
		}
		var (
			gen     int32
			members []string
		)
		testutil.WaitFor(t, "both consumers in one stable generation", func() bool {
			var ok bool
			gen, members, ok = stable(s1)
			return ok
		})
		committedOnce := func() bool {
			offs, err := store.FetchGroupOffsets(ctx, groupID)
			return err == nil && len(offs) == partitions
		}
		testutil.WaitFor(t, "every partition committed", committedOnce)

		// c1 pauses; meanwhile a second agent starts and the slot moves
		// to it.
		p1.pause()
		s2 := startServer(t, testOptions{store: store, bucket: bucket, agentID: "agent-2"})
		testutil.WaitFor(t, "agent-2 coordinating", func() bool {
			if err := s1.log.Release(ctx, slot); err != nil { // no-op once released
				t.Fatal(err)
			}
			s2.broker.Place(ctx)
			agent, _, err := s1.broker.GroupCoordinator(ctx, groupID)
			return err == nil && agent == "agent-2"
		})
		pauseEnds := time.Now().Add(6500 * time.Millisecond)
		// c2 finds the new coordinator and commits there while c1 is
		// paused.
		before := watch.snapshot()
		testutil.WaitFor(t, "c2 committing at agent-2", func() bool {
			return watch.advancedSince(before) && time.Now().After(pauseEnds)
		})
		p1.unpause()

		// Both members carry on in the same generation at agent-2.
		before = watch.snapshot()
		testutil.WaitFor(t, "both consumers committing at agent-2, same generation and members", func() bool {
			g, ids, ok := stable(s2)
			if ok && (g != gen || !slices.Equal(ids, members)) {
				t.Fatalf("after the move: generation %d with members %v; before: generation %d with %v", g, ids, gen, members)
			}
			return ok && watch.advancedAll(before)
		})
		if d, ok := s2.srv.groups.Describe(ctx, groupID); !ok || d.Generation != gen {
			t.Fatalf("agent-2 describes %+v, %v; want generation %d", d, ok, gen)
		}
		watch.check(t)
	})
}

// snapshot copies the latest committed offsets seen.
func (w *offsetWatch) snapshot() map[int32]int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[int32]int64, len(w.last))
	for p, o := range w.last {
		out[p] = o
	}
	return out
}

// advancedSince reports whether some partition's committed offset moved
// past before.
func (w *offsetWatch) advancedSince(before map[int32]int64) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for p, o := range w.last {
		if o > before[p] {
			return true
		}
	}
	return false
}

// advancedAll reports whether every partition's committed offset moved
// past before.
func (w *offsetWatch) advancedAll(before map[int32]int64) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.last) == 0 {
		return false
	}
	for p, o := range w.last {
		if o <= before[p] {
			return false
		}
	}
	return true
}
