package group

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/internal/testutil"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestSingleMemberJoinSyncHeartbeat(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	req := consumerReq("g", "client")
	id := h.memberID(req)
	if !strings.HasPrefix(id, "client-") {
		t.Fatalf("member id %q, want client-<uuid>", id)
	}
	if s := h.state("g"); s != Empty {
		t.Fatalf("state %v with only a pending member id, want Empty", s)
	}
	req.MemberID = id
	res := h.c.Join(context.Background(), req)
	if res.Err != nil || res.Generation != 1 || res.LeaderID != id || res.MemberID != id || res.Protocol != "range" || res.ProtocolType != "consumer" {
		t.Fatalf("join: %+v", res)
	}
	if len(res.Members) != 1 || res.Members[0].MemberID != id || string(res.Members[0].Metadata) != "client/range" {
		t.Fatalf("leader's members: %+v", res.Members)
	}
	if s := h.state("g"); s != CompletingRebalance {
		t.Fatalf("state %v, want CompletingRebalance", s)
	}
	wantErr(t, "heartbeat before sync", h.c.Heartbeat(t.Context(), HeartbeatRequest{Group: "g", MemberID: id, Generation: 1}), nil)
	sr := h.c.Sync(context.Background(), SyncRequest{Group: "g", MemberID: id, Generation: 1, Assignments: map[string][]byte{id: []byte("a")}})
	if sr.Err != nil || string(sr.Assignment) != "a" || sr.Protocol != "range" || sr.ProtocolType != "consumer" {
		t.Fatalf("sync: %+v", sr)
	}
	if s := h.state("g"); s != Stable {
		t.Fatalf("state %v, want Stable", s)
	}
	wantErr(t, "heartbeat", h.c.Heartbeat(t.Context(), HeartbeatRequest{Group: "g", MemberID: id, Generation: 1}), nil)
	wantErr(t, "heartbeat old generation", h.c.Heartbeat(t.Context(), HeartbeatRequest{Group: "g", MemberID: id, Generation: 0}), kerr.IllegalGeneration)
	wantErr(t, "heartbeat unknown member", h.c.Heartbeat(t.Context(), HeartbeatRequest{Group: "g", MemberID: "nobody", Generation: 1}), kerr.UnknownMemberID)
	wantErr(t, "heartbeat unknown group", h.c.Heartbeat(t.Context(), HeartbeatRequest{Group: "other", MemberID: id, Generation: 1}), kerr.UnknownMemberID)
	wantErr(t, "heartbeat empty group id", h.c.Heartbeat(t.Context(), HeartbeatRequest{MemberID: id, Generation: 1}), kerr.InvalidGroupID)
	// A follower-style rejoin of the only member, who leads: rebalance.
	ch := h.joinAsync(req)
	if r := recv(t, ch); r.Err != nil || r.Generation != 2 {
		t.Fatalf("leader rejoin: %+v", r)
	}
}

func TestJoinValidation(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{MaxGroupSize: 1})
	ctx := context.Background()
	req := consumerReq("", "c")
	wantErr(t, "empty group id", h.c.Join(ctx, req).Err, kerr.InvalidGroupID)
	req = consumerReq("g", "c")
	req.SessionTimeout = 10 * time.Millisecond
	wantErr(t, "tiny session timeout", h.c.Join(ctx, req).Err, kerr.InvalidSessionTimeout)
	req = consumerReq("g", "c")
	req.MemberID = "made-up"
	wantErr(t, "unknown member of unknown group", h.c.Join(ctx, req).Err, kerr.UnknownMemberID)
	req = consumerReq("g", "c")
	req.ProtocolType = ""
	wantErr(t, "no protocol type", h.c.Join(ctx, req).Err, kerr.InconsistentGroupProtocol)
	req = consumerReq("g", "c")
	req.Protocols = nil
	wantErr(t, "no protocols", h.c.Join(ctx, req).Err, kerr.InconsistentGroupProtocol)
	if _, ok := h.c.Describe(t.Context(), "g"); ok {
		t.Fatal("a refused join left a group behind")
	}

	h.stabilize("g", h.form(consumerReq("g", "a")))
	other := consumerReq("g", "b", "sticky")
	wantErr(t, "protocol no member supports", h.c.Join(ctx, other).Err, kerr.InconsistentGroupProtocol)
	other = consumerReq("g", "b")
	other.ProtocolType = "connect"
	wantErr(t, "other protocol type", h.c.Join(ctx, other).Err, kerr.InconsistentGroupProtocol)
	wantErr(t, "group full", h.c.Join(ctx, consumerReq("g", "b")).Err, kerr.GroupMaxSizeReached)
}

