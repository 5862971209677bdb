//! Server functions of the admin API keys page.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use super::*;
use crate::api::session::FormError;

#[server(prefix = "/sfn")]
pub async fn api_keys() -> Result<Vec<KeyRow>, ServerFnError> {
    let state = admin().await?;
    let keys = state.engine.list_api_keys().await.map_err(crate::api::session::ssr::fail)?;
    Ok(keys
        .into_iter()
        .map(|k| KeyRow {
            id: k.id,
            prefix: k.prefix,
            user: k.user_id.map_or_else(|| "(service)".into(), String::from),
            scopes: k.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
            name: k.name,
            created_at: fmt_time(k.created_at),
            last_used_at: k.last_used_at.map(fmt_time).unwrap_or_else(|| "never".into()),
            revoked: k.revoked_at.is_some(),
        })
        .collect())
}

/// The new-key form: checkboxes are present when ticked.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInput {
    #[serde(default)]
    pub user_id: String,
    #[serde(default)]
    pub name: String,
    pub scope_ingest: Option<String>,
    pub scope_read: Option<String>,
    pub scope_gate: Option<String>,
    pub scope_alerts: Option<String>,
    pub scope_metrics: Option<String>,
    pub scope_proxy: Option<String>,
    pub scope_admin: Option<String>,
}

/// Creates a key; the secret comes back this once.
#[server(prefix = "/sfn")]
pub async fn create_api_key(key: KeyInput) -> Result<Result<String, FormError>, ServerFnError> {
    let KeyInput { user_id, name, .. } = key.clone();
    use crate::domain::identity::Scope;
    let scopes: Vec<Scope> = [
        (Scope::Ingest, key.scope_ingest),
        (Scope::Read, key.scope_read),
        (Scope::Gate, key.scope_gate),
        (Scope::Alerts, key.scope_alerts),
        (Scope::Metrics, key.scope_metrics),
        (Scope::Proxy, key.scope_proxy),
        (Scope::Admin, key.scope_admin),
    ]
    .into_iter()
    .filter_map(|(s, on)| on.map(|_| s))
    .collect();
    let (state, principal) = crate::api::session::ssr::caller().await?;
    principal.require_admin().map_err(crate::api::session::ssr::fail)?;
    let user =
        Some(user_id.trim()).filter(|u| !u.is_empty()).map(crate::server::identity::principal::user_named).transpose();
    let created = match user {
        Ok(user) => {
            state.engine.create_api_key(user.as_ref(), &scopes, &name, &principal.actor(), chrono::Utc::now()).await
        }
        Err(e) => Err(e),
    };
    match created {
        Ok((_, secret)) => Ok(Ok(secret)),
        Err(e) => crate::api::session::ssr::form_error(e).map(Err),
    }
}

#[server(prefix = "/sfn")]
pub async fn revoke_api_key(id: String) -> Result<(), ServerFnError> {
    let (state, principal) = crate::api::session::ssr::caller().await?;
    principal.require_admin().map_err(crate::api::session::ssr::fail)?;
    state
        .engine
        .revoke_api_key(&id, &principal.actor(), chrono::Utc::now())
        .await
        .map_err(crate::api::session::ssr::fail)
}
