package kafka

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/internal/acl"
	"github.com/streamhouse/streamhouse/internal/broker"
	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/metadata/metadatatest"
	"github.com/streamhouse/streamhouse/internal/objstore"
	"github.com/streamhouse/streamhouse/internal/partlog"
	"github.com/streamhouse/streamhouse/internal/txn"
)

// testServer is a real Kafka listener over a real broker (SQLite or
// PostgreSQL metadata, local folder storage), on a random port.
type testServer struct {
	t      *testing.T
	addr   string
	broker *broker.Broker
	log    *partlog.Log
	store  metadata.Store
	srv    *Server
	txn    *txn.Coordinator
	acl    *acl.Authorizer
}

type testOptions struct {
	store            metadata.Store // default: fresh SQLite
	bucket           objstore.Bucket
	agentID          string
	autoCreateTopics bool
	// readChunkBytes, when set, reads objects in chunks of this size with
	// no hot tail, so reads come back in pieces.
	readChunkBytes int64
	// leaseTTL, when set, is the partition log's lease TTL (renewals every
	// third of it).
	leaseTTL time.Duration
	// kafka, when set, adjusts the listener's Config.
	kafka func(*Config)
	// txn, when set, adjusts the transaction coordinator's Config.
	txn func(*txn.Config)
	// acl, when set, adjusts the Authorizer's Config (Enforce, super
	// users).
	acl func(*acl.Config)
	// broker, when set, adjusts the broker's Config (PeerSASL).
	broker func(*broker.Config)
}

// txnVerifier is the log's VerifyTxn hook, calling the coordinator built
// after the log (as internal/server does).
type txnVerifier struct {
	c atomic.Pointer[txn.Coordinator]
}

func (v *txnVerifier) verify(ctx context.Context, tp metadata.TopicPartition, producerID int64, epoch int16) error {
	c := v.c.Load()
	if c == nil {
		return fmt.Errorf("no coordinator yet: %w", metadata.ErrUnavailable)
	}
	return c.Verify(ctx, tp, producerID, epoch)
}

func startServer(t *testing.T, o testOptions) *testServer {
	t.Helper()
	ctx := context.Background()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if o.store == nil {
		o.store = metadatatest.OpenSQLite(t)
	}
	if o.bucket == nil {
		b, err := objstore.NewLocal(filepath.Join(t.TempDir(), "storage"))
		if err != nil {
			t.Fatal(err)
		}
		o.bucket = b
	}
	if o.agentID == "" {
		o.agentID = "agent-1"
	}
	lcfg := partlog.Config{AgentID: o.agentID, Bucket: o.bucket, Store: o.store, Logger: logger}
	if o.readChunkBytes > 0 {
		lcfg.ReadChunkBytes, lcfg.HotTailBytes = o.readChunkBytes, -1
	}
	lcfg.LeaseTTL = o.leaseTTL
	verifier := &txnVerifier{}
	lcfg.VerifyTxn = verifier.verify
	plog, err := partlog.Open(ctx, lcfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	bcfg := broker.Config{AgentID: o.agentID, Addr: ln.Addr().String(), Store: o.store, Log: plog, Logger: logger}
	if o.broker != nil {
		o.broker(&bcfg)
	}
	b, err := broker.New(ctx, bcfg)
	if err != nil {
		t.Fatal(err)
	}
	b.Place(ctx)
	runCtx, stopRun := context.WithCancel(ctx)
	go b.Run(runCtx)
	tcfg := txn.Config{Backend: b, Logger: logger, ScanInterval: 100 * time.Millisecond}
	if o.txn != nil {
		o.txn(&tcfg)
	}
	co, err := txn.New(tcfg)
	if err != nil {
		t.Fatal(err)
	}
	verifier.c.Store(co)
	coDone := make(chan struct{})
	go func() { defer close(coDone); co.Run(runCtx) }()
	acfg := acl.Config{Store: o.store, Logger: logger}
	if o.acl != nil {
		o.acl(&acfg)
	}
	authz, err := acl.New(ctx, acfg)
	if err != nil {
		t.Fatal(err)
	}
	aclDone := make(chan struct{})
	go func() { defer close(aclDone); authz.Run(runCtx) }()
	kcfg := Config{Broker: b, Logger: logger, AdvertisedAddr: ln.Addr().String(), AutoCreateTopics: o.autoCreateTopics, DefaultPartitions: 1, Txn: co, ACL: authz}
	if o.kafka != nil {
		o.kafka(&kcfg)
	}
	srv := New(kcfg)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = srv.Close()
		stopRun()
		<-coDone
		<-aclDone
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = b.Shutdown(cctx)
		_ = plog.Close(cctx)
	})
	return &testServer{t: t, addr: ln.Addr().String(), broker: b, log: plog, store: o.store, srv: srv, txn: co, acl: authz}
}

// sharedStorage returns one metadata store and bucket for several agents.
func sharedStorage(t *testing.T) (metadata.Store, objstore.Bucket) {
	t.Helper()
	bucket, err := objstore.NewLocal(filepath.Join(t.TempDir(), "storage"))
	if err != nil {
		t.Fatal(err)
	}
	return metadatatest.OpenSQLite(t), bucket
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

// client returns a franz-go client for the server, closed at cleanup.
func (s *testServer) client(opts ...kgo.Opt) *kgo.Client {
	s.t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(s.addr)}, opts...)...)
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(cl.Close)
	return cl
}

func (s *testServer) admin() *kadm.Client { return kadm.NewClient(s.client()) }

func TestApiVersions(t *testing.T) {
	t.Parallel()
	s := startServer(t, testOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req := kmsg.NewPtrApiVersionsRequest()
	req.ClientSoftwareName, req.ClientSoftwareVersion = "test", "1"
	resp, err := req.RequestWith(ctx, s.client())
	if err != nil {
		t.Fatal(err)
	}
	if resp.ErrorCode != 0 {
		t.Fatalf("error code %d", resp.ErrorCode)
	}
	found := false
	for _, k := range resp.ApiKeys {
		if k.ApiKey == 18 && k.MinVersion == 0 && k.MaxVersion >= 3 {
			found = true
		}
	}
	if !found {
		t.Fatalf("ApiVersions does not list itself: %+v", resp.ApiKeys)
	}
}
