-- StreamHouse metadata schema, SQLite dialect. Keep in step with
-- ../postgres/00001_init.sql: same tables, columns and meaning.
-- Times are unix milliseconds; 0 means "not set".

-- +goose Up
CREATE TABLE topics (
    id         BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    name       TEXT    NOT NULL UNIQUE,
    partitions INTEGER NOT NULL CHECK (partitions > 0),
    config     TEXT    NOT NULL DEFAULT '{}',
    created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE partitions (
    topic_id         BLOB    NOT NULL REFERENCES topics (id),
    partition_id     INTEGER NOT NULL,
    log_start_offset INTEGER NOT NULL DEFAULT 0,
    high_watermark   INTEGER NOT NULL DEFAULT 0,
    leader_agent     TEXT    NOT NULL DEFAULT '',
    leader_epoch     INTEGER NOT NULL DEFAULT 0,
    lease_expires_at INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (topic_id, partition_id)
) STRICT, WITHOUT ROWID;

CREATE INDEX partitions_leader ON partitions (leader_agent);

CREATE TABLE objects (
    object_key   TEXT    NOT NULL PRIMARY KEY,
    size         INTEGER NOT NULL,
    agent_id     TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    deletable_at INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE INDEX objects_deletable ON objects (deletable_at) WHERE deletable_at > 0;

-- The segment index: one row per contiguous run of a partition's batches
-- inside an object. No foreign keys here or on producer_state: they cost a
-- third of a commit, and the commit's fence already proves the partition
-- exists (and locks it), while ForgetObject checks for references itself.
CREATE TABLE segments (
    topic_id      BLOB    NOT NULL,
    partition_id  INTEGER NOT NULL,
    base_offset   INTEGER NOT NULL,
    last_offset   INTEGER NOT NULL,
    object_key    TEXT    NOT NULL,
    pos           INTEGER NOT NULL,
    len           INTEGER NOT NULL,
    max_timestamp INTEGER NOT NULL,
    records       INTEGER NOT NULL,
    PRIMARY KEY (topic_id, partition_id, base_offset)
) STRICT, WITHOUT ROWID;

CREATE INDEX segments_object ON segments (object_key);

CREATE TABLE agents (
    id           TEXT    NOT NULL PRIMARY KEY,
    addr         TEXT    NOT NULL,
    rack         TEXT    NOT NULL,
    started_at   INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL
) STRICT;

CREATE TABLE group_offsets (
    group_id         TEXT    NOT NULL,
    topic            TEXT    NOT NULL,
    partition_id     INTEGER NOT NULL,
    committed_offset INTEGER NOT NULL,
    leader_epoch     INTEGER NOT NULL,
    metadata         TEXT    NOT NULL,
    committed_at     INTEGER NOT NULL,
    PRIMARY KEY (group_id, topic, partition_id)
) STRICT, WITHOUT ROWID;

CREATE INDEX group_offsets_topic ON group_offsets (topic);

-- A single row holding the next producer ID to hand out.
CREATE TABLE producer_ids (
    id      INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    next_id INTEGER NOT NULL
) STRICT;

INSERT INTO producer_ids (id, next_id) VALUES (1, 1);

CREATE TABLE producer_state (
    topic_id     BLOB    NOT NULL,
    partition_id INTEGER NOT NULL,
    producer_id  INTEGER NOT NULL,
    epoch        INTEGER NOT NULL,
    batches      TEXT    NOT NULL, -- JSON array of metadata.ProducerBatch
    PRIMARY KEY (topic_id, partition_id, producer_id)
) STRICT, WITHOUT ROWID;

-- +goose Down
DROP TABLE producer_state;
DROP TABLE producer_ids;
DROP TABLE group_offsets;
DROP TABLE agents;
DROP TABLE segments;
DROP TABLE objects;
DROP TABLE partitions;
DROP TABLE topics;
