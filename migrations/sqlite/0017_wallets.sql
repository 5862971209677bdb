-- Kept identical in meaning in migrations/sqlite and migrations/postgres.

-- Prepaid credits (issue 42). A plan says whether its customers pay after
-- the period (postpaid, as before) or spend a wallet of credits that the
-- gate reserves against before each call (prepaid).
ALTER TABLE plans ADD COLUMN billing_mode TEXT NOT NULL DEFAULT 'postpaid'
    CHECK (billing_mode IN ('postpaid', 'prepaid'));
-- Granted at each period start; NULL: none.
ALTER TABLE plans ADD COLUMN included_credits_nanos BIGINT
    CHECK (included_credits_nanos IS NULL OR included_credits_nanos > 0);
-- What of them may roll over into the next period; NULL: they expire at
-- the period's end.
ALTER TABLE plans ADD COLUMN credits_rollover_cap_nanos BIGINT
    CHECK (credits_rollover_cap_nanos IS NULL OR credits_rollover_cap_nanos >= 0);

-- One row per customer with a wallet. Changed only under the customer's
-- subscription lock, like usage, so the gate's reservation against the
-- balance is exact across nodes.
CREATE TABLE wallets (
    user_id                     TEXT   PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    -- Spent beyond every grant; the next grant pays it first.
    debt_nanos                  BIGINT NOT NULL DEFAULT 0 CHECK (debt_nanos >= 0),
    low_balance_threshold_nanos BIGINT CHECK (low_balance_threshold_nanos IS NULL OR low_balance_threshold_nanos >= 0),
    -- Or the threshold as a percent of the last top-up (one of the two).
    low_balance_percent         BIGINT CHECK (low_balance_percent IS NULL OR low_balance_percent BETWEEN 1 AND 100),
    updated_at                  BIGINT NOT NULL
);

CREATE TABLE wallet_grants (
    id              TEXT   PRIMARY KEY,
    user_id         TEXT   NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind            TEXT   NOT NULL CHECK (kind IN ('paid', 'promotional')),
    source          TEXT   NOT NULL CHECK (source IN ('admin', 'top_up', 'plan', 'refund')),
    amount_nanos    BIGINT NOT NULL CHECK (amount_nanos > 0),
    remaining_nanos BIGINT NOT NULL CHECK (remaining_nanos >= 0 AND remaining_nanos <= amount_nanos),
    priority        BIGINT NOT NULL DEFAULT 0,
    effective_at    BIGINT NOT NULL,
    expires_at      BIGINT,
    status          TEXT   NOT NULL CHECK (status IN ('pending', 'active', 'expired', 'voided')),
    -- The caller's key: the same key again answers the same grant.
    idempotency_key TEXT,
    note            TEXT,
    created_at      BIGINT NOT NULL,
    -- When grant.expiring was sent for it (once).
    expiry_warned_at BIGINT,
    UNIQUE (user_id, idempotency_key)
);
CREATE INDEX wallet_grants_open ON wallet_grants (user_id) WHERE status IN ('pending', 'active');

-- Every change to a balance, never updated: the balance is their sum.
CREATE TABLE wallet_entries (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id             TEXT   NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    at                  BIGINT NOT NULL,
    kind                TEXT   NOT NULL CHECK (kind IN ('grant', 'debit', 'expiry', 'void', 'refund', 'adjustment')),
    amount_nanos        BIGINT NOT NULL,
    balance_after_nanos BIGINT NOT NULL,
    event_id            TEXT,
    grant_id            TEXT,
    note                TEXT,
    -- An adjustment's idempotency key, on its first entry.
    request_key         TEXT,
    written_at          BIGINT NOT NULL,
    UNIQUE (user_id, request_key)
);
CREATE INDEX wallet_entries_user ON wallet_entries (user_id, id);
