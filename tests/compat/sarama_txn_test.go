package compat

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamhouse/streamhouse/internal/e2e"
)

// saramaTxnProducer is sarama's transactional producer, configured as
// sarama requires (idempotent, one request in flight, acks all).
func saramaTxnProducer(t *testing.T, addr, txnID string) sarama.SyncProducer {
	t.Helper()
	cfg := saramaConfig()
	cfg.Producer.Idempotent = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Retry.Max = 20
	cfg.Producer.Retry.Backoff = 100 * time.Millisecond
	cfg.Net.MaxOpenRequests = 1
	cfg.Producer.Transaction.ID = txnID
	cfg.Producer.Transaction.Timeout = 60 * time.Second
	cfg.Producer.Transaction.Retry.Max = 100
	cfg.Producer.Transaction.Retry.Backoff = 100 * time.Millisecond
	prod, err := sarama.NewSyncProducer([]string{addr}, cfg)
	if err != nil {
		t.Fatalf("transactional producer %s: %v", txnID, err)
	}
	t.Cleanup(func() { _ = prod.Close() })
	return prod
}

// eosHandler is a sarama ConsumerGroupHandler that transforms each input
// record in its own transaction, sending the record's offset to the
// transaction with the session's group metadata. The transaction of the
// record numbered abortAt (from 0) is first tried with an "aborted:" value
// and aborted on purpose, then done again.
type eosHandler struct {
	addr, group, in, out string
	prod                 sarama.SyncProducer
	abortAt              int

	mu        sync.Mutex // one transaction at a time: the producer has one
	n         int
	produced  []kv            // every record produced, committed or not, in order
	committed map[int32]int64 // partition → offset the last commit sent
	afterAbrt map[int32]int64 // group offsets right after the aborted transaction
	wantAbrt  map[int32]int64 // what they should be: the previous commits' offsets
	done      int             // input records whose transaction committed
	errs      []string
}

