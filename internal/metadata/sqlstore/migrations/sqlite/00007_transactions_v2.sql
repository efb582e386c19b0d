-- Transactions V2 (KIP-890 part 2), docs/architecture.md "Transactions".
-- Keep in step with ../postgres/00007_transactions_v2.sql.
--
-- txns.client_version: the transaction version (Kafka's transaction.version)
-- of the client that last ended a transaction of the ID: 2 when it ended it
-- with EndTxn v5 or later (the producer epoch is bumped by every EndTxn and
-- the markers carry the bumped epoch), 0 before. It goes with the
-- transaction's markers, so a leader refuses a late V2 marker.
--
-- txns.next_producer_id: the producer ID a V2 transaction hands its
-- producer when ending it exhausted the epoch (0: none); it replaces
-- producer_id once the markers are written.

-- +goose Up
ALTER TABLE txns ADD COLUMN client_version INTEGER NOT NULL DEFAULT 0;
ALTER TABLE txns ADD COLUMN next_producer_id INTEGER NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE txns DROP COLUMN next_producer_id;
ALTER TABLE txns DROP COLUMN client_version;
