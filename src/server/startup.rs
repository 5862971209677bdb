//! Building the router and serving it until a shutdown signal.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use leptos::prelude::*;
use leptos_axum::{LeptosRoutes, generate_route_list};
use tower_http::compression::CompressionLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use super::cli::ServeArgs;
use super::service::{Engine, EngineConfig};
use super::state::{AppState, Shared, UiSettings};
use crate::ui::{App, shell};

pub fn leptos_options(args: &ServeArgs) -> LeptosOptions {
    LeptosOptions::builder()
        .output_name("tally")
        .site_root(args.site_root.to_string_lossy().to_string())
        .site_pkg_dir("pkg")
        .site_addr(args.listen_addr())
        .build()
}

pub fn app_state(engine: Engine, args: &ServeArgs) -> AppState {
    let proxy = super::proxy::ProxySettings::from_env(
        Duration::from_secs(args.proxy_timeout_secs.max(1)),
        args.proxy_default_max_output,
        args.proxy_max_calls as usize,
    );
    app_state_with_proxy(engine, args, proxy)
}

/// [`app_state`] with the tracking proxy's upstreams given, not read from
/// the environment (the tests' and the bench's mock providers).
pub fn app_state_with_proxy(engine: Engine, args: &ServeArgs, proxy: super::proxy::ProxySettings) -> AppState {
    AppState::new(Shared {
        webhooks: super::service::webhooks::Deliverer::new(engine.clone()),
        engine,
        leptos_options: leptos_options(args),
        ui: Arc::new(UiSettings {
            refresh_secs: args.refresh_secs.max(1),
            demo: args.demo,
            metrics_public: args.metrics_public,
        }),
        metrics: Arc::new(super::metrics::Metrics::default()),
        web: Arc::new(super::web::WebSettings {
            public_url: args.public_url.clone(),
            trusted_proxies: args.trusted_proxies.clone(),
        }),
        proxy: super::proxy::Proxy::new(proxy),
        streams: Arc::default(),
    })
}

pub fn engine_config(args: &ServeArgs) -> EngineConfig {
    EngineConfig {
        hold_ttl: Duration::from_secs(args.hold_ttl_secs.max(1)),
        session_idle: chrono::Duration::minutes(i64::from(args.session_idle_minutes.max(1))),
        session_max: chrono::Duration::days(i64::from(args.session_max_days.max(1))),
        unpriced_policy: args.unpriced_policy,
        spike_multiple: args.spike_multiple,
        spike_floor: args.spike_min_usd,
        webhook_allow_private: args.webhook_allow_private,
        grant_expiry_warning: chrono::Duration::hours(i64::from(args.grant_expiry_warning_hours)),
        // `serve` puts the deployment's own key here.
        secrets: Arc::default(),
    }
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<AppState>) -> (StatusCode, &'static str) {
    match state.engine.ping().await {
        Ok(()) => (StatusCode::OK, "ready"),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "store unavailable")
        }
    }
}

/// The app's route list, generated once per process. Generating it runs
/// the app with resource loading suppressed through a process-wide flag
/// (leptos_server's `SuppressResourceLoad`), and a resource first polled
/// by a render elsewhere in the process meanwhile waits forever
/// (leptos-rs/leptos#4773). A server builds its router once, before it
/// serves; the tests build one per test, in parallel, and their page
/// renders hung until the request timeout now and then.
fn route_list() -> Vec<leptos_axum::AxumRouteListing> {
    static ROUTES: std::sync::OnceLock<Vec<leptos_axum::AxumRouteListing>> = std::sync::OnceLock::new();
    ROUTES.get_or_init(|| generate_route_list(App)).clone()
}

