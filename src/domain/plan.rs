//! Subscription plans.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::limits::Limits;
use super::money::Nanos;
use super::period::BillingCycle;

/// What a user without a plan is shown as being on.
pub const NO_PLAN: &str = "No plan";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Free,
    Basic,
    Pro,
    Enterprise,
}

impl Tier {
    pub fn parse(s: &str) -> Option<Tier> {
        match s {
            "free" => Some(Tier::Free),
            "basic" => Some(Tier::Basic),
            "pro" => Some(Tier::Pro),
            "enterprise" => Some(Tier::Enterprise),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Free => "free",
            Tier::Basic => "basic",
            Tier::Pro => "pro",
            Tier::Enterprise => "enterprise",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub id: i64,
    pub name: String,
    pub tier: Tier,
    pub price_monthly: Nanos,
    pub price_yearly: Nanos,
    pub description: String,
    pub features: Vec<String>,
    pub limits: Limits,
    pub archived: bool,
    /// How its customers pay for usage, and the credits it includes.
    pub credits: Credits,
}

impl Plan {
    pub fn price(&self, cycle: BillingCycle) -> Nanos {
        match cycle {
            BillingCycle::Monthly => self.price_monthly,
            BillingCycle::Yearly => self.price_yearly,
        }
    }
}

/// Whether a plan's customers pay for usage after the period or spend
/// prepaid credits that the gate reserves against before each call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BillingMode {
    #[default]
    Postpaid,
    Prepaid,
}

impl BillingMode {
    pub fn as_str(self) -> &'static str {
        match self {
            BillingMode::Postpaid => "postpaid",
            BillingMode::Prepaid => "prepaid",
        }
    }

    pub fn parse(s: &str) -> Option<BillingMode> {
        [BillingMode::Postpaid, BillingMode::Prepaid].into_iter().find(|m| m.as_str() == s)
    }
}

/// A plan's billing mode and included credits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Credits {
    pub mode: BillingMode,
    /// Granted at each period start; `None`: none.
    pub included: Option<Nanos>,
    /// How much of them may roll over into the next period; `None`: they
    /// expire at the period's end.
    pub rollover_cap: Option<Nanos>,
}

impl Credits {
    pub fn prepaid(self) -> bool {
        self.mode == BillingMode::Prepaid
    }
}

/// How a plan change is recorded in the renewal history.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RenewalType {
    New,
    Renewal,
    Upgrade,
    Downgrade,
    /// Lifecycle entries: family A's client is not shown these.
    Cancellation,
    Pause,
    Resume,
}

impl RenewalType {
    pub fn as_str(self) -> &'static str {
        match self {
            RenewalType::New => "new",
            RenewalType::Renewal => "renewal",
            RenewalType::Upgrade => "upgrade",
            RenewalType::Downgrade => "downgrade",
            RenewalType::Cancellation => "cancellation",
            RenewalType::Pause => "pause",
            RenewalType::Resume => "resume",
        }
    }
}

/// Classifies a change from `from` (none for a first subscription) to `to`:
/// by tier, then by the plan's monthly list price, then by cycle (yearly is
/// the bigger commitment).
pub fn classify_change(from: Option<(&Plan, BillingCycle)>, to: (&Plan, BillingCycle)) -> RenewalType {
    let Some(from) = from else { return RenewalType::New };
    let key = |(p, c): (&Plan, BillingCycle)| (p.tier, p.price_monthly, c == BillingCycle::Yearly);
    match key(to).cmp(&key(from)) {
        std::cmp::Ordering::Greater => RenewalType::Upgrade,
        std::cmp::Ordering::Less => RenewalType::Downgrade,
        std::cmp::Ordering::Equal => RenewalType::Renewal,
    }
}

