package kafka

import (
	"errors"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/streamhouse/streamhouse/internal/acl"
	"github.com/streamhouse/streamhouse/internal/auth"
	"github.com/streamhouse/streamhouse/internal/batch"
	"github.com/streamhouse/streamhouse/internal/broker"
	"github.com/streamhouse/streamhouse/internal/metadata"
)

// ACL enforcement on every Kafka API, against a real listener with logins
// required and the Authorizer enforcing: alice is an ordinary user, admin
// a super user (acl.Config.SuperUsers, as SUPER_USERS makes it), and the
// agents' own users are super users too.

// Names the cases use; "acl-" is the prefix of the PREFIXED grants.
const (
	aclTopic = "acl-t"
	aclGroup = "acl-g"
	aclTxnID = "acl-x"
)

type aclServer struct {
	*authServer
	alice, admin *kgo.Client
	aclReg       *prometheus.Registry // the Authorizer's metrics
}

func startACLServer(t *testing.T) *aclServer {
	t.Helper()
	aclReg := prometheus.NewRegistry()
	s := startAuthServer(t, testOptions{autoCreateTopics: true, acl: func(c *acl.Config) {
		c.Registry = aclReg
		c.Enforce = true
		c.SuperUsers = []string{"admin"}
		c.SuperUser = func(p string) bool { return auth.IsAgent(auth.ParsePrincipal(p)) }
	}})
	if err := s.auth.Bootstrap(t.Context(), []auth.BootstrapUser{{Name: "admin", Password: "admin-secret"}}); err != nil {
		t.Fatal(err)
	}
	s.dpTopic(t, aclTopic, 1, nil)
	as := &aclServer{authServer: s, aclReg: aclReg}
	as.alice = as.login("alice")
	as.admin = as.login("admin")
	return as
}

// login is a client of user (password user-secret) that speaks the
// versions of Kafka 3.0 (topics by name everywhere).
func (s *aclServer) login(user string) *kgo.Client {
	return s.client(kgo.SASL(mechanism(auth.MechanismScramSHA256, user, user+"-secret")), kgo.MaxVersions(kversion.V3_0_0()))
}

// raw sends req to the agent as it is (no coordinator lookups).
func raw(t *testing.T, cl *kgo.Client, req kmsg.Request) kmsg.Response {
	t.Helper()
	resp, err := cl.SeedBrokers()[0].Request(dpCtx(t), req)
	if err != nil {
		t.Fatalf("%T: %v", req, err)
	}
	return resp
}

