-- Kept identical in migrations/sqlite and migrations/postgres.
-- When an alert stopped applying (an unpriced model got its price).
ALTER TABLE alerts ADD COLUMN resolved_at BIGINT;
CREATE INDEX usage_events_unpriced ON usage_events (provider, unpriced, occurred_at);
