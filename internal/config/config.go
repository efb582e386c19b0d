// Package config owns the server's settings: every environment variable of
// SPEC.md (Listeners, Storage and metadata, Tuning) and the few StreamHouse
// adds, read once at start into a typed, validated Config.
//
// The table in vars.go is the single source of variable names, defaults and
// help text: Load parses it, Settings lists it for the start-up log and
// Markdown renders it for the README.
//
// A bad value stops the server: Load names the variable, the value and what
// is expected, reports every bad variable at once, and never falls back to a
// default. A variable set to the empty string is a bad value too, except
// USE_LOCAL_STORAGE and STREAMHOUSE_RACK.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Backend names of Config.Storage and Config.Metadata.
const (
	StorageLocal     = "local"
	StorageS3        = "s3"
	MetadataSQLite   = "sqlite"
	MetadataPostgres = "postgres"
)

// maxCompactionPassMax is the largest COMPACTION_PASS_MAX_MS (vars.go):
// its default, COMPACTION_INTERVAL_SECS, is cut to it.
const maxCompactionPassMax = 24 * time.Hour

// Config is the validated server configuration. Durations are already in
// time.Duration whatever unit the variable uses. Load fills every field;
// the zero Config is not useful.
type Config struct {
	// Listeners. Addresses are host:port; an empty host means all
	// interfaces, port 0 a free port.
	HTTPAddr  string // HTTP_ADDR
	GRPCAddr  string // GRPC_ADDR
	KafkaAddr string // KAFKA_ADDR
	// KafkaAdvertisedAddr (KAFKA_ADVERTISED_ADDR) is what Kafka Metadata
	// hands to clients. When unset it is derived from KafkaAddr (see
	// AdvertisedAddr); use KafkaAdvertisedFor once the listener is bound so
	// that port 0 is replaced by the real port.
	KafkaAdvertisedAddr string
	// GRPCAdvertisedAddr (GRPC_ADVERTISED_ADDR) is where the other agents
	// reach this agent's gRPC service. When unset it is the host of
	// KafkaAdvertisedAddr with GRPCAddr's port; use GRPCAdvertisedFor once
	// the listeners are bound.
	GRPCAdvertisedAddr string
	HTTPMaxBodyBytes   int64 // HTTP_MAX_BODY_BYTES

	// Agent.
	AgentID    string        // STREAMHOUSE_AGENT_ID, default the hostname
	Rack       string        // STREAMHOUSE_RACK, "" when unset
	LeaseTTL   time.Duration // LEASE_TTL_MS
	GCInterval time.Duration // GC_INTERVAL_SECS
	GCGrace    time.Duration // GC_GRACE_SECS
	// ProducerExpiration is PRODUCER_ID_EXPIRATION_MS.
	ProducerExpiration time.Duration
	// TransactionMaxTimeout is TRANSACTION_MAX_TIMEOUT_MS.
	TransactionMaxTimeout time.Duration

	// Storage is StorageLocal or StorageS3: local unless S3_ENDPOINT or
	// STREAMHOUSE_BUCKET is set, and always local with USE_LOCAL_STORAGE.
	Storage            string
	UseLocalStorage    bool   // USE_LOCAL_STORAGE is set (to anything)
	LocalStoragePath   string // LOCAL_STORAGE_PATH
	Bucket             string // STREAMHOUSE_BUCKET
	Region             string // AWS_REGION
	S3Endpoint         string // S3_ENDPOINT, "" means AWS
	AWSAccessKeyID     string // AWS_ACCESS_KEY_ID, "" means the default credential chain
	AWSSecretAccessKey string // AWS_SECRET_ACCESS_KEY, never logged
	// Metadata is MetadataPostgres when DATABASE_URL is set, else
	// MetadataSQLite.
	Metadata     string
	DatabaseURL  string // DATABASE_URL, may hold a password: log Settings, not this
	MetadataPath string // STREAMHOUSE_METADATA_PATH

	// Kafka.
	AutoCreateTopics  bool // KAFKA_AUTO_CREATE_TOPICS
	DefaultPartitions int  // KAFKA_DEFAULT_PARTITIONS
	// Kafka listener limits.
	KafkaMaxRequestBytes         int32         // KAFKA_MAX_REQUEST_BYTES (Produce frames)
	KafkaMaxInflightRequestBytes int64         // KAFKA_MAX_INFLIGHT_REQUEST_BYTES
	KafkaMaxConnections          int           // KAFKA_MAX_CONNECTIONS
	KafkaMaxConnectionsPerIP     int           // KAFKA_MAX_CONNECTIONS_PER_IP
	KafkaConnectionsMaxIdle      time.Duration // KAFKA_CONNECTIONS_MAX_IDLE_MS
	KafkaTransactionVersion      int           // KAFKA_TRANSACTION_VERSION

	// Write path.
	FlushInterval          time.Duration // FLUSH_INTERVAL_SECS
	FlushMinInterval       time.Duration // FLUSH_MIN_INTERVAL_MS: default 0 local, 100 ms S3
	DurableBatchMaxAge     time.Duration // DURABLE_BATCH_MAX_AGE_MS
	DurableBatchMaxRecords int           // DURABLE_BATCH_MAX_RECORDS
	DurableBatchMaxBytes   int           // DURABLE_BATCH_MAX_BYTES
	MaxBufferBytes         int           // MAX_BUFFER_BYTES, at least DurableBatchMaxBytes
	SegmentMaxSize         int64         // SEGMENT_MAX_SIZE
	SegmentMaxAge          time.Duration // SEGMENT_MAX_AGE_MS
	CompactionInterval     time.Duration // COMPACTION_INTERVAL_SECS: 0 = off
	CompactionPassMax      time.Duration // COMPACTION_PASS_MAX_MS: default CompactionInterval, 1 minute when that is 0, at most maxCompactionPassMax

	// S3 upload.
	S3UploadRetries     int   // S3_UPLOAD_RETRIES: 0 means no retries
	MultipartThreshold  int64 // MULTIPART_THRESHOLD
	MultipartPartSize   int64 // MULTIPART_PART_SIZE
	ParallelUploadParts int   // PARALLEL_UPLOAD_PARTS
	ThrottleEnabled     bool  // THROTTLE_ENABLED

	// Read cache. Zero sizes disable.
	HotTailBytes   int    // HOT_TAIL_BYTES
	ReadCacheBytes int64  // READ_CACHE_BYTES
	ReadAheadBytes int64  // READ_AHEAD_BYTES
	CacheDir       string // STREAMHOUSE_CACHE
	CacheSize      int64  // STREAMHOUSE_CACHE_SIZE

	// gRPC server options. Zero means unset: leave gRPC's own default
	// (unlimited streams, 2 h keepalive, 20 s timeout, auto-tuned windows).
	GRPCMaxConcurrentStreams    uint32        // GRPC_MAX_CONCURRENT_STREAMS
	GRPCKeepaliveInterval       time.Duration // GRPC_KEEPALIVE_INTERVAL_SECS
	GRPCKeepaliveTimeout        time.Duration // GRPC_KEEPALIVE_TIMEOUT_SECS
	GRPCInitialStreamWindowSize int32         // GRPC_INITIAL_STREAM_WINDOW_SIZE
	GRPCInitialConnWindowSize   int32         // GRPC_INITIAL_CONNECTION_WINDOW_SIZE

	// SQL over topics.
	SQLMaxRows        int           // SQL_MAX_ROWS
	SQLTimeout        time.Duration // SQL_TIMEOUT_MS
	SQLMaxMemoryBytes int64         // SQL_MAX_MEMORY_BYTES
	SQLThreads        int           // SQL_THREADS

	// Write-ahead log.
	WALEnabled      bool          // WAL_ENABLED
	WALDir          string        // WAL_DIR
	WALSyncInterval time.Duration // WAL_SYNC_INTERVAL_MS: 0 syncs every write
	WALMaxSize      int64         // WAL_MAX_SIZE

	// Security. TLS is on when TLSCertFile is set (TLSKeyFile is then set
	// too); TLSClientCAFile turns on mutual TLS.
	TLSCertFile       string        // TLS_CERT_FILE
	TLSKeyFile        string        // TLS_KEY_FILE
	TLSClientCAFile   string        // TLS_CLIENT_CA_FILE
	TLSPeerCAFile     string        // TLS_PEER_CA_FILE
	TLSReloadInterval time.Duration // TLS_RELOAD_INTERVAL_MS

	// Logging.
	LogLevel  slog.Level // LOG_LEVEL
	LogFormat string     // LOG_FORMAT: "text" or "json"
	// SchemaValidation is SCHEMA_VALIDATION: "topic" or "auto".
	SchemaValidation string

	PprofEnabled bool // PPROF_ENABLED: /debug/pprof/ on the REST port
	// MetricsTopicLabels (METRICS_TOPIC_LABELS): topic labels on the
	// traffic and group lag series.
	MetricsTopicLabels bool

	// Authentication (auth.go).
	AuthEnabled         bool          // AUTH_ENABLED
	AuthBootstrapUsers  string        // AUTH_BOOTSTRAP_USERS as given (secret): see BootstrapUsers
	AuthScramIterations int32         // AUTH_SCRAM_ITERATIONS
	AuthSessionLifetime time.Duration // AUTH_SESSION_LIFETIME_MS: 0 = logins never expire
	SuperUsersList      string        // SUPER_USERS as given: see SuperUsers

	// env holds the variables that were set, as given.
	env map[string]string
}

