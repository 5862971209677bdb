//! `/api/admin/webhooks`: endpoints that receive signed events, and their
//! deliveries.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::*;
use crate::server::error::{AppError, AppResult};
use crate::server::identity::Principal;
use crate::server::rest::{Enveloped, envelope};
use crate::server::state::AppState;
use crate::server::views::admin::{DeliveryView, WebhookView};

/// `GET /api/admin/webhooks`.
#[derive(Serialize)]
pub struct WebhookList {
    webhooks: Vec<WebhookView>,
    total: usize,
}

/// `DELETE /api/admin/webhooks/{id}`.
#[derive(Serialize)]
pub struct Deleted {
    id: String,
    deleted: bool,
}

/// `GET /api/admin/webhooks/{id}/deliveries`.
#[derive(Serialize)]
pub struct Deliveries {
    webhook: WebhookView,
    deliveries: Vec<DeliveryView>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewWebhookBody {
    url: String,
    events: Vec<String>,
    #[serde(default)]
    description: Option<String>,
}

pub async fn list_webhooks(State(state): State<AppState>, principal: Principal) -> AppResult<Enveloped<WebhookList>> {
    principal.require_admin()?;
    let list = state.engine.webhooks().await?;
    Ok(envelope(WebhookList { webhooks: list.iter().map(WebhookView::from).collect(), total: list.len() }))
}

/// Registers an endpoint; the answer carries its signing secret, once.
pub async fn create_webhook(
    State(state): State<AppState>,
    principal: Principal,
    body: Bytes,
) -> AppResult<(axum::http::StatusCode, Enveloped<WebhookView>)> {
    principal.require_admin()?;
    let b: NewWebhookBody = serde_json::from_value(parse_body(&body)?)
        .map_err(|e| AppError::Invalid(format!("invalid webhook endpoint: {e}")))?;
    let (endpoint, secret) = state
        .engine
        .create_webhook(&b.url, &b.events, b.description.as_deref().unwrap_or(""), &principal.actor(), Utc::now())
        .await?;
    let view = WebhookView { secret: Some(secret), ..WebhookView::from(&endpoint) };
    Ok((axum::http::StatusCode::CREATED, envelope(view)))
}

pub async fn delete_webhook(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> AppResult<Enveloped<Deleted>> {
    principal.require_admin()?;
    state.engine.delete_webhook(&id, &principal.actor(), Utc::now()).await?;
    Ok(envelope(Deleted { id, deleted: true }))
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
) -> AppResult<Enveloped<Deliveries>> {
    principal.require_admin()?;
    let (endpoint, list) = state.engine.webhook_deliveries(&id, q.limit.unwrap_or(100)).await?;
    Ok(envelope(Deliveries {
        webhook: WebhookView::from(&endpoint),
        deliveries: list.iter().map(DeliveryView::from).collect(),
    }))
}

pub async fn replay_delivery(
    State(state): State<AppState>,
    principal: Principal,
    Path((id, delivery_id)): Path<(String, i64)>,
) -> AppResult<(axum::http::StatusCode, Enveloped<DeliveryView>)> {
    principal.require_admin()?;
    let d = state.engine.replay_delivery(&id, delivery_id, &principal.actor(), Utc::now()).await?;
    Ok((axum::http::StatusCode::ACCEPTED, envelope(DeliveryView::from(&d))))
}
