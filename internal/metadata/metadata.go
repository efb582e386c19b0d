// Package metadata owns StreamHouse's source of truth: topics and their
// configs, partitions (log start offset, high watermark, leader lease), the
// segment index, objects (for garbage collection), agents, consumer group
// offsets, idempotent-producer state, schemas, transactions, Kafka ACLs,
// users' SCRAM credentials and client quotas.
//
// Two implementations share one Store interface and one acceptance suite
// (metadatatest): SQLite for a single agent and PostgreSQL for many.
package metadata

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/streamhouse/streamhouse/internal/acl"
)

// Sentinel errors callers branch on. Implementations wrap them with context.
var (
	ErrTopicExists       = errors.New("topic already exists")
	ErrTopicNotFound     = errors.New("topic not found")
	ErrPartitionNotFound = errors.New("partition not found")
	ErrInvalidPartitions = errors.New("invalid partition count")
	ErrLeaseHeld         = errors.New("partition lease held by another agent")
	// ErrObjectConflict: CommitObject found its object key committed
	// already, but not with this commit's index entries (another object
	// under the same key). Nothing was stored.
	ErrObjectConflict   = errors.New("object key already committed with other contents")
	ErrGroupNotFound    = errors.New("consumer group not found")
	ErrGroupExists      = errors.New("consumer group already exists")
	ErrOffsetOutOfRange = errors.New("offset out of range")
	ErrAgentNotFound    = errors.New("agent not registered")
	// ErrInvalidCommit marks an ObjectCommit that is malformed (offsets not
	// contiguous, duplicate partitions, empty key...): a bug in the caller,
	// never worth retrying.
	ErrInvalidCommit = errors.New("invalid object commit")
	// ErrSchemaNotFound: no schema has the ID, or no subject version uses
	// it any more.
	ErrSchemaNotFound = errors.New("schema not found")
	// ErrSchemaConflict: a RegisterSchema lost a race (the subject's latest
	// version is no longer the expected one, or another registration took
	// the version number). Check again and retry.
	ErrSchemaConflict = errors.New("schema registration conflict")
	// ErrGroupFenced: a group coordinator's write (offsets or group state)
	// was made under a coordinator slot lease its agent no longer holds at
	// that epoch, or carried a group generation older than the stored
	// one. Nothing was written.
	ErrGroupFenced = errors.New("group coordinator fenced")
	// ErrUnavailable wraps a failure of the store itself rather than of the
	// request: the database is unreachable, restarting, shutting down, out
	// of connections, or did not answer in time. The call may succeed if
	// retried later; front ends answer with their protocol's retriable
	// code (Kafka KAFKA_STORAGE_ERROR or COORDINATOR_NOT_AVAILABLE, HTTP
	// 503, gRPC Unavailable).
	ErrUnavailable = errors.New("metadata store unavailable")
	// ErrIndexChanged: ReplaceIndex found the index entries it was to
	// replace no longer exactly in the index (retention, DeleteRecords or
	// another compaction changed them meanwhile). Nothing was stored.
	ErrIndexChanged = errors.New("index entries changed")
)

// FencedError is returned by CommitObject when one or more partitions of the
// commit failed their fence (leader, epoch or expected high watermark). The
// whole transaction is rolled back: nothing of the commit is stored.
type FencedError struct {
	Partitions []TopicPartition
}

func (e *FencedError) Error() string {
	if len(e.Partitions) == 0 {
		return "commit fenced"
	}
	return fmt.Sprintf("commit fenced: %d partition(s) no longer led at the expected epoch and high watermark (first %s)", len(e.Partitions), e.Partitions[0])
}

// TopicID is a topic's immutable identity (a UUID, as in Kafka). A topic that
// is deleted and created again under the same name gets a new ID, so stale
// index rows can never be confused with new ones.
type TopicID [16]byte

func (id TopicID) String() string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", id[0:4], id[4:6], id[6:8], id[8:10], id[10:16])
}

// TopicPartition names one partition by topic ID.
type TopicPartition struct {
	TopicID   TopicID
	Partition int32
}

func (tp TopicPartition) String() string { return fmt.Sprintf("%s/%d", tp.TopicID, tp.Partition) }

