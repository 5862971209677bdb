-- Kept identical in meaning in migrations/sqlite and migrations/postgres.

-- Usage the recorder estimated rather than counted (issue 12): a proxied
-- stream the client cut before the provider's count arrived is billed for
-- the text it produced, at about four characters a token, and says so.
ALTER TABLE usage_events ADD COLUMN estimated BIGINT NOT NULL DEFAULT 0;

-- The most output one call of a model can produce (its provider's cap), or
-- NULL: the proxy holds it for a call whose request sets no maximum.
ALTER TABLE price_versions ADD COLUMN max_output_tokens BIGINT;

-- The gate reads a user's open holds on every reservation; consumed ones
-- (kept until the pruner deletes them) must not slow it down as they pile
-- up: index the open ones only.
DROP INDEX reservations_active;
CREATE INDEX reservations_open ON reservations (user_id, period_start, expires_at) WHERE consumed_at IS NULL;
