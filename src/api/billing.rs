//! The usage log, plan comparison and self-service plan changes, and
//! billing history, for the signed-in user (or `user`, for an admin).

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    pub event_id: String,
    pub at: String,
    pub provider: String,
    pub model: String,
    pub tokens_input: i64,
    pub tokens_output: i64,
    pub cost_nanos: i64,
    /// What each class cost (`input $0.0012 · cache read $0.0001`).
    pub breakdown: String,
    /// The parts of the token totals and the service tier, when any.
    pub details: String,
    pub unpriced: bool,
    /// The token counts are an estimate (a cut proxied stream).
    pub estimated: bool,
    pub status_code: i64,
    pub response_ms: Option<i64>,
    pub period: String,
    /// `feature=outline, project=blog`, or empty.
    pub tags: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogPage {
    pub rows: Vec<LogLine>,
    pub total: i64,
    /// The page's number, for display (pages are fetched by cursor).
    pub page: i64,
    pub pages: i64,
    /// The cursor of the next (older) page, if there is one.
    pub older: Option<String>,
    /// The CSV download of the whole log with these filters.
    pub csv_href: String,
}

/// A usage-log cursor: `<occurred_at ms>.<row id>` of the last row shown.
pub fn parse_cursor(s: &str) -> Option<(i64, i64)> {
    let (at, id) = s.split_once('.')?;
    Some((at.parse().ok()?, id.parse().ok()?))
}

pub const PAGE_SIZE: i64 = 25;

