-- Client quotas (Kafka's KIP-55, KIP-546): one row per entity and key. An
-- entity is a user, a client id, or both; each component is absent
-- (has_* = 0, name ''), the default entity (has_* = 1, name ''), or named
-- (has_* = 1, a non-empty name). Values are Kafka's float64 quota values.
-- Keep in step with ../postgres/00011_client_quotas.sql.

-- +goose Up
CREATE TABLE client_quotas (
    has_user      INTEGER NOT NULL,
    user_name     TEXT    NOT NULL,
    has_client_id INTEGER NOT NULL,
    client_id     TEXT    NOT NULL,
    quota_key     TEXT    NOT NULL,
    quota_value   REAL    NOT NULL,
    PRIMARY KEY (has_user, user_name, has_client_id, client_id, quota_key)
) WITHOUT ROWID;

-- +goose Down
DROP TABLE client_quotas;
