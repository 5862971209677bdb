//! Rollups: one row per user, usage period, provider and model, kept
//! exact in the same transaction as the events they sum. Every read of a
//! period's usage comes from here, never from the events.

use crate::domain::identity::UserId;
use chrono::{DateTime, Utc};
use sqlx::{AnyConnection, Row};

use super::events::PricedEvent;
use super::{StoreResult, from_ms, ms};
use crate::domain::limits::Usage;
use crate::domain::limits::{Counter, Counters, RollupSum};
use crate::domain::provider::Provider;

/// `CAST(SUM(calls) AS BIGINT) AS calls, ...`: every counter summed.
static SUMS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    Counter::ALL.map(|c| format!("CAST(SUM({0}) AS BIGINT) AS {0}", c.column())).join(", ")
});

fn rollup_from_row(r: &sqlx::any::AnyRow, with_model: bool) -> StoreResult<RollupSum> {
    Ok(RollupSum {
        billing_period: r.try_get("billing_period")?,
        provider: r.try_get("provider")?,
        model: if with_model { r.try_get("model")? } else { String::new() },
        counts: Counters::try_from_fn(|c| r.try_get(c.column()))?,
    })
}

/// Per provider (and per model when `by_model`) sums of one usage period.
pub async fn period_rollups(
    conn: &mut AnyConnection,
    user_id: &UserId,
    period_start: DateTime<Utc>,
    by_model: bool,
) -> StoreResult<Vec<RollupSum>> {
    let group = if by_model { "billing_period, provider, model" } else { "billing_period, provider" };
    let sums = &*SUMS;
    let rows = sqlx::query(&format!(
        "SELECT {group}, {sums} FROM usage_rollups WHERE user_id = $1 AND period_start = $2 GROUP BY {group} ORDER BY {group}"
    ))
    .bind(user_id)
    .bind(ms(period_start))
    .fetch_all(conn)
    .await?;
    rows.iter().map(|r| rollup_from_row(r, by_model)).collect()
}

/// Per period (by start) and provider sums for the periods starting in
/// `[from, to]`.
pub async fn rollups_by_period(
    conn: &mut AnyConnection,
    user_id: &UserId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> StoreResult<Vec<(DateTime<Utc>, RollupSum)>> {
    let sums = &*SUMS;
    let rows = sqlx::query(&format!(
        "SELECT period_start, billing_period, provider, {sums} FROM usage_rollups
         WHERE user_id = $1 AND period_start >= $2 AND period_start <= $3
         GROUP BY period_start, billing_period, provider ORDER BY period_start, provider"
    ))
    .bind(user_id)
    .bind(ms(from))
    .bind(ms(to))
    .fetch_all(conn)
    .await?;
    rows.iter().map(|r| Ok((from_ms(r.try_get("period_start")?), rollup_from_row(r, false)?))).collect()
}

/// The period's usage per provider.
pub async fn period_usage(
    conn: &mut AnyConnection,
    user_id: &UserId,
    period_start: DateTime<Utc>,
) -> StoreResult<Usage> {
    let mut u = Usage::default();
    for r in period_rollups(conn, user_id, period_start, false).await? {
        if let Ok(p) = Provider::parse(&r.provider) {
            u.add(&p, r.counts.usage());
        }
    }
    Ok(u)
}

/// The upsert of [`adjust_rollup`], written once from [`Counter::ALL`].
static ADJUST_ROLLUP: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let columns = Counter::ALL.map(Counter::column);
    let binds: Vec<String> = (6..6 + columns.len()).map(|i| format!("${i}")).collect();
    let added: Vec<String> = columns.iter().map(|c| format!("{c} = usage_rollups.{c} + excluded.{c}")).collect();
    format!(
        "INSERT INTO usage_rollups (user_id, period_start, billing_period, provider, model, {})
         VALUES ($1, $2, $3, $4, $5, {})
         ON CONFLICT (user_id, period_start, provider, model) DO UPDATE SET {}",
        columns.join(", "),
        binds.join(", "),
        added.join(", ")
    )
});

/// A change to one rollup row (each counter added, possibly negative).
pub type RollupDelta = Counters;

/// What one recorded event adds to its rollup row.
pub fn delta_of(p: &PricedEvent<'_>) -> RollupDelta {
    let e = p.event;
    Counters {
        calls: 1,
        errors: e.is_error() as i64,
        tokens_input: e.tokens_input as i64,
        tokens_output: e.tokens_output as i64,
        tokens_cached_input: e.tokens_cached_input as i64,
        cost: p.cost.total,
        unpriced_calls: p.unpriced as i64,
        response_ms_sum: e.response_time_ms.unwrap_or(0) as i64,
        response_ms_count: e.response_time_ms.is_some() as i64,
    }
}

/// Adds `d` to the rollup row of (user, period, provider, model), creating it.
pub async fn adjust_rollup(
    conn: &mut AnyConnection,
    user_id: &UserId,
    period: (DateTime<Utc>, &str),
    provider: &str,
    model: &str,
    d: &RollupDelta,
) -> StoreResult<()> {
    let mut q = sqlx::query(&ADJUST_ROLLUP).bind(user_id).bind(ms(period.0)).bind(period.1).bind(provider).bind(model);
    for c in Counter::ALL {
        q = q.bind(d.get(c));
    }
    q.execute(conn).await?;
    Ok(())
}
