//! Holds: usage a preflight reservation keeps back until its event arrives
//! or the hold lapses.

use crate::domain::identity::UserId;
use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::{AnyConnection, Row};

use super::{Placeholders, StoreError, StoreResult, from_ms, ms};
use crate::domain::limits::{Counters, ProviderUsage, Usage};
use crate::domain::money::Nanos;
use crate::domain::provider::{LimitKey, Provider};

/// What the gate weighs a new demand against, read in one statement: the
/// period's committed usage per provider (from the rollups) plus its live
/// holds (not consumed, not expired at `now`), and when the first of those
/// holds lapses.
pub struct Seen {
    /// Committed usage.
    pub used: Usage,
    /// Live holds.
    pub held: Usage,
    pub first_expiry: Option<DateTime<Utc>>,
}

impl Seen {
    /// What a new demand is weighed against: usage plus holds.
    pub fn total(&self) -> Usage {
        self.used.plus(&self.held)
    }
}

pub async fn usage_and_holds(
    conn: &mut AnyConnection,
    user_id: &UserId,
    period_start: DateTime<Utc>,
    now: DateTime<Utc>,
) -> StoreResult<Seen> {
    // Both halves in one column layout: a hold's tokens go in
    // `tokens_input`; `held` tells the halves apart.
    let rows = sqlx::query(
        "SELECT CAST(0 AS BIGINT) AS held, provider, CAST(SUM(calls) AS BIGINT) AS calls,
           CAST(SUM(tokens_input) AS BIGINT) AS tokens_input, CAST(SUM(tokens_output) AS BIGINT) AS tokens_output,
           CAST(SUM(cost_nanos) AS BIGINT) AS cost_nanos, CAST(0 AS BIGINT) AS first_expiry
         FROM usage_rollups WHERE user_id = $1 AND period_start = $2 GROUP BY provider
         UNION ALL
         SELECT CAST(1 AS BIGINT), provider, CAST(SUM(calls) AS BIGINT), CAST(SUM(tokens) AS BIGINT), CAST(0 AS BIGINT),
           CAST(SUM(cost_nanos) AS BIGINT), CAST(MIN(expires_at) AS BIGINT)
         FROM reservations WHERE user_id = $1 AND period_start = $2 AND consumed_at IS NULL AND expires_at > $3
         GROUP BY provider",
    )
    .bind(user_id)
    .bind(ms(period_start))
    .bind(ms(now))
    .fetch_all(conn)
    .await?;
    let mut seen = Seen { used: Usage::default(), held: Usage::default(), first_expiry: None };
    for r in &rows {
        let provider: String = r.try_get("provider")?;
        // A provider this build cannot name counts toward no limit.
        let Ok(provider) = Provider::parse(&provider) else { continue };
        let sum = Counters {
            calls: r.try_get("calls")?,
            tokens_input: r.try_get("tokens_input")?,
            tokens_output: r.try_get("tokens_output")?,
            cost: Nanos(r.try_get("cost_nanos")?),
            ..Counters::default()
        };
        if r.try_get::<i64, _>("held")? == 0 {
            seen.used.add(&provider, sum.usage());
        } else {
            seen.held.add(&provider, sum.usage());
            let expiry = from_ms(r.try_get("first_expiry")?);
            seen.first_expiry = Some(seen.first_expiry.map_or(expiry, |t| t.min(expiry)));
        }
    }
    Ok(seen)
}

