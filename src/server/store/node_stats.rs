//! The deployment's request statistics: per node, minute and route (see
//! [`crate::server::metrics`]), and the nodes serving.

use chrono::{DateTime, Utc};
use sqlx::{AnyConnection, Row};

use super::{StoreResult, from_ms, ms};
use crate::domain::latency::{Agg, BUCKETS};

const BUCKET_COLS: &str = "b0, b1, b2, b3, b4, b5, b6, b7, b8, b9, b10, b11";

/// Adds a node's requests of one minute and route to what it reported
/// before for them.
pub async fn add_minute(
    conn: &mut AnyConnection,
    node: &str,
    minute: i64,
    method: &str,
    route: &str,
    a: &Agg,
) -> StoreResult<()> {
    let binds: Vec<String> = (8..8 + BUCKETS.len()).map(|i| format!("${i}")).collect();
    let adds: Vec<String> =
        (0..BUCKETS.len()).map(|i| format!("b{i} = node_request_minutes.b{i} + excluded.b{i}")).collect();
    let sql = format!(
        "INSERT INTO node_request_minutes (node_id, minute, method, route, requests, errors, sum_micros, {BUCKET_COLS})
         VALUES ($1, $2, $3, $4, $5, $6, $7, {}) ON CONFLICT (node_id, minute, method, route) DO UPDATE SET
         requests = node_request_minutes.requests + excluded.requests,
         errors = node_request_minutes.errors + excluded.errors,
         sum_micros = node_request_minutes.sum_micros + excluded.sum_micros, {}",
        binds.join(", "),
        adds.join(", ")
    );
    let mut q = sqlx::query(&sql)
        .bind(node)
        .bind(minute)
        .bind(method)
        .bind(route)
        .bind(a.requests as i64)
        .bind(a.errors as i64)
        .bind(a.sum_micros as i64);
    for b in a.buckets {
        q = q.bind(b as i64);
    }
    q.execute(conn).await?;
    Ok(())
}

/// Every node's requests from minute `since` on, per method and route.
pub async fn since(conn: &mut AnyConnection, since: i64) -> StoreResult<Vec<(String, String, Agg)>> {
    let sums: Vec<String> = (0..BUCKETS.len()).map(|i| format!("CAST(SUM(b{i}) AS BIGINT) AS b{i}")).collect();
    let rows = sqlx::query(&format!(
        "SELECT method, route, CAST(SUM(requests) AS BIGINT) AS requests, CAST(SUM(errors) AS BIGINT) AS errors,
         CAST(SUM(sum_micros) AS BIGINT) AS sum_micros, {} FROM node_request_minutes WHERE minute >= $1
         GROUP BY method, route",
        sums.join(", ")
    ))
    .bind(since)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            let n = |c: &str| r.try_get::<i64, _>(c).map(|v| v.max(0) as u64);
            let mut a =
                Agg { requests: n("requests")?, errors: n("errors")?, sum_micros: n("sum_micros")?, ..Agg::default() };
            for (i, b) in a.buckets.iter_mut().enumerate() {
                *b = n(&format!("b{i}"))?;
            }
            Ok((r.try_get("method")?, r.try_get("route")?, a))
        })
        .collect()
}

/// Says that `node` (started at `started_at`) is serving.
pub async fn seen(
    conn: &mut AnyConnection,
    node: &str,
    started_at: DateTime<Utc>,
    now: DateTime<Utc>,
    version: &str,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO nodes (node_id, started_at, seen_at, version) VALUES ($1, $2, $3, $4)
         ON CONFLICT (node_id) DO UPDATE SET seen_at = excluded.seen_at, version = excluded.version",
    )
    .bind(node)
    .bind(ms(started_at))
    .bind(ms(now))
    .bind(version)
    .execute(conn)
    .await?;
    Ok(())
}

/// Nodes that reported since `at`: `(node id, started at)`.
pub async fn nodes_seen_since(
    conn: &mut AnyConnection,
    at: DateTime<Utc>,
) -> StoreResult<Vec<(String, DateTime<Utc>)>> {
    let rows = sqlx::query("SELECT node_id, started_at FROM nodes WHERE seen_at >= $1 ORDER BY node_id")
        .bind(ms(at))
        .fetch_all(conn)
        .await?;
    rows.iter().map(|r| Ok((r.try_get("node_id")?, from_ms(r.try_get("started_at")?)))).collect()
}

/// Forgets minutes before `minute`, and nodes silent since then.
pub async fn forget_before(conn: &mut AnyConnection, minute: i64) -> StoreResult<()> {
    sqlx::query("DELETE FROM node_request_minutes WHERE minute < $1").bind(minute).execute(&mut *conn).await?;
    sqlx::query("DELETE FROM nodes WHERE seen_at < $1").bind(minute).execute(conn).await?;
    Ok(())
}
