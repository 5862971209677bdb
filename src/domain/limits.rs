//! Plan limits and how usage measures up against them.
//!
//! A limit is a positive integer: calls or tokens per provider per usage
//! period, or the monthly cost cap in nanos. Absent (or 0 on input) means
//! unlimited. Comparisons are integer arithmetic; percentages are produced as
//! `f64` only for display.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::money::Nanos;
use super::provider::{LimitKey, Provider};

/// Thresholds at which alerts fire, in percent.
pub const ALERT_THRESHOLDS: [u8; 3] = [80, 90, 100];
/// Usage at or above this percent of any limit is a warning.
pub const WARNING_PERCENT: u8 = 80;

/// A plan's limits; keys absent are unlimited.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Limits(BTreeMap<LimitKey, i64>);

impl Limits {
    pub fn new() -> Limits {
        Limits::default()
    }

    /// Sets a limit; `None`, 0 or a negative value removes it (unlimited).
    pub fn set(&mut self, key: LimitKey, value: Option<i64>) {
        match value {
            Some(v) if v > 0 => {
                self.0.insert(key, v);
            }
            _ => {
                self.0.remove(&key);
            }
        }
    }

    pub fn with(mut self, key: &str, value: i64) -> Limits {
        self.set(LimitKey::parse(key).expect("valid limit key"), Some(value));
        self
    }

    pub fn get(&self, key: &LimitKey) -> Option<i64> {
        self.0.get(key).copied()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&LimitKey, i64)> {
        self.0.iter().map(|(k, v)| (k, *v))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn cost_cap(&self) -> Option<Nanos> {
        self.get(&LimitKey::MonthlyCost).map(Nanos)
    }
}

/// Usage of one provider in one period.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderUsage {
    pub calls: i64,
    pub tokens: i64,
    pub cost: Nanos,
}

impl ProviderUsage {
    /// Adds `other`, saturating: sums shown to people never wrap or panic.
    /// The recorder refuses, per event, any usage that would not fit (see
    /// [`Usage::checked_add`]), so stored totals never reach the bounds.
    pub fn add(&mut self, other: ProviderUsage) {
        self.calls = self.calls.saturating_add(other.calls);
        self.tokens = self.tokens.saturating_add(other.tokens);
        self.cost = self.cost.saturating_add(other.cost);
    }

    /// `self + other`, or `None` if any sum overflows.
    pub fn checked_add(self, other: ProviderUsage) -> Option<ProviderUsage> {
        Some(ProviderUsage {
            calls: self.calls.checked_add(other.calls)?,
            tokens: self.tokens.checked_add(other.tokens)?,
            cost: self.cost.checked_add(other.cost)?,
        })
    }
}

/// Usage of one period, per provider.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub by_provider: BTreeMap<Provider, ProviderUsage>,
}

impl Usage {
    pub fn add(&mut self, provider: &Provider, u: ProviderUsage) {
        self.by_provider.entry(provider.clone()).or_default().add(u);
    }

    /// Whether `u` can be added to `provider` with the provider's sums and
    /// the period's total still in range.
    pub fn fits(&self, provider: &Provider, u: ProviderUsage) -> bool {
        let total = self.by_provider.values().try_fold(ProviderUsage::default(), |t, x| t.checked_add(*x));
        total.and_then(|t| t.checked_add(u)).is_some() && self.provider(provider).checked_add(u).is_some()
    }

    /// Adds `u` to `provider` if it [fits](Usage::fits); `false` (and
    /// nothing changed) otherwise.
    pub fn checked_add(&mut self, provider: &Provider, u: ProviderUsage) -> bool {
        let fits = self.fits(provider, u);
        if fits {
            self.by_provider.entry(provider.clone()).or_default().add(u);
        }
        fits
    }

    /// `self` and `other` together, provider by provider.
    pub fn plus(&self, other: &Usage) -> Usage {
        let mut t = self.clone();
        for (p, u) in &other.by_provider {
            t.add(p, *u);
        }
        t
    }

