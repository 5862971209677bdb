-- Kept identical in meaning in migrations/sqlite and migrations/postgres.

-- The tracking proxy claims a caller's `x-tally-event-id` before it calls
-- the provider (issue 39), so one id can never buy two provider calls for
-- the price of one. A row per (user, call id): the attempt in force (its
-- event is recorded as `prx:<attempt>:<call id>`) and when it was claimed
-- or last renewed. Whether the attempt is done, failed or in flight is
-- read from its event, which the recorder writes durably on its own.
CREATE TABLE proxy_calls (
    user_id TEXT NOT NULL,
    call_id TEXT NOT NULL,
    attempt BIGINT NOT NULL,
    claimed_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, call_id)
);
