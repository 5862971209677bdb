//! Usage events, their per-period rollups, reservations, alerts and billing
//! records.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::{AnyConnection, Row};

use super::{StoreResult, from_ms, ms};
use crate::domain::alerts::NewAlert;
use crate::domain::event::UsageEvent;
use crate::domain::limits::{ProviderUsage, Usage};
use crate::domain::money::Nanos;
use crate::domain::pricing::Cost;
use crate::domain::provider::Provider;

/// What the store keeps of a priced event beyond the event itself.
pub struct PricedEvent<'a> {
    pub event: &'a UsageEvent,
    pub units: u64,
    pub cost: Cost,
    pub price_version_id: Option<i64>,
    pub unpriced: bool,
    pub period_start: DateTime<Utc>,
    pub billing_period: String,
    /// Timestamped in a period already billed; billed in the open one.
    pub late: bool,
}

/// The cost first recorded for an event id, and whether it was unpriced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recorded {
    pub cost: Nanos,
    pub unpriced: bool,
}

/// Inserts the event unless its (user, id) exists. Returns `None` when
/// inserted, or what was recorded first for a duplicate.
pub async fn insert_event(
    conn: &mut AnyConnection,
    p: &PricedEvent<'_>,
    now: DateTime<Utc>,
) -> StoreResult<Option<Recorded>> {
    let e = p.event;
    let inserted = sqlx::query(
        "INSERT INTO usage_events (user_id, event_id, provider, model, operation_type, endpoint, method, actual_provider_name,
         tokens_input, tokens_output, tokens_cached_input, units, cost_input_nanos, cost_output_nanos, cost_total_nanos,
         price_version_id, unpriced, response_time_ms, status_code, error_message, retry_count, occurred_at, recorded_at,
         period_start, billing_period, reservation_id, late)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27)
         ON CONFLICT (user_id, event_id) DO NOTHING RETURNING id",
    )
    .bind(&e.user_id)
    .bind(&e.id)
    .bind(e.provider.as_str())
    .bind(&e.model)
    .bind(&e.operation_type)
    .bind(&e.endpoint)
    .bind(&e.method)
    .bind(&e.actual_provider_name)
    .bind(e.tokens_input as i64)
    .bind(e.tokens_output as i64)
    .bind(e.tokens_cached_input as i64)
    .bind(p.units as i64)
    .bind(p.cost.input.0)
    .bind(p.cost.output.0)
    .bind(p.cost.total.0)
    .bind(p.price_version_id)
    .bind(p.unpriced as i64)
    .bind(e.response_time_ms.map(|v| v as i64))
    .bind(e.status_code as i64)
    .bind(&e.error_message)
    .bind(e.retry_count as i64)
    .bind(ms(e.timestamp))
    .bind(ms(now))
    .bind(ms(p.period_start))
    .bind(&p.billing_period)
    .bind(&e.reservation_id)
    .bind(p.late as i64)
    .fetch_optional(&mut *conn)
    .await?;
    if inserted.is_some() {
        return Ok(None);
    }
    let r = sqlx::query("SELECT cost_total_nanos, unpriced FROM usage_events WHERE user_id = $1 AND event_id = $2")
        .bind(&e.user_id)
        .bind(&e.id)
        .fetch_one(conn)
        .await?;
    Ok(Some(Recorded { cost: Nanos(r.try_get("cost_total_nanos")?), unpriced: r.try_get::<i64, _>("unpriced")? != 0 }))
}

/// Adds one event to its rollup row.
pub async fn add_to_rollup(conn: &mut AnyConnection, p: &PricedEvent<'_>) -> StoreResult<()> {
    let e = p.event;
    let d = RollupDelta {
        calls: 1,
        errors: e.is_error() as i64,
        tokens_input: e.tokens_input as i64,
        tokens_output: e.tokens_output as i64,
        tokens_cached_input: e.tokens_cached_input as i64,
        cost: p.cost.total,
        unpriced_calls: p.unpriced as i64,
        response_ms_sum: e.response_time_ms.unwrap_or(0) as i64,
        response_ms_count: e.response_time_ms.is_some() as i64,
    };
    let model = e.model.clone().unwrap_or_default();
    adjust_rollup(conn, &e.user_id, (p.period_start, &p.billing_period), e.provider.as_str(), &model, &d).await
}

