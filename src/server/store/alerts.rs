//! Alerts: raised once per dedupe key, read and unread.

use crate::domain::identity::UserId;
use chrono::{DateTime, Utc};
use sqlx::{AnyConnection, Row};

use super::{StoreError, StoreResult, from_ms, ms};
use crate::domain::alerts::{Alert, NewAlert, Severity};

/// Inserts an alert unless its dedupe key exists; its id when inserted.
/// Sends no webhook: the services decide what a change says to them.
pub async fn insert_alert(
    conn: &mut AnyConnection,
    user_id: Option<&UserId>,
    period: Option<(DateTime<Utc>, &str)>,
    a: &NewAlert,
    now: DateTime<Utc>,
) -> StoreResult<Option<i64>> {
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO alerts (user_id, period_start, billing_period, alert_type, limit_key, threshold, provider, title, message,
         severity, is_read, created_at, dedupe_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 0, $11, $12)
         ON CONFLICT (dedupe_key) DO NOTHING RETURNING id",
    )
    .bind(user_id)
    .bind(period.map(|p| ms(p.0)))
    .bind(period.map(|p| p.1.to_string()))
    .bind(&a.alert_type)
    .bind(&a.limit_key)
    .bind(a.threshold as i64)
    .bind(&a.provider)
    .bind(&a.title)
    .bind(&a.message)
    .bind(a.severity.as_str())
    .bind(ms(now))
    .bind(&a.dedupe_key)
    .fetch_optional(conn)
    .await?;
    Ok(id)
}

const ALERT_COLS: &str = "id, user_id, alert_type, limit_key, threshold, provider, title, message, severity, is_read, read_at, billing_period, created_at, resolved_at";

/// Alert `id`.
pub async fn alert_by_id(conn: &mut AnyConnection, id: i64) -> StoreResult<Alert> {
    let row = sqlx::query(&format!("SELECT {ALERT_COLS} FROM alerts WHERE id = $1")).bind(id).fetch_one(conn).await?;
    alert_from_row(&row)
}

fn alert_from_row(r: &sqlx::any::AnyRow) -> StoreResult<Alert> {
    Ok(Alert {
        id: r.try_get("id")?,
        user_id: r.try_get("user_id")?,
        alert_type: r.try_get("alert_type")?,
        limit_key: r.try_get("limit_key")?,
        threshold: r.try_get("threshold")?,
        provider: r.try_get("provider")?,
        title: r.try_get("title")?,
        message: r.try_get("message")?,
        severity: {
            let raw: String = r.try_get("severity")?;
            Severity::parse(&raw).ok_or_else(|| StoreError::Corrupt(format!("alert severity `{raw}`")))?
        },
        is_read: r.try_get::<i64, _>("is_read")? != 0,
        read_at: r.try_get::<Option<i64>, _>("read_at")?.map(from_ms),
        billing_period: r.try_get("billing_period")?,
        created_at: from_ms(r.try_get("created_at")?),
        resolved_at: r.try_get::<Option<i64>, _>("resolved_at")?.map(from_ms),
    })
}

/// A user's alerts (or the admin alerts when `user_id` is `None`), unread
/// first, newest first.
pub async fn alerts(
    conn: &mut AnyConnection,
    user_id: Option<&UserId>,
    unread_only: bool,
    limit: i64,
) -> StoreResult<Vec<Alert>> {
    let unread = if unread_only { "AND is_read = 0" } else { "" };
    let cols = ALERT_COLS;
    let order = "ORDER BY is_read, created_at DESC, id DESC";
    let rows = match user_id {
        Some(u) => {
            sqlx::query(&format!("SELECT {cols} FROM alerts WHERE user_id = $1 {unread} {order} LIMIT $2"))
                .bind(u)
                .bind(limit)
                .fetch_all(conn)
                .await?
        }
        None => {
            sqlx::query(&format!("SELECT {cols} FROM alerts WHERE user_id IS NULL {unread} {order} LIMIT $1"))
                .bind(limit)
                .fetch_all(conn)
                .await?
        }
    };
    rows.iter().map(alert_from_row).collect()
}

