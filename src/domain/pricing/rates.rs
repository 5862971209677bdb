//! Rates: what a price version charges, per class of usage, per service
//! tier and per context tier. [`RateField`] is the one list of them.

use std::collections::BTreeMap;

use rust_decimal::Decimal;

use crate::domain::money::Price;

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
    pub(super) fn unit_price(&self) -> Decimal {
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
        use crate::domain::money::format_count;
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
