//! Server functions of the admin users page and its actions.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use super::*;
use crate::api::session::FormError;

#[server(prefix = "/sfn")]
pub async fn admin_users(search: Option<String>) -> Result<Vec<AdminUser>, ServerFnError> {
    let state = admin().await?;
    let now = chrono::Utc::now();
    let (list, _) = state
        .engine
        .list_users(search.as_deref().filter(|s| !s.is_empty()), 200, 0)
        .await
        .map_err(crate::api::session::ssr::fail)?;
    let mut out = Vec::with_capacity(list.len());
    for u in list {
        let (_, sub, cat) =
            state.engine.current_subscription(&u.id, now).await.map_err(crate::api::session::ssr::fail)?;
        out.push(AdminUser {
            plan: cat.plan_of(&sub).map_or_else(|| crate::domain::plan::NO_PLAN.into(), |p| p.name.clone()),
            plan_id: sub.plan_id,
            billing_cycle: sub.billing_cycle.as_str().into(),
            timezone: sub.timezone.name().into(),
            status: sub.status.to_string(),
            cancels_on: sub.cancel_at.map(|t| t.format("%Y-%m-%d").to_string()),
            disabled: state.engine.account_disabled(&u.id).await.map_err(crate::api::session::ssr::fail)?,
            id: u.id.to_string(),
            email: u.email.to_string(),
            name: u.name,
            role: u.role.as_str().into(),
        });
    }
    Ok(out)
}

#[server(prefix = "/sfn")]
pub async fn assign_plan(
    user_id: String,
    plan_id: i64,
    billing_cycle: String,
    timezone: Option<String>,
) -> Result<Option<FormError>, ServerFnError> {
    use crate::domain::period::{BillingCycle, parse_timezone};
    use crate::server::error::AppError;
    let (state, principal) = crate::api::session::ssr::caller().await?;
    let user_id = principal.require_admin_over(&user_id).map_err(crate::api::session::ssr::fail)?;
    let tz = timezone
        .filter(|t| !t.trim().is_empty())
        .map(|t| parse_timezone(&t).map_err(|e| AppError::InvalidFields(vec![("timezone".into(), e)])))
        .transpose();
    let result = match (BillingCycle::parse(&billing_cycle), tz) {
        (None, _) => Err(AppError::InvalidFields(vec![("billing_cycle".into(), "choose monthly or yearly".into())])),
        (_, Err(e)) => Err(e),
        (Some(cycle), Ok(tz)) => state
            .engine
            .assign_subscription(&user_id, plan_id, cycle, tz, &principal.actor(), chrono::Utc::now())
            .await
            .map(|_| ()),
    };
    match result {
        Ok(()) => Ok(None),
        Err(e) => crate::api::session::ssr::form_error(e).map(Some),
    }
}

/// The new-user form.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewUserInput {
    #[serde(default)]
    pub id: String,
    pub email: String,
    #[serde(default)]
    pub name: String,
    pub role: String,
    #[serde(default)]
    pub password: String,
}

/// Creates a user (on the default plan).
#[server(prefix = "/sfn")]
pub async fn admin_create_user(user: NewUserInput) -> Result<Option<FormError>, ServerFnError> {
    use crate::domain::identity::Role;
    use crate::server::error::AppError;
    use crate::server::service::admin::UserForm;
    let (state, principal) = crate::api::session::ssr::caller().await?;
    principal.require_admin().map_err(crate::api::session::ssr::fail)?;
    let Some(role) = Role::parse(user.role.trim()) else {
        return crate::api::session::ssr::form_error(AppError::InvalidFields(vec![(
            "role".into(),
            "choose user or admin".into(),
        )]))
        .map(Some);
    };
    let nonempty = |s: String| Some(s.trim().to_string()).filter(|s| !s.is_empty());
    let form = UserForm {
        id: nonempty(user.id),
        email: user.email,
        name: user.name,
        role,
        password: nonempty(user.password),
        timezone: None,
    };
    match state.engine.admin_create_user(form, &principal.actor(), chrono::Utc::now()).await {
        Ok(_) => Ok(None),
        Err(e) => crate::api::session::ssr::form_error(e).map(Some),
    }
}

/// One admin action on a user: `make_admin`, `make_user`, `disable`,
/// `enable`, `cancel_now`, `cancel_at_cycle_end`, `pause`, `resume`.
#[server(prefix = "/sfn")]
pub async fn admin_user_action(user_id: String, action: String) -> Result<Option<FormError>, ServerFnError> {
    use crate::domain::identity::Role;
    use crate::server::error::AppError;
    use crate::server::service::subscriptions::Lifecycle;
    let (state, principal) = crate::api::session::ssr::caller().await?;
    let user_id = principal.require_admin_over(&user_id).map_err(crate::api::session::ssr::fail)?;
    let (e, actor, now) = (&state.engine, principal.actor(), chrono::Utc::now());
    let result = match action.as_str() {
        "make_admin" => e.set_user_role(&user_id, Role::Admin, &actor, now).await,
        "make_user" => e.set_user_role(&user_id, Role::User, &actor, now).await,
        "disable" => e.set_account_disabled(&user_id, true, &actor, now).await,
        "enable" => e.set_account_disabled(&user_id, false, &actor, now).await,
        "cancel_now" => e.change_status(&user_id, Lifecycle::CancelNow, &actor, now).await.map(|_| ()),
        "cancel_at_cycle_end" => e.change_status(&user_id, Lifecycle::CancelAtCycleEnd, &actor, now).await.map(|_| ()),
        "pause" => e.change_status(&user_id, Lifecycle::Pause, &actor, now).await.map(|_| ()),
        "resume" => e.change_status(&user_id, Lifecycle::Resume, &actor, now).await.map(|_| ()),
        other => Err(AppError::Invalid(format!("`{other}` is not an action on a user"))),
    };
    match result {
        Ok(()) => Ok(None),
        Err(e) => crate::api::session::ssr::form_error(e).map(Some),
    }
}

/// Ends every session of a user.
#[server(prefix = "/sfn")]
pub async fn sign_out_user(user_id: String) -> Result<Option<FormError>, ServerFnError> {
    let (state, principal) = crate::api::session::ssr::caller().await?;
    let user_id = principal.require_admin_over(&user_id).map_err(crate::api::session::ssr::fail)?;
    match state.engine.sign_out_everywhere(&user_id, &principal.actor(), chrono::Utc::now()).await {
        Ok(_) => Ok(None),
        Err(e) => crate::api::session::ssr::form_error(e).map(Some),
    }
}