/// A rollup row summed over models, or per model.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RollupSum {
    pub billing_period: String,
    pub provider: String,
    pub model: String,
    pub calls: i64,
    pub errors: i64,
    pub tokens_input: i64,
    pub tokens_output: i64,
    pub tokens_cached_input: i64,
    pub cost: Nanos,
    pub unpriced_calls: i64,
    pub response_ms_sum: i64,
    pub response_ms_count: i64,
}

impl RollupSum {
    pub fn tokens(&self) -> i64 {
        self.tokens_input + self.tokens_output
    }

    pub fn usage(&self) -> ProviderUsage {
        ProviderUsage { calls: self.calls, tokens: self.tokens(), cost: self.cost }
    }
}

const SUMS: &str = "CAST(SUM(calls) AS BIGINT) AS calls, CAST(SUM(errors) AS BIGINT) AS errors,
    CAST(SUM(tokens_input) AS BIGINT) AS tokens_input, CAST(SUM(tokens_output) AS BIGINT) AS tokens_output,
    CAST(SUM(tokens_cached_input) AS BIGINT) AS tokens_cached_input, CAST(SUM(cost_nanos) AS BIGINT) AS cost_nanos,
    CAST(SUM(unpriced_calls) AS BIGINT) AS unpriced_calls, CAST(SUM(response_ms_sum) AS BIGINT) AS response_ms_sum,
    CAST(SUM(response_ms_count) AS BIGINT) AS response_ms_count";

fn rollup_from_row(r: &sqlx::any::AnyRow, with_model: bool) -> StoreResult<RollupSum> {
    Ok(RollupSum {
        billing_period: r.try_get("billing_period")?,
        provider: r.try_get("provider")?,
        model: if with_model { r.try_get("model")? } else { String::new() },
        calls: r.try_get("calls")?,
        errors: r.try_get("errors")?,
        tokens_input: r.try_get("tokens_input")?,
        tokens_output: r.try_get("tokens_output")?,
        tokens_cached_input: r.try_get("tokens_cached_input")?,
        cost: Nanos(r.try_get("cost_nanos")?),
        unpriced_calls: r.try_get("unpriced_calls")?,
        response_ms_sum: r.try_get("response_ms_sum")?,
        response_ms_count: r.try_get("response_ms_count")?,
    })
}

/// Per provider (and per model when `by_model`) sums of one usage period.
pub async fn period_rollups(
    conn: &mut AnyConnection,
    user_id: &str,
    period_start: DateTime<Utc>,
    by_model: bool,
) -> StoreResult<Vec<RollupSum>> {
    let group = if by_model { "billing_period, provider, model" } else { "billing_period, provider" };
    let rows = sqlx::query(&format!(
        "SELECT {group}, {SUMS} FROM usage_rollups WHERE user_id = $1 AND period_start = $2 GROUP BY {group} ORDER BY {group}"
    ))
    .bind(user_id)
    .bind(ms(period_start))
    .fetch_all(conn)
    .await?;
    rows.iter().map(|r| rollup_from_row(r, by_model)).collect()
}

