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

pub mod protocol;

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
use crate::server::service::gate::Operation;
use crate::server::service::proxy_calls::Claim;
use crate::server::service::recording::EventResult;
use crate::server::state::AppState;

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

/// A proxied call to record, and where its result goes.
type RecordJob = (UsageEvent, tokio::sync::oneshot::Sender<Result<EventResult, AppError>>);

/// Records proxied calls in batches: calls that finish while a batch is
/// being written wait together and go in the next one, through one
/// [`crate::server::service::Engine::record`] (one transaction, one
/// commit), as `POST /api/usage/events` batches do. Under load that is a
/// handful of commits a second instead of one per call; alone, a call is
/// recorded at once, in a batch of one.
#[derive(Default)]
struct Recorder {
    queue: std::sync::OnceLock<tokio::sync::mpsc::Sender<RecordJob>>,
}

impl Recorder {
    async fn record(
        &self,
        engine: &crate::server::service::Engine,
        event: UsageEvent,
    ) -> Result<EventResult, AppError> {
        let queue = self.queue.get_or_init(|| Recorder::start(engine.clone()));
        let (done, result) = tokio::sync::oneshot::channel();
        if queue.send((event, done)).await.is_err() {
            return Err(AppError::Internal);
        }
        result.await.unwrap_or(Err(AppError::Internal))
    }

    fn start(engine: crate::server::service::Engine) -> tokio::sync::mpsc::Sender<RecordJob> {
        let (queue, mut jobs) = tokio::sync::mpsc::channel::<RecordJob>(4 * crate::domain::event::MAX_BATCH);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(crate::domain::event::MAX_BATCH);
            while jobs.recv_many(&mut batch, crate::domain::event::MAX_BATCH).await > 0 {
                let (events, waiters): (Vec<UsageEvent>, Vec<_>) = batch.drain(..).unzip();
                match engine.record(events.into_iter().map(Ok).collect(), Utc::now()).await {
                    Ok(results) => {
                        for (waiter, r) in waiters.into_iter().zip(results) {
                            let _ = waiter.send(Ok(r));
                        }
                    }
                    Err(e) => {
                        let unavailable = matches!(e, AppError::Unavailable);
                        for waiter in waiters {
                            let _ =
                                waiter.send(Err(if unavailable { AppError::Unavailable } else { AppError::Internal }));
                        }
                    }
                }
            }
        });
        queue
    }
}

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

/// The proxy's routes, outside the API's request timeout and 1 MiB body
/// limit (provider calls run long and carry images).
pub fn router(state: AppState) -> axum::Router {
    axum::Router::new()
        .route("/proxy/{provider}/{*path}", axum::routing::any(forward))
        .route_layer(axum::middleware::from_fn_with_state(state.metrics.clone(), super::metrics::track))
        // The path only: a Gemini SDK's `?key=` is the caller's secret.
        .layer(tower_http::trace::TraceLayer::new_for_http().make_span_with(|req: &Request| {
            tracing::info_span!("proxy", method = %super::metrics::method_label(req.method()), path = %req.uri().path())
        }))
        .with_state(state)
}

/// A refusal in the provider's shape.
fn refuse(family: Family, refusal: Refusal, message: &str, code: Option<&str>) -> Response {
    let status = StatusCode::from_u16(refusal.status()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut resp = (status, axum::Json(error_body(family, refusal, message, code))).into_response();
    resp.extensions_mut().insert(refusal);
    if refusal == Refusal::Unavailable {
        resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(UNAVAILABLE_RETRY_SECS));
    }
    resp
}

/// The caller's Tally key, wherever its SDK puts one: `Authorization:
/// Bearer` (OpenAI and most), `x-api-key` (Anthropic), `x-goog-api-key`
/// or `?key=` (Gemini).
fn caller_secret(headers: &HeaderMap, query: Option<&str>) -> Option<String> {
    let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty());
    h("authorization")
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .or_else(|| h("x-api-key"))
        .or_else(|| h("x-goog-api-key"))
        .map(|s| s.trim().to_string())
        .or_else(|| query_without_key(query).1)
}

