package compat

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamhouse/streamhouse/internal/e2e"
)

// aclClient is one Kafka client doing what the ACL cases check, logged in
// as l. Each returns the client's own error (nil when it worked); is says
// whether such an error is the Kafka error want, in the client's terms.
type aclClient struct {
	name, mech string
	// produce sends three records to topic.
	produce func(t *testing.T, l login, topic string) error
	// consume reads n records of topic from its start as a member of
	// group, or stops at the first error.
	consume func(t *testing.T, l login, topic, group string, n int) ([]string, error)
	// txn sends three records to topic in a transaction of txnID and
	// commits it.
	txn func(t *testing.T, l login, topic, txnID string) error
	is  func(err error, want *kerr.Error) bool
}

// librdkafkaText is how kcat words the Kafka errors the ACL cases expect:
// librdkafka's text for the code (rd_kafka_err2str), or, for a
// FindCoordinator error, "FindCoordinator response error: " and the
// broker's error message, which names the operation and resource.
var librdkafkaText = map[*kerr.Error]*regexp.Regexp{
	kerr.TopicAuthorizationFailed:           regexp.MustCompile(`Broker: Topic authorization failed`),
	kerr.GroupAuthorizationFailed:           regexp.MustCompile(`Broker: Group authorization failed|FindCoordinator response error: not authorized to DESCRIBE group`),
	kerr.TransactionalIDAuthorizationFailed: regexp.MustCompile(`Broker: Transactional Id authorization failed`),
}

// pyErr is an error confluent-kafka-python reported.
type pyErr struct{ errs []confluentErr }

func (e pyErr) Error() string { return fmt.Sprintf("confluent-kafka: %+v", e.errs) }

// pyResult is the error of a sasl.py run: the first of its errors with a
// broker's error code (librdkafka's own, negative, codes are transient
// states it reports on the way), or none.
func pyResult(errs ...[]confluentErr) error {
	var broker []confluentErr
	for _, es := range errs {
		for _, e := range es {
			if e.Code > 0 {
				broker = append(broker, e)
			}
		}
	}
	if len(broker) == 0 {
		return nil
	}
	return pyErr{broker}
}

