-- PostgreSQL only (SQLite reserves in the write group's memo).

-- A reservation in one round trip (issue 40). The gate decides in the
-- application on a copy of the user's state; this function, under the
-- user's row lock, confirms that the decision's premises still hold and
-- writes its holds, or writes nothing and says which premise failed (the
-- gate then decides again the long way, locking and reading). The row lock
-- is held only for the microseconds this function runs inside the server.
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
    c RECORD;
    current NUMERIC;
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
    FOR c IN SELECT * FROM json_to_recordset(p_ceilings::json) AS x(provider TEXT, measure TEXT, ceiling BIGINT) LOOP
        SELECT COALESCE(SUM(v), 0) INTO current FROM (
            SELECT CASE c.measure WHEN 'calls' THEN calls WHEN 'tokens' THEN tokens_input + tokens_output
                   ELSE cost_nanos END AS v
            FROM usage_rollups
            WHERE user_id = p_user AND period_start = p_period_start AND (c.provider IS NULL OR provider = c.provider)
            UNION ALL
            SELECT CASE c.measure WHEN 'calls' THEN calls WHEN 'tokens' THEN tokens ELSE cost_nanos END
            FROM reservations
            WHERE user_id = p_user AND period_start = p_period_start AND consumed_at IS NULL AND expires_at > p_now
              AND (c.provider IS NULL OR provider = c.provider)
        ) u;
        IF current > c.ceiling THEN
            RETURN 'full';
        END IF;
    END LOOP;
    INSERT INTO reservations (id, op_index, user_id, period_start, provider, model, calls, tokens, cost_nanos,
                              created_at, expires_at)
    SELECT h.id, h.op_index, p_user, p_period_start, h.provider, h.model, h.calls, h.tokens, h.cost_nanos,
           p_now, h.expires_at
    FROM json_to_recordset(p_holds::json) AS h(id TEXT, op_index BIGINT, provider TEXT, model TEXT, calls BIGINT,
                                               tokens BIGINT, cost_nanos BIGINT, expires_at BIGINT);
    RETURN 'ok';
END
$$;
