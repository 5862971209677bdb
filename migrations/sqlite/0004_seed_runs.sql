-- Kept identical in migrations/sqlite and migrations/postgres.
-- One row per seed that was started: the first instance to insert it seeds,
-- the others wait for `done`, so instances started together seed once.
CREATE TABLE seed_runs (
    name        TEXT   PRIMARY KEY,
    state       TEXT   NOT NULL CHECK (state IN ('running', 'done')),
    started_at  BIGINT NOT NULL,
    finished_at BIGINT
);
