//! Pricing an event from the catalog.
//!
//! The catalog holds price *versions*: a provider + model with prices that
//! apply from `effective_from` until the next version of the same pair. The
//! model `*` is a provider-wide price used when the event names no model or a
//! model without its own price (search, scrape and image providers price per
//! unit regardless of model). An LLM model with neither is *unpriced*: the
//! event is recorded, flagged, and an admin alert raised, never $0 silently.

use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

use super::money::{MoneyError, Nanos, Price};
use super::provider::Provider;

/// The model name that prices every model of a provider.
pub const ANY_MODEL: &str = "*";

/// Every rate a price can carry, by its wire name. This list is the one
/// place a new rate is added: parsing, JSON, storage, the audit trail and
/// the admin page all walk it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RateField {
    InputPerMillion,
    OutputPerMillion,
    CachedInputPerMillion,
    CacheWritePerMillion,
    CacheWrite1hPerMillion,
    ReasoningPerMillion,
    AudioInputPerMillion,
    AudioOutputPerMillion,
    PerRequest,
    PerSearch,
    PerImage,
    PerPage,
    PerSearchQuery,
}

impl RateField {
    pub const ALL: [RateField; 13] = [
        RateField::InputPerMillion,
        RateField::OutputPerMillion,
        RateField::CachedInputPerMillion,
        RateField::CacheWritePerMillion,
        RateField::CacheWrite1hPerMillion,
        RateField::ReasoningPerMillion,
        RateField::AudioInputPerMillion,
        RateField::AudioOutputPerMillion,
        RateField::PerRequest,
        RateField::PerSearch,
        RateField::PerImage,
        RateField::PerPage,
        RateField::PerSearchQuery,
    ];

    /// The field's name on the wire and its column in the store.
    pub fn name(self) -> &'static str {
        match self {
            RateField::InputPerMillion => "input_per_million",
            RateField::OutputPerMillion => "output_per_million",
            RateField::CachedInputPerMillion => "cached_input_per_million",
            RateField::CacheWritePerMillion => "cache_write_per_million",
            RateField::CacheWrite1hPerMillion => "cache_write_1h_per_million",
            RateField::ReasoningPerMillion => "reasoning_per_million",
            RateField::AudioInputPerMillion => "audio_input_per_million",
            RateField::AudioOutputPerMillion => "audio_output_per_million",
            RateField::PerRequest => "per_request",
            RateField::PerSearch => "per_search",
            RateField::PerImage => "per_image",
            RateField::PerPage => "per_page",
            RateField::PerSearchQuery => "per_search_query",
        }
    }

    /// What the rate is charged on, for people.
    pub fn label(self) -> &'static str {
        match self {
            RateField::InputPerMillion => "Input / 1M",
            RateField::OutputPerMillion => "Output / 1M",
            RateField::CachedInputPerMillion => "Cache read / 1M",
            RateField::CacheWritePerMillion => "Cache write (5 min) / 1M",
            RateField::CacheWrite1hPerMillion => "Cache write (1 h) / 1M",
            RateField::ReasoningPerMillion => "Reasoning / 1M",
            RateField::AudioInputPerMillion => "Audio input / 1M",
            RateField::AudioOutputPerMillion => "Audio output / 1M",
            RateField::PerRequest => "Per request",
            RateField::PerSearch => "Per search",
            RateField::PerImage => "Per image",
            RateField::PerPage => "Per page",
            RateField::PerSearchQuery => "Per web-search query",
        }
    }

    pub fn parse(s: &str) -> Option<RateField> {
        RateField::ALL.into_iter().find(|f| f.name() == s)
    }

    /// The fields that the family-B API and the store had before the second
    /// wave (family A's `/pricing` shows only these).
    pub fn is_unit_price(self) -> bool {
        matches!(self, RateField::PerRequest | RateField::PerSearch | RateField::PerImage | RateField::PerPage)
    }
}

/// A set of rates: per million tokens, or per unit (request, search, image,
/// page) and per web-search query. `None` means "not set here": the class
/// then falls back as [`Rates::effective`] says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClassRates {
    pub input_per_million: Option<Price>,
    pub output_per_million: Option<Price>,
    /// Cache reads; the input rate applies when unset.
    pub cached_input_per_million: Option<Price>,
    /// Cache writes with a 5-minute TTL; the input rate when unset.
    pub cache_write_per_million: Option<Price>,
    /// Cache writes with a 1-hour TTL; the input rate when unset.
    pub cache_write_1h_per_million: Option<Price>,
    /// Reasoning (thinking) output; the output rate when unset.
    pub reasoning_per_million: Option<Price>,
    /// Audio input; the input rate when unset.
    pub audio_input_per_million: Option<Price>,
    /// Audio output; the output rate when unset.
    pub audio_output_per_million: Option<Price>,
    pub per_request: Option<Price>,
    pub per_search: Option<Price>,
    pub per_image: Option<Price>,
    pub per_page: Option<Price>,
    /// Each web-search / grounding query an LLM call made.
    pub per_search_query: Option<Price>,
}

impl ClassRates {
    pub fn get(&self, f: RateField) -> Option<Price> {
        *self.slot(f)
    }

    pub fn set(&mut self, f: RateField, p: Option<Price>) {
        *self.slot_mut(f) = p;
    }

    fn slot(&self, f: RateField) -> &Option<Price> {
        match f {
            RateField::InputPerMillion => &self.input_per_million,
            RateField::OutputPerMillion => &self.output_per_million,
            RateField::CachedInputPerMillion => &self.cached_input_per_million,
            RateField::CacheWritePerMillion => &self.cache_write_per_million,
            RateField::CacheWrite1hPerMillion => &self.cache_write_1h_per_million,
            RateField::ReasoningPerMillion => &self.reasoning_per_million,
            RateField::AudioInputPerMillion => &self.audio_input_per_million,
            RateField::AudioOutputPerMillion => &self.audio_output_per_million,
            RateField::PerRequest => &self.per_request,
            RateField::PerSearch => &self.per_search,
            RateField::PerImage => &self.per_image,
            RateField::PerPage => &self.per_page,
            RateField::PerSearchQuery => &self.per_search_query,
        }
    }

