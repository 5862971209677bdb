//! What the tracking proxy knows of each provider's wire protocol: which
//! calls are billable and the most they can use (read from the request),
//! what they did use (read from the answer, streamed or whole), and how
//! each provider words an error. Pure functions over bytes and JSON; the
//! forwarding lives in [`super`].

use crate::domain::provider::Provider;
use crate::domain::provider_usage::UsageFormat;

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

mod observe;
mod plan;
mod refusal;
#[cfg(test)]
mod tests;

pub use observe::*;
pub use plan::*;
pub use refusal::*;
