package kafka

import (
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/broker"
)

// The group APIs at exact versions over a raw connection: error paths and
// version differences a client library would hide.

type grpWire struct {
	t    *testing.T
	nc   net.Conn
	corr int32
}

func (s *testServer) grpDial(t *testing.T) *grpWire {
	t.Helper()
	nc, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	return &grpWire{t: t, nc: nc}
}

// do sends req at version v and returns the decoded response.
func (w *grpWire) do(v int16, req kmsg.Request) kmsg.Response {
	w.t.Helper()
	req.SetVersion(v)
	w.corr++
	buf := make([]byte, 4, 256)
	buf = kbin.AppendInt16(buf, req.Key())
	buf = kbin.AppendInt16(buf, v)
	buf = kbin.AppendInt32(buf, w.corr)
	buf = kbin.AppendNullableString(buf, kmsg.StringPtr("grp-wire"))
	if req.IsFlexible() {
		buf = append(buf, 0)
	}
	buf = req.AppendTo(buf)
	binary.BigEndian.PutUint32(buf, uint32(len(buf)-4))
	_ = w.nc.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := w.nc.Write(buf); err != nil {
		w.t.Fatal(err)
	}
	var size [4]byte
	if _, err := io.ReadFull(w.nc, size[:]); err != nil {
		w.t.Fatalf("read response to key %d v%d: %v", req.Key(), v, err)
	}
	body := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(w.nc, body); err != nil {
		w.t.Fatal(err)
	}
	if corr := int32(binary.BigEndian.Uint32(body)); corr != w.corr {
		w.t.Fatalf("correlation %d, want %d", corr, w.corr)
	}
	body = body[4:]
	resp := req.ResponseKind()
	resp.SetVersion(v)
	if resp.IsFlexible() {
		body = body[1:] // no header tags
	}
	if err := resp.ReadFrom(body); err != nil {
		w.t.Fatalf("decode response to key %d v%d: %v", req.Key(), v, err)
	}
	return resp
}

func grpCode(t *testing.T, what string, got int16, want *kerr.Error) {
	t.Helper()
	var wantCode int16
	if want != nil {
		wantCode = want.Code
	}
	if got != wantCode {
		t.Fatalf("%s: %v, want %v", what, kerr.ErrorForCode(got), want)
	}
}

func grpJoinReq(group, member string, protocols ...string) *kmsg.JoinGroupRequest {
	req := kmsg.NewPtrJoinGroupRequest()
	req.Group, req.MemberID = group, member
	req.SessionTimeoutMillis, req.RebalanceTimeoutMillis = 10000, 10000
	req.ProtocolType = "consumer"
	if len(protocols) == 0 {
		protocols = []string{"range"}
	}
	for _, p := range protocols {
		rp := kmsg.NewJoinGroupRequestProtocol()
		rp.Name = p
		meta := kmsg.NewConsumerMemberMetadata()
		meta.Topics = []string{"t"}
		rp.Metadata = meta.AppendTo(nil)
		req.Protocols = append(req.Protocols, rp)
	}
	return req
}