    fn slot_mut(&mut self, f: RateField) -> &mut Option<Price> {
        match f {
            RateField::InputPerMillion => &mut self.input_per_million,
            RateField::OutputPerMillion => &mut self.output_per_million,
            RateField::CachedInputPerMillion => &mut self.cached_input_per_million,
            RateField::CacheWritePerMillion => &mut self.cache_write_per_million,
            RateField::CacheWrite1hPerMillion => &mut self.cache_write_1h_per_million,
            RateField::ReasoningPerMillion => &mut self.reasoning_per_million,
            RateField::AudioInputPerMillion => &mut self.audio_input_per_million,
            RateField::AudioOutputPerMillion => &mut self.audio_output_per_million,
            RateField::PerRequest => &mut self.per_request,
            RateField::PerSearch => &mut self.per_search,
            RateField::PerImage => &mut self.per_image,
            RateField::PerPage => &mut self.per_page,
            RateField::PerSearchQuery => &mut self.per_search_query,
        }
    }

    /// The rates that are set, in [`RateField::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (RateField, Price)> + '_ {
        RateField::ALL.into_iter().filter_map(|f| self.get(f).map(|p| (f, p)))
    }

    pub fn is_empty(&self) -> bool {
        *self == ClassRates::default()
    }

    /// Every rate set in `over` replaces this one's.
    fn overlay(&mut self, over: &ClassRates) {
        for (f, p) in over.iter() {
            self.set(f, Some(p));
        }
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

    pub fn has_unit_price(&self) -> bool {
        RateField::ALL.into_iter().any(|f| f.is_unit_price() && self.get(f).is_some())
    }
}

/// How the provider served the call (and so which rates apply).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ServiceTier {
    #[default]
    Standard,
    Batch,
    Flex,
    Priority,
}

impl ServiceTier {
    pub const ALL: [ServiceTier; 4] =
        [ServiceTier::Standard, ServiceTier::Batch, ServiceTier::Flex, ServiceTier::Priority];

    pub fn as_str(self) -> &'static str {
        match self {
            ServiceTier::Standard => "standard",
            ServiceTier::Batch => "batch",
            ServiceTier::Flex => "flex",
            ServiceTier::Priority => "priority",
        }
    }

    pub fn parse(s: &str) -> Option<ServiceTier> {
        ServiceTier::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// Rates that replace the base ones for a whole event whose `tokens_input`
/// exceeds `above_input_tokens` (long-context pricing).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContextTier {
    pub above_input_tokens: u64,
    pub rates: ClassRates,
}

/// Rates for events served at a non-standard service tier; a rate it does
/// not set is the standard rate of the same context tier.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceTierRates {
    pub rates: ClassRates,
    /// Sorted by `above_input_tokens`.
    pub tiers: Vec<ContextTier>,
}

/// Prices of one provider + model from one instant on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rates {
    pub base: ClassRates,
    /// Long-context tiers, sorted by `above_input_tokens`, thresholds unique.
    pub tiers: Vec<ContextTier>,
    /// Batch, flex and priority rates (never `Standard`).
    pub service_tiers: BTreeMap<ServiceTier, ServiceTierRates>,
}

/// The highest tier whose threshold `tokens_input` exceeds.
fn context_tier(tiers: &[ContextTier], tokens_input: u64) -> Option<&ContextTier> {
    tiers.iter().filter(|t| tokens_input > t.above_input_tokens).max_by_key(|t| t.above_input_tokens)
}

impl From<ClassRates> for Rates {
    /// Flat rates: no context or service tiers.
    fn from(base: ClassRates) -> Rates {
        Rates { base, ..Rates::default() }
    }
}

impl Rates {
    pub fn is_empty(&self) -> bool {
        *self == Rates::default()
    }

    /// Whether this version charges per unit (so `units` defaults to 1).
    pub fn has_unit_price(&self) -> bool {
        self.base.has_unit_price()
    }

    /// The rates for one event: the base rates, replaced by those of the
    /// highest context tier that `tokens_input` exceeds, then by the service
    /// tier's own (themselves replaced by its context tier). A rate still
    /// unset falls back by class when the event is priced.
    pub fn effective(&self, tokens_input: u64, service_tier: ServiceTier) -> ClassRates {
        let mut out = self.base.clone();
        if let Some(t) = context_tier(&self.tiers, tokens_input) {
            out.overlay(&t.rates);
        }
        if let Some(s) = self.service_tiers.get(&service_tier) {
            out.overlay(&s.rates);
            if let Some(t) = context_tier(&s.tiers, tokens_input) {
                out.overlay(&t.rates);
            }
        }
        out
    }

    /// Every rate, then the context and service tiers, for people:
    /// `Input / 1M $1.25, Output / 1M $10 · above 200,000 input tokens: …`.
    pub fn describe(&self) -> String {
        self.describe_with(true)
    }

    /// Every rate beyond input, cache read, output and the unit prices,
    /// then the context and service tiers, for people:
    /// `Reasoning / 1M $5 · above 200,000 input tokens: Input / 1M $2.5`.
    pub fn describe_extras(&self) -> String {
        self.describe_with(false)
    }

