package kafka

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamhouse/streamhouse/internal/broker"
	"github.com/streamhouse/streamhouse/internal/group"
)

// Consumer groups of real franz-go consumers against a real server: every
// client-side assignor, rebalances on join, leave and crash, static
// membership, and consumption with committed offsets.

func grpCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func (s *testServer) grpTopic(t *testing.T, name string, partitions int32) {
	t.Helper()
	if _, err := s.broker.CreateTopic(context.Background(), broker.TopicSpec{Name: name, Partitions: partitions}, false); err != nil {
		t.Fatal(err)
	}
}

// ownership follows which consumer owns which partition, from the
// consumers' own callbacks, and records every moment a partition would
// have two owners in one generation: assigned to a consumer while another
// member of the group still owns it. (A consumer the coordinator already
// removed, say for missing its session on a loaded machine, may not know
// yet; it is no longer part of the generation and commits nothing, so
// that is not a second owner.)
type ownership struct {
	mu         sync.Mutex
	owner      map[int32]owned
	gone       map[string]bool
	violations []string
	isMember   func(memberID string) bool
}

type owned struct{ name, memberID string }

func (s *testServer) newOwnership(groupID string) *ownership {
	return &ownership{
		owner: make(map[int32]owned),
		gone:  make(map[string]bool),
		isMember: func(memberID string) bool {
			d, ok := s.srv.groups.Describe(s.t.Context(), groupID)
			return ok && slices.ContainsFunc(d.Members, func(m group.MemberDescription) bool { return m.MemberID == memberID })
		},
	}
}

func (o *ownership) assigned(name, memberID string, ps []int32) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.gone[name] {
		return
	}
	for _, p := range ps {
		if cur, ok := o.owner[p]; ok && cur.name != name && o.isMember(cur.memberID) {
			o.violations = append(o.violations, fmt.Sprintf("partition %d assigned to %s while %s owns it", p, name, cur.name))
		}
		o.owner[p] = owned{name, memberID}
	}
}

func (o *ownership) revoked(member string, ps []int32) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, p := range ps {
		if o.owner[p].name == member {
			delete(o.owner, p)
		}
	}
}

// leave forgets a member about to leave or crash: a dead process owns
// nothing, and nothing it reports afterwards counts.
func (o *ownership) leave(member string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.gone[member] = true
	for p, m := range o.owner {
		if m.name == member {
			delete(o.owner, p)
		}
	}
}

func (o *ownership) byMember() map[string][]int32 {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make(map[string][]int32)
	for p, m := range o.owner {
		out[m.name] = append(out[m.name], p)
	}
	for _, ps := range out {
		slices.Sort(ps)
	}
	return out
}

func (o *ownership) check(t *testing.T) {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.violations) > 0 {
		t.Fatalf("partitions with two owners:\n%s", strings.Join(o.violations, "\n"))
	}
}

// cutDialer dials normally until cut, then closes every connection and
// refuses new ones: the client process is gone as far as the server can
// tell.
type cutDialer struct {
	mu    sync.Mutex
	conns []net.Conn
	cut   bool
}

func (d *cutDialer) dial(ctx context.Context, network, host string) (net.Conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cut {
		return nil, errors.New("crashed")
	}
	c, err := (&net.Dialer{}).DialContext(ctx, network, host)
	if err == nil {
		d.conns = append(d.conns, c)
	}
	return c, err
}

func (d *cutDialer) crash() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.cut = true
	for _, c := range d.conns {
		_ = c.Close()
	}
}

type grpConsumer struct {
	name string
	cl   *kgo.Client
	dial *cutDialer
}

// grpConsume starts a group consumer that polls until closed, with short
// timeouts so rebalances and crashes settle quickly.
func (s *testServer) grpConsume(t *testing.T, name, groupID, topic string, own *ownership, seen func(*kgo.Record), opts ...kgo.Opt) *grpConsumer {
	t.Helper()
	d := &cutDialer{}
	base := []kgo.Opt{
		kgo.ClientID(name),
		kgo.Dialer(d.dial),
		kgo.ConsumerGroup(groupID),
		kgo.ConsumeTopics(topic),
		kgo.SessionTimeout(3 * time.Second),
		kgo.RebalanceTimeout(5 * time.Second),
		kgo.HeartbeatInterval(100 * time.Millisecond),
		kgo.RetryTimeout(2 * time.Second),
		kgo.OnPartitionsAssigned(func(_ context.Context, cl *kgo.Client, m map[string][]int32) {
			id, _ := cl.GroupMetadata()
			own.assigned(name, id, m[topic])
		}),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { own.revoked(name, m[topic]) }),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { own.revoked(name, m[topic]) }),
	}
	cl := s.client(append(base, opts...)...)
	go func() {
		for {
			fs := cl.PollFetches(context.Background())
			if fs.IsClientClosed() {
				return
			}
			if seen != nil {
				fs.EachRecord(seen)
			}
		}
	}()
	return &grpConsumer{name: name, cl: cl, dial: d}
}

