//! The request side: which calls bill, and the most one can use, read
//! from its request before it is forwarded.

use serde_json::{Value, json};

use super::*;
use crate::domain::pricing::ServiceTier;

/// One billable call, as read from its request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallPlan {
    pub family: Family,
    pub endpoint: Endpoint,
    pub model: Option<String>,
    pub stream: bool,
    /// Input tokens estimated from the request (an upper-leaning guess).
    pub input_estimate: u64,
    /// The most output the request allows, when it says (already
    /// multiplied by [`CallPlan::choices`]).
    pub max_output: Option<u64>,
    /// How many answers the call asks for (`n`, `candidateCount`): an
    /// output maximum taken from elsewhere is held this many times.
    pub choices: u64,
    /// Requests, searches or pages, for per-unit APIs.
    pub units: Option<u64>,
    pub service_tier: ServiceTier,
    pub operation_type: String,
    /// The body to send upstream when it had to change: an OpenAI chat
    /// stream whose client did not ask for usage gets it asked for.
    pub rewritten: Option<Vec<u8>>,
    /// Hide the usage chunk the proxy asked for from the client.
    pub hide_usage_chunk: bool,
}

/// Tokens for a string of `chars` characters: about four characters a
/// token in the providers' tokenizers, rounded up.
pub(super) fn tokens_for_chars(chars: u64) -> u64 {
    chars.div_ceil(4)
}

/// Tokens held for one image, inline or by URL: the providers scale images
/// down before they count them, so none costs more than about this
/// (Anthropic ~1,600, OpenAI's patch-based models ~2,500, Gemini ~1,100
/// at its highest resolution).
pub const IMAGE_TOKENS: u64 = 3_000;
/// The least held for any other inline file.
const MIN_FILE_TOKENS: u64 = 1_600;

/// Tokens held for an inline file of `encoded_len` base64 characters:
/// images at [`IMAGE_TOKENS`]; audio and video at one token per 8 bytes
/// (Gemini counts 32 tokens a second of audio and 263 of video, so this
/// covers audio above 2 kbit/s and video above 17 kbit/s); PDFs at two
/// tokens a byte (a page is read as its text and as an image); anything
/// else at a token a byte (byte-level tokenizers make at most one token of
/// each byte of text).
pub fn file_tokens(mime: Option<&str>, encoded_len: usize) -> u64 {
    let bytes = (encoded_len as u64).saturating_mul(3) / 4;
    let mime = mime.unwrap_or("").to_ascii_lowercase();
    if mime.starts_with("image/") {
        IMAGE_TOKENS
    } else if mime.starts_with("audio/") || mime.starts_with("video/") {
        (bytes / 8).max(MIN_FILE_TOKENS)
    } else if mime == "application/pdf" {
        bytes.saturating_mul(2).max(IMAGE_TOKENS)
    } else {
        bytes.max(MIN_FILE_TOKENS)
    }
}

/// The media type of a `data:` URL (`data:image/png;base64,...`).
fn data_url_mime(s: &str) -> Option<&str> {
    s.strip_prefix("data:")?.split([';', ',']).next()
}

/// Estimated input tokens of a request body: the text of every string
/// value (keys and settings, tool schemas, system text and response
/// formats included, so it leans high), four tokens of framing per object,
/// inline files by [`file_tokens`], images by URL at [`IMAGE_TOKENS`], and
/// arrays of numbers (token ids, for embeddings) at their length.
pub fn estimate_input(v: &Value) -> u64 {
    fn walk(v: &Value, key: &str, mime: Option<&str>, n: &mut u64) {
        match v {
            Value::String(s) => {
                let inline = matches!(key, "data" | "b64_json" | "file_data" | "image_url" | "url" | "audio")
                    || s.starts_with("data:");
                let add = if inline && s.len() > 256 {
                    file_tokens(data_url_mime(s).or(mime), s.len())
                } else if matches!(key, "url" | "image_url") && (s.starts_with("https://") || s.starts_with("http://"))
                {
                    IMAGE_TOKENS.max(tokens_for_chars(s.chars().count() as u64))
                } else {
                    tokens_for_chars(s.chars().count() as u64)
                };
                *n = n.saturating_add(add);
            }
            Value::Array(items) => {
                if !items.is_empty() && items.iter().all(Value::is_number) {
                    *n = n.saturating_add(items.len() as u64);
                } else {
                    items.iter().for_each(|i| walk(i, key, mime, n));
                }
            }
            Value::Object(m) => {
                *n = n.saturating_add(4);
                let own = ["mimeType", "mime_type", "media_type", "format"]
                    .iter()
                    .find_map(|k| m.get(*k).and_then(Value::as_str))
                    .map(|f| if f.contains('/') { f.to_string() } else { format!("audio/{f}") });
                let mime = own.as_deref().or(mime);
                for (k, v) in m {
                    walk(v, k, mime, n);
                }
            }
            Value::Number(_) | Value::Bool(_) | Value::Null => {}
        }
    }
    let mut n = 0;
    walk(v, "", None, &mut n);
    n
}

