//! The state every handler and server function reaches (through axum
//! `State` or Leptos context; never a global).

use std::sync::Arc;

use axum::extract::FromRef;
use leptos::prelude::LeptosOptions;

use super::error::{AppError, AppResult};
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
    pub streams: Arc<StreamSlots>,
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
    /// Every node's requests of the last `window`, from the store.
    pub async fn deployment(&self, window: std::time::Duration) -> super::error::AppResult<Deployment> {
        self.engine.deployment(&self.metrics, window, chrono::Utc::now()).await
    }

    /// The deployment's health now, judged from every node's requests of
    /// the last `window`; critical when the store does not answer.
    pub async fn current_health(&self, window: std::time::Duration) -> (Health, Deployment) {
        match self.deployment(window).await {
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

/// The most live streams one caller (a signed-in person, or an API key)
/// may hold open on one node; each re-reads the store on every change, so
/// more are refused (429) rather than served.
pub const MAX_STREAMS_PER_CALLER: usize = 8;
/// The most live streams one node serves, from every caller together.
pub const MAX_STREAMS: usize = 4096;

/// The live streams open on this node, per caller.
#[derive(Debug, Default)]
pub struct StreamSlots(std::sync::Mutex<std::collections::HashMap<String, usize>>);

/// One open stream's place; given back when the stream ends.
pub struct StreamSlot {
    slots: std::sync::Arc<StreamSlots>,
    caller: String,
}

impl StreamSlots {
    /// A place for one more stream of `caller`, or why there is none.
    pub fn take(self: &std::sync::Arc<Self>, caller: &str) -> AppResult<StreamSlot> {
        let mut open = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let total: usize = open.values().sum();
        let mine = open.get(caller).copied().unwrap_or(0);
        if mine >= MAX_STREAMS_PER_CALLER || total >= MAX_STREAMS {
            let message = if mine >= MAX_STREAMS_PER_CALLER {
                format!("at most {MAX_STREAMS_PER_CALLER} live streams may be open at once per caller; close one first")
            } else {
                "this server serves its most live streams now; the page refreshes by itself meanwhile".to_string()
            };
            return Err(AppError::LimitReached { message, retry_after_secs: 30, body: None });
        }
        open.insert(caller.to_string(), mine + 1);
        Ok(StreamSlot { slots: self.clone(), caller: caller.to_string() })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.slots.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = open.get_mut(&self.caller) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.caller);
            }
        }
    }
}