var aclClients = []aclClient{
	{
		name: "franz-go", mech: "SCRAM-SHA-512",
		produce: func(t *testing.T, l login, topic string) error {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cl := l.franzClient(t, kgo.DefaultProduceTopic(topic), kgo.RecordDeliveryTimeout(30*time.Second))
			return cl.ProduceSync(ctx, &kgo.Record{Value: []byte("v0")}, &kgo.Record{Value: []byte("v1")}, &kgo.Record{Value: []byte("v2")}).FirstErr()
		},
		consume: func(t *testing.T, l login, topic, group string, n int) ([]string, error) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cl := l.franzClient(t, kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
				kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
			var got []string
			for len(got) < n && ctx.Err() == nil {
				fs := cl.PollFetches(ctx)
				for _, e := range fs.Errors() {
					if !errors.Is(e.Err, context.DeadlineExceeded) {
						return got, e.Err
					}
				}
				fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
			}
			return got, ctx.Err()
		},
		txn: func(t *testing.T, l login, topic, txnID string) error {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cl := l.franzClient(t, kgo.TransactionalID(txnID), kgo.DefaultProduceTopic(topic), kgo.RecordDeliveryTimeout(30*time.Second))
			if err := cl.BeginTransaction(); err != nil {
				return err
			}
			if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("t0")}, &kgo.Record{Value: []byte("t1")}, &kgo.Record{Value: []byte("t2")}).FirstErr(); err != nil {
				_ = cl.EndTransaction(ctx, kgo.TryAbort)
				return err
			}
			return cl.EndTransaction(ctx, kgo.TryCommit)
		},
		is: func(err error, want *kerr.Error) bool { return errors.Is(err, want) },
	},
	{
		name: "sarama", mech: "SCRAM-SHA-256",
		produce: func(t *testing.T, l login, topic string) error {
			cfg := l.sarama(sarama.SASLHandshakeV1)
			cfg.Producer.Retry.Max = 0
			prod, err := sarama.NewSyncProducer([]string{l.addr}, cfg)
			if err != nil {
				return err
			}
			defer prod.Close()
			for i := range 3 {
				if _, _, err := prod.SendMessage(&sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder(fmt.Sprint("v", i))}); err != nil {
					return err
				}
			}
			return nil
		},
		consume: func(t *testing.T, l login, topic, group string, n int) ([]string, error) {
			cfg := l.sarama(sarama.SASLHandshakeV1)
			cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
			cfg.Consumer.IsolationLevel = sarama.ReadCommitted
			cg, err := sarama.NewConsumerGroup([]string{l.addr}, group, cfg)
			if err != nil {
				return nil, err
			}
			defer cg.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			h := &collectHandler{n: n, done: cancel}
			for ctx.Err() == nil {
				if err := cg.Consume(ctx, []string{topic}, h); err != nil && ctx.Err() == nil {
					return h.values(), err
				}
			}
			if got := h.values(); len(got) >= n {
				return got, nil
			}
			return h.values(), errors.New("sarama: not within 60 s")
		},
		txn: func(t *testing.T, l login, topic, txnID string) error {
			cfg := l.sarama(sarama.SASLHandshakeV1)
			cfg.Producer.Idempotent = true
			cfg.Producer.RequiredAcks = sarama.WaitForAll
			cfg.Net.MaxOpenRequests = 1
			cfg.Producer.Transaction.ID = txnID
			cfg.Producer.Transaction.Retry.Max = 2
			prod, err := sarama.NewSyncProducer([]string{l.addr}, cfg)
			if err != nil {
				return err
			}
			defer prod.Close()
			if err := prod.BeginTxn(); err != nil {
				return err
			}
			for i := range 3 {
				if _, _, err := prod.SendMessage(&sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder(fmt.Sprint("t", i))}); err != nil {
					return err
				}
			}
			return prod.CommitTxn()
		},
		is: func(err error, want *kerr.Error) bool { return errors.Is(err, sarama.KError(want.Code)) },
	},
	{
		name: "kcat", mech: "SCRAM-SHA-256",
		produce: func(t *testing.T, l login, topic string) error {
			_, err := runErr(60*time.Second, "v0\nv1\nv2\n", "kcat", l.kcat("-P", "-t", topic, "-X", "message.timeout.ms=20000")...)
			return err
		},
		consume: func(t *testing.T, l login, topic, group string, n int) ([]string, error) {
			out, err := runErr(60*time.Second, "", "kcat", l.kcat("-G", group, "-X", "auto.offset.reset=earliest",
				"-c", fmt.Sprint(n), "-f", "%s\n", "-q", topic)...)
			return strings.Fields(string(out)), err
		},
		txn: func(t *testing.T, l login, topic, txnID string) error {
			_, err := runErr(60*time.Second, "t0\nt1\nt2\n", "kcat", l.kcat("-P", "-t", topic, "-X", "transactional.id="+txnID,
				"-X", "message.timeout.ms=20000")...)
			return err
		},
		is: func(err error, want *kerr.Error) bool {
			return err != nil && librdkafkaText[want].MatchString(err.Error())
		},
	},
	{
		name: "confluent-kafka", mech: "PLAIN",
		produce: func(t *testing.T, l login, topic string) error {
			sum := runSASLPy(t, confluentPython(t), l.py("produce", topic)...)
			if err := pyResult(sum.DeliveryErrors, sum.Errors); err != nil || sum.Undelivered == 0 {
				return err
			}
			return fmt.Errorf("confluent-kafka: %d undelivered", sum.Undelivered)
		},
		consume: func(t *testing.T, l login, topic, group string, n int) ([]string, error) {
			sum := runSASLPy(t, confluentPython(t), l.py("consume", topic, group, fmt.Sprint(n))...)
			if err := pyResult(sum.Errors); err != nil {
				return sum.Consumed, err
			}
			if len(sum.Consumed) < n {
				return sum.Consumed, errors.New("confluent-kafka: not within 60 s")
			}
			return sum.Consumed, nil
		},
		txn: func(t *testing.T, l login, topic, txnID string) error {
			sum := runSASLPy(t, confluentPython(t), l.py("txn", topic, txnID)...)
			if sum.TxnError != nil {
				return pyErr{[]confluentErr{*sum.TxnError}}
			}
			return pyResult(sum.Errors)
		},
		is: func(err error, want *kerr.Error) bool {
			var pe pyErr
			return errors.As(err, &pe) && slices.ContainsFunc(pe.errs, func(e confluentErr) bool { return e.Name == want.Message })
		},
	},
}

// collectHandler is a sarama consumer group handler that collects values
// until it has n, then calls done.
type collectHandler struct {
	n    int
	done func()
	vals []string
}

