package kafka

import (
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/metadata/metadatatest"
)

// dpMetadataReq asks for topics by name (nil: all topics).
func dpMetadataReq(version int16, allowAuto bool, topics ...string) *kmsg.MetadataRequest {
	req := kmsg.NewPtrMetadataRequest()
	req.Version = version
	req.AllowAutoTopicCreation = allowAuto
	if topics != nil {
		req.Topics = []kmsg.MetadataRequestTopic{}
	}
	for _, t := range topics {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(t)
		req.Topics = append(req.Topics, rt)
	}
	return req
}

func dpTopicNames(resp *kmsg.MetadataResponse) []string {
	var out []string
	for _, t := range resp.Topics {
		if t.Topic != nil {
			out = append(out, *t.Topic)
		}
	}
	return out
}

func TestMetadata(t *testing.T) {
	t.Parallel()
	s := startServer(t, testOptions{})
	top := s.dpTopic(t, "meta", 3, nil)
	s.dpTopic(t, "meta2", 1, nil)
	w := s.dpDial(t)

	for v := int16(0); v <= 13; v++ {
		resp := w.do(dpMetadataReq(v, true, "meta")).(*kmsg.MetadataResponse)
		host, port := splitAddr(s.addr)
		if len(resp.Brokers) != 1 || resp.Brokers[0].NodeID != s.srv.nodeID || resp.Brokers[0].Host != host || resp.Brokers[0].Port != port {
			t.Fatalf("v%d brokers %+v", v, resp.Brokers)
		}
		if v >= 1 && resp.ControllerID != s.srv.nodeID {
			t.Fatalf("v%d controller %d", v, resp.ControllerID)
		}
		if v >= 2 && (resp.ClusterID == nil || *resp.ClusterID != clusterID) {
			t.Fatalf("v%d cluster id %v", v, resp.ClusterID)
		}
		if len(resp.Topics) != 1 {
			t.Fatalf("v%d topics %+v", v, resp.Topics)
		}
		mt := resp.Topics[0]
		if mt.ErrorCode != 0 || *mt.Topic != "meta" || len(mt.Partitions) != 3 || (v >= 10 && mt.TopicID != top.ID) {
			t.Fatalf("v%d topic %+v", v, mt)
		}
		for i, p := range mt.Partitions {
			if p.ErrorCode != 0 || p.Partition != int32(i) || p.Leader != s.srv.nodeID ||
				!slices.Equal(p.Replicas, []int32{s.srv.nodeID}) || !slices.Equal(p.ISR, []int32{s.srv.nodeID}) || (v >= 7 && p.LeaderEpoch < 1) {
				t.Fatalf("v%d partition %+v", v, p)
			}
		}
	}

	// Which topics: null is all from v1, empty is all only at v0.
	if got := dpTopicNames(w.do(dpMetadataReq(1, false)).(*kmsg.MetadataResponse)); !slices.Equal(got, []string{"meta", "meta2"}) {
		t.Fatalf("all topics: %v", got)
	}
	if got := dpTopicNames(w.do(dpMetadataReq(1, false, []string{}...)).(*kmsg.MetadataResponse)); len(got) != 0 {
		t.Fatalf("no topics: %v", got)
	}
	if got := dpTopicNames(w.do(dpMetadataReq(0, false, []string{}...)).(*kmsg.MetadataResponse)); !slices.Equal(got, []string{"meta", "meta2"}) {
		t.Fatalf("v0 empty list: %v", got)
	}
	if got := dpTopicNames(w.do(dpMetadataReq(9, false, "meta", "meta")).(*kmsg.MetadataResponse)); !slices.Equal(got, []string{"meta"}) {
		t.Fatalf("a topic asked twice: %v", got)
	}

	// Unknown and invalid topics; auto-creation is off on this server.
	resp := w.do(dpMetadataReq(12, true, "absent", "bad/name", "")).(*kmsg.MetadataResponse)
	for i, code := range []int16{kerr.UnknownTopicOrPartition.Code, kerr.InvalidTopicException.Code, kerr.InvalidTopicException.Code} {
		if resp.Topics[i].ErrorCode != code {
			t.Fatalf("topic %q: %v", *resp.Topics[i].Topic, kerr.ErrorForCode(resp.Topics[i].ErrorCode))
		}
	}
	if _, err := s.broker.Topic(dpCtx(t), "absent"); err == nil {
		t.Fatal("topic created with auto-creation off")
	}

	// By topic ID (v10+).
	req := kmsg.NewPtrMetadataRequest()
	req.Version = 12
	req.Topics = []kmsg.MetadataRequestTopic{{TopicID: top.ID}, {TopicID: [16]byte{1}}}
	resp = w.do(req).(*kmsg.MetadataResponse)
	if len(resp.Topics) != 2 || resp.Topics[0].Topic == nil || *resp.Topics[0].Topic != "meta" || len(resp.Topics[0].Partitions) != 3 ||
		resp.Topics[1].ErrorCode != kerr.UnknownTopicID.Code || resp.Topics[1].Topic != nil {
		t.Fatalf("by topic id: %+v", resp.Topics)
	}

	// Authorized operations, when asked for.
	req = dpMetadataReq(8, false, "meta")
	req.IncludeClusterAuthorizedOperations, req.IncludeTopicAuthorizedOperations = true, true
	resp = w.do(req).(*kmsg.MetadataResponse)
	if resp.AuthorizedOperations != allClusterOps || resp.Topics[0].AuthorizedOperations != allTopicOps {
		t.Fatalf("authorized operations %b, %b", resp.AuthorizedOperations, resp.Topics[0].AuthorizedOperations)
	}
	resp = w.do(dpMetadataReq(8, false, "meta")).(*kmsg.MetadataResponse)
	if resp.AuthorizedOperations != -2147483648 || resp.Topics[0].AuthorizedOperations != -2147483648 {
		t.Fatalf("authorized operations not asked for: %d, %d", resp.AuthorizedOperations, resp.Topics[0].AuthorizedOperations)
	}
}