// Topic is a topic's stored description.
type Topic struct {
	ID         TopicID
	Name       string
	Partitions int32
	Config     map[string]string // Kafka topic configs, e.g. "retention.ms"
	CreatedAt  time.Time
}

// PartitionState is a partition's stored state.
type PartitionState struct {
	TopicID        TopicID
	Partition      int32
	LogStartOffset int64
	HighWatermark  int64     // next offset to be committed; all offsets below are committed
	Leader         string    // agent ID holding the lease, "" if none
	LeaderEpoch    int32     // changes only when leadership changes
	LeaseExpiresAt time.Time // zero if never leased or released
	// LastStableOffset is the first offset of the oldest open
	// transaction's data in the committed log, or HighWatermark when no
	// transaction is open: read_committed readers stop there.
	LastStableOffset int64
}

// Lease is what an agent holds while it leads a partition.
type Lease struct {
	TopicPartition
	Epoch     int32
	ExpiresAt time.Time
	// State of the partition when the lease was taken.
	HighWatermark  int64
	LogStartOffset int64
}

// Agent is one running StreamHouse process.
type Agent struct {
	ID          string
	Addr        string // advertised Kafka host:port
	GRPCAddr    string // advertised gRPC host:port, "" if unknown
	Rack        string
	StartedAt   time.Time
	HeartbeatAt time.Time
}

// IndexEntry locates one contiguous run of a partition's record batches
// inside an object: offsets [BaseOffset, LastOffset] occupy bytes
// [Pos, Pos+Len) of ObjectKey.
type IndexEntry struct {
	BaseOffset   int64
	LastOffset   int64
	ObjectKey    string
	Pos          int64
	Len          int64
	MaxTimestamp int64 // milliseconds; -1 if unknown
	Records      int32 // number of records in the run
	// ObjectCreatedAt is when the object holding the run was sealed
	// (milliseconds, the committing agent's clock), which time retention
	// falls back to when MaxTimestamp cannot be trusted. ListIndex fills
	// it; 0 if unknown. Commits ignore it (the object's time is
	// ObjectCommit.CreatedAt).
	ObjectCreatedAt int64
}

// ProducerState is the idempotent-producer state of one producer on one
// partition, as of the commit that carries it. Batches holds the most recent
// batches (at most 5, oldest first) so duplicates can be answered after a
// restart with their original offsets.
type ProducerState struct {
	ProducerID int64
	Epoch      int16
	Batches    []ProducerBatch
	// UpdatedAt is when the producer last appended (the leader's clock,
	// millisecond precision in the store); producers idle for longer than
	// the expiration are forgotten (Store.ExpireProducers).
	UpdatedAt time.Time
	// InTxn is true while the producer has an open transaction on the
	// partition, whose first record is at TxnFirstOffset. A marker closes
	// it. Producers with an open transaction are never expired.
	InTxn          bool
	TxnFirstOffset int64
	// CoordinatorEpoch is the epoch of the last marker written for the
	// producer (-1 if none), as Kafka keeps it; informational.
	CoordinatorEpoch int32
}

// ProducerBatch is one remembered batch of an idempotent producer.
type ProducerBatch struct {
	FirstSeq   int32
	LastSeq    int32
	BaseOffset int64
	LastOffset int64
	Timestamp  int64 // max timestamp of the batch, ms
}

// PartitionCommit is one partition's share of an object commit.
type PartitionCommit struct {
	TopicPartition
	Epoch int32 // the lease epoch the writer holds
	// ExpectedHighWatermark must equal the stored high watermark, and equal
	// Entries[0].BaseOffset; the commit advances it to NewHighWatermark
	// (= last entry's LastOffset + 1).
	ExpectedHighWatermark int64
	NewHighWatermark      int64
	Entries               []IndexEntry
	Producers             []ProducerState // upserted, replacing earlier state of those producers
	// HasOpenTxn and OpenTxnFirstOffset give the partition's last stable
	// offset after the commit: OpenTxnFirstOffset when HasOpenTxn (the
	// first offset of the oldest transaction still open on the partition,
	// whichever producer's), else NewHighWatermark.
	HasOpenTxn         bool
	OpenTxnFirstOffset int64
	// AbortedTxns are added to the partition's aborted-transaction index:
	// the transactions whose abort markers this commit writes.
	AbortedTxns []AbortedTxn
}

