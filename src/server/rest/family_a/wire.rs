//! Family A's responses that combine a service's results (usage stats,
//! trends, the dashboard, lists), field for field as the contract names
//! them, built from the resource views in [`crate::server::views`].

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::domain::limits::{LimitUse, overall_status};
use crate::domain::projection::Trends;
use crate::domain::provider::{BUILTIN_PROVIDERS, LimitKey, Provider};
use crate::server::service::reads::{Dashboard, Snapshot};
use crate::server::views::alert::UsageAlert;
use crate::server::views::plan::{SubscriptionLimits, SubscriptionPlan};
use crate::server::views::price::ApiPricing;
use crate::server::views::usage::{LogEntryView, RenewalView};
use crate::server::views::{rfc3339, round2, usd};

/// One provider's calls, tokens and cost.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ProviderTotals {
    pub calls: i64,
    pub tokens: i64,
    pub cost: f64,
}

/// `UsageStats` of a snapshot.
#[derive(Debug, Serialize)]
pub struct UsageStats {
    pub billing_period: String,
    pub usage_status: &'static str,
    pub total_calls: i64,
    pub total_tokens: i64,
    pub total_cost: f64,
    pub avg_response_time: f64,
    pub error_rate: f64,
    pub limits: SubscriptionLimits,
    /// Every built-in provider (zeros when unused), as the client's
    /// `ProviderBreakdown` type requires; others follow.
    pub provider_breakdown: BTreeMap<String, ProviderTotals>,
    pub alerts: Vec<UsageAlert>,
    /// `{provider}_calls`, `{provider}_tokens` (the token-priced four) and
    /// `cost`, each a percent of its limit (0 when unlimited).
    pub usage_percentages: BTreeMap<String, f64>,
    pub last_updated: String,
}

impl UsageStats {
    pub fn of(s: &Snapshot, now: DateTime<Utc>) -> UsageStats {
        let uses = s.limit_uses();
        let total = s.total();
        let zero = ProviderTotals { calls: 0, tokens: 0, cost: 0.0 };
        let mut breakdown: BTreeMap<String, ProviderTotals> = BUILTIN_PROVIDERS
            .iter()
            .filter(|(p, _)| !matches!(*p, "video" | "image_edit"))
            .map(|(p, _)| ((*p).to_string(), zero))
            .collect();
        for r in &s.by_provider {
            let totals = ProviderTotals { calls: r.counts.calls, tokens: r.counts.tokens(), cost: usd(r.counts.cost) };
            breakdown.insert(r.provider.clone(), totals);
        }
        let pct = |key: &LimitKey| -> f64 { uses.iter().find(|u| &u.key == key).map_or(0.0, LimitUse::percent) };
        let mut percentages = BTreeMap::new();
        for (slug, _) in BUILTIN_PROVIDERS {
            let p = Provider::parse(slug).expect("builtin");
            percentages.insert(format!("{slug}_calls"), pct(&LimitKey::Calls(p.clone())));
            if ["gemini", "openai", "anthropic", "mistral"].contains(slug) {
                percentages.insert(format!("{slug}_tokens"), pct(&LimitKey::Tokens(p)));
            }
        }
        percentages.insert("cost".into(), pct(&LimitKey::MonthlyCost));
        UsageStats {
            billing_period: s.label.clone(),
            usage_status: overall_status(&uses).as_str(),
            total_calls: total.counts.calls,
            total_tokens: total.counts.tokens(),
            total_cost: usd(total.counts.cost),
            avg_response_time: round2(total.counts.avg_response_ms()),
            error_rate: round2(total.counts.error_rate_pct()),
            limits: SubscriptionLimits::of(s.plan.as_ref()),
            provider_breakdown: breakdown,
            alerts: s.alerts.iter().map(UsageAlert::from).collect(),
            usage_percentages: percentages,
            last_updated: rfc3339(now),
        }
    }
}

/// One series per measure.
#[derive(Debug, Serialize)]
pub struct Series {
    pub calls: Vec<i64>,
    pub cost: Vec<f64>,
    pub tokens: Vec<i64>,
}

