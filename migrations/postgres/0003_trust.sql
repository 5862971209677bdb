-- Kept identical in migrations/sqlite and migrations/postgres.

-- Sign-in throttling per (email, client address): counted atomically
-- before a password is checked, with back-off, so a burst cannot get more
-- guesses and a stranger cannot lock the owner out from elsewhere.
CREATE TABLE login_throttle (
    email           TEXT   NOT NULL,
    ip              TEXT   NOT NULL,
    failures        BIGINT NOT NULL,
    last_failure_at BIGINT NOT NULL,
    PRIMARY KEY (email, ip)
);
CREATE INDEX login_throttle_time ON login_throttle (last_failure_at);
CREATE INDEX login_attempts_time ON login_attempts (created_at);
CREATE INDEX sessions_expiry ON sessions (expires_at);

-- When the subscription began: usage before it belongs to no bill.
ALTER TABLE subscriptions ADD COLUMN started_at BIGINT NOT NULL DEFAULT 0;
UPDATE subscriptions SET started_at = (SELECT u.created_at FROM users u WHERE u.id = subscriptions.user_id);

-- A downgrade (or a move to a cheaper cycle) waits for the end of the
-- current cycle; until then the plan in force stays.
ALTER TABLE subscriptions ADD COLUMN pending_plan_id BIGINT REFERENCES plans (id);
ALTER TABLE subscriptions ADD COLUMN pending_cycle TEXT;

-- Usage that arrives after its period's bill was issued is billed in the
-- open period and marked late; a closed bill never changes.
ALTER TABLE usage_events ADD COLUMN late BIGINT NOT NULL DEFAULT 0;

CREATE INDEX audit_log_entity ON audit_log (entity_type, entity_id, created_at);

-- The plan fee accrued by the open usage period: set when the period opens
-- (the cycle price on a period that opens a cycle), plus prorated upgrade
-- fees. The period's bill charges exactly this. NULL on rows written
-- before this migration: the fee is then the plan's cycle price, as before.
ALTER TABLE subscriptions ADD COLUMN period_fee_nanos BIGINT;