/// A hold to write.
#[derive(Clone, Debug)]
pub struct NewHold {
    pub id: String,
    /// The operation's place in its reservation.
    pub op_index: i64,
    pub user_id: UserId,
    pub period_start: DateTime<Utc>,
    pub provider: String,
    /// The operation's model; empty when it named none.
    pub model: String,
    pub usage: ProviderUsage,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// Writes `holds` in as few statements as the bind limit allows.
pub async fn insert_holds(conn: &mut AnyConnection, holds: &[NewHold]) -> StoreResult<()> {
    const COLS: usize = 11;
    for chunk in holds.chunks(900 / COLS) {
        let mut binds = Placeholders::for_conn(conn);
        let mut sql = String::from(
            "INSERT INTO reservations (id, op_index, user_id, period_start, provider, model, calls, tokens, cost_nanos,
             created_at, expires_at) VALUES ",
        );
        for i in 0..chunk.len() {
            if i > 0 {
                sql.push_str(", ");
            }
            binds.push_row(&mut sql, COLS);
        }
        let mut q = sqlx::query(&sql);
        for h in chunk {
            q = q
                .bind(&h.id)
                .bind(h.op_index)
                .bind(&h.user_id)
                .bind(ms(h.period_start))
                .bind(&h.provider)
                .bind(&h.model)
                .bind(h.usage.calls)
                .bind(h.usage.tokens)
                .bind(h.usage.cost.0)
                .bind(ms(h.created_at))
                .bind(ms(h.expires_at));
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Deletes holds that no longer count: consumed, or expired before `now`.
pub async fn prune_holds(conn: &mut AnyConnection, now: DateTime<Utc>) -> StoreResult<u64> {
    let done = sqlx::query("DELETE FROM reservations WHERE consumed_at IS NOT NULL OR expires_at <= $1")
        .bind(ms(now))
        .execute(conn)
        .await?;
    Ok(done.rows_affected())
}

/// Settles the holds a batch of `user_id`'s events names (the events now
/// count instead), one per item `(reservation id, provider, model)` in the
/// batch's order: the first open hold of that reservation with the item's
/// provider and model, else with its provider and no model named. The
/// reservation's other holds keep counting. Call it under the user's lock.
/// On PostgreSQL the whole batch is one round trip (the function
/// `tally_consume_holds`, migration 0016, runs the same statement per
/// item); SQLite runs it per item in-process.
pub async fn consume_holds(
    conn: &mut AnyConnection,
    user_id: &UserId,
    items: &[(&str, &str, &str)],
    now: DateTime<Utc>,
) -> StoreResult<()> {
    if items.is_empty() {
        return Ok(());
    }
    if conn.backend_name() != "SQLite" {
        let items: Vec<_> = items
            .iter()
            .map(|(rid, provider, model)| json!({ "reservation_id": rid, "provider": provider, "model": model }))
            .collect();
        sqlx::query("SELECT tally_consume_holds($1, $2, $3)")
            .bind(user_id)
            .bind(ms(now))
            .bind(serde_json::Value::Array(items).to_string())
            .execute(conn)
            .await?;
        return Ok(());
    }
    for (reservation_id, provider, model) in items {
        sqlx::query(
            "UPDATE reservations SET consumed_at = $4 WHERE id = $1 AND user_id = $2 AND op_index = (
               SELECT op_index FROM reservations WHERE id = $1 AND user_id = $2 AND provider = $3 AND consumed_at IS NULL
                 AND (model = $5 OR model = '')
               ORDER BY CASE WHEN model = $5 THEN 0 ELSE 1 END, op_index LIMIT 1)",
        )
        .bind(reservation_id)
        .bind(user_id)
        .bind(provider)
        .bind(ms(now))
        .bind(model)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// What [`reserve_in_one_trip`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OneTrip {
    /// The premises held; the holds are written.
    Held,
    /// The subscription (period, plan, status, or the user itself) or the
    /// catalog revision is not what the decision assumed; nothing written.
    Changed,
    /// Usage and holds have grown past a ceiling since the decision's copy
    /// was read; nothing written.
    Full,
}

impl OneTrip {
    pub fn as_str(self) -> &'static str {
        match self {
            OneTrip::Held => "held",
            OneTrip::Changed => "changed",
            OneTrip::Full => "full",
        }
    }
}

/// What a decision made on a copy of the user's state assumed.
#[derive(Clone, Copy, Debug)]
pub struct Premises {
    pub period_start: DateTime<Utc>,
    pub plan_id: Option<i64>,
    pub catalog_revision: i64,
}

/// PostgreSQL: writes `holds` (all of `user_id`, in the period of
/// `premises`) in one round trip, if under the user's row lock the
/// premises still hold and the period's usage plus live holds is within
/// each of `ceilings` (see [`crate::domain::limits::ceilings`]). The
/// function `tally_reserve` (migration 0016) does the work inside the
/// server; its commit does not wait for the WAL flush.
pub async fn reserve_in_one_trip(
    conn: &mut AnyConnection,
    user_id: &UserId,
    premises: Premises,
    ceilings: &[(LimitKey, i64)],
    holds: &[NewHold],
    now: DateTime<Utc>,
) -> StoreResult<OneTrip> {
    let ceilings: Vec<_> = ceilings
        .iter()
        .map(|(key, ceiling)| {
            let (provider, measure) = match key {
                LimitKey::Calls(p) => (Some(p.as_str()), "calls"),
                LimitKey::Tokens(p) => (Some(p.as_str()), "tokens"),
                LimitKey::MonthlyCost => (None, "cost"),
            };
            json!({ "provider": provider, "measure": measure, "ceiling": ceiling })
        })
        .collect();
    let holds: Vec<_> = holds
        .iter()
        .map(|h| {
            debug_assert!(&h.user_id == user_id && h.period_start == premises.period_start && h.created_at == now);
            json!({
                "id": h.id, "op_index": h.op_index, "provider": h.provider, "model": h.model,
                "calls": h.usage.calls, "tokens": h.usage.tokens, "cost_nanos": h.usage.cost.0,
                "expires_at": ms(h.expires_at),
            })
        })
        .collect();
    let outcome: String = sqlx::query_scalar("SELECT tally_reserve($1, $2, $3, $4, $5, $6, $7)")
        .bind(user_id)
        .bind(ms(premises.period_start))
        .bind(premises.plan_id)
        .bind(premises.catalog_revision)
        .bind(ms(now))
        .bind(serde_json::Value::Array(ceilings).to_string())
        .bind(serde_json::Value::Array(holds).to_string())
        .fetch_one(conn)
        .await?;
    match outcome.as_str() {
        "ok" => Ok(OneTrip::Held),
        "changed" => Ok(OneTrip::Changed),
        "full" => Ok(OneTrip::Full),
        other => Err(StoreError::Corrupt(format!("tally_reserve answered `{other}`"))),
    }
}
