//! Webhook endpoints and the durable outbox of their deliveries.
//!
//! [`enqueue`] runs inside the transaction of the change it reports, so an
//! event exists exactly when its change committed. Nodes take due
//! deliveries with a lease ([`claim`]): on PostgreSQL `FOR UPDATE SKIP
//! LOCKED` hands each row to one node; a node that dies mid-attempt lets the
//! lease run out and another (or itself, restarted) takes it again. Only
//! the lease's holder may record the attempt ([`finish`]).

use super::StoreError;
use chrono::{DateTime, Utc};
use sqlx::{AnyConnection, Row};

use super::{Backend, StoreResult, from_ms, ms};
use crate::domain::webhooks::{Delivery, DeliveryStatus, Endpoint, EndpointSpec, EventType};

/// `,a,b,` for `LIKE '%,a,%'` matching.
fn events_column(events: &[EventType]) -> String {
    let mut s = String::from(",");
    for e in events {
        s.push_str(e.as_str());
        s.push(',');
    }
    s
}

fn events_of(column: &str) -> Vec<EventType> {
    column.split(',').filter_map(EventType::parse).collect()
}

pub async fn insert_endpoint(
    conn: &mut AnyConnection,
    id: &str,
    spec: &EndpointSpec,
    secret: &str,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO webhook_endpoints (id, url, secret, events, description, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(&spec.url)
    .bind(secret)
    .bind(events_column(&spec.events))
    .bind(&spec.description)
    .bind(ms(now))
    .execute(conn)
    .await?;
    Ok(())
}

const ENDPOINT_COLS: &str = "e.id, e.url, e.events, e.description, e.created_at, e.deleted_at,
    CAST(COALESCE(SUM(CASE WHEN d.status = 'pending' THEN 1 ELSE 0 END), 0) AS BIGINT) AS pending,
    CAST(COALESCE(SUM(CASE WHEN d.status = 'delivered' THEN 1 ELSE 0 END), 0) AS BIGINT) AS delivered,
    CAST(COALESCE(SUM(CASE WHEN d.status = 'failed' THEN 1 ELSE 0 END), 0) AS BIGINT) AS failed";

fn endpoint_from_row(r: &sqlx::any::AnyRow) -> StoreResult<Endpoint> {
    Ok(Endpoint {
        id: r.try_get("id")?,
        url: r.try_get("url")?,
        events: events_of(&r.try_get::<String, _>("events")?),
        description: r.try_get("description")?,
        created_at: from_ms(r.try_get("created_at")?),
        deleted_at: r.try_get::<Option<i64>, _>("deleted_at")?.map(from_ms),
        pending: r.try_get("pending")?,
        delivered: r.try_get("delivered")?,
        failed: r.try_get("failed")?,
    })
}

/// Endpoints (deleted ones too when asked), newest first, with their
/// deliveries counted by status.
pub async fn endpoints(conn: &mut AnyConnection, with_deleted: bool) -> StoreResult<Vec<Endpoint>> {
    let filter = if with_deleted { "" } else { "WHERE e.deleted_at IS NULL" };
    let rows = sqlx::query(&format!(
        "SELECT {ENDPOINT_COLS} FROM webhook_endpoints e LEFT JOIN webhook_deliveries d ON d.endpoint_id = e.id
         {filter} GROUP BY e.id, e.url, e.events, e.description, e.created_at, e.deleted_at
         ORDER BY e.created_at DESC, e.id"
    ))
    .fetch_all(conn)
    .await?;
    rows.iter().map(endpoint_from_row).collect()
}

pub async fn endpoint(conn: &mut AnyConnection, id: &str) -> StoreResult<Option<Endpoint>> {
    let row = sqlx::query(&format!(
        "SELECT {ENDPOINT_COLS} FROM webhook_endpoints e LEFT JOIN webhook_deliveries d ON d.endpoint_id = e.id
         WHERE e.id = $1 GROUP BY e.id, e.url, e.events, e.description, e.created_at, e.deleted_at"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(endpoint_from_row).transpose()
}

/// Deletes an endpoint: it receives nothing more and its pending deliveries
/// are cancelled. False when there is no such live endpoint.
pub async fn delete_endpoint(conn: &mut AnyConnection, id: &str, now: DateTime<Utc>) -> StoreResult<bool> {
    let r = sqlx::query("UPDATE webhook_endpoints SET deleted_at = $2 WHERE id = $1 AND deleted_at IS NULL")
        .bind(id)
        .bind(ms(now))
        .execute(&mut *conn)
        .await?;
    if r.rows_affected() == 0 {
        return Ok(false);
    }
    sqlx::query(
        "UPDATE webhook_deliveries SET status = 'cancelled', next_attempt_at = NULL, lease_until = NULL, lease_token = NULL
         WHERE endpoint_id = $1 AND status = 'pending'",
    )
    .bind(id)
    .execute(conn)
    .await?;
    Ok(true)
}

/// Puts an event in the outbox for every live endpoint subscribed to its
/// type, due at once; nothing when none is. The event's id when written.
pub async fn enqueue(
    conn: &mut AnyConnection,
    event_type: EventType,
    data: &impl serde::Serialize,
    now: DateTime<Utc>,
) -> StoreResult<Option<String>> {
    let targets: Vec<String> =
        sqlx::query_scalar("SELECT id FROM webhook_endpoints WHERE deleted_at IS NULL AND events LIKE $1")
            .bind(format!("%,{},%", event_type.as_str()))
            .fetch_all(&mut *conn)
            .await?;
    if targets.is_empty() {
        return Ok(None);
    }
    let id = format!("evt_{}", uuid::Uuid::new_v4().simple());
    /// The body every delivery of the event sends.
    #[derive(serde::Serialize)]
    struct Body<'a, T> {
        id: &'a str,
        #[serde(rename = "type")]
        event_type: &'static str,
        created_at: String,
        data: &'a T,
    }
    let body = Body {
        id: &id,
        event_type: event_type.as_str(),
        created_at: now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        data,
    };
    let body = serde_json::to_string(&body).map_err(|e| StoreError::Corrupt(format!("a webhook body: {e}")))?;
    sqlx::query("INSERT INTO webhook_events (id, event_type, created_at, body) VALUES ($1, $2, $3, $4)")
        .bind(&id)
        .bind(event_type.as_str())
        .bind(ms(now))
        .bind(&body)
        .execute(&mut *conn)
        .await?;
    for endpoint in targets {
        sqlx::query(
            "INSERT INTO webhook_deliveries (endpoint_id, event_id, status, next_attempt_at, created_at)
             VALUES ($1, $2, 'pending', $3, $3)",
        )
        .bind(endpoint)
        .bind(&id)
        .bind(ms(now))
        .execute(&mut *conn)
        .await?;
    }
    Ok(Some(id))
}

/// Whether any delivery is due at `now` (a read, so an idle node's poll
/// writes nothing).
pub async fn any_due(conn: &mut AnyConnection, now: DateTime<Utc>) -> StoreResult<bool> {
    let row = sqlx::query(
        "SELECT id FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= $1
         AND (lease_until IS NULL OR lease_until <= $1) LIMIT 1",
    )
    .bind(ms(now))
    .fetch_optional(conn)
    .await?;
    Ok(row.is_some())
}

/// Endpoints whose secret is stored as it is (from before secrets were
/// sealed): their id and secret.
pub async fn plain_secrets(conn: &mut AnyConnection) -> StoreResult<Vec<(String, String)>> {
    let rows =
        sqlx::query("SELECT id, secret FROM webhook_endpoints WHERE secret NOT LIKE 'enc1:%'").fetch_all(conn).await?;
    rows.iter().map(|r| Ok((r.try_get("id")?, r.try_get("secret")?))).collect()
}

/// Replaces an endpoint's stored secret (with its sealed form).
pub async fn set_secret(conn: &mut AnyConnection, id: &str, stored: &str) -> StoreResult<()> {
    sqlx::query("UPDATE webhook_endpoints SET secret = $2 WHERE id = $1").bind(id).bind(stored).execute(conn).await?;
    Ok(())
}

/// A delivery this node holds the lease of, with what it needs to send it.
#[derive(Clone, Debug)]
pub struct Claimed {
    pub id: i64,
    pub endpoint_id: String,
    pub event_id: String,
    pub url: String,
    pub secret: String,
    pub body: String,
    /// Attempts made before this one.
    pub attempts: i64,
    pub first_attempt_at: Option<DateTime<Utc>>,
}

/// Takes up to `limit` due deliveries for this node until `lease_until`,
/// under `token`; none of them is handed to another node meanwhile.
pub async fn claim(
    conn: &mut AnyConnection,
    backend: Backend,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    token: &str,
    limit: i64,
) -> StoreResult<Vec<Claimed>> {
    let skip_locked = match backend {
        Backend::Postgres => "FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    sqlx::query(&format!(
        "UPDATE webhook_deliveries SET lease_until = $1, lease_token = $2 WHERE id IN (
           SELECT id FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= $3
           AND (lease_until IS NULL OR lease_until <= $3) ORDER BY next_attempt_at, id LIMIT $4 {skip_locked})"
    ))
    .bind(ms(lease_until))
    .bind(token)
    .bind(ms(now))
    .bind(limit)
    .execute(&mut *conn)
    .await?;
    let rows = sqlx::query(
        "SELECT d.id, d.endpoint_id, d.event_id, d.attempts, d.first_attempt_at, e.url, e.secret, v.body
         FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id
         JOIN webhook_events v ON v.id = d.event_id WHERE d.lease_token = $1 AND d.status = 'pending' ORDER BY d.id",
    )
    .bind(token)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Claimed {
                id: r.try_get("id")?,
                endpoint_id: r.try_get("endpoint_id")?,
                event_id: r.try_get("event_id")?,
                url: r.try_get("url")?,
                secret: r.try_get("secret")?,
                body: r.try_get("body")?,
                attempts: r.try_get("attempts")?,
                first_attempt_at: r.try_get::<Option<i64>, _>("first_attempt_at")?.map(from_ms),
            })
        })
        .collect()
}