// CommitTimeout bounds one metadata commit attempt of a segment object.
const CommitTimeout = 30 * time.Second

// MinGCGrace is the smallest GC_GRACE_SECS allowed with a lease TTL: an
// object's commit attempts start until its creation + GC grace -
// (CommitTimeout + 2 × the clock skew allowed, ttl/10), and this leaves at
// least one lease TTL of that window for the commit to start in.
func MinGCGrace(ttl time.Duration) time.Duration {
	return CommitTimeout + ttl + 2*(ttl/10)
}

// VarError reports one bad variable. Load returns them joined with
// errors.Join.
type VarError struct {
	Name     string
	Value    string // as given; redacted for secrets
	Problem  string // what is wrong, e.g. "not an integer"
	Expected string // what would be right, e.g. "bytes, at least 1024"
}

func (e *VarError) Error() string {
	s := fmt.Sprintf("%s=%q: %s", e.Name, e.Value, e.Problem)
	if e.Expected != "" {
		s += " (" + e.Expected + ")"
	}
	return s
}

// MapEnv adapts a map to Load's getenv, for tests and tools.
func MapEnv(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

// Load reads every variable through getenv (os.LookupEnv in production)
// and returns the validated Config, or an error listing every bad variable.
func Load(getenv func(string) (string, bool)) (*Config, error) {
	return load(getenv, os.Hostname)
}

func load(getenv func(string) (string, bool), hostname func() (string, error)) (*Config, error) {
	c := &Config{env: map[string]string{}}
	var errs []error
	bad := map[string]bool{}
	fail := func(v *variable, value, problem, expected string) {
		bad[v.name] = true
		errs = append(errs, &VarError{Name: v.name, Value: v.redact(value), Problem: problem, Expected: expected})
	}
	for i := range vars {
		v := &vars[i]
		value, ok := getenv(v.name)
		if ok {
			c.env[v.name] = value
		} else if v.def != "" {
			value = v.def
		} else {
			continue // optional, or a default computed below
		}
		if problem := v.parse(c, value); problem != "" {
			fail(v, value, problem, v.expected())
		}
	}

	c.Storage = StorageLocal
	if _, ok := c.env["USE_LOCAL_STORAGE"]; !ok {
		_, endpoint := c.env["S3_ENDPOINT"]
		_, bucket := c.env["STREAMHOUSE_BUCKET"]
		if endpoint || bucket {
			c.Storage = StorageS3
		}
	}
	c.Metadata = MetadataSQLite
	if _, ok := c.env["DATABASE_URL"]; ok {
		c.Metadata = MetadataPostgres
	}

	// Defaults that depend on other settings or on the machine.
	if _, ok := c.env["FLUSH_MIN_INTERVAL_MS"]; !ok && c.Storage == StorageS3 {
		c.FlushMinInterval = 100 * time.Millisecond
	}
	if _, ok := c.env["COMPACTION_PASS_MAX_MS"]; !ok && !bad["COMPACTION_INTERVAL_SECS"] {
		c.CompactionPassMax = c.CompactionInterval
		if c.CompactionPassMax <= 0 {
			c.CompactionPassMax = time.Minute
		}
		// Within the setting's own range: an interval over a day does not
		// make a default the setting would refuse.
		c.CompactionPassMax = min(c.CompactionPassMax, maxCompactionPassMax)
	}
	if _, ok := c.env["KAFKA_ADVERTISED_ADDR"]; !ok && !bad["KAFKA_ADDR"] {
		c.KafkaAdvertisedAddr = AdvertisedAddr(c.KafkaAddr)
	}
	if _, ok := c.env["GRPC_ADVERTISED_ADDR"]; !ok && !bad["GRPC_ADDR"] && !bad["KAFKA_ADDR"] && !bad["KAFKA_ADVERTISED_ADDR"] {
		c.GRPCAdvertisedAddr = grpcAdvertised(c.KafkaAdvertisedAddr, c.GRPCAddr)
	}
	if _, ok := c.env["STREAMHOUSE_AGENT_ID"]; !ok {
		v := lookup("STREAMHOUSE_AGENT_ID")
		h, err := hostname()
		switch {
		case err != nil:
			fail(v, "", "unset and the hostname is unknown: "+err.Error(), "set it to "+v.what)
		case checkAgentID(h) != "":
			fail(v, h, "unset and the hostname is not a valid agent id", "set it to "+v.what)
		default:
			c.AgentID = h
		}
	}

	// Settings that must agree with each other.
	if !bad["MAX_BUFFER_BYTES"] && !bad["DURABLE_BATCH_MAX_BYTES"] && c.MaxBufferBytes < c.DurableBatchMaxBytes {
		fail(lookup("MAX_BUFFER_BYTES"), strconv.Itoa(c.MaxBufferBytes),
			fmt.Sprintf("less than DURABLE_BATCH_MAX_BYTES=%d", c.DurableBatchMaxBytes),
			"bytes, at least DURABLE_BATCH_MAX_BYTES")
	}
	if !bad["KAFKA_MAX_INFLIGHT_REQUEST_BYTES"] && !bad["KAFKA_MAX_REQUEST_BYTES"] && c.KafkaMaxInflightRequestBytes < int64(c.KafkaMaxRequestBytes) {
		fail(lookup("KAFKA_MAX_INFLIGHT_REQUEST_BYTES"), strconv.FormatInt(c.KafkaMaxInflightRequestBytes, 10),
			fmt.Sprintf("less than KAFKA_MAX_REQUEST_BYTES=%d", c.KafkaMaxRequestBytes),
			"bytes, at least KAFKA_MAX_REQUEST_BYTES")
	}
	if !bad["GC_GRACE_SECS"] && !bad["LEASE_TTL_MS"] && c.GCGrace < MinGCGrace(c.LeaseTTL) {
		fail(lookup("GC_GRACE_SECS"), strconv.FormatInt(int64(c.GCGrace/time.Second), 10),
			fmt.Sprintf("below the commit timeout (%v) + LEASE_TTL_MS (%v) + twice the clock skew allowed (LEASE_TTL_MS/10): an object must stay safe from garbage collection for as long as its commit may start (docs/architecture.md)", CommitTimeout, c.LeaseTTL),
			fmt.Sprintf("seconds, at least %d with LEASE_TTL_MS=%d", int64((MinGCGrace(c.LeaseTTL)+time.Second-1)/time.Second), c.LeaseTTL.Milliseconds()))
	}
	if c.Storage == StorageS3 && (c.AWSAccessKeyID == "") != (c.AWSSecretAccessKey == "") {
		missing, other := "AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID"
		if c.AWSAccessKeyID == "" {
			missing, other = other, missing
		}
		if !bad[other] && !bad[missing] {
			fail(lookup(missing), "", "unset while "+other+" is set", "set both or neither")
		}
	}

	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		missing, other := "TLS_KEY_FILE", "TLS_CERT_FILE"
		if c.TLSCertFile == "" {
			missing, other = other, missing
		}
		if !bad[other] && !bad[missing] {
			fail(lookup(missing), "", "unset while "+other+" is set", "set both to turn TLS on, or neither")
		}
	}
	for _, name := range []string{"TLS_CLIENT_CA_FILE", "TLS_PEER_CA_FILE"} {
		if value, set := c.env[name]; set && c.TLSCertFile == "" && c.TLSKeyFile == "" && !bad[name] {
			fail(lookup(name), value, "set while TLS is off", "set TLS_CERT_FILE and TLS_KEY_FILE too")
		}
	}

	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return c, nil
}

