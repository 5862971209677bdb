-- Kept identical in meaning in migrations/sqlite and migrations/postgres.

-- Request statistics of the whole deployment (issue 13): every node adds
-- its requests per minute, route, method and status class here every few
-- seconds, so health and monitoring describe all nodes, not the one that
-- answers. Latencies are kept as a histogram (b0..b11 count requests up to
-- each bound of the metrics layer's BUCKETS; above the last bound, the
-- rest), so percentiles can be merged across nodes.
CREATE TABLE node_request_minutes (
    node_id    TEXT NOT NULL,
    minute     BIGINT NOT NULL,
    method     TEXT NOT NULL,
    route      TEXT NOT NULL,
    requests   BIGINT NOT NULL,
    errors     BIGINT NOT NULL,
    sum_micros BIGINT NOT NULL,
    b0 BIGINT NOT NULL, b1 BIGINT NOT NULL, b2 BIGINT NOT NULL, b3 BIGINT NOT NULL,
    b4 BIGINT NOT NULL, b5 BIGINT NOT NULL, b6 BIGINT NOT NULL, b7 BIGINT NOT NULL,
    b8 BIGINT NOT NULL, b9 BIGINT NOT NULL, b10 BIGINT NOT NULL, b11 BIGINT NOT NULL,
    PRIMARY KEY (node_id, minute, method, route)
);
CREATE INDEX node_request_minutes_minute ON node_request_minutes (minute);

-- The nodes serving: when each started and last reported, for the
-- deployment's uptime and node count.
CREATE TABLE nodes (
    node_id    TEXT PRIMARY KEY,
    started_at BIGINT NOT NULL,
    seen_at    BIGINT NOT NULL,
    version    TEXT NOT NULL
);