/// The query string without `key=` (the caller's Tally key never goes
/// upstream), and that key.
fn query_without_key(query: Option<&str>) -> (String, Option<String>) {
    let mut key = None;
    let kept: Vec<&str> = query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .filter(|p| match p.strip_prefix("key=") {
            Some(k) => {
                key = Some(k.to_string());
                false
            }
            None => true,
        })
        .collect();
    (kept.join("&"), key.filter(|k| !k.is_empty()))
}

/// Headers not passed on: hop-by-hop, the caller's credentials, and ones
/// the proxy sets itself.
fn passes(name: &HeaderName) -> bool {
    !matches!(
        name.as_str(),
        "host"
            | "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "content-length"
            | "accept-encoding"
            | "content-encoding"
            | "authorization"
            | "x-api-key"
            | "x-goog-api-key"
            | "cookie"
            | "set-cookie"
            // The operator's provider account is not the caller's to pick
            // (an organization or project), nor to learn.
            | "openai-organization"
            | "openai-project"
            | "anthropic-organization-id"
            | "x-goog-user-project"
    ) && !name.as_str().starts_with("x-tally-")
}

/// One call in flight: what the record of it needs.
#[derive(Clone)]
struct Call {
    state: AppState,
    family: Family,
    plan: CallPlan,
    event_id: String,
    user_id: String,
    reservation_id: Option<String>,
    endpoint: String,
    method: String,
    timestamp: DateTime<Utc>,
    started: Instant,
    tags: Tags,
    /// Renews the call's holds and claim while it runs; stops when the last
    /// clone of the call is gone.
    _renewer: Arc<Renewer>,
    /// The call's place among those in flight.
    _slot: Arc<tokio::sync::OwnedSemaphorePermit>,
}

/// A task that keeps a running call's holds and claim alive (every third
/// of the hold TTL), so a stream or a slow answer never outlives its hold;
/// aborted when dropped.
struct Renewer(Option<tokio::task::JoinHandle<()>>);

impl Drop for Renewer {
    fn drop(&mut self) {
        if let Some(t) = self.0.take() {
            t.abort();
        }
    }
}

impl Renewer {
    fn start(state: &AppState, user_id: &str, reservation_id: Option<String>, claim: Option<(String, i64)>) -> Renewer {
        if reservation_id.is_none() && claim.is_none() {
            return Renewer(None);
        }
        let engine = state.engine.clone();
        let every = (engine.config.hold_ttl / 3).max(Duration::from_millis(200));
        let user_id = user_id.to_string();
        Renewer(Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            loop {
                tick.tick().await;
                let claim = claim.as_ref().map(|(c, a)| (c.as_str(), *a));
                if let Err(e) = engine.renew_proxy_call(&user_id, reservation_id.as_deref(), claim, Utc::now()).await {
                    tracing::warn!(error = %e, "renewing a running proxied call's hold failed; trying again");
                }
            }
        })))
    }
}

impl Call {
    fn event(&self, q: Quantities, estimated: bool, status: u16, error: Option<String>) -> UsageEvent {
        UsageEvent {
            id: self.event_id.clone(),
            user_id: self.user_id.clone(),
            provider: self.family.provider(),
            model: self.plan.model.clone(),
            operation_type: Some(self.plan.operation_type.clone()).filter(|o| !o.is_empty()),
            endpoint: Some(self.endpoint.chars().take(512).collect()),
            method: Some(self.method.clone()),
            actual_provider_name: None,
            tokens_input: q.tokens_input,
            tokens_output: q.tokens_output,
            tokens_cached_input: q.tokens_cached_input,
            parts: UsageParts::from(&q),
            // Providers bill a search or page they served, not one that failed.
            units: if status >= 400 { Some(0) } else { self.plan.units },
            response_time_ms: Some(self.started.elapsed().as_millis() as u64),
            status_code: status,
            error_message: error.map(|e| e.chars().filter(|c| !c.is_control()).take(2000).collect()),
            timestamp: self.timestamp,
            reservation_id: self.reservation_id.clone(),
            retry_count: 0,
            estimated,
            tags: self.tags.clone(),
        }
    }