/// Per period (by start) and provider sums for the periods starting in
/// `[from, to]`.
pub async fn rollups_by_period(
    conn: &mut AnyConnection,
    user_id: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> StoreResult<Vec<(DateTime<Utc>, RollupSum)>> {
    let rows = sqlx::query(&format!(
        "SELECT period_start, billing_period, provider, {SUMS} FROM usage_rollups
         WHERE user_id = $1 AND period_start >= $2 AND period_start <= $3
         GROUP BY period_start, billing_period, provider ORDER BY period_start, provider"
    ))
    .bind(user_id)
    .bind(ms(from))
    .bind(ms(to))
    .fetch_all(conn)
    .await?;
    rows.iter().map(|r| Ok((from_ms(r.try_get("period_start")?), rollup_from_row(r, false)?))).collect()
}

/// The period's usage per provider.
pub async fn period_usage(conn: &mut AnyConnection, user_id: &str, period_start: DateTime<Utc>) -> StoreResult<Usage> {
    let mut u = Usage::default();
    for r in period_rollups(conn, user_id, period_start, false).await? {
        if let Ok(p) = Provider::parse(&r.provider) {
            u.add(&p, r.usage());
        }
    }
    Ok(u)
}

/// Live holds of a period per provider (not consumed, not expired).
pub async fn active_holds(
    conn: &mut AnyConnection,
    user_id: &str,
    period_start: DateTime<Utc>,
    now: DateTime<Utc>,
) -> StoreResult<BTreeMap<String, ProviderUsage>> {
    let rows = sqlx::query(
        "SELECT provider, CAST(SUM(calls) AS BIGINT) AS calls, CAST(SUM(tokens) AS BIGINT) AS tokens,
         CAST(SUM(cost_nanos) AS BIGINT) AS cost_nanos FROM reservations
         WHERE user_id = $1 AND period_start = $2 AND consumed_at IS NULL AND expires_at > $3 GROUP BY provider",
    )
    .bind(user_id)
    .bind(ms(period_start))
    .bind(ms(now))
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("provider")?,
                ProviderUsage {
                    calls: r.try_get("calls")?,
                    tokens: r.try_get("tokens")?,
                    cost: Nanos(r.try_get("cost_nanos")?),
                },
            ))
        })
        .collect()
}

pub struct NewHold<'a> {
    pub id: &'a str,
    /// The operation's place in its reservation.
    pub op_index: i64,
    pub user_id: &'a str,
    pub period_start: DateTime<Utc>,
    pub provider: &'a str,
    /// The operation's model; empty when it named none.
    pub model: &'a str,
    pub usage: ProviderUsage,
    pub expires_at: DateTime<Utc>,
}

pub async fn insert_hold(conn: &mut AnyConnection, h: &NewHold<'_>, now: DateTime<Utc>) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO reservations (id, op_index, user_id, period_start, provider, model, calls, tokens, cost_nanos,
         created_at, expires_at) VALUES ($1, $10, $2, $3, $4, $11, $5, $6, $7, $8, $9)",
    )
    .bind(h.id)
    .bind(h.user_id)
    .bind(ms(h.period_start))
    .bind(h.provider)
    .bind(h.usage.calls)
    .bind(h.usage.tokens)
    .bind(h.usage.cost.0)
    .bind(ms(now))
    .bind(ms(h.expires_at))
    .bind(h.op_index)
    .bind(h.model)
    .execute(conn)
    .await?;
    Ok(())
}

/// Releases the hold of `reservation_id` for this provider: the event that
/// names it now counts instead.
/// Settles one hold of a reservation: the first open one of the event's
/// provider and model, else of its provider with no model named. The
/// reservation's other holds keep counting.
pub async fn consume_hold(
    conn: &mut AnyConnection,
    user_id: &str,
    reservation_id: &str,
    provider: &str,
    model: &str,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE reservations SET consumed_at = $4 WHERE id = $1 AND user_id = $2 AND op_index = (
           SELECT op_index FROM reservations WHERE id = $1 AND user_id = $2 AND provider = $3 AND consumed_at IS NULL
             AND (model = $5 OR model = '')
           ORDER BY CASE WHEN model = $5 THEN 0 ELSE 1 END, op_index LIMIT 1)",
    )
    .bind(reservation_id)
    .bind(user_id)
    .bind(provider)
    .bind(ms(now))
    .bind(model)
    .execute(conn)
    .await?;
    Ok(())
}

