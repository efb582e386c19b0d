// Package server wires one StreamHouse agent together from its Config: the
// object store and metadata store backends, the partition log, the broker
// API, and the listeners (REST with the schema registry, health and
// metrics). cmd/streamhouse only parses settings and handles signals.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	"google.golang.org/grpc"

	"github.com/streamhouse/streamhouse/internal/acl"
	"github.com/streamhouse/streamhouse/internal/auth"
	"github.com/streamhouse/streamhouse/internal/authz"
	"github.com/streamhouse/streamhouse/internal/broker"
	"github.com/streamhouse/streamhouse/internal/config"
	"github.com/streamhouse/streamhouse/internal/grpcapi"
	"github.com/streamhouse/streamhouse/internal/kafka"
	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/metadata/sqlstore"
	"github.com/streamhouse/streamhouse/internal/objstore"
	"github.com/streamhouse/streamhouse/internal/partlog"
	"github.com/streamhouse/streamhouse/internal/rest"
	"github.com/streamhouse/streamhouse/internal/schemaregistry"
	"github.com/streamhouse/streamhouse/internal/sql"
	"github.com/streamhouse/streamhouse/internal/tlsconf"
	"github.com/streamhouse/streamhouse/internal/txn"
)

// The broker is the transaction coordinator's backend.
var _ txn.Backend = (*broker.Broker)(nil)

// Server is one running agent.
type Server struct {
	cfg    *config.Config
	log    *slog.Logger
	reg    *prometheus.Registry
	bucket objstore.Bucket
	store  metadata.Store
	auth   *auth.Authenticator // logins on every listener
	plog   *partlog.Log
	broker *broker.Broker
	txn    *txn.Coordinator
	acl    *acl.Authorizer
	// sampler reads the registry for GET /api/v1/metrics's rates; Run
	// runs it with the other background loops.
	sampler *rest.Sampler
	sql     sql.Engine // nil in a build without cgo
	// tls holds the listeners' certificate and CAs and reloads them; nil
	// when TLS is off.
	tls *tlsconf.Reloader
	// stopping is closed when the HTTP server starts shutting down (live
	// SQL queries end then).
	stopping chan struct{}

	httpLn  net.Listener
	httpSrv *http.Server
	kafkaLn net.Listener
	kafka   *kafka.Server
	grpcLn  net.Listener
	grpcAPI *grpcapi.Server
	grpcSrv *grpc.Server
	// peerSASL logs this agent's Kafka clients to other agents in (its
	// own user, when logins are required).
	peerSASL sasl.Mechanism
}

// openAuth sets up the logins of every listener (AUTH_*, SUPER_USERS):
// the bootstrap users, and, when logins are required, this agent's own
// user for the requests it sends other agents.
func (s *Server) openAuth(ctx context.Context) error {
	cfg := s.cfg
	s.auth = auth.New(auth.Config{
		Store:           s.store,
		Enabled:         cfg.AuthEnabled,
		SuperUsers:      cfg.SuperUsers(),
		Iterations:      cfg.AuthScramIterations,
		SessionLifetime: cfg.AuthSessionLifetime,
		Logger:          s.log,
		Registry:        s.reg,
	})
	var users []auth.BootstrapUser
	for _, u := range cfg.BootstrapUsers() {
		users = append(users, auth.BootstrapUser{Name: u.Name, Password: u.Password})
	}
	if err := s.auth.Bootstrap(ctx, users); err != nil {
		return fmt.Errorf("AUTH_BOOTSTRAP_USERS: %w", err)
	}
	if !cfg.AuthEnabled {
		return nil
	}
	user, password, err := s.auth.AgentLogin(ctx, cfg.AgentID)
	if err != nil {
		return err
	}
	s.peerSASL = scram.Auth{User: user, Pass: password}.AsSha512Mechanism()
	s.auth.CheckHasUsers(ctx)
	return nil
}