func TestRebalanceWhenMemberJoins(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	ctx := context.Background()
	first := h.form(consumerReq("g", "a"))
	h.stabilize("g", first)
	a := first[0].MemberID

	breq := consumerReq("g", "b")
	breq.MemberID = h.memberID(breq)
	if s := h.state("g"); s != Stable {
		t.Fatalf("a member id alone rebalanced the group: %v", s)
	}
	bch := h.joinAsync(breq)
	testutil.WaitFor(t, "b parked at the barrier", func() bool { return h.parkedJoin("g", breq.MemberID) })
	if s := h.state("g"); s != PreparingRebalance {
		t.Fatalf("state %v, want PreparingRebalance", s)
	}
	wantErr(t, "a's heartbeat", h.c.Heartbeat(t.Context(), HeartbeatRequest{Group: "g", MemberID: a, Generation: 1}), kerr.RebalanceInProgress)
	wantErr(t, "a's sync", h.c.Sync(ctx, SyncRequest{Group: "g", MemberID: a, Generation: 1}).Err, kerr.RebalanceInProgress)
	// Members may commit what they consumed before rejoining.
	wantErr(t, "a's commit while rebalancing", h.validateCommit("g", 1, a, ""), nil)

	areq := consumerReq("g", "a")
	areq.MemberID = a
	ar := recv(t, h.joinAsync(areq))
	br := recv(t, bch)
	if ar.Err != nil || br.Err != nil || ar.Generation != 2 || br.Generation != 2 {
		t.Fatalf("joins: %+v %+v", ar, br)
	}
	if ar.LeaderID != a || br.LeaderID != a {
		t.Fatalf("leader %q/%q, want the first member %q", ar.LeaderID, br.LeaderID, a)
	}
	if len(ar.Members) != 2 || len(br.Members) != 0 {
		t.Fatalf("members: leader got %d, follower got %d", len(ar.Members), len(br.Members))
	}
	wantErr(t, "commit before the assignment", h.validateCommit("g", 2, a, ""), kerr.RebalanceInProgress)
	wantErr(t, "sync of an old generation", h.c.Sync(ctx, SyncRequest{Group: "g", MemberID: breq.MemberID, Generation: 1}).Err, kerr.IllegalGeneration)
	got := h.stabilize("g", []JoinResult{ar, br})
	if string(got[breq.MemberID]) != "assigned:"+breq.MemberID {
		t.Fatalf("b got %q", got[breq.MemberID])
	}
	wantErr(t, "commit when stable", h.validateCommit("g", 2, a, ""), nil)
}

func TestJoinBarrierRemovesMembersThatDoNotRejoin(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	a, b := consumerReq("g", "a"), consumerReq("g", "b")
	a.SessionTimeout, b.SessionTimeout = time.Minute, time.Minute
	a.RebalanceTimeout, b.RebalanceTimeout = 5*time.Second, 5*time.Second
	res := h.form(a, b)
	h.stabilize("g", res)

	c := consumerReq("g", "c")
	c.SessionTimeout, c.RebalanceTimeout = time.Minute, 5*time.Second
	c.MemberID = h.memberID(c)
	cch := h.joinAsync(c)
	testutil.WaitFor(t, "c parked", func() bool { return h.parkedJoin("g", c.MemberID) })
	a.MemberID = res[0].MemberID
	ach := h.joinAsync(a)
	testutil.WaitFor(t, "a parked", func() bool { return h.parkedJoin("g", a.MemberID) })
	h.clk.Advance(4 * time.Second)
	if s := h.state("g"); s != PreparingRebalance {
		t.Fatalf("barrier closed early: %v", s)
	}
	h.clk.Advance(time.Second)
	ar, cr := recv(t, ach), recv(t, cch)
	if ar.Err != nil || cr.Err != nil || ar.Generation != 2 || len(ar.Members)+len(cr.Members) != 2 {
		t.Fatalf("joins: %+v %+v", ar, cr)
	}
	d, _ := h.c.Describe(t.Context(), "g")
	if !slices.Equal(memberIDs(d), sortedStrings(a.MemberID, c.MemberID)) {
		t.Fatalf("members %v, want a and c", memberIDs(d))
	}
	wantErr(t, "b after removal", h.c.Heartbeat(t.Context(), HeartbeatRequest{Group: "g", MemberID: res[1].MemberID, Generation: 2}), kerr.UnknownMemberID)
}

