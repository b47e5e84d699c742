-- Published manifests (the publisher's output) and its fencing epoch; see the
-- PostgreSQL migration of the same number. SQLite runs one in-process publisher,
-- woken by the store's commit hook, so there are no notification triggers.

-- +goose Up
CREATE TABLE publisher_epoch (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    epoch BIGINT NOT NULL
);
INSERT INTO publisher_epoch (id, epoch) VALUES (1, 0);

CREATE TABLE manifests (
    org             TEXT NOT NULL,
    project         TEXT NOT NULL,
    environment     TEXT NOT NULL,
    version         BIGINT NOT NULL,
    payload         BLOB NOT NULL,
    key_id          TEXT NOT NULL,
    signature       BLOB NOT NULL,
    digest          BLOB NOT NULL,
    publisher_epoch BIGINT NOT NULL,
    issued_at       BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (org, project, environment, version)
);

CREATE TABLE manifest_heads (
    org         TEXT NOT NULL,
    project     TEXT NOT NULL,
    environment TEXT NOT NULL,
    version     BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    PRIMARY KEY (org, project, environment)
);

-- +goose Down
DROP TABLE manifest_heads;
DROP TABLE manifests;
DROP TABLE publisher_epoch;