// New opens the backends and binds the listeners. Nothing is served until
// Run. On error everything opened so far is closed.
func New(ctx context.Context, cfg *config.Config, logger *slog.Logger) (_ *Server, err error) {
	start := time.Now()
	s := &Server{cfg: cfg, log: logger, reg: prometheus.NewRegistry(), stopping: make(chan struct{})}
	s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	defer func() {
		if err != nil {
			s.closeBackends()
		}
	}()

	// TLS first: bad certificate files stop the start before anything
	// is opened.
	if cfg.TLSEnabled() {
		if s.tls, err = tlsconf.New(tlsconf.Config{
			CertFile: cfg.TLSCertFile, KeyFile: cfg.TLSKeyFile, ClientCAFile: cfg.TLSClientCAFile, PeerCAFile: cfg.TLSPeerCAFile,
			ReloadInterval: cfg.TLSReloadInterval, Logger: logger, Registry: s.reg,
		}); err != nil {
			return nil, fmt.Errorf("TLS (TLS_CERT_FILE, TLS_KEY_FILE, TLS_CLIENT_CA_FILE, TLS_PEER_CA_FILE): %w", err)
		}
	}
	if s.bucket, err = openBucket(ctx, cfg, logger); err != nil {
		return nil, err
	}
	s.bucket = objstore.WithMetrics(s.bucket, s.reg, cfg.Storage)
	if s.store, err = openStore(ctx, cfg, logger); err != nil {
		return nil, err
	}
	if err = s.openAuth(ctx); err != nil {
		return nil, err
	}
	// The disk cache keeps ranged GETs of a remote store on local disk. On
	// the local folder backend the objects already are local files, so a
	// cache would only copy them: it is off there.
	cacheDir := cfg.CacheDir
	if cfg.CacheSize == 0 || cfg.Storage == config.StorageLocal {
		cacheDir = ""
	}
	// The log verifies transactional batches with the coordinator, which
	// needs the broker, which needs the log: the holder is filled once the
	// coordinator exists (before any listener serves).
	verifier := &txnVerifier{}
	hot := cfg.HotTailBytes
	if hot == 0 {
		hot = -1
	}
	readCache, readAhead := cfg.ReadCacheBytes, cfg.ReadAheadBytes
	if readCache == 0 {
		readCache = -1
	}
	if readAhead == 0 {
		readAhead = -1
	}
	s.plog, err = partlog.Open(ctx, partlog.Config{
		AgentID:            cfg.AgentID,
		Bucket:             s.bucket,
		Store:              s.store,
		Logger:             logger,
		Metrics:            s.reg,
		FlushMinInterval:   cfg.FlushMinInterval,
		FlushInterval:      cfg.FlushInterval,
		DurableMaxAge:      cfg.DurableBatchMaxAge,
		MaxObjectBytes:     cfg.DurableBatchMaxBytes,
		MaxObjectRecords:   cfg.DurableBatchMaxRecords,
		MaxPendingBytes:    cfg.MaxBufferBytes,
		LeaseTTL:           cfg.LeaseTTL,
		HotTailBytes:       hot,
		ReadCacheBytes:     readCache,
		ReadAheadBytes:     readAhead,
		CacheDir:           cacheDir,
		CacheBytes:         cfg.CacheSize,
		GCGrace:            cfg.GCGrace,
		GCInterval:         cfg.GCInterval,
		CommitTimeout:      config.CommitTimeout,
		ProducerExpiration: cfg.ProducerExpiration,
		VerifyTxn:          verifier.verify,
		Compaction: partlog.CompactionConfig{
			Interval: cfg.CompactionInterval, SegmentMaxBytes: cfg.SegmentMaxSize, SegmentMaxAge: cfg.SegmentMaxAge,
			PassMaxDuration: cfg.CompactionPassMax,
		},
		WALDir:          walDir(cfg),
		WALSyncInterval: cfg.WALSyncInterval,
		WALMaxSize:      cfg.WALMaxSize,
	})
	if err != nil {
		return nil, fmt.Errorf("open partition log: %w", err)
	}

	if s.httpLn, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
		return nil, fmt.Errorf("listen HTTP_ADDR %s: %w", cfg.HTTPAddr, err)
	}
	if s.grpcLn, err = net.Listen("tcp", cfg.GRPCAddr); err != nil {
		return nil, fmt.Errorf("listen GRPC_ADDR %s: %w", cfg.GRPCAddr, err)
	}
	if s.kafkaLn, err = net.Listen("tcp", cfg.KafkaAddr); err != nil {
		return nil, fmt.Errorf("listen KAFKA_ADDR %s: %w", cfg.KafkaAddr, err)
	}
	advertised := cfg.KafkaAdvertisedFor(s.kafkaLn.Addr())
	grpcAdvertised := cfg.GRPCAdvertisedFor(advertised, s.grpcLn.Addr())
	// ACLs are stored and listed always, and enforced with AUTH_ENABLED;
	// SUPER_USERS and the agents' own users bypass them (s.auth is set
	// before any request is served).
	if s.acl, err = acl.New(ctx, acl.Config{Store: s.store, Logger: logger, Registry: s.reg, Enforce: cfg.AuthEnabled, SuperUsers: cfg.SuperUsers(),
		SuperUser: func(p string) bool { return s.auth.IsSuperUser(auth.ParsePrincipal(p)) }}); err != nil {
		return nil, err
	}
	registry := schemaregistry.New(schemaregistry.Config{
		Store:        s.store,
		Logger:       logger,
		MaxBodyBytes: cfg.HTTPMaxBodyBytes,
		ACL:          s.acl,
	})
	s.broker, err = broker.New(ctx, broker.Config{
		AgentID:   cfg.AgentID,
		Addr:      advertised,
		Rack:      cfg.Rack,
		Store:     s.store,
		Log:       s.plog,
		Logger:    logger,
		LeaseTTL:  cfg.LeaseTTL,
		Validator: registry.Validator(),
		// SCHEMA_VALIDATION=auto: also topics whose subject has a schema.
		AutoSchemaValidation: cfg.SchemaValidation == "auto",
		GRPCAddr:             grpcAdvertised,
		ForwardTLS:           s.peerTLS(),
		PeerSASL:             s.peerSASL,
		Metrics:              s.reg,
		TopicLabels:          cfg.MetricsTopicLabels,
	})
	if err != nil {
		return nil, err
	}
	// Take this agent's partitions (and group coordinator slots) before
	// listening, so the first requests after a (re)start do not meet "not
	// leader".
	if err := s.broker.EnsureGroupSlots(ctx); err != nil {
		return nil, err
	}
	s.broker.Place(ctx)
	// Buffered acks a crash left in the WAL are committed before anything
	// new is appended (partlog.ReplayWAL): a failure stops the start, the
	// entries stay for the next one.
	if err := s.broker.LeadForReplay(ctx, s.plog.WALPartitions()); err != nil {
		return nil, err
	}
	if _, err := s.plog.ReplayWAL(ctx); err != nil {
		return nil, err
	}
	if s.txn, err = txn.New(txn.Config{Backend: s.broker, Logger: logger, MaxTimeout: cfg.TransactionMaxTimeout}); err != nil {
		return nil, fmt.Errorf("transaction coordinator: %w", err)
	}
	verifier.set(s.txn)
	s.kafka = kafka.New(kafka.Config{
		Broker:                s.broker,
		Txn:                   s.txn,
		TransactionMaxTimeout: cfg.TransactionMaxTimeout,
		TransactionVersion:    int16(cfg.KafkaTransactionVersion),
		Logger:                logger,
		AdvertisedAddr:        advertised,
		AutoCreateTopics:      cfg.AutoCreateTopics,
		DefaultPartitions:     int32(cfg.DefaultPartitions),
		Registry:              s.reg,
		ACL:                   s.acl,

		MaxRequestBytes:         cfg.KafkaMaxRequestBytes,
		MaxInflightRequestBytes: cfg.KafkaMaxInflightRequestBytes,
		MaxConnections:          cfg.KafkaMaxConnections,
		MaxConnectionsPerIP:     cfg.KafkaMaxConnectionsPerIP,
		ConnectionsMaxIdle:      cfg.KafkaConnectionsMaxIdle,
		TLS:                     s.serverTLS(),
		Auth:                    s.auth,
	})
	switch s.sql, err = sql.New(sql.Config{
		Source: s.broker, Logger: logger, Registry: s.reg,
		MaxMemoryBytes: cfg.SQLMaxMemoryBytes, Threads: cfg.SQLThreads, MaxRows: cfg.SQLMaxRows, Timeout: cfg.SQLTimeout,
		Access: authz.Topics{C: authz.New(s.acl, auth.ListenerHTTP)},
	}); {
	case errors.Is(err, sql.ErrUnavailable):
		logger.Info("SQL over topics unavailable: this binary was built without cgo")
		s.sql, err = nil, nil
	case err != nil:
		return nil, fmt.Errorf("SQL engine: %w", err)
	}
	s.sampler = rest.NewSampler(rest.SamplerConfig{Gatherer: s.reg, Logger: logger})
	s.httpSrv = &http.Server{
		Handler: s.auth.HTTP(rest.New(rest.Config{
			Sampler:      s.sampler,
			Started:      start,
			SQL:          s.sql,
			Stopping:     s.stopping,
			SQLMaxRows:   cfg.SQLMaxRows,
			SQLTimeout:   cfg.SQLTimeout,
			Broker:       s.broker,
			Logger:       logger,
			Registry:     s.reg,
			MaxBodyBytes: cfg.HTTPMaxBodyBytes,
			Ready:        s.ready,
			Members:      s.kafka.GroupMembers(),
			Pprof:        cfg.PprofEnabled,
			Schemas:      registry,
			Users:        s.auth,
			ACL:          s.acl,
		})),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(httpErrorLog{logger}, "", 0),
		TLSConfig:         s.serverTLS("h2", "http/1.1"),
	}
	// Shutdown waits for requests in flight; live SQL queries would hold
	// it until their timeout, so they end as it starts.
	s.httpSrv.RegisterOnShutdown(func() { close(s.stopping) })
	s.grpcAPI = grpcapi.New(grpcapi.Config{Broker: s.broker, Logger: logger, Registry: s.reg, Txn: s.txn, PeerTLS: s.peerTLS(), Auth: s.auth,
		ACL: s.acl})
	s.grpcSrv = s.grpcAPI.NewGRPCServer(grpcapi.ServerOptions{
		MaxConcurrentStreams:    cfg.GRPCMaxConcurrentStreams,
		KeepaliveInterval:       cfg.GRPCKeepaliveInterval,
		KeepaliveTimeout:        cfg.GRPCKeepaliveTimeout,
		InitialStreamWindowSize: cfg.GRPCInitialStreamWindowSize,
		InitialConnWindowSize:   cfg.GRPCInitialConnWindowSize,
		TLS:                     s.serverTLS("h2"),
	})
	logger.Info("streamhouse ready to serve",
		"agent", cfg.AgentID, "storage", cfg.Storage, "metadata", cfg.Metadata,
		"http", s.httpLn.Addr().String(), "kafka", s.kafkaLn.Addr().String(), "grpc", s.grpcLn.Addr().String(), "kafka_advertised", advertised, "grpc_advertised", grpcAdvertised,
		"tls", s.tls != nil, "mutual_tls", s.tls != nil && s.tls.MutualTLS(), "startup", time.Since(start).Round(time.Microsecond))
	return s, nil
}

