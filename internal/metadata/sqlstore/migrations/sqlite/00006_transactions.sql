-- Transactions (Kafka exactly-once), docs/architecture.md "Transactions".
-- Keep in step with ../postgres/00006_transactions.sql.
--
-- partitions.last_stable_offset: the first offset of the oldest open
-- transaction's data, or the high watermark when none is open (every
-- commit sets it). Existing partitions have no transaction open.
--
-- producer_state: whether the producer has a transaction open on the
-- partition (in_txn, 0 or 1) and its first offset there, and the epoch of
-- the last marker written for it (-1: none). A producer with in_txn set is
-- never expired.
--
-- aborted_txns: each partition's index of aborted transactions (records of
-- producer_id in [first_offset, last_offset) aborted; the abort marker at
-- last_offset), for read_committed fetches. Rows wholly below the log
-- start offset are deleted with the index entries.
--
-- txns: one row per transactional ID, the coordinator's state. partitions
-- and groups are JSON arrays, written and read whole.
--
-- txn_offsets: TxnOffsetCommit offsets waiting for their transaction's
-- decision: moved into group_offsets when it commits, dropped otherwise.

-- +goose Up
ALTER TABLE partitions ADD COLUMN last_stable_offset INTEGER NOT NULL DEFAULT 0;
UPDATE partitions SET last_stable_offset = high_watermark;

ALTER TABLE producer_state ADD COLUMN in_txn INTEGER NOT NULL DEFAULT 0;
ALTER TABLE producer_state ADD COLUMN txn_first_offset INTEGER NOT NULL DEFAULT -1;
ALTER TABLE producer_state ADD COLUMN coordinator_epoch INTEGER NOT NULL DEFAULT -1;

CREATE TABLE aborted_txns (
    topic_id     BLOB    NOT NULL,
    partition_id INTEGER NOT NULL,
    last_offset  INTEGER NOT NULL,
    producer_id  INTEGER NOT NULL,
    first_offset INTEGER NOT NULL,
    PRIMARY KEY (topic_id, partition_id, last_offset, producer_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE txns (
    transactional_id    TEXT    NOT NULL PRIMARY KEY,
    producer_id         INTEGER NOT NULL,
    producer_epoch      INTEGER NOT NULL,
    last_producer_id    INTEGER NOT NULL,
    last_producer_epoch INTEGER NOT NULL,
    state               TEXT    NOT NULL,
    timeout_ms          INTEGER NOT NULL,
    partition_list      TEXT    NOT NULL,
    group_list          TEXT    NOT NULL,
    started_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL
) STRICT;

CREATE INDEX txns_producer ON txns (producer_id);
CREATE INDEX txns_state ON txns (state);

CREATE TABLE txn_offsets (
    transactional_id TEXT    NOT NULL,
    group_id         TEXT    NOT NULL,
    topic            TEXT    NOT NULL,
    partition_id     INTEGER NOT NULL,
    committed_offset INTEGER NOT NULL,
    leader_epoch     INTEGER NOT NULL,
    metadata         TEXT    NOT NULL,
    committed_at     INTEGER NOT NULL,
    PRIMARY KEY (transactional_id, group_id, topic, partition_id)
) STRICT, WITHOUT ROWID;

CREATE INDEX txn_offsets_group ON txn_offsets (group_id);
CREATE INDEX txn_offsets_topic ON txn_offsets (topic);

-- +goose Down
DROP TABLE txn_offsets;
DROP TABLE txns;
DROP TABLE aborted_txns;
ALTER TABLE producer_state DROP COLUMN coordinator_epoch;
ALTER TABLE producer_state DROP COLUMN txn_first_offset;
ALTER TABLE producer_state DROP COLUMN in_txn;
ALTER TABLE partitions DROP COLUMN last_stable_offset;
