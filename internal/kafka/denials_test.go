package kafka

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// kafkaDenials is every non-zero Kafka series of
// streamhouse_authorization_denials_total, by "resource_type/operation",
// and whether the listener's series exist at all.
func kafkaDenials(t *testing.T, s *aclServer) (map[string]float64, int) {
	t.Helper()
	mfs, err := s.aclReg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out, series := map[string]float64{}, 0
	for _, mf := range mfs {
		if mf.GetName() != "streamhouse_authorization_denials_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, p := range m.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			if l["listener"] != "kafka" {
				continue
			}
			series++
			if v := m.GetCounter().GetValue(); v != 0 {
				out[l["resource_type"]+"/"+l["operation"]] = v
			}
		}
	}
	return out, series
}

// The Kafka listener counts what it refuses with an *_AUTHORIZATION_FAILED
// code, by resource type and operation; what a listing leaves out
// (Metadata of every topic, ListGroups) and the first of two ways to be
// allowed (CREATE on the cluster, IDEMPOTENT_WRITE's alternative) are not
// refusals. A super user is refused nothing. The series exist at zero
// before the first refusal.
func TestKafkaDenialsCounted(t *testing.T) {
	t.Parallel()
	s := startACLServer(t)
	if got, series := kafkaDenials(t, s); len(got) != 0 || series != 22 {
		t.Fatalf("before any request: %v counted, %d series (want 22, at zero)", got, series)
	}
	createTopics := func() kmsg.Request {
		req := kmsg.NewPtrCreateTopicsRequest()
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = "acl-new", 1, 1
		req.Topics = []kmsg.CreateTopicsRequestTopic{rt}
		return req
	}
	describeGroups := func() kmsg.Request {
		req := kmsg.NewPtrDescribeGroupsRequest()
		req.Groups = []string{aclGroup}
		return req
	}
	metadataOf := func() kmsg.Request {
		req := kmsg.NewPtrMetadataRequest()
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(aclTopic)
		req.Topics = []kmsg.MetadataRequestTopic{rt}
		return req
	}

	// Listings: filtered, nothing refused.
	if resp := raw(t, s.alice, kmsg.NewPtrMetadataRequest()).(*kmsg.MetadataResponse); len(resp.Topics) != 0 {
		t.Fatalf("alice's Metadata of every topic: %d topics", len(resp.Topics))
	}
	if resp := raw(t, s.alice, kmsg.NewPtrListGroupsRequest()).(*kmsg.ListGroupsResponse); resp.ErrorCode != 0 {
		t.Fatalf("ListGroups: %v", kerr.ErrorForCode(resp.ErrorCode))
	}
	if got, _ := kafkaDenials(t, s); len(got) != 0 {
		t.Fatalf("listings counted as denials: %v", got)
	}

	// Refusals, once each.
	if resp := raw(t, s.alice, metadataOf()).(*kmsg.MetadataResponse); resp.Topics[0].ErrorCode != kerr.TopicAuthorizationFailed.Code {
		t.Fatalf("Metadata of %s: %v", aclTopic, kerr.ErrorForCode(resp.Topics[0].ErrorCode))
	}
	if resp := raw(t, s.alice, createTopics()).(*kmsg.CreateTopicsResponse); resp.Topics[0].ErrorCode != kerr.TopicAuthorizationFailed.Code {
		t.Fatalf("CreateTopics: %v", kerr.ErrorForCode(resp.Topics[0].ErrorCode))
	}
	if resp := raw(t, s.alice, kmsg.NewPtrInitProducerIDRequest()).(*kmsg.InitProducerIDResponse); resp.ErrorCode != kerr.ClusterAuthorizationFailed.Code {
		t.Fatalf("InitProducerId: %v", kerr.ErrorForCode(resp.ErrorCode))
	}
	if resp := raw(t, s.alice, describeGroups()).(*kmsg.DescribeGroupsResponse); resp.Groups[0].ErrorCode != kerr.GroupAuthorizationFailed.Code {
		t.Fatalf("DescribeGroups: %v", kerr.ErrorForCode(resp.Groups[0].ErrorCode))
	}
	want := map[string]float64{"TOPIC/DESCRIBE": 1, "TOPIC/CREATE": 1, "CLUSTER/IDEMPOTENT_WRITE": 1, "GROUP/DESCRIBE": 1}
	check := func(when string) {
		t.Helper()
		got, _ := kafkaDenials(t, s)
		if len(got) != len(want) {
			t.Errorf("%s: counted %v, want %v", when, got, want)
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s: %s counted %v, want %v (all: %v)", when, k, got[k], v, got)
			}
		}
	}
	check("after alice's refusals")

	// The super user: nothing refused, nothing counted.
	for _, req := range []kmsg.Request{metadataOf(), describeGroups(), kmsg.NewPtrInitProducerIDRequest()} {
		raw(t, s.admin, req)
	}
	check("after the super user's requests")
}
