// Package grpcapi serves the gRPC service streamhouse.StreamHouse
// (proto/streamhouse.proto, SPEC.md "gRPC") over the broker API, together
// with the standard gRPC health service and server reflection. It decodes
// and validates requests, calls the broker, and maps every broker, log and
// batch error to a gRPC status code (errors.go says which).
//
// Decisions a client can observe:
//
//   - Produce has no ack mode and answers once the record is durable;
//     ProduceBatch follows its ack_mode (ACK_BUFFERED is the proto3
//     default, as in the original).
//   - A ProduceBatch is stored as ONE record batch. With producer_id,
//     producer_epoch and base_sequence it is an idempotent batch, checked
//     by the partition log like a Kafka idempotent producer's: a resend
//     stores nothing and answers the original offsets with
//     duplicates_filtered=true. Producer state lives with the partition, so
//     this holds on whichever agent leads it.
//   - gRPC cannot tell an empty bytes field from an absent one: an empty key
//     is stored as a null key (keyless), an empty value as an empty value
//     (never a tombstone).
//   - Headers are a string map on the wire: a Kafka record with a repeated
//     header key shows its last value, and header keys or values that are
//     not UTF-8 are shown with U+FFFD replacement characters.
//   - Consume does not wait for data; its consumer_group is accepted and
//     ignored (the original used it only for tracking): offsets are stored
//     by CommitOffset only. Subscribe tails a partition with long polls.
//     Both keep an answer under about 4 MiB (gRPC's default client receive
//     limit) whatever max_records says.
//   - InitProducer allocates a cluster-wide producer ID (epoch 0). Heartbeat
//     validity is per agent: each agent remembers the producers it issued,
//     in memory, until they miss their timeout (see producers.go).
//   - Transactions (InitProducer with transactional_id, BeginTransaction,
//     ProduceBatch with transaction_id, Commit/AbortTransaction) run on
//     the Kafka transaction coordinator (txns.go), on any agent: one that
//     does not coordinate the transactional ID forwards the call to the
//     one that does (forward.go); every read (Consume, Subscribe) is
//     read_committed.
package grpcapi

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	grpcmd "google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/streamhouse/streamhouse/internal/acl"
	"github.com/streamhouse/streamhouse/internal/auth"
	"github.com/streamhouse/streamhouse/internal/authz"
	"github.com/streamhouse/streamhouse/internal/broker"
	"github.com/streamhouse/streamhouse/internal/txn"
	pb "github.com/streamhouse/streamhouse/proto/streamhousepb"
)

// ServiceName is the full name of the StreamHouse service.
const ServiceName = "streamhouse.StreamHouse"

// Config configures a Server.
type Config struct {
	Broker *broker.Broker
	Logger *slog.Logger // default slog.Default()
	// Registry receives the request metrics; nil means no metrics.
	Registry prometheus.Registerer
	// Now is the clock of producer sessions; default time.Now.
	Now func() time.Time
	// Txn is the transaction coordinator of this agent. Nil: the
	// transaction methods answer FailedPrecondition.
	Txn *txn.Coordinator
	// PeerTLS, when set, gives the TLS configuration of each new
	// connection to another agent (forwarded transaction calls); nil:
	// plaintext.
	PeerTLS func() *tls.Config
	// Auth authenticates calls (auth.go). Nil, or not Enabled: every call
	// runs as User:ANONYMOUS (or its client certificate's user).
	Auth *auth.Authenticator
	// ACL decides what each caller may do (authorize.go); nil: everything
	// is allowed.
	ACL *acl.Authorizer
	// observeAuth, when set (tests), sees the metadata of every call as
	// it is authenticated.
	observeAuth func(fullMethod string, md grpcmd.MD)
}

// ServerOptions are the GRPC_* settings of SPEC.md. A zero field keeps
// gRPC's default.
type ServerOptions struct {
	MaxConcurrentStreams    uint32        // GRPC_MAX_CONCURRENT_STREAMS, per connection
	KeepaliveInterval       time.Duration // GRPC_KEEPALIVE_INTERVAL_SECS: ping an idle connection this often
	KeepaliveTimeout        time.Duration // GRPC_KEEPALIVE_TIMEOUT_SECS: close it if the ping is not answered in time
	InitialStreamWindowSize int32         // GRPC_INITIAL_STREAM_WINDOW_SIZE (gRPC ignores values below 64 KiB)
	InitialConnWindowSize   int32         // GRPC_INITIAL_CONNECTION_WINDOW_SIZE (likewise)
	// TLS, when set, serves gRPC over TLS with this configuration (a
	// method finds the client's verified certificate in the peer's
	// credentials.TLSInfo). Nil: plaintext.
	TLS *tls.Config
}

