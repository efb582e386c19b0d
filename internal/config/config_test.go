package config

import (
	"bytes"
	"errors"
	"flag"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// loadEnv loads from a map with a fixed hostname so tests do not depend on
// the machine.
func loadEnv(t *testing.T, env map[string]string) (*Config, error) {
	t.Helper()
	return load(MapEnv(env), func() (string, error) { return "agent-1", nil })
}

func mustLoad(t *testing.T, env map[string]string) *Config {
	t.Helper()
	c, err := loadEnv(t, env)
	if err != nil {
		t.Fatalf("Load(%v): %v", env, err)
	}
	return c
}

// specNames are the variables SPEC.md and the brief require.
var specNames = []string{
	"HTTP_ADDR", "GRPC_ADDR", "KAFKA_ADDR", "KAFKA_ADVERTISED_ADDR", "GRPC_ADVERTISED_ADDR",
	"USE_LOCAL_STORAGE", "LOCAL_STORAGE_PATH", "STREAMHOUSE_BUCKET", "AWS_REGION", "S3_ENDPOINT",
	"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "DATABASE_URL", "STREAMHOUSE_METADATA_PATH",
	"FLUSH_INTERVAL_SECS", "FLUSH_MIN_INTERVAL_MS", "SEGMENT_MAX_SIZE", "SEGMENT_MAX_AGE_MS", "COMPACTION_INTERVAL_SECS", "COMPACTION_PASS_MAX_MS",
	"DURABLE_BATCH_MAX_AGE_MS", "DURABLE_BATCH_MAX_RECORDS", "DURABLE_BATCH_MAX_BYTES",
	"S3_UPLOAD_RETRIES", "MULTIPART_THRESHOLD", "MULTIPART_PART_SIZE", "PARALLEL_UPLOAD_PARTS",
	"THROTTLE_ENABLED", "GRPC_MAX_CONCURRENT_STREAMS", "GRPC_KEEPALIVE_INTERVAL_SECS",
	"GRPC_KEEPALIVE_TIMEOUT_SECS", "GRPC_INITIAL_STREAM_WINDOW_SIZE", "GRPC_INITIAL_CONNECTION_WINDOW_SIZE",
	"WAL_ENABLED", "WAL_DIR", "WAL_SYNC_INTERVAL_MS", "WAL_MAX_SIZE", "STREAMHOUSE_CACHE", "STREAMHOUSE_CACHE_SIZE",
	"STREAMHOUSE_AGENT_ID", "STREAMHOUSE_RACK", "KAFKA_AUTO_CREATE_TOPICS", "KAFKA_DEFAULT_PARTITIONS",
	"KAFKA_MAX_REQUEST_BYTES", "KAFKA_MAX_INFLIGHT_REQUEST_BYTES", "KAFKA_MAX_CONNECTIONS", "KAFKA_MAX_CONNECTIONS_PER_IP", "KAFKA_CONNECTIONS_MAX_IDLE_MS",
	"LEASE_TTL_MS", "GC_INTERVAL_SECS", "GC_GRACE_SECS", "MAX_BUFFER_BYTES", "HOT_TAIL_BYTES", "PRODUCER_ID_EXPIRATION_MS", "TRANSACTION_MAX_TIMEOUT_MS", "KAFKA_TRANSACTION_VERSION", "SQL_MAX_ROWS", "SQL_TIMEOUT_MS", "SQL_MAX_MEMORY_BYTES", "SQL_THREADS", "SCHEMA_VALIDATION", "READ_CACHE_BYTES", "READ_AHEAD_BYTES",
	"TLS_CERT_FILE", "TLS_KEY_FILE", "TLS_CLIENT_CA_FILE", "TLS_PEER_CA_FILE", "TLS_RELOAD_INTERVAL_MS",
	"AUTH_ENABLED", "AUTH_BOOTSTRAP_USERS", "AUTH_SCRAM_ITERATIONS", "AUTH_SESSION_LIFETIME_MS", "SUPER_USERS",
	"HTTP_MAX_BODY_BYTES", "LOG_LEVEL", "LOG_FORMAT", "PPROF_ENABLED", "METRICS_TOPIC_LABELS",
}

func TestTableCoversSpec(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	groups := map[string]bool{}
	last := ""
	for _, v := range vars {
		if seen[v.name] {
			t.Errorf("%s listed twice", v.name)
		}
		seen[v.name] = true
		if v.group != last {
			if groups[v.group] {
				t.Errorf("group %q is split; keep its variables together", v.group)
			}
			groups[v.group] = true
			last = v.group
		}
		if v.help == "" {
			t.Errorf("%s has no help text", v.name)
		}
	}
	for _, n := range specNames {
		if !seen[n] {
			t.Errorf("%s missing from the table", n)
		}
	}
	if len(vars) != len(specNames) {
		t.Errorf("table has %d variables, specNames %d: update the test", len(vars), len(specNames))
	}
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	c := mustLoad(t, nil)
	for _, tc := range []struct {
		name      string
		got, want any
	}{
		{"HTTP_ADDR", c.HTTPAddr, "0.0.0.0:8080"},
		{"GRPC_ADDR", c.GRPCAddr, "0.0.0.0:50051"},
		{"KAFKA_ADDR", c.KafkaAddr, "0.0.0.0:9092"},
		{"KAFKA_ADVERTISED_ADDR", c.KafkaAdvertisedAddr, "localhost:9092"},
		{"GRPC_ADVERTISED_ADDR", c.GRPCAdvertisedAddr, "localhost:50051"},
		{"HTTP_MAX_BODY_BYTES", c.HTTPMaxBodyBytes, int64(16777216)},
		{"STREAMHOUSE_AGENT_ID", c.AgentID, "agent-1"},
		{"STREAMHOUSE_RACK", c.Rack, ""},
		{"LEASE_TTL_MS", c.LeaseTTL, 10 * time.Second},
		{"GC_INTERVAL_SECS", c.GCInterval, 60 * time.Second},
		{"GC_GRACE_SECS", c.GCGrace, time.Hour},
		{"PRODUCER_ID_EXPIRATION_MS", c.ProducerExpiration, 24 * time.Hour},
		{"TRANSACTION_MAX_TIMEOUT_MS", c.TransactionMaxTimeout, 15 * time.Minute},
		{"KAFKA_TRANSACTION_VERSION", c.KafkaTransactionVersion, 2},
		{"SQL_MAX_ROWS", c.SQLMaxRows, 10000},
		{"SQL_TIMEOUT_MS", c.SQLTimeout, 30 * time.Second},
		{"SQL_MAX_MEMORY_BYTES", c.SQLMaxMemoryBytes, int64(268435456)},
		{"SQL_THREADS", c.SQLThreads, 0},
		{"SCHEMA_VALIDATION", c.SchemaValidation, "topic"},
		{"storage", c.Storage, StorageLocal},
		{"USE_LOCAL_STORAGE", c.UseLocalStorage, false},
		{"LOCAL_STORAGE_PATH", c.LocalStoragePath, "./data/storage"},
		{"STREAMHOUSE_BUCKET", c.Bucket, "streamhouse"},
		{"AWS_REGION", c.Region, "us-east-1"},
		{"S3_ENDPOINT", c.S3Endpoint, ""},
		{"AWS_ACCESS_KEY_ID", c.AWSAccessKeyID, ""},
		{"AWS_SECRET_ACCESS_KEY", c.AWSSecretAccessKey, ""},
		{"metadata", c.Metadata, MetadataSQLite},
		{"DATABASE_URL", c.DatabaseURL, ""},
		{"STREAMHOUSE_METADATA_PATH", c.MetadataPath, "./data/metadata.db"},
		{"KAFKA_AUTO_CREATE_TOPICS", c.AutoCreateTopics, true},
		{"KAFKA_DEFAULT_PARTITIONS", c.DefaultPartitions, 1},
		{"KAFKA_MAX_REQUEST_BYTES", c.KafkaMaxRequestBytes, int32(104857600)},
		{"KAFKA_MAX_INFLIGHT_REQUEST_BYTES", c.KafkaMaxInflightRequestBytes, int64(209715200)},
		{"KAFKA_MAX_CONNECTIONS", c.KafkaMaxConnections, 4096},
		{"KAFKA_MAX_CONNECTIONS_PER_IP", c.KafkaMaxConnectionsPerIP, 1024},
		{"KAFKA_CONNECTIONS_MAX_IDLE_MS", c.KafkaConnectionsMaxIdle, 10 * time.Minute},
		{"FLUSH_INTERVAL_SECS", c.FlushInterval, 5 * time.Second},
		{"FLUSH_MIN_INTERVAL_MS", c.FlushMinInterval, time.Duration(0)},
		{"DURABLE_BATCH_MAX_AGE_MS", c.DurableBatchMaxAge, 200 * time.Millisecond},
		{"DURABLE_BATCH_MAX_RECORDS", c.DurableBatchMaxRecords, 10000},
		{"DURABLE_BATCH_MAX_BYTES", c.DurableBatchMaxBytes, 16777216},
		{"MAX_BUFFER_BYTES", c.MaxBufferBytes, 67108864},
		{"SEGMENT_MAX_SIZE", c.SegmentMaxSize, int64(1048576)},
		{"SEGMENT_MAX_AGE_MS", c.SegmentMaxAge, 10 * time.Second},
		{"COMPACTION_INTERVAL_SECS", c.CompactionInterval, time.Minute},
		{"COMPACTION_PASS_MAX_MS", c.CompactionPassMax, time.Minute},
		{"S3_UPLOAD_RETRIES", c.S3UploadRetries, 3},
		{"MULTIPART_THRESHOLD", c.MultipartThreshold, int64(8388608)},
		{"MULTIPART_PART_SIZE", c.MultipartPartSize, int64(8388608)},
		{"PARALLEL_UPLOAD_PARTS", c.ParallelUploadParts, 4},
		{"THROTTLE_ENABLED", c.ThrottleEnabled, true},
		{"HOT_TAIL_BYTES", c.HotTailBytes, 67108864},
		{"READ_CACHE_BYTES", c.ReadCacheBytes, int64(67108864)},
		{"READ_AHEAD_BYTES", c.ReadAheadBytes, int64(2097152)},
		{"STREAMHOUSE_CACHE", c.CacheDir, "./data/cache"},
		{"STREAMHOUSE_CACHE_SIZE", c.CacheSize, int64(1073741824)},
		{"GRPC_MAX_CONCURRENT_STREAMS", c.GRPCMaxConcurrentStreams, uint32(0)},
		{"GRPC_KEEPALIVE_INTERVAL_SECS", c.GRPCKeepaliveInterval, time.Duration(0)},
		{"GRPC_KEEPALIVE_TIMEOUT_SECS", c.GRPCKeepaliveTimeout, time.Duration(0)},
		{"GRPC_INITIAL_STREAM_WINDOW_SIZE", c.GRPCInitialStreamWindowSize, int32(0)},
		{"GRPC_INITIAL_CONNECTION_WINDOW_SIZE", c.GRPCInitialConnWindowSize, int32(0)},
		{"WAL_ENABLED", c.WALEnabled, false},
		{"WAL_DIR", c.WALDir, "./data/wal"},
		{"WAL_SYNC_INTERVAL_MS", c.WALSyncInterval, 100 * time.Millisecond},
		{"WAL_MAX_SIZE", c.WALMaxSize, int64(1073741824)},
		{"LOG_LEVEL", c.LogLevel, slog.LevelInfo},
		{"LOG_FORMAT", c.LogFormat, "text"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %#v, want %#v", tc.name, tc.got, tc.want)
		}
	}
	for _, s := range c.Settings() {
		if s.Source != SourceDefault {
			t.Errorf("%s source %q with an empty environment", s.Name, s.Source)
		}
	}
}

func TestValuesFromEnv(t *testing.T) {
	t.Parallel()
	c := mustLoad(t, map[string]string{
		"HTTP_ADDR":                       ":0",
		"KAFKA_ADDR":                      "[::1]:19092",
		"STREAMHOUSE_AGENT_ID":            "a_1.b-2",
		"STREAMHOUSE_RACK":                "us-east-1a",
		"LEASE_TTL_MS":                    "1000",
		"FLUSH_INTERVAL_SECS":             "2",
		"FLUSH_MIN_INTERVAL_MS":           "7",
		"COMPACTION_INTERVAL_SECS":        "0",
		"DURABLE_BATCH_MAX_BYTES":         "1024",
		"MAX_BUFFER_BYTES":                "1024",
		"GRPC_MAX_CONCURRENT_STREAMS":     "4294967295",
		"GRPC_KEEPALIVE_INTERVAL_SECS":    "30",
		"GRPC_INITIAL_STREAM_WINDOW_SIZE": "1048576",
		"KAFKA_AUTO_CREATE_TOPICS":        "No",
		"WAL_ENABLED":                     "YES",
		"WAL_SYNC_INTERVAL_MS":            "0",
		"HOT_TAIL_BYTES":                  "0",
		"LOG_LEVEL":                       "DEBUG",
		"LOG_FORMAT":                      "json",
	})
	for _, tc := range []struct {
		name      string
		got, want any
	}{
		{"HTTP_ADDR", c.HTTPAddr, ":0"},
		{"KAFKA_ADVERTISED_ADDR", c.KafkaAdvertisedAddr, "[::1]:19092"},
		{"STREAMHOUSE_AGENT_ID", c.AgentID, "a_1.b-2"},
		{"STREAMHOUSE_RACK", c.Rack, "us-east-1a"},
		{"LEASE_TTL_MS", c.LeaseTTL, time.Second},
		{"FLUSH_INTERVAL_SECS", c.FlushInterval, 2 * time.Second},
		{"FLUSH_MIN_INTERVAL_MS", c.FlushMinInterval, 7 * time.Millisecond},
		{"COMPACTION_INTERVAL_SECS", c.CompactionInterval, time.Duration(0)},
		{"DURABLE_BATCH_MAX_BYTES", c.DurableBatchMaxBytes, 1024},
		{"GRPC_MAX_CONCURRENT_STREAMS", c.GRPCMaxConcurrentStreams, uint32(4294967295)},
		{"GRPC_KEEPALIVE_INTERVAL_SECS", c.GRPCKeepaliveInterval, 30 * time.Second},
		{"GRPC_INITIAL_STREAM_WINDOW_SIZE", c.GRPCInitialStreamWindowSize, int32(1048576)},
		{"KAFKA_AUTO_CREATE_TOPICS", c.AutoCreateTopics, false},
		{"WAL_ENABLED", c.WALEnabled, true},
		{"WAL_SYNC_INTERVAL_MS", c.WALSyncInterval, time.Duration(0)},
		{"HOT_TAIL_BYTES", c.HotTailBytes, 0},
		{"LOG_LEVEL", c.LogLevel, slog.LevelDebug},
		{"LOG_FORMAT", c.LogFormat, "json"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %#v, want %#v", tc.name, tc.got, tc.want)
		}
	}
	got := map[string]Setting{}
	for _, s := range c.Settings() {
		got[s.Name] = s
	}
	for name, want := range map[string]Setting{
		"LEASE_TTL_MS":                 {"LEASE_TTL_MS", "1000", SourceEnv},
		"GRPC_KEEPALIVE_INTERVAL_SECS": {"GRPC_KEEPALIVE_INTERVAL_SECS", "30", SourceEnv},
		"GRPC_KEEPALIVE_TIMEOUT_SECS":  {"GRPC_KEEPALIVE_TIMEOUT_SECS", "", SourceDefault},
		"KAFKA_AUTO_CREATE_TOPICS":     {"KAFKA_AUTO_CREATE_TOPICS", "false", SourceEnv},
		"KAFKA_ADVERTISED_ADDR":        {"KAFKA_ADVERTISED_ADDR", "[::1]:19092", SourceDefault},
		"LOG_LEVEL":                    {"LOG_LEVEL", "debug", SourceEnv},
		"GC_GRACE_SECS":                {"GC_GRACE_SECS", "3600", SourceDefault},
	} {
		if got[name] != want {
			t.Errorf("setting %s = %+v, want %+v", name, got[name], want)
		}
	}
}

func TestBooleans(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"true", true}, {"TRUE", true}, {"1", true}, {"yes", true}, {"Yes", true},
		{"false", false}, {"False", false}, {"0", false}, {"no", false}, {"NO", false},
	} {
		c := mustLoad(t, map[string]string{"THROTTLE_ENABLED": tc.in})
		if c.ThrottleEnabled != tc.want {
			t.Errorf("THROTTLE_ENABLED=%q gave %v", tc.in, c.ThrottleEnabled)
		}
	}
}

