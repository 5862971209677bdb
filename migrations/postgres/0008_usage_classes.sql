-- Kept identical in meaning in migrations/sqlite and migrations/postgres.

-- Every way the providers bill (issue 11): new rates per million tokens
-- or per web-search query (USD decimal text, NULL = unset: the class falls
-- back to the input or output rate), and the long-context and service tiers
-- as JSON in the admin API's own shape.
ALTER TABLE price_versions ADD COLUMN cache_write_per_million TEXT;
ALTER TABLE price_versions ADD COLUMN cache_write_1h_per_million TEXT;
ALTER TABLE price_versions ADD COLUMN reasoning_per_million TEXT;
ALTER TABLE price_versions ADD COLUMN audio_input_per_million TEXT;
ALTER TABLE price_versions ADD COLUMN audio_output_per_million TEXT;
ALTER TABLE price_versions ADD COLUMN per_search_query TEXT;
ALTER TABLE price_versions ADD COLUMN tiers_json TEXT;
ALTER TABLE price_versions ADD COLUMN service_tiers_json TEXT;

-- The parts of an event's totals (each part of tokens_input or
-- tokens_output), its web-search queries and service tier (NULL =
-- standard), and what each class cost: `class=nanos;...`, NULL when the
-- cost is only input and output (cost_input_nanos, cost_output_nanos).
ALTER TABLE usage_events ADD COLUMN tokens_cache_write BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage_events ADD COLUMN tokens_cache_write_1h BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage_events ADD COLUMN tokens_audio_input BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage_events ADD COLUMN tokens_reasoning BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage_events ADD COLUMN tokens_audio_output BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage_events ADD COLUMN search_queries BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage_events ADD COLUMN service_tier TEXT;
ALTER TABLE usage_events ADD COLUMN cost_breakdown TEXT;

-- Events recorded before this migration priced per unit with no output
-- tokens: their output part was the units'.
UPDATE usage_events SET cost_breakdown = 'input=' || CAST(cost_input_nanos AS TEXT) || ';units=' || CAST(cost_output_nanos AS TEXT)
WHERE tokens_output = 0 AND units > 0 AND cost_output_nanos > 0;
