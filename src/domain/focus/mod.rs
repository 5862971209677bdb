//! FOCUS 1.2 (the FinOps Foundation's FinOps Open Cost and Usage
//! Specification): the usage of a billing period as FOCUS rows, pure.
//!
//! One row per recorded event and billed class (`CostClass`) that was
//! counted or charged: an event's rows carry its cost classes, so the
//! rows' `BilledCost` add up to the event's cost exactly, and a period's to
//! what the period recorded (nine decimals, never rounded to cents). Every
//! column FOCUS 1.2 makes mandatory is present (in the specification's
//! alphabetical order), then the recommended and conditional columns Tally
//! has values for, then Tally's own as `x_` columns, which the
//! specification allows.
//!
//! How Tally maps onto FOCUS: the deployment issues the invoice
//! (`InvoiceIssuerName`); each user is billed for their own periods, so the
//! user is the billing account and the sub-account (`BillingAccountId`,
//! `SubAccountId`); the provider is `ProviderName`, `PublisherName` and
//! `ServiceName`; the model is `SkuId` and `ResourceId`; a class's count is
//! both the consumed and the pricing quantity, in `Token`, `Request` or
//! `Unit`; no discounts are negotiated, so list, contracted, effective and
//! billed cost are the same figure; tags are `Tags` as JSON.

use chrono::{DateTime, DurationRound, Utc};

use super::money::Nanos;
use super::pricing::{CostClass, Count, Quantities};
use super::provider::BUILTIN_PROVIDERS;
use super::usage_log::LogEntry;

/// The columns, in order: FOCUS 1.2's 21 mandatory columns
/// ([`MANDATORY`]), the recommended and conditional columns Tally fills,
/// then `x_EventId` and `x_CostClass`.
pub const HEADER: [&str; 33] = [
    "BilledCost",
    "BillingAccountId",
    "BillingAccountName",
    "BillingCurrency",
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "ChargePeriodEnd",
    "ChargePeriodStart",
    "ContractedCost",
    "EffectiveCost",
    "InvoiceIssuerName",
    "ListCost",
    "PricingQuantity",
    "PricingUnit",
    "ProviderName",
    "PublisherName",
    "ServiceCategory",
    "ServiceName",
    "ChargeFrequency",
    "ConsumedQuantity",
    "ConsumedUnit",
    "ResourceId",
    "ServiceSubcategory",
    "SkuId",
    "SubAccountId",
    "SubAccountName",
    "Tags",
    "x_EventId",
    "x_CostClass",
    "x_Estimated",
];

/// How many of [`HEADER`]'s columns are FOCUS 1.2's mandatory ones.
pub const MANDATORY: usize = 21;

/// What every row of one user's period shares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account<'a> {
    pub user_id: &'a str,
    /// The user's name, else their email.
    pub name: &'a str,
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
    /// Who issues the invoice: the deployment.
    pub issuer: &'a str,
}

/// FOCUS's date/time format: `YYYY-MM-DDTHH:mm:ssZ`, UTC.
pub fn instant(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Money as FOCUS's numeric format: nine decimals, `-` only when negative.
fn decimal(n: Nanos) -> String {
    n.usd_string()
}

/// `(ServiceCategory, ServiceSubcategory)` of a provider: the models and
/// image generators are generative AI, search and extraction are web
/// services, anything else is other.
pub fn service_category(provider: &str) -> (&'static str, &'static str) {
    match provider {
        "gemini" | "openai" | "anthropic" | "mistral" | "huggingface" | "stability" | "video" | "image_edit" => {
            ("AI and Machine Learning", "Generative AI")
        }
        "tavily" | "serper" | "metaphor" | "firecrawl" => ("Web", "Other (Web)"),
        _ => ("Other", "Other (Other)"),
    }
}

/// A provider's name for people (its slug when it is not built in).
fn provider_name(slug: &str) -> &str {
    BUILTIN_PROVIDERS.iter().find(|(s, _)| *s == slug).map_or(slug, |(_, name)| name)
}

/// How much of `class` the event counted, and in what unit.
fn quantity(q: &Quantities, class: CostClass) -> (u64, &'static str) {
    match class {
        CostClass::Units => (q.units, "Unit"),
        CostClass::SearchQueries => (q[Count::SearchQueries], "Request"),
        c => {
            let count = Count::ALL.into_iter().find(|n| n.class() == c).expect("every other class is a count's");
            let n = if matches!(count, Count::Input | Count::Output) { q.rest_of(count) } else { q[count] };
            (n, "Token")
        }
    }
}

/// The event's rows: one per class it counted or was charged for, each a
/// value per [`HEADER`] column (empty = null).
pub fn rows(account: &Account<'_>, e: &LogEntry) -> Vec<[String; HEADER.len()]> {
    let q = e.parts.quantities(
        e.tokens_input.max(0) as u64,
        e.tokens_output.max(0) as u64,
        e.tokens_cached_input.max(0) as u64,
        e.units.max(0) as u64,
    );
    let hour = e.occurred_at.duration_trunc(chrono::Duration::hours(1)).unwrap_or(e.occurred_at);
    let (category, subcategory) = service_category(&e.provider);
    let name = provider_name(&e.provider);
    let model = e.model.clone().unwrap_or_default();
    let tags = e.tags.encode().unwrap_or_default();
    CostClass::ALL
        .into_iter()
        .filter_map(|class| {
            let (n, unit) = quantity(&q, class);
            let cost = e.breakdown.get(class);
            (n > 0 || cost.0 != 0).then(|| {
                let what = if model.is_empty() { name.to_string() } else { format!("{name} {model}") };
                [
                    decimal(cost),
                    account.user_id.to_string(),
                    account.name.to_string(),
                    "USD".to_string(),
                    instant(account.period_end),
                    instant(account.period_start),
                    "Usage".to_string(),
                    String::new(),
                    format!("{what}: {}", class.label()),
                    instant(hour + chrono::Duration::hours(1)),
                    instant(hour),
                    decimal(cost),
                    decimal(cost),
                    account.issuer.to_string(),
                    decimal(cost),
                    n.to_string(),
                    unit.to_string(),
                    name.to_string(),
                    name.to_string(),
                    category.to_string(),
                    name.to_string(),
                    "Usage-Based".to_string(),
                    n.to_string(),
                    unit.to_string(),
                    model.clone(),
                    subcategory.to_string(),
                    model.clone(),
                    account.user_id.to_string(),
                    account.name.to_string(),
                    tags.clone(),
                    e.event_id.clone(),
                    class.as_str().to_string(),
                    e.estimated.to_string(),
                ]
            })
        })
        .collect()
}

#[cfg(test)]
mod tests;