    /// Records the call. If the store cannot take it now, keeps trying in
    /// the background for five minutes (the event id makes that safe), so
    /// a call the provider billed is not lost to a blip.
    async fn record(&self, q: Quantities, estimated: bool, status: u16, error: Option<String>) -> Option<EventResult> {
        let event = self.event(q, estimated, status, error);
        match self.state.proxy.recorder.record(&self.state.engine, event.clone()).await {
            Ok(r) => {
                if let Some(e) = &r.error {
                    tracing::error!(event_id = %self.event_id, error = %e, "a proxied call could not be recorded");
                }
                Some(r)
            }
            Err(e) => {
                tracing::warn!(event_id = %self.event_id, error = %e, "recording a proxied call failed; retrying");
                let engine = self.state.engine.clone();
                tokio::spawn(async move {
                    for _ in 0..150 {
                        tokio::time::sleep(Duration::from_secs(2)).await;
                        if engine.record(vec![Ok(event.clone())], Utc::now()).await.is_ok() {
                            return;
                        }
                    }
                    tracing::error!(event_id = %event.id, user_id = %event.user_id, "a proxied call was never recorded");
                });
                None
            }
        }
    }

    fn record_failure(&self, status: u16, error: String) {
        let call = self.clone();
        let q = Quantities::default();
        // Spawned so a hung-up client does not cancel it.
        tokio::spawn(async move { call.record(q, false, status, Some(error)).await });
    }
}

/// The call id the caller chose (`x-tally-event-id`), if it chose one.
fn call_id(headers: &HeaderMap) -> Result<Option<String>, String> {
    let Some(v) = headers.get("x-tally-event-id") else { return Ok(None) };
    let s = v.to_str().map_err(|_| "`x-tally-event-id` must be visible ASCII".to_string())?.trim();
    if s.is_empty() || s.len() > MAX_CALL_ID || !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!("`x-tally-event-id` must be 1-{MAX_CALL_ID} visible ASCII characters, without spaces"));
    }
    Ok(Some(s.to_string()))
}

/// The caller's attribution tags (`x-tally-tags: project=blog,feature=outline`).
fn header_tags(headers: &HeaderMap) -> Result<Tags, String> {
    match headers.get("x-tally-tags") {
        None => Ok(Tags::default()),
        Some(v) => Tags::from_header(
            std::str::from_utf8(v.as_bytes()).map_err(|_| "`x-tally-tags` must be UTF-8".to_string())?,
        ),
    }
}

/// Runs each call in its own task: a client that hangs up does not cancel
/// a call the provider may already be billing, so it is still recorded.
async fn forward(State(state): State<AppState>, req: Request) -> Response {
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

async fn forward_call(state: AppState, req: Request) -> Response {
    match call(state, req).await {
        Ok(resp) | Err(resp) => resp,
    }
}

/// A proxied call, start to answer; `Err` is a refusal in the provider's
/// shape, sent before the provider was called (or in place of its answer).
async fn call(state: AppState, req: Request) -> Result<Response, Response> {
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

/// The calling user: a Tally key with the proxy scope, bound to a user.
async fn caller(state: &AppState, family: Family, parts: &Parts, now: DateTime<Utc>) -> Result<String, Response> {
    let Some(secret) = caller_secret(&parts.headers, parts.uri.query()) else {
        let message = "send your Tally API key (with the proxy scope) as the API key";
        return Err(refuse(family, Refusal::Unauthenticated, message, None));
    };
    let key = match state.engine.api_key_by_secret(&secret, now).await {
        Ok(Some(k)) => k,
        Ok(None) => return Err(refuse(family, Refusal::Unauthenticated, "the API key is not a valid Tally key", None)),
        Err(e) => return Err(refuse_app(family, &e)),
    };
    key.user_id.as_ref().map(|u| u.as_str().to_string()).filter(|_| key.scopes.contains(&Scope::Proxy)).ok_or_else(
        || {
            let message = "this Tally key lacks the proxy scope or is not bound to a user";
            refuse(family, Refusal::Forbidden, message, None)
        },
    )
}

/// The request body, within [`MAX_PROXY_BODY_BYTES`] and [`BODY_TIMEOUT`].
async fn read_body(family: Family, body: Body) -> Result<Bytes, Response> {
    match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, MAX_PROXY_BODY_BYTES)).await {
        Ok(Ok(b)) => Ok(b),
        Ok(Err(_)) => {
            let message = format!("the request body is larger than the proxy's {MAX_PROXY_BODY_BYTES} bytes");
            Err(refuse(family, Refusal::TooLarge, &message, None))
        }
        Err(_) => {
            let message = format!("the request body did not arrive within {} s", BODY_TIMEOUT.as_secs());
            Err(refuse(family, Refusal::Invalid, &message, None))
        }
    }
}

