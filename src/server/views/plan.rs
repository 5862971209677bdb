//! A plan: the admin API's and the audit log's view ([`PlanView`]), and
//! family A's `SubscriptionPlan` and `SubscriptionLimits`.

use std::collections::BTreeMap;

use serde::Serialize;

use super::usd;
use crate::domain::limits::Limits;
use crate::domain::money::Nanos;
use crate::domain::plan::{NO_PLAN, Plan};
use crate::domain::provider::{FAMILY_A_LIMIT_KEYS, LimitKey};

/// One limit's value on the admin API: counts as numbers, money as an
/// exact USD string.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum LimitValue {
    Count(i64),
    Usd(String),
}

/// A plan as the admin API answers it and the audit log records it: USD as
/// exact strings, every family A limit key present (`null` = unlimited).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlanView {
    pub id: i64,
    pub name: String,
    pub tier: &'static str,
    pub price_monthly: String,
    pub price_yearly: String,
    pub description: String,
    pub features: Vec<String>,
    pub limits: BTreeMap<String, Option<LimitValue>>,
    pub archived: bool,
    pub billing_mode: &'static str,
    pub included_credits: Option<String>,
    pub credits_rollover_cap: Option<String>,
}

impl From<&Plan> for PlanView {
    fn from(p: &Plan) -> Self {
        let mut limits: BTreeMap<String, Option<LimitValue>> =
            FAMILY_A_LIMIT_KEYS.iter().map(|k| ((*k).to_string(), None)).collect();
        for (k, v) in p.limits.iter() {
            let value = if k.is_money() { LimitValue::Usd(Nanos(v).usd_string()) } else { LimitValue::Count(v) };
            limits.insert(k.as_string(), Some(value));
        }
        PlanView {
            id: p.id,
            name: p.name.clone(),
            tier: p.tier.as_str(),
            price_monthly: p.price_monthly.usd_string(),
            price_yearly: p.price_yearly.usd_string(),
            description: p.description.clone(),
            features: p.features.clone(),
            limits,
            archived: p.archived,
            billing_mode: p.credits.mode.as_str(),
            included_credits: p.credits.included.map(Nanos::usd_string),
            credits_rollover_cap: p.credits.rollover_cap.map(Nanos::usd_string),
        }
    }
}

/// Family A's limit value: a count, or USD as a JSON number.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum FamilyANumber {
    Count(i64),
    Usd(f64),
}

/// Family A's limits: `{gemini_calls: 5000, ..., monthly_cost: 150.0}`,
/// every key the client knows (0 = unlimited), then limits on providers it
/// does not know.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(transparent)]
pub struct FamilyALimits(pub BTreeMap<String, FamilyANumber>);

impl From<&Limits> for FamilyALimits {
    fn from(limits: &Limits) -> Self {
        let mut m = BTreeMap::new();
        for key in FAMILY_A_LIMIT_KEYS {
            let k = LimitKey::parse(key).expect("family A keys parse");
            let n = limits.get(&k).unwrap_or(0);
            let v = if k.is_money() { FamilyANumber::Usd(usd(Nanos(n))) } else { FamilyANumber::Count(n) };
            m.insert((*key).to_string(), v);
        }
        for (k, v) in limits.iter() {
            m.entry(k.as_string()).or_insert(FamilyANumber::Count(v));
        }
        FamilyALimits(m)
    }
}

/// Family A's `SubscriptionLimits`: the plan's name, tier, limits and
/// features (the free tier's empty ones without a plan).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SubscriptionLimits {
    pub plan_name: String,
    pub tier: &'static str,
    pub limits: FamilyALimits,
    pub features: Vec<String>,
}

impl SubscriptionLimits {
    pub fn of(plan: Option<&Plan>) -> SubscriptionLimits {
        match plan {
            Some(p) => SubscriptionLimits {
                plan_name: p.name.clone(),
                tier: p.tier.as_str(),
                limits: FamilyALimits::from(&p.limits),
                features: p.features.clone(),
            },
            None => SubscriptionLimits {
                plan_name: NO_PLAN.to_string(),
                tier: "free",
                limits: FamilyALimits::from(&Limits::new()),
                features: Vec::new(),
            },
        }
    }
}

/// Family A's `SubscriptionPlan`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SubscriptionPlan {
    pub id: i64,
    pub name: String,
    pub tier: &'static str,
    pub price_monthly: f64,
    pub price_yearly: f64,
    pub description: String,
    pub features: Vec<String>,
    pub limits: FamilyALimits,
}

impl From<&Plan> for SubscriptionPlan {
    fn from(p: &Plan) -> Self {
        SubscriptionPlan {
            id: p.id,
            name: p.name.clone(),
            tier: p.tier.as_str(),
            price_monthly: usd(p.price_monthly),
            price_yearly: usd(p.price_yearly),
            description: p.description.clone(),
            features: p.features.clone(),
            limits: FamilyALimits::from(&p.limits),
        }
    }
}
