//! What the tracking proxy knows of each provider's wire protocol: which
//! calls are billable and the most they can use (read from the request),
//! what they did use (read from the answer, streamed or whole), and how
//! each provider words an error. Pure functions over bytes and JSON; the
//! forwarding lives in [`super`].

use serde_json::{Value, json};

use crate::domain::pricing::{Quantities, ServiceTier};
use crate::domain::provider::Provider;
use crate::domain::provider_usage::{UsageFormat, map_usage};

/// The APIs the proxy speaks, one per provider path segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    OpenAi,
    /// Mistral's API speaks OpenAI's chat completions and embeddings.
    Mistral,
    /// Hugging Face's inference router speaks OpenAI's chat completions.
    HuggingFace,
    Anthropic,
    Gemini,
    Tavily,
    Serper,
    Exa,
    Firecrawl,
}

impl Family {
    pub const ALL: [Family; 9] = [
        Family::OpenAi,
        Family::Mistral,
        Family::HuggingFace,
        Family::Anthropic,
        Family::Gemini,
        Family::Tavily,
        Family::Serper,
        Family::Exa,
        Family::Firecrawl,
    ];

    /// The provider as Tally records it (and as the path names it).
    pub fn slug(self) -> &'static str {
        match self {
            Family::OpenAi => "openai",
            Family::Mistral => "mistral",
            Family::HuggingFace => "huggingface",
            Family::Anthropic => "anthropic",
            Family::Gemini => "gemini",
            Family::Tavily => "tavily",
            Family::Serper => "serper",
            Family::Exa => "metaphor",
            Family::Firecrawl => "firecrawl",
        }
    }

    /// The family a path segment names (`exa` is Metaphor's current name).
    pub fn parse(segment: &str) -> Option<Family> {
        if segment == "exa" {
            return Some(Family::Exa);
        }
        Family::ALL.into_iter().find(|f| f.slug() == segment)
    }

    pub fn provider(self) -> Provider {
        Provider::parse(self.slug()).expect("built-in provider")
    }

    /// `OPENAI` in `TALLY_UPSTREAM_OPENAI_URL`.
    pub fn env_name(self) -> &'static str {
        match self {
            Family::OpenAi => "OPENAI",
            Family::Mistral => "MISTRAL",
            Family::HuggingFace => "HUGGINGFACE",
            Family::Anthropic => "ANTHROPIC",
            Family::Gemini => "GEMINI",
            Family::Tavily => "TAVILY",
            Family::Serper => "SERPER",
            Family::Exa => "METAPHOR",
            Family::Firecrawl => "FIRECRAWL",
        }
    }

    /// The provider's public base URL.
    pub fn default_base(self) -> &'static str {
        match self {
            Family::OpenAi => "https://api.openai.com",
            Family::Mistral => "https://api.mistral.ai",
            Family::HuggingFace => "https://router.huggingface.co",
            Family::Anthropic => "https://api.anthropic.com",
            Family::Gemini => "https://generativelanguage.googleapis.com",
            Family::Tavily => "https://api.tavily.com",
            Family::Serper => "https://google.serper.dev",
            Family::Exa => "https://api.exa.ai",
            Family::Firecrawl => "https://api.firecrawl.dev",
        }
    }

    /// The header that carries the provider key upstream, and its value.
    pub fn auth_header(self, key: &str) -> (&'static str, String) {
        match self {
            Family::OpenAi | Family::Mistral | Family::HuggingFace | Family::Tavily | Family::Firecrawl => {
                ("authorization", format!("Bearer {key}"))
            }
            Family::Anthropic | Family::Exa => ("x-api-key", key.to_string()),
            Family::Gemini => ("x-goog-api-key", key.to_string()),
            Family::Serper => ("x-api-key", key.to_string()),
        }
    }
}

/// The billable calls the proxy understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    OpenAiChat,
    OpenAiResponses,
    OpenAiEmbeddings,
    AnthropicMessages,
    GeminiGenerate,
    /// Search, extraction and scraping: priced per request or unit.
    Search,
}

impl Endpoint {
    /// The provider usage object the answer carries.
    fn usage_format(self) -> Option<UsageFormat> {
        match self {
            Endpoint::OpenAiChat | Endpoint::OpenAiEmbeddings => Some(UsageFormat::OpenAiChat),
            Endpoint::OpenAiResponses => Some(UsageFormat::OpenAiResponses),
            Endpoint::AnthropicMessages => Some(UsageFormat::Anthropic),
            Endpoint::GeminiGenerate => Some(UsageFormat::Gemini),
            Endpoint::Search => None,
        }
    }
}

/// How the proxy treats a route it forwards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bill {
    /// Reads that cost nothing and reveal nothing of other callers
    /// (listing models, counting tokens): forwarded, neither held nor
    /// recorded.
    Free,
    /// Held at its worst case before it is forwarded, and recorded with
    /// what the answer says it used.
    Call(Endpoint),
}

/// One route the proxy forwards. Nothing else is: any other method or path
/// is answered 404 in the provider's error shape and never reaches the
/// provider, so no call (a batch, a file listing, a realtime session that
/// mints a credential, a background job) runs under the operator's key
/// without being held and billed.
#[derive(Clone, Copy, Debug)]
pub struct Route {
    pub families: &'static [Family],
    pub method: &'static str,
    /// `/`-separated segments: a literal, `*` (any one segment), or
    /// `*:action` (a segment `name:action`, Gemini's model calls).
    pub pattern: &'static str,
    pub bill: Bill,
}

const OPENAI_LIKE: &[Family] = &[Family::OpenAi, Family::Mistral, Family::HuggingFace];
const LLMS_ON_V1: &[Family] =
    &[Family::OpenAi, Family::Mistral, Family::HuggingFace, Family::Anthropic, Family::Gemini];
const OPENAI: &[Family] = &[Family::OpenAi];
const EMBEDDERS: &[Family] = &[Family::OpenAi, Family::Mistral];
const ANTHROPIC: &[Family] = &[Family::Anthropic];
const GEMINI: &[Family] = &[Family::Gemini];
const TAVILY: &[Family] = &[Family::Tavily];
const SERPER: &[Family] = &[Family::Serper];
const EXA: &[Family] = &[Family::Exa];
const FIRECRAWL: &[Family] = &[Family::Firecrawl];

