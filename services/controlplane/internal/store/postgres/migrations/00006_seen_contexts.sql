-- Seen contexts (docs/release-safety.md): the evaluation contexts evaluators and
-- SDKs sampled, newest kept per environment, and the project's private attributes
-- (removed before a context leaves the evaluating process).

-- +goose Up
CREATE TABLE seen_contexts (
    org         TEXT NOT NULL,
    project     TEXT NOT NULL,
    environment TEXT NOT NULL,
    digest      TEXT NOT NULL,
    attributes  TEXT NOT NULL,
    last_seen   BIGINT NOT NULL,
    PRIMARY KEY (org, project, environment, digest),
    FOREIGN KEY (org, project, environment) REFERENCES environments (org, project, key) ON DELETE CASCADE
);
CREATE INDEX seen_contexts_recent ON seen_contexts (org, project, environment, last_seen);
CREATE INDEX seen_contexts_age ON seen_contexts (last_seen);
ALTER TABLE projects ADD COLUMN private_attributes TEXT NOT NULL DEFAULT '';
GRANT SELECT, INSERT, UPDATE, DELETE ON seen_contexts TO flagforge_app;

-- +goose Down
ALTER TABLE projects DROP COLUMN private_attributes;
DROP TABLE seen_contexts;