func TestBackendSelection(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		env      map[string]string
		storage  string
		metadata string
	}{
		{nil, StorageLocal, MetadataSQLite},
		{map[string]string{"S3_ENDPOINT": "http://localhost:9000"}, StorageS3, MetadataSQLite},
		{map[string]string{"STREAMHOUSE_BUCKET": "my-bucket"}, StorageS3, MetadataSQLite},
		{map[string]string{"STREAMHOUSE_BUCKET": "streamhouse"}, StorageS3, MetadataSQLite},
		{map[string]string{"S3_ENDPOINT": "https://s3.example.com", "STREAMHOUSE_BUCKET": "b.1"}, StorageS3, MetadataSQLite},
		{map[string]string{"USE_LOCAL_STORAGE": "1"}, StorageLocal, MetadataSQLite},
		{map[string]string{"USE_LOCAL_STORAGE": "", "S3_ENDPOINT": "http://minio:9000"}, StorageLocal, MetadataSQLite},
		{map[string]string{"USE_LOCAL_STORAGE": "false", "STREAMHOUSE_BUCKET": "abc"}, StorageLocal, MetadataSQLite},
		{map[string]string{"AWS_REGION": "eu-west-1"}, StorageLocal, MetadataSQLite},
		{map[string]string{"DATABASE_URL": "postgres://u:p@db:5432/sh"}, StorageLocal, MetadataPostgres},
		{map[string]string{"DATABASE_URL": "postgresql:///sh?host=/tmp", "STREAMHOUSE_BUCKET": "abc"}, StorageS3, MetadataPostgres},
	} {
		c := mustLoad(t, tc.env)
		if c.Storage != tc.storage || c.Metadata != tc.metadata {
			t.Errorf("%v: storage %s metadata %s, want %s %s", tc.env, c.Storage, c.Metadata, tc.storage, tc.metadata)
		}
		if _, ok := tc.env["USE_LOCAL_STORAGE"]; ok != c.UseLocalStorage {
			t.Errorf("%v: UseLocalStorage %v", tc.env, c.UseLocalStorage)
		}
	}
}

