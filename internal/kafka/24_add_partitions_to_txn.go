package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/acl"
	"github.com/streamhouse/streamhouse/internal/metadata"
)

// AddPartitionsToTxn, key 24.
//
// Versions 0-3, the client form: one transaction per request. v1 is v0;
// v2 PRODUCER_FENCED (KIP-588; older versions get INVALID_PRODUCER_EPOCH);
// v3 flexible. v4 and later are the inter-broker batched form of KIP-890
// (VerifyOnly), which StreamHouse does not use: its partition log asks the
// coordinator directly (partlog.VerifyTxnFunc). Those versions are not
// advertised, so a client never sends them.
//
// The partitions are added all or none, as in Kafka: if a topic or
// partition does not exist it gets UNKNOWN_TOPIC_OR_PARTITION and every
// other partition OPERATION_NOT_ATTEMPTED, and nothing is added; otherwise
// the coordinator's answer (NOT_COORDINATOR, PRODUCER_FENCED,
// INVALID_PRODUCER_EPOCH, CONCURRENT_TRANSACTIONS, INVALID_TXN_STATE ...)
// is every partition's. A partition named twice is added once.

const addPartitionsToTxnKey = 24

func init() { register(addPartitionsToTxnKey, 0, 3, handleAddPartitionsToTxn) }

func handleAddPartitionsToTxn(ctx context.Context, c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	s := c.s
	req := kreq.(*kmsg.AddPartitionsToTxnRequest)
	resp := req.ResponseKind().(*kmsg.AddPartitionsToTxnResponse)
	// The answer lists each requested topic and partition once.
	type tpKey struct {
		topic string
		part  int32
	}
	seen := make(map[tpKey]bool)
	topicIdx := make(map[string]int)
	for _, rt := range req.Topics {
		ti, ok := topicIdx[rt.Topic]
		if !ok {
			ti = len(resp.Topics)
			topicIdx[rt.Topic] = ti
			t := kmsg.NewAddPartitionsToTxnResponseTopic()
			t.Topic = rt.Topic
			resp.Topics = append(resp.Topics, t)
		}
		for _, p := range rt.Partitions {
			if seen[tpKey{rt.Topic, p}] {
				continue
			}
			seen[tpKey{rt.Topic, p}] = true
			rp := kmsg.NewAddPartitionsToTxnResponseTopicPartition()
			rp.Partition = p
			resp.Topics[ti].Partitions = append(resp.Topics[ti].Partitions, rp)
		}
	}
	setAll := func(code int16) {
		for i := range resp.Topics {
			for j := range resp.Topics[i].Partitions {
				resp.Topics[i].Partitions[j].ErrorCode = code
			}
		}
	}
	if !c.allowed(ctx, acl.OpWrite, acl.TransactionalID(req.TransactionalID)) {
		setAll(kerr.TransactionalIDAuthorizationFailed.Code)
		return resp, nil
	}
	if code := checkTransactionalID(req.TransactionalID); code != 0 {
		setAll(code)
		return resp, nil
	}
	// WRITE on every topic, else TOPIC_AUTHORIZATION_FAILED for its
	// partitions and OPERATION_NOT_ATTEMPTED for the others (all or none).
	denied := false
	for i := range resp.Topics {
		if c.allowedTopic(ctx, acl.OpWrite, resp.Topics[i].Topic) {
			continue
		}
		denied = true
		for j := range resp.Topics[i].Partitions {
			resp.Topics[i].Partitions[j].ErrorCode = kerr.TopicAuthorizationFailed.Code
		}
	}
	if denied {
		for i := range resp.Topics {
			for j := range resp.Topics[i].Partitions {
				if resp.Topics[i].Partitions[j].ErrorCode == 0 {
					resp.Topics[i].Partitions[j].ErrorCode = kerr.OperationNotAttempted.Code
				}
			}
		}
		return resp, nil
	}
	co, err := s.coordinator()
	if err != nil {
		setAll(s.txnCode(err, req.Version, 2, "add partitions to txn"))
		return resp, nil
	}
	// Resolve every partition first: all or none.
	var parts []metadata.TxnPartition
	failed := false
	for i := range resp.Topics {
		rt := &resp.Topics[i]
		t, err := s.broker.Topic(ctx, rt.Topic)
		for j := range rt.Partitions {
			rp := &rt.Partitions[j]
			switch {
			case err != nil:
				rp.ErrorCode = s.codeFor(err, "add partitions to txn")
				if rp.ErrorCode == kerr.KafkaStorageError.Code {
					rp.ErrorCode = kerr.CoordinatorNotAvailable.Code
				}
				failed = true
			case rp.Partition < 0 || rp.Partition >= t.Partitions:
				rp.ErrorCode = kerr.UnknownTopicOrPartition.Code
				failed = true
			default:
				parts = append(parts, metadata.TxnPartition{TopicID: t.ID, Topic: t.Name, Partition: rp.Partition})
			}
		}
	}
	if failed {
		for i := range resp.Topics {
			for j := range resp.Topics[i].Partitions {
				if resp.Topics[i].Partitions[j].ErrorCode == 0 {
					resp.Topics[i].Partitions[j].ErrorCode = kerr.OperationNotAttempted.Code
				}
			}
		}
		return resp, nil
	}
	if len(parts) == 0 {
		return resp, nil
	}
	err = co.AddPartitions(ctx, req.TransactionalID, req.ProducerID, req.ProducerEpoch, parts)
	setAll(s.txnCode(err, req.Version, 2, "add partitions to txn"))
	return resp, nil
}
