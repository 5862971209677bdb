//! The state every handler and server function reaches (through axum
//! `State` or Leptos context; never a global).

use std::sync::Arc;
use std::time::Instant;

use axum::extract::FromRef;
use leptos::prelude::LeptosOptions;

use super::metrics::Metrics;
use super::service::Engine;
use super::web::WebSettings;

/// Settings the UI needs from the server.
#[derive(Clone, Debug)]
pub struct UiSettings {
    pub refresh_secs: u32,
    pub demo: bool,
    /// `GET /metrics` answers anyone (`TALLY_METRICS_PUBLIC`).
    pub metrics_public: bool,
}

#[derive(Clone, Debug, FromRef)]
pub struct AppState {
    pub engine: Engine,
    pub leptos_options: LeptosOptions,
    pub ui: Arc<UiSettings>,
    pub started_at: Instant,
    pub metrics: Arc<Metrics>,
    pub web: Arc<WebSettings>,
    /// The tracking proxy's upstreams and client.
    pub proxy: super::proxy::Proxy,
    /// Sends webhook deliveries from this node (a server runs it).
    pub webhooks: super::service::webhooks::Deliverer,
}

impl AppState {
    /// The deployment's health now: critical when the store does not
    /// answer, else judged from the requests of the last `window`.
    pub async fn current_health(&self, window: std::time::Duration) -> (super::metrics::Health, super::metrics::Stats) {
        let (recent, _) = self.metrics.window(window);
        let health = if self.engine.store.ping().await.is_err() {
            super::metrics::Health::Critical
        } else {
            super::metrics::Health::judge(&recent)
        };
        (health, recent)
    }

    /// The state of the current server function call.
    pub fn from_context() -> Result<AppState, leptos::prelude::ServerFnError> {
        leptos::prelude::use_context::<AppState>()
            .ok_or_else(|| leptos::prelude::ServerFnError::new("server state is missing from the request context"))
    }
}