const fn route(families: &'static [Family], method: &'static str, pattern: &'static str, bill: Bill) -> Route {
    Route { families, method, pattern, bill }
}

/// Every route the proxy forwards, and how each is held and billed.
pub const ROUTES: &[Route] = &[
    route(LLMS_ON_V1, "GET", "/v1/models", Bill::Free),
    route(LLMS_ON_V1, "GET", "/v1/models/*", Bill::Free),
    route(OPENAI_LIKE, "POST", "/v1/chat/completions", Bill::Call(Endpoint::OpenAiChat)),
    route(EMBEDDERS, "POST", "/v1/embeddings", Bill::Call(Endpoint::OpenAiEmbeddings)),
    route(OPENAI, "POST", "/v1/responses", Bill::Call(Endpoint::OpenAiResponses)),
    route(ANTHROPIC, "POST", "/v1/messages", Bill::Call(Endpoint::AnthropicMessages)),
    route(ANTHROPIC, "POST", "/v1/messages/count_tokens", Bill::Free),
    route(GEMINI, "GET", "/v1beta/models", Bill::Free),
    route(GEMINI, "GET", "/v1beta/models/*", Bill::Free),
    route(GEMINI, "POST", "/v1beta/models/*:generateContent", Bill::Call(Endpoint::GeminiGenerate)),
    route(GEMINI, "POST", "/v1beta/models/*:streamGenerateContent", Bill::Call(Endpoint::GeminiGenerate)),
    route(GEMINI, "POST", "/v1/models/*:generateContent", Bill::Call(Endpoint::GeminiGenerate)),
    route(GEMINI, "POST", "/v1/models/*:streamGenerateContent", Bill::Call(Endpoint::GeminiGenerate)),
    route(GEMINI, "POST", "/v1beta/models/*:countTokens", Bill::Free),
    route(GEMINI, "POST", "/v1/models/*:countTokens", Bill::Free),
    route(TAVILY, "POST", "/search", Bill::Call(Endpoint::Search)),
    route(TAVILY, "POST", "/extract", Bill::Call(Endpoint::Search)),
    route(SERPER, "POST", "/search", Bill::Call(Endpoint::Search)),
    route(SERPER, "POST", "/images", Bill::Call(Endpoint::Search)),
    route(SERPER, "POST", "/news", Bill::Call(Endpoint::Search)),
    route(SERPER, "POST", "/videos", Bill::Call(Endpoint::Search)),
    route(SERPER, "POST", "/places", Bill::Call(Endpoint::Search)),
    route(SERPER, "POST", "/shopping", Bill::Call(Endpoint::Search)),
    route(SERPER, "POST", "/scholar", Bill::Call(Endpoint::Search)),
    route(SERPER, "POST", "/patents", Bill::Call(Endpoint::Search)),
    route(SERPER, "POST", "/autocomplete", Bill::Call(Endpoint::Search)),
    route(EXA, "POST", "/search", Bill::Call(Endpoint::Search)),
    route(EXA, "POST", "/findSimilar", Bill::Call(Endpoint::Search)),
    route(EXA, "POST", "/contents", Bill::Call(Endpoint::Search)),
    route(EXA, "POST", "/answer", Bill::Call(Endpoint::Search)),
    route(FIRECRAWL, "POST", "/v1/scrape", Bill::Call(Endpoint::Search)),
    route(FIRECRAWL, "POST", "/v2/scrape", Bill::Call(Endpoint::Search)),
    route(FIRECRAWL, "POST", "/v1/batch/scrape", Bill::Call(Endpoint::Search)),
    route(FIRECRAWL, "POST", "/v2/batch/scrape", Bill::Call(Endpoint::Search)),
    route(FIRECRAWL, "POST", "/v1/crawl", Bill::Call(Endpoint::Search)),
    route(FIRECRAWL, "POST", "/v2/crawl", Bill::Call(Endpoint::Search)),
    route(FIRECRAWL, "POST", "/v1/map", Bill::Call(Endpoint::Search)),
    route(FIRECRAWL, "POST", "/v2/map", Bill::Call(Endpoint::Search)),
    route(FIRECRAWL, "POST", "/v1/search", Bill::Call(Endpoint::Search)),
    route(FIRECRAWL, "POST", "/v2/search", Bill::Call(Endpoint::Search)),
    // A crawl's pages were all billed when it started (at its page limit);
    // its status and results are read here.
    route(FIRECRAWL, "GET", "/v1/crawl/*", Bill::Free),
    route(FIRECRAWL, "GET", "/v2/crawl/*", Bill::Free),
];

/// The query parameters a billed call may carry (its SDK's): Gemini's
/// `alt=sse` and Anthropic's `beta=true`. Free reads take any.
pub const BILLED_QUERY_PARAMS: &[(Family, &str)] = &[(Family::Gemini, "alt"), (Family::Anthropic, "beta")];

/// Firecrawl's own default page limit of a crawl that sets none.
pub const FIRECRAWL_DEFAULT_CRAWL_LIMIT: u64 = 10_000;
/// Firecrawl's own default result count of a search that sets none.
pub const FIRECRAWL_DEFAULT_SEARCH_LIMIT: u64 = 5;
/// Exa's own default result count.
pub const EXA_DEFAULT_RESULTS: u64 = 10;

fn segment_matches(pattern: &str, segment: &str) -> bool {
    match pattern.strip_prefix("*:") {
        Some(action) => segment
            .strip_suffix(action)
            .and_then(|m| m.strip_suffix(':'))
            .is_some_and(|model| !model.is_empty() && !model.contains(':')),
        None if pattern == "*" => !segment.is_empty(),
        None => pattern == segment,
    }
}

impl Route {
    pub fn matches(&self, family: Family, method: &str, path: &str) -> bool {
        self.families.contains(&family) && self.method == method && {
            let (mut p, mut s) = (self.pattern.split('/'), path.split('/'));
            loop {
                match (p.next(), s.next()) {
                    (None, None) => break true,
                    (Some(p), Some(s)) if segment_matches(p, s) => {}
                    _ => break false,
                }
            }
        }
    }
}

