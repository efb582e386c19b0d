package security

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	grpcmd "google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/streamhouse/streamhouse/internal/e2e"
	pb "github.com/streamhouse/streamhouse/proto/streamhousepb"
)

// The real binary with AUTH_ENABLED: ACLs made through Kafka's CreateAcls
// (franz-go's kadm) apply at once to the REST API, SQL, the schema
// registry and gRPC. alice may READ orders and nothing else: she sees
// only orders in every listing (REST, gRPC, SHOW TOPICS, subjects), reads
// it everywhere, and is refused everything else the same way whether it
// exists or not; root (SUPER_USERS) is refused nothing; no login is 401 /
// Unauthenticated. On both backends.
func TestACLsOnRESTSQLRegistryAndGRPC(t *testing.T) {
	t.Parallel()
	for _, be := range e2e.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			p := e2e.Start(t, dir, append(be.Env(t, dir), "AUTH_ENABLED=true",
				"AUTH_BOOTSTRAP_USERS=root:root-pw,alice:alice-pw", "SUPER_USERS=root"))
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			call := basicCaller(t, ctx, p.URL)
			must := func(user, method, path, body string, want int) string {
				t.Helper()
				code, raw := call(user, method, path, body)
				if code != want {
					t.Fatalf("%s %s as %q: %d %s, want %d", method, path, user, code, raw, want)
				}
				return raw
			}
			for _, topic := range []string{"orders", "secret"} {
				must("root", "POST", "/api/v1/topics", fmt.Sprintf(`{"name":%q,"partitions":1}`, topic), 201)
				must("root", "POST", "/api/v1/produce", fmt.Sprintf(`{"topic":%q,"value":"{\"n\":1}"}`, topic), 200)
				schema := fmt.Sprintf(`{"schema":"{\"type\":\"record\",\"name\":\"%s\",\"fields\":[{\"name\":\"n\",\"type\":\"int\"}]}"}`, topic)
				must("root", "POST", "/schemas/subjects/"+topic+"-value/versions", schema, 200)
			}

			// alice may READ orders, granted over the Kafka API.
			cl, err := kgo.NewClient(kgo.SeedBrokers(p.KafkaAddr), kgo.SASL(scram.Auth{User: "root", Pass: "root-pw"}.AsSha256Mechanism()))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			res, err := kadm.NewClient(cl).CreateACLs(ctx, kadm.NewACLs().Allow("User:alice").Topics("orders").Operations(kadm.OpRead))
			if err != nil || len(res) != 1 || res[0].Err != nil {
				t.Fatalf("CreateAcls: %v %+v", err, res)
			}

			// REST.
			if code, raw := call("", "GET", "/api/v1/topics", ""); code != 401 {
				t.Errorf("no login: %d %s", code, raw)
			}
			var topics []struct{ Name string }
			if err := json.Unmarshal([]byte(must("alice", "GET", "/api/v1/topics", "", 200)), &topics); err != nil || len(topics) != 1 || topics[0].Name != "orders" {
				t.Errorf("alice's topics: %+v %v", topics, err)
			}
			must("alice", "GET", "/api/v1/consume?topic=orders", "", 200)
			for _, path := range []string{"/api/v1/topics/secret", "/api/v1/topics/nowhere", "/api/v1/consume?topic=secret", "/api/v1/agents"} {
				if code, raw := call("alice", "GET", path, ""); code != 403 || !strings.Contains(raw, "_authorization_failed") {
					t.Errorf("alice GET %s: %d %s", path, code, raw)
				}
			}
			if code, raw := call("alice", "POST", "/api/v1/produce", `{"topic":"orders","value":"x"}`); code != 403 {
				t.Errorf("alice produces to orders (READ only): %d %s", code, raw)
			}
			must("root", "GET", "/api/v1/topics/secret", "", 200)

			// SQL.
			sql := func(user, query string) (int, string) {
				b, _ := json.Marshal(map[string]string{"query": query})
				return call(user, "POST", "/api/v1/sql", string(b))
			}
			if code, raw := sql("alice", `SELECT count(*) AS n FROM orders`); code != 200 || !strings.Contains(raw, `"rows":[[1]]`) {
				t.Errorf("alice's SELECT on orders: %d %s", code, raw)
			}
			for _, q := range []string{`SELECT * FROM secret`, `SELECT * FROM nowhere`,
				`SELECT o.key FROM orders o JOIN secret s ON o.key = s.key`, `WITH x AS (SELECT * FROM secret) SELECT * FROM x`} {
				if code, raw := sql("alice", q); code != 403 || !strings.Contains(raw, "topic_authorization_failed") {
					t.Errorf("alice: %s: %d %s", q, code, raw)
				}
			}
			if code, raw := sql("alice", `SHOW TOPICS`); code != 200 || !strings.Contains(raw, `"rows":[["orders",1]]`) {
				t.Errorf("alice's SHOW TOPICS: %d %s", code, raw)
			}
			if code, raw := sql("root", `SELECT count(*) FROM orders o JOIN secret s ON o.key = s.key`); code != 200 {
				t.Errorf("root's join: %d %s", code, raw)
			}

			// The schema registry.
			if got := must("alice", "GET", "/schemas/subjects", "", 200); strings.TrimSpace(got) != `["orders-value"]` {
				t.Errorf("alice's subjects: %s", got)
			}
			must("alice", "GET", "/schemas/subjects/orders-value/versions/1", "", 200)
			for _, subject := range []string{"secret-value", "nowhere-value"} {
				if code, raw := call("alice", "GET", "/schemas/subjects/"+subject+"/versions", ""); code != 403 || !strings.Contains(raw, `"error_code":40301`) {
					t.Errorf("alice reads %s: %d %s", subject, code, raw)
				}
			}

			// gRPC.
			conn, err := grpc.NewClient(p.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			sh := pb.NewStreamHouseClient(conn)
			alice := grpcmd.AppendToOutgoingContext(ctx, "authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("alice:alice-pw")))
			if _, err := sh.ListTopics(ctx, &pb.ListTopicsRequest{}); status.Code(err) != codes.Unauthenticated {
				t.Errorf("gRPC without a login: %v", err)
			}
			lt, err := sh.ListTopics(alice, &pb.ListTopicsRequest{})
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, tp := range lt.Topics {
				names = append(names, tp.Name)
			}
			if !slices.Equal(names, []string{"orders"}) {
				t.Errorf("alice's gRPC topics: %v", names)
			}
			if r, err := sh.Consume(alice, &pb.ConsumeRequest{Topic: "orders"}); err != nil || len(r.Records) != 1 {
				t.Errorf("alice consumes orders over gRPC: %v %v", r, err)
			}
			for _, topic := range []string{"secret", "nowhere"} {
				if _, err := sh.Consume(alice, &pb.ConsumeRequest{Topic: topic}); status.Code(err) != codes.PermissionDenied {
					t.Errorf("alice consumes %s over gRPC: %v", topic, err)
				}
			}
		})
	}
}
