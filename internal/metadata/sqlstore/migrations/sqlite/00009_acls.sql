-- Kafka ACLs (internal/acl): one row per binding, its enums as Kafka's
-- wire codes; the whole binding is the key, so creating one twice stores
-- it once. acl_version grows with every change, so each agent can check
-- with a one-row read whether its in-memory copy is current.
-- Keep in step with ../postgres/00009_acls.sql.

-- +goose Up
CREATE TABLE acls (
    resource_type INTEGER NOT NULL,
    resource_name TEXT    NOT NULL,
    pattern_type  INTEGER NOT NULL,
    principal     TEXT    NOT NULL,
    host          TEXT    NOT NULL,
    operation     INTEGER NOT NULL,
    permission    INTEGER NOT NULL,
    PRIMARY KEY (resource_type, resource_name, pattern_type, principal, host, operation, permission)
) STRICT, WITHOUT ROWID;

CREATE TABLE acl_version (
    id      INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
) STRICT;
INSERT INTO acl_version (id, version) VALUES (1, 0);

-- +goose Down
DROP TABLE acl_version;
DROP TABLE acls;
