//! Family A: the ALwrity billing client's endpoints (`/api/subscription`).
//! The handlers parse and authorise; `wire` renders the contract's JSON;
//! `gate` is the preflight check.

mod gate;
mod wire;

pub use gate::preflight;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Deserialize;

use super::{Enveloped, envelope};
use crate::domain::usage_log::{LogFilter, LogStart};
use crate::server::error::{AppError, AppResult};
use crate::server::identity::Principal;
use crate::server::state::AppState;
use crate::server::views::alert::UsageAlert;
use crate::server::views::plan::SubscriptionPlan;
use crate::server::views::price::ApiPricing;
use crate::server::views::usage::{LogEntryView, RenewalView, UserSubscription};

use wire::{
    AlertList, DashboardData, MarkedRead, PlanList, PricingList, RenewalPage, UsageLogPage, UsageStats, UsageTrends,
};

pub async fn plans(State(state): State<AppState>) -> AppResult<Enveloped<PlanList>> {
    let cat = state.engine.catalog_snapshot().await?;
    let plans: Vec<_> = cat.plans.iter().filter(|p| !p.archived).map(SubscriptionPlan::from).collect();
    Ok(envelope(PlanList { total: plans.len(), plans }))
}

#[derive(Deserialize)]
pub struct PricingQuery {
    provider: Option<String>,
}

pub async fn pricing(
    State(state): State<AppState>,
    Query(q): Query<PricingQuery>,
) -> AppResult<Enveloped<PricingList>> {
    let cat = state.engine.catalog_snapshot().await?;
    let provider = q
        .provider
        .as_deref()
        .map(crate::domain::provider::Provider::parse)
        .transpose()
        .map_err(|e| AppError::BadRequest(e.to_string()))?;
    let pricing: Vec<_> = cat
        .prices
        .current(Utc::now())
        .into_iter()
        .filter(|v| provider.as_ref().is_none_or(|p| &v.provider == p))
        .map(ApiPricing::from)
        .collect();
    Ok(envelope(PricingList { total: pricing.len(), pricing }))
}

#[derive(Deserialize)]
pub struct UsageQuery {
    billing_period: Option<String>,
}

pub async fn usage(
    State(state): State<AppState>,
    principal: Principal,
    Path(user_id): Path<String>,
    Query(q): Query<UsageQuery>,
) -> AppResult<Enveloped<UsageStats>> {
    let user_id = principal.require_read(&user_id)?;
    let now = Utc::now();
    let snap = state.engine.snapshot(&user_id, q.billing_period.as_deref(), now).await?;
    Ok(envelope(UsageStats::of(&snap, now)))
}

#[derive(Deserialize)]
pub struct TrendsQuery {
    months: Option<String>,
}

/// `months` is 1 to 24 (default 6).
pub fn parse_months(raw: Option<&str>) -> AppResult<usize> {
    match raw {
        None => Ok(6),
        Some(s) => match s.parse::<usize>() {
            Ok(n @ 1..=24) => Ok(n),
            _ => Err(AppError::BadRequest(format!("months must be a whole number from 1 to 24 (got `{s}`)"))),
        },
    }
}

pub async fn trends(
    State(state): State<AppState>,
    principal: Principal,
    Path(user_id): Path<String>,
    Query(q): Query<TrendsQuery>,
) -> AppResult<Enveloped<UsageTrends>> {
    let user_id = principal.require_read(&user_id)?;
    let months = parse_months(q.months.as_deref())?;
    let t = state.engine.trends(&user_id, months, Utc::now()).await?;
    Ok(envelope(UsageTrends::from(&t)))
}

pub async fn dashboard(
    State(state): State<AppState>,
    principal: Principal,
    Path(user_id): Path<String>,
) -> AppResult<Enveloped<DashboardData>> {
    let user_id = principal.require_read(&user_id)?;
    let now = Utc::now();
    let d = state.engine.dashboard(&user_id, 6, now).await?;
    Ok(envelope(DashboardData::of(&d, now)))
}

#[derive(Deserialize)]
pub struct AlertsQuery {
    unread_only: Option<String>,
}

fn parse_bool(name: &str, raw: Option<&str>) -> AppResult<bool> {
    match raw {
        None => Ok(false),
        Some("true" | "1") => Ok(true),
        Some("false" | "0") => Ok(false),
        Some(s) => Err(AppError::BadRequest(format!("{name} must be true or false (got `{s}`)"))),
    }
}

pub async fn alerts(
    State(state): State<AppState>,
    principal: Principal,
    Path(user_id): Path<String>,
    Query(q): Query<AlertsQuery>,
) -> AppResult<Enveloped<AlertList>> {
    let user_id = principal.require_read(&user_id)?;
    let unread_only = parse_bool("unread_only", q.unread_only.as_deref())?;
    let (list, unread) = state.engine.alerts(&user_id, unread_only).await?;
    Ok(envelope(AlertList {
        alerts: list.iter().map(UsageAlert::from).collect(),
        total: list.len(),
        unread_count: unread,
    }))
}

pub async fn mark_read(
    State(state): State<AppState>,
    principal: Principal,
    Path(alert_id): Path<String>,
) -> AppResult<Enveloped<MarkedRead>> {
    let id: i64 =
        alert_id.parse().map_err(|_| AppError::BadRequest(format!("alert id `{alert_id}` is not a number")))?;
    state.engine.mark_alert_read(id, Utc::now(), |owner| principal.require_alert_writer(owner)).await?;
    Ok(envelope(MarkedRead { id, is_read: true }))
}

