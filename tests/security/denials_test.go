package security

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	grpcmd "google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/streamhouse/streamhouse/internal/e2e"
	pb "github.com/streamhouse/streamhouse/proto/streamhousepb"
)

// Authorization denials are counted on every listener of the real binary:
// streamhouse_authorization_denials_total{listener, resource_type,
// operation}, its series at zero from the start. alice, who has no ACL,
// is refused once on each front end (Kafka, REST, the schema registry,
// SQL, gRPC) and lists topics on each (filtered listings, not refusals);
// each refusal is counted once, under its listener ("http" for REST, the
// registry and SQL, which share HTTP_ADDR), and nothing else is. The
// metric does not depend on the storage backend: the local one only.
func TestAuthorizationDenialsByListener(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := e2e.Start(t, dir, append(e2e.Local.Env(t, dir), "AUTH_ENABLED=true",
		"AUTH_BOOTSTRAP_USERS=root:root-pw,alice:alice-pw", "SUPER_USERS=root"))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	call := basicCaller(t, ctx, p.URL)
	// denials reads every series of the metric, by
	// "listener/resource_type/operation".
	denials := func() map[string]float64 {
		t.Helper()
		code, body := call("", "GET", "/metrics", "")
		if code != 200 {
			t.Fatalf("/metrics: %d", code)
		}
		out := map[string]float64{}
		sc := bufio.NewScanner(strings.NewReader(body))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			rest, ok := strings.CutPrefix(sc.Text(), "streamhouse_authorization_denials_total{")
			if !ok {
				continue
			}
			labels, value, _ := strings.Cut(rest, "} ")
			l := map[string]string{}
			for _, kv := range strings.Split(labels, ",") {
				k, v, _ := strings.Cut(kv, "=")
				l[k] = strings.Trim(v, `"`)
			}
			v, err := strconv.ParseFloat(value, 64)
			if err != nil {
				t.Fatalf("%s: %v", sc.Text(), err)
			}
			out[l["listener"]+"/"+l["resource_type"]+"/"+l["operation"]] = v
		}
		return out
	}
	before := denials()
	for _, listener := range []string{"kafka", "http", "grpc"} {
		if v, ok := before[listener+"/TOPIC/DESCRIBE"]; !ok || v != 0 {
			t.Errorf("%s/TOPIC/DESCRIBE before any refusal: %v (exists: %v)", listener, v, ok)
		}
	}
	if len(before) != 3*22 {
		t.Errorf("%d series at start, want 66 (22 operations of the 4 resource types, 3 listeners)", len(before))
	}

	if code, raw := call("root", "POST", "/api/v1/topics", `{"name":"secret","partitions":1}`); code != 201 {
		t.Fatalf("create secret: %d %s", code, raw)
	}
	if code, raw := call("root", "POST", "/schemas/subjects/secret-value/versions",
		`{"schema":"{\"type\":\"record\",\"name\":\"S\",\"fields\":[{\"name\":\"n\",\"type\":\"int\"}]}"}`); code != 200 {
		t.Fatalf("register secret-value: %d %s", code, raw)
	}

	// REST: one refusal (DESCRIBE topic), one filtered listing.
	if code, raw := call("alice", "GET", "/api/v1/topics/secret", ""); code != 403 {
		t.Errorf("alice GET /api/v1/topics/secret: %d %s", code, raw)
	}
	if code, raw := call("alice", "GET", "/api/v1/topics", ""); code != 200 || strings.Contains(raw, "secret") {
		t.Errorf("alice's topics: %d %s", code, raw)
	}
	// The schema registry: DESCRIBE topic; subjects filtered.
	if code, raw := call("alice", "GET", "/schemas/subjects/secret-value/versions", ""); code != 403 {
		t.Errorf("alice reads secret-value: %d %s", code, raw)
	}
	if code, raw := call("alice", "GET", "/schemas/subjects", ""); code != 200 || strings.TrimSpace(raw) != "[]" {
		t.Errorf("alice's subjects: %d %s", code, raw)
	}
	// SQL: READ topic; SHOW TOPICS filtered.
	sql := func(query string) (int, string) {
		b, _ := json.Marshal(map[string]string{"query": query})
		return call("alice", "POST", "/api/v1/sql", string(b))
	}
	if code, raw := sql(`SELECT * FROM secret`); code != 403 {
		t.Errorf("alice's SELECT on secret: %d %s", code, raw)
	}
	if code, raw := sql(`SHOW TOPICS`); code != 200 || strings.Contains(raw, "secret") {
		t.Errorf("alice's SHOW TOPICS: %d %s", code, raw)
	}

	// gRPC: READ topic; ListTopics filtered.
	conn, err := grpc.NewClient(p.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sh := pb.NewStreamHouseClient(conn)
	alice := grpcmd.AppendToOutgoingContext(ctx, "authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("alice:alice-pw")))
	if _, err := sh.Consume(alice, &pb.ConsumeRequest{Topic: "secret"}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("alice consumes secret over gRPC: %v", err)
	}
	if lt, err := sh.ListTopics(alice, &pb.ListTopicsRequest{}); err != nil || len(lt.Topics) != 0 {
		t.Errorf("alice's gRPC topics: %v %v", lt, err)
	}

	// Kafka: DESCRIBE topic and DESCRIBE group (OffsetFetch, sent to the
	// agent itself, without a coordinator lookup); Metadata of every
	// topic filtered.
	cl, err := kgo.NewClient(kgo.SeedBrokers(p.KafkaAddr), kgo.SASL(scram.Auth{User: "alice", Pass: "alice-pw"}.AsSha256Mechanism()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	agent := cl.SeedBrokers()[0]
	md := kmsg.NewPtrMetadataRequest()
	all, err := agent.Request(ctx, md)
	if err != nil || len(all.(*kmsg.MetadataResponse).Topics) != 0 {
		t.Fatalf("alice's Metadata of every topic: %v %v", all, err)
	}
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr("secret")
	md.Topics = []kmsg.MetadataRequestTopic{mt}
	one, err := agent.Request(ctx, md)
	if err != nil || one.(*kmsg.MetadataResponse).Topics[0].ErrorCode != kerr.TopicAuthorizationFailed.Code {
		t.Fatalf("alice's Metadata of secret: %+v %v", one, err)
	}
	of := kmsg.NewPtrOffsetFetchRequest()
	rg := kmsg.NewOffsetFetchRequestGroup()
	rg.Group = "theirs"
	of.Groups = []kmsg.OffsetFetchRequestGroup{rg}
	of.Group = "theirs"
	fetched, err := agent.Request(ctx, of)
	if err != nil {
		t.Fatal(err)
	}
	if r := fetched.(*kmsg.OffsetFetchResponse); r.ErrorCode != kerr.GroupAuthorizationFailed.Code &&
		(len(r.Groups) != 1 || r.Groups[0].ErrorCode != kerr.GroupAuthorizationFailed.Code) {
		t.Fatalf("alice's OffsetFetch: %+v", r)
	}

	want := map[string]float64{
		"http/TOPIC/DESCRIBE":  2, // REST and the registry
		"http/TOPIC/READ":      1, // SQL
		"grpc/TOPIC/READ":      1,
		"kafka/TOPIC/DESCRIBE": 1,
		"kafka/GROUP/DESCRIBE": 1,
	}
	got := denials()
	for k, v := range got {
		if v != want[k] {
			t.Errorf("%s: %v, want %v", k, v, want[k])
		}
	}
	for k := range want {
		if _, ok := got[k]; !ok {
			t.Errorf("no series %s", k)
		}
	}
	if t.Failed() {
		t.Log(fmt.Sprint(got))
	}
}
