//! Server functions of the admin pricing page.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use super::*;
use crate::api::session::FormError;

#[server(prefix = "/sfn")]
pub async fn admin_pricing() -> Result<Pricing, ServerFnError> {
    use crate::domain::pricing::json;
    let state = admin().await?;
    let now = chrono::Utc::now();
    let cat = state.engine.catalog_snapshot().await.map_err(crate::api::session::ssr::fail)?;
    let current: Vec<i64> = cat.prices.current(now).iter().map(|v| v.id).collect();
    let s = |p: Option<crate::domain::money::Price>| p.map(|p| p.as_string());
    let mut versions: Vec<PriceRow> = cat
        .prices
        .versions()
        .iter()
        .map(|v| {
            let unit = [
                ("request", v.rates.base.per_request),
                ("search", v.rates.base.per_search),
                ("image", v.rates.base.per_image),
                ("page", v.rates.base.per_page),
            ]
            .into_iter()
            .filter_map(|(k, p)| p.map(|p| format!("${} per {k}", p.as_string())))
            .collect::<Vec<_>>();
            PriceRow {
                id: v.id,
                provider: v.provider.as_str().into(),
                model: v.model.clone(),
                effective_from: fmt_time(v.effective_from),
                input_per_million: s(v.rates.base.input_per_million),
                output_per_million: s(v.rates.base.output_per_million),
                cached_input_per_million: s(v.rates.base.cached_input_per_million),
                per_unit: (!unit.is_empty()).then(|| unit.join(", ")),
                other: match v.max_output_tokens {
                    Some(n) if v.rates.describe_extras().is_empty() => {
                        format!("output cap {}", crate::domain::money::format_count(n as i64))
                    }
                    Some(n) => format!(
                        "{} · output cap {}",
                        v.rates.describe_extras(),
                        crate::domain::money::format_count(n as i64)
                    ),
                    None => v.rates.describe_extras(),
                },
                edit_href: edit_href(v),
                tiers_json: if v.rates.tiers.is_empty() {
                    String::new()
                } else {
                    json::tiers_to_json(&v.rates.tiers).to_string()
                },
                service_tiers_json: if v.rates.service_tiers.is_empty() {
                    String::new()
                } else {
                    json::service_tiers_to_json(&v.rates.service_tiers).to_string()
                },
                description: v.description.clone(),
                current: current.contains(&v.id),
                scheduled: v.effective_from > now,
            }
        })
        .collect();
    // Current versions first, each followed by its history, newest first.
    versions.sort_by(|a, b| {
        (&a.provider, &a.model, std::cmp::Reverse(&a.effective_from)).cmp(&(
            &b.provider,
            &b.model,
            std::cmp::Reverse(&b.effective_from),
        ))
    });
    let unpriced = state
        .engine
        .unpriced_models(now)
        .await
        .map_err(crate::api::session::ssr::fail)?
        .into_iter()
        .map(|u| Unpriced {
            provider: u.provider,
            model: u.model.unwrap_or_else(|| "*".into()),
            events: u.events,
            last_seen: fmt_time(u.last_seen),
        })
        .collect();
    Ok(Pricing { versions, unpriced })
}

/// A price form as posted (`price[provider]`, ...); empty fields are unset.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PriceInput {
    pub provider: String,
    pub model: String,
    pub input_per_million: String,
    pub output_per_million: String,
    pub cached_input_per_million: String,
    pub per_request: String,
    pub per_search: String,
    pub per_image: String,
    pub per_page: String,
    pub cache_write_per_million: String,
    pub cache_write_1h_per_million: String,
    pub reasoning_per_million: String,
    pub audio_input_per_million: String,
    pub audio_output_per_million: String,
    pub per_search_query: String,
    /// JSON: `[{"above_input_tokens": 200000, "input_per_million": "2.50"}]`.
    pub tiers: String,
    /// JSON: `{"batch": {"input_per_million": "0.625"}}`.
    pub service_tiers: String,
    pub description: String,
    /// RFC 3339, or `YYYY-MM-DDTHH:MM` (a datetime-local input) taken as
    /// UTC; now when empty.
    pub effective_from: String,
    /// The model's output cap in tokens; blank for unknown.
    #[serde(default)]
    pub max_output_tokens: String,
}

