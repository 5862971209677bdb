//! Provider usage objects: an event may carry the provider's own `usage`
//! object verbatim, with `usage_format` naming its shape, instead of token
//! fields. Each shape maps onto Tally's token classes as
//! `../shared/contract.md` ("Provider usage objects") fixes.

use serde_json::Value;

use super::pricing::{Count, Quantities};

/// The usage shapes Tally reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UsageFormat {
    OpenAiChat,
    OpenAiResponses,
    Anthropic,
    Gemini,
}

impl UsageFormat {
    pub const ALL: [UsageFormat; 4] =
        [UsageFormat::OpenAiChat, UsageFormat::OpenAiResponses, UsageFormat::Anthropic, UsageFormat::Gemini];

    pub fn as_str(self) -> &'static str {
        match self {
            UsageFormat::OpenAiChat => "openai_chat",
            UsageFormat::OpenAiResponses => "openai_responses",
            UsageFormat::Anthropic => "anthropic",
            UsageFormat::Gemini => "gemini",
        }
    }

    pub fn parse(s: &str) -> Option<UsageFormat> {
        UsageFormat::ALL.into_iter().find(|f| f.as_str() == s)
    }
}

/// A count at `path` (dot-separated) in `usage`: absent or null is 0; a
/// negative, fractional or non-number value is an error naming the path.
fn count(usage: &Value, path: &str) -> Result<u64, String> {
    let mut v = usage;
    for key in path.split('.') {
        match v.get(key) {
            Some(next) => v = next,
            None => return Ok(0),
        }
    }
    match v {
        Value::Null => Ok(0),
        Value::Number(n) => n.as_u64().ok_or_else(|| format!("`usage.{path}` must be a whole number ≥ 0")),
        _ => Err(format!("`usage.{path}` must be a number")),
    }
}

fn add(a: u64, b: u64, what: &str) -> Result<u64, String> {
    a.checked_add(b).ok_or_else(|| format!("`usage` {what} is out of range"))
}

