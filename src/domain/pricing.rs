//! Pricing an event from the catalog.
//!
//! The catalog holds price *versions*: a provider + model with prices that
//! apply from `effective_from` until the next version of the same pair. The
//! model `*` is a provider-wide price used when the event names no model or a
//! model without its own price (search, scrape and image providers price per
//! unit regardless of model). An LLM model with neither is *unpriced*: the
//! event is recorded, flagged, and an admin alert raised, never $0 silently.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::money::{MoneyError, Nanos, Price};
use super::provider::Provider;

/// The model name that prices every model of a provider.
pub const ANY_MODEL: &str = "*";

/// Prices of one provider + model from one instant on. Token prices are per
/// million tokens; unit prices per request, search, image or page.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rates {
    pub input_per_million: Option<Price>,
    pub output_per_million: Option<Price>,
    /// Rate for cached input tokens; the input rate applies when unset.
    pub cached_input_per_million: Option<Price>,
    pub per_request: Option<Price>,
    pub per_search: Option<Price>,
    pub per_image: Option<Price>,
    pub per_page: Option<Price>,
}

impl Rates {
    pub fn is_empty(&self) -> bool {
        *self == Rates::default()
    }

    /// The price of one unit: every unit price that is set applies to each
    /// unit. A catalog row normally sets just one of them.
    fn unit_price(&self) -> Decimal {
        [self.per_request, self.per_search, self.per_image, self.per_page]
            .into_iter()
            .flatten()
            .map(Price::decimal)
            .sum()
    }

    /// Whether this version charges per unit (so `units` defaults to 1).
    pub fn has_unit_price(&self) -> bool {
        self.per_request.is_some() || self.per_search.is_some() || self.per_image.is_some() || self.per_page.is_some()
    }
}

/// One version of a price in the catalog.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceVersion {
    pub id: i64,
    pub provider: Provider,
    pub model: String,
    pub effective_from: DateTime<Utc>,
    pub rates: Rates,
    pub description: String,
}

/// What was used, as counted by the caller.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Quantities {
    /// Every input token, cached ones included.
    pub tokens_input: u64,
    pub tokens_output: u64,
    /// The part of `tokens_input` served from cache.
    pub tokens_cached_input: u64,
    pub units: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PricingError {
    #[error("tokens_cached_input ({cached}) cannot exceed tokens_input ({input})")]
    CachedExceedsInput { cached: u64, input: u64 },
    #[error("the cost of this event is out of range")]
    Overflow,
}

impl From<MoneyError> for PricingError {
    fn from(_: MoneyError) -> Self {
        PricingError::Overflow
    }
}

/// The cost of one event, rounded once to the nano-dollar. `input` is the
/// rounded input part (cached and uncached); `output` is the rest of the
/// total (output tokens and units), so `input + output == total` exactly.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cost {
    pub input: Nanos,
    pub output: Nanos,
    pub total: Nanos,
}

/// Prices `q` at `rates`, exactly.
///
/// cost = uncached input × input rate + cached × cached rate (input rate when
/// none) + output × output rate + units × unit price.
pub fn price_event(rates: &Rates, q: Quantities) -> Result<Cost, PricingError> {
    if q.tokens_cached_input > q.tokens_input {
        return Err(PricingError::CachedExceedsInput { cached: q.tokens_cached_input, input: q.tokens_input });
    }
    // Work in nano-USD: a per-million price × tokens × 1e9 / 1e6.
    let per_million_to_nanos = Decimal::from(1000);
    let per_unit_to_nanos = Decimal::from(1_000_000_000);
    let rate = |p: Option<Price>| p.map(Price::decimal).unwrap_or_default();
    let input_rate = rate(rates.input_per_million);
    let cached_rate = rates.cached_input_per_million.map(Price::decimal).unwrap_or(input_rate);

    let mul = |a: Decimal, b: Decimal| a.checked_mul(b).ok_or(PricingError::Overflow);
    let uncached = Decimal::from(q.tokens_input - q.tokens_cached_input);
    let input_exact = mul(mul(uncached, input_rate)?, per_million_to_nanos)?
        .checked_add(mul(mul(Decimal::from(q.tokens_cached_input), cached_rate)?, per_million_to_nanos)?)
        .ok_or(PricingError::Overflow)?;
    let output_exact = mul(mul(Decimal::from(q.tokens_output), rate(rates.output_per_million))?, per_million_to_nanos)?
        .checked_add(mul(mul(Decimal::from(q.units), rates.unit_price())?, per_unit_to_nanos)?)
        .ok_or(PricingError::Overflow)?;
    let total_exact = input_exact.checked_add(output_exact).ok_or(PricingError::Overflow)?;

    let total = Nanos::round_from_decimal(total_exact)?;
    let input = Nanos::round_from_decimal(input_exact)?;
    Ok(Cost { input, output: Nanos(total.0 - input.0), total })
}

