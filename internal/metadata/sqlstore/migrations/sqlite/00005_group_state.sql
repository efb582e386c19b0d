-- What a consumer group's coordinator persists when a generation completes
-- (generation, protocol, leader, members and their assignments), as
-- Kafka's group metadata records do, so a coordinator that takes a group
-- over continues its generation sequence instead of restarting it at 1.
-- members is a JSON array (byte fields base64), written and read whole.
-- Keep in step with ../postgres/00005_group_state.sql.

-- +goose Up
CREATE TABLE group_state (
    group_id      TEXT    NOT NULL PRIMARY KEY,
    generation    INTEGER NOT NULL,
    protocol_type TEXT    NOT NULL,
    protocol      TEXT    NOT NULL,
    leader        TEXT    NOT NULL,
    members       TEXT    NOT NULL,
    updated_at    INTEGER NOT NULL
) STRICT;

-- +goose Down
DROP TABLE group_state;
