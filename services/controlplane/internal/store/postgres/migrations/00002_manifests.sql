-- Published manifests (the publisher's output) and its fencing epoch.
--
-- manifests keeps a bounded history of signed versions per environment (the
-- publisher prunes it); manifest_heads holds the latest version of each
-- environment, the row the publisher locks to keep versions gapless. Neither
-- references environments: when an environment is deleted and created again its
-- versions go on from where they were, so evaluators never see a version go back.

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
    payload         BYTEA NOT NULL,
    key_id          TEXT NOT NULL,
    signature       BYTEA NOT NULL,
    digest          BYTEA NOT NULL,
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

-- Wake-ups: every transaction that appends to the outbox notifies the publisher at
-- commit (one notification per transaction; PostgreSQL folds duplicates).
-- +goose StatementBegin
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('flagforge_outbox', '');
    RETURN NULL;
END;
$$;
-- +goose StatementEnd
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();

-- Every stored version is announced to all replicas ("org/project/env version"), so
-- sync streams served by a standby replica follow the leader's publications.
-- +goose StatementBegin
CREATE FUNCTION manifests_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('flagforge_manifests',
        NEW.org || '/' || NEW.project || '/' || NEW.environment || ' ' || NEW.version);
    RETURN NULL;
END;
$$;
-- +goose StatementEnd
CREATE TRIGGER manifests_notify AFTER INSERT ON manifests
    FOR EACH ROW EXECUTE FUNCTION manifests_notify();

GRANT SELECT, INSERT, UPDATE, DELETE ON manifests, manifest_heads TO flagforge_app;
GRANT SELECT, UPDATE ON publisher_epoch TO flagforge_app;

-- +goose Down
DROP TRIGGER manifests_notify ON manifests;
DROP FUNCTION manifests_notify();
DROP TRIGGER outbox_notify ON outbox;
DROP FUNCTION outbox_notify();
DROP TABLE manifest_heads, manifests, publisher_epoch;
