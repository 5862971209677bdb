//! Subscription plans.

use serde::{Deserialize, Serialize};

use super::limits::Limits;
use super::money::Nanos;
use super::period::BillingCycle;

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
}

impl Plan {
    pub fn price(&self, cycle: BillingCycle) -> Nanos {
        match cycle {
            BillingCycle::Monthly => self.price_monthly,
            BillingCycle::Yearly => self.price_yearly,
        }
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
}

impl RenewalType {
    pub fn as_str(self) -> &'static str {
        match self {
            RenewalType::New => "new",
            RenewalType::Renewal => "renewal",
            RenewalType::Upgrade => "upgrade",
            RenewalType::Downgrade => "downgrade",
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
}