// COMPACTION_PASS_MAX_MS defaults to the compaction interval (a minute
// when compaction is off, at most its own maximum, a day), and a value
// set is kept whatever the interval.
func TestCompactionPassMaxDefault(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		env  map[string]string
		want time.Duration
	}{
		{nil, time.Minute},
		{map[string]string{"COMPACTION_INTERVAL_SECS": "30"}, 30 * time.Second},
		{map[string]string{"COMPACTION_INTERVAL_SECS": "0"}, time.Minute},
		{map[string]string{"COMPACTION_INTERVAL_SECS": "30", "COMPACTION_PASS_MAX_MS": "2500"}, 2500 * time.Millisecond},
		{map[string]string{"COMPACTION_PASS_MAX_MS": "86400000"}, 24 * time.Hour},
		{map[string]string{"COMPACTION_INTERVAL_SECS": "86400"}, 24 * time.Hour},
		{map[string]string{"COMPACTION_INTERVAL_SECS": "200000"}, 24 * time.Hour},
	} {
		c := mustLoad(t, tc.env)
		if c.CompactionPassMax != tc.want {
			t.Errorf("%v: CompactionPassMax %v, want %v", tc.env, c.CompactionPassMax, tc.want)
		}
	}
	got := map[string]Setting{}
	for _, s := range mustLoad(t, map[string]string{"COMPACTION_INTERVAL_SECS": "30"}).Settings() {
		got[s.Name] = s
	}
	if want := (Setting{"COMPACTION_PASS_MAX_MS", "30000", SourceDefault}); got[want.Name] != want {
		t.Errorf("setting %+v, want %+v", got[want.Name], want)
	}
	// The default shown is one the setting accepts.
	c := mustLoad(t, map[string]string{"COMPACTION_INTERVAL_SECS": "200000"})
	for _, s := range c.Settings() {
		if s.Name != "COMPACTION_PASS_MAX_MS" {
			continue
		}
		if s.Value != "86400000" {
			t.Errorf("setting %+v, want the value 86400000", s)
		}
		mustLoad(t, map[string]string{"COMPACTION_INTERVAL_SECS": "200000", "COMPACTION_PASS_MAX_MS": s.Value})
	}
}

