//! Reads behind breakdowns by tag, advice and profitability. Amounts are
//! always summed from the events themselves (or from bills), never from a
//! copy, so they reconcile with the usage log.

use crate::domain::identity::UserId;
use std::collections::HashMap;

use sqlx::{AnyConnection, Row};

use super::StoreResult;
use crate::domain::money::Nanos;
use crate::domain::pricing::{Count, Quantities, ServiceTier};
use crate::domain::provider::Provider;

/// One group of a breakdown: its key (`None`: events without it), calls,
/// tokens (input + output) and cost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    pub key: Option<String>,
    pub calls: i64,
    pub tokens: i64,
    pub cost: Nanos,
}

/// The events of one user's billing period grouped by the value of tag
/// `key`; events without the tag form the group with key `None`. The
/// groups sum to the period's totals.
pub async fn by_tag(conn: &mut AnyConnection, user_id: &UserId, label: &str, key: &str) -> StoreResult<Vec<Group>> {
    let rows = sqlx::query(
        "SELECT t.tag_value AS k, CAST(COUNT(*) AS BIGINT) AS calls,
         CAST(COALESCE(SUM(e.tokens_input + e.tokens_output), 0) AS BIGINT) AS tokens,
         CAST(COALESCE(SUM(e.cost_total_nanos), 0) AS BIGINT) AS cost
         FROM usage_events e LEFT JOIN usage_event_tags t
           ON t.user_id = e.user_id AND t.event_id = e.event_id AND t.tag_key = $3
         WHERE e.user_id = $1 AND e.billing_period = $2
         GROUP BY t.tag_value",
    )
    .bind(user_id)
    .bind(label)
    .bind(key)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Group {
                key: r.try_get("k")?,
                calls: r.try_get("calls")?,
                tokens: r.try_get("tokens")?,
                cost: Nanos(r.try_get("cost")?),
            })
        })
        .collect()
}

/// The tag keys a user's events carry, sorted.
pub async fn tag_keys(conn: &mut AnyConnection, user_id: &UserId) -> StoreResult<Vec<String>> {
    let rows = sqlx::query("SELECT tag_key FROM user_tag_keys WHERE user_id = $1 ORDER BY tag_key")
        .bind(user_id)
        .fetch_all(conn)
        .await?;
    rows.iter().map(|r| Ok(r.try_get("tag_key")?)).collect()
}

/// The distinct quantities of a period's priced, successful per-token
/// calls, per provider and model, with how many calls had each: what
/// [`crate::domain::insights::cheaper_model`] prices call by call.
pub async fn model_mix(
    conn: &mut AnyConnection,
    user_id: &UserId,
    label: &str,
) -> StoreResult<Vec<(Provider, String, Quantities, u64)>> {
    // Every count's column, then the tier.
    let cols = format!("{}, service_tier", Count::ALL.map(Count::field).join(", "));
    let rows = sqlx::query(&format!(
        "SELECT provider, model, {cols}, CAST(COUNT(*) AS BIGINT) AS n FROM usage_events
         WHERE user_id = $1 AND billing_period = $2 AND model IS NOT NULL AND unpriced = 0 AND status_code < 400
           AND units = 0 AND tokens_input + tokens_output > 0
         GROUP BY provider, model, {cols} ORDER BY provider, model"
    ))
    .bind(user_id)
    .bind(label)
    .fetch_all(conn)
    .await?;
    let n = |r: &sqlx::any::AnyRow, c: &str| -> StoreResult<u64> { Ok(r.try_get::<i64, _>(c)?.max(0) as u64) };
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let provider: String = r.try_get("provider")?;
        let Ok(provider) = Provider::parse(&provider) else { continue };
        let tier: Option<String> = r.try_get("service_tier")?;
        let mut q = Quantities::default()
            .with_tier(tier.as_deref().and_then(ServiceTier::parse).unwrap_or(ServiceTier::Standard));
        for c in Count::ALL {
            q[c] = n(r, c.field())?;
        }
        out.push((provider, r.try_get("model")?, q, n(r, "n")?));
    }
    Ok(out)
}

/// What a period's failed calls cost, and its retried calls.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Waste {
    pub failed_calls: i64,
    pub failed_cost: Nanos,
    /// Calls that needed at least one retry, and the retries they needed.
    pub retried_calls: i64,
    pub retries: i64,
}

pub async fn waste(conn: &mut AnyConnection, user_id: &UserId, label: &str) -> StoreResult<Waste> {
    let r = sqlx::query(
        "SELECT CAST(COALESCE(SUM(CASE WHEN status_code >= 400 THEN 1 ELSE 0 END), 0) AS BIGINT) AS failed_calls,
         CAST(COALESCE(SUM(CASE WHEN status_code >= 400 THEN cost_total_nanos ELSE 0 END), 0) AS BIGINT) AS failed_cost,
         CAST(COALESCE(SUM(CASE WHEN retry_count > 0 THEN 1 ELSE 0 END), 0) AS BIGINT) AS retried_calls,
         CAST(COALESCE(SUM(retry_count), 0) AS BIGINT) AS retries
         FROM usage_events WHERE user_id = $1 AND billing_period = $2",
    )
    .bind(user_id)
    .bind(label)
    .fetch_one(conn)
    .await?;
    Ok(Waste {
        failed_calls: r.try_get("failed_calls")?,
        failed_cost: Nanos(r.try_get("failed_cost")?),
        retried_calls: r.try_get("retried_calls")?,
        retries: r.try_get("retries")?,
    })
}

/// One user's bill for a billing period: plan name, plan fee, usage cost.
pub async fn bills_for(conn: &mut AnyConnection, label: &str) -> StoreResult<HashMap<String, (String, Nanos, Nanos)>> {
    let rows = sqlx::query(
        "SELECT user_id, plan_name, plan_fee_nanos, usage_cost_nanos FROM billing_records WHERE billing_period = $1",
    )
    .bind(label)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("user_id")?,
                (r.try_get("plan_name")?, Nanos(r.try_get("plan_fee_nanos")?), Nanos(r.try_get("usage_cost_nanos")?)),
            ))
        })
        .collect()
}