/// The query string sent upstream: the caller's without its `key=`, and
/// on a billed call only the parameters its SDK sends
/// ([`protocol::BILLED_QUERY_PARAMS`]): a billed call's cost is read from
/// its body.
fn upstream_query(family: Family, query: Option<&str>, billed: bool) -> Result<String, String> {
    let (query, _) = query_without_key(query);
    check_text("the query string", &query, 4096, false)?;
    if billed
        && let Some(name) = query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| p.split('=').next().unwrap_or(""))
            .find(|name| !protocol::BILLED_QUERY_PARAMS.contains(&(family, *name)))
    {
        return Err(format!("the query parameter `{name}` is not accepted on a billed call through Tally's proxy"));
    }
    Ok(query)
}

/// The event id a billed call is recorded under, and the caller's claim
/// on its own id if it named one: claimed before anything is held or
/// forwarded, so an id already answered, or running now, never reaches the
/// provider (see [`crate::server::service::proxy_calls`]).
async fn claim(
    state: &AppState,
    family: Family,
    user_id: &str,
    call_id: Option<String>,
    now: DateTime<Utc>,
) -> Result<(String, Option<(String, i64)>), Response> {
    let Some(call_id) = call_id else { return Ok((format!("prx_{}", uuid::Uuid::new_v4().simple()), None)) };
    match state.engine.claim_proxy_call(user_id, &call_id, now).await {
        Ok(Claim::Granted { attempt, event_id }) => Ok((event_id, Some((call_id, attempt)))),
        Ok(Claim::Answered { event_id, status, cost }) => {
            let message = format!(
                "the call `{call_id}` was made already (recorded as `{event_id}`, status {status}, billed {}); \
                 send a new `x-tally-event-id` for a new call",
                cost.usd_string()
            );
            let mut resp =
                with_event_id(refuse(family, Refusal::Conflict, &message, Some("duplicate_call")), &event_id);
            if let Ok(v) = HeaderValue::from_str(&cost.usd_string()) {
                resp.headers_mut().insert("x-tally-cost", v);
            }
            Err(resp)
        }
        Ok(Claim::InFlight { event_id }) => {
            let message = format!(
                "a call with `x-tally-event-id: {call_id}` is running now; wait for its answer, or send a new id"
            );
            Err(with_event_id(refuse(family, Refusal::Conflict, &message, Some("call_in_flight")), &event_id))
        }
        Err(e) => Err(refuse_app(family, &e)),
    }
}

/// Holds the call's worst case against the user's plan; the reservation,
/// or the refusal (a 429 naming the limit, with what the call holds).
async fn hold(
    state: &AppState,
    family: Family,
    user_id: &str,
    call_plan: &CallPlan,
    now: DateTime<Utc>,
) -> Result<Option<String>, Response> {
    let is_llm = !matches!(call_plan.endpoint, Endpoint::Search);
    let (output, output_from) = match call_plan.max_output {
        Some(n) => (n, "the request's maximum"),
        // The model's cap from the catalog, else the configured default,
        // once per answer asked for.
        None => {
            let catalog = state.engine.catalog_snapshot().await.map_err(|e| refuse_app(family, &e))?;
            catalog
                .prices
                .lookup(&family.provider(), call_plan.model.as_deref(), now)
                .and_then(|v| v.max_output_tokens)
                .map(|n| (n.saturating_mul(call_plan.choices), "the model's output cap; set a maximum to hold less"))
                .unwrap_or((
                    state.proxy.settings.default_max_output.saturating_mul(call_plan.choices),
                    "the proxy's default; set a maximum to hold less",
                ))
        }
    };
    let op = Operation {
        provider: family.provider(),
        model: call_plan.model.clone(),
        tokens_requested: if is_llm { call_plan.input_estimate.saturating_add(output) } else { 0 },
        units_requested: call_plan.units,
        service_tier: call_plan.service_tier,
        operation_type: call_plan.operation_type.clone(),
    };
    let verdict = state.engine.preflight(user_id, &[op], true, now).await.map_err(|e| refuse_app(family, &e))?;
    if verdict.can_proceed {
        return Ok(verdict.reservation_id);
    }
    let message = verdict.denial_message().unwrap_or("a limit of your plan is reached").to_string();
    let message = if is_llm {
        format!(
            "{message}. This call holds {} tokens: {} of input (estimated) and {} of output ({output_from})",
            format_count(call_plan.input_estimate.saturating_add(output) as i64),
            format_count(call_plan.input_estimate as i64),
            format_count(output as i64),
        )
    } else {
        message
    };
    let code = verdict.denied_by.as_ref().map(|l| l.key.as_string());
    let mut resp = refuse(family, Refusal::LimitReached, &message, code.as_deref());
    resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(verdict.retry_after_secs(now)));
    if let Some(code) = code.and_then(|c| HeaderValue::from_str(&c).ok()) {
        resp.headers_mut().insert("x-tally-limit", code);
    }
    Err(resp)
}

