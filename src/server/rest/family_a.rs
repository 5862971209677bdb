//! Family A: the ALwrity billing client's wire format (`/api/subscription`).
//!
//! Field names, nesting and JSON types follow the contract exactly: money is
//! a JSON number of USD, converted from exact nanos here at the edge; a
//! limit of 0 means unlimited; optional strings are omitted, never null.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::envelope;
use crate::domain::alerts::Alert;
use crate::domain::limits::{LimitUse, Limits, overall_status};
use crate::domain::money::Nanos;
use crate::domain::plan::{NO_PLAN, Plan};
use crate::domain::pricing::PriceVersion;
use crate::domain::projection::Trends;
use crate::domain::provider::{BUILTIN_PROVIDERS, FAMILY_A_LIMIT_KEYS, LimitKey};
use crate::domain::subscription::Renewal;
use crate::domain::usage_log::{LogEntry, LogFilter, LogStart};
use crate::server::error::{AppError, AppResult};
use crate::server::identity::Principal;
use crate::server::service::reads::Snapshot;
use crate::server::state::AppState;

fn usd(n: Nanos) -> f64 {
    n.as_f64_usd()
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// `{gemini_calls: 5000, ..., monthly_cost: 150.0}`; 0 = unlimited.
pub fn limits_object(limits: &Limits) -> Map<String, Value> {
    let mut m = Map::new();
    for key in FAMILY_A_LIMIT_KEYS {
        let k = LimitKey::parse(key).expect("family A keys parse");
        let v = match (k.is_money(), limits.get(&k)) {
            (true, n) => json!(usd(Nanos(n.unwrap_or(0)))),
            (false, n) => json!(n.unwrap_or(0)),
        };
        m.insert(key.to_string(), v);
    }
    // Limits on providers the client does not know still show up.
    for (k, v) in limits.iter() {
        m.entry(k.as_string()).or_insert(json!(v));
    }
    m
}

/// `SubscriptionLimits`.
pub fn subscription_limits(plan: Option<&Plan>) -> Value {
    match plan {
        Some(p) => json!({
            "plan_name": p.name,
            "tier": p.tier.as_str(),
            "limits": limits_object(&p.limits),
            "features": p.features,
        }),
        None => {
            json!({"plan_name": NO_PLAN, "tier": "free", "limits": limits_object(&Limits::new()), "features": []})
        }
    }
}

/// `SubscriptionPlan`.
pub fn plan_json(p: &Plan) -> Value {
    json!({
        "id": p.id,
        "name": p.name,
        "tier": p.tier.as_str(),
        "price_monthly": usd(p.price_monthly),
        "price_yearly": usd(p.price_yearly),
        "description": p.description,
        "features": p.features,
        "limits": limits_object(&p.limits),
    })
}

/// `APIPricing` (per-token USD, not per million).
pub fn pricing_json(v: &PriceVersion) -> Value {
    let r = &v.rates;
    let per_token = |p: Option<crate::domain::money::Price>| p.map_or(0.0, |p| p.per_token_f64());
    let unit = |p: Option<crate::domain::money::Price>| p.map_or(0.0, |p| p.as_f64());
    json!({
        "provider": v.provider.as_str(),
        "model_name": v.model,
        "cost_per_input_token": per_token(r.input_per_million),
        "cost_per_output_token": per_token(r.output_per_million),
        "cost_per_request": unit(r.per_request),
        "cost_per_search": unit(r.per_search),
        "cost_per_image": unit(r.per_image),
        "cost_per_page": unit(r.per_page),
        "description": v.description,
        "effective_date": rfc3339(v.effective_from),
    })
}

/// `UsageAlert`; optional strings omitted.
pub fn alert_json(a: &Alert) -> Value {
    let mut v = json!({
        "id": a.id,
        "type": a.alert_type,
        "threshold_percentage": a.threshold,
        "title": a.title,
        "message": a.message,
        "severity": a.severity,
        "is_sent": true,
        "sent_at": rfc3339(a.created_at),
        "is_read": a.is_read,
        "billing_period": a.billing_period.clone().unwrap_or_else(|| crate::domain::period::month_label(a.created_at)),
        "created_at": rfc3339(a.created_at),
    });
    if let Some(p) = &a.provider {
        v["provider"] = json!(p);
    }
    if let Some(r) = a.read_at {
        v["read_at"] = json!(rfc3339(r));
    }
    v
}

/// `UsageStats` of a snapshot.
pub fn usage_stats(s: &Snapshot, now: DateTime<Utc>) -> Value {
    let uses = s.limit_uses();
    let total = s.total();
    // Every built-in provider is present (zeros when unused), as the
    // client's ProviderBreakdown type requires; others follow.
    let mut breakdown = Map::new();
    for (p, _) in BUILTIN_PROVIDERS.iter().filter(|(p, _)| !matches!(*p, "video" | "image_edit")) {
        breakdown.insert((*p).into(), json!({"calls": 0, "tokens": 0, "cost": 0.0}));
    }
    for r in &s.by_provider {
        breakdown.insert(r.provider.clone(), json!({"calls": r.calls, "tokens": r.tokens(), "cost": usd(r.cost)}));
    }
    let pct = |key: &LimitKey| -> f64 { uses.iter().find(|u| &u.key == key).map_or(0.0, LimitUse::percent) };
    let mut percentages = Map::new();
    for (slug, _) in BUILTIN_PROVIDERS {
        let p = crate::domain::provider::Provider::parse(slug).expect("builtin");
        percentages.insert(format!("{slug}_calls"), json!(pct(&LimitKey::Calls(p.clone()))));
        if ["gemini", "openai", "anthropic", "mistral"].contains(slug) {
            percentages.insert(format!("{slug}_tokens"), json!(pct(&LimitKey::Tokens(p))));
        }
    }
    percentages.insert("cost".into(), json!(pct(&LimitKey::MonthlyCost)));
    json!({
        "billing_period": s.label,
        "usage_status": overall_status(&uses).as_str(),
        "total_calls": total.calls,
        "total_tokens": total.tokens(),
        "total_cost": usd(total.cost),
        "avg_response_time": (total.avg_response_ms() * 100.0).round() / 100.0,
        "error_rate": (total.error_rate_pct() * 100.0).round() / 100.0,
        "limits": subscription_limits(s.plan.as_ref()),
        "provider_breakdown": breakdown,
        "alerts": s.alerts.iter().map(alert_json).collect::<Vec<_>>(),
        "usage_percentages": percentages,
        "last_updated": rfc3339(now),
    })
}

/// `UsageTrends`.
pub fn trends_json(t: &Trends) -> Value {
    let mut providers = Map::new();
    for (p, series) in &t.by_provider {
        providers.insert(
            p.clone(),
            json!({
                "calls": series.iter().map(|u| u.calls).collect::<Vec<_>>(),
                "cost": series.iter().map(|u| usd(u.cost)).collect::<Vec<_>>(),
                "tokens": series.iter().map(|u| u.tokens).collect::<Vec<_>>(),
            }),
        );
    }
    json!({
        "periods": t.periods,
        "total_calls": t.total.iter().map(|u| u.calls).collect::<Vec<_>>(),
        "total_cost": t.total.iter().map(|u| usd(u.cost)).collect::<Vec<_>>(),
        "total_tokens": t.total.iter().map(|u| u.tokens).collect::<Vec<_>>(),
        "provider_trends": providers,
    })
}

fn log_json(r: &LogEntry) -> Value {
    let mut v = json!({
        "id": r.id,
        "timestamp": rfc3339(r.occurred_at),
        "provider": r.provider,
        "model_used": r.model,
        "endpoint": r.endpoint.clone().unwrap_or_default(),
        "method": r.method.clone().unwrap_or_default(),
        "tokens_input": r.tokens_input,
        "tokens_output": r.tokens_output,
        "tokens_total": r.tokens_input + r.tokens_output,
        "cost_input": usd(r.cost_input),
        "cost_output": usd(r.cost_output),
        "cost_total": usd(r.cost_total),
        "response_time": r.response_time_ms.unwrap_or(0) as f64 / 1000.0,
        "status_code": r.status_code,
        "status": if r.status_code >= 400 { "failed" } else { "success" },
        "error_message": r.error_message,
        "billing_period": r.billing_period,
        "retry_count": r.retry_count,
    });
    if let Some(a) = &r.actual_provider_name {
        v["actual_provider_name"] = json!(a);
    }
    v
}

fn renewal_json(r: &Renewal) -> Value {
    let mut v = json!({
        "id": r.id,
        "plan_name": r.plan_name,
        "plan_tier": r.plan_tier,
        "new_period_start": rfc3339(r.new_period_start),
        "new_period_end": rfc3339(r.new_period_end),
        "billing_cycle": r.billing_cycle,
        "renewal_type": r.renewal_type,
        "renewal_count": r.renewal_count,
        "usage_before_renewal": r.usage_before,
        "payment_amount": usd(r.payment_amount),
        "payment_status": r.payment_status,
        "payment_date": r.payment_date.map(rfc3339),
        "created_at": rfc3339(r.created_at),
    });
    let optional = [
        ("previous_period_start", r.previous_period_start.map(rfc3339)),
        ("previous_period_end", r.previous_period_end.map(rfc3339)),
        ("previous_plan_name", r.previous_plan_name.clone()),
        ("previous_plan_tier", r.previous_plan_tier.clone()),
    ];
    for (k, val) in optional {
        if let Some(s) = val {
            v[k] = json!(s);
        }
    }
    v
}

// ----- handlers -----

pub async fn plans(State(state): State<AppState>) -> AppResult<Json<Value>> {
    let cat = state.engine.catalog_snapshot().await?;
    let plans: Vec<Value> = cat.plans.iter().filter(|p| !p.archived).map(plan_json).collect();
    Ok(envelope(json!({"total": plans.len(), "plans": plans})))
}

#[derive(Deserialize)]
pub struct PricingQuery {
    provider: Option<String>,
}

pub async fn pricing(State(state): State<AppState>, Query(q): Query<PricingQuery>) -> AppResult<Json<Value>> {
    let cat = state.engine.catalog_snapshot().await?;
    let provider = q
        .provider
        .as_deref()
        .map(crate::domain::provider::Provider::parse)
        .transpose()
        .map_err(|e| AppError::BadRequest(e.to_string()))?;
    let rows: Vec<Value> = cat
        .prices
        .current(Utc::now())
        .into_iter()
        .filter(|v| provider.as_ref().is_none_or(|p| &v.provider == p))
        .map(pricing_json)
        .collect();
    Ok(envelope(json!({"total": rows.len(), "pricing": rows})))
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
) -> AppResult<Json<Value>> {
    principal.require_read(&user_id)?;
    let now = Utc::now();
    let snap = state.engine.snapshot(&user_id, q.billing_period.as_deref(), now).await?;
    Ok(envelope(usage_stats(&snap, now)))
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
) -> AppResult<Json<Value>> {
    principal.require_read(&user_id)?;
    let months = parse_months(q.months.as_deref())?;
    let t = state.engine.trends(&user_id, months, Utc::now()).await?;
    Ok(envelope(trends_json(&t)))
}

pub async fn dashboard(
    State(state): State<AppState>,
    principal: Principal,
    Path(user_id): Path<String>,
) -> AppResult<Json<Value>> {
    principal.require_read(&user_id)?;
    let now = Utc::now();
    let d = state.engine.dashboard(&user_id, 6, now).await?;
    let total = d.current.total();
    Ok(envelope(json!({
        "current_usage": usage_stats(&d.current, now),
        "trends": trends_json(&d.trends),
        "limits": subscription_limits(d.current.plan.as_ref()),
        "alerts": d.alerts.iter().take(20).map(alert_json).collect::<Vec<_>>(),
        "projections": {
            "projected_monthly_cost": usd(d.projection.projected_cost),
            "cost_limit": d.projection.cost_cap.map_or(0.0, usd),
            "projected_usage_percentage": d.projection.projected_pct(),
        },
        "summary": {
            "total_api_calls_this_month": total.calls,
            "total_cost_this_month": usd(total.cost),
            "usage_status": d.status.as_str(),
            "unread_alerts": d.unread_alerts,
        },
    })))
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
) -> AppResult<Json<Value>> {
    principal.require_read(&user_id)?;
    let unread_only = parse_bool("unread_only", q.unread_only.as_deref())?;
    let (list, unread) = state.engine.alerts(&user_id, unread_only).await?;
    Ok(envelope(json!({
        "alerts": list.iter().map(alert_json).collect::<Vec<_>>(),
        "total": list.len(),
        "unread_count": unread,
    })))
}

pub async fn mark_read(
    State(state): State<AppState>,
    principal: Principal,
    Path(alert_id): Path<String>,
) -> AppResult<Json<Value>> {
    let id: i64 =
        alert_id.parse().map_err(|_| AppError::BadRequest(format!("alert id `{alert_id}` is not a number")))?;
    state.engine.mark_alert_read(id, Utc::now(), |owner| principal.require_alert_writer(owner)).await?;
    Ok(envelope(json!({"id": id, "is_read": true})))
}

pub async fn subscription(
    State(state): State<AppState>,
    principal: Principal,
    Path(user_id): Path<String>,
) -> AppResult<Json<Value>> {
    principal.require_read(&user_id)?;
    let (_, sub, catalog) = state.engine.current_subscription(&user_id, Utc::now()).await?;
    let plan = sub.plan_id.and_then(|id| catalog.plan(id));
    Ok(envelope(json!({
        "user_id": user_id,
        "plan": plan.map_or(NO_PLAN, |p| p.name.as_str()),
        "plan_id": sub.plan_id,
        "tier": plan.map_or("free", |p| p.tier.as_str()),
        "billing_cycle": sub.billing_cycle.as_str(),
        "status": sub.status,
        "current_period_start": rfc3339(sub.cycle_start),
        "current_period_end": rfc3339(sub.cycle_end),
        "price": plan.map_or(0.0, |p| usd(p.price(sub.billing_cycle))),
    })))
}

#[derive(Deserialize)]
pub struct PageQuery {
    limit: Option<String>,
    offset: Option<String>,
    provider: Option<String>,
    status_code: Option<String>,
    billing_period: Option<String>,
    status: Option<String>,
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
    Ok((
        LogFilter { provider: provider.map(|p| p.as_str().to_string()), status_code, failed, billing_period },
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
    let start = LogStart::Offset(offset);
    let (rows, total) = state.engine.usage_log(user_id, &filter, limit, start).await?;
    Ok(Json(json!({
        "logs": rows.iter().map(log_json).collect::<Vec<_>>(),
        "total_count": total,
        "limit": limit,
        "offset": offset,
        "has_more": offset + (rows.len() as i64) < total,
    }))
    .into_response())
}

pub async fn renewal_history(
    State(state): State<AppState>,
    principal: Principal,
    Path(user_id): Path<String>,
    Query(q): Query<PageQuery>,
) -> AppResult<Json<Value>> {
    principal.require_read(&user_id)?;
    let limit = parse_num("limit", q.limit.as_deref(), 50, 1..=1000)?;
    let offset = parse_num("offset", q.offset.as_deref(), 0, 0..=1_000_000_000)?;
    let (rows, total) = state.engine.renewals(&user_id, limit, offset, true).await?;
    Ok(envelope(json!({
        "renewals": rows.iter().map(renewal_json).collect::<Vec<_>>(),
        "total_count": total,
        "limit": limit,
        "offset": offset,
        "has_more": offset + (rows.len() as i64) < total,
    })))
}

#[derive(Deserialize)]
pub struct PreflightBody {
    operations: Vec<PreflightOp>,
    user_id: Option<String>,
    #[serde(default)]
    reserve: bool,
}

#[derive(Deserialize)]
pub struct PreflightOp {
    provider: String,
    model: Option<String>,
    tokens_requested: Option<u64>,
    units_requested: Option<u64>,
    operation_type: String,
    #[serde(rename = "actual_provider_name")]
    _actual_provider_name: Option<String>,
}

/// `POST /preflight-check`: answers (200 either way), or with
/// `"reserve": true` gates: 200 plus a reservation, or 429 naming the limit.
pub async fn preflight(
    State(state): State<AppState>,
    principal: Principal,
    body: axum::body::Bytes,
) -> AppResult<Response> {
    use crate::domain::event::MAX_COUNT;
    use crate::server::service::gate::Operation;

    let req: PreflightBody = serde_json::from_slice(&body).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            AppError::BadRequest(format!("malformed JSON: {e}"))
        } else {
            AppError::Invalid(format!("invalid preflight request: {e}"))
        }
    })?;
    let user_id = match (&req.user_id, principal.own_user()) {
        (Some(u), _) => u.clone(),
        (None, Some(u)) => u.to_string(),
        (None, None) => return Err(AppError::Invalid("user_id is required for this caller".into())),
    };
    // Holding usage is a write: the host product's backend gates with a
    // `gate` (or `ingest`) key. Only checking is a read.
    if req.reserve {
        principal.require_gate(&user_id)?;
    } else if principal.require_gate(&user_id).is_err() {
        principal.require_read(&user_id)?;
    }
    let ops = req
        .operations
        .iter()
        .map(|o| {
            let provider =
                crate::domain::provider::Provider::parse(&o.provider).map_err(|e| AppError::Invalid(e.to_string()))?;
            let tokens = o.tokens_requested.unwrap_or(0);
            if tokens > MAX_COUNT {
                return Err(AppError::Invalid(format!("tokens_requested is larger than {MAX_COUNT}")));
            }
            if o.units_requested.is_some_and(|u| u > MAX_COUNT) {
                return Err(AppError::Invalid(format!("units_requested is larger than {MAX_COUNT}")));
            }
            Ok(Operation {
                provider,
                model: o.model.clone(),
                tokens_requested: tokens,
                units_requested: o.units_requested,
                operation_type: o.operation_type.clone(),
            })
        })
        .collect::<AppResult<Vec<_>>>()?;
    let now = Utc::now();
    let p = state.engine.preflight(&user_id, &ops, req.reserve, now).await?;
    let mut data = json!({
        "can_proceed": p.can_proceed,
        "estimated_cost": usd(p.total_cost),
        "operations": p.operations.iter().map(|o| json!({
            "provider": o.provider,
            "operation_type": o.operation_type,
            "cost": usd(o.cost),
            "allowed": o.allowed,
            "limit_info": o.limit.as_ref().map(|l| json!({"current_usage": l.used, "limit": l.limit, "remaining": l.remaining()})),
            "message": o.message,
        })).collect::<Vec<_>>(),
        "total_cost": usd(p.total_cost),
        "usage_summary": p.calls_summary.as_ref().map(|l| json!({"current_calls": l.used, "limit": l.limit, "remaining": l.remaining()})),
        "cached": false,
    });
    if let Some(id) = &p.reservation_id {
        data["reservation_id"] = json!(id);
    }
    match (&p.denied_by, req.reserve) {
        (Some(l), true) => {
            let message = p.operations.iter().find_map(|o| o.message.clone()).unwrap_or_default();
            let limit_value = if l.key.is_money() {
                json!({"current_usage": usd(Nanos(l.used)), "limit": usd(Nanos(l.limit))})
            } else {
                json!({"current_usage": l.used, "limit": l.limit})
            };
            let mut limit = json!({"key": l.key.as_string(), "resets_at": rfc3339(p.resets_at)});
            if let (Some(m), Value::Object(extra)) = (limit.as_object_mut(), limit_value) {
                m.extend(extra);
            }
            Err(AppError::LimitReached {
                message,
                retry_after_secs: (p.resets_at - now).num_seconds().max(1),
                body: Some(json!({"data": data, "limit": limit})),
            })
        }
        _ => Ok(envelope(data).into_response()),
    }
}
