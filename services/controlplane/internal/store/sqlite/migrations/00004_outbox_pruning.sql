-- Outbox pruning; see the PostgreSQL migration of the same number.

-- +goose Up
CREATE INDEX outbox_published ON outbox (published_at) WHERE published_at IS NOT NULL;

-- +goose Down
DROP INDEX outbox_published;
