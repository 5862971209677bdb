//! The REST front door: thin handlers that check the caller, call a
//! service and shape the contract's JSON. No business rule lives here.

pub mod admin;
pub mod csv;
pub mod family_a;
pub mod focus;
pub mod ingest;
pub mod insights;
pub mod live;
pub mod monitoring;
pub mod performance;
pub mod wallet;
/// Largest request body accepted by every endpoint but the price-map
/// import (the contract's 1 MiB; refused with its 413 envelope).
pub const MAX_BODY_BYTES: usize = ingest::MAX_INGEST_BYTES;

/// The most a request body to `path` may hold.
pub fn body_limit_for(path: &str) -> usize {
    if path == "/api/admin/pricing/import" { admin::MAX_IMPORT_BYTES } else { MAX_BODY_BYTES }
}

/// Bodies above [`MAX_BODY_BYTES`] are refused (413), except a price map
/// sent to the catalog import, which may be up to 16 MiB.
pub async fn body_limit(req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    use axum::response::IntoResponse;
    let limit = body_limit_for(req.uri().path());
    let declared = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return super::error::AppError::PayloadTooLarge(limit).into_response();
    }
    let req = req.map(|b| axum::body::Body::new(http_body_util::Limited::new(b, limit)));
    next.run(req).await
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod trust_tests;

use super::state::AppState;
use super::views::Envelope;
use axum::Router;
use axum::routing::{delete, get, post};

/// An enveloped JSON answer (`{"success": true, "data": ...}`).
pub type Enveloped<T> = axum::Json<Envelope<T>>;

/// `{"success": true, "data": ...}`.
pub fn envelope<T>(data: T) -> Enveloped<T> {
    axum::Json(Envelope::ok(data))
}

async fn api_not_found(uri: axum::http::Uri) -> super::error::AppError {
    super::error::AppError::NotFound(format!("no API endpoint at {}", uri.path()))
}

pub fn router() -> Router<AppState> {
    let sub = Router::new()
        .route("/plans", get(family_a::plans))
        .route("/pricing", get(family_a::pricing))
        .route("/usage/{user_id}", get(family_a::usage))
        .route("/usage/{user_id}/trends", get(family_a::trends))
        // The seed documents' client also asks here.
        .route("/trends/{user_id}", get(family_a::trends))
        .route("/dashboard/{user_id}", get(family_a::dashboard))
        .route("/alerts/{user_id}", get(family_a::alerts))
        .route("/alerts/{alert_id}/mark-read", post(family_a::mark_read))
        .route("/user/{user_id}/subscription", get(family_a::subscription))
        .route("/usage-logs", get(family_a::usage_logs))
        .route("/renewal-history/{user_id}", get(family_a::renewal_history))
        .route("/preflight-check", post(family_a::preflight));
    let monitoring = Router::new()
        .route("/health", get(monitoring::health))
        .route("/api-stats", get(monitoring::api_stats))
        .route("/lightweight-stats", get(monitoring::lightweight_stats))
        .route("/cache-stats", get(monitoring::cache_stats));
    let admin = Router::new()
        .route("/plans", get(admin::list_plans).post(admin::create_plan))
        .route("/plans/{plan_id}", get(admin::get_plan).put(admin::update_plan))
        .route("/pricing", get(admin::list_pricing).post(admin::add_price))
        .route("/pricing/import", post(admin::import_pricing))
        .route("/users", get(admin::list_users).post(admin::create_user))
        .route("/users/{user_id}", get(admin::get_user).patch(admin::patch_user))
        .route("/users/{user_id}/subscription/cancel", post(admin::cancel_subscription))
        .route("/users/{user_id}/subscription/pause", post(admin::pause_subscription))
        .route("/users/{user_id}/subscription/resume", post(admin::resume_subscription))
        .route("/users/{user_id}/subscription", axum::routing::put(admin::assign_subscription))
        .route("/users/{user_id}/sessions", delete(admin::sign_out_everywhere))
        .route("/api-keys", get(admin::list_keys).post(admin::create_key))
        .route("/api-keys/{key_id}", delete(admin::revoke_key))
        .route("/audit-log", get(admin::audit_log))
        .route("/webhooks", get(admin::list_webhooks).post(admin::create_webhook))
        .route("/webhooks/{webhook_id}", delete(admin::delete_webhook))
        .route("/webhooks/{webhook_id}/deliveries", get(admin::webhook_deliveries))
        .route("/webhooks/{webhook_id}/deliveries/{delivery_id}/replay", post(admin::replay_delivery))
        .route("/users/{user_id}/wallet", axum::routing::put(wallet::settings))
        .route("/users/{user_id}/wallet/grants", post(wallet::grant))
        .route("/users/{user_id}/wallet/grants/{grant_id}/void", post(wallet::void))
        .route("/users/{user_id}/wallet/adjustments", post(wallet::adjust))
        .route("/users/{user_id}/wallet/refunds", post(wallet::refund))
        .route("/profitability", get(insights::profitability))
        .route("/profitability.csv", get(insights::profitability_csv))
        .route("/export/focus", get(focus::admin_export));
    Router::new()
        .nest("/api/subscription", sub)
        .nest("/api/admin", admin)
        .nest("/api/content-planning/monitoring", monitoring)
        .route("/api/usage/events", post(ingest::record_events))
        .route("/api/stream", get(live::stream))
        .route("/api/wallet/{user_id}", get(wallet::show))
        .route("/api/wallet/{user_id}/ledger", get(wallet::statement))
        .route("/api/usage/{user_id}/logs.csv", get(csv::usage_log))
        .route("/api/usage/{user_id}/breakdown", get(insights::breakdown))
        .route("/api/usage/{user_id}/export/focus", get(focus::user_export))
        .route("/api/usage/{user_id}/performance", get(performance::performance))
        .route("/api/insights/{user_id}", get(insights::insights))
        .route("/api/billing/{user_id}/history.csv", get(csv::billing_history))
        .route("/api/billing/{user_id}/renewals.csv", get(csv::renewal_history))
        .route("/api/{*path}", axum::routing::any(api_not_found))
}
