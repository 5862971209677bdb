-- Kept identical in meaning in migrations/sqlite and migrations/postgres.

-- The provider comparison's response times: per rollup row (user, usage
-- period, provider, model; model '' when none), the calls whose
-- `response_time_ms` fell in each bucket of `domain::response_times`
-- (exact below 64 ms, then 32 buckets per doubling, up to a day). Counts
-- add, so percentiles of any set of rollups never read the events.
CREATE TABLE response_time_buckets (
    user_id        TEXT   NOT NULL REFERENCES users (id),
    period_start   BIGINT NOT NULL,
    billing_period TEXT   NOT NULL,
    provider       TEXT   NOT NULL,
    model          TEXT   NOT NULL,
    bucket         BIGINT NOT NULL,
    calls          BIGINT NOT NULL,
    PRIMARY KEY (user_id, period_start, provider, model, bucket)
);
CREATE INDEX response_time_buckets_period ON response_time_buckets (billing_period);

-- The events recorded before this table: the same buckets, computed here
-- (bucket = ms below 64, else 64 + (e - 6) * 32 + ms / 2^(e - 5) - 32 with
-- e = floor(log2 ms)), as the recorder computes them from now on.
INSERT INTO response_time_buckets (user_id, period_start, billing_period, provider, model, bucket, calls)
SELECT user_id, period_start, billing_period, provider, model,
       CASE WHEN ms < 64 THEN ms ELSE 64 + (e - 6) * 32 + ms / (1 << (e - 5)) - 32 END AS bucket,
       COUNT(*)
FROM (
    SELECT user_id, period_start, billing_period, provider, model, ms,
        CASE
            WHEN ms < 128 THEN 6
            WHEN ms < 256 THEN 7
            WHEN ms < 512 THEN 8
            WHEN ms < 1024 THEN 9
            WHEN ms < 2048 THEN 10
            WHEN ms < 4096 THEN 11
            WHEN ms < 8192 THEN 12
            WHEN ms < 16384 THEN 13
            WHEN ms < 32768 THEN 14
            WHEN ms < 65536 THEN 15
            WHEN ms < 131072 THEN 16
            WHEN ms < 262144 THEN 17
            WHEN ms < 524288 THEN 18
            WHEN ms < 1048576 THEN 19
            WHEN ms < 2097152 THEN 20
            WHEN ms < 4194304 THEN 21
            WHEN ms < 8388608 THEN 22
            WHEN ms < 16777216 THEN 23
            WHEN ms < 33554432 THEN 24
            WHEN ms < 67108864 THEN 25
            WHEN ms < 134217728 THEN 26
        END AS e
    FROM (
        SELECT user_id, period_start, billing_period, provider, COALESCE(model, '') AS model,
               MIN(response_time_ms, 86400000) AS ms
        FROM usage_events
        WHERE response_time_ms IS NOT NULL
    ) timed
) bucketed
GROUP BY user_id, period_start, billing_period, provider, model,
         CASE WHEN ms < 64 THEN ms ELSE 64 + (e - 6) * 32 + ms / (1 << (e - 5)) - 32 END;
