package group

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/internal/testutil"
	"github.com/twmb/franz-go/pkg/kerr"
)

// fakeClock runs timers when the test advances it, synchronously in the
// test's goroutine.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Duration
	timers []*fakeTimer
}

type fakeTimer struct {
	c    *fakeClock
	at   time.Duration
	f    func()
	done bool
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := !t.done
	t.done = true
	return was
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, at: c.now + d, f: f}
	c.timers = append(c.timers, t)
	return t
}

// Advance moves time forward by d, firing due timers in order.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	target := c.now + d
	for {
		var next *fakeTimer
		for _, t := range c.timers {
			if !t.done && t.at <= target && (next == nil || t.at < next.at) {
				next = t
			}
		}
		if next == nil {
			break
		}
		next.done = true
		c.now = next.at
		c.mu.Unlock()
		next.f()
		c.mu.Lock()
	}
	c.now = target
	live := c.timers[:0]
	for _, t := range c.timers {
		if !t.done {
			live = append(live, t)
		}
	}
	c.timers = live
	c.mu.Unlock()
}

// pendingTimers counts armed timers (to check Close stops them all).
func (c *fakeClock) pendingTimers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, t := range c.timers {
		if !t.done {
			n++
		}
	}
	return n
}

type harness struct {
	t   *testing.T
	c   *Coordinator
	clk *fakeClock
}

func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	clk := &fakeClock{}
	cfg.Clock = clk
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	c := New(cfg)
	t.Cleanup(func() { _ = c.Close() })
	return &harness{t: t, c: c, clk: clk}
}

const (
	testSession   = 10 * time.Second
	testRebalance = 30 * time.Second
)

func consumerReq(group, client string, protocols ...string) JoinRequest {
	if len(protocols) == 0 {
		protocols = []string{"range"}
	}
	req := JoinRequest{
		Group: group, ClientID: client, ClientHost: "/127.0.0.1",
		SessionTimeout: testSession, RebalanceTimeout: testRebalance,
		ProtocolType: "consumer", RequireKnownMemberID: true,
	}
	for _, p := range protocols {
		req.Protocols = append(req.Protocols, Protocol{Name: p, Metadata: []byte(client + "/" + p)})
	}
	return req
}

// memberID runs the KIP-394 round and returns the id to join with.
func (h *harness) memberID(req JoinRequest) string {
	h.t.Helper()
	req.MemberID = ""
	res := h.c.Join(context.Background(), req)
	if !errors.Is(res.Err, kerr.MemberIDRequired) || res.MemberID == "" {
		h.t.Fatalf("first join: %+v, want MEMBER_ID_REQUIRED with an id", res)
	}
	return res.MemberID
}

func (h *harness) joinAsync(req JoinRequest) <-chan JoinResult {
	ch := make(chan JoinResult, 1)
	go func() { ch <- h.c.Join(context.Background(), req) }()
	return ch
}

func (h *harness) syncAsync(req SyncRequest) <-chan SyncResult {
	ch := make(chan SyncResult, 1)
	go func() { ch <- h.c.Sync(context.Background(), req) }()
	return ch
}

func recv[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatal("no answer within 5s")
	}
	var zero T
	return zero
}

// parkedJoin reports whether a member waits at the join barrier.
func (h *harness) parkedJoin(group, id string) bool {
	h.c.mu.Lock()
	defer h.c.mu.Unlock()
	g := h.c.groups[group]
	return g != nil && g.members[id] != nil && g.members[id].join != nil
}

// parkedInstance reports whether a static member waits at the barrier.
func (h *harness) parkedInstance(group, instance string) bool {
	h.c.mu.Lock()
	defer h.c.mu.Unlock()
	g := h.c.groups[group]
	if g == nil {
		return false
	}
	m := g.members[g.static[instance]]
	return m != nil && m.join != nil
}

func (h *harness) parkedSync(group, id string) bool {
	h.c.mu.Lock()
	defer h.c.mu.Unlock()
	g := h.c.groups[group]
	return g != nil && g.members[id] != nil && g.members[id].sync != nil
}

func (h *harness) state(group string) State {
	d, ok := h.c.Describe(h.t.Context(), group)
	if !ok {
		return Dead
	}
	return d.State
}

// form joins dynamic members into one generation: every member first gets
// its id, so the barrier waits for all of them. It returns the results in
// the order of reqs.
func (h *harness) form(reqs ...JoinRequest) []JoinResult {
	h.t.Helper()
	for i := range reqs {
		reqs[i].MemberID = h.memberID(reqs[i])
	}
	chs := make([]<-chan JoinResult, len(reqs))
	for i := range reqs {
		chs[i] = h.joinAsync(reqs[i])
		if i < len(reqs)-1 {
			// One at a time, so join order (and leadership) is reqs'.
			testutil.WaitFor(h.t, "join to park", func() bool { return h.parkedJoin(reqs[i].Group, reqs[i].MemberID) })
		}
	}
	out := make([]JoinResult, len(reqs))
	for i, ch := range chs {
		out[i] = recv(h.t, ch)
		if out[i].Err != nil {
			h.t.Fatalf("join %s: %v", reqs[i].ClientID, out[i].Err)
		}
	}
	return out
}

// stabilize has the leader assign each member its own id as bytes and
// every member sync; it returns the assignments received.
func (h *harness) stabilize(group string, res []JoinResult) map[string][]byte {
	h.t.Helper()
	var leader JoinResult
	for _, r := range res {
		if r.MemberID == r.LeaderID {
			leader = r
		}
	}
	if leader.MemberID == "" {
		h.t.Fatalf("no leader among %+v", res)
	}
	plan := make(map[string][]byte)
	for _, m := range leader.Members {
		plan[m.MemberID] = []byte("assigned:" + m.MemberID)
	}
	var chs []<-chan SyncResult
	var ids []string
	for _, r := range res {
		if r.MemberID == leader.MemberID {
			continue
		}
		chs = append(chs, h.syncAsync(SyncRequest{Group: group, MemberID: r.MemberID, Generation: r.Generation}))
		ids = append(ids, r.MemberID)
	}
	for _, id := range ids {
		testutil.WaitFor(h.t, "follower sync to park", func() bool { return h.parkedSync(group, id) })
	}
	got := make(map[string][]byte)
	lr := h.c.Sync(context.Background(), SyncRequest{Group: group, MemberID: leader.MemberID, Generation: leader.Generation, Assignments: plan})
	if lr.Err != nil {
		h.t.Fatalf("leader sync: %v", lr.Err)
	}
	got[leader.MemberID] = lr.Assignment
	for i, ch := range chs {
		r := recv(h.t, ch)
		if r.Err != nil {
			h.t.Fatalf("follower sync: %v", r.Err)
		}
		got[ids[i]] = r.Assignment
	}
	if s := h.state(group); s != Stable {
		h.t.Fatalf("state %v after sync, want Stable", s)
	}
	return got
}

func memberIDs(d Description) []string {
	var ids []string
	for _, m := range d.Members {
		ids = append(ids, m.MemberID)
	}
	sort.Strings(ids)
	return ids
}

func wantErr(t *testing.T, what string, got, want error) {
	t.Helper()
	if want == nil && got != nil || want != nil && !errors.Is(got, want) {
		t.Fatalf("%s: error %v, want %v", what, got, want)
	}
}

// validateCommit is ValidateCommit's verdict.
func (h *harness) validateCommit(group string, gen int32, member, instance string) error {
	_, err := h.c.ValidateCommit(h.t.Context(), group, gen, member, instance)
	return err
}
