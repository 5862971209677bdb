//! `/api/admin/keys`: API keys for programs.

use axum::body::Bytes;
use axum::extract::{Path, State};
use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::*;
use crate::domain::identity::Scope;
use crate::server::error::{AppError, AppResult};
use crate::server::identity::Principal;
use crate::server::identity::principal::user_named;
use crate::server::rest::{Enveloped, envelope};
use crate::server::state::AppState;
use crate::server::views::admin::{KeyView, NewKeyView};

/// `GET /api/admin/api-keys`.
#[derive(Serialize)]
pub struct KeyList {
    api_keys: Vec<KeyView>,
    total: usize,
}

/// `DELETE /api/admin/api-keys/{key_id}`.
#[derive(Serialize)]
pub struct Revoked {
    id: String,
    revoked: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKeyBody {
    user_id: Option<String>,
    scopes: Vec<String>,
    #[serde(default)]
    name: String,
}

pub async fn list_keys(State(state): State<AppState>, principal: Principal) -> AppResult<Enveloped<KeyList>> {
    principal.require_admin()?;
    let keys = state.engine.list_api_keys().await?;
    Ok(envelope(KeyList { api_keys: keys.iter().map(KeyView::from).collect(), total: keys.len() }))
}

pub async fn create_key(
    State(state): State<AppState>,
    principal: Principal,
    body: Bytes,
) -> AppResult<Enveloped<NewKeyView>> {
    principal.require_admin()?;
    let b: NewKeyBody = serde_json::from_value(parse_body(&body)?)
        .map_err(|e| AppError::Invalid(format!("invalid API key request: {e}")))?;
    let scopes = b
        .scopes
        .iter()
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .map(|s| {
            Scope::parse(&s).ok_or_else(|| {
                let all: Vec<&str> = Scope::ALL.iter().map(|s| s.as_str()).collect();
                AppError::Invalid(format!("unknown scope `{s}`; scopes are {}", all.join(", ")))
            })
        })
        .collect::<AppResult<Vec<Scope>>>()?;
    let user_id = b.user_id.as_deref().map(user_named).transpose()?;
    let (key, secret) =
        state.engine.create_api_key(user_id.as_ref(), &scopes, &b.name, &principal.actor(), Utc::now()).await?;
    Ok(envelope(NewKeyView { key: KeyView::from(&key), secret }))
}

pub async fn revoke_key(
    State(state): State<AppState>,
    principal: Principal,
    Path(key_id): Path<String>,
) -> AppResult<Enveloped<Revoked>> {
    principal.require_admin()?;
    state.engine.revoke_api_key(&key_id, &principal.actor(), Utc::now()).await?;
    Ok(envelope(Revoked { id: key_id, revoked: true }))
}
