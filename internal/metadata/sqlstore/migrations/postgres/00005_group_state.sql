-- What a consumer group's coordinator persists when a generation completes
-- (generation, protocol, leader, members and their assignments), as
-- Kafka's group metadata records do, so a coordinator that takes a group
-- over continues its generation sequence instead of restarting it at 1.
-- members is a JSON array (byte fields base64), written and read whole.
-- Keep in step with ../sqlite/00005_group_state.sql.

-- +goose Up
CREATE TABLE group_state (
    group_id      text    NOT NULL PRIMARY KEY,
    generation    integer NOT NULL,
    protocol_type text    NOT NULL,
    protocol      text    NOT NULL,
    leader        text    NOT NULL,
    members       text    NOT NULL,
    updated_at    bigint  NOT NULL
);

-- +goose Down
DROP TABLE group_state;
