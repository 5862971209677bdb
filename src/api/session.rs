//! Signing in and out, the current user, password changes.

use leptos::prelude::*;

use crate::domain::links::{safe_next, urlencode};
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
    use crate::domain::identity::UserId;
    use crate::server::error::AppError;
    use crate::server::identity::principal::Principal;
    use crate::server::state::AppState;

    /// The state and the caller of the current server function.
    pub async fn caller() -> Result<(AppState, Principal), ServerFnError> {
        let state = AppState::from_context()?;
        let principal: Principal = leptos_axum::extract_with_state(&state).await?;
        Ok((state, principal))
    }

    /// The user a read is about (`user`, else the caller's own), checked
    /// against the caller's rights.
    pub async fn reader_of(user: Option<String>) -> Result<(AppState, Principal, UserId), ServerFnError> {
        let (state, principal) = caller().await?;
        let own = principal.own_user().map(UserId::to_string);
        let user_id = user.filter(|u| !u.is_empty()).or(own).ok_or_else(|| fail(AppError::Unauthorized))?;
        let user_id = principal.require_read(&user_id).map_err(fail)?;
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
    ///
    /// A plain form post (no JavaScript) is sent back to the page it came
    /// from with the error in the query (`form`, `form_error`), so the page
    /// shows it just as the hydrated form would.
    pub fn form_error(e: AppError) -> Result<FormError, ServerFnError> {
        let fe = match e {
            AppError::InvalidFields(fields) => {
                FormError { message: "Please correct the fields marked below.".into(), fields }
            }
            AppError::Invalid(m) | AppError::Conflict(m) | AppError::NotFound(m) => {
                FormError { message: m, fields: vec![] }
            }
            other => return Err(fail(other)),
        };
        if let Some(parts) = leptos::prelude::use_context::<axum::http::request::Parts>() {
            let header = |h| parts.headers.get(h).and_then(|v| v.to_str().ok()).unwrap_or("");
            if header(axum::http::header::ACCEPT).contains("text/html")
                && let Some(back) =
                    super::back_with_form_error(header(axum::http::header::REFERER), parts.uri.path(), &fe)
            {
                leptos_axum::redirect(&back);
            }
        }
        Ok(fe)
    }
}

/// The signed-in user, or `None`.
#[server(prefix = "/sfn")]
pub async fn current_user() -> Result<Option<Me>, ServerFnError> {
    use crate::server::identity::principal::Principal;
    let (state, principal) = ssr::caller().await?;
    let Principal::User { id, .. } = principal else { return Ok(None) };
    let user = state.engine.user(&id).await.map_err(ssr::fail)?;
    Ok(Some(Me {
        is_admin: user.role == crate::domain::identity::Role::Admin,
        id: user.id.into(),
        email: user.email.into(),
        name: user.name,
    }))
}

/// Signs in and goes to `next` (a path on this site), or back to the
/// sign-in page with the reason.
#[server(prefix = "/sfn", endpoint = "login")]
pub async fn login(email: String, password: String, next: Option<String>) -> Result<(), ServerFnError> {
    use crate::server::identity::cookies::{set_cookie, token_from};
    use axum::extract::ConnectInfo;
    use axum::http::HeaderMap;
    let state = crate::server::state::AppState::from_context()?;
    let headers: HeaderMap = leptos_axum::extract().await?;
    let peer = leptos_axum::extract::<ConnectInfo<std::net::SocketAddr>>().await.ok().map(|c| c.0.ip());
    let ip = state.web.client_ip(peer, &headers).map_or_else(|| "unknown".to_string(), |ip| ip.to_string());
    let next = next.as_deref().and_then(safe_next).map(str::to_string);
    // Failures go back to the sign-in page with a reason, so the page can
    // say what happened with or without JavaScript.
    let back = |code: &str, wait: Option<i64>| {
        let next_q = next.as_deref().map(|n| format!("&next={}", urlencode(n))).unwrap_or_default();
        let wait_q = wait.map(|w| format!("&wait={w}")).unwrap_or_default();
        leptos_axum::redirect(&format!("/login?error={code}{wait_q}{next_q}"));
    };
    let now = chrono::Utc::now();
    let token = match state.engine.login(&email, &password, &ip, now).await {
        Ok((_, token)) => token,
        Err(crate::server::error::AppError::InvalidCredentials) => {
            back("invalid", None);
            return Ok(());
        }
        Err(crate::server::error::AppError::LimitReached { retry_after_secs, .. }) => {
            back("locked", Some(retry_after_secs));
            return Ok(());
        }
        Err(crate::server::error::AppError::Forbidden(_)) => {
            back("disabled", None);
            return Ok(());
        }
        Err(e) => return Err(ssr::fail(e)),
    };
    // A session that came with the request (fixation) ends; the new token
    // is the only one that works from here on.
    if let Some(old) = token_from(&headers) {
        state.engine.logout(&old).await.map_err(ssr::fail)?;
    }
    let resp = expect_context::<leptos_axum::ResponseOptions>();
    let max_age = state.engine.config.session_max.num_seconds();
    if let Ok(v) = axum::http::HeaderValue::from_str(&set_cookie(&token, &headers, &state.web, max_age)) {
        resp.insert_header(axum::http::header::SET_COOKIE, v);
    }
    leptos_axum::redirect(next.as_deref().unwrap_or("/"));
    Ok(())
}

