//! Bills: one per closed usage period, never amended after it is issued.

use crate::domain::identity::UserId;
use chrono::{DateTime, Utc};
use sqlx::{AnyConnection, Row};

use super::{StoreResult, from_ms, ms};
use crate::domain::money::Nanos;
use crate::domain::subscription::BillingRecord;

/// Issues a bill; false when the period already has one.
pub async fn insert_billing_record(
    conn: &mut AnyConnection,
    b: &BillingRecord,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let r = sqlx::query(
        "INSERT INTO billing_records (user_id, period_start, period_end, billing_period, plan_id, plan_name, plan_fee_nanos,
         usage_cost_nanos, total_nanos, status, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         ON CONFLICT (user_id, period_start) DO NOTHING",
    )
    .bind(b.user_id.as_str())
    .bind(ms(b.period_start))
    .bind(ms(b.period_end))
    .bind(&b.billing_period)
    .bind(b.plan_id)
    .bind(&b.plan_name)
    .bind(b.plan_fee.0)
    .bind(b.usage_cost.0)
    .bind(b.total.0)
    .bind(&b.status)
    .bind(ms(now))
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn billing_records(conn: &mut AnyConnection, user_id: &UserId) -> StoreResult<Vec<BillingRecord>> {
    let rows = sqlx::query(
        "SELECT user_id, period_start, period_end, billing_period, plan_id, plan_name, plan_fee_nanos, usage_cost_nanos,
         total_nanos, status FROM billing_records WHERE user_id = $1 ORDER BY period_start DESC",
    )
    .bind(user_id)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(BillingRecord {
                user_id: r.try_get("user_id")?,
                period_start: from_ms(r.try_get("period_start")?),
                period_end: from_ms(r.try_get("period_end")?),
                billing_period: r.try_get("billing_period")?,
                plan_id: r.try_get("plan_id")?,
                plan_name: r.try_get("plan_name")?,
                plan_fee: Nanos(r.try_get("plan_fee_nanos")?),
                usage_cost: Nanos(r.try_get("usage_cost_nanos")?),
                total: Nanos(r.try_get("total_nanos")?),
                status: r.try_get("status")?,
            })
        })
        .collect()
}
