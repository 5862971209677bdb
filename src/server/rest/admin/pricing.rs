//! `/api/admin/pricing`: the price catalog, one version at a time or
//! imported in bulk.

use axum::body::Bytes;
use axum::extract::{Query, State};
use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::*;
use crate::domain::litellm::ImportReport;
use crate::server::error::{AppError, AppResult};
use crate::server::identity::Principal;
use crate::server::rest::{Enveloped, envelope};
use crate::server::service::admin::PriceForm;
use crate::server::state::AppState;
use crate::server::views::price::PriceView;

/// `GET /api/admin/pricing`.
#[derive(Serialize)]
pub struct PriceList {
    total: usize,
    pricing: Vec<PriceView>,
}

/// Every price version, oldest first per provider and model.
pub async fn list_pricing(State(state): State<AppState>, principal: Principal) -> AppResult<Enveloped<PriceList>> {
    principal.require_admin()?;
    let cat = state.engine.catalog_snapshot().await?;
    let pricing: Vec<_> = cat.prices.versions().iter().map(PriceView::from).collect();
    Ok(envelope(PriceList { total: pricing.len(), pricing }))
}

pub async fn add_price(
    State(state): State<AppState>,
    principal: Principal,
    body: Bytes,
) -> AppResult<Enveloped<PriceView>> {
    principal.require_admin()?;
    let body = parse_body(&body)?;
    let form = PriceForm::from_json(body.as_object().expect("parse_body answers objects"))?;
    let v = state.engine.add_price(&form, &principal.actor(), Utc::now()).await?;
    Ok(envelope(PriceView::from(&v)))
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
) -> AppResult<Enveloped<ImportReport>> {
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