// grpJoined joins one dynamic member (KIP-394 round included) and syncs
// it as leader with an empty plan; it returns member id and generation.
func grpJoined(t *testing.T, w *grpWire, group string, instance *string) (string, int32) {
	t.Helper()
	req := grpJoinReq(group, "")
	req.InstanceID = instance
	resp := w.do(9, req).(*kmsg.JoinGroupResponse)
	if instance == nil {
		grpCode(t, "first join", resp.ErrorCode, kerr.MemberIDRequired)
		if resp.MemberID == "" || resp.Generation != -1 {
			t.Fatalf("MEMBER_ID_REQUIRED answer: %+v", resp)
		}
		req.MemberID = resp.MemberID
		resp = w.do(9, req).(*kmsg.JoinGroupResponse)
	}
	grpCode(t, "join", resp.ErrorCode, nil)
	if resp.LeaderID != resp.MemberID || resp.Protocol == nil || *resp.Protocol != "range" || resp.ProtocolType == nil || *resp.ProtocolType != "consumer" {
		t.Fatalf("join: %+v", resp)
	}
	sync := kmsg.NewPtrSyncGroupRequest()
	sync.Group, sync.MemberID, sync.Generation, sync.InstanceID = group, resp.MemberID, resp.Generation, instance
	sync.ProtocolType, sync.Protocol = kmsg.StringPtr("consumer"), kmsg.StringPtr("range")
	a := kmsg.NewSyncGroupRequestGroupAssignment()
	a.MemberID, a.MemberAssignment = resp.MemberID, []byte("plan")
	sync.GroupAssignment = append(sync.GroupAssignment, a)
	sresp := w.do(5, sync).(*kmsg.SyncGroupResponse)
	grpCode(t, "leader sync", sresp.ErrorCode, nil)
	if string(sresp.MemberAssignment) != "plan" || sresp.Protocol == nil || *sresp.Protocol != "range" {
		t.Fatalf("sync: %+v", sresp)
	}
	return resp.MemberID, resp.Generation
}

