//! The session cookie and the cross-site request guard.
//!
//! The cookie is HttpOnly and SameSite=Lax, and Secure unless the site is
//! served on localhost. Every state-changing request that authenticates by
//! cookie (REST or server function) must also come from our own origin:
//! its `Origin` (or `Referer`) must name the host it was sent to.

use axum::extract::Request;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::server::service::accounts::SESSION_DAYS;

pub const COOKIE: &str = "tally_session";

/// The session token from the `Cookie` header, if any.
pub fn token_from(headers: &HeaderMap) -> Option<String> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == COOKIE && !v.is_empty()).then(|| v.to_string())
    })
}

fn is_local(headers: &HeaderMap) -> bool {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    let name =
        host.rsplit_once(':').map_or(host, |(h, port)| if port.chars().all(|c| c.is_ascii_digit()) { h } else { host });
    matches!(name, "localhost" | "127.0.0.1" | "[::1]") || name.ends_with(".localhost")
}

/// `Set-Cookie` value opening a session.
pub fn set_cookie(token: &str, headers: &HeaderMap) -> String {
    let secure = if is_local(headers) { "" } else { "; Secure" };
    format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{secure}", SESSION_DAYS * 86_400)
}

/// `Set-Cookie` value ending a session.
pub fn clear_cookie(headers: &HeaderMap) -> String {
    let secure = if is_local(headers) { "" } else { "; Secure" };
    format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{secure}")
}

/// Whether `Origin` (else `Referer`) names the host the request was sent to.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else { return false };
    let source = headers.get(header::ORIGIN).or_else(|| headers.get(header::REFERER)).and_then(|v| v.to_str().ok());
    source.and_then(|s| s.split_once("://")).map(|(_, rest)| rest.split('/').next().unwrap_or("")) == Some(host)
}

/// Refuses cookie-authenticated, state-changing requests from elsewhere.
pub async fn csrf_guard(req: Request, next: Next) -> Response {
    let unsafe_method = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let by_cookie = token_from(req.headers()).is_some() && !req.headers().contains_key(header::AUTHORIZATION);
    if unsafe_method && by_cookie && !same_origin(req.headers()) {
        let body = serde_json::json!({"success": false, "error": "cross-site request refused", "code": "forbidden"});
        return (StatusCode::FORBIDDEN, axum::Json(body)).into_response();
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn h(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(k.clone(), HeaderValue::from_str(v).unwrap());
        }
        m
    }

    #[test]
    fn cookies_and_origins() {
        assert_eq!(token_from(&h(&[(header::COOKIE, "a=b; tally_session=tok; c=d")])).as_deref(), Some("tok"));
        assert_eq!(token_from(&h(&[(header::COOKIE, "tally_session=")])), None);
        assert!(!set_cookie("t", &h(&[(header::HOST, "127.0.0.1:3000")])).contains("Secure"));
        assert!(set_cookie("t", &h(&[(header::HOST, "billing.example.com")])).ends_with("; Secure"));
        assert!(set_cookie("t", &h(&[])).contains("HttpOnly; SameSite=Lax"));
        assert!(same_origin(&h(&[(header::HOST, "a.test:3000"), (header::ORIGIN, "http://a.test:3000")])));
        assert!(same_origin(&h(&[(header::HOST, "a.test"), (header::REFERER, "https://a.test/admin/plans")])));
        assert!(!same_origin(&h(&[(header::HOST, "a.test"), (header::ORIGIN, "https://evil.test")])));
        assert!(!same_origin(&h(&[(header::HOST, "a.test")])));
        assert!(!same_origin(&h(&[(header::HOST, "a.test"), (header::ORIGIN, "https://a.test.evil.test")])));
    }
}