/// Inserts an alert unless its dedupe key exists; true when inserted.
pub async fn insert_alert(
    conn: &mut AnyConnection,
    user_id: Option<&str>,
    period: Option<(DateTime<Utc>, &str)>,
    a: &NewAlert,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let r = sqlx::query(
        "INSERT INTO alerts (user_id, period_start, billing_period, alert_type, limit_key, threshold, provider, title, message,
         severity, is_read, created_at, dedupe_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 0, $11, $12)
         ON CONFLICT (dedupe_key) DO NOTHING",
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
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// A stored alert.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlertRow {
    pub id: i64,
    pub user_id: Option<String>,
    pub alert_type: String,
    pub limit_key: Option<String>,
    pub threshold: i64,
    pub provider: Option<String>,
    pub title: String,
    pub message: String,
    pub severity: String,
    pub is_read: bool,
    pub read_at: Option<DateTime<Utc>>,
    pub billing_period: Option<String>,
    pub created_at: DateTime<Utc>,
}

fn alert_from_row(r: &sqlx::any::AnyRow) -> StoreResult<AlertRow> {
    Ok(AlertRow {
        id: r.try_get("id")?,
        user_id: r.try_get("user_id")?,
        alert_type: r.try_get("alert_type")?,
        limit_key: r.try_get("limit_key")?,
        threshold: r.try_get("threshold")?,
        provider: r.try_get("provider")?,
        title: r.try_get("title")?,
        message: r.try_get("message")?,
        severity: r.try_get("severity")?,
        is_read: r.try_get::<i64, _>("is_read")? != 0,
        read_at: r.try_get::<Option<i64>, _>("read_at")?.map(from_ms),
        billing_period: r.try_get("billing_period")?,
        created_at: from_ms(r.try_get("created_at")?),
    })
}

/// A user's alerts (or the admin alerts when `user_id` is `None`), unread
/// first, newest first.
pub async fn alerts(
    conn: &mut AnyConnection,
    user_id: Option<&str>,
    unread_only: bool,
    limit: i64,
) -> StoreResult<Vec<AlertRow>> {
    let unread = if unread_only { "AND is_read = 0" } else { "" };
    let cols = "id, user_id, alert_type, limit_key, threshold, provider, title, message, severity, is_read, read_at, billing_period, created_at";
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

pub async fn unread_alert_count(conn: &mut AnyConnection, user_id: &str) -> StoreResult<i64> {
    Ok(sqlx::query("SELECT CAST(COUNT(*) AS BIGINT) AS n FROM alerts WHERE user_id = $1 AND is_read = 0")
        .bind(user_id)
        .fetch_one(conn)
        .await?
        .try_get("n")?)
}

/// A closed period's bill.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BillingRecord {
    pub user_id: String,
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
    pub billing_period: String,
    pub plan_id: Option<i64>,
    pub plan_name: String,
    pub plan_fee: Nanos,
    pub usage_cost: Nanos,
    pub total: Nanos,
    pub status: String,
}

pub async fn insert_billing_record(conn: &mut AnyConnection, b: &BillingRecord, now: DateTime<Utc>) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO billing_records (user_id, period_start, period_end, billing_period, plan_id, plan_name, plan_fee_nanos,
         usage_cost_nanos, total_nanos, status, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         ON CONFLICT (user_id, period_start) DO NOTHING",
    )
    .bind(&b.user_id)
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
    Ok(())
}