    fn describe_with(&self, every_base_rate: bool) -> String {
        use super::money::format_count;
        let basic = |f: RateField| {
            f.is_unit_price()
                || matches!(
                    f,
                    RateField::InputPerMillion | RateField::OutputPerMillion | RateField::CachedInputPerMillion
                )
        };
        let list = |r: &ClassRates, all: bool| {
            r.iter()
                .filter(|(f, _)| all || !basic(*f))
                .map(|(f, p)| format!("{} ${p}", f.label()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let above = |t: &ContextTier| {
            format!("above {} input tokens", format_count(t.above_input_tokens.min(i64::MAX as u64) as i64))
        };
        let mut out = Vec::new();
        let extras = list(&self.base, every_base_rate);
        if !extras.is_empty() {
            out.push(extras);
        }
        for t in &self.tiers {
            out.push(format!("{}: {}", above(t), list(&t.rates, true)));
        }
        for (tier, s) in &self.service_tiers {
            if !s.rates.is_empty() {
                out.push(format!("{}: {}", tier.as_str(), list(&s.rates, true)));
            }
            for t in &s.tiers {
                out.push(format!("{} {}: {}", tier.as_str(), above(t), list(&t.rates, true)));
            }
        }
        out.join(" · ")
    }

    /// The input-token counts at which the price of an event changes
    /// (every context-tier threshold, service tiers' included).
    pub fn thresholds(&self) -> Vec<u64> {
        let mut out: Vec<u64> = self
            .tiers
            .iter()
            .chain(self.service_tiers.values().flat_map(|s| s.tiers.iter()))
            .map(|t| t.above_input_tokens)
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// Rates as JSON: the admin API's shape and the store's for tiers. Prices
/// are decimal strings, read exactly (never through a float).
pub mod json {
    use super::*;
    use serde_json::{Map, Value};

    /// Problems found, each as (field path, message).
    pub type FieldErrors = Vec<(String, String)>;

    pub fn class_to_map(r: &ClassRates, with_unset: bool) -> Map<String, Value> {
        let mut m = Map::new();
        for f in RateField::ALL {
            match r.get(f) {
                Some(p) => {
                    m.insert(f.name().into(), Value::String(p.as_string()));
                }
                None if with_unset => {
                    m.insert(f.name().into(), Value::Null);
                }
                None => {}
            }
        }
        m
    }

    pub fn tiers_to_json(tiers: &[ContextTier]) -> Value {
        Value::Array(
            tiers
                .iter()
                .map(|t| {
                    let mut m = Map::new();
                    m.insert("above_input_tokens".into(), t.above_input_tokens.into());
                    m.extend(class_to_map(&t.rates, false));
                    Value::Object(m)
                })
                .collect(),
        )
    }

    pub fn service_tiers_to_json(s: &BTreeMap<ServiceTier, ServiceTierRates>) -> Value {
        Value::Object(
            s.iter()
                .map(|(tier, r)| {
                    let mut m = class_to_map(&r.rates, false);
                    if !r.tiers.is_empty() {
                        m.insert("tiers".into(), tiers_to_json(&r.tiers));
                    }
                    (tier.as_str().to_string(), Value::Object(m))
                })
                .collect(),
        )
    }

    /// Every base rate (null when unset), `tiers` and `service_tiers`.
    pub fn rates_to_map(r: &Rates) -> Map<String, Value> {
        let mut m = class_to_map(&r.base, true);
        m.insert("tiers".into(), tiers_to_json(&r.tiers));
        m.insert("service_tiers".into(), service_tiers_to_json(&r.service_tiers));
        m
    }

    /// Reads prices no larger than `max` USD.
    pub struct Reader {
        pub max: Decimal,
        pub errors: FieldErrors,
    }

    impl Reader {
        pub fn new(max: Decimal) -> Reader {
            Reader { max, errors: Vec::new() }
        }

        fn err(&mut self, path: String, msg: impl Into<String>) {
            self.errors.push((path, msg.into()));
        }

        /// One price: a decimal string, blank or null for unset.
        pub fn price(&mut self, path: &str, v: &Value) -> Option<Price> {
            let raw = match v {
                Value::Null => return None,
                Value::String(s) if s.trim().is_empty() => return None,
                Value::String(s) => s.trim(),
                _ => {
                    self.err(path.into(), "must be a price in US dollars as a string, such as \"1.25\"");
                    return None;
                }
            };
            match Price::parse(raw) {
                Ok(p) if p.decimal() > self.max => {
                    self.err(path.into(), format!("Enter a price up to {} US dollars.", self.max));
                    None
                }
                Ok(p) => Some(p),
                Err(_) => {
                    self.err(path.into(), "Enter a price in US dollars such as 1.25 or 0.0025.");
                    None
                }
            }
        }

        /// The rate fields of `obj`; any key that is neither a rate nor in
        /// `also` is an error.
        pub fn class(&mut self, obj: &Map<String, Value>, prefix: &str, also: &[&str]) -> ClassRates {
            let mut r = ClassRates::default();
            for (k, v) in obj {
                match RateField::parse(k) {
                    Some(f) => {
                        let p = self.price(&format!("{prefix}{k}"), v);
                        r.set(f, p);
                    }
                    None if also.contains(&k.as_str()) => {}
                    None => self.err(format!("{prefix}{k}"), "is not a price field"),
                }
            }
            r
        }

        /// `[{"above_input_tokens": N, <rates>}, ...]`, sorted by N.
        pub fn tiers(&mut self, v: &Value, path: &str) -> Vec<ContextTier> {
            let list = match v {
                Value::Null => return Vec::new(),
                Value::Array(a) => a,
                _ => {
                    self.err(path.into(), "must be a list of {\"above_input_tokens\": N, <rates>}");
                    return Vec::new();
                }
            };
            let mut out: Vec<ContextTier> = Vec::new();
            for (i, t) in list.iter().enumerate() {
                let at = format!("{path}[{i}]");
                let Some(obj) = t.as_object() else {
                    self.err(at, "must be an object");
                    continue;
                };
                let above = match obj.get("above_input_tokens").and_then(Value::as_u64) {
                    Some(n) if n > 0 => n,
                    _ => {
                        self.err(format!("{at}.above_input_tokens"), "must be a whole number of tokens above 0");
                        continue;
                    }
                };
                let rates = self.class(obj, &format!("{at}."), &["above_input_tokens"]);
                if rates.is_empty() {
                    self.err(at.clone(), "sets no rate");
                }
                if out.iter().any(|o| o.above_input_tokens == above) {
                    self.err(format!("{at}.above_input_tokens"), format!("two tiers start above {above} tokens"));
                }
                out.push(ContextTier { above_input_tokens: above, rates });
            }
            out.sort_by_key(|t| t.above_input_tokens);
            out
        }

        /// `{"batch"|"flex"|"priority": {<rates>, "tiers"?: [...]}}`.
        pub fn service_tiers(&mut self, v: &Value, path: &str) -> BTreeMap<ServiceTier, ServiceTierRates> {
            let obj = match v {
                Value::Null => return BTreeMap::new(),
                Value::Object(o) => o,
                _ => {
                    self.err(path.into(), "must be an object keyed by batch, flex or priority");
                    return BTreeMap::new();
                }
            };
            let mut out = BTreeMap::new();
            for (k, v) in obj {
                let at = format!("{path}.{k}");
                let tier = match ServiceTier::parse(k) {
                    Some(ServiceTier::Standard) | None => {
                        self.err(at, "must be batch, flex or priority (standard rates are the base rates)");
                        continue;
                    }
                    Some(t) => t,
                };
                let Some(o) = v.as_object() else {
                    self.err(at, "must be an object of rates");
                    continue;
                };
                let rates = self.class(o, &format!("{at}."), &["tiers"]);
                let tiers = self.tiers(o.get("tiers").unwrap_or(&Value::Null), &format!("{at}.tiers"));
                if rates.is_empty() && tiers.is_empty() {
                    self.err(at, "sets no rate");
                }
                out.insert(tier, ServiceTierRates { rates, tiers });
            }
            out
        }
    }
}

/// One version of a price in the catalog.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PriceVersion {
    pub id: i64,
    pub provider: Provider,
    pub model: String,
    pub effective_from: DateTime<Utc>,
    pub rates: Rates,
    pub description: String,
    /// The most output tokens one call of the model can produce (the
    /// provider's cap), when known: what the tracking proxy holds for a
    /// call that sets no maximum of its own.
    pub max_output_tokens: Option<u64>,
}

/// What was used, as counted by the caller. The token classes are parts of
/// the two totals: cache reads, cache writes and audio input are parts of
/// `tokens_input`; reasoning and audio output are parts of `tokens_output`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Quantities {
    /// Every input token, cached ones included.
    pub tokens_input: u64,
    /// Every output token, reasoning included.
    pub tokens_output: u64,
    /// The part of `tokens_input` served from cache.
    pub tokens_cached_input: u64,
    pub tokens_cache_write: u64,
    pub tokens_cache_write_1h: u64,
    pub tokens_audio_input: u64,
    pub tokens_reasoning: u64,
    pub tokens_audio_output: u64,
    pub search_queries: u64,
    pub units: u64,
    pub service_tier: ServiceTier,
}

impl Quantities {
    /// Checks that the parts fit in their totals.
    pub fn check_split(&self) -> Result<(), PricingError> {
        let input_parts =
            [self.tokens_cached_input, self.tokens_cache_write, self.tokens_cache_write_1h, self.tokens_audio_input]
                .into_iter()
                .try_fold(0u64, u64::checked_add);
        if input_parts.is_none_or(|p| p > self.tokens_input) {
            return Err(PricingError::InvalidSplit(format!(
                "tokens_cached_input + tokens_cache_write + tokens_cache_write_1h + tokens_audio_input ({}) are parts of tokens_input ({}) and cannot exceed it",
                input_parts.map_or("too many".to_string(), |p| p.to_string()),
                self.tokens_input
            )));
        }
        let output_parts = self.tokens_reasoning.checked_add(self.tokens_audio_output);
        if output_parts.is_none_or(|p| p > self.tokens_output) {
            return Err(PricingError::InvalidSplit(format!(
                "tokens_reasoning + tokens_audio_output ({}) are parts of tokens_output ({}) and cannot exceed it",
                output_parts.map_or("too many".to_string(), |p| p.to_string()),
                self.tokens_output
            )));
        }
        Ok(())
    }
}

/// The counts an event carries. `Input` and `Output` are totals; every
/// other token class is a part of one of them (see [`Quantities`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Count {
    Input,
    Output,
    CachedInput,
    CacheWrite,
    CacheWrite1h,
    AudioInput,
    Reasoning,
    AudioOutput,
    SearchQueries,
}

impl Count {
    pub const ALL: [Count; 9] = [
        Count::Input,
        Count::Output,
        Count::CachedInput,
        Count::CacheWrite,
        Count::CacheWrite1h,
        Count::AudioInput,
        Count::Reasoning,
        Count::AudioOutput,
        Count::SearchQueries,
    ];

    /// Its name in the ingest API, the store and the usage-log CSV.
    pub fn field(self) -> &'static str {
        match self {
            Count::Input => "tokens_input",
            Count::Output => "tokens_output",
            Count::CachedInput => "tokens_cached_input",
            Count::CacheWrite => "tokens_cache_write",
            Count::CacheWrite1h => "tokens_cache_write_1h",
            Count::AudioInput => "tokens_audio_input",
            Count::Reasoning => "tokens_reasoning",
            Count::AudioOutput => "tokens_audio_output",
            Count::SearchQueries => "search_queries",
        }
    }

    /// For people; a part is named as the cost class it is charged as.
    pub fn label(self) -> &'static str {
        match self {
            Count::Input => "input",
            Count::Output => "output",
            Count::CachedInput => CostClass::CachedInput.label(),
            Count::CacheWrite => CostClass::CacheWrite.label(),
            Count::CacheWrite1h => CostClass::CacheWrite1h.label(),
            Count::AudioInput => CostClass::AudioInput.label(),
            Count::Reasoning => CostClass::Reasoning.label(),
            Count::AudioOutput => CostClass::AudioOutput.label(),
            Count::SearchQueries => CostClass::SearchQueries.label(),
        }
    }
}

