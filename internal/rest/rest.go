// Package rest serves StreamHouse's JSON REST API (SPEC.md "REST API"):
// topics, produce, consume, consumer groups, SQL over topics (through
// internal/sqlapi), the operational endpoints /health, /live, /ready and
// /metrics, and the cluster's agents and a JSON metrics summary (cluster.go).
// It is a thin front end
// over the broker API: it decodes and validates requests, calls the broker,
// and maps every broker and log error to an HTTP status and a JSON error
// body {"error": code, "message": text}.
package rest

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/streamhouse/streamhouse/internal/acl"
	"github.com/streamhouse/streamhouse/internal/auth"
	"github.com/streamhouse/streamhouse/internal/authz"
	"github.com/streamhouse/streamhouse/internal/batch"
	"github.com/streamhouse/streamhouse/internal/broker"
	"github.com/streamhouse/streamhouse/internal/metadata"
	"github.com/streamhouse/streamhouse/internal/sqlapi"
)

// DefaultMaxBodyBytes bounds request bodies when Config.MaxBodyBytes is not
// positive (the default of HTTP_MAX_BODY_BYTES).
const DefaultMaxBodyBytes = 16 << 20

// Config configures the REST handler.
type Config struct {
	Broker *broker.Broker
	Logger *slog.Logger // default slog.Default()
	// Registry receives the HTTP metrics and is served on /metrics. Default:
	// a private registry.
	Registry *prometheus.Registry
	// MaxBodyBytes bounds request bodies; bigger ones get 413.
	MaxBodyBytes int64
	// Ready reports whether the agent can serve (nil error = ready). Nil
	// means always ready.
	Ready func(ctx context.Context) error
	// Pprof serves Go's profiler under /debug/pprof/.
	Pprof bool
	// Members reports live consumer group membership (the Kafka group
	// coordinator). Nil: groups show as Empty with no members. When it is
	// also a broker.GroupOffsetAdmin, resets and seeks commit through it
	// (refused while the group has members); else straight to the store.
	Members broker.GroupMembers
	// Schemas serves the schema registry under /schemas (paths below it,
	// e.g. /subjects, reach it with the prefix stripped). Nil: not served.
	Schemas http.Handler
	// SQL answers POST /api/v1/sql (internal/sql). Nil: 501, as in a
	// build without cgo.
	SQL sqlapi.Engine
	// SQLMaxRows and SQLTimeout are the defaults of a query's max_rows
	// and timeout_ms and the largest it may ask for (SQL_MAX_ROWS,
	// SQL_TIMEOUT_MS). Defaults 10000 and 30 s.
	SQLMaxRows int
	SQLTimeout time.Duration
	// Stopping, closed when the server starts shutting down, ends the live
	// queries (POST /api/v1/sql/stream), which would otherwise hold the
	// shutdown until their timeout. Nil: never.
	Stopping <-chan struct{}
	// Sampler supplies the rates and produce latency of GET
	// /api/v1/metrics; its Run is the caller's to start and stop. Nil:
	// those fields are null.
	Sampler *Sampler
	// Started is when the agent started (uptime in GET /api/v1/metrics).
	// Zero: when New was called.
	Started time.Time
	// Users manages the users of /api/v1/users (users.go). Nil: those
	// endpoints are not served.
	Users *auth.Authenticator
	// ACL decides what each caller may do (authorize.go); nil: everything
	// is allowed.
	ACL *acl.Authorizer
}

// Error codes of the JSON error body.
const (
	codeBadRequest       = "bad_request"
	codeNotFound         = "not_found"
	codeMethodNotAllowed = "method_not_allowed"
	codeConflict         = "conflict"
	codeTooLarge         = "payload_too_large"
	codeUnsupportedMedia = "unsupported_media_type"
	codeSchemaValidation = "schema_validation_failed"
	codeNotReady         = "not_ready"
	codeNotLeader        = "not_leader"
	codeUnavailable      = "unavailable"
	codeTimeout          = "timeout"
	codeNotImplemented   = "not_implemented"
	codeInternal         = "internal"
)

// errorBody is every error response.
type errorBody struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