// grpcOptions turns the settings into gRPC server options.
func (o ServerOptions) grpcOptions() []grpc.ServerOption {
	var opts []grpc.ServerOption
	if o.MaxConcurrentStreams > 0 {
		opts = append(opts, grpc.MaxConcurrentStreams(o.MaxConcurrentStreams))
	}
	if o.KeepaliveInterval > 0 || o.KeepaliveTimeout > 0 {
		// gRPC fills a zero Time or Timeout with its own default.
		opts = append(opts, grpc.KeepaliveParams(keepalive.ServerParameters{Time: o.KeepaliveInterval, Timeout: o.KeepaliveTimeout}))
	}
	if o.InitialStreamWindowSize > 0 {
		opts = append(opts, grpc.InitialWindowSize(o.InitialStreamWindowSize))
	}
	if o.InitialConnWindowSize > 0 {
		opts = append(opts, grpc.InitialConnWindowSize(o.InitialConnWindowSize))
	}
	if o.TLS != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(o.TLS)))
	}
	return opts
}

// Server implements streamhouse.StreamHouse. Create with New.
type Server struct {
	pb.UnimplementedStreamHouseServer

	b         *broker.Broker
	log       *slog.Logger
	health    *health.Server
	producers *producerSessions
	metrics   *metrics
	txn       *txn.Coordinator
	now       func() time.Time
	peers     peers // connections to the other agents (forward.go)
	auth      *auth.Authenticator
	acl       *authz.Checker
	// observeAuth is Config.observeAuth.
	observeAuth func(fullMethod string, md grpcmd.MD)
}

// New returns a Server over cfg.Broker.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{
		b:           cfg.Broker,
		log:         cfg.Logger.With("component", "grpc"),
		health:      health.NewServer(),
		producers:   newProducerSessions(cfg.Now),
		metrics:     newMetrics(cfg.Registry),
		txn:         cfg.Txn,
		now:         cfg.Now,
		peers:       peers{creds: peerCredentials(cfg.PeerTLS)},
		auth:        cfg.Auth,
		acl:         authz.New(cfg.ACL, auth.ListenerGRPC),
		observeAuth: cfg.observeAuth,
	}
	s.health.SetServingStatus(ServiceName, healthpb.HealthCheckResponse_SERVING)
	return s
}

// NewGRPCServer returns a gRPC server with opts applied, this server's
// metrics and error interceptors installed, and StreamHouse, health and
// reflection registered. The caller serves and stops it.
func (s *Server) NewGRPCServer(opts ServerOptions) *grpc.Server {
	gs := grpc.NewServer(append(opts.grpcOptions(),
		grpc.ChainUnaryInterceptor(s.unaryInterceptor, s.authUnary),
		grpc.ChainStreamInterceptor(s.streamInterceptor, s.authStream),
	)...)
	s.Register(gs)
	return gs
}

// Register registers StreamHouse, the health service and reflection on gs.
// A server not made by NewGRPCServer has no request metrics.
func (s *Server) Register(gs *grpc.Server) {
	pb.RegisterStreamHouseServer(gs, s)
	healthpb.RegisterHealthServer(gs, s.health)
	reflection.Register(gs)
}

// Close closes the connections to other agents that forwarded transaction
// calls opened (forward.go); call it once the gRPC server has stopped.
func (s *Server) Close() { s.peers.close() }

// SetServing sets what the health service reports for the whole server and
// for StreamHouse: SERVING or NOT_SERVING (say, while shutting down).
func (s *Server) SetServing(serving bool) {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if serving {
		st = healthpb.HealthCheckResponse_SERVING
	}
	s.health.SetServingStatus("", st)
	s.health.SetServingStatus(ServiceName, st)
}

// metrics are the request series.
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamhouse_grpc_requests_total",
			Help: "gRPC requests by full method and status code.",
		}, []string{"method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "streamhouse_grpc_request_duration_seconds",
			Help:    "Latency of unary gRPC requests by full method (streams are counted, not timed).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16), // 0.5ms .. ~16s
		}, []string{"method"}),
	}
	if reg != nil {
		m.requests = register(reg, m.requests)
		m.duration = register(reg, m.duration)
	}
	return m
}

// register registers c, or returns the equal collector already there (two
// servers on one registry share their series).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(err) // a programming error: same name, different shape
	}
	return c
}

func (s *Server) unaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := handler(ctx, req)
	err = s.finish(info.FullMethod, err)
	elapsed := time.Since(start)
	s.metrics.duration.WithLabelValues(info.FullMethod).Observe(elapsed.Seconds())
	s.log.Debug("grpc request", "method", info.FullMethod, "code", status.Code(err).String(), "duration", elapsed)
	return resp, err
}

func (s *Server) streamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	start := time.Now()
	err := s.finish(info.FullMethod, handler(srv, ss))
	s.log.Debug("grpc stream", "method", info.FullMethod, "code", status.Code(err).String(), "duration", time.Since(start))
	return err
}

// finish makes sure err is a status (a plain error would reach the client
// as Unknown) and counts the request.
func (s *Server) finish(method string, err error) error {
	if err != nil {
		if _, ok := status.FromError(err); !ok {
			err = s.toStatus(method, err)
		}
	}
	s.metrics.requests.WithLabelValues(method, status.Code(err).String()).Inc()
	return err
}
