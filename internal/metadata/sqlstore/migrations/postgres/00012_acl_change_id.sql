-- The ACL version's change ID (internal/acl): a random ID written with
-- every ACL version, so that a version number that comes back with other
-- ACLs (a metadata backup restored, then changed up to the number an
-- agent had loaded) is told apart from the one an agent loaded.
-- Keep in step with ../sqlite/00012_acl_change_id.sql.

-- +goose Up
ALTER TABLE acl_version ADD COLUMN change_id text NOT NULL DEFAULT '';
UPDATE acl_version SET change_id = md5(random()::text || clock_timestamp()::text); -- any PostgreSQL version

-- +goose Down
ALTER TABLE acl_version DROP COLUMN change_id;
