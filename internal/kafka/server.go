// Package kafka is the Kafka wire protocol front end (port 9092): framing,
// request headers, and one file per API key (NN_name.go), each registering
// the versions it serves so ApiVersions is derived from the same place that
// handles the request. Every message is encoded and decoded with franz-go's
// kmsg. Kafka errors travel as error codes inside responses; a Go error
// from a handler means "close the connection".
//
// Handlers call the broker API only; nothing here touches storage.
package kafka

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kmsg"
	"golang.org/x/sync/semaphore"

	"github.com/streamhouse/streamhouse/internal/acl"
	"github.com/streamhouse/streamhouse/internal/auth"
	"github.com/streamhouse/streamhouse/internal/broker"
	"github.com/streamhouse/streamhouse/internal/group"
	"github.com/streamhouse/streamhouse/internal/quota"
	"github.com/streamhouse/streamhouse/internal/txn"
)

// handlerFunc serves one request. It returns the response (nil: no
// response, as for acks=0 produce) or an error, which closes the
// connection.
type handlerFunc func(ctx context.Context, c *conn, req kmsg.Request) (kmsg.Response, error)

type apiHandler struct {
	key        int16
	minVersion int16
	maxVersion int16
	fn         handlerFunc
}

// handlers is filled by each API file's init and never changed afterwards.
var handlers = map[int16]apiHandler{}

// register is called from the init of each NN_name.go file.
func register(key, minVersion, maxVersion int16, fn handlerFunc) {
	if _, dup := handlers[key]; dup {
		panic(fmt.Sprintf("kafka: api key %d registered twice", key))
	}
	if req := kmsg.RequestForKey(key); req == nil || req.MaxVersion() < maxVersion {
		panic(fmt.Sprintf("kafka: api key %d version %d is unknown to kmsg", key, maxVersion))
	}
	handlers[key] = apiHandler{key: key, minVersion: minVersion, maxVersion: maxVersion, fn: fn}
}

// Config configures the Kafka listener.
type Config struct {
	Broker *broker.Broker
	Logger *slog.Logger
	// AdvertisedAddr is the host:port Metadata hands to clients for this
	// agent.
	AdvertisedAddr string
	// AutoCreateTopics creates unknown topics on Metadata and Produce with
	// DefaultPartitions partitions.
	AutoCreateTopics  bool
	DefaultPartitions int32
	// MaxRequestBytes bounds one Produce request frame (Kafka's
	// socket.request.max.bytes). Default 100 MiB. Other keys have fixed,
	// smaller caps (limits.go).
	MaxRequestBytes int32
	// MaxInflightRequestBytes bounds the request bytes read and not yet
	// answered over all connections (Kafka's queued.max.request.bytes): a
	// connection waits before reading a request that does not fit. Default
	// twice MaxRequestBytes; never less than the largest cap.
	MaxInflightRequestBytes int64
	// MaxConnections and MaxConnectionsPerIP bound open connections
	// (Kafka's max.connections, max.connections.per.ip); a connection over
	// either is closed at accept. Defaults 4096 and 1024.
	MaxConnections      int
	MaxConnectionsPerIP int
	// ConnectionsMaxIdle closes a connection that has no request in flight
	// and sends nothing for this long (Kafka's connections.max.idle.ms).
	// Default 10 minutes.
	ConnectionsMaxIdle time.Duration
	// FrameReadTimeout is how long a request that has begun may take to
	// arrive whole, plus one second per MiB of its size. Default 30 s.
	FrameReadTimeout time.Duration
	// Registry receives the request metrics; nil means none.
	Registry prometheus.Registerer
	// MaxInflightPerConn bounds requests handled concurrently on one
	// connection (responses still go out in order). Default 16.
	MaxInflightPerConn int
	// Txn is the transaction coordinator (txns.go). Nil: the transaction
	// APIs answer COORDINATOR_NOT_AVAILABLE (tests without transactions).
	Txn *txn.Coordinator
	// TransactionMaxTimeout bounds a producer's transaction.timeout.ms
	// (Kafka's transaction.max.timeout.ms): larger is
	// INVALID_TRANSACTION_TIMEOUT. Default 15 minutes.
	TransactionMaxTimeout time.Duration
	// Quotas enforces client quotas and serves DescribeClientQuotas and
	// AlterClientQuotas (quotas.go); its owner runs it. Nil: the server
	// makes one over the broker's metadata store and runs it until Close.
	Quotas *quota.Manager
	// TransactionVersion is the transaction.version feature level
	// finalized in ApiVersions (18_api_versions.go): 2 (the default)
	// lets clients use transactions V2, 1 keeps them on the original
	// protocol.
	TransactionVersion int16
	// ACL stores, lists and (with AUTH_ENABLED) enforces Kafka ACLs
	// (29_describe_acls.go, 30_create_acls.go, 31_delete_acls.go). Nil:
	// the ACL APIs answer SECURITY_DISABLED (tests without ACLs).
	ACL *acl.Authorizer
	// TLS, when set, makes the listener speak TLS (Kafka's SSL
	// listener): each connection's handshake must complete within
	// FrameReadTimeout before any request is read. Nil: plaintext.
	TLS *tls.Config
	// Auth authenticates clients (auth.go). Nil, or not Enabled: every
	// request is served, as User:ANONYMOUS (or the client certificate's
	// user).
	Auth *auth.Authenticator
}

