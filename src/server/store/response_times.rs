//! The provider comparison's response times: a count per rollup row and
//! bucket of [`crate::domain::response_times`], added in the same
//! transaction as the events they count.

use chrono::{DateTime, Utc};
use sqlx::{AnyConnection, Row};

use super::Placeholders;
use super::{StoreResult, ms};
use crate::domain::identity::UserId;
use crate::domain::response_times::Histogram;

/// Adds `h` to the rollup row's buckets.
pub async fn add(
    conn: &mut AnyConnection,
    user_id: &UserId,
    period: (DateTime<Utc>, &str),
    provider: &str,
    model: &str,
    h: &Histogram,
) -> StoreResult<()> {
    let buckets: Vec<(u16, i64)> = h.buckets().collect();
    if buckets.is_empty() {
        return Ok(());
    }
    let mut sql = String::from(
        "INSERT INTO response_time_buckets (user_id, period_start, billing_period, provider, model, bucket, calls) \
         VALUES ",
    );
    let mut p = Placeholders::for_conn(conn);
    for i in 0..buckets.len() {
        if i > 0 {
            sql.push_str(", ");
        }
        p.push_row(&mut sql, 7);
    }
    sql.push_str(
        " ON CONFLICT (user_id, period_start, provider, model, bucket) \
         DO UPDATE SET calls = response_time_buckets.calls + excluded.calls",
    );
    let mut q = sqlx::query(&sql);
    for (b, n) in buckets {
        q = q.bind(user_id).bind(ms(period.0)).bind(period.1).bind(provider).bind(model).bind(i64::from(b)).bind(n);
    }
    q.execute(conn).await?;
    Ok(())
}

/// One usage period's distributions of `user_id`, per provider and model.
pub async fn of_period(
    conn: &mut AnyConnection,
    user_id: &UserId,
    period_start: DateTime<Utc>,
) -> StoreResult<Vec<((String, String), Histogram)>> {
    let rows = sqlx::query(
        "SELECT provider, model, bucket, calls FROM response_time_buckets
         WHERE user_id = $1 AND period_start = $2 ORDER BY provider, model, bucket",
    )
    .bind(user_id)
    .bind(ms(period_start))
    .fetch_all(conn)
    .await?;
    let mut out: Vec<((String, String), Histogram)> = Vec::new();
    for r in &rows {
        let key: (String, String) = (r.try_get("provider")?, r.try_get("model")?);
        let bucket: i64 = r.try_get("bucket")?;
        let calls: i64 = r.try_get("calls")?;
        if out.last().is_none_or(|(k, _)| *k != key) {
            out.push((key, Histogram::default()));
        }
        if let (Some((_, h)), Ok(b)) = (out.last_mut(), u16::try_from(bucket)) {
            h.add_bucket(b, calls);
        }
    }
    Ok(out)
}