// httpErrorLog writes the HTTP server's error log to the logger at warn,
// except a TLS handshake that ended with EOF before it began (a TCP probe,
// a port scan), which goes at debug.
type httpErrorLog struct{ log *slog.Logger }

func (w httpErrorLog) Write(p []byte) (int, error) {
	msg := strings.TrimSuffix(string(p), "\n")
	level := slog.LevelWarn
	if strings.HasPrefix(msg, "http: TLS handshake error") && strings.HasSuffix(msg, ": EOF") {
		level = slog.LevelDebug
	}
	w.log.Log(context.Background(), level, msg)
	return len(p), nil
}

// serverTLS is the TLS configuration of a listener with ALPN protocols
// next, nil when TLS is off.
func (s *Server) serverTLS(next ...string) *tls.Config {
	if s.tls == nil {
		return nil
	}
	return s.tls.ServerConfig(next...)
}

// peerTLS gives the TLS configuration of a connection to another agent,
// nil when TLS is off.
func (s *Server) peerTLS() func() *tls.Config {
	if s.tls == nil {
		return nil
	}
	return s.tls.PeerConfig
}

// walDir is WAL_DIR when WAL_ENABLED, else "" (no WAL).
func walDir(cfg *config.Config) string {
	if !cfg.WALEnabled {
		return ""
	}
	return cfg.WALDir
}

