//! Advice a billing owner acts on: the cheapest plan that would have held
//! the user's recent usage, cheaper models of the same provider for the
//! user's own token mix, and what failed calls and cache misses cost.
//!
//! Pure: the engine reads the periods, events and catalog and passes them in,
//! so every figure here is computed from recorded usage and catalog prices
//! and can be checked against them.

use chrono::{DateTime, Utc};

use super::limits::{Usage, evaluate};
use super::money::Nanos;
use super::plan::Plan;
use super::pricing::{Catalog, Count, Quantities, price_event};
use super::provider::Provider;

/// How many closed periods plan advice needs.
pub const PLAN_ADVICE_PERIODS: usize = 3;

/// A cheaper plan that would have held every one of the periods considered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanAdvice {
    pub plan_id: i64,
    pub plan_name: String,
    /// The monthly fee saved (current plan's monthly price minus this one's).
    pub monthly_saving: Nanos,
    pub reason: String,
}

/// Whether `usage` stays within every limit of `plan` (a limit of 0 or less
/// is unlimited).
pub fn fits(plan: &Plan, usage: &Usage) -> bool {
    evaluate(&plan.limits, usage).iter().all(|u| u.limit <= 0 || u.used <= u.limit)
}

/// The cheapest active plan whose limits would have held each of `periods`
/// (label and usage, the last closed periods), when it is cheaper than
/// `current`. A user pays the plan fee plus the usage itself, and the usage
/// costs the same on every plan that holds it, so the plan that would have
/// been cheapest is the lowest fee among those that fit. Plans are compared
/// on their monthly price. `None` without [`PLAN_ADVICE_PERIODS`] periods.
pub fn recommend_plan(current: &Plan, plans: &[Plan], periods: &[(String, Usage)]) -> Option<PlanAdvice> {
    if periods.len() < PLAN_ADVICE_PERIODS {
        return None;
    }
    let best = plans
        .iter()
        .filter(|p| !p.archived && periods.iter().all(|(_, u)| fits(p, u)))
        .min_by_key(|p| (p.price_monthly, p.id))?;
    if best.id == current.id || best.price_monthly >= current.price_monthly {
        return None;
    }
    let saving = Nanos(current.price_monthly.0 - best.price_monthly.0);
    let labels: Vec<&str> = periods.iter().map(|(l, _)| l.as_str()).collect();
    let cost = periods.iter().map(|(_, u)| u.total().cost).max().unwrap_or_default();
    Some(PlanAdvice {
        plan_id: best.id,
        plan_name: best.name.clone(),
        monthly_saving: saving,
        reason: format!(
            "Your usage in {} (at most {} a period) stayed within every limit of {}, which costs {} a month against {} for {}.",
            labels.join(", "),
            cost.display(),
            best.name,
            best.price_monthly.display(),
            current.price_monthly.display(),
            current.name
        ),
    })
}

/// The same calls priced for another model of the same provider.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelAdvice {
    pub provider: Provider,
    pub model: String,
    pub calls: u64,
    /// The calls at today's catalog price of the model they used.
    pub current_cost: Nanos,
    pub alternative: String,
    /// The same calls at today's catalog price of `alternative`.
    pub alternative_cost: Nanos,
}

impl ModelAdvice {
    pub fn saving(&self) -> Nanos {
        Nanos(self.current_cost.0 - self.alternative_cost.0)
    }
}

/// The cheapest other model of `provider` for `mix` (each distinct set of
/// quantities the user's calls of `model` had, with how many calls had it),
/// every call priced on its own at the catalog's prices in force at `at`,
/// exactly as the recorder prices an event. Only per-token models are
/// candidates, and only those with an output price when the calls produced
/// output (so an embedding model is never offered for chat). `None` when
/// none is cheaper or `model` has no price.
pub fn cheaper_model(
    catalog: &Catalog,
    provider: &Provider,
    model: &str,
    mix: &[(Quantities, u64)],
    at: DateTime<Utc>,
) -> Option<ModelAdvice> {
    let cost_of = |rates: &super::pricing::Rates| -> Option<Nanos> {
        mix.iter().try_fold(Nanos::ZERO, |sum, (q, n)| {
            let c = price_event(rates, *q).ok()?.total;
            Some(Nanos(sum.0.checked_add(c.0.checked_mul(*n as i64)?)?))
        })
    };
    let own = catalog.exact_at(provider, model, at)?;
    let current_cost = cost_of(&own.rates)?;
    let needs_output = mix.iter().any(|(q, _)| q[Count::Output] > 0);
    let calls = mix.iter().map(|(_, n)| n).sum();
    catalog
        .current(at)
        .into_iter()
        .filter(|v| &v.provider == provider && v.model != model && v.model != super::pricing::ANY_MODEL)
        .filter(|v| !v.rates.has_unit_price() && v.rates.base.input_per_million.is_some())
        .filter(|v| !needs_output || v.rates.base.output_per_million.is_some_and(|p| !p.decimal().is_zero()))
        .filter_map(|v| Some((v, cost_of(&v.rates)?)))
        .filter(|(_, c)| *c < current_cost)
        .min_by_key(|(v, c)| (*c, v.model.clone()))
        .map(|(v, c)| ModelAdvice {
            provider: provider.clone(),
            model: model.to_string(),
            calls,
            current_cost,
            alternative: v.model.clone(),
            alternative_cost: c,
        })
}

