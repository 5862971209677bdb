//! Browser sessions and sign-in attempts. Only a session token's hash is
//! stored, so a database leak does not hand out live sessions.

use chrono::{DateTime, Utc};
use sqlx::{AnyConnection, Row};

use super::users::User;
use super::{StoreResult, ms};

pub async fn insert_session(
    conn: &mut AnyConnection,
    id_hash: &str,
    user_id: &str,
    now: DateTime<Utc>,
    expires: DateTime<Utc>,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO sessions (id_hash, user_id, created_at, expires_at, last_seen_at) VALUES ($1, $2, $3, $4, $3)",
    )
    .bind(id_hash)
    .bind(user_id)
    .bind(ms(now))
    .bind(ms(expires))
    .execute(conn)
    .await?;
    Ok(())
}

/// The user of a live session.
pub async fn session_user(conn: &mut AnyConnection, id_hash: &str, now: DateTime<Utc>) -> StoreResult<Option<User>> {
    let row = sqlx::query(
        "SELECT u.id, u.email, u.name, u.role, u.created_at FROM sessions s JOIN users u ON u.id = s.user_id
         WHERE s.id_hash = $1 AND s.expires_at > $2",
    )
    .bind(id_hash)
    .bind(ms(now))
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(super::users::user_from_row).transpose()
}

/// Slides a session's expiry forward.
pub async fn touch_session(
    conn: &mut AnyConnection,
    id_hash: &str,
    now: DateTime<Utc>,
    expires: DateTime<Utc>,
) -> StoreResult<()> {
    sqlx::query("UPDATE sessions SET last_seen_at = $2, expires_at = $3 WHERE id_hash = $1")
        .bind(id_hash)
        .bind(ms(now))
        .bind(ms(expires))
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn delete_session(conn: &mut AnyConnection, id_hash: &str) -> StoreResult<()> {
    sqlx::query("DELETE FROM sessions WHERE id_hash = $1").bind(id_hash).execute(conn).await?;
    Ok(())
}

/// Ends every session of a user except `keep` (after a password change).
pub async fn delete_other_sessions(conn: &mut AnyConnection, user_id: &str, keep: &str) -> StoreResult<()> {
    sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND id_hash <> $2")
        .bind(user_id)
        .bind(keep)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn record_attempt(
    conn: &mut AnyConnection,
    email: &str,
    ip: &str,
    success: bool,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    sqlx::query("INSERT INTO login_attempts (email, ip, success, created_at) VALUES ($1, $2, $3, $4)")
        .bind(email)
        .bind(ip)
        .bind(success as i64)
        .bind(ms(now))
        .execute(conn)
        .await?;
    Ok(())
}

/// Failed attempts since `since` for this email, and from this address.
pub async fn recent_failures(
    conn: &mut AnyConnection,
    email: &str,
    ip: &str,
    since: DateTime<Utc>,
) -> StoreResult<(i64, i64)> {
    let r = sqlx::query(
        "SELECT CAST(COALESCE(SUM(CASE WHEN email = $1 THEN 1 ELSE 0 END), 0) AS BIGINT) AS by_email,
                CAST(COALESCE(SUM(CASE WHEN ip = $2 THEN 1 ELSE 0 END), 0) AS BIGINT) AS by_ip
         FROM login_attempts WHERE success = 0 AND created_at > $3 AND (email = $1 OR ip = $2)",
    )
    .bind(email)
    .bind(ip)
    .bind(ms(since))
    .fetch_one(conn)
    .await?;
    Ok((r.try_get("by_email")?, r.try_get("by_ip")?))
}