// apiError is an error with its HTTP answer decided by the handler.
type apiError struct {
	status int
	code   string
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &apiError{status: http.StatusBadRequest, code: codeBadRequest, msg: sprintf(format, args...)}
}

func notFound(format string, args ...any) error {
	return &apiError{status: http.StatusNotFound, code: codeNotFound, msg: sprintf(format, args...)}
}

// DefaultSQLMaxRows and DefaultSQLTimeout are SQL_MAX_ROWS's and
// SQL_TIMEOUT_MS's defaults.
const (
	DefaultSQLMaxRows = 10000
	DefaultSQLTimeout = 30 * time.Second
)

// server holds what the handlers share.
type server struct {
	b        *broker.Broker
	log      *slog.Logger
	maxBody  int64
	ready    func(ctx context.Context) error
	members  broker.GroupMembers
	sqlq     sqlapi.Engine
	sqlRows  int
	sqlTime  time.Duration
	stopping <-chan struct{}
	live     chan struct{} // a token per live query running
	sampler  *Sampler
	started  time.Time
	users    *auth.Authenticator
	acl      *authz.Checker
	mux      *http.ServeMux
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// handlerFunc is a handler that returns its error for writeError.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// New returns the REST API handler.
func New(cfg Config) http.Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.Ready == nil {
		cfg.Ready = func(context.Context) error { return nil }
	}
	if cfg.SQLMaxRows <= 0 {
		cfg.SQLMaxRows = DefaultSQLMaxRows
	}
	if cfg.SQLTimeout <= 0 {
		cfg.SQLTimeout = DefaultSQLTimeout
	}
	if cfg.Started.IsZero() {
		cfg.Started = time.Now()
	}
	s := &server{
		b:        cfg.Broker,
		log:      cfg.Logger.With("component", "rest"),
		maxBody:  cfg.MaxBodyBytes,
		ready:    cfg.Ready,
		members:  cfg.Members,
		sqlq:     cfg.SQL,
		sqlRows:  cfg.SQLMaxRows,
		sqlTime:  cfg.SQLTimeout,
		stopping: cfg.Stopping,
		live:     make(chan struct{}, maxLiveQueries),
		sampler:  cfg.Sampler,
		started:  cfg.Started,
		users:    cfg.Users,
		acl:      authz.New(cfg.ACL, auth.ListenerHTTP),
		mux:      http.NewServeMux(),
	}
	s.requests = register(cfg.Registry, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "streamhouse_http_requests_total",
		Help: "REST requests by route (the mux pattern) and status code.",
	}, []string{"route", "code"}))
	s.duration = register(cfg.Registry, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "streamhouse_http_request_duration_seconds",
		Help:    "REST request latency by route (the mux pattern).",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 18), // 0.5ms .. ~65s (long polls)
	}, []string{"route"}))

	s.mux.HandleFunc("GET /health", s.health)
	s.mux.HandleFunc("GET /live", s.liveness)
	s.mux.HandleFunc("GET /ready", s.readiness)
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}))
	if cfg.Pprof {
		s.mux.HandleFunc("GET /debug/pprof/", s.clusterOnly(pprof.Index))
		s.mux.HandleFunc("GET /debug/pprof/cmdline", s.clusterOnly(pprof.Cmdline))
		s.mux.HandleFunc("GET /debug/pprof/profile", s.clusterOnly(pprof.Profile))
		s.mux.HandleFunc("GET /debug/pprof/symbol", s.clusterOnly(pprof.Symbol))
		s.mux.HandleFunc("GET /debug/pprof/trace", s.clusterOnly(pprof.Trace))
	}

	s.handle("GET /api/v1/topics", s.listTopics)
	s.handle("POST /api/v1/topics", s.createTopic)
	s.handle("GET /api/v1/topics/{name}", s.getTopic)
	s.handle("DELETE /api/v1/topics/{name}", s.deleteTopic)
	s.handle("GET /api/v1/topics/{name}/partitions", s.topicPartitions)

	s.handle("POST /api/v1/produce", s.produce)
	s.handle("POST /api/v1/produce/batch", s.produceBatch)
	s.handle("GET /api/v1/consume", s.consume)

	s.handle("GET /api/v1/consumer-groups", s.listGroups)
	s.handle("POST /api/v1/consumer-groups", s.createGroup)
	s.handle("POST /api/v1/consumer-groups/commit", s.commitOffset)
	s.handle("GET /api/v1/consumer-groups/{id}", s.getGroup)
	s.handle("DELETE /api/v1/consumer-groups/{id}", s.deleteGroup)
	s.handle("GET /api/v1/consumer-groups/{id}/offsets", s.groupOffsets)
	s.handle("GET /api/v1/consumer-groups/{id}/lag", s.groupLag)
	s.handle("POST /api/v1/consumer-groups/{id}/reset", s.resetGroup)
	s.handle("POST /api/v1/consumer-groups/{id}/seek", s.seekGroup)

	s.handle("GET /api/v1/agents", s.agents)
	s.handle("GET /api/v1/agents/{id}", s.agent)
	s.handle("GET /api/v1/agents/{id}/metrics", s.agentMetrics)
	s.handle("GET /api/v1/metrics", s.metricsSummary)

	if cfg.Users != nil {
		s.handle("GET /api/v1/users", s.listUsers)
		s.handle("POST /api/v1/users", s.setUser)
		s.handle("DELETE /api/v1/users/{name}", s.deleteUser)
	}

	s.handle("POST /api/v1/sql", s.sql)
	s.handle("POST /api/v1/sql/stream", s.sqlStream)
	if cfg.Schemas != nil {
		s.mux.Handle("/schemas/", http.StripPrefix("/schemas", cfg.Schemas))
	}
	return s
}

