//! The demo's plans (the seed documents' tiers) and its pricing catalog.

use chrono::{DateTime, Utc};

use crate::domain::limits::Limits;
use crate::domain::money::{Nanos, Price};
use crate::domain::plan::{Plan, Tier};
use crate::domain::pricing::{ANY_MODEL, ClassRates, ContextTier, PriceVersion, Rates};
use crate::domain::provider::Provider;

/// The four plans of the seed documents. Limits are per monthly usage
/// period; a missing key is unlimited.
pub fn demo_plans() -> Vec<Plan> {
    let limits = |rows: &[(&str, i64)]| rows.iter().fold(Limits::new(), |l, (k, v)| l.with(k, *v));
    let plan = |name: &str, tier, monthly, yearly, description: &str, features: &[&str], limits| Plan {
        id: 0,
        name: name.into(),
        tier,
        price_monthly: Nanos::from_usd(monthly),
        price_yearly: Nanos::from_usd(yearly),
        description: description.into(),
        features: features.iter().map(|s| s.to_string()).collect(),
        limits,
        archived: false,
        credits: Default::default(),
    };
    vec![
        plan(
            "Free",
            Tier::Free,
            0,
            0,
            "Try the AI tools with a small monthly allowance.",
            &["Gemini and search APIs", "Basic usage dashboard", "Community support"],
            limits(&[
                ("gemini_calls", 100),
                ("openai_calls", 20),
                ("anthropic_calls", 20),
                ("mistral_calls", 50),
                ("tavily_calls", 20),
                ("serper_calls", 20),
                ("metaphor_calls", 10),
                ("firecrawl_calls", 10),
                ("stability_calls", 5),
                ("video_calls", 1),
                ("image_edit_calls", 5),
                ("gemini_tokens", 100_000),
                ("openai_tokens", 20_000),
                ("anthropic_tokens", 20_000),
                ("mistral_tokens", 50_000),
                ("monthly_cost", Nanos::from_usd(1).0),
            ]),
        ),
        plan(
            "Basic",
            Tier::Basic,
            29,
            290,
            "For individuals who write and research every week.",
            &["All LLM providers", "Web search and extraction", "Usage alerts by email", "Email support"],
            limits(&[
                ("gemini_calls", 1_000),
                ("openai_calls", 500),
                ("anthropic_calls", 500),
                ("mistral_calls", 500),
                ("tavily_calls", 200),
                ("serper_calls", 200),
                ("metaphor_calls", 100),
                ("firecrawl_calls", 100),
                ("stability_calls", 50),
                ("video_calls", 5),
                ("image_edit_calls", 50),
                ("gemini_tokens", 2_000_000),
                ("openai_tokens", 1_000_000),
                ("anthropic_tokens", 1_000_000),
                ("mistral_tokens", 1_000_000),
                ("monthly_cost", Nanos::from_usd(25).0),
            ]),
        ),
        plan(
            "Pro",
            Tier::Pro,
            79,
            790,
            "For professionals and small teams running AI workflows daily.",
            &["Everything in Basic", "Higher limits on every provider", "Image generation", "Priority support"],
            limits(&[
                ("gemini_calls", 5_000),
                ("openai_calls", 2_500),
                ("anthropic_calls", 2_500),
                ("mistral_calls", 2_500),
                ("tavily_calls", 300),
                ("serper_calls", 1_000),
                ("metaphor_calls", 500),
                ("firecrawl_calls", 500),
                ("stability_calls", 200),
                ("video_calls", 20),
                ("image_edit_calls", 200),
                ("gemini_tokens", 20_000_000),
                ("openai_tokens", 10_000_000),
                ("anthropic_tokens", 10_000_000),
                ("mistral_tokens", 10_000_000),
                ("monthly_cost", Nanos::from_usd(150).0),
            ]),
        ),
        plan(
            "Enterprise",
            Tier::Enterprise,
            199,
            1990,
            "Unlimited usage, billed at cost, for organisations.",
            &["Unlimited calls and tokens", "No monthly cost cap", "SSO and audit log", "Dedicated support"],
            Limits::new(),
        ),
    ]
}

pub(super) struct PriceRow {
    provider: &'static str,
    model: &'static str,
    description: &'static str,
    input: Option<&'static str>,
    output: Option<&'static str>,
    cached: Option<&'static str>,
    unit: Option<(&'static str, &'static str)>,
}

pub(super) const fn llm(
    provider: &'static str,
    model: &'static str,
    description: &'static str,
    input: &'static str,
    output: &'static str,
    cached: Option<&'static str>,
) -> PriceRow {
    PriceRow { provider, model, description, input: Some(input), output: Some(output), cached, unit: None }
}

const fn per_unit(
    provider: &'static str,
    description: &'static str,
    kind: &'static str,
    price: &'static str,
) -> PriceRow {
    PriceRow {
        provider,
        model: ANY_MODEL,
        description,
        input: None,
        output: None,
        cached: None,
        unit: Some((kind, price)),
    }
}

