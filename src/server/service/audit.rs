//! What the audit log records: each changed thing as its own snapshot type,
//! never the JSON of an API, so changing an API never changes the audit
//! trail (and the audit trail's shape is reviewed here, in one place).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::AnyConnection;

use crate::domain::identity::{ApiKey, Role, Scope, User};
use crate::domain::money::Nanos;
use crate::domain::period::BillingCycle;
use crate::domain::plan::Plan;
use crate::domain::pricing::PriceVersion;
use crate::domain::subscription::{Status, Subscription};
use crate::server::store::{StoreResult, keys};

/// A plan: prices and the money limit as exact USD strings, counts as
/// numbers; unset limits are absent (unlimited).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PlanSnapshot {
    pub id: i64,
    pub name: String,
    pub tier: &'static str,
    pub price_monthly: String,
    pub price_yearly: String,
    pub description: String,
    pub features: Vec<String>,
    pub limits: BTreeMap<String, String>,
    pub archived: bool,
    /// Left out for postpaid plans, as every plan was before credits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub billing_mode: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub included_credits: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credits_rollover_cap: Option<String>,
}

impl From<&Plan> for PlanSnapshot {
    fn from(p: &Plan) -> Self {
        PlanSnapshot {
            id: p.id,
            name: p.name.clone(),
            tier: p.tier.as_str(),
            price_monthly: p.price_monthly.usd_string(),
            price_yearly: p.price_yearly.usd_string(),
            description: p.description.clone(),
            features: p.features.clone(),
            limits: p.limits.iter().map(|(k, v)| (k.as_string(), k.input_value(v))).collect(),
            archived: p.archived,
            billing_mode: p.credits.prepaid().then_some(p.credits.mode.as_str()),
            included_credits: p.credits.included.map(Nanos::usd_string),
            credits_rollover_cap: p.credits.rollover_cap.map(Nanos::usd_string),
        }
    }
}

/// A price version: each unit price as its exact decimal string.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PriceSnapshot {
    pub id: i64,
    pub provider: String,
    pub model: String,
    pub effective_from: DateTime<Utc>,
    pub rates: BTreeMap<&'static str, String>,
    pub description: String,
}

impl From<&PriceVersion> for PriceSnapshot {
    fn from(v: &PriceVersion) -> Self {
        use crate::domain::pricing::json;
        let r = &v.rates;
        let mut rates: BTreeMap<&'static str, String> = r.base.iter().map(|(f, p)| (f.name(), p.as_string())).collect();
        if !r.tiers.is_empty() {
            rates.insert("tiers", json::tiers_to_json(&r.tiers).to_string());
        }
        if !r.service_tiers.is_empty() {
            rates.insert("service_tiers", json::service_tiers_to_json(&r.service_tiers).to_string());
        }
        PriceSnapshot {
            id: v.id,
            provider: v.provider.as_str().to_string(),
            model: v.model.clone(),
            effective_from: v.effective_from,
            rates,
            description: v.description.clone(),
        }
    }
}

/// A user account (never its password).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UserSnapshot {
    pub id: String,
    pub email: String,
    pub name: String,
    pub role: Role,
}

impl From<&User> for UserSnapshot {
    fn from(u: &User) -> Self {
        UserSnapshot { id: u.id.to_string(), email: u.email.to_string(), name: u.name.clone(), role: u.role }
    }
}

/// An API key (never its secret).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeySnapshot {
    pub id: String,
    pub prefix: String,
    pub user_id: Option<String>,
    pub scopes: Vec<Scope>,
    pub name: String,
}

impl From<&ApiKey> for KeySnapshot {
    fn from(k: &ApiKey) -> Self {
        KeySnapshot {
            id: k.id.clone(),
            prefix: k.prefix.clone(),
            user_id: k.user_id.as_ref().map(|u| u.to_string()),
            scopes: k.scopes.clone(),
            name: k.name.clone(),
        }
    }
}

/// A subscription's plan and cycle, with what is scheduled.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::limits::Limits;
    use crate::domain::money::Nanos;
    use crate::domain::plan::Tier;

    /// The audit trail's shape is pinned here: a change to an API's JSON
    /// cannot move it, and a change to it is a deliberate edit of this test.
    #[test]
    fn plan_snapshot_shape() {
        let plan = Plan {
            id: 7,
            name: "Pro".into(),
            tier: Tier::Pro,
            price_monthly: Nanos::from_usd(79),
            price_yearly: Nanos::from_usd(790),
            description: "d".into(),
            features: vec!["f".into()],
            limits: Limits::new().with("openai_calls", 100).with("monthly_cost", Nanos::from_usd(150).0),
            archived: false,
            credits: Default::default(),
        };
        let v = serde_json::to_value(PlanSnapshot::from(&plan)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "id": 7, "name": "Pro", "tier": "pro", "price_monthly": "79.000000000",
                "price_yearly": "790.000000000",
                "description": "d", "features": ["f"], "limits": {"monthly_cost": "150", "openai_calls": "100"},
                "archived": false,
            })
        );
    }
}
