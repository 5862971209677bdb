//! The billing dashboard's data: one call returns everything the page
//! shows, so a refresh is one round trip and every number on the page comes
//! from the same snapshot of the engine.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitBar {
    pub key: String,
    pub label: String,
    pub used: i64,
    pub limit: i64,
    /// Display texts (money for the cost cap, counts otherwise).
    pub used_text: String,
    pub limit_text: String,
    /// Percent used, in hundredths (may exceed 10000).
    pub pct_hundredths: i64,
    pub status: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelSlice {
    pub model: String,
    pub calls: i64,
    pub tokens: i64,
    pub cost_nanos: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderSlice {
    pub provider: String,
    pub name: String,
    pub calls: i64,
    pub tokens: i64,
    pub cost_nanos: i64,
    pub errors: i64,
    pub models: Vec<ModelSlice>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Series {
    pub calls: Vec<i64>,
    pub tokens: Vec<i64>,
    pub cost_nanos: Vec<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrendData {
    pub periods: Vec<String>,
    pub total: Series,
    pub by_provider: Vec<(String, String, Series)>,
    /// The current period's projected month-end cost (nanos).
    pub projected_cost_nanos: i64,
}

/// An alert as the web UI shows it, on the dashboard and the admin's
/// alerts page alike.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertView {
    pub id: i64,
    /// Whose it is, on the admin's page (their email; administrators'
    /// alerts say so); `None` on a user's own dashboard.
    pub user: Option<String>,
    pub title: String,
    pub message: String,
    pub severity: String,
    pub is_read: bool,
    pub created_at: String,
    /// When it stopped applying (`None`: it still does).
    pub resolved_at: Option<String>,
}

#[cfg(feature = "ssr")]
impl AlertView {
    pub fn of(a: &crate::domain::alerts::Alert, user: Option<String>) -> AlertView {
        let at = |t: chrono::DateTime<chrono::Utc>| t.format("%b %-d %Y, %H:%M UTC").to_string();
        AlertView {
            id: a.id,
            user,
            title: a.title.clone(),
            message: a.message.clone(),
            severity: a.severity.as_str().to_string(),
            is_read: a.is_read,
            created_at: at(a.created_at),
            resolved_at: a.resolved_at.map(at),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HealthView {
    pub status: String,
    pub requests: u64,
    pub error_rate: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub uptime_secs: u64,
    /// App nodes serving the deployment now.
    pub nodes: usize,
    /// Provider name and error percent of its calls this period.
    pub provider_errors: Vec<(String, f64)>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Dashboard {
    pub user_id: String,
    pub user_name: String,
    pub plan_name: String,
    /// `active`, `paused` or `cancelled`, with a scheduled cancellation.
    pub subscription_status: String,
    pub cancels_on: Option<String>,
    pub billing_cycle: String,
    pub period_label: String,
    pub period_start: String,
    pub period_end: String,
    pub days_left: i64,
    pub status: String,
    pub total_cost_nanos: i64,
    pub total_calls: i64,
    pub total_tokens: i64,
    pub limits: Vec<LimitBar>,
    pub cost_cap_nanos: Option<i64>,
    pub projected_cost_nanos: i64,
    pub projected_pct_hundredths: i64,
    pub days_until_cap: Option<i64>,
    pub providers: Vec<ProviderSlice>,
    pub trends: TrendData,
    pub alerts: Vec<AlertView>,
    pub unread_alerts: i64,
    pub health: HealthView,
    pub refresh_secs: u32,
    /// The tag keys the user's events carry: the cost view can group by them.
    pub tag_keys: Vec<String>,
    /// When this snapshot was taken (RFC 3339).
    pub generated_at: String,
}

/// The dashboard of the signed-in user (or `user`, for an admin), with
/// `months` of trends (3, 6 or 12).
#[server(prefix = "/sfn")]
pub async fn get_dashboard(user: Option<String>, months: u32) -> Result<Option<Dashboard>, ServerFnError> {
    use crate::api::session::ssr::{caller, fail};
    use crate::domain::provider::display_name;

    let (state, principal) = caller().await?;
    let Some(own) = principal.own_user().map(|u| u.to_string()) else { return Ok(None) };
    let user_id = user.filter(|u| !u.is_empty()).unwrap_or(own);
    let user_id = principal.require_read(&user_id).map_err(fail)?;
    let months = if matches!(months, 3 | 6 | 12) { months } else { 6 } as usize;
    let now = chrono::Utc::now();
    let d = state.engine.dashboard(&user_id, months, now).await.map_err(fail)?;
    let cur = &d.current;
    let period = &cur.period;
    let mut providers: Vec<ProviderSlice> = cur
        .by_provider
        .iter()
        .map(|r| ProviderSlice {
            provider: r.provider.clone(),
            name: display_name(&r.provider),
            calls: r.counts.calls,
            tokens: r.counts.tokens(),
            cost_nanos: r.counts.cost.0,
            errors: r.counts.errors,
            models: d
                .by_model
                .iter()
                .filter(|m| m.provider == r.provider)
                .map(|m| ModelSlice {
                    model: if m.model.is_empty() { "(no model)".into() } else { m.model.clone() },
                    calls: m.counts.calls,
                    tokens: m.counts.tokens(),
                    cost_nanos: m.counts.cost.0,
                })
                .collect(),
        })
        .collect();
    providers.sort_by_key(|p| std::cmp::Reverse((p.cost_nanos, p.calls)));
    let series = |v: &[crate::domain::limits::ProviderUsage]| Series {
        calls: v.iter().map(|u| u.calls).collect(),
        tokens: v.iter().map(|u| u.tokens).collect(),
        cost_nanos: v.iter().map(|u| u.cost.0).collect(),
    };
    let (health, deployment) = state.current_health(crate::server::metrics::RECENT_WINDOW).await;
    let recent = &deployment.all;
    let tag_keys = state.engine.tag_keys(&user_id).await.map_err(fail)?;
    Ok(Some(Dashboard {
        user_id: user_id.to_string(),
        user_name: cur.user.name.clone(),
        plan_name: cur.plan_name().to_string(),
        subscription_status: cur.subscription.status.to_string(),
        cancels_on: cur.subscription.cancel_at.map(|t| t.format("%Y-%m-%d").to_string()),
        billing_cycle: cur.subscription.billing_cycle.as_str().into(),
        period_label: period.label(),
        // The customer's own calendar (their timezone's dates).
        period_start: period.start.with_timezone(&period.tz).format("%b %-d, %Y").to_string(),
        period_end: period.end.with_timezone(&period.tz).format("%b %-d, %Y").to_string(),
        days_left: period.days_left(now),
        status: d.status.as_str().into(),
        total_cost_nanos: cur.total_cost().0,
        total_calls: cur.total_calls(),
        total_tokens: cur.total_tokens(),
        limits: d
            .limits
            .iter()
            .map(|u| LimitBar {
                key: u.key.as_string(),
                label: u.key.label(),
                used: u.used,
                limit: u.limit,
                used_text: u.key.display_value(u.used),
                limit_text: u.key.display_value(u.limit),
                pct_hundredths: u.pct_hundredths(),
                status: u.status().as_str().into(),
            })
            .collect(),
        cost_cap_nanos: d.projection.cost_cap.map(|n| n.0),
        projected_cost_nanos: d.projection.projected_cost.0,
        projected_pct_hundredths: d.projection.projected_pct_hundredths,
        days_until_cap: d.projection.days_until_cap,
        providers: providers.clone(),
        trends: TrendData {
            periods: d.trends.periods.clone(),
            total: series(&d.trends.total),
            by_provider: d.trends.by_provider.iter().map(|(p, v)| (p.clone(), display_name(p), series(v))).collect(),
            projected_cost_nanos: d.projection.projected_cost.0,
        },
        alerts: d.alerts.iter().map(|a| AlertView::of(a, None)).collect(),
        unread_alerts: d.unread_alerts,
        health: HealthView {
            status: health.as_str().into(),
            requests: recent.requests,
            error_rate: recent.error_rate(),
            p50_ms: recent.p50_ms,
            p95_ms: recent.p95_ms,
            uptime_secs: deployment.uptime.as_secs(),
            nodes: deployment.nodes,
            // In the order of the cost breakdown (largest first).
            provider_errors: providers
                .iter()
                .filter_map(|p| cur.by_provider.iter().find(|r| r.provider == p.provider && r.counts.calls > 0))
                .map(|r| (display_name(&r.provider), r.counts.error_rate_pct()))
                .collect(),
        },
        refresh_secs: state.ui.refresh_secs,
        tag_keys,
        generated_at: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    }))
}

/// Marks one of the caller's alerts read.
#[server(prefix = "/sfn")]
pub async fn mark_alert_read(id: i64) -> Result<(), ServerFnError> {
    use crate::api::session::ssr::{caller, fail};
    let (state, principal) = caller().await?;
    state
        .engine
        .mark_alert_read(id, chrono::Utc::now(), |owner| principal.require_alert_writer(owner))
        .await
        .map_err(fail)
}

/// Marks every alert of `user` (default: the caller) read.
#[server(prefix = "/sfn")]
pub async fn mark_all_alerts_read(user: Option<String>) -> Result<u64, ServerFnError> {
    use crate::api::session::ssr::{fail, reader_of};
    let (state, principal, user_id) = reader_of(user).await?;
    let user_id = principal.require_write_alerts(&user_id).map_err(fail)?;
    state.engine.mark_all_alerts_read(&user_id, chrono::Utc::now()).await.map_err(fail)
}