// register registers c, or returns the collector already registered under
// its name (New may be called more than once with one registry).
func register[C prometheus.Collector](reg *prometheus.Registry, c C) C {
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

func (s *server) handle(pattern string, h handlerFunc) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			s.writeError(w, r, err)
		}
	})
}

// ServeHTTP routes a request, turning the mux's plain-text 404 and 405 into
// JSON errors, and records the request's metrics and debug log.
func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	// ACLs may name the client's address (the registry under /schemas and
	// SQL read it from the context too).
	r = r.WithContext(authz.WithHost(r.Context(), r.RemoteAddr))
	// Handler only finds the route; serving through the mux itself sets
	// the request's path values.
	var h http.Handler = s.mux
	found, route := s.mux.Handler(r)
	if route == "" {
		route = "unmatched"
		h = s.unmatched(found)
	}
	h.ServeHTTP(sw, r)
	if sw.status == 0 {
		sw.status = http.StatusOK
	}
	elapsed := time.Since(start)
	s.requests.WithLabelValues(route, strconv.Itoa(sw.status)).Inc()
	s.duration.WithLabelValues(route).Observe(elapsed.Seconds())
	s.log.Debug("http request", "method", r.Method, "path", r.URL.Path, "route", route,
		"status", sw.status, "bytes", sw.bytes, "duration", elapsed)
}

// unmatched answers a request no pattern matched: the mux's own answer
// (a redirect to a clean path) or a JSON 404 or 405.
func (s *server) unmatched(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		probe := &probeWriter{header: make(http.Header)}
		h.ServeHTTP(probe, r)
		switch probe.status {
		case http.StatusNotFound:
			writeJSON(w, http.StatusNotFound, errorBody{Error: codeNotFound, Message: "no such endpoint: " + r.Method + " " + r.URL.Path})
		case http.StatusMethodNotAllowed:
			allow := probe.header.Get("Allow")
			w.Header().Set("Allow", allow)
			writeJSON(w, http.StatusMethodNotAllowed, errorBody{Error: codeMethodNotAllowed,
				Message: "method " + r.Method + " is not allowed on " + r.URL.Path + "; allowed: " + allow})
		default:
			h.ServeHTTP(w, r)
		}
	})
}

// probeWriter records what a handler would answer, discarding the body.
type probeWriter struct {
	header http.Header
	status int
}

func (p *probeWriter) Header() http.Header { return p.header }
func (p *probeWriter) WriteHeader(code int) {
	if p.status == 0 {
		p.status = code
	}
}
func (p *probeWriter) Write(b []byte) (int, error) {
	p.WriteHeader(http.StatusOK)
	return len(b), nil
}

// statusWriter records the status and size of a response.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += n
	return n, err
}

