//! Family A's records of a user's usage: a usage log entry, a renewal and
//! the subscription summary.

use crate::domain::identity::UserId;
use std::collections::BTreeMap;

use serde::Serialize;

use super::{rfc3339, usd};
use crate::domain::plan::{NO_PLAN, Plan};
use crate::domain::subscription::{Renewal, Status, Subscription};
use crate::domain::usage_log::LogEntry;

/// One event of the usage log (`UsageLog`); the fields this build added
/// (`actual_provider_name`, `estimated`, `tags`) only when they say
/// something.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LogEntryView<'a> {
    pub id: i64,
    pub timestamp: String,
    pub provider: &'a str,
    pub model_used: &'a Option<String>,
    pub endpoint: &'a str,
    pub method: &'a str,
    pub tokens_input: i64,
    pub tokens_output: i64,
    pub tokens_total: i64,
    pub cost_input: f64,
    pub cost_output: f64,
    pub cost_total: f64,
    /// Seconds.
    pub response_time: f64,
    pub status_code: i64,
    pub status: &'static str,
    pub error_message: &'a Option<String>,
    pub billing_period: &'a str,
    pub retry_count: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actual_provider_name: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub estimated: bool,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: &'a BTreeMap<String, String>,
}

impl<'a> From<&'a LogEntry> for LogEntryView<'a> {
    fn from(r: &'a LogEntry) -> Self {
        LogEntryView {
            id: r.id,
            timestamp: rfc3339(r.occurred_at),
            provider: &r.provider,
            model_used: &r.model,
            endpoint: r.endpoint.as_deref().unwrap_or_default(),
            method: r.method.as_deref().unwrap_or_default(),
            tokens_input: r.tokens_input,
            tokens_output: r.tokens_output,
            tokens_total: r.tokens_input + r.tokens_output,
            cost_input: usd(r.cost_input),
            cost_output: usd(r.cost_output),
            cost_total: usd(r.cost_total),
            response_time: r.response_time_ms.unwrap_or(0) as f64 / 1000.0,
            status_code: r.status_code,
            status: if r.status_code >= 400 { "failed" } else { "success" },
            error_message: &r.error_message,
            billing_period: &r.billing_period,
            retry_count: r.retry_count,
            actual_provider_name: r.actual_provider_name.as_deref(),
            estimated: r.estimated,
            tags: &r.tags.0,
        }
    }
}

/// A renewal of the subscription (`SubscriptionRenewalHistory`); the
/// previous period and plan only when there was one.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RenewalView<'a> {
    pub id: i64,
    pub plan_name: &'a str,
    pub plan_tier: &'a str,
    pub new_period_start: String,
    pub new_period_end: String,
    pub billing_cycle: &'a str,
    pub renewal_type: &'a str,
    pub renewal_count: i64,
    pub usage_before_renewal: &'a Option<serde_json::Value>,
    pub payment_amount: f64,
    pub payment_status: &'a str,
    pub payment_date: Option<String>,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_period_start: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_period_end: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_plan_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_plan_tier: Option<&'a str>,
}

impl<'a> From<&'a Renewal> for RenewalView<'a> {
    fn from(r: &'a Renewal) -> Self {
        RenewalView {
            id: r.id,
            plan_name: &r.plan_name,
            plan_tier: &r.plan_tier,
            new_period_start: rfc3339(r.new_period_start),
            new_period_end: rfc3339(r.new_period_end),
            billing_cycle: &r.billing_cycle,
            renewal_type: &r.renewal_type,
            renewal_count: r.renewal_count,
            usage_before_renewal: &r.usage_before,
            payment_amount: usd(r.payment_amount),
            payment_status: &r.payment_status,
            payment_date: r.payment_date.map(rfc3339),
            created_at: rfc3339(r.created_at),
            previous_period_start: r.previous_period_start.map(rfc3339),
            previous_period_end: r.previous_period_end.map(rfc3339),
            previous_plan_name: r.previous_plan_name.as_deref(),
            previous_plan_tier: r.previous_plan_tier.as_deref(),
        }
    }
}

/// A user's subscription on family A (`/user/{user_id}/subscription`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct UserSubscription {
    pub user_id: String,
    pub plan: String,
    pub plan_id: Option<i64>,
    pub tier: &'static str,
    pub billing_cycle: &'static str,
    pub status: Status,
    pub current_period_start: String,
    pub current_period_end: String,
    pub price: f64,
}

impl UserSubscription {
    pub fn of(user_id: &UserId, sub: &Subscription, plan: Option<&Plan>) -> UserSubscription {
        UserSubscription {
            user_id: user_id.to_string(),
            plan: plan.map_or(NO_PLAN, |p| p.name.as_str()).to_string(),
            plan_id: sub.plan_id,
            tier: plan.map_or("free", |p| p.tier.as_str()),
            billing_cycle: sub.billing_cycle.as_str(),
            status: sub.status,
            current_period_start: rfc3339(sub.cycle_start),
            current_period_end: rfc3339(sub.cycle_end),
            price: plan.map_or(0.0, |p| usd(p.price(sub.billing_cycle))),
        }
    }
}
