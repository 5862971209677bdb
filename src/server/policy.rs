//! Who may call what: every REST route and every server function declares
//! an access [`Policy`] here, and [`enforce`] refuses, before any handler
//! runs, a caller the policy cannot admit, and any endpoint that declares
//! none (deny by default). Handlers still check *which* user a caller may
//! act on (`Principal::require_read` and friends); the policy is the coarse,
//! declared gate that a test walks for every endpoint. Pages are guarded
//! the same way ([`page_guard`]): a signed-out visitor is sent to sign in
//! before anything renders.

use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use leptos::server_fn::ServerFn;

use chrono::Utc;

use crate::domain::identity::Scope;
use crate::domain::links::{safe_next, urlencode};

use super::error::AppError;
use super::identity::principal::Principal;
use super::state::AppState;

/// The access rule of one endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Anyone: sign-in, the public catalog, probes.
    Public,
    /// Reads a user's billing: a signed-in person, or a key with `read`
    /// (the handler checks which user).
    Read,
    /// Marks alerts read: a signed-in person, or a key with `alerts`.
    WriteAlerts,
    /// Checks or holds usage before a call: a signed-in person or a key with
    /// `read` may check; holding (`reserve`) needs `gate` or `ingest`.
    Gate,
    /// Records usage: a key with `ingest`.
    Ingest,
    /// Per-endpoint request statistics: a key with `metrics` or `admin`, or
    /// an administrator.
    Metrics,
    /// The deployment's health at a glance (family A's `health` and
    /// `lightweight-stats`, which the billing dashboard shows every user):
    /// anyone signed in or holding a key. It describes the deployment, not
    /// anyone's data.
    Health,
    /// The signed-in person's own account and plan.
    SignedIn,
    /// Administration: an administrator or a key with `admin`.
    Admin,
}

impl Policy {
    /// Whether `p` may call an endpoint with this policy at all.
    pub fn admits(self, p: &Principal) -> Result<(), AppError> {
        if self == Policy::Public {
            return Ok(());
        }
        if *p == Principal::Anonymous {
            return Err(AppError::Unauthorized);
        }
        let person = matches!(p, Principal::User { .. });
        let ok = p.is_admin()
            || match self {
                Policy::Public => true,
                Policy::Read => person || p.has_scope(Scope::Read),
                Policy::WriteAlerts => person || p.has_scope(Scope::Alerts),
                Policy::Gate => {
                    person || p.has_scope(Scope::Read) || p.has_scope(Scope::Gate) || p.has_scope(Scope::Ingest)
                }
                Policy::Ingest => p.has_scope(Scope::Ingest),
                Policy::Metrics => p.has_scope(Scope::Metrics),
                Policy::Health => true,
                Policy::SignedIn => person,
                Policy::Admin => false,
            };
        if ok { Ok(()) } else { Err(AppError::Forbidden(self.refusal().into())) }
    }

    fn refusal(self) -> &'static str {
        match self {
            Policy::Public => "",
            Policy::Read => "reading billing needs a signed-in user or an API key with the read scope",
            Policy::WriteAlerts => "marking alerts read needs a signed-in user or an API key with the alerts scope",
            Policy::Gate => "the gate needs a signed-in user or an API key with the read, gate or ingest scope",
            Policy::Ingest => "recording usage needs an API key with the ingest scope",
            Policy::Metrics => "monitoring needs an administrator or an API key with the metrics or admin scope",
            Policy::Health => "",
            Policy::SignedIn => "this needs a signed-in user",
            Policy::Admin => "this needs an administrator",
        }
    }
}

