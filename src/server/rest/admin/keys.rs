//! `/api/admin/keys`: API keys for programs.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};

use super::*;
use crate::domain::identity::Scope;
use crate::server::error::{AppError, AppResult};
use crate::server::identity::Principal;
use crate::server::rest::envelope;
use crate::server::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKeyBody {
    user_id: Option<String>,
    scopes: Vec<String>,
    #[serde(default)]
    name: String,
}

pub(super) fn key_json(k: &crate::domain::identity::ApiKey) -> Value {
    json!({
        "id": k.id,
        "prefix": k.prefix,
        "user_id": k.user_id,
        "scopes": k.scopes,
        "name": k.name,
        "created_at": k.created_at.to_rfc3339(),
        "last_used_at": k.last_used_at.map(|t| t.to_rfc3339()),
        "revoked_at": k.revoked_at.map(|t| t.to_rfc3339()),
    })
}

pub async fn list_keys(State(state): State<AppState>, principal: Principal) -> AppResult<Json<Value>> {
    principal.require_admin()?;
    let keys = state.engine.list_api_keys().await?;
    Ok(envelope(json!({"api_keys": keys.iter().map(key_json).collect::<Vec<_>>(), "total": keys.len()})))
}

pub async fn create_key(State(state): State<AppState>, principal: Principal, body: Bytes) -> AppResult<Json<Value>> {
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
    let (key, secret) =
        state.engine.create_api_key(b.user_id.as_deref(), &scopes, &b.name, &principal.actor(), Utc::now()).await?;
    let mut v = key_json(&key);
    v["key"] = json!(secret);
    Ok(envelope(v))
}

pub async fn revoke_key(
    State(state): State<AppState>,
    principal: Principal,
    Path(key_id): Path<String>,
) -> AppResult<Json<Value>> {
    principal.require_admin()?;
    state.engine.revoke_api_key(&key_id, &principal.actor(), Utc::now()).await?;
    Ok(envelope(json!({"id": key_id, "revoked": true})))
}