/// The demo catalog: the models of seeds 001 and 002 at their providers'
/// published prices (per 1M tokens, or per unit), as LiteLLM's price map
/// states them where it still lists the model. Hugging Face bills compute
/// time, not tokens, so its row stays an estimate, and says so.
pub(super) const DEMO_PRICES: &[PriceRow] = &[
    llm("gemini", "gemini-2.0-flash-lite", "Gemini 2.0 Flash Lite", "0.075", "0.30", None),
    llm("gemini", "gemini-2.5-flash", "Gemini 2.5 Flash", "0.30", "2.50", Some("0.03")),
    llm(
        "gemini",
        "gemini-2.5-pro",
        "Gemini 2.5 Pro (above 200k input tokens: $2.50 / $15)",
        "1.25",
        "10.00",
        Some("0.125"),
    ),
    llm("gemini", "gemini-pro", "Gemini 1.0 Pro (legacy)", "0.50", "1.50", None),
    llm("openai", "gpt-4", "GPT-4", "30.00", "60.00", None),
    llm("openai", "gpt-4o", "GPT-4o", "2.50", "10.00", Some("1.25")),
    llm("openai", "gpt-4o-mini", "GPT-4o mini", "0.15", "0.60", Some("0.075")),
    llm("openai", "gpt-3.5-turbo", "GPT-3.5 Turbo", "0.50", "1.50", None),
    llm("anthropic", "claude-3", "Claude 3 (priced as Claude 3 Opus)", "15.00", "75.00", Some("1.50")),
    llm("anthropic", "claude-3-5-sonnet", "Claude 3.5 Sonnet", "3.00", "15.00", Some("0.30")),
    llm("anthropic", "claude-3-haiku", "Claude 3 Haiku", "0.25", "1.25", Some("0.03")),
    llm("mistral", "mistral-7b", "Mistral 7B (open-mistral-7b)", "0.25", "0.25", None),
    llm("mistral", "mistral-large", "Mistral Large (mistral-large-latest)", "0.50", "1.50", Some("0.05")),
    llm("huggingface", "*", "Hugging Face Inference (estimate: it bills compute time)", "0.10", "0.10", None),
    per_unit("tavily", "Tavily Search (one credit, pay as you go)", "search", "0.008"),
    per_unit("serper", "Serper Google Search", "search", "0.001"),
    per_unit("metaphor", "Exa (Metaphor) Search, 1-25 results", "search", "0.005"),
    per_unit("firecrawl", "Firecrawl scrape (one credit, Standard plan)", "page", "0.00083"),
    per_unit("stability", "Stability AI image generation (estimate)", "image", "0.04"),
];

/// What the demo's rows carry beyond input, output and cache reads: cache
/// writes, long-context tiers and web-search queries as published.
fn extras(row: &PriceRow, rates: &mut Rates) {
    let p = |s: &str| Price::parse(s).expect("demo prices are valid");
    match (row.provider, row.model) {
        ("gemini", "gemini-2.5-pro") => {
            rates.base.per_search_query = Some(p("0.035"));
            rates.tiers = vec![ContextTier {
                above_input_tokens: 200_000,
                rates: ClassRates {
                    input_per_million: Some(p("2.50")),
                    output_per_million: Some(p("15")),
                    cached_input_per_million: Some(p("0.25")),
                    ..ClassRates::default()
                },
            }];
        }
        ("gemini", "gemini-2.5-flash") => rates.base.per_search_query = Some(p("0.035")),
        ("anthropic", "claude-3") => rates.base.cache_write_per_million = Some(p("18.75")),
        ("anthropic", "claude-3-5-sonnet") => {
            rates.base.cache_write_per_million = Some(p("3.75"));
            rates.base.cache_write_1h_per_million = Some(p("6"));
        }
        ("anthropic", "claude-3-haiku") => rates.base.cache_write_per_million = Some(p("0.30")),
        _ => {}
    }
}

fn price(s: Option<&str>) -> Option<Price> {
    s.map(|v| Price::parse(v).expect("demo prices are valid"))
}

pub(super) fn version_of(row: &PriceRow, from: DateTime<Utc>) -> PriceVersion {
    let unit = |kind: &str| row.unit.filter(|(k, _)| *k == kind).map(|(_, p)| price(Some(p)).expect("valid"));
    let mut v = PriceVersion {
        id: 0,
        provider: Provider::parse(row.provider).expect("demo providers are valid"),
        model: row.model.into(),
        effective_from: from,
        rates: Rates::from(ClassRates {
            input_per_million: price(row.input),
            output_per_million: price(row.output),
            cached_input_per_million: price(row.cached),
            per_request: unit("request"),
            per_search: unit("search"),
            per_image: unit("image"),
            per_page: unit("page"),
            ..ClassRates::default()
        }),
        description: row.description.into(),
        max_output_tokens: demo_output_cap(row.model),
    };
    extras(row, &mut v.rates);
    v
}

/// The providers' published output caps of the demo models (tokens one
/// call can produce).
fn demo_output_cap(model: &str) -> Option<u64> {
    Some(match model {
        "gemini-2.5-flash" | "gemini-2.5-pro" => 65_536,
        "gemini-2.0-flash-lite" | "gpt-4" | "claude-3-5-sonnet" => 8_192,
        "gpt-4o" | "gpt-4o-mini" => 16_384,
        "gemini-pro" => 2_048,
        "gpt-3.5-turbo" | "claude-3" | "claude-3-haiku" => 4_096,
        _ => return None,
    })
}