    pub fn total(&self) -> ProviderUsage {
        let mut t = ProviderUsage::default();
        for u in self.by_provider.values() {
            t.add(*u);
        }
        t
    }

    pub fn provider(&self, p: &Provider) -> ProviderUsage {
        self.by_provider.get(p).copied().unwrap_or_default()
    }

    /// The amount this usage counts against `key`.
    pub fn measure(&self, key: &LimitKey) -> i64 {
        match key {
            LimitKey::Calls(p) => self.provider(p).calls,
            LimitKey::Tokens(p) => self.provider(p).tokens,
            LimitKey::MonthlyCost => self.total().cost.0,
        }
    }
}

/// The counters a rollup row keeps, one per column: the one list that
/// reading, writing, summing and merging rollups walk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Counter {
    Calls,
    Errors,
    TokensInput,
    TokensOutput,
    TokensCachedInput,
    Cost,
    UnpricedCalls,
    ResponseMsSum,
    ResponseMsCount,
}

impl Counter {
    pub const ALL: [Counter; 9] = [
        Counter::Calls,
        Counter::Errors,
        Counter::TokensInput,
        Counter::TokensOutput,
        Counter::TokensCachedInput,
        Counter::Cost,
        Counter::UnpricedCalls,
        Counter::ResponseMsSum,
        Counter::ResponseMsCount,
    ];

    /// Its column in `usage_rollups` (and the name its sum is read as).
    pub fn column(self) -> &'static str {
        match self {
            Counter::Calls => "calls",
            Counter::Errors => "errors",
            Counter::TokensInput => "tokens_input",
            Counter::TokensOutput => "tokens_output",
            Counter::TokensCachedInput => "tokens_cached_input",
            Counter::Cost => "cost_nanos",
            Counter::UnpricedCalls => "unpriced_calls",
            Counter::ResponseMsSum => "response_ms_sum",
            Counter::ResponseMsCount => "response_ms_count",
        }
    }
}

/// A rollup row's counters, or a change to them (each possibly negative):
/// one field per [`Counter`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub calls: i64,
    pub errors: i64,
    pub tokens_input: i64,
    pub tokens_output: i64,
    pub tokens_cached_input: i64,
    pub cost: Nanos,
    pub unpriced_calls: i64,
    pub response_ms_sum: i64,
    pub response_ms_count: i64,
}

impl Counters {
    pub fn get(&self, c: Counter) -> i64 {
        match c {
            Counter::Calls => self.calls,
            Counter::Errors => self.errors,
            Counter::TokensInput => self.tokens_input,
            Counter::TokensOutput => self.tokens_output,
            Counter::TokensCachedInput => self.tokens_cached_input,
            Counter::Cost => self.cost.0,
            Counter::UnpricedCalls => self.unpriced_calls,
            Counter::ResponseMsSum => self.response_ms_sum,
            Counter::ResponseMsCount => self.response_ms_count,
        }
    }

    pub fn set(&mut self, c: Counter, v: i64) {
        let slot = match c {
            Counter::Calls => &mut self.calls,
            Counter::Errors => &mut self.errors,
            Counter::TokensInput => &mut self.tokens_input,
            Counter::TokensOutput => &mut self.tokens_output,
            Counter::TokensCachedInput => &mut self.tokens_cached_input,
            Counter::Cost => &mut self.cost.0,
            Counter::UnpricedCalls => &mut self.unpriced_calls,
            Counter::ResponseMsSum => &mut self.response_ms_sum,
            Counter::ResponseMsCount => &mut self.response_ms_count,
        };
        *slot = v;
    }

    /// Counters from `value(counter)` for each counter.
    pub fn try_from_fn<E>(mut value: impl FnMut(Counter) -> Result<i64, E>) -> Result<Counters, E> {
        let mut out = Counters::default();
        for c in Counter::ALL {
            out.set(c, value(c)?);
        }
        Ok(out)
    }

    /// Each counter added, or `None` if one overflows.
    pub fn checked_add(&self, o: &Counters) -> Option<Counters> {
        let mut out = *self;
        for c in Counter::ALL {
            out.set(c, self.get(c).checked_add(o.get(c))?);
        }
        Some(out)
    }