func (h *eosHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (h *eosHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (h *eosHandler) addErr(err error) {
	if len(h.errs) < 20 {
		h.errs = append(h.errs, err.Error())
	}
}

func (h *eosHandler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for m := range c.Messages() {
		h.mu.Lock()
		err := h.process(s, m)
		if err != nil {
			h.addErr(err)
		}
		h.mu.Unlock()
		if err != nil {
			return err
		}
	}
	return nil
}

// transact runs one transaction that writes m transformed with tag and
// sends m's offset; commit or abort.
func (h *eosHandler) transact(s sarama.ConsumerGroupSession, m *sarama.ConsumerMessage, tag string, commit bool) error {
	if err := h.prod.BeginTxn(); err != nil {
		return fmt.Errorf("BeginTxn: %w", err)
	}
	r := kv{m.Partition, string(m.Key), tag + string(m.Value)}
	if _, _, err := h.prod.SendMessage(&sarama.ProducerMessage{Topic: h.out, Partition: m.Partition,
		Key: sarama.StringEncoder(r.Key), Value: sarama.StringEncoder(r.Value)}); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	h.produced = append(h.produced, r)
	if err := h.prod.AddMessageToTxnWithGroupMetadata(m, sarama.NewConsumerGroupMetadataFromSession(s, h.group, nil), nil); err != nil {
		return fmt.Errorf("AddMessageToTxn: %w", err)
	}
	if !commit {
		if err := h.prod.AbortTxn(); err != nil {
			return fmt.Errorf("AbortTxn: %w", err)
		}
		return nil
	}
	if err := h.prod.CommitTxn(); err != nil {
		return fmt.Errorf("CommitTxn: %w", err)
	}
	h.committed[m.Partition] = m.Offset + 1
	h.done++
	return nil
}

func (h *eosHandler) process(s sarama.ConsumerGroupSession, m *sarama.ConsumerMessage) error {
	defer func() { h.n++ }()
	if h.n == h.abortAt {
		if err := h.transact(s, m, "aborted:", false); err != nil {
			return err
		}
		got, err := groupOffsetsErr(h.addr, h.group, h.in, groupPartitionsTxn)
		if err != nil {
			return err
		}
		h.afterAbrt = got
		h.wantAbrt = map[int32]int64{}
		for p := range int32(groupPartitionsTxn) {
			h.wantAbrt[p] = -1
			if o, ok := h.committed[p]; ok {
				h.wantAbrt[p] = o
			}
		}
	}
	return h.transact(s, m, "out:", true)
}

const groupPartitionsTxn = 2

// TestSaramaTransactions drives sarama's transactional producer: an
// aborted transaction with offsets that would skip the whole input, then a
// consume-transform-produce group (read_committed input) with one record's
// transaction aborted and redone, checked with sarama's and franz-go's
// read_committed readers, franz-go's read_uncommitted one, and the group's
// offsets.
func TestSaramaTransactions(t *testing.T) {
	t.Parallel()
	for _, be := range e2e.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			t.Parallel()
			s := startServer(t, be)
			addr := s.KafkaAddr
			const parts = groupPartitionsTxn
			in, out, group := "sarama-in", "sarama-out", "sarama-eos"
			s.createTopic(in, parts)
			s.createTopic(out, parts)
			input := txnInput(t, addr, in, parts)
			prod := saramaTxnProducer(t, addr, "sarama-eos-txn")
			if !prod.IsTransactional() {
				t.Fatal("producer is not transactional")
			}

			// An aborted transaction whose offsets would skip every input
			// record if they were committed. sarama keeps AddOffsetsToTxn's
			// offsets in the client until CommitTxn (it sends
			// TxnOffsetCommit only then), so this checks the client's
			// abort path end to end; the server's handling of offsets sent
			// in an aborted transaction is checked with librdkafka
			// (TestConfluentTransactions), which sends them at once.
			if err := prod.BeginTxn(); err != nil {
				t.Fatal(err)
			}
			var produced []kv
			for p := range int32(parts) {
				r := kv{p, "first", "aborted:first"}
				if _, _, err := prod.SendMessage(&sarama.ProducerMessage{Topic: out, Partition: p,
					Key: sarama.StringEncoder(r.Key), Value: sarama.StringEncoder(r.Value)}); err != nil {
					t.Fatalf("send in the first transaction: %v", err)
				}
				produced = append(produced, r)
			}
			skip := map[string][]*sarama.PartitionOffsetMetadata{in: {{Partition: 0, Offset: 10, LeaderEpoch: -1}, {Partition: 1, Offset: 10, LeaderEpoch: -1}}}
			if err := prod.AddOffsetsToTxn(skip, group); err != nil {
				t.Fatalf("AddOffsetsToTxn: %v", err)
			}
			if err := prod.AbortTxn(); err != nil {
				t.Fatalf("AbortTxn: %v", err)
			}
			if st := prod.TxnStatus(); st&sarama.ProducerTxnFlagReady == 0 {
				t.Fatalf("after AbortTxn the producer is %v, want ready", st)
			}
			if got := groupOffsets(t, addr, group, in, parts); got[0] != -1 || got[1] != -1 {
				t.Fatalf("after the aborted transaction the group has committed %s, want nothing", mapString(got))
			}

			// The consume-transform-produce loop: one member reading
			// read_committed, no offsets of its own (auto-commit off).
			cfg := saramaConfig()
			cfg.Consumer.IsolationLevel = sarama.ReadCommitted
			cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
			cfg.Consumer.Offsets.AutoCommit.Enable = false
			cfg.Consumer.Group.Session.Timeout = 10 * time.Second
			cfg.Consumer.Group.Heartbeat.Interval = 300 * time.Millisecond
			cfg.Consumer.Group.Rebalance.Retry.Backoff = 200 * time.Millisecond
			cg, err := sarama.NewConsumerGroup([]string{addr}, group, cfg)
			if err != nil {
				t.Fatal(err)
			}
			h := &eosHandler{addr: addr, group: group, in: in, out: out, prod: prod, abortAt: 3,
				produced: produced, committed: map[int32]int64{}}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() {
				defer close(done)
				for ctx.Err() == nil {
					if err := cg.Consume(ctx, []string{in}, h); err != nil {
						if errors.Is(err, sarama.ErrClosedConsumerGroup) {
							return
						}
						h.mu.Lock()
						h.addErr(err)
						h.mu.Unlock()
						select {
						case <-ctx.Done():
						case <-time.After(200 * time.Millisecond):
						}
					}
				}
			}()
			stop := func() {
				cancel()
				<-done
				_ = cg.Close()
			}
			defer stop()
			eventually(t, 60*time.Second, "every input record transformed and committed", func() error {
				h.mu.Lock()
				defer h.mu.Unlock()
				if h.done < len(input) {
					return fmt.Errorf("%d of %d committed (errors: %q)", h.done, len(input), h.errs)
				}
				return nil
			})
			stop()
			h.mu.Lock()
			defer h.mu.Unlock()
			if h.done != len(input) || len(h.errs) > 0 {
				t.Errorf("%d transactions committed, want %d; errors: %q", h.done, len(input), h.errs)
			}
			if h.afterAbrt == nil {
				t.Fatal("the aborted transaction did not run")
			}
			if mapString(h.afterAbrt) != mapString(h.wantAbrt) {
				t.Errorf("right after the aborted transaction the group has committed %s, want the previous commits' %s",
					mapString(h.afterAbrt), mapString(h.wantAbrt))
			}

			writeSentinels(t, addr, out, parts)
			want := transformed(input)
			diffKV(t, "franz-go read_committed", readToSentinels(t, addr, out, parts, kgo.ReadCommitted()), want)
			all := slices.Clone(h.produced)
			sortKV(all)
			diffKV(t, "franz-go read_uncommitted", readToSentinels(t, addr, out, parts, kgo.ReadUncommitted()), all)

			// sarama's own read_committed reader.
			rc := saramaConfig()
			rc.Consumer.IsolationLevel = sarama.ReadCommitted
			client := saramaClient(t, addr, rc)
			var got []kv
			for p := range int32(parts) {
				n := 0
				for _, r := range want {
					if r.Partition == p {
						n++
					}
				}
				msgs := consumePartition(t, client, out, p, sarama.OffsetOldest, n+1, 30*time.Second)
				for _, m := range msgs {
					got = append(got, kv{m.Partition, string(m.Key), string(m.Value)})
				}
			}
			var wantS []kv
			for p := range int32(parts) {
				for _, r := range want {
					if r.Partition == p {
						wantS = append(wantS, r)
					}
				}
				wantS = append(wantS, kv{p, sentinel, sentinel})
			}
			diffKV(t, "sarama read_committed", got, wantS)

			// Each partition's input ends with a committed record at
			// offset 9: the group resumes after it.
			if got := groupOffsets(t, addr, group, in, parts); got[0] != 10 || got[1] != 10 {
				t.Errorf("group %s committed %s at the end, want 10 on both partitions", group, mapString(got))
			}

			// Zombie fencing: a new producer with the same ID fences the
			// first, whose open transaction is aborted and whose commit
			// fails.
			t.Run("fencing", func(t *testing.T) {
				topic := "sarama-fence"
				s.createTopic(topic, 1)
				first := saramaTxnProducer(t, addr, "sarama-fence-txn")
				if err := first.BeginTxn(); err != nil {
					t.Fatal(err)
				}
				if _, _, err := first.SendMessage(&sarama.ProducerMessage{Topic: topic, Partition: 0,
					Key: sarama.StringEncoder("zombie"), Value: sarama.StringEncoder("zombie")}); err != nil {
					t.Fatalf("first producer: %v", err)
				}
				second := saramaTxnProducer(t, addr, "sarama-fence-txn")
				err := first.CommitTxn()
				if !errors.Is(err, sarama.ErrProducerFenced) {
					t.Errorf("the fenced producer's CommitTxn: %v, want %v", err, sarama.ErrProducerFenced)
				}
				t.Logf("the fenced producer's CommitTxn: %v", err)
				if err := second.BeginTxn(); err != nil {
					t.Fatal(err)
				}
				if _, _, err := second.SendMessage(&sarama.ProducerMessage{Topic: topic, Partition: 0,
					Key: sarama.StringEncoder("second"), Value: sarama.StringEncoder("second")}); err != nil {
					t.Fatalf("second producer: %v", err)
				}
				if err := second.CommitTxn(); err != nil {
					t.Fatalf("second producer's CommitTxn: %v", err)
				}
				writeSentinels(t, addr, topic, 1)
				diffKV(t, "read_committed", readToSentinels(t, addr, topic, 1, kgo.ReadCommitted()),
					[]kv{{0, "second", "second"}})
				diffKV(t, "read_uncommitted", readToSentinels(t, addr, topic, 1, kgo.ReadUncommitted()),
					[]kv{{0, "zombie", "zombie"}, {0, "second", "second"}})
			})
		})
	}
}

