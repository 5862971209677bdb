//! Pricing one event: its cost and what each part was charged for.

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

use super::*;
use crate::domain::money::{MoneyError, Nanos, Price};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PricingError {
    /// The parts of a total exceed it (wire code `invalid_token_split`).
    #[error("{0}")]
    InvalidSplit(String),
    #[error("the cost of this event is out of range")]
    Overflow,
}

impl From<MoneyError> for PricingError {
    fn from(_: MoneyError) -> Self {
        PricingError::Overflow
    }
}

/// What each part of an event was charged for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CostClass {
    /// Input tokens that are none of the classes below.
    Input,
    CachedInput,
    CacheWrite,
    CacheWrite1h,
    AudioInput,
    /// Output tokens that are neither reasoning nor audio.
    Output,
    Reasoning,
    AudioOutput,
    Units,
    SearchQueries,
}

impl CostClass {
    pub const ALL: [CostClass; 10] = [
        CostClass::Input,
        CostClass::CachedInput,
        CostClass::CacheWrite,
        CostClass::CacheWrite1h,
        CostClass::AudioInput,
        CostClass::Output,
        CostClass::Reasoning,
        CostClass::AudioOutput,
        CostClass::Units,
        CostClass::SearchQueries,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CostClass::Input => "input",
            CostClass::CachedInput => "cached_input",
            CostClass::CacheWrite => "cache_write",
            CostClass::CacheWrite1h => "cache_write_1h",
            CostClass::AudioInput => "audio_input",
            CostClass::Output => "output",
            CostClass::Reasoning => "reasoning",
            CostClass::AudioOutput => "audio_output",
            CostClass::Units => "units",
            CostClass::SearchQueries => "search_queries",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            CostClass::Input => "input",
            CostClass::CachedInput => "cache read",
            CostClass::CacheWrite => "cache write 5m",
            CostClass::CacheWrite1h => "cache write 1h",
            CostClass::AudioInput => "audio in",
            CostClass::Output => "output",
            CostClass::Reasoning => "reasoning",
            CostClass::AudioOutput => "audio out",
            CostClass::Units => "units",
            CostClass::SearchQueries => "web search",
        }
    }

    pub fn parse(s: &str) -> Option<CostClass> {
        CostClass::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Whether the class is charged on input (so counts in `Cost::input`).
    pub fn is_input(self) -> bool {
        matches!(
            self,
            CostClass::Input
                | CostClass::CachedInput
                | CostClass::CacheWrite
                | CostClass::CacheWrite1h
                | CostClass::AudioInput
        )
    }
}

/// The nano-dollars each class of an event was charged, in
/// [`CostClass::ALL`] order. They add up to the event's total exactly.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Breakdown(pub [i64; CostClass::ALL.len()]);

impl Breakdown {
    pub fn get(&self, c: CostClass) -> Nanos {
        Nanos(self.0[c as usize])
    }

    /// The classes that cost something (or were charged at all).
    pub fn nonzero(&self) -> impl Iterator<Item = (CostClass, Nanos)> + '_ {
        CostClass::ALL.into_iter().map(|c| (c, self.get(c))).filter(|(_, n)| n.0 != 0)
    }

    pub fn sum(&self) -> i64 {
        self.0.iter().sum()
    }

    /// `{"input": "0.000100000", ...}`: the classes that cost something.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Object(
            self.nonzero().map(|(c, n)| (c.as_str().to_string(), n.usd_string().into())).collect(),
        )
    }

    /// Compact form for the store: `input=100;output=250`.
    pub fn encode(&self) -> String {
        self.nonzero().map(|(c, n)| format!("{}={}", c.as_str(), n.0)).collect::<Vec<_>>().join(";")
    }

    pub fn decode(s: &str) -> Option<Breakdown> {
        let mut b = Breakdown::default();
        for part in s.split(';').filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=')?;
            b.0[CostClass::parse(k)? as usize] = v.parse().ok()?;
        }
        Some(b)
    }

    /// `input $0.0001 · output $0.00025` for people.
    pub fn describe(&self) -> String {
        self.nonzero().map(|(c, n)| format!("{} {}", c.label(), n.display_plain())).collect::<Vec<_>>().join(" · ")
    }
}

/// The cost of one event, rounded once to the nano-dollar. `input` is the
/// rounded input part (every input class); `output` is the rest of the
/// total (output classes, units and search queries), so
/// `input + output == total` exactly, and `breakdown` splits the same total
/// by class.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cost {
    pub input: Nanos,
    pub output: Nanos,
    pub total: Nanos,
    pub breakdown: Breakdown,
}