func TestGroupWireErrors(t *testing.T) {
	t.Parallel()
	s := startServer(t, testOptions{})
	s.grpTopic(t, "t", 2)
	w := s.grpDial(t)
	member, gen := grpJoined(t, w, "g", nil)

	hb := func(v int16, group, member string, gen int32, instance *string) int16 {
		req := kmsg.NewPtrHeartbeatRequest()
		req.Group, req.MemberID, req.Generation, req.InstanceID = group, member, gen, instance
		return w.do(v, req).(*kmsg.HeartbeatResponse).ErrorCode
	}
	grpCode(t, "heartbeat", hb(4, "g", member, gen, nil), nil)
	grpCode(t, "heartbeat v0", hb(0, "g", member, gen, nil), nil)
	grpCode(t, "heartbeat unknown member", hb(4, "g", "nobody", gen, nil), kerr.UnknownMemberID)
	grpCode(t, "heartbeat old generation", hb(4, "g", member, gen-1, nil), kerr.IllegalGeneration)
	grpCode(t, "heartbeat unknown group", hb(4, "nogroup", member, gen, nil), kerr.UnknownMemberID)
	grpCode(t, "heartbeat empty group id", hb(4, "", member, gen, nil), kerr.InvalidGroupID)

	// JoinGroup before v4 has no member id round; v0 has no rebalance
	// timeout.
	j0 := grpJoinReq("old", "")
	r0 := w.do(0, j0).(*kmsg.JoinGroupResponse)
	grpCode(t, "join v0", r0.ErrorCode, nil)
	if r0.Generation != 1 || r0.MemberID == "" || r0.LeaderID != r0.MemberID {
		t.Fatalf("join v0: %+v", r0)
	}
	grpCode(t, "join empty group id", w.do(9, grpJoinReq("", "")).(*kmsg.JoinGroupResponse).ErrorCode, kerr.InvalidGroupID)
	grpCode(t, "join unknown member", w.do(9, grpJoinReq("g", "made-up")).(*kmsg.JoinGroupResponse).ErrorCode, kerr.UnknownMemberID)
	grpCode(t, "join unsupported protocol", w.do(9, grpJoinReq("g", "", "sticky")).(*kmsg.JoinGroupResponse).ErrorCode, kerr.InconsistentGroupProtocol)
	short := grpJoinReq("g2", "")
	short.SessionTimeoutMillis = 10
	grpCode(t, "join tiny session", w.do(9, short).(*kmsg.JoinGroupResponse).ErrorCode, kerr.InvalidSessionTimeout)

	sync := func(v int16, member string, gen int32, protocol *string) int16 {
		req := kmsg.NewPtrSyncGroupRequest()
		req.Group, req.MemberID, req.Generation, req.Protocol = "g", member, gen, protocol
		return w.do(v, req).(*kmsg.SyncGroupResponse).ErrorCode
	}
	grpCode(t, "sync", sync(5, member, gen, nil), nil)
	grpCode(t, "sync other protocol", sync(5, member, gen, kmsg.StringPtr("sticky")), kerr.InconsistentGroupProtocol)
	grpCode(t, "sync unknown member", sync(3, "nobody", gen, nil), kerr.UnknownMemberID)
	grpCode(t, "sync old generation", sync(0, member, gen+1, nil), kerr.IllegalGeneration)

	commit := func(v int16, group, member string, gen int32) int16 {
		req := kmsg.NewPtrOffsetCommitRequest()
		req.Group, req.MemberID, req.Generation = group, member, gen
		rt := kmsg.NewOffsetCommitRequestTopic()
		rt.Topic = "t"
		rp := kmsg.NewOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset = 0, 3
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		return w.do(v, req).(*kmsg.OffsetCommitResponse).Topics[0].Partitions[0].ErrorCode
	}
	grpCode(t, "member commit", commit(9, "g", member, gen), nil)
	grpCode(t, "commit old generation", commit(9, "g", member, gen-1), kerr.IllegalGeneration)
	grpCode(t, "commit unknown member", commit(8, "g", "nobody", gen), kerr.UnknownMemberID)
	grpCode(t, "simple commit to a group with members", commit(2, "g", "", -1), kerr.UnknownMemberID)
	grpCode(t, "member commit to unknown group v8", commit(8, "nogroup", "m", 1), kerr.IllegalGeneration)
	grpCode(t, "member commit to unknown group v9", commit(9, "nogroup", "m", 1), kerr.GroupIDNotFound)
	grpCode(t, "commit empty group id", commit(9, "", "", -1), kerr.InvalidGroupID)

	del := kmsg.NewPtrDeleteGroupsRequest()
	del.Groups = []string{"g", "nogroup", ""}
	dr := w.do(3, del).(*kmsg.DeleteGroupsResponse)
	grpCode(t, "delete live group", dr.Groups[0].ErrorCode, kerr.NonEmptyGroup)
	grpCode(t, "delete unknown group", dr.Groups[1].ErrorCode, kerr.GroupIDNotFound)
	grpCode(t, "delete empty group id", dr.Groups[2].ErrorCode, kerr.InvalidGroupID)
	if dr.Groups[0].ErrorMessage == nil {
		t.Fatal("DeleteGroups v3 without an error message")
	}

	// LeaveGroup v0 answers the one member's error at the top; v3+
	// member by member.
	leave := kmsg.NewPtrLeaveGroupRequest()
	leave.Group, leave.MemberID = "g", "nobody"
	grpCode(t, "leave v0 unknown member", w.do(0, leave).(*kmsg.LeaveGroupResponse).ErrorCode, kerr.UnknownMemberID)
	leave = kmsg.NewPtrLeaveGroupRequest()
	leave.Group = "g"
	for _, id := range []string{member, "nobody"} {
		m := kmsg.NewLeaveGroupRequestMember()
		m.MemberID = id
		leave.Members = append(leave.Members, m)
	}
	lr := w.do(5, leave).(*kmsg.LeaveGroupResponse)
	grpCode(t, "leave v5", lr.ErrorCode, nil)
	grpCode(t, "leave v5 member", lr.Members[0].ErrorCode, nil)
	grpCode(t, "leave v5 unknown member", lr.Members[1].ErrorCode, kerr.UnknownMemberID)
	grpCode(t, "heartbeat after leaving", hb(4, "g", member, gen, nil), kerr.UnknownMemberID)
}