pub async fn unread_alert_count(conn: &mut AnyConnection, user_id: &UserId) -> StoreResult<i64> {
    Ok(sqlx::query("SELECT CAST(COUNT(*) AS BIGINT) AS n FROM alerts WHERE user_id = $1 AND is_read = 0")
        .bind(user_id)
        .fetch_one(conn)
        .await?
        .try_get("n")?)
}

/// The owner of an alert (`None` for an admin alert), if the alert exists.
pub async fn alert_owner(conn: &mut AnyConnection, alert_id: i64) -> StoreResult<Option<Option<UserId>>> {
    let row = sqlx::query("SELECT user_id FROM alerts WHERE id = $1").bind(alert_id).fetch_optional(conn).await?;
    row.map(|r| r.try_get("user_id").map_err(Into::into)).transpose()
}

/// Marks one alert read (idempotent); false when there is no such alert.
pub async fn mark_alert_read(conn: &mut AnyConnection, alert_id: i64, now: DateTime<Utc>) -> StoreResult<bool> {
    let r = sqlx::query("UPDATE alerts SET is_read = 1, read_at = COALESCE(read_at, $2) WHERE id = $1")
        .bind(alert_id)
        .bind(ms(now))
        .execute(conn)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// Marks every unread alert of a user read; how many changed.
pub async fn mark_all_alerts_read(conn: &mut AnyConnection, user_id: &UserId, now: DateTime<Utc>) -> StoreResult<u64> {
    let r = sqlx::query("UPDATE alerts SET is_read = 1, read_at = $2 WHERE user_id = $1 AND is_read = 0")
        .bind(user_id)
        .bind(ms(now))
        .execute(conn)
        .await?;
    Ok(r.rows_affected())
}

/// Alerts across every user (and the admin alerts), newest first, with the
/// user's email.
pub async fn all_alerts(conn: &mut AnyConnection, limit: i64) -> StoreResult<Vec<(Alert, Option<String>)>> {
    let rows = sqlx::query(
        "SELECT a.id, a.user_id, a.alert_type, a.limit_key, a.threshold, a.provider, a.title, a.message, a.severity, a.is_read,
         a.read_at, a.billing_period, a.created_at, a.resolved_at, u.email FROM alerts a LEFT JOIN users u ON u.id = a.user_id
         ORDER BY a.created_at DESC, a.id DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.iter().map(|r| Ok((alert_from_row(r)?, r.try_get("email")?))).collect()
}

/// Resolves the admin alert about an unpriced (provider, model); its id
/// when it was open.
pub async fn resolve_unpriced_alert(
    conn: &mut AnyConnection,
    provider: &str,
    model: Option<&str>,
    now: DateTime<Utc>,
) -> StoreResult<Option<i64>> {
    let key = crate::domain::alerts::unpriced_alert(provider, model).dedupe_key;
    let id: Option<i64> = sqlx::query_scalar(
        "UPDATE alerts SET resolved_at = $2, is_read = 1, read_at = COALESCE(read_at, $2) WHERE dedupe_key = $1 AND resolved_at IS NULL
         RETURNING id",
    )
    .bind(key)
    .bind(ms(now))
    .fetch_optional(&mut *conn)
    .await?;
    Ok(id)
}

/// Raises an admin alert about usage the catalog cannot price (a model
/// without a price, or its web-search queries), or makes it apply again;
/// its id when it was not open.
pub async fn raise_unpriced_alert(
    conn: &mut AnyConnection,
    a: &NewAlert,
    now: DateTime<Utc>,
) -> StoreResult<Option<i64>> {
    raise(conn, None, None, a, now).await
}

/// The user's threshold alerts of the period starting at `period_start`
/// that are not resolved: `(id, limit key, threshold)`.
pub async fn open_threshold_alerts(
    conn: &mut AnyConnection,
    user_id: &UserId,
    period_start: DateTime<Utc>,
) -> StoreResult<Vec<(i64, String, u8)>> {
    let rows = sqlx::query(
        "SELECT id, limit_key, threshold FROM alerts WHERE user_id = $1 AND period_start = $2
         AND alert_type = 'usage_threshold' AND resolved_at IS NULL AND limit_key IS NOT NULL",
    )
    .bind(user_id)
    .bind(ms(period_start))
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("id")?, r.try_get("limit_key")?, r.try_get::<i64, _>("threshold")?.clamp(0, 255) as u8)))
        .collect()
}