pub async fn subscription(
    State(state): State<AppState>,
    principal: Principal,
    Path(user_id): Path<String>,
) -> AppResult<Enveloped<UserSubscription>> {
    let user_id = principal.require_read(&user_id)?;
    let (_, sub, catalog) = state.engine.current_subscription(&user_id, Utc::now()).await?;
    Ok(envelope(UserSubscription::of(&user_id, &sub, catalog.plan_of(&sub))))
}

#[derive(Deserialize)]
pub struct PageQuery {
    limit: Option<String>,
    offset: Option<String>,
    provider: Option<String>,
    status_code: Option<String>,
    billing_period: Option<String>,
    status: Option<String>,
    /// `key=value`: only events carrying that tag.
    tag: Option<String>,
    /// The usage log only: the page after this `next_cursor` (instead of
    /// `offset`), as cheap deep in the log as at its start.
    cursor: Option<String>,
}

pub(crate) fn parse_num(
    name: &str,
    raw: Option<&str>,
    default: i64,
    range: std::ops::RangeInclusive<i64>,
) -> AppResult<i64> {
    match raw {
        None => Ok(default),
        Some(s) => match s.parse::<i64>() {
            Ok(n) if range.contains(&n) => Ok(n),
            _ => Err(AppError::BadRequest(format!(
                "{name} must be a whole number from {} to {} (got `{s}`)",
                range.start(),
                range.end()
            ))),
        },
    }
}

/// Parsed filters and page of the usage log.
pub fn log_query(q: &PageQuery) -> AppResult<(LogFilter, i64, i64)> {
    let limit = parse_num("limit", q.limit.as_deref(), 50, 1..=1000)?;
    let offset = parse_num("offset", q.offset.as_deref(), 0, 0..=1_000_000_000)?;
    let provider = q
        .provider
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(crate::domain::provider::Provider::parse)
        .transpose()
        .map_err(|e| AppError::BadRequest(e.to_string()))?;
    let status_code = q
        .status_code
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(|s| parse_num("status_code", Some(s), 0, 100..=599))
        .transpose()?;
    let billing_period = LogFilter::parse_period(q.billing_period.as_deref()).map_err(AppError::BadRequest)?;
    let failed = LogFilter::parse_status(q.status.as_deref()).map_err(AppError::BadRequest)?;
    let tag = crate::domain::tags::TagFilter::parse(q.tag.as_deref()).map_err(AppError::BadRequest)?;
    Ok((
        LogFilter { provider: provider.map(|p| p.as_str().to_string()), status_code, failed, billing_period, tag },
        limit,
        offset,
    ))
}

/// Not enveloped: the calling user's usage log.
pub async fn usage_logs(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<PageQuery>,
) -> AppResult<Response> {
    let user_id = principal.own_user().ok_or(match principal {
        Principal::Anonymous => AppError::Unauthorized,
        _ => AppError::Forbidden("this key is not bound to a user; the usage log is per user".into()),
    })?;
    let (filter, limit, offset) = log_query(&q)?;
    let start = match q.cursor.as_deref().filter(|c| !c.is_empty()) {
        None => LogStart::Offset(offset),
        Some(_) if offset != 0 => {
            return Err(AppError::BadRequest("give `cursor` or `offset`, not both".into()));
        }
        Some(c) => parse_cursor(c)?,
    };
    // One row past the page says whether there is a next one.
    let (mut rows, total) = state.engine.usage_log(user_id, &filter, limit + 1, start).await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = rows.last().filter(|_| more).map(|r| format!("{}_{}", r.occurred_at.timestamp_millis(), r.id));
    let page = UsageLogPage {
        logs: rows.iter().map(LogEntryView::from).collect(),
        total_count: total,
        limit,
        offset,
        has_more: more,
        next_cursor,
    };
    Ok(Json(page).into_response())
}

/// A `next_cursor`: the last row's time (ms) and id.
fn parse_cursor(raw: &str) -> AppResult<LogStart> {
    raw.split_once('_')
        .and_then(|(ms, id)| {
            let at = chrono::DateTime::from_timestamp_millis(ms.parse().ok()?)?;
            Some(LogStart::Before(at, id.parse().ok()?))
        })
        .ok_or_else(|| {
            AppError::BadRequest(format!("`cursor` must be a `next_cursor` this endpoint returned, not `{raw}`"))
        })
}

pub async fn renewal_history(
    State(state): State<AppState>,
    principal: Principal,
    Path(user_id): Path<String>,
    Query(q): Query<PageQuery>,
) -> AppResult<Response> {
    let user_id = principal.require_read(&user_id)?;
    let limit = parse_num("limit", q.limit.as_deref(), 50, 1..=1000)?;
    let offset = parse_num("offset", q.offset.as_deref(), 0, 0..=1_000_000_000)?;
    let (rows, total) = state.engine.renewals(&user_id, limit, offset, true).await?;
    let page = RenewalPage {
        renewals: rows.iter().map(RenewalView::from).collect(),
        total_count: total,
        limit,
        offset,
        has_more: offset + (rows.len() as i64) < total,
    };
    Ok(envelope(page).into_response())
}
