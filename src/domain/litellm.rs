//! Reading a price map in LiteLLM's format (`model_prices_and_context_window.json`,
//! shipped in the `litellm` PyPI package) into price versions.
//!
//! Prices are read from the map's own number text (`1.25e-07`) into exact
//! decimals, never through a float. Some of the map's numbers carry the
//! noise of the float that once printed them (`2.9999900000000002e-06`):
//! per million tokens they are rounded to twelve decimal places (10^-18 USD
//! a token), which keeps the price that was meant. Entries keep the file's
//! order, so when two give the same provider and model the first wins.

use std::collections::BTreeMap;
use std::fmt;

use rust_decimal::Decimal;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::money::Price;
use super::pricing::{ClassRates, ContextTier, RateField, Rates, ServiceTier, ServiceTierRates};
use super::provider::Provider;

/// One price an import creates (or, in a dry run, would create).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportChange {
    /// The map's key.
    pub key: String,
    pub provider: String,
    pub model: String,
    /// `new` (no price in force before) or `changed`.
    pub kind: String,
    /// The version in force before, for people (`None` when new).
    pub before: Option<String>,
    /// The new version, for people.
    pub after: String,
}

/// An entry of the map that creates nothing, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportSkipped {
    pub key: String,
    pub reason: String,
}

/// What an import did (or, in a dry run, would do). The API answers it as
/// is and the admin page shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportReport {
    pub dry_run: bool,
    pub effective_from: chrono::DateTime<chrono::Utc>,
    pub created: usize,
    pub unchanged: usize,
    pub skipped: Vec<ImportSkipped>,
    pub unsupported_fields: BTreeMap<String, u64>,
    pub changes: Vec<ImportChange>,
    /// Unpriced events that the new prices priced.
    pub repriced_events: i64,
}

/// One entry of the map that becomes a price.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub provider: Provider,
    pub model: String,
    pub rates: Rates,
    /// `max_output_tokens` (else `max_tokens`, which LiteLLM documents as
    /// the same for chat models).
    pub max_output_tokens: Option<u64>,
}

/// What a map holds: the entries to price, the entries skipped and why,
/// and the price fields Tally does not model, with how many entries carry
/// each.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PriceMap {
    pub entries: Vec<Entry>,
    pub skipped: Vec<(String, String)>,
    pub unsupported_fields: BTreeMap<String, u64>,
}

/// A JSON object's members in file order, values as their raw text.
struct Ordered(Vec<(String, Box<RawValue>)>);