/// Marks alerts resolved (and read: there is nothing left to act on); the
/// ids of those that were open.
pub async fn resolve_alerts(conn: &mut AnyConnection, ids: &[i64], now: DateTime<Utc>) -> StoreResult<Vec<i64>> {
    let mut resolved = Vec::new();
    for id in ids {
        let r = sqlx::query(
            "UPDATE alerts SET resolved_at = $2, is_read = 1, read_at = COALESCE(read_at, $2) WHERE id = $1 AND resolved_at IS NULL",
        )
        .bind(id)
        .bind(ms(now))
        .execute(&mut *conn)
        .await?;
        if r.rows_affected() == 1 {
            resolved.push(*id);
        }
    }
    Ok(resolved)
}

/// Resolves the user's threshold alerts of periods before `period_start`
/// (a new period began: usage starts again from zero); their ids.
pub async fn resolve_threshold_alerts_before(
    conn: &mut AnyConnection,
    user_id: &UserId,
    period_start: DateTime<Utc>,
    now: DateTime<Utc>,
) -> StoreResult<Vec<i64>> {
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM alerts WHERE user_id = $1 AND period_start < $2 AND alert_type = 'usage_threshold' AND resolved_at IS NULL",
    )
    .bind(user_id)
    .bind(ms(period_start))
    .fetch_all(&mut *conn)
    .await?;
    resolve_alerts(conn, &ids, now).await
}

/// Raises a threshold alert of `user_id`'s period, or, raised before and
/// resolved since (a plan change moved the limit), makes it apply again;
/// its id when it was not open.
pub async fn raise_threshold_alert(
    conn: &mut AnyConnection,
    user_id: &UserId,
    period: (DateTime<Utc>, &str),
    a: &NewAlert,
    now: DateTime<Utc>,
) -> StoreResult<Option<i64>> {
    raise(conn, Some(user_id), Some(period), a, now).await
}

/// Inserts an alert, or opens the resolved one with its dedupe key again
/// (unread, saying it anew). Its id when it was not open; an open one is
/// left as it is.
async fn raise(
    conn: &mut AnyConnection,
    user_id: Option<&UserId>,
    period: Option<(DateTime<Utc>, &str)>,
    a: &NewAlert,
    now: DateTime<Utc>,
) -> StoreResult<Option<i64>> {
    let id = match insert_alert(conn, user_id, period, a, now).await? {
        Some(id) => Some(id),
        None => {
            sqlx::query_scalar(
                "UPDATE alerts SET resolved_at = NULL, is_read = 0, read_at = NULL, title = $2, message = $3, severity = $4,
                 created_at = $5 WHERE dedupe_key = $1 AND resolved_at IS NOT NULL RETURNING id",
            )
            .bind(&a.dedupe_key)
            .bind(&a.title)
            .bind(&a.message)
            .bind(a.severity.as_str())
            .bind(ms(now))
            .fetch_optional(&mut *conn)
            .await?
        }
    };
    Ok(id)
}

/// The open administrators' alerts of one type about `provider`:
/// `(id, dedupe key)`.
pub async fn open_admin_alerts(
    conn: &mut AnyConnection,
    alert_type: &str,
    provider: &str,
) -> StoreResult<Vec<(i64, String)>> {
    let rows = sqlx::query(
        "SELECT id, dedupe_key FROM alerts WHERE user_id IS NULL AND alert_type = $1 AND provider = $2 AND resolved_at IS NULL",
    )
    .bind(alert_type)
    .bind(provider)
    .fetch_all(conn)
    .await?;
    rows.iter().map(|r| Ok((r.try_get("id")?, r.try_get("dedupe_key")?))).collect()
}

/// The open (not resolved) alert with this dedupe key, if any.
pub async fn open_alert_id(conn: &mut AnyConnection, dedupe_key: &str) -> StoreResult<Option<i64>> {
    Ok(sqlx::query_scalar("SELECT id FROM alerts WHERE dedupe_key = $1 AND resolved_at IS NULL")
        .bind(dedupe_key)
        .fetch_optional(conn)
        .await?)
}
