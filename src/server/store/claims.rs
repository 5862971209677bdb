//! The tracking proxy's claims on call ids (`proxy_calls`): which attempt
//! of a caller's `x-tally-event-id` is in force, and since when. Whether
//! that attempt is done, failed or still in flight is read from its event.

use crate::domain::identity::UserId;
use chrono::{DateTime, Utc};
use sqlx::{AnyConnection, Row};

use super::{StoreResult, from_ms, ms};
use crate::domain::money::Nanos;

/// Claims `call_id` for `user_id` as its first attempt; `false` when it
/// was claimed before (by this node or another: the primary key decides).
pub async fn claim_first(
    conn: &mut AnyConnection,
    user_id: &UserId,
    call_id: &str,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "INSERT INTO proxy_calls (user_id, call_id, attempt, claimed_at) VALUES ($1, $2, 1, $3)
         ON CONFLICT (user_id, call_id) DO NOTHING",
    )
    .bind(user_id)
    .bind(call_id)
    .bind(ms(now))
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The attempt in force and when it was claimed or last renewed.
pub async fn claim_of(
    conn: &mut AnyConnection,
    user_id: &UserId,
    call_id: &str,
) -> StoreResult<Option<(i64, DateTime<Utc>)>> {
    let row = sqlx::query("SELECT attempt, claimed_at FROM proxy_calls WHERE user_id = $1 AND call_id = $2")
        .bind(user_id)
        .bind(call_id)
        .fetch_optional(conn)
        .await?;
    row.map(|r| Ok((r.try_get("attempt")?, from_ms(r.try_get("claimed_at")?)))).transpose()
}

/// Moves `call_id` from attempt `seen` to the next; `false` when another
/// request moved it first (a compare-and-set, so two retries racing on two
/// nodes cannot both win).
pub async fn claim_next(
    conn: &mut AnyConnection,
    user_id: &UserId,
    call_id: &str,
    seen: i64,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE proxy_calls SET attempt = attempt + 1, claimed_at = $4
         WHERE user_id = $1 AND call_id = $2 AND attempt = $3",
    )
    .bind(user_id)
    .bind(call_id)
    .bind(seen)
    .bind(ms(now))
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Sets when attempt `attempt` of `call_id` was last known to run: now,
/// while it runs; the epoch, to give it back unused (a call refused before
/// the provider), so the next claim of the id takes the next attempt at
/// once.
pub async fn touch(
    conn: &mut AnyConnection,
    user_id: &UserId,
    call_id: &str,
    attempt: i64,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    sqlx::query("UPDATE proxy_calls SET claimed_at = $4 WHERE user_id = $1 AND call_id = $2 AND attempt = $3")
        .bind(user_id)
        .bind(call_id)
        .bind(attempt)
        .bind(ms(at))
        .execute(conn)
        .await?;
    Ok(())
}

/// The status and cost an event was recorded with, if it was.
pub async fn event_outcome(
    conn: &mut AnyConnection,
    user_id: &UserId,
    event_id: &str,
) -> StoreResult<Option<(u16, Nanos)>> {
    let row =
        sqlx::query("SELECT status_code, cost_total_nanos FROM usage_events WHERE user_id = $1 AND event_id = $2")
            .bind(user_id)
            .bind(event_id)
            .fetch_optional(conn)
            .await?;
    row.map(|r| {
        let status: i64 = r.try_get("status_code")?;
        Ok((u16::try_from(status).unwrap_or(500), Nanos(r.try_get("cost_total_nanos")?)))
    })
    .transpose()
}

/// Extends a reservation's open holds to `until` (a running call keeps
/// the room it was given); consumed or lapsed holds stay as they are.
pub async fn extend_holds(
    conn: &mut AnyConnection,
    user_id: &UserId,
    reservation_id: &str,
    until: DateTime<Utc>,
    now: DateTime<Utc>,
) -> StoreResult<u64> {
    let done = sqlx::query(
        "UPDATE reservations SET expires_at = $3
         WHERE id = $1 AND user_id = $2 AND consumed_at IS NULL AND expires_at > $4 AND expires_at < $3",
    )
    .bind(reservation_id)
    .bind(user_id)
    .bind(ms(until))
    .bind(ms(now))
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}