func sortedStrings(s ...string) []string {
	slices.Sort(s)
	return s
}

func TestSessionExpiryRebalances(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	res := h.form(consumerReq("g", "a"), consumerReq("g", "b"))
	h.stabilize("g", res)
	a, b := res[0].MemberID, res[1].MemberID
	for range 3 {
		h.clk.Advance(testSession - time.Second)
		wantErr(t, "a heartbeat", h.c.Heartbeat(t.Context(), HeartbeatRequest{Group: "g", MemberID: a, Generation: 1}), nil)
		wantErr(t, "b heartbeat", h.c.Heartbeat(t.Context(), HeartbeatRequest{Group: "g", MemberID: b, Generation: 1}), nil)
	}
	h.clk.Advance(testSession - time.Second)
	wantErr(t, "a heartbeat", h.c.Heartbeat(t.Context(), HeartbeatRequest{Group: "g", MemberID: a, Generation: 1}), nil)
	h.clk.Advance(2 * time.Second) // b is silent past its session
	if s := h.state("g"); s != PreparingRebalance {
		t.Fatalf("state %v after b's session expired, want PreparingRebalance", s)
	}
	wantErr(t, "b after expiry", h.c.Heartbeat(t.Context(), HeartbeatRequest{Group: "g", MemberID: b, Generation: 1}), kerr.UnknownMemberID)
	wantErr(t, "a during the rebalance", h.c.Heartbeat(t.Context(), HeartbeatRequest{Group: "g", MemberID: a, Generation: 1}), kerr.RebalanceInProgress)
	areq := consumerReq("g", "a")
	areq.MemberID = a
	r := recv(t, h.joinAsync(areq))
	if r.Err != nil || r.Generation != 2 || len(r.Members) != 1 {
		t.Fatalf("rejoin: %+v", r)
	}
}

func TestLastMemberLeavingEmptiesGroup(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	res := h.form(consumerReq("g", "a"), consumerReq("g", "b"), consumerReq("g", "c"))
	h.stabilize("g", res)
	a, b, c := res[0].MemberID, res[1].MemberID, res[2].MemberID

	errs, err := h.c.Leave(t.Context(), "g", []LeaveMember{{MemberID: b}, {MemberID: "ghost"}})
	if err != nil || errs[0] != nil || !errorsIs(errs[1], kerr.UnknownMemberID) {
		t.Fatalf("leave: %v %v", errs, err)
	}
	if s := h.state("g"); s != PreparingRebalance {
		t.Fatalf("state %v after a leave, want PreparingRebalance", s)
	}
	errs, err = h.c.Leave(t.Context(), "g", []LeaveMember{{MemberID: a}, {MemberID: c}})
	if err != nil || errs[0] != nil || errs[1] != nil {
		t.Fatalf("leave: %v %v", errs, err)
	}
	if _, ok := h.c.Describe(t.Context(), "g"); ok {
		t.Fatal("an empty group stayed in memory")
	}
	errs, _ = h.c.Leave(t.Context(), "g", []LeaveMember{{MemberID: a}})
	wantErr(t, "leave of a dropped group", errs[0], kerr.UnknownMemberID)
	_, err = h.c.Leave(t.Context(), "", []LeaveMember{{MemberID: a}})
	wantErr(t, "leave with empty group id", err, kerr.InvalidGroupID)
	wantErr(t, "simple commit to the emptied group", h.validateCommit("g", -1, "", ""), nil)
	wantErr(t, "old member's commit", h.validateCommit("g", 1, a, ""), kerr.GroupIDNotFound)
	if h.clk.pendingTimers() != 0 {
		t.Fatalf("%d timers armed for a dropped group", h.clk.pendingTimers())
	}
}

func errorsIs(err, target error) bool { return err != nil && err.Error() == target.Error() }

func TestProtocolSelection(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		members [][]string
		want    string
	}{
		{"common first choice", [][]string{{"cooperative-sticky", "range"}, {"cooperative-sticky", "range"}}, "cooperative-sticky"},
		{"only common protocol", [][]string{{"roundrobin", "range"}, {"range", "roundrobin"}, {"range"}}, "range"},
		{"most votes", [][]string{{"roundrobin", "range"}, {"roundrobin", "range"}, {"range", "roundrobin"}}, "roundrobin"},
		{"tie goes to the leader's order", [][]string{{"sticky", "range"}, {"range", "sticky"}}, "sticky"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, Config{})
			var reqs []JoinRequest
			for i, ps := range tc.members {
				reqs = append(reqs, consumerReq("g", string(rune('a'+i)), ps...))
			}
			res := h.form(reqs...)
			for _, r := range res {
				if r.Protocol != tc.want {
					t.Fatalf("protocol %q, want %q", r.Protocol, tc.want)
				}
			}
			for _, r := range res {
				if r.MemberID == r.LeaderID {
					for _, m := range r.Members {
						if !strings.HasSuffix(string(m.Metadata), "/"+tc.want) {
							t.Fatalf("leader got metadata %q, not the selected protocol's", m.Metadata)
						}
					}
				}
			}
		})
	}
}

