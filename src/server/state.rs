//! The state every handler and server function reaches (through axum
//! `State` or Leptos context; never a global).

use std::sync::Arc;

use axum::extract::FromRef;
use leptos::prelude::LeptosOptions;

use super::metrics::{Deployment, Health, Metrics};
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
    pub metrics: Arc<Metrics>,
    pub web: Arc<WebSettings>,
    /// The tracking proxy's upstreams and client.
    pub proxy: super::proxy::Proxy,
    /// Sends webhook deliveries from this node (a server runs it).
    pub webhooks: super::service::webhooks::Deliverer,
    /// The live streams open on this node (`GET /api/stream`).
    pub streams: Arc<super::rest::live::StreamSlots>,
}

impl AppState {
    /// The deployment's health now, judged from every node's requests of
    /// the last `window`; critical when the store does not answer.
    pub async fn current_health(&self, window: std::time::Duration) -> (Health, Deployment) {
        match self.metrics.deployment(&self.engine.store, window, chrono::Utc::now()).await {
            Ok(d) => (Health::judge(&d.all), d),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the deployment's request statistics");
                let alone = Deployment {
                    all: super::metrics::Stats::default(),
                    endpoints: Vec::new(),
                    nodes: 1,
                    uptime: self.metrics.uptime(),
                };
                (Health::Critical, alone)
            }
        }
    }

    /// The state of the current server function call.
    pub fn from_context() -> Result<AppState, leptos::prelude::ServerFnError> {
        leptos::prelude::use_context::<AppState>()
            .ok_or_else(|| leptos::prelude::ServerFnError::new("server state is missing from the request context"))
    }
}
