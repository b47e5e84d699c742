-- Outbox pruning: the active publisher deletes published rows older than its
-- retention (publisher.Config.OutboxRetention) in small batches, oldest first.
-- This partial index finds them without scanning the pending rows.

-- +goose Up
CREATE INDEX outbox_published ON outbox (published_at) WHERE published_at IS NOT NULL;

-- +goose Down
DROP INDEX outbox_published;
