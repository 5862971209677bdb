//! CSV downloads of the usage log, billing history and renewal history
//! (family B: money as exact decimal strings).

use crate::domain::identity::UserId;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{SecondsFormat, Utc};

use super::family_a::{PageQuery, log_query};
use crate::domain::pricing::{CostClass, Count};
use crate::domain::usage_log::{LogEntry, LogStart};

use crate::server::error::AppResult;
use crate::server::identity::Principal;
use crate::server::state::AppState;

/// One CSV field, quoted when it must be. A cell that a spreadsheet would
/// run as a formula (it begins with `=`, `+`, `-`, `@`, a tab or a CR) gets a
/// leading `'`, so a plan name such as `=HYPERLINK(..)` stays text; a plain
/// negative number (`-1.500000000`) is no formula and stays a number.
pub(crate) fn field(s: &str) -> String {
    let number = s.strip_prefix('-').is_some_and(|d| {
        !d.is_empty() && d.chars().all(|c| c.is_ascii_digit() || c == '.') && d.matches('.').count() <= 1
    });
    let s = if !number && s.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{s}") } else { s.to_string() };
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s }
}

pub(crate) fn csv(name: &str, header_row: &[&str], rows: Vec<Vec<String>>) -> Response {
    let mut out = header_row.join(",");
    out.push_str("\r\n");
    for r in rows {
        out.push_str(&r.iter().map(|f| field(f)).collect::<Vec<_>>().join(","));
        out.push_str("\r\n");
    }
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")),
        ],
        out,
    )
        .into_response()
}

pub async fn billing_history(
    State(state): State<AppState>,
    principal: Principal,
    Path(user_id): Path<String>,
) -> AppResult<Response> {
    let user_id = principal.require_read(&user_id)?;
    let bills = state.engine.billing_history(&user_id, Utc::now()).await?;
    let rows = bills
        .iter()
        .map(|b| {
            vec![
                b.billing_period.clone(),
                b.period_start.to_rfc3339(),
                b.period_end.to_rfc3339(),
                b.plan_name.clone(),
                b.plan_fee.usd_string(),
                b.usage_cost.usd_string(),
                b.total.usd_string(),
                b.status.clone(),
            ]
        })
        .collect();
    let h = [
        "billing_period",
        "period_start",
        "period_end",
        "plan",
        "plan_fee_usd",
        "usage_cost_usd",
        "total_usd",
        "status",
    ];
    Ok(csv(&format!("billing-history-{user_id}.csv"), &h, rows))
}

pub async fn renewal_history(
    State(state): State<AppState>,
    principal: Principal,
    Path(user_id): Path<String>,
) -> AppResult<Response> {
    let user_id = principal.require_read(&user_id)?;
    let (renewals, _) = state.engine.renewals(&user_id, 1000, 0, false).await?;
    let rows = renewals
        .iter()
        .map(|r| {
            vec![
                r.created_at.to_rfc3339(),
                r.renewal_type.clone(),
                r.plan_name.clone(),
                r.previous_plan_name.clone().unwrap_or_default(),
                r.billing_cycle.clone(),
                r.new_period_start.to_rfc3339(),
                r.new_period_end.to_rfc3339(),
                r.payment_amount.usd_string(),
                r.payment_status.clone(),
            ]
        })
        .collect();
    let h = [
        "created_at",
        "renewal_type",
        "plan",
        "previous_plan",
        "billing_cycle",
        "new_period_start",
        "new_period_end",
        "payment_amount_usd",
        "payment_status",
    ];
    Ok(csv(&format!("renewal-history-{user_id}.csv"), &h, rows))
}

/// Rows fetched per page while streaming the usage log; the first page is
/// smaller, so the download begins as soon as possible however large the
/// log.
const LOG_CSV_PAGE: i64 = 1000;
const LOG_CSV_FIRST_PAGE: i64 = 100;

/// The usage log's columns: the first 22 as they always were, then one per
/// [`Count::PARTS`], the service tier, what each [`CostClass`] cost (the
/// cost columns sum to `cost_total_usd` exactly), `estimated` and `tags`.
static LOG_CSV_HEADER: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| {
    const FIRST: [&str; 22] = [
        "event_id",
        "timestamp",
        "provider",
        "actual_provider_name",
        "model",
        "operation_type",
        "endpoint",
        "method",
        "tokens_input",
        "tokens_output",
        "tokens_cached_input",
        "units",
        "cost_input_usd",
        "cost_output_usd",
        "cost_total_usd",
        "unpriced",
        "response_time_ms",
        "status_code",
        "status",
        "error_message",
        "billing_period",
        "retry_count",
    ];
    let parts = Count::PARTS.iter().map(|c| c.field().to_string());
    let costs = CostClass::ALL.iter().map(|c| format!("cost_{}_usd", cost_column(*c)));
    FIRST
        .iter()
        .map(|c| c.to_string())
        .chain(parts)
        .chain(["service_tier".to_string()])
        .chain(costs)
        .chain(["estimated".to_string(), "tags".to_string()])
        .collect()
});