/// A time as an `<input type="datetime-local">` sends it (no zone, no
/// seconds), taken as UTC, in RFC 3339; anything else trimmed, as typed.
pub fn datetime_local_as_utc(s: &str) -> String {
    let s = s.trim();
    if s.len() == 16 { format!("{s}:00Z") } else { s.to_string() }
}

/// Adds a price version.
#[server(prefix = "/sfn")]
pub async fn add_price(price: PriceInput) -> Result<Option<FormError>, ServerFnError> {
    use crate::server::service::admin::PriceForm;
    let (state, principal) = crate::api::session::ssr::caller().await?;
    principal.require_admin().map_err(crate::api::session::ssr::fail)?;
    let opt = |s: String| Some(s).filter(|s| !s.trim().is_empty());
    let p = price;
    let effective = datetime_local_as_utc(&p.effective_from);
    use crate::domain::pricing::RateField as F;
    let rates = [
        (F::InputPerMillion, p.input_per_million),
        (F::OutputPerMillion, p.output_per_million),
        (F::CachedInputPerMillion, p.cached_input_per_million),
        (F::PerRequest, p.per_request),
        (F::PerSearch, p.per_search),
        (F::PerImage, p.per_image),
        (F::PerPage, p.per_page),
        (F::CacheWritePerMillion, p.cache_write_per_million),
        (F::CacheWrite1hPerMillion, p.cache_write_1h_per_million),
        (F::ReasoningPerMillion, p.reasoning_per_million),
        (F::AudioInputPerMillion, p.audio_input_per_million),
        (F::AudioOutputPerMillion, p.audio_output_per_million),
        (F::PerSearchQuery, p.per_search_query),
    ];
    // The tiers are typed as JSON; a blank box is none.
    let mut bad_json = Vec::new();
    let mut parse = |field: &str, text: &str| match text.trim() {
        "" => serde_json::Value::Null,
        t => serde_json::from_str(t).unwrap_or_else(|e| {
            bad_json.push((field.to_string(), format!("not valid JSON: {e}")));
            serde_json::Value::Null
        }),
    };
    let tiers = parse("tiers", &p.tiers);
    let service_tiers = parse("service_tiers", &p.service_tiers);
    if !bad_json.is_empty() {
        return crate::api::session::ssr::form_error(crate::server::error::AppError::InvalidFields(bad_json)).map(Some);
    }
    let form = PriceForm {
        provider: p.provider,
        model: p.model,
        rates: rates.into_iter().map(|(f, v)| (f.name().to_string(), serde_json::Value::String(v))).collect(),
        tiers,
        service_tiers,
        description: opt(p.description),
        effective_from: opt(effective),
        max_output_tokens: serde_json::Value::String(p.max_output_tokens),
    };
    match state.engine.add_price(&form, &principal.actor(), chrono::Utc::now()).await {
        Ok(_) => Ok(None),
        // A problem inside a tier shows under its box, with its path.
        Err(crate::server::error::AppError::InvalidFields(errs)) => {
            let errs = errs
                .into_iter()
                .map(|(field, msg)| match ["service_tiers", "tiers"].into_iter().find(|b| field.starts_with(b)) {
                    Some(box_) if field != box_ => (box_.to_string(), format!("{field}: {msg}")),
                    _ => (field, msg),
                })
                .collect();
            crate::api::session::ssr::form_error(crate::server::error::AppError::InvalidFields(errs)).map(Some)
        }
        Err(e) => crate::api::session::ssr::form_error(e).map(Some),
    }
}
