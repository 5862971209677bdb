-- PostgreSQL only (SQLite reserves in the write group's memo).

-- A reservation in one round trip (issue 40). The gate decides in the
-- application on a copy of the user's state; this function, under the
-- user's row lock, confirms that the decision's premises still hold and
-- writes its holds, or writes nothing and says which premise failed (the
-- gate then decides again the long way, locking and reading). The row lock
-- is held only while this function runs inside the server.
--
-- Premises: the subscription is still active in the same open period on the
-- same plan, the catalog (which holds the plans' limits) is at the same
-- revision, and for each limit the reservation adds to (p_ceilings: a JSON
-- array of {"provider": text or null for every provider, "measure": "calls",
-- "tokens" or "cost", "ceiling": the most the limit allows before the
-- reservation's own demand}) the period's committed usage plus its live
-- holds is at most the ceiling. Each statement of a PL/pgSQL function takes
-- a fresh snapshot, so the sums include every write committed before the
-- lock was granted.
--
-- p_holds: a JSON array of the reservations rows to write. Holds need not
-- outlive a crash (they lapse by themselves), so the commit does not wait
-- for the WAL flush.
CREATE FUNCTION tally_reserve(
    p_user TEXT,
    p_period_start BIGINT,
    p_plan_id BIGINT,
    p_revision BIGINT,
    p_now BIGINT,
    p_ceilings TEXT,
    p_holds TEXT
) RETURNS TEXT LANGUAGE plpgsql AS $$
DECLARE
    s RECORD;
    over BOOLEAN;
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    UPDATE subscriptions SET lock_version = lock_version + 1 WHERE user_id = p_user
        RETURNING period_start, period_end, plan_id, status INTO s;
    IF NOT FOUND THEN
        RETURN 'changed';
    END IF;
    IF s.period_start <> p_period_start OR s.period_end <= p_now OR s.status <> 'active'
        OR s.plan_id IS DISTINCT FROM p_plan_id
        OR (SELECT revision FROM catalog_revision WHERE id = 1) <> p_revision THEN
        RETURN 'changed';
    END IF;
    -- One pass over the period's rollups and live holds, summed per
    -- provider, then each ceiling against its provider's sums (or all).
    WITH sums AS MATERIALIZED (
        SELECT provider, SUM(calls) AS calls, SUM(tokens) AS tokens, SUM(cost) AS cost FROM (
            SELECT provider, calls, tokens_input + tokens_output AS tokens, cost_nanos AS cost
            FROM usage_rollups WHERE user_id = p_user AND period_start = p_period_start
            UNION ALL
            SELECT provider, calls, tokens, cost_nanos
            FROM reservations
            WHERE user_id = p_user AND period_start = p_period_start AND consumed_at IS NULL AND expires_at > p_now
        ) u GROUP BY provider
    )
    SELECT COALESCE(bool_or(t.total > c.ceiling), false) INTO over
    FROM json_to_recordset(p_ceilings::json) AS c(provider TEXT, measure TEXT, ceiling BIGINT)
    CROSS JOIN LATERAL (
        SELECT COALESCE(SUM(CASE c.measure WHEN 'calls' THEN x.calls WHEN 'tokens' THEN x.tokens ELSE x.cost END), 0)
            AS total
        FROM sums x WHERE c.provider IS NULL OR x.provider = c.provider
    ) t;
    IF over THEN
        RETURN 'full';
    END IF;
    INSERT INTO reservations (id, op_index, user_id, period_start, provider, model, calls, tokens, cost_nanos,
                              created_at, expires_at)
    SELECT h.id, h.op_index, p_user, p_period_start, h.provider, h.model, h.calls, h.tokens, h.cost_nanos,
           p_now, h.expires_at
    FROM json_to_recordset(p_holds::json) AS h(id TEXT, op_index BIGINT, provider TEXT, model TEXT, calls BIGINT,
                                               tokens BIGINT, cost_nanos BIGINT, expires_at BIGINT);
    RETURN 'ok';
END
$$;

-- Settles the holds a batch of events names, in one round trip: for each
-- item of p_items (a JSON array of {"reservation_id", "provider", "model"},
-- in the batch's order), the first open hold of that reservation with the
-- item's provider and model, else with its provider and no model, exactly
-- as store::holds::consume_holds does one statement at a time on SQLite.
-- The caller holds the user's lock.
CREATE FUNCTION tally_consume_holds(p_user TEXT, p_now BIGINT, p_items TEXT) RETURNS VOID LANGUAGE plpgsql AS $$
DECLARE
    i RECORD;
BEGIN
    FOR i IN SELECT * FROM json_to_recordset(p_items::json) AS x(reservation_id TEXT, provider TEXT, model TEXT) LOOP
        UPDATE reservations SET consumed_at = p_now WHERE id = i.reservation_id AND user_id = p_user AND op_index = (
            SELECT op_index FROM reservations
            WHERE id = i.reservation_id AND user_id = p_user AND provider = i.provider AND consumed_at IS NULL
              AND (model = i.model OR model = '')
            ORDER BY CASE WHEN model = i.model THEN 0 ELSE 1 END, op_index LIMIT 1);
    END LOOP;
END
$$;
