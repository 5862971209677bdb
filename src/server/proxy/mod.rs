//! The tracking proxy: `ANY /proxy/{provider}/{upstream path}`. A product
//! points its provider SDK's base URL here and keeps its code; each call is
//! gated (the worst case held against the caller's limits before the
//! provider is called), forwarded with the server's provider key, and
//! recorded through the same engine as `POST /api/usage/events` with the
//! usage the provider reports, settling the hold.
//!
//! A request that sets no output maximum holds the model's output cap from
//! the price catalog, else `TALLY_PROXY_DEFAULT_MAX_OUTPUT`.
//!
//! Streams pass through as they arrive, an event at a time. A call that
//! fails upstream is recorded as failed and releases its hold; one the
//! client abandons mid-stream is billed for what was produced, estimated
//! from the text when the provider's count never came. Reads that bill
//! nothing (listing models, counting tokens) are forwarded without a hold
//! or a record.
//!
//! It authenticates in its own handler, not in [`crate::server::policy`]:
//! its refusals speak the provider's error shape, so the SDK raises its
//! usual error.

#![expect(
    clippy::result_large_err,
    reason = "a refusal is the provider-shaped answer itself, built once and sent as it is"
)]
mod answer;
pub mod protocol;
mod recorder;
mod request;

use self::answer::*;
use self::recorder::*;
use self::request::*;
use crate::domain::identity::UserId;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;

use self::protocol::{
    CallPlan, Endpoint, Family, NotForwarded, Observed, Refusal, StreamTap, error_body, observe_body, plan,
};
use crate::domain::event::{UsageEvent, UsageParts, check_text};
use crate::domain::identity::Scope;
use crate::domain::money::format_count;
use crate::domain::pricing::Quantities;
use crate::domain::tags::Tags;
use crate::server::error::{AppError, UNAVAILABLE_RETRY_SECS};
use crate::server::metrics::Metrics;
use crate::server::service::Engine;
use crate::server::service::gate::Operation;
use crate::server::service::proxy_calls::Claim;
use crate::server::service::recording::EventResult;

/// Largest request body the proxy forwards (prompts with inline images
/// and documents are large).
pub const MAX_PROXY_BODY_BYTES: usize = 32 * 1024 * 1024;

/// The longest a caller may take to send its request body.
const BODY_TIMEOUT: Duration = Duration::from_secs(120);

/// Longest caller-chosen call id (`x-tally-event-id`): with the attempt
/// prefix it stays within an event id's 128 characters.
const MAX_CALL_ID: usize = 100;

/// Largest whole (not streamed) answer read to find its usage.
const MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;

/// Where one provider's calls go.
#[derive(Clone)]
pub struct Upstream {
    /// Base URL without a trailing slash; the path after the provider
    /// segment is appended.
    pub base: String,
    pub key: Option<String>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key is never printed.
        f.debug_struct("Upstream").field("base", &self.base).field("key", &self.key.as_ref().map(|_| "…")).finish()
    }
}

/// The proxy's settings.
#[derive(Clone, Debug)]
pub struct ProxySettings {
    pub upstreams: HashMap<Family, Upstream>,
    pub timeout: Duration,
    pub default_max_output: u64,
    /// The most calls proxied at once; more are refused (503).
    pub max_calls: usize,
}

impl ProxySettings {
    /// Each provider's upstream from `TALLY_UPSTREAM_<PROVIDER>_URL` (else
    /// its public API) and `TALLY_UPSTREAM_<PROVIDER>_KEY`.
    pub fn from_env(timeout: Duration, default_max_output: u64, max_calls: usize) -> ProxySettings {
        let var = |name: String| std::env::var(name).ok().map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let upstreams = Family::ALL
            .into_iter()
            .map(|f| {
                let base =
                    var(format!("TALLY_UPSTREAM_{}_URL", f.env_name())).unwrap_or_else(|| f.default_base().into());
                let key = var(format!("TALLY_UPSTREAM_{}_KEY", f.env_name()));
                (f, Upstream { base: base.trim_end_matches('/').to_string(), key })
            })
            .collect();
        ProxySettings { upstreams, timeout, default_max_output, max_calls }
    }
}