// Server serves the Kafka protocol.
type Server struct {
	cfg    Config
	broker *broker.Broker
	log    *slog.Logger
	nodeID int32

	metrics  *metrics
	live     liveCache          // live agents, for group coordinator choice
	sessions *fetchSessionCache // KIP-227 incremental fetch sessions
	groups   *group.Coordinator // the consumer groups of the slots this agent holds
	txn      *txn.Coordinator   // the transactions of the slots this agent holds; may be nil
	acl      *acl.Authorizer    // may be nil
	slots    slotEpochs         // coordinator_choice.go
	quotas   *quota.Manager     // quotas.go
	// stopQuotas ends the quota manager's Run when the server made it.
	stopQuotas func()

	// inflight holds the request bytes read and not yet answered
	// (MaxInflightRequestBytes).
	inflight *semaphore.Weighted

	mu     sync.Mutex
	ln     net.Listener
	conns  map[*conn]struct{}
	perIP  map[string]int // open connections by remote IP
	closed bool
	wg     sync.WaitGroup
}

// New creates a Kafka server; Serve starts it.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxRequestBytes <= 0 {
		cfg.MaxRequestBytes = 100 << 20
	}
	if cfg.MaxInflightRequestBytes <= 0 {
		cfg.MaxInflightRequestBytes = 2 * int64(cfg.MaxRequestBytes)
	}
	cfg.MaxInflightRequestBytes = max(cfg.MaxInflightRequestBytes, int64(cfg.MaxRequestBytes), largeRequestCap)
	if cfg.MaxConnections <= 0 {
		cfg.MaxConnections = 4096
	}
	if cfg.MaxConnectionsPerIP <= 0 {
		cfg.MaxConnectionsPerIP = 1024
	}
	if cfg.ConnectionsMaxIdle <= 0 {
		cfg.ConnectionsMaxIdle = 10 * time.Minute
	}
	if cfg.FrameReadTimeout <= 0 {
		cfg.FrameReadTimeout = 30 * time.Second
	}
	if cfg.MaxInflightPerConn <= 0 {
		cfg.MaxInflightPerConn = 16
	}
	if cfg.DefaultPartitions <= 0 {
		cfg.DefaultPartitions = 1
	}
	if cfg.TransactionMaxTimeout <= 0 {
		cfg.TransactionMaxTimeout = 15 * time.Minute
	}
	if cfg.TransactionVersion <= 0 || cfg.TransactionVersion > maxTransactionVersion {
		cfg.TransactionVersion = maxTransactionVersion
	}
	if _, err := layouts(); err != nil {
		panic(fmt.Sprintf("kafka: request layouts: %v", err)) // a bug, caught by TestLayoutsAcceptRealRequests
	}
	s := &Server{
		metrics:  newMetrics(cfg.Registry),
		cfg:      cfg,
		broker:   cfg.Broker,
		log:      cfg.Logger.With("component", "kafka"),
		nodeID:   NodeID(cfg.Broker.AgentID()),
		sessions: newFetchSessionCache(defaultFetchSessionSlots),
		groups:   group.New(group.Config{Logger: cfg.Logger, Store: cfg.Broker}),
		txn:      cfg.Txn,
		acl:      cfg.ACL,
		conns:    make(map[*conn]struct{}),
		perIP:    make(map[string]int),
		inflight: semaphore.NewWeighted(cfg.MaxInflightRequestBytes),
		quotas:   cfg.Quotas,
	}
	if s.quotas == nil {
		s.quotas, s.stopQuotas = s.runQuotas()
	}
	s.acl.PrepareDenials(auth.ListenerKafka)
	return s
}

// NodeID maps an agent ID to the int32 broker ID Kafka clients see. It is a
// stable hash, so every agent computes the same ID for every other agent
// without coordination.
func NodeID(agentID string) int32 {
	return int32(crc32.ChecksumIEEE([]byte(agentID)) & 0x7fffffff)
}

// Serve accepts connections on ln until Close. It returns nil after Close.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errors.New("kafka server closed")
	}
	s.ln = ln
	s.mu.Unlock()
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				time.Sleep(backoff)
				continue
			}
			return fmt.Errorf("kafka accept: %w", err)
		}
		backoff = 0
		ip := remoteIP(nc)
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			_ = nc.Close()
			continue
		}
		if reason := s.admitLocked(ip); reason != "" {
			s.mu.Unlock()
			s.metrics.connsRejected.WithLabelValues(reason).Inc()
			s.log.Debug("kafka connection rejected", "remote", nc.RemoteAddr().String(), "reason", reason)
			_ = nc.Close()
			continue
		}
		if s.cfg.TLS != nil {
			nc = tls.Server(nc, s.cfg.TLS) // the handshake runs in c.serve
		}
		c := newConn(s, nc)
		s.conns[c] = struct{}{}
		s.perIP[ip]++
		s.wg.Add(1)
		s.mu.Unlock()
		s.metrics.conns.Inc()
		go func() {
			defer s.wg.Done()
			defer s.metrics.conns.Dec()
			c.serve()
			s.mu.Lock()
			delete(s.conns, c)
			if s.perIP[ip]--; s.perIP[ip] <= 0 {
				delete(s.perIP, ip)
			}
			s.mu.Unlock()
		}()
	}
}

// Close stops accepting, closes every connection and waits for their
// goroutines.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	var err error
	if s.ln != nil {
		err = s.ln.Close()
	}
	for c := range s.conns {
		c.close()
	}
	s.mu.Unlock()
	_ = s.groups.Close()
	s.wg.Wait()
	if s.stopQuotas != nil {
		s.stopQuotas()
	}
	return err
}

// advertised returns host and port of an advertised address.
func splitAddr(addr string) (string, int32) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr, 9092
	}
	p, _ := strconv.Atoi(port)
	return host, int32(p)
}
