//! What an event used, as counted by the caller, and how to read it.

use super::*;

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
            .map(|(k, n)| format!("{k} {}", crate::domain::money::format_count(n.min(i64::MAX as u64) as i64)))
            .collect();
        if self.service_tier != ServiceTier::Standard {
            out.push(self.service_tier.as_str().to_string());
        }
        out.join(" · ")
    }
}