func TestFlushMinIntervalDefault(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		env  map[string]string
		want time.Duration
	}{
		{nil, 0},
		{map[string]string{"USE_LOCAL_STORAGE": "1", "S3_ENDPOINT": "http://m:9000"}, 0},
		{map[string]string{"S3_ENDPOINT": "http://m:9000"}, 100 * time.Millisecond},
		{map[string]string{"STREAMHOUSE_BUCKET": "abc"}, 100 * time.Millisecond},
		{map[string]string{"STREAMHOUSE_BUCKET": "abc", "FLUSH_MIN_INTERVAL_MS": "0"}, 0},
		{map[string]string{"FLUSH_MIN_INTERVAL_MS": "250"}, 250 * time.Millisecond},
	} {
		c := mustLoad(t, tc.env)
		if c.FlushMinInterval != tc.want {
			t.Errorf("%v: FlushMinInterval %v, want %v", tc.env, c.FlushMinInterval, tc.want)
		}
	}
}

func TestBadValues(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, value string
		env         map[string]string // more settings needed for the case
		want        string            // part of the message
	}{
		{"DURABLE_BATCH_MAX_BYTES", "12x", nil, `DURABLE_BATCH_MAX_BYTES="12x": not an integer (bytes, at least 1024)`},
		{"DURABLE_BATCH_MAX_BYTES", "1023", nil, "too small"},
		{"SEGMENT_MAX_SIZE", "-5", nil, "too small"},
		{"COMPACTION_INTERVAL_SECS", "-1", nil, "too small"},
		{"COMPACTION_PASS_MAX_MS", "999", nil, "too small (milliseconds, from 1000 to 86400000)"},
		{"COMPACTION_PASS_MAX_MS", "86400001", nil, "too large"},
		{"COMPACTION_PASS_MAX_MS", "2s", nil, "not an integer"},
		{"COMPACTION_PASS_MAX_MS", "", nil, "empty"},
		{"FLUSH_MIN_INTERVAL_MS", "-1", nil, "too small (milliseconds, at least 0)"},
		{"FLUSH_INTERVAL_SECS", "0", nil, "too small"},
		{"FLUSH_INTERVAL_SECS", "1.5", nil, "not an integer"},
		{"FLUSH_INTERVAL_SECS", " 5", nil, "not an integer"},
		{"GC_GRACE_SECS", "", nil, "empty (seconds, at least 60)"},
		{"GC_GRACE_SECS", "9223372036854775807", nil, "too large"},
		{"GC_GRACE_SECS", "99999999999999999999", nil, "too large"},
		{"LEASE_TTL_MS", "999", nil, "at least 1000"},
		// The grace must outlast a commit's window (commit timeout + lease
		// TTL + 2 × clock skew): 30 s + 60 s + 12 s.
		{"GC_GRACE_SECS", "60", map[string]string{"LEASE_TTL_MS": "60000"}, "at least 102 with LEASE_TTL_MS=60000"},
		{"MULTIPART_PART_SIZE", "5242879", nil, "from 5242880 to 5368709120"},
		{"PARALLEL_UPLOAD_PARTS", "65", nil, "from 1 to 64"},
		{"PARALLEL_UPLOAD_PARTS", "0", nil, "too small"},
		{"S3_UPLOAD_RETRIES", "21", nil, "from 0 to 20"},
		{"KAFKA_DEFAULT_PARTITIONS", "0", nil, "too small"},
		{"GRPC_MAX_CONCURRENT_STREAMS", "0", nil, "too small"},
		{"GRPC_MAX_CONCURRENT_STREAMS", "4294967296", nil, "too large"},
		{"GRPC_INITIAL_CONNECTION_WINDOW_SIZE", "1000", nil, "too small"},
		{"GRPC_KEEPALIVE_TIMEOUT_SECS", "", nil, "empty"},
		{"THROTTLE_ENABLED", "maybe", nil, "not a boolean (true, false, 1, 0, yes or no)"},
		{"WAL_ENABLED", "", nil, "empty"},
		{"HTTP_ADDR", "8080", nil, "not host:port"},
		{"GRPC_ADDR", "0.0.0.0:http", nil, "port is not a number"},
		{"KAFKA_ADDR", "0.0.0.0:65536", nil, "port is not a number from 0 to 65535"},
		{"KAFKA_ADDR", "", nil, "empty"},
		{"KAFKA_ADVERTISED_ADDR", "0.0.0.0:9092", nil, "host is empty or a wildcard"},
		{"KAFKA_ADVERTISED_ADDR", ":9092", nil, "wildcard"},
		{"KAFKA_ADVERTISED_ADDR", "broker:0", nil, "port is 0"},
		{"S3_ENDPOINT", "localhost:9000", nil, "not a URL"},
		{"S3_ENDPOINT", "ftp://x", nil, "not a URL"},
		{"S3_ENDPOINT", "", nil, "empty"},
		{"DATABASE_URL", "mysql://db/x", nil, "wrong scheme (a postgres:// or postgresql:// URL)"},
		{"DATABASE_URL", "postgres://db:x/x", nil, "not a valid URL"},
		{"STREAMHOUSE_BUCKET", "My_Bucket", nil, "not allowed"},
		{"STREAMHOUSE_BUCKET", "ab", nil, "3 to 63"},
		{"STREAMHOUSE_BUCKET", "-abc", nil, "start and end"},
		{"AWS_REGION", "us east", nil, "space"},
		{"LOCAL_STORAGE_PATH", "", nil, "empty (a directory)"},
		{"STREAMHOUSE_AGENT_ID", "a b", nil, "not allowed"},
		{"STREAMHOUSE_AGENT_ID", strings.Repeat("a", 65), nil, "longer than 64"},
		{"STREAMHOUSE_RACK", "rack/1", nil, "not allowed"},
		{"LOG_LEVEL", "verbose", nil, "one of debug, info, warn, error"},
		{"LOG_FORMAT", "xml", nil, "one of text, json"},
		{"MAX_BUFFER_BYTES", "2048", map[string]string{"DURABLE_BATCH_MAX_BYTES": "4096"}, "less than DURABLE_BATCH_MAX_BYTES=4096"},
		{"KAFKA_MAX_INFLIGHT_REQUEST_BYTES", "2097152", map[string]string{"KAFKA_MAX_REQUEST_BYTES": "4194304"}, "less than KAFKA_MAX_REQUEST_BYTES=4194304"},
		{"KAFKA_MAX_REQUEST_BYTES", "1000", nil, "too small"},
		{"KAFKA_MAX_CONNECTIONS_PER_IP", "0", nil, "too small"},
		{"KAFKA_CONNECTIONS_MAX_IDLE_MS", "999", nil, "too small"},
		{"MAX_BUFFER_BYTES", "67108864", map[string]string{"DURABLE_BATCH_MAX_BYTES": "134217728"}, "less than DURABLE_BATCH_MAX_BYTES"},
		{"AWS_SECRET_ACCESS_KEY", "", map[string]string{"STREAMHOUSE_BUCKET": "abc", "AWS_ACCESS_KEY_ID": "AKIA"}, "unset while AWS_ACCESS_KEY_ID is set"},
		{"AWS_ACCESS_KEY_ID", "", map[string]string{"S3_ENDPOINT": "http://m:9000", "AWS_SECRET_ACCESS_KEY": "s"}, "unset while AWS_SECRET_ACCESS_KEY is set"},
		{"TLS_KEY_FILE", "", map[string]string{"TLS_CERT_FILE": "/etc/sh/cert.pem"}, "unset while TLS_CERT_FILE is set (set both to turn TLS on, or neither)"},
		{"TLS_CERT_FILE", "", map[string]string{"TLS_KEY_FILE": "/etc/sh/key.pem"}, "unset while TLS_KEY_FILE is set"},
		{"TLS_CLIENT_CA_FILE", "/etc/sh/ca.pem", nil, "set while TLS is off (set TLS_CERT_FILE and TLS_KEY_FILE too)"},
		{"TLS_PEER_CA_FILE", "/etc/sh/ca.pem", nil, "set while TLS is off"},
		{"TLS_CERT_FILE", "", nil, "empty (a PEM file)"},
		{"TLS_RELOAD_INTERVAL_MS", "30001", nil, "from 100 to 30000"},
		{"TLS_RELOAD_INTERVAL_MS", "99", nil, "too small"},
	} {
		env := map[string]string{}
		for k, v := range tc.env {
			env[k] = v
		}
		if !strings.HasPrefix(tc.want, "unset") { // cross-checks leave tc.name unset
			env[tc.name] = tc.value
		}
		c, err := loadEnv(t, env)
		if err == nil {
			t.Errorf("%s=%q: no error (config %+v)", tc.name, tc.value, c)
			continue
		}
		if c != nil {
			t.Errorf("%s=%q: config returned with an error", tc.name, tc.value)
		}
		msg := err.Error()
		if !strings.Contains(msg, tc.name+"=") || !strings.Contains(msg, tc.want) {
			t.Errorf("%s=%q: error %q does not name the variable or lacks %q", tc.name, tc.value, msg, tc.want)
		}
		var ve *VarError
		if !errors.As(err, &ve) || ve.Name != tc.name {
			t.Errorf("%s=%q: error %v is not a *VarError for it", tc.name, tc.value, err)
		}
	}
}