impl Quantities {
    pub fn count(&self, c: Count) -> u64 {
        let mut q = *self;
        *q.count_mut(c)
    }

    pub fn count_mut(&mut self, c: Count) -> &mut u64 {
        match c {
            Count::Input => &mut self.tokens_input,
            Count::Output => &mut self.tokens_output,
            Count::CachedInput => &mut self.tokens_cached_input,
            Count::CacheWrite => &mut self.tokens_cache_write,
            Count::CacheWrite1h => &mut self.tokens_cache_write_1h,
            Count::AudioInput => &mut self.tokens_audio_input,
            Count::Reasoning => &mut self.tokens_reasoning,
            Count::AudioOutput => &mut self.tokens_audio_output,
            Count::SearchQueries => &mut self.search_queries,
        }
    }

    /// `cache read 1,000 · reasoning 600 · batch` for people: the parts of
    /// the totals that are there, the web-search queries and a service
    /// tier other than standard; empty for a plain event.
    pub fn describe_parts(&self) -> String {
        let mut out: Vec<String> = Count::ALL[2..]
            .iter()
            .map(|c| (c.label(), self.count(*c)))
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| format!("{k} {}", super::money::format_count(n.min(i64::MAX as u64) as i64)))
            .collect();
        if self.service_tier != ServiceTier::Standard {
            out.push(self.service_tier.as_str().to_string());
        }
        out.join(" · ")
    }
}

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
pub struct Breakdown(pub [i64; 10]);

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
const INPUT_CLASSES: usize = 5;

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
    let r = rates.effective(q.tokens_input, q.service_tier);
    let d = |p: Option<Price>| p.map(Price::decimal);
    let input = d(r.input_per_million).unwrap_or_default();
    let output = d(r.output_per_million).unwrap_or_default();
    let uncached =
        q.tokens_input - q.tokens_cached_input - q.tokens_cache_write - q.tokens_cache_write_1h - q.tokens_audio_input;
    let text_output = q.tokens_output - q.tokens_reasoning - q.tokens_audio_output;
    // Work in nano-USD: a per-million price × tokens × 1e9 / 1e6.
    let per_million = Decimal::from(1000);
    let per_unit = Decimal::from(1_000_000_000);
    let lines: [(CostClass, u64, Decimal, Decimal); 10] = [
        (CostClass::Input, uncached, input, per_million),
        (CostClass::CachedInput, q.tokens_cached_input, d(r.cached_input_per_million).unwrap_or(input), per_million),
        (CostClass::CacheWrite, q.tokens_cache_write, d(r.cache_write_per_million).unwrap_or(input), per_million),
        (
            CostClass::CacheWrite1h,
            q.tokens_cache_write_1h,
            d(r.cache_write_1h_per_million).unwrap_or(input),
            per_million,
        ),
        (CostClass::AudioInput, q.tokens_audio_input, d(r.audio_input_per_million).unwrap_or(input), per_million),
        (CostClass::Output, text_output, output, per_million),
        (CostClass::Reasoning, q.tokens_reasoning, d(r.reasoning_per_million).unwrap_or(output), per_million),
        (CostClass::AudioOutput, q.tokens_audio_output, d(r.audio_output_per_million).unwrap_or(output), per_million),
        (CostClass::Units, q.units, r.unit_price(), per_unit),
        (CostClass::SearchQueries, q.search_queries, d(r.per_search_query).unwrap_or_default(), per_unit),
    ];
    let mut exact = [Decimal::ZERO; 10];
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
    let mut breakdown = [0i64; 10];
    let (input_part, output_part) = breakdown.split_at_mut(INPUT_CLASSES);
    allocate(&exact[..INPUT_CLASSES], input.0, input_part)?;
    allocate(&exact[INPUT_CLASSES..], output.0, output_part)?;
    Ok(Cost { input, output, total, breakdown: Breakdown(breakdown) })
}