func TestGroupWireStaticMembers(t *testing.T) {
	t.Parallel()
	s := startServer(t, testOptions{})
	w := s.grpDial(t)
	inst := kmsg.StringPtr("i1")
	first, gen := grpJoined(t, w, "g", inst)
	// Same instance, new process: a new member id, same generation, the
	// old id fenced.
	req := grpJoinReq("g", "")
	req.InstanceID = inst
	resp := w.do(9, req).(*kmsg.JoinGroupResponse)
	grpCode(t, "static rejoin", resp.ErrorCode, nil)
	if resp.MemberID == first || resp.Generation != gen || !resp.SkipAssignment || resp.LeaderID != resp.MemberID || len(resp.Members) != 1 {
		t.Fatalf("static leader rejoin v9: %+v", resp)
	}
	hb := kmsg.NewPtrHeartbeatRequest()
	hb.Group, hb.MemberID, hb.Generation, hb.InstanceID = "g", first, gen, inst
	grpCode(t, "fenced heartbeat", w.do(4, hb).(*kmsg.HeartbeatResponse).ErrorCode, kerr.FencedInstanceID)
	sync := kmsg.NewPtrSyncGroupRequest()
	sync.Group, sync.MemberID, sync.Generation, sync.InstanceID = "g", resp.MemberID, gen, inst
	sr := w.do(5, sync).(*kmsg.SyncGroupResponse)
	if sr.ErrorCode != 0 || string(sr.MemberAssignment) != "plan" {
		t.Fatalf("sync after static rejoin: %+v", sr)
	}
	// Leaving by instance id alone.
	leave := kmsg.NewPtrLeaveGroupRequest()
	leave.Group = "g"
	m := kmsg.NewLeaveGroupRequestMember()
	m.InstanceID = inst
	leave.Members = append(leave.Members, m)
	lr := w.do(4, leave).(*kmsg.LeaveGroupResponse)
	grpCode(t, "leave by instance", lr.Members[0].ErrorCode, nil)
	desc := kmsg.NewPtrDescribeGroupsRequest()
	desc.Groups = []string{"g"}
	dr := w.do(5, desc).(*kmsg.DescribeGroupsResponse)
	if g := dr.Groups[0]; g.ErrorCode != 0 || g.State != "Dead" {
		t.Fatalf("describe v5 of a group that is gone: %+v", g)
	}
	dr = w.do(6, desc).(*kmsg.DescribeGroupsResponse)
	grpCode(t, "describe v6 of a group that is gone", dr.Groups[0].ErrorCode, kerr.GroupIDNotFound)
}

func TestGroupWireFindCoordinator(t *testing.T) {
	t.Parallel()
	s := startServer(t, testOptions{})
	w := s.grpDial(t)
	host, port := splitAddr(s.addr)
	req := kmsg.NewPtrFindCoordinatorRequest()
	req.CoordinatorKey = "g"
	r0 := w.do(0, req).(*kmsg.FindCoordinatorResponse)
	if r0.ErrorCode != 0 || r0.NodeID != NodeID("agent-1") || r0.Host != host || r0.Port != port {
		t.Fatalf("v0: %+v", r0)
	}
	req.CoordinatorType = coordinatorTransaction
	if r3 := w.do(3, req).(*kmsg.FindCoordinatorResponse); r3.ErrorCode != 0 || r3.NodeID != NodeID("agent-1") || r3.Port != port {
		t.Fatalf("v3 transaction: %+v", r3)
	}
	req = kmsg.NewPtrFindCoordinatorRequest()
	req.CoordinatorKeys = []string{"a", "b"}
	r6 := w.do(6, req).(*kmsg.FindCoordinatorResponse)
	if len(r6.Coordinators) != 2 || r6.Coordinators[1].Key != "b" || r6.Coordinators[1].NodeID != NodeID("agent-1") || r6.Coordinators[1].Port != port {
		t.Fatalf("v6: %+v", r6)
	}
	req.CoordinatorType = 2 // share groups
	grpCode(t, "share key", w.do(6, req).(*kmsg.FindCoordinatorResponse).Coordinators[0].ErrorCode, kerr.InvalidRequest)
}

