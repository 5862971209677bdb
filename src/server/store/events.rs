//! Recorded usage events: writing one once, the usage log, and the events
//! still waiting for a price.

use crate::domain::identity::UserId;
use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::{AnyConnection, Row};

use super::{Placeholders, StoreError, StoreResult, from_ms, ms};
use crate::domain::event::{UsageEvent, UsageParts};
use crate::domain::money::Nanos;
use crate::domain::pricing::{Breakdown, Cost, CostClass, Count, ServiceTier};
use crate::domain::tags::Tags;
use crate::domain::usage_log::{LogEntry, LogFilter, LogStart};

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

/// The columns of an event row, in the order [`insert_events`] binds them:
/// its own, one per [`Count::PARTS`] (named by [`Count::field`]), then the
/// service tier and the rest.
static EVENT_COLS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "user_id, event_id, provider, model, operation_type, endpoint, method, actual_provider_name,
         tokens_input, tokens_output, tokens_cached_input, units, cost_input_nanos, cost_output_nanos, cost_total_nanos,
         price_version_id, unpriced, response_time_ms, status_code, error_message, retry_count, occurred_at,
         recorded_at, period_start, billing_period, reservation_id, late, {}, service_tier, cost_breakdown, estimated,
         tags",
        part_columns()
    )
});
const EVENT_COL_COUNT: usize = 31 + Count::PARTS.len();
/// Rows per INSERT: 17,500 binds, well inside both drivers' limits
/// (SQLite 32,766; Postgres 65,535).
const ROWS_PER_INSERT: usize = 500;

/// Inserts new events, many rows a statement. The caller holds the users'
/// locks and has checked with [`recorded_among`] that none of the ids is
/// recorded, so every row must insert: a unique violation here is an error
/// that rolls the whole batch back, never a silent skip.
pub async fn insert_events(conn: &mut AnyConnection, rows: &[PricedEvent<'_>], now: DateTime<Utc>) -> StoreResult<()> {
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let mut sql = String::with_capacity(64 + chunk.len() * EVENT_COL_COUNT * 7);
        sql.push_str("INSERT INTO usage_events (");
        sql.push_str(&EVENT_COLS);
        sql.push_str(") VALUES ");
        let mut binds = Placeholders::for_conn(conn);
        for r in 0..chunk.len() {
            if r > 0 {
                sql.push_str(", ");
            }
            binds.push_row(&mut sql, EVENT_COL_COUNT);
        }
        let mut q = sqlx::query(&sql);
        for p in chunk {
            let e = p.event;
            q = q
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
                .bind(p.late as i64);
            for &c in Count::PARTS {
                q = q.bind(e.parts[c] as i64);
            }
            q = q
                .bind(service_tier_col(e.parts.service_tier))
                .bind(breakdown_col(&p.cost))
                .bind(e.estimated as i64)
                .bind(e.tags.encode());
        }
        let done = q.execute(&mut *conn).await?;
        if done.rows_affected() != chunk.len() as u64 {
            return Err(StoreError::Corrupt(format!(
                "{} of {} events inserted; the batch is rolled back",
                done.rows_affected(),
                chunk.len()
            )));
        }
    }
    insert_tags(conn, rows).await
}

/// Rows per INSERT of the tag tables (at most 4 binds a row).
const TAG_ROWS_PER_INSERT: usize = 2000;

