//! Providers of paid APIs and the limit keys derived from them.
//!
//! A [`Provider`] is a validated lowercase slug. The built-in set below is
//! what the family A client knows; an admin may add others through the
//! pricing catalog, so ingest accepts "built-in or priced" providers.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The providers every deployment knows, in display order. `video` and
/// `image_edit` are the family A client's pseudo-providers.
pub const BUILTIN_PROVIDERS: &[(&str, &str)] = &[
    ("gemini", "Gemini"),
    ("openai", "OpenAI"),
    ("anthropic", "Anthropic"),
    ("mistral", "Mistral"),
    ("huggingface", "Hugging Face"),
    ("tavily", "Tavily"),
    ("serper", "Serper"),
    ("metaphor", "Exa (Metaphor)"),
    ("firecrawl", "Firecrawl"),
    ("stability", "Stability AI"),
    ("video", "Video"),
    ("image_edit", "Image edit"),
];

/// Family A's fixed limit keys: calls for every built-in provider except
/// huggingface, tokens for the four LLM providers, then the cost cap.
pub const FAMILY_A_LIMIT_KEYS: &[&str] = &[
    "gemini_calls",
    "openai_calls",
    "anthropic_calls",
    "mistral_calls",
    "tavily_calls",
    "serper_calls",
    "metaphor_calls",
    "firecrawl_calls",
    "stability_calls",
    "video_calls",
    "image_edit_calls",
    "gemini_tokens",
    "openai_tokens",
    "anthropic_tokens",
    "mistral_tokens",
    "monthly_cost",
];

/// A provider slug: 1–32 of `[a-z0-9_]`, starting with a letter.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Provider(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    #[error("provider must be 1-32 characters of a-z, 0-9 and _, starting with a letter (got `{0}`)")]
    BadSlug(String),
}

impl Provider {
    /// Parses and normalises: lower-cases and maps the alias `exa` to
    /// `metaphor` (Exa is Metaphor's current name).
    pub fn parse(s: &str) -> Result<Provider, ProviderError> {
        let t = s.trim().to_ascii_lowercase();
        let t = match t.as_str() {
            "exa" => "metaphor".to_string(),
            "hf" | "hugging_face" => "huggingface".to_string(),
            _ => t,
        };
        let ok = !t.is_empty()
            && t.len() <= 32
            && t.starts_with(|c: char| c.is_ascii_lowercase())
            && t.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if ok { Ok(Provider(t)) } else { Err(ProviderError::BadSlug(s.to_string())) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_builtin(&self) -> bool {
        BUILTIN_PROVIDERS.iter().any(|(p, _)| *p == self.0)
    }

    /// Human name (`OpenAI`), or the slug for admin-added providers.
    pub fn display_name(&self) -> String {
        display_name(&self.0)
    }
}

/// Human name of a provider slug.
pub fn display_name(slug: &str) -> String {
    BUILTIN_PROVIDERS.iter().find(|(p, _)| *p == slug).map(|(_, n)| n.to_string()).unwrap_or_else(|| slug.to_string())
}

impl TryFrom<String> for Provider {
    type Error = ProviderError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Provider::parse(&s)
    }
}

impl From<Provider> for String {
    fn from(p: Provider) -> String {
        p.0
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a limit counts.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LimitKey {
    Calls(Provider),
    Tokens(Provider),
    /// The cost cap per monthly usage period, in nanos.
    MonthlyCost,
}

impl LimitKey {
    /// Parses `gemini_calls`, `openai_tokens`, `monthly_cost`.
    pub fn parse(s: &str) -> Option<LimitKey> {
        if s == "monthly_cost" {
            return Some(LimitKey::MonthlyCost);
        }
        if let Some(p) = s.strip_suffix("_calls") {
            return Provider::parse(p).ok().map(LimitKey::Calls);
        }
        if let Some(p) = s.strip_suffix("_tokens") {
            return Provider::parse(p).ok().map(LimitKey::Tokens);
        }
        None
    }

    pub fn as_string(&self) -> String {
        match self {
            LimitKey::Calls(p) => format!("{p}_calls"),
            LimitKey::Tokens(p) => format!("{p}_tokens"),
            LimitKey::MonthlyCost => "monthly_cost".to_string(),
        }
    }

    pub fn provider(&self) -> Option<&Provider> {
        match self {
            LimitKey::Calls(p) | LimitKey::Tokens(p) => Some(p),
            LimitKey::MonthlyCost => None,
        }
    }

    /// A used amount or limit of this key, for people: money for the cost
    /// cap (`$150.00`), a count otherwise (`5,000`).
    /// Whether this limit is money (the monthly cost cap, in nanos) rather
    /// than a count of calls or tokens.
    pub fn is_money(&self) -> bool {
        matches!(self, LimitKey::MonthlyCost)
    }

    pub fn display_value(&self, v: i64) -> String {
        match self {
            LimitKey::MonthlyCost => super::money::Nanos(v).display(),
            _ => super::money::format_count(v),
        }
    }

    /// A limit value as typed into a form: plain USD for the cost cap
    /// (`150`, `42.5`), the whole number otherwise.
    pub fn input_value(&self, v: i64) -> String {
        match self {
            LimitKey::MonthlyCost => super::money::Nanos(v).to_decimal().normalize().to_string(),
            _ => v.to_string(),
        }
    }

    /// `Gemini calls`, `OpenAI tokens`, `Monthly cost`.
    pub fn label(&self) -> String {
        match self {
            LimitKey::Calls(p) => format!("{} calls", p.display_name()),
            LimitKey::Tokens(p) => format!("{} tokens", p.display_name()),
            LimitKey::MonthlyCost => "Monthly cost".to_string(),
        }
    }
}

impl fmt::Display for LimitKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_slugs() {
        assert_eq!(Provider::parse(" Gemini ").unwrap().as_str(), "gemini");
        assert_eq!(Provider::parse("exa").unwrap().as_str(), "metaphor");
        for bad in ["", "1abc", "open-ai", "a b", &"x".repeat(33)] {
            assert!(Provider::parse(bad).is_err(), "{bad}");
        }
        assert!(Provider::parse("gemini").unwrap().is_builtin());
        assert!(!Provider::parse("cohere").unwrap().is_builtin());
    }

    #[test]
    fn limit_keys_round_trip() {
        for k in FAMILY_A_LIMIT_KEYS {
            assert_eq!(LimitKey::parse(k).unwrap().as_string(), *k);
        }
        assert_eq!(LimitKey::parse("image_edit_calls").unwrap().provider().unwrap().as_str(), "image_edit");
        assert_eq!(LimitKey::parse("bogus"), None);
        assert_eq!(LimitKey::parse("gemini_tokens").unwrap().label(), "Gemini tokens");
        assert_eq!(LimitKey::parse("gemini_calls").unwrap().display_value(5000), "5,000");
        assert_eq!(LimitKey::MonthlyCost.display_value(150_000_000_000), "$150.00");
        assert_eq!(LimitKey::MonthlyCost.input_value(42_500_000_000), "42.5");
        assert_eq!(LimitKey::parse("gemini_calls").unwrap().input_value(5000), "5000");
    }
}
