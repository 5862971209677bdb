//! Users, their subscription row, and the renewal history.

use chrono::{DateTime, Utc};
use sqlx::{AnyConnection, Row};

use super::{StoreError, StoreResult, from_ms, ms};
use crate::domain::identity::{Email, Role, User, UserId};
use crate::domain::money::Nanos;
use crate::domain::period::BillingCycle;
use crate::domain::subscription::{Renewal, Status, Subscription};

pub(crate) fn user_from_row(r: &sqlx::any::AnyRow) -> StoreResult<User> {
    let role: String = r.try_get("role")?;
    Ok(User {
        id: r.try_get("id")?,
        email: Email::parse(&r.try_get::<String, _>("email")?)
            .map_err(|e| StoreError::Corrupt(format!("email: {e}")))?,
        name: r.try_get("name")?,
        role: Role::parse(&role).ok_or_else(|| StoreError::Corrupt(format!("role {role}")))?,
        created_at: from_ms(r.try_get("created_at")?),
    })
}

const USER_COLS: &str = "id, email, name, role, created_at";

pub async fn insert_user(conn: &mut AnyConnection, user: &User, password_hash: Option<&str>) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO users (id, email, name, role, password_hash, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6)",
    )
    .bind(user.id.as_str())
    .bind(user.email.as_str())
    .bind(&user.name)
    .bind(user.role.as_str())
    .bind(password_hash)
    .bind(ms(user.created_at))
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn user_by_id(conn: &mut AnyConnection, id: &UserId) -> StoreResult<Option<User>> {
    let row =
        sqlx::query(&format!("SELECT {USER_COLS} FROM users WHERE id = $1")).bind(id).fetch_optional(conn).await?;
    row.as_ref().map(user_from_row).transpose()
}

pub async fn user_by_email(conn: &mut AnyConnection, email: &str) -> StoreResult<Option<User>> {
    let row = sqlx::query(&format!("SELECT {USER_COLS} FROM users WHERE lower(email) = lower($1)"))
        .bind(email)
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(user_from_row).transpose()
}

pub async fn password_hash(conn: &mut AnyConnection, user_id: &UserId) -> StoreResult<Option<String>> {
    let row = sqlx::query("SELECT password_hash FROM users WHERE id = $1").bind(user_id).fetch_optional(conn).await?;
    Ok(match row {
        Some(r) => r.try_get("password_hash")?,
        None => None,
    })
}

/// When the account was disabled, if it is.
pub async fn disabled_at(conn: &mut AnyConnection, user_id: &UserId) -> StoreResult<Option<DateTime<Utc>>> {
    let row = sqlx::query("SELECT disabled_at FROM users WHERE id = $1").bind(user_id).fetch_optional(conn).await?;
    Ok(match row {
        Some(r) => r.try_get::<Option<i64>, _>("disabled_at")?.map(from_ms),
        None => None,
    })
}