func TestStaticMemberRejoinsWithoutRebalance(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	ctx := context.Background()
	static := func(client, instance string) JoinRequest {
		r := consumerReq("g", client)
		r.InstanceID = instance
		return r
	}
	// i1 joins alone, then i2 joins and i1 rejoins: generation 2.
	r1 := h.c.Join(ctx, static("c1", "i1"))
	if r1.Err != nil || !strings.HasPrefix(r1.MemberID, "i1-") {
		t.Fatalf("static join: %+v (static members skip MEMBER_ID_REQUIRED)", r1)
	}
	h.stabilize("g", []JoinResult{r1})
	ch2 := h.joinAsync(static("c2", "i2"))
	testutil.WaitFor(t, "rebalance", func() bool { return h.state("g") == PreparingRebalance })
	re1 := static("c1", "i1")
	re1.MemberID = r1.MemberID
	r1 = recv(t, h.joinAsync(re1))
	r2 := recv(t, ch2)
	assigned := h.stabilize("g", []JoinResult{r1, r2})

	// i2 restarts: a new member id, same instance. No rebalance.
	again := static("c2", "i2")
	rr := h.c.Join(ctx, again)
	if rr.Err != nil || rr.Generation != 2 || rr.MemberID == r2.MemberID || !strings.HasPrefix(rr.MemberID, "i2-") || rr.LeaderID != r1.MemberID || len(rr.Members) != 0 {
		t.Fatalf("static rejoin: %+v", rr)
	}
	if s := h.state("g"); s != Stable {
		t.Fatalf("state %v after a static rejoin, want Stable", s)
	}
	sr := h.c.Sync(ctx, SyncRequest{Group: "g", MemberID: rr.MemberID, InstanceID: "i2", Generation: 2})
	if sr.Err != nil || string(sr.Assignment) != string(assigned[r2.MemberID]) {
		t.Fatalf("sync after static rejoin: %+v, want the old assignment %q", sr, assigned[r2.MemberID])
	}
	wantErr(t, "old member id", h.c.Heartbeat(t.Context(), HeartbeatRequest{Group: "g", MemberID: r2.MemberID, InstanceID: "i2", Generation: 2}), kerr.FencedInstanceID)
	wantErr(t, "old member id commit", h.validateCommit("g", 2, r2.MemberID, "i2"), kerr.FencedInstanceID)
	wantErr(t, "new member id", h.c.Heartbeat(t.Context(), HeartbeatRequest{Group: "g", MemberID: rr.MemberID, InstanceID: "i2", Generation: 2}), nil)

	// The leader restarts: before v9 it is told the old leader id (so it
	// does not assign); v9+ (KIP-814) tells it it leads, with
	// SkipAssignment.
	lr := h.c.Join(ctx, static("c1", "i1"))
	if lr.Err != nil || lr.LeaderID != r1.MemberID || lr.SkipAssignment || len(lr.Members) != 0 {
		t.Fatalf("static leader rejoin v8: %+v", lr)
	}
	v9 := static("c1", "i1")
	v9.SkipAssignmentOK = true
	lr9 := h.c.Join(ctx, v9)
	if lr9.Err != nil || lr9.LeaderID != lr9.MemberID || !lr9.SkipAssignment || len(lr9.Members) != 2 || lr9.Generation != 2 {
		t.Fatalf("static leader rejoin v9: %+v", lr9)
	}
	if s := h.state("g"); s != Stable {
		t.Fatalf("state %v, want Stable", s)
	}

	// Same protocol name, other metadata (a new subscription): the choice
	// does not change, so no rebalance (as in Kafka).
	changed := static("c2", "i2")
	changed.Protocols = []Protocol{{Name: "range", Metadata: []byte("other")}}
	if r := h.c.Join(ctx, changed); r.Err != nil || r.Generation != 2 {
		t.Fatalf("rejoin with the same protocol choice: %+v", r)
	}
}

