package compat

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/streamhouse/streamhouse/internal/e2e"
)

const groupPartitions = 6

// groupTracker records what the members of one consumer group saw: the
// partitions each member was given in each generation, and every record
// consumed.
type groupTracker struct {
	mu       sync.Mutex
	gens     map[int32]map[string][]int32 // generation → member ID → partitions
	consumed map[int32]map[int64]int      // partition → offset → times
	first    map[int32]int64              // partition → first offset consumed
	errs     []string
}

func newGroupTracker() *groupTracker {
	return &groupTracker{gens: map[int32]map[string][]int32{}, consumed: map[int32]map[int64]int{}, first: map[int32]int64{}}
}

func (g *groupTracker) Setup(s sarama.ConsumerGroupSession) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.gens[s.GenerationID()] == nil {
		g.gens[s.GenerationID()] = map[string][]int32{}
	}
	var parts []int32
	for _, ps := range s.Claims() {
		parts = append(parts, ps...)
	}
	slices.Sort(parts)
	g.gens[s.GenerationID()][s.MemberID()] = parts
	return nil
}

func (g *groupTracker) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (g *groupTracker) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for m := range c.Messages() {
		g.mu.Lock()
		if g.consumed[m.Partition] == nil {
			g.consumed[m.Partition] = map[int64]int{}
			g.first[m.Partition] = m.Offset
		}
		g.consumed[m.Partition][m.Offset]++
		g.mu.Unlock()
		s.MarkMessage(m, "")
	}
	return nil
}

func (g *groupTracker) addErr(err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.errs) < 20 {
		g.errs = append(g.errs, err.Error())
	}
}

// stable reports nil once the newest generation has exactly members
// members that between them own every partition once, evenly.
func (g *groupTracker) stable(members int) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.gens) == 0 {
		return fmt.Errorf("no generation yet (client errors: %v)", g.errs)
	}
	gen := slices.Max(slices.Collect(maps.Keys(g.gens)))
	owners := g.gens[gen]
	if len(owners) != members {
		return fmt.Errorf("generation %d has %d members %v, want %d (client errors: %v)", gen, len(owners), owners, members, g.errs)
	}
	var all []int32
	for m, ps := range owners {
		lo, hi := groupPartitions/members, (groupPartitions+members-1)/members
		if len(ps) < lo || len(ps) > hi {
			return fmt.Errorf("generation %d: member %s owns %v, want %d to %d partitions", gen, m, ps, lo, hi)
		}
		all = append(all, ps...)
	}
	slices.Sort(all)
	if !slices.Equal(all, []int32{0, 1, 2, 3, 4, 5}) {
		return fmt.Errorf("generation %d: partitions owned %v, want each of 0..5 once", gen, all)
	}
	return nil
}

// overlaps lists partitions given to two members of one generation.
func (g *groupTracker) overlaps() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var bad []string
	for gen, owners := range g.gens {
		seen := map[int32]string{}
		for m, ps := range owners {
			for _, p := range ps {
				if other, ok := seen[p]; ok {
					bad = append(bad, fmt.Sprintf("generation %d: partition %d owned by %s and %s", gen, p, other, m))
				}
				seen[p] = m
			}
		}
	}
	return bad
}

// consumedAll reports nil once every offset in [from, to) of every
// partition has been consumed.
func (g *groupTracker) consumedAll(from, to int64) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	for p := range int32(groupPartitions) {
		for o := from; o < to; o++ {
			if g.consumed[p][o] == 0 {
				return fmt.Errorf("partition %d offset %d not consumed (client errors: %v)", p, o, g.errs)
			}
		}
	}
	return nil
}

// groupMember is one sarama ConsumerGroup running its Consume loop.
type groupMember struct {
	cg     sarama.ConsumerGroup
	cancel context.CancelFunc
	done   chan struct{}
}