// grpSettle waits (bounded) until the group is Stable with exactly the
// live consumers as members, the coordinator's assignment of that
// generation hands every partition to exactly one member, each consumer
// owns exactly what the coordinator assigned it, and all agree on the
// generation. It returns the generation and each consumer's partitions.
func (s *testServer) grpSettle(t *testing.T, groupID string, partitions int32, own *ownership, live ...*grpConsumer) (int32, map[string][]int32) {
	t.Helper()
	adm := s.admin()
	deadline := time.Now().Add(30 * time.Second)
	var why string
	for time.Now().Before(deadline) {
		gen, owned, reason := s.grpSettled(groupID, partitions, own, adm, live)
		if reason == "" {
			own.check(t)
			return gen, owned
		}
		why = reason
		time.Sleep(20 * time.Millisecond)
	}
	own.check(t)
	t.Fatalf("group %s did not settle: %s", groupID, why)
	return 0, nil
}

func (s *testServer) grpSettled(groupID string, partitions int32, own *ownership, adm *kadm.Client, live []*grpConsumer) (int32, map[string][]int32, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	described, err := adm.DescribeGroups(ctx, groupID)
	if err != nil {
		return 0, nil, err.Error()
	}
	dg := described[groupID]
	if dg.Err != nil || dg.State != "Stable" || len(dg.Members) != len(live) {
		return 0, nil, fmt.Sprintf("state %s with %d members (err %v)", dg.State, len(dg.Members), dg.Err)
	}
	byMemberID := make(map[string][]int32)
	seen := make(map[int32]string)
	for _, m := range dg.Members {
		ca, ok := m.Assigned.AsConsumer()
		if !ok {
			return 0, nil, "assignment is not a consumer assignment"
		}
		for _, at := range ca.Topics {
			for _, p := range at.Partitions {
				if other, dup := seen[p]; dup {
					return 0, nil, fmt.Sprintf("coordinator assigns partition %d to %s and %s", p, other, m.MemberID)
				}
				seen[p] = m.MemberID
				byMemberID[m.MemberID] = append(byMemberID[m.MemberID], p)
			}
		}
	}
	if len(seen) != int(partitions) {
		return 0, nil, fmt.Sprintf("coordinator assigns %d of %d partitions", len(seen), partitions)
	}
	owned := own.byMember()
	var gen int32 = -1
	for _, c := range live {
		id, g := c.cl.GroupMetadata()
		if gen != -1 && g != gen {
			return 0, nil, fmt.Sprintf("consumers at generations %d and %d", gen, g)
		}
		gen = g
		want := byMemberID[id]
		slices.Sort(want)
		if !slices.Equal(owned[c.name], want) {
			return 0, nil, fmt.Sprintf("%s owns %v, coordinator assigned %v", c.name, owned[c.name], want)
		}
	}
	if len(owned) > len(live) {
		return 0, nil, fmt.Sprintf("owners %v, want only the live consumers", owned)
	}
	return gen, owned, ""
}

// grpBalanced checks every live consumer has a fair share.
func grpBalanced(t *testing.T, owned map[string][]int32, partitions, members int) {
	t.Helper()
	lo, hi := partitions/members, (partitions+members-1)/members
	for m, ps := range owned {
		if len(ps) < lo || len(ps) > hi {
			t.Fatalf("%s owns %v: not a fair share of %d partitions among %d members (%v)", m, ps, partitions, members, owned)
		}
	}
}

func TestGroupRebalancesWithEveryBalancer(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		bal  kgo.GroupBalancer
	}{
		{"range", kgo.RangeBalancer()},
		{"roundrobin", kgo.RoundRobinBalancer()},
		{"sticky", kgo.StickyBalancer()},
		{"cooperative-sticky", kgo.CooperativeStickyBalancer()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := startServer(t, testOptions{})
			const partitions = 6
			s.grpTopic(t, "events", partitions)
			own := s.newOwnership("g")
			consumer := func(name string) *grpConsumer {
				return s.grpConsume(t, name, "g", "events", own, nil, kgo.Balancers(tc.bal))
			}

			c1, c2, c3 := consumer("c1"), consumer("c2"), consumer("c3")
			gen, owned := s.grpSettle(t, "g", partitions, own, c1, c2, c3)
			grpBalanced(t, owned, partitions, 3)

			// A member joins.
			c4 := consumer("c4")
			gen2, owned := s.grpSettle(t, "g", partitions, own, c1, c2, c3, c4)
			grpBalanced(t, owned, partitions, 4)
			if gen2 <= gen {
				t.Fatalf("generation %d after a join, was %d", gen2, gen)
			}

			// A member leaves (LeaveGroup).
			own.leave("c4")
			c4.cl.Close()
			gen3, owned := s.grpSettle(t, "g", partitions, own, c1, c2, c3)
			grpBalanced(t, owned, partitions, 3)
			if gen3 <= gen2 {
				t.Fatalf("generation %d after a leave, was %d", gen3, gen2)
			}

			// A member crashes: it stops heartbeating and its session
			// expires.
			own.leave("c3")
			crashed := time.Now()
			c3.dial.crash()
			gen4, owned := s.grpSettle(t, "g", partitions, own, c1, c2)
			grpBalanced(t, owned, partitions, 2)
			if gen4 <= gen3 {
				t.Fatalf("generation %d after a crash, was %d", gen4, gen3)
			}
			if d := time.Since(crashed); d < 2*time.Second {
				t.Fatalf("the crashed member was replaced after %v, before its 3s session could expire", d)
			}
		})
	}
}