func TestStaticMemberChangingProtocolChoiceRebalances(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{InitialRebalanceDelay: time.Second})
	var chs []<-chan JoinResult
	for i, ps := range [][]string{{"range", "roundrobin"}, {"roundrobin", "range"}, {"roundrobin", "range"}} {
		r := consumerReq("g", fmt.Sprint("c", i), ps...)
		r.InstanceID = fmt.Sprint("i", i)
		chs = append(chs, h.joinAsync(r))
		testutil.WaitFor(t, "static member parked", func() bool { return h.parkedInstance("g", r.InstanceID) })
	}
	h.clk.Advance(time.Second)
	h.clk.Advance(time.Second) // the delay was extended once
	var res []JoinResult
	for _, ch := range chs {
		r := recv(t, ch)
		if r.Err != nil || r.Protocol != "roundrobin" {
			t.Fatalf("join: %+v, want roundrobin by 2 votes to 1", r)
		}
		res = append(res, r)
	}
	h.stabilize("g", res)
	restarted := consumerReq("g", "c2", "range", "roundrobin")
	restarted.InstanceID = "i2"
	h.joinAsync(restarted)
	testutil.WaitFor(t, "restarted member parked", func() bool { return h.parkedInstance("g", "i2") })
	if s := h.state("g"); s != PreparingRebalance {
		t.Fatalf("state %v, want a rebalance: range now wins 2 votes to 1", s)
	}
}

func TestStaticMemberNotRejoiningStaysUntilSessionExpires(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	ctx := context.Background()
	s1 := consumerReq("g", "c1")
	s1.InstanceID, s1.SessionTimeout, s1.RebalanceTimeout = "i1", time.Minute, 5*time.Second
	r1 := h.c.Join(ctx, s1)
	h.stabilize("g", []JoinResult{r1})
	d := consumerReq("g", "d")
	d.SessionTimeout, d.RebalanceTimeout = time.Minute, 5*time.Second
	d.MemberID = h.memberID(d)
	dch := h.joinAsync(d)
	testutil.WaitFor(t, "d parked", func() bool { return h.parkedJoin("g", d.MemberID) })
	h.clk.Advance(5 * time.Second) // i1 does not rejoin: it stays, d leads
	dr := recv(t, dch)
	if dr.Err != nil || dr.LeaderID != d.MemberID || len(dr.Members) != 2 {
		t.Fatalf("join: %+v (the static member should stay in the generation)", dr)
	}
	h.clk.Advance(time.Minute) // i1's session ends; d's sync never came either
	desc, ok := h.c.Describe(t.Context(), "g")
	if ok && slices.Contains(memberIDs(desc), r1.MemberID) {
		t.Fatalf("static member %s outlived its session: %+v", r1.MemberID, desc)
	}
}

func TestPendingSyncTimeout(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	a, b := consumerReq("g", "a"), consumerReq("g", "b")
	a.SessionTimeout, b.SessionTimeout = time.Minute, time.Minute
	a.RebalanceTimeout, b.RebalanceTimeout = 5*time.Second, 5*time.Second
	res := h.form(a, b)
	leader, follower := res[0], res[1]
	fch := h.syncAsync(SyncRequest{Group: "g", MemberID: follower.MemberID, Generation: follower.Generation})
	testutil.WaitFor(t, "follower parked", func() bool { return h.parkedSync("g", follower.MemberID) })
	h.clk.Advance(5 * time.Second) // the leader never syncs
	wantErr(t, "follower's sync", recv(t, fch).Err, kerr.RebalanceInProgress)
	d, _ := h.c.Describe(t.Context(), "g")
	if d.State != PreparingRebalance || len(d.Members) != 1 || d.Members[0].MemberID != follower.MemberID {
		t.Fatalf("after the sync timeout: %+v", d)
	}
	wantErr(t, "removed leader", h.c.Heartbeat(t.Context(), HeartbeatRequest{Group: "g", MemberID: leader.MemberID, Generation: 1}), kerr.UnknownMemberID)
}

func TestMemberIDRequiredExpires(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	req := consumerReq("g", "a")
	req.MemberID = h.memberID(req)
	h.clk.Advance(testSession)
	if _, ok := h.c.Describe(t.Context(), "g"); ok {
		t.Fatal("group with only an expired member id is still there")
	}
	wantErr(t, "join with the expired id", h.c.Join(context.Background(), req).Err, kerr.UnknownMemberID)

	// Join v0-3 clients get no member id round.
	old := consumerReq("g", "old")
	old.RequireKnownMemberID = false
	r := h.c.Join(context.Background(), old)
	if r.Err != nil || r.Generation != 1 || r.MemberID == "" {
		t.Fatalf("v3 join: %+v", r)
	}
}

