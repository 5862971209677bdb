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
}

#[derive(Clone, Debug, FromRef)]
pub struct AppState {
    pub engine: Engine,
    pub leptos_options: LeptosOptions,
    pub ui: Arc<UiSettings>,
    pub started_at: Instant,
    pub metrics: Arc<Metrics>,
    pub web: Arc<WebSettings>,
}

impl AppState {
    /// The state of the current server function call.
    pub fn from_context() -> Result<AppState, leptos::prelude::ServerFnError> {
        leptos::prelude::use_context::<AppState>()
            .ok_or_else(|| leptos::prelude::ServerFnError::new("server state is missing from the request context"))
    }
}
