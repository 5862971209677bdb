//! Price versions and the in-memory catalog that looks them up.

use chrono::{DateTime, Utc};

use super::*;
use crate::domain::provider::Provider;

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
