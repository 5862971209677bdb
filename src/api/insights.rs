//! Cost breakdowns by model or tag, the "Save money" card's advice, and the
//! admin profitability page.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// One group of a breakdown (`key: None`: events without that model or tag).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupView {
    pub key: Option<String>,
    pub calls: i64,
    pub tokens: i64,
    pub cost_nanos: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakdownView {
    pub billing_period: String,
    /// `provider`, `model` or `tag:<key>`.
    pub by: String,
    pub rows: Vec<GroupView>,
    pub total_cost_nanos: i64,
}

/// The period's cost grouped by `by` (`model` or `tag:<key>`).
#[server(prefix = "/sfn")]
pub async fn get_breakdown(user: Option<String>, by: String) -> Result<BreakdownView, ServerFnError> {
    use crate::api::session::ssr::{fail, reader_of};
    use crate::domain::tags::BreakdownBy;
    use crate::server::error::AppError;
    let (state, _, user_id) = reader_of(user).await?;
    let by = BreakdownBy::parse(&by).map_err(|e| fail(AppError::BadRequest(e)))?;
    let b = state.engine.breakdown(&user_id, by, None, chrono::Utc::now()).await.map_err(fail)?;
    Ok(BreakdownView {
        billing_period: b.billing_period,
        by: b.by.as_param(),
        rows: b
            .rows
            .into_iter()
            .map(|g| GroupView { key: g.key, calls: g.calls, tokens: g.tokens, cost_nanos: g.cost.0 })
            .collect(),
        total_cost_nanos: b.total_cost.0,
    })
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TipView {
    pub kind: String,
    pub title: String,
    pub detail: String,
    pub saving_nanos: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdviceView {
    /// Plan name, monthly saving (nanos) and why.
    pub plan: Option<(String, i64, String)>,
    pub tips: Vec<TipView>,
    pub missing: Vec<String>,
    pub tips_period: String,
}

#[server(prefix = "/sfn")]
pub async fn get_advice(user: Option<String>) -> Result<AdviceView, ServerFnError> {
    use crate::api::session::ssr::{fail, reader_of};
    let (state, _, user_id) = reader_of(user).await?;
    let i = state.engine.insights(&user_id, chrono::Utc::now()).await.map_err(fail)?;
    Ok(AdviceView {
        plan: i.recommended_plan.map(|p| (p.plan_name, p.monthly_saving.0, p.reason)),
        tips: i
            .tips
            .into_iter()
            .map(|t| TipView {
                kind: t.kind.into(),
                title: t.title,
                detail: t.detail,
                saving_nanos: t.estimated_saving.map(|n| n.0),
            })
            .collect(),
        missing: i.missing,
        tips_period: i.tips_period,
    })
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarginView {
    pub user_id: String,
    pub email: String,
    pub billing_period: String,
    pub plan_name: String,
    pub plan_fee_nanos: i64,
    pub provider_cost_nanos: i64,
    pub margin_nanos: i64,
    pub open: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfitabilityView {
    pub billing_period: Option<String>,
    pub rows: Vec<MarginView>,
    pub csv_href: String,
    /// The deployment's usage of the same period as FOCUS 1.2 CSV.
    pub focus_href: String,
}

/// Every customer's plan fee against provider cost (admins only).
#[server(prefix = "/sfn")]
pub async fn get_profitability(period: Option<String>) -> Result<ProfitabilityView, ServerFnError> {
    use crate::api::session::ssr::{caller, fail};
    use crate::domain::usage_log::LogFilter;
    use crate::server::error::AppError;
    let (state, principal) = caller().await?;
    principal.require_admin().map_err(fail)?;
    let label = LogFilter::parse_period(period.as_deref()).map_err(|e| fail(AppError::BadRequest(e)))?;
    let p = state.engine.profitability(label.as_deref(), chrono::Utc::now()).await.map_err(fail)?;
    let query = p.billing_period.as_ref().map(|l| format!("?billing_period={l}")).unwrap_or_default();
    Ok(ProfitabilityView {
        billing_period: p.billing_period,
        csv_href: format!("/api/admin/profitability.csv{query}"),
        focus_href: format!("/api/admin/export/focus{query}"),
        rows: p
            .rows
            .into_iter()
            .map(|r| MarginView {
                margin_nanos: r.margin().0,
                user_id: r.user_id.to_string(),
                email: r.email,
                billing_period: r.billing_period,
                plan_name: r.plan_name,
                plan_fee_nanos: r.plan_fee.0,
                provider_cost_nanos: r.provider_cost.0,
                open: r.open,
            })
            .collect(),
    })
}
