-- Kafka ACLs (internal/acl): one row per binding, its enums as Kafka's
-- wire codes; the whole binding is the key, so creating one twice stores
-- it once. acl_version grows with every change, so each agent can check
-- with a one-row read whether its in-memory copy is current.
-- Keep in step with ../sqlite/00009_acls.sql.

-- +goose Up
CREATE TABLE acls (
    resource_type smallint NOT NULL,
    resource_name text     NOT NULL,
    pattern_type  smallint NOT NULL,
    principal     text     NOT NULL,
    host          text     NOT NULL,
    operation     smallint NOT NULL,
    permission    smallint NOT NULL,
    PRIMARY KEY (resource_type, resource_name, pattern_type, principal, host, operation, permission)
);

CREATE TABLE acl_version (
    id      integer NOT NULL PRIMARY KEY CHECK (id = 1),
    version bigint  NOT NULL
);
INSERT INTO acl_version (id, version) VALUES (1, 0);

-- +goose Down
DROP TABLE acl_version;
DROP TABLE acls;
