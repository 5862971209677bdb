-- Kept identical in migrations/sqlite and migrations/postgres.

-- Only unpriced events are looked up by their price state (the admin's
-- unpriced models, repricing them, resolving their alerts), and they are
-- few; an index over every event made each insert pay for one more B-tree
-- entry. The partial index holds the unpriced events alone; each of those
-- queries says `unpriced = 1`, so both stores can use it.
CREATE INDEX usage_events_unpriced_only ON usage_events (provider, model, occurred_at) WHERE unpriced = 1;
DROP INDEX usage_events_unpriced;
