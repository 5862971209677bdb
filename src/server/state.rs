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

/// What every request reaches, behind one `Arc`: handing it to a handler,
/// a middleware layer or a server function is one reference count, not a
/// copy of every field's (on two cores, those counts bouncing between them
/// were most of an empty request's cost).
#[derive(Clone, Debug)]
pub struct AppState(Arc<Shared>);

/// The fields of [`AppState`].
#[derive(Debug)]
pub struct Shared {
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
    pub fn new(shared: Shared) -> AppState {
        AppState(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The Leptos handlers take their options from the state; only page and
/// asset requests ask for them.
impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> LeptosOptions {
        state.leptos_options.clone()
    }
}

impl Shared {
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
}

impl AppState {
    /// The state of the current server function call.
    pub fn from_context() -> Result<AppState, leptos::prelude::ServerFnError> {
        leptos::prelude::use_context::<AppState>()
            .ok_or_else(|| leptos::prelude::ServerFnError::new("server state is missing from the request context"))
    }
}
