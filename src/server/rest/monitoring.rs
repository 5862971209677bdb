//! Monitoring (`/api/content-planning/monitoring`), backed by the request
//! metrics layer and the catalog cache's real hit and miss counts.

use std::time::Duration;

use axum::Json;
use axum::extract::{Query, State};
use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::{Enveloped, envelope};
use crate::server::error::AppResult;
use crate::server::identity::Principal;
use crate::server::metrics::Stats;
use crate::server::state::AppState;

use crate::server::metrics::RECENT_WINDOW as RECENT;

use crate::server::views::round2;

/// `/health`, not enveloped the usual way: `{"status": "success", "data": ...}`.
#[derive(Serialize)]
pub struct HealthAnswer {
    status: &'static str,
    data: Health,
}

#[derive(Serialize)]
pub struct Health {
    system_health: &'static str,
    icon: &'static str,
    api_performance: RecentRequests,
    nodes: usize,
    uptime_seconds: u64,
    timestamp: String,
}

#[derive(Serialize)]
pub struct RecentRequests {
    recent_requests: u64,
    recent_errors: u64,
    error_rate: f64,
}

impl From<&Stats> for RecentRequests {
    fn from(s: &Stats) -> Self {
        RecentRequests { recent_requests: s.requests, recent_errors: s.errors, error_rate: round2(s.error_rate()) }
    }
}

/// Requests over a window, their server errors and latency (ms).
#[derive(Serialize)]
pub struct StatsView {
    requests: u64,
    errors: u64,
    error_rate: f64,
    avg_response_time: f64,
    p50_response_time: f64,
    p95_response_time: f64,
}

impl From<&Stats> for StatsView {
    fn from(s: &Stats) -> Self {
        StatsView {
            requests: s.requests,
            errors: s.errors,
            error_rate: round2(s.error_rate()),
            avg_response_time: round2(s.avg_ms),
            p50_response_time: round2(s.p50_ms),
            p95_response_time: round2(s.p95_ms),
        }
    }
}

/// One route's figures.
#[derive(Serialize)]
pub struct EndpointView {
    #[serde(flatten)]
    stats: StatsView,
    method: String,
    endpoint: String,
}

/// `/api-stats`: the deployment's figures, then each route's.
#[derive(Serialize)]
pub struct ApiStats {
    #[serde(flatten)]
    all: StatsView,
    minutes: u64,
    nodes: usize,
    endpoints: Vec<EndpointView>,
}

/// `/lightweight-stats`.
#[derive(Serialize)]
pub struct LightweightStats {
    status: &'static str,
    nodes: usize,
    icon: &'static str,
    #[serde(flatten)]
    recent: RecentRequests,
    timestamp: String,
}

/// `/cache-stats`: the catalog cache.
#[derive(Serialize)]
pub struct CacheStatsView {
    hits: u64,
    misses: u64,
    hit_rate: f64,
    total_requests: u64,
}

/// Not enveloped the usual way: `{"status": "success", "data": ...}`.
/// Anyone signed in may read it (its policy, `Health`): every user's
/// billing dashboard shows it.
pub async fn health(State(state): State<AppState>) -> AppResult<Json<HealthAnswer>> {
    let (h, d) = state.current_health(RECENT).await;
    Ok(Json(HealthAnswer {
        status: "success",
        data: Health {
            system_health: h.as_str(),
            icon: h.icon(),
            api_performance: RecentRequests::from(&d.all),
            nodes: d.nodes,
            uptime_seconds: d.uptime.as_secs(),
            timestamp: Utc::now().to_rfc3339(),
        },
    }))
}

#[derive(Deserialize)]
pub struct MinutesQuery {
    minutes: Option<String>,
}

pub async fn api_stats(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<MinutesQuery>,
) -> AppResult<Enveloped<ApiStats>> {
    principal.require_metrics()?;
    let minutes = super::family_a::parse_num("minutes", q.minutes.as_deref(), 5, 1..=60)? as u64;
    let d = state.deployment(Duration::from_secs(minutes * 60)).await?;
    let endpoints = d
        .endpoints
        .iter()
        .map(|r| EndpointView { stats: StatsView::from(&r.stats), method: r.method.clone(), endpoint: r.route.clone() })
        .collect();
    Ok(envelope(ApiStats { all: StatsView::from(&d.all), minutes, nodes: d.nodes, endpoints }))
}

/// Anyone signed in may read it, like [`health`].
pub async fn lightweight_stats(State(state): State<AppState>) -> AppResult<Enveloped<LightweightStats>> {
    let (h, d) = state.current_health(RECENT).await;
    Ok(envelope(LightweightStats {
        status: h.as_str(),
        nodes: d.nodes,
        icon: h.icon(),
        recent: RecentRequests::from(&d.all),
        timestamp: Utc::now().to_rfc3339(),
    }))
}

pub async fn cache_stats(State(state): State<AppState>, principal: Principal) -> AppResult<Enveloped<CacheStatsView>> {
    principal.require_metrics()?;
    let s = state.engine.catalog.stats();
    let total = s.hits + s.misses;
    Ok(envelope(CacheStatsView {
        hits: s.hits,
        misses: s.misses,
        hit_rate: if total == 0 { 0.0 } else { round2(s.hits as f64 * 100.0 / total as f64) },
        total_requests: total,
    }))
}