/// A provider's base URL and the key the proxy calls it with.
struct Target {
    base: String,
    key: String,
}

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The proxy: its settings, one pooled HTTP(S) client, the recorder its
/// calls share, and what became of its calls.
#[derive(Clone)]
pub struct Proxy {
    settings: Arc<ProxySettings>,
    client: HttpsClient,
    recorder: Arc<Recorder>,
    outcomes: Arc<Outcomes>,
    /// One permit per call in flight (see [`ProxySettings::max_calls`]).
    slots: Arc<tokio::sync::Semaphore>,
}

/// How a proxied call ended, for `/metrics`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallOutcome {
    /// The provider answered 2xx.
    Answered,
    /// The provider answered with an error.
    UpstreamError,
    /// The gate denied it (429); the provider was not called.
    Denied,
    /// Refused before the gate (key, scope, body, unpriced model, store).
    Refused,
    /// The provider could not be reached (502).
    Unreachable,
    /// The provider did not answer in time (504).
    Timeout,
}

impl CallOutcome {
    pub const ALL: [CallOutcome; 6] = [
        CallOutcome::Answered,
        CallOutcome::UpstreamError,
        CallOutcome::Denied,
        CallOutcome::Refused,
        CallOutcome::Unreachable,
        CallOutcome::Timeout,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CallOutcome::Answered => "answered",
            CallOutcome::UpstreamError => "upstream_error",
            CallOutcome::Denied => "denied",
            CallOutcome::Refused => "refused",
            CallOutcome::Unreachable => "unreachable",
            CallOutcome::Timeout => "timeout",
        }
    }

    /// How a response the proxy sent says the call ended.
    fn of(resp: &Response) -> CallOutcome {
        match resp.extensions().get::<Refusal>() {
            Some(Refusal::LimitReached) => CallOutcome::Denied,
            Some(Refusal::UpstreamFailed) => CallOutcome::Unreachable,
            Some(Refusal::UpstreamTimeout) => CallOutcome::Timeout,
            Some(_) => CallOutcome::Refused,
            None if resp.status().is_success() => CallOutcome::Answered,
            None => CallOutcome::UpstreamError,
        }
    }
}

/// Calls by provider and outcome since the process started.
#[derive(Default)]
struct Outcomes([[std::sync::atomic::AtomicU64; CallOutcome::ALL.len()]; Family::ALL.len()]);

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy").field("settings", &self.settings).finish()
    }
}

impl Proxy {
    pub fn new(settings: ProxySettings) -> Proxy {
        // No Nagle: a stream's small events go upstream and back at once.
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(https);
        let slots = Arc::new(tokio::sync::Semaphore::new(settings.max_calls.max(1)));
        Proxy { settings: Arc::new(settings), client, recorder: Arc::default(), outcomes: Arc::default(), slots }
    }

    /// Calls by provider and outcome on this node since it started.
    pub fn outcomes(&self) -> Vec<(Family, CallOutcome, u64)> {
        let mut out = Vec::new();
        for (f, row) in Family::ALL.into_iter().zip(self.outcomes.0.iter()) {
            for (o, n) in CallOutcome::ALL.into_iter().zip(row.iter()) {
                out.push((f, o, n.load(std::sync::atomic::Ordering::Relaxed)));
            }
        }
        out
    }

    /// Where `family`'s calls go and the key they carry, or the refusal
    /// when this server has no key for it.
    fn target(&self, family: Family) -> Result<Target, Response> {
        let upstream = self.settings.upstreams.get(&family);
        let base = upstream.map_or_else(|| family.default_base().to_string(), |u| u.base.clone());
        match upstream.and_then(|u| u.key.clone()) {
            Some(key) => Ok(Target { base, key }),
            None => {
                let message = format!(
                    "no {} key is configured on this Tally server (TALLY_UPSTREAM_{}_KEY)",
                    family.slug(),
                    family.env_name()
                );
                Err(refuse(family, Refusal::UpstreamFailed, &message, None))
            }
        }
    }

