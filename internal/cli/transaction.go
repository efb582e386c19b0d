package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The transaction commands inspect Kafka transactions (kafka-transactions.sh
// list / describe): like perf they speak the Kafka protocol through franz-go
// (ListTransactions, DescribeTransactions), to --brokers, so they show what
// every front end's transactions look like to the coordinators.

const transactionLong = `Inspects transactions through the Kafka protocol (ListTransactions and
DescribeTransactions, as kafka-transactions.sh), at --brokers (default
` + defaultBrokers + `): the transactions of Kafka clients and of gRPC
producers alike, since both run on the same coordinators.`

// listedTxn is one row of transaction list.
type listedTxn struct {
	TransactionalID string `json:"transactional_id"`
	ProducerID      int64  `json:"producer_id"`
	State           string `json:"state"`
	Coordinator     int32  `json:"coordinator"`
}

// txnPartition is one partition of a described transaction.
type txnPartition struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
}

// describedTxn is one transaction of transaction describe.
type describedTxn struct {
	TransactionalID string         `json:"transactional_id"`
	Coordinator     int32          `json:"coordinator"`
	State           string         `json:"state"`
	ProducerID      int64          `json:"producer_id"`
	ProducerEpoch   int16          `json:"producer_epoch"`
	TimeoutMs       int32          `json:"timeout_ms"`
	StartTimestamp  int64          `json:"start_timestamp"` // ms; -1 when no transaction is open
	Partitions      []txnPartition `json:"partitions"`
}

// kafkaAdmin connects to brokers for one command; close when done.
func kafkaAdmin(brokers string, opts ...kgo.Opt) (*kadm.Client, func(), error) {
	var seeds []string
	for _, b := range strings.Split(brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			seeds = append(seeds, b)
		}
	}
	if len(seeds) == 0 {
		return nil, nil, usagef("--brokers is empty")
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(seeds...)}, opts...)...)
	if err != nil {
		return nil, nil, fmt.Errorf("kafka client: %w", err)
	}
	return kadm.NewClient(cl), cl.Close, nil
}

