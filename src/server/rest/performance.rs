//! `GET /api/usage/{user_id}/performance?billing_period=YYYY-MM`: the
//! provider comparison (family B: money as exact USD strings).

use axum::extract::{Path, Query, State};
use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::{Enveloped, envelope};
use crate::domain::usage_log::LogFilter;
use crate::server::error::{AppError, AppResult};
use crate::server::identity::Principal;
use crate::server::service::performance::{Comparison, PERCENTILE_ERROR, Performance};
use crate::server::state::AppState;
use crate::server::views::{instant, round2 as round};

#[derive(Debug, Deserialize)]
pub struct PeriodQuery {
    billing_period: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct PerformanceView {
    pub provider: String,
    /// `null` in `providers` (each provider's models merged) and for the
    /// calls that named no model.
    pub model: Option<String>,
    pub calls: i64,
    pub errors: i64,
    /// Percent of calls answered with a status of 400 or above.
    pub error_rate_pct: f64,
    /// Calls that reported a response time: what the percentiles are of.
    pub timed_calls: i64,
    pub mean_ms: Option<f64>,
    pub p50_ms: Option<u64>,
    pub p95_ms: Option<u64>,
    pub p99_ms: Option<u64>,
    pub cost: String,
    pub cost_per_call: Option<String>,
    pub cost_per_1k_tokens: Option<String>,
    pub output_tokens_per_sec: Option<f64>,
}

impl From<&Performance> for PerformanceView {
    fn from(p: &Performance) -> Self {
        PerformanceView {
            provider: p.provider.clone(),
            model: Some(p.model.clone()).filter(|m| !m.is_empty()),
            calls: p.calls,
            errors: p.errors,
            error_rate_pct: round(p.error_rate_pct()),
            timed_calls: p.times.count(),
            mean_ms: p.mean_ms().map(round),
            p50_ms: p.times.quantile(0.50),
            p95_ms: p.times.quantile(0.95),
            p99_ms: p.times.quantile(0.99),
            cost: p.cost.usd_string(),
            cost_per_call: p.cost_per_call().map(|n| n.usd_string()),
            cost_per_1k_tokens: p.cost_per_1k_tokens().map(|n| n.usd_string()),
            output_tokens_per_sec: p.output_tokens_per_sec().map(round),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ComparisonView {
    pub user_id: String,
    pub billing_period: String,
    pub period_start: String,
    pub period_end: String,
    pub percentile_error: &'static str,
    pub providers: Vec<PerformanceView>,
    pub models: Vec<PerformanceView>,
}

impl ComparisonView {
    fn of(user_id: &str, c: &Comparison) -> ComparisonView {
        ComparisonView {
            user_id: user_id.to_string(),
            billing_period: c.period.label(),
            period_start: instant(c.period.start),
            period_end: instant(c.period.end),
            percentile_error: PERCENTILE_ERROR,
            providers: c.providers.iter().map(PerformanceView::from).collect(),
            models: c.models.iter().map(PerformanceView::from).collect(),
        }
    }
}

pub async fn performance(
    State(state): State<AppState>,
    principal: Principal,
    Path(user_id): Path<String>,
    Query(q): Query<PeriodQuery>,
) -> AppResult<Enveloped<ComparisonView>> {
    let user_id = principal.require_read(&user_id)?;
    let label = LogFilter::parse_period(q.billing_period.as_deref()).map_err(AppError::BadRequest)?;
    let c = state.engine.performance(&user_id, label.as_deref(), Utc::now()).await?;
    Ok(envelope(ComparisonView::of(user_id.as_str(), &c)))
}