/// A directory of the built site, served with the Brotli or gzip copy
/// `scripts/precompress.mjs` wrote beside a file when the browser accepts
/// it (the compression layer leaves an encoded answer alone, and compresses
/// on the fly only what has no copy). Names carry no content hash, so
/// browsers revalidate (`no-cache`: a `304` when unchanged) rather than
/// keep a stale bundle after an upgrade.
fn static_files(options: &LeptosOptions, dir: &str) -> axum::routing::MethodRouter {
    use tower_http::services::ServeDir;
    use tower_http::set_header::SetResponseHeaderLayer;
    let root = std::path::Path::new(options.site_root.as_ref()).join(dir);
    let files = ServeDir::new(root).precompressed_br().precompressed_gzip();
    axum::routing::get_service(files).layer(SetResponseHeaderLayer::if_not_present(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-cache"),
    ))
}

/// The whole application: pages, server functions, REST API, static files.
pub fn build_router(state: AppState, request_timeout: Duration) -> Router {
    let routes = route_list();
    let ctx_state = state.clone();
    let shell_options = state.leptos_options.clone();
    let proxy = super::proxy::router(state.engine.clone(), state.proxy.clone(), state.metrics.clone());
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(super::rest::monitoring::prometheus))
        .merge(super::rest::router())
        .leptos_routes_with_context(
            &state,
            routes,
            move || provide_context(ctx_state.clone()),
            move || shell(shell_options.clone()),
        )
        // Every API route and server function declares who may call it.
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), super::policy::enforce))
        // Only matched routes are timed, under their route template.
        .route_layer(axum::middleware::from_fn_with_state(state.metrics.clone(), super::metrics::track))
        // The built site's scripts, WebAssembly, styles and vendored
        // charts, sent precompressed when the build left a smaller copy.
        .nest_service("/pkg", static_files(&state.leptos_options, "pkg"))
        .nest_service("/vendor", static_files(&state.leptos_options, "vendor"))
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
        .layer(axum::middleware::from_fn_with_state(state.clone(), super::policy::page_guard))
        .layer(CompressionLayer::new())
        // No text with a control character gets past here (after the
        // body limit, so it never reads more than that).
        .layer(axum::middleware::from_fn(super::text_rule::door))
        .layer(axum::middleware::from_fn(super::rest::body_limit))
        .layer(axum::middleware::from_fn_with_state(state.web.clone(), super::identity::cookies::csrf_guard))
        .layer(axum::middleware::from_fn(super::web::security_headers))
        .layer(axum::middleware::from_fn(api_error_envelope))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, request_timeout))
        .layer(TraceLayer::new_for_http())
        .with_state(state);
    // The tracking proxy keeps its own limits: provider calls outlast the
    // API's request timeout and carry bodies over 1 MiB.
    proxy.merge(app)
}

/// A listener on `addr` whose connections send each write at once (no
/// Nagle): a small answer, or a stream's next event, never waits for the
/// client's delayed acknowledgement of the last.
pub async fn listen(addr: std::net::SocketAddr) -> anyhow::Result<Listener> {
    use anyhow::Context;
    use axum::serve::ListenerExt;
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
    Ok(listener.tap_io(no_delay as fn(&mut tokio::net::TcpStream)))
}

/// What [`listen`] makes.
pub type Listener = axum::serve::TapIo<tokio::net::TcpListener, fn(&mut tokio::net::TcpStream)>;

fn no_delay(tcp: &mut tokio::net::TcpStream) {
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!(error = %e, "cannot turn Nagle's algorithm off for a connection");
    }
}

/// Every error under `/api/` speaks the contract's envelope, including the
/// ones axum and tower produce themselves (unknown route, wrong method,
/// body too large, malformed query string).
async fn api_error_envelope(req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    use axum::response::IntoResponse;
    let is_api = req.uri().path().starts_with("/api/");
    let resp = next.run(req).await;
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !is_api || is_json || !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let reason = status.canonical_reason().unwrap_or("error").to_lowercase();
    let code = match status {
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::REQUEST_TIMEOUT => "timeout",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        s if s.is_server_error() => "internal",
        _ => "bad_request",
    };
    let body = serde_json::json!({"success": false, "error": format!("{reason} ({})", status.as_u16()), "code": code});
    (status, axum::Json(body)).into_response()
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown requested; finishing in-flight requests");
}
