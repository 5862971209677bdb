-- Tally schema (SQLite). Kept column-for-column identical to
-- migrations/postgres/0001_init.sql so one query set serves both.
-- Conventions: instants are BIGINT unix milliseconds (UTC); money is BIGINT
-- nano-USD; prices are exact decimal TEXT; flags are BIGINT 0/1.

CREATE TABLE plans (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    name                TEXT    NOT NULL UNIQUE,
    tier                TEXT    NOT NULL CHECK (tier IN ('free', 'basic', 'pro', 'enterprise')),
    price_monthly_nanos BIGINT  NOT NULL CHECK (price_monthly_nanos >= 0),
    price_yearly_nanos  BIGINT  NOT NULL CHECK (price_yearly_nanos >= 0),
    description         TEXT    NOT NULL DEFAULT '',
    features_json       TEXT    NOT NULL DEFAULT '[]',
    archived            BIGINT  NOT NULL DEFAULT 0,
    created_at          BIGINT  NOT NULL,
    updated_at          BIGINT  NOT NULL
);

-- One row per limited quota; a missing key means unlimited.
CREATE TABLE plan_limits (
    plan_id   BIGINT NOT NULL REFERENCES plans (id) ON DELETE CASCADE,
    limit_key TEXT   NOT NULL,
    value     BIGINT NOT NULL CHECK (value > 0),
    PRIMARY KEY (plan_id, limit_key)
);

-- Every version of every price; a new version applies from effective_from.
CREATE TABLE price_versions (
    id                       INTEGER PRIMARY KEY AUTOINCREMENT,
    provider                 TEXT   NOT NULL,
    model                    TEXT   NOT NULL,
    effective_from           BIGINT NOT NULL,
    input_per_million        TEXT,
    output_per_million       TEXT,
    cached_input_per_million TEXT,
    per_request              TEXT,
    per_search               TEXT,
    per_image                TEXT,
    per_page                 TEXT,
    description              TEXT   NOT NULL DEFAULT '',
    created_at               BIGINT NOT NULL,
    created_by               TEXT,
    UNIQUE (provider, model, effective_from)
);

-- Bumped on every change to plans or prices; app instances compare it to
-- their cached copy, so a change on one instance is seen by all.
CREATE TABLE catalog_revision (
    id       BIGINT PRIMARY KEY CHECK (id = 1),
    revision BIGINT NOT NULL
);
INSERT INTO catalog_revision (id, revision) VALUES (1, 1);

CREATE TABLE users (
    id            TEXT   PRIMARY KEY,
    email         TEXT   NOT NULL UNIQUE,
    name          TEXT   NOT NULL DEFAULT '',
    role          TEXT   NOT NULL CHECK (role IN ('user', 'admin')),
    password_hash TEXT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);

-- Exactly one row per user. Writers lock it first (an UPDATE of lock_version)
-- so every change to a user's usage is serialised per user on Postgres and
-- store-wide on SQLite. period_* is the current monthly usage period,
-- cycle_* the current billing cycle (1 or 12 periods).
CREATE TABLE subscriptions (
    user_id       TEXT   PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    plan_id       BIGINT REFERENCES plans (id),
    billing_cycle TEXT   NOT NULL CHECK (billing_cycle IN ('monthly', 'yearly')),
    status        TEXT   NOT NULL DEFAULT 'active',
    anchor_at     BIGINT NOT NULL,
    period_start  BIGINT NOT NULL,
    period_end    BIGINT NOT NULL,
    cycle_start   BIGINT NOT NULL,
    cycle_end     BIGINT NOT NULL,
    renewal_count BIGINT NOT NULL DEFAULT 0,
    lock_version  BIGINT NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);

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
    renewal_type          TEXT   NOT NULL CHECK (renewal_type IN ('new', 'renewal', 'upgrade', 'downgrade')),
    renewal_count         BIGINT NOT NULL,
    usage_before_json     TEXT,
    payment_amount_nanos  BIGINT NOT NULL,
    payment_status        TEXT   NOT NULL,
    payment_date          BIGINT,
    created_at            BIGINT NOT NULL
);
CREATE INDEX subscription_renewals_user ON subscription_renewals (user_id, created_at);

