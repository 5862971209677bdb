//! One rule for text from outside, at the door: no request's path, query
//! string, JSON body or form body (REST and server functions alike) may
//! carry a NUL or another control character, except tab, CR and LF (which
//! multi-line texts such as descriptions need). PostgreSQL refuses NUL in
//! text and SQLite stores it, so without this a malformed field was a 500
//! on one store and stored on the other. The check is
//! [`crate::domain::event::check_text`], the rule ingest applies field by
//! field; single-line fields keep their own stricter parsers behind it.
//!
//! Refused: a path with one, 400; a query, JSON or form field with one,
//! 422 naming the field (`events[2].model`, `query user_id`). Two doors
//! apply the rule themselves: ingest (`POST /api/usage/events`), which
//! refuses the one event that breaks it and keeps the rest of its batch,
//! and the tracking proxy, which checks what it records (model, path,
//! tags, ids) and forwards the rest to the provider untouched.

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::domain::event::check_text;
use crate::server::error::AppError;

/// Routes whose handlers apply the rule themselves (see the module doc).
fn checks_its_own(path: &str) -> bool {
    path == "/api/usage/events" || path.starts_with("/proxy/")
}

/// The first string of `v` (keys included) that breaks the rule: where it
/// is, and what is wrong.
pub fn first_bad(v: &Value, at: &mut String) -> Option<(String, String)> {
    let rule = |at: &str, s: &str| check_text(at, s, usize::MAX, true).err().map(|e| (at.to_string(), e));
    match v {
        Value::String(s) => rule(at, s),
        Value::Array(items) => items.iter().enumerate().find_map(|(i, item)| {
            let len = at.len();
            at.push_str(&format!("[{i}]"));
            let found = first_bad(item, at);
            at.truncate(len);
            found
        }),
        Value::Object(m) => m.iter().find_map(|(k, item)| {
            let len = at.len();
            if !at.is_empty() {
                at.push('.');
            }
            at.push_str(k);
            let found = rule(at, k).or_else(|| first_bad(item, at));
            at.truncate(len);
            found
        }),
        Value::Number(_) | Value::Bool(_) | Value::Null => None,
    }
}

/// The first `key=value` pair of a query string or form body that breaks
/// the rule.
fn first_bad_pair(encoded: &[u8], what: &str) -> Option<(String, String)> {
    form_urlencoded::parse(encoded).find_map(|(k, v)| {
        let at = format!("{what} {k}");
        check_text(&at, &k, usize::MAX, true)
            .and_then(|()| check_text(&at, &v, usize::MAX, true))
            .err()
            .map(|e| (at, e))
    })
}

/// Whether a JSON text may hold a control character in a valid string:
/// only as a `\u` escape, a raw DEL or a raw C1 character (U+0080-U+009F,
/// UTF-8 `C2 80`-`C2 9F`); raw C0 characters make the JSON invalid, which
/// its handler refuses anyway. Most bodies (every gate check, say) have
/// none of these, so they are scanned once and never parsed here.
fn may_hide_control(json: &[u8]) -> bool {
    json.windows(2).any(|w| w == b"\\u" || (w[0] == 0xC2 && (0x80..=0x9F).contains(&w[1]))) || json.contains(&0x7F)
}

enum BodyKind {
    Json,
    Form,
    Other,
}

fn body_kind(req: &Request) -> BodyKind {
    let kind = super::web::media_type(req.headers());
    if super::web::is_json(&kind) {
        BodyKind::Json
    } else if kind == "application/x-www-form-urlencoded" {
        BodyKind::Form
    } else {
        BodyKind::Other
    }
}

/// The middleware.
pub async fn door(req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if checks_its_own(path) {
        return next.run(req).await;
    }
    let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
    if let Err(e) = check_text("the path", &decoded, usize::MAX, false) {
        return AppError::BadRequest(e).into_response();
    }
    if let Some((field, e)) = req.uri().query().and_then(|q| first_bad_pair(q.as_bytes(), "query")) {
        return AppError::InvalidFields(vec![(field, e)]).into_response();
    }
    let kind = body_kind(&req);
    if matches!(kind, BodyKind::Other) {
        return next.run(req).await;
    }
    let limit = super::rest::body_limit_for(path);
    let (parts, body) = req.into_parts();
    // The body limit is already on the body: reading past it fails here.
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(e) => {
            let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&e);
            let mut limited = false;
            while let Some(c) = cause {
                limited |= c.is::<http_body_util::LengthLimitError>();
                cause = c.source();
            }
            return if limited {
                AppError::PayloadTooLarge(limit).into_response()
            } else {
                AppError::BadRequest("the request body could not be read".into()).into_response()
            };
        }
    };
    let bad = match kind {
        // Not JSON at all: the handler says so in its own words.
        BodyKind::Json if may_hide_control(&bytes) => {
            serde_json::from_slice::<Value>(&bytes).ok().and_then(|v| first_bad(&v, &mut String::new()))
        }
        BodyKind::Json => None,
        BodyKind::Form => first_bad_pair(&bytes, "field"),
        BodyKind::Other => None,
    };
    if let Some((field, e)) = bad {
        let field = if field.is_empty() { "body".to_string() } else { field };
        return AppError::InvalidFields(vec![(field, e)]).into_response();
    }
    next.run(Request::from_parts(parts, Body::from(bytes))).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_first_bad_string_is_named_by_its_place() {
        let v = json!({"name": "ok\nfine\t", "limits": [{"key": "a"}, {"key": "b\u{0}c"}]});
        let (at, why) = first_bad(&v, &mut String::new()).unwrap();
        assert_eq!(at, "limits[1].key");
        assert!(why.contains("U+0000"), "{why}");
        assert_eq!(first_bad(&json!({"a\u{1}": 1}), &mut String::new()).unwrap().0, "a\u{1}");
        assert_eq!(first_bad(&json!("\u{7f}"), &mut String::new()).unwrap().0, "");
        assert!(first_bad(&json!({"description": "line 1\r\nline 2"}), &mut String::new()).is_none());
        let (at, _) = first_bad_pair(b"email=a%40b.c&password=x%00y", "field").unwrap();
        assert_eq!(at, "field password");
        assert!(first_bad_pair(b"q=caf%C3%A9", "query").is_none());
        // Only bodies that may hide one are parsed.
        assert!(!may_hide_control(b"{\"user_id\": \"alice\", \"note\": \"caf\xc3\xa9 \xc3\x85\"}"));
        for hiding in [&br#"{"a": "x\u0000"}"#[..], b"{\"a\": \"\x7f\"}", b"{\"a\": \"\xc2\x85\"}"] {
            assert!(may_hide_control(hiding), "{hiding:?}");
        }
    }
}
