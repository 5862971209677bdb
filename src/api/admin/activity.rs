//! Server functions of the admin activity page: alerts and the audit
//! trail.

use leptos::prelude::*;

use super::*;
use crate::api::dashboard::AlertView;

#[server(prefix = "/sfn")]
pub async fn admin_alerts() -> Result<Vec<AlertView>, ServerFnError> {
    let state = admin().await?;
    let rows = state.engine.all_alerts(300).await.map_err(crate::api::session::ssr::fail)?;
    Ok(rows
        .into_iter()
        .map(|(a, email)| AlertView::of(&a, Some(email.unwrap_or_else(|| "(administrators)".into()))))
        .collect())
}

#[server(prefix = "/sfn")]
pub async fn audit_entries(entity_type: Option<String>, actor: Option<String>) -> Result<Vec<AuditRow>, ServerFnError> {
    let state = admin().await?;
    let nonempty = |s: &Option<String>| s.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
    let (rows, _) = state
        .engine
        .audit_log(nonempty(&entity_type).as_deref(), nonempty(&actor).as_deref(), 200, 0)
        .await
        .map_err(crate::api::session::ssr::fail)?;
    let show = |v: &Option<serde_json::Value>| v.as_ref().map(|v| v.to_string()).unwrap_or_default();
    Ok(rows
        .iter()
        .map(|e| AuditRow {
            id: e.id,
            at: fmt_time(e.created_at),
            actor: e.actor.clone(),
            action: e.action.clone(),
            entity: format!("{} {}", e.entity_type, e.entity_id),
            before: show(&e.before),
            after: show(&e.after),
        })
        .collect())
}
