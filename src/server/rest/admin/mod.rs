//! Family B admin API (`/api/admin`): an admin session or a key with the
//! `admin` scope; the same operations as the admin web UI.

use axum::body::Bytes;
use axum::extract::{Query, State};
use serde::Serialize;
use serde_json::Value;

use super::envelope;
use crate::domain::plan::Plan;
use crate::server::error::{AppError, AppResult};
use crate::server::identity::Principal;
use crate::server::service::admin::PlanForm;
use crate::server::state::AppState;
use crate::server::views::admin::AuditEntryView;

mod keys;
mod plans;
mod pricing;
mod users;
mod webhooks;

pub use keys::*;
pub use plans::*;
pub use pricing::*;
pub use users::*;
pub use webhooks::*;

fn parse_body(body: &Bytes) -> AppResult<Value> {
    let v: Value = serde_json::from_slice(body).map_err(|e| AppError::BadRequest(format!("malformed JSON: {e}")))?;
    if v.is_object() { Ok(v) } else { Err(AppError::Invalid("the body must be a JSON object".into())) }
}

/// A JSON scalar as form text: strings as-is, numbers printed, null empty.
fn text(v: &Value, field: &str) -> AppResult<String> {
    match v {
        Value::Null => Ok(String::new()),
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        _ => Err(AppError::InvalidFields(vec![(field.into(), "must be a string or a number".into())])),
    }
}

fn form_of(p: &Plan) -> PlanForm {
    PlanForm {
        name: p.name.clone(),
        tier: p.tier.as_str().into(),
        price_monthly: p.price_monthly.usd_string(),
        price_yearly: p.price_yearly.usd_string(),
        description: p.description.clone(),
        features: p.features.clone(),
        limits: p.limits.iter().map(|(k, v)| (k.as_string(), k.input_value(v))).collect(),
        archived: p.archived,
        billing_mode: p.credits.mode.as_str().into(),
        included_credits: p.credits.included.map(crate::domain::money::Nanos::usd_string).unwrap_or_default(),
        credits_rollover_cap: p.credits.rollover_cap.map(crate::domain::money::Nanos::usd_string).unwrap_or_default(),
    }
}

pub async fn audit_log(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<ListQuery>,
) -> AppResult<axum::response::Response> {
    use axum::response::IntoResponse;
    principal.require_admin()?;
    let (list, total) = state
        .engine
        .audit_log(q.entity_type.as_deref(), q.actor.as_deref(), q.limit.unwrap_or(50), q.offset.unwrap_or(0))
        .await?;
    let entries = list.iter().map(AuditEntryView::from).collect();
    Ok(envelope(AuditLog { entries, total }).into_response())
}

/// `GET /api/admin/audit-log`.
#[derive(Serialize)]
pub struct AuditLog<'a> {
    entries: Vec<AuditEntryView<'a>>,
    total: i64,
}

// ----- the admin API's JSON -----