// setACLs replaces every stored binding with bs (enforced here when it
// returns).
func (s *aclServer) setACLs(t *testing.T, bs ...acl.Binding) {
	t.Helper()
	for _, r := range s.acl.DeleteACLs(t.Context(), []acl.Filter{acl.AnyFilter}) {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	for i, err := range s.acl.CreateACLs(t.Context(), bs) {
		if err != nil {
			t.Fatalf("grant %s: %v", bs[i], err)
		}
	}
}

func grant(typ acl.ResourceType, name string, op acl.Operation) acl.Binding {
	return acl.Binding{ResourceType: typ, ResourceName: name, PatternType: acl.PatternLiteral,
		Principal: "User:alice", Host: "*", Operation: op, Permission: acl.PermissionAllow}
}

func onTopic(op acl.Operation) acl.Binding { return grant(acl.ResourceTopic, aclTopic, op) }
func onGroup(op acl.Operation) acl.Binding { return grant(acl.ResourceGroup, aclGroup, op) }
func onTxnID(op acl.Operation) acl.Binding { return grant(acl.ResourceTransactionalID, aclTxnID, op) }
func onCluster(op acl.Operation) acl.Binding {
	return grant(acl.ResourceCluster, acl.ClusterName, op)
}

// asPrefixed is b on the "acl-" prefix (the cluster has only its name).
func asPrefixed(b acl.Binding) acl.Binding {
	if b.ResourceType != acl.ResourceCluster {
		b.ResourceName, b.PatternType = "acl-", acl.PatternPrefixed
	}
	return b
}

func asDeny(b acl.Binding) acl.Binding {
	b.Permission = acl.PermissionDeny
	return b
}

var authFailures = []int16{kerr.TopicAuthorizationFailed.Code, kerr.GroupAuthorizationFailed.Code,
	kerr.ClusterAuthorizationFailed.Code, kerr.TransactionalIDAuthorizationFailed.Code}

// aclCase is one API's authorization: with base granted, the request is
// refused with denied until grants are added too.
type aclCase struct {
	name   string
	req    func(t *testing.T) kmsg.Request
	code   func(kmsg.Response) int16
	denied int16
	base   []acl.Binding
	grants []acl.Binding
	// alt, when set, is another set of grants that allows the request
	// (Kafka's alternatives: CREATE on the cluster or the topic ...).
	alt []acl.Binding
	// setup, when set, runs (as the super user) before each request.
	setup func(t *testing.T, s *aclServer)
}

func aclCases() []aclCase {
	record := func(t *testing.T) []byte { return dpBatch(t, batch.BuildOptions{}) }
	produce := func(txnID string) func(t *testing.T) kmsg.Request {
		return func(t *testing.T) kmsg.Request {
			req := dpProduceReq(0, aclTopic, 0, 1, record(t))
			if txnID != "" {
				req.TransactionID = &txnID
			}
			return req
		}
	}
	produceCode := func(r kmsg.Response) int16 {
		return r.(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode
	}
	offsetCommit := func(*testing.T) kmsg.Request {
		req := kmsg.NewPtrOffsetCommitRequest()
		req.Group, req.Generation = aclGroup, -1
		p := kmsg.NewOffsetCommitRequestTopicPartition()
		p.Partition, p.Offset = 0, 0
		req.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: aclTopic, Partitions: []kmsg.OffsetCommitRequestTopicPartition{p}}}
		return req
	}
	offsetCommitCode := func(r kmsg.Response) int16 {
		return r.(*kmsg.OffsetCommitResponse).Topics[0].Partitions[0].ErrorCode
	}
	offsetFetch := func(*testing.T) kmsg.Request {
		req := kmsg.NewPtrOffsetFetchRequest()
		req.Group = aclGroup
		req.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: aclTopic, Partitions: []int32{0}}}
		req.Groups = []kmsg.OffsetFetchRequestGroup{{Group: aclGroup, Topics: []kmsg.OffsetFetchRequestGroupTopic{{Topic: aclTopic, Partitions: []int32{0}}}}}
		return req
	}
	offsetFetchGroupCode := func(r kmsg.Response) int16 {
		resp := r.(*kmsg.OffsetFetchResponse)
		if resp.Version >= 8 {
			return resp.Groups[0].ErrorCode
		}
		return resp.ErrorCode
	}
	offsetFetchTopicCode := func(r kmsg.Response) int16 {
		resp := r.(*kmsg.OffsetFetchResponse)
		if resp.Version >= 8 {
			if c := resp.Groups[0].ErrorCode; c != 0 {
				return c
			}
			return resp.Groups[0].Topics[0].Partitions[0].ErrorCode
		}
		if resp.ErrorCode != 0 {
			return resp.ErrorCode
		}
		return resp.Topics[0].Partitions[0].ErrorCode
	}
	findCoordinator := func(typ int8, key string) func(*testing.T) kmsg.Request {
		return func(*testing.T) kmsg.Request {
			req := kmsg.NewPtrFindCoordinatorRequest()
			req.CoordinatorType, req.CoordinatorKey, req.CoordinatorKeys = typ, key, []string{key}
			return req
		}
	}
	findCoordinatorCode := func(r kmsg.Response) int16 {
		resp := r.(*kmsg.FindCoordinatorResponse)
		if resp.Version >= 4 {
			return resp.Coordinators[0].ErrorCode
		}
		return resp.ErrorCode
	}
	addPartitions := func(*testing.T) kmsg.Request {
		req := kmsg.NewPtrAddPartitionsToTxnRequest()
		req.TransactionalID, req.ProducerID, req.ProducerEpoch = aclTxnID, 1, 0
		req.Topics = []kmsg.AddPartitionsToTxnRequestTopic{{Topic: aclTopic, Partitions: []int32{0}}}
		return req
	}
	addPartitionsCode := func(r kmsg.Response) int16 {
		return r.(*kmsg.AddPartitionsToTxnResponse).Topics[0].Partitions[0].ErrorCode
	}
	addOffsets := func(*testing.T) kmsg.Request {
		req := kmsg.NewPtrAddOffsetsToTxnRequest()
		req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Group = aclTxnID, 1, 0, aclGroup
		return req
	}
	txnOffsetCommit := func(*testing.T) kmsg.Request {
		req := kmsg.NewPtrTxnOffsetCommitRequest()
		req.TransactionalID, req.Group, req.ProducerID, req.ProducerEpoch, req.Generation = aclTxnID, aclGroup, 1, 0, -1
		p := kmsg.NewTxnOffsetCommitRequestTopicPartition()
		p.Partition, p.Offset = 0, 0
		req.Topics = []kmsg.TxnOffsetCommitRequestTopic{{Topic: aclTopic, Partitions: []kmsg.TxnOffsetCommitRequestTopicPartition{p}}}
		return req
	}
	txnOffsetCommitCode := func(r kmsg.Response) int16 {
		return r.(*kmsg.TxnOffsetCommitResponse).Topics[0].Partitions[0].ErrorCode
	}
	offsetDelete := func(*testing.T) kmsg.Request {
		req := kmsg.NewPtrOffsetDeleteRequest()
		req.Group = aclGroup
		req.Topics = []kmsg.OffsetDeleteRequestTopic{{Topic: aclTopic, Partitions: []kmsg.OffsetDeleteRequestTopicPartition{{Partition: 0}}}}
		return req
	}
	offsetDeleteCode := func(r kmsg.Response) int16 {
		resp := r.(*kmsg.OffsetDeleteResponse)
		if resp.ErrorCode != 0 {
			return resp.ErrorCode
		}
		return resp.Topics[0].Partitions[0].ErrorCode
	}
	createTopics := func(*testing.T) kmsg.Request {
		req := kmsg.NewPtrCreateTopicsRequest()
		t := kmsg.NewCreateTopicsRequestTopic()
		t.Topic, t.NumPartitions, t.ReplicationFactor = "acl-new", 1, 1
		req.Topics = []kmsg.CreateTopicsRequestTopic{t}
		return req
	}
	configResource := func(typ kmsg.ConfigResourceType, name string) func(*testing.T) kmsg.Request {
		return func(*testing.T) kmsg.Request {
			req := kmsg.NewPtrDescribeConfigsRequest()
			req.Resources = []kmsg.DescribeConfigsRequestResource{{ResourceType: typ, ResourceName: name}}
			return req
		}
	}
	describeConfigsCode := func(r kmsg.Response) int16 {
		return r.(*kmsg.DescribeConfigsResponse).Resources[0].ErrorCode
	}
	bobACL := func() (kmsg.ACLResourceType, string, kmsg.ACLResourcePatternType, string, string, kmsg.ACLOperation, kmsg.ACLPermissionType) {
		return kmsg.ACLResourceTypeTopic, "bobs", kmsg.ACLResourcePatternTypeLiteral, "User:bob", "*", kmsg.ACLOperationRead, kmsg.ACLPermissionTypeAllow
	}
	topicAuth, groupAuth := kerr.TopicAuthorizationFailed.Code, kerr.GroupAuthorizationFailed.Code
	clusterAuth, txnAuth := kerr.ClusterAuthorizationFailed.Code, kerr.TransactionalIDAuthorizationFailed.Code

	return []aclCase{
		{name: "Produce", req: produce(""), code: produceCode, denied: topicAuth,
			grants: []acl.Binding{onTopic(acl.OpWrite)}},
		{name: "Produce/transactional", req: produce(aclTxnID), code: produceCode, denied: txnAuth,
			base: []acl.Binding{onTopic(acl.OpWrite)}, grants: []acl.Binding{onTxnID(acl.OpWrite)}},
		{name: "Fetch", req: func(*testing.T) kmsg.Request {
			return dpFetchReq(0, aclTopic, map[int32]int64{0: 0})
		}, code: func(r kmsg.Response) int16 {
			return r.(*kmsg.FetchResponse).Topics[0].Partitions[0].ErrorCode
		}, denied: topicAuth, grants: []acl.Binding{onTopic(acl.OpRead)}},
		{name: "ListOffsets", req: func(*testing.T) kmsg.Request {
			req := kmsg.NewPtrListOffsetsRequest()
			req.ReplicaID = -1
			p := kmsg.NewListOffsetsRequestTopicPartition()
			p.Partition, p.Timestamp = 0, -1
			req.Topics = []kmsg.ListOffsetsRequestTopic{{Topic: aclTopic, Partitions: []kmsg.ListOffsetsRequestTopicPartition{p}}}
			return req
		}, code: func(r kmsg.Response) int16 {
			return r.(*kmsg.ListOffsetsResponse).Topics[0].Partitions[0].ErrorCode
		}, denied: topicAuth, grants: []acl.Binding{onTopic(acl.OpDescribe)}, alt: []acl.Binding{onTopic(acl.OpRead)}},
		{name: "Metadata", req: func(*testing.T) kmsg.Request {
			req := kmsg.NewPtrMetadataRequest()
			req.Topics = []kmsg.MetadataRequestTopic{{Topic: kmsg.StringPtr(aclTopic)}}
			return req
		}, code: func(r kmsg.Response) int16 {
			return r.(*kmsg.MetadataResponse).Topics[0].ErrorCode
		}, denied: topicAuth, grants: []acl.Binding{onTopic(acl.OpDescribe)}, alt: []acl.Binding{onTopic(acl.OpWrite)}},
		{name: "OffsetForLeaderEpoch", req: func(*testing.T) kmsg.Request {
			req := kmsg.NewPtrOffsetForLeaderEpochRequest()
			req.ReplicaID = -1
			p := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
			p.Partition, p.LeaderEpoch = 0, 0
			req.Topics = []kmsg.OffsetForLeaderEpochRequestTopic{{Topic: aclTopic, Partitions: []kmsg.OffsetForLeaderEpochRequestTopicPartition{p}}}
			return req
		}, code: func(r kmsg.Response) int16 {
			return r.(*kmsg.OffsetForLeaderEpochResponse).Topics[0].Partitions[0].ErrorCode
		}, denied: topicAuth, grants: []acl.Binding{onTopic(acl.OpDescribe)}},
		{name: "OffsetCommit/group", req: offsetCommit, code: offsetCommitCode, denied: groupAuth,
			base: []acl.Binding{onTopic(acl.OpRead)}, grants: []acl.Binding{onGroup(acl.OpRead)}},
		{name: "OffsetCommit/topic", req: offsetCommit, code: offsetCommitCode, denied: topicAuth,
			base: []acl.Binding{onGroup(acl.OpRead)}, grants: []acl.Binding{onTopic(acl.OpRead)}},
		{name: "OffsetFetch/group", req: offsetFetch, code: offsetFetchGroupCode, denied: groupAuth,
			base: []acl.Binding{onTopic(acl.OpDescribe)}, grants: []acl.Binding{onGroup(acl.OpDescribe)}},
		{name: "OffsetFetch/topic", req: offsetFetch, code: offsetFetchTopicCode, denied: topicAuth,
			base: []acl.Binding{onGroup(acl.OpDescribe)}, grants: []acl.Binding{onTopic(acl.OpDescribe)}},
		{name: "FindCoordinator/group", req: findCoordinator(0, aclGroup), code: findCoordinatorCode, denied: groupAuth,
			grants: []acl.Binding{onGroup(acl.OpDescribe)}},
		{name: "FindCoordinator/transaction", req: findCoordinator(1, aclTxnID), code: findCoordinatorCode, denied: txnAuth,
			grants: []acl.Binding{onTxnID(acl.OpDescribe)}},
		{name: "JoinGroup", req: func(*testing.T) kmsg.Request {
			req := kmsg.NewPtrJoinGroupRequest()
			req.Group, req.SessionTimeoutMillis, req.RebalanceTimeoutMillis, req.ProtocolType = aclGroup, 10000, 10000, "consumer"
			req.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: []byte{}}}
			return req
		}, code: func(r kmsg.Response) int16 { return r.(*kmsg.JoinGroupResponse).ErrorCode },
			denied: groupAuth, grants: []acl.Binding{onGroup(acl.OpRead)}},
		{name: "Heartbeat", req: func(*testing.T) kmsg.Request {
			req := kmsg.NewPtrHeartbeatRequest()
			req.Group, req.MemberID, req.Generation = aclGroup, "m", 1
			return req
		}, code: func(r kmsg.Response) int16 { return r.(*kmsg.HeartbeatResponse).ErrorCode },
			denied: groupAuth, grants: []acl.Binding{onGroup(acl.OpRead)}},
		{name: "LeaveGroup", req: func(*testing.T) kmsg.Request {
			req := kmsg.NewPtrLeaveGroupRequest()
			req.Group, req.MemberID = aclGroup, "m"
			req.Members = []kmsg.LeaveGroupRequestMember{{MemberID: "m"}}
			return req
		}, code: func(r kmsg.Response) int16 { return r.(*kmsg.LeaveGroupResponse).ErrorCode },
			denied: groupAuth, grants: []acl.Binding{onGroup(acl.OpRead)}},
		{name: "SyncGroup", req: func(*testing.T) kmsg.Request {
			req := kmsg.NewPtrSyncGroupRequest()
			req.Group, req.MemberID, req.Generation = aclGroup, "m", 1
			return req
		}, code: func(r kmsg.Response) int16 { return r.(*kmsg.SyncGroupResponse).ErrorCode },
			denied: groupAuth, grants: []acl.Binding{onGroup(acl.OpRead)}},
		{name: "DescribeGroups", req: func(*testing.T) kmsg.Request {
			req := kmsg.NewPtrDescribeGroupsRequest()
			req.Groups = []string{aclGroup}
			return req
		}, code: func(r kmsg.Response) int16 { return r.(*kmsg.DescribeGroupsResponse).Groups[0].ErrorCode },
			denied: groupAuth, grants: []acl.Binding{onGroup(acl.OpDescribe)}},
		{name: "CreateTopics", req: createTopics, code: func(r kmsg.Response) int16 {
			return r.(*kmsg.CreateTopicsResponse).Topics[0].ErrorCode
		}, denied: topicAuth, grants: []acl.Binding{grant(acl.ResourceTopic, "acl-new", acl.OpCreate)},
			alt: []acl.Binding{onCluster(acl.OpCreate)}},
		{name: "DeleteTopics", req: func(*testing.T) kmsg.Request {
			req := kmsg.NewPtrDeleteTopicsRequest()
			req.TopicNames = []string{"acl-gone"}
			req.Topics = []kmsg.DeleteTopicsRequestTopic{{Topic: kmsg.StringPtr("acl-gone")}}
			return req
		}, code: func(r kmsg.Response) int16 { return r.(*kmsg.DeleteTopicsResponse).Topics[0].ErrorCode },
			denied: topicAuth, grants: []acl.Binding{grant(acl.ResourceTopic, "acl-gone", acl.OpDelete)}},
		{name: "DeleteRecords", req: func(*testing.T) kmsg.Request {
			req := kmsg.NewPtrDeleteRecordsRequest()
			req.Topics = []kmsg.DeleteRecordsRequestTopic{{Topic: aclTopic, Partitions: []kmsg.DeleteRecordsRequestTopicPartition{{Partition: 0, Offset: 0}}}}
			return req
		}, code: func(r kmsg.Response) int16 {
			return r.(*kmsg.DeleteRecordsResponse).Topics[0].Partitions[0].ErrorCode
		}, denied: topicAuth, grants: []acl.Binding{onTopic(acl.OpDelete)}},
		{name: "InitProducerId/transactional", req: func(*testing.T) kmsg.Request {
			req := kmsg.NewPtrInitProducerIDRequest()
			req.TransactionalID, req.TransactionTimeoutMillis = kmsg.StringPtr(aclTxnID), 10000
			return req
		}, code: func(r kmsg.Response) int16 { return r.(*kmsg.InitProducerIDResponse).ErrorCode },
			denied: txnAuth, grants: []acl.Binding{onTxnID(acl.OpWrite)}},
		{name: "InitProducerId/idempotent", req: func(*testing.T) kmsg.Request {
			return kmsg.NewPtrInitProducerIDRequest()
		}, code: func(r kmsg.Response) int16 { return r.(*kmsg.InitProducerIDResponse).ErrorCode },
			denied: clusterAuth, grants: []acl.Binding{onCluster(acl.OpIdempotentWrite)},
			// Kafka 3.0+: WRITE on any topic is enough.
			alt: []acl.Binding{grant(acl.ResourceTopic, "elsewhere", acl.OpWrite)}},
		{name: "AddPartitionsToTxn/transactional-id", req: addPartitions, code: addPartitionsCode, denied: txnAuth,
			base: []acl.Binding{onTopic(acl.OpWrite)}, grants: []acl.Binding{onTxnID(acl.OpWrite)}},
		{name: "AddPartitionsToTxn/topic", req: addPartitions, code: addPartitionsCode, denied: topicAuth,
			base: []acl.Binding{onTxnID(acl.OpWrite)}, grants: []acl.Binding{onTopic(acl.OpWrite)}},
		{name: "AddOffsetsToTxn/transactional-id", req: addOffsets, code: func(r kmsg.Response) int16 {
			return r.(*kmsg.AddOffsetsToTxnResponse).ErrorCode
		}, denied: txnAuth, base: []acl.Binding{onGroup(acl.OpRead)}, grants: []acl.Binding{onTxnID(acl.OpWrite)}},
		{name: "AddOffsetsToTxn/group", req: addOffsets, code: func(r kmsg.Response) int16 {
			return r.(*kmsg.AddOffsetsToTxnResponse).ErrorCode
		}, denied: groupAuth, base: []acl.Binding{onTxnID(acl.OpWrite)}, grants: []acl.Binding{onGroup(acl.OpRead)}},
		{name: "EndTxn", req: func(*testing.T) kmsg.Request {
			req := kmsg.NewPtrEndTxnRequest()
			req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit = aclTxnID, 1, 0, true
			return req
		}, code: func(r kmsg.Response) int16 { return r.(*kmsg.EndTxnResponse).ErrorCode },
			denied: txnAuth, grants: []acl.Binding{onTxnID(acl.OpWrite)}},
		{name: "WriteTxnMarkers", req: func(*testing.T) kmsg.Request {
			req := kmsg.NewPtrWriteTxnMarkersRequest()
			m := kmsg.NewWriteTxnMarkersRequestMarker()
			m.ProducerID, m.ProducerEpoch, m.Committed = 1, 0, true
			m.Topics = []kmsg.WriteTxnMarkersRequestMarkerTopic{{Topic: aclTopic, Partitions: []int32{0}}}
			req.Markers = []kmsg.WriteTxnMarkersRequestMarker{m}
			return req
		}, code: func(r kmsg.Response) int16 {
			return r.(*kmsg.WriteTxnMarkersResponse).Markers[0].Topics[0].Partitions[0].ErrorCode
		}, denied: clusterAuth, grants: []acl.Binding{onCluster(acl.OpClusterAction)}},
		{name: "TxnOffsetCommit/transactional-id", req: txnOffsetCommit, code: txnOffsetCommitCode, denied: txnAuth,
			base: []acl.Binding{onGroup(acl.OpRead), onTopic(acl.OpRead)}, grants: []acl.Binding{onTxnID(acl.OpWrite)}},
		{name: "TxnOffsetCommit/group", req: txnOffsetCommit, code: txnOffsetCommitCode, denied: groupAuth,
			base: []acl.Binding{onTxnID(acl.OpWrite), onTopic(acl.OpRead)}, grants: []acl.Binding{onGroup(acl.OpRead)}},
		{name: "TxnOffsetCommit/topic", req: txnOffsetCommit, code: txnOffsetCommitCode, denied: topicAuth,
			base: []acl.Binding{onTxnID(acl.OpWrite), onGroup(acl.OpRead)}, grants: []acl.Binding{onTopic(acl.OpRead)}},
		{name: "DescribeConfigs/topic", req: configResource(kmsg.ConfigResourceTypeTopic, aclTopic), code: describeConfigsCode,
			denied: topicAuth, grants: []acl.Binding{onTopic(acl.OpDescribeConfigs)}, alt: []acl.Binding{onTopic(acl.OpAlterConfigs)}},
		{name: "DescribeConfigs/broker", req: configResource(kmsg.ConfigResourceTypeBroker, ""), code: describeConfigsCode,
			denied: clusterAuth, grants: []acl.Binding{onCluster(acl.OpDescribeConfigs)}},
		{name: "AlterConfigs", req: func(*testing.T) kmsg.Request {
			req := kmsg.NewPtrAlterConfigsRequest()
			req.ValidateOnly = true
			req.Resources = []kmsg.AlterConfigsRequestResource{{ResourceType: kmsg.ConfigResourceTypeTopic, ResourceName: aclTopic,
				Configs: []kmsg.AlterConfigsRequestResourceConfig{{Name: "retention.ms", Value: kmsg.StringPtr("86400000")}}}}
			return req
		}, code: func(r kmsg.Response) int16 { return r.(*kmsg.AlterConfigsResponse).Resources[0].ErrorCode },
			denied: topicAuth, grants: []acl.Binding{onTopic(acl.OpAlterConfigs)}},
		{name: "IncrementalAlterConfigs", req: func(*testing.T) kmsg.Request {
			req := kmsg.NewPtrIncrementalAlterConfigsRequest()
			req.ValidateOnly = true
			req.Resources = []kmsg.IncrementalAlterConfigsRequestResource{{ResourceType: kmsg.ConfigResourceTypeTopic, ResourceName: aclTopic,
				Configs: []kmsg.IncrementalAlterConfigsRequestResourceConfig{{Name: "retention.ms", Op: kmsg.IncrementalAlterConfigOpSet, Value: kmsg.StringPtr("86400000")}}}}
			return req
		}, code: func(r kmsg.Response) int16 { return r.(*kmsg.IncrementalAlterConfigsResponse).Resources[0].ErrorCode },
			denied: topicAuth, grants: []acl.Binding{onTopic(acl.OpAlterConfigs)}},
		{name: "CreatePartitions", req: func(*testing.T) kmsg.Request {
			req := kmsg.NewPtrCreatePartitionsRequest()
			req.ValidateOnly = true
			req.Topics = []kmsg.CreatePartitionsRequestTopic{{Topic: aclTopic, Count: 2}}
			return req
		}, code: func(r kmsg.Response) int16 { return r.(*kmsg.CreatePartitionsResponse).Topics[0].ErrorCode },
			denied: topicAuth, grants: []acl.Binding{onTopic(acl.OpAlter)}},
		{name: "DeleteGroups", req: func(*testing.T) kmsg.Request {
			req := kmsg.NewPtrDeleteGroupsRequest()
			req.Groups = []string{aclGroup}
			return req
		}, code: func(r kmsg.Response) int16 { return r.(*kmsg.DeleteGroupsResponse).Groups[0].ErrorCode },
			denied: groupAuth, grants: []acl.Binding{onGroup(acl.OpDelete)}},
		{name: "OffsetDelete/group", req: offsetDelete, code: offsetDeleteCode, denied: groupAuth, setup: commitOffset,
			base: []acl.Binding{onTopic(acl.OpRead)}, grants: []acl.Binding{onGroup(acl.OpDelete)}},
		{name: "OffsetDelete/topic", req: offsetDelete, code: offsetDeleteCode, denied: topicAuth, setup: commitOffset,
			base: []acl.Binding{onGroup(acl.OpDelete)}, grants: []acl.Binding{onTopic(acl.OpRead)}},
		{name: "DescribeClientQuotas", req: func(*testing.T) kmsg.Request {
			return kmsg.NewPtrDescribeClientQuotasRequest()
		}, code: func(r kmsg.Response) int16 { return r.(*kmsg.DescribeClientQuotasResponse).ErrorCode },
			denied: clusterAuth, grants: []acl.Binding{onCluster(acl.OpDescribeConfigs)}},
		{name: "AlterClientQuotas", req: func(*testing.T) kmsg.Request {
			req := kmsg.NewPtrAlterClientQuotasRequest()
			req.ValidateOnly = true
			req.Entries = []kmsg.AlterClientQuotasRequestEntry{{
				Entity: []kmsg.AlterClientQuotasRequestEntryEntity{{Type: "user", Name: kmsg.StringPtr("bob")}},
				Ops:    []kmsg.AlterClientQuotasRequestEntryOp{{Key: "producer_byte_rate", Value: 1024}},
			}}
			return req
		}, code: func(r kmsg.Response) int16 { return r.(*kmsg.AlterClientQuotasResponse).Entries[0].ErrorCode },
			denied: clusterAuth, grants: []acl.Binding{onCluster(acl.OpAlterConfigs)}},
		{name: "DescribeUserScramCredentials", req: func(*testing.T) kmsg.Request {
			return kmsg.NewPtrDescribeUserSCRAMCredentialsRequest()
		}, code: func(r kmsg.Response) int16 { return r.(*kmsg.DescribeUserSCRAMCredentialsResponse).ErrorCode },
			denied: clusterAuth, grants: []acl.Binding{onCluster(acl.OpDescribe)}},
		{name: "AlterUserScramCredentials", req: func(*testing.T) kmsg.Request {
			req := kmsg.NewPtrAlterUserSCRAMCredentialsRequest()
			req.Deletions = []kmsg.AlterUserSCRAMCredentialsRequestDeletion{{Name: "nobody", Mechanism: 1}}
			return req
		}, code: func(r kmsg.Response) int16 { return r.(*kmsg.AlterUserSCRAMCredentialsResponse).Results[0].ErrorCode },
			denied: clusterAuth, grants: []acl.Binding{onCluster(acl.OpAlter)}},
		{name: "DescribeProducers", req: func(*testing.T) kmsg.Request {
			req := kmsg.NewPtrDescribeProducersRequest()
			req.Topics = []kmsg.DescribeProducersRequestTopic{{Topic: aclTopic, Partitions: []int32{0}}}
			return req
		}, code: func(r kmsg.Response) int16 {
			return r.(*kmsg.DescribeProducersResponse).Topics[0].Partitions[0].ErrorCode
		}, denied: topicAuth, grants: []acl.Binding{onTopic(acl.OpRead)}},
		{name: "DescribeTransactions", req: func(*testing.T) kmsg.Request {
			req := kmsg.NewPtrDescribeTransactionsRequest()
			req.TransactionalIDs = []string{aclTxnID}
			return req
		}, code: func(r kmsg.Response) int16 {
			return r.(*kmsg.DescribeTransactionsResponse).TransactionStates[0].ErrorCode
		}, denied: txnAuth, grants: []acl.Binding{onTxnID(acl.OpDescribe)}},
		{name: "DescribeAcls", req: func(*testing.T) kmsg.Request {
			req := kmsg.NewPtrDescribeACLsRequest()
			req.ResourceType, req.ResourcePatternType = kmsg.ACLResourceTypeAny, kmsg.ACLResourcePatternTypeAny
			req.Operation, req.PermissionType = kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAny
			return req
		}, code: func(r kmsg.Response) int16 { return r.(*kmsg.DescribeACLsResponse).ErrorCode },
			denied: clusterAuth, grants: []acl.Binding{onCluster(acl.OpDescribe)}, alt: []acl.Binding{onCluster(acl.OpAlter)}},
		{name: "CreateAcls", req: func(*testing.T) kmsg.Request {
			req := kmsg.NewPtrCreateACLsRequest()
			c := kmsg.NewCreateACLsRequestCreation()
			c.ResourceType, c.ResourceName, c.ResourcePatternType, c.Principal, c.Host, c.Operation, c.PermissionType = bobACL()
			req.Creations = []kmsg.CreateACLsRequestCreation{c}
			return req
		}, code: func(r kmsg.Response) int16 { return r.(*kmsg.CreateACLsResponse).Results[0].ErrorCode },
			denied: clusterAuth, grants: []acl.Binding{onCluster(acl.OpAlter)}},
		{name: "DeleteAcls", req: func(*testing.T) kmsg.Request {
			req := kmsg.NewPtrDeleteACLsRequest()
			f := kmsg.NewDeleteACLsRequestFilter()
			rt, name, pt, p, h, op, perm := bobACL()
			f.ResourceType, f.ResourceName, f.ResourcePatternType, f.Principal, f.Host, f.Operation, f.PermissionType = rt, &name, pt, &p, &h, op, perm
			req.Filters = []kmsg.DeleteACLsRequestFilter{f}
			return req
		}, code: func(r kmsg.Response) int16 { return r.(*kmsg.DeleteACLsResponse).Results[0].ErrorCode },
			denied: clusterAuth, grants: []acl.Binding{onCluster(acl.OpAlter)}},
	}
}

