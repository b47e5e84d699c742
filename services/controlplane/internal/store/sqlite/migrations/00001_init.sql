-- Initial schema of the control plane (SQLite).
--
-- Times are stored as microseconds since the Unix epoch (BIGINT, 0 = unset) so that
-- the SQL shared with the SQLite backend stays identical. Resource bodies are
-- protobuf binary next to the indexed columns.

-- +goose Up
CREATE TABLE organizations (
    key        TEXT PRIMARY KEY,
    id         TEXT NOT NULL UNIQUE,
    name       TEXT NOT NULL,
    revision   BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE projects (
    org         TEXT NOT NULL REFERENCES organizations (key) ON DELETE CASCADE,
    key         TEXT NOT NULL,
    id          TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    description TEXT NOT NULL,
    revision    BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (org, key)
);

CREATE TABLE environments (
    org              TEXT NOT NULL,
    project          TEXT NOT NULL,
    key              TEXT NOT NULL,
    id               TEXT NOT NULL UNIQUE,
    name             TEXT NOT NULL,
    settings         BLOB NOT NULL,
    manifest_version BIGINT NOT NULL DEFAULT 0,
    revision         BIGINT NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    PRIMARY KEY (org, project, key),
    FOREIGN KEY (org, project) REFERENCES projects (org, key) ON DELETE CASCADE
);

CREATE TABLE flags (
    org        TEXT NOT NULL,
    project    TEXT NOT NULL,
    key        TEXT NOT NULL,
    id         TEXT NOT NULL UNIQUE,
    body       BLOB NOT NULL,
    tags       TEXT NOT NULL,
    archived   INTEGER NOT NULL,
    revision   BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (org, project, key),
    FOREIGN KEY (org, project) REFERENCES projects (org, key) ON DELETE CASCADE
);

CREATE TABLE flag_configs (
    org            TEXT NOT NULL,
    project        TEXT NOT NULL,
    environment    TEXT NOT NULL,
    flag           TEXT NOT NULL,
    config         BLOB NOT NULL,
    revision       BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    last_evaluated BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (org, project, environment, flag),
    FOREIGN KEY (org, project, environment) REFERENCES environments (org, project, key) ON DELETE CASCADE,
    FOREIGN KEY (org, project, flag) REFERENCES flags (org, project, key) ON DELETE CASCADE
);
CREATE INDEX flag_configs_flag ON flag_configs (org, project, flag);

CREATE TABLE segments (
    org         TEXT NOT NULL,
    project     TEXT NOT NULL,
    environment TEXT NOT NULL,
    key         TEXT NOT NULL,
    id          TEXT NOT NULL UNIQUE,
    body        BLOB NOT NULL,
    revision    BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (org, project, environment, key),
    FOREIGN KEY (org, project, environment) REFERENCES environments (org, project, key) ON DELETE CASCADE
);

CREATE TABLE members (
    id           TEXT PRIMARY KEY,
    org          TEXT NOT NULL REFERENCES organizations (key) ON DELETE CASCADE,
    kind         INTEGER NOT NULL,
    email        TEXT NOT NULL,
    name         TEXT NOT NULL,
    oidc_subject TEXT NOT NULL,
    revision     BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    UNIQUE (org, email)
);
CREATE INDEX members_oidc ON members (org, oidc_subject);

CREATE TABLE role_bindings (
    org         TEXT NOT NULL,
    member_id   TEXT NOT NULL REFERENCES members (id) ON DELETE CASCADE,
    project     TEXT NOT NULL,
    environment TEXT NOT NULL,
    role        INTEGER NOT NULL,
    PRIMARY KEY (org, member_id, project, environment)
);

CREATE TABLE api_tokens (
    id             TEXT PRIMARY KEY,
    org            TEXT NOT NULL REFERENCES organizations (key) ON DELETE CASCADE,
    member_id      TEXT NOT NULL REFERENCES members (id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    hash           BLOB NOT NULL UNIQUE,
    expire_at      BIGINT NOT NULL,
    revoked_at     BIGINT NOT NULL,
    created_at     BIGINT NOT NULL,
    last_used_at   BIGINT NOT NULL
);
CREATE INDEX api_tokens_org ON api_tokens (org, id);

CREATE TABLE sdk_keys (
    id          TEXT PRIMARY KEY,
    org         TEXT NOT NULL,
    project     TEXT NOT NULL,
    environment TEXT NOT NULL,
    name        TEXT NOT NULL,
    kind        INTEGER NOT NULL,
    prefix      TEXT NOT NULL,
    hash        BLOB NOT NULL UNIQUE,
    expire_at   BIGINT NOT NULL,
    revoked_at  BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    FOREIGN KEY (org, project, environment) REFERENCES environments (org, project, key) ON DELETE CASCADE
);
CREATE INDEX sdk_keys_env ON sdk_keys (org, project, environment, id);

CREATE TABLE idempotency_keys (
    org          TEXT NOT NULL,
    operation    TEXT NOT NULL,
    key          TEXT NOT NULL,
    request_hash BLOB NOT NULL,
    result       BLOB NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (org, operation, key)
);

-- audit_entries is append-only; see the triggers, grants and policies below.
CREATE TABLE audit_entries (
    id            TEXT PRIMARY KEY,
    org           TEXT NOT NULL,
    seq           BIGINT NOT NULL,
    actor_id      TEXT NOT NULL,
    actor_name    TEXT NOT NULL,
    action        TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource      TEXT NOT NULL,
    before_json   TEXT NOT NULL,
    after_json    TEXT NOT NULL,
    request_id    TEXT NOT NULL,
    comment       TEXT NOT NULL,
    time          BIGINT NOT NULL,
    previous_hash TEXT NOT NULL,
    hash          TEXT NOT NULL,
    UNIQUE (org, seq)
);
CREATE INDEX audit_entries_resource ON audit_entries (org, resource);

CREATE TABLE outbox (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    org          TEXT NOT NULL,
    project      TEXT NOT NULL,
    environment  TEXT NOT NULL,
    kind         TEXT NOT NULL,
    resource     TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    published_at BIGINT
);
CREATE INDEX outbox_pending ON outbox (id) WHERE published_at IS NULL;

CREATE TABLE usage_batches (
    org         TEXT NOT NULL,
    project     TEXT NOT NULL,
    environment TEXT NOT NULL,
    batch_id    TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (org, project, environment, batch_id),
    FOREIGN KEY (org, project, environment) REFERENCES environments (org, project, key) ON DELETE CASCADE
);

CREATE TABLE usage_counts (
    org         TEXT NOT NULL,
    project     TEXT NOT NULL,
    environment TEXT NOT NULL,
    flag        TEXT NOT NULL,
    variant     TEXT NOT NULL,
    minute      BIGINT NOT NULL,
    count       BIGINT NOT NULL,
    PRIMARY KEY (org, project, environment, flag, minute, variant),
    FOREIGN KEY (org, project, environment) REFERENCES environments (org, project, key) ON DELETE CASCADE
);

-- Audit immutability: the same refusal as on PostgreSQL. The hash chain detects
-- edits made by someone who drops these triggers.
-- +goose StatementBegin
CREATE TRIGGER audit_entries_no_update BEFORE UPDATE ON audit_entries
BEGIN
    SELECT RAISE(ABORT, 'audit entries are append-only (UPDATE refused)');
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER audit_entries_no_delete BEFORE DELETE ON audit_entries
BEGIN
    SELECT RAISE(ABORT, 'audit entries are append-only (DELETE refused)');
END;
-- +goose StatementEnd

-- +goose Down
DROP TABLE usage_counts;
DROP TABLE usage_batches;
DROP TABLE outbox;
DROP TABLE audit_entries;
DROP TABLE idempotency_keys;
DROP TABLE sdk_keys;
DROP TABLE api_tokens;
DROP TABLE role_bindings;
DROP TABLE members;
DROP TABLE segments;
DROP TABLE flag_configs;
DROP TABLE flags;
DROP TABLE environments;
DROP TABLE projects;
DROP TABLE organizations;
