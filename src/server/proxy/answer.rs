//! A call in flight and its answer: passed on whole or streamed, recorded
//! with the usage it reports, its holds renewed while it runs.

use super::*;
use crate::domain::pricing::Count;

/// One call in flight: what the record of it needs.
#[derive(Clone)]
pub(super) struct Call {
    pub(super) state: Node,
    pub(super) family: Family,
    pub(super) plan: CallPlan,
    pub(super) event_id: String,
    pub(super) user_id: UserId,
    pub(super) reservation_id: Option<String>,
    pub(super) endpoint: String,
    pub(super) method: String,
    pub(super) timestamp: DateTime<Utc>,
    pub(super) started: Instant,
    pub(super) tags: Tags,
    /// Renews the call's holds and claim while it runs; stops when the last
    /// clone of the call is gone.
    pub(super) _renewer: Arc<Renewer>,
    /// The call's place among those in flight.
    pub(super) _slot: Arc<tokio::sync::OwnedSemaphorePermit>,
}

/// A task that keeps a running call's holds and claim alive (every third
/// of the hold TTL), so a stream or a slow answer never outlives its hold;
/// aborted when dropped.
pub(super) struct Renewer(Option<tokio::task::JoinHandle<()>>);

impl Drop for Renewer {
    fn drop(&mut self) {
        if let Some(t) = self.0.take() {
            t.abort();
        }
    }
}

impl Renewer {
    pub(super) fn start(
        state: &Node,
        user_id: &UserId,
        reservation_id: Option<String>,
        claim: Option<(String, i64)>,
    ) -> Renewer {
        if reservation_id.is_none() && claim.is_none() {
            return Renewer(None);
        }
        let engine = state.engine.clone();
        let every = (engine.config.hold_ttl / 3).max(Duration::from_millis(200));
        let user_id = user_id.clone();
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
            tokens_input: q[Count::Input],
            tokens_output: q[Count::Output],
            tokens_cached_input: q[Count::CachedInput],
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
    pub(super) async fn record(
        &self,
        q: Quantities,
        estimated: bool,
        status: u16,
        error: Option<String>,
    ) -> Option<EventResult> {
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

    pub(super) fn record_failure(&self, status: u16, error: String) {
        let call = self.clone();
        let q = Quantities::default();
        // Spawned so a hung-up client does not cancel it.
        tokio::spawn(async move { call.record(q, false, status, Some(error)).await });
    }
}

pub(super) fn with_event_id(mut resp: Response, event_id: &str) -> Response {
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
    let kind = crate::server::web::media_type(resp.headers());
    let readable = crate::server::web::is_json(&kind) || kind == "text/event-stream";
    b = b
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(header::CONTENT_SECURITY_POLICY, "default-src 'none'; sandbox; frame-ancestors 'none'");
    if !readable {
        b = b.header(header::CONTENT_DISPOSITION, "attachment");
    }
    b
}

pub(super) fn pass_through(resp: hyper::Response<hyper::body::Incoming>, event_id: Option<&str>) -> Response {
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
pub(super) async fn whole_answer(
    call: Call,
    resp: hyper::Response<hyper::body::Incoming>,
    timeout: Duration,
) -> Response {
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
pub(super) fn stream_answer(
    call: Call,
    resp: hyper::Response<hyper::body::Incoming>,
    timeout: Duration,
    sse: bool,
) -> Response {
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