func TestGroupWireOffsetFetchVersions(t *testing.T) {
	t.Parallel()
	s := startServer(t, testOptions{})
	s.grpTopic(t, "t", 2)
	s.grpTopic(t, "u", 1)
	ctx := grpCtx(t)
	w := s.grpDial(t)
	if err := s.broker.CommitOffsets(ctx, "g", []broker.OffsetCommit{
		{Topic: "t", Partition: 1, Offset: 11, LeaderEpoch: 2, Metadata: "m"},
		{Topic: "u", Partition: 0, Offset: 4, LeaderEpoch: -1},
	}); err != nil {
		t.Fatal(err)
	}
	tp, err := s.broker.Topic(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}

	// v1: listed partitions, -1 for none.
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Group = "g"
	rt := kmsg.NewOffsetFetchRequestTopic()
	rt.Topic, rt.Partitions = "t", []int32{0, 1}
	req.Topics = append(req.Topics, rt)
	r1 := w.do(1, req).(*kmsg.OffsetFetchResponse)
	if ps := r1.Topics[0].Partitions; ps[0].Offset != -1 || ps[1].Offset != 11 || *ps[1].Metadata != "m" || ps[1].ErrorCode != 0 {
		t.Fatalf("v1: %+v", ps)
	}
	// v7: null topics is everything, with leader epochs.
	req.Topics = nil
	r7 := w.do(7, req).(*kmsg.OffsetFetchResponse)
	if len(r7.Topics) != 2 || r7.Topics[0].Topic != "t" || r7.Topics[0].Partitions[0].LeaderEpoch != 2 || r7.Topics[1].Partitions[0].Offset != 4 {
		t.Fatalf("v7 all: %+v", r7.Topics)
	}
	// v8: a batch of groups, one invalid.
	req = kmsg.NewPtrOffsetFetchRequest()
	for _, g := range []string{"g", "none", ""} {
		rg := kmsg.NewOffsetFetchRequestGroup()
		rg.Group = g
		req.Groups = append(req.Groups, rg)
	}
	r8 := w.do(8, req).(*kmsg.OffsetFetchResponse)
	if len(r8.Groups) != 3 || len(r8.Groups[0].Topics) != 2 || len(r8.Groups[1].Topics) != 0 || r8.Groups[1].ErrorCode != 0 {
		t.Fatalf("v8: %+v", r8.Groups)
	}
	grpCode(t, "v8 empty group id", r8.Groups[2].ErrorCode, kerr.InvalidGroupID)
	// v10: topics by ID.
	req = kmsg.NewPtrOffsetFetchRequest()
	rg := kmsg.NewOffsetFetchRequestGroup()
	rg.Group = "g"
	for _, id := range [][16]byte{tp.ID, {1}} {
		gt := kmsg.NewOffsetFetchRequestGroupTopic()
		gt.TopicID, gt.Partitions = id, []int32{1}
		rg.Topics = append(rg.Topics, gt)
	}
	req.Groups = append(req.Groups, rg)
	r10 := w.do(10, req).(*kmsg.OffsetFetchResponse)
	got := r10.Groups[0].Topics
	if got[0].TopicID != tp.ID || got[0].Partitions[0].Offset != 11 {
		t.Fatalf("v10: %+v", got)
	}
	grpCode(t, "v10 unknown topic id", got[1].Partitions[0].ErrorCode, kerr.UnknownTopicID)

	// OffsetCommit v10 by topic ID.
	commit := kmsg.NewPtrOffsetCommitRequest()
	commit.Group, commit.Generation = "g", -1
	ct := kmsg.NewOffsetCommitRequestTopic()
	ct.TopicID = tp.ID
	cp := kmsg.NewOffsetCommitRequestTopicPartition()
	cp.Partition, cp.Offset = 0, 8
	ct.Partitions = append(ct.Partitions, cp)
	commit.Topics = append(commit.Topics, ct)
	cr := w.do(10, commit).(*kmsg.OffsetCommitResponse)
	if cr.Topics[0].TopicID != tp.ID || cr.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("commit v10: %+v", cr.Topics)
	}
	offs, err := s.broker.GroupOffsets(ctx, "g")
	if err != nil || len(offs) != 3 || offs[0].Topic != "t" || offs[0].Partition != 0 || offs[0].Offset != 8 {
		t.Fatalf("offsets after a v10 commit: %+v %v", offs, err)
	}
	// Refused partitions change nothing.
	cp.Partition, cp.Offset = 5, 1
	commit.Topics[0].Partitions[0] = cp
	grpCode(t, "commit to a partition that does not exist", w.do(10, commit).(*kmsg.OffsetCommitResponse).Topics[0].Partitions[0].ErrorCode, kerr.UnknownTopicOrPartition)
	cp.Partition, cp.Metadata = 0, kmsg.StringPtr(string(make([]byte, maxOffsetMetadata+1)))
	commit.Topics[0].Partitions[0] = cp
	grpCode(t, "commit oversized metadata", w.do(10, commit).(*kmsg.OffsetCommitResponse).Topics[0].Partitions[0].ErrorCode, kerr.OffsetMetadataTooLarge)
	if after, _ := s.broker.GroupOffsets(ctx, "g"); len(after) != 3 || after[0].Offset != 8 {
		t.Fatalf("refused commits changed offsets: %+v", after)
	}
}

