-- Kept identical in meaning in migrations/sqlite and migrations/postgres.

-- Subscription lifecycle: paused and cancelled subscriptions admit nothing
-- at the gate and pay no fee for cycles that start while they are; a
-- cancellation may wait for the end of the paid cycle.
ALTER TABLE subscriptions ADD COLUMN cancel_at BIGINT;

-- Disabled accounts cannot sign in; their sessions and keys stop working.
ALTER TABLE users ADD COLUMN disabled_at BIGINT;

-- The renewal history also records cancellations, pauses and resumptions
-- (family A's endpoint keeps to its four types). The table is rebuilt
-- because SQLite cannot alter a CHECK constraint.
ALTER TABLE subscription_renewals RENAME TO subscription_renewals_old;
DROP INDEX subscription_renewals_user;
CREATE TABLE subscription_renewals (
    id                    INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id               TEXT   NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    plan_id               BIGINT REFERENCES plans (id),
    plan_name             TEXT   NOT NULL,
    plan_tier             TEXT   NOT NULL,
    previous_plan_name    TEXT,
    previous_plan_tier    TEXT,
    previous_period_start BIGINT,
    previous_period_end   BIGINT,
    new_period_start      BIGINT NOT NULL,
    new_period_end        BIGINT NOT NULL,
    billing_cycle         TEXT   NOT NULL,
    renewal_type          TEXT   NOT NULL CHECK (renewal_type IN ('new', 'renewal', 'upgrade', 'downgrade', 'cancellation', 'pause', 'resume')),
    renewal_count         BIGINT NOT NULL,
    usage_before_json     TEXT,
    payment_amount_nanos  BIGINT NOT NULL,
    payment_status        TEXT   NOT NULL,
    payment_date          BIGINT,
    created_at            BIGINT NOT NULL
);
CREATE INDEX subscription_renewals_user ON subscription_renewals (user_id, created_at);
INSERT INTO subscription_renewals SELECT * FROM subscription_renewals_old;
DROP TABLE subscription_renewals_old;
