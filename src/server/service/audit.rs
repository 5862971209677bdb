//! What the audit log records. A plan, a price version, a user and a key
//! are recorded as their wire views ([`crate::server::views`]): what the
//! admin API shows of them is what the trail keeps, so a field added to one
//! appears in both. Rows written before the views existed keep the shape
//! they were written with: a plan's limits as the form took them, a
//! price's tiers as a JSON string. Changes with no view of their own (a
//! subscription's plan and cycle, its status) have snapshot types here.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::AnyConnection;

use crate::domain::period::BillingCycle;
use crate::domain::subscription::{Status, Subscription};
use crate::server::store::{StoreResult, keys};

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SubscriptionSnapshot {
    pub plan_id: Option<i64>,
    pub billing_cycle: BillingCycle,
    pub period_start: DateTime<Utc>,
    pub scheduled_plan_id: Option<i64>,
    pub scheduled_billing_cycle: Option<BillingCycle>,
    /// The open period's plan fee, exact USD.
    pub period_plan_fee: Option<String>,
}

impl From<&Subscription> for SubscriptionSnapshot {
    fn from(s: &Subscription) -> Self {
        SubscriptionSnapshot {
            plan_id: s.plan_id,
            billing_cycle: s.billing_cycle,
            period_start: s.period_start,
            scheduled_plan_id: s.pending.map(|(p, _)| p),
            scheduled_billing_cycle: s.pending.map(|(_, c)| c),
            period_plan_fee: s.period_fee.map(|f| f.usd_string()),
        }
    }
}

/// A subscription's lifecycle: active, paused or cancelled, and when a
/// scheduled cancellation takes effect.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LifecycleSnapshot {
    pub status: Status,
    pub cancel_at: Option<DateTime<Utc>>,
}

impl From<&Subscription> for LifecycleSnapshot {
    fn from(s: &Subscription) -> Self {
        LifecycleSnapshot { status: s.status, cancel_at: s.cancel_at }
    }
}

/// Writes one audit entry in the caller's transaction: who did `action` to
/// `entity` (type, id), with what it was before and after.
pub async fn record<B: Serialize, A: Serialize>(
    conn: &mut AnyConnection,
    actor: &str,
    action: &str,
    entity: (&str, &str),
    before: Option<&B>,
    after: Option<&A>,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    // Snapshot types are plain data; serialising them cannot fail.
    let json = |v: serde_json::Result<serde_json::Value>| v.expect("audit snapshots serialise");
    let before = before.map(|b| json(serde_json::to_value(b)));
    let after = after.map(|a| json(serde_json::to_value(a)));
    keys::audit(conn, actor, action, entity, before.as_ref(), after.as_ref(), now).await
}

/// Nothing before or after (an action that is its own record).
pub const NONE: Option<&()> = None;
