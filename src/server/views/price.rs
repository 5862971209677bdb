//! A price version: the admin API's and the audit log's view
//! ([`PriceView`]), and family A's `APIPricing`.

use serde::Serialize;
use serde_json::{Map, Value};

use super::{instant, rfc3339};
use crate::domain::money::Price;
use crate::domain::pricing::PriceVersion;

/// A price version as the admin API answers it and the audit log records
/// it: every rate field of [`crate::domain::pricing::RateField::ALL`] by
/// its name (exact decimal strings, `null` when unset), the context tiers
/// and the service tiers.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PriceView {
    pub id: i64,
    pub provider: String,
    pub model: String,
    pub effective_from: String,
    #[serde(flatten)]
    pub rates: Map<String, Value>,
    pub description: String,
    pub max_output_tokens: Option<u64>,
}

impl From<&PriceVersion> for PriceView {
    fn from(v: &PriceVersion) -> Self {
        PriceView {
            id: v.id,
            provider: v.provider.as_str().to_string(),
            model: v.model.clone(),
            effective_from: instant(v.effective_from),
            rates: crate::domain::pricing::json::rates_to_map(&v.rates),
            description: v.description.clone(),
            max_output_tokens: v.max_output_tokens,
        }
    }
}

/// Family A's `APIPricing`: USD per token (not per million) and per unit,
/// 0 where unset.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ApiPricing {
    pub provider: String,
    pub model_name: String,
    pub cost_per_input_token: f64,
    pub cost_per_output_token: f64,
    pub cost_per_request: f64,
    pub cost_per_search: f64,
    pub cost_per_image: f64,
    pub cost_per_page: f64,
    pub description: String,
    pub effective_date: String,
}

impl From<&PriceVersion> for ApiPricing {
    fn from(v: &PriceVersion) -> Self {
        let r = &v.rates.base;
        let per_token = |p: Option<Price>| p.map_or(0.0, |p| p.per_token_f64());
        let unit = |p: Option<Price>| p.map_or(0.0, |p| p.as_f64());
        ApiPricing {
            provider: v.provider.as_str().to_string(),
            model_name: v.model.clone(),
            cost_per_input_token: per_token(r.input_per_million),
            cost_per_output_token: per_token(r.output_per_million),
            cost_per_request: unit(r.per_request),
            cost_per_search: unit(r.per_search),
            cost_per_image: unit(r.per_image),
            cost_per_page: unit(r.per_page),
            description: v.description.clone(),
            effective_date: rfc3339(v.effective_from),
        }
    }
}
