//! The REST front door: thin handlers that check the caller, call a
//! service and shape the contract's JSON. No business rule lives here.

pub mod ingest;
pub mod principal;

use axum::Router;
use axum::routing::post;
use serde::Serialize;
use serde_json::{Value, json};

use super::state::AppState;

/// `{"success": true, "data": ...}`.
pub fn envelope<T: Serialize>(data: T) -> axum::Json<Value> {
    axum::Json(json!({"success": true, "data": data}))
}

pub fn router() -> Router<AppState> {
    Router::new().route("/api/usage/events", post(ingest::record_events))
}