func TestTLSSettings(t *testing.T) {
	t.Parallel()
	c := mustLoad(t, nil)
	if c.TLSEnabled() || c.TLSReloadInterval != 10*time.Second {
		t.Fatalf("defaults: TLS %v, reload every %v; want off, 10s", c.TLSEnabled(), c.TLSReloadInterval)
	}
	c = mustLoad(t, map[string]string{
		"TLS_CERT_FILE": "/c.pem", "TLS_KEY_FILE": "/k.pem", "TLS_CLIENT_CA_FILE": "/ca.pem",
		"TLS_PEER_CA_FILE": "/peer.pem", "TLS_RELOAD_INTERVAL_MS": "250",
	})
	if !c.TLSEnabled() || c.TLSCertFile != "/c.pem" || c.TLSKeyFile != "/k.pem" || c.TLSClientCAFile != "/ca.pem" ||
		c.TLSPeerCAFile != "/peer.pem" || c.TLSReloadInterval != 250*time.Millisecond {
		t.Fatalf("TLS settings not taken: %+v", c)
	}
}

func TestPartialCredentialsIgnoredForLocal(t *testing.T) {
	t.Parallel()
	mustLoad(t, map[string]string{"AWS_ACCESS_KEY_ID": "AKIA"})
}

func TestEveryBadVariableReported(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"HTTP_ADDR":               "nope",
		"DURABLE_BATCH_MAX_BYTES": "12x",
		"PARALLEL_UPLOAD_PARTS":   "100",
		"THROTTLE_ENABLED":        "sometimes",
		"DATABASE_URL":            "mysql://x",
		"LOG_LEVEL":               "loud",
		"GC_INTERVAL_SECS":        "",
	}
	_, err := loadEnv(t, env)
	if err == nil {
		t.Fatal("no error")
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(env) {
		t.Errorf("%d errors for %d bad variables:\n%v", len(lines), len(env), err)
	}
	for name := range env {
		if !strings.Contains(err.Error(), name+"=") {
			t.Errorf("%s not reported in:\n%v", name, err)
		}
	}
}

