package kafka

import (
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/acl"
	"github.com/streamhouse/streamhouse/internal/batch"
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
// (Metadata of every topic, ListGroups, OffsetFetch of every topic,
// DescribeTransactions' topics, ListTransactions), a produce's
// auto-creation that is not allowed, and the first of two ways to be
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

	// Listings: filtered, nothing refused. Each leaves something out:
	// alice may DESCRIBE the group and the transactional ID "acl-seen",
	// not aclGroup, aclTxnID or aclTopic, on which acl-seen committed an
	// offset and its transaction wrote.
	const seen = "acl-seen"
	hiddenListed(t, s, seen)
	s.setACLs(t, grant(acl.ResourceGroup, seen, acl.OpDescribe), grant(acl.ResourceTransactionalID, seen, acl.OpDescribe),
		grant(acl.ResourceTopic, "acl-auto", acl.OpWrite))
	if resp := raw(t, s.alice, kmsg.NewPtrMetadataRequest()).(*kmsg.MetadataResponse); len(resp.Topics) != 0 {
		t.Fatalf("alice's Metadata of every topic: %d topics", len(resp.Topics))
	}
	if resp := raw(t, s.alice, kmsg.NewPtrListGroupsRequest()).(*kmsg.ListGroupsResponse); resp.ErrorCode != 0 || len(resp.Groups) != 1 || resp.Groups[0].Group != seen {
		t.Fatalf("ListGroups: %v, %+v (want %s alone)", kerr.ErrorForCode(resp.ErrorCode), resp.Groups, seen)
	}
	offsetFetch := kmsg.NewPtrOffsetFetchRequest() // every topic: Topics null
	offsetFetch.Group, offsetFetch.Groups = seen, []kmsg.OffsetFetchRequestGroup{{Group: seen}}
	resp := raw(t, s.alice, offsetFetch).(*kmsg.OffsetFetchResponse)
	code, topics := resp.ErrorCode, len(resp.Topics)
	if resp.Version >= 8 {
		code, topics = resp.Groups[0].ErrorCode, len(resp.Groups[0].Topics)
	}
	if code != 0 || topics != 0 {
		t.Fatalf("OffsetFetch v%d of every topic: %v, %d topics (want none)", resp.Version, kerr.ErrorForCode(code), topics)
	}
	describeTxns := kmsg.NewPtrDescribeTransactionsRequest()
	describeTxns.TransactionalIDs = []string{seen}
	if resp := raw(t, s.alice, describeTxns).(*kmsg.DescribeTransactionsResponse); len(resp.TransactionStates) != 1 ||
		resp.TransactionStates[0].ErrorCode != 0 || len(resp.TransactionStates[0].Topics) != 0 {
		t.Fatalf("DescribeTransactions: %+v (want %s without its topic)", resp.TransactionStates, seen)
	}
	if resp := raw(t, s.alice, kmsg.NewPtrListTransactionsRequest()).(*kmsg.ListTransactionsResponse); resp.ErrorCode != 0 ||
		len(resp.TransactionStates) != 1 || resp.TransactionStates[0].TransactionalID != seen {
		t.Fatalf("ListTransactions: %v, %+v (want %s alone)", kerr.ErrorForCode(resp.ErrorCode), resp.TransactionStates, seen)
	}
	// A produce whose topic auto-creation is not allowed (WRITE, no
	// CREATE) refuses nothing: the topic stays unknown.
	produce := dpProduceReq(0, "acl-auto", 0, 1, dpBatch(t, batch.BuildOptions{}))
	if code := raw(t, s.alice, produce).(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode; code != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("produce to a topic alice may not create: %v, want UNKNOWN_TOPIC_OR_PARTITION", kerr.ErrorForCode(code))
	}
	if got, _ := kafkaDenials(t, s); len(got) != 0 {
		t.Fatalf("listings counted as denials: %v", got)
	}
	s.setACLs(t)

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

// hiddenListed makes, as the super user, what the listings of
// TestKafkaDenialsCounted must leave out: offsets of the groups seen and
// aclGroup on aclTopic, and the transactions seen (with aclTopic's
// partition added) and aclTxnID.
func hiddenListed(t *testing.T, s *aclServer, seen string) {
	t.Helper()
	for _, g := range []string{seen, aclGroup} {
		req := kmsg.NewPtrOffsetCommitRequest()
		req.Group, req.Generation = g, -1
		p := kmsg.NewOffsetCommitRequestTopicPartition()
		p.Partition, p.Offset = 0, 1
		req.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: aclTopic, Partitions: []kmsg.OffsetCommitRequestTopicPartition{p}}}
		if code := raw(t, s.admin, req).(*kmsg.OffsetCommitResponse).Topics[0].Partitions[0].ErrorCode; code != 0 {
			t.Fatalf("commit for %s: %v", g, kerr.ErrorForCode(code))
		}
	}
	for _, id := range []string{seen, aclTxnID} {
		req := kmsg.NewPtrInitProducerIDRequest()
		req.TransactionalID, req.TransactionTimeoutMillis = kmsg.StringPtr(id), 60000
		resp := raw(t, s.admin, req).(*kmsg.InitProducerIDResponse)
		if resp.ErrorCode != 0 {
			t.Fatalf("init %s: %v", id, kerr.ErrorForCode(resp.ErrorCode))
		}
		if id != seen {
			continue
		}
		add := kmsg.NewPtrAddPartitionsToTxnRequest()
		add.TransactionalID, add.ProducerID, add.ProducerEpoch = id, resp.ProducerID, resp.ProducerEpoch
		add.Topics = []kmsg.AddPartitionsToTxnRequestTopic{{Topic: aclTopic, Partitions: []int32{0}}}
		if code := raw(t, s.admin, add).(*kmsg.AddPartitionsToTxnResponse).Topics[0].Partitions[0].ErrorCode; code != 0 {
			t.Fatalf("add %s to %s: %v", aclTopic, id, kerr.ErrorForCode(code))
		}
	}
}

