package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/acl"
	"github.com/streamhouse/streamhouse/internal/metadata"
)

// DescribeTransactions, key 65 (KIP-664).
//
// Version 0 (flexible). Each transactional ID is described by the agent
// coordinating it (the holder of its coordinator slot, FindCoordinator key
// type 1): any other agent answers NOT_COORDINATOR for it, an unknown ID is
// TRANSACTIONAL_ID_NOT_FOUND. The state is Kafka's name (Empty, Ongoing,
// PrepareCommit, PrepareAbort, CompleteCommit, CompleteAbort);
// StartTimestamp is when the open transaction began (-1 when none is
// open); Topics are the partitions the transaction added.

const describeTransactionsKey = 65

func init() { register(describeTransactionsKey, 0, 0, handleDescribeTransactions) }

func handleDescribeTransactions(ctx context.Context, c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	s := c.s
	req := kreq.(*kmsg.DescribeTransactionsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeTransactionsResponse)
	co, coErr := s.coordinator()
	for _, id := range req.TransactionalIDs {
		st := kmsg.NewDescribeTransactionsResponseTransactionState()
		st.TransactionalID = id
		st.StartTimestamp, st.ProducerID, st.ProducerEpoch = -1, -1, -1
		if !c.allowed(ctx, acl.OpDescribe, acl.TransactionalID(id)) {
			st.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
			resp.TransactionStates = append(resp.TransactionStates, st)
			continue
		}
		if code := checkTransactionalID(id); code != 0 {
			st.ErrorCode = code
			resp.TransactionStates = append(resp.TransactionStates, st)
			continue
		}
		var (
			t   metadata.Txn
			err = coErr
		)
		if err == nil {
			t, err = co.Describe(ctx, id)
		}
		if err != nil {
			st.ErrorCode = s.txnCode(err, req.Version, 0, "describe transactions")
			resp.TransactionStates = append(resp.TransactionStates, st)
			continue
		}
		st.State, st.TimeoutMillis = string(t.State), t.TimeoutMs
		st.ProducerID, st.ProducerEpoch = t.ProducerID, t.ProducerEpoch
		if !t.StartedAt.IsZero() {
			st.StartTimestamp = t.StartedAt.UnixMilli()
		}
		idx := make(map[string]int)
		for _, p := range t.Partitions {
			if !c.permits(ctx, acl.OpDescribe, acl.Topic(p.Topic)) {
				continue // as Kafka: only the topics the principal may DESCRIBE
			}
			i, ok := idx[p.Topic]
			if !ok {
				i = len(st.Topics)
				idx[p.Topic] = i
				rt := kmsg.NewDescribeTransactionsResponseTransactionStateTopic()
				rt.Topic = p.Topic
				st.Topics = append(st.Topics, rt)
			}
			st.Topics[i].Partitions = append(st.Topics[i].Partitions, p.Partition)
		}
		resp.TransactionStates = append(resp.TransactionStates, st)
	}
	return resp, nil
}
