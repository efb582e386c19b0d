package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
	"github.com/twmb/franz-go/pkg/sasl"

	"github.com/streamhouse/streamhouse/internal/batch"
	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/partlog"
)

// Forwarding. A REST or gRPC produce may arrive at any agent (behind a load
// balancer, say), but only a partition's leader can append to it. An agent
// that does not lead the partition forwards the batch it built to the
// leader over the Kafka protocol, as one ProduceRequest to the leader's
// advertised Kafka address from the agent registry, and answers with the
// leader's result. One hop only: the Kafka path never forwards, so a
// leader that lost the partition meanwhile answers NOT_LEADER_OR_FOLLOWER,
// which becomes ErrNotLeader (REST 503, gRPC Unavailable) as before.
// Kafka clients never need this: they follow Metadata to the leader.

// ForwardTimeout bounds a forwarded request (a produce here, a gRPC
// transaction call in grpcapi) when its context has no deadline.
const ForwardTimeout = 30 * time.Second

// forwardVersions are the request versions agents send each other: the
// newest, except Produce, capped at v11. A forwarded transactional batch
// (gRPC) was added to its named transaction at the coordinator before it
// is forwarded; from v12 the leader would add the partition again itself
// (transactions V2), which opens a new transaction when the named one has
// ended meanwhile, instead of refusing the batch.
func forwardVersions() *kversion.Versions {
	v := kversion.Stable()
	v.SetMaxKeyVersion(0, 11)
	return v
}

// forwarder keeps one Kafka client per leader address.
type forwarder struct {
	clientID string
	tls      func() *tls.Config // nil: plaintext
	sasl     sasl.Mechanism     // nil: no login
	mu       sync.Mutex
	clients  map[string]*kgo.Client
	closed   bool
}

func (f *forwarder) client(addr string) (*kgo.Client, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, partlog.ErrClosed
	}
	if cl := f.clients[addr]; cl != nil {
		return cl, nil
	}
	opts := []kgo.Opt{kgo.SeedBrokers(addr), kgo.ClientID(f.clientID), kgo.RetryTimeout(ForwardTimeout), kgo.MaxVersions(forwardVersions())}
	if f.tls != nil {
		opts = append(opts, kgo.Dialer(f.dialTLS))
	}
	if f.sasl != nil {
		opts = append(opts, kgo.SASL(f.sasl))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("client for %s: %w", addr, err)
	}
	if f.clients == nil {
		f.clients = make(map[string]*kgo.Client)
	}
	f.clients[addr] = cl
	return cl, nil
}

// dialTLS connects to another agent over TLS with the configuration in use
// now (certificates reload), verifying it under its host name.
func (f *forwarder) dialTLS(ctx context.Context, network, host string) (net.Conn, error) {
	cfg := f.tls()
	if cfg.ServerName == "" {
		name, _, err := net.SplitHostPort(host)
		if err != nil {
			return nil, fmt.Errorf("forward to %s: %w", host, err)
		}
		cfg.ServerName = name
	}
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second}, Config: cfg}
	return d.DialContext(ctx, network, host)
}

// prune closes the clients of addresses no live agent has any more.
func (f *forwarder) prune(live map[string]bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for addr, cl := range f.clients {
		if !live[addr] {
			cl.Close()
			delete(f.clients, addr)
		}
	}
}

// close closes every client; later forwards fail with partlog.ErrClosed.
func (f *forwarder) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	for _, cl := range f.clients {
		cl.Close()
	}
	f.clients = nil
}

// KafkaClient returns a Kafka client for another agent's address, kept for
// reuse (and closed when the agent leaves or this broker shuts down).
func (b *Broker) KafkaClient(addr string) (*kgo.Client, error) { return b.fwd.client(addr) }

// append appends raw (one or more batches) to partition p of t: here if
// this agent leads it, else at its leader (forward). txnID is the
// transactional ID of transactional batches, "" for others.
func (b *Broker) append(ctx context.Context, t metadata.Topic, p int32, raw []byte, mode partlog.AckMode, txnID string) (partlog.AppendResult, error) {
	tp := metadata.TopicPartition{TopicID: t.ID, Partition: p}
	res, err := b.plog.Append(ctx, tp, raw, mode)
	if err == nil {
		b.countIn(t, raw)
	}
	if !errors.Is(err, partlog.ErrNotLeader) {
		return res, err
	}
	return b.forward(ctx, t, p, raw, mode, txnID)
}