    /// Each counter added, saturating (for totals shown, never stored).
    pub fn saturating_add(&self, o: &Counters) -> Counters {
        let mut out = *self;
        for c in Counter::ALL {
            out.set(c, self.get(c).saturating_add(o.get(c)));
        }
        out
    }

    pub fn tokens(&self) -> i64 {
        self.tokens_input + self.tokens_output
    }

    pub fn usage(&self) -> ProviderUsage {
        ProviderUsage { calls: self.calls, tokens: self.tokens(), cost: self.cost }
    }

    /// Failed calls as a percent of all calls (0 without calls).
    pub fn error_rate_pct(&self) -> f64 {
        if self.calls > 0 { self.errors as f64 * 100.0 / self.calls as f64 } else { 0.0 }
    }

    /// Mean response time in milliseconds over the calls that reported one.
    pub fn avg_response_ms(&self) -> f64 {
        if self.response_ms_count > 0 { self.response_ms_sum as f64 / self.response_ms_count as f64 } else { 0.0 }
    }
}

/// Usage summed from rollup rows: per provider (over its models), per
/// model, or over everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RollupSum {
    pub billing_period: String,
    pub provider: String,
    pub model: String,
    pub counts: Counters,
}

/// One limit with its use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitUse {
    pub key: LimitKey,
    pub used: i64,
    pub limit: i64,
}

impl LimitUse {
    /// Percent used in hundredths of a percent, rounded half up, exact in
    /// integers (may exceed 10,000; 0 for an unlimited limit).
    pub fn pct_hundredths(&self) -> i64 {
        if self.limit <= 0 {
            return 0;
        }
        let (used, limit) = (self.used.max(0) as i128, self.limit as i128);
        ((used * 20_000 + limit) / (2 * limit)).min(i64::MAX as i128) as i64
    }

    /// Percent used to two decimals (from [`LimitUse::pct_hundredths`]).
    pub fn percent(&self) -> f64 {
        self.pct_hundredths() as f64 / 100.0
    }

    /// Whether `used` has reached `pct` percent of the limit, exactly.
    pub fn reached(&self, pct: u8) -> bool {
        self.limit > 0 && (self.used as i128) * 100 >= (self.limit as i128) * pct as i128
    }

    pub fn remaining(&self) -> i64 {
        (self.limit - self.used).max(0)
    }

    pub fn status(&self) -> UsageStatus {
        if self.reached(100) {
            UsageStatus::LimitReached
        } else if self.reached(WARNING_PERCENT) {
            UsageStatus::Warning
        } else {
            UsageStatus::Active
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UsageStatus {
    Active,
    Warning,
    LimitReached,
}

impl UsageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            UsageStatus::Active => "active",
            UsageStatus::Warning => "warning",
            UsageStatus::LimitReached => "limit_reached",
        }
    }
}

/// Every limit of the plan with its use, in key order.
pub fn evaluate(limits: &Limits, usage: &Usage) -> Vec<LimitUse> {
    limits.iter().map(|(key, limit)| LimitUse { key: key.clone(), used: usage.measure(key), limit }).collect()
}

/// The worst status over all limits.
pub fn overall_status(uses: &[LimitUse]) -> UsageStatus {
    uses.iter().map(LimitUse::status).max().unwrap_or(UsageStatus::Active)
}

/// A proposed addition to usage, checked before the call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Demand {
    pub provider: Provider,
    pub calls: i64,
    pub tokens: i64,
    pub cost: Nanos,
}

/// The first hard limit that `demand` on top of `usage` would take past its
/// value, if any.
pub fn first_exceeded(limits: &Limits, usage: &Usage, demand: &Demand) -> Option<LimitUse> {
    let adds = |key: &LimitKey| -> i64 {
        match key {
            LimitKey::Calls(p) if *p == demand.provider => demand.calls,
            LimitKey::Tokens(p) if *p == demand.provider => demand.tokens,
            LimitKey::MonthlyCost => demand.cost.0,
            _ => 0,
        }
    };
    limits.iter().find_map(|(key, limit)| {
        let add = adds(key);
        let used = usage.measure(key);
        (add > 0 && used.saturating_add(add) > limit).then(|| LimitUse { key: key.clone(), used, limit })
    })
}

