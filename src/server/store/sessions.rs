//! Browser sessions and sign-in attempts. Only a session token's hash is
//! stored, so a database leak does not hand out live sessions.

use crate::domain::identity::UserId;
use chrono::{DateTime, Utc};
use sqlx::{AnyConnection, Row};

use super::{StoreResult, from_ms, ms};
use crate::domain::identity::User;

pub async fn insert_session(
    conn: &mut AnyConnection,
    id_hash: &str,
    user_id: &UserId,
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

/// The user of a live session and when it was last seen: not expired and
/// seen after `idle_since`.
pub async fn session_user(
    conn: &mut AnyConnection,
    id_hash: &str,
    now: DateTime<Utc>,
    idle_since: DateTime<Utc>,
) -> StoreResult<Option<(User, DateTime<Utc>)>> {
    let row = sqlx::query(
        "SELECT u.id, u.email, u.name, u.role, u.created_at, s.last_seen_at FROM sessions s JOIN users u ON u.id = s.user_id
         WHERE s.id_hash = $1 AND s.expires_at > $2 AND s.last_seen_at > $3 AND u.disabled_at IS NULL",
    )
    .bind(id_hash)
    .bind(ms(now))
    .bind(ms(idle_since))
    .fetch_optional(conn)
    .await?;
    let Some(r) = row else { return Ok(None) };
    Ok(Some((super::users::user_from_row(&r)?, from_ms(r.try_get("last_seen_at")?))))
}

/// Records activity on a session (its idle clock restarts).
pub async fn touch_session(conn: &mut AnyConnection, id_hash: &str, now: DateTime<Utc>) -> StoreResult<()> {
    sqlx::query("UPDATE sessions SET last_seen_at = $2 WHERE id_hash = $1")
        .bind(id_hash)
        .bind(ms(now))
        .execute(conn)
        .await?;
    Ok(())
}

/// Ends every session of a user; how many there were.
pub async fn delete_user_sessions(conn: &mut AnyConnection, user_id: &UserId) -> StoreResult<u64> {
    Ok(sqlx::query("DELETE FROM sessions WHERE user_id = $1").bind(user_id).execute(conn).await?.rows_affected())
}

/// Deletes sessions past their lifetime or idle since `idle_since`.
pub async fn prune_sessions(
    conn: &mut AnyConnection,
    now: DateTime<Utc>,
    idle_since: DateTime<Utc>,
) -> StoreResult<u64> {
    Ok(sqlx::query("DELETE FROM sessions WHERE expires_at <= $1 OR last_seen_at <= $2")
        .bind(ms(now))
        .bind(ms(idle_since))
        .execute(conn)
        .await?
        .rows_affected())
}

/// Deletes sign-in attempts older than `before` and throttle rows whose
/// last failure is older than `stale`.
pub async fn prune_attempts(conn: &mut AnyConnection, before: DateTime<Utc>, stale: DateTime<Utc>) -> StoreResult<u64> {
    let n =
        sqlx::query("DELETE FROM login_attempts WHERE created_at < $1").bind(ms(before)).execute(&mut *conn).await?;
    sqlx::query("DELETE FROM login_throttle WHERE last_failure_at < $1 OR failures <= 0")
        .bind(ms(stale))
        .execute(conn)
        .await?;
    Ok(n.rows_affected())
}

/// The throttle counter of (`email`, `ip`): failures and the last one.
pub async fn throttle(conn: &mut AnyConnection, email: &str, ip: &str) -> StoreResult<Option<(i64, DateTime<Utc>)>> {
    let row = sqlx::query("SELECT failures, last_failure_at FROM login_throttle WHERE email = $1 AND ip = $2")
        .bind(email)
        .bind(ip)
        .fetch_optional(conn)
        .await?;
    row.map(|r| Ok((r.try_get("failures")?, from_ms(r.try_get("last_failure_at")?)))).transpose()
}

/// Sets the counter to `failures` at `now` if it still reads `seen`
/// (compare-and-set); whether this caller won.
pub async fn claim_throttle(
    conn: &mut AnyConnection,
    email: &str,
    ip: &str,
    seen: Option<(i64, DateTime<Utc>)>,
    failures: i64,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let done = match seen {
        None => sqlx::query(
            "INSERT INTO login_throttle (email, ip, failures, last_failure_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (email, ip) DO NOTHING",
        )
        .bind(email)
        .bind(ip)
        .bind(failures)
        .bind(ms(now))
        .execute(conn)
        .await?
        .rows_affected(),
        Some((old, last)) => sqlx::query(
            "UPDATE login_throttle SET failures = $3, last_failure_at = $4
             WHERE email = $1 AND ip = $2 AND failures = $5 AND last_failure_at = $6",
        )
        .bind(email)
        .bind(ip)
        .bind(failures)
        .bind(ms(now))
        .bind(old)
        .bind(ms(last))
        .execute(conn)
        .await?
        .rows_affected(),
    };
    Ok(done == 1)
}

/// After a successful sign-in: forgets the failures of (`email`, `ip`) and
/// gives back the slot the attempt took from the address-wide counter
/// (`any_email`), so successes never count against an address.
pub async fn clear_throttle(conn: &mut AnyConnection, email: &str, any_email: &str, ip: &str) -> StoreResult<()> {
    sqlx::query("DELETE FROM login_throttle WHERE email = $1 AND ip = $2")
        .bind(email)
        .bind(ip)
        .execute(&mut *conn)
        .await?;
    sqlx::query("UPDATE login_throttle SET failures = failures - 1 WHERE email = $1 AND ip = $2 AND failures > 0")
        .bind(any_email)
        .bind(ip)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn delete_session(conn: &mut AnyConnection, id_hash: &str) -> StoreResult<()> {
    sqlx::query("DELETE FROM sessions WHERE id_hash = $1").bind(id_hash).execute(conn).await?;
    Ok(())
}

/// Ends every session of a user except `keep` (after a password change).
pub async fn delete_other_sessions(conn: &mut AnyConnection, user_id: &UserId, keep: &str) -> StoreResult<()> {
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
