-- Kept identical in migrations/sqlite and migrations/postgres.
-- A reservation holds each of its operations separately (one row per
-- operation, with its model), so an event settles only its own hold.
CREATE TABLE reservations_by_op (
    id           TEXT   NOT NULL,
    op_index     BIGINT NOT NULL,
    user_id      TEXT   NOT NULL REFERENCES users (id),
    period_start BIGINT NOT NULL,
    provider     TEXT   NOT NULL,
    model        TEXT   NOT NULL,
    calls        BIGINT NOT NULL,
    tokens       BIGINT NOT NULL,
    cost_nanos   BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    consumed_at  BIGINT,
    PRIMARY KEY (id, op_index)
);
INSERT INTO reservations_by_op (id, op_index, user_id, period_start, provider, model, calls, tokens, cost_nanos,
                                created_at, expires_at, consumed_at)
SELECT id, ROW_NUMBER() OVER (PARTITION BY id ORDER BY provider) - 1, user_id, period_start, provider, '', calls,
       tokens, cost_nanos, created_at, expires_at, consumed_at
FROM reservations;
DROP TABLE reservations;
ALTER TABLE reservations_by_op RENAME TO reservations;
CREATE INDEX reservations_active ON reservations (user_id, period_start, expires_at);
