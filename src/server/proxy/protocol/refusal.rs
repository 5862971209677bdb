//! How each provider words an error, so a refusal reaches the SDK as the
//! error it already raises.

use serde_json::{Value, json};

use super::*;

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
    /// A prepaid customer's credits do not cover the call (402).
    InsufficientCredits,
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
            Refusal::InsufficientCredits => 402,
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
                Refusal::InsufficientCredits => "insufficient_quota",
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
                Refusal::InsufficientCredits => "billing_error",
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
                Refusal::LimitReached | Refusal::InsufficientCredits => "RESOURCE_EXHAUSTED",
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