/// A store or engine error as a refusal in the provider's shape.
fn refuse_app(family: Family, e: &AppError) -> Response {
    let refusal = match e {
        AppError::Unauthorized | AppError::InvalidCredentials => Refusal::Unauthenticated,
        AppError::Forbidden(_) | AppError::NotFound(_) => Refusal::Forbidden,
        AppError::Unpriced(_) => Refusal::Unpriced,
        AppError::Invalid(_) | AppError::InvalidFields(_) | AppError::BadRequest(_) => Refusal::Invalid,
        AppError::LimitReached { .. } => Refusal::LimitReached,
        AppError::Unavailable => Refusal::Unavailable,
        _ => Refusal::Internal,
    };
    let code = matches!(e, AppError::Unpriced(_)).then_some("unpriced_model");
    refuse(family, refusal, &e.to_string(), code)
}

fn with_event_id(mut resp: Response, event_id: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(event_id) {
        resp.headers_mut().insert("x-tally-event-id", v);
    }
    resp
}

/// The upstream's status and headers (without hop-by-hop ones and the
/// length, which the proxy's framing sets).
///
/// A proxied answer is served on Tally's own origin, so it can never act
/// as a page of it: `nosniff`, a CSP that sandboxes it and loads nothing,
/// and anything but JSON or a stream of events as a download.
fn answer_head(resp: &hyper::Response<hyper::body::Incoming>) -> axum::http::response::Builder {
    let mut b = Response::builder().status(resp.status());
    for (name, value) in resp.headers() {
        // An upstream that compresses though asked not to: its encoding
        // stays with its bytes.
        if (passes(name) || name == header::CONTENT_ENCODING)
            && !matches!(
                *name,
                header::CONTENT_SECURITY_POLICY | header::X_CONTENT_TYPE_OPTIONS | header::CONTENT_DISPOSITION
            )
        {
            b = b.header(name, value);
        }
    }
    let kind = super::web::media_type(resp.headers());
    let readable = super::web::is_json(&kind) || kind == "text/event-stream";
    b = b
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(header::CONTENT_SECURITY_POLICY, "default-src 'none'; sandbox; frame-ancestors 'none'");
    if !readable {
        b = b.header(header::CONTENT_DISPOSITION, "attachment");
    }
    b
}

fn pass_through(resp: hyper::Response<hyper::body::Incoming>, event_id: Option<&str>) -> Response {
    let head = answer_head(&resp);
    let resp = head.body(Body::new(resp.into_body())).unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response());
    match event_id {
        Some(id) => with_event_id(resp, id),
        None => resp,
    }
}