// TestSaramaTransactionRestart kills the server (SIGKILL) in the middle of
// a sarama transaction and right after a commit: the open transaction
// either commits after the restart or fails in a way sarama aborts, and
// readers and the group's offsets agree with the outcome the client saw;
// the transaction committed just before the kill becomes visible once the
// restarted coordinator has finished its markers.
func TestSaramaTransactionRestart(t *testing.T) {
	t.Parallel()
	for _, be := range e2e.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			t.Parallel()
			s := startServer(t, be)
			addr := s.KafkaAddr
			topic, group := "sarama-restart", "sarama-restart-group"
			s.createTopic(topic, 1)
			prod := saramaTxnProducer(t, addr, "sarama-restart-txn")
			send := func(v string) {
				t.Helper()
				if _, _, err := prod.SendMessage(&sarama.ProducerMessage{Topic: topic, Partition: 0,
					Key: sarama.StringEncoder(v), Value: sarama.StringEncoder(v)}); err != nil {
					t.Fatalf("send %s: %v", v, err)
				}
			}

			// Killed with a transaction open: records and offsets sent.
			if err := prod.BeginTxn(); err != nil {
				t.Fatal(err)
			}
			send("open-at-kill")
			if err := prod.AddOffsetsToTxn(map[string][]*sarama.PartitionOffsetMetadata{
				topic: {{Partition: 0, Offset: 1, LeaderEpoch: -1}}}, group); err != nil {
				t.Fatalf("AddOffsetsToTxn: %v", err)
			}
			s.restart(syscall.SIGKILL)
			var want []kv
			wantOffset := int64(-1)
			if err := prod.CommitTxn(); err != nil {
				// Allowed, if sarama can abort it: then nothing of it may
				// show.
				t.Logf("CommitTxn after the restart: %v (status %v); aborting", err, prod.TxnStatus())
				if err := prod.AbortTxn(); err != nil {
					t.Fatalf("AbortTxn after a failed commit: %v", err)
				}
			} else {
				want = append(want, kv{0, "open-at-kill", "open-at-kill"})
				wantOffset = 1
			}

			// Killed right after a commit's answer: the decision is
			// stored, the markers may not be written yet.
			if err := prod.BeginTxn(); err != nil {
				t.Fatal(err)
			}
			send("committed-at-kill")
			if err := prod.CommitTxn(); err != nil {
				t.Fatalf("CommitTxn: %v", err)
			}
			want = append(want, kv{0, "committed-at-kill", "committed-at-kill"})
			s.restart(syscall.SIGKILL)

			// And the producer goes on after both restarts.
			if err := prod.BeginTxn(); err != nil {
				t.Fatal(err)
			}
			send("after")
			if err := prod.CommitTxn(); err != nil {
				t.Fatalf("CommitTxn after the restarts: %v", err)
			}
			want = append(want, kv{0, "after", "after"})

			writeSentinels(t, addr, topic, 1)
			diffKV(t, "read_committed", readToSentinels(t, addr, topic, 1, kgo.ReadCommitted()), want)
			if got := groupOffsets(t, addr, group, topic, 1); got[0] != wantOffset {
				t.Errorf("group %s committed %d, want %d", group, got[0], wantOffset)
			}
		})
	}
}
