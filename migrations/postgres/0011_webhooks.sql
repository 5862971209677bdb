-- Kept identical in meaning in migrations/sqlite and migrations/postgres.

-- Webhooks (issue 13): endpoints an administrator registers, and a durable
-- outbox. An event is written in the same transaction as the change it
-- reports (an alert raised, a period closed...), with one delivery per
-- endpoint that subscribes to its type, so a change that commits is
-- delivered and a change that rolls back is not, whatever restarts.

CREATE TABLE webhook_endpoints (
    id          TEXT PRIMARY KEY,
    url         TEXT NOT NULL,
    -- Signs every delivery (HMAC-SHA256); shown once, when created.
    secret      TEXT NOT NULL,
    -- The event types it receives, as ",type,type," for matching.
    events      TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL,
    -- Deleted endpoints are kept (their deliveries stay listed) but
    -- receive nothing more.
    deleted_at  BIGINT
);

CREATE TABLE webhook_events (
    id         TEXT PRIMARY KEY,
    event_type TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    -- The exact body sent (and signed) on every attempt.
    body       TEXT NOT NULL
);

CREATE TABLE webhook_deliveries (
    id              BIGSERIAL PRIMARY KEY,
    endpoint_id     TEXT NOT NULL REFERENCES webhook_endpoints (id),
    event_id        TEXT NOT NULL REFERENCES webhook_events (id),
    -- pending | delivered | failed | cancelled
    status          TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    -- When a pending delivery is next tried.
    next_attempt_at BIGINT,
    -- A node is sending it until then (and only that node, by the token).
    lease_until     BIGINT,
    lease_token     TEXT,
    -- The last attempt: its HTTP status (none when no answer) and error.
    last_status     BIGINT,
    last_error      TEXT,
    last_attempt_at BIGINT,
    -- When retries began: they go on for at least a day from here.
    first_attempt_at BIGINT,
    created_at      BIGINT NOT NULL,
    delivered_at    BIGINT,
    UNIQUE (endpoint_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id);