/// Splits `target` whole nanos over exact amounts: each gets its floor, and
/// the nanos left go one each to the largest fractional parts (earlier
/// classes first on ties). Requires 0 ≤ target − Σ floor ≤ parts. Works
/// on the stack: an event is priced with no allocation.
fn allocate(exact: &[Decimal], target: i64, out: &mut [i64]) -> Result<(), PricingError> {
    let mut floors = 0i64;
    let mut fracs = [(Decimal::ZERO, 0usize); CostClass::ALL.len()];
    let fracs = &mut fracs[..exact.len()];
    for (i, e) in exact.iter().enumerate() {
        let f = e.floor();
        let n = f.to_i64().ok_or(PricingError::Overflow)?;
        out[i] = n;
        floors = floors.checked_add(n).ok_or(PricingError::Overflow)?;
        fracs[i] = (e - f, i);
    }
    let mut left = target - floors;
    // Largest fraction first; stable, so ties keep class order.
    fracs.sort_by_key(|f| std::cmp::Reverse(f.0));
    let mut k = 0;
    while left > 0 && !fracs.is_empty() {
        out[fracs[k % fracs.len()].1] += 1;
        left -= 1;
        k += 1;
    }
    debug_assert!(left == 0, "allocation left {left}");
    Ok(())
}

/// The input classes come first in [`CostClass::ALL`]: the first this many
/// (a test holds this to [`CostClass::is_input`]).
pub(super) const INPUT_CLASSES: usize = 5;

/// Prices `q` at `rates`, exactly, with one rounding per event.
///
/// The rates are [`Rates::effective`] for the event's input tokens and
/// service tier. A class without a rate falls back: cache reads, cache
/// writes and audio input to the input rate; reasoning and audio output to
/// the output rate. Cost = Σ tokens of each class × its rate (uncached input
/// = input − cache reads − cache writes − audio input; text output = output
/// − reasoning − audio output) + units × unit price + search queries × the
/// per-query price, rounded once to the nano-dollar, half away from zero.
pub fn price_event(rates: &Rates, q: Quantities) -> Result<Cost, PricingError> {
    q.check_split()?;
    let r = rates.effective(q[Count::Input], q.service_tier);
    let d = |p: Option<Price>| p.map(Price::decimal);
    let input = d(r.input_per_million).unwrap_or_default();
    let output = d(r.output_per_million).unwrap_or_default();
    // Work in nano-USD: a per-million price × tokens × 1e9 / 1e6.
    let per_million = Decimal::from(1000);
    let per_unit = Decimal::from(1_000_000_000);
    // Each class's count, its rate (a token part without its own falls
    // back to its total's) and scale; a total's class counts what is left
    // of it once its parts are taken out.
    let count = |c: Count| if matches!(c, Count::Input | Count::Output) { q.rest_of(c) } else { q[c] };
    let token = |c: Count, own: Option<Price>| {
        let total = if c.part_of() == Some(Count::Output) || c == Count::Output { output } else { input };
        (c.class(), count(c), d(own).unwrap_or(total), per_million)
    };
    let lines: [(CostClass, u64, Decimal, Decimal); CostClass::ALL.len()] = [
        token(Count::Input, r.input_per_million),
        token(Count::CachedInput, r.cached_input_per_million),
        token(Count::CacheWrite, r.cache_write_per_million),
        token(Count::CacheWrite1h, r.cache_write_1h_per_million),
        token(Count::AudioInput, r.audio_input_per_million),
        token(Count::Output, r.output_per_million),
        token(Count::Reasoning, r.reasoning_per_million),
        token(Count::AudioOutput, r.audio_output_per_million),
        (CostClass::Units, q.units, r.unit_price(), per_unit),
        (CostClass::SearchQueries, count(Count::SearchQueries), d(r.per_search_query).unwrap_or_default(), per_unit),
    ];
    let mut exact = [Decimal::ZERO; CostClass::ALL.len()];
    for (class, count, rate, scale) in lines {
        exact[class as usize] =
            Decimal::from(count).checked_mul(rate).and_then(|x| x.checked_mul(scale)).ok_or(PricingError::Overflow)?;
    }
    let sum =
        |part: &[Decimal]| part.iter().try_fold(Decimal::ZERO, |a, x| a.checked_add(*x)).ok_or(PricingError::Overflow);
    let (input_exact, output_exact) = (sum(&exact[..INPUT_CLASSES])?, sum(&exact[INPUT_CLASSES..])?);
    let total_exact = input_exact.checked_add(output_exact).ok_or(PricingError::Overflow)?;
    let total = Nanos::round_from_decimal(total_exact)?;
    let input = Nanos::round_from_decimal(input_exact)?;
    let output = Nanos(total.0 - input.0);
    let mut breakdown = [0i64; CostClass::ALL.len()];
    let (input_part, output_part) = breakdown.split_at_mut(INPUT_CLASSES);
    allocate(&exact[..INPUT_CLASSES], input.0, input_part)?;
    allocate(&exact[INPUT_CLASSES..], output.0, output_part)?;
    Ok(Cost { input, output, total, breakdown: Breakdown(breakdown) })
}

/// Whether `q` holds web-search queries that `rates` has no per-query price
/// for: [`price_event`] counts them at $0 (there is no fallback rate), so
/// the cost understates what the provider bills until a price is added.
pub fn unpriced_search_queries(rates: &Rates, q: &Quantities) -> bool {
    q[Count::SearchQueries] > 0 && rates.effective(q[Count::Input], q.service_tier).per_search_query.is_none()
}
