//! `/api/admin/users`: people, their subscriptions and their sessions.

use crate::domain::identity::UserId;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::*;
use crate::domain::identity::Role;
use crate::domain::period::BillingCycle;
use crate::server::error::{AppError, AppResult};
use crate::server::identity::Principal;
use crate::server::rest::{Enveloped, envelope};
use crate::server::service::admin::UserForm;
use crate::server::state::AppState;
use crate::server::views::admin::{AssignedView, LifecycleView, Scheduled, SubscriptionView, UserDetail, UserView};

/// `GET /api/admin/users`.
#[derive(Serialize)]
pub struct UserList {
    users: Vec<UserView>,
    total: i64,
}

/// `DELETE /api/admin/users/{user_id}/sessions`.
#[derive(Serialize)]
pub struct SessionsEnded {
    user_id: UserId,
    sessions_ended: u64,
}

#[derive(Deserialize)]
pub struct ListQuery {
    pub(super) search: Option<String>,
    pub(super) limit: Option<i64>,
    pub(super) offset: Option<i64>,
    pub(super) entity_type: Option<String>,
    pub(super) actor: Option<String>,
}

pub async fn list_users(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<ListQuery>,
) -> AppResult<Enveloped<UserList>> {
    principal.require_admin()?;
    let (list, total) =
        state.engine.list_users(q.search.as_deref(), q.limit.unwrap_or(50), q.offset.unwrap_or(0)).await?;
    Ok(envelope(UserList { users: list.iter().map(UserView::from).collect(), total }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUserBody {
    id: Option<String>,
    email: String,
    #[serde(default)]
    name: String,
    role: Option<String>,
    password: Option<String>,
    /// IANA name; UTC when absent.
    timezone: Option<String>,
}

/// An optional `timezone` field: an IANA name, or a field error.
pub(super) fn timezone_field(raw: Option<&str>) -> AppResult<Option<chrono_tz::Tz>> {
    raw.map(|t| {
        crate::domain::period::parse_timezone(t).map_err(|e| AppError::InvalidFields(vec![("timezone".into(), e)]))
    })
    .transpose()
}

pub async fn create_user(
    State(state): State<AppState>,
    principal: Principal,
    body: Bytes,
) -> AppResult<Enveloped<UserView>> {
    principal.require_admin()?;
    let b: NewUserBody =
        serde_json::from_value(parse_body(&body)?).map_err(|e| AppError::Invalid(format!("invalid user: {e}")))?;
    let role = match b.role.as_deref() {
        None => Role::User,
        Some(r) => Role::parse(r)
            .ok_or_else(|| AppError::InvalidFields(vec![("role".into(), "role must be user or admin".into())]))?,
    };
    let timezone = timezone_field(b.timezone.as_deref())?;
    let form = UserForm { id: b.id, email: b.email, name: b.name, role, password: b.password, timezone };
    let user = state.engine.admin_create_user(form, &principal.actor(), Utc::now()).await?;
    Ok(envelope(UserView::from(&user)))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CancelBody {
    at: Option<String>,
}

pub(super) async fn lifecycle(
    state: &AppState,
    principal: &Principal,
    user_id: &str,
    action: crate::server::service::subscriptions::Lifecycle,
) -> AppResult<Enveloped<LifecycleView>> {
    let user_id = principal.require_admin_over(user_id)?;
    let sub = state.engine.change_status(&user_id, action, &principal.actor(), Utc::now()).await?;
    Ok(envelope(LifecycleView::of(&user_id, &sub)))
}

/// `POST …/subscription/cancel` `{"at": "now"|"period_end"}` (default the
/// end of the paid cycle).
pub async fn cancel_subscription(
    State(state): State<AppState>,
    principal: Principal,
    Path(user_id): Path<String>,
    body: axum::body::Bytes,
) -> AppResult<Enveloped<LifecycleView>> {
    use crate::server::service::subscriptions::Lifecycle;
    let b: CancelBody = if body.iter().all(u8::is_ascii_whitespace) {
        CancelBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| AppError::Invalid(format!("invalid cancellation: {e}")))?
    };
    let action = Lifecycle::parse("cancel", b.at.as_deref())
        .ok_or_else(|| AppError::InvalidFields(vec![("at".into(), "must be now or period_end".into())]))?;
    lifecycle(&state, &principal, &user_id, action).await
}

pub async fn pause_subscription(
    State(state): State<AppState>,
    principal: Principal,
    Path(user_id): Path<String>,
) -> AppResult<Enveloped<LifecycleView>> {
    lifecycle(&state, &principal, &user_id, crate::server::service::subscriptions::Lifecycle::Pause).await
}

pub async fn resume_subscription(
    State(state): State<AppState>,
    principal: Principal,
    Path(user_id): Path<String>,
) -> AppResult<Enveloped<LifecycleView>> {
    lifecycle(&state, &principal, &user_id, crate::server::service::subscriptions::Lifecycle::Resume).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    role: Option<String>,
    disabled: Option<bool>,
}

/// `PATCH /api/admin/users/{user_id}` `{"role"?, "disabled"?}`.
pub async fn patch_user(
    State(state): State<AppState>,
    principal: Principal,
    Path(user_id): Path<String>,
    body: axum::body::Bytes,
) -> AppResult<Enveloped<UserDetail>> {
    let user_id = principal.require_admin_over(&user_id)?;
    let b: UserPatch =
        serde_json::from_slice(&body).map_err(|e| AppError::Invalid(format!("invalid user change: {e}")))?;
    let now = Utc::now();
    if let Some(role) = &b.role {
        let role = crate::domain::identity::Role::parse(role)
            .ok_or_else(|| AppError::InvalidFields(vec![("role".into(), "must be user or admin".into())]))?;
        state.engine.set_user_role(&user_id, role, &principal.actor(), now).await?;
    }
    if let Some(disabled) = b.disabled {
        state.engine.set_account_disabled(&user_id, disabled, &principal.actor(), now).await?;
    }
    let user = state.engine.user(&user_id).await?;
    let disabled = state.engine.account_disabled(&user_id).await?;
    Ok(envelope(UserDetail { user: UserView::from(&user), disabled, subscription: None }))
}

/// Ends every session of a user: `{"sessions_ended": n}`.
pub async fn sign_out_everywhere(
    State(state): State<AppState>,
    principal: Principal,
    Path(user_id): Path<String>,
) -> AppResult<Enveloped<SessionsEnded>> {
    let user_id = principal.require_admin_over(&user_id)?;
    let ended = state.engine.sign_out_everywhere(&user_id, &principal.actor(), Utc::now()).await?;
    Ok(envelope(SessionsEnded { user_id, sessions_ended: ended }))
}

pub async fn get_user(
    State(state): State<AppState>,
    principal: Principal,
    Path(user_id): Path<String>,
) -> AppResult<Enveloped<UserDetail>> {
    let user_id = principal.require_admin_over(&user_id)?;
    let user = state.engine.user(&user_id).await?;
    let (_, sub, cat) = state.engine.current_subscription(&user_id, Utc::now()).await?;
    let disabled = state.engine.account_disabled(&user_id).await?;
    let subscription = SubscriptionView::of(&sub, cat.plan_of(&sub).map(|p| p.name.clone()));
    Ok(envelope(UserDetail { user: UserView::from(&user), disabled, subscription: Some(subscription) }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssignBody {
    plan_id: i64,
    billing_cycle: String,
    /// IANA name: the timezone its periods are counted in.
    timezone: Option<String>,
}

pub async fn assign_subscription(
    State(state): State<AppState>,
    principal: Principal,
    Path(user_id): Path<String>,
    body: Bytes,
) -> AppResult<Enveloped<AssignedView>> {
    let user_id = principal.require_admin_over(&user_id)?;
    let b: AssignBody = serde_json::from_value(parse_body(&body)?)
        .map_err(|e| AppError::Invalid(format!("invalid subscription: {e}")))?;
    let cycle = BillingCycle::parse(&b.billing_cycle)
        .ok_or_else(|| AppError::InvalidFields(vec![("billing_cycle".into(), "must be monthly or yearly".into())]))?;
    let timezone = timezone_field(b.timezone.as_deref())?;
    let (sub, change) =
        state.engine.assign_subscription(&user_id, b.plan_id, cycle, timezone, &principal.actor(), Utc::now()).await?;
    use crate::domain::plan::PlanChange;
    let (kind, fee) = match change {
        None => ("unchanged", None),
        Some(PlanChange::Upgrade { fee, .. }) => ("upgraded", Some(fee.usd_string())),
        Some(PlanChange::Scheduled) => ("scheduled", None),
        Some(PlanChange::CancelScheduled) => ("scheduled_change_cancelled", None),
    };
    Ok(envelope(AssignedView {
        plan_id: sub.plan_id,
        billing_cycle: sub.billing_cycle.as_str(),
        timezone: sub.timezone.name(),
        current_period_start: sub.period_start.to_rfc3339(),
        current_period_end: sub.period_end.to_rfc3339(),
        billing_period: sub.current_period().label(),
        change: kind,
        fee,
        scheduled: Scheduled::of(&sub),
        user_id,
    }))
}