/// What usage may already be, limit by limit, for `added` on top of it to
/// fit: each limit `added` counts toward, with the limit less what it adds.
/// Usage at or under every ceiling admits the demands that make up `added`
/// one by one under [`first_exceeded`], and usage over any refuses one of
/// them (demands only add), so a store can confirm a decision by comparing
/// its sums with these figures alone.
pub fn ceilings(limits: &Limits, added: &Usage) -> Vec<(LimitKey, i64)> {
    limits
        .iter()
        .filter_map(|(key, limit)| {
            let add = added.measure(key);
            (add > 0).then(|| (key.clone(), limit.saturating_sub(add)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each counter is its own field: setting one moves only it, and the
    /// columns are distinct.
    #[test]
    fn every_counter_has_its_own_field_and_column() {
        for (n, c) in Counter::ALL.into_iter().enumerate() {
            let mut x = Counters::default();
            x.set(c, n as i64 + 7);
            for o in Counter::ALL {
                assert_eq!(x.get(o), if o == c { n as i64 + 7 } else { 0 }, "{c:?} set, {o:?} read");
            }
        }
        let columns: std::collections::BTreeSet<_> = Counter::ALL.map(Counter::column).into();
        assert_eq!(columns.len(), Counter::ALL.len());
    }

    proptest::proptest! {
        /// Adding counters adds each one, and refuses an overflow.
        #[test]
        fn counters_add_field_by_field(a in proptest::array::uniform9(-1i64 << 40..1i64 << 40), b in proptest::array::uniform9(proptest::num::i64::ANY)) {
            let x = Counters::try_from_fn::<()>(|c| Ok(a[c as usize])).unwrap();
            let y = Counters::try_from_fn::<()>(|c| Ok(b[c as usize])).unwrap();
            let sum = x.checked_add(&y);
            let each: Option<Vec<i64>> = (0..9).map(|i| a[i].checked_add(b[i])).collect();
            proptest::prop_assert_eq!(sum.map(|s| Counter::ALL.map(|c| s.get(c)).to_vec()), each);
            let sat = x.saturating_add(&y);
            for c in Counter::ALL {
                proptest::prop_assert_eq!(sat.get(c), a[c as usize].saturating_add(b[c as usize]));
            }
        }
    }

    proptest::proptest! {
        /// A store that compares its sums with [`ceilings`] admits exactly
        /// what the gate admits weighing the demands one by one: every
        /// demand passes [`first_exceeded`] (each seeing the ones before
        /// it) if and only if usage is at or under every ceiling.
        #[test]
        fn ceilings_decide_as_the_demands_one_by_one(
            limits in proptest::collection::vec((0usize..3, 0usize..3, 1i64..2_000), 0..6),
            used in proptest::collection::vec((0usize..3, 0i64..1_000, 0i64..3_000, 0i64..3_000), 0..4),
            demands in proptest::collection::vec((0usize..3, 0i64..400, 0i64..900), 1..5),
        ) {
            let providers = ["gemini", "openai", "tavily"].map(prov);
            let mut l = Limits::new();
            for (kind, p, v) in limits {
                let key = match kind {
                    0 => LimitKey::Calls(providers[p].clone()),
                    1 => LimitKey::Tokens(providers[p].clone()),
                    _ => LimitKey::MonthlyCost,
                };
                l.set(key, Some(v));
            }
            let mut seen = Usage::default();
            for (p, calls, tokens, cost) in used {
                seen.add(&providers[p], ProviderUsage { calls, tokens, cost: Nanos(cost) });
            }
            let (mut running, mut added, mut one_by_one) = (seen.clone(), Usage::default(), true);
            for (p, tokens, cost) in demands {
                let d = Demand { provider: providers[p].clone(), calls: 1, tokens, cost: Nanos(cost) };
                one_by_one &= first_exceeded(&l, &running, &d).is_none();
                let u = ProviderUsage { calls: 1, tokens, cost: Nanos(cost) };
                running.add(&d.provider, u);
                added.add(&d.provider, u);
            }
            let by_ceilings = ceilings(&l, &added).iter().all(|(key, ceiling)| seen.measure(key) <= *ceiling);
            proptest::prop_assert_eq!(by_ceilings, one_by_one);
        }
    }

    #[test]
    fn ceilings_name_only_the_limits_a_demand_adds_to() {
        let limits = Limits::new().with("gemini_calls", 10).with("openai_calls", 5).with("monthly_cost", 1_000);
        let added = usage(2, 50, 0);
        assert_eq!(ceilings(&limits, &added), vec![(LimitKey::parse("gemini_calls").unwrap(), 8)]);
        let added = usage(1, 0, 300);
        let got: Vec<_> = ceilings(&limits, &added).into_iter().map(|(k, c)| (k.as_string(), c)).collect();
        assert_eq!(got, vec![("gemini_calls".to_string(), 9), ("monthly_cost".to_string(), 700)]);
    }

    fn prov(s: &str) -> Provider {
        Provider::parse(s).unwrap()
    }

    fn usage(calls: i64, tokens: i64, cost: i64) -> Usage {
        let mut u = Usage::default();
        u.add(&prov("gemini"), ProviderUsage { calls, tokens, cost: Nanos(cost) });
        u
    }

    #[test]
    fn status_table() {
        let limits = Limits::new().with("gemini_calls", 100).with("monthly_cost", 1_000);
        for (calls, cost, want) in [
            (0, 0, UsageStatus::Active),
            (79, 0, UsageStatus::Active),
            (80, 0, UsageStatus::Warning),
            (99, 0, UsageStatus::Warning),
            (100, 0, UsageStatus::LimitReached),
            (10, 800, UsageStatus::Warning),
            (10, 1_500, UsageStatus::LimitReached),
        ] {
            assert_eq!(overall_status(&evaluate(&limits, &usage(calls, 0, cost))), want, "{calls} {cost}");
        }
        assert_eq!(overall_status(&evaluate(&Limits::new(), &usage(1_000_000, 0, 0))), UsageStatus::Active);
    }

    #[test]
    fn zero_means_unlimited() {
        let mut l = Limits::new();
        l.set(LimitKey::parse("gemini_calls").unwrap(), Some(0));
        assert!(l.is_empty());
    }

    #[test]
    fn demand_checks_only_what_it_touches() {
        let limits = Limits::new().with("gemini_calls", 10).with("openai_calls", 1).with("gemini_tokens", 1000);
        let u = usage(9, 900, 0);
        let d = |calls, tokens| Demand { provider: prov("gemini"), calls, tokens, cost: Nanos(0) };
        assert_eq!(first_exceeded(&limits, &u, &d(1, 100)), None);
        assert_eq!(first_exceeded(&limits, &u, &d(2, 0)).unwrap().key.as_string(), "gemini_calls");
        assert_eq!(first_exceeded(&limits, &u, &d(1, 101)).unwrap().key.as_string(), "gemini_tokens");
    }

    #[test]
    fn sums_are_checked_and_never_wrap() {
        let p = Provider::parse("gemini").unwrap();
        let q = Provider::parse("openai").unwrap();
        let big = ProviderUsage { calls: 1, tokens: 1, cost: Nanos(i64::MAX - 10) };
        let mut u = Usage::default();
        assert!(u.checked_add(&p, big));
        // Another provider's cost would overflow the period's total.
        assert!(!u.checked_add(&q, ProviderUsage { calls: 1, tokens: 0, cost: Nanos(11) }));
        assert_eq!(u.provider(&q), ProviderUsage::default(), "nothing added on refusal");
        assert!(u.checked_add(&q, ProviderUsage { calls: 1, tokens: 0, cost: Nanos(10) }));
        assert_eq!(u.total().cost, Nanos(i64::MAX));
        // Display sums saturate instead of wrapping.
        let mut t = big;
        t.add(big);
        assert_eq!(t.cost, Nanos(i64::MAX));
    }
}