/// What a requested plan change does, by the one rule every door (the
/// user's own plan page, the admin UI and the admin API) follows:
///
/// - A plan change never restarts the usage period: what was used so far
///   this period stays used and counts against the new plan's limits.
/// - Moving to a *higher* plan (by tier, then monthly list price) takes
///   effect at once, keeping the billing cycle's dates; the fee for it is
///   the difference between the two plans' prices for the current cycle,
///   prorated to the time left in the cycle (nothing is charged twice, and
///   nothing is refunded). A change of billing cycle asked for together
///   with it waits for the cycle end.
/// - Everything else (a lower plan, or only a different billing cycle) is
///   scheduled for the end of the current cycle: the plan in force and its
///   limits stay until then, and the next cycle starts on the new terms at
///   the new price.
/// - Asking for the plan and cycle in force cancels a scheduled change, or
///   is refused when none is scheduled; asking again for the scheduled
///   change is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlanChange {
    /// Switch to the new plan now and charge `fee`; `then` is a cycle change
    /// left for the cycle end.
    Upgrade { fee: Nanos, then: Option<BillingCycle> },
    /// Apply at the end of the current cycle.
    Scheduled,
    /// Drop the scheduled change; nothing else changes.
    CancelScheduled,
}

/// Why a plan change was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlanChangeRefused {
    #[error("you are already on this plan and billing cycle")]
    AlreadyOnPlan,
    #[error("this change is already scheduled for the end of the current billing cycle")]
    AlreadyScheduled,
}

/// The rule of [`PlanChange`]: `from` is the plan and cycle in force (none
/// for a user without a plan), `pending` a scheduled change, `cycle` the
/// current billing cycle's `[start, end)`.
pub fn decide_plan_change(
    from: Option<(&Plan, BillingCycle)>,
    pending: Option<(i64, BillingCycle)>,
    to: (&Plan, BillingCycle),
    cycle: (DateTime<Utc>, DateTime<Utc>),
    now: DateTime<Utc>,
) -> Result<PlanChange, PlanChangeRefused> {
    let (to_plan, to_cycle) = to;
    if pending == Some((to_plan.id, to_cycle)) {
        return Err(PlanChangeRefused::AlreadyScheduled);
    }
    let Some((from_plan, from_cycle)) = from else {
        let fee = prorate(to_plan.price(to_cycle), cycle, now);
        return Ok(PlanChange::Upgrade { fee, then: None });
    };
    if from_plan.id == to_plan.id && from_cycle == to_cycle {
        return if pending.is_some() { Ok(PlanChange::CancelScheduled) } else { Err(PlanChangeRefused::AlreadyOnPlan) };
    }
    let rank = |p: &Plan| (p.tier, p.price_monthly);
    if rank(to_plan) > rank(from_plan) {
        let difference = to_plan.price(from_cycle).saturating_sub(from_plan.price(from_cycle));
        let fee = prorate(Nanos(difference.0.max(0)), cycle, now);
        Ok(PlanChange::Upgrade { fee, then: (to_cycle != from_cycle).then_some(to_cycle) })
    } else {
        Ok(PlanChange::Scheduled)
    }
}