/// The policy of a REST route, by method and route template.
pub fn rest_policy(method: &Method, route: &str) -> Option<Policy> {
    use Policy::*;
    let m = method.as_str();
    Some(match (m, route) {
        ("GET", "/api/subscription/plans" | "/api/subscription/pricing") => Public,
        (
            "GET",
            "/api/subscription/usage/{user_id}"
            | "/api/subscription/usage/{user_id}/trends"
            | "/api/subscription/trends/{user_id}"
            | "/api/subscription/dashboard/{user_id}"
            | "/api/subscription/alerts/{user_id}"
            | "/api/subscription/user/{user_id}/subscription"
            | "/api/subscription/usage-logs"
            | "/api/subscription/renewal-history/{user_id}"
            | "/api/usage/{user_id}/logs.csv"
            | "/api/billing/{user_id}/history.csv"
            | "/api/billing/{user_id}/renewals.csv"
            | "/api/usage/{user_id}/breakdown"
            | "/api/usage/{user_id}/export/focus"
            | "/api/usage/{user_id}/performance"
            | "/api/insights/{user_id}"
            | "/api/wallet/{user_id}"
            | "/api/wallet/{user_id}/ledger"
            | "/api/stream",
        ) => Read,
        ("POST", "/api/subscription/alerts/{alert_id}/mark-read") => WriteAlerts,
        ("POST", "/api/subscription/preflight-check") => Gate,
        ("POST", "/api/usage/events") => Ingest,
        ("GET", "/api/content-planning/monitoring/health" | "/api/content-planning/monitoring/lightweight-stats") => {
            Health
        }
        ("GET", "/api/content-planning/monitoring/api-stats" | "/api/content-planning/monitoring/cache-stats") => {
            Metrics
        }
        (
            "GET" | "POST",
            "/api/admin/plans"
            | "/api/admin/pricing"
            | "/api/admin/users"
            | "/api/admin/api-keys"
            | "/api/admin/webhooks",
        ) => Admin,
        ("GET", "/api/admin/webhooks/{webhook_id}/deliveries") => Admin,
        ("POST", "/api/admin/webhooks/{webhook_id}/deliveries/{delivery_id}/replay") => Admin,
        ("GET" | "PUT", "/api/admin/plans/{plan_id}") => Admin,
        ("POST", "/api/admin/pricing/import") => Admin,
        (
            "GET",
            "/api/admin/users/{user_id}"
            | "/api/admin/audit-log"
            | "/api/admin/profitability"
            | "/api/admin/profitability.csv"
            | "/api/admin/export/focus",
        ) => Admin,
        ("PUT", "/api/admin/users/{user_id}/subscription" | "/api/admin/users/{user_id}/wallet") => Admin,
        (
            "POST",
            "/api/admin/users/{user_id}/wallet/grants"
            | "/api/admin/users/{user_id}/wallet/grants/{grant_id}/void"
            | "/api/admin/users/{user_id}/wallet/adjustments"
            | "/api/admin/users/{user_id}/wallet/refunds",
        ) => Admin,
        ("PATCH", "/api/admin/users/{user_id}") => Admin,
        (
            "POST",
            "/api/admin/users/{user_id}/subscription/cancel"
            | "/api/admin/users/{user_id}/subscription/pause"
            | "/api/admin/users/{user_id}/subscription/resume",
        ) => Admin,
        (
            "DELETE",
            "/api/admin/users/{user_id}/sessions" | "/api/admin/api-keys/{key_id}" | "/api/admin/webhooks/{webhook_id}",
        ) => Admin,
        // Unknown API paths answer the contract's 404 envelope.
        (_, "/api/{*path}") => Public,
        _ => return None,
    })
}

/// Whether some method of `route` has a policy.
fn declares_any_method(route: &str) -> bool {
    [Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE]
        .iter()
        .any(|m| rest_policy(m, route).is_some())
}

/// The policy of a server function, by its path.
pub fn server_fn_policy(path: &str) -> Option<Policy> {
    use crate::api::{
        admin as a, billing as b, dashboard as d, insights as i, session as s, wallet as wl, webhooks as w,
    };
    use Policy::*;
    let table: [(&str, Policy); 43] = [
        (s::CurrentUser::PATH, Public),
        (s::Login::PATH, Public),
        (s::Logout::PATH, Public),
        (s::ChangePassword::PATH, SignedIn),
        (d::GetDashboard::PATH, Read),
        (d::MarkAlertRead::PATH, WriteAlerts),
        (d::MarkAllAlertsRead::PATH, WriteAlerts),
        (b::UsageLogPage::PATH, Read),
        (b::BillingHistory::PATH, Read),
        (b::PlanChoice::PATH, SignedIn),
        (b::ChangeMyPlan::PATH, SignedIn),
        (b::ChangeMyStatus::PATH, SignedIn),
        (a::AdminPlans::PATH, Admin),
        (a::SavePlan::PATH, Admin),
        (a::AdminPricing::PATH, Admin),
        (a::AddPrice::PATH, Admin),
        (a::AdminUsers::PATH, Admin),
        (a::AssignPlan::PATH, Admin),
        (a::SignOutUser::PATH, Admin),
        (a::AdminCreateUser::PATH, Admin),
        (a::AdminUserAction::PATH, Admin),
        (a::AdminAlerts::PATH, Admin),
        (a::AuditEntries::PATH, Admin),
        (a::ApiKeys::PATH, Admin),
        (a::CreateApiKey::PATH, Admin),
        (a::RevokeApiKey::PATH, Admin),
        (i::GetBreakdown::PATH, Read),
        (crate::api::performance::GetPerformance::PATH, Read),
        (i::GetAdvice::PATH, Read),
        (i::GetProfitability::PATH, Admin),
        (w::WebhookEndpoints::PATH, Admin),
        (w::CreateWebhook::PATH, Admin),
        (w::DeleteWebhook::PATH, Admin),
        (w::WebhookDeliveries::PATH, Admin),
        (w::ReplayDelivery::PATH, Admin),
        (wl::GetWallet::PATH, Read),
        (wl::WalletStatement::PATH, Read),
        (wl::AdminWallet::PATH, Admin),
        (wl::AdminGrantCredits::PATH, Admin),
        (wl::AdminAdjustWallet::PATH, Admin),
        (wl::AdminVoidGrant::PATH, Admin),
        (wl::AdminSetLowBalance::PATH, Admin),
        (wl::AdminRefundEvent::PATH, Admin),
    ];
    table.iter().find(|(p, _)| *p == path).map(|(_, policy)| *policy)
}