func TestGroupWireListGroups(t *testing.T) {
	t.Parallel()
	s := startServer(t, testOptions{})
	s.grpTopic(t, "t", 1)
	w := s.grpDial(t)
	grpJoined(t, w, "live", nil)
	if err := s.broker.CreateGroup(grpCtx(t), "registered"); err != nil {
		t.Fatal(err)
	}
	req := kmsg.NewPtrListGroupsRequest()
	r0 := w.do(0, req).(*kmsg.ListGroupsResponse)
	if len(r0.Groups) != 2 || r0.Groups[0].Group != "live" || r0.Groups[0].ProtocolType != "consumer" || r0.Groups[1].Group != "registered" || r0.Groups[1].ProtocolType != "" {
		t.Fatalf("v0: %+v", r0.Groups)
	}
	req.StatesFilter = []string{"stable"}
	r4 := w.do(4, req).(*kmsg.ListGroupsResponse)
	if len(r4.Groups) != 1 || r4.Groups[0].GroupState != "Stable" {
		t.Fatalf("v4 stable: %+v", r4.Groups)
	}
	req.StatesFilter = nil
	req.TypesFilter = []string{"Classic"}
	r5 := w.do(5, req).(*kmsg.ListGroupsResponse)
	if len(r5.Groups) != 2 || r5.Groups[1].GroupType != "classic" || r5.Groups[1].GroupState != "Empty" {
		t.Fatalf("v5 classic: %+v", r5.Groups)
	}
	req.TypesFilter = []string{"share"}
	if r := w.do(5, req).(*kmsg.ListGroupsResponse); len(r.Groups) != 0 {
		t.Fatalf("v5 share: %+v", r.Groups)
	}
	desc := kmsg.NewPtrDescribeGroupsRequest()
	desc.Groups = []string{"live", "registered"}
	desc.IncludeAuthorizedOperations = true
	dr := w.do(6, desc).(*kmsg.DescribeGroupsResponse)
	if g := dr.Groups[0]; g.State != "Stable" || g.Protocol != "range" || len(g.Members) != 1 || string(g.Members[0].MemberAssignment) != "plan" || g.AuthorizedOperations != allGroupOps {
		t.Fatalf("describe live: %+v", g)
	}
	if g := dr.Groups[1]; g.ErrorCode != 0 || g.State != "Empty" || len(g.Members) != 0 {
		t.Fatalf("describe registered: %+v", g)
	}
}