// ObjectCommit commits one uploaded object: all partitions or none.
type ObjectCommit struct {
	ObjectKey  string
	Size       int64
	AgentID    string
	CreatedAt  time.Time
	Partitions []PartitionCommit
}

// IndexReplacement switches a run of one partition's index entries to new
// entries pointing into one new object (object compaction; Kafka key
// compaction reuses it). Old must be exactly in the index (same offsets,
// object key, byte range); New must tile the same offsets, densely, all in
// ObjectKey. Stored entries keep their offsets: the switch never changes
// the record a kept offset maps to (invariant 11).
type IndexReplacement struct {
	TopicPartition
	AgentID string // the lease holder doing the switch
	Epoch   int32  // its lease epoch
	Old     []IndexEntry
	New     []IndexEntry
	// The new object, recorded as a committed object. CreatedAt is what
	// ListIndex reports as ObjectCreatedAt (time retention's fallback), so
	// compaction passes the newest creation time of the objects replaced.
	ObjectKey string
	Size      int64
	CreatedAt time.Time
}

// GroupOffset is one committed consumer-group offset.
type GroupOffset struct {
	Group       string
	Topic       string
	Partition   int32
	Offset      int64
	LeaderEpoch int32 // -1 if unknown
	Metadata    string
	CommittedAt time.Time
}

// GroupFence names the lease under which a group coordinator writes: the
// group's coordinator slot (a partition of the internal groups topic), the
// agent and the slot's lease epoch it holds. A fenced write succeeds only
// if the slot's partition row still names that agent and epoch, checked in
// the write's own transaction.
type GroupFence struct {
	Slot    TopicPartition
	AgentID string
	Epoch   int32
}

// GroupState is what a consumer group's coordinator persists when a
// generation completes (the leader's assignment is handed out, or the group
// empties), as Kafka's group metadata records do, so a coordinator taking
// the group over continues its generation sequence.
type GroupState struct {
	Group        string
	Generation   int32
	ProtocolType string
	Protocol     string // the generation's protocol; "" for an empty group
	Leader       string
	Members      []GroupMemberState // in join order; none for an empty group
	UpdatedAt    time.Time
}

// GroupMemberState is one member of a GroupState.
type GroupMemberState struct {
	MemberID         string
	InstanceID       string // "" for dynamic members
	ClientID         string
	ClientHost       string
	SessionTimeout   time.Duration
	RebalanceTimeout time.Duration
	Subscription     []byte // the member's metadata for the generation's protocol
	Assignment       []byte // the leader's assignment for the member
}

// ObjectRecord is an object the store knows about.
type ObjectRecord struct {
	Key       string
	Size      int64
	AgentID   string
	CreatedAt time.Time
	// DeletableAt is set once no index row references the object; the object
	// may be removed from the bucket after this time. Zero while referenced.
	DeletableAt time.Time
}

// Schema is a schema registry schema. ID is global and shared by every
// subject version registering the same (type, text, references).
type Schema struct {
	ID         int64
	Type       string // AVRO, JSON, PROTOBUF
	Text       string // canonical text, as the registry computed it
	References []SchemaReference
}

// SchemaReference names another subject version a schema imports.
type SchemaReference struct {
	Name    string `json:"name"`
	Subject string `json:"subject"`
	Version int32  `json:"version"`
}

// SchemaVersion is one version of a subject.
type SchemaVersion struct {
	Subject string
	Version int32
	Deleted bool // soft-deleted
	Schema  Schema
}

// SchemaVersionFilter selects schema versions; zero fields match all.
type SchemaVersionFilter struct {
	Subject  string
	SchemaID int64
}

