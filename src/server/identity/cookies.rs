//! The session cookie and the cross-site request guard.
//!
//! The cookie is HttpOnly and SameSite=Lax, and Secure when the public
//! origin (`TALLY_PUBLIC_URL`) is https, or, unconfigured, unless the site is
//! served on localhost. Every state-changing request that authenticates by
//! cookie, and the sign-in form, must also come from our own
//! origin (see [`WebSettings::same_origin`]).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::server::web::WebSettings;

pub const COOKIE: &str = "tally_session";

/// The sign-in form's path (the `login` server function's; a test in
/// `api::session` holds the two equal).
pub const SIGN_IN_PATH: &str = "/sfn/login";

/// The session token from the `Cookie` header, if any.
pub fn token_from(headers: &HeaderMap) -> Option<String> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == COOKIE && !v.is_empty()).then(|| v.to_string())
    })
}

/// `Set-Cookie` value opening a session; it lives as long as the session
/// may (the server also ends it when idle).
pub fn set_cookie(token: &str, headers: &HeaderMap, web: &WebSettings, max_age_secs: i64) -> String {
    let secure = if web.secure_cookies(headers) { "; Secure" } else { "" };
    format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}{secure}")
}

/// `Set-Cookie` value ending a session.
pub fn clear_cookie(headers: &HeaderMap, web: &WebSettings) -> String {
    let secure = if web.secure_cookies(headers) { "; Secure" } else { "" };
    format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{secure}")
}

/// Refuses state-changing requests from other sites: any that authenticate
/// by cookie, and the sign-in form (so no other site can sign a visitor
/// into an account of its choosing).
pub async fn csrf_guard(State(web): State<Arc<WebSettings>>, req: Request, next: Next) -> Response {
    let unsafe_method = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let by_cookie = token_from(req.headers()).is_some() && !req.headers().contains_key(header::AUTHORIZATION);
    let sign_in = req.uri().path() == SIGN_IN_PATH;
    if unsafe_method && (by_cookie || sign_in) && !web.same_origin(req.headers()) {
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
    fn cookies() {
        let web = WebSettings::default();
        assert_eq!(token_from(&h(&[(header::COOKIE, "a=b; tally_session=tok; c=d")])).as_deref(), Some("tok"));
        assert_eq!(token_from(&h(&[(header::COOKIE, "tally_session=")])), None);
        assert!(!set_cookie("t", &h(&[(header::HOST, "127.0.0.1:3000")]), &web, 60).contains("Secure"));
        assert!(set_cookie("t", &h(&[(header::HOST, "billing.example.com")]), &web, 60).ends_with("; Secure"));
        assert!(set_cookie("t", &h(&[]), &web, 60).contains("HttpOnly; SameSite=Lax; Max-Age=60"));
        let public = WebSettings { public_url: Some("https://b.example.com".into()), ..Default::default() };
        assert!(set_cookie("t", &h(&[(header::HOST, "127.0.0.1:3000")]), &public, 60).ends_with("; Secure"));
    }
}
