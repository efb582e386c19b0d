package security

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/streamhouse/streamhouse/internal/e2e"
)

// Kafka ACLs on the real binary: AUTH_ENABLED turns enforcement on,
// SUPER_USERS bypass it, and librdkafka (kcat) and sarama producers see a
// denied produce as TOPIC_AUTHORIZATION_FAILED, then succeed once WRITE
// is granted through the Kafka ACL API.
func TestKafkaACLsEnforced(t *testing.T) {
	for _, be := range e2e.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			dir := t.TempDir()
			env := append(be.Env(t, dir), "AUTH_ENABLED=true",
				"AUTH_BOOTSTRAP_USERS=admin:admin-pw,alice:alice-pw", "SUPER_USERS=admin")
			p := e2e.Start(t, dir, env)
			ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
			defer cancel()
			login := func(user, password string) *kadm.Client {
				cl, err := kgo.NewClient(kgo.SeedBrokers(p.KafkaAddr), kgo.SASL(scram.Auth{User: user, Pass: password}.AsSha512Mechanism()))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(cl.Close)
				return kadm.NewClient(cl)
			}
			admin, alice := login("admin", "admin-pw"), login("alice", "alice-pw")
			const topic = "guarded"
			if _, err := admin.CreateTopic(ctx, 1, -1, nil, topic); err != nil {
				t.Fatalf("a super user creates a topic without any ACL: %v", err)
			}
			if _, err := alice.CreateTopic(ctx, 1, -1, nil, "alices"); !errors.Is(err, kerr.TopicAuthorizationFailed) {
				t.Fatalf("alice creates a topic without CREATE: %v, want TOPIC_AUTHORIZATION_FAILED", err)
			}
			aliceWrite := kadm.NewACLs().Allow("User:alice").Topics(topic).Operations(kadm.OpWrite).ResourcePatternType(kadm.ACLPatternLiteral)
			if res, err := alice.CreateACLs(ctx, aliceWrite); err != nil || res[0].Err == nil || !errors.Is(res[0].Err, kerr.ClusterAuthorizationFailed) {
				t.Fatalf("alice grants herself WRITE: %v %+v, want CLUSTER_AUTHORIZATION_FAILED", err, res)
			}

			// librdkafka.
			if _, err := exec.LookPath("kcat"); err != nil {
				t.Fatalf("kcat is missing (scripts/install-test-tools.sh installs it): %v", err)
			}
			kcat := func(stdin string) (string, error) {
				kctx, kcancel := context.WithTimeout(ctx, 60*time.Second)
				defer kcancel()
				cmd := exec.CommandContext(kctx, "kcat", "-b", p.KafkaAddr, "-X", "security.protocol=SASL_PLAINTEXT",
					"-X", "sasl.mechanisms=SCRAM-SHA-256", "-X", "sasl.username=alice", "-X", "sasl.password=alice-pw",
					"-X", "message.timeout.ms=20000", "-P", "-t", topic)
				cmd.Stdin = strings.NewReader(stdin)
				cmd.WaitDelay = 5 * time.Second
				out, err := cmd.CombinedOutput()
				return string(out), err
			}
			out, err := kcat("denied\n")
			if !strings.Contains(strings.ToLower(out), "topic authorization failed") {
				t.Fatalf("kcat produce without WRITE: %v\n%s\nwant a Topic authorization failed error", err, out)
			}

			// sarama.
			sc := sarama.NewConfig()
			sc.Net.SASL.Enable, sc.Net.SASL.Mechanism = true, sarama.SASLTypePlaintext
			sc.Net.SASL.User, sc.Net.SASL.Password = "alice", "alice-pw"
			sc.Producer.Return.Successes = true
			sc.Producer.Retry.Max = 0
			sc.Metadata.Retry.Max = 0
			sp, err := sarama.NewSyncProducer([]string{p.KafkaAddr}, sc)
			if err != nil {
				t.Fatal(err)
			}
			defer sp.Close()
			send := func(v string) error {
				_, _, err := sp.SendMessage(&sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder(v)})
				return err
			}
			if err := send("denied"); !errors.Is(err, sarama.ErrTopicAuthorizationFailed) {
				t.Fatalf("sarama produce without WRITE: %v, want %v", err, sarama.ErrTopicAuthorizationFailed)
			}

			// Granted through the Kafka API by the super user: enforced on
			// this agent when CreateAcls answers.
			if res, err := admin.CreateACLs(ctx, aliceWrite); err != nil || res[0].Err != nil {
				t.Fatalf("admin grants alice WRITE: %v %+v", err, res)
			}
			if err := send("granted"); err != nil {
				t.Fatalf("sarama produce with WRITE: %v", err)
			}
			if out, err := kcat("granted\n"); err != nil {
				t.Fatalf("kcat produce with WRITE: %v\n%s", err, out)
			}
			// Revoked: refused again on the next request.
			if res, err := admin.DeleteACLs(ctx, kadm.NewACLs().Allow("User:alice").AllowHosts("*").Topics(topic).Operations(kadm.OpWrite).ResourcePatternType(kadm.ACLPatternLiteral)); err != nil || res[0].Err != nil || len(res[0].Deleted) != 1 {
				t.Fatalf("admin revokes alice's WRITE: %v %+v", err, res)
			}
			if err := send("revoked"); !errors.Is(err, sarama.ErrTopicAuthorizationFailed) {
				t.Fatalf("sarama produce after the revocation: %v, want %v", err, sarama.ErrTopicAuthorizationFailed)
			}
		})
	}
}