#[server(prefix = "/sfn")]
pub async fn logout() -> Result<(), ServerFnError> {
    use axum::http::HeaderMap;
    let state = crate::server::state::AppState::from_context()?;
    let headers: HeaderMap = leptos_axum::extract().await?;
    if let Some(token) = crate::server::identity::cookies::token_from(&headers) {
        state.engine.logout(&token).await.map_err(ssr::fail)?;
    }
    let resp = expect_context::<leptos_axum::ResponseOptions>();
    if let Ok(v) =
        axum::http::HeaderValue::from_str(&crate::server::identity::cookies::clear_cookie(&headers, &state.web))
    {
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
    use crate::server::identity::principal::Principal;
    let (state, principal) = ssr::caller().await?;
    let Principal::User { id, .. } = principal else { return Err(ssr::fail(AppError::Unauthorized)) };
    let headers: axum::http::HeaderMap = leptos_axum::extract().await?;
    let token = crate::server::identity::cookies::token_from(&headers).unwrap_or_default();
    match state.engine.change_password(&id, &current_password, &new_password, &token, chrono::Utc::now()).await {
        Ok(()) => Ok(None),
        Err(e) => ssr::form_error(e).map(Some),
    }
}

/// The page a plain form post came from (its path and query only, so never
/// another site), with `form=<server fn path>&form_error=<json>` replacing
/// any earlier pair.
pub fn back_with_form_error(referer: &str, form_path: &str, e: &FormError) -> Option<String> {
    let path_and_query = match referer.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => referer,
    };
    let path_and_query = path_and_query.split('#').next().unwrap_or("/");
    let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
    safe_next(path)?;
    let mut kept: Vec<&str> = query
        .split('&')
        .filter(|kv| !kv.is_empty() && !kv.starts_with("form=") && !kv.starts_with("form_error="))
        .collect();
    let json = serde_json::to_string(e).ok()?;
    let form = format!("form={}", urlencode(form_path));
    let err = format!("form_error={}", urlencode(&json));
    kept.push(&form);
    kept.push(&err);
    Some(format!("{path}?{}", kept.join("&")))
}

/// A form's outcome: the action's answer once it ran in the browser, else
/// the error a plain form post came back with in the query.
pub fn form_outcome(
    value: impl Get<Value = Option<Result<Option<FormError>, ServerFnError>>> + Send + Sync + 'static,
    form_path: &'static str,
) -> Signal<Option<Result<Option<FormError>, ServerFnError>>> {
    let query = leptos_router::hooks::use_query_map();
    Signal::derive(move || {
        value.get().or_else(|| {
            let q = query.read();
            if q.get("form").as_deref() != Some(form_path) {
                return None;
            }
            q.get("form_error").and_then(|j| serde_json::from_str::<FormError>(&j).ok()).map(|fe| Ok(Some(fe)))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cross-site guard knows the sign-in form by its path.
    #[cfg(feature = "ssr")]
    #[test]
    fn the_sign_in_path_is_the_login_functions() {
        use leptos::server_fn::ServerFn;
        assert_eq!(<Login as ServerFn>::PATH, crate::server::identity::cookies::SIGN_IN_PATH);
    }

    #[test]
    fn a_rejected_plain_form_goes_back_with_its_errors() {
        let fe =
            FormError { message: "Fix it".into(), fields: vec![("price_monthly".into(), "Enter an amount".into())] };
        let back = back_with_form_error(
            "http://127.0.0.1:3000/admin/plans?edit=new&form=x&form_error=y#top",
            "/sfn/save",
            &fe,
        )
        .unwrap();
        assert!(back.starts_with("/admin/plans?edit=new&form=/sfn/save&form_error=%7B"), "{back}");
        assert_eq!(back.matches("form_error=").count(), 1);
        assert!(back_with_form_error("https://evil.test//x", "/sfn/save", &fe).is_none());
    }
}
