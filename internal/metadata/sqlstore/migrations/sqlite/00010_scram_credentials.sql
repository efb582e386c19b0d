-- Users' SCRAM credentials (authentication): one row per user and
-- mechanism (SCRAM-SHA-256, SCRAM-SHA-512) with the salt, the iteration
-- count and the stored and server keys of RFC 5802. Never a password or a
-- salted password. A user exists while it has a row.
-- Keep in step with ../postgres/00010_scram_credentials.sql.

-- +goose Up
CREATE TABLE scram_credentials (
    user_name  TEXT NOT NULL,
    mechanism  TEXT NOT NULL,
    salt       BLOB NOT NULL,
    stored_key BLOB NOT NULL,
    server_key BLOB NOT NULL,
    iterations INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (user_name, mechanism)
) STRICT;

-- +goose Down
DROP TABLE scram_credentials;