func openBucket(ctx context.Context, cfg *config.Config, logger *slog.Logger) (objstore.Bucket, error) {
	if cfg.Storage == config.StorageLocal {
		b, err := objstore.NewLocal(cfg.LocalStoragePath)
		if err != nil {
			return nil, fmt.Errorf("open local storage %s: %w", cfg.LocalStoragePath, err)
		}
		return b, nil
	}
	retries := cfg.S3UploadRetries
	if retries == 0 {
		retries = -1 // none; 0 means the default to objstore
	}
	b, err := objstore.NewS3(ctx, objstore.S3Config{
		Bucket:              cfg.Bucket,
		Region:              cfg.Region,
		Endpoint:            cfg.S3Endpoint,
		AccessKey:           cfg.AWSAccessKeyID,
		SecretKey:           cfg.AWSSecretAccessKey,
		UploadRetries:       retries,
		MultipartThreshold:  cfg.MultipartThreshold,
		MultipartPartSize:   cfg.MultipartPartSize,
		ParallelUploadParts: cfg.ParallelUploadParts,
		Throttle:            cfg.ThrottleEnabled,
		Logger:              logger,
	})
	if err != nil {
		return nil, fmt.Errorf("open S3 bucket %s: %w", cfg.Bucket, err)
	}
	return b, nil
}

