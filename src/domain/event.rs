//! A usage event as the ingest API receives it, parsed into a valid value.
//!
//! Each event of a batch is parsed on its own from a JSON value, so one bad
//! event (wrong type, negative tokens, unknown field value) is rejected with a
//! precise message while the others of the batch proceed.

use chrono::{DateTime, Duration, Utc};
use serde_json::{Map, Value};

use super::pricing::Quantities;
use super::provider::Provider;

/// At most this many events per request.
pub const MAX_BATCH: usize = 1000;
/// Token and unit counts above this are rejected as implausible (and would
/// risk overflowing sums).
pub const MAX_COUNT: u64 = 1_000_000_000_000;
/// How far in the future a timestamp may be (clock skew).
pub const MAX_FUTURE_SKEW_SECS: i64 = 300;

/// A valid usage event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageEvent {
    pub id: String,
    pub user_id: String,
    pub provider: Provider,
    pub model: Option<String>,
    pub operation_type: Option<String>,
    pub endpoint: Option<String>,
    pub method: Option<String>,
    pub actual_provider_name: Option<String>,
    pub tokens_input: u64,
    pub tokens_output: u64,
    pub tokens_cached_input: u64,
    /// `None` when the caller did not say; the recorder defaults it to 1 when
    /// the price is per unit and 0 otherwise.
    pub units: Option<u64>,
    pub response_time_ms: Option<u64>,
    pub status_code: u16,
    pub error_message: Option<String>,
    pub timestamp: DateTime<Utc>,
    pub reservation_id: Option<String>,
    pub retry_count: u32,
}

impl UsageEvent {
    pub fn quantities(&self, unit_default: u64) -> Quantities {
        Quantities {
            tokens_input: self.tokens_input,
            tokens_output: self.tokens_output,
            tokens_cached_input: self.tokens_cached_input,
            units: self.units.unwrap_or(unit_default),
        }
    }

    pub fn tokens_total(&self) -> u64 {
        self.tokens_input + self.tokens_output
    }

    pub fn is_error(&self) -> bool {
        self.status_code >= 400
    }
}

const FIELDS: &[&str] = &[
    "id",
    "user_id",
    "provider",
    "model",
    "operation_type",
    "endpoint",
    "method",
    "actual_provider_name",
    "tokens_input",
    "tokens_output",
    "tokens_cached_input",
    "units",
    "response_time_ms",
    "status_code",
    "error_message",
    "timestamp",
    "reservation_id",
    "retry_count",
];

/// The most one event may cost: far above any real API call, low enough
/// that no sum of events can come near the integer's range unnoticed.
pub const MAX_EVENT_COST_USD: i64 = 1_000_000;

/// A string field of at most `max` characters with no control characters
/// (a NUL, say, which PostgreSQL refuses to store).
fn opt_string(m: &Map<String, Value>, key: &str, max: usize) -> Result<Option<String>, String> {
    opt_text(m, key, max, false)
}

/// Like [`opt_string`]; `multiline` also allows tab, CR and LF (error texts).
fn opt_text(m: &Map<String, Value>, key: &str, max: usize, multiline: bool) -> Result<Option<String>, String> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.chars().count() > max => Err(format!("`{key}` is longer than {max} characters")),
        Some(Value::String(s)) => {
            let bad = s.chars().find(|c| c.is_control() && !(multiline && matches!(c, '\t' | '\n' | '\r')));
            match bad {
                Some(c) => Err(format!("`{key}` contains a control character (U+{:04X})", c as u32)),
                None => Ok(Some(s.clone())),
            }
        }
        Some(_) => Err(format!("`{key}` must be a string")),
    }
}

fn opt_count(m: &Map<String, Value>, key: &str, max: u64) -> Result<Option<u64>, String> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(v) if v <= max => Ok(Some(v)),
            Some(_) => Err(format!("`{key}` is larger than {max}")),
            None if n.as_i64().is_some_and(|v| v < 0) => Err(format!("`{key}` must not be negative")),
            None => Err(format!("`{key}` must be a whole number")),
        },
        Some(_) => Err(format!("`{key}` must be a number")),
    }
}

