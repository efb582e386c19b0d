package grpcapi

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/streamhouse/streamhouse/internal/broker"
	"github.com/streamhouse/streamhouse/internal/kafka"
	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/metadata/metadatatest"
	"github.com/streamhouse/streamhouse/internal/objstore"
	"github.com/streamhouse/streamhouse/internal/partlog"
	"github.com/streamhouse/streamhouse/internal/tlsconf"
	"github.com/streamhouse/streamhouse/internal/txn"
	pb "github.com/streamhouse/streamhouse/proto/streamhousepb"
)

// env is one agent (a real broker over SQLite and a local folder bucket)
// served by a real gRPC server on 127.0.0.1:0, with a client connected.
type env struct {
	b    *broker.Broker
	srv  *Server
	reg  *prometheus.Registry
	addr string
	conn *grpc.ClientConn
	c    pb.StreamHouseClient
}

func newEnv(t *testing.T, opts ServerOptions) *env {
	t.Helper()
	return newEnvOn(t, opts, metadatatest.OpenSQLite(t))
}

// newEnvOn is newEnv over store.
func newEnvOn(t *testing.T, opts ServerOptions, store metadata.Store) *env {
	t.Helper()
	bucket, err := objstore.NewLocal(filepath.Join(t.TempDir(), "bucket"))
	if err != nil {
		t.Fatal(err)
	}
	return newAgentEnv(t, opts, store, bucket, "a")
}

// newAgentEnv is agent id over a store and bucket that other agents may
// share.
func newAgentEnv(t *testing.T, opts ServerOptions, store metadata.Store, bucket objstore.Bucket, id string) *env {
	t.Helper()
	return newSecureAgentEnv(t, opts, store, bucket, id, nil)
}

// agentTLS turns on TLS on an agent's listeners and its calls to other
// agents (sec), and is how the test's client connects (client). With sec
// nil the agent is plaintext; login, when set, is the "user:password"
// the test's client sends as Basic on every call.
type agentTLS struct {
	sec    *tlsconf.Reloader
	client *tls.Config
	login  string
}

// basicLogin sends Basic credentials on every call, over any transport.
type basicLogin string

func (l basicLogin) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte(l))}, nil
}

func (basicLogin) RequireTransportSecurity() bool { return false }

// newSecureAgentEnv is newAgentEnv with TLS as at says (nil: plaintext),
// and the server's Config changed by cfgOpts.
func newSecureAgentEnv(t *testing.T, opts ServerOptions, store metadata.Store, bucket objstore.Bucket, id string, at *agentTLS, cfgOpts ...func(*Config)) *env {
	t.Helper()
	ctx := context.Background()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	// The log asks the coordinator, made after it, to admit transactional
	// batches.
	var coord *txn.Coordinator
	verify := func(ctx context.Context, tp metadata.TopicPartition, pid int64, epoch int16) error {
		return coord.Verify(ctx, tp, pid, epoch)
	}
	l, err := partlog.Open(ctx, partlog.Config{AgentID: id, Bucket: bucket, Store: store, Logger: logger, VerifyTxn: verify})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close(context.Background()) })
	// Listen first: the agent registers its gRPC address.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lis.Close() })
	// Kafka too: produces and transaction markers forwarded to another
	// agent travel over it.
	kln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = kln.Close() })
	bcfg := broker.Config{AgentID: id, Addr: kln.Addr().String(), Store: store, Log: l, Logger: logger, GRPCAddr: lis.Addr().String()}
	kcfg := kafka.Config{Logger: logger, AdvertisedAddr: kln.Addr().String()}
	cfg := Config{Logger: logger}
	creds := insecure.NewCredentials()
	dialOpts := []grpc.DialOption{}
	if at != nil && at.login != "" {
		dialOpts = append(dialOpts, grpc.WithPerRPCCredentials(basicLogin(at.login)))
	}
	if at != nil && at.sec != nil {
		bcfg.ForwardTLS, cfg.PeerTLS = at.sec.PeerConfig, at.sec.PeerConfig
		kcfg.TLS, opts.TLS = at.sec.ServerConfig(), at.sec.ServerConfig("h2")
		creds = credentials.NewTLS(at.client)
	}
	b, err := broker.New(ctx, bcfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.EnsureGroupSlots(ctx); err != nil { // this agent coordinates every transactional ID
		t.Fatal(err)
	}
	coord, err = txn.New(txn.Config{Backend: b, Logger: logger, ScanInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); coord.Run(runCtx) }()
	t.Cleanup(func() { stop(); <-done })
	kcfg.Broker, kcfg.Txn = b, coord
	ks := kafka.New(kcfg)
	go func() { _ = ks.Serve(kln) }()
	t.Cleanup(func() { _ = ks.Close() })
	reg := prometheus.NewRegistry()
	cfg.Broker, cfg.Registry, cfg.Txn = b, reg, coord
	for _, o := range cfgOpts {
		o(&cfg)
	}
	srv := New(cfg)
	gs := srv.NewGRPCServer(opts)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(srv.Close) // after gs.Stop
	t.Cleanup(gs.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), append(dialOpts, grpc.WithTransportCredentials(creds))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return &env{b: b, srv: srv, reg: reg, addr: lis.Addr().String(), conn: conn, c: pb.NewStreamHouseClient(conn)}
}

// ctx is a test call's context.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// createTopic creates a topic or fails the test.
func (e *env) createTopic(t *testing.T, name string, partitions uint32, cfg map[string]string) {
	t.Helper()
	if _, err := e.c.CreateTopic(testCtx(t), &pb.CreateTopicRequest{Name: name, PartitionCount: partitions, Config: cfg}); err != nil {
		t.Fatalf("create topic %s: %v", name, err)
	}
}

// wantCode fails unless err has code.
func wantCode(t *testing.T, what string, err error, code codes.Code) {
	t.Helper()
	if got := status.Code(err); got != code {
		t.Fatalf("%s: code %s (%v), want %s", what, got, err, code)
	}
}

// consumeAll reads a partition from offset to the high watermark.
func (e *env) consumeAll(t *testing.T, topic string, partition uint32, offset uint64) []*pb.ConsumedRecord {
	t.Helper()
	var out []*pb.ConsumedRecord
	for {
		res, err := e.c.Consume(testCtx(t), &pb.ConsumeRequest{Topic: topic, Partition: partition, Offset: offset})
		if err != nil {
			t.Fatalf("consume %s/%d at %d: %v", topic, partition, offset, err)
		}
		out = append(out, res.Records...)
		if len(res.Records) > 0 {
			offset = res.Records[len(res.Records)-1].Offset + 1
		}
		if !res.HasMore {
			return out
		}
	}
}

// counterValue reads one counter.
func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func ptr[T any](v T) *T { return &v }