/// A class's cost column: `cost_<this>_usd` (input and output say
/// `_tokens`, as `cost_input_usd` and `cost_output_usd` were taken by the
/// rounded halves).
fn cost_column(c: CostClass) -> &'static str {
    match c {
        CostClass::Input => "input_tokens",
        CostClass::Output => "output_tokens",
        c => c.as_str(),
    }
}

fn log_csv_rows(out: &mut String, rows: &[LogEntry]) {
    for r in rows {
        let opt = |v: &Option<String>| v.as_deref().map(field).unwrap_or_default();
        let p = &r.parts;
        let head = [
            field(&r.event_id),
            r.occurred_at.to_rfc3339_opts(SecondsFormat::Millis, true),
            field(&r.provider),
            opt(&r.actual_provider_name),
            opt(&r.model),
            opt(&r.operation_type),
            opt(&r.endpoint),
            opt(&r.method),
            r.tokens_input.to_string(),
            r.tokens_output.to_string(),
            r.tokens_cached_input.to_string(),
            r.units.to_string(),
            r.cost_input.usd_string(),
            r.cost_output.usd_string(),
            r.cost_total.usd_string(),
            r.unpriced.to_string(),
            r.response_time_ms.map(|v| v.to_string()).unwrap_or_default(),
            r.status_code.to_string(),
            (if r.status_code >= 400 { "failed" } else { "success" }).to_string(),
            opt(&r.error_message),
            field(&r.billing_period),
            r.retry_count.to_string(),
        ];
        // The parts, in the header's (and [`Count::PARTS`]'s) order.
        let parts: Vec<String> = Count::PARTS.iter().map(|c| p[*c].to_string()).collect();
        let costs = CostClass::ALL.map(|c| r.breakdown.get(c).usd_string());
        out.push_str(&head.join(","));
        out.push(',');
        out.push_str(&parts.join(","));
        out.push(',');
        out.push_str(p.service_tier.as_str());
        out.push(',');
        out.push_str(&costs.join(","));
        out.push(',');
        out.push_str(if r.estimated { "true" } else { "false" });
        out.push(',');
        // The stored JSON object (sorted keys), or empty.
        out.push_str(&r.tags.encode().map(|t| field(&t)).unwrap_or_default());
        out.push_str("\r\n");
    }
}

/// The usage log as CSV, newest first, with the usage log's filters
/// (`provider`, `status`, `status_code`, `billing_period`, `tag`). Streamed a
/// page at a time by cursor, so memory stays flat and the first byte leaves
/// at once however many events match. A store failure after the first page
/// aborts the download (the client sees an incomplete transfer, never a
/// file that silently ends early).
pub async fn usage_log(
    State(state): State<AppState>,
    principal: Principal,
    Path(user_id): Path<String>,
    Query(q): Query<PageQuery>,
) -> AppResult<Response> {
    let user_id = principal.require_read(&user_id)?;
    let (filter, _, _) = log_query(&q)?;
    state.engine.current_subscription(&user_id, Utc::now()).await?;
    let first = state.engine.usage_log_rows(&user_id, &filter, LOG_CSV_FIRST_PAGE, LogStart::Offset(0)).await?;
    let mut head = LOG_CSV_HEADER.join(",");
    head.push_str("\r\n");
    let engine = state.engine.clone();
    let uid = user_id.clone();
    use futures::StreamExt;
    let pages = futures::stream::unfold(Next::First(head, first), move |next| {
        let (engine, uid, filter) = (engine.clone(), uid.clone(), filter.clone());
        async move {
            let page = match next {
                Next::Done => return None,
                // Read and written at once: somebody waits for it.
                Next::First(mut out, rows) => {
                    log_csv_rows(&mut out, &rows);
                    Page::of(out, &rows, LOG_CSV_FIRST_PAGE)
                }
                // The pages after it are bulk work: each is read and written
                // out in one of the engine's bulk turns, the writing on the
                // blocking pool, so however many downloads stream they keep
                // the async workers and most connections free.
                Next::After(at, id) => match bulk_page(&engine, &uid, &filter, LogStart::Before(at, id)).await {
                    Ok(page) => page,
                    Err(e) => {
                        tracing::warn!(error = %e, user = %uid, "usage-log CSV aborted");
                        return Some((Err(std::io::Error::other("the store failed mid-export")), Next::Done));
                    }
                },
            };
            Some((Ok::<_, std::io::Error>(Bytes::from(page.text)), page.next))
        }
    })
    // The compression layer polls once more after the end; a bare unfold
    // panics on that.
    .fuse();
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"usage-log-{user_id}.csv\"")),
        ],
        Body::from_stream(pages),
    )
        .into_response())
}

