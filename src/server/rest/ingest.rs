//! `POST /api/usage/events`: record a batch of usage events.
//!
//! Malformed JSON, a body over 1 MiB, or a batch that is not 1 to 1000
//! events is refused whole and records nothing. Otherwise every event stands
//! alone: invalid ones are rejected with a reason, the rest are recorded in
//! one transaction. When no event could be recorded the answer is 422.

use axum::body::{Body, to_bytes};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Serialize;
use serde_json::Value;

use crate::domain::event::{MAX_BATCH, parse_event};
use crate::server::error::AppError;
use crate::server::identity::Principal;
use crate::server::service::recording::{EventResult, Incoming, Outcome};
use crate::server::state::AppState;

pub const MAX_INGEST_BYTES: usize = 1024 * 1024;

/// Bodies from this size on are parsed off the async workers.
const OFF_WORKER_BYTES: usize = 16 * 1024;

/// The batch's events, each parsed or rejected with its reason; the batch
/// itself refused when it is not JSON or not 1 to 1000 events.
fn parse_batch(bytes: &[u8], bound: Option<&str>, now: chrono::DateTime<Utc>) -> Result<Vec<Incoming>, AppError> {
    let doc: Value = serde_json::from_slice(bytes).map_err(|e| AppError::BadRequest(format!("malformed JSON: {e}")))?;
    let events = doc
        .get("events")
        .and_then(Value::as_array)
        .ok_or_else(|| AppError::Invalid("the body must be {\"events\": [ ... ]}".into()))?;
    if events.is_empty() || events.len() > MAX_BATCH {
        return Err(AppError::Invalid(format!("a batch holds 1 to {MAX_BATCH} events (got {})", events.len())));
    }
    Ok(events
        .iter()
        .map(|v| {
            let id = v.get("id").and_then(Value::as_str).unwrap_or_default().to_string();
            let ev = parse_event(v, now).map_err(|e| (id.clone(), e))?;
            match bound {
                Some(bound) if bound != ev.user_id.as_str() => {
                    Err((id, format!("this key may only record usage for user `{bound}`")))
                }
                _ => Ok(ev),
            }
        })
        .collect())
}

pub async fn record_events(
    State(state): State<AppState>,
    principal: Principal,
    body: Body,
) -> Result<Response, AppError> {
    principal.require_ingest()?;
    let bytes = to_bytes(body, MAX_INGEST_BYTES).await.map_err(|_| AppError::PayloadTooLarge(MAX_INGEST_BYTES))?;
    let now = Utc::now();
    let bound = principal.bound_user().map(str::to_string);
    // Parsing a large batch is milliseconds of CPU: done on the blocking
    // pool, so it never holds up the async workers that answer the gate.
    let incoming = if bytes.len() >= OFF_WORKER_BYTES {
        tokio::task::spawn_blocking(move || parse_batch(&bytes, bound.as_deref(), now)).await.map_err(|e| {
            tracing::error!(error = %e, "the batch parser panicked");
            AppError::Internal
        })??
    } else {
        parse_batch(&bytes, bound.as_deref(), now)?
    };
    let results = state.engine.record(incoming, now).await?;
    let count = |o: Outcome| results.iter().filter(|r| r.outcome == o).count();
    let (accepted, duplicates, rejected) =
        (count(Outcome::Accepted), count(Outcome::Duplicate), count(Outcome::Rejected));
    let data = Recorded { accepted, duplicates, rejected, results: results.iter().map(EventView::from).collect() };
    if rejected == results.len() {
        let first = results.iter().find_map(|r| r.error.clone()).unwrap_or_default();
        let body =
            NoneRecorded { success: false, error: format!("no event was recorded: {first}"), code: "invalid", data };
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, axum::Json(body)).into_response());
    }
    Ok(super::envelope(data).into_response())
}

/// What became of a batch: counts, then each event in the batch's order.
#[derive(Serialize)]
pub struct Recorded<'a> {
    accepted: usize,
    duplicates: usize,
    rejected: usize,
    results: Vec<EventView<'a>>,
}

/// One event's outcome and the cost recorded (exact USD).
#[derive(Serialize)]
pub struct EventView<'a> {
    id: &'a str,
    status: &'static str,
    cost: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    unpriced: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

impl<'a> From<&'a EventResult> for EventView<'a> {
    fn from(r: &'a EventResult) -> Self {
        EventView {
            id: &r.id,
            status: r.outcome.as_str(),
            cost: r.cost.usd_string(),
            unpriced: r.unpriced,
            error: r.error.as_deref(),
        }
    }
}

/// A 422 when no event of the batch was recorded: the error envelope with
/// the batch's outcome.
#[derive(Serialize)]
struct NoneRecorded<'a> {
    success: bool,
    error: String,
    code: &'static str,
    data: Recorded<'a>,
}