func TestRedaction(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t-Value"
	for _, tc := range []struct {
		name, value, want string
	}{
		{"AWS_SECRET_ACCESS_KEY", secret, redacted},
		{"DATABASE_URL", "postgres://user:" + secret + "@db:5432/sh", "postgres://user:xxxxx@db:5432/sh"},
		{"DATABASE_URL", "postgresql://user@db/sh?password=" + secret + "&sslmode=require", "postgresql://user@db/sh?password=xxxxx&sslmode=require"},
		{"DATABASE_URL", "postgres://db/sh?sslpassword=" + secret, "postgres://db/sh?sslpassword=xxxxx"},
	} {
		env := map[string]string{tc.name: tc.value, "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE"}
		c := mustLoad(t, env)
		var got Setting
		for _, s := range c.Settings() {
			if s.Name == tc.name {
				got = s
			}
		}
		if got.Value != tc.want || got.Source != SourceEnv {
			t.Errorf("%s=%q shown as %+v, want %q", tc.name, tc.value, got, tc.want)
		}
		var buf bytes.Buffer
		slog.New(slog.NewJSONHandler(&buf, nil)).Info("config", "config", c)
		if strings.Contains(buf.String(), secret) {
			t.Errorf("LogValue leaks the secret: %s", buf.String())
		}
		if !strings.Contains(buf.String(), "AKIAEXAMPLE") {
			t.Errorf("LogValue lacks the access key id: %s", buf.String())
		}
	}
	// Errors do not leak passwords either.
	for _, bad := range []string{"mysql://u:" + secret + "@h/db", "host=db password=" + secret} {
		_, err := loadEnv(t, map[string]string{"DATABASE_URL": bad})
		if err == nil || strings.Contains(err.Error(), secret) || !strings.Contains(err.Error(), "DATABASE_URL=") {
			t.Errorf("DATABASE_URL=%q: error %v", bad, err)
		}
	}
}