// lookup returns the table entry for name; it panics on a name missing from
// the table, which is a bug here, not an operator's mistake.
func lookup(name string) *variable {
	for i := range vars {
		if vars[i].name == name {
			return &vars[i]
		}
	}
	panic("config: no variable " + name)
}

// AdvertisedAddr derives the address to hand to Kafka clients from a listen
// address: an empty or wildcard host (0.0.0.0, ::) becomes "localhost",
// which only works for clients on the same machine.
func AdvertisedAddr(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if host == "" || isWildcard(host) {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

// KafkaAdvertisedFor returns KAFKA_ADVERTISED_ADDR when it was set, else the
// address derived from bound, the Kafka listener's actual address (which
// replaces a port 0 in KAFKA_ADDR).
func (c *Config) KafkaAdvertisedFor(bound net.Addr) string {
	if _, ok := c.env["KAFKA_ADVERTISED_ADDR"]; ok || bound == nil {
		return c.KafkaAdvertisedAddr
	}
	return AdvertisedAddr(bound.String())
}

// GRPCAdvertisedFor returns GRPC_ADVERTISED_ADDR when it was set, else the
// host of kafkaAdvertised (what KafkaAdvertisedFor returned) with the port
// of bound, the gRPC listener's actual address (which replaces a port 0 in
// GRPC_ADDR).
func (c *Config) GRPCAdvertisedFor(kafkaAdvertised string, bound net.Addr) string {
	if _, ok := c.env["GRPC_ADVERTISED_ADDR"]; ok || bound == nil {
		return c.GRPCAdvertisedAddr
	}
	return grpcAdvertised(kafkaAdvertised, bound.String())
}

// grpcAdvertised derives GRPC_ADVERTISED_ADDR from the gRPC listener's
// address: a listener bound to one address is reached there, one bound to
// every address at the host the agent advertises for Kafka.
func grpcAdvertised(kafkaAdvertised, grpcAddr string) string {
	if host, _, err := net.SplitHostPort(grpcAddr); err == nil && host != "" && !isWildcard(host) {
		return grpcAddr
	}
	return hostWithPort(kafkaAdvertised, grpcAddr)
}

// hostWithPort joins the host of hostFrom and the port of portFrom, both
// host:port; when hostFrom has no host, portFrom as AdvertisedAddr makes it.
func hostWithPort(hostFrom, portFrom string) string {
	host, _, err := net.SplitHostPort(hostFrom)
	_, port, perr := net.SplitHostPort(portFrom)
	if err != nil || host == "" || perr != nil {
		return AdvertisedAddr(portFrom)
	}
	return net.JoinHostPort(host, port)
}

func isWildcard(host string) bool {
	ip := net.ParseIP(host)
	return ip != nil && ip.IsUnspecified()
}

// parse stores value into v's field and returns "" or what is wrong.
func (v *variable) parse(c *Config, value string) string {
	if value == "" && !v.emptyOK && v.kind != kindPresence {
		return "empty"
	}
	p := v.field(c)
	switch v.kind {
	case kindPresence:
		*p.(*bool) = true
	case kindString:
		if v.check != nil {
			if problem := v.check(value); problem != "" {
				return problem
			}
		}
		*p.(*string) = value
	case kindAddr, kindAdvert:
		if problem := checkAddr(value, v.kind == kindAdvert); problem != "" {
			return problem
		}
		*p.(*string) = value
	case kindBool:
		b, ok := parseBool(value)
		if !ok {
			return "not a boolean"
		}
		*p.(*bool) = b
	case kindEnum:
		s := strings.ToLower(value)
		found := false
		for _, c := range v.choices {
			found = found || s == c
		}
		if !found {
			return "not a choice"
		}
		switch p := p.(type) {
		case *string:
			*p = s
		case *slog.Level:
			if err := p.UnmarshalText([]byte(s)); err != nil {
				return "not a level"
			}
		}
	case kindInt:
		n, err := strconv.ParseInt(value, 10, 64)
		if err != nil && errors.Is(err, strconv.ErrRange) {
			return "too large"
		}
		if err != nil {
			return "not an integer"
		}
		if n < v.min {
			return "too small"
		}
		if (v.max != 0 && n > v.max) || !setInt(p, n, v.unit) {
			return "too large"
		}
	}
	return ""
}

// setInt stores n (times unit for a duration) if the field can hold it.
func setInt(p any, n int64, unit time.Duration) bool {
	switch p := p.(type) {
	case *int:
		if n > math.MaxInt || n < math.MinInt {
			return false
		}
		*p = int(n)
	case *int32:
		if n > math.MaxInt32 || n < math.MinInt32 {
			return false
		}
		*p = int32(n)
	case *uint32:
		if n > math.MaxUint32 || n < 0 {
			return false
		}
		*p = uint32(n)
	case *int64:
		*p = n
	case *time.Duration:
		if n > math.MaxInt64/int64(unit) || n < math.MinInt64/int64(unit) {
			return false
		}
		*p = time.Duration(n) * unit
	default:
		panic(fmt.Sprintf("config: unsupported integer field %T", p))
	}
	return true
}

// expected describes a valid value for error messages.
func (v *variable) expected() string {
	switch v.kind {
	case kindAddr:
		return "host:port with a port from 0 to 65535; an empty host means all interfaces"
	case kindAdvert:
		return "host:port that clients can reach, e.g. broker1.example.com:9092"
	case kindBool:
		return "true, false, 1, 0, yes or no"
	case kindEnum:
		return "one of " + strings.Join(v.choices, ", ")
	case kindInt:
		if v.max != 0 {
			return fmt.Sprintf("%s, from %d to %d", v.what, v.min, v.max)
		}
		return fmt.Sprintf("%s, at least %d", v.what, v.min)
	}
	return v.what
}

func parseBool(s string) (value, ok bool) {
	switch strings.ToLower(s) {
	case "true", "1", "yes":
		return true, true
	case "false", "0", "no":
		return false, true
	}
	return false, false
}

func checkAddr(s string, advertised bool) string {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "not host:port"
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return "port is not a number from 0 to 65535"
	}
	if advertised {
		if host == "" || isWildcard(host) {
			return "host is empty or a wildcard"
		}
		if n == 0 {
			return "port is 0"
		}
	}
	return ""
}

// checkName accepts 0 to 64 letters, digits, '.', '_' and '-'.
func checkName(s string) string {
	if len(s) > 64 {
		return "longer than 64 characters"
	}
	for _, r := range s {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Sprintf("character %q not allowed", r)
		}
	}
	return ""
}