/// `GET /metrics`: the Prometheus text exposition format (0.0.4). Counters
/// count since this process started; scrape every node.
pub async fn prometheus(State(state): State<AppState>, principal: Principal) -> AppResult<axum::response::Response> {
    use axum::response::IntoResponse;
    if !state.ui.metrics_public {
        principal.require_metrics()?;
    }
    let body = prometheus_text(&state);
    Ok(([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response())
}

/// A label value, escaped as the format requires.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn prometheus_text(state: &AppState) -> String {
    use crate::server::metrics::BUCKETS;
    use std::fmt::Write;
    let mut o = String::new();
    let head = |o: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    let totals = state.metrics.totals();
    head(&mut o, "tally_http_requests_total", "counter", "HTTP requests by route template, method and status.");
    for ((route, method, status), s) in &totals {
        let _ = writeln!(
            o,
            "tally_http_requests_total{{route=\"{}\",method=\"{}\",status=\"{status}\"}} {}",
            label(route),
            label(method),
            s.count
        );
    }
    head(
        &mut o,
        "tally_http_request_duration_seconds",
        "histogram",
        "HTTP request latency by route, method and status.",
    );
    for ((route, method, status), s) in &totals {
        let l = format!("route=\"{}\",method=\"{}\",status=\"{status}\"", label(route), label(method));
        let mut cumulative = 0;
        for (b, n) in BUCKETS.iter().zip(s.buckets) {
            cumulative += n;
            let _ = writeln!(o, "tally_http_request_duration_seconds_bucket{{{l},le=\"{b}\"}} {cumulative}");
        }
        let _ = writeln!(o, "tally_http_request_duration_seconds_bucket{{{l},le=\"+Inf\"}} {}", s.count);
        let _ = writeln!(o, "tally_http_request_duration_seconds_sum{{{l}}} {}", s.sum_micros as f64 / 1e6);
        let _ = writeln!(o, "tally_http_request_duration_seconds_count{{{l}}} {}", s.count);
    }
    let c = &state.engine.counters;
    head(&mut o, "tally_ingest_events_total", "counter", "Ingested usage events by outcome.");
    for (outcome, n) in c.events() {
        let _ = writeln!(o, "tally_ingest_events_total{{outcome=\"{}\"}} {n}", outcome.as_str());
    }
    head(
        &mut o,
        "tally_unpriced_events_total",
        "counter",
        "Events recorded for a model without a price (at $0, flagged).",
    );
    let _ = writeln!(o, "tally_unpriced_events_total {}", c.unpriced_events());
    head(
        &mut o,
        "tally_preflight_decisions_total",
        "counter",
        "Preflight answers by kind (check or reserve) and decision.",
    );
    for (reserve, allowed, n) in c.preflight() {
        let _ = writeln!(
            o,
            "tally_preflight_decisions_total{{kind=\"{}\",decision=\"{}\"}} {n}",
            if reserve { "reserve" } else { "check" },
            if allowed { "allowed" } else { "denied" }
        );
    }
    head(
        &mut o,
        "tally_reservations_one_trip_total",
        "counter",
        "PostgreSQL reservations decided on this node's copy and sent in one round trip, by what the store found \
         (held; changed: the subscription or catalog had moved; full: usage had grown past the copy). The last two \
         were decided again under the user's lock.",
    );
    for (outcome, n) in c.one_trip() {
        let _ = writeln!(o, "tally_reservations_one_trip_total{{outcome=\"{}\"}} {n}", outcome.as_str());
    }
    head(
        &mut o,
        "tally_proxy_calls_total",
        "counter",
        "Tracking-proxy calls by provider and outcome (answered, upstream_error, denied, refused, unreachable, timeout).",
    );
    for (family, outcome, n) in state.proxy.outcomes() {
        let _ = writeln!(
            o,
            "tally_proxy_calls_total{{provider=\"{}\",outcome=\"{}\"}} {n}",
            family.slug(),
            outcome.as_str()
        );
    }
    head(
        &mut o,
        "tally_webhook_deliveries_total",
        "counter",
        "Webhook delivery attempts from this node by result (delivered, retry, failed: given up).",
    );
    for (result, n) in state.webhooks.counters.results() {
        let _ = writeln!(o, "tally_webhook_deliveries_total{{result=\"{result}\"}} {n}");
    }
    let pool = state.engine.pool_stats();
    let (size, idle) = (pool.size, pool.idle);
    head(&mut o, "tally_db_pool_connections", "gauge", "Database pool connections by state.");
    let _ = writeln!(o, "tally_db_pool_connections{{state=\"idle\"}} {idle}");
    let _ = writeln!(o, "tally_db_pool_connections{{state=\"in_use\"}} {}", size.saturating_sub(idle));
    head(&mut o, "tally_db_pool_max_connections", "gauge", "The database pool's size limit.");
    let _ = writeln!(o, "tally_db_pool_max_connections {}", pool.max);
    head(&mut o, "tally_live_streams", "gauge", "Open live streams (GET /api/stream) on this node.");
    let _ = writeln!(o, "tally_live_streams {}", state.engine.live().subscribers());
    head(&mut o, "tally_uptime_seconds", "gauge", "Seconds since this process started.");
    let _ = writeln!(o, "tally_uptime_seconds {}", state.metrics.uptime().as_secs());
    head(&mut o, "tally_build_info", "gauge", "The running version.");
    let _ = writeln!(o, "tally_build_info{{version=\"{}\"}} 1", env!("CARGO_PKG_VERSION"));
    o
}
