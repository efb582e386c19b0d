package kafka

import (
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/broker"
	"github.com/streamhouse/streamhouse/internal/metadata/metadatatest"
	"github.com/streamhouse/streamhouse/internal/objstore"
	"github.com/streamhouse/streamhouse/internal/partlog"
)

// grpKeys are the group coordinator's API keys.
var grpKeys = []int16{offsetCommitKey, offsetFetchKey, findCoordinatorKey, joinGroupKey, heartbeatKey,
	leaveGroupKey, syncGroupKey, describeGroupsKey, listGroupsKey, deleteGroupsKey, offsetDeleteKey}

// FuzzGroupRequests runs the group handlers on requests built from fuzzed
// field values (group and member ids, generations, timeouts, metadata and
// assignment bytes, versions), one after another on one server, so
// earlier inputs leave groups behind for later ones. Each request goes
// through its wire encoding first, so it carries exactly what its version
// can. Nothing may panic (the connection's recover is not there), and a
// request waiting for other members must end with its context.
func FuzzGroupRequests(f *testing.F) {
	ctx := context.Background()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	store := metadatatest.OpenSQLite(f)
	bucket, err := objstore.NewLocal(filepath.Join(f.TempDir(), "storage"))
	if err != nil {
		f.Fatal(err)
	}
	plog, err := partlog.Open(ctx, partlog.Config{AgentID: "fz", Bucket: bucket, Store: store, Logger: logger})
	if err != nil {
		f.Fatal(err)
	}
	b, err := broker.New(ctx, broker.Config{AgentID: "fz", Addr: "127.0.0.1:9092", Store: store, Log: plog, Logger: logger})
	if err != nil {
		f.Fatal(err)
	}
	if _, err := b.CreateTopic(ctx, broker.TopicSpec{Name: "t", Partitions: 2}, false); err != nil {
		f.Fatal(err)
	}
	srv := New(Config{Broker: b, Logger: logger, AdvertisedAddr: "127.0.0.1:9092"})
	a, peer := net.Pipe()
	c := newConn(srv, a)
	f.Cleanup(func() {
		_ = srv.Close()
		c.close()
		_ = peer.Close()
		_ = plog.Close(ctx)
	})

	meta := kmsg.NewConsumerMemberMetadata()
	meta.Topics = []string{"t"}
	for i := range grpKeys {
		f.Add(int16(i), int16(99), "g", "", "", int32(-1), int32(10000), meta.AppendTo(nil))
		f.Add(int16(i), int16(0), "g", "m", "i", int32(1), int32(6000), []byte{0, 1})
	}
	f.Fuzz(func(t *testing.T, k, v int16, groupID, member, instance string, gen, n int32, data []byte) {
		key := grpKeys[int(uint16(k))%len(grpKeys)]
		h := handlers[key]
		version := h.minVersion + int16(uint16(v)%uint16(h.maxVersion-h.minVersion+1))
		built := grpFuzzRequest(key, groupID, member, instance, gen, n, data)
		built.SetVersion(version)
		req := kmsg.RequestForKey(key)
		req.SetVersion(version)
		if err := req.ReadFrom(built.AppendTo(nil)); err != nil {
			t.Fatalf("%s v%d does not decode its own encoding: %v", kmsg.NameForKey(key), version, err)
		}
		hctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		defer cancel()
		resp, err := h.fn(hctx, c, req)
		if err == nil && resp != nil {
			resp.SetVersion(version)
			_ = resp.AppendTo(nil)
		}
	})
}

func grpFuzzRequest(key int16, groupID, member, instance string, gen, n int32, data []byte) kmsg.Request {
	var inst *string
	if instance != "" {
		inst = &instance
	}
	switch key {
	case joinGroupKey:
		r := grpJoinReq(groupID, member)
		r.InstanceID, r.SessionTimeoutMillis, r.RebalanceTimeoutMillis = inst, n, gen
		r.Protocols[0].Metadata = data
		return r
	case syncGroupKey:
		r := kmsg.NewPtrSyncGroupRequest()
		r.Group, r.MemberID, r.InstanceID, r.Generation = groupID, member, inst, gen
		r.GroupAssignment = []kmsg.SyncGroupRequestGroupAssignment{{MemberID: member, MemberAssignment: data}}
		return r
	case heartbeatKey:
		r := kmsg.NewPtrHeartbeatRequest()
		r.Group, r.MemberID, r.InstanceID, r.Generation = groupID, member, inst, gen
		return r
	case leaveGroupKey:
		r := kmsg.NewPtrLeaveGroupRequest()
		r.Group, r.MemberID = groupID, member
		r.Members = []kmsg.LeaveGroupRequestMember{{MemberID: member, InstanceID: inst}}
		return r
	case offsetCommitKey:
		r := kmsg.NewPtrOffsetCommitRequest()
		r.Group, r.MemberID, r.InstanceID, r.Generation = groupID, member, inst, gen
		p := kmsg.NewOffsetCommitRequestTopicPartition()
		p.Partition, p.Offset, p.Metadata = n%4, int64(gen), kmsg.StringPtr(string(data))
		r.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: instance, TopicID: [16]byte{byte(n)}, Partitions: []kmsg.OffsetCommitRequestTopicPartition{p}}}
		return r
	case offsetFetchKey:
		r := kmsg.NewPtrOffsetFetchRequest()
		r.Group = groupID
		g := kmsg.NewOffsetFetchRequestGroup()
		g.Group = groupID
		if n%2 == 0 {
			r.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: instance, Partitions: []int32{n % 4}}}
			g.Topics = []kmsg.OffsetFetchRequestGroupTopic{{Topic: instance, TopicID: [16]byte{byte(gen)}, Partitions: []int32{n % 4}}}
		}
		r.Groups = []kmsg.OffsetFetchRequestGroup{g}
		return r
	case findCoordinatorKey:
		r := kmsg.NewPtrFindCoordinatorRequest()
		r.CoordinatorKey, r.CoordinatorKeys, r.CoordinatorType = groupID, []string{groupID, member}, int8(n)
		return r
	case describeGroupsKey:
		r := kmsg.NewPtrDescribeGroupsRequest()
		r.Groups, r.IncludeAuthorizedOperations = []string{groupID, member}, n%2 == 0
		return r
	case listGroupsKey:
		r := kmsg.NewPtrListGroupsRequest()
		if instance != "" {
			r.StatesFilter, r.TypesFilter = []string{instance}, []string{member}
		}
		return r
	case deleteGroupsKey:
		r := kmsg.NewPtrDeleteGroupsRequest()
		r.Groups = []string{groupID, member}
		return r
	default: // offsetDeleteKey
		r := kmsg.NewPtrOffsetDeleteRequest()
		r.Group = groupID
		r.Topics = []kmsg.OffsetDeleteRequestTopic{{Topic: instance, Partitions: []kmsg.OffsetDeleteRequestTopicPartition{{Partition: n % 4}}}}
		return r
	}
}
