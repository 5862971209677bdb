//! A usage event as the ingest API receives it, parsed into a valid value.
//!
//! Each event of a batch is parsed on its own from a JSON value, so one bad
//! event (wrong type, negative tokens, unknown field value) is rejected with a
//! precise message while the others of the batch proceed.

use chrono::{DateTime, Duration, Utc};
use serde_json::{Map, Value};

use super::identity::UserId;
use super::pricing::{Count, Quantities, ServiceTier};
use super::provider::Provider;
use super::provider_usage::{UsageFormat, map_usage};
use super::tags::Tags;

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
    pub user_id: UserId,
    pub provider: Provider,
    pub model: Option<String>,
    pub operation_type: Option<String>,
    pub endpoint: Option<String>,
    pub method: Option<String>,
    pub actual_provider_name: Option<String>,
    pub tokens_input: u64,
    pub tokens_output: u64,
    pub tokens_cached_input: u64,
    /// The other parts of the totals, the web-search queries and the
    /// service tier.
    pub parts: UsageParts,
    /// `None` when the caller did not say; the recorder defaults it to 1 when
    /// the price is per unit and 0 otherwise.
    pub units: Option<u64>,
    pub response_time_ms: Option<u64>,
    pub status_code: u16,
    pub error_message: Option<String>,
    pub timestamp: DateTime<Utc>,
    pub reservation_id: Option<String>,
    pub retry_count: u32,
    /// The counts are an estimate, not the provider's (a proxied stream
    /// cut before its usage arrived).
    pub estimated: bool,
    /// Attribution labels (`project`, `feature`, ...).
    pub tags: Tags,
}

/// The counts of an event beyond its three columns of old
/// ([`Count::PARTS`]: cache writes, audio, reasoning, web-search queries,
/// each indexed by its [`Count`]) and its service tier: all zero /
/// standard for a plain event.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UsageParts {
    counts: [u64; Count::PARTS.len()],
    pub service_tier: ServiceTier,
}

/// Where `c` sits in [`Count::PARTS`]; a count that is not a part is a
/// bug in the caller.
fn part_index(c: Count) -> usize {
    Count::PARTS.iter().position(|p| *p == c).unwrap_or_else(|| panic!("{c:?} is not one of an event's parts"))
}

impl std::ops::Index<Count> for UsageParts {
    type Output = u64;
    fn index(&self, c: Count) -> &u64 {
        &self.counts[part_index(c)]
    }
}

impl std::ops::IndexMut<Count> for UsageParts {
    fn index_mut(&mut self, c: Count) -> &mut u64 {
        &mut self.counts[part_index(c)]
    }
}

impl From<&Quantities> for UsageParts {
    /// The parts of `q` (its two totals, cache reads and units are the
    /// event's own fields).
    fn from(q: &Quantities) -> UsageParts {
        let mut parts = UsageParts { service_tier: q.service_tier, ..UsageParts::default() };
        for &c in Count::PARTS {
            parts[c] = q[c];
        }
        parts
    }
}

impl UsageParts {
    /// `cache read 1,000 · reasoning 600 · batch` for people: the parts
    /// that are there (cache reads given by the caller), or empty.
    pub fn describe(&self, tokens_cached_input: u64) -> String {
        self.quantities(0, 0, tokens_cached_input, 0).describe_parts()
    }

    /// The quantities to price, given the three counts every event has.
    pub fn quantities(self, tokens_input: u64, tokens_output: u64, tokens_cached_input: u64, units: u64) -> Quantities {
        let mut q = Quantities::tokens(tokens_input, tokens_output).with(Count::CachedInput, tokens_cached_input);
        for &c in Count::PARTS {
            q[c] = self[c];
        }
        q.units = units;
        q.service_tier = self.service_tier;
        q
    }
}

impl UsageEvent {
    pub fn quantities(&self, unit_default: u64) -> Quantities {
        self.parts.quantities(
            self.tokens_input,
            self.tokens_output,
            self.tokens_cached_input,
            self.units.unwrap_or(unit_default),
        )
    }

    pub fn tokens_total(&self) -> u64 {
        self.tokens_input + self.tokens_output
    }

    pub fn is_error(&self) -> bool {
        self.status_code >= 400
    }
}

/// The event's fields besides its counts (each [`Count::field`]).
const FIELDS: &[&str] = &[
    "id",
    "user_id",
    "provider",
    "model",
    "operation_type",
    "endpoint",
    "method",
    "actual_provider_name",
    "service_tier",
    "usage",
    "usage_format",
    "units",
    "response_time_ms",
    "status_code",
    "error_message",
    "timestamp",
    "reservation_id",
    "retry_count",
    "estimated",
    "tags",
];

/// The most one event may cost: far above any real API call, low enough
/// that no sum of events can come near the integer's range unnoticed.
pub const MAX_EVENT_COST_USD: i64 = 1_000_000;