/// The result of one attempt.
#[derive(Clone, Debug)]
pub struct Attempt {
    pub at: DateTime<Utc>,
    /// The HTTP status, if the endpoint answered.
    pub status: Option<u16>,
    pub error: Option<String>,
    /// What becomes of the delivery: delivered, retried at, or failed.
    pub next: DeliveryStatus,
    pub retry_at: Option<DateTime<Utc>>,
}

/// Records an attempt of a delivery this node holds under `token`, and
/// lets the lease go. False when the lease was lost meanwhile (it ran out
/// and another node took the delivery): that node records its own.
pub async fn finish(conn: &mut AnyConnection, id: i64, token: &str, a: &Attempt) -> StoreResult<bool> {
    let r = sqlx::query(
        "UPDATE webhook_deliveries SET status = $3, attempts = attempts + 1, next_attempt_at = $4, lease_until = NULL,
         lease_token = NULL, last_status = $5, last_error = $6, last_attempt_at = $7,
         first_attempt_at = COALESCE(first_attempt_at, $7), delivered_at = $8
         WHERE id = $1 AND lease_token = $2",
    )
    .bind(id)
    .bind(token)
    .bind(a.next.as_str())
    .bind(a.retry_at.map(ms))
    .bind(a.status.map(i64::from))
    .bind(a.error.as_deref())
    .bind(ms(a.at))
    .bind((a.next == DeliveryStatus::Delivered).then(|| ms(a.at)))
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

const DELIVERY_COLS: &str = "d.id, d.endpoint_id, d.event_id, v.event_type, d.status, d.attempts, d.last_status,
    d.last_error, d.last_attempt_at, d.next_attempt_at, d.created_at, d.delivered_at";

fn delivery_from_row(r: &sqlx::any::AnyRow) -> StoreResult<Delivery> {
    let event_type: String = r.try_get("event_type")?;
    let status: String = r.try_get("status")?;
    let bad = |what: &str, v: &str| super::StoreError::Config(format!("unknown webhook {what} `{v}` in the store"));
    Ok(Delivery {
        id: r.try_get("id")?,
        endpoint_id: r.try_get("endpoint_id")?,
        event_id: r.try_get("event_id")?,
        event_type: EventType::parse(&event_type).ok_or_else(|| bad("event type", &event_type))?,
        status: DeliveryStatus::parse(&status).ok_or_else(|| bad("delivery status", &status))?,
        attempts: r.try_get("attempts")?,
        last_status: r.try_get("last_status")?,
        last_error: r.try_get("last_error")?,
        last_attempt_at: r.try_get::<Option<i64>, _>("last_attempt_at")?.map(from_ms),
        next_attempt_at: r.try_get::<Option<i64>, _>("next_attempt_at")?.map(from_ms),
        created_at: from_ms(r.try_get("created_at")?),
        delivered_at: r.try_get::<Option<i64>, _>("delivered_at")?.map(from_ms),
    })
}

/// An endpoint's deliveries, newest first.
pub async fn deliveries(conn: &mut AnyConnection, endpoint_id: &str, limit: i64) -> StoreResult<Vec<Delivery>> {
    let rows = sqlx::query(&format!(
        "SELECT {DELIVERY_COLS} FROM webhook_deliveries d JOIN webhook_events v ON v.id = d.event_id
         WHERE d.endpoint_id = $1 ORDER BY d.id DESC LIMIT $2"
    ))
    .bind(endpoint_id)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.iter().map(delivery_from_row).collect()
}

pub async fn delivery(conn: &mut AnyConnection, endpoint_id: &str, id: i64) -> StoreResult<Option<Delivery>> {
    let row = sqlx::query(&format!(
        "SELECT {DELIVERY_COLS} FROM webhook_deliveries d JOIN webhook_events v ON v.id = d.event_id
         WHERE d.endpoint_id = $1 AND d.id = $2"
    ))
    .bind(endpoint_id)
    .bind(id)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(delivery_from_row).transpose()
}

/// Sends a delivery again (same event, same `Tally-Webhook-Id`) at once,
/// with a new day of retries. A delivery being attempted right now keeps
/// its lease, and that attempt's outcome, recorded when it ends, stands.
pub async fn replay(conn: &mut AnyConnection, endpoint_id: &str, id: i64, now: DateTime<Utc>) -> StoreResult<bool> {
    let r = sqlx::query(
        "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $3, first_attempt_at = NULL
         WHERE endpoint_id = $1 AND id = $2",
    )
    .bind(endpoint_id)
    .bind(id)
    .bind(ms(now))
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}
