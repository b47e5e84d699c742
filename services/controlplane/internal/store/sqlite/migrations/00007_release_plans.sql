-- Release plans: progressive rollouts of one flag in one environment, advanced by
-- the scheduler of any replica. next_at is when the next step is due, check_at when
-- the guardrails are next evaluated (both Unix microseconds; meaningful while the
-- plan runs). A change request that approves a plan names it in plan_id.

-- +goose Up
CREATE TABLE release_plans (
    org         TEXT NOT NULL,
    project     TEXT NOT NULL,
    environment TEXT NOT NULL,
    id          TEXT NOT NULL,
    flag        TEXT NOT NULL,
    state       INTEGER NOT NULL,
    next_at     BIGINT NOT NULL,
    check_at    BIGINT NOT NULL,
    body        BLOB NOT NULL,
    revision    BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (org, project, environment, id),
    FOREIGN KEY (org, project, environment) REFERENCES environments (org, project, key) ON DELETE CASCADE
);
-- The runner's query: plans in state RUNNING (3) whose step or check is due.
CREATE INDEX release_plans_due ON release_plans (state, next_at);
CREATE INDEX release_plans_env ON release_plans (org, project, environment, flag, id);
ALTER TABLE change_requests ADD COLUMN plan_id TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE change_requests DROP COLUMN plan_id;
DROP TABLE release_plans;