func TestAdvertisedAddr(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ listen, want string }{
		{"0.0.0.0:9092", "localhost:9092"},
		{":9092", "localhost:9092"},
		{"[::]:9092", "localhost:9092"},
		{"[0:0:0:0:0:0:0:0]:9092", "localhost:9092"},
		{"127.0.0.1:19092", "127.0.0.1:19092"},
		{"[::1]:9092", "[::1]:9092"},
		{"kafka.internal:9092", "kafka.internal:9092"},
		{"10.0.0.5:0", "10.0.0.5:0"},
	} {
		if got := AdvertisedAddr(tc.listen); got != tc.want {
			t.Errorf("AdvertisedAddr(%q) = %q, want %q", tc.listen, got, tc.want)
		}
		c := mustLoad(t, map[string]string{"KAFKA_ADDR": tc.listen})
		if c.KafkaAdvertisedAddr != tc.want {
			t.Errorf("KAFKA_ADDR=%q: advertised %q, want %q", tc.listen, c.KafkaAdvertisedAddr, tc.want)
		}
	}

	bound := &net.TCPAddr{IP: net.IPv4zero, Port: 40123}
	derived := mustLoad(t, map[string]string{"KAFKA_ADDR": ":0"})
	if got := derived.KafkaAdvertisedFor(bound); got != "localhost:40123" {
		t.Errorf("derived KafkaAdvertisedFor = %q", got)
	}
	explicit := mustLoad(t, map[string]string{"KAFKA_ADDR": ":0", "KAFKA_ADVERTISED_ADDR": "broker1.example.com:9092"})
	if got := explicit.KafkaAdvertisedFor(bound); got != "broker1.example.com:9092" {
		t.Errorf("explicit KafkaAdvertisedFor = %q", got)
	}
}

