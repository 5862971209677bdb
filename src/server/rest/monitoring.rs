//! Monitoring (`/api/content-planning/monitoring`), backed by the request
//! metrics layer and the catalog cache's real hit and miss counts.

use std::time::Duration;

use axum::Json;
use axum::extract::{Query, State};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};

use super::envelope;
use crate::server::error::AppResult;
use crate::server::identity::Principal;
use crate::server::metrics::Stats;
use crate::server::state::AppState;

use crate::server::metrics::RECENT_WINDOW as RECENT;

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Not enveloped the usual way: `{"status": "success", "data": ...}`.
pub async fn health(State(state): State<AppState>, principal: Principal) -> AppResult<Json<Value>> {
    principal.require_metrics()?;
    let (h, recent) = state.current_health(RECENT).await;
    Ok(Json(json!({
        "status": "success",
        "data": {
            "system_health": h.as_str(),
            "icon": h.icon(),
            "api_performance": {
                "recent_requests": recent.requests,
                "recent_errors": recent.errors,
                "error_rate": round2(recent.error_rate()),
            },
            "timestamp": Utc::now().to_rfc3339(),
        }
    })))
}

#[derive(Deserialize)]
pub struct MinutesQuery {
    minutes: Option<String>,
}

pub async fn api_stats(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<MinutesQuery>,
) -> AppResult<Json<Value>> {
    principal.require_metrics()?;
    let minutes = super::family_a::parse_num("minutes", q.minutes.as_deref(), 5, 1..=60)? as u64;
    let (all, rows) = state.metrics.window(Duration::from_secs(minutes * 60));
    let stat = |s: &Stats| {
        json!({
            "requests": s.requests,
            "errors": s.errors,
            "error_rate": round2(s.error_rate()),
            "avg_response_time": round2(s.avg_ms),
            "p50_response_time": round2(s.p50_ms),
            "p95_response_time": round2(s.p95_ms),
        })
    };
    let mut data = stat(&all);
    data["minutes"] = json!(minutes);
    data["endpoints"] = json!(
        rows.iter()
            .map(|r| {
                let mut v = stat(&r.stats);
                v["method"] = json!(r.method);
                v["endpoint"] = json!(r.route);
                v
            })
            .collect::<Vec<_>>()
    );
    Ok(envelope(data))
}

pub async fn lightweight_stats(State(state): State<AppState>, principal: Principal) -> AppResult<Json<Value>> {
    principal.require_metrics()?;
    let (h, recent) = state.current_health(RECENT).await;
    Ok(envelope(json!({
        "status": h.as_str(),
        "icon": h.icon(),
        "recent_requests": recent.requests,
        "recent_errors": recent.errors,
        "error_rate": round2(recent.error_rate()),
        "timestamp": Utc::now().to_rfc3339(),
    })))
}

pub async fn cache_stats(State(state): State<AppState>, principal: Principal) -> AppResult<Json<Value>> {
    principal.require_metrics()?;
    let s = state.engine.catalog.stats();
    let total = s.hits + s.misses;
    Ok(envelope(json!({
        "hits": s.hits,
        "misses": s.misses,
        "hit_rate": if total == 0 { 0.0 } else { round2(s.hits as f64 * 100.0 / total as f64) },
        "total_requests": total,
    })))
}
