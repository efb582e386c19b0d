-- Users' SCRAM credentials (authentication): one row per user and
-- mechanism (SCRAM-SHA-256, SCRAM-SHA-512) with the salt, the iteration
-- count and the stored and server keys of RFC 5802. Never a password or a
-- salted password. A user exists while it has a row.
-- Keep in step with ../sqlite/00010_scram_credentials.sql.

-- +goose Up
CREATE TABLE scram_credentials (
    user_name  text NOT NULL,
    mechanism  text NOT NULL,
    salt       bytea NOT NULL,
    stored_key bytea NOT NULL,
    server_key bytea NOT NULL,
    iterations integer NOT NULL,
    updated_at bigint NOT NULL,
    PRIMARY KEY (user_name, mechanism)
);

-- +goose Down
DROP TABLE scram_credentials;