// forward sends raw to the leader of partition p of t; a transactional
// batch with its transactional ID txnID, which the Kafka protocol requires.
func (b *Broker) forward(ctx context.Context, t metadata.Topic, p int32, raw []byte, mode partlog.AckMode, txnID string) (partlog.AppendResult, error) {
	tp := metadata.TopicPartition{TopicID: t.ID, Partition: p}
	notLeader := func(why string) (partlog.AppendResult, error) {
		return partlog.AppendResult{}, fmt.Errorf("%s/%d: %s: %w", t.Name, p, why, partlog.ErrNotLeader)
	}
	leader, agents, ok, err := b.liveLeader(ctx, tp)
	if err != nil {
		return partlog.AppendResult{}, fmt.Errorf("forward %s/%d: %w", t.Name, p, err)
	}
	if !ok {
		return notLeader("no live leader to forward to")
	}
	live := make(map[string]bool, len(agents))
	for _, a := range agents {
		live[a.Addr] = true
	}
	b.fwd.prune(live)
	addr := leader.Addr
	if addr == "" {
		return notLeader(fmt.Sprintf("leader %s has no Kafka address", leader.ID))
	}
	cl, err := b.fwd.client(addr)
	if err != nil {
		return partlog.AppendResult{}, fmt.Errorf("forward %s/%d: %w", t.Name, p, err)
	}
	timeout := ForwardTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	req := kmsg.NewPtrProduceRequest()
	req.Acks = -1
	if mode != partlog.AckDurable {
		req.Acks = 1 // the leader's offsets are wanted even for ACK_NONE
	}
	req.TimeoutMillis = int32(max(timeout, time.Millisecond) / time.Millisecond)
	if txnID != "" {
		req.TransactionID = &txnID
	}
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic, rt.TopicID = t.Name, [16]byte(t.ID)
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Partition, rp.Records = p, raw
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	kresp, err := cl.SeedBrokers()[0].Request(ctx, req)
	if err != nil {
		return partlog.AppendResult{}, fmt.Errorf("forward %s/%d to %s at %s: %w", t.Name, p, leader.ID, addr, err)
	}
	resp := kresp.(*kmsg.ProduceResponse)
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		return partlog.AppendResult{}, fmt.Errorf("forward %s/%d to %s: malformed produce response", t.Name, p, leader.ID)
	}
	out := resp.Topics[0].Partitions[0]
	if out.ErrorCode != 0 {
		return partlog.AppendResult{}, forwardError(t.Name, p, leader.ID, out)
	}
	records, err := recordCount(raw)
	if err != nil {
		return partlog.AppendResult{}, fmt.Errorf("%w: %w", ErrInvalidRequest, err)
	}
	b.log.Debug("produce forwarded to the leader", "topic", t.Name, "partition", p, "leader", leader.ID)
	return partlog.AppendResult{
		BaseOffset:     out.BaseOffset,
		LastOffset:     out.BaseOffset + records - 1,
		LogAppendTime:  out.LogAppendTime,
		LogStartOffset: out.LogStartOffset,
	}, nil
}

// liveLeader returns the live agent other than this one that leads tp
// (its registration; only its ID when it is not among the live agents)
// and every live agent. ok is false when no other agent holds a live lease
// on tp.
func (b *Broker) liveLeader(ctx context.Context, tp metadata.TopicPartition) (leader metadata.Agent, live []metadata.Agent, ok bool, err error) {
	now := b.now()
	part, err := b.store.GetPartition(ctx, tp)
	if err != nil {
		return metadata.Agent{}, nil, false, err
	}
	if part.Leader == "" || part.Leader == b.agentID || !part.LeaseExpiresAt.After(now) {
		return metadata.Agent{}, nil, false, nil
	}
	live, err = b.store.ListAgents(ctx, now.Add(-b.cfg.LeaseTTL))
	if err != nil {
		return metadata.Agent{}, nil, false, err
	}
	leader = metadata.Agent{ID: part.Leader}
	for _, a := range live {
		if a.ID == part.Leader {
			leader = a
		}
	}
	return leader, live, true, nil
}

// forwardError maps the leader's Kafka error to the broker's errors.
func forwardError(topic string, p int32, leader string, out kmsg.ProduceResponseTopicPartition) error {
	msg := ""
	if out.ErrorMessage != nil {
		msg = ": " + *out.ErrorMessage
	}
	kind := kerr.ErrorForCode(out.ErrorCode)
	var base error
	switch out.ErrorCode {
	case kerr.NotLeaderForPartition.Code, kerr.UnknownTopicOrPartition.Code:
		base = partlog.ErrNotLeader
	case kerr.OutOfOrderSequenceNumber.Code:
		base = partlog.ErrOutOfOrderSequence
	case kerr.InvalidProducerEpoch.Code:
		base = partlog.ErrInvalidProducerEpoch
	case kerr.InvalidTxnState.Code:
		base = partlog.ErrInvalidTxnState
	case kerr.InvalidTimestamp.Code:
		base = partlog.ErrInvalidTimestamp
	case kerr.InvalidRecord.Code, kerr.CorruptMessage.Code, kerr.MessageTooLarge.Code:
		base = ErrInvalidRequest
	default:
		return fmt.Errorf("%s/%d: the leader %s answered %w%s", topic, p, leader, kind, msg)
	}
	return fmt.Errorf("%s/%d: the leader %s answered %v%s: %w", topic, p, leader, kind, msg, base)
}

// recordCount is the number of offsets the batches in raw take.
func recordCount(raw []byte) (int64, error) {
	raws, err := batch.Split(raw)
	if err != nil {
		return 0, err
	}
	n := int64(0)
	for _, r := range raws {
		h, err := batch.ParseHeader(r)
		if err != nil {
			return 0, err
		}
		n += int64(h.LastOffsetDelta) + 1
	}
	return n, nil
}
