//! Rollups: one row per user, usage period, provider and model, kept
//! exact in the same transaction as the events they sum. Every read of a
//! period's usage comes from here, never from the events.

use chrono::{DateTime, Utc};
use sqlx::{AnyConnection, Row};

use super::events::PricedEvent;
use super::{StoreResult, from_ms, ms};
use crate::domain::limits::RollupSum;
use crate::domain::limits::Usage;
use crate::domain::money::Nanos;
use crate::domain::provider::Provider;

const SUMS: &str = "CAST(SUM(calls) AS BIGINT) AS calls, CAST(SUM(errors) AS BIGINT) AS errors,
    CAST(SUM(tokens_input) AS BIGINT) AS tokens_input, CAST(SUM(tokens_output) AS BIGINT) AS tokens_output,
    CAST(SUM(tokens_cached_input) AS BIGINT) AS tokens_cached_input, CAST(SUM(cost_nanos) AS BIGINT) AS cost_nanos,
    CAST(SUM(unpriced_calls) AS BIGINT) AS unpriced_calls, CAST(SUM(response_ms_sum) AS BIGINT) AS response_ms_sum,
    CAST(SUM(response_ms_count) AS BIGINT) AS response_ms_count";

fn rollup_from_row(r: &sqlx::any::AnyRow, with_model: bool) -> StoreResult<RollupSum> {
    Ok(RollupSum {
        billing_period: r.try_get("billing_period")?,
        provider: r.try_get("provider")?,
        model: if with_model { r.try_get("model")? } else { String::new() },
        calls: r.try_get("calls")?,
        errors: r.try_get("errors")?,
        tokens_input: r.try_get("tokens_input")?,
        tokens_output: r.try_get("tokens_output")?,
        tokens_cached_input: r.try_get("tokens_cached_input")?,
        cost: Nanos(r.try_get("cost_nanos")?),
        unpriced_calls: r.try_get("unpriced_calls")?,
        response_ms_sum: r.try_get("response_ms_sum")?,
        response_ms_count: r.try_get("response_ms_count")?,
    })
}

/// Per provider (and per model when `by_model`) sums of one usage period.
pub async fn period_rollups(
    conn: &mut AnyConnection,
    user_id: &str,
    period_start: DateTime<Utc>,
    by_model: bool,
) -> StoreResult<Vec<RollupSum>> {
    let group = if by_model { "billing_period, provider, model" } else { "billing_period, provider" };
    let rows = sqlx::query(&format!(
        "SELECT {group}, {SUMS} FROM usage_rollups WHERE user_id = $1 AND period_start = $2 GROUP BY {group} ORDER BY {group}"
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
    user_id: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> StoreResult<Vec<(DateTime<Utc>, RollupSum)>> {
    let rows = sqlx::query(&format!(
        "SELECT period_start, billing_period, provider, {SUMS} FROM usage_rollups
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
pub async fn period_usage(conn: &mut AnyConnection, user_id: &str, period_start: DateTime<Utc>) -> StoreResult<Usage> {
    let mut u = Usage::default();
    for r in period_rollups(conn, user_id, period_start, false).await? {
        if let Ok(p) = Provider::parse(&r.provider) {
            u.add(&p, r.usage());
        }
    }
    Ok(u)
}

/// A change to one rollup row (each field added, possibly negative).
#[derive(Clone, Copy, Debug, Default)]
pub struct RollupDelta {
    pub calls: i64,
    pub errors: i64,
    pub tokens_input: i64,
    pub tokens_output: i64,
    pub tokens_cached_input: i64,
    pub cost: Nanos,
    pub unpriced_calls: i64,
    pub response_ms_sum: i64,
    pub response_ms_count: i64,
}

impl RollupDelta {
    /// What one recorded event adds to its rollup row.
    pub fn of(p: &PricedEvent<'_>) -> RollupDelta {
        let e = p.event;
        RollupDelta {
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

    /// The sum of two deltas of one row, or `None` if a field overflows.
    pub fn checked_add(&self, d: &RollupDelta) -> Option<RollupDelta> {
        Some(RollupDelta {
            calls: self.calls.checked_add(d.calls)?,
            errors: self.errors.checked_add(d.errors)?,
            tokens_input: self.tokens_input.checked_add(d.tokens_input)?,
            tokens_output: self.tokens_output.checked_add(d.tokens_output)?,
            tokens_cached_input: self.tokens_cached_input.checked_add(d.tokens_cached_input)?,
            cost: self.cost.checked_add(d.cost)?,
            unpriced_calls: self.unpriced_calls.checked_add(d.unpriced_calls)?,
            response_ms_sum: self.response_ms_sum.checked_add(d.response_ms_sum)?,
            response_ms_count: self.response_ms_count.checked_add(d.response_ms_count)?,
        })
    }
}

/// Adds `d` to the rollup row of (user, period, provider, model), creating it.
pub async fn adjust_rollup(
    conn: &mut AnyConnection,
    user_id: &str,
    period: (DateTime<Utc>, &str),
    provider: &str,
    model: &str,
    d: &RollupDelta,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO usage_rollups (user_id, period_start, billing_period, provider, model, calls, errors, tokens_input,
         tokens_output, tokens_cached_input, cost_nanos, unpriced_calls, response_ms_sum, response_ms_count)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
         ON CONFLICT (user_id, period_start, provider, model) DO UPDATE SET
           calls = usage_rollups.calls + excluded.calls,
           errors = usage_rollups.errors + excluded.errors,
           tokens_input = usage_rollups.tokens_input + excluded.tokens_input,
           tokens_output = usage_rollups.tokens_output + excluded.tokens_output,
           tokens_cached_input = usage_rollups.tokens_cached_input + excluded.tokens_cached_input,
           cost_nanos = usage_rollups.cost_nanos + excluded.cost_nanos,
           unpriced_calls = usage_rollups.unpriced_calls + excluded.unpriced_calls,
           response_ms_sum = usage_rollups.response_ms_sum + excluded.response_ms_sum,
           response_ms_count = usage_rollups.response_ms_count + excluded.response_ms_count",
    )
    .bind(user_id)
    .bind(ms(period.0))
    .bind(period.1)
    .bind(provider)
    .bind(model)
    .bind(d.calls)
    .bind(d.errors)
    .bind(d.tokens_input)
    .bind(d.tokens_output)
    .bind(d.tokens_cached_input)
    .bind(d.cost.0)
    .bind(d.unpriced_calls)
    .bind(d.response_ms_sum)
    .bind(d.response_ms_count)
    .execute(conn)
    .await?;
    Ok(())
}