func openStore(ctx context.Context, cfg *config.Config, logger *slog.Logger) (metadata.Store, error) {
	if cfg.Metadata == config.MetadataPostgres {
		st, err := sqlstore.OpenPostgres(ctx, cfg.DatabaseURL, logger)
		if err != nil {
			return nil, fmt.Errorf("open PostgreSQL metadata: %w", err)
		}
		return st, nil
	}
	st, err := sqlstore.OpenSQLite(ctx, cfg.MetadataPath, logger)
	if err != nil {
		return nil, fmt.Errorf("open SQLite metadata %s: %w", cfg.MetadataPath, err)
	}
	return st, nil
}

// HTTPAddr is the bound REST address.
func (s *Server) HTTPAddr() string { return s.httpLn.Addr().String() }

// Broker exposes the broker API (for in-process tests and front ends).
func (s *Server) Broker() *broker.Broker { return s.broker }

// ready reports whether the metadata and object stores answer.
func (s *Server) ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		return fmt.Errorf("metadata store: %w", err)
	}
	if _, err := s.bucket.Get(ctx, "ready-probe/none"); err != nil && !objstore.IsNotFound(err) {
		return fmt.Errorf("object store: %w", err)
	}
	return nil
}

// Run serves until ctx is done, then shuts down gracefully: listeners stop,
// partitions are handed over after their buffered data is committed, and
// the backends close. It returns the first serving error, if any.
func (s *Server) Run(ctx context.Context) error {
	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); s.broker.Run(bg) }()
	wg.Add(1)
	go func() { defer wg.Done(); s.txn.Run(bg) }()
	wg.Add(1)
	go func() { defer wg.Done(); s.sampler.Run(bg) }()
	wg.Add(1)
	go func() { defer wg.Done(); s.acl.Run(bg) }()
	if s.tls != nil {
		wg.Add(1)
		go func() { defer wg.Done(); s.tls.Run(bg) }()
	}

	errc := make(chan error, 3)
	go func() {
		serve := s.httpSrv.Serve
		if s.tls != nil {
			// The certificate comes from TLSConfig, not from files.
			serve = func(ln net.Listener) error { return s.httpSrv.ServeTLS(ln, "", "") }
		}
		if err := serve(s.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("serve HTTP: %w", err)
		}
	}()
	go func() {
		if err := s.grpcSrv.Serve(s.grpcLn); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			errc <- fmt.Errorf("serve gRPC: %w", err)
		}
	}()
	go func() {
		if err := s.kafka.Serve(s.kafkaLn); err != nil {
			errc <- fmt.Errorf("serve Kafka: %w", err)
		}
	}()
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	s.log.Info("shutting down")
	shutCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.httpSrv.Shutdown(shutCtx); err != nil {
		s.log.Warn("HTTP shutdown", "err", err)
	}
	if err := s.kafka.Close(); err != nil {
		s.log.Warn("Kafka shutdown", "err", err)
	}
	s.grpcAPI.SetServing(false)
	stopped := make(chan struct{})
	go func() { s.grpcSrv.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(2 * time.Second):
		// Subscribe streams never end on their own: cut them.
		s.grpcSrv.Stop()
	}
	s.grpcAPI.Close()
	stopBG()
	wg.Wait()
	// Transaction completers stop before the log and the store close; a
	// decided transaction they leave is finished by the slot's next
	// coordinator.
	s.txn.Close()
	if err := s.broker.Shutdown(shutCtx); err != nil {
		s.log.Warn("hand over partitions", "err", err)
	}
	if s.auth.Enabled() {
		if err := s.auth.ForgetAgent(shutCtx, s.cfg.AgentID); err != nil {
			s.log.Warn("remove this agent's user", "err", err)
		}
	}
	if err := s.plog.Close(shutCtx); err != nil {
		s.log.Error("close partition log", "err", err)
		runErr = errors.Join(runErr, err)
	}
	s.closeBackends()
	s.log.Info("stopped")
	return runErr
}