// commitOffset commits offset 0 of acl-t for group acl-g, as the super
// user, so the group exists.
func commitOffset(t *testing.T, s *aclServer) {
	t.Helper()
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Group, req.Generation = aclGroup, -1
	p := kmsg.NewOffsetCommitRequestTopicPartition()
	req.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: aclTopic, Partitions: []kmsg.OffsetCommitRequestTopicPartition{p}}}
	if code := raw(t, s.admin, req).(*kmsg.OffsetCommitResponse).Topics[0].Partitions[0].ErrorCode; code != 0 {
		t.Fatalf("commit for %s: %v", aclGroup, kerr.ErrorForCode(code))
	}
}

// TestACLEnforcedPerAPI checks, for every Kafka API with an authorization
// rule, Kafka's table: without the ACL the request is refused with the
// exact *_AUTHORIZATION_FAILED code; with it (literal, or prefixed on
// "acl-", or Kafka's alternative grant) it passes the check; a super user
// always does; and a DENY beats the ALLOW.
func TestACLEnforcedPerAPI(t *testing.T) {
	s := startACLServer(t)
	s.dpTopic(t, "acl-gone", 1, nil)
	covered := make(map[int16]bool)
	for _, c := range aclCases() {
		t.Run(c.name, func(t *testing.T) {
			call := func(cl *kgo.Client, what string) int16 {
				t.Helper()
				if c.setup != nil {
					c.setup(t, s)
				}
				resp := raw(t, cl, c.req(t))
				covered[resp.Key()] = true
				return c.code(resp)
			}
			allowed := func(cl *kgo.Client, what string) {
				t.Helper()
				if got := call(cl, what); slices.Contains(authFailures, got) {
					t.Errorf("%s: %s, want it allowed", what, kerr.ErrorForCode(got))
				}
			}
			refused := func(what string) {
				t.Helper()
				if got := call(s.alice, what); got != c.denied {
					t.Errorf("%s: code %d (%v), want %s", what, got, kerr.ErrorForCode(got), kerr.ErrorForCode(c.denied))
				}
			}
			s.setACLs(t, c.base...)
			refused("without the ACL")
			allowed(s.admin, "super user")
			s.setACLs(t, append(slices.Clone(c.base), c.grants...)...)
			allowed(s.alice, "with the ACL")
			var prefixed []acl.Binding
			for _, b := range c.grants {
				prefixed = append(prefixed, asPrefixed(b))
			}
			s.setACLs(t, append(slices.Clone(c.base), prefixed...)...)
			allowed(s.alice, "with a PREFIXED ACL")
			if c.alt != nil {
				s.setACLs(t, append(slices.Clone(c.base), c.alt...)...)
				allowed(s.alice, "with the alternative ACL")
			}
			deny := append(slices.Clone(c.base), c.grants...)
			for _, b := range c.grants {
				deny = append(deny, asDeny(b))
			}
			s.setACLs(t, deny...)
			refused("with a DENY beside the ALLOW")
			deny = append(slices.Clone(c.base), c.grants...)
			for _, b := range c.grants {
				deny = append(deny, asPrefixed(asDeny(b)))
			}
			s.setACLs(t, deny...)
			refused("with a PREFIXED DENY beside the ALLOW")
			allowed(s.admin, "super user with a DENY")
		})
	}
	// Every API the listener serves has a case, except those without a
	// rule (as in Kafka) and those with a test of their own below.
	exempt := map[int16]bool{17: true, 18: true, 36: true, 60: true, // SASL, ApiVersions, DescribeCluster
		16: true, 66: true} // ListGroups, ListTransactions: filtered listings (TestACLListingsFiltered)
	for _, key := range registeredKeys() {
		if !covered[key] && !exempt[key] {
			t.Errorf("API key %d (%s) has no authorization case", key, kmsg.NameForKey(key))
		}
	}
}

