//! Signing in and out, the current user, password changes.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// The signed-in user, as the browser may know it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Me {
    pub id: String,
    pub email: String,
    pub name: String,
    pub is_admin: bool,
}

/// A form's failure: a message, and problems by field.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormError {
    pub message: String,
    pub fields: Vec<(String, String)>,
}

impl FormError {
    pub fn field(&self, name: &str) -> Option<String> {
        self.fields.iter().find(|(f, _)| f == name).map(|(_, m)| m.clone())
    }
}

#[cfg(feature = "ssr")]
pub mod ssr {
    //! Server-side helpers shared by every server function.
    use leptos::prelude::ServerFnError;

    use super::FormError;
    use crate::server::error::AppError;
    use crate::server::rest::principal::Principal;
    use crate::server::state::AppState;

    /// The state and the caller of the current server function.
    pub async fn caller() -> Result<(AppState, Principal), ServerFnError> {
        let state = AppState::from_context()?;
        let principal: Principal = leptos_axum::extract_with_state(&state).await?;
        Ok((state, principal))
    }

    /// The user a read is about (`user`, else the caller's own), checked
    /// against the caller's rights.
    pub async fn reader_of(user: Option<String>) -> Result<(AppState, Principal, String), ServerFnError> {
        let (state, principal) = caller().await?;
        let own = principal.own_user().map(str::to_string);
        let user_id = user.filter(|u| !u.is_empty()).or(own).ok_or_else(|| fail(AppError::Unauthorized))?;
        principal.require_read(&user_id).map_err(fail)?;
        Ok((state, principal, user_id))
    }

    /// An error for the browser: the user-safe message, with the status set
    /// on the response.
    pub fn fail(e: AppError) -> ServerFnError {
        if let Some(resp) = leptos::prelude::use_context::<leptos_axum::ResponseOptions>() {
            resp.set_status(e.status());
        }
        ServerFnError::new(e.to_string())
    }

    /// Field errors become a [`FormError`]; anything else fails the call.
    pub fn form_error(e: AppError) -> Result<FormError, ServerFnError> {
        match e {
            AppError::InvalidFields(fields) => {
                Ok(FormError { message: "Please correct the fields marked below.".into(), fields })
            }
            AppError::Invalid(m) | AppError::Conflict(m) | AppError::NotFound(m) => {
                Ok(FormError { message: m, fields: vec![] })
            }
            other => Err(fail(other)),
        }
    }
}

/// The signed-in user, or `None`.
#[server(prefix = "/sfn")]
pub async fn current_user() -> Result<Option<Me>, ServerFnError> {
    use crate::server::rest::principal::Principal;
    let (state, principal) = ssr::caller().await?;
    let Principal::User { id, .. } = principal else { return Ok(None) };
    let user = state.engine.user(&id).await.map_err(ssr::fail)?;
    Ok(Some(Me {
        is_admin: user.role == crate::server::store::users::Role::Admin,
        id: user.id,
        email: user.email,
        name: user.name,
    }))
}

/// Signs in and goes to `next` (a local path), or answers why not.
#[server(prefix = "/sfn")]
pub async fn login(email: String, password: String, next: Option<String>) -> Result<(), ServerFnError> {
    use axum::extract::ConnectInfo;
    use axum::http::HeaderMap;
    let state = crate::server::state::AppState::from_context()?;
    let headers: HeaderMap = leptos_axum::extract().await?;
    let ip = leptos_axum::extract::<ConnectInfo<std::net::SocketAddr>>()
        .await
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|_| "unknown".into());
    // Failures go back to the sign-in page with a reason, so the page can
    // say what happened with or without JavaScript.
    let back = |code: &str| {
        let next_q = next.as_deref().map(|n| format!("&next={}", urlencode(n))).unwrap_or_default();
        leptos_axum::redirect(&format!("/login?error={code}{next_q}"));
    };
    let token = match state.engine.login(&email, &password, &ip, chrono::Utc::now()).await {
        Ok((_, token)) => token,
        Err(crate::server::error::AppError::InvalidCredentials) => {
            back("invalid");
            return Ok(());
        }
        Err(crate::server::error::AppError::LimitReached { .. }) => {
            back("locked");
            return Ok(());
        }
        Err(e) => return Err(ssr::fail(e)),
    };
    let resp = expect_context::<leptos_axum::ResponseOptions>();
    if let Ok(v) = axum::http::HeaderValue::from_str(&crate::server::rest::session::set_cookie(&token, &headers)) {
        resp.insert_header(axum::http::header::SET_COOKIE, v);
    }
    // Only local paths, so the login page cannot be used to bounce elsewhere.
    let target = next.filter(|n| n.starts_with('/') && !n.starts_with("//")).unwrap_or_else(|| "/".into());
    leptos_axum::redirect(&target);
    Ok(())
}

#[server(prefix = "/sfn")]
pub async fn logout() -> Result<(), ServerFnError> {
    use axum::http::HeaderMap;
    let state = crate::server::state::AppState::from_context()?;
    let headers: HeaderMap = leptos_axum::extract().await?;
    if let Some(token) = crate::server::rest::session::token_from(&headers) {
        state.engine.logout(&token).await.map_err(ssr::fail)?;
    }
    let resp = expect_context::<leptos_axum::ResponseOptions>();
    if let Ok(v) = axum::http::HeaderValue::from_str(&crate::server::rest::session::clear_cookie(&headers)) {
        resp.insert_header(axum::http::header::SET_COOKIE, v);
    }
    leptos_axum::redirect("/login");
    Ok(())
}

/// Changes the signed-in user's password; `Ok(Some(..))` explains a refusal.
#[server(prefix = "/sfn")]
pub async fn change_password(
    current_password: String,
    new_password: String,
) -> Result<Option<FormError>, ServerFnError> {
    use crate::server::error::AppError;
    use crate::server::rest::principal::Principal;
    let (state, principal) = ssr::caller().await?;
    let Principal::User { id, .. } = principal else { return Err(ssr::fail(AppError::Unauthorized)) };
    let headers: axum::http::HeaderMap = leptos_axum::extract().await?;
    let token = crate::server::rest::session::token_from(&headers).unwrap_or_default();
    match state.engine.change_password(&id, &current_password, &new_password, &token, chrono::Utc::now()).await {
        Ok(()) => Ok(None),
        Err(e) => ssr::form_error(e).map(Some),
    }
}

/// Percent-encodes a query value.
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