pub async fn billing_records(conn: &mut AnyConnection, user_id: &str) -> StoreResult<Vec<BillingRecord>> {
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

/// The owner of an alert (`None` for an admin alert), if the alert exists.
pub async fn alert_owner(conn: &mut AnyConnection, alert_id: i64) -> StoreResult<Option<Option<String>>> {
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
pub async fn mark_all_alerts_read(conn: &mut AnyConnection, user_id: &str, now: DateTime<Utc>) -> StoreResult<u64> {
    let r = sqlx::query("UPDATE alerts SET is_read = 1, read_at = $2 WHERE user_id = $1 AND is_read = 0")
        .bind(user_id)
        .bind(ms(now))
        .execute(conn)
        .await?;
    Ok(r.rows_affected())
}

/// Filters of the usage log.
#[derive(Clone, Debug, Default)]
pub struct LogFilter {
    pub provider: Option<String>,
    pub status_code: Option<i64>,
    /// `success` (< 400) or `failed` (>= 400).
    pub failed: Option<bool>,
    pub billing_period: Option<String>,
}

/// One recorded event, as the usage log shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogRow {
    pub id: i64,
    pub event_id: String,
    pub occurred_at: DateTime<Utc>,
    pub provider: String,
    pub actual_provider_name: Option<String>,
    pub model: Option<String>,
    pub operation_type: Option<String>,
    pub endpoint: Option<String>,
    pub method: Option<String>,
    pub tokens_input: i64,
    pub tokens_output: i64,
    pub tokens_cached_input: i64,
    pub units: i64,
    pub cost_input: Nanos,
    pub cost_output: Nanos,
    pub cost_total: Nanos,
    pub unpriced: bool,
    pub response_time_ms: Option<i64>,
    pub status_code: i64,
    pub error_message: Option<String>,
    pub billing_period: String,
    pub retry_count: i64,
}

/// A user's events, newest first, filtered and paginated, with the total.
/// Where a usage-log page starts: an offset (the family A contract), or
/// after a row (keyset: the cost of a deep page does not grow with depth).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogStart {
    Offset(i64),
    /// Rows strictly older than this (occurred_at, id).
    Before(DateTime<Utc>, i64),
}

/// The WHERE clause of a filter with only the filters that are set (so the
/// database can use its indexes), and the values to bind after `user_id`.
fn log_where(f: &LogFilter) -> (String, Vec<Bind>) {
    let mut sql = String::from("user_id = $1");
    let mut binds = Vec::new();
    let mut push = |clause: &str, b: Bind| {
        binds.push(b);
        sql.push_str(&format!(" AND {clause}${}", binds.len() + 1));
    };
    if let Some(p) = &f.provider {
        push("provider = ", Bind::Text(p.clone()));
    }
    if let Some(c) = f.status_code {
        push("status_code = ", Bind::Int(c));
    }
    if let Some(l) = &f.billing_period {
        push("billing_period = ", Bind::Text(l.clone()));
    }
    match f.failed {
        Some(true) => sql.push_str(" AND status_code >= 400"),
        Some(false) => sql.push_str(" AND status_code < 400"),
        None => {}
    }
    (sql, binds)
}

enum Bind {
    Text(String),
    Int(i64),
}

fn bind_all<'q>(
    mut q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    binds: &'q [Bind],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    for b in binds {
        q = match b {
            Bind::Text(s) => q.bind(s.as_str()),
            Bind::Int(i) => q.bind(*i),
        };
    }
    q
}