func TestUnusedMemberIDHoldsBarrierUntilItExpires(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	a := consumerReq("g", "a")
	a.MemberID = h.memberID(a)
	b := consumerReq("g", "b")
	_ = h.memberID(b) // b never comes back
	ach := h.joinAsync(a)
	testutil.WaitFor(t, "a parked", func() bool { return h.parkedJoin("g", a.MemberID) })
	h.clk.Advance(testSession)
	r := recv(t, ach)
	if r.Err != nil || len(r.Members) != 1 {
		t.Fatalf("join: %+v", r)
	}
}

func TestInitialRebalanceDelay(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{InitialRebalanceDelay: 3 * time.Second})
	a := consumerReq("g", "a")
	a.MemberID = h.memberID(a)
	ach := h.joinAsync(a)
	testutil.WaitFor(t, "a parked", func() bool { return h.parkedJoin("g", a.MemberID) })
	h.clk.Advance(2 * time.Second)
	b := consumerReq("g", "b")
	b.MemberID = h.memberID(b)
	bch := h.joinAsync(b)
	testutil.WaitFor(t, "b parked", func() bool { return h.parkedJoin("g", b.MemberID) })
	h.clk.Advance(time.Second) // b arrived during the delay: extended
	if s := h.state("g"); s != PreparingRebalance {
		t.Fatalf("state %v, want the delay extended", s)
	}
	h.clk.Advance(3 * time.Second)
	ar, br := recv(t, ach), recv(t, bch)
	if ar.Err != nil || br.Err != nil || ar.Generation != 1 || br.Generation != 1 {
		t.Fatalf("joins: %+v %+v", ar, br)
	}
}

func TestValidateCommit(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	res := h.form(consumerReq("g", "a"))
	a := res[0].MemberID
	for _, tc := range []struct {
		name       string
		group      string
		gen        int32
		member     string
		instance   string
		want       error
		stabilized bool
	}{
		{"simple commit to unknown group", "other", -1, "", "", nil, false},
		{"member commit to unknown group", "other", 3, "m", "", kerr.GroupIDNotFound, false},
		{"simple commit to group with members", "g", -1, "", "", kerr.UnknownMemberID, false},
		{"before the assignment", "g", 1, a, "", kerr.RebalanceInProgress, false},
		{"empty group id", "", -1, "", "", kerr.InvalidGroupID, false},
		{"current member", "g", 1, a, "", nil, true},
		{"wrong generation", "g", 2, a, "", kerr.IllegalGeneration, true},
		{"unknown member", "g", 1, "ghost", "", kerr.UnknownMemberID, true},
		{"unknown instance", "g", 1, a, "i9", kerr.UnknownMemberID, true},
	} {
		if tc.stabilized && h.state("g") != Stable {
			h.stabilize("g", res)
		}
		wantErr(t, tc.name, h.validateCommit(tc.group, tc.gen, tc.member, tc.instance), tc.want)
	}
}

func TestDeleteAndDescribe(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	res := h.form(consumerReq("g", "a"), consumerReq("g", "b"))
	h.stabilize("g", res)
	d, ok := h.c.Describe(t.Context(), "g")
	if !ok || d.State != Stable || d.Protocol != "range" || d.ProtocolType != "consumer" || len(d.Members) != 2 || d.Members[0].ClientID != "a" || d.Members[0].ClientHost != "/127.0.0.1" {
		t.Fatalf("describe: %+v", d)
	}
	if string(d.Members[1].Assignment) != "assigned:"+res[1].MemberID || string(d.Members[1].Metadata) != "b/range" {
		t.Fatalf("member: %+v", d.Members[1])
	}
	if gs := h.c.Groups(); len(gs) != 1 || gs[0].Group != "g" {
		t.Fatalf("groups: %+v", gs)
	}
	found, err := h.c.Delete(t.Context(), "g")
	if !found {
		t.Fatal("not found")
	}
	wantErr(t, "delete with members", err, kerr.NonEmptyGroup)
	if found, err := h.c.Delete(t.Context(), "nope"); found || err != nil {
		t.Fatalf("delete unknown: %v %v", found, err)
	}
	// A group with only a pending member id is empty: deletable.
	_ = h.memberID(consumerReq("p", "x"))
	if found, err := h.c.Delete(t.Context(), "p"); !found || err != nil {
		t.Fatalf("delete of a group with a pending id: %v %v", found, err)
	}
}

