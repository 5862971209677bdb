//! `/api/admin/webhooks`: endpoints that receive signed events, and their
//! deliveries.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};

use super::*;
use crate::server::error::{AppError, AppResult};
use crate::server::identity::Principal;
use crate::server::rest::envelope;
use crate::server::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewWebhookBody {
    url: String,
    events: Vec<String>,
    #[serde(default)]
    description: Option<String>,
}

pub(super) fn webhook_json(e: &crate::domain::webhooks::Endpoint) -> Value {
    json!({
        "id": e.id,
        "url": e.url,
        "events": e.events,
        "description": e.description,
        "created_at": e.created_at.to_rfc3339(),
        "deleted_at": e.deleted_at.map(|t| t.to_rfc3339()),
        "deliveries": {"pending": e.pending, "delivered": e.delivered, "failed": e.failed},
    })
}

pub(super) fn delivery_json(d: &crate::domain::webhooks::Delivery) -> Value {
    json!({
        "id": d.id,
        "endpoint_id": d.endpoint_id,
        "event_id": d.event_id,
        "type": d.event_type,
        "status": d.status,
        "attempts": d.attempts,
        "response_code": d.last_status,
        "error": d.last_error,
        "last_attempt_at": d.last_attempt_at.map(|t| t.to_rfc3339()),
        "next_attempt_at": d.next_attempt_at.map(|t| t.to_rfc3339()),
        "created_at": d.created_at.to_rfc3339(),
        "delivered_at": d.delivered_at.map(|t| t.to_rfc3339()),
    })
}

pub async fn list_webhooks(State(state): State<AppState>, principal: Principal) -> AppResult<Json<Value>> {
    principal.require_admin()?;
    let list = state.engine.webhooks().await?;
    Ok(envelope(json!({"webhooks": list.iter().map(webhook_json).collect::<Vec<_>>(), "total": list.len()})))
}

/// Registers an endpoint; the answer carries its signing secret, once.
pub async fn create_webhook(
    State(state): State<AppState>,
    principal: Principal,
    body: Bytes,
) -> AppResult<(axum::http::StatusCode, Json<Value>)> {
    principal.require_admin()?;
    let b: NewWebhookBody = serde_json::from_value(parse_body(&body)?)
        .map_err(|e| AppError::Invalid(format!("invalid webhook endpoint: {e}")))?;
    let (endpoint, secret) = state
        .engine
        .create_webhook(&b.url, &b.events, b.description.as_deref().unwrap_or(""), &principal.actor(), Utc::now())
        .await?;
    let mut v = webhook_json(&endpoint);
    v["secret"] = json!(secret);
    Ok((axum::http::StatusCode::CREATED, envelope(v)))
}

pub async fn delete_webhook(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> AppResult<Json<Value>> {
    principal.require_admin()?;
    state.engine.delete_webhook(&id, &principal.actor(), Utc::now()).await?;
    Ok(envelope(json!({"id": id, "deleted": true})))
}

#[derive(Deserialize)]
pub struct DeliveriesQuery {
    limit: Option<i64>,
}

pub async fn webhook_deliveries(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    Query(q): Query<DeliveriesQuery>,
) -> AppResult<Json<Value>> {
    principal.require_admin()?;
    let (endpoint, list) = state.engine.webhook_deliveries(&id, q.limit.unwrap_or(100)).await?;
    Ok(envelope(json!({
        "webhook": webhook_json(&endpoint),
        "deliveries": list.iter().map(delivery_json).collect::<Vec<_>>(),
    })))
}

pub async fn replay_delivery(
    State(state): State<AppState>,
    principal: Principal,
    Path((id, delivery_id)): Path<(String, i64)>,
) -> AppResult<(axum::http::StatusCode, Json<Value>)> {
    principal.require_admin()?;
    let d = state.engine.replay_delivery(&id, delivery_id, &principal.actor(), Utc::now()).await?;
    Ok((axum::http::StatusCode::ACCEPTED, envelope(delivery_json(&d))))
}