/// Disables (`Some`) or enables (`None`) an account; whether it exists.
pub async fn set_disabled(
    conn: &mut AnyConnection,
    user_id: &UserId,
    at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let r = sqlx::query("UPDATE users SET disabled_at = $2, updated_at = $3 WHERE id = $1")
        .bind(user_id)
        .bind(at.map(ms))
        .bind(ms(now))
        .execute(conn)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// Changes a user's role; whether the user exists.
pub async fn set_role(conn: &mut AnyConnection, user_id: &UserId, role: Role, now: DateTime<Utc>) -> StoreResult<bool> {
    let r = sqlx::query("UPDATE users SET role = $2, updated_at = $3 WHERE id = $1")
        .bind(user_id)
        .bind(role.as_str())
        .bind(ms(now))
        .execute(conn)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// How many administrators can still sign in.
pub async fn active_admins(conn: &mut AnyConnection) -> StoreResult<i64> {
    Ok(sqlx::query("SELECT CAST(COUNT(*) AS BIGINT) AS n FROM users WHERE role = 'admin' AND disabled_at IS NULL")
        .fetch_one(conn)
        .await?
        .try_get("n")?)
}

pub async fn set_password_hash(
    conn: &mut AnyConnection,
    user_id: &UserId,
    hash: &str,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let r = sqlx::query("UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1")
        .bind(user_id)
        .bind(hash)
        .bind(ms(now))
        .execute(conn)
        .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn count_users(conn: &mut AnyConnection) -> StoreResult<i64> {
    Ok(sqlx::query("SELECT CAST(COUNT(*) AS BIGINT) AS n FROM users").fetch_one(conn).await?.try_get("n")?)
}

/// Users ordered by email, optionally filtered by a substring of email or name.
pub async fn list_users(
    conn: &mut AnyConnection,
    search: Option<&str>,
    limit: i64,
    offset: i64,
) -> StoreResult<(Vec<User>, i64)> {
    let pattern = format!("%{}%", search.unwrap_or("").to_lowercase());
    let rows = sqlx::query(&format!(
        "SELECT {USER_COLS} FROM users WHERE lower(email) LIKE $1 OR lower(name) LIKE $1 ORDER BY email LIMIT $2 OFFSET $3"
    ))
    .bind(&pattern)
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *conn)
    .await?;
    let total: i64 = sqlx::query(
        "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM users WHERE lower(email) LIKE $1 OR lower(name) LIKE $1",
    )
    .bind(&pattern)
    .fetch_one(conn)
    .await?
    .try_get("n")?;
    Ok((rows.iter().map(user_from_row).collect::<StoreResult<_>>()?, total))
}

const SUBSCRIPTION_COLS: &str =
    "user_id, plan_id, billing_cycle, status, anchor_at, period_start, period_end, cycle_start,
    cycle_end, renewal_count, started_at, pending_plan_id, pending_cycle, period_fee_nanos, cancel_at, timezone";

pub async fn subscription(conn: &mut AnyConnection, user_id: &UserId) -> StoreResult<Option<Subscription>> {
    let row = sqlx::query(&format!("SELECT {SUBSCRIPTION_COLS} FROM subscriptions WHERE user_id = $1"))
        .bind(user_id)
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(subscription_from_row).transpose()
}

/// Takes the user's write lock for the rest of the transaction (an UPDATE
/// of their subscription row: on Postgres a row lock that serialises
/// writers per user) and returns the subscription as it is once the lock
/// is held, in the same statement, with the pricing catalog's revision
/// (read in that statement too, saving a round trip: see
/// [`crate::server::service::catalog::CatalogCache::at_revision`]).
/// `None`: no such user.
pub async fn lock_subscription(conn: &mut AnyConnection, user_id: &UserId) -> StoreResult<Option<(Subscription, i64)>> {
    let row = sqlx::query(&format!(
        "UPDATE subscriptions SET lock_version = lock_version + 1 WHERE user_id = $1 \
         RETURNING {SUBSCRIPTION_COLS}, (SELECT revision FROM catalog_revision WHERE id = 1) AS catalog_revision"
    ))
    .bind(user_id)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(|r| Ok((subscription_from_row(r)?, r.try_get("catalog_revision")?))).transpose()
}

fn subscription_from_row(r: &sqlx::any::AnyRow) -> StoreResult<Subscription> {
    let cycle: String = r.try_get("billing_cycle")?;
    Ok(Subscription {
        user_id: r.try_get("user_id")?,
        plan_id: r.try_get("plan_id")?,
        billing_cycle: BillingCycle::parse(&cycle).ok_or_else(|| StoreError::Corrupt(format!("cycle {cycle}")))?,
        status: {
            let s: String = r.try_get("status")?;
            Status::parse(&s).ok_or_else(|| StoreError::Corrupt(format!("subscription status {s}")))?
        },
        anchor_at: from_ms(r.try_get("anchor_at")?),
        period_start: from_ms(r.try_get("period_start")?),
        period_end: from_ms(r.try_get("period_end")?),
        cycle_start: from_ms(r.try_get("cycle_start")?),
        cycle_end: from_ms(r.try_get("cycle_end")?),
        renewal_count: r.try_get("renewal_count")?,
        started_at: from_ms(r.try_get("started_at")?),
        pending: match (
            r.try_get::<Option<i64>, _>("pending_plan_id")?,
            r.try_get::<Option<String>, _>("pending_cycle")?,
        ) {
            (Some(plan), Some(c)) => {
                Some((plan, BillingCycle::parse(&c).ok_or_else(|| StoreError::Corrupt(format!("pending cycle {c}")))?))
            }
            _ => None,
        },
        period_fee: r.try_get::<Option<i64>, _>("period_fee_nanos")?.map(Nanos),
        cancel_at: r.try_get::<Option<i64>, _>("cancel_at")?.map(from_ms),
        timezone: {
            let tz: String = r.try_get("timezone")?;
            tz.parse().map_err(|_| StoreError::Corrupt(format!("subscription timezone `{tz}`")))?
        },
    })
}

/// Whether `user_id` has any recorded event or bill.
pub async fn has_billing_history(conn: &mut AnyConnection, user_id: &UserId) -> StoreResult<bool> {
    let n: i64 = sqlx::query(
        "SELECT CAST((SELECT COUNT(*) FROM (SELECT 1 FROM usage_events WHERE user_id = $1 LIMIT 1) e)
           + (SELECT COUNT(*) FROM (SELECT 1 FROM billing_records WHERE user_id = $1 LIMIT 1) b) AS BIGINT) AS n",
    )
    .bind(user_id)
    .fetch_one(conn)
    .await?
    .try_get("n")?;
    Ok(n > 0)
}

/// Moves `user_id`'s open holds from one period start to another (the same
/// period, re-counted in a new timezone).
pub async fn move_holds(
    conn: &mut AnyConnection,
    user_id: &UserId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> StoreResult<()> {
    sqlx::query("UPDATE reservations SET period_start = $3 WHERE user_id = $1 AND period_start = $2")
        .bind(user_id)
        .bind(ms(from))
        .bind(ms(to))
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn insert_subscription(conn: &mut AnyConnection, s: &Subscription, now: DateTime<Utc>) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO subscriptions (user_id, plan_id, billing_cycle, status, anchor_at, period_start, period_end, cycle_start,
         cycle_end, renewal_count, created_at, updated_at, started_at, pending_plan_id, pending_cycle, period_fee_nanos,
         timezone) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, $12, $13, $14, $15, $16)",
    )
    .bind(s.user_id.as_str())
    .bind(s.plan_id)
    .bind(s.billing_cycle.as_str())
    .bind(s.status.as_str())
    .bind(ms(s.anchor_at))
    .bind(ms(s.period_start))
    .bind(ms(s.period_end))
    .bind(ms(s.cycle_start))
    .bind(ms(s.cycle_end))
    .bind(s.renewal_count)
    .bind(ms(now))
    .bind(ms(s.started_at))
    .bind(s.pending.map(|(p, _)| p))
    .bind(s.pending.map(|(_, c)| c.as_str()))
    .bind(s.period_fee.map(|f| f.0))
    .bind(s.timezone.name())
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn update_subscription(conn: &mut AnyConnection, s: &Subscription, now: DateTime<Utc>) -> StoreResult<()> {
    sqlx::query(
        "UPDATE subscriptions SET plan_id = $2, billing_cycle = $3, status = $4, anchor_at = $5, period_start = $6,
         period_end = $7, cycle_start = $8, cycle_end = $9, renewal_count = $10, updated_at = $11, pending_plan_id = $12,
         pending_cycle = $13, period_fee_nanos = $14, cancel_at = $15, timezone = $16 WHERE user_id = $1",
    )
    .bind(s.user_id.as_str())
    .bind(s.plan_id)
    .bind(s.billing_cycle.as_str())
    .bind(s.status.as_str())
    .bind(ms(s.anchor_at))
    .bind(ms(s.period_start))
    .bind(ms(s.period_end))
    .bind(ms(s.cycle_start))
    .bind(ms(s.cycle_end))
    .bind(s.renewal_count)
    .bind(ms(now))
    .bind(s.pending.map(|(p, _)| p))
    .bind(s.pending.map(|(_, c)| c.as_str()))
    .bind(s.period_fee.map(|f| f.0))
    .bind(s.cancel_at.map(ms))
    .bind(s.timezone.name())
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn insert_renewal(conn: &mut AnyConnection, r: &Renewal) -> StoreResult<i64> {
    Ok(sqlx::query(
        "INSERT INTO subscription_renewals (user_id, plan_id, plan_name, plan_tier, previous_plan_name, previous_plan_tier,
         previous_period_start, previous_period_end, new_period_start, new_period_end, billing_cycle, renewal_type,
         renewal_count, usage_before_json, payment_amount_nanos, payment_status, payment_date, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) RETURNING id",
    )
    .bind(r.user_id.as_str())
    .bind(r.plan_id)
    .bind(&r.plan_name)
    .bind(&r.plan_tier)
    .bind(&r.previous_plan_name)
    .bind(&r.previous_plan_tier)
    .bind(r.previous_period_start.map(ms))
    .bind(r.previous_period_end.map(ms))
    .bind(ms(r.new_period_start))
    .bind(ms(r.new_period_end))
    .bind(&r.billing_cycle)
    .bind(&r.renewal_type)
    .bind(r.renewal_count)
    .bind(r.usage_before.as_ref().map(|v| v.to_string()))
    .bind(r.payment_amount.0)
    .bind(&r.payment_status)
    .bind(r.payment_date.map(ms))
    .bind(ms(r.created_at))
    .fetch_one(conn)
    .await?
    .try_get("id")?)
}

/// A user's renewal history, newest first; `plan_changes_only` keeps to the
/// four types family A's client knows (no cancellations, pauses, resumes).
pub async fn renewals(
    conn: &mut AnyConnection,
    user_id: &UserId,
    limit: i64,
    offset: i64,
    plan_changes_only: bool,
) -> StoreResult<(Vec<Renewal>, i64)> {
    let rows = sqlx::query(
        "SELECT id, user_id, plan_id, plan_name, plan_tier, previous_plan_name, previous_plan_tier, previous_period_start,
         previous_period_end, new_period_start, new_period_end, billing_cycle, renewal_type, renewal_count, usage_before_json,
         payment_amount_nanos, payment_status, payment_date, created_at
         FROM subscription_renewals WHERE user_id = $1 AND ($4 = 0 OR renewal_type IN ('new', 'renewal', 'upgrade', 'downgrade'))
         ORDER BY new_period_start DESC, id DESC LIMIT $2 OFFSET $3",
    )
    .bind(user_id)
    .bind(limit)
    .bind(offset)
    .bind(plan_changes_only as i64)
    .fetch_all(&mut *conn)
    .await?;
    let total: i64 = sqlx::query(
        "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM subscription_renewals
         WHERE user_id = $1 AND ($2 = 0 OR renewal_type IN ('new', 'renewal', 'upgrade', 'downgrade'))",
    )
    .bind(user_id)
    .bind(plan_changes_only as i64)
    .fetch_one(conn)
    .await?
    .try_get("n")?;
    let list = rows
        .iter()
        .map(|r| {
            let usage: Option<String> = r.try_get("usage_before_json")?;
            Ok(Renewal {
                id: r.try_get("id")?,
                user_id: r.try_get("user_id")?,
                plan_id: r.try_get("plan_id")?,
                plan_name: r.try_get("plan_name")?,
                plan_tier: r.try_get("plan_tier")?,
                previous_plan_name: r.try_get("previous_plan_name")?,
                previous_plan_tier: r.try_get("previous_plan_tier")?,
                previous_period_start: r.try_get::<Option<i64>, _>("previous_period_start")?.map(from_ms),
                previous_period_end: r.try_get::<Option<i64>, _>("previous_period_end")?.map(from_ms),
                new_period_start: from_ms(r.try_get("new_period_start")?),
                new_period_end: from_ms(r.try_get("new_period_end")?),
                billing_cycle: r.try_get("billing_cycle")?,
                renewal_type: r.try_get("renewal_type")?,
                renewal_count: r.try_get("renewal_count")?,
                usage_before: usage.and_then(|s| serde_json::from_str(&s).ok()),
                payment_amount: Nanos(r.try_get("payment_amount_nanos")?),
                payment_status: r.try_get("payment_status")?,
                payment_date: r.try_get::<Option<i64>, _>("payment_date")?.map(from_ms),
                created_at: from_ms(r.try_get("created_at")?),
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;
    Ok((list, total))
}
