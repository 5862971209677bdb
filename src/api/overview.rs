//! The current period at a glance, for the home page.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// One month of the cost trend.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrendPoint {
    pub period: String,
    pub cost_nanos: i64,
    pub calls: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderLine {
    pub provider: String,
    pub name: String,
    pub calls: i64,
    pub tokens: i64,
    pub cost_nanos: i64,
}

/// The demo user's current period, as the home page shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Overview {
    pub user_name: String,
    pub plan_name: String,
    pub period_label: String,
    pub period_start: String,
    pub period_end: String,
    pub days_left: i64,
    pub total_cost_nanos: i64,
    pub total_calls: i64,
    pub total_tokens: i64,
    pub providers: Vec<ProviderLine>,
    pub trend: Vec<TrendPoint>,
}

/// The current period of the signed-in user, or of `user` for an admin.
/// `None` when nobody is signed in.
#[server(prefix = "/sfn")]
pub async fn get_overview(user: Option<String>) -> Result<Option<Overview>, ServerFnError> {
    use crate::api::session::ssr::{caller, fail};
    use crate::domain::provider::display_name;

    let (state, principal) = caller().await?;
    let Some(own) = principal.own_user().map(str::to_string) else { return Ok(None) };
    let user_id = user.filter(|u| !u.is_empty()).unwrap_or(own);
    principal.require_read(&user_id).map_err(fail)?;
    let now = chrono::Utc::now();
    let view = state.engine.period_view(&user_id, now).await.map_err(fail)?;
    let trends = state.engine.trends(&user_id, 12, now).await.map_err(fail)?;
    let mut providers: Vec<ProviderLine> = view
        .by_provider
        .iter()
        .map(|r| ProviderLine {
            provider: r.provider.clone(),
            name: display_name(&r.provider),
            calls: r.calls,
            tokens: r.tokens(),
            cost_nanos: r.cost.0,
        })
        .collect();
    providers.sort_by_key(|p| std::cmp::Reverse(p.cost_nanos));
    Ok(Some(Overview {
        user_name: view.user.name.clone(),
        plan_name: view.plan.as_ref().map(|p| p.name.clone()).unwrap_or_else(|| "No plan".into()),
        period_label: view.period.label(),
        period_start: view.period.start.format("%b %-d, %Y").to_string(),
        period_end: view.period.end.format("%b %-d, %Y").to_string(),
        days_left: view.period.days_left(now),
        total_cost_nanos: view.total_cost().0,
        total_calls: view.total_calls(),
        total_tokens: view.total_tokens(),
        providers,
        trend: trends
            .periods
            .iter()
            .zip(&trends.total)
            .map(|(p, u)| TrendPoint { period: p.clone(), cost_nanos: u.cost.0, calls: u.calls })
            .collect(),
    }))
}
