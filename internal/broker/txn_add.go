package broker

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/metadata"
)

// RemoteAddToTxn adds partitions parts and consumer group group (either
// may be empty) to the open transaction of transactional ID id, opening
// it, at the agent coordinating id: Kafka's AddPartitionsToTxn and
// AddOffsetsToTxn (v3, the client form) sent to that agent's advertised
// Kafka address. Transactions V2 add implicitly (a partition leader or a
// group coordinator adds on the producer's behalf), and the coordinator
// may be another agent. The coordinator's refusals come back as the kerr
// error it answered; no live coordinator, or no answer, is
// kerr.CoordinatorNotAvailable (retriable).
func (b *Broker) RemoteAddToTxn(ctx context.Context, id string, producerID int64, epoch int16, parts []metadata.TxnPartition, group string) error {
	unavailable := func(why string, args ...any) error {
		return fmt.Errorf("add to transaction %q: %s: %w", id, fmt.Sprintf(why, args...), kerr.CoordinatorNotAvailable)
	}
	coord, _, ok, err := b.TxnCoordinatorAgent(ctx, id)
	switch {
	case err != nil:
		return fmt.Errorf("add to transaction %q: %w", id, mapStoreErr(err))
	case !ok:
		// No live holder, or this agent holds the slot but does not
		// lead it (yet, or any more): the caller retries.
		return unavailable("no live coordinator elsewhere")
	case coord.Addr == "":
		return unavailable("coordinator %s has no Kafka address", coord.ID)
	}
	agent, addr := coord.ID, coord.Addr
	cl, err := b.fwd.client(addr)
	if err != nil {
		return fmt.Errorf("add to transaction %q: %w", id, err)
	}
	br := cl.SeedBrokers()[0]
	if len(parts) > 0 {
		req := kmsg.NewPtrAddPartitionsToTxnRequest()
		req.TransactionalID, req.ProducerID, req.ProducerEpoch = id, producerID, epoch
		byTopic := make(map[string]int)
		for _, p := range parts {
			i, ok := byTopic[p.Topic]
			if !ok {
				i = len(req.Topics)
				byTopic[p.Topic] = i
				t := kmsg.NewAddPartitionsToTxnRequestTopic()
				t.Topic = p.Topic
				req.Topics = append(req.Topics, t)
			}
			req.Topics[i].Partitions = append(req.Topics[i].Partitions, p.Partition)
		}
		kresp, err := br.Request(ctx, req)
		if err != nil {
			return unavailable("coordinator %s at %s: %v", agent, addr, err)
		}
		for _, t := range kresp.(*kmsg.AddPartitionsToTxnResponse).Topics {
			for _, p := range t.Partitions {
				if err := kerr.ErrorForCode(p.ErrorCode); err != nil && err != kerr.OperationNotAttempted {
					return fmt.Errorf("add %s/%d to transaction %q at %s: %w", t.Topic, p.Partition, id, agent, err)
				}
			}
		}
	}
	if group != "" {
		req := kmsg.NewPtrAddOffsetsToTxnRequest()
		req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Group = id, producerID, epoch, group
		kresp, err := br.Request(ctx, req)
		if err != nil {
			return unavailable("coordinator %s at %s: %v", agent, addr, err)
		}
		if err := kerr.ErrorForCode(kresp.(*kmsg.AddOffsetsToTxnResponse).ErrorCode); err != nil {
			return fmt.Errorf("add group %q to transaction %q at %s: %w", group, id, agent, err)
		}
	}
	return nil
}
