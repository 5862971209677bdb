//! What an event used, as counted by the caller, and how to read it.

use super::*;

/// What was used, as counted by the caller: one count per [`Count`]
/// (indexed by it: `q[Count::Reasoning]`), the units and the service tier.
/// The token classes are parts of the two totals ([`Count::part_of`]):
/// cache reads, cache writes and audio input are parts of
/// `tokens_input`; reasoning and audio output are parts of
/// `tokens_output`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Quantities {
    counts: [u64; Count::ALL.len()],
    pub units: u64,
    pub service_tier: ServiceTier,
}

impl std::ops::Index<Count> for Quantities {
    type Output = u64;
    fn index(&self, c: Count) -> &u64 {
        &self.counts[c as usize]
    }
}

impl std::ops::IndexMut<Count> for Quantities {
    fn index_mut(&mut self, c: Count) -> &mut u64 {
        &mut self.counts[c as usize]
    }
}

impl Quantities {
    /// `input` and `output` tokens and nothing else.
    pub fn tokens(input: u64, output: u64) -> Quantities {
        Quantities::default().with(Count::Input, input).with(Count::Output, output)
    }

    /// `self` with `c` counted `n`.
    pub fn with(mut self, c: Count, n: u64) -> Quantities {
        self[c] = n;
        self
    }

    /// `self` with `units` units.
    pub fn with_units(mut self, units: u64) -> Quantities {
        self.units = units;
        self
    }

    /// `self` at `tier`.
    pub fn with_tier(mut self, tier: ServiceTier) -> Quantities {
        self.service_tier = tier;
        self
    }

    /// Checks that the parts fit in their totals.
    pub fn check_split(&self) -> Result<(), PricingError> {
        for total in [Count::Input, Count::Output] {
            let parts = || Count::ALL.into_iter().filter(move |c| c.part_of() == Some(total));
            let sum = parts().try_fold(0u64, |a, c| a.checked_add(self[c]));
            if sum.is_none_or(|p| p > self[total]) {
                let names: Vec<&str> = parts().map(Count::field).collect();
                return Err(PricingError::InvalidSplit(format!(
                    "{} ({}) are parts of {} ({}) and cannot exceed it",
                    names.join(" + "),
                    sum.map_or("too many".to_string(), |p| p.to_string()),
                    total.field(),
                    self[total]
                )));
            }
        }
        Ok(())
    }

    /// What is left of `total` once its parts are taken out (uncached text
    /// input, text output). Call after [`Quantities::check_split`].
    pub fn rest_of(&self, total: Count) -> u64 {
        Count::ALL.into_iter().filter(|c| c.part_of() == Some(total)).fold(self[total], |left, c| left - self[c])
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

    /// The counts an event keeps beside its three columns of old
    /// (`tokens_input`, `tokens_output`, `tokens_cached_input`): its
    /// [`crate::domain::event::UsageParts`].
    pub const PARTS: &[Count] = Count::ALL.split_at(3).1;

    /// The total this count is a part of, if any.
    pub fn part_of(self) -> Option<Count> {
        match self {
            Count::CachedInput | Count::CacheWrite | Count::CacheWrite1h | Count::AudioInput => Some(Count::Input),
            Count::Reasoning | Count::AudioOutput => Some(Count::Output),
            Count::Input | Count::Output | Count::SearchQueries => None,
        }
    }

    /// The class it is charged as (a total's own class holds what is left
    /// of it once its parts are taken out).
    pub fn class(self) -> CostClass {
        match self {
            Count::Input => CostClass::Input,
            Count::Output => CostClass::Output,
            Count::CachedInput => CostClass::CachedInput,
            Count::CacheWrite => CostClass::CacheWrite,
            Count::CacheWrite1h => CostClass::CacheWrite1h,
            Count::AudioInput => CostClass::AudioInput,
            Count::Reasoning => CostClass::Reasoning,
            Count::AudioOutput => CostClass::AudioOutput,
            Count::SearchQueries => CostClass::SearchQueries,
        }
    }

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
    /// `cache read 1,000 · reasoning 600 · batch` for people: the parts of
    /// the totals that are there, the web-search queries and a service
    /// tier other than standard; empty for a plain event.
    pub fn describe_parts(&self) -> String {
        let mut out: Vec<String> = Count::ALL[2..]
            .iter()
            .map(|c| (c.label(), self[*c]))
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| format!("{k} {}", crate::domain::money::format_count(n.min(i64::MAX as u64) as i64)))
            .collect();
        if self.service_tier != ServiceTier::Standard {
            out.push(self.service_tier.as_str().to_string());
        }
        out.join(" · ")
    }
}