-- Raw events, kept forever; (user_id, event_id) is the idempotency key.
CREATE TABLE usage_events (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id              TEXT   NOT NULL REFERENCES users (id),
    event_id             TEXT   NOT NULL,
    provider             TEXT   NOT NULL,
    model                TEXT,
    operation_type       TEXT,
    endpoint             TEXT,
    method               TEXT,
    actual_provider_name TEXT,
    tokens_input         BIGINT NOT NULL,
    tokens_output        BIGINT NOT NULL,
    tokens_cached_input  BIGINT NOT NULL,
    units                BIGINT NOT NULL,
    cost_input_nanos     BIGINT NOT NULL,
    cost_output_nanos    BIGINT NOT NULL,
    cost_total_nanos     BIGINT NOT NULL,
    price_version_id     BIGINT REFERENCES price_versions (id),
    unpriced             BIGINT NOT NULL DEFAULT 0,
    response_time_ms     BIGINT,
    status_code          BIGINT NOT NULL,
    error_message        TEXT,
    retry_count          BIGINT NOT NULL DEFAULT 0,
    occurred_at          BIGINT NOT NULL,
    recorded_at          BIGINT NOT NULL,
    period_start         BIGINT NOT NULL,
    billing_period       TEXT   NOT NULL,
    reservation_id       TEXT,
    UNIQUE (user_id, event_id)
);
CREATE INDEX usage_events_user_time ON usage_events (user_id, occurred_at);
CREATE INDEX usage_events_user_period ON usage_events (user_id, billing_period, provider);

-- Per user, usage period, provider and model: what every dashboard number
-- is read from (never a scan of usage_events). model '' when none.
CREATE TABLE usage_rollups (
    user_id             TEXT   NOT NULL REFERENCES users (id),
    period_start        BIGINT NOT NULL,
    billing_period      TEXT   NOT NULL,
    provider            TEXT   NOT NULL,
    model               TEXT   NOT NULL,
    calls               BIGINT NOT NULL,
    errors              BIGINT NOT NULL,
    tokens_input        BIGINT NOT NULL,
    tokens_output       BIGINT NOT NULL,
    tokens_cached_input BIGINT NOT NULL,
    cost_nanos          BIGINT NOT NULL,
    unpriced_calls      BIGINT NOT NULL,
    response_ms_sum     BIGINT NOT NULL,
    response_ms_count   BIGINT NOT NULL,
    PRIMARY KEY (user_id, period_start, provider, model)
);
CREATE INDEX usage_rollups_period ON usage_rollups (user_id, billing_period);

-- Holds taken by preflight checks with reserve=true: one row per provider
-- of the checked operations, all under the reservation's id.
CREATE TABLE reservations (
    id           TEXT   NOT NULL,
    user_id      TEXT   NOT NULL REFERENCES users (id),
    period_start BIGINT NOT NULL,
    provider     TEXT   NOT NULL,
    calls        BIGINT NOT NULL,
    tokens       BIGINT NOT NULL,
    cost_nanos   BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    consumed_at  BIGINT,
    PRIMARY KEY (id, provider)
);
CREATE INDEX reservations_active ON reservations (user_id, period_start, expires_at);

-- user_id NULL: an alert for admins (e.g. an unpriced model).
CREATE TABLE alerts (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id        TEXT REFERENCES users (id) ON DELETE CASCADE,
    period_start   BIGINT,
    billing_period TEXT,
    alert_type     TEXT   NOT NULL,
    limit_key      TEXT,
    threshold      BIGINT NOT NULL,
    provider       TEXT,
    title          TEXT   NOT NULL,
    message        TEXT   NOT NULL,
    severity       TEXT   NOT NULL CHECK (severity IN ('info', 'warning', 'error')),
    is_read        BIGINT NOT NULL DEFAULT 0,
    read_at        BIGINT,
    created_at     BIGINT NOT NULL,
    dedupe_key     TEXT   NOT NULL UNIQUE
);
CREATE INDEX alerts_user ON alerts (user_id, is_read, created_at);

-- One per closed usage period.
CREATE TABLE billing_records (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id          TEXT   NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    period_start     BIGINT NOT NULL,
    period_end       BIGINT NOT NULL,
    billing_period   TEXT   NOT NULL,
    plan_id          BIGINT REFERENCES plans (id),
    plan_name        TEXT   NOT NULL,
    plan_fee_nanos   BIGINT NOT NULL,
    usage_cost_nanos BIGINT NOT NULL,
    total_nanos      BIGINT NOT NULL,
    status           TEXT   NOT NULL,
    created_at       BIGINT NOT NULL,
    UNIQUE (user_id, period_start)
);

CREATE TABLE api_keys (
    id           TEXT   PRIMARY KEY,
    prefix       TEXT   NOT NULL,
    secret_hash  TEXT   NOT NULL UNIQUE,
    user_id      TEXT REFERENCES users (id) ON DELETE CASCADE,
    scopes       TEXT   NOT NULL,
    name         TEXT   NOT NULL DEFAULT '',
    created_by   TEXT,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at   BIGINT
);

-- Browser sessions, shared by every app instance; only the hash is stored.
CREATE TABLE sessions (
    id_hash      TEXT   PRIMARY KEY,
    user_id      TEXT   NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    actor       TEXT   NOT NULL,
    action      TEXT   NOT NULL,
    entity_type TEXT   NOT NULL,
    entity_id   TEXT   NOT NULL,
    before_json TEXT,
    after_json  TEXT,
    created_at  BIGINT NOT NULL
);
CREATE INDEX audit_log_time ON audit_log (created_at);