func TestCloseAnswersWaitersAndStopsTimers(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	a := consumerReq("g", "a")
	a.MemberID = h.memberID(a)
	b := consumerReq("g", "b")
	_ = h.memberID(b)
	ach := h.joinAsync(a)
	testutil.WaitFor(t, "a parked", func() bool { return h.parkedJoin("g", a.MemberID) })
	_ = h.c.Close()
	wantErr(t, "parked join after Close", recv(t, ach).Err, kerr.NotCoordinator)
	if n := h.clk.pendingTimers(); n != 0 {
		t.Fatalf("%d timers armed after Close", n)
	}
	wantErr(t, "join after Close", h.c.Join(context.Background(), consumerReq("g", "c")).Err, kerr.NotCoordinator)
	_ = h.c.Close()
}

func TestJoinEndsWithContext(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	a := consumerReq("g", "a")
	a.MemberID = h.memberID(a)
	_ = h.memberID(consumerReq("g", "b")) // holds the barrier
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan JoinResult, 1)
	go func() { ch <- h.c.Join(ctx, a) }()
	testutil.WaitFor(t, "a parked", func() bool { return h.parkedJoin("g", a.MemberID) })
	cancel()
	wantErr(t, "join after cancel", recv(t, ch).Err, context.Canceled)
}

func TestDuplicateJoinAnswersTheEarlierOne(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	a := consumerReq("g", "a")
	a.MemberID = h.memberID(a)
	_ = h.memberID(consumerReq("g", "b")) // holds the barrier
	first := h.joinAsync(a)
	testutil.WaitFor(t, "a parked", func() bool { return h.parkedJoin("g", a.MemberID) })
	second := h.joinAsync(a)
	wantErr(t, "abandoned join", recv(t, first).Err, kerr.RebalanceInProgress)
	testutil.WaitFor(t, "a parked again", func() bool { return h.parkedJoin("g", a.MemberID) })
	h.clk.Advance(testSession) // b's id expires
	if r := recv(t, second); r.Err != nil || r.Generation != 1 {
		t.Fatalf("second join: %+v", r)
	}
}

func TestRejoinWithoutChanges(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	ctx := context.Background()
	a, b := consumerReq("g", "a"), consumerReq("g", "b")
	res := h.form(a, b)
	a.MemberID, b.MemberID = res[0].MemberID, res[1].MemberID

	// Before the assignment, a retried join (same protocols) is answered
	// again, the leader with the members.
	if r := h.c.Join(ctx, a); r.Err != nil || r.Generation != 1 || len(r.Members) != 2 {
		t.Fatalf("leader's retried join: %+v", r)
	}
	if r := h.c.Join(ctx, b); r.Err != nil || r.Generation != 1 || len(r.Members) != 0 {
		t.Fatalf("follower's retried join: %+v", r)
	}
	h.stabilize("g", res)
	// A follower rejoining unchanged does not rebalance.
	if r := h.c.Join(ctx, b); r.Err != nil || r.Generation != 1 || r.LeaderID != a.MemberID {
		t.Fatalf("follower's rejoin: %+v", r)
	}
	if s := h.state("g"); s != Stable {
		t.Fatalf("state %v after an unchanged rejoin", s)
	}
	// New metadata (a new subscription, owned partitions) rebalances.
	b.Protocols = []Protocol{{Name: "range", Metadata: []byte("new subscription")}}
	bch := h.joinAsync(b)
	testutil.WaitFor(t, "rebalance", func() bool { return h.parkedJoin("g", b.MemberID) })
	if s := h.state("g"); s != PreparingRebalance {
		t.Fatalf("state %v, want a rebalance", s)
	}
	ar, br := recv(t, h.joinAsync(a)), recv(t, bch)
	if ar.Err != nil || br.Err != nil || ar.Generation != 2 || string(ar.Members[1].Metadata) != "new subscription" {
		t.Fatalf("joins: %+v %+v", ar, br)
	}
	// A member rejoining with other protocols while the assignment is
	// pending restarts the rebalance; the waiting follower is told.
	fch := h.syncAsync(SyncRequest{Group: "g", MemberID: b.MemberID, Generation: 2})
	testutil.WaitFor(t, "b's sync parked", func() bool { return h.parkedSync("g", b.MemberID) })
	a.Protocols = []Protocol{{Name: "range", Metadata: []byte("again")}}
	h.joinAsync(a)
	testutil.WaitFor(t, "a parked", func() bool { return h.parkedJoin("g", a.MemberID) })
	wantErr(t, "follower's sync", recv(t, fch).Err, kerr.RebalanceInProgress)
	if s := h.state("g"); s != PreparingRebalance {
		t.Fatalf("state %v, want a rebalance", s)
	}
}