/// Where a usage-log download goes on from.
enum Next {
    /// The header and the first page, already read.
    First(String, Vec<LogEntry>),
    /// The page before this event (time, id).
    After(chrono::DateTime<Utc>, i64),
    Done,
}

/// One page of a usage-log download: its text, and where the next one
/// starts.
struct Page {
    text: String,
    next: Next,
}

impl Page {
    /// The page written from `rows`, read `asked` at a time: fewer rows than
    /// asked means it was the last.
    fn of(text: String, rows: &[LogEntry], asked: i64) -> Page {
        let next = match rows.last() {
            Some(r) if rows.len() as i64 == asked => Next::After(r.occurred_at, r.id),
            _ => Next::Done,
        };
        Page { text, next }
    }
}

/// A page after the first, read and written in a bulk turn.
async fn bulk_page(
    engine: &crate::server::service::Engine,
    user_id: &UserId,
    filter: &crate::domain::usage_log::LogFilter,
    start: LogStart,
) -> AppResult<Page> {
    let _turn = engine.bulk_turn().await?;
    let rows = engine.usage_log_rows(user_id, filter, LOG_CSV_PAGE, start).await?;
    tokio::task::spawn_blocking(move || {
        let mut out = String::with_capacity(rows.len() * 256);
        log_csv_rows(&mut out, &rows);
        Page::of(out, &rows, LOG_CSV_PAGE)
    })
    .await
    .map_err(|e| {
        tracing::error!(error = %e, "writing a usage-log CSV page panicked");
        crate::server::error::AppError::Internal
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The usage log's header, built from the class tables, is the one the
    /// exports have always had (a new class adds its columns here).
    #[test]
    fn the_log_header_follows_the_classes() {
        let want = [
            "event_id",
            "timestamp",
            "provider",
            "actual_provider_name",
            "model",
            "operation_type",
            "endpoint",
            "method",
            "tokens_input",
            "tokens_output",
            "tokens_cached_input",
            "units",
            "cost_input_usd",
            "cost_output_usd",
            "cost_total_usd",
            "unpriced",
            "response_time_ms",
            "status_code",
            "status",
            "error_message",
            "billing_period",
            "retry_count",
            "tokens_cache_write",
            "tokens_cache_write_1h",
            "tokens_audio_input",
            "tokens_reasoning",
            "tokens_audio_output",
            "search_queries",
            "service_tier",
            "cost_input_tokens_usd",
            "cost_cached_input_usd",
            "cost_cache_write_usd",
            "cost_cache_write_1h_usd",
            "cost_audio_input_usd",
            "cost_output_tokens_usd",
            "cost_reasoning_usd",
            "cost_audio_output_usd",
            "cost_units_usd",
            "cost_search_queries_usd",
            "estimated",
            "tags",
        ];
        assert_eq!(LOG_CSV_HEADER.as_slice(), want.as_slice());
    }

    #[test]
    fn fields_are_quoted_when_needed() {
        assert_eq!(field("Pro"), "Pro");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }

    #[test]
    fn formulas_are_neutralised_and_quoting_kept() {
        let cases = [
            ("Pro", "Pro"),
            ("=HYPERLINK(\"http://evil\")", "\"'=HYPERLINK(\"\"http://evil\"\")\""),
            ("+1", "'+1"),
            ("-2", "-2"),
            ("-1.500000000", "-1.500000000"),
            ("-2+3", "'-2+3"),
            ("-1.2.3", "'-1.2.3"),
            ("-", "'-"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("a,b", "\"a,b\""),
            ("29.000000000", "29.000000000"),
        ];
        for (raw, want) in cases {
            assert_eq!(field(raw), want, "{raw:?}");
        }
    }
}