func TestGroupStaticMemberRestartsWithoutRebalance(t *testing.T) {
	t.Parallel()
	s := startServer(t, testOptions{})
	const partitions = 6
	s.grpTopic(t, "events", partitions)
	own := s.newOwnership("static")
	revokes := make(map[string]int)
	var mu sync.Mutex
	consumer := func(name string) *grpConsumer {
		return s.grpConsume(t, name, "static", "events", own, nil,
			kgo.InstanceID("instance-"+name),
			kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
				mu.Lock()
				revokes[name]++
				mu.Unlock()
				own.revoked(name, m["events"])
			}),
		)
	}
	consumers := map[string]*grpConsumer{"c1": consumer("c1"), "c2": consumer("c2"), "c3": consumer("c3")}
	gen, owned := s.grpSettle(t, "static", partitions, own, consumers["c1"], consumers["c2"], consumers["c3"])
	// Restart a follower: a restarted leader (franz-go) recomputes the
	// plan and asks for a rebalance if it differs, which is the client's
	// choice, not the coordinator's.
	d, _ := s.srv.groups.Describe(t.Context(), "static")
	var restart string
	var others []*grpConsumer
	for _, name := range []string{"c1", "c2", "c3"} {
		if id, _ := consumers[name].cl.GroupMetadata(); id != d.Leader && restart == "" {
			restart = name
		} else {
			others = append(others, consumers[name])
		}
	}
	before := owned[restart]
	mu.Lock()
	clear(revokes)
	mu.Unlock()

	// The follower stops without leaving (static members do not send
	// LeaveGroup) and a new process with its instance id takes its place.
	own.leave(restart)
	consumers[restart].cl.Close()
	own.mu.Lock()
	delete(own.gone, restart)
	own.mu.Unlock()
	restarted := consumer(restart)
	gen2, owned := s.grpSettle(t, "static", partitions, own, append(others, restarted)...)
	if gen2 != gen {
		t.Fatalf("generation %d after a static restart, was %d: the group rebalanced", gen2, gen)
	}
	if !slices.Equal(owned[restart], before) {
		t.Fatalf("restarted static member owns %v, had %v", owned[restart], before)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, c := range others {
		if revokes[c.name] != 0 {
			t.Fatalf("other members had partitions revoked: %v", revokes)
		}
	}
	adm := s.admin()
	described, err := adm.DescribeGroups(grpCtx(t), "static")
	if err != nil {
		t.Fatal(err)
	}
	var instances []string
	for _, m := range described["static"].Members {
		if m.InstanceID == nil || !strings.HasPrefix(m.MemberID, *m.InstanceID+"-") {
			t.Fatalf("static member %s with instance %v", m.MemberID, m.InstanceID)
		}
		instances = append(instances, *m.InstanceID)
	}
	sort.Strings(instances)
	if !slices.Equal(instances, []string{"instance-c1", "instance-c2", "instance-c3"}) {
		t.Fatalf("instances %v", instances)
	}
}

func TestGroupConsumesEverythingAndCommits(t *testing.T) {
	t.Parallel()
	s := startServer(t, testOptions{})
	const partitions, perPartition = 6, 50
	s.grpTopic(t, "orders", partitions)
	ctx := grpCtx(t)
	prod := s.client(kgo.RecordPartitioner(kgo.ManualPartitioner()))
	var recs []*kgo.Record
	for p := range int32(partitions) {
		for i := range perPartition {
			recs = append(recs, &kgo.Record{Topic: "orders", Partition: p, Value: fmt.Appendf(nil, "%d-%d", p, i)})
		}
	}
	if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	got := make(map[string]bool)
	seen := func(r *kgo.Record) {
		mu.Lock()
		defer mu.Unlock()
		got[string(r.Value)] = true
	}
	own := s.newOwnership("orders-app")
	for i := range 3 {
		s.grpConsume(t, fmt.Sprint("c", i), "orders-app", "orders", own, seen,
			kgo.Balancers(kgo.CooperativeStickyBalancer()), kgo.AutoCommitInterval(100*time.Millisecond))
	}
	adm := s.admin()
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		done := 0
		offs, err := adm.FetchOffsets(ctx, "orders-app")
		if err == nil {
			offs.Each(func(o kadm.OffsetResponse) {
				if o.Topic == "orders" && o.At == perPartition {
					done++
				}
			})
		}
		if n == len(recs) && done == partitions {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("consumed %d of %d records; %d of %d partitions committed to the end (%v)", n, len(recs), done, partitions, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	own.check(t)
	for _, r := range recs {
		if !got[string(r.Value)] {
			t.Fatalf("record %s never consumed", r.Value)
		}
	}
}
