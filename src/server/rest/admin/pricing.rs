//! `/api/admin/pricing`: the price catalog, one version at a time or
//! imported in bulk.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};

use super::*;
use crate::domain::pricing::PriceVersion;
use crate::server::error::{AppError, AppResult};
use crate::server::identity::Principal;
use crate::server::rest::envelope;
use crate::server::service::admin::PriceForm;
use crate::server::state::AppState;

/// Every price version, oldest first per provider and model.
pub async fn list_pricing(State(state): State<AppState>, principal: Principal) -> AppResult<Json<Value>> {
    principal.require_admin()?;
    let cat = state.engine.catalog_snapshot().await?;
    let rows: Vec<Value> = cat.prices.versions().iter().map(price_admin_json).collect();
    Ok(envelope(json!({"total": rows.len(), "pricing": rows})))
}

pub async fn add_price(State(state): State<AppState>, principal: Principal, body: Bytes) -> AppResult<Json<Value>> {
    principal.require_admin()?;
    let body = parse_body(&body)?;
    let form = PriceForm::from_json(body.as_object().expect("parse_body answers objects"))?;
    let v = state.engine.add_price(&form, &principal.actor(), Utc::now()).await?;
    Ok(envelope(price_admin_json(&v)))
}

/// The largest price map the import takes (LiteLLM's whole map is ~3.5 MB).
pub const MAX_IMPORT_BYTES: usize = 16 * 1024 * 1024;

#[derive(Deserialize)]
pub struct ImportQuery {
    format: Option<String>,
    effective_from: Option<String>,
    dry_run: Option<String>,
}

/// `POST /api/admin/pricing/import?format=litellm&effective_from=T&dry_run=true|false`.
pub async fn import_pricing(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<ImportQuery>,
    body: axum::body::Body,
) -> AppResult<Json<Value>> {
    principal.require_admin()?;
    let bytes =
        axum::body::to_bytes(body, MAX_IMPORT_BYTES).await.map_err(|_| AppError::PayloadTooLarge(MAX_IMPORT_BYTES))?;
    match q.format.as_deref().unwrap_or("litellm") {
        "litellm" => {}
        other => return Err(AppError::BadRequest(format!("format must be litellm (got `{other}`)"))),
    }
    let dry_run = match q.dry_run.as_deref().unwrap_or("false") {
        "true" | "1" => true,
        "false" | "0" => false,
        other => return Err(AppError::BadRequest(format!("dry_run must be true or false (got `{other}`)"))),
    };
    let now = Utc::now();
    let effective_from = match q.effective_from.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => now,
        Some(s) => chrono::DateTime::parse_from_rfc3339(s)
            .map_err(|_| AppError::BadRequest(format!("effective_from `{s}` is not an RFC 3339 date-time")))?
            .with_timezone(&Utc),
    };
    let text =
        String::from_utf8(bytes.to_vec()).map_err(|_| AppError::BadRequest("the price map is not UTF-8".into()))?;
    let report = state.engine.import_prices(&text, effective_from, dry_run, &principal.actor(), now).await?;
    Ok(envelope(report))
}

pub(super) fn price_admin_json(v: &PriceVersion) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("id".into(), v.id.into());
    m.insert("provider".into(), v.provider.as_str().into());
    m.insert("model".into(), v.model.clone().into());
    m.insert("effective_from".into(), v.effective_from.to_rfc3339().into());
    m.extend(crate::domain::pricing::json::rates_to_map(&v.rates));
    m.insert("description".into(), v.description.clone().into());
    m.insert("max_output_tokens".into(), v.max_output_tokens.into());
    Value::Object(m)
}