/// `amount` × (time left in `[start, end)` after `now`) / (its length),
/// rounded half away from zero to the nano-dollar: the one proration rule.
pub fn prorate(amount: Nanos, (start, end): (DateTime<Utc>, DateTime<Utc>), now: DateTime<Utc>) -> Nanos {
    let length = (end - start).num_milliseconds();
    if length <= 0 {
        return Nanos::ZERO;
    }
    let left = (end - now).num_milliseconds().clamp(0, length);
    Decimal::from(amount.0)
        .checked_mul(Decimal::from(left))
        .and_then(|x| x.checked_div(Decimal::from(length)))
        .and_then(|exact| Nanos::round_from_decimal(exact).ok())
        .unwrap_or(amount)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(tier: Tier, monthly: i64) -> Plan {
        Plan {
            id: 0,
            name: tier.as_str().into(),
            tier,
            price_monthly: Nanos::from_usd(monthly),
            price_yearly: Nanos::from_usd(monthly * 10),
            description: String::new(),
            features: vec![],
            limits: Limits::new(),
            archived: false,
            credits: Default::default(),
        }
    }

    #[test]
    fn change_classification() {
        let (free, pro, ent) = (plan(Tier::Free, 0), plan(Tier::Pro, 79), plan(Tier::Enterprise, 199));
        use BillingCycle::*;
        assert_eq!(classify_change(None, (&pro, Monthly)), RenewalType::New);
        assert_eq!(classify_change(Some((&free, Monthly)), (&pro, Monthly)), RenewalType::Upgrade);
        assert_eq!(classify_change(Some((&ent, Monthly)), (&pro, Yearly)), RenewalType::Downgrade);
        assert_eq!(classify_change(Some((&pro, Monthly)), (&pro, Monthly)), RenewalType::Renewal);
        // Same plan: moving to yearly is the bigger commitment.
        assert_eq!(classify_change(Some((&pro, Monthly)), (&pro, Yearly)), RenewalType::Upgrade);
        assert_eq!(classify_change(Some((&pro, Yearly)), (&pro, Monthly)), RenewalType::Downgrade);
    }

    fn cycle() -> (DateTime<Utc>, DateTime<Utc>) {
        use chrono::TimeZone;
        (Utc.with_ymd_and_hms(2026, 4, 1, 0, 0, 0).unwrap(), Utc.with_ymd_and_hms(2026, 5, 1, 0, 0, 0).unwrap())
    }

    fn with_id(mut p: Plan, id: i64) -> Plan {
        p.id = id;
        p
    }

    #[test]
    fn plan_change_rule() {
        use BillingCycle::*;
        let basic = with_id(plan(Tier::Basic, 29), 1);
        let pro = with_id(plan(Tier::Pro, 79), 2);
        let (start, end) = cycle();
        let mid = start + chrono::Duration::days(15); // 15 of 30 days left
        // The same plan and cycle: refused, never a new period.
        assert_eq!(
            decide_plan_change(Some((&pro, Monthly)), None, (&pro, Monthly), (start, end), mid),
            Err(PlanChangeRefused::AlreadyOnPlan)
        );
        // Up: now, half of the $50 difference.
        assert_eq!(
            decide_plan_change(Some((&basic, Monthly)), None, (&pro, Monthly), (start, end), mid),
            Ok(PlanChange::Upgrade { fee: Nanos::from_usd(25), then: None })
        );
        // Up and to yearly: the plan now, the cycle at its end.
        assert_eq!(
            decide_plan_change(Some((&basic, Monthly)), None, (&pro, Yearly), (start, end), mid),
            Ok(PlanChange::Upgrade { fee: Nanos::from_usd(25), then: Some(Yearly) })
        );
        // Down, or only the cycle: at the cycle end.
        assert_eq!(
            decide_plan_change(Some((&pro, Monthly)), None, (&basic, Monthly), (start, end), mid),
            Ok(PlanChange::Scheduled)
        );
        assert_eq!(
            decide_plan_change(Some((&pro, Monthly)), None, (&pro, Yearly), (start, end), mid),
            Ok(PlanChange::Scheduled)
        );
        // Asking twice for the scheduled change, or back to the plan in force.
        assert_eq!(
            decide_plan_change(Some((&pro, Monthly)), Some((1, Monthly)), (&basic, Monthly), (start, end), mid),
            Err(PlanChangeRefused::AlreadyScheduled)
        );
        assert_eq!(
            decide_plan_change(Some((&pro, Monthly)), Some((1, Monthly)), (&pro, Monthly), (start, end), mid),
            Ok(PlanChange::CancelScheduled)
        );
        // No plan yet: the new plan now, prorated.
        assert_eq!(
            decide_plan_change(None, None, (&basic, Monthly), (start, end), mid),
            Ok(PlanChange::Upgrade { fee: Nanos(14_500_000_000), then: None })
        );
    }

    #[test]
    fn proration_is_exact_and_bounded() {
        let (start, end) = cycle();
        let fee = Nanos::from_usd(50);
        assert_eq!(prorate(fee, (start, end), start), fee);
        assert_eq!(prorate(fee, (start, end), end), Nanos::ZERO);
        assert_eq!(prorate(fee, (start, end), end + chrono::Duration::days(3)), Nanos::ZERO);
        assert_eq!(prorate(fee, (start, end), start - chrono::Duration::days(3)), fee);
        // One third of a 30-day cycle left: $16.666666667 (half away from zero).
        assert_eq!(prorate(fee, (start, end), start + chrono::Duration::days(20)), Nanos(16_666_666_667));
    }
}