func (h *collectHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (h *collectHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h *collectHandler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	// One partition: one claim at a time, and values() is called after
	// Consume returned, which waits for ConsumeClaim.
	for m := range c.Messages() {
		h.vals = append(h.vals, string(m.Value))
		s.MarkMessage(m, "")
		if len(h.vals) >= h.n {
			h.done()
			return nil
		}
	}
	return nil
}
func (h *collectHandler) values() []string { return h.vals }

// TestACLClients: Kafka ACLs with each client, each logged in as a user of
// its own with nothing but these bindings (made by a super user with
// kadm's CreateAcls):
//
//	topic <c>-open         LITERAL   ALLOW READ, WRITE
//	topic <c>-fam-         PREFIXED  ALLOW READ, WRITE
//	topic <c>-fam-blocked  LITERAL   DENY WRITE
//	group <c>-group        PREFIXED  ALLOW READ
//	transactional-id <c>-txn LITERAL ALLOW WRITE
//
// Allowed work is checked by reading back the records; each refusal must
// be the Kafka error, in the client's own terms. A case that fails does
// not stop the others (t.Errorf), so one run shows every broken rule.
func TestACLClients(t *testing.T) {
	t.Parallel()
	needTool(t, "kcat")
	confluentPython(t)
	for _, be := range e2e.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			t.Parallel()
			users := []string{"admin:admin-pw", saslUser + ":" + saslPassword}
			for _, c := range aclClients {
				users = append(users, "acl-"+c.name+":"+c.name+"-pw")
			}
			s := startAuthServer(t, be, false, "AUTH_BOOTSTRAP_USERS="+strings.Join(users, ","))
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			admin := kadm.NewClient(s.login("SCRAM-SHA-512", saslUser, saslPassword).franzClient(t))
			for _, c := range aclClients {
				p, user := c.name+"-", "User:acl-"+c.name
				for _, topic := range []string{"open", "secret", "fam-a", "fam-b", "fam-blocked", "fam-txn"} {
					s.createTopic(p+topic, 1)
				}
				for _, b := range []*kadm.ACLBuilder{
					kadm.NewACLs().Allow(user).Topics(p+"open").Operations(kadm.OpRead, kadm.OpWrite).ResourcePatternType(kadm.ACLPatternLiteral),
					kadm.NewACLs().Allow(user).Topics(p+"fam-").Operations(kadm.OpRead, kadm.OpWrite).ResourcePatternType(kadm.ACLPatternPrefixed),
					kadm.NewACLs().Deny(user).Topics(p + "fam-blocked").Operations(kadm.OpWrite).ResourcePatternType(kadm.ACLPatternLiteral),
					kadm.NewACLs().Allow(user).Groups(p + "group").Operations(kadm.OpRead).ResourcePatternType(kadm.ACLPatternPrefixed),
					kadm.NewACLs().Allow(user).TransactionalIDs(p + "txn").Operations(kadm.OpWrite).ResourcePatternType(kadm.ACLPatternLiteral),
				} {
					res, err := admin.CreateACLs(ctx, b)
					if err != nil {
						t.Fatalf("CreateACLs: %v", err)
					}
					for _, r := range res {
						if r.Err != nil {
							t.Fatalf("CreateACLs %+v: %v", r, r.Err)
						}
					}
				}
			}

			for _, c := range aclClients {
				t.Run(c.name, func(t *testing.T) {
					t.Parallel()
					l := s.login(c.mech, "acl-"+c.name, c.name+"-pw")
					p := c.name + "-"
					refused := func(what string, err error, want *kerr.Error) {
						t.Helper()
						if !c.is(err, want) {
							t.Errorf("%s: %v; want %s", what, err, want.Message)
						}
					}
					readsBack := func(topic, group string, want int) {
						t.Helper()
						got, err := c.consume(t, l, topic, group, want)
						if err != nil || len(got) != want {
							t.Errorf("read %s as group %s: %q, %v; want %d records", topic, group, got, err, want)
						}
					}

					// A LITERAL topic ALLOW and a PREFIXED group ALLOW.
					if err := c.produce(t, l, p+"open"); err != nil {
						t.Errorf("produce to %sopen (allowed): %v", p, err)
					}
					readsBack(p+"open", p+"group-1", 3)
					// No binding at all.
					refused("produce to "+p+"secret (no ACL)", c.produce(t, l, p+"secret"), kerr.TopicAuthorizationFailed)
					// A PREFIXED topic ALLOW grants the family.
					for _, topic := range []string{p + "fam-a", p + "fam-b"} {
						if err := c.produce(t, l, topic); err != nil {
							t.Errorf("produce to %s (allowed by the prefix %sfam-): %v", topic, p, err)
						}
					}
					readsBack(p+"fam-b", p+"group-2", 3)
					// DENY beats the prefix's ALLOW.
					refused("produce to "+p+"fam-blocked (DENY WRITE)", c.produce(t, l, p+"fam-blocked"), kerr.TopicAuthorizationFailed)
					// A group outside the prefix.
					if got, err := c.consume(t, l, p+"open", "other-"+c.name, 3); !c.is(err, kerr.GroupAuthorizationFailed) || len(got) != 0 {
						t.Errorf("consume as group other-%s (no ACL): %q, %v; want nothing and %s", c.name, got, err, kerr.GroupAuthorizationFailed.Message)
					}
					// Transactional ids: the allowed one commits, read back
					// committed; another is refused.
					if err := c.txn(t, l, p+"fam-txn", p+"txn"); err != nil {
						t.Errorf("transaction as %stxn (allowed): %v", p, err)
					}
					readsBack(p+"fam-txn", p+"group-3", 3)
					refused("transaction as "+p+"txn-other (no ACL)", c.txn(t, l, p+"fam-txn", p+"txn-other"), kerr.TransactionalIDAuthorizationFailed)
				})
			}
		})
	}
}
