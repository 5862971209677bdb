//! The REST front door: thin handlers that check the caller, call a
//! service and shape the contract's JSON. No business rule lives here.

pub mod family_a;
pub mod ingest;
pub mod principal;
#[cfg(test)]
mod tests;

use axum::Router;
use axum::routing::{get, post};
use serde::Serialize;
use serde_json::{Value, json};

use super::state::AppState;

/// `{"success": true, "data": ...}`.
pub fn envelope<T: Serialize>(data: T) -> axum::Json<Value> {
    axum::Json(json!({"success": true, "data": data}))
}

pub fn router() -> Router<AppState> {
    let sub = Router::new()
        .route("/plans", get(family_a::plans))
        .route("/pricing", get(family_a::pricing))
        .route("/usage/{user_id}", get(family_a::usage))
        .route("/usage/{user_id}/trends", get(family_a::trends))
        .route("/dashboard/{user_id}", get(family_a::dashboard))
        .route("/alerts/{user_id}", get(family_a::alerts))
        .route("/alerts/{alert_id}/mark-read", post(family_a::mark_read))
        .route("/user/{user_id}/subscription", get(family_a::subscription))
        .route("/usage-logs", get(family_a::usage_logs))
        .route("/renewal-history/{user_id}", get(family_a::renewal_history))
        .route("/preflight-check", post(family_a::preflight));
    Router::new()
        .nest("/api/subscription", sub)
        .route("/api/usage/events", post(ingest::record_events))
}
