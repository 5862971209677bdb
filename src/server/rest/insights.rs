//! Insights (family B: money as exact USD strings): breakdowns, advice and
//! profitability.

use axum::extract::{Path, Query, State};
use axum::response::Response;
use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::{Enveloped, envelope};
use crate::domain::tags::BreakdownBy;
use crate::domain::usage_log::LogFilter;
use crate::server::error::{AppError, AppResult};
use crate::server::identity::Principal;
use crate::server::service::insights::Profitability;
use crate::server::state::AppState;

#[derive(Debug, Deserialize)]
pub struct BreakdownQuery {
    by: Option<String>,
    billing_period: Option<String>,
}

/// `GET /api/usage/{user_id}/breakdown?by=provider|model|tag:<key>&billing_period=`.
/// Rows sum to `total_cost`; the row whose `key` is null holds the events
/// without a model or without the tag.
pub async fn breakdown(
    State(state): State<AppState>,
    principal: Principal,
    Path(user_id): Path<String>,
    Query(q): Query<BreakdownQuery>,
) -> AppResult<Enveloped<BreakdownView>> {
    let user_id = principal.require_read(&user_id)?;
    let by = BreakdownBy::parse(q.by.as_deref().unwrap_or("provider")).map_err(AppError::BadRequest)?;
    let label = LogFilter::parse_period(q.billing_period.as_deref()).map_err(AppError::BadRequest)?;
    let b = state.engine.breakdown(&user_id, by, label.as_deref(), Utc::now()).await?;
    let rows = b
        .rows
        .iter()
        .map(|g| GroupView { key: g.key.clone(), calls: g.calls, tokens: g.tokens, cost: g.cost.usd_string() })
        .collect();
    Ok(envelope(BreakdownView {
        billing_period: b.billing_period,
        by: b.by.as_param(),
        rows,
        total_cost: b.total_cost.usd_string(),
        tag_keys: b.tag_keys,
    }))
}

/// `GET /api/insights/{user_id}`.
pub async fn insights(
    State(state): State<AppState>,
    principal: Principal,
    Path(user_id): Path<String>,
) -> AppResult<Enveloped<InsightsView>> {
    let user_id = principal.require_read(&user_id)?;
    let i = state.engine.insights(&user_id, Utc::now()).await?;
    let recommended_plan = i.recommended_plan.as_ref().map(|p| PlanAdviceView {
        plan_id: p.plan_id,
        plan_name: p.plan_name.clone(),
        reason: p.reason.clone(),
        monthly_saving: p.monthly_saving.usd_string(),
    });
    let tips = i
        .tips
        .iter()
        .map(|t| TipView {
            kind: t.kind,
            title: t.title.clone(),
            detail: t.detail.clone(),
            estimated_saving: t.estimated_saving.map(|n| n.usd_string()),
        })
        .collect();
    Ok(envelope(InsightsView {
        recommended_plan,
        tips,
        periods_considered: i.periods_considered,
        tips_period: i.tips_period,
        missing: i.missing,
    }))
}

#[derive(Debug, Deserialize)]
pub struct PeriodQuery {
    pub(crate) billing_period: Option<String>,
}

async fn profitability_of(state: &AppState, principal: &Principal, q: &PeriodQuery) -> AppResult<Profitability> {
    principal.require_admin()?;
    let label = LogFilter::parse_period(q.billing_period.as_deref()).map_err(AppError::BadRequest)?;
    state.engine.profitability(label.as_deref(), Utc::now()).await
}

/// `GET /api/admin/profitability?billing_period=` (default: each
/// customer's current period), worst margin first.
pub async fn profitability(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<PeriodQuery>,
) -> AppResult<Enveloped<ProfitabilityView>> {
    let p = profitability_of(&state, &principal, &q).await?;
    let rows = p
        .rows
        .iter()
        .map(|r| MarginView {
            user_id: r.user_id.to_string(),
            email: r.email.clone(),
            billing_period: r.billing_period.clone(),
            plan_name: r.plan_name.clone(),
            plan_fee: r.plan_fee.usd_string(),
            provider_cost: r.provider_cost.usd_string(),
            margin: r.margin().usd_string(),
            negative: r.margin().0 < 0,
            open: r.open,
        })
        .collect();
    let (fees, costs) = p.totals();
    let totals = MarginTotals {
        plan_fee: fees.usd_string(),
        provider_cost: costs.usd_string(),
        margin: crate::domain::money::Nanos(fees.0 - costs.0).usd_string(),
        customers: p.rows.len(),
        negative: p.rows.iter().filter(|r| r.margin().0 < 0).count(),
    };
    Ok(envelope(ProfitabilityView { billing_period: p.billing_period, rows, totals }))
}

/// The same as CSV.
pub async fn profitability_csv(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<PeriodQuery>,
) -> AppResult<Response> {
    let p = profitability_of(&state, &principal, &q).await?;
    let rows = p
        .rows
        .iter()
        .map(|r| {
            vec![
                r.user_id.to_string(),
                r.email.clone(),
                r.billing_period.clone(),
                r.plan_name.clone(),
                r.plan_fee.usd_string(),
                r.provider_cost.usd_string(),
                r.margin().usd_string(),
                (r.margin().0 < 0).to_string(),
                (if r.open { "open" } else { "billed" }).to_string(),
            ]
        })
        .collect();
    let h = [
        "user_id",
        "email",
        "billing_period",
        "plan",
        "plan_fee_usd",
        "provider_cost_usd",
        "margin_usd",
        "negative",
        "period",
    ];
    let name = format!("profitability-{}.csv", p.billing_period.as_deref().unwrap_or("current"));
    Ok(super::csv::csv(&name, &h, rows))
}

/// `GET /api/usage/{user_id}/breakdown`.
#[derive(Serialize)]
pub struct BreakdownView {
    billing_period: String,
    by: String,
    rows: Vec<GroupView>,
    total_cost: String,
    tag_keys: Vec<String>,
}

/// One group of a breakdown (`key` null: no model, or no such tag).
#[derive(Serialize)]
pub struct GroupView {
    key: Option<String>,
    calls: i64,
    tokens: i64,
    cost: String,
}

/// `GET /api/insights/{user_id}`.
#[derive(Serialize)]
pub struct InsightsView {
    recommended_plan: Option<PlanAdviceView>,
    tips: Vec<TipView>,
    periods_considered: Vec<String>,
    tips_period: String,
    missing: Vec<String>,
}

#[derive(Serialize)]
pub struct PlanAdviceView {
    plan_id: i64,
    plan_name: String,
    reason: String,
    monthly_saving: String,
}

#[derive(Serialize)]
pub struct TipView {
    kind: &'static str,
    title: String,
    detail: String,
    estimated_saving: Option<String>,
}

/// `GET /api/admin/profitability`.
#[derive(Serialize)]
pub struct ProfitabilityView {
    billing_period: Option<String>,
    rows: Vec<MarginView>,
    totals: MarginTotals,
}

/// One customer's period: fee, provider cost and margin.
#[derive(Serialize)]
pub struct MarginView {
    user_id: String,
    email: String,
    billing_period: String,
    plan_name: String,
    plan_fee: String,
    provider_cost: String,
    margin: String,
    negative: bool,
    open: bool,
}

#[derive(Serialize)]
pub struct MarginTotals {
    plan_fee: String,
    provider_cost: String,
    margin: String,
    customers: usize,
    negative: usize,
}