/// An in-memory view of the catalog: every version, grouped for lookup.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    /// Sorted by (provider, model, effective_from).
    versions: Vec<PriceVersion>,
}

impl Catalog {
    pub fn new(mut versions: Vec<PriceVersion>) -> Catalog {
        versions.sort_by(|a, b| {
            (a.provider.as_str(), a.model.as_str(), a.effective_from).cmp(&(
                b.provider.as_str(),
                b.model.as_str(),
                b.effective_from,
            ))
        });
        Catalog { versions }
    }

    pub fn versions(&self) -> &[PriceVersion] {
        &self.versions
    }

    /// Whether any version names this provider.
    pub fn knows_provider(&self, p: &Provider) -> bool {
        self.versions.iter().any(|v| &v.provider == p)
    }

    /// The version of exactly this provider + model in force at `at`.
    fn exact_at(&self, provider: &Provider, model: &str, at: DateTime<Utc>) -> Option<&PriceVersion> {
        self.versions
            .iter()
            .filter(|v| &v.provider == provider && v.model == model && v.effective_from <= at)
            .max_by_key(|v| v.effective_from)
    }

    /// The price in force at `at` for this provider and model: the model's
    /// own version, else the provider-wide `*` version, else none.
    pub fn lookup(&self, provider: &Provider, model: Option<&str>, at: DateTime<Utc>) -> Option<&PriceVersion> {
        model.and_then(|m| self.exact_at(provider, m, at)).or_else(|| self.exact_at(provider, ANY_MODEL, at))
    }

