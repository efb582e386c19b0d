-- The schema registry: schemas with global ids, deduplicated by
-- fingerprint (a hash of type, canonical text and references); subject
-- versions with a soft-delete flag; compatibility levels per subject and
-- global (subject ''). Keep in step with ../postgres/00003_schema_registry.sql.

-- +goose Up
CREATE TABLE schemas (
    id          INTEGER NOT NULL PRIMARY KEY,
    schema_type TEXT    NOT NULL,
    schema_text TEXT    NOT NULL,
    refs        TEXT    NOT NULL,
    fingerprint TEXT    NOT NULL UNIQUE
) STRICT;

CREATE TABLE schema_versions (
    subject   TEXT    NOT NULL,
    version   INTEGER NOT NULL,
    schema_id INTEGER NOT NULL REFERENCES schemas (id),
    deleted   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (subject, version)
) STRICT;
CREATE INDEX schema_versions_by_schema ON schema_versions (schema_id);

CREATE TABLE schema_configs (
    subject       TEXT NOT NULL PRIMARY KEY,
    compatibility TEXT NOT NULL
) STRICT;

-- +goose Down
DROP TABLE schema_configs;
DROP TABLE schema_versions;
DROP TABLE schemas;
