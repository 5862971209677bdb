//! The provider comparison page's data: per provider and model of a usage
//! period, calls, error rate, response-time percentiles, cost per call and
//! per 1,000 tokens, and how the response times spread.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// The response-time ranges the page spreads calls over: a label and the
/// range's upper end in milliseconds (exclusive).
pub const RANGES: [(&str, u64); 8] = [
    ("under 100 ms", 100),
    ("100-250 ms", 250),
    ("250-500 ms", 500),
    ("0.5-1 s", 1_000),
    ("1-2.5 s", 2_500),
    ("2.5-5 s", 5_000),
    ("5-10 s", 10_000),
    ("10 s and over", u64::MAX),
];

/// One provider's (`model: None` in `providers`) or one model's figures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelPerf {
    pub provider: String,
    pub provider_name: String,
    pub model: Option<String>,
    pub calls: i64,
    pub errors: i64,
    pub error_rate_pct: f64,
    pub timed_calls: i64,
    pub p50_ms: Option<u64>,
    pub p95_ms: Option<u64>,
    pub p99_ms: Option<u64>,
    pub cost_nanos: i64,
    pub cost_per_call_nanos: Option<i64>,
    pub cost_per_1k_tokens_nanos: Option<i64>,
    pub output_tokens_per_sec: Option<f64>,
    /// Timed calls per range of [`RANGES`] (a call counts where its
    /// response-time bucket starts).
    pub spread: Vec<i64>,
}

impl ModelPerf {
    /// What the page calls this row.
    pub fn label(&self) -> String {
        match &self.model {
            Some(m) => format!("{} {m}", self.provider_name),
            None => self.provider_name.clone(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PerformanceData {
    pub billing_period: String,
    pub percentile_error: String,
    pub providers: Vec<ModelPerf>,
    pub models: Vec<ModelPerf>,
}

#[cfg(feature = "ssr")]
impl ModelPerf {
    pub fn of(p: &crate::server::service::performance::Performance) -> ModelPerf {
        use crate::domain::response_times::bounds;
        let mut spread = vec![0; RANGES.len()];
        for (b, n) in p.times.buckets() {
            let low = bounds(b).0;
            let i = RANGES.iter().position(|(_, end)| low < *end).unwrap_or(RANGES.len() - 1);
            spread[i] += n;
        }
        use crate::server::views::round2 as round;
        ModelPerf {
            provider: p.provider.clone(),
            provider_name: crate::domain::provider::display_name(&p.provider),
            model: Some(p.model.clone()).filter(|m| !m.is_empty()),
            calls: p.calls,
            errors: p.errors,
            error_rate_pct: round(p.error_rate_pct()),
            timed_calls: p.times.count(),
            p50_ms: p.times.quantile(0.50),
            p95_ms: p.times.quantile(0.95),
            p99_ms: p.times.quantile(0.99),
            cost_nanos: p.cost.0,
            cost_per_call_nanos: p.cost_per_call().map(|n| n.0),
            cost_per_1k_tokens_nanos: p.cost_per_1k_tokens().map(|n| n.0),
            output_tokens_per_sec: p.output_tokens_per_sec().map(round),
            spread,
        }
    }
}

/// The comparison of the signed-in user's (or `user`'s, for an admin or a
/// reader of theirs) period labelled `period` (default: the current one).
#[server(prefix = "/sfn")]
pub async fn get_performance(user: Option<String>, period: Option<String>) -> Result<PerformanceData, ServerFnError> {
    use crate::api::session::ssr::{fail, reader_of};
    use crate::domain::usage_log::LogFilter;
    use crate::server::error::AppError;
    let (state, _, user_id) = reader_of(user).await?;
    let label = LogFilter::parse_period(period.as_deref()).map_err(|e| fail(AppError::BadRequest(e)))?;
    let c = state.engine.performance(&user_id, label.as_deref(), chrono::Utc::now()).await.map_err(fail)?;
    Ok(PerformanceData {
        billing_period: c.period.label(),
        percentile_error: crate::server::service::performance::PERCENTILE_ERROR.to_string(),
        providers: c.providers.iter().map(ModelPerf::of).collect(),
        models: c.models.iter().map(ModelPerf::of).collect(),
    })
}