/// `UsageTrends`.
#[derive(Debug, Serialize)]
pub struct UsageTrends {
    pub periods: Vec<String>,
    pub total_calls: Vec<i64>,
    pub total_cost: Vec<f64>,
    pub total_tokens: Vec<i64>,
    pub provider_trends: BTreeMap<String, Series>,
}

impl From<&Trends> for UsageTrends {
    fn from(t: &Trends) -> Self {
        let providers = t
            .by_provider
            .iter()
            .map(|(p, series)| {
                let s = Series {
                    calls: series.iter().map(|u| u.calls).collect(),
                    cost: series.iter().map(|u| usd(u.cost)).collect(),
                    tokens: series.iter().map(|u| u.tokens).collect(),
                };
                (p.clone(), s)
            })
            .collect();
        UsageTrends {
            periods: t.periods.clone(),
            total_calls: t.total.iter().map(|u| u.calls).collect(),
            total_cost: t.total.iter().map(|u| usd(u.cost)).collect(),
            total_tokens: t.total.iter().map(|u| u.tokens).collect(),
            provider_trends: providers,
        }
    }
}

/// The dashboard's projection of the period's cost.
#[derive(Debug, Serialize)]
pub struct Projections {
    pub projected_monthly_cost: f64,
    pub cost_limit: f64,
    pub projected_usage_percentage: f64,
}

#[derive(Debug, Serialize)]
pub struct DashboardSummary {
    pub total_api_calls_this_month: i64,
    pub total_cost_this_month: f64,
    pub usage_status: &'static str,
    pub unread_alerts: i64,
}

/// `/dashboard/{user_id}`: everything the billing dashboard shows.
#[derive(Debug, Serialize)]
pub struct DashboardData {
    pub current_usage: UsageStats,
    pub trends: UsageTrends,
    pub limits: SubscriptionLimits,
    /// The 20 newest.
    pub alerts: Vec<UsageAlert>,
    pub projections: Projections,
    pub summary: DashboardSummary,
}

impl DashboardData {
    pub fn of(d: &Dashboard, now: DateTime<Utc>) -> DashboardData {
        let total = d.current.total();
        DashboardData {
            current_usage: UsageStats::of(&d.current, now),
            trends: UsageTrends::from(&d.trends),
            limits: SubscriptionLimits::of(d.current.plan.as_ref()),
            alerts: d.alerts.iter().take(20).map(UsageAlert::from).collect(),
            projections: Projections {
                projected_monthly_cost: usd(d.projection.projected_cost),
                cost_limit: d.projection.cost_cap.map_or(0.0, usd),
                projected_usage_percentage: d.projection.projected_pct(),
            },
            summary: DashboardSummary {
                total_api_calls_this_month: total.counts.calls,
                total_cost_this_month: usd(total.counts.cost),
                usage_status: d.status.as_str(),
                unread_alerts: d.unread_alerts,
            },
        }
    }
}

/// `/plans`.
#[derive(Debug, Serialize)]
pub struct PlanList {
    pub total: usize,
    pub plans: Vec<SubscriptionPlan>,
}

/// `/pricing`.
#[derive(Debug, Serialize)]
pub struct PricingList {
    pub total: usize,
    pub pricing: Vec<ApiPricing>,
}

/// `/alerts/{user_id}`.
#[derive(Debug, Serialize)]
pub struct AlertList {
    pub alerts: Vec<UsageAlert>,
    pub total: usize,
    pub unread_count: i64,
}

/// `/alerts/{id}/mark-read`.
#[derive(Debug, Serialize)]
pub struct MarkedRead {
    pub id: i64,
    pub is_read: bool,
}

/// `/usage-logs` (not enveloped).
#[derive(Debug, Serialize)]
pub struct UsageLogPage<'a> {
    pub logs: Vec<LogEntryView<'a>>,
    pub total_count: i64,
    pub limit: i64,
    pub offset: i64,
    pub has_more: bool,
    pub next_cursor: Option<String>,
}

/// `/renewal-history/{user_id}`.
#[derive(Debug, Serialize)]
pub struct RenewalPage<'a> {
    pub renewals: Vec<RenewalView<'a>>,
    pub total_count: i64,
    pub limit: i64,
    pub offset: i64,
    pub has_more: bool,
}
