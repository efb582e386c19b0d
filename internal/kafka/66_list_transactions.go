package kafka

import (
	"context"
	"regexp"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/acl"
	"github.com/streamhouse/streamhouse/internal/metadata"
)

// ListTransactions, key 66 (KIP-664).
//
// Versions 0-2 (flexible). v1 DurationFilterMillis (KIP-994): when not
// negative, only transactions whose open transaction began longer ago
// than that (and, as in Kafka, those with none open); v2
// TransactionalIDPattern (KIP-1152): a regular expression (Go's RE2
// syntax, which Java's patterns mostly share) the whole ID must match; a
// pattern that does not compile is INVALID_REGULAR_EXPRESSION.
//
// As in Kafka, each agent lists the transactions it coordinates (the IDs
// whose coordinator slot it leads); admin clients ask every broker and
// merge. StateFilters (Kafka's state names) and ProducerIDFilters narrow
// the list; a state name Kafka does not know is returned in
// UnknownStateFilters, and when only unknown states are asked for, nothing
// matches.

const listTransactionsKey = 66

func init() { register(listTransactionsKey, 0, 2, handleListTransactions) }

// kafkaTxnStates are the state names Kafka's ListTransactions knows.
var kafkaTxnStates = map[string]bool{
	"Empty": true, "Ongoing": true, "PrepareCommit": true, "PrepareAbort": true,
	"CompleteCommit": true, "CompleteAbort": true, "Dead": true, "PrepareEpochFence": true,
}

// maxTxnIDPattern bounds the pattern a client may make us compile.
const maxTxnIDPattern = 4096

func handleListTransactions(ctx context.Context, c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	s := c.s
	req := kreq.(*kmsg.ListTransactionsRequest)
	resp := req.ResponseKind().(*kmsg.ListTransactionsResponse)
	var f metadata.TxnFilter
	known := 0
	for _, st := range req.StateFilters {
		if !kafkaTxnStates[st] {
			resp.UnknownStateFilters = append(resp.UnknownStateFilters, st)
			continue
		}
		known++
		f.States = append(f.States, metadata.TxnStatus(st))
	}
	if len(req.StateFilters) > 0 && known == 0 {
		return resp, nil
	}
	f.ProducerIDs = req.ProducerIDFilters
	var pattern *regexp.Regexp
	if req.Version >= 2 && req.TransactionalIDPattern != nil && *req.TransactionalIDPattern != "" {
		p := *req.TransactionalIDPattern
		var err error
		if len(p) <= maxTxnIDPattern {
			pattern, err = regexp.Compile("^(?:" + p + ")$")
		}
		if len(p) > maxTxnIDPattern || err != nil {
			resp.ErrorCode = kerr.InvalidRegularExpression.Code
			return resp, nil
		}
	}
	co, err := s.coordinator()
	var txns []metadata.Txn
	if err == nil {
		txns, err = co.List(ctx, f)
	}
	if err != nil {
		resp.ErrorCode = s.txnCode(err, req.Version, 0, "list transactions")
		return resp, nil
	}
	now := time.Now()
	for _, t := range txns { // those this agent coordinates (txn.Coordinator.List)
		if pattern != nil && !pattern.MatchString(t.TransactionalID) {
			continue
		}
		if !c.permits(ctx, acl.OpDescribe, acl.TransactionalID(t.TransactionalID)) {
			continue // only those the principal may DESCRIBE, as in Kafka
		}
		if req.Version >= 1 && req.DurationFilterMillis >= 0 && !t.StartedAt.IsZero() &&
			now.Sub(t.StartedAt).Milliseconds() <= req.DurationFilterMillis {
			continue
		}
		st := kmsg.NewListTransactionsResponseTransactionState()
		st.TransactionalID, st.ProducerID, st.TransactionState = t.TransactionalID, t.ProducerID, string(t.State)
		resp.TransactionStates = append(resp.TransactionStates, st)
	}
	return resp, nil
}
