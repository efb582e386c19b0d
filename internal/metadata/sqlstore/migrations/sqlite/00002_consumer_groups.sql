-- Groups registered before their first offset commit (e.g. created through
-- the REST API), so they are listed. Keep in step with
-- ../postgres/00002_consumer_groups.sql.

-- +goose Up
CREATE TABLE consumer_groups (
    group_id   TEXT    NOT NULL PRIMARY KEY,
    created_at INTEGER NOT NULL
) STRICT;

-- +goose Down
DROP TABLE consumer_groups;
