package config

import (
	"math"
	"time"
)

// kind says how a variable's text is parsed.
type kind int

const (
	kindString   kind = iota // non-empty text, further checked by variable.check
	kindPresence             // any value, even empty, means "set"
	kindAddr                 // host:port for a listener
	kindAdvert               // host:port that clients can reach
	kindInt                  // integer in [min, max]; times unit for durations
	kindBool
	kindEnum // one of variable.choices, case-insensitive
)

// variable describes one environment variable: the single source of names,
// defaults and help text for Load, Settings and Markdown.
type variable struct {
	name  string
	group string
	// def is the default as environment text, parsed by the same code as a
	// value from the environment. Empty means the variable has no static
	// default: it is optional (the field keeps its zero value) or its default
	// is computed by Load (see dynamic).
	def string
	// doc replaces def in the Markdown default column.
	doc  string
	help string
	kind kind
	// what names the unit or shape of the value in error messages.
	what     string
	min, max int64 // kindInt; max 0 means "as large as the field holds"
	unit     time.Duration
	choices  []string
	emptyOK  bool // kindString: "" is a valid value
	dynamic  bool // default computed by Load after the table is read
	secret   bool // value redacted in Settings, LogValue and errors
	dsn      bool // like secret, but only the password parts are redacted
	check    func(string) string
	field    func(*Config) any
}

const (
	kib = 1 << 10
	mib = 1 << 20
	gib = 1 << 30
)

