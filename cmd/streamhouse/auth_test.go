package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	grpcmd "google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/streamhouse/streamhouse/internal/e2e"
	pb "github.com/streamhouse/streamhouse/proto/streamhousepb"
)

// With AUTH_ENABLED the real binary asks every REST, schema registry and
// gRPC request for a login (401 with a Basic challenge, Unauthenticated),
// except the probes and the metrics scrape.
func TestLoginsOnEveryListener(t *testing.T) {
	t.Parallel()
	for _, be := range e2e.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			p := e2e.Start(t, dir, append(be.Env(t, dir), "AUTH_ENABLED=true", "AUTH_BOOTSTRAP_USERS=alice:alice-pw", "SUPER_USERS=alice"))
			get := func(path, user, password string) (int, http.Header, string) {
				t.Helper()
				req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, p.URL+path, nil)
				if err != nil {
					t.Fatal(err)
				}
				if user != "" {
					req.SetBasicAuth(user, password)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				body, _ := io.ReadAll(resp.Body)
				return resp.StatusCode, resp.Header, string(body)
			}
			for _, open := range []string{"/health", "/live", "/ready", "/metrics"} {
				if code, _, body := get(open, "", ""); code != 200 {
					t.Errorf("%s without a login: %d %s", open, code, body)
				}
			}
			// Failed logins from one address are answered more and more
			// slowly: few of them.
			refused := map[string][][2]string{
				"/api/v1/topics":          {{"", ""}, {"alice", "wrong"}, {"ghost", "alice-pw"}},
				"/schemas/subjects":       {{"", ""}, {"alice", "wrong"}},
				"/api/v1/users":           {{"", ""}},
				"/api/v1/consumer-groups": {{"", ""}},
			}
			for path, logins := range refused {
				for _, login := range logins {
					code, h, body := get(path, login[0], login[1])
					if code != 401 || h.Get("WWW-Authenticate") != `Basic realm="streamhouse"` {
						t.Errorf("%s as %q: %d %q %s", path, login[0], code, h.Get("WWW-Authenticate"), body)
					}
					if strings.HasPrefix(path, "/schemas") && !strings.Contains(body, `"error_code":401`) {
						t.Errorf("%s: not the registry's error shape: %s", path, body)
					}
				}
				if code, _, body := get(path, "alice", "alice-pw"); code != 200 {
					t.Errorf("%s as alice: %d %s", path, code, body)
				}
			}
			// The failures are counted, by listener and mechanism.
			_, _, metrics := get("/metrics", "", "")
			for _, want := range []string{`streamhouse_auth_failures_total{listener="http",mechanism="basic"} 3`,
				`streamhouse_auth_failures_total{listener="http",mechanism="none"} 4`,
				`streamhouse_auth_failures_total{listener="grpc",mechanism="basic"} 0`} {
				if !strings.Contains(metrics, want) {
					t.Errorf("/metrics lacks %s", want)
				}
			}

			conn, err := grpc.NewClient(p.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			sh := pb.NewStreamHouseClient(conn)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			basic := func(user, password string) context.Context {
				return grpcmd.AppendToOutgoingContext(ctx, "authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(user+":"+password)))
			}
			for name, c := range map[string]context.Context{"no metadata": ctx, "wrong password": basic("alice", "wrong")} {
				if _, err := sh.ListTopics(c, &pb.ListTopicsRequest{}); status.Code(err) != codes.Unauthenticated {
					t.Errorf("ListTopics, %s: %v", name, err)
				}
			}
			for name, c := range map[string]context.Context{"no metadata": ctx, "not basic": grpcmd.AppendToOutgoingContext(ctx, "authorization", "Bearer abc")} {
				stream, err := sh.Subscribe(c, &pb.SubscribeRequest{Topic: "x"})
				if err == nil {
					_, err = stream.Recv()
				}
				if status.Code(err) != codes.Unauthenticated {
					t.Errorf("Subscribe, %s: %v", name, err)
				}
			}
			if _, err := sh.CreateTopic(basic("alice", "alice-pw"), &pb.CreateTopicRequest{Name: "grpc-auth", PartitionCount: 1}); err != nil {
				t.Fatalf("CreateTopic as alice: %v", err)
			}
			resp, err := sh.ListTopics(basic("alice", "alice-pw"), &pb.ListTopicsRequest{})
			if err != nil || len(resp.Topics) != 1 {
				t.Fatalf("ListTopics as alice: %v %v", resp, err)
			}
			// The health service stays open for probes.
			if h, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || h.Status != healthpb.HealthCheckResponse_SERVING {
				t.Fatalf("health without a login: %v %v", h, err)
			}
			// A REST user made now logs in on gRPC at once.
			p.User, p.Password = "alice", "alice-pw"
			var created map[string]any
			if code := p.Call(http.MethodPost, "/api/v1/users", map[string]string{"name": "bob", "password": "bob-pw"}, &created); code != 201 {
				t.Fatalf("create bob: %d %v", code, created)
			}
			if _, err := sh.ListTopics(basic("bob", "bob-pw"), &pb.ListTopicsRequest{}); err != nil {
				t.Fatalf("bob on gRPC: %v", err)
			}
			_, _, metrics = get("/metrics", "", "")
			var n int
			for _, line := range strings.Split(metrics, "\n") {
				if strings.HasPrefix(line, `streamhouse_auth_failures_total{listener="grpc"`) {
					var v float64
					_ = json.Unmarshal([]byte(line[strings.LastIndex(line, " ")+1:]), &v)
					n += int(v)
				}
			}
			if n != 4 {
				t.Fatalf("gRPC failures counted: %d, want 4", n)
			}
		})
	}
}