/// A string field of at most `max` characters with no control characters
/// (a NUL, say, which PostgreSQL refuses to store).
fn opt_string(m: &Map<String, Value>, key: &str, max: usize) -> Result<Option<String>, String> {
    opt_text(m, key, max, false)
}

/// The one rule for text from outside, named `key` in the error: at most
/// `max` characters and no control characters (a NUL, say, which
/// PostgreSQL refuses to store); `multiline` also allows tab, CR and LF.
pub fn check_text(key: &str, s: &str, max: usize, multiline: bool) -> Result<(), String> {
    if s.chars().count() > max {
        return Err(format!("`{key}` is longer than {max} characters"));
    }
    match s.chars().find(|c| c.is_control() && !(multiline && matches!(c, '\t' | '\n' | '\r'))) {
        Some(c) => Err(format!("`{key}` contains a control character (U+{:04X})", c as u32)),
        None => Ok(()),
    }
}

/// Like [`opt_string`]; `multiline` also allows tab, CR and LF (error texts).
fn opt_text(m: &Map<String, Value>, key: &str, max: usize, multiline: bool) -> Result<Option<String>, String> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => check_text(key, s, max, multiline).map(|()| Some(s.clone())),
        Some(_) => Err(format!("`{key}` must be a string")),
    }
}

/// Event ids the tracking proxy makes (`prx_<uuid>`) or derives from a
/// caller's own (`prx:<attempt>:<id>`); ingest refuses them, so no
/// ingested event can take a proxied call's id, or the reverse.
pub const PROXY_ID_PREFIXES: [&str; 2] = ["prx:", "prx_"];

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

/// The code that starts a rejection whose token parts exceed their totals.
pub const INVALID_TOKEN_SPLIT: &str = "invalid_token_split";
/// The code that starts a rejection carrying both `usage` and token fields.
pub const AMBIGUOUS_USAGE: &str = "ambiguous_usage";

/// The event's token counts: from its provider `usage` object (with
/// `usage_format`), or from its own fields; never both.
fn token_counts(m: &Map<String, Value>) -> Result<Quantities, String> {
    let usage = m.get("usage").filter(|v| !v.is_null());
    let format = opt_string(m, "usage_format", 32)?;
    if let Some(usage) = usage {
        if let Some(field) = Count::ALL.map(Count::field).into_iter().find(|f| m.get(*f).is_some_and(|v| !v.is_null()))
        {
            return Err(format!(
                "{AMBIGUOUS_USAGE}: send either `usage` (with `usage_format`) or token fields such as `{field}`, not both"
            ));
        }
        let format =
            format.ok_or("`usage` needs `usage_format`: openai_chat, openai_responses, anthropic or gemini")?;
        let format = UsageFormat::parse(&format).ok_or_else(|| {
            format!("`usage_format` must be openai_chat, openai_responses, anthropic or gemini (got `{format}`)")
        })?;
        let t = map_usage(format, usage)?;
        if let Some(c) = Count::ALL.into_iter().find(|c| t[*c] > MAX_COUNT) {
            return Err(format!("the `usage` object's `{}` is larger than {MAX_COUNT}", c.field()));
        }
        return Ok(t);
    }
    if format.is_some() {
        return Err("`usage_format` was given without a `usage` object".into());
    }
    let mut q = Quantities::default();
    for c in Count::ALL {
        q[c] = opt_count(m, c.field(), MAX_COUNT)?.unwrap_or(0);
    }
    Ok(q)
}

