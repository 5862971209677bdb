-- Same meaning as migrations/sqlite/0007_lifecycle.sql.

-- Subscription lifecycle: paused and cancelled subscriptions admit nothing
-- at the gate and pay no fee for cycles that start while they are; a
-- cancellation may wait for the end of the paid cycle.
ALTER TABLE subscriptions ADD COLUMN cancel_at BIGINT;

-- Disabled accounts cannot sign in; their sessions and keys stop working.
ALTER TABLE users ADD COLUMN disabled_at BIGINT;

-- The renewal history also records cancellations, pauses and resumptions
-- (family A's endpoint keeps to its four types).
ALTER TABLE subscription_renewals DROP CONSTRAINT subscription_renewals_renewal_type_check;
ALTER TABLE subscription_renewals ADD CONSTRAINT subscription_renewals_renewal_type_check
    CHECK (renewal_type IN ('new', 'renewal', 'upgrade', 'downgrade', 'cancellation', 'pause', 'resume'));