/// One row per tag of the new events, and each user's tag keys (see
/// `migrations/*/0010_insights.sql`).
async fn insert_tags(conn: &mut AnyConnection, rows: &[PricedEvent<'_>]) -> StoreResult<()> {
    let tags: Vec<[&str; 4]> = rows
        .iter()
        .flat_map(|p| p.event.tags.0.iter().map(|(k, v)| [&*p.event.user_id, &*p.event.id, &**k, &**v]))
        .collect();
    insert_text_rows(conn, "usage_event_tags (user_id, event_id, tag_key, tag_value)", "", &tags).await?;
    let keys: std::collections::BTreeSet<[&str; 2]> = tags.iter().map(|[u, _, k, _]| [*u, *k]).collect();
    let keys: Vec<[&str; 2]> = keys.into_iter().collect();
    insert_text_rows(conn, "user_tag_keys (user_id, tag_key)", " ON CONFLICT DO NOTHING", &keys).await
}

/// `INSERT INTO <table_and_columns> VALUES (...), ... <tail>`, many rows a
/// statement.
async fn insert_text_rows<const N: usize>(
    conn: &mut AnyConnection,
    table_and_columns: &str,
    tail: &str,
    rows: &[[&str; N]],
) -> StoreResult<()> {
    for chunk in rows.chunks(TAG_ROWS_PER_INSERT) {
        let mut sql = format!("INSERT INTO {table_and_columns} VALUES ");
        let mut binds = Placeholders::for_conn(conn);
        for r in 0..chunk.len() {
            if r > 0 {
                sql.push_str(", ");
            }
            binds.push_row(&mut sql, N);
        }
        sql.push_str(tail);
        let mut q = sqlx::query(&sql);
        for row in chunk {
            for v in row {
                q = q.bind(*v);
            }
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// The stored service tier: NULL for standard.
pub fn service_tier_col(t: ServiceTier) -> Option<&'static str> {
    (t != ServiceTier::Standard).then(|| t.as_str())
}

/// The stored breakdown: NULL when the cost is only input and output
/// tokens, which `cost_input_nanos` and `cost_output_nanos` already say.
pub fn breakdown_col(c: &Cost) -> Option<String> {
    let simple = c.breakdown.nonzero().all(|(k, _)| matches!(k, CostClass::Input | CostClass::Output));
    (!simple).then(|| c.breakdown.encode())
}

/// The breakdown of a stored event (see [`breakdown_col`]).
fn breakdown_from(stored: Option<String>, input: i64, output: i64) -> StoreResult<Breakdown> {
    match stored {
        Some(s) => Breakdown::decode(&s).ok_or_else(|| StoreError::Corrupt(format!("cost_breakdown `{s}`"))),
        None => {
            let mut b = Breakdown::default();
            b.0[CostClass::Input as usize] = input;
            b.0[CostClass::Output as usize] = output;
            Ok(b)
        }
    }
}

/// The usage parts of a stored event.
fn parts_from(r: &sqlx::any::AnyRow) -> StoreResult<UsageParts> {
    let n = |c: &str| -> StoreResult<u64> { Ok(r.try_get::<i64, _>(c)?.max(0) as u64) };
    let tier: Option<String> = r.try_get("service_tier")?;
    let mut parts = UsageParts::default();
    parts.service_tier = match tier {
        None => ServiceTier::Standard,
        Some(t) => ServiceTier::parse(&t).ok_or_else(|| StoreError::Corrupt(format!("service_tier `{t}`")))?,
    };
    for &c in Count::PARTS {
        parts[c] = n(c.field())?;
    }
    Ok(parts)
}

/// The columns of [`Count::PARTS`], in its order.
pub fn part_columns() -> String {
    Count::PARTS.iter().map(|c| c.field()).collect::<Vec<_>>().join(", ")
}

/// The columns [`parts_from`] reads.
static PARTS_COLS: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| format!("{}, service_tier", part_columns()));

/// Ids per lookup in [`recorded_among`].
const IDS_PER_LOOKUP: usize = 500;

/// Which of `ids` are already recorded for `user_id`, with the cost first
/// recorded and whether it was unpriced.
///
/// One probe of the `(user_id, event_id)` unique index per id, written as
/// correlated subqueries over a VALUES list so that no planner can choose
/// otherwise. The plain `user_id = $1 AND event_id IN (...)` let Postgres,
/// with statistics taken before a user's events multiplied, scan all of
/// that user's events instead: 2-4 s a lookup at 140,000 events, measured.
pub async fn recorded_among(
    conn: &mut AnyConnection,
    user_id: &UserId,
    ids: &[&str],
) -> StoreResult<HashMap<String, Recorded>> {
    let mut found = HashMap::new();
    for chunk in ids.chunks(IDS_PER_LOOKUP) {
        let mut binds = Placeholders::for_conn(conn);
        let mut sql = String::from("SELECT v.column1 AS event_id");
        for col in ["cost_total_nanos", "unpriced"] {
            sql.push_str(", (SELECT e.");
            sql.push_str(col);
            sql.push_str(" FROM usage_events e WHERE e.user_id = ");
            binds.push(&mut sql);
            sql.push_str(" AND e.event_id = v.column1) AS ");
            sql.push_str(col);
        }
        sql.push_str(" FROM (VALUES ");
        for i in 0..chunk.len() {
            if i > 0 {
                sql.push_str(", ");
            }
            binds.push_row(&mut sql, 1);
        }
        sql.push_str(") AS v");
        let mut q = sqlx::query(&sql).bind(user_id).bind(user_id);
        for id in chunk {
            q = q.bind(*id);
        }
        for r in q.fetch_all(&mut *conn).await? {
            let (Some(cost), Some(unpriced)) =
                (r.try_get::<Option<i64>, _>("cost_total_nanos")?, r.try_get::<Option<i64>, _>("unpriced")?)
            else {
                continue;
            };
            found.insert(r.try_get("event_id")?, Recorded { cost: Nanos(cost), unpriced: unpriced != 0 });
        }
    }
    Ok(found)
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
    if let Some(t) = &f.tag {
        binds.push(Bind::Text(t.key.clone()));
        binds.push(Bind::Text(t.value.clone()));
        sql.push_str(&format!(
            " AND EXISTS (SELECT 1 FROM usage_event_tags t WHERE t.user_id = usage_events.user_id
             AND t.event_id = usage_events.event_id AND t.tag_key = ${} AND t.tag_value = ${})",
            binds.len(),
            binds.len() + 1
        ));
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
    user_id: &UserId,
    f: &LogFilter,
    limit: i64,
    start: LogStart,
) -> StoreResult<Vec<LogEntry>> {
    let (mut filter, binds) = log_where(f);
    let n = binds.len() + 2;
    const ORDER: &str = "ORDER BY occurred_at DESC, id DESC";
    let (rows_where, limit_clause) = match start {
        // A deep page skips its offset over the ids alone (the index on
        // user, time and id holds them), then reads the page's own rows:
        // the skipped events' rows are never fetched, which on PostgreSQL
        // would be one heap visit each.
        LogStart::Offset(_) => (
            format!("id IN (SELECT id FROM usage_events WHERE {filter} {ORDER} LIMIT ${n} OFFSET ${})", n + 1),
            String::new(),
        ),
        LogStart::Before(..) => {
            filter.push_str(&format!(
                " AND (occurred_at < ${} OR (occurred_at = ${} AND id < ${}))",
                n + 1,
                n + 1,
                n + 2
            ));
            (filter, format!("LIMIT ${n}"))
        }
    };
    let sql = format!(
        "SELECT id, event_id, occurred_at, provider, actual_provider_name, model, operation_type, endpoint, method, tokens_input,
         tokens_output, tokens_cached_input, units, cost_input_nanos, cost_output_nanos, cost_total_nanos, unpriced,
         response_time_ms, status_code, error_message, billing_period, retry_count, cost_breakdown, estimated, tags,
         {parts} FROM usage_events WHERE {rows_where} {ORDER} {limit_clause}",
        parts = *PARTS_COLS
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
            let (cost_input, cost_output) = (r.try_get("cost_input_nanos")?, r.try_get("cost_output_nanos")?);
            Ok(LogEntry {
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
                cost_input: Nanos(cost_input),
                cost_output: Nanos(cost_output),
                cost_total: Nanos(r.try_get("cost_total_nanos")?),
                breakdown: breakdown_from(r.try_get("cost_breakdown")?, cost_input, cost_output)?,
                parts: parts_from(r)?,
                unpriced: r.try_get::<i64, _>("unpriced")? != 0,
                response_time_ms: r.try_get("response_time_ms")?,
                status_code: r.try_get("status_code")?,
                error_message: r.try_get("error_message")?,
                billing_period: r.try_get("billing_period")?,
                retry_count: r.try_get("retry_count")?,
                estimated: r.try_get::<i64, _>("estimated")? != 0,
                tags: {
                    let stored: Option<String> = r.try_get("tags")?;
                    Tags::decode(stored.as_deref()).ok_or_else(|| StoreError::Corrupt(format!("tags `{stored:?}`")))?
                },
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;
    Ok(list)
}

/// How many events match a filter. Read from the rollups (one row per
/// period, provider and model, which count calls and errors) unless the
/// filter names a status code, so it costs the same at ten million events
/// as at ten.
pub async fn usage_log_count(conn: &mut AnyConnection, user_id: &UserId, f: &LogFilter) -> StoreResult<i64> {
    if f.status_code.is_some() || f.tag.is_some() {
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

// The lookups of unpriced events. Each says `unpriced = 1`, so it reads
// the partial index of unpriced events (migration 0014), never all events.
pub(crate) const UNPRICED_MODELS_SQL: &str = "SELECT provider, model, CAST(COUNT(*) AS BIGINT) AS n, \
     CAST(MAX(occurred_at) AS BIGINT) AS last FROM usage_events WHERE unpriced = 1 \
     GROUP BY provider, model ORDER BY provider, model";
pub(crate) const UNPRICED_LEFT_SQL: &str = "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM usage_events \
     WHERE provider = $1 AND unpriced = 1 AND COALESCE(model, '') = $2";
pub(crate) fn unpriced_events_sql() -> String {
    format!(
        "SELECT id, event_id, user_id, model, tokens_input, tokens_output, tokens_cached_input, units, status_code,
         response_time_ms,
         occurred_at, period_start, billing_period, {parts} FROM usage_events
         WHERE provider = $1 AND unpriced = 1 AND occurred_at >= $2 AND ($3 IS NULL OR COALESCE(model, '') = $3)
         ORDER BY user_id, id",
        parts = *PARTS_COLS
    )
}

/// Provider and model pairs recorded without a price: events, last seen.
pub async fn unpriced_models(
    conn: &mut AnyConnection,
) -> StoreResult<Vec<(String, Option<String>, i64, DateTime<Utc>)>> {
    let rows = sqlx::query(UNPRICED_MODELS_SQL).fetch_all(conn).await?;
    rows.iter()
        .map(|r| Ok((r.try_get("provider")?, r.try_get("model")?, r.try_get("n")?, from_ms(r.try_get("last")?))))
        .collect()
}

/// An event recorded without a price, as re-pricing needs it.
#[derive(Clone, Debug)]
pub struct UnpricedEvent {
    pub id: i64,
    /// The caller's id of the event.
    pub event_id: String,
    pub user_id: UserId,
    pub model: Option<String>,
    pub tokens_input: i64,
    pub tokens_output: i64,
    pub tokens_cached_input: i64,
    pub parts: UsageParts,
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
    let rows = sqlx::query(&unpriced_events_sql()).bind(provider).bind(ms(since)).bind(model).fetch_all(conn).await?;
    rows.iter()
        .map(|r| {
            Ok(UnpricedEvent {
                id: r.try_get("id")?,
                event_id: r.try_get("event_id")?,
                user_id: r.try_get("user_id")?,
                model: r.try_get("model")?,
                tokens_input: r.try_get("tokens_input")?,
                tokens_output: r.try_get("tokens_output")?,
                tokens_cached_input: r.try_get("tokens_cached_input")?,
                parts: parts_from(r)?,
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
             price_version_id = $5, units = $6, cost_breakdown = $7, unpriced = 0 WHERE id = $1",
        ),
        Some(_) => sqlx::query(
            "UPDATE usage_events SET cost_input_nanos = $2, cost_output_nanos = $3, cost_total_nanos = $4,
             price_version_id = $5, units = $6, cost_breakdown = $7, unpriced = 0, period_start = $8, billing_period = $9,
             late = 1 WHERE id = $1",
        ),
    };
    let mut q = q
        .bind(id)
        .bind(cost.input.0)
        .bind(cost.output.0)
        .bind(cost.total.0)
        .bind(price_version_id)
        .bind(units)
        .bind(breakdown_col(cost));
    if let Some((start, label)) = moved_to {
        q = q.bind(ms(start)).bind(label);
    }
    q.execute(conn).await?;
    Ok(())
}

/// Unpriced events left for (provider, model).
pub async fn unpriced_left(conn: &mut AnyConnection, provider: &str, model: &str) -> StoreResult<i64> {
    Ok(sqlx::query(UNPRICED_LEFT_SQL).bind(provider).bind(model).fetch_one(conn).await?.try_get("n")?)
}

/// What `user_id` spent on events that happened in `(from, to]`.
pub async fn cost_between(
    conn: &mut AnyConnection,
    user_id: &UserId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> StoreResult<Nanos> {
    let row = sqlx::query(
        "SELECT CAST(COALESCE(SUM(cost_total_nanos), 0) AS BIGINT) AS c FROM usage_events
         WHERE user_id = $1 AND occurred_at > $2 AND occurred_at <= $3",
    )
    .bind(user_id)
    .bind(ms(from))
    .bind(ms(to))
    .fetch_one(conn)
    .await?;
    Ok(Nanos(row.try_get("c")?))
}
