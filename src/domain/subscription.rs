//! A user's subscription and its renewal history.

use chrono::{DateTime, Utc};

use crate::domain::identity::UserId;
use crate::domain::money::Nanos;
use crate::domain::period::{Anchor, BillingCycle, Period, usage_period};
use chrono_tz::Tz;

/// Whether a subscription admits usage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Usage is admitted and billed.
    Active,
    /// No usage is admitted until resumed; periods still roll.
    Paused,
    /// Ended; no usage is admitted.
    Cancelled,
}

impl Status {
    pub fn parse(s: &str) -> Option<Status> {
        match s {
            "active" => Some(Status::Active),
            "paused" => Some(Status::Paused),
            "cancelled" => Some(Status::Cancelled),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Paused => "paused",
            Status::Cancelled => "cancelled",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A user's subscription: its plan, cycle, and the open usage period.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscription {
    pub user_id: UserId,
    pub plan_id: Option<i64>,
    pub billing_cycle: BillingCycle,
    pub status: Status,
    pub anchor_at: DateTime<Utc>,
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
    pub cycle_start: DateTime<Utc>,
    pub cycle_end: DateTime<Utc>,
    pub renewal_count: i64,
    /// When the subscription began; usage before it belongs to no bill.
    pub started_at: DateTime<Utc>,
    /// A change waiting for the end of the current cycle (a downgrade).
    pub pending: Option<(i64, BillingCycle)>,
    /// Plan fee accrued by the open usage period (`None`: written before
    /// fees were tracked per period; the cycle price then applies).
    pub period_fee: Option<Nanos>,
    /// A cancellation waiting for this instant (the end of the paid cycle).
    pub cancel_at: Option<DateTime<Utc>>,
    /// The timezone its periods are counted in (their labels are local).
    pub timezone: Tz,
}

impl Subscription {
    /// The open usage period (monthly, anchored at the subscription start).
    /// The one place that says which period is current.
    pub fn current_period(&self) -> Period {
        usage_period(self.anchor(), self.period_start)
    }

    /// Where its periods are counted from.
    pub fn anchor(&self) -> Anchor {
        Anchor { at: self.anchor_at, tz: self.timezone }
    }

    pub fn is_active(&self) -> bool {
        self.status == Status::Active
    }
}

/// One row of the renewal history.
#[derive(Clone, Debug, PartialEq)]
pub struct Renewal {
    pub id: i64,
    pub user_id: UserId,
    pub plan_id: Option<i64>,
    pub plan_name: String,
    pub plan_tier: String,
    pub previous_plan_name: Option<String>,
    pub previous_plan_tier: Option<String>,
    pub previous_period_start: Option<DateTime<Utc>>,
    pub previous_period_end: Option<DateTime<Utc>>,
    pub new_period_start: DateTime<Utc>,
    pub new_period_end: DateTime<Utc>,
    pub billing_cycle: String,
    pub renewal_type: String,
    pub renewal_count: i64,
    pub usage_before: Option<serde_json::Value>,
    pub payment_amount: Nanos,
    pub payment_status: String,
    pub payment_date: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// A closed period's bill.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BillingRecord {
    pub user_id: UserId,
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
    pub billing_period: String,
    pub plan_id: Option<i64>,
    pub plan_name: String,
    pub plan_fee: Nanos,
    pub usage_cost: Nanos,
    pub total: Nanos,
    pub status: String,
}