// vars lists every variable in the order Settings and Markdown show them.
// Variables of one group stay together.
var vars = []variable{
	// Listeners
	{name: "HTTP_ADDR", group: "Listeners", def: "0.0.0.0:8080", kind: kindAddr,
		help:  "REST API, schema registry under `/schemas`, `/health`, `/ready`, `/metrics`",
		field: func(c *Config) any { return &c.HTTPAddr }},
	{name: "GRPC_ADDR", group: "Listeners", def: "0.0.0.0:50051", kind: kindAddr,
		help:  "gRPC service `streamhouse.StreamHouse` (with server reflection and the gRPC health service)",
		field: func(c *Config) any { return &c.GRPCAddr }},
	{name: "KAFKA_ADDR", group: "Listeners", def: "0.0.0.0:9092", kind: kindAddr,
		help:  "Kafka wire protocol",
		field: func(c *Config) any { return &c.KafkaAddr }},
	{name: "KAFKA_ADVERTISED_ADDR", group: "Listeners", kind: kindAdvert, dynamic: true,
		doc:   "derived from `KAFKA_ADDR`",
		help:  "host:port that Kafka Metadata hands to clients. Unset: `KAFKA_ADDR`, with `localhost` in place of an empty or wildcard host; set it explicitly on a real network",
		field: func(c *Config) any { return &c.KafkaAdvertisedAddr }},
	{name: "GRPC_ADVERTISED_ADDR", group: "Listeners", kind: kindAdvert, dynamic: true,
		doc:   "derived from `KAFKA_ADVERTISED_ADDR` and `GRPC_ADDR`",
		help:  "host:port at which the other agents reach this agent's gRPC service, to forward gRPC transaction calls to the transactional ID's coordinator. Unset: `GRPC_ADDR` when it names one address, else the host of `KAFKA_ADVERTISED_ADDR` with the port `GRPC_ADDR` listens on",
		field: func(c *Config) any { return &c.GRPCAdvertisedAddr }},
	{name: "HTTP_MAX_BODY_BYTES", group: "Listeners", def: "16777216", kind: kindInt, what: "bytes", min: 1,
		help:  "largest REST request body accepted",
		field: func(c *Config) any { return &c.HTTPMaxBodyBytes }},

	// Agent
	{name: "STREAMHOUSE_AGENT_ID", group: "Agent", kind: kindString, dynamic: true, check: checkAgentID,
		doc:   "hostname",
		what:  "1 to 64 letters, digits, '.', '_' or '-'",
		help:  "this agent's identity in leases and object names; unique per agent",
		field: func(c *Config) any { return &c.AgentID }},
	{name: "STREAMHOUSE_RACK", group: "Agent", kind: kindString, emptyOK: true, check: checkRack,
		doc:   "unset",
		what:  "up to 64 letters, digits, '.', '_' or '-'",
		help:  "rack (availability zone) reported to Kafka clients",
		field: func(c *Config) any { return &c.Rack }},
	{name: "LEASE_TTL_MS", group: "Agent", def: "10000", kind: kindInt, what: "milliseconds", min: 1000, unit: time.Millisecond,
		help:  "how long a partition lease lasts without renewal; another agent takes over after it expires",
		field: func(c *Config) any { return &c.LeaseTTL }},
	{name: "GC_INTERVAL_SECS", group: "Agent", def: "60", kind: kindInt, what: "seconds", min: 1, unit: time.Second,
		help:  "how often unreferenced objects are looked for",
		field: func(c *Config) any { return &c.GCInterval }},
	{name: "PRODUCER_ID_EXPIRATION_MS", group: "Agent", def: "86400000", kind: kindInt, what: "milliseconds", min: 1000, unit: time.Millisecond,
		help:  "an idempotent producer's state is forgotten after it has not produced for this long (Kafka's producer.id.expiration.ms)",
		field: func(c *Config) any { return &c.ProducerExpiration }},
	{name: "TRANSACTION_MAX_TIMEOUT_MS", group: "Agent", def: "900000", kind: kindInt, what: "milliseconds", min: 1000, unit: time.Millisecond,
		help:  "the largest transaction.timeout.ms a transactional producer may ask for; larger is INVALID_TRANSACTION_TIMEOUT (Kafka's transaction.max.timeout.ms)",
		field: func(c *Config) any { return &c.TransactionMaxTimeout }},
	{name: "GC_GRACE_SECS", group: "Agent", def: "3600", kind: kindInt, what: "seconds", min: 60, unit: time.Second,
		help:  "age before an unreferenced or never-committed object is deleted; an agent starts no commit of an object older than this minus 30 s (commit timeout) minus LEASE_TTL_MS/5, and it must be at least 30 s + 1.2 × LEASE_TTL_MS",
		field: func(c *Config) any { return &c.GCGrace }},

	// Storage and metadata
	{name: "USE_LOCAL_STORAGE", group: "Storage and metadata", kind: kindPresence,
		doc:   "unset",
		help:  "any value, even empty, forces the local folder backend",
		field: func(c *Config) any { return &c.UseLocalStorage }},
	{name: "LOCAL_STORAGE_PATH", group: "Storage and metadata", def: "./data/storage", kind: kindString, what: "a directory",
		help:  "local folder backend root",
		field: func(c *Config) any { return &c.LocalStoragePath }},
	{name: "STREAMHOUSE_BUCKET", group: "Storage and metadata", def: "streamhouse", kind: kindString, check: checkBucket,
		what:  "an S3 bucket name: 3 to 63 lowercase letters, digits, '.' or '-'",
		help:  "S3 bucket; setting it selects the S3 backend",
		field: func(c *Config) any { return &c.Bucket }},
	{name: "AWS_REGION", group: "Storage and metadata", def: "us-east-1", kind: kindString, check: checkNoSpace,
		what:  "a region name such as us-east-1",
		help:  "S3 region",
		field: func(c *Config) any { return &c.Region }},
	{name: "S3_ENDPOINT", group: "Storage and metadata", kind: kindString, check: checkEndpoint,
		doc:   "AWS",
		what:  "an http:// or https:// URL such as http://localhost:9000",
		help:  "custom endpoint for MinIO and other S3-compatible stores (path-style); setting it selects the S3 backend",
		field: func(c *Config) any { return &c.S3Endpoint }},
	{name: "AWS_ACCESS_KEY_ID", group: "Storage and metadata", kind: kindString,
		doc:   "default AWS credential chain",
		what:  "an access key id",
		help:  "S3 access key; set together with `AWS_SECRET_ACCESS_KEY`",
		field: func(c *Config) any { return &c.AWSAccessKeyID }},
	{name: "AWS_SECRET_ACCESS_KEY", group: "Storage and metadata", kind: kindString, secret: true,
		doc:   "default AWS credential chain",
		what:  "a secret key",
		help:  "S3 secret key (redacted in logs)",
		field: func(c *Config) any { return &c.AWSSecretAccessKey }},
	{name: "DATABASE_URL", group: "Storage and metadata", kind: kindString, dsn: true, check: checkDatabaseURL,
		doc:   "unset",
		what:  "a postgres:// or postgresql:// URL",
		help:  "PostgreSQL metadata store; unset means SQLite (password redacted in logs)",
		field: func(c *Config) any { return &c.DatabaseURL }},
	{name: "STREAMHOUSE_METADATA_PATH", group: "Storage and metadata", def: "./data/metadata.db", kind: kindString, what: "a file path",
		help:  "SQLite metadata file",
		field: func(c *Config) any { return &c.MetadataPath }},

	// Kafka
	{name: "KAFKA_AUTO_CREATE_TOPICS", group: "Kafka", def: "true", kind: kindBool,
		help:  "create a topic when a client produces to or asks metadata for one that does not exist",
		field: func(c *Config) any { return &c.AutoCreateTopics }},
	{name: "KAFKA_DEFAULT_PARTITIONS", group: "Kafka", def: "1", kind: kindInt, what: "partitions", min: 1, max: math.MaxInt32,
		help:  "partition count of auto-created topics and of CreateTopics requests that leave it to the server",
		field: func(c *Config) any { return &c.DefaultPartitions }},
	{name: "KAFKA_MAX_REQUEST_BYTES", group: "Kafka", def: "104857600", kind: kindInt, what: "bytes", min: 1 << 20, max: math.MaxInt32,
		help:  "largest Produce request frame (Kafka's socket.request.max.bytes); other requests are capped at 1 MiB, or 8 MiB for those that list partitions or members (Fetch, ListOffsets, Metadata, OffsetCommit, OffsetFetch, JoinGroup, SyncGroup, DescribeGroups, DeleteRecords, OffsetForLeaderEpoch, OffsetDelete); a larger frame closes the connection",
		field: func(c *Config) any { return &c.KafkaMaxRequestBytes }},
	{name: "KAFKA_MAX_INFLIGHT_REQUEST_BYTES", group: "Kafka", def: "209715200", kind: kindInt, what: "bytes", min: 1 << 20,
		help:  "bound on request bytes read and not yet answered, over all Kafka connections (Kafka's queued.max.request.bytes), at least `KAFKA_MAX_REQUEST_BYTES`; a connection whose next request does not fit waits before reading it",
		field: func(c *Config) any { return &c.KafkaMaxInflightRequestBytes }},
	{name: "KAFKA_TRANSACTION_VERSION", group: "Kafka", def: "2", kind: kindInt, what: "1 or 2", min: 1, max: 2,
		help:  "the transaction.version feature level the Kafka listener finalizes for clients: 2 lets clients that know it use transactions V2 (KIP-890: an epoch bump per transaction, no AddPartitionsToTxn round trip); 1 keeps every client on the original protocol",
		field: func(c *Config) any { return &c.KafkaTransactionVersion }},
	{name: "KAFKA_MAX_CONNECTIONS", group: "Kafka", def: "4096", kind: kindInt, what: "connections", min: 1, max: math.MaxInt32,
		help:  "open Kafka connections allowed (Kafka's max.connections); one more is closed as soon as it is accepted",
		field: func(c *Config) any { return &c.KafkaMaxConnections }},
	{name: "KAFKA_MAX_CONNECTIONS_PER_IP", group: "Kafka", def: "1024", kind: kindInt, what: "connections", min: 1, max: math.MaxInt32,
		help:  "open Kafka connections allowed from one client IP address (Kafka's max.connections.per.ip)",
		field: func(c *Config) any { return &c.KafkaMaxConnectionsPerIP }},
	{name: "KAFKA_CONNECTIONS_MAX_IDLE_MS", group: "Kafka", def: "600000", kind: kindInt, what: "milliseconds", min: 1000, unit: time.Millisecond,
		help:  "a Kafka connection with no request in flight that sends nothing for this long is closed (Kafka's connections.max.idle.ms); a request that has begun must arrive whole within 30 s plus 1 s per MiB",
		field: func(c *Config) any { return &c.KafkaConnectionsMaxIdle }},

	// Write path
	{name: "FLUSH_INTERVAL_SECS", group: "Write path", def: "5", kind: kindInt, what: "seconds", min: 1, unit: time.Second,
		help:  "upper bound on how long buffered (not durable) data waits for a flush",
		field: func(c *Config) any { return &c.FlushInterval }},
	{name: "FLUSH_MIN_INTERVAL_MS", group: "Write path", kind: kindInt, what: "milliseconds", min: 0, unit: time.Millisecond, dynamic: true,
		doc:   "`0` local, `100` S3",
		help:  "least spacing between object PUTs when the buffer is idle: the cost knob (fewer PUTs, more latency)",
		field: func(c *Config) any { return &c.FlushMinInterval }},
	{name: "DURABLE_BATCH_MAX_AGE_MS", group: "Write path", def: "200", kind: kindInt, what: "milliseconds", min: 1, unit: time.Millisecond,
		help:  "upper bound on how long a durable (acks=all) write waits for a flush; flushes come sooner when the store is idle",
		field: func(c *Config) any { return &c.DurableBatchMaxAge }},
	{name: "DURABLE_BATCH_MAX_RECORDS", group: "Write path", def: "10000", kind: kindInt, what: "records", min: 1, max: math.MaxInt32,
		help:  "flush when the write buffer holds this many records",
		field: func(c *Config) any { return &c.DurableBatchMaxRecords }},
	{name: "DURABLE_BATCH_MAX_BYTES", group: "Write path", def: "16777216", kind: kindInt, what: "bytes", min: kib,
		help:  "flush when the write buffer holds this many bytes: the largest object written",
		field: func(c *Config) any { return &c.DurableBatchMaxBytes }},
	{name: "MAX_BUFFER_BYTES", group: "Write path", def: "67108864", kind: kindInt, what: "bytes", min: kib,
		help:  "memory bound on buffered plus uploading data, at least `DURABLE_BATCH_MAX_BYTES`; produces wait while it is exceeded",
		field: func(c *Config) any { return &c.MaxBufferBytes }},
	{name: "SEGMENT_MAX_SIZE", group: "Write path", def: "1048576", kind: kindInt, what: "bytes", min: kib, max: 256 << 20,
		help:  "most record bytes of one per-partition segment object that object compaction writes",
		field: func(c *Config) any { return &c.SegmentMaxSize }},
	{name: "SEGMENT_MAX_AGE_MS", group: "Write path", def: "10000", kind: kindInt, what: "milliseconds", min: 1, unit: time.Millisecond,
		help:  "most time between the flushes whose runs one per-partition segment object takes; a segment is written once no newer run can join it",
		field: func(c *Config) any { return &c.SegmentMaxAge }},
	{name: "COMPACTION_INTERVAL_SECS", group: "Write path", def: "60", kind: kindInt, what: "seconds", min: 0, unit: time.Second,
		help:  "how often (with jitter) the agent rewrites the small multi-partition objects of the partitions it leads into per-partition segments (`SEGMENT_MAX_SIZE`, `SEGMENT_MAX_AGE_MS`) and runs Kafka key compaction on topics with `cleanup.policy=compact`; 0 turns both off",
		field: func(c *Config) any { return &c.CompactionInterval }},
	{name: "COMPACTION_PASS_MAX_MS", group: "Write path", kind: kindInt, what: "milliseconds", min: 1000, max: 86_400_000, unit: time.Millisecond, dynamic: true,
		doc:   "`COMPACTION_INTERVAL_SECS` × 1000 (60000 when that is 0, at most 86400000)",
		help:  "most time one compaction pass spends rewriting small objects into per-partition segments (its reads, segment writes and waits for appends); past it the segments not written wait for the next pass and the pass goes on to key compaction. A pass checks it only after a read or a write, and only once it has written its first segment (or given it up on a failed read): however short the limit or slow the reads, each pass replaces something, so a pass can take longer than the limit by the time its first segment takes",
		field: func(c *Config) any { return &c.CompactionPassMax }},
	{name: "SCHEMA_VALIDATION", group: "Write path", def: "topic", kind: kindEnum, choices: []string{"topic", "auto"},
		help:  "which produced values the schema registry validates: `topic`, those of topics with `confluent.value.schema.validation=true`; `auto` (the original StreamHouse's rule), also those of every topic whose subject `{topic}-value` has a schema, unless the topic sets `confluent.value.schema.validation=false`",
		field: func(c *Config) any { return &c.SchemaValidation }},

	// S3 upload
	{name: "S3_UPLOAD_RETRIES", group: "S3 upload", def: "3", kind: kindInt, what: "retries", min: 0, max: 20,
		help:  "retries of a failed S3 request after the first attempt",
		field: func(c *Config) any { return &c.S3UploadRetries }},
	{name: "MULTIPART_THRESHOLD", group: "S3 upload", def: "8388608", kind: kindInt, what: "bytes", min: 1,
		help:  "objects of at least this size use multipart upload",
		field: func(c *Config) any { return &c.MultipartThreshold }},
	{name: "MULTIPART_PART_SIZE", group: "S3 upload", def: "8388608", kind: kindInt, what: "bytes", min: 5 * mib, max: 5 * gib,
		help:  "size of each multipart part (S3 allows 5 MiB to 5 GiB)",
		field: func(c *Config) any { return &c.MultipartPartSize }},
	{name: "PARALLEL_UPLOAD_PARTS", group: "S3 upload", def: "4", kind: kindInt, what: "parts", min: 1, max: 64,
		help:  "parts of one multipart upload in flight at once",
		field: func(c *Config) any { return &c.ParallelUploadParts }},
	{name: "THROTTLE_ENABLED", group: "S3 upload", def: "true", kind: kindBool,
		help:  "adaptive limit on S3 requests in flight, backing off when S3 throttles",
		field: func(c *Config) any { return &c.ThrottleEnabled }},

	// Read cache
	{name: "HOT_TAIL_BYTES", group: "Read cache", def: "67108864", kind: kindInt, what: "bytes", min: 0,
		help:  "recently committed objects kept in memory for consumers at the tail; 0 disables",
		field: func(c *Config) any { return &c.HotTailBytes }},
	{name: "READ_CACHE_BYTES", group: "Read cache", def: "67108864", kind: kindInt, what: "bytes", min: 0,
		help:  "memory for 1 MiB chunks of objects read back for consumers, shared by every partition stored in them; 0 disables it and read-ahead",
		field: func(c *Config) any { return &c.ReadCacheBytes }},
	{name: "READ_AHEAD_BYTES", group: "Read cache", def: "2097152", kind: kindInt, what: "bytes", min: 0,
		help:  "how far past each read a partition's data is loaded into the read cache in the background; 0 disables read-ahead",
		field: func(c *Config) any { return &c.ReadAheadBytes }},
	{name: "STREAMHOUSE_CACHE", group: "Read cache", def: "./data/cache", kind: kindString, what: "a directory",
		help:  "disk cache of object ranges read from S3 (not used on the local folder backend, whose objects already are local files)",
		field: func(c *Config) any { return &c.CacheDir }},
	{name: "STREAMHOUSE_CACHE_SIZE", group: "Read cache", def: "1073741824", kind: kindInt, what: "bytes", min: 0,
		help:  "disk cache size bound; 0 disables the disk cache",
		field: func(c *Config) any { return &c.CacheSize }},

	// gRPC: unset keeps gRPC's own default, represented by the zero value.
	{name: "GRPC_MAX_CONCURRENT_STREAMS", group: "gRPC", kind: kindInt, what: "streams", min: 1, max: math.MaxUint32,
		doc:   "unlimited",
		help:  "concurrent RPCs per connection",
		field: func(c *Config) any { return &c.GRPCMaxConcurrentStreams }},
	{name: "GRPC_KEEPALIVE_INTERVAL_SECS", group: "gRPC", kind: kindInt, what: "seconds", min: 1, unit: time.Second,
		doc:   "gRPC default (2 h)",
		help:  "idle time before the server pings a client",
		field: func(c *Config) any { return &c.GRPCKeepaliveInterval }},
	{name: "GRPC_KEEPALIVE_TIMEOUT_SECS", group: "gRPC", kind: kindInt, what: "seconds", min: 1, unit: time.Second,
		doc:   "gRPC default (20 s)",
		help:  "how long the server waits for a ping answer before closing",
		field: func(c *Config) any { return &c.GRPCKeepaliveTimeout }},
	{name: "GRPC_INITIAL_STREAM_WINDOW_SIZE", group: "gRPC", kind: kindInt, what: "bytes", min: 65535, max: math.MaxInt32,
		doc:   "gRPC default (64 KiB, auto-tuned)",
		help:  "HTTP/2 flow-control window per stream; setting it turns off gRPC's window auto-tuning",
		field: func(c *Config) any { return &c.GRPCInitialStreamWindowSize }},
	{name: "GRPC_INITIAL_CONNECTION_WINDOW_SIZE", group: "gRPC", kind: kindInt, what: "bytes", min: 65535, max: math.MaxInt32,
		doc:   "gRPC default (64 KiB, auto-tuned)",
		help:  "HTTP/2 flow-control window per connection; setting it turns off gRPC's window auto-tuning",
		field: func(c *Config) any { return &c.GRPCInitialConnWindowSize }},

	// Write-ahead log
	{name: "SQL_MAX_ROWS", group: "SQL", def: "10000", kind: kindInt, what: "rows", min: 1, max: math.MaxInt32,
		help:  "the most rows a SQL query returns (and the largest `max_rows` a request may ask for); beyond it the answer says `truncated: true`",
		field: func(c *Config) any { return &c.SQLMaxRows }},
	{name: "SQL_TIMEOUT_MS", group: "SQL", def: "30000", kind: kindInt, what: "milliseconds", min: 1, unit: time.Millisecond,
		help:  "how long a SQL query may run (and the largest `timeout_ms` a request may ask for); past it the query is stopped and answers `query_timeout`",
		field: func(c *Config) any { return &c.SQLTimeout }},
	{name: "SQL_MAX_MEMORY_BYTES", group: "SQL", def: "268435456", kind: kindInt, what: "bytes", min: 16 << 20,
		help:  "the SQL engine's memory (grouping, sorting and join state over all queries); a query needing more answers `resource_limit`",
		field: func(c *Config) any { return &c.SQLMaxMemoryBytes }},
	{name: "SQL_THREADS", group: "SQL", def: "0", kind: kindInt, what: "threads", min: 0, max: 256,
		doc:   "0: half the CPUs, at least 1",
		help:  "the SQL engine's worker threads (over all queries); a scan reads up to this many partitions at once. The default leaves the broker's own work the other half of the machine",
		field: func(c *Config) any { return &c.SQLThreads }},
	{name: "WAL_ENABLED", group: "Write-ahead log", def: "false", kind: kindBool,
		help:  "keep buffered (not yet durable) writes in a local write-ahead log: a buffered ack (REST/gRPC `ack_mode` buffered, Kafka `acks=1`) is sent once the data is fsynced there, and a restart replays what was not committed yet (docs/reliability.md)",
		field: func(c *Config) any { return &c.WALEnabled }},
	{name: "WAL_DIR", group: "Write-ahead log", def: "./data/wal", kind: kindString, what: "a directory",
		help:  "WAL directory (on a local disk; keep it with the agent across restarts)",
		field: func(c *Config) any { return &c.WALDir }},
	{name: "WAL_SYNC_INTERVAL_MS", group: "Write-ahead log", def: "100", kind: kindInt, what: "milliseconds", min: 0, unit: time.Millisecond,
		help:  "at most one WAL fsync per interval, shared by every write since the last one (buffered acks wait for the next); 0 fsyncs as soon as possible, still one fsync for all concurrent writers",
		field: func(c *Config) any { return &c.WALSyncInterval }},
	{name: "WAL_MAX_SIZE", group: "Write-ahead log", def: "1073741824", kind: kindInt, what: "bytes", min: mib,
		help:  "bound on the WAL's live (not yet committed) bytes: when reached, appends wait for commits, never drop data; segment files rotate at min(64 MiB, WAL_MAX_SIZE/4)",
		field: func(c *Config) any { return &c.WALMaxSize }},

	// Security
	{name: "TLS_CERT_FILE", group: "Security", kind: kindString, what: "a PEM file",
		doc:   "unset",
		help:  "server certificate (PEM, the leaf first, then any intermediates); with `TLS_KEY_FILE` it turns on TLS on all three listeners: Kafka SSL, HTTPS (REST, schema registry, `/health`, `/metrics`) and gRPC TLS. Reloaded when the file changes (docs/security.md)",
		field: func(c *Config) any { return &c.TLSCertFile }},
	{name: "TLS_KEY_FILE", group: "Security", kind: kindString, what: "a PEM file",
		doc:   "unset",
		help:  "private key of `TLS_CERT_FILE` (PEM; may be the same file); set both or neither",
		field: func(c *Config) any { return &c.TLSKeyFile }},
	{name: "TLS_CLIENT_CA_FILE", group: "Security", kind: kindString, what: "a PEM file",
		doc:   "unset",
		help:  "CA certificates (PEM) for mutual TLS: every client on every listener must present a certificate that chains to one of them; its common name is the client's principal. Needs `TLS_CERT_FILE`",
		field: func(c *Config) any { return &c.TLSClientCAFile }},
	{name: "TLS_PEER_CA_FILE", group: "Security", kind: kindString, what: "a PEM file",
		doc:   "`TLS_CLIENT_CA_FILE`, else the system's roots",
		help:  "CA certificates (PEM) that verify the other agents' certificates when this agent calls them (REST and gRPC produces forwarded to a partition's leader, gRPC transaction calls, consumer group lookups); the agent presents its own certificate as client certificate. Needs `TLS_CERT_FILE`",
		field: func(c *Config) any { return &c.TLSPeerCAFile }},
	{name: "TLS_RELOAD_INTERVAL_MS", group: "Security", def: "10000", kind: kindInt, what: "milliseconds", min: 100, max: 30000, unit: time.Millisecond,
		help:  "how often the TLS files are checked for changes; new connections use replaced files within this interval",
		field: func(c *Config) any { return &c.TLSReloadInterval }},
	// Authentication (auth.go)
	{name: "AUTH_ENABLED", group: "Authentication", def: "false", kind: kindBool,
		help:  "every listener requires a login (Kafka SASL PLAIN, SCRAM-SHA-256, SCRAM-SHA-512; REST and schema registry HTTP Basic; gRPC `authorization: Basic` metadata; or a verified client certificate), except `/health`, `/live`, `/ready` and `/metrics` (docs/security.md)",
		field: func(c *Config) any { return &c.AuthEnabled }},
	{name: "AUTH_BOOTSTRAP_USERS", group: "Authentication", kind: kindString, secret: true, check: checkBootstrapUsers,
		doc:   "unset",
		what:  "name:password[,name:password...] (a name without ':' or ',', a password without ',')",
		help:  "users created at start when they do not exist yet, with both SCRAM credentials; an existing user is left unchanged (redacted in logs)",
		field: func(c *Config) any { return &c.AuthBootstrapUsers }},
	{name: "AUTH_SCRAM_ITERATIONS", group: "Authentication", def: "4096", kind: kindInt, what: "iterations", min: 4096, max: 16384,
		help:  "PBKDF2 iterations of the SCRAM credentials the server makes from a password (bootstrap users, `streamctl user create`); Kafka's bounds. Kafka clients that upsert credentials choose their own",
		field: func(c *Config) any { return &c.AuthScramIterations }},
	{name: "AUTH_SESSION_LIFETIME_MS", group: "Authentication", def: "0", kind: kindInt, what: "milliseconds", min: 0, unit: time.Millisecond,
		help:  "how long a Kafka SASL login lasts before the client must re-authenticate on its connection (KIP-368, Kafka's connections.max.reauth.ms); a connection whose login has expired is closed at its next request. Also how long a gRPC Subscribe or REST live query (POST /api/v1/sql/stream) of a password login runs before it ends with Unauthenticated / unauthorized; a REST long poll (GET /api/v1/consume with wait_ms) waits at most this long, then answers 200 with the records found (none), never 401, as HTTP Basic sends the password with every request. 0: logins last as long as the connection or stream",
		field: func(c *Config) any { return &c.AuthSessionLifetime }},
	{name: "SUPER_USERS", group: "Authentication", kind: kindString, check: checkSuperUsers,
		doc:   "unset",
		what:  "name[,name...] (each optionally User:name)",
		help:  "users that bypass ACLs",
		field: func(c *Config) any { return &c.SuperUsersList }},

	// Logging
	{name: "LOG_LEVEL", group: "Logging", def: "info", kind: kindEnum, choices: []string{"debug", "info", "warn", "error"},
		help:  "least severe log level written",
		field: func(c *Config) any { return &c.LogLevel }},
	{name: "LOG_FORMAT", group: "Logging", def: "text", kind: kindEnum, choices: []string{"text", "json"},
		help:  "log line format",
		field: func(c *Config) any { return &c.LogFormat }},
	{name: "PPROF_ENABLED", group: "Logging", def: "false", kind: kindBool,
		help:  "serve Go's profiler under `/debug/pprof/` on the REST port (CPU, heap, goroutines, blocking); keep it off on untrusted networks",
		field: func(c *Config) any { return &c.PprofEnabled }},
	{name: "METRICS_TOPIC_LABELS", group: "Logging", def: "true", kind: kindBool,
		help:  "give `/metrics` series a `topic` label (bytes in and out by topic, consumer group lag by topic and partition); `false` sums them over topics, for clusters with very many topics (docs/operations.md, \"Metrics\")",
		field: func(c *Config) any { return &c.MetricsTopicLabels }},
}
