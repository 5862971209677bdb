//! The `data` of each webhook event that is not an alert (alerts are
//! [`super::alert::AlertData`]): one typed view per event, so the services
//! that send them and the contract's list of events cannot drift apart.
//! Money is exact USD strings, instants RFC 3339.

use serde::Serialize;

use super::instant;
use crate::domain::plan::Plan;
use crate::domain::subscription::{BillingRecord, Subscription};
use crate::domain::wallet::Entry;

/// `wallet.credited`: a grant, refund or positive adjustment.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WalletCredited<'a> {
    pub user_id: &'a str,
    pub kind: &'static str,
    pub grant_id: Option<&'a str>,
    pub amount: String,
    pub balance: String,
}

impl<'a> WalletCredited<'a> {
    pub fn of(user_id: &'a str, e: &'a Entry) -> WalletCredited<'a> {
        WalletCredited {
            user_id,
            kind: e.kind.as_str(),
            grant_id: e.grant_id.as_deref(),
            amount: e.amount.usd_string(),
            balance: e.balance_after.usd_string(),
        }
    }
}

/// `wallet.low` (with the threshold crossed) and `wallet.depleted`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WalletBalance<'a> {
    pub user_id: &'a str,
    pub balance: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<String>,
}

/// `grant.expiring`: credits that lapse soon.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GrantExpiring<'a> {
    pub user_id: &'a str,
    pub grant_id: &'a str,
    pub remaining: String,
    pub expires_at: String,
}

/// `period.closed`: the closed period's bill.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PeriodClosed<'a> {
    pub user_id: &'a str,
    pub billing_period: &'a str,
    pub period_start: String,
    pub period_end: String,
    pub plan_id: Option<i64>,
    pub plan_name: &'a str,
    pub plan_fee: String,
    pub usage_cost: String,
    pub total: String,
    pub status: &'a str,
}

impl<'a> From<&'a BillingRecord> for PeriodClosed<'a> {
    fn from(b: &'a BillingRecord) -> Self {
        PeriodClosed {
            user_id: b.user_id.as_str(),
            billing_period: &b.billing_period,
            period_start: instant(b.period_start),
            period_end: instant(b.period_end),
            plan_id: b.plan_id,
            plan_name: &b.plan_name,
            plan_fee: b.plan_fee.usd_string(),
            usage_cost: b.usage_cost.usd_string(),
            total: b.total.usd_string(),
            status: &b.status,
        }
    }
}

/// `subscription.changed`: what changed (`plan.change`,
/// `subscription.cancel`, ...) and the subscription after it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SubscriptionChanged<'a> {
    pub user_id: &'a str,
    pub change: &'a str,
    pub plan_id: Option<i64>,
    pub plan_name: Option<&'a str>,
    pub billing_cycle: &'static str,
    pub status: &'static str,
    pub timezone: &'static str,
    pub period_start: String,
    pub period_end: String,
    pub scheduled_plan_id: Option<i64>,
}

impl<'a> SubscriptionChanged<'a> {
    pub fn of(sub: &'a Subscription, plan: Option<&'a Plan>, change: &'a str) -> SubscriptionChanged<'a> {
        SubscriptionChanged {
            user_id: sub.user_id.as_str(),
            change,
            plan_id: sub.plan_id,
            plan_name: plan.map(|p| p.name.as_str()),
            billing_cycle: sub.billing_cycle.as_str(),
            status: sub.status.as_str(),
            timezone: sub.timezone.name(),
            period_start: instant(sub.period_start),
            period_end: instant(sub.period_end),
            scheduled_plan_id: sub.pending.map(|(id, _)| id),
        }
    }
}

/// `usage.spike`: the last hour's spend against the hourly average.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct UsageSpike<'a> {
    pub user_id: &'a str,
    pub alert_id: i64,
    pub last_hour_cost: String,
    pub hourly_average: String,
    pub ratio: f64,
    pub multiple: u32,
    pub billing_period: String,
}