func TestMetadataAutoCreate(t *testing.T) {
	t.Parallel()
	s := startServer(t, testOptions{autoCreateTopics: true})
	w := s.dpDial(t)
	for _, tc := range []struct {
		version   int16
		allow     bool
		topic     string
		code      int16
		partition bool
	}{
		{12, false, "not-allowed", kerr.UnknownTopicOrPartition.Code, false},
		{12, true, "allowed", 0, true},
		{3, false, "before-v4", 0, true}, // always allowed below v4
		{12, true, "bad name", kerr.InvalidTopicException.Code, false},
	} {
		resp := w.do(dpMetadataReq(tc.version, tc.allow, tc.topic)).(*kmsg.MetadataResponse)
		mt := resp.Topics[0]
		if mt.ErrorCode != tc.code || (len(mt.Partitions) == 1) != tc.partition {
			t.Fatalf("%s: %+v", tc.topic, mt)
		}
		if tc.partition && (mt.Partitions[0].Leader != s.srv.nodeID || mt.Partitions[0].ErrorCode != 0) {
			t.Fatalf("%s: new topic not led: %+v", tc.topic, mt.Partitions[0])
		}
	}
	// A kgo producer that allows auto-creation produces to a new topic.
	ctx := dpCtx(t)
	cl := s.client(kgo.AllowAutoTopicCreation(), kgo.DefaultProduceTopic("kgo-auto"))
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if _, hw := s.dpHW(t, "kgo-auto", 0); hw != 1 {
		t.Fatalf("high watermark %d", hw)
	}
}

func TestMetadataTwoAgents(t *testing.T) {
	t.Parallel()
	store := metadatatest.OpenSQLite(t)
	bucket := dpLocalBucket(t)
	s1 := startServer(t, testOptions{store: store, bucket: bucket, agentID: "agent-1"})
	top := s1.dpTopic(t, "two", 1, nil)
	s2 := startServer(t, testOptions{store: store, bucket: bucket, agentID: "agent-2"})
	epoch, _ := s1.broker.LeaderEpoch(metadata.TopicPartition{TopicID: top.ID, Partition: 0})
	for _, s := range []*testServer{s1, s2} {
		resp := s.dpDial(t).do(dpMetadataReq(12, false, "two")).(*kmsg.MetadataResponse)
		brokers := map[int32]string{}
		for _, b := range resp.Brokers {
			brokers[b.NodeID] = b.Host
		}
		if len(brokers) != 2 || brokers[NodeID("agent-1")] == "" || brokers[NodeID("agent-2")] == "" || resp.ControllerID != s.srv.nodeID {
			t.Fatalf("%s: brokers %+v, controller %d", s.addr, resp.Brokers, resp.ControllerID)
		}
		if p := resp.Topics[0].Partitions[0]; p.Leader != NodeID("agent-1") || p.LeaderEpoch != epoch {
			t.Fatalf("%s: partition %+v", s.addr, p)
		}
	}
}