func checkAgentID(s string) string {
	if s == "" {
		return "empty"
	}
	return checkName(s)
}

func checkRack(s string) string { return checkName(s) }

func checkNoSpace(s string) string {
	if strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' }) {
		return "contains a space or control character"
	}
	return ""
}

// checkBucket applies S3's general-purpose bucket naming rules.
func checkBucket(s string) string {
	if len(s) < 3 || len(s) > 63 {
		return "not 3 to 63 characters long"
	}
	for _, r := range s {
		if !('a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '.' || r == '-') {
			return fmt.Sprintf("character %q not allowed", r)
		}
	}
	if !isAlnum(s[0]) || !isAlnum(s[len(s)-1]) {
		return "does not start and end with a letter or digit"
	}
	return ""
}

func isAlnum(b byte) bool { return 'a' <= b && b <= 'z' || '0' <= b && b <= '9' }

func checkEndpoint(s string) string {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "not a URL with scheme and host"
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "has a query, fragment or user"
	}
	return ""
}

func checkDatabaseURL(s string) string {
	if !strings.HasPrefix(s, "postgres://") && !strings.HasPrefix(s, "postgresql://") {
		return "wrong scheme"
	}
	if _, err := url.Parse(s); err != nil {
		return "not a valid URL"
	}
	return ""
}

// TLSEnabled reports whether the listeners serve TLS (TLS_CERT_FILE and
// TLS_KEY_FILE are set).
func (c *Config) TLSEnabled() bool { return c.TLSCertFile != "" && c.TLSKeyFile != "" }