/// Parses one event of a batch. `now` bounds the timestamp.
pub fn parse_event(v: &Value, now: DateTime<Utc>) -> Result<UsageEvent, String> {
    let m = v.as_object().ok_or("each event must be a JSON object")?;
    let known = |k: &str| FIELDS.contains(&k) || Count::ALL.iter().any(|c| c.field() == k);
    if let Some(unknown) = m.keys().find(|k| !known(k)) {
        return Err(format!("unknown field `{unknown}`"));
    }
    let id = opt_string(m, "id", 128)?.ok_or("`id` is required")?;
    if id.is_empty() {
        return Err("`id` must be 1-128 characters".into());
    }
    if let Some(p) = PROXY_ID_PREFIXES.iter().find(|p| id.starts_with(**p)) {
        return Err(format!("`id` may not begin with `{p}`: such ids belong to calls through Tally's proxy"));
    }
    let user_id = opt_string(m, "user_id", 128)?.ok_or("`user_id` is required")?;
    if user_id.is_empty() {
        return Err("`user_id` must not be empty".into());
    }
    // Every user's id is a `UserId`, so an id that is not one names nobody.
    let user_id = UserId::parse(&user_id).map_err(|_| format!("unknown user `{user_id}`"))?;
    let provider_raw = opt_string(m, "provider", 64)?.ok_or("`provider` is required")?;
    let provider = Provider::parse(&provider_raw).map_err(|e| e.to_string())?;
    let model = opt_string(m, "model", 128)?.filter(|s| !s.trim().is_empty());
    let t = token_counts(m)?;
    let (tokens_input, tokens_output, tokens_cached_input) = (t[Count::Input], t[Count::Output], t[Count::CachedInput]);
    let mut parts = UsageParts::from(&t);
    parts.service_tier = match opt_string(m, "service_tier", 16)? {
        None => ServiceTier::Standard,
        Some(t) => ServiceTier::parse(&t)
            .ok_or_else(|| format!("`service_tier` must be standard, batch, flex or priority (got `{t}`)"))?,
    };
    let q = parts.quantities(tokens_input, tokens_output, tokens_cached_input, 0);
    q.check_split().map_err(|e| format!("{INVALID_TOKEN_SPLIT}: {e}"))?;
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
    let estimated = match m.get("estimated") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err("`estimated` must be true or false".into()),
    };
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
        parts,
        units,
        response_time_ms,
        status_code,
        error_message: opt_text(m, "error_message", 2000, true)?,
        timestamp,
        reservation_id: opt_string(m, "reservation_id", 64)?,
        retry_count,
        estimated,
        tags: Tags::from_json(m.get("tags"))?,
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
    fn usage_objects_and_new_fields_fill_the_parts() {
        let e = parse_event(
            &json!({"id": "e1", "user_id": "u", "provider": "anthropic", "model": "claude-sonnet-4-5",
                    "usage_format": "anthropic", "service_tier": "batch",
                    "usage": {"input_tokens": 10, "cache_read_input_tokens": 20, "cache_creation_input_tokens": 30, "output_tokens": 7}}),
            now(),
        )
        .unwrap();
        assert_eq!((e.tokens_input, e.tokens_cached_input, e.tokens_output), (60, 20, 7));
        assert_eq!(e.parts[Count::CacheWrite], 30);
        assert_eq!(e.parts.service_tier, ServiceTier::Batch);
        assert!(e.tags.is_empty());
        let e =
            parse_event(&json!({"id": "e1", "user_id": "u", "provider": "gemini", "tags": {"project": "blog"}}), now())
                .unwrap();
        assert_eq!(e.tags.get("project"), Some("blog"));
        let e = parse_event(
            &json!({"id": "e2", "user_id": "u", "provider": "openai", "tokens_input": 10, "tokens_audio_input": 10,
                    "tokens_output": 3, "tokens_reasoning": 3, "search_queries": 2}),
            now(),
        )
        .unwrap();
        let q = e.quantities(0);
        assert_eq!((q[Count::AudioInput], q[Count::Reasoning], q[Count::SearchQueries]), (10, 3, 2));
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
                "invalid_token_split: ",
            ),
            (
                json!({"id": "e", "user_id": "u", "provider": "gemini", "tokens_output": 5, "tokens_reasoning": 4, "tokens_audio_output": 2}),
                "invalid_token_split: tokens_reasoning + tokens_audio_output (6)",
            ),
            (
                json!({"id": "e", "user_id": "u", "provider": "openai", "tokens_input": 5,
                       "usage": {"prompt_tokens": 5}, "usage_format": "openai_chat"}),
                "ambiguous_usage: ",
            ),
            (
                json!({"id": "e", "user_id": "u", "provider": "openai", "usage": {"prompt_tokens": 5}}),
                "needs `usage_format`",
            ),
            (
                json!({"id": "e", "user_id": "u", "provider": "openai", "usage": {"prompt_tokens": 5}, "usage_format": "openai"}),
                "`usage_format` must be",
            ),
            (
                json!({"id": "e", "user_id": "u", "provider": "openai", "usage_format": "openai_chat"}),
                "without a `usage` object",
            ),
            (
                json!({"id": "e", "user_id": "u", "provider": "openai",
                       "usage": {"prompt_tokens": 5, "prompt_tokens_details": {"cached_tokens": 9}}, "usage_format": "openai_chat"}),
                "invalid_token_split: ",
            ),
            (with("service_tier", json!("turbo")), "`service_tier` must be standard, batch, flex or priority"),
            (with("tags", json!({"project": 7})), "`tags`: the value of `project` must be a string"),
            (with("tags", json!("project=blog")), "`tags` must be an object"),
        ];
        for (v, want) in cases {
            let err = parse_event(&v, now()).unwrap_err();
            assert!(err.contains(want), "{v} -> {err}");
        }
        // Four minutes ahead is clock skew, not an error.
        assert!(parse_event(&with("timestamp", json!("2026-11-23T12:04:00Z")), now()).is_ok());
    }
}