func (inv *invocation) transactionCmd() *cobra.Command {
	var (
		brokers     string
		timeout     time.Duration
		states      []string
		producerIDs []int64
	)
	addFlags := func(cmd *cobra.Command) {
		fs := cmd.Flags()
		fs.StringVar(&brokers, "brokers", defaultBrokers, "bootstrap brokers, host:port[,host:port...]")
		fs.DurationVar(&timeout, "timeout", 30*time.Second, "give up after this long")
	}
	// run connects and calls fn with a bounded context.
	run := func(cmd *cobra.Command, fn func(ctx context.Context, adm *kadm.Client) error) error {
		if timeout <= 0 {
			return usagef("--timeout must be positive")
		}
		opts, err := inv.kafkaOpts()
		if err != nil {
			return err
		}
		adm, closeFn, err := kafkaAdmin(brokers, opts...)
		if err != nil {
			return err
		}
		defer closeFn()
		ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
		defer cancel()
		return fn(ctx, adm)
	}
	list := &cobra.Command{
		Use:   "list [--state S]... [--producer-id N]...",
		Short: "List transactional IDs with their producer and state",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return run(cmd, func(ctx context.Context, adm *kadm.Client) error {
				listed, err := adm.ListTransactions(ctx, producerIDs, states)
				if err != nil {
					return fmt.Errorf("list transactions: %w", err)
				}
				out := make([]listedTxn, 0, len(listed))
				for _, l := range listed.Sorted() {
					out = append(out, listedTxn{TransactionalID: l.TxnID, ProducerID: l.ProducerID, State: l.State, Coordinator: l.Coordinator})
				}
				p := inv.out()
				if p.json {
					return p.value(out)
				}
				if len(out) == 0 {
					return p.textf("No transactions.")
				}
				rows := make([][]string, len(out))
				for i, l := range out {
					rows[i] = []string{l.TransactionalID, itoa(l.ProducerID), l.State, itoa(l.Coordinator)}
				}
				return p.table([]string{"TRANSACTIONAL ID", "PRODUCER ID", "STATE", "COORDINATOR"}, rows)
			})
		},
	}
	addFlags(list)
	list.Flags().StringSliceVar(&states, "state", nil, "only transactions in this state (Empty, Ongoing, PrepareCommit, PrepareAbort, CompleteCommit, CompleteAbort); repeatable")
	list.Flags().Int64SliceVar(&producerIDs, "producer-id", nil, "only transactions of this producer ID; repeatable")
	setFlagCompletion(list, "state", fixedCompletions("Empty", "Ongoing", "PrepareCommit", "PrepareAbort", "CompleteCommit", "CompleteAbort"))

	describe := &cobra.Command{
		Use:   "describe TRANSACTIONAL_ID...",
		Short: "Show transactions: state, producer, timeout, start and partitions",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usagef("%s: missing TRANSACTIONAL_ID (usage: %s)", cmdPath(cmd), cmd.UseLine())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return run(cmd, func(ctx context.Context, adm *kadm.Client) error {
				described, err := adm.DescribeTransactions(ctx, args...)
				var shardErrs *kadm.ShardErrors
				if err != nil && !errors.As(err, &shardErrs) {
					return fmt.Errorf("describe transactions: %w", err)
				}
				var (
					out    []describedTxn
					failed []string
				)
				for _, id := range args {
					d, ok := described[id]
					switch {
					case !ok && err != nil:
						failed = append(failed, fmt.Sprintf("%q: %v", id, err))
						continue
					case !ok:
						failed = append(failed, fmt.Sprintf("%q: not in the answer", id))
						continue
					case d.Err != nil:
						failed = append(failed, fmt.Sprintf("%q: %v", id, d.Err))
						continue
					}
					parts := []txnPartition{}
					d.Topics.Each(func(t string, p int32) { parts = append(parts, txnPartition{Topic: t, Partition: p}) })
					slices.SortFunc(parts, func(a, b txnPartition) int {
						return cmp.Or(strings.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
					})
					out = append(out, describedTxn{TransactionalID: d.TxnID, Coordinator: d.Coordinator, State: d.State,
						ProducerID: d.ProducerID, ProducerEpoch: d.ProducerEpoch, TimeoutMs: d.TimeoutMillis,
						StartTimestamp: d.StartTimestamp, Partitions: parts})
				}
				if perr := inv.printTxns(out); perr != nil {
					return perr
				}
				if len(failed) > 0 {
					return fmt.Errorf("describe transactions: %s", strings.Join(failed, "; "))
				}
				return nil
			})
		},
	}
	addFlags(describe)
	c := group("transaction", "Inspect Kafka transactions (list, describe)", list, describe)
	c.Long = transactionLong
	return c
}

func (inv *invocation) printTxns(txns []describedTxn) error {
	p := inv.out()
	if p.json {
		if txns == nil {
			txns = []describedTxn{}
		}
		return p.value(txns)
	}
	for i, d := range txns {
		if i > 0 {
			p.textf("")
		}
		p.fields([][2]string{
			{"Transactional ID", d.TransactionalID},
			{"State", d.State},
			{"Producer ID", itoa(d.ProducerID)},
			{"Producer epoch", itoa(int32(d.ProducerEpoch))},
			{"Timeout", (time.Duration(d.TimeoutMs) * time.Millisecond).String()},
			{"Started", formatMillis(d.StartTimestamp)},
			{"Coordinator", itoa(d.Coordinator)},
			{"Partitions", itoa(len(d.Partitions))},
		})
		if len(d.Partitions) > 0 {
			rows := make([][]string, len(d.Partitions))
			for j, tp := range d.Partitions {
				rows[j] = []string{tp.Topic, itoa(tp.Partition)}
			}
			p.textf("")
			if err := p.table([]string{"TOPIC", "PARTITION"}, rows); err != nil {
				return err
			}
		}
	}
	return nil
}
