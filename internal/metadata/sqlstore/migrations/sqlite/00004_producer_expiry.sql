-- When each producer's state last changed (milliseconds since the epoch),
-- so that producers idle for longer than PRODUCER_ID_EXPIRATION_MS can be
-- forgotten, as Kafka's producer.id.expiration.ms does. Rows that exist
-- when this migration runs count as changed now. No index: expiry scans the
-- table once per garbage collection pass, and an index would cost every
-- commit. Keep in step with ../postgres/00004_producer_expiry.sql.

-- +goose Up
ALTER TABLE producer_state ADD COLUMN updated_at INTEGER NOT NULL DEFAULT 0;
UPDATE producer_state SET updated_at = CAST(strftime('%s', 'now') AS INTEGER) * 1000;

-- +goose Down
ALTER TABLE producer_state DROP COLUMN updated_at;