// Unwrap lets http.ResponseController reach the real writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (s *server) health(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *server) readiness(w http.ResponseWriter, r *http.Request) {
	if err := s.ready(r.Context()); err != nil {
		s.log.Warn("not ready", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: codeNotReady, Message: "not ready: " + err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// sqlAnswer is POST /api/v1/sql's answer, in the original's shape.
type sqlAnswer struct {
	Columns         []sqlColumn `json:"columns"`
	Rows            [][]any     `json:"rows"`
	RowCount        int         `json:"rowCount"`
	Truncated       bool        `json:"truncated"`
	ExecutionTimeMs int64       `json:"executionTimeMs"`
}

type sqlColumn struct {
	Name     string `json:"name"`
	DataType string `json:"dataType"`
}

// sql runs a SQL query over topics (SPEC.md "SQL over topics"):
// {"query", "timeout_ms"?, "max_rows"?}. timeout_ms and max_rows default
// to SQL_TIMEOUT_MS and SQL_MAX_ROWS and may not exceed them. A refused
// query answers its code: 400 parse_error, invalid_query,
// unsupported_operation, resource_limit; 404 topic_not_found; 408
// query_timeout.
func (s *server) sql(w http.ResponseWriter, r *http.Request) error {
	q, err := s.sqlRequest(w, r, s.sqlTime, true)
	if err != nil {
		return err
	}
	if s.sqlq == nil {
		return &apiError{status: http.StatusNotImplemented, code: codeNotImplemented, msg: sqlapi.ErrUnavailable.Error()}
	}
	res, err := s.sqlq.Query(r.Context(), q)
	if err != nil {
		return sqlError(err)
	}
	ans := sqlAnswer{Columns: make([]sqlColumn, len(res.Columns)), Rows: res.Rows, RowCount: len(res.Rows),
		Truncated: res.Truncated, ExecutionTimeMs: res.ExecutionTime.Milliseconds()}
	for i, c := range res.Columns {
		ans.Columns[i] = sqlColumn{Name: c.Name, DataType: c.DataType}
	}
	if ans.Rows == nil {
		ans.Rows = [][]any{}
	}
	writeJSON(w, http.StatusOK, ans)
	return nil
}

// sqlRequest decodes the body of a SQL request: query (required),
// timeout_ms (default SQL_TIMEOUT_MS; at most maxTimeout when it is not 0)
// and, with rows, max_rows (default and at most SQL_MAX_ROWS; otherwise
// the field is ignored).
func (s *server) sqlRequest(w http.ResponseWriter, r *http.Request, maxTimeout time.Duration, rows bool) (sqlapi.Request, error) {
	var req struct {
		Query     *string `json:"query"`
		TimeoutMs *int64  `json:"timeout_ms"`
		MaxRows   *int64  `json:"max_rows"`
	}
	if err := s.decode(w, r, &req); err != nil {
		return sqlapi.Request{}, err
	}
	if req.Query == nil || strings.TrimSpace(*req.Query) == "" {
		return sqlapi.Request{}, badRequest("query is required")
	}
	q := sqlapi.Request{Query: *req.Query, Timeout: s.sqlTime}
	if req.TimeoutMs != nil {
		switch {
		case maxTimeout > 0 && (*req.TimeoutMs <= 0 || *req.TimeoutMs > maxTimeout.Milliseconds()):
			return q, badRequest("timeout_ms must be in 1..%d (SQL_TIMEOUT_MS)", maxTimeout.Milliseconds())
		case *req.TimeoutMs <= 0:
			return q, badRequest("timeout_ms must be positive")
		}
		q.Timeout = time.Duration(*req.TimeoutMs) * time.Millisecond
	}
	if rows {
		q.MaxRows = s.sqlRows
		if req.MaxRows != nil {
			if *req.MaxRows <= 0 || *req.MaxRows > int64(s.sqlRows) {
				return q, badRequest("max_rows must be in 1..%d (SQL_MAX_ROWS)", s.sqlRows)
			}
			q.MaxRows = int(*req.MaxRows)
		}
	}
	return q, nil
}

// sqlError maps the engine's refusals to their status and code; anything
// else goes to writeError's general rules (a store outage is 503).
func sqlError(err error) error {
	var qe *sqlapi.Error
	if errors.As(err, &qe) {
		status := http.StatusBadRequest
		switch qe.Code {
		case sqlapi.CodeTopicNotFound:
			status = http.StatusNotFound
		case sqlapi.CodeTimeout:
			status = http.StatusRequestTimeout
		}
		return &apiError{status: status, code: string(qe.Code), msg: qe.Message}
	}
	if errors.Is(err, sqlapi.ErrUnavailable) {
		return &apiError{status: http.StatusNotImplemented, code: codeNotImplemented, msg: err.Error()}
	}
	return err
}

// writeError answers err: an *apiError as decided by the handler, a known
// broker, log or batch error by its meaning, and anything else as a logged
// 500.
func (s *server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	if authError(w, err) {
		return
	}
	status, code := http.StatusInternalServerError, codeInternal
	msg := err.Error()
	var ae *apiError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &ae):
		status, code, msg = ae.status, ae.code, ae.msg
	case errors.As(err, &mbe):
		status, code = http.StatusRequestEntityTooLarge, codeTooLarge
		msg = "request body is larger than " + strconv.FormatInt(mbe.Limit, 10) + " bytes"
	case errors.Is(err, broker.ErrUnknownTopic), errors.Is(err, metadata.ErrTopicNotFound),
		errors.Is(err, broker.ErrUnknownGroup), errors.Is(err, metadata.ErrGroupNotFound),
		errors.Is(err, metadata.ErrPartitionNotFound):
		status, code = http.StatusNotFound, codeNotFound
	case errors.Is(err, broker.ErrTopicExists), errors.Is(err, metadata.ErrTopicExists),
		errors.Is(err, broker.ErrGroupExists):
		status, code = http.StatusConflict, codeConflict
	case errors.Is(err, batch.ErrTooLarge):
		status, code = http.StatusRequestEntityTooLarge, codeTooLarge
	case errors.Is(err, broker.ErrSchemaValidation):
		status, code = http.StatusUnprocessableEntity, codeSchemaValidation
	case errors.Is(err, broker.ErrInvalidTopic), errors.Is(err, broker.ErrInvalidPartitions),
		errors.Is(err, broker.ErrInvalidConfig), errors.Is(err, broker.ErrInvalidRequest),
		errors.Is(err, broker.ErrUnknownPartition),
		errors.Is(err, batch.ErrInvalidRecord), errors.Is(err, batch.ErrCorrupt),
		errors.Is(err, batch.ErrUnsupportedMagic),
		errors.Is(err, broker.ErrOutOfOrderSequence), errors.Is(err, broker.ErrInvalidProducerEpoch),
		errors.Is(err, broker.ErrOffsetOutOfRange), errors.Is(err, metadata.ErrOffsetOutOfRange),
		errors.Is(err, metadata.ErrInvalidPartitions):
		status, code = http.StatusBadRequest, codeBadRequest
	case errors.Is(err, broker.ErrNotCoordinator):
		status, code = http.StatusServiceUnavailable, codeUnavailable
		msg = "the consumer group's coordinator is moving; retry: " + msg
	case errors.Is(err, broker.ErrNotLeader), errors.Is(err, metadata.ErrLeaseHeld):
		status, code = http.StatusServiceUnavailable, codeNotLeader
		msg = "this agent does not lead the partition; retry: " + msg
	case errors.Is(err, broker.ErrClosed):
		status, code = http.StatusServiceUnavailable, codeUnavailable
		msg = "the server is shutting down: " + msg
	case broker.IsUnavailable(err):
		status, code = http.StatusServiceUnavailable, codeUnavailable
		msg = "storage is unavailable for now; retry: " + msg
	case errors.Is(err, context.DeadlineExceeded):
		status, code = http.StatusGatewayTimeout, codeTimeout
	case errors.Is(err, context.Canceled):
		// The client went away; nobody reads this answer.
		status, code = http.StatusServiceUnavailable, codeUnavailable
	}
	if status == http.StatusInternalServerError {
		s.log.Error("http request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		msg = "internal error; see the server log"
	}
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, status, errorBody{Error: code, Message: msg})
}