// OffsetDelete asks READ once per topic: a refused topic of three
// partitions is one denial.
func TestKafkaOffsetDeleteDenialCountedOncePerTopic(t *testing.T) {
	t.Parallel()
	s := startACLServer(t)
	const topic = "acl-three"
	s.dpTopic(t, topic, 3, nil)
	parts := []int32{0, 1, 2}
	commit := kmsg.NewPtrOffsetCommitRequest()
	commit.Group, commit.Generation = aclGroup, -1
	rt := kmsg.OffsetCommitRequestTopic{Topic: topic}
	for _, p := range parts {
		rp := kmsg.NewOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset = p, 1
		rt.Partitions = append(rt.Partitions, rp)
	}
	commit.Topics = []kmsg.OffsetCommitRequestTopic{rt}
	for _, p := range raw(t, s.admin, commit).(*kmsg.OffsetCommitResponse).Topics[0].Partitions {
		if p.ErrorCode != 0 {
			t.Fatalf("commit %s-%d: %v", topic, p.Partition, kerr.ErrorForCode(p.ErrorCode))
		}
	}
	s.setACLs(t, onGroup(acl.OpDelete))
	req := kmsg.NewPtrOffsetDeleteRequest()
	req.Group = aclGroup
	dt := kmsg.OffsetDeleteRequestTopic{Topic: topic}
	for _, p := range parts {
		dt.Partitions = append(dt.Partitions, kmsg.OffsetDeleteRequestTopicPartition{Partition: p})
	}
	req.Topics = []kmsg.OffsetDeleteRequestTopic{dt}
	resp := raw(t, s.alice, req).(*kmsg.OffsetDeleteResponse)
	if resp.ErrorCode != 0 || len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != len(parts) {
		t.Fatalf("OffsetDelete: %v, %+v", kerr.ErrorForCode(resp.ErrorCode), resp.Topics)
	}
	for _, p := range resp.Topics[0].Partitions {
		if p.ErrorCode != kerr.TopicAuthorizationFailed.Code {
			t.Errorf("OffsetDelete %s-%d: %v, want TOPIC_AUTHORIZATION_FAILED", topic, p.Partition, kerr.ErrorForCode(p.ErrorCode))
		}
	}
	if got, _ := kafkaDenials(t, s); len(got) != 1 || got["TOPIC/READ"] != 1 {
		t.Errorf("counted %v, want TOPIC/READ once", got)
	}
}

// DeleteTopics by topic ID, as Kafka: an ID whose topic the caller may
// not DESCRIBE is TOPIC_AUTHORIZATION_FAILED without the topic's name
// (counted as TOPIC/DESCRIBE); with DESCRIBE and without DELETE it is
// TOPIC_AUTHORIZATION_FAILED with the name (TOPIC/DELETE); an unknown ID
// is UNKNOWN_TOPIC_ID, which refuses nothing. The topic stays.
func TestKafkaDeleteTopicsByIDDenied(t *testing.T) {
	t.Parallel()
	s := startACLServer(t)
	topic, err := s.broker.LookupTopic(t.Context(), aclTopic)
	if err != nil {
		t.Fatal(err)
	}
	del := func(id [16]byte) kmsg.DeleteTopicsResponseTopic {
		t.Helper()
		req := kmsg.NewPtrDeleteTopicsRequest()
		req.SetVersion(6)
		req.Topics = []kmsg.DeleteTopicsRequestTopic{{TopicID: id}}
		return raw(t, s.alice, req).(*kmsg.DeleteTopicsResponse).Topics[0]
	}
	counted := func(when string, want map[string]float64) {
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

	got := del(topic.ID)
	if got.ErrorCode != kerr.TopicAuthorizationFailed.Code || got.Topic != nil || got.TopicID != topic.ID ||
		got.ErrorMessage == nil || strings.Contains(*got.ErrorMessage, aclTopic) {
		t.Errorf("without DESCRIBE: %v, topic %v, ID %x, message %v; want TOPIC_AUTHORIZATION_FAILED, no name, the ID", kerr.ErrorForCode(got.ErrorCode), got.Topic, got.TopicID, got.ErrorMessage)
	}
	counted("without DESCRIBE", map[string]float64{"TOPIC/DESCRIBE": 1})

	if got := del([16]byte{1, 2, 3}); got.ErrorCode != kerr.UnknownTopicID.Code {
		t.Errorf("unknown ID: %v, want UNKNOWN_TOPIC_ID", kerr.ErrorForCode(got.ErrorCode))
	}
	counted("after an unknown ID", map[string]float64{"TOPIC/DESCRIBE": 1})

	s.setACLs(t, onTopic(acl.OpDescribe))
	got = del(topic.ID)
	if got.ErrorCode != kerr.TopicAuthorizationFailed.Code || got.Topic == nil || *got.Topic != aclTopic {
		t.Errorf("with DESCRIBE, without DELETE: %v, topic %v; want TOPIC_AUTHORIZATION_FAILED naming %s", kerr.ErrorForCode(got.ErrorCode), got.Topic, aclTopic)
	}
	counted("without DELETE", map[string]float64{"TOPIC/DESCRIBE": 1, "TOPIC/DELETE": 1})
	if _, err := s.broker.LookupTopic(t.Context(), aclTopic); err != nil {
		t.Errorf("%s after refused deletes: %v", aclTopic, err)
	}
}