impl<'de> serde::Deserialize<'de> for Ordered {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Ordered;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ordered, A::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some((k, v)) = map.next_entry::<String, Box<RawValue>>()? {
                    out.push((k, v));
                }
                Ok(Ordered(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// The map's provider name as a Tally provider slug.
pub fn provider_slug(litellm_provider: &str) -> String {
    let p = litellm_provider.trim().to_ascii_lowercase();
    if p == "text-completion-openai" {
        return "openai".into();
    }
    if p.starts_with("vertex_ai-") {
        return "vertex_ai".into();
    }
    if p == "bedrock_converse" {
        return "bedrock".into();
    }
    p.chars().map(|c| if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' { c } else { '_' }).collect()
}

/// The model name: the key without a leading `<something>/`.
pub fn model_name(key: &str) -> &str {
    key.split_once('/').map_or(key, |(_, rest)| rest)
}

/// A decimal from JSON number text (`3e-06`, `0.035`), exactly.
fn exact(raw: &str) -> Option<Decimal> {
    let t = raw.trim();
    if t.starts_with('-') {
        return None;
    }
    if t.contains(['e', 'E']) { Decimal::from_scientific(t).ok() } else { Decimal::from_str_exact(t).ok() }
}

/// Which rate a map field sets: the base name (per token unless noted),
/// whether it is per token (× 10^6 to per million).
fn base_field(name: &str) -> Option<(RateField, bool)> {
    Some(match name {
        "input_cost_per_token" => (RateField::InputPerMillion, true),
        "output_cost_per_token" => (RateField::OutputPerMillion, true),
        "cache_read_input_token_cost" => (RateField::CachedInputPerMillion, true),
        "cache_creation_input_token_cost" => (RateField::CacheWritePerMillion, true),
        "cache_creation_input_token_cost_above_1hr" => (RateField::CacheWrite1hPerMillion, true),
        "output_cost_per_reasoning_token" => (RateField::ReasoningPerMillion, true),
        "input_cost_per_audio_token" => (RateField::AudioInputPerMillion, true),
        "output_cost_per_audio_token" => (RateField::AudioOutputPerMillion, true),
        "search_context_cost_per_query" => (RateField::PerSearchQuery, false),
        "input_cost_per_request" => (RateField::PerRequest, false),
        "input_cost_per_query" => (RateField::PerSearch, false),
        "output_cost_per_image" => (RateField::PerImage, false),
        "ocr_cost_per_page" => (RateField::PerPage, false),
        _ => return None,
    })
}

/// Splits `input_cost_per_token_above_200k_tokens_priority` into the base
/// field, the context threshold (tokens) and the service tier.
fn split_field(name: &str) -> Option<(RateField, bool, Option<u64>, ServiceTier)> {
    let (rest, tier) =
        [("_batches", ServiceTier::Batch), ("_flex", ServiceTier::Flex), ("_priority", ServiceTier::Priority)]
            .into_iter()
            .find_map(|(suffix, t)| name.strip_suffix(suffix).map(|r| (r, t)))
            .unwrap_or((name, ServiceTier::Standard));
    let (rest, above) = match rest.rfind("_above_") {
        Some(i) if rest.ends_with("k_tokens") => {
            let n: u64 = rest[i + "_above_".len()..rest.len() - "k_tokens".len()].parse().ok()?;
            (&rest[..i], Some(n.checked_mul(1000)?))
        }
        _ => (rest, None),
    };
    let (field, per_token) = base_field(rest)?;
    Some((field, per_token, above, tier))
}

/// Reads a LiteLLM price map.
pub fn parse(text: &str) -> Result<PriceMap, String> {
    let top: Ordered =
        serde_json::from_str(text).map_err(|e| format!("not a LiteLLM price map (a JSON object of models): {e}"))?;
    let mut out = PriceMap::default();
    let mut seen: BTreeMap<(String, String), String> = BTreeMap::new();
    for (key, raw) in top.0 {
        if key == "sample_spec" {
            out.skipped.push((key, "the format's sample entry".into()));
            continue;
        }
        let Ok(fields) = serde_json::from_str::<Ordered>(raw.get()) else {
            out.skipped.push((key, "not an object".into()));
            continue;
        };
        let litellm_provider = fields
            .0
            .iter()
            .find(|(k, _)| k == "litellm_provider")
            .and_then(|(_, v)| serde_json::from_str::<String>(v.get()).ok());
        let Some(litellm_provider) = litellm_provider else {
            out.skipped.push((key, "no litellm_provider".into()));
            continue;
        };
        let provider = match Provider::parse(&provider_slug(&litellm_provider)) {
            Ok(p) => p,
            Err(_) => {
                out.skipped.push((key, format!("provider `{litellm_provider}` is not a valid provider name")));
                continue;
            }
        };
        let model = model_name(&key).to_string();
        if model.is_empty() || model.chars().count() > 128 {
            out.skipped.push((key, "the model name must be 1 to 128 characters".into()));
            continue;
        }
        if let Some(first) = seen.get(&(provider.as_str().to_string(), model.clone())) {
            out.skipped.push((key, format!("duplicate of {first}")));
            continue;
        }
        let mut rates = Rates::default();
        let mut unsupported: Vec<String> = Vec::new();
        for (name, value) in &fields.0 {
            if !(name.contains("cost") || name.contains("price")) {
                continue;
            }
            let Some((field, per_token, above, tier)) = split_field(name) else {
                unsupported.push(name.clone());
                continue;
            };
            // `search_context_cost_per_query` is an object by context size.
            let raw_number = if field == RateField::PerSearchQuery {
                serde_json::from_str::<Ordered>(value.get())
                    .ok()
                    .and_then(|o| o.0.into_iter().find(|(k, _)| k == "search_context_size_medium"))
                    .map(|(_, v)| v.get().to_string())
            } else {
                Some(value.get().to_string())
            };
            let price = raw_number
                .as_deref()
                .and_then(exact)
                .and_then(|d| if per_token { d.checked_mul(Decimal::from(1_000_000)) } else { Some(d) })
                .map(|d| {
                    d.round_dp_with_strategy(Price::MAX_SCALE, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
                })
                .and_then(|d| Price::parse(&d.normalize().to_string()).ok());
            let Some(price) = price else {
                unsupported.push(name.clone());
                continue;
            };
            let class: &mut ClassRates = match (tier, above) {
                (ServiceTier::Standard, None) => &mut rates.base,
                (ServiceTier::Standard, Some(n)) => tier_rates(&mut rates.tiers, n),
                (t, None) => &mut rates.service_tiers.entry(t).or_insert_with(ServiceTierRates::default).rates,
                (t, Some(n)) => {
                    tier_rates(&mut rates.service_tiers.entry(t).or_insert_with(ServiceTierRates::default).tiers, n)
                }
            };
            class.set(field, Some(price));
        }
        for name in unsupported {
            *out.unsupported_fields.entry(name).or_default() += 1;
        }
        if rates.is_empty() {
            out.skipped.push((key, "no price Tally can apply".into()));
            continue;
        }
        rates.tiers.sort_by_key(|t| t.above_input_tokens);
        for s in rates.service_tiers.values_mut() {
            s.tiers.sort_by_key(|t| t.above_input_tokens);
        }
        seen.insert((provider.as_str().to_string(), model.clone()), key.clone());
        let count = |name: &str| {
            fields.0.iter().find(|(k, _)| k == name).and_then(|(_, v)| serde_json::from_str::<u64>(v.get()).ok())
        };
        let max_output_tokens = count("max_output_tokens").or_else(|| count("max_tokens")).filter(|n| *n > 0);
        out.entries.push(Entry { key, provider, model, rates, max_output_tokens });
    }
    Ok(out)
}

fn tier_rates(tiers: &mut Vec<ContextTier>, above: u64) -> &mut ClassRates {
    let i = match tiers.iter().position(|t| t.above_input_tokens == above) {
        Some(i) => i,
        None => {
            tiers.push(ContextTier { above_input_tokens: above, rates: ClassRates::default() });
            tiers.len() - 1
        }
    };
    &mut tiers[i].rates
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn p(s: &str) -> Option<Price> {
        Some(Price::parse(s).unwrap())
    }

    #[test]
    fn names_follow_the_contract() {
        for (raw, want) in [
            ("text-completion-openai", "openai"),
            ("vertex_ai-language-models", "vertex_ai"),
            ("bedrock_converse", "bedrock"),
            ("together-ai", "together_ai"),
            ("xai", "xai"),
        ] {
            assert_eq!(provider_slug(raw), want);
        }
        assert_eq!(model_name("gemini/gemini-2.5-pro"), "gemini-2.5-pro");
        assert_eq!(model_name("bedrock/us-east-1/anthropic.claude"), "us-east-1/anthropic.claude");
        assert_eq!(model_name("gpt-5"), "gpt-5");
    }

    #[test]
    fn an_entry_maps_every_class_exactly() {
        let map = r#"{
            "sample_spec": {"input_cost_per_token": 0},
            "gemini/gemini-2.5-pro": {
                "litellm_provider": "gemini", "max_tokens": 65536,
                "input_cost_per_token": 1.25e-06, "output_cost_per_token": 1e-05,
                "cache_read_input_token_cost": 1.25e-07,
                "input_cost_per_token_above_200k_tokens": 2.5e-06, "output_cost_per_token_above_200k_tokens": 1.5e-05,
                "input_cost_per_token_priority": 2.25e-06,
                "input_cost_per_token_above_200k_tokens_priority": 4.5e-06,
                "input_cost_per_token_batches": 6.25e-07,
                "search_context_cost_per_query": {"search_context_size_low": 0.01, "search_context_size_medium": 0.035},
                "output_cost_per_second": 0.1, "input_cost_per_token_balanced": 1e-06
            },
            "gemini-2.5-pro": {"litellm_provider": "gemini", "input_cost_per_token": 9e-06},
            "claude-sonnet-4-5": {"litellm_provider": "anthropic", "input_cost_per_token": 3e-06,
                "cache_creation_input_token_cost": 3.75e-06, "cache_creation_input_token_cost_above_1hr": 6e-06,
                "output_cost_per_reasoning_token": 0.000015},
            "whisper": {"litellm_provider": "openai", "input_cost_per_second": 0.0001},
            "odd": 7
        }"#;
        let m = parse(map).unwrap();
        assert_eq!(m.entries.len(), 2);
        let g = &m.entries[0];
        assert_eq!((g.provider.as_str(), g.model.as_str()), ("gemini", "gemini-2.5-pro"));
        assert_eq!(g.max_output_tokens, Some(65536), "from max_tokens when max_output_tokens is absent");
        assert_eq!(m.entries[1].max_output_tokens, None);
        assert_eq!(g.rates.base.input_per_million, p("1.25"));
        assert_eq!(g.rates.base.output_per_million, p("10"));
        assert_eq!(g.rates.base.cached_input_per_million, p("0.125"));
        assert_eq!(g.rates.base.per_search_query, p("0.035"));
        assert_eq!(g.rates.tiers.len(), 1);
        assert_eq!(g.rates.tiers[0].above_input_tokens, 200_000);
        assert_eq!(g.rates.tiers[0].rates.output_per_million, p("15"));
        let prio = &g.rates.service_tiers[&ServiceTier::Priority];
        assert_eq!(prio.rates.input_per_million, p("2.25"));
        assert_eq!(prio.tiers[0].rates.input_per_million, p("4.5"));
        assert_eq!(g.rates.service_tiers[&ServiceTier::Batch].rates.input_per_million, p("0.625"));
        let c = &m.entries[1];
        assert_eq!(c.rates.base.cache_write_per_million, p("3.75"));
        assert_eq!(c.rates.base.cache_write_1h_per_million, p("6"));
        assert_eq!(c.rates.base.reasoning_per_million, p("15"));
        let skipped: Vec<(&str, &str)> = m.skipped.iter().map(|(k, r)| (k.as_str(), r.as_str())).collect();
        assert_eq!(
            skipped,
            vec![
                ("sample_spec", "the format's sample entry"),
                ("gemini-2.5-pro", "duplicate of gemini/gemini-2.5-pro"),
                ("whisper", "no price Tally can apply"),
                ("odd", "not an object"),
            ]
        );
        assert_eq!(m.unsupported_fields.get("output_cost_per_second"), Some(&1));
        assert_eq!(m.unsupported_fields.get("input_cost_per_token_balanced"), Some(&1));
        assert_eq!(m.unsupported_fields.get("input_cost_per_second"), Some(&1));
    }

    /// The whole map shipped in the `litellm` wheel (see
    /// `src/server/testdata/litellm/README.md`).
    pub(crate) fn real_map() -> String {
        use std::io::Read;
        let gz = include_bytes!("../server/testdata/litellm/model_prices_and_context_window_backup.json.gz");
        let mut text = String::new();
        flate2::read::GzDecoder::new(&gz[..]).read_to_string(&mut text).unwrap();
        text
    }

    #[test]
    fn the_real_map_reads_whole() {
        let m = parse(&real_map()).unwrap();
        assert!(m.entries.len() > 2000, "{} entries", m.entries.len());
        let find = |p: &str, model: &str| {
            m.entries
                .iter()
                .find(|e| e.provider.as_str() == p && e.model == model)
                .unwrap_or_else(|| panic!("{p}/{model}"))
        };
        // Published sheets, as the map states them.
        let gpt5 = &find("openai", "gpt-5").rates;
        assert_eq!((gpt5.base.input_per_million, gpt5.base.cached_input_per_million), (p("1.25"), p("0.125")));
        assert_eq!(gpt5.service_tiers[&ServiceTier::Priority].rates.output_per_million, p("20"));
        assert_eq!(gpt5.service_tiers[&ServiceTier::Flex].rates.input_per_million, p("0.625"));
        assert_eq!(gpt5.base.per_search_query, p("0.01"));
        let sonnet = &find("anthropic", "claude-sonnet-4-5").rates;
        assert_eq!(sonnet.base.cache_write_per_million, p("3.75"));
        assert_eq!(sonnet.base.cache_write_1h_per_million, p("6"));
        let pro = &find("gemini", "gemini-2.5-pro").rates;
        assert_eq!(pro.tiers[0].above_input_tokens, 200_000);
        assert_eq!(pro.tiers[0].rates.input_per_million, p("2.5"));
        assert_eq!(pro.service_tiers[&ServiceTier::Priority].tiers[0].rates.output_per_million, p("27"));
        // Providers beyond the built-in ten.
        for provider in ["groq", "deepseek", "xai", "bedrock", "azure", "vertex_ai"] {
            assert!(m.entries.iter().any(|e| e.provider.as_str() == provider), "{provider}");
        }
        // Every price is exact and every entry unique by provider and model.
        let mut seen = std::collections::BTreeSet::new();
        for e in &m.entries {
            assert!(seen.insert((e.provider.as_str(), e.model.as_str())), "{} twice", e.key);
        }
        assert!(m.skipped.iter().any(|(k, r)| k == "sample_spec" && r.contains("sample")));
        assert!(!m.unsupported_fields.contains_key("input_cost_per_token"));
    }

    #[test]
    fn numbers_are_read_from_their_text() {
        // 0.1 + 0.2 style noise never enters: 3e-07 per token is 0.3 per million.
        for (raw, want) in
            [("3e-07", "0.3"), ("1.1e-06", "1.1"), ("0.0000011", "1.1"), ("7.5E-6", "7.5"), ("2", "2000000")]
        {
            let d = exact(raw).unwrap() * Decimal::from(1_000_000);
            assert_eq!(d.normalize().to_string(), want, "{raw}");
        }
        assert!(exact("-1e-6").is_none());
        let noisy =
            parse(r#"{"m": {"litellm_provider": "x", "input_cost_per_token": 2.9999900000000002e-06}}"#).unwrap();
        assert_eq!(noisy.entries[0].rates.base.input_per_million, p("2.99999"));
        assert!(parse("[1]").unwrap_err().contains("not a LiteLLM price map"));
    }
}