// registeredKeys are the API keys the listener serves.
func registeredKeys() []int16 {
	var keys []int16
	for key := range handlers {
		keys = append(keys, key)
	}
	slices.Sort(keys)
	return keys
}

// A principal learns nothing of topics it may not DESCRIBE: asking for
// one that exists and one that does not answer alike (and the missing one
// is not auto-created), and listings leave them out.
func TestACLTopicExistenceHidden(t *testing.T) {
	s := startACLServer(t)
	s.setACLs(t, onCluster(acl.OpIdempotentWrite))
	const missing = "acl-missing"
	ask := func(name string) kmsg.MetadataResponseTopic {
		req := kmsg.NewPtrMetadataRequest()
		req.AllowAutoTopicCreation = true
		req.Topics = []kmsg.MetadataRequestTopic{{Topic: kmsg.StringPtr(name)}}
		return raw(t, s.alice, req).(*kmsg.MetadataResponse).Topics[0]
	}
	existing, absent := ask(aclTopic), ask(missing)
	absent.Topic = existing.Topic
	if existing.ErrorCode != kerr.TopicAuthorizationFailed.Code || !reflectEqual(existing, absent) {
		t.Errorf("Metadata for an unauthorized topic that exists %+v, and one that does not %+v: want the same TOPIC_AUTHORIZATION_FAILED", existing, absent)
	}
	produce := func(name string) int16 {
		return raw(t, s.alice, dpProduceReq(0, name, 0, 1, dpBatch(t, batch.BuildOptions{}))).(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode
	}
	fetch := func(name string) int16 {
		return raw(t, s.alice, dpFetchReq(0, name, map[int32]int64{0: 0})).(*kmsg.FetchResponse).Topics[0].Partitions[0].ErrorCode
	}
	deleteTopic := func(name string) int16 {
		req := kmsg.NewPtrDeleteTopicsRequest()
		req.TopicNames = []string{name}
		req.Topics = []kmsg.DeleteTopicsRequestTopic{{Topic: kmsg.StringPtr(name)}}
		return raw(t, s.alice, req).(*kmsg.DeleteTopicsResponse).Topics[0].ErrorCode
	}
	for what, f := range map[string]func(string) int16{"Produce": produce, "Fetch": fetch, "DeleteTopics": deleteTopic} {
		if a, b := f(aclTopic), f(missing); a != kerr.TopicAuthorizationFailed.Code || b != a {
			t.Errorf("%s: existing topic %v, missing topic %v: want TOPIC_AUTHORIZATION_FAILED for both", what, kerr.ErrorForCode(a), kerr.ErrorForCode(b))
		}
	}
	if _, err := s.broker.Topic(t.Context(), missing); err == nil {
		t.Errorf("an unauthorized Metadata or Produce auto-created %s", missing)
	}

	// Listing all topics shows only those described; with DESCRIBE on
	// one, that one; a super user sees all.
	s.dpTopic(t, "acl-other", 1, nil)
	list := func(cl *kgo.Client) []string {
		var names []string
		for _, mt := range raw(t, cl, kmsg.NewPtrMetadataRequest()).(*kmsg.MetadataResponse).Topics {
			names = append(names, *mt.Topic)
		}
		slices.Sort(names)
		return names
	}
	if got := list(s.alice); len(got) != 0 {
		t.Errorf("all topics without DESCRIBE: %v, want none", got)
	}
	readO := grant(acl.ResourceTopic, "acl-o", acl.OpRead)
	readO.PatternType = acl.PatternPrefixed
	s.setACLs(t, readO)
	if got := list(s.alice); !slices.Equal(got, []string{"acl-other"}) {
		t.Errorf("all topics with READ on acl-o*: %v, want [acl-other]", got)
	}
	if got := list(s.admin); !slices.Equal(got, []string{"acl-other", aclTopic}) {
		t.Errorf("all topics as a super user: %v", got)
	}
	// Auto-creation needs CREATE.
	s.setACLs(t, asPrefixed(onTopic(acl.OpDescribe)))
	if mt := ask(missing); mt.ErrorCode != kerr.TopicAuthorizationFailed.Code {
		t.Errorf("auto-creating with DESCRIBE but no CREATE: %v, want TOPIC_AUTHORIZATION_FAILED", kerr.ErrorForCode(mt.ErrorCode))
	}
	s.setACLs(t, asPrefixed(onTopic(acl.OpDescribe)), asPrefixed(onTopic(acl.OpCreate)))
	if mt := ask(missing); mt.ErrorCode != 0 {
		t.Errorf("auto-creating with DESCRIBE and CREATE: %v", kerr.ErrorForCode(mt.ErrorCode))
	}
}

func reflectEqual(a, b kmsg.MetadataResponseTopic) bool {
	return a.ErrorCode == b.ErrorCode && a.TopicID == b.TopicID && len(a.Partitions) == len(b.Partitions) &&
		a.IsInternal == b.IsInternal && a.AuthorizedOperations == b.AuthorizedOperations
}

// Listings show what the principal may DESCRIBE: ListGroups every group
// with DESCRIBE on the cluster, else the groups it may DESCRIBE;
// ListTransactions the transactional ids it may DESCRIBE; authorized
// operations what the principal may do.
func TestACLListingsFiltered(t *testing.T) {
	s := startACLServer(t)
	for _, g := range []string{"acl-g1", "acl-g2"} {
		req := kmsg.NewPtrOffsetCommitRequest()
		req.Group, req.Generation = g, -1
		p := kmsg.NewOffsetCommitRequestTopicPartition()
		p.Partition, p.Offset = 0, 1
		req.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: aclTopic, Partitions: []kmsg.OffsetCommitRequestTopicPartition{p}}}
		if code := raw(t, s.admin, req).(*kmsg.OffsetCommitResponse).Topics[0].Partitions[0].ErrorCode; code != 0 {
			t.Fatalf("commit for %s: %v", g, kerr.ErrorForCode(code))
		}
	}
	for _, id := range []string{"acl-x1", "acl-x2"} {
		req := kmsg.NewPtrInitProducerIDRequest()
		req.TransactionalID, req.TransactionTimeoutMillis = kmsg.StringPtr(id), 10000
		if code := raw(t, s.admin, req).(*kmsg.InitProducerIDResponse).ErrorCode; code != 0 {
			t.Fatalf("init %s: %v", id, kerr.ErrorForCode(code))
		}
	}
	groups := func() []string {
		var out []string
		for _, g := range raw(t, s.alice, kmsg.NewPtrListGroupsRequest()).(*kmsg.ListGroupsResponse).Groups {
			out = append(out, g.Group)
		}
		slices.Sort(out)
		return out
	}
	txns := func() []string {
		var out []string
		for _, st := range raw(t, s.alice, kmsg.NewPtrListTransactionsRequest()).(*kmsg.ListTransactionsResponse).TransactionStates {
			out = append(out, st.TransactionalID)
		}
		slices.Sort(out)
		return out
	}
	s.setACLs(t)
	if g, x := groups(), txns(); len(g) != 0 || len(x) != 0 {
		t.Errorf("without ACLs: groups %v, transactions %v; want none", g, x)
	}
	s.setACLs(t, grant(acl.ResourceGroup, "acl-g1", acl.OpDescribe), grant(acl.ResourceTransactionalID, "acl-x2", acl.OpWrite))
	if g, x := groups(), txns(); !slices.Equal(g, []string{"acl-g1"}) || !slices.Equal(x, []string{"acl-x2"}) {
		t.Errorf("with DESCRIBE on acl-g1 and WRITE on acl-x2: groups %v, transactions %v", g, x)
	}
	s.setACLs(t, onCluster(acl.OpDescribe))
	if g := groups(); !slices.Equal(g, []string{"acl-g1", "acl-g2"}) {
		t.Errorf("with DESCRIBE on the cluster: groups %v, want both", g)
	}

	// Authorized operations (KIP-430) are the principal's: a topic's in
	// Metadata, the cluster's in DescribeCluster.
	s.setACLs(t, onTopic(acl.OpRead), onCluster(acl.OpDescribe))
	req := kmsg.NewPtrMetadataRequest()
	req.Topics = []kmsg.MetadataRequestTopic{{Topic: kmsg.StringPtr(aclTopic)}}
	req.IncludeTopicAuthorizedOperations = true
	resp := raw(t, s.alice, req).(*kmsg.MetadataResponse)
	if want := int32(1<<acl.OpRead | 1<<acl.OpDescribe); resp.Topics[0].AuthorizedOperations != want {
		t.Errorf("topic authorized operations %b, want %b (READ, DESCRIBE)", resp.Topics[0].AuthorizedOperations, want)
	}
	clusterOps := func() int32 {
		req := kmsg.NewPtrDescribeClusterRequest()
		req.IncludeClusterAuthorizedOperations = true
		return raw(t, s.alice, req).(*kmsg.DescribeClusterResponse).ClusterAuthorizedOperations
	}
	if want := int32(1 << acl.OpDescribe); clusterOps() != want {
		t.Errorf("cluster authorized operations %b, want %b (DESCRIBE)", clusterOps(), want)
	}
	// Without DESCRIBE on the cluster its operations are not shown, as in
	// Kafka.
	s.setACLs(t, onTopic(acl.OpRead), onCluster(acl.OpIdempotentWrite))
	if got := clusterOps(); got != 0 {
		t.Errorf("cluster authorized operations without DESCRIBE: %b, want 0", got)
	}
}

