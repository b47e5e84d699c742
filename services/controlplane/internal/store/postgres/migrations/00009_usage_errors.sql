-- Errors per flag, variant and minute, next to the evaluation counts
-- (EvaluationCount.errors): evaluations that failed (the empty variant) and
-- errors applications reported against a variant. Release-plan guardrails of
-- kind sdk_errors read them (docs/release-safety.md). Existing rows had none.

-- +goose Up
ALTER TABLE usage_counts ADD COLUMN errors BIGINT NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE usage_counts DROP COLUMN errors;