func TestGRPCAdvertisedAddr(t *testing.T) {
	t.Parallel()
	// Unset: the host advertised for Kafka, with the gRPC listener's port.
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{}, "localhost:50051"},
		{map[string]string{"GRPC_ADDR": "0.0.0.0:6000"}, "localhost:6000"},
		{map[string]string{"KAFKA_ADDR": "10.0.0.5:9092", "GRPC_ADDR": ":6000"}, "10.0.0.5:6000"},
		{map[string]string{"KAFKA_ADVERTISED_ADDR": "broker1.example.com:9092"}, "broker1.example.com:50051"},
		{map[string]string{"KAFKA_ADVERTISED_ADDR": "[::1]:9092", "GRPC_ADDR": "[::]:6000"}, "[::1]:6000"},
		{map[string]string{"GRPC_ADVERTISED_ADDR": "grpc1.example.com:443"}, "grpc1.example.com:443"},
		// Bound to one address: reached there.
		{map[string]string{"GRPC_ADDR": "10.0.0.6:6000", "KAFKA_ADVERTISED_ADDR": "broker1.example.com:9092"}, "10.0.0.6:6000"},
	} {
		c := mustLoad(t, tc.env)
		if c.GRPCAdvertisedAddr != tc.want {
			t.Errorf("%v: GRPC advertised %q, want %q", tc.env, c.GRPCAdvertisedAddr, tc.want)
		}
	}

	// A port 0 is replaced by the port actually bound.
	bound := &net.TCPAddr{IP: net.IPv4zero, Port: 40124}
	derived := mustLoad(t, map[string]string{"KAFKA_ADVERTISED_ADDR": "broker1.example.com:9092", "GRPC_ADDR": ":0"})
	if got := derived.GRPCAdvertisedFor("broker1.example.com:9092", bound); got != "broker1.example.com:40124" {
		t.Errorf("derived GRPCAdvertisedFor = %q", got)
	}
	explicit := mustLoad(t, map[string]string{"GRPC_ADDR": ":0", "GRPC_ADVERTISED_ADDR": "grpc1.example.com:50051"})
	if got := explicit.GRPCAdvertisedFor("localhost:9092", bound); got != "grpc1.example.com:50051" {
		t.Errorf("explicit GRPCAdvertisedFor = %q", got)
	}
	if _, err := loadEnv(t, map[string]string{"GRPC_ADVERTISED_ADDR": ":50051"}); err == nil || !strings.Contains(err.Error(), "GRPC_ADVERTISED_ADDR") {
		t.Errorf("GRPC_ADVERTISED_ADDR without a host: %v, want an error naming it", err)
	}
}

func TestAgentIDFromHostname(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		host    string
		hostErr error
		want    string // "" means an error naming STREAMHOUSE_AGENT_ID
	}{
		{"node-7.example.com", nil, "node-7.example.com"},
		{strings.Repeat("h", 70), nil, ""},
		{"", errors.New("no hostname"), ""},
	} {
		c, err := load(MapEnv(nil), func() (string, error) { return tc.host, tc.hostErr })
		switch {
		case tc.want != "" && (err != nil || c.AgentID != tc.want):
			t.Errorf("hostname %q: %v, %v", tc.host, c, err)
		case tc.want == "" && (err == nil || !strings.Contains(err.Error(), "STREAMHOUSE_AGENT_ID")):
			t.Errorf("hostname %q: error %v", tc.host, err)
		}
	}
	// An explicit id never asks for the hostname.
	c, err := load(MapEnv(map[string]string{"STREAMHOUSE_AGENT_ID": "a1"}), func() (string, error) {
		return "", errors.New("must not be called")
	})
	if err != nil || c.AgentID != "a1" {
		t.Errorf("explicit agent id: %v, %v", c, err)
	}
}

func TestMarkdown(t *testing.T) {
	t.Parallel()
	md := Markdown()
	for _, n := range specNames {
		if strings.Count(md, "| `"+n+"` |") != 1 {
			t.Errorf("Markdown lists %s other than once", n)
		}
	}
	for _, want := range []string{"| `DURABLE_BATCH_MAX_BYTES` | `16777216` (16 MiB) |", "**Storage and metadata**", "|---|---|---|"} {
		if !strings.Contains(md, want) {
			t.Errorf("Markdown lacks %q", want)
		}
	}
}

func TestNewLogger(t *testing.T) {
	t.Parallel()
	c := mustLoad(t, map[string]string{"LOG_LEVEL": "warn", "LOG_FORMAT": "json"})
	var buf bytes.Buffer
	log := c.NewLogger(&buf)
	log.Info("hidden")
	log.Warn("shown")
	if out := buf.String(); strings.Contains(out, "hidden") || !strings.HasPrefix(out, "{") || !strings.Contains(out, "shown") {
		t.Errorf("logger output %q", out)
	}
}

var updateReadme = flag.Bool("update-readme", false, "rewrite README.md's configuration table from Markdown()")

// The README's configuration table is Markdown(), so it cannot drift from
// the code.
func TestReadmeConfigTable(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	const start, end = "<!-- config-table:start -->\n", "<!-- config-table:end -->"
	s := string(readme)
	i, j := strings.Index(s, start), strings.Index(s, end)
	if i < 0 || j < i {
		t.Fatal("README.md lacks the config-table markers")
	}
	if got := s[i+len(start) : j]; got != Markdown() {
		if *updateReadme {
			s = s[:i+len(start)] + Markdown() + s[j:]
			if err := os.WriteFile("../../README.md", []byte(s), 0o644); err != nil {
				t.Fatal(err)
			}
			return
		}
		t.Fatalf("README.md's configuration table differs from config.Markdown(); run: go test ./internal/config -run ReadmeConfigTable -update-readme")
	}
}
