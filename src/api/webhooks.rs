//! Server functions of the admin webhooks page: the same services as the
//! `/api/admin/webhooks` REST endpoints, for administrators only.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use super::session::FormError;
use crate::domain::webhooks::{Delivery, Endpoint};

#[cfg(feature = "ssr")]
async fn admin() -> Result<(crate::server::state::AppState, String), ServerFnError> {
    let (state, principal) = super::session::ssr::caller().await?;
    principal.require_admin().map_err(super::session::ssr::fail)?;
    Ok((state, principal.actor()))
}

/// Live endpoints, newest first.
#[server(prefix = "/sfn")]
pub async fn webhook_endpoints() -> Result<Vec<Endpoint>, ServerFnError> {
    let (state, _) = admin().await?;
    state.engine.webhooks().await.map_err(super::session::ssr::fail)
}

/// The new-endpoint form: a checkbox per event type (named by
/// [`checkbox_name`]), present when ticked.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookInput {
    #[serde(default)]
    pub url: String,
    #[serde(default)]
    pub description: String,
    pub alert_created: Option<String>,
    pub alert_resolved: Option<String>,
    pub usage_spike: Option<String>,
    pub period_closed: Option<String>,
    pub price_unpriced: Option<String>,
    pub subscription_changed: Option<String>,
    pub wallet_low: Option<String>,
    pub wallet_depleted: Option<String>,
    pub wallet_credited: Option<String>,
    pub grant_expiring: Option<String>,
}

/// The form field of an event type's checkbox: `alert.created` →
/// `alert_created`.
pub fn checkbox_name(t: crate::domain::webhooks::EventType) -> String {
    t.as_str().replace('.', "_")
}

impl WebhookInput {
    /// The event types ticked.
    pub fn events(&self) -> Vec<String> {
        use crate::domain::webhooks::EventType::*;
        [
            (AlertCreated, &self.alert_created),
            (AlertResolved, &self.alert_resolved),
            (UsageSpike, &self.usage_spike),
            (PeriodClosed, &self.period_closed),
            (PriceUnpriced, &self.price_unpriced),
            (SubscriptionChanged, &self.subscription_changed),
            (WalletLow, &self.wallet_low),
            (WalletDepleted, &self.wallet_depleted),
            (WalletCredited, &self.wallet_credited),
            (GrantExpiring, &self.grant_expiring),
        ]
        .into_iter()
        .filter(|(_, on)| on.is_some())
        .map(|(t, _)| t.as_str().to_string())
        .collect()
    }
}

/// Registers an endpoint; its signing secret, shown once.
#[server(prefix = "/sfn")]
pub async fn create_webhook(hook: WebhookInput) -> Result<Result<String, FormError>, ServerFnError> {
    let (state, actor) = admin().await?;
    match state.engine.create_webhook(&hook.url, &hook.events(), &hook.description, &actor, chrono::Utc::now()).await {
        Ok((_, secret)) => Ok(Ok(secret)),
        Err(e) => super::session::ssr::form_error(e).map(Err),
    }
}

#[server(prefix = "/sfn")]
pub async fn delete_webhook(id: String) -> Result<(), ServerFnError> {
    let (state, actor) = admin().await?;
    state.engine.delete_webhook(&id, &actor, chrono::Utc::now()).await.map_err(super::session::ssr::fail)
}

/// An endpoint and its latest 100 deliveries.
#[server(prefix = "/sfn")]
pub async fn webhook_deliveries(id: String) -> Result<(Endpoint, Vec<Delivery>), ServerFnError> {
    let (state, _) = admin().await?;
    state.engine.webhook_deliveries(&id, 100).await.map_err(super::session::ssr::fail)
}

/// Sends a delivery again now.
#[server(prefix = "/sfn")]
pub async fn replay_delivery(endpoint_id: String, delivery_id: i64) -> Result<(), ServerFnError> {
    let (state, actor) = admin().await?;
    state
        .engine
        .replay_delivery(&endpoint_id, delivery_id, &actor, chrono::Utc::now())
        .await
        .map(|_| ())
        .map_err(super::session::ssr::fail)
}