#[server(prefix = "/sfn")]
pub async fn usage_log_page(
    user: Option<String>,
    page: Option<i64>,
    before: Option<String>,
    provider: Option<String>,
    status: Option<String>,
    period: Option<String>,
    tag: Option<String>,
) -> Result<LogPage, ServerFnError> {
    use crate::api::session::ssr::{fail, reader_of};
    use crate::domain::usage_log::LogFilter;
    use crate::server::error::AppError;
    let (state, _, user_id) = reader_of(user).await?;
    let nonempty = |s: Option<String>| s.filter(|s| !s.trim().is_empty());
    let bad = |e: String| fail(AppError::BadRequest(e));
    let failed = LogFilter::parse_status(status.as_deref()).map_err(bad)?;
    let period = LogFilter::parse_period(period.as_deref()).map_err(bad)?;
    let tag = crate::domain::tags::TagFilter::parse(tag.as_deref()).map_err(bad)?;
    let filter = LogFilter { provider: nonempty(provider), status_code: None, failed, billing_period: period, tag };
    use crate::domain::usage_log::LogStart;
    // Pages after the first follow a cursor (keyset): a deep page costs what
    // the first does. The page number is only shown.
    let start = match nonempty(before) {
        None => LogStart::Offset(0),
        Some(c) => {
            let (at, id) = parse_cursor(&c)
                .ok_or_else(|| fail(AppError::BadRequest(format!("`{c}` is not a usage-log position"))))?;
            let at = chrono::DateTime::from_timestamp_millis(at)
                .ok_or_else(|| fail(AppError::BadRequest(format!("`{c}` is not a usage-log position"))))?;
            LogStart::Before(at, id)
        }
    };
    let page = if matches!(start, LogStart::Offset(_)) { 1 } else { page.unwrap_or(2).clamp(2, 1_000_000_000) };
    let (rows, total) = state.engine.usage_log(&user_id, &filter, PAGE_SIZE, start).await.map_err(fail)?;
    let older = (rows.len() as i64 == PAGE_SIZE)
        .then(|| rows.last().map(|r| format!("{}.{}", r.occurred_at.timestamp_millis(), r.id)))
        .flatten();
    let csv_href = {
        use crate::domain::links::urlencode;
        let mut q = Vec::new();
        if let Some(p) = &filter.provider {
            q.push(format!("provider={}", urlencode(p)));
        }
        if let Some(f) = filter.failed {
            q.push(format!("status={}", if f { "failed" } else { "success" }));
        }
        if let Some(l) = &filter.billing_period {
            q.push(format!("billing_period={}", urlencode(l)));
        }
        if let Some(t) = &filter.tag {
            q.push(format!("tag={}", urlencode(&t.as_param())));
        }
        format!("/api/usage/{}/logs.csv{}{}", urlencode(&user_id), if q.is_empty() { "" } else { "?" }, q.join("&"))
    };
    Ok(LogPage {
        older,
        csv_href,
        rows: rows
            .into_iter()
            .map(|r| LogLine {
                event_id: r.event_id,
                at: r.occurred_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                provider: r.provider,
                model: r.model.unwrap_or_default(),
                tokens_input: r.tokens_input,
                tokens_output: r.tokens_output,
                cost_nanos: r.cost_total.0,
                breakdown: r.breakdown.describe(),
                details: r.parts.describe(r.tokens_cached_input as u64),
                unpriced: r.unpriced,
                estimated: r.estimated,
                status_code: r.status_code,
                response_ms: r.response_time_ms,
                period: r.billing_period,
                tags: r.tags.describe(),
            })
            .collect(),
        total,
        page,
        pages: ((total + PAGE_SIZE - 1) / PAGE_SIZE).max(1),
    })
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanCard {
    pub id: i64,
    pub name: String,
    pub tier: String,
    pub monthly_nanos: i64,
    pub yearly_nanos: i64,
    pub description: String,
    pub features: Vec<String>,
    pub limits: Vec<(String, String)>,
    pub current: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanOptions {
    pub plans: Vec<PlanCard>,
    pub current_cycle: String,
    /// A change waiting for the end of the cycle, in words.
    pub scheduled: Option<String>,
    /// `active`, `paused` or `cancelled`.
    pub status: String,
    /// The day a scheduled cancellation takes effect.
    pub cancels_on: Option<String>,
}

#[server(prefix = "/sfn")]
pub async fn plan_choice() -> Result<PlanOptions, ServerFnError> {
    use crate::api::session::ssr::{caller, fail};
    use crate::server::error::AppError;
    let (state, principal) = caller().await?;
    let user_id = principal.own_user().cloned().ok_or_else(|| fail(AppError::Unauthorized))?;
    let (_, sub, cat) = state.engine.current_subscription(&user_id, chrono::Utc::now()).await.map_err(fail)?;
    Ok(PlanOptions {
        plans: cat
            .plans
            .iter()
            .filter(|p| !p.archived || sub.plan_id == Some(p.id))
            .map(|p| PlanCard {
                id: p.id,
                name: p.name.clone(),
                tier: p.tier.as_str().into(),
                monthly_nanos: p.price_monthly.0,
                yearly_nanos: p.price_yearly.0,
                description: p.description.clone(),
                features: p.features.clone(),
                limits: p.limits.iter().map(|(k, v)| (k.label(), k.display_value(v))).collect(),
                current: sub.plan_id == Some(p.id),
            })
            .collect(),
        current_cycle: sub.billing_cycle.as_str().into(),
        status: sub.status.to_string(),
        cancels_on: sub.cancel_at.map(|t| t.format("%Y-%m-%d").to_string()),
        scheduled: sub.pending.map(|(id, cycle)| {
            let name = cat.plan(id).map_or("another plan", |p| p.name.as_str());
            format!("{name} ({}) from {}", cycle.as_str(), sub.cycle_end.format("%Y-%m-%d"))
        }),
    })
}

/// The signed-in user asks for another plan (or cycle), by the same rule as
/// every other door (see `Engine::change_plan`); answers what happened.
#[server(prefix = "/sfn")]
pub async fn change_my_plan(plan_id: i64, billing_cycle: String) -> Result<String, ServerFnError> {
    use crate::api::session::ssr::{caller, fail};
    use crate::domain::period::BillingCycle;
    use crate::server::error::AppError;
    let (state, principal) = caller().await?;
    let user_id = match &principal {
        crate::server::identity::principal::Principal::User { id, .. } => id.clone(),
        _ => return Err(fail(AppError::Unauthorized)),
    };
    let cycle = BillingCycle::parse(&billing_cycle)
        .ok_or_else(|| fail(AppError::Invalid("choose monthly or yearly".into())))?;
    let (sub, change) = state
        .engine
        .change_plan(&user_id, plan_id, cycle, &principal.actor(), chrono::Utc::now())
        .await
        .map_err(fail)?;
    let cat = state.engine.catalog_snapshot().await.map_err(fail)?;
    let name = cat.plan(plan_id).map_or_else(|| "the new plan".to_string(), |p| p.name.clone());
    Ok(crate::server::service::subscriptions::change_message(&name, cycle, change, &sub))
}

/// The signed-in user cancels (`action=cancel`, `at=now|period_end`),
/// pauses or resumes their subscription; answers what happened.
#[server(prefix = "/sfn")]
pub async fn change_my_status(action: String, at: Option<String>) -> Result<String, ServerFnError> {
    use crate::api::session::ssr::{caller, fail};
    use crate::server::error::AppError;
    use crate::server::service::subscriptions::Lifecycle;
    let (state, principal) = caller().await?;
    let user_id = principal.own_user().cloned().ok_or_else(|| fail(AppError::Unauthorized))?;
    let action = Lifecycle::parse(&action, at.as_deref().filter(|a| !a.is_empty()))
        .ok_or_else(|| fail(AppError::Invalid("choose cancel (now or at the cycle end), pause or resume".into())))?;
    let sub =
        state.engine.change_status(&user_id, action, &principal.actor(), chrono::Utc::now()).await.map_err(fail)?;
    Ok(match (action, sub.cancel_at) {
        (Lifecycle::CancelAtCycleEnd, Some(at)) => format!(
            "Your subscription ends on {}; until then it runs as usual. Resume it any time before then.",
            at.format("%Y-%m-%d")
        ),
        (Lifecycle::CancelNow, _) => "Your subscription is cancelled; nothing more is admitted or charged.".into(),
        (Lifecycle::Pause, _) => {
            "Your subscription is paused: nothing is admitted, and cycles that start while it is paused cost nothing."
                .into()
        }
        _ => "Your subscription is active again.".into(),
    })
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillLine {
    pub period: String,
    pub from: String,
    pub to: String,
    pub plan: String,
    pub plan_fee_nanos: i64,
    pub usage_nanos: i64,
    pub total_nanos: i64,
    pub status: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewalLine {
    pub at: String,
    pub kind: String,
    pub plan: String,
    pub previous_plan: String,
    pub cycle: String,
    pub new_period: String,
    pub amount_nanos: i64,
    pub payment_status: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    pub user_id: String,
    pub bills: Vec<BillLine>,
    pub renewals: Vec<RenewalLine>,
}

#[server(prefix = "/sfn")]
pub async fn billing_history(user: Option<String>) -> Result<History, ServerFnError> {
    use crate::api::session::ssr::{fail, reader_of};
    let (state, _, user_id) = reader_of(user).await?;
    let now = chrono::Utc::now();
    let bills = state.engine.billing_history(&user_id, now).await.map_err(fail)?;
    // Dates as the customer's calendar reads them (a subscription's
    // timezone never changes once it has a bill).
    let (_, sub, _) = state.engine.current_subscription(&user_id, now).await.map_err(fail)?;
    let day = |t: chrono::DateTime<chrono::Utc>| t.with_timezone(&sub.timezone).format("%Y-%m-%d").to_string();
    let (renewals, _) = state.engine.renewals(&user_id, 1000, 0, false).await.map_err(fail)?;
    Ok(History {
        user_id: user_id.to_string(),
        bills: bills
            .iter()
            .map(|b| BillLine {
                period: b.billing_period.clone(),
                from: day(b.period_start),
                to: day(b.period_end),
                plan: b.plan_name.clone(),
                plan_fee_nanos: b.plan_fee.0,
                usage_nanos: b.usage_cost.0,
                total_nanos: b.total.0,
                status: b.status.clone(),
            })
            .collect(),
        renewals: renewals
            .iter()
            .map(|r| RenewalLine {
                at: day(r.created_at),
                kind: r.renewal_type.clone(),
                plan: r.plan_name.clone(),
                previous_plan: r.previous_plan_name.clone().unwrap_or_default(),
                cycle: r.billing_cycle.clone(),
                new_period: format!("{} – {}", day(r.new_period_start), day(r.new_period_end)),
                amount_nanos: r.payment_amount.0,
                payment_status: r.payment_status.clone(),
            })
            .collect(),
    })
}
