//! Family A's JSON shapes, field for field as the contract names them:
//! money is a JSON number of USD converted from exact nanos here, at the
//! edge; a limit of 0 means unlimited; optional strings are omitted.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use crate::domain::alerts::Alert;
use crate::domain::limits::{LimitUse, Limits, overall_status};
use crate::domain::money::Nanos;
use crate::domain::plan::{NO_PLAN, Plan};
use crate::domain::pricing::PriceVersion;
use crate::domain::projection::Trends;
use crate::domain::provider::{BUILTIN_PROVIDERS, FAMILY_A_LIMIT_KEYS, LimitKey};
use crate::domain::subscription::Renewal;
use crate::domain::usage_log::LogEntry;
use crate::server::service::reads::Snapshot;

pub(super) fn usd(n: Nanos) -> f64 {
    n.as_f64_usd()
}

pub(super) fn rfc3339(t: DateTime<Utc>) -> String {
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
    let r = &v.rates.base;
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
        "severity": a.severity.as_str(),
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
        breakdown.insert(
            r.provider.clone(),
            json!({"calls": r.counts.calls, "tokens": r.counts.tokens(), "cost": usd(r.counts.cost)}),
        );
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
        "total_calls": total.counts.calls,
        "total_tokens": total.counts.tokens(),
        "total_cost": usd(total.counts.cost),
        "avg_response_time": (total.counts.avg_response_ms() * 100.0).round() / 100.0,
        "error_rate": (total.counts.error_rate_pct() * 100.0).round() / 100.0,
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

pub(super) fn log_json(r: &LogEntry) -> Value {
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
    if r.estimated {
        v["estimated"] = json!(true);
    }
    if !r.tags.is_empty() {
        v["tags"] = json!(r.tags.0);
    }
    v
}

pub(super) fn renewal_json(r: &Renewal) -> Value {
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