    /// The latest version of each provider + model in force at `at`
    /// (what family A's `/pricing` lists).
    pub fn current(&self, at: DateTime<Utc>) -> Vec<&PriceVersion> {
        let mut out: Vec<&PriceVersion> = Vec::new();
        for v in self.versions.iter().filter(|v| v.effective_from <= at) {
            match out.last_mut() {
                Some(last) if last.provider == v.provider && last.model == v.model => *last = v,
                _ => out.push(v),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn p(s: &str) -> Option<Price> {
        Some(Price::parse(s).unwrap())
    }

    fn llm(input: &str, output: &str, cached: Option<&str>) -> Rates {
        Rates {
            input_per_million: p(input),
            output_per_million: p(output),
            cached_input_per_million: cached.and_then(p),
            ..Rates::default()
        }
    }

    fn q(i: u64, o: u64, c: u64, u: u64) -> Quantities {
        Quantities { tokens_input: i, tokens_output: o, tokens_cached_input: c, units: u }
    }

    #[test]
    fn pricing_table() {
        let flash_lite = llm("0.075", "0.30", None);
        let pro = llm("1.25", "10.00", Some("0.3125"));
        let tavily = Rates { per_search: p("0.001"), ..Rates::default() };
        let tiny = llm("0.0001", "0.0001", None);
        let cases: &[(&Rates, Quantities, i64, i64)] = &[
            // 1M input at $0.075 = 75_000_000 nanos; 1M output at $0.30.
            (&flash_lite, q(1_000_000, 0, 0, 0), 75_000_000, 75_000_000),
            (&flash_lite, q(0, 1_000_000, 0, 0), 0, 300_000_000),
            // 1 token at $0.075/M = 75 nanos.
            (&flash_lite, q(1, 0, 0, 0), 75, 75),
            // Sub-nano amounts round once, half away from zero: 4 tokens at
            // $0.0001/M = 0.4 nanos -> 0; 5 tokens = 0.5 -> 1.
            (&tiny, q(4, 0, 0, 0), 0, 0),
            (&tiny, q(5, 0, 0, 0), 1, 1),
            // Input and output round together, once: 0.4 + 0.4 = 0.8 -> 1.
            (&tiny, q(4, 4, 0, 0), 0, 1),
            // 1000 in, 500 out on 2.5 Pro: 1000*1.25*1000 + 500*10*1000 = 1_250_000 + 5_000_000.
            (&pro, q(1000, 500, 0, 0), 1_250_000, 6_250_000),
            // Cached tokens are part of input and charged once, at the cached rate.
            (&pro, q(1000, 0, 400, 0), 750_000 + 125_000, 875_000),
            // No cached rate: cached tokens are charged at the input rate, once.
            (&flash_lite, q(1_000_000, 0, 1_000_000, 0), 75_000_000, 75_000_000),
            (&tavily, q(0, 0, 0, 1), 0, 1_000_000),
            (&tavily, q(0, 0, 0, 3), 0, 3_000_000),
        ];
        for (rates, quantities, input, total) in cases {
            let c = price_event(rates, *quantities).unwrap();
            assert_eq!((c.input.0, c.total.0), (*input, *total), "{rates:?} {quantities:?}");
            assert_eq!(c.input.0 + c.output.0, c.total.0);
        }
    }

    #[test]
    fn no_float_noise() {
        // The classic: 0.0016150000000000001 in float land.
        let r = llm("0.075", "0.30", None);
        let c = price_event(&r, q(1000, 5133, 0, 0)).unwrap();
        assert_eq!(c.total.usd_string(), "0.001614900");
    }

    #[test]
    fn cached_cannot_exceed_input() {
        let r = llm("1", "1", None);
        assert!(matches!(price_event(&r, q(10, 0, 11, 0)), Err(PricingError::CachedExceedsInput { .. })));
    }

    #[test]
    fn catalog_lookup_by_effective_date_and_wildcard() {
        let t = |d| Utc.with_ymd_and_hms(2026, 1, d, 0, 0, 0).unwrap();
        let gem = Provider::parse("gemini").unwrap();
        let tav = Provider::parse("tavily").unwrap();
        let v = |id, provider: &Provider, model: &str, from, input: &str| PriceVersion {
            id,
            provider: provider.clone(),
            model: model.into(),
            effective_from: from,
            rates: llm(input, "1", None),
            description: String::new(),
        };
        let cat = Catalog::new(vec![
            v(2, &gem, "gemini-2.5-pro", t(10), "2"),
            v(1, &gem, "gemini-2.5-pro", t(1), "1"),
            v(3, &tav, ANY_MODEL, t(1), "0"),
        ]);
        assert_eq!(cat.lookup(&gem, Some("gemini-2.5-pro"), t(5)).unwrap().id, 1);
        assert_eq!(cat.lookup(&gem, Some("gemini-2.5-pro"), t(10)).unwrap().id, 2);
        assert!(
            cat.lookup(&gem, Some("gemini-2.5-pro"), Utc.with_ymd_and_hms(2025, 12, 31, 0, 0, 0).unwrap()).is_none()
        );
        assert!(cat.lookup(&gem, Some("gemini-9"), t(20)).is_none(), "unknown LLM models are unpriced");
        assert_eq!(cat.lookup(&tav, None, t(2)).unwrap().id, 3);
        assert_eq!(cat.lookup(&tav, Some("advanced"), t(2)).unwrap().id, 3);
        let current: Vec<i64> = cat.current(t(20)).iter().map(|v| v.id).collect();
        assert_eq!(current, vec![2, 3]);
    }

    proptest! {
        #[test]
        fn cost_never_decreases_as_usage_grows(
            i in 0u64..10_000_000, o in 0u64..10_000_000, u in 0u64..1000,
            di in 0u64..1_000_000, dout in 0u64..1_000_000, du in 0u64..10,
            cached_frac in 0u64..=100,
        ) {
            let r = Rates { per_request: p("0.0004"), ..llm("1.25", "10", Some("0.3125")) };
            let c = i * cached_frac / 100;
            let small = price_event(&r, q(i, o, c, u)).unwrap();
            let big = price_event(&r, q(i + di, o + dout, c, u + du)).unwrap();
            prop_assert!(big.total >= small.total);
            prop_assert_eq!(small.input.0 + small.output.0, small.total.0);
            prop_assert!(small.output.0 >= 0);
        }

        #[test]
        fn cached_tokens_never_cost_more_than_uncached(i in 0u64..10_000_000, frac in 0u64..=100) {
            let r = llm("1.25", "10", Some("0.3125"));
            let c = i * frac / 100;
            let with_cache = price_event(&r, q(i, 0, c, 0)).unwrap();
            let without = price_event(&r, q(i, 0, 0, 0)).unwrap();
            prop_assert!(with_cache.total <= without.total);
        }
    }
}
