-- Approvals by person, not by token: a token records who minted it, a role binding
-- when it was granted (a member cannot approve a change request opened before the
-- rights it approves with). 0 / '' for rows older than this migration.

-- +goose Up
ALTER TABLE role_bindings ADD COLUMN granted_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE api_tokens ADD COLUMN issuer_id TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE api_tokens DROP COLUMN issuer_id;
ALTER TABLE role_bindings DROP COLUMN granted_at;