// A librdkafka-style check from franz-go's producer: a denied produce
// fails the records with TOPIC_AUTHORIZATION_FAILED, and succeeds once
// WRITE is granted.
func TestACLProduceDeniedThenGranted(t *testing.T) {
	s := startACLServer(t)
	p := s.client(kgo.SASL(mechanism(auth.MechanismScramSHA512, "alice", "alice-secret")), kgo.DefaultProduceTopic(aclTopic),
		kgo.RecordRetries(0), kgo.UnknownTopicRetries(0))
	err := p.ProduceSync(dpCtx(t), &kgo.Record{Value: []byte("v")}).FirstErr()
	if !kerrIs(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("produce without WRITE: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
	s.setACLs(t, onTopic(acl.OpWrite))
	p2 := s.client(kgo.SASL(mechanism(auth.MechanismScramSHA512, "alice", "alice-secret")), kgo.DefaultProduceTopic(aclTopic))
	if err := p2.ProduceSync(dpCtx(t), &kgo.Record{Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatalf("idempotent produce with WRITE only (no IDEMPOTENT_WRITE): %v", err)
	}
}

func kerrIs(err error, want *kerr.Error) bool {
	var ke *kerr.Error
	return err != nil && errors.As(err, &ke) && ke.Code == want.Code
}

// A produce one agent forwards to the partition's leader (a REST or gRPC
// produce) runs there as the forwarding agent's own user, which the ACLs
// never refuse: the front end that took the request authorized its client.
// The leader does enforce ACLs on everyone else.
func TestACLForwardedProduceRunsAsAgent(t *testing.T) {
	store, bucket := sharedStorage(t)
	ctx := dpCtx(t)
	enforce := func(c *acl.Config) {
		c.Enforce = true
		c.SuperUser = func(p string) bool { return auth.IsAgent(auth.ParsePrincipal(p)) }
	}
	peer := func(agentID string) func(*broker.Config) {
		user, password, err := auth.New(auth.Config{Store: store, Enabled: true}).AgentLogin(ctx, agentID)
		if err != nil {
			t.Fatal(err)
		}
		return func(c *broker.Config) { c.PeerSASL = scram.Auth{User: user, Pass: password}.AsSha512Mechanism() }
	}
	s1 := startAuthServer(t, testOptions{store: store, bucket: bucket, agentID: "agent-1", acl: enforce, broker: peer("agent-1")})
	s2 := startAuthServer(t, testOptions{store: store, bucket: bucket, agentID: "agent-2", acl: enforce, broker: peer("agent-2")})
	topic, err := s1.broker.CreateTopic(ctx, broker.TopicSpec{Name: "fwd", Partitions: 2}, false)
	if err != nil {
		t.Fatal(err)
	}
	s2.broker.Place(ctx)
	at2 := int32(-1)
	for p := int32(0); p < 2; p++ {
		if s2.broker.Leads(metadata.TopicPartition{TopicID: topic.ID, Partition: p}) {
			at2 = p
		}
	}
	if at2 < 0 {
		t.Fatal("agent-2 leads no partition")
	}
	// No ACL at all: alice is refused at the leader, the forwarding agent
	// is not.
	alice := s2.client(kgo.SASL(mechanism(auth.MechanismScramSHA256, "alice", "alice-secret")), kgo.MaxVersions(kversion.V3_0_0()))
	req := dpProduceReq(0, "fwd", at2, -1, dpBatch(t, batch.BuildOptions{}))
	if code := raw(t, alice, req).(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode; code != kerr.TopicAuthorizationFailed.Code {
		t.Fatalf("alice's produce at the leader without WRITE: %v, want TOPIC_AUTHORIZATION_FAILED", kerr.ErrorForCode(code))
	}
	offs, err := s1.broker.ProduceRecords(ctx, "fwd", at2, []broker.Record{{Value: []byte("v")}}, broker.AckDurable, batch.DefaultBuildOptions())
	if err != nil || len(offs) != 1 {
		t.Fatalf("produce forwarded by agent-1 to the leader: %v %v", offs, err)
	}
}