/// Maps a provider usage object onto token classes (units 0, standard
/// tier: a usage object says neither).
pub fn map_usage(format: UsageFormat, usage: &Value) -> Result<Quantities, String> {
    if !usage.is_object() {
        return Err("`usage` must be a JSON object (the provider's own usage object)".into());
    }
    let c = |p: &str| count(usage, p);
    // The counts the object gives, each under the class it is.
    let counted = |counts: &[(Count, u64)]| counts.iter().fold(Quantities::default(), |q, (c, n)| q.with(*c, *n));
    Ok(match format {
        UsageFormat::OpenAiChat => counted(&[
            (Count::Input, c("prompt_tokens")?),
            (Count::CachedInput, c("prompt_tokens_details.cached_tokens")?),
            (Count::AudioInput, c("prompt_tokens_details.audio_tokens")?),
            (Count::Output, c("completion_tokens")?),
            (Count::Reasoning, c("completion_tokens_details.reasoning_tokens")?),
            (Count::AudioOutput, c("completion_tokens_details.audio_tokens")?),
        ]),
        UsageFormat::OpenAiResponses => counted(&[
            (Count::Input, c("input_tokens")?),
            (Count::CachedInput, c("input_tokens_details.cached_tokens")?),
            (Count::Output, c("output_tokens")?),
            (Count::Reasoning, c("output_tokens_details.reasoning_tokens")?),
        ]),
        UsageFormat::Anthropic => {
            let read = c("cache_read_input_tokens")?;
            let created = c("cache_creation_input_tokens")?;
            // Without the per-TTL object, every cache write is a 5-minute one.
            let (w5, w1h) = match usage.get("cache_creation") {
                Some(o) if o.is_object() => {
                    (c("cache_creation.ephemeral_5m_input_tokens")?, c("cache_creation.ephemeral_1h_input_tokens")?)
                }
                _ => (created, 0),
            };
            counted(&[
                (Count::Input, add(add(c("input_tokens")?, read, "input")?, created, "input")?),
                (Count::CachedInput, read),
                (Count::CacheWrite, w5),
                (Count::CacheWrite1h, w1h),
                (Count::Output, c("output_tokens")?),
                (Count::SearchQueries, c("server_tool_use.web_search_requests")?),
            ])
        }
        UsageFormat::Gemini => {
            // Accept the response's `usageMetadata` or the object itself.
            let u = usage.get("usageMetadata").filter(|v| v.is_object()).unwrap_or(usage);
            let g = |p: &str| count(u, p);
            let thoughts = g("thoughtsTokenCount")?;
            counted(&[
                (Count::Input, add(g("promptTokenCount")?, g("toolUsePromptTokenCount")?, "input")?),
                (Count::CachedInput, g("cachedContentTokenCount")?),
                (Count::Output, add(g("candidatesTokenCount")?, thoughts, "output")?),
                (Count::Reasoning, thoughts),
            ])
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_format_maps_as_the_contract_says() {
        let cases = [
            (
                UsageFormat::OpenAiChat,
                json!({"prompt_tokens": 1200, "completion_tokens": 900, "total_tokens": 2100,
                       "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 100},
                       "completion_tokens_details": {"reasoning_tokens": 640, "audio_tokens": 50}}),
                Quantities::default()
                    .with(Count::Input, 1200)
                    .with(Count::CachedInput, 1024)
                    .with(Count::AudioInput, 100)
                    .with(Count::Output, 900)
                    .with(Count::Reasoning, 640)
                    .with(Count::AudioOutput, 50),
            ),
            (
                UsageFormat::OpenAiResponses,
                json!({"input_tokens": 500, "input_tokens_details": {"cached_tokens": 128},
                       "output_tokens": 300, "output_tokens_details": {"reasoning_tokens": 200}, "total_tokens": 800}),
                Quantities::default()
                    .with(Count::Input, 500)
                    .with(Count::CachedInput, 128)
                    .with(Count::Output, 300)
                    .with(Count::Reasoning, 200),
            ),
            (
                UsageFormat::Anthropic,
                json!({"input_tokens": 50, "cache_read_input_tokens": 10000, "cache_creation_input_tokens": 3000,
                       "cache_creation": {"ephemeral_5m_input_tokens": 1000, "ephemeral_1h_input_tokens": 2000},
                       "output_tokens": 400, "server_tool_use": {"web_search_requests": 3}}),
                Quantities::default()
                    .with(Count::Input, 13_050)
                    .with(Count::CachedInput, 10_000)
                    .with(Count::CacheWrite, 1000)
                    .with(Count::CacheWrite1h, 2000)
                    .with(Count::Output, 400)
                    .with(Count::SearchQueries, 3),
            ),
            (
                UsageFormat::Anthropic,
                json!({"input_tokens": 50, "cache_creation_input_tokens": 3000, "output_tokens": 4}),
                Quantities::default().with(Count::Input, 3050).with(Count::CacheWrite, 3000).with(Count::Output, 4),
            ),
            (
                UsageFormat::Gemini,
                json!({"promptTokenCount": 1000, "toolUsePromptTokenCount": 200, "cachedContentTokenCount": 600,
                       "candidatesTokenCount": 300, "thoughtsTokenCount": 700, "totalTokenCount": 2200}),
                Quantities::default()
                    .with(Count::Input, 1200)
                    .with(Count::CachedInput, 600)
                    .with(Count::Output, 1000)
                    .with(Count::Reasoning, 700),
            ),
            (
                UsageFormat::Gemini,
                json!({"usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 5}}),
                Quantities::default().with(Count::Input, 10).with(Count::Output, 5),
            ),
        ];
        for (format, usage, want) in cases {
            assert_eq!(map_usage(format, &usage).unwrap(), want, "{} {usage}", format.as_str());
        }
    }

    #[test]
    fn bad_usage_objects_say_where() {
        let e = map_usage(UsageFormat::OpenAiChat, &json!({"prompt_tokens": -1})).unwrap_err();
        assert!(e.contains("usage.prompt_tokens"), "{e}");
        let e = map_usage(UsageFormat::Anthropic, &json!({"cache_creation": {"ephemeral_1h_input_tokens": "7"}}))
            .unwrap_err();
        assert!(e.contains("usage.cache_creation.ephemeral_1h_input_tokens"), "{e}");
        assert!(map_usage(UsageFormat::Gemini, &json!([1])).unwrap_err().contains("JSON object"));
        assert!(UsageFormat::parse("openai").is_none());
    }
}