/// The route a request takes, or why it is not forwarded: a path that is
/// not clean ([`clean_path`]) is invalid, one no route lists is not found.
pub fn find_route(family: Family, method: &str, path: &str) -> Result<&'static Route, NotForwarded> {
    clean_path(path).map_err(NotForwarded::Invalid)?;
    ROUTES.iter().find(|r| r.matches(family, method, path)).ok_or_else(|| {
        NotForwarded::NoRoute(format!(
            "Tally's proxy does not forward {method} {path} to {}; see the README for the routes it holds and bills",
            family.slug()
        ))
    })
}

/// Why a request is not forwarded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotForwarded {
    /// No such route: answered 404, in the provider's shape.
    NoRoute(String),
    /// The route is known but the request asks for what Tally cannot hold
    /// or bill (or is malformed): answered 400.
    Invalid(String),
}

/// A path exactly as the provider will read it, or why it is refused: no
/// dot segments, no empty segments, no percent-encoding (an encoded `/` or
/// `.` would reach the provider as something other than what was
/// classified), no backslashes or control characters.
pub fn clean_path(path: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("the proxied path `{}` is refused: {why}", path.escape_debug()));
    if path.contains('%') {
        return bad("percent-encoded characters are not accepted");
    }
    if path.chars().any(|c| c == '\\' || c.is_control() || c.is_whitespace()) {
        return bad("it contains a backslash, a space or a control character");
    }
    let rest = path.strip_prefix('/').unwrap_or(path);
    if rest.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
        return bad("empty, `.` and `..` segments are not accepted");
    }
    Ok(())
}

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
fn tokens_for_chars(chars: u64) -> u64 {
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

/// What a call used, as read from its answer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    /// The provider's own count, when the answer carried one.
    pub usage: Option<Quantities>,
    /// Characters of generated text seen, for an estimate when it did not.
    pub text_chars: u64,
    /// The answer arrived whole. A stream cut short may carry a count
    /// that stops before the text it delivered.
    pub complete: bool,
}

impl Observed {
    /// The quantities to record and whether they are an estimate: the
    /// provider's count, or else the request's input estimate and the text
    /// seen at four characters a token.
    pub fn quantities(&self, plan: &CallPlan) -> (Quantities, bool) {
        let mut q = match self.usage {
            Some(q) if self.complete => (q, false),
            Some(mut q) => {
                q.tokens_output = q.tokens_output.max(tokens_for_chars(self.text_chars));
                (q, true)
            }
            None if plan.endpoint.usage_format().is_none() => (Quantities::default(), false),
            None => (
                Quantities {
                    tokens_input: plan.input_estimate,
                    tokens_output: tokens_for_chars(self.text_chars),
                    ..Quantities::default()
                },
                true,
            ),
        };
        q.0.service_tier = plan.service_tier;
        q.0.units = plan.units.unwrap_or(0);
        q
    }
}

fn usage_from(endpoint: Endpoint, usage: Option<&Value>) -> Option<Quantities> {
    let format = endpoint.usage_format()?;
    usage.filter(|u| u.is_object()).and_then(|u| map_usage(format, u).ok())
}

fn text_chars(v: Option<&Value>) -> u64 {
    v.and_then(Value::as_str).map_or(0, |s| s.chars().count() as u64)
}

/// Characters of generated text in an OpenAI chat choice list (`message`
/// in a whole answer, `delta` in a stream chunk).
fn chat_text(choices: Option<&Value>, field: &str) -> u64 {
    choices.and_then(Value::as_array).map_or(0, |cs| {
        cs.iter()
            .map(|c| {
                let m = c.get(field);
                let tools = m
                    .and_then(|m| m.get("tool_calls"))
                    .and_then(Value::as_array)
                    .map_or(0, |ts| ts.iter().map(|t| text_chars(t.pointer("/function/arguments"))).sum::<u64>());
                text_chars(m.and_then(|m| m.get("content"))) + tools
            })
            .sum()
    })
}

fn gemini_text(v: &Value) -> u64 {
    v.get("candidates").and_then(Value::as_array).map_or(0, |cs| {
        cs.iter()
            .flat_map(|c| c.pointer("/content/parts").and_then(Value::as_array).into_iter().flatten())
            .map(|p| text_chars(p.get("text")))
            .sum()
    })
}

/// Usage from a whole (not streamed) answer body.
pub fn observe_body(endpoint: Endpoint, body: &[u8]) -> Observed {
    let Ok(doc) = serde_json::from_slice::<Value>(body) else {
        // Not JSON (or cut short): only its length says anything.
        return Observed { usage: None, text_chars: body.len() as u64, complete: false };
    };
    match endpoint {
        Endpoint::OpenAiChat => Observed {
            usage: usage_from(endpoint, doc.get("usage")),
            text_chars: chat_text(doc.get("choices"), "message"),
            complete: true,
        },
        Endpoint::OpenAiResponses | Endpoint::OpenAiEmbeddings | Endpoint::AnthropicMessages => {
            Observed { usage: usage_from(endpoint, doc.get("usage")), text_chars: 0, complete: true }
        }
        Endpoint::GeminiGenerate => {
            // A streamed generation asked for without `alt=sse` is one JSON
            // array of answers; the last count is the call's.
            let items: Vec<&Value> = match &doc {
                Value::Array(items) => items.iter().collect(),
                one => vec![one],
            };
            Observed {
                usage: items.iter().rev().find_map(|i| usage_from(endpoint, i.get("usageMetadata"))),
                text_chars: items.iter().map(|i| gemini_text(i)).sum(),
                complete: true,
            }
        }
        Endpoint::Search => Observed { complete: true, ..Observed::default() },
    }
}

/// Reads a server-sent event stream as it passes: forwards each event
/// whole as soon as it is complete (so a client never waits on the proxy
/// for more than the rest of an event), keeps the usage it carries, counts
/// the generated text, and drops the usage chunk the proxy asked for on a
/// client's behalf.
#[derive(Debug)]
pub struct StreamTap {
    endpoint: Endpoint,
    hide_usage_chunk: bool,
    /// Not server-sent events (Gemini's stream without `alt=sse` is one
    /// JSON array sent in parts): passed on as it comes and read whole at
    /// the end.
    raw: bool,
    pending: Vec<u8>,
    /// The usage object so far (Anthropic's grows across events).
    usage: Option<Value>,
    /// Usage read from a raw stream at its end.
    usage_seen: Option<Quantities>,
    text_chars: u64,
}

