-- StreamHouse metadata schema, PostgreSQL dialect. Keep in step with
-- ../sqlite/00001_init.sql: same tables, columns and meaning.
-- Times are unix milliseconds; 0 means "not set".

-- +goose Up
CREATE TABLE topics (
    id         bytea   NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    name       text    NOT NULL UNIQUE,
    partitions integer NOT NULL CHECK (partitions > 0),
    config     jsonb   NOT NULL DEFAULT '{}',
    created_at bigint  NOT NULL
);

-- Rows are updated on every commit and lease renewal; the free space lets
-- those updates stay on the page (HOT) instead of bloating the indexes.
CREATE TABLE partitions (
    topic_id         bytea   NOT NULL REFERENCES topics (id),
    partition_id     integer NOT NULL,
    log_start_offset bigint  NOT NULL DEFAULT 0,
    high_watermark   bigint  NOT NULL DEFAULT 0,
    leader_agent     text    NOT NULL DEFAULT '',
    leader_epoch     integer NOT NULL DEFAULT 0,
    lease_expires_at bigint  NOT NULL DEFAULT 0,
    PRIMARY KEY (topic_id, partition_id)
) WITH (fillfactor = 70);

CREATE INDEX partitions_leader ON partitions (leader_agent);

CREATE TABLE objects (
    object_key   text   NOT NULL PRIMARY KEY,
    size         bigint NOT NULL,
    agent_id     text   NOT NULL,
    created_at   bigint NOT NULL,
    deletable_at bigint NOT NULL DEFAULT 0
);

CREATE INDEX objects_deletable ON objects (deletable_at) WHERE deletable_at > 0;

-- The segment index: one row per contiguous run of a partition's batches
-- inside an object. No foreign keys here or on producer_state: they cost a
-- third of a commit, and the commit's fence already proves the partition
-- exists (and locks it), while ForgetObject checks for references itself.
CREATE TABLE segments (
    topic_id      bytea   NOT NULL,
    partition_id  integer NOT NULL,
    base_offset   bigint  NOT NULL,
    last_offset   bigint  NOT NULL,
    object_key    text    NOT NULL,
    pos           bigint  NOT NULL,
    len           bigint  NOT NULL,
    max_timestamp bigint  NOT NULL,
    records       integer NOT NULL,
    PRIMARY KEY (topic_id, partition_id, base_offset)
);

CREATE INDEX segments_object ON segments (object_key);

CREATE TABLE agents (
    id           text   NOT NULL PRIMARY KEY,
    addr         text   NOT NULL,
    rack         text   NOT NULL,
    started_at   bigint NOT NULL,
    heartbeat_at bigint NOT NULL
);

CREATE TABLE group_offsets (
    group_id         text    NOT NULL,
    topic            text    NOT NULL,
    partition_id     integer NOT NULL,
    committed_offset bigint  NOT NULL,
    leader_epoch     integer NOT NULL,
    metadata         text    NOT NULL,
    committed_at     bigint  NOT NULL,
    PRIMARY KEY (group_id, topic, partition_id)
);

CREATE INDEX group_offsets_topic ON group_offsets (topic);

-- A single row holding the next producer ID to hand out.
CREATE TABLE producer_ids (
    id      integer NOT NULL PRIMARY KEY CHECK (id = 1),
    next_id bigint  NOT NULL
);

INSERT INTO producer_ids (id, next_id) VALUES (1, 1);

CREATE TABLE producer_state (
    topic_id     bytea   NOT NULL,
    partition_id integer NOT NULL,
    producer_id  bigint  NOT NULL,
    epoch        integer NOT NULL,
    batches      text    NOT NULL, -- JSON array of metadata.ProducerBatch
    PRIMARY KEY (topic_id, partition_id, producer_id)
);

-- +goose Down
DROP TABLE producer_state;
DROP TABLE producer_ids;
DROP TABLE group_offsets;
DROP TABLE agents;
DROP TABLE segments;
DROP TABLE objects;
DROP TABLE partitions;
DROP TABLE topics;