func startGroupMember(t *testing.T, addr, group, topic string, strategy sarama.BalanceStrategy, tr *groupTracker) *groupMember {
	t.Helper()
	cfg := saramaConfig()
	cfg.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{strategy}
	cfg.Consumer.Group.Session.Timeout = 10 * time.Second
	cfg.Consumer.Group.Heartbeat.Interval = 300 * time.Millisecond
	cfg.Consumer.Group.Rebalance.Timeout = 10 * time.Second
	cfg.Consumer.Group.Rebalance.Retry.Backoff = 200 * time.Millisecond
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Offsets.AutoCommit.Interval = 200 * time.Millisecond
	cg, err := sarama.NewConsumerGroup([]string{addr}, group, cfg)
	if err != nil {
		t.Fatalf("NewConsumerGroup: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &groupMember{cg: cg, cancel: cancel, done: make(chan struct{})}
	go func() {
		for err := range cg.Errors() {
			tr.addErr(err)
		}
	}()
	go func() {
		defer close(m.done)
		for ctx.Err() == nil {
			if err := cg.Consume(ctx, []string{topic}, tr); err != nil {
				if errors.Is(err, sarama.ErrClosedConsumerGroup) {
					return
				}
				tr.addErr(err)
				select {
				case <-ctx.Done():
				case <-time.After(200 * time.Millisecond):
				}
			}
		}
	}()
	t.Cleanup(m.stop)
	return m
}

// stop leaves the group (committing what was marked) and waits for the
// Consume loop to end.
func (m *groupMember) stop() {
	m.cancel()
	<-m.done
	_ = m.cg.Close()
}

// TestSaramaConsumerGroup runs three sarama ConsumerGroup members on six
// partitions with each balance strategy: one owner per partition in every
// generation, rebalances as members join and leave, everything consumed,
// and the committed offsets survive a server kill.
func TestSaramaConsumerGroup(t *testing.T) {
	t.Parallel()
	strategies := []sarama.BalanceStrategy{sarama.NewBalanceStrategyRange(),
		sarama.NewBalanceStrategyRoundRobin(), sarama.NewBalanceStrategySticky()}
	const perPartition = 10
	for _, be := range e2e.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			t.Parallel()
			s := startServer(t, be)
			addr := s.KafkaAddr
			client := saramaClient(t, addr, nil)
			produce := func(topic string, n int) {
				t.Helper()
				prod, err := sarama.NewSyncProducerFromClient(client)
				if err != nil {
					t.Fatal(err)
				}
				defer prod.Close()
				var msgs []*sarama.ProducerMessage
				for p := range int32(groupPartitions) {
					for i := range n {
						msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Partition: p,
							Key: sarama.StringEncoder(fmt.Sprint(i)), Value: sarama.StringEncoder(fmt.Sprintf("p%d-%d", p, i))})
					}
				}
				if err := prod.SendMessages(msgs); err != nil {
					t.Fatalf("produce to %s: %v", topic, err)
				}
			}
			// committed fails unless the group has committed want for
			// every partition of topic.
			committed := func(group, topic string, want int64) error {
				admin, err := sarama.NewClusterAdminFromClient(client)
				if err != nil {
					return err
				}
				resp, err := admin.ListConsumerGroupOffsets(group, map[string][]int32{topic: {0, 1, 2, 3, 4, 5}})
				if err != nil {
					return fmt.Errorf("OffsetFetch: %w", err)
				}
				var got []string
				for p := range int32(groupPartitions) {
					b := resp.GetBlock(topic, p)
					if b == nil || b.Err != sarama.ErrNoError || b.Offset != want {
						got = append(got, fmt.Sprintf("%d: %+v", p, b))
					}
				}
				if len(got) > 0 {
					return fmt.Errorf("committed offsets of %s on %s, want %d: %s", group, topic, want, strings.Join(got, ", "))
				}
				return nil
			}

			for _, st := range strategies {
				ok := t.Run(st.Name(), func(t *testing.T) {
					topic, group := "group-"+st.Name(), "compat-"+st.Name()
					s.createTopic(topic, groupPartitions)
					produce(topic, perPartition)
					tr := newGroupTracker()
					member := func() *groupMember { return startGroupMember(t, addr, group, topic, st, tr) }

					a := member()
					eventually(t, 30*time.Second, "one member owning everything", func() error { return tr.stable(1) })
					b, c := member(), member()
					eventually(t, 30*time.Second, "rebalance to three members", func() error { return tr.stable(3) })
					eventually(t, 30*time.Second, "every record consumed", func() error { return tr.consumedAll(0, perPartition) })
					c.stop()
					eventually(t, 30*time.Second, "rebalance to two members after one left", func() error { return tr.stable(2) })
					a.stop()
					eventually(t, 30*time.Second, "rebalance to one member after another left", func() error { return tr.stable(1) })
					b.stop()
					for _, o := range tr.overlaps() {
						t.Error(o)
					}
					eventually(t, 10*time.Second, "offsets committed", func() error { return committed(group, topic, perPartition) })
				})
				if !ok {
					return
				}
			}

			// Committed offsets are durable: after a kill, each group
			// resumes where it left off.
			s.restart(syscall.SIGKILL)
			client = saramaClient(t, addr, nil)
			for _, st := range strategies {
				topic, group := "group-"+st.Name(), "compat-"+st.Name()
				if err := committed(group, topic, perPartition); err != nil {
					t.Errorf("after restart: %v", err)
				}
				produce(topic, 5)
				tr := newGroupTracker()
				m := startGroupMember(t, addr, group, topic, st, tr)
				eventually(t, 30*time.Second, st.Name()+": new records consumed after restart", func() error {
					return tr.consumedAll(perPartition, perPartition+5)
				})
				m.stop()
				tr.mu.Lock()
				for p, first := range tr.first {
					if first != perPartition {
						t.Errorf("%s after restart: partition %d resumed at offset %d, want the committed %d", group, p, first, perPartition)
					}
				}
				tr.mu.Unlock()
			}
		})
	}
}