/// One page of a user's usage log, newest first.
pub async fn usage_log(
    conn: &mut AnyConnection,
    user_id: &str,
    f: &LogFilter,
    limit: i64,
    start: LogStart,
) -> StoreResult<Vec<LogRow>> {
    let (mut filter, binds) = log_where(f);
    let n = binds.len() + 2;
    let page = match start {
        LogStart::Offset(_) => format!("LIMIT ${n} OFFSET ${}", n + 1),
        LogStart::Before(..) => {
            filter.push_str(&format!(
                " AND (occurred_at < ${} OR (occurred_at = ${} AND id < ${}))",
                n + 1,
                n + 1,
                n + 2
            ));
            format!("LIMIT ${n}")
        }
    };
    let sql = format!(
        "SELECT id, event_id, occurred_at, provider, actual_provider_name, model, operation_type, endpoint, method, tokens_input,
         tokens_output, tokens_cached_input, units, cost_input_nanos, cost_output_nanos, cost_total_nanos, unpriced,
         response_time_ms, status_code, error_message, billing_period, retry_count
         FROM usage_events WHERE {filter} ORDER BY occurred_at DESC, id DESC {page}"
    );
    let mut q = bind_all(sqlx::query(&sql).bind(user_id), &binds).bind(limit);
    q = match start {
        LogStart::Offset(o) => q.bind(o),
        LogStart::Before(at, id) => q.bind(ms(at)).bind(id),
    };
    let rows = q.fetch_all(&mut *conn).await?;
    let list = rows
        .iter()
        .map(|r| {
            Ok(LogRow {
                id: r.try_get("id")?,
                event_id: r.try_get("event_id")?,
                occurred_at: from_ms(r.try_get("occurred_at")?),
                provider: r.try_get("provider")?,
                actual_provider_name: r.try_get("actual_provider_name")?,
                model: r.try_get("model")?,
                operation_type: r.try_get("operation_type")?,
                endpoint: r.try_get("endpoint")?,
                method: r.try_get("method")?,
                tokens_input: r.try_get("tokens_input")?,
                tokens_output: r.try_get("tokens_output")?,
                tokens_cached_input: r.try_get("tokens_cached_input")?,
                units: r.try_get("units")?,
                cost_input: Nanos(r.try_get("cost_input_nanos")?),
                cost_output: Nanos(r.try_get("cost_output_nanos")?),
                cost_total: Nanos(r.try_get("cost_total_nanos")?),
                unpriced: r.try_get::<i64, _>("unpriced")? != 0,
                response_time_ms: r.try_get("response_time_ms")?,
                status_code: r.try_get("status_code")?,
                error_message: r.try_get("error_message")?,
                billing_period: r.try_get("billing_period")?,
                retry_count: r.try_get("retry_count")?,
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;
    Ok(list)
}

/// How many events match a filter. Read from the rollups (one row per
/// period, provider and model, which count calls and errors) unless the
/// filter names a status code, so it costs the same at ten million events
/// as at ten.
pub async fn usage_log_count(conn: &mut AnyConnection, user_id: &str, f: &LogFilter) -> StoreResult<i64> {
    if f.status_code.is_some() {
        let (filter, binds) = log_where(f);
        let sql = format!("SELECT CAST(COUNT(*) AS BIGINT) AS n FROM usage_events WHERE {filter}");
        return Ok(bind_all(sqlx::query(&sql).bind(user_id), &binds).fetch_one(conn).await?.try_get("n")?);
    }
    let what = match f.failed {
        None => "calls",
        Some(true) => "errors",
        Some(false) => "calls - errors",
    };
    let mut sql = format!("SELECT CAST(COALESCE(SUM({what}), 0) AS BIGINT) AS n FROM usage_rollups WHERE user_id = $1");
    let mut binds = Vec::new();
    if let Some(p) = &f.provider {
        binds.push(Bind::Text(p.clone()));
        sql.push_str(&format!(" AND provider = ${}", binds.len() + 1));
    }
    if let Some(l) = &f.billing_period {
        binds.push(Bind::Text(l.clone()));
        sql.push_str(&format!(" AND billing_period = ${}", binds.len() + 1));
    }
    Ok(bind_all(sqlx::query(&sql).bind(user_id), &binds).fetch_one(conn).await?.try_get("n")?)
}

/// Alerts across every user (and the admin alerts), newest first, with the
/// user's email.
pub async fn all_alerts(conn: &mut AnyConnection, limit: i64) -> StoreResult<Vec<(AlertRow, Option<String>)>> {
    let rows = sqlx::query(
        "SELECT a.id, a.user_id, a.alert_type, a.limit_key, a.threshold, a.provider, a.title, a.message, a.severity, a.is_read,
         a.read_at, a.billing_period, a.created_at, u.email FROM alerts a LEFT JOIN users u ON u.id = a.user_id
         ORDER BY a.created_at DESC, a.id DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.iter().map(|r| Ok((alert_from_row(r)?, r.try_get("email")?))).collect()
}

/// Provider and model pairs recorded without a price: events, last seen.
pub async fn unpriced_models(
    conn: &mut AnyConnection,
) -> StoreResult<Vec<(String, Option<String>, i64, DateTime<Utc>)>> {
    let rows = sqlx::query(
        "SELECT provider, model, CAST(COUNT(*) AS BIGINT) AS n, CAST(MAX(occurred_at) AS BIGINT) AS last
         FROM usage_events WHERE unpriced = 1 GROUP BY provider, model ORDER BY provider, model",
    )
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("provider")?, r.try_get("model")?, r.try_get("n")?, from_ms(r.try_get("last")?))))
        .collect()
}

/// An event recorded without a price, as re-pricing needs it.
#[derive(Clone, Debug)]
pub struct UnpricedEvent {
    pub id: i64,
    pub user_id: String,
    pub model: Option<String>,
    pub tokens_input: i64,
    pub tokens_output: i64,
    pub tokens_cached_input: i64,
    pub units: i64,
    pub status_code: i64,
    pub response_time_ms: Option<i64>,
    pub occurred_at: DateTime<Utc>,
    pub period_start: DateTime<Utc>,
    pub billing_period: String,
}

/// Unpriced events of `provider` (and `model`, unless `None` = any model)
/// that happened at or after `since`, by user.
pub async fn unpriced_events(
    conn: &mut AnyConnection,
    provider: &str,
    model: Option<&str>,
    since: DateTime<Utc>,
) -> StoreResult<Vec<UnpricedEvent>> {
    let rows = sqlx::query(
        "SELECT id, user_id, model, tokens_input, tokens_output, tokens_cached_input, units, status_code, response_time_ms,
         occurred_at, period_start, billing_period FROM usage_events
         WHERE provider = $1 AND unpriced = 1 AND occurred_at >= $2 AND ($3 IS NULL OR COALESCE(model, '') = $3)
         ORDER BY user_id, id",
    )
    .bind(provider)
    .bind(ms(since))
    .bind(model)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(UnpricedEvent {
                id: r.try_get("id")?,
                user_id: r.try_get("user_id")?,
                model: r.try_get("model")?,
                tokens_input: r.try_get("tokens_input")?,
                tokens_output: r.try_get("tokens_output")?,
                tokens_cached_input: r.try_get("tokens_cached_input")?,
                units: r.try_get("units")?,
                status_code: r.try_get("status_code")?,
                response_time_ms: r.try_get("response_time_ms")?,
                occurred_at: from_ms(r.try_get("occurred_at")?),
                period_start: from_ms(r.try_get("period_start")?),
                billing_period: r.try_get("billing_period")?,
            })
        })
        .collect()
}