    fn count(&self, family: Family, outcome: CallOutcome) {
        let f = Family::ALL.iter().position(|x| *x == family).expect("a family of ALL");
        let o = CallOutcome::ALL.iter().position(|x| *x == outcome).expect("an outcome of ALL");
        self.outcomes.0[f][o].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// What a proxied call reaches: the engine that gates and records it and
/// this node's proxy (one `Arc`, cloned per call).
pub(super) type Node = Arc<Gateway>;

pub(super) struct Gateway {
    pub(super) engine: Engine,
    pub(super) proxy: Proxy,
}

/// The proxy's routes, outside the API's request timeout and 1 MiB body
/// limit (provider calls run long and carry images).
pub fn router(engine: Engine, proxy: Proxy, metrics: Arc<Metrics>) -> axum::Router {
    let node: Node = Arc::new(Gateway { engine, proxy });
    axum::Router::new()
        .route("/proxy/{provider}/{*path}", axum::routing::any(forward))
        .route_layer(axum::middleware::from_fn_with_state(metrics, super::metrics::track))
        // The path only: a Gemini SDK's `?key=` is the caller's secret.
        .layer(tower_http::trace::TraceLayer::new_for_http().make_span_with(|req: &Request| {
            tracing::info_span!("proxy", method = %super::metrics::method_label(req.method()), path = %req.uri().path())
        }))
        .with_state(node)
}

async fn forward(State(state): State<Node>, req: Request) -> Response {
    let family = req.uri().path().strip_prefix("/proxy/").and_then(|r| r.split('/').next()).and_then(Family::parse);
    let proxy = state.proxy.clone();
    match tokio::spawn(forward_call(state, req)).await {
        Ok(resp) => {
            if let Some(f) = family {
                proxy.count(f, CallOutcome::of(&resp));
            }
            resp
        }
        Err(e) => {
            tracing::error!(error = %e, "a proxied call panicked");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

async fn forward_call(state: Node, req: Request) -> Response {
    match call(state, req).await {
        Ok(resp) | Err(resp) => resp,
    }
}

/// A proxied call, start to answer; `Err` is a refusal in the provider's
/// shape, sent before the provider was called (or in place of its answer).
async fn call(state: Node, req: Request) -> Result<Response, Response> {
    let (parts, body) = req.into_parts();
    let rest = parts.uri.path().strip_prefix("/proxy/").unwrap_or("");
    let (segment, path) = rest.split_once('/').unwrap_or((rest, ""));
    let Some(family) = Family::parse(segment) else {
        let known: Vec<&str> = Family::ALL.iter().map(|f| f.slug()).collect();
        let message = format!("the proxy does not speak `{segment}`; it speaks {}", known.join(", "));
        return Err(
            (StatusCode::NOT_FOUND, axum::Json(serde_json::json!({"error": {"message": message}}))).into_response()
        );
    };
    let path = format!("/{path}");
    let now = Utc::now();
    let invalid = |message: String| refuse(family, Refusal::Invalid, &message, None);

    let user_id = caller(&state, family, &parts, now).await?;
    // Which route, before anything is read or held: whatever the proxy does
    // not list never reaches the provider. (A made-up method is `OTHER`,
    // which no route lists, and is never echoed back.)
    let method = super::metrics::method_label(&parts.method);
    let route = protocol::find_route(family, method, &path).map_err(|e| match e {
        NotForwarded::NoRoute(message) => refuse(family, Refusal::NotFound, &message, None),
        NotForwarded::Invalid(message) => invalid(message),
    })?;
    let proxy = state.proxy.clone();
    let upstream = proxy.target(family)?;
    let slot = proxy.slots.clone().try_acquire_owned().map_err(|_| {
        let message = format!("this Tally server is proxying its most calls at once ({})", proxy.settings.max_calls);
        refuse(family, Refusal::Unavailable, &message, None)
    })?;
    let bytes = read_body(family, body).await?;
    let call_plan = plan(route, family, &path, &bytes).map_err(invalid)?;
    // What is recorded passes ingest's own rule for text.
    if let Some(model) = call_plan.as_ref().and_then(|p| p.model.as_deref()) {
        check_text("model", model, 128, false).map_err(invalid)?;
    }
    let query = upstream_query(family, parts.uri.query(), call_plan.is_some()).map_err(invalid)?;
    let url = format!("{}{}{}{}", upstream.base, path, if query.is_empty() { "" } else { "?" }, query);
    let mut builder = hyper::Request::builder().method(parts.method.clone()).uri(&url);
    for (name, value) in parts.headers.iter().filter(|(name, _)| passes(name)) {
        builder = builder.header(name, value);
    }
    let (auth_name, auth_value) = family.auth_header(&upstream.key);
    builder = builder.header(auth_name, auth_value).header(header::ACCEPT_ENCODING, "identity");

    let Some(call_plan) = call_plan else {
        // A free route: forwarded as it is, neither held nor recorded.
        let req = builder.body(Full::new(bytes)).map_err(|e| invalid(format!("cannot forward this request: {e}")))?;
        return match tokio::time::timeout(proxy.settings.timeout, proxy.client.request(req)).await {
            Ok(Ok(resp)) => Ok(pass_through(resp, None)),
            Ok(Err(e)) => {
                Err(refuse(family, Refusal::UpstreamFailed, &format!("{} did not answer: {e}", family.slug()), None))
            }
            Err(_) => Err(refuse(
                family,
                Refusal::UpstreamTimeout,
                &format!("{} did not answer in time", family.slug()),
                None,
            )),
        };
    };

    let tags = header_tags(&parts.headers).map_err(invalid)?;
    let call_id = call_id(&parts.headers).map_err(invalid)?;
    let (event_id, claim) = claim(&state, family, &user_id, call_id, now).await?;
    // Any refusal from here on, before the provider is called, gives the
    // claim back (before it is answered) so the caller may try the same id
    // again at once.
    let reservation_id = match hold(&state, family, &user_id, &call_plan, now).await {
        Ok(reservation_id) => reservation_id,
        Err(resp) => {
            if let Some((call_id, attempt)) = &claim
                && let Err(e) = state.engine.abandon_proxy_call(&user_id, call_id, *attempt).await
            {
                tracing::warn!(error = %e, "giving back a proxied call's id failed; it frees itself after the hold TTL");
            }
            return Err(resp);
        }
    };

    let call = Call {
        _renewer: Arc::new(Renewer::start(&state, &user_id, reservation_id.clone(), claim)),
        _slot: Arc::new(slot),
        state: state.clone(),
        family,
        event_id,
        user_id,
        reservation_id,
        endpoint: path,
        method: method.to_string(),
        timestamp: now,
        started: Instant::now(),
        plan: call_plan,
        tags,
    };
    let sent = call.plan.rewritten.clone().map(Bytes::from).unwrap_or(bytes);
    let req = builder.body(Full::new(sent)).map_err(|e| {
        let message = format!("cannot forward this request: {e}");
        call.record_failure(400, message.clone());
        invalid(message)
    })?;
    let resp = match tokio::time::timeout(proxy.settings.timeout, proxy.client.request(req)).await {
        Ok(Ok(resp)) => resp,
        Ok(Err(e)) => {
            let message = format!("{} could not be reached: {e}", family.slug());
            call.record_failure(502, message.clone());
            return Err(with_event_id(refuse(family, Refusal::UpstreamFailed, &message, None), &call.event_id));
        }
        Err(_) => {
            let message = format!("{} did not answer within {} s", family.slug(), proxy.settings.timeout.as_secs());
            call.record_failure(504, message.clone());
            return Err(with_event_id(refuse(family, Refusal::UpstreamTimeout, &message, None), &call.event_id));
        }
    };
    let status = resp.status();
    let is_sse =
        resp.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    if status.is_success() && (is_sse || call.plan.stream) {
        return Ok(stream_answer(call, resp, proxy.settings.timeout, is_sse));
    }
    Ok(whole_answer(call, resp, proxy.settings.timeout).await)
}

#[cfg(test)]
mod tests;