fn positive(v: &Value) -> Option<u64> {
    v.as_u64().filter(|n| *n > 0)
}

/// Every value anywhere in `v` under key `key`.
fn all_under<'a>(v: &'a Value, key: &str, out: &mut Vec<&'a Value>) {
    match v {
        Value::Object(m) => {
            for (k, val) in m {
                if k == key {
                    out.push(val);
                }
                all_under(val, key, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| all_under(i, key, out)),
        _ => {}
    }
}

/// What the proxy cannot hold or bill, per endpoint: settings that make
/// the provider do work whose cost the request does not show (stored
/// conversations, background jobs, hosted tools billed per use, files
/// referenced by id or URL whose size is unknown here).
fn unbillable(endpoint: Endpoint, doc: &Value) -> Option<String> {
    let why = |what: &str| {
        Some(format!(
            "{what} is not accepted through Tally's proxy: its cost cannot be held before the call or billed \
             from the answer"
        ))
    };
    // A top-level setting that is set (not null, not false).
    let setting = |keys: &[&'static str]| -> Option<&'static str> {
        keys.iter().find(|k| doc.get(**k).is_some_and(|v| !v.is_null() && v != &Value::Bool(false))).copied()
    };
    // Any of these keys anywhere in the request.
    let anywhere = |keys: &[&str]| {
        let mut found = Vec::new();
        keys.iter().for_each(|k| all_under(doc, k, &mut found));
        found
    };
    // The first tool whose `type` is not one of `allowed`.
    let tool_type = |allowed: &[&str]| {
        doc.get("tools").and_then(Value::as_array)?.iter().find_map(|t| {
            let kind = t.get("type").and_then(Value::as_str).unwrap_or("");
            (!kind.is_empty() && !allowed.contains(&kind)).then(|| kind.to_string())
        })
    };
    match endpoint {
        Endpoint::OpenAiChat => {
            if setting(&["web_search_options"]).is_some() {
                return why("`web_search_options` (searches billed per use)");
            }
            if anywhere(&["file"]).iter().any(|f| f.get("file_id").is_some() && f.get("file_data").is_none()) {
                return why("a file by `file_id` (its size is unknown here; send it as `file_data`)");
            }
        }
        Endpoint::OpenAiResponses => {
            if let Some(k) = setting(&["background", "previous_response_id", "conversation", "prompt"]) {
                return why(&format!("`{k}`"));
            }
            if let Some(kind) = tool_type(&["function", "custom"]) {
                return why(&format!("the hosted tool `{kind}` (billed per use)"));
            }
            if !anywhere(&["file_id", "file_url"]).is_empty() {
                return why("a file by id or URL (its size is unknown here; send it as `file_data`)");
            }
        }
        Endpoint::AnthropicMessages => {
            if let Some(k) = setting(&["mcp_servers", "container"]) {
                return why(&format!("`{k}`"));
            }
            if let Some(kind) = tool_type(&["custom"]) {
                return why(&format!("the server tool `{kind}` (billed per use)"));
            }
            let by_file = anywhere(&["source"]).iter().any(|s| s.get("type").and_then(Value::as_str) == Some("file"));
            let document_url = anywhere(&["content"]).iter().filter_map(|c| c.as_array()).flatten().any(|part| {
                part.get("type").and_then(Value::as_str) == Some("document")
                    && part.pointer("/source/type").and_then(Value::as_str) == Some("url")
            });
            if by_file || document_url {
                return why("a document or file by URL or file id (its size is unknown here; send it inline)");
            }
        }
        Endpoint::GeminiGenerate => {
            if setting(&["cachedContent"]).is_some() {
                return why("`cachedContent`");
            }
            let tool = doc.get("tools").and_then(Value::as_array).and_then(|ts| {
                ts.iter().filter_map(Value::as_object).flat_map(|t| t.keys()).find(|k| *k != "functionDeclarations")
            });
            if let Some(kind) = tool {
                return why(&format!(
                    "the built-in tool `{kind}` (billed per use, or reading what the request does not show)"
                ));
            }
            if !anywhere(&["fileData", "file_data"]).is_empty() {
                return why("`fileData` (a file by URI, whose size is unknown here; send it as `inlineData`)");
            }
        }
        Endpoint::OpenAiEmbeddings | Endpoint::Search => {}
    }
    None
}

/// Reads the call a request to `route` (see [`find_route`]) makes. `Ok(None)`:
/// a free route, forwarded as it is. `Err`: not forwarded (400), with the
/// reason for the client.
pub fn plan(route: &Route, family: Family, path: &str, body: &[u8]) -> Result<Option<CallPlan>, String> {
    let endpoint = match route.bill {
        Bill::Free => return Ok(None),
        Bill::Call(e) => e,
    };
    let doc: Value = if body.is_empty() {
        Value::Object(Default::default())
    } else {
        serde_json::from_slice(body).map_err(|e| format!("the request body is not valid JSON: {e}"))?
    };
    if !doc.is_object() {
        return Err("the request body must be a JSON object".into());
    }
    if let Some(m) = unbillable(endpoint, &doc) {
        return Err(m);
    }
    let str_at = |k: &str| doc.get(k).and_then(Value::as_str).map(str::to_string);
    let last_segment = path.rsplit('/').next().unwrap_or("").to_string();
    let mut plan = CallPlan {
        family,
        endpoint,
        model: str_at("model").filter(|m| !m.is_empty()),
        stream: doc.get("stream").and_then(Value::as_bool).unwrap_or(false),
        // The whole body: messages, system text, tools, functions and
        // response formats all reach the model as input.
        input_estimate: estimate_input(&doc),
        max_output: None,
        choices: 1,
        units: None,
        service_tier: ServiceTier::Standard,
        operation_type: last_segment.clone(),
        rewritten: None,
        hide_usage_chunk: false,
    };
    match endpoint {
        Endpoint::OpenAiChat => {
            plan.operation_type = "chat".into();
            plan.service_tier = openai_tier(str_at("service_tier").as_deref());
            plan.choices = doc.get("n").and_then(positive).unwrap_or(1);
            plan.max_output = doc
                .get("max_completion_tokens")
                .and_then(positive)
                .or_else(|| doc.get("max_tokens").and_then(positive))
                .map(|m| m.saturating_mul(plan.choices));
            let asked = doc.pointer("/stream_options/include_usage").and_then(Value::as_bool) == Some(true);
            // Only OpenAI is known to take `stream_options`; Mistral sends
            // usage in its last chunk unasked.
            if plan.stream && !asked && family == Family::OpenAi {
                let mut d = doc.clone();
                let opts = d
                    .as_object_mut()
                    .expect("a JSON object when it has `stream`")
                    .entry("stream_options")
                    .or_insert_with(|| json!({}));
                if !opts.is_object() {
                    *opts = json!({});
                }
                opts["include_usage"] = json!(true);
                plan.rewritten = Some(serde_json::to_vec(&d).expect("JSON"));
                plan.hide_usage_chunk = true;
            }
        }
        Endpoint::OpenAiResponses => {
            plan.operation_type = "responses".into();
            plan.service_tier = openai_tier(str_at("service_tier").as_deref());
            plan.max_output = doc.get("max_output_tokens").and_then(positive);
        }
        Endpoint::OpenAiEmbeddings => {
            plan.operation_type = "embeddings".into();
            plan.stream = false;
            plan.input_estimate = estimate_input(doc.get("input").unwrap_or(&Value::Null));
            plan.max_output = Some(0);
        }
        Endpoint::AnthropicMessages => {
            plan.operation_type = "messages".into();
            plan.max_output = doc.get("max_tokens").and_then(positive);
            if str_at("service_tier").as_deref() == Some("priority") {
                plan.service_tier = ServiceTier::Priority;
            }
        }
        Endpoint::GeminiGenerate => {
            // `/v1beta/models/gemini-2.5-flash:generateContent`
            let (model, action) = last_segment.split_once(':').unwrap_or((last_segment.as_str(), ""));
            plan.model = Some(model.to_string());
            plan.operation_type = "generate_content".into();
            plan.stream = action == "streamGenerateContent";
            plan.choices = doc.pointer("/generationConfig/candidateCount").and_then(positive).unwrap_or(1);
            plan.max_output = doc
                .pointer("/generationConfig/maxOutputTokens")
                .and_then(positive)
                .map(|m| m.saturating_mul(plan.choices));
        }
        Endpoint::Search => {
            plan.stream = false;
            plan.model = None;
            plan.input_estimate = 0;
            plan.max_output = Some(0);
            plan.units = Some(search_units(family, &last_segment, &doc));
        }
    }
    Ok(Some(plan))
}

fn openai_tier(tier: Option<&str>) -> ServiceTier {
    match tier {
        Some("flex") => ServiceTier::Flex,
        Some("priority") => ServiceTier::Priority,
        _ => ServiceTier::Standard,
    }
}

/// Requests, searches or pages one call is billed for, at most (the
/// providers' credits, with their own defaults when the request sets
/// none): Tavily's advanced search (or one it may choose, with
/// `auto_parameters`) counts two and its extraction one per five URLs;
/// Serper two above ten results; Exa one per search plus one per result
/// whose contents it returns, and one per page of contents; Firecrawl's
/// batch scrapes count their URLs, a crawl its page `limit` (10,000 by
/// default) and a search its result `limit` (5 by default); anything else
/// one.
fn search_units(family: Family, op: &str, doc: &Value) -> u64 {
    let urls = doc.get("urls").and_then(Value::as_array).map(|a| a.len() as u64);
    let advanced = doc.get("search_depth").and_then(Value::as_str) == Some("advanced")
        || doc.get("extract_depth").and_then(Value::as_str) == Some("advanced")
        || doc.get("auto_parameters").and_then(Value::as_bool) == Some(true);
    let per = if advanced { 2 } else { 1 };
    match (family, op) {
        (Family::Tavily, "search") => per,
        (Family::Tavily, "extract") => urls.unwrap_or(1).div_ceil(5).max(1) * per,
        (Family::Serper, _) if doc.get("num").and_then(Value::as_u64).is_some_and(|n| n > 10) => 2,
        (Family::Exa, "contents") => {
            doc.get("ids").or_else(|| doc.get("urls")).and_then(Value::as_array).map_or(1, |a| a.len().max(1) as u64)
        }
        (Family::Exa, "search" | "findSimilar") => {
            let results = doc.get("numResults").and_then(positive).unwrap_or(EXA_DEFAULT_RESULTS);
            let contents = doc.get("contents").is_some_and(|c| !c.is_null() && c != &Value::Bool(false));
            1 + if contents { results } else { 0 }
        }
        (Family::Firecrawl, "crawl") => doc.get("limit").and_then(positive).unwrap_or(FIRECRAWL_DEFAULT_CRAWL_LIMIT),
        (Family::Firecrawl, "search") => doc.get("limit").and_then(positive).unwrap_or(FIRECRAWL_DEFAULT_SEARCH_LIMIT),
        (Family::Firecrawl, "scrape") if urls.is_some() => urls.unwrap_or(1).max(1),
        _ => 1,
    }
}