/// A whole answer (or an error, or Gemini's stream as one JSON array):
/// read, recorded with its usage, then sent with the cost in
/// `x-tally-cost`.
async fn whole_answer(call: Call, resp: hyper::Response<hyper::body::Incoming>, timeout: Duration) -> Response {
    let status = resp.status();
    let head = answer_head(&resp);
    let body = resp.into_body();
    let read = tokio::time::timeout(timeout, http_body_util::Limited::new(body, MAX_ANSWER_BYTES).collect()).await;
    let bytes = match read {
        Ok(Ok(c)) => c.to_bytes(),
        Ok(Err(e)) => {
            let message = format!("{}'s answer broke off: {e}", call.family.slug());
            call.record_failure(502, message.clone());
            return with_event_id(refuse(call.family, Refusal::UpstreamFailed, &message, None), &call.event_id);
        }
        Err(_) => {
            let message = format!("{}'s answer stalled", call.family.slug());
            call.record_failure(504, message.clone());
            return with_event_id(refuse(call.family, Refusal::UpstreamTimeout, &message, None), &call.event_id);
        }
    };
    let result = if status.is_success() {
        let (q, estimated) = observe_body(call.plan.endpoint, &bytes).quantities(&call.plan);
        call.record(q, estimated, status.as_u16(), None).await
    } else {
        let error = upstream_error_text(&bytes, status);
        call.record(Quantities::default(), false, status.as_u16(), Some(error)).await
    };
    let mut resp = head.body(Body::from(bytes)).unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response());
    if let Some(cost) = result.and_then(|r| HeaderValue::from_str(&r.cost.usd_string()).ok()) {
        resp.headers_mut().insert("x-tally-cost", cost);
    }
    with_event_id(resp, &call.event_id)
}

/// The provider's error message, for the usage log.
fn upstream_error_text(body: &[u8], status: StatusCode) -> String {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let message = v
        .pointer("/error/message")
        .or_else(|| v.get("error").filter(|e| e.is_string()))
        .or_else(|| v.get("message"))
        .and_then(serde_json::Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned());
    format!("upstream {}: {message}", status.as_u16())
}

/// A server-sent event stream: passed on an event at a time as it
/// arrives; recorded when it ends, with the cost in a closing SSE comment
/// (`: tally-cost=...`, which SDKs ignore); recorded from what was seen
/// when the client leaves or the upstream breaks off.
fn stream_answer(call: Call, resp: hyper::Response<hyper::body::Incoming>, timeout: Duration, sse: bool) -> Response {
    let head = answer_head(&resp).header("x-accel-buffering", "no");
    let mut upstream = resp.into_body();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    let mut tap = StreamTap::new(&call.plan, sse);
    let event_id = call.event_id.clone();
    tokio::spawn(async move {
        // How the stream ended: completely, or with the reason it did not.
        let ended: Result<(), (u16, String)> = loop {
            let next = tokio::select! {
                next = tokio::time::timeout(timeout, upstream.frame()) => next,
                () = tx.closed() => break Err((499, "the client closed the stream before it ended".into())),
            };
            let frame = match next {
                Err(_) => break Err((504, format!("{}'s stream stalled", call.family.slug()))),
                Ok(None) => break Ok(()),
                Ok(Some(Err(e))) => break Err((502, format!("{}'s stream broke off: {e}", call.family.slug()))),
                Ok(Some(Ok(frame))) => frame,
            };
            let Ok(data) = frame.into_data() else { continue };
            let out = tap.feed(&data);
            if !out.is_empty() && tx.send(Ok(Bytes::from(out))).await.is_err() {
                break Err((499, "the client closed the stream before it ended".into()));
            }
        };
        drop(upstream);
        let rest = tap.finish();
        let mut observed: Observed = tap.observed();
        match ended {
            Ok(()) => {
                if !rest.is_empty() {
                    let _ = tx.send(Ok(Bytes::from(rest))).await;
                }
                let (q, estimated) = observed.quantities(&call.plan);
                let recorded = call.record(q, estimated, 200, None).await;
                if let Some(r) = recorded.filter(|_| sse) {
                    let trailer = format!(": tally-cost={} event={}\n\n", r.cost.usd_string(), call.event_id);
                    let _ = tx.send(Ok(Bytes::from(trailer))).await;
                }
            }
            Err((status, reason)) => {
                // Billed for what was produced; the provider's count, if
                // any came, may stop short of it.
                observed.complete = false;
                let (q, estimated) = observed.quantities(&call.plan);
                let status = if status == 499 { 200 } else { status };
                call.record(q, estimated, status, Some(reason)).await;
            }
        }
    });
    let body = Body::from_stream(tokio_stream_of(rx));
    let resp = head.body(body).unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response());
    with_event_id(resp, &event_id)
}

fn tokio_stream_of(
    mut rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[cfg(test)]
mod tests;