// Store is the metadata contract. Every method is safe for concurrent use
// and takes a context that bounds its I/O.
type Store interface {
	// Topics.

	// CreateTopic creates a topic and its partitions (high watermark 0, no
	// leader). ErrTopicExists if the name is taken; ErrInvalidPartitions if
	// t.Partitions < 1. The ID is assigned by the store when t.ID is zero.
	CreateTopic(ctx context.Context, t Topic) (Topic, error)
	GetTopic(ctx context.Context, name string) (Topic, error)
	GetTopicByID(ctx context.Context, id TopicID) (Topic, error)
	ListTopics(ctx context.Context) ([]Topic, error) // ordered by name
	// DeleteTopic removes the topic, its partitions, index rows, producer
	// state, aborted-transaction index and the consumer-group offsets
	// (committed, and pending in transactions) for its name (as Kafka
	// does, so a topic created again under the name starts clean). Objects
	// left unreferenced become deletable after the grace period given to
	// MarkUnreferencedObjects. ErrTopicNotFound if absent.
	DeleteTopic(ctx context.Context, name string) error
	// UpdateTopicConfig replaces the topic's config map.
	UpdateTopicConfig(ctx context.Context, name string, config map[string]string) error
	// AddPartitions grows the topic to total partitions. ErrInvalidPartitions
	// unless total > current.
	AddPartitions(ctx context.Context, name string, total int32) error

	// Partitions.

	GetPartition(ctx context.Context, tp TopicPartition) (PartitionState, error)
	// ListPartitions returns the topic's partitions ordered by partition;
	// ErrTopicNotFound if the topic does not exist.
	ListPartitions(ctx context.Context, id TopicID) ([]PartitionState, error)
	// ListAllPartitions returns every partition of every topic (internal
	// topics included) in one query, ordered by topic ID and partition.
	ListAllPartitions(ctx context.Context) ([]PartitionState, error)
	// SetLogStartOffset raises the log start offset (never lowers it, never
	// above the high watermark: ErrOffsetOutOfRange) and deletes index entries
	// and aborted transactions wholly below it (LastOffset < offset).
	// Returns the resulting log start offset.
	SetLogStartOffset(ctx context.Context, tp TopicPartition, offset int64) (int64, error)

	// Agents and leases.

	// RegisterAgent inserts or updates the agent and sets its heartbeat to
	// a.HeartbeatAt (the current time if zero).
	RegisterAgent(ctx context.Context, a Agent) error
	// HeartbeatAgent refreshes the heartbeat of a registered agent;
	// ErrAgentNotFound if it is not registered (e.g. it was deregistered).
	HeartbeatAgent(ctx context.Context, agentID string, now time.Time) error
	// ListAgents returns agents whose heartbeat is at or after since.
	ListAgents(ctx context.Context, since time.Time) ([]Agent, error)
	// DeregisterAgent removes the agent and releases its leases (as
	// ReleaseLease does). No error if it is not registered.
	DeregisterAgent(ctx context.Context, agentID string) error

	// AcquireLease makes agentID the leader of tp with a new epoch
	// (previous epoch + 1) if the partition has no leader, its lease expired
	// before now, or agentID already holds it (a restarted agent taking its
	// own leases back). Otherwise ErrLeaseHeld.
	AcquireLease(ctx context.Context, tp TopicPartition, agentID string, now time.Time, ttl time.Duration) (Lease, error)
	// RenewLeases extends every lease agentID holds to now+ttl, in one
	// statement, without changing epochs, and returns the leases it holds.
	// With an error it may still return leases: those were renewed (a
	// store that renews in several steps reports the steps that
	// succeeded), and nothing is known of the others.
	RenewLeases(ctx context.Context, agentID string, now time.Time, ttl time.Duration) ([]Lease, error)
	// ReleaseLease gives up tp if agentID holds it at epoch: the partition is
	// left with no leader and no expiry, so another agent can take it at once
	// (with epoch + 1). No error if not held.
	ReleaseLease(ctx context.Context, tp TopicPartition, agentID string, epoch int32) error

	// Write path.

	// CommitObject records an uploaded object and, for each partition, checks
	// the fence (leader == c.AgentID, epoch, stored high watermark ==
	// ExpectedHighWatermark), then advances the high watermark, sets the
	// last stable offset, inserts the index entries and aborted
	// transactions and upserts producer state. All or nothing: if any fence
	// check fails, nothing is stored and a *FencedError lists the failed
	// partitions. A malformed commit fails with ErrInvalidCommit before
	// touching the store. Committing an object key that is already committed
	// returns nil when the index holds this commit's entries under the key
	// (a commit whose success was not seen, retried), and ErrObjectConflict
	// otherwise.
	CommitObject(ctx context.Context, c ObjectCommit) error
	// ReplaceIndex switches r.Old to r.New in one transaction: it checks
	// that r.AgentID holds tp's lease at r.Epoch (else a *FencedError
	// naming tp) and that r.Old is exactly in the index (else
	// ErrIndexChanged), then deletes r.Old, inserts r.New and records
	// r.ObjectKey as a committed object. The objects r.Old referenced
	// become unreferenced once no other row names them, and garbage
	// collection deletes them after its grace period
	// (MarkUnreferencedObjects). All or nothing. A malformed replacement
	// fails with ErrInvalidCommit before touching the store. Replacing
	// with an object key already recorded returns nil when the index holds
	// r.New under it (a retry whose answer was lost), ErrObjectConflict
	// otherwise (e.g. garbage collection claimed the key as an orphan).
	ReplaceIndex(ctx context.Context, r IndexReplacement) error

	// Read path.

	// ListIndex returns up to limit entries of tp whose LastOffset >= from,
	// ordered by BaseOffset. limit <= 0 means no limit.
	ListIndex(ctx context.Context, tp TopicPartition, from int64, limit int) ([]IndexEntry, error)
	// IndexBytes returns the total length of tp's index entries whose
	// LastOffset >= from: the bytes stored for the partition from there.
	IndexBytes(ctx context.Context, tp TopicPartition, from int64) (int64, error)
	// StoredBytes returns the total length of every index entry of every
	// partition (internal topics included): the bytes of record batches
	// the log holds in objects, in one query.
	StoredBytes(ctx context.Context) (int64, error)
	// ProducerStates returns the stored producer state of tp.
	ProducerStates(ctx context.Context, tp TopicPartition) ([]ProducerState, error)
	// NextProducerID allocates a new, never reused producer ID.
	NextProducerID(ctx context.Context) (int64, error)
	// ExpireProducers deletes the state of every producer, on every
	// partition, last updated before olderThan (except producers with
	// InTxn set, which a marker must close first), and returns how many
	// partition-producer rows it deleted (Kafka's
	// producer.id.expiration.ms).
	ExpireProducers(ctx context.Context, olderThan time.Time) (int64, error)

	// Objects and garbage collection.

	// IsObjectCommitted reports whether key was committed by CommitObject.
	IsObjectCommitted(ctx context.Context, key string) (bool, error)
	// CommittedObjects returns which of keys were committed by
	// CommitObject (and not forgotten), in one query per few hundred keys.
	CommittedObjects(ctx context.Context, keys []string) (map[string]bool, error)
	// ClaimOrphans takes the keys of uploaded objects that are not
	// committed, for deletion: each key not yet recorded is recorded as an
	// object without index rows, deletable at now+grace, and returned. A
	// later CommitObject of a claimed key fails with ErrObjectConflict, so
	// an orphan scan that deletes only claimed keys can never race a
	// commit into an index row that points at nothing. Keys already
	// recorded (committed, or claimed before) are not returned.
	ClaimOrphans(ctx context.Context, keys []string, now time.Time, grace time.Duration) ([]string, error)
	// MarkUnreferencedObjects sets DeletableAt = now+grace on every committed
	// object that no index row references and that is not yet marked.
	// Returns how many it marked.
	MarkUnreferencedObjects(ctx context.Context, now time.Time, grace time.Duration) (int, error)
	// DeletableObjects returns up to limit objects whose DeletableAt is set
	// and at or before now.
	DeletableObjects(ctx context.Context, now time.Time, limit int) ([]ObjectRecord, error)
	// ForgetObject removes the object's row (after it was deleted from the
	// bucket).
	ForgetObject(ctx context.Context, key string) error

	// Consumer group offsets.

	CommitGroupOffsets(ctx context.Context, offsets []GroupOffset) error        // upsert, one transaction
	FetchGroupOffsets(ctx context.Context, group string) ([]GroupOffset, error) // ordered by topic, partition
	// FetchGroupsOffsets returns the offsets of every listed group (none
	// for an unknown one) in a few queries, not one per group: those of
	// one group together, ordered by topic and partition; the groups in
	// no set order.
	FetchGroupsOffsets(ctx context.Context, groups []string) ([]GroupOffset, error)
	// DeleteGroupOffsets removes the group's offsets of the listed
	// partitions of topic; an empty list deletes nothing.
	DeleteGroupOffsets(ctx context.Context, group, topic string, partitions []int32) error
	// CreateGroup registers a group without offsets, so it is listed before
	// its first commit. ErrGroupExists if it is registered or has offsets.
	CreateGroup(ctx context.Context, group string) error
	// DeleteGroup removes every offset of the group (pending
	// transactional ones too), its registration and its stored group
	// state. ErrGroupNotFound if it has neither offsets
	// nor registration.
	DeleteGroup(ctx context.Context, group string) error
	// ListGroups returns the groups registered or with committed offsets,
	// ordered.
	ListGroups(ctx context.Context) ([]string, error)
	// CommitFencedGroupOffsets is CommitGroupOffsets for a group
	// coordinator: in the same transaction it checks that the partition
	// row of fence.Slot names fence.AgentID at fence.Epoch, else it writes
	// nothing and returns an error wrapping ErrGroupFenced.
	CommitFencedGroupOffsets(ctx context.Context, fence GroupFence, offsets []GroupOffset) error
	// SaveGroupState stores a group's state, replacing the stored one,
	// fenced as CommitFencedGroupOffsets is; a state whose generation is
	// older than the stored one is refused with ErrGroupFenced too.
	SaveGroupState(ctx context.Context, fence GroupFence, st GroupState) error
	// LoadGroupState returns a group's stored state; found is false when
	// it has none. DeleteGroup deletes it.
	LoadGroupState(ctx context.Context, group string) (st GroupState, found bool, err error)

	// Schema registry. The registry decides compatibility and error
	// semantics; the store keeps ids stable and registrations atomic.

	// RegisterSchema stores s under subject in one transaction: the schema
	// gets the ID of an identical (type, text, references) schema if there
	// is one, else a new one. If a version of subject that is not
	// soft-deleted already has that ID, it is returned unchanged. Otherwise
	// a new version (one above the highest, soft-deleted ones included) is
	// added, but only if the subject's latest non-deleted version is still
	// expectLatest (0: none): else ErrSchemaConflict, as when a concurrent
	// registration took the version number.
	RegisterSchema(ctx context.Context, subject string, s Schema, expectLatest int32) (SchemaVersion, error)
	// GetSchema returns a schema by ID; ErrSchemaNotFound unless some
	// subject version (soft-deleted ones included) uses it.
	GetSchema(ctx context.Context, id int64) (Schema, error)
	// ListSchemaVersions returns the versions matching f, soft-deleted ones
	// included, ordered by subject and version.
	ListSchemaVersions(ctx context.Context, f SchemaVersionFilter) ([]SchemaVersion, error)
	// DeleteSchemaVersions soft-deletes (flags) or, if permanent, removes
	// the listed versions of subject. Missing versions are ignored.
	DeleteSchemaVersions(ctx context.Context, subject string, versions []int32, permanent bool) error
	// SchemaCompatibility returns the compatibility level set for subject
	// ("" is the global level); "" if none is set.
	SchemaCompatibility(ctx context.Context, subject string) (string, error)
	// SetSchemaCompatibility sets subject's level ("" subject: global); an
	// empty level removes the setting.
	SetSchemaCompatibility(ctx context.Context, subject, level string) error

	// Transactions (txn.go).
	TxnStore

	// Kafka ACLs: CreateACLs, ListACLs, DeleteACLs and ACLVersion, as
	// acl.Store states them.
	acl.Store
	// Users and their SCRAM credentials (users.go).
	UserStore

	// Client quotas (quotas.go).
	QuotaStore

	// Ping checks the store answers (for /ready).
	Ping(ctx context.Context) error
	Close() error
}
