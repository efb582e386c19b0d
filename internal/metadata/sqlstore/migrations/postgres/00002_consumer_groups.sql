-- Groups registered before their first offset commit (e.g. created through
-- the REST API), so they are listed. Keep in step with
-- ../sqlite/00002_consumer_groups.sql.

-- +goose Up
CREATE TABLE consumer_groups (
    group_id   text   NOT NULL PRIMARY KEY,
    created_at bigint NOT NULL
);

-- +goose Down
DROP TABLE consumer_groups;