impl StreamTap {
    pub fn new(plan: &CallPlan, sse: bool) -> StreamTap {
        StreamTap {
            endpoint: plan.endpoint,
            hide_usage_chunk: plan.hide_usage_chunk,
            raw: !sse,
            pending: Vec::new(),
            usage: None,
            usage_seen: None,
            text_chars: 0,
        }
    }

    /// Takes a chunk from upstream; the bytes to send the client now.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<u8> {
        if self.raw {
            if self.pending.len() + chunk.len() <= MAX_RAW_STREAM_BYTES {
                self.pending.extend_from_slice(chunk);
            } else {
                self.text_chars += chunk.len() as u64;
            }
            return chunk.to_vec();
        }
        let mut pending = std::mem::take(&mut self.pending);
        pending.extend_from_slice(chunk);
        let mut out = Vec::with_capacity(pending.len());
        let mut start = 0;
        while let Some((end, sep)) = event_end(&pending[start..]) {
            if self.inspect(&pending[start..start + end]) {
                out.extend_from_slice(&pending[start..start + end + sep]);
            }
            start += end + sep;
        }
        pending.drain(..start);
        self.pending = pending;
        out
    }

    /// The stream ended: whatever incomplete event is left, as it came.
    pub fn finish(&mut self) -> Vec<u8> {
        if self.raw {
            let o = observe_body(self.endpoint, &self.pending);
            self.usage_seen = o.usage;
            self.text_chars += o.text_chars;
            self.pending.clear();
            return Vec::new();
        }
        let rest = std::mem::take(&mut self.pending);
        if !rest.is_empty() {
            self.inspect(&rest);
        }
        rest
    }

    /// What the stream showed; complete unless the caller knows better.
    pub fn observed(&self) -> Observed {
        Observed {
            usage: self.usage_seen.or_else(|| usage_from(self.endpoint, self.usage.as_ref())),
            text_chars: self.text_chars,
            complete: true,
        }
    }

    /// Reads one event; whether to forward it.
    fn inspect(&mut self, event: &[u8]) -> bool {
        let Ok(text) = std::str::from_utf8(event) else { return true };
        let mut data = String::new();
        for line in text.lines() {
            if let Some(d) = line.strip_prefix("data:") {
                if !data.is_empty() {
                    data.push('\n');
                }
                data.push_str(d.strip_prefix(' ').unwrap_or(d));
            }
        }
        if !data.starts_with('{') {
            return true;
        }
        let Ok(v) = serde_json::from_str::<Value>(&data) else { return true };
        match self.endpoint {
            Endpoint::OpenAiChat => {
                self.text_chars += chat_text(v.get("choices"), "delta");
                if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
                    self.usage = Some(u.clone());
                    let no_choices = v.get("choices").and_then(Value::as_array).is_none_or(Vec::is_empty);
                    if self.hide_usage_chunk && no_choices {
                        return false;
                    }
                }
            }
            Endpoint::OpenAiResponses => match v.get("type").and_then(Value::as_str) {
                Some("response.output_text.delta" | "response.function_call_arguments.delta") => {
                    self.text_chars += text_chars(v.get("delta"));
                }
                Some("response.completed" | "response.incomplete" | "response.failed") => {
                    if let Some(u) = v.pointer("/response/usage").filter(|u| u.is_object()) {
                        self.usage = Some(u.clone());
                    }
                }
                _ => {}
            },
            Endpoint::AnthropicMessages => match v.get("type").and_then(Value::as_str) {
                Some("message_start") => {
                    if let Some(u) = v.pointer("/message/usage").filter(|u| u.is_object()) {
                        self.usage = Some(u.clone());
                    }
                }
                Some("message_delta") => {
                    // Later counts replace earlier ones, field by field.
                    if let Some(Value::Object(delta)) = v.get("usage") {
                        let usage = self.usage.get_or_insert_with(|| json!({}));
                        for (k, val) in delta {
                            if !val.is_null() {
                                usage[k.as_str()] = val.clone();
                            }
                        }
                    }
                }
                Some("content_block_delta") => {
                    let d = v.get("delta");
                    self.text_chars += ["text", "thinking", "partial_json"]
                        .iter()
                        .map(|k| text_chars(d.and_then(|d| d.get(*k))))
                        .sum::<u64>();
                }
                _ => {}
            },
            Endpoint::GeminiGenerate => {
                self.text_chars += gemini_text(&v);
                if let Some(u) = v.get("usageMetadata").filter(|u| u.is_object()) {
                    self.usage = Some(u.clone());
                }
            }
            Endpoint::OpenAiEmbeddings | Endpoint::Search => {}
        }
        true
    }
}

/// The most of a raw stream kept to read its usage at the end.
const MAX_RAW_STREAM_BYTES: usize = 64 * 1024 * 1024;

/// Where the first complete event of `buf` ends, and the separator's
/// length (`\n\n`, `\r\n\r\n` or `\r\r`).
fn event_end(buf: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i + 1 < buf.len() {
        match (buf[i], buf[i + 1]) {
            (b'\n', b'\n') | (b'\r', b'\r') => return Some((i, 2)),
            (b'\r', b'\n') if buf[i + 2..].starts_with(b"\r\n") => return Some((i, 4)),
            _ => i += 1,
        }
    }
    None
}

/// Why the proxy itself answers instead of the provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    Unauthenticated,
    /// A route the proxy does not forward.
    NotFound,
    /// The call's event id was used already.
    Conflict,
    Forbidden,
    Invalid,
    Unpriced,
    LimitReached,
    TooLarge,
    UpstreamFailed,
    UpstreamTimeout,
    /// Tally's store is unreachable for now.
    Unavailable,
    Internal,
}

impl Refusal {
    pub fn status(self) -> u16 {
        match self {
            Refusal::Unauthenticated => 401,
            Refusal::NotFound => 404,
            Refusal::Conflict => 409,
            Refusal::Forbidden => 403,
            Refusal::Invalid => 400,
            Refusal::Unpriced => 422,
            Refusal::LimitReached => 429,
            Refusal::TooLarge => 413,
            Refusal::UpstreamFailed => 502,
            Refusal::UpstreamTimeout => 504,
            Refusal::Unavailable => 503,
            Refusal::Internal => 500,
        }
    }
}

