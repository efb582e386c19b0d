-- Each agent's advertised gRPC host:port (GRPC_ADVERTISED_ADDR), so that an
-- agent can forward a gRPC transaction call to the agent coordinating the
-- transactional ID. Agents registered before this migration have none
-- ('') until they register again at their next start.
-- Keep in step with ../sqlite/00008_agent_grpc_addr.sql.

-- +goose Up
ALTER TABLE agents ADD COLUMN grpc_addr text NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE agents DROP COLUMN grpc_addr;
