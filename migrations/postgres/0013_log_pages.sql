-- Kept identical in meaning in migrations/sqlite and migrations/postgres.

-- The usage log reads newest first by (occurred_at, id) and skips a deep
-- page's offset over the ids alone before it reads the page's rows. With
-- the id in the index, PostgreSQL answers both from the index (no sort of
-- the user's events, no heap visit per skipped event); SQLite's index
-- already carried the rowid, so there it changes little.
CREATE INDEX usage_events_user_time_id ON usage_events (user_id, occurred_at, id);
DROP INDEX usage_events_user_time;