/// The error body in the provider's own shape, so its SDK raises its usual
/// error (a 429 becomes the SDK's rate-limit error) with Tally's message.
/// `code` names the limit that denied, when one did.
pub fn error_body(family: Family, refusal: Refusal, message: &str, code: Option<&str>) -> Value {
    let status = refusal.status();
    match family {
        Family::OpenAi | Family::Mistral | Family::HuggingFace => {
            let kind = match refusal {
                Refusal::Unauthenticated => "authentication_error",
                Refusal::Forbidden => "permission_error",
                Refusal::Invalid | Refusal::Unpriced | Refusal::TooLarge | Refusal::NotFound | Refusal::Conflict => {
                    "invalid_request_error"
                }
                Refusal::LimitReached => "tally_limit_exceeded",
                Refusal::UpstreamFailed | Refusal::UpstreamTimeout | Refusal::Unavailable | Refusal::Internal => {
                    "server_error"
                }
            };
            json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
        }
        Family::Anthropic => {
            let kind = match refusal {
                Refusal::Unauthenticated => "authentication_error",
                Refusal::Forbidden => "permission_error",
                Refusal::Invalid | Refusal::Unpriced | Refusal::Conflict => "invalid_request_error",
                Refusal::NotFound => "not_found_error",
                Refusal::TooLarge => "request_too_large",
                Refusal::LimitReached => "rate_limit_error",
                Refusal::Unavailable => "overloaded_error",
                Refusal::UpstreamFailed | Refusal::UpstreamTimeout | Refusal::Internal => "api_error",
            };
            json!({"type": "error", "error": {"type": kind, "message": message}})
        }
        Family::Gemini => {
            let kind = match refusal {
                Refusal::Unauthenticated => "UNAUTHENTICATED",
                Refusal::Forbidden => "PERMISSION_DENIED",
                Refusal::Invalid | Refusal::Unpriced | Refusal::TooLarge => "INVALID_ARGUMENT",
                Refusal::NotFound => "NOT_FOUND",
                Refusal::Conflict => "ALREADY_EXISTS",
                Refusal::LimitReached => "RESOURCE_EXHAUSTED",
                Refusal::UpstreamFailed | Refusal::Unavailable => "UNAVAILABLE",
                Refusal::UpstreamTimeout => "DEADLINE_EXCEEDED",
                Refusal::Internal => "INTERNAL",
            };
            json!({"error": {"code": status, "message": message, "status": kind}})
        }
        Family::Tavily => json!({"detail": {"error": message}}),
        Family::Serper => json!({"message": message, "statusCode": status}),
        Family::Exa => json!({"error": message, "tag": code}),
        Family::Firecrawl => json!({"success": false, "error": message}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The proxy's families and the built-in providers agree: each family
    /// records as a built-in provider, and a built-in provider without a
    /// family is one of those known not to be proxied.
    #[test]
    fn families_and_builtin_providers_agree() {
        use crate::domain::provider::BUILTIN_PROVIDERS;
        for f in Family::ALL {
            assert!(f.provider().is_builtin(), "{f:?} records as `{}`, which is not built in", f.slug());
            assert_eq!(Family::parse(f.slug()), Some(f));
        }
        let unproxied: Vec<&str> =
            BUILTIN_PROVIDERS.iter().map(|(p, _)| *p).filter(|p| Family::ALL.iter().all(|f| f.slug() != *p)).collect();
        // Stability's API is not proxied; `video` and `image_edit` are the
        // family A client's pseudo-providers. A new built-in provider
        // fails here until someone decides whether it is proxied.
        assert_eq!(unproxied, ["stability", "video", "image_edit"]);
    }

    /// A request read as the proxy reads it: its route, then its plan.
    fn read(family: Family, method: &str, path: &str, body: &[u8]) -> Result<Option<CallPlan>, NotForwarded> {
        let route = find_route(family, method, path)?;
        plan(route, family, path, body).map_err(NotForwarded::Invalid)
    }

    fn plan_of(family: Family, path: &str, body: Value) -> CallPlan {
        read(family, "POST", path, body.to_string().as_bytes()).unwrap().unwrap()
    }

    #[test]
    fn requests_say_what_to_hold() {
        let p = plan_of(
            Family::OpenAi,
            "/v1/chat/completions",
            json!({"model": "gpt-4o", "max_tokens": 100, "n": 2, "messages": [{"role": "user", "content": "x".repeat(400)}]}),
        );
        assert_eq!(
            (p.endpoint, p.model.as_deref(), p.max_output, p.stream),
            (Endpoint::OpenAiChat, Some("gpt-4o"), Some(200), false)
        );
        // 400 characters of content is 100 tokens; the model, "user" and
        // framing add a few.
        assert!((100..=115).contains(&p.input_estimate), "{}", p.input_estimate);
        let p =
            plan_of(Family::OpenAi, "/v1/responses", json!({"model": "gpt-5", "input": "hi", "max_output_tokens": 50}));
        assert_eq!((p.endpoint, p.max_output), (Endpoint::OpenAiResponses, Some(50)));
        let p =
            plan_of(Family::OpenAi, "/v1/embeddings", json!({"model": "text-embedding-3-small", "input": [1, 2, 3]}));
        assert_eq!((p.endpoint, p.input_estimate, p.max_output), (Endpoint::OpenAiEmbeddings, 3, Some(0)));
        let p = plan_of(
            Family::Anthropic,
            "/v1/messages",
            json!({"model": "claude-sonnet-4-5", "max_tokens": 1024, "stream": true, "messages": []}),
        );
        assert_eq!(
            (p.endpoint, p.max_output, p.stream, p.rewritten.is_none()),
            (Endpoint::AnthropicMessages, Some(1024), true, true)
        );
        let p = plan_of(
            Family::Gemini,
            "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
            json!({"contents": [{"parts": [{"text": "hello"}]}], "generationConfig": {"maxOutputTokens": 64}}),
        );
        assert_eq!((p.model.as_deref(), p.stream, p.max_output), (Some("gemini-2.5-flash"), true, Some(64)));
        let p = plan_of(Family::Tavily, "/search", json!({"query": "q", "search_depth": "advanced"}));
        assert_eq!((p.endpoint, p.units, p.operation_type.as_str()), (Endpoint::Search, Some(2), "search"));
        let p = plan_of(Family::Tavily, "/extract", json!({"urls": ["a", "b", "c", "d", "e", "f"]}));
        assert_eq!(p.units, Some(2));
        let p = plan_of(Family::Firecrawl, "/v1/crawl", json!({"url": "https://x", "limit": 25}));
        assert_eq!(p.units, Some(25));
        assert_eq!(read(Family::OpenAi, "GET", "/v1/models", b"").unwrap(), None);
        assert_eq!(read(Family::Anthropic, "POST", "/v1/messages/count_tokens", b"{}").unwrap(), None);
        assert!(matches!(
            read(Family::OpenAi, "POST", "/v1/chat/completions", b"{not json"),
            Err(NotForwarded::Invalid(m)) if m.contains("not valid JSON")
        ));
    }

    #[test]
    fn openai_compatible_apis_are_read_alike_without_the_rewrite() {
        let body = json!({"model": "mistral-large-latest", "stream": true, "max_tokens": 64, "messages": []});
        for f in [Family::Mistral, Family::HuggingFace] {
            let p = plan_of(f, "/v1/chat/completions", body.clone());
            assert_eq!(
                (p.endpoint, p.max_output, p.rewritten.is_none()),
                (Endpoint::OpenAiChat, Some(64), true),
                "{f:?}"
            );
            // Mistral's last chunk carries usage beside its choice.
            let mut tap = StreamTap::new(&p, true);
            let out = tap.feed(
                b"data: {\"choices\":[{\"delta\":{\"content\":\"ok\"},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":1}}\n\n",
            );
            assert!(String::from_utf8(out).unwrap().contains("prompt_tokens"), "nothing hidden");
            let (q, estimated) = tap.observed().quantities(&p);
            assert_eq!((q.tokens_input, q.tokens_output, estimated), (7, 1, false));
            assert_eq!(f.auth_header("k"), ("authorization", "Bearer k".to_string()));
        }
    }

    #[test]
    fn images_are_held_at_a_fixed_size_and_other_files_by_theirs() {
        let image = format!("data:image/png;base64,{}", "A".repeat(1_000_000));
        let n =
            estimate_input(&json!([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": image}}]}]));
        assert!((IMAGE_TOKENS..IMAGE_TOKENS + 100).contains(&n), "{n}");
        // An image by URL is held as an image, not as the URL's text.
        let n = estimate_input(&json!({"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}));
        assert!(n >= IMAGE_TOKENS, "{n}");
        // 1.2 MB of base64 (900 kB) of PDF, in each provider's shape: two
        // tokens a byte; audio at one per 8 bytes; plain text at one a byte.
        let b64 = "A".repeat(1_200_000);
        for doc in [
            json!({"type": "file", "file": {"file_data": format!("data:application/pdf;base64,{b64}")}}),
            json!({"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": b64}}),
            json!({"inlineData": {"mimeType": "application/pdf", "data": b64}}),
        ] {
            let n = estimate_input(&doc);
            assert!((1_800_000..1_800_100).contains(&n), "{n}: {doc}");
        }
        let n = estimate_input(&json!({"input_audio": {"format": "wav", "data": b64}}));
        assert!((112_500..112_600).contains(&n), "{n}");
        let n = estimate_input(&json!({"inlineData": {"mimeType": "text/plain", "data": b64}}));
        assert!((900_000..900_100).contains(&n), "{n}");
        // Small inline files still hold a floor.
        assert_eq!(file_tokens(Some("audio/mp3"), 400), 1_600);
    }

    #[test]
    fn only_listed_routes_are_forwarded() {
        let body = br#"{"model": "gpt-4o", "input": "x", "prompt": "y"}"#;
        for (family, method, path) in [
            (Family::OpenAi, "POST", "/v1/completions"),
            (Family::OpenAi, "GET", "/v1/files"),
            (Family::OpenAi, "POST", "/v1/realtime/sessions"),
            (Family::OpenAi, "POST", "/v1/batches"),
            (Family::OpenAi, "GET", "/v1/responses/resp_1"),
            (Family::OpenAi, "HEAD", "/v1/models"),
            (Family::OpenAi, "OPTIONS", "/v1/chat/completions"),
            (Family::OpenAi, "POST", "/v1/images/generations"),
            (Family::Anthropic, "POST", "/v1/chat/completions"),
            (Family::Anthropic, "POST", "/v1/messages/batches"),
            (Family::Gemini, "POST", "/v1beta/models/gemini-2.5-flash:batchGenerateContent"),
            (Family::Gemini, "POST", "/v1beta/models/gemini-2.5-flash:embedContent"),
            (Family::Gemini, "GET", "/v1beta/files"),
            (Family::Gemini, "POST", "/v1beta/models/:generateContent"),
            (Family::Serper, "GET", "/search"),
            (Family::Tavily, "POST", "/crawl"),
            (Family::HuggingFace, "POST", "/v1/embeddings"),
            (Family::Mistral, "POST", "/v1/responses"),
        ] {
            assert!(
                matches!(read(family, method, path, body), Err(NotForwarded::NoRoute(_))),
                "{family:?} {method} {path}"
            );
        }
        for path in ["/v1/../v1/files", "/v1/./chat/completions", "/v1//chat/completions", "/v1/chat%2Fcompletions"] {
            assert!(
                matches!(read(Family::OpenAi, "POST", path, b"{}"), Err(NotForwarded::Invalid(m)) if m.contains("refused")),
                "{path}"
            );
        }
        // Every listed route of a family that is not free bills something.
        for r in ROUTES {
            for f in r.families {
                assert!(find_route(*f, r.method, &r.pattern.replace("*", "m")).is_ok(), "{r:?}");
                let counting = r.pattern.ends_with("count_tokens") || r.pattern.ends_with(":countTokens");
                assert_eq!(
                    r.method == "GET" || counting,
                    r.bill == Bill::Free,
                    "only reads and counting are free: {r:?}"
                );
            }
        }
    }

    #[test]
    fn work_the_request_does_not_show_is_refused() {
        for (family, path, body, what) in [
            (
                Family::OpenAi,
                "/v1/responses",
                json!({"model": "gpt-4o", "input": "x", "background": true}),
                "background",
            ),
            (
                Family::OpenAi,
                "/v1/responses",
                json!({"model": "gpt-4o", "previous_response_id": "resp_1"}),
                "previous_response_id",
            ),
            (
                Family::OpenAi,
                "/v1/responses",
                json!({"model": "gpt-4o", "tools": [{"type": "web_search"}]}),
                "web_search",
            ),
            (
                Family::OpenAi,
                "/v1/responses",
                json!({"model": "gpt-4o", "input": [{"content": [{"type": "input_file", "file_id": "f"}]}]}),
                "file",
            ),
            (
                Family::OpenAi,
                "/v1/chat/completions",
                json!({"model": "gpt-4o", "web_search_options": {}}),
                "web_search_options",
            ),
            (
                Family::OpenAi,
                "/v1/chat/completions",
                json!({"model": "gpt-4o", "messages": [{"content": [{"type": "file", "file": {"file_id": "f"}}]}]}),
                "file_id",
            ),
            (
                Family::Anthropic,
                "/v1/messages",
                json!({"model": "c", "max_tokens": 5, "tools": [{"type": "web_search_20250305", "name": "web_search"}]}),
                "web_search_20250305",
            ),
            (
                Family::Anthropic,
                "/v1/messages",
                json!({"model": "c", "max_tokens": 5, "mcp_servers": [{}]}),
                "mcp_servers",
            ),
            (
                Family::Anthropic,
                "/v1/messages",
                json!({"model": "c", "max_tokens": 5, "messages": [{"content": [{"type": "document", "source": {"type": "url", "url": "https://x/a.pdf"}}]}]}),
                "URL",
            ),
            (
                Family::Gemini,
                "/v1beta/models/g:generateContent",
                json!({"cachedContent": "cachedContents/1"}),
                "cachedContent",
            ),
            (
                Family::Gemini,
                "/v1beta/models/g:generateContent",
                json!({"tools": [{"googleSearch": {}}]}),
                "googleSearch",
            ),
            (
                Family::Gemini,
                "/v1beta/models/g:generateContent",
                json!({"contents": [{"parts": [{"fileData": {"fileUri": "x"}}]}]}),
                "fileData",
            ),
        ] {
            match read(family, "POST", path, body.to_string().as_bytes()) {
                Err(NotForwarded::Invalid(m)) => assert!(m.contains(what) && m.contains("cannot be held"), "{m}"),
                other => panic!("{body} was {other:?}"),
            }
        }
        // Function tools are fine, and count as input.
        let p = plan_of(
            Family::OpenAi,
            "/v1/chat/completions",
            json!({"model": "gpt-4o", "messages": [], "tools": [{"type": "function", "function": {"name": "f", "description": "d".repeat(4000)}}]}),
        );
        assert!(p.input_estimate >= 1000, "{}", p.input_estimate);
    }

    #[test]
    fn holds_count_every_answer_and_each_providers_defaults() {
        // `n` without a maximum: the fallback maximum is held n times.
        let p = plan_of(Family::OpenAi, "/v1/chat/completions", json!({"model": "gpt-4o", "n": 8, "messages": []}));
        assert_eq!((p.max_output, p.choices), (None, 8));
        let p = plan_of(
            Family::Gemini,
            "/v1beta/models/g:generateContent",
            json!({"generationConfig": {"candidateCount": 4, "maxOutputTokens": 100}}),
        );
        assert_eq!((p.max_output, p.choices), (Some(400), 4));
        // System text, response formats and functions are input too.
        let big = "x".repeat(40_000);
        for body in [
            json!({"model": "gpt-4o", "messages": [], "response_format": {"type": "json_schema", "json_schema": {"description": big}}}),
            json!({"model": "gpt-4o", "messages": [], "functions": [{"name": "f", "description": big}]}),
        ] {
            assert!(plan_of(Family::OpenAi, "/v1/chat/completions", body).input_estimate >= 10_000);
        }
        let p = plan_of(Family::Anthropic, "/v1/messages", json!({"model": "c", "max_tokens": 5, "system": big}));
        assert!(p.input_estimate >= 10_000);
        // A crawl without a limit holds Firecrawl's own default.
        let p = plan_of(Family::Firecrawl, "/v1/crawl", json!({"url": "https://x"}));
        assert_eq!(p.units, Some(FIRECRAWL_DEFAULT_CRAWL_LIMIT));
        let p = plan_of(Family::Firecrawl, "/v2/search", json!({"query": "q"}));
        assert_eq!(p.units, Some(FIRECRAWL_DEFAULT_SEARCH_LIMIT));
        let p = plan_of(Family::Serper, "/news", json!({"q": "q", "num": 100}));
        assert_eq!(p.units, Some(2));
        let p = plan_of(Family::Exa, "/search", json!({"query": "q", "contents": {"text": true}}));
        assert_eq!(p.units, Some(1 + EXA_DEFAULT_RESULTS));
        let p = plan_of(Family::Tavily, "/search", json!({"query": "q", "auto_parameters": true}));
        assert_eq!(p.units, Some(2));
    }

    #[test]
    fn openai_streams_ask_for_usage_and_hide_the_extra_chunk() {
        let p =
            plan_of(Family::OpenAi, "/v1/chat/completions", json!({"model": "gpt-4o", "stream": true, "messages": []}));
        assert!(p.hide_usage_chunk);
        let sent: Value = serde_json::from_slice(p.rewritten.as_ref().unwrap()).unwrap();
        assert_eq!(sent["stream_options"]["include_usage"], json!(true));
        let mut tap = StreamTap::new(&p, true);
        let mut out = tap.feed(b"data: {\"choices\":[{\"delta\":{\"content\":\"Hel");
        assert!(out.is_empty(), "half an event waits for its end");
        out.extend(tap.feed(b"lo\"}}],\"usage\":null}\n\n"));
        out.extend(tap.feed(
            b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2}}\n\ndata: [DONE]\n\n",
        ));
        out.extend(tap.finish());
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("Hello") && text.ends_with("data: [DONE]\n\n") && !text.contains("prompt_tokens"),
            "{text}"
        );
        let (q, estimated) = tap.observed().quantities(&p);
        assert_eq!((q.tokens_input, q.tokens_output, estimated), (9, 2, false));

        // A client that asked for usage sees it.
        let p = plan_of(
            Family::OpenAi,
            "/v1/chat/completions",
            json!({"model": "gpt-4o", "stream": true, "stream_options": {"include_usage": true}, "messages": []}),
        );
        assert!(p.rewritten.is_none() && !p.hide_usage_chunk);
        let mut tap = StreamTap::new(&p, true);
        let out = tap.feed(b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2}}\r\n\r\n");
        assert!(String::from_utf8(out).unwrap().contains("prompt_tokens"));
    }

    #[test]
    fn anthropic_usage_grows_across_events() {
        let p =
            plan_of(Family::Anthropic, "/v1/messages", json!({"model": "claude", "max_tokens": 10, "stream": true}));
        let mut tap = StreamTap::new(&p, true);
        let stream = concat!(
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":25,\"cache_read_input_tokens\":100,\"output_tokens\":1}}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi there\"}}\n\n",
            "event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":15}}\n\n",
        );
        // Byte by byte: events still come out whole and in order.
        let out: Vec<u8> = stream.as_bytes().iter().flat_map(|b| tap.feed(&[*b])).collect();
        assert_eq!(out, stream.as_bytes());
        let (q, estimated) = tap.observed().quantities(&p);
        assert_eq!((q.tokens_input, q.tokens_cached_input, q.tokens_output, estimated), (125, 100, 15, false));
    }

    #[test]
    fn responses_streams_carry_usage_in_their_last_event() {
        let p = plan_of(Family::OpenAi, "/v1/responses", json!({"model": "gpt-5", "input": "hi", "stream": true}));
        assert!(p.rewritten.is_none(), "the Responses API always reports usage");
        let mut tap = StreamTap::new(&p, true);
        let stream = concat!(
            "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"usage\":null}}\n\n",
            "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"Hi there\"}\n\n",
            "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"usage\":",
            "{\"input_tokens\":11,\"output_tokens\":3,\"output_tokens_details\":{\"reasoning_tokens\":1}}}}\n\n",
        );
        let out = tap.feed(stream.as_bytes());
        assert_eq!(out, stream.as_bytes(), "every event passes");
        let (q, estimated) = tap.observed().quantities(&p);
        assert_eq!((q.tokens_input, q.tokens_output, q.tokens_reasoning, estimated), (11, 3, 1, false));
        // Cut before `response.completed`: the text seen, estimated.
        let mut tap = StreamTap::new(&p, true);
        tap.feed(&stream.as_bytes()[..stream.find("event: response.completed").unwrap()]);
        let mut o = tap.observed();
        o.complete = false;
        let (q, estimated) = o.quantities(&p);
        assert_eq!((q.tokens_output, estimated), (2, true));
    }

    #[test]
    fn a_cut_stream_is_estimated_from_its_text() {
        let p = plan_of(
            Family::Gemini,
            "/v1beta/models/gemini-2.5-pro:streamGenerateContent",
            json!({"contents": [{"parts": [{"text": "x".repeat(40)}]}]}),
        );
        let mut tap = StreamTap::new(&p, true);
        tap.feed(b"data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"12345678\"}]}}]}\n\n");
        let (q, estimated) = tap.observed().quantities(&p);
        assert!(estimated);
        assert_eq!(q.tokens_output, 2);
        assert_eq!(q.tokens_input, p.input_estimate);
        tap.feed(b"data: {\"candidates\":[],\"usageMetadata\":{\"promptTokenCount\":12,\"candidatesTokenCount\":3,\"thoughtsTokenCount\":4}}\n\n");
        let (q, estimated) = tap.observed().quantities(&p);
        assert_eq!((q.tokens_input, q.tokens_output, q.tokens_reasoning, estimated), (12, 7, 4, false));
    }

    #[test]
    fn whole_answers_carry_usage() {
        let p = plan_of(Family::OpenAi, "/v1/responses", json!({"model": "gpt-5", "input": "hi"}));
        let o = observe_body(
            p.endpoint,
            br#"{"usage":{"input_tokens":5,"input_tokens_details":{"cached_tokens":2},"output_tokens":8}}"#,
        );
        assert_eq!(o.usage.map(|q| (q.tokens_input, q.tokens_cached_input, q.tokens_output)), Some((5, 2, 8)));
        let p = plan_of(Family::Gemini, "/v1beta/models/g:streamGenerateContent", json!({}));
        let o = observe_body(
            p.endpoint,
            br#"[{"candidates":[]},{"usageMetadata":{"promptTokenCount":3,"candidatesTokenCount":4}}]"#,
        );
        assert_eq!(o.usage.map(|q| (q.tokens_input, q.tokens_output)), Some((3, 4)));
        let p = plan_of(Family::Serper, "/search", json!({"q": "x"}));
        let (q, estimated) = observe_body(p.endpoint, b"{}").quantities(&p);
        assert_eq!((q.units, q.tokens_input, estimated), (1, 0, false));
    }

    #[test]
    fn errors_speak_each_providers_shape() {
        let m = "OpenAI tokens limit reached";
        let o = error_body(Family::OpenAi, Refusal::LimitReached, m, Some("openai_tokens"));
        assert_eq!(o["error"]["message"], json!(m));
        assert_eq!(o["error"]["code"], json!("openai_tokens"));
        let a = error_body(Family::Anthropic, Refusal::LimitReached, m, None);
        assert_eq!((a["type"].as_str(), a["error"]["type"].as_str()), (Some("error"), Some("rate_limit_error")));
        let g = error_body(Family::Gemini, Refusal::LimitReached, m, None);
        assert_eq!(
            (g["error"]["code"].as_u64(), g["error"]["status"].as_str()),
            (Some(429), Some("RESOURCE_EXHAUSTED"))
        );
        for f in Family::ALL {
            assert!(error_body(f, Refusal::LimitReached, m, None).to_string().contains(m), "{f:?}");
            assert_eq!(Family::parse(f.slug()), Some(f));
        }
        assert_eq!(Family::parse("exa"), Some(Family::Exa));
    }
}