func (s *Server) closeBackends() {
	if s.plog != nil && s.httpSrv == nil {
		// New failed after opening the log: stop its goroutines.
		_ = s.plog.Close(context.Background())
	}
	if s.sql != nil {
		if err := s.sql.Close(); err != nil {
			s.log.Warn("close SQL engine", "err", err)
		}
	}
	if s.httpLn != nil {
		_ = s.httpLn.Close()
	}
	if s.kafkaLn != nil {
		_ = s.kafkaLn.Close()
	}
	if s.grpcLn != nil {
		_ = s.grpcLn.Close()
	}
	if s.store != nil {
		if err := s.store.Close(); err != nil {
			s.log.Warn("close metadata store", "err", err)
		}
	}
	if s.bucket != nil {
		if err := s.bucket.Close(); err != nil {
			s.log.Warn("close object store", "err", err)
		}
	}
}

// txnVerifier is the log's VerifyTxn hook, calling the transaction
// coordinator once it exists; before that (never while serving) a
// transactional batch gets a retriable error.
type txnVerifier struct {
	c atomic.Pointer[txn.Coordinator]
}

func (v *txnVerifier) set(c *txn.Coordinator) { v.c.Store(c) }

func (v *txnVerifier) verify(ctx context.Context, tp metadata.TopicPartition, producerID int64, epoch int16) error {
	c := v.c.Load()
	if c == nil {
		return fmt.Errorf("transaction coordinator not started: %w", metadata.ErrUnavailable)
	}
	return c.Verify(ctx, tp, producerID, epoch)
}
