//! The one error type that services return and every front door (REST,
//! server functions, CLI) understands.
//!
//! Each variant carries a message safe to show to the caller. Store errors
//! are logged once where they are converted and surface as an opaque
//! `Internal` (or `Unavailable` when the store cannot be reached); a unique
//! violation becomes `Conflict` by error kind, never by message text.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    BadRequest(String),
    #[error("authentication required")]
    Unauthorized,
    #[error("the email or password is not right")]
    InvalidCredentials,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("{0}")]
    Invalid(String),
    /// The gate refuses a model without a price (`TALLY_UNPRICED_POLICY=deny`).
    #[error("{0}")]
    Unpriced(String),
    /// Invalid input, field by field (`field`, `what is wrong`).
    #[error("invalid input: {}", .0.iter().map(|(f, m)| format!("{f}: {m}")).collect::<Vec<_>>().join("; "))]
    InvalidFields(Vec<(String, String)>),
    /// A limit would be exceeded; `retry_after_secs` until it resets.
    #[error("{message}")]
    LimitReached { message: String, retry_after_secs: i64, body: Option<serde_json::Value> },
    /// A prepaid customer's credits do not cover the call's worst case.
    #[error("{message}")]
    InsufficientCredits { message: String, body: Option<serde_json::Value> },
    #[error("the store is unavailable; try again shortly")]
    Unavailable,
    #[error("internal error")]
    Internal,
}

pub type AppResult<T> = Result<T, AppError>;

/// `Retry-After` of a 503 while the store is unavailable.
pub const UNAVAILABLE_RETRY_SECS: i64 = 2;

impl AppError {
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Unauthorized | AppError::InvalidCredentials => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::Invalid(_) | AppError::InvalidFields(_) | AppError::Unpriced(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            AppError::LimitReached { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::InsufficientCredits { .. } => StatusCode::PAYMENT_REQUIRED,
            AppError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The machine code of the contract's error envelope.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::BadRequest(_) => "bad_request",
            AppError::Unauthorized => "unauthorized",
            AppError::InvalidCredentials => "invalid_credentials",
            AppError::Forbidden(_) => "forbidden",
            AppError::NotFound(_) => "not_found",
            AppError::Conflict(_) => "conflict",
            AppError::PayloadTooLarge(_) => "payload_too_large",
            AppError::Invalid(_) | AppError::InvalidFields(_) => "invalid",
            AppError::Unpriced(_) => "unpriced_model",
            AppError::LimitReached { .. } => "limit_reached",
            AppError::InsufficientCredits { .. } => "insufficient_credits",
            AppError::Unavailable => "unavailable",
            AppError::Internal => "internal",
        }
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        if e.is_unavailable() {
            tracing::warn!(error = %e, "store unavailable");
            AppError::Unavailable
        } else if e.is_unique_violation() {
            AppError::Conflict("that already exists".into())
        } else {
            tracing::error!(error = %e, "store error");
            AppError::Internal
        }
    }
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::from(e).into()
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut body = json!({"success": false, "error": self.to_string(), "code": self.code()});
        if let AppError::InvalidFields(fields) = &self {
            body["fields"] = fields.iter().map(|(f, m)| (f.clone(), serde_json::Value::from(m.clone()))).collect();
        }
        // The store comes back by itself (a restart, a failover): say when
        // to try again.
        let mut retry = matches!(self, AppError::Unavailable).then_some(UNAVAILABLE_RETRY_SECS);
        if let AppError::LimitReached { retry_after_secs, .. } = &self {
            retry = Some(*retry_after_secs);
        }
        if let AppError::LimitReached { body: Some(serde_json::Value::Object(m)), .. }
        | AppError::InsufficientCredits { body: Some(serde_json::Value::Object(m)), .. } = &self
        {
            for (k, v) in m {
                body[k] = v.clone();
            }
        }
        let mut resp = (status, axum::Json(body)).into_response();
        if let Some(secs) = retry
            && let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}
