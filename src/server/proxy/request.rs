//! Reading a proxied request: who calls, which route, its body and
//! query, its call id and tags; the claim and the hold taken before the
//! provider is called; refusals in the provider's shape.

use super::*;
use crate::server::service::gate::{OutputBound, output_to_hold};

/// A refusal in the provider's shape.
pub(super) fn refuse(family: Family, refusal: Refusal, message: &str, code: Option<&str>) -> Response {
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
pub(super) fn passes(name: &HeaderName) -> bool {
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

/// The call id the caller chose (`x-tally-event-id`), if it chose one.
pub(super) fn call_id(headers: &HeaderMap) -> Result<Option<String>, String> {
    let Some(v) = headers.get("x-tally-event-id") else { return Ok(None) };
    let s = v.to_str().map_err(|_| "`x-tally-event-id` must be visible ASCII".to_string())?.trim();
    if s.is_empty() || s.len() > MAX_CALL_ID || !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!("`x-tally-event-id` must be 1-{MAX_CALL_ID} visible ASCII characters, without spaces"));
    }
    Ok(Some(s.to_string()))
}

/// The caller's attribution tags (`x-tally-tags: project=blog,feature=outline`).
pub(super) fn header_tags(headers: &HeaderMap) -> Result<Tags, String> {
    match headers.get("x-tally-tags") {
        None => Ok(Tags::default()),
        Some(v) => Tags::from_header(
            std::str::from_utf8(v.as_bytes()).map_err(|_| "`x-tally-tags` must be UTF-8".to_string())?,
        ),
    }
}

/// The calling user: a Tally key with the proxy scope, bound to a user.
pub(super) async fn caller(
    state: &Node,
    family: Family,
    parts: &Parts,
    now: DateTime<Utc>,
) -> Result<UserId, Response> {
    let Some(secret) = caller_secret(&parts.headers, parts.uri.query()) else {
        let message = "send your Tally API key (with the proxy scope) as the API key";
        return Err(refuse(family, Refusal::Unauthenticated, message, None));
    };
    let key = match state.engine.api_key_by_secret(&secret, now).await {
        Ok(Some(k)) => k,
        Ok(None) => return Err(refuse(family, Refusal::Unauthenticated, "the API key is not a valid Tally key", None)),
        Err(e) => return Err(refuse_app(family, &e)),
    };
    key.user_id.clone().filter(|_| key.scopes.contains(&Scope::Proxy)).ok_or_else(|| {
        let message = "this Tally key lacks the proxy scope or is not bound to a user";
        refuse(family, Refusal::Forbidden, message, None)
    })
}

/// The request body, within [`MAX_PROXY_BODY_BYTES`] and [`BODY_TIMEOUT`].
pub(super) async fn read_body(family: Family, body: Body) -> Result<Bytes, Response> {
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
pub(super) fn upstream_query(family: Family, query: Option<&str>, billed: bool) -> Result<String, String> {
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
pub(super) async fn claim(
    state: &Node,
    family: Family,
    user_id: &UserId,
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
pub(super) async fn hold(
    state: &Node,
    family: Family,
    user_id: &UserId,
    call_plan: &CallPlan,
    now: DateTime<Utc>,
) -> Result<Option<String>, Response> {
    let is_llm = !matches!(call_plan.endpoint, Endpoint::Search);
    let (output, bound) = match call_plan.max_output {
        Some(n) => (n, OutputBound::Requested),
        None => {
            let catalog = state.engine.catalog_snapshot().await.map_err(|e| refuse_app(family, &e))?;
            output_to_hold(
                &catalog.prices,
                &family.provider(),
                call_plan.model.as_deref(),
                call_plan.choices,
                state.proxy.settings.default_max_output,
                now,
            )
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
            "{message}. This call holds {} tokens: {} of input (estimated) and {} of output ({})",
            format_count(call_plan.input_estimate.saturating_add(output) as i64),
            format_count(call_plan.input_estimate as i64),
            format_count(output as i64),
            bound.describe(),
        )
    } else {
        message
    };
    if verdict.insufficient_credits() {
        return Err(refuse(family, Refusal::InsufficientCredits, &message, Some("insufficient_credits")));
    }
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
        AppError::InsufficientCredits { .. } => Refusal::InsufficientCredits,
        AppError::Unavailable => Refusal::Unavailable,
        _ => Refusal::Internal,
    };
    let code = matches!(e, AppError::Unpriced(_)).then_some("unpriced_model");
    refuse(family, refusal, &e.to_string(), code)
}