func TestParkedMembersOutliveTheirSession(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	a := consumerReq("g", "a")
	a.MemberID = h.memberID(a)
	b := consumerReq("g", "b")
	b.SessionTimeout = time.Minute
	_ = h.memberID(b) // holds the barrier until the rebalance timeout
	ach := h.joinAsync(a)
	testutil.WaitFor(t, "a parked", func() bool { return h.parkedJoin("g", a.MemberID) })
	h.clk.Advance(testRebalance) // three of a's sessions pass while it waits
	if r := recv(t, ach); r.Err != nil || r.Generation != 1 {
		t.Fatalf("join: %+v (a waiting member must not expire)", r)
	}
}

func TestLeaveVariants(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	ctx := context.Background()
	s1 := consumerReq("g", "c1")
	s1.InstanceID = "i1"
	r1 := h.c.Join(ctx, s1)
	h.stabilize("g", []JoinResult{r1})
	pending := h.memberID(consumerReq("g", "p"))
	errs, err := h.c.Leave(t.Context(), "g", []LeaveMember{
		{MemberID: pending},                   // an unused member id
		{MemberID: "stale", InstanceID: "i1"}, // fenced
		{InstanceID: "i9"},                    // unknown instance
		{InstanceID: "i1", Reason: "shutdown"},
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []error{nil, kerr.FencedInstanceID, kerr.UnknownMemberID, nil} {
		wantErr(t, fmt.Sprint("leave ", i), errs[i], want)
	}
	if _, ok := h.c.Describe(t.Context(), "g"); ok {
		t.Fatal("group still there after everyone left")
	}
}

func TestConsumerProtocolViews(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	meta := func(topics ...string) []byte {
		m := kmsg.NewConsumerMemberMetadata()
		m.Topics = topics
		return m.AppendTo(nil)
	}
	a, b := consumerReq("g", "a"), consumerReq("g", "b")
	a.Protocols = []Protocol{{Name: "range", Metadata: meta("t1")}}
	b.Protocols = []Protocol{{Name: "range", Metadata: meta("t1", "t2")}}
	res := h.form(a, b)

	d, _ := h.c.Describe(t.Context(), "g")
	topics, ok := SubscribedTopics(d)
	if !ok || !topics["t1"] || !topics["t2"] || len(topics) != 2 {
		t.Fatalf("subscribed: %v %v", topics, ok)
	}
	assign := kmsg.NewConsumerMemberAssignment()
	at := kmsg.NewConsumerMemberAssignmentTopic()
	at.Topic, at.Partitions = "t1", []int32{2, 0}
	assign.Topics = append(assign.Topics, at)
	plan := map[string][]byte{res[0].MemberID: assign.AppendTo(nil)}
	bch := h.syncAsync(SyncRequest{Group: "g", MemberID: res[1].MemberID, Generation: 1})
	testutil.WaitFor(t, "b parked", func() bool { return h.parkedSync("g", res[1].MemberID) })
	if r := h.c.Sync(context.Background(), SyncRequest{Group: "g", MemberID: res[0].MemberID, Generation: 1, Assignments: plan}); r.Err != nil {
		t.Fatal(r.Err)
	}
	recv(t, bch)
	gm, ok := h.c.GroupMembers(t.Context(), "g")
	if !ok || gm.State != "Stable" || gm.Protocol != "range" || gm.Generation != 1 || gm.Leader != res[0].MemberID || len(gm.Members) != 2 {
		t.Fatalf("members: %+v", gm)
	}
	if got := gm.Members[0].Assignment["t1"]; !slices.Equal(got, []int32{0, 2}) {
		t.Fatalf("decoded assignment %v", gm.Members[0].Assignment)
	}
	if got := gm.Members[1].Assignment; got == nil || len(got) != 0 {
		t.Fatalf("empty assignment decoded as %v", got)
	}
	if _, ok := h.c.GroupMembers(t.Context(), "none"); ok {
		t.Fatal("members of an unknown group")
	}

	// Unreadable metadata: every topic must count as subscribed.
	d.Members[0].Metadata = []byte{0xff}
	if _, ok := SubscribedTopics(d); ok {
		t.Fatal("unreadable metadata read")
	}
}