/// Writes a re-priced event: its cost, its price version, and (when its
/// period was already billed) the open period it is now billed in, marked
/// late.
pub async fn set_event_price(
    conn: &mut AnyConnection,
    id: i64,
    cost: &Cost,
    units: i64,
    price_version_id: i64,
    moved_to: Option<(DateTime<Utc>, &str)>,
) -> StoreResult<()> {
    let q = match moved_to {
        None => sqlx::query(
            "UPDATE usage_events SET cost_input_nanos = $2, cost_output_nanos = $3, cost_total_nanos = $4,
             price_version_id = $5, units = $6, unpriced = 0 WHERE id = $1",
        ),
        Some(_) => sqlx::query(
            "UPDATE usage_events SET cost_input_nanos = $2, cost_output_nanos = $3, cost_total_nanos = $4,
             price_version_id = $5, units = $6, unpriced = 0, period_start = $7, billing_period = $8, late = 1 WHERE id = $1",
        ),
    };
    let mut q = q.bind(id).bind(cost.input.0).bind(cost.output.0).bind(cost.total.0).bind(price_version_id).bind(units);
    if let Some((start, label)) = moved_to {
        q = q.bind(ms(start)).bind(label);
    }
    q.execute(conn).await?;
    Ok(())
}

/// A change to one rollup row (each field added, possibly negative).
#[derive(Clone, Copy, Debug, Default)]
pub struct RollupDelta {
    pub calls: i64,
    pub errors: i64,
    pub tokens_input: i64,
    pub tokens_output: i64,
    pub tokens_cached_input: i64,
    pub cost: Nanos,
    pub unpriced_calls: i64,
    pub response_ms_sum: i64,
    pub response_ms_count: i64,
}