/// Whether `q` holds web-search queries that `rates` has no per-query price
/// for: [`price_event`] counts them at $0 (there is no fallback rate), so
/// the cost understates what the provider bills until a price is added.
pub fn unpriced_search_queries(rates: &Rates, q: &Quantities) -> bool {
    q.search_queries > 0 && rates.effective(q.tokens_input, q.service_tier).per_search_query.is_none()
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
    pub fn exact_at(&self, provider: &Provider, model: &str, at: DateTime<Utc>) -> Option<&PriceVersion> {
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

    /// Rates from `(field, price)` pairs.
    fn class(pairs: &[(RateField, &str)]) -> ClassRates {
        let mut r = ClassRates::default();
        for (f, s) in pairs {
            r.set(*f, p(s));
        }
        r
    }

    fn flat(pairs: &[(RateField, &str)]) -> Rates {
        Rates { base: class(pairs), ..Rates::default() }
    }

    fn llm(input: &str, output: &str, cached: Option<&str>) -> Rates {
        let mut r = flat(&[(RateField::InputPerMillion, input), (RateField::OutputPerMillion, output)]);
        r.base.cached_input_per_million = cached.and_then(p);
        r
    }

    fn q(i: u64, o: u64, c: u64, u: u64) -> Quantities {
        Quantities { tokens_input: i, tokens_output: o, tokens_cached_input: c, units: u, ..Quantities::default() }
    }

    use RateField::*;

    /// The classes the stack-only pricing sums as input are the input
    /// classes; each count has one name and one label, and the parts
    /// describe themselves in that order.
    #[test]
    fn classes_and_counts_agree() {
        for c in CostClass::ALL {
            assert_eq!(c.is_input(), (c as usize) < INPUT_CLASSES, "{c:?}");
            assert_eq!(CostClass::ALL[c as usize], c);
        }
        let mut q = Quantities::default();
        for (i, c) in Count::ALL.into_iter().enumerate() {
            assert_eq!(Count::ALL.iter().filter(|d| d.field() == c.field() || d.label() == c.label()).count(), 1);
            *q.count_mut(c) = i as u64 * 1000;
            assert_eq!(q.count(c), i as u64 * 1000);
        }
        assert_eq!(q.tokens_audio_output, 7000);
        q.service_tier = ServiceTier::Flex;
        assert_eq!(
            q.describe_parts(),
            "cache read 2,000 · cache write 5m 3,000 · cache write 1h 4,000 · audio in 5,000 · reasoning 6,000 · audio out 7,000 · web search 8,000 · flex"
        );
        assert_eq!(Quantities::default().describe_parts(), "");
    }

    #[test]
    fn pricing_table() {
        let flash_lite = llm("0.075", "0.30", None);
        let pro = llm("1.25", "10.00", Some("0.3125"));
        let tavily = flat(&[(PerSearch, "0.001")]);
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
            assert_eq!(c.breakdown.sum(), c.total.0);
        }
    }

    /// Published price sheets, priced by hand. Each case: rates, usage, the
    /// total in nano-dollars, and the breakdown by class.
    #[test]
    fn published_price_sheets() {
        // Anthropic Claude Sonnet 4.5: $3 in, $15 out, 5-minute cache
        // writes $3.75, 1-hour writes $6, cache reads $0.30; above 200k
        // input tokens every rate doubles-ish ($6 / $22.50 / $7.50 / $12 /
        // $0.60); batch halves the standard rates.
        let sonnet = Rates {
            base: class(&[
                (InputPerMillion, "3"),
                (OutputPerMillion, "15"),
                (CacheWritePerMillion, "3.75"),
                (CacheWrite1hPerMillion, "6"),
                (CachedInputPerMillion, "0.30"),
            ]),
            tiers: vec![ContextTier {
                above_input_tokens: 200_000,
                rates: class(&[
                    (InputPerMillion, "6"),
                    (OutputPerMillion, "22.50"),
                    (CacheWritePerMillion, "7.50"),
                    (CacheWrite1hPerMillion, "12"),
                    (CachedInputPerMillion, "0.60"),
                ]),
            }],
            service_tiers: BTreeMap::from([(
                ServiceTier::Batch,
                ServiceTierRates {
                    rates: class(&[(InputPerMillion, "1.50"), (OutputPerMillion, "7.50")]),
                    tiers: vec![],
                },
            )]),
        };
        let claude = Quantities {
            // 10k plain + 50k cache reads + 20k 5m writes + 5k 1h writes.
            tokens_input: 85_000,
            tokens_cached_input: 50_000,
            tokens_cache_write: 20_000,
            tokens_cache_write_1h: 5_000,
            tokens_output: 2_000,
            ..Quantities::default()
        };
        // GPT-5: $1.25 in, $0.125 cached, $10 out; reasoning is output.
        // Batch $0.625 / $0.0625 / $5; flex sets no cached rate (standard's
        // applies); priority $2.50 / $0.25 / $20.
        let gpt5 = Rates {
            base: class(&[(InputPerMillion, "1.25"), (CachedInputPerMillion, "0.125"), (OutputPerMillion, "10")]),
            tiers: vec![],
            service_tiers: BTreeMap::from([
                (
                    ServiceTier::Batch,
                    ServiceTierRates {
                        rates: class(&[
                            (InputPerMillion, "0.625"),
                            (CachedInputPerMillion, "0.0625"),
                            (OutputPerMillion, "5"),
                        ]),
                        tiers: vec![],
                    },
                ),
                (
                    ServiceTier::Flex,
                    ServiceTierRates {
                        rates: class(&[(InputPerMillion, "0.625"), (OutputPerMillion, "5")]),
                        tiers: vec![],
                    },
                ),
                (
                    ServiceTier::Priority,
                    ServiceTierRates {
                        rates: class(&[
                            (InputPerMillion, "2.50"),
                            (CachedInputPerMillion, "0.25"),
                            (OutputPerMillion, "20"),
                        ]),
                        tiers: vec![],
                    },
                ),
            ]),
        };
        let gpt = |tier| Quantities {
            tokens_input: 100_000,
            tokens_cached_input: 60_000,
            tokens_output: 8_000,
            tokens_reasoning: 6_000,
            service_tier: tier,
            ..Quantities::default()
        };
        // Gemini 2.5 Pro: $1.25 / $10 up to 200k input tokens, $2.50 / $15
        // above (thinking billed as output); grounding $35 per 1,000 queries.
        let gemini = Rates {
            base: class(&[(InputPerMillion, "1.25"), (OutputPerMillion, "10"), (PerSearchQuery, "0.035")]),
            tiers: vec![ContextTier {
                above_input_tokens: 200_000,
                rates: class(&[(InputPerMillion, "2.50"), (OutputPerMillion, "15")]),
            }],
            ..Rates::default()
        };
        let gem = |input| Quantities {
            tokens_input: input,
            tokens_output: 5_000,
            tokens_reasoning: 3_000,
            search_queries: 2,
            ..Quantities::default()
        };
        // gpt-realtime: text $4 in / $0.40 cached / $16 out, audio $32 in /
        // $64 out.
        let realtime = flat(&[
            (InputPerMillion, "4"),
            (CachedInputPerMillion, "0.40"),
            (OutputPerMillion, "16"),
            (AudioInputPerMillion, "32"),
            (AudioOutputPerMillion, "64"),
        ]);
        let audio = Quantities {
            tokens_input: 10_000,
            tokens_audio_input: 8_000,
            tokens_cached_input: 1_000,
            tokens_output: 3_000,
            tokens_audio_output: 2_500,
            ..Quantities::default()
        };
        // Tavily: $0.008 a search credit.
        let tavily = flat(&[(PerSearch, "0.008")]);
        use CostClass as C;
        type Case<'a> = (&'a str, &'a Rates, Quantities, i64, Vec<(CostClass, i64)>);
        let cases: Vec<Case> = vec![
            (
                "claude, 5m and 1h writes",
                &sonnet,
                claude,
                // 10k×3 + 50k×0.30 + 20k×3.75 + 5k×6 + 2k×15 = 180,000 $/M·tok.
                180_000_000,
                vec![
                    (C::Input, 30_000_000),
                    (C::CachedInput, 15_000_000),
                    (C::CacheWrite, 75_000_000),
                    (C::CacheWrite1h, 30_000_000),
                    (C::Output, 30_000_000),
                ],
            ),
            (
                "claude above 200k: every class at the long-context rate",
                &sonnet,
                Quantities { tokens_input: 200_001 + 75_000, ..claude },
                // 200,001×6 + 50k×0.60 + 20k×7.50 + 5k×12 + 2k×22.50.
                1_200_006_000 + 30_000_000 + 150_000_000 + 60_000_000 + 45_000_000,
                vec![
                    (C::Input, 1_200_006_000),
                    (C::CachedInput, 30_000_000),
                    (C::CacheWrite, 150_000_000),
                    (C::CacheWrite1h, 60_000_000),
                    (C::Output, 45_000_000),
                ],
            ),
            (
                "claude batch: unset batch rates fall back to standard ones",
                &sonnet,
                Quantities { service_tier: ServiceTier::Batch, ..claude },
                // 10k×1.50 + 50k×0.30 + 20k×3.75 + 5k×6 + 2k×7.50.
                15_000_000 + 15_000_000 + 75_000_000 + 30_000_000 + 15_000_000,
                vec![
                    (C::Input, 15_000_000),
                    (C::CachedInput, 15_000_000),
                    (C::CacheWrite, 75_000_000),
                    (C::CacheWrite1h, 30_000_000),
                    (C::Output, 15_000_000),
                ],
            ),
            (
                "gpt-5 standard, reasoning at the output rate",
                &gpt5,
                gpt(ServiceTier::Standard),
                137_500_000,
                vec![
                    (C::Input, 50_000_000),
                    (C::CachedInput, 7_500_000),
                    (C::Output, 20_000_000),
                    (C::Reasoning, 60_000_000),
                ],
            ),
            (
                "gpt-5 batch",
                &gpt5,
                gpt(ServiceTier::Batch),
                68_750_000,
                vec![
                    (C::Input, 25_000_000),
                    (C::CachedInput, 3_750_000),
                    (C::Output, 10_000_000),
                    (C::Reasoning, 30_000_000),
                ],
            ),
            (
                "gpt-5 flex: no flex cached rate, so standard's",
                &gpt5,
                gpt(ServiceTier::Flex),
                72_500_000,
                vec![
                    (C::Input, 25_000_000),
                    (C::CachedInput, 7_500_000),
                    (C::Output, 10_000_000),
                    (C::Reasoning, 30_000_000),
                ],
            ),
            (
                "gpt-5 priority",
                &gpt5,
                gpt(ServiceTier::Priority),
                275_000_000,
                vec![
                    (C::Input, 100_000_000),
                    (C::CachedInput, 15_000_000),
                    (C::Output, 40_000_000),
                    (C::Reasoning, 120_000_000),
                ],
            ),
            (
                "gemini 2.5 pro at 200k: the base tier, plus two grounded queries",
                &gemini,
                gem(200_000),
                370_000_000,
                vec![
                    (C::Input, 250_000_000),
                    (C::Output, 20_000_000),
                    (C::Reasoning, 30_000_000),
                    (C::SearchQueries, 70_000_000),
                ],
            ),
            (
                "gemini 2.5 pro one token above 200k: the whole request at the higher tier",
                &gemini,
                gem(200_001),
                645_002_500,
                vec![
                    (C::Input, 500_002_500),
                    (C::Output, 30_000_000),
                    (C::Reasoning, 45_000_000),
                    (C::SearchQueries, 70_000_000),
                ],
            ),
            (
                "gpt-realtime, audio in and out",
                &realtime,
                audio,
                428_400_000,
                vec![
                    (C::Input, 4_000_000),
                    (C::CachedInput, 400_000),
                    (C::AudioInput, 256_000_000),
                    (C::Output, 8_000_000),
                    (C::AudioOutput, 160_000_000),
                ],
            ),
            ("tavily, three searches", &tavily, q(0, 0, 0, 3), 24_000_000, vec![(C::Units, 24_000_000)]),
        ];
        for (name, rates, quantities, total, classes) in cases {
            let c = price_event(rates, quantities).unwrap();
            assert_eq!(c.total.0, total, "{name}");
            let got: Vec<(CostClass, i64)> = c.breakdown.nonzero().map(|(k, n)| (k, n.0)).collect();
            assert_eq!(got, classes, "{name}");
            assert_eq!(c.input.0 + c.output.0, c.total.0, "{name}");
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
    fn parts_cannot_exceed_their_totals() {
        let r = llm("1", "1", None);
        let bad = [
            q(10, 0, 11, 0),
            Quantities {
                tokens_input: 10,
                tokens_cached_input: 5,
                tokens_cache_write: 4,
                tokens_audio_input: 2,
                ..Quantities::default()
            },
            Quantities { tokens_input: 10, tokens_cache_write_1h: 11, ..Quantities::default() },
            Quantities { tokens_output: 10, tokens_reasoning: 8, tokens_audio_output: 3, ..Quantities::default() },
            Quantities {
                tokens_input: u64::MAX,
                tokens_cached_input: u64::MAX,
                tokens_cache_write: 1,
                ..Quantities::default()
            },
        ];
        for b in bad {
            assert!(matches!(price_event(&r, b), Err(PricingError::InvalidSplit(_))), "{b:?}");
        }
        let exact = Quantities {
            tokens_input: 10,
            tokens_cached_input: 5,
            tokens_cache_write: 3,
            tokens_audio_input: 2,
            ..Quantities::default()
        };
        assert!(price_event(&r, exact).is_ok());
    }

    #[test]
    fn the_highest_tier_exceeded_wins() {
        let r = Rates {
            base: class(&[(InputPerMillion, "1")]),
            tiers: vec![
                ContextTier { above_input_tokens: 128_000, rates: class(&[(InputPerMillion, "2")]) },
                ContextTier { above_input_tokens: 272_000, rates: class(&[(InputPerMillion, "4")]) },
            ],
            ..Rates::default()
        };
        for (n, rate) in [(128_000, 1), (128_001, 2), (272_000, 2), (272_001, 4)] {
            assert_eq!(price_event(&r, q(n, 0, 0, 0)).unwrap().total.0, n as i64 * rate * 1000, "{n}");
        }
        assert_eq!(r.thresholds(), vec![128_000, 272_000]);
    }

    #[test]
    fn breakdowns_round_trip_through_the_store_form() {
        let b = Breakdown([5, 0, 0, 7, 0, 11, 0, 0, 0, 3]);
        assert_eq!(b.encode(), "input=5;cache_write_1h=7;output=11;search_queries=3");
        assert_eq!(Breakdown::decode(&b.encode()), Some(b));
        assert_eq!(Breakdown::decode(""), Some(Breakdown::default()));
        assert_eq!(Breakdown::decode("bogus=1"), None);
        assert_eq!(b.to_json()["output"], "0.000000011");
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
            max_output_tokens: None,
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

    /// Any usage, its parts drawn inside their totals.
    fn usage() -> impl Strategy<Value = Quantities> {
        (
            0u64..2_000_000,
            0u64..200_000,
            [0u64..=100, 0u64..=100, 0u64..=100, 0u64..=100, 0u64..=100, 0u64..=100],
            0u64..5,
            0u64..5,
            0usize..4,
        )
            .prop_map(|(input, output, f, units, searches, tier)| {
                // Shares of the input split over four parts, of the output over two.
                let share = |total: u64, pct: u64, left: &mut u64| {
                    let n = (total * pct / 100).min(*left);
                    *left -= n;
                    n
                };
                let mut li = input;
                let mut lo = output;
                Quantities {
                    tokens_input: input,
                    tokens_output: output,
                    tokens_cached_input: share(input, f[0], &mut li),
                    tokens_cache_write: share(input, f[1], &mut li),
                    tokens_cache_write_1h: share(input, f[2], &mut li),
                    tokens_audio_input: share(input, f[3], &mut li),
                    tokens_reasoning: share(output, f[4], &mut lo),
                    tokens_audio_output: share(output, f[5], &mut lo),
                    search_queries: searches,
                    units,
                    service_tier: ServiceTier::ALL[tier],
                }
            })
    }

    /// A tiered price with every class set, its long-context and service
    /// tiers never cheaper than the base.
    fn tiered() -> Rates {
        let all = |scale: &str| {
            let mut r = ClassRates::default();
            for (i, f) in RateField::ALL.into_iter().enumerate() {
                let base = Decimal::from(i as i64 + 1) / Decimal::from(7);
                let v = (base.round_dp(6) * Decimal::from_str_exact(scale).unwrap()).normalize();
                r.set(f, p(&v.to_string()));
            }
            r
        };
        Rates {
            base: all("1"),
            tiers: vec![ContextTier { above_input_tokens: 200_000, rates: all("2") }],
            service_tiers: BTreeMap::from([
                (ServiceTier::Batch, ServiceTierRates { rates: all("0.5"), tiers: vec![] }),
                (
                    ServiceTier::Priority,
                    ServiceTierRates {
                        rates: all("1.75"),
                        tiers: vec![ContextTier { above_input_tokens: 200_000, rates: all("3.5") }],
                    },
                ),
            ]),
        }
    }

    proptest! {
        #[test]
        fn cost_never_decreases_as_usage_grows(
            i in 0u64..10_000_000, o in 0u64..10_000_000, u in 0u64..1000,
            di in 0u64..1_000_000, dout in 0u64..1_000_000, du in 0u64..10,
            cached_frac in 0u64..=100,
        ) {
            let mut r = llm("1.25", "10", Some("0.3125"));
            r.base.per_request = p("0.0004");
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

        /// The breakdown is the total, split: every class ≥ 0, the input
        /// classes sum to `input`, all of them to `total`, and each class is
        /// within a nano of its exact amount.
        #[test]
        fn the_breakdown_adds_up(q in usage()) {
            let c = price_event(&tiered(), q).unwrap();
            prop_assert!(c.breakdown.0.iter().all(|n| *n >= 0));
            prop_assert_eq!(c.breakdown.sum(), c.total.0);
            let input: i64 = CostClass::ALL.into_iter().filter(|k| k.is_input()).map(|k| c.breakdown.get(k).0).sum();
            prop_assert_eq!(input, c.input.0);
        }

        /// No class is counted twice: when every rate is the same, the cost
        /// is the total tokens at that rate however they are split.
        #[test]
        fn no_token_is_charged_twice(q in usage()) {
            let mut r = ClassRates::default();
            for f in RateField::ALL.into_iter().filter(|f| !f.is_unit_price() && *f != PerSearchQuery) {
                r.set(f, p("0.37"));
            }
            let rates = Rates { base: r, ..Rates::default() };
            let q = Quantities { units: 0, search_queries: 0, ..q };
            let c = price_event(&rates, q).unwrap();
            let exact = Decimal::from(q.tokens_input + q.tokens_output) * Decimal::from_str_exact("0.37").unwrap() * Decimal::from(1000);
            prop_assert_eq!(c.total, Nanos::round_from_decimal(exact).unwrap());
        }

        /// More of any class never costs less, tiers and service tiers
        /// included (when their rates are never below the base).
        #[test]
        fn monotone_in_every_class(q in usage(), which in 0usize..10, more in 1u64..300_000) {
            let rates = tiered();
            let mut bigger = q;
            match which {
                0 => bigger.tokens_input += more,
                1 => { bigger.tokens_input += more; bigger.tokens_cached_input += more }
                2 => { bigger.tokens_input += more; bigger.tokens_cache_write += more }
                3 => { bigger.tokens_input += more; bigger.tokens_cache_write_1h += more }
                4 => { bigger.tokens_input += more; bigger.tokens_audio_input += more }
                5 => bigger.tokens_output += more,
                6 => { bigger.tokens_output += more; bigger.tokens_reasoning += more }
                7 => { bigger.tokens_output += more; bigger.tokens_audio_output += more }
                8 => bigger.units += more % 7,
                _ => bigger.search_queries += more % 7,
            }
            let a = price_event(&rates, q).unwrap();
            let b = price_event(&rates, bigger).unwrap();
            prop_assert!(b.total >= a.total, "{:?} -> {:?}", a, b);
        }

        /// At the boundary the whole request switches: N input tokens are all
        /// at the base rates, N + 1 all at the tier's.
        #[test]
        fn the_whole_request_switches_tier_at_the_boundary(n in 1u64..400_000, out in 0u64..100_000, cached_pct in 0u64..=100) {
            let r = Rates {
                base: class(&[(InputPerMillion, "1.25"), (OutputPerMillion, "10"), (CachedInputPerMillion, "0.125")]),
                tiers: vec![ContextTier {
                    above_input_tokens: n,
                    rates: class(&[(InputPerMillion, "2.50"), (OutputPerMillion, "15"), (CachedInputPerMillion, "0.25")]),
                }],
                ..Rates::default()
            };
            let at = |input: u64, i: &str, o: &str, c: &str| {
                let cached = input * cached_pct / 100;
                let d = |s: &str| Decimal::from_str_exact(s).unwrap();
                let exact = (Decimal::from(input - cached) * d(i) + Decimal::from(cached) * d(c) + Decimal::from(out) * d(o)) * Decimal::from(1000);
                (Quantities { tokens_input: input, tokens_cached_input: cached, tokens_output: out, ..Quantities::default() }, Nanos::round_from_decimal(exact).unwrap())
            };
            let (below, want_below) = at(n, "1.25", "10", "0.125");
            let (above, want_above) = at(n + 1, "2.50", "15", "0.25");
            prop_assert_eq!(price_event(&r, below).unwrap().total, want_below);
            prop_assert_eq!(price_event(&r, above).unwrap().total, want_above);
        }
    }

    #[test]
    fn search_queries_without_a_per_query_price_are_flagged() {
        let plain = Rates::from(ClassRates {
            input_per_million: Price::parse("1").ok(),
            output_per_million: Price::parse("2").ok(),
            ..ClassRates::default()
        });
        let mut with_queries = plain.clone();
        with_queries.base.per_search_query = Price::parse("0.035").ok();
        let q = |n| Quantities { tokens_input: 100, tokens_output: 10, search_queries: n, ..Quantities::default() };
        let table = [(&plain, 0, false), (&plain, 2, true), (&with_queries, 2, false), (&with_queries, 0, false)];
        for (rates, n, flagged) in table {
            assert_eq!(unpriced_search_queries(rates, &q(n)), flagged, "{n} queries");
        }
        // Flagged queries cost nothing; priced ones their price.
        assert_eq!(price_event(&plain, q(2)).unwrap().total, price_event(&plain, q(0)).unwrap().total);
        let extra =
            price_event(&with_queries, q(2)).unwrap().total.0 - price_event(&with_queries, q(0)).unwrap().total.0;
        assert_eq!(extra, 70_000_000);
    }
}
