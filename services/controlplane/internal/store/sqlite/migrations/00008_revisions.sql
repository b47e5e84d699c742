-- Revisions: every state of a flag configuration (per environment) and of a
-- segment, written in the same transaction as the write that produced it, with
-- who/when/why. Instant rollback (HistoryService) reads them: list, diff, revert,
-- and the state of an environment at a time. A row lives as long as its
-- environment (and, for flag configurations, its flag): the history grows with
-- the writes, like the audit log.

-- +goose Up
CREATE TABLE revisions (
    org               TEXT NOT NULL,
    project           TEXT NOT NULL,
    environment       TEXT NOT NULL,
    -- 'flag_config' or 'segment'
    kind              TEXT NOT NULL,
    key               TEXT NOT NULL,
    revision          BIGINT NOT NULL,
    -- deterministic protobuf of the FlagConfig / Segment; empty when deleted
    body              BLOB NOT NULL,
    deleted           BOOLEAN NOT NULL DEFAULT FALSE,
    actor_id          TEXT NOT NULL DEFAULT '',
    actor_name        TEXT NOT NULL DEFAULT '',
    action            TEXT NOT NULL DEFAULT '',
    comment           TEXT NOT NULL DEFAULT '',
    change_request_id TEXT NOT NULL DEFAULT '',
    request_id        TEXT NOT NULL DEFAULT '',
    created_at        BIGINT NOT NULL,
    PRIMARY KEY (org, project, environment, kind, key, revision),
    FOREIGN KEY (org, project, environment) REFERENCES environments (org, project, key) ON DELETE CASCADE
);
CREATE INDEX revisions_time ON revisions (org, project, environment, kind, created_at);

-- What exists today is each resource's first kept revision.
INSERT INTO revisions (org, project, environment, kind, key, revision, body, action, comment, created_at)
SELECT org, project, environment, 'flag_config', flag, revision, config, 'flag_config.update', 'state when history began', updated_at
FROM flag_configs;
INSERT INTO revisions (org, project, environment, kind, key, revision, body, action, comment, created_at)
SELECT org, project, environment, 'segment', key, revision, body, 'segment.update', 'state when history began', updated_at
FROM segments;

-- +goose Down
DROP TABLE revisions;