/// Adds `d` to the rollup row of (user, period, provider, model), creating it.
pub async fn adjust_rollup(
    conn: &mut AnyConnection,
    user_id: &str,
    period: (DateTime<Utc>, &str),
    provider: &str,
    model: &str,
    d: &RollupDelta,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO usage_rollups (user_id, period_start, billing_period, provider, model, calls, errors, tokens_input,
         tokens_output, tokens_cached_input, cost_nanos, unpriced_calls, response_ms_sum, response_ms_count)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
         ON CONFLICT (user_id, period_start, provider, model) DO UPDATE SET
           calls = usage_rollups.calls + excluded.calls,
           errors = usage_rollups.errors + excluded.errors,
           tokens_input = usage_rollups.tokens_input + excluded.tokens_input,
           tokens_output = usage_rollups.tokens_output + excluded.tokens_output,
           tokens_cached_input = usage_rollups.tokens_cached_input + excluded.tokens_cached_input,
           cost_nanos = usage_rollups.cost_nanos + excluded.cost_nanos,
           unpriced_calls = usage_rollups.unpriced_calls + excluded.unpriced_calls,
           response_ms_sum = usage_rollups.response_ms_sum + excluded.response_ms_sum,
           response_ms_count = usage_rollups.response_ms_count + excluded.response_ms_count",
    )
    .bind(user_id)
    .bind(ms(period.0))
    .bind(period.1)
    .bind(provider)
    .bind(model)
    .bind(d.calls)
    .bind(d.errors)
    .bind(d.tokens_input)
    .bind(d.tokens_output)
    .bind(d.tokens_cached_input)
    .bind(d.cost.0)
    .bind(d.unpriced_calls)
    .bind(d.response_ms_sum)
    .bind(d.response_ms_count)
    .execute(conn)
    .await?;
    Ok(())
}

/// Unpriced events left for (provider, model).
pub async fn unpriced_left(conn: &mut AnyConnection, provider: &str, model: &str) -> StoreResult<i64> {
    Ok(sqlx::query(
        "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM usage_events WHERE provider = $1 AND unpriced = 1 AND COALESCE(model, '') = $2",
    )
    .bind(provider)
    .bind(model)
    .fetch_one(conn)
    .await?
    .try_get("n")?)
}

/// Resolves the admin alert about an unpriced (provider, model).
pub async fn resolve_unpriced_alert(
    conn: &mut AnyConnection,
    provider: &str,
    model: Option<&str>,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let key = crate::domain::alerts::unpriced_alert(provider, model).dedupe_key;
    sqlx::query(
        "UPDATE alerts SET resolved_at = $2, is_read = 1, read_at = COALESCE(read_at, $2) WHERE dedupe_key = $1 AND resolved_at IS NULL",
    )
    .bind(key)
    .bind(ms(now))
    .execute(conn)
    .await?;
    Ok(())
}

/// Opens a resolved alert again (unread).
pub async fn reopen_alert(conn: &mut AnyConnection, dedupe_key: &str) -> StoreResult<()> {
    sqlx::query("UPDATE alerts SET resolved_at = NULL, is_read = 0, read_at = NULL WHERE dedupe_key = $1 AND resolved_at IS NOT NULL")
        .bind(dedupe_key)
        .execute(conn)
        .await?;
    Ok(())
}