/// Whether a path is served by the server-function handler.
pub fn is_server_fn(path: &str) -> bool {
    path.starts_with("/sfn/")
}

/// Resolves the caller once (handlers reuse it from the request's
/// extensions) and applies the endpoint's policy. Pages, static files and
/// probes pass through; an API route or server function without a declared
/// policy is refused.
pub async fn enforce(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let policy = if is_server_fn(&path) {
        Some(server_fn_policy(&path))
    } else if path.starts_with("/api/") {
        let route = req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_string());
        match route {
            // A declared route called with another method: axum answers 405.
            Some(r) if rest_policy(req.method(), &r).is_none() && declares_any_method(&r) => None,
            r => Some(r.and_then(|r| rest_policy(req.method(), &r))),
        }
    } else {
        None
    };
    let Some(policy) = policy else { return next.run(req).await };
    let Some(policy) = policy else {
        tracing::error!(%path, method = %req.method(), "endpoint without an access policy refused");
        return AppError::Forbidden("no access policy is declared for this endpoint".into()).into_response();
    };
    if policy == Policy::Public {
        return next.run(req).await;
    }
    let (mut parts, body) = req.into_parts();
    let principal = match Principal::from_request_parts(&mut parts, &state).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    if let Err(e) = policy.admits(&principal) {
        return e.into_response();
    }
    parts.extensions.insert(principal);
    next.run(Request::from_parts(parts, body)).await
}

// Pages: who may open which, decided before any of it renders.

/// Pages only a signed-in person may open.
fn needs_sign_in(path: &str) -> bool {
    matches!(path, "/" | "/dashboard" | "/usage" | "/performance" | "/plans" | "/billing" | "/account" | "/admin")
        || path.starts_with("/admin/")
}

fn see_other(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(v) => (StatusCode::SEE_OTHER, [(header::LOCATION, v)]).into_response(),
        Err(_) => (StatusCode::SEE_OTHER, [(header::LOCATION, HeaderValue::from_static("/"))]).into_response(),
    }
}

/// Answers 303 to `/login?next=<path>` for a signed-out visitor of a
/// guarded page, before any of it renders (so it works without JavaScript
/// and nothing flashes); and sends a signed-in visitor of `/login` on to
/// where they were going. Admin-only pages answer 403 themselves.
pub async fn page_guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        return next.run(req).await;
    }
    let path = req.uri().path();
    let guarded = needs_sign_in(path);
    if !guarded && path != "/login" {
        return next.run(req).await;
    }
    let signed_in = match super::identity::cookies::token_from(req.headers()) {
        Some(token) => match state.engine.session_user(&token, Utc::now()).await {
            Ok(user) => user.is_some(),
            Err(e) => return e.into_response(),
        },
        None => false,
    };
    if guarded && !signed_in {
        let here = req.uri().path_and_query().map_or(path, |pq| pq.as_str());
        return see_other(&format!("/login?next={}", urlencode(here)));
    }
    if path == "/login" && signed_in {
        let next_param = req.uri().query().and_then(|q| {
            q.split('&')
                .find_map(|kv| kv.strip_prefix("next="))
                .map(|v| super::web::percent_decode(v).unwrap_or_default())
        });
        return see_other(next_param.as_deref().and_then(safe_next).unwrap_or("/"));
    }
    next.run(req).await
}
