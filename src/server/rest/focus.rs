//! FOCUS 1.2 exports (`../shared/contract.md`, "Providers, email, FOCUS"):
//! a user's billing period (`GET /api/usage/{user_id}/export/focus`) or the
//! whole deployment's (`GET /api/admin/export/focus`), as CSV streamed a
//! page of events at a time, so memory stays flat however long the period.
//! The rows are [`crate::domain::focus::rows`]; their `BilledCost` adds up
//! to what the period recorded, to the nano-dollar.

use crate::domain::identity::UserId;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};

use super::csv::field;
use super::insights::PeriodQuery;
use crate::domain::focus::{Account, HEADER, rows};
use crate::domain::usage_log::{LogEntry, LogFilter, LogStart};
use crate::server::error::{AppError, AppResult};
use crate::server::identity::Principal;
use crate::server::service::Engine;
use crate::server::state::AppState;

/// Events read per page.
const PAGE: i64 = 1000;

/// Who issues the invoices a FOCUS file describes: the deployment.
const ISSUER: &str = "Tally";

/// One user's period to export.
struct Owned {
    user_id: String,
    name: String,
    label: String,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

/// The period labelled `label` of `user_id` (their current one without a
/// label).
async fn period_of(engine: &Engine, user_id: &UserId, label: Option<&str>, now: DateTime<Utc>) -> AppResult<Owned> {
    let (user, sub, _) = engine.current_subscription(user_id, now).await?;
    let period = Engine::labelled_period(&sub, label)?;
    let name = if user.name.trim().is_empty() { user.email.to_string() } else { user.name.clone() };
    Ok(Owned { user_id: user_id.to_string(), name, label: period.label(), start: period.start, end: period.end })
}

fn label_of(q: &PeriodQuery) -> AppResult<Option<String>> {
    LogFilter::parse_period(q.billing_period.as_deref()).map_err(AppError::BadRequest)
}

/// `GET /api/usage/{user_id}/export/focus?billing_period=YYYY-MM` (default:
/// the current period).
pub async fn user_export(
    State(state): State<AppState>,
    principal: Principal,
    Path(user_id): Path<String>,
    Query(q): Query<PeriodQuery>,
) -> AppResult<Response> {
    let user_id = principal.require_read(&user_id)?;
    let label = label_of(&q)?;
    // Read before answering, so an unknown user is a 404, not an empty file.
    let owned = period_of(&state.engine, &user_id, label.as_deref(), Utc::now()).await?;
    let name = format!("focus-{user_id}-{}.csv", owned.label);
    Ok(stream(state.engine.clone(), vec![user_id], label, Some(owned), &name))
}

/// `GET /api/admin/export/focus?billing_period=YYYY-MM`: every user's
/// period with that label (default: each user's current period).
pub async fn admin_export(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<PeriodQuery>,
) -> AppResult<Response> {
    principal.require_admin()?;
    let label = label_of(&q)?;
    let mut users = Vec::new();
    loop {
        let (page, total) = state.engine.list_users(None, 1000, users.len() as i64).await?;
        let done = page.is_empty() || users.len() + page.len() >= total as usize;
        users.extend(page.into_iter().map(|u| u.id));
        if done {
            break;
        }
    }
    let name = format!("focus-{}.csv", label.as_deref().unwrap_or("current"));
    Ok(stream(state.engine.clone(), users, label, None, &name))
}

/// Where the download goes on from: the user at `at` (whose period is
/// read when the download reaches them), after an event.
struct Cursor {
    users: Vec<UserId>,
    label: Option<String>,
    at: usize,
    account: Option<Owned>,
    after: Option<(DateTime<Utc>, i64)>,
    header: Option<String>,
}

fn write_rows(out: &mut String, account: &Owned, events: &[LogEntry]) {
    let a = Account {
        user_id: &account.user_id,
        name: &account.name,
        period_start: account.start,
        period_end: account.end,
        issuer: ISSUER,
    };
    for e in events {
        for row in rows(&a, e) {
            let cells: Vec<String> = row.iter().map(|c| field(c)).collect();
            out.push_str(&cells.join(","));
            out.push_str("\r\n");
        }
    }
}

/// The next piece of the file, and the cursor after it; `None` at the end.
async fn next_page(engine: &Engine, mut c: Cursor) -> Option<(Result<Bytes, std::io::Error>, Cursor)> {
    let mut out = c.header.take().unwrap_or_default();
    while let Some(user_id) = c.users.get(c.at).cloned() {
        let page = async {
            let account = match c.account.take() {
                Some(a) => a,
                None => period_of(engine, &user_id, c.label.as_deref(), Utc::now()).await?,
            };
            let filter = LogFilter { billing_period: Some(account.label.clone()), ..LogFilter::default() };
            let start = c.after.map_or(LogStart::Offset(0), |(t, id)| LogStart::Before(t, id));
            let _turn = engine.bulk_turn().await?;
            let events = engine.usage_log_rows(&user_id, &filter, PAGE, start).await?;
            AppResult::Ok((account, events))
        }
        .await;
        let (account, events) = match page {
            Ok(page) => page,
            // A user removed since the list was read, or whose calendar has
            // no period of that label, has nothing to export.
            Err(AppError::NotFound(_) | AppError::BadRequest(_)) => {
                (c.at, c.after) = (c.at + 1, None);
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, user = %user_id, "FOCUS export aborted");
                c.users.clear();
                return Some((Err(std::io::Error::other("the store failed mid-export")), c));
            }
        };
        write_rows(&mut out, &account, &events);
        match events.last() {
            Some(last) if events.len() as i64 == PAGE => {
                c.after = Some((last.occurred_at, last.id));
                c.account = Some(account);
            }
            _ => (c.at, c.after) = (c.at + 1, None),
        }
        if !out.is_empty() {
            return Some((Ok(Bytes::from(out)), c));
        }
    }
    (!out.is_empty()).then(|| (Ok(Bytes::from(out)), c))
}

/// The file: `users` one after the other, each their period labelled
/// `label` (their current one without), the first's `first` when already
/// read.
fn stream(engine: Engine, users: Vec<UserId>, label: Option<String>, first: Option<Owned>, name: &str) -> Response {
    use futures::StreamExt;
    let mut header = HEADER.join(",");
    header.push_str("\r\n");
    let cursor = Cursor { users, label, at: 0, account: first, after: None, header: Some(header) };
    let pages = futures::stream::unfold(cursor, move |c| {
        let engine = engine.clone();
        async move { next_page(&engine, c).await }
    })
    // The compression layer polls once more after the end.
    .fuse();
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")),
        ],
        Body::from_stream(pages),
    )
        .into_response()
}