/// Parses one event of a batch. `now` bounds the timestamp.
pub fn parse_event(v: &Value, now: DateTime<Utc>) -> Result<UsageEvent, String> {
    let m = v.as_object().ok_or("each event must be a JSON object")?;
    if let Some(unknown) = m.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(format!("unknown field `{unknown}`"));
    }
    let id = opt_string(m, "id", 128)?.ok_or("`id` is required")?;
    if id.is_empty() {
        return Err("`id` must be 1-128 characters".into());
    }
    let user_id = opt_string(m, "user_id", 128)?.ok_or("`user_id` is required")?;
    if user_id.is_empty() {
        return Err("`user_id` must not be empty".into());
    }
    let provider_raw = opt_string(m, "provider", 64)?.ok_or("`provider` is required")?;
    let provider = Provider::parse(&provider_raw).map_err(|e| e.to_string())?;
    let model = opt_string(m, "model", 128)?.filter(|s| !s.trim().is_empty());
    let tokens_input = opt_count(m, "tokens_input", MAX_COUNT)?.unwrap_or(0);
    let tokens_output = opt_count(m, "tokens_output", MAX_COUNT)?.unwrap_or(0);
    let tokens_cached_input = opt_count(m, "tokens_cached_input", MAX_COUNT)?.unwrap_or(0);
    if tokens_cached_input > tokens_input {
        return Err(format!(
            "`tokens_cached_input` ({tokens_cached_input}) is part of `tokens_input` ({tokens_input}) and cannot exceed it"
        ));
    }
    let units = opt_count(m, "units", MAX_COUNT)?;
    let response_time_ms = opt_count(m, "response_time_ms", 86_400_000)?;
    let status_code = match opt_count(m, "status_code", 599)? {
        None => 200,
        Some(c) if c >= 100 => c as u16,
        Some(_) => return Err("`status_code` must be between 100 and 599".into()),
    };
    let timestamp = match opt_string(m, "timestamp", 64)? {
        None => now,
        Some(s) => DateTime::parse_from_rfc3339(&s)
            .map_err(|_| format!("`timestamp` `{s}` is not an RFC 3339 date-time"))?
            .with_timezone(&Utc),
    };
    if timestamp > now + Duration::seconds(MAX_FUTURE_SKEW_SECS) {
        return Err(format!("`timestamp` {} is more than 5 minutes in the future", timestamp.to_rfc3339()));
    }
    let retry_count = opt_count(m, "retry_count", 1000)?.unwrap_or(0) as u32;
    Ok(UsageEvent {
        id,
        user_id,
        provider,
        model,
        operation_type: opt_string(m, "operation_type", 64)?,
        endpoint: opt_string(m, "endpoint", 512)?,
        method: opt_string(m, "method", 16)?,
        actual_provider_name: opt_string(m, "actual_provider_name", 128)?,
        tokens_input,
        tokens_output,
        tokens_cached_input,
        units,
        response_time_ms,
        status_code,
        error_message: opt_text(m, "error_message", 2000, true)?,
        timestamp,
        reservation_id: opt_string(m, "reservation_id", 64)?,
        retry_count,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0).unwrap()
    }

    #[test]
    fn error_texts_may_span_lines() {
        let e = parse_event(
            &json!({"id": "e1", "user_id": "u", "provider": "gemini", "error_message": "line 1\n\tline 2\r\n"}),
            now(),
        )
        .unwrap();
        assert_eq!(e.error_message.as_deref(), Some("line 1\n\tline 2\r\n"));
    }

    #[test]
    fn minimal_event_gets_defaults() {
        let e = parse_event(&json!({"id": "e1", "user_id": "u", "provider": "Gemini"}), now()).unwrap();
        assert_eq!(
            (e.provider.as_str(), e.tokens_input, e.status_code, e.timestamp, e.units),
            ("gemini", 0, 200, now(), None)
        );
    }

    #[test]
    fn bad_events_say_what_is_wrong() {
        let base = json!({"id": "e1", "user_id": "u", "provider": "gemini"});
        let with = |k: &str, v: Value| {
            let mut b = base.clone();
            b[k] = v;
            b
        };
        let cases = [
            (with("model", json!("gpt\u{0}4")), "`model` contains a control character (U+0000)"),
            (with("id", json!("a\nb")), "`id` contains a control character (U+000A)"),
            (with("user_id", json!("u\u{7f}")), "`user_id` contains a control character (U+007F)"),
            (with("error_message", json!("boom\u{0}")), "`error_message` contains a control character (U+0000)"),
            (json!([1]), "JSON object"),
            (json!({"user_id": "u", "provider": "gemini"}), "`id` is required"),
            (with("id", json!("")), "1-128"),
            (with("id", json!("x".repeat(129))), "longer than 128"),
            (with("tokens_input", json!(-5)), "must not be negative"),
            (with("tokens_input", json!("12")), "must be a number"),
            (with("tokens_input", json!(1.5)), "whole number"),
            (with("tokens_output", json!(10_000_000_000_000u64)), "larger than"),
            (with("provider", json!("no such!")), "provider must be"),
            (with("status_code", json!(42)), "between 100 and 599"),
            (with("timestamp", json!("yesterday")), "RFC 3339"),
            (with("timestamp", json!("2026-11-23T12:06:00Z")), "future"),
            (with("colour", json!("red")), "unknown field `colour`"),
            (
                json!({"id": "e", "user_id": "u", "provider": "gemini", "tokens_input": 1, "tokens_cached_input": 2}),
                "cannot exceed",
            ),
        ];
        for (v, want) in cases {
            let err = parse_event(&v, now()).unwrap_err();
            assert!(err.contains(want), "{v} -> {err}");
        }
        // Four minutes ahead is clock skew, not an error.
        assert!(parse_event(&with("timestamp", json!("2026-11-23T12:04:00Z")), now()).is_ok());
    }
}