/// Percent of `part` in `whole`, to one decimal, exact in integers (rounded
/// half up); 0 when `whole` is 0.
pub fn share_tenths(part: u64, whole: u64) -> u64 {
    if whole == 0 {
        return 0;
    }
    ((part as u128 * 2000 + whole as u128) / (2 * whole as u128)) as u64
}

/// A model's record in the user's own calls of a period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrackRecord {
    pub calls: i64,
    pub errors: i64,
    /// The 95th percentile response time of the calls that reported one.
    pub p95_ms: Option<u64>,
}

/// Fewer calls than this say nothing about a model's error rate or speed.
pub const TRACK_RECORD_MIN_CALLS: i64 = 20;

/// What the user's calls say of a cheaper model against the one they use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Too few calls of one or the other to tell.
    Unknown,
    /// Neither its error rate nor its speed is clearly worse.
    NotWorse,
    /// Its calls failed clearly more often: more than 2 points of
    /// percentage and half as often again.
    MoreErrors,
    /// Its 95th percentile response time is more than a quarter slower.
    Slower,
}

/// Judges `alternative` against `current` from the user's own calls.
pub fn judge(current: Option<TrackRecord>, alternative: Option<TrackRecord>) -> Verdict {
    let (Some(c), Some(a)) = (current, alternative) else { return Verdict::Unknown };
    if c.calls < TRACK_RECORD_MIN_CALLS || a.calls < TRACK_RECORD_MIN_CALLS {
        return Verdict::Unknown;
    }
    // Rates compared in integers: errors * 100 / calls, cross-multiplied.
    let (ce, ae) = (i128::from(c.errors) * i128::from(a.calls), i128::from(a.errors) * i128::from(c.calls));
    let both = i128::from(c.calls) * i128::from(a.calls);
    if (ae - ce) * 100 > 2 * both && ae * 2 > ce * 3 {
        return Verdict::MoreErrors;
    }
    match (c.p95_ms, a.p95_ms) {
        (Some(cp), Some(ap)) if u128::from(ap) * 4 > u128::from(cp) * 5 => Verdict::Slower,
        _ => Verdict::NotWorse,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::limits::{Limits, ProviderUsage};
    use crate::domain::plan::Tier;
    use crate::domain::pricing::{ClassRates, PriceVersion, Rates};
    use chrono::TimeZone;

    fn plan(id: i64, name: &str, monthly: i64, calls: i64, cap_usd: i64) -> Plan {
        Plan {
            id,
            name: name.into(),
            tier: Tier::Basic,
            price_monthly: Nanos::from_usd(monthly),
            price_yearly: Nanos::from_usd(monthly * 10),
            description: String::new(),
            features: vec![],
            limits: Limits::new().with("gemini_calls", calls).with("monthly_cost", Nanos::from_usd(cap_usd).0),
            archived: false,
            credits: Default::default(),
        }
    }

    fn usage(calls: i64, cost_usd: i64) -> Usage {
        let mut u = Usage::default();
        u.add(&Provider::parse("gemini").unwrap(), ProviderUsage { calls, tokens: 0, cost: Nanos::from_usd(cost_usd) });
        u
    }

    fn periods(v: &[(i64, i64)]) -> Vec<(String, Usage)> {
        v.iter().enumerate().map(|(i, (c, usd))| (format!("2026-0{}", i + 1), usage(*c, *usd))).collect()
    }

    #[test]
    fn the_cheapest_plan_that_held_every_period() {
        let free = plan(1, "Free", 0, 100, 0);
        let basic = plan(2, "Basic", 29, 1000, 50);
        let pro = plan(3, "Pro", 79, 10_000, 500);
        let plans = [free.clone(), basic.clone(), pro.clone()];
        // Basic holds all three: save 79 - 29 a month.
        let a = recommend_plan(&pro, &plans, &periods(&[(500, 10), (900, 40), (20, 1)])).unwrap();
        assert_eq!((a.plan_id, a.monthly_saving), (2, Nanos::from_usd(50)));
        assert!(a.reason.contains("2026-01, 2026-02, 2026-03"), "{}", a.reason);
        // One period over Basic's calls: only Pro fits, which is current.
        assert_eq!(recommend_plan(&pro, &plans, &periods(&[(500, 10), (1001, 40), (20, 1)])), None);
        // One period over Basic's cost cap ($50): same.
        assert_eq!(recommend_plan(&pro, &plans, &periods(&[(500, 51), (10, 1), (20, 1)])), None);
        // Everything within Free's 100 calls (its cap 0 is unlimited).
        assert_eq!(recommend_plan(&pro, &plans, &periods(&[(100, 70), (0, 0), (1, 0)])).unwrap().plan_id, 1);
        // Not enough history.
        assert_eq!(recommend_plan(&pro, &plans, &periods(&[(1, 0), (1, 0)])), None);
        // Archived plans are never offered.
        let mut archived = basic.clone();
        archived.archived = true;
        assert_eq!(recommend_plan(&pro, &[archived, pro.clone()], &periods(&[(1, 0), (1, 0), (1, 0)])), None);
        // Already on the cheapest that fits.
        assert_eq!(recommend_plan(&basic, &plans, &periods(&[(500, 10), (900, 40), (200, 1)])), None);
    }

    fn version(model: &str, input: &str, output: Option<&str>) -> PriceVersion {
        let r = ClassRates {
            input_per_million: Some(input.parse().unwrap()),
            output_per_million: output.map(|o| o.parse().unwrap()),
            ..ClassRates::default()
        };
        PriceVersion {
            id: 0,
            provider: Provider::parse("openai").unwrap(),
            model: model.into(),
            effective_from: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
            rates: Rates::from(r),
            description: String::new(),
            max_output_tokens: None,
        }
    }

    #[test]
    fn a_cheaper_model_is_judged_on_the_users_own_calls() {
        let r = |calls, errors, p95| Some(TrackRecord { calls, errors, p95_ms: p95 });
        let cur = r(100, 2, Some(800));
        assert_eq!(judge(cur, None), Verdict::Unknown, "never called");
        assert_eq!(judge(cur, r(19, 0, Some(100))), Verdict::Unknown, "too few calls");
        assert_eq!(judge(cur, r(100, 4, Some(1000))), Verdict::NotWorse, "4% against 2%: two points, not more");
        assert_eq!(judge(cur, r(100, 5, Some(800))), Verdict::MoreErrors, "5% against 2%");
        assert_eq!(judge(r(100, 10, None), r(100, 13, None)), Verdict::NotWorse, "13% against 10%: not half again");
        assert_eq!(judge(cur, r(50, 1, Some(1001))), Verdict::Slower, "p95 more than a quarter slower");
        assert_eq!(judge(cur, r(50, 1, None)), Verdict::NotWorse, "no response times: speed not judged");
    }

    #[test]
    fn cheaper_models_are_priced_call_by_call() {
        let catalog = Catalog::new(vec![
            version("gpt-4o", "2.50", Some("10.00")),
            version("gpt-4o-mini", "0.15", Some("0.60")),
            version("text-embedding-3-small", "0.02", None),
            version("gpt-4.1", "2.00", Some("8.00")),
        ]);
        let openai = Provider::parse("openai").unwrap();
        let at = Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap();
        let q = |i: u64, o: u64| Quantities::default().with(Count::Input, i).with(Count::Output, o);
        // 3 calls of 1,000 in / 500 out and 1 call of 7 in / 3 out.
        let mix = [(q(1000, 500), 3), (q(7, 3), 1)];
        let a = cheaper_model(&catalog, &openai, "gpt-4o", &mix, at).unwrap();
        assert_eq!(a.alternative, "gpt-4o-mini");
        assert_eq!(a.calls, 4);
        // gpt-4o: 3 x (0.0025 + 0.005) + (0.0000175 + 0.00003) = 0.0225475.
        assert_eq!(a.current_cost, Nanos(22_547_500));
        // gpt-4o-mini: 3 x (0.00015 + 0.0003) + (0.00000105 + 0.0000018) = 0.00135285.
        assert_eq!(a.alternative_cost, Nanos(1_352_850));
        assert_eq!(a.saving(), Nanos(21_194_650));
        // The embedding model is cheaper still, but makes no output.
        let embed_only = [(q(1000, 0), 1)];
        assert_eq!(
            cheaper_model(&catalog, &openai, "gpt-4o", &embed_only, at).unwrap().alternative,
            "text-embedding-3-small"
        );
        // Nothing cheaper than the cheapest; nothing for an unpriced model.
        assert_eq!(cheaper_model(&catalog, &openai, "gpt-4o-mini", &mix, at), None);
        assert_eq!(cheaper_model(&catalog, &openai, "gpt-9", &mix, at), None);
    }

    #[test]
    fn shares_round_half_up() {
        assert_eq!(share_tenths(0, 0), 0);
        assert_eq!(share_tenths(1, 3), 333);
        assert_eq!(share_tenths(2, 3), 667);
        assert_eq!(share_tenths(1, 2000), 1);
        assert_eq!(share_tenths(5, 5), 1000);
    }
}
