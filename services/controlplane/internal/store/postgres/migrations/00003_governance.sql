-- Governance (PostgreSQL): change requests (four-eyes approvals), scheduled
-- changes, webhooks with their durable delivery queue. Bodies are protobuf binary
-- next to the indexed columns, times Unix microseconds, as in 00001.

-- +goose Up
CREATE TABLE change_requests (
    org         TEXT NOT NULL,
    project     TEXT NOT NULL,
    environment TEXT NOT NULL,
    id          TEXT NOT NULL,
    state       INTEGER NOT NULL,
    author_id   TEXT NOT NULL,
    schedule_id TEXT NOT NULL,
    body        BYTEA NOT NULL,
    revision    BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (org, project, environment, id),
    FOREIGN KEY (org, project, environment) REFERENCES environments (org, project, key) ON DELETE CASCADE
);
CREATE INDEX change_requests_state ON change_requests (org, project, environment, state, id);

CREATE TABLE scheduled_changes (
    org         TEXT NOT NULL,
    project     TEXT NOT NULL,
    environment TEXT NOT NULL,
    id          TEXT NOT NULL,
    flag        TEXT NOT NULL,
    state       INTEGER NOT NULL,
    run_at      BIGINT NOT NULL,
    body        BYTEA NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (org, project, environment, id),
    FOREIGN KEY (org, project, environment) REFERENCES environments (org, project, key) ON DELETE CASCADE
);
-- The runner's claim query: due rows in state PENDING (2).
CREATE INDEX scheduled_changes_due ON scheduled_changes (state, run_at);
CREATE INDEX scheduled_changes_env ON scheduled_changes (org, project, environment, state, id);

CREATE TABLE webhooks (
    org             TEXT NOT NULL,
    project         TEXT NOT NULL,
    id              TEXT NOT NULL,
    url             TEXT NOT NULL,
    secret          TEXT NOT NULL,
    event_types     TEXT NOT NULL,
    enabled         BOOLEAN NOT NULL,
    failure_count   INTEGER NOT NULL,
    max_failures    INTEGER NOT NULL,
    disabled_reason TEXT NOT NULL,
    start_seq       BIGINT NOT NULL,
    revision        BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (id),
    FOREIGN KEY (org, project) REFERENCES projects (org, key) ON DELETE CASCADE
);
CREATE INDEX webhooks_project ON webhooks (org, project, id);

-- The dispatcher's position in each organization's audit chain: every entry with
-- seq <= webhook_cursors.seq has been turned into deliveries.
CREATE TABLE webhook_cursors (
    org TEXT PRIMARY KEY,
    seq BIGINT NOT NULL
);

CREATE TABLE webhook_deliveries (
    id                TEXT PRIMARY KEY,
    webhook_id        TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    org               TEXT NOT NULL,
    seq               BIGINT NOT NULL,
    order_key         TEXT NOT NULL,
    event_type        TEXT NOT NULL,
    event_id          TEXT NOT NULL,
    payload           TEXT NOT NULL,
    state             INTEGER NOT NULL,
    attempts          INTEGER NOT NULL,
    last_status_code  INTEGER NOT NULL,
    last_error        TEXT NOT NULL,
    next_attempt_at   BIGINT NOT NULL,
    lease_until       BIGINT NOT NULL,
    delivered_at      BIGINT NOT NULL,
    created_at        BIGINT NOT NULL,
    UNIQUE (webhook_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_attempt_at);
CREATE INDEX webhook_deliveries_order ON webhook_deliveries (webhook_id, order_key, seq);

GRANT SELECT, INSERT, UPDATE, DELETE ON
    change_requests, scheduled_changes, webhooks, webhook_cursors, webhook_deliveries
    TO flagforge_app;

-- +goose Down
DROP TABLE webhook_deliveries, webhook_cursors, webhooks, scheduled_changes, change_requests;
