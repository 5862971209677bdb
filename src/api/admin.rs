//! Server functions of the admin web UI. Every one checks on the server
//! that the caller is an administrator; they call the same services as the
//! `/api/admin` REST endpoints.

use std::collections::BTreeMap;

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use super::session::FormError;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminPlan {
    pub id: i64,
    pub name: String,
    pub tier: String,
    pub price_monthly: String,
    pub price_yearly: String,
    pub description: String,
    pub features: Vec<String>,
    /// Limit key → value as typed (USD for `monthly_cost`); absent = unlimited.
    pub limits: BTreeMap<String, String>,
    pub archived: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceRow {
    pub id: i64,
    pub provider: String,
    pub model: String,
    pub effective_from: String,
    pub input_per_million: Option<String>,
    pub output_per_million: Option<String>,
    pub cached_input_per_million: Option<String>,
    pub per_unit: Option<String>,
    /// Every other rate, the long-context tiers and the service tiers, for
    /// people (`cache write 5m $3.75 · above 200k tokens: …`).
    pub other: String,
    /// The tiers and service tiers as JSON (what the form edits).
    pub tiers_json: String,
    pub service_tiers_json: String,
    /// The admin page's link to a form filled with this version's every
    /// field (so an edit changes what it means to and drops nothing).
    pub edit_href: String,
    pub description: String,
    /// Whether this version is the one in force now.
    pub current: bool,
    /// Whether it takes effect later (else, if not current, it is history).
    pub scheduled: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unpriced {
    pub provider: String,
    pub model: String,
    pub events: i64,
    pub last_seen: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pricing {
    pub versions: Vec<PriceRow>,
    pub unpriced: Vec<Unpriced>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminUser {
    pub id: String,
    pub email: String,
    pub name: String,
    pub role: String,
    pub plan_id: Option<i64>,
    pub plan: String,
    pub billing_cycle: String,
    pub status: String,
    pub cancels_on: Option<String>,
    pub disabled: bool,
    /// The IANA timezone its periods are counted in.
    pub timezone: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminAlert {
    pub id: i64,
    pub user: String,
    pub title: String,
    pub message: String,
    pub severity: String,
    pub is_read: bool,
    pub created_at: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRow {
    pub id: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub entity: String,
    pub before: String,
    pub after: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRow {
    pub id: String,
    pub prefix: String,
    pub user: String,
    pub scopes: String,
    pub name: String,
    pub created_at: String,
    pub last_used_at: String,
    pub revoked: bool,
}

#[cfg(feature = "ssr")]
async fn admin() -> Result<crate::server::state::AppState, ServerFnError> {
    let (state, principal) = super::session::ssr::caller().await?;
    principal.require_admin().map_err(super::session::ssr::fail)?;
    Ok(state)
}

#[cfg(feature = "ssr")]
fn fmt_time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

#[server(prefix = "/sfn")]
pub async fn admin_plans() -> Result<Vec<AdminPlan>, ServerFnError> {
    use crate::domain::money::Nanos;
    let state = admin().await?;
    let cat = state.engine.catalog_snapshot().await.map_err(super::session::ssr::fail)?;
    Ok(cat
        .plans
        .iter()
        .map(|p| AdminPlan {
            id: p.id,
            name: p.name.clone(),
            tier: p.tier.as_str().into(),
            price_monthly: Nanos::to_decimal(p.price_monthly).normalize().to_string(),
            price_yearly: Nanos::to_decimal(p.price_yearly).normalize().to_string(),
            description: p.description.clone(),
            features: p.features.clone(),
            limits: p.limits.iter().map(|(k, v)| (k.as_string(), k.input_value(v))).collect(),
            archived: p.archived,
        })
        .collect())
}

/// A plan form as posted (`plan[name]`, `plan[limits][gemini_calls]`, ...).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanInput {
    pub id: Option<i64>,
    pub name: String,
    pub tier: String,
    pub price_monthly: String,
    pub price_yearly: String,
    #[serde(default)]
    pub description: String,
    /// One per line.
    #[serde(default)]
    pub features: String,
    #[serde(default)]
    pub limits: BTreeMap<String, String>,
    /// A checkbox: present when checked.
    pub archived: Option<String>,
}

/// Creates (no `id`) or updates a plan.
#[server(prefix = "/sfn")]
pub async fn save_plan(plan: PlanInput) -> Result<Option<FormError>, ServerFnError> {
    use crate::server::service::admin::PlanForm;
    let (state, principal) = super::session::ssr::caller().await?;
    principal.require_admin().map_err(super::session::ssr::fail)?;
    let form = PlanForm {
        name: plan.name,
        tier: plan.tier,
        price_monthly: plan.price_monthly,
        price_yearly: plan.price_yearly,
        description: plan.description,
        features: plan.features.lines().map(str::to_string).collect(),
        limits: plan.limits,
        archived: plan.archived.is_some_and(|a| a == "on" || a == "true"),
    };
    let now = chrono::Utc::now();
    let actor = principal.actor();
    let result = match plan.id {
        Some(id) => state.engine.update_plan(id, &form, &actor, now).await,
        None => state.engine.create_plan(&form, &actor, now).await,
    };
    match result {
        Ok(_) => Ok(None),
        Err(e) => super::session::ssr::form_error(e).map(Some),
    }
}

/// `/admin/pricing?provider=…&model=…&<rate field>=…&tiers=…#new-price`.
#[cfg(feature = "ssr")]
fn edit_href(v: &crate::domain::pricing::PriceVersion) -> String {
    use crate::domain::links::urlencode;
    use crate::domain::pricing::json;
    let mut q = vec![format!("provider={}", urlencode(v.provider.as_str())), format!("model={}", urlencode(&v.model))];
    q.extend(v.rates.base.iter().map(|(f, p)| format!("{}={}", f.name(), urlencode(&p.as_string()))));
    if !v.rates.tiers.is_empty() {
        q.push(format!("tiers={}", urlencode(&json::tiers_to_json(&v.rates.tiers).to_string())));
    }
    if !v.rates.service_tiers.is_empty() {
        q.push(format!(
            "service_tiers={}",
            urlencode(&json::service_tiers_to_json(&v.rates.service_tiers).to_string())
        ));
    }
    if let Some(n) = v.max_output_tokens {
        q.push(format!("max_output_tokens={n}"));
    }
    format!("/admin/pricing?{}#new-price", q.join("&"))
}

#[server(prefix = "/sfn")]
pub async fn admin_pricing() -> Result<Pricing, ServerFnError> {
    use crate::domain::pricing::json;
    let state = admin().await?;
    let now = chrono::Utc::now();
    let cat = state.engine.catalog_snapshot().await.map_err(super::session::ssr::fail)?;
    let current: Vec<i64> = cat.prices.current(now).iter().map(|v| v.id).collect();
    let s = |p: Option<crate::domain::money::Price>| p.map(|p| p.as_string());
    let mut versions: Vec<PriceRow> = cat
        .prices
        .versions()
        .iter()
        .map(|v| {
            let unit = [
                ("request", v.rates.base.per_request),
                ("search", v.rates.base.per_search),
                ("image", v.rates.base.per_image),
                ("page", v.rates.base.per_page),
            ]
            .into_iter()
            .filter_map(|(k, p)| p.map(|p| format!("${} per {k}", p.as_string())))
            .collect::<Vec<_>>();
            PriceRow {
                id: v.id,
                provider: v.provider.as_str().into(),
                model: v.model.clone(),
                effective_from: fmt_time(v.effective_from),
                input_per_million: s(v.rates.base.input_per_million),
                output_per_million: s(v.rates.base.output_per_million),
                cached_input_per_million: s(v.rates.base.cached_input_per_million),
                per_unit: (!unit.is_empty()).then(|| unit.join(", ")),
                other: match v.max_output_tokens {
                    Some(n) if v.rates.describe_extras().is_empty() => {
                        format!("output cap {}", crate::domain::money::format_count(n as i64))
                    }
                    Some(n) => format!(
                        "{} · output cap {}",
                        v.rates.describe_extras(),
                        crate::domain::money::format_count(n as i64)
                    ),
                    None => v.rates.describe_extras(),
                },
                edit_href: edit_href(v),
                tiers_json: if v.rates.tiers.is_empty() {
                    String::new()
                } else {
                    json::tiers_to_json(&v.rates.tiers).to_string()
                },
                service_tiers_json: if v.rates.service_tiers.is_empty() {
                    String::new()
                } else {
                    json::service_tiers_to_json(&v.rates.service_tiers).to_string()
                },
                description: v.description.clone(),
                current: current.contains(&v.id),
                scheduled: v.effective_from > now,
            }
        })
        .collect();
    // Current versions first, each followed by its history, newest first.
    versions.sort_by(|a, b| {
        (&a.provider, &a.model, std::cmp::Reverse(&a.effective_from)).cmp(&(
            &b.provider,
            &b.model,
            std::cmp::Reverse(&b.effective_from),
        ))
    });
    let unpriced = state
        .engine
        .unpriced_models(now)
        .await
        .map_err(super::session::ssr::fail)?
        .into_iter()
        .map(|u| Unpriced {
            provider: u.provider,
            model: u.model.unwrap_or_else(|| "*".into()),
            events: u.events,
            last_seen: fmt_time(u.last_seen),
        })
        .collect();
    Ok(Pricing { versions, unpriced })
}

/// A price form as posted (`price[provider]`, ...); empty fields are unset.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PriceInput {
    pub provider: String,
    pub model: String,
    pub input_per_million: String,
    pub output_per_million: String,
    pub cached_input_per_million: String,
    pub per_request: String,
    pub per_search: String,
    pub per_image: String,
    pub per_page: String,
    pub cache_write_per_million: String,
    pub cache_write_1h_per_million: String,
    pub reasoning_per_million: String,
    pub audio_input_per_million: String,
    pub audio_output_per_million: String,
    pub per_search_query: String,
    /// JSON: `[{"above_input_tokens": 200000, "input_per_million": "2.50"}]`.
    pub tiers: String,
    /// JSON: `{"batch": {"input_per_million": "0.625"}}`.
    pub service_tiers: String,
    pub description: String,
    /// RFC 3339, or `YYYY-MM-DDTHH:MM` (a datetime-local input) taken as
    /// UTC; now when empty.
    pub effective_from: String,
    /// The model's output cap in tokens; blank for unknown.
    #[serde(default)]
    pub max_output_tokens: String,
}

/// A time as an `<input type="datetime-local">` sends it (no zone, no
/// seconds), taken as UTC, in RFC 3339; anything else trimmed, as typed.
pub fn datetime_local_as_utc(s: &str) -> String {
    let s = s.trim();
    if s.len() == 16 { format!("{s}:00Z") } else { s.to_string() }
}

/// Adds a price version.
#[server(prefix = "/sfn")]
pub async fn add_price(price: PriceInput) -> Result<Option<FormError>, ServerFnError> {
    use crate::server::service::admin::PriceForm;
    let (state, principal) = super::session::ssr::caller().await?;
    principal.require_admin().map_err(super::session::ssr::fail)?;
    let opt = |s: String| Some(s).filter(|s| !s.trim().is_empty());
    let p = price;
    let effective = datetime_local_as_utc(&p.effective_from);
    use crate::domain::pricing::RateField as F;
    let rates = [
        (F::InputPerMillion, p.input_per_million),
        (F::OutputPerMillion, p.output_per_million),
        (F::CachedInputPerMillion, p.cached_input_per_million),
        (F::PerRequest, p.per_request),
        (F::PerSearch, p.per_search),
        (F::PerImage, p.per_image),
        (F::PerPage, p.per_page),
        (F::CacheWritePerMillion, p.cache_write_per_million),
        (F::CacheWrite1hPerMillion, p.cache_write_1h_per_million),
        (F::ReasoningPerMillion, p.reasoning_per_million),
        (F::AudioInputPerMillion, p.audio_input_per_million),
        (F::AudioOutputPerMillion, p.audio_output_per_million),
        (F::PerSearchQuery, p.per_search_query),
    ];
    // The tiers are typed as JSON; a blank box is none.
    let mut bad_json = Vec::new();
    let mut parse = |field: &str, text: &str| match text.trim() {
        "" => serde_json::Value::Null,
        t => serde_json::from_str(t).unwrap_or_else(|e| {
            bad_json.push((field.to_string(), format!("not valid JSON: {e}")));
            serde_json::Value::Null
        }),
    };
    let tiers = parse("tiers", &p.tiers);
    let service_tiers = parse("service_tiers", &p.service_tiers);
    if !bad_json.is_empty() {
        return super::session::ssr::form_error(crate::server::error::AppError::InvalidFields(bad_json)).map(Some);
    }
    let form = PriceForm {
        provider: p.provider,
        model: p.model,
        rates: rates.into_iter().map(|(f, v)| (f.name().to_string(), serde_json::Value::String(v))).collect(),
        tiers,
        service_tiers,
        description: opt(p.description),
        effective_from: opt(effective),
        max_output_tokens: serde_json::Value::String(p.max_output_tokens),
    };
    match state.engine.add_price(&form, &principal.actor(), chrono::Utc::now()).await {
        Ok(_) => Ok(None),
        // A problem inside a tier shows under its box, with its path.
        Err(crate::server::error::AppError::InvalidFields(errs)) => {
            let errs = errs
                .into_iter()
                .map(|(field, msg)| match ["service_tiers", "tiers"].into_iter().find(|b| field.starts_with(b)) {
                    Some(box_) if field != box_ => (box_.to_string(), format!("{field}: {msg}")),
                    _ => (field, msg),
                })
                .collect();
            super::session::ssr::form_error(crate::server::error::AppError::InvalidFields(errs)).map(Some)
        }
        Err(e) => super::session::ssr::form_error(e).map(Some),
    }
}

#[server(prefix = "/sfn")]
pub async fn admin_users(search: Option<String>) -> Result<Vec<AdminUser>, ServerFnError> {
    let state = admin().await?;
    let now = chrono::Utc::now();
    let (list, _) = state
        .engine
        .list_users(search.as_deref().filter(|s| !s.is_empty()), 200, 0)
        .await
        .map_err(super::session::ssr::fail)?;
    let mut out = Vec::with_capacity(list.len());
    for u in list {
        let (_, sub, cat) = state.engine.current_subscription(&u.id, now).await.map_err(super::session::ssr::fail)?;
        out.push(AdminUser {
            plan: cat.plan_of(&sub).map_or_else(|| crate::domain::plan::NO_PLAN.into(), |p| p.name.clone()),
            plan_id: sub.plan_id,
            billing_cycle: sub.billing_cycle.as_str().into(),
            timezone: sub.timezone.name().into(),
            status: sub.status.to_string(),
            cancels_on: sub.cancel_at.map(|t| t.format("%Y-%m-%d").to_string()),
            disabled: state.engine.account_disabled(&u.id).await.map_err(super::session::ssr::fail)?,
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
    let (state, principal) = super::session::ssr::caller().await?;
    principal.require_admin().map_err(super::session::ssr::fail)?;
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
        Err(e) => super::session::ssr::form_error(e).map(Some),
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
    let (state, principal) = super::session::ssr::caller().await?;
    principal.require_admin().map_err(super::session::ssr::fail)?;
    let Some(role) = Role::parse(user.role.trim()) else {
        return super::session::ssr::form_error(AppError::InvalidFields(vec![(
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
        Err(e) => super::session::ssr::form_error(e).map(Some),
    }
}

/// One admin action on a user: `make_admin`, `make_user`, `disable`,
/// `enable`, `cancel_now`, `cancel_at_cycle_end`, `pause`, `resume`.
#[server(prefix = "/sfn")]
pub async fn admin_user_action(user_id: String, action: String) -> Result<Option<FormError>, ServerFnError> {
    use crate::domain::identity::Role;
    use crate::server::error::AppError;
    use crate::server::service::subscriptions::Lifecycle;
    let (state, principal) = super::session::ssr::caller().await?;
    principal.require_admin().map_err(super::session::ssr::fail)?;
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
        Err(e) => super::session::ssr::form_error(e).map(Some),
    }
}

/// Ends every session of a user.
#[server(prefix = "/sfn")]
pub async fn sign_out_user(user_id: String) -> Result<Option<FormError>, ServerFnError> {
    let (state, principal) = super::session::ssr::caller().await?;
    principal.require_admin().map_err(super::session::ssr::fail)?;
    match state.engine.sign_out_everywhere(&user_id, &principal.actor(), chrono::Utc::now()).await {
        Ok(_) => Ok(None),
        Err(e) => super::session::ssr::form_error(e).map(Some),
    }
}

#[server(prefix = "/sfn")]
pub async fn admin_alerts() -> Result<Vec<AdminAlert>, ServerFnError> {
    let state = admin().await?;
    let rows = state.engine.all_alerts(300).await.map_err(super::session::ssr::fail)?;
    Ok(rows
        .into_iter()
        .map(|(a, email)| AdminAlert {
            id: a.id,
            user: email.unwrap_or_else(|| "(administrators)".into()),
            title: a.title,
            message: a.message,
            severity: a.severity.as_str().to_string(),
            is_read: a.is_read,
            created_at: fmt_time(a.created_at),
        })
        .collect())
}

#[server(prefix = "/sfn")]
pub async fn audit_entries(entity_type: Option<String>, actor: Option<String>) -> Result<Vec<AuditRow>, ServerFnError> {
    let state = admin().await?;
    let nonempty = |s: &Option<String>| s.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
    let (rows, _) = state
        .engine
        .audit_log(nonempty(&entity_type).as_deref(), nonempty(&actor).as_deref(), 200, 0)
        .await
        .map_err(super::session::ssr::fail)?;
    let show = |v: &Option<serde_json::Value>| v.as_ref().map(|v| v.to_string()).unwrap_or_default();
    Ok(rows
        .iter()
        .map(|e| AuditRow {
            id: e.id,
            at: fmt_time(e.created_at),
            actor: e.actor.clone(),
            action: e.action.clone(),
            entity: format!("{} {}", e.entity_type, e.entity_id),
            before: show(&e.before),
            after: show(&e.after),
        })
        .collect())
}

#[server(prefix = "/sfn")]
pub async fn api_keys() -> Result<Vec<KeyRow>, ServerFnError> {
    let state = admin().await?;
    let keys = state.engine.list_api_keys().await.map_err(super::session::ssr::fail)?;
    Ok(keys
        .into_iter()
        .map(|k| KeyRow {
            id: k.id,
            prefix: k.prefix,
            user: k.user_id.map_or_else(|| "(service)".into(), String::from),
            scopes: k.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
            name: k.name,
            created_at: fmt_time(k.created_at),
            last_used_at: k.last_used_at.map(fmt_time).unwrap_or_else(|| "never".into()),
            revoked: k.revoked_at.is_some(),
        })
        .collect())
}

/// The new-key form: checkboxes are present when ticked.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInput {
    #[serde(default)]
    pub user_id: String,
    #[serde(default)]
    pub name: String,
    pub scope_ingest: Option<String>,
    pub scope_read: Option<String>,
    pub scope_gate: Option<String>,
    pub scope_alerts: Option<String>,
    pub scope_metrics: Option<String>,
    pub scope_proxy: Option<String>,
    pub scope_admin: Option<String>,
}

/// Creates a key; the secret comes back this once.
#[server(prefix = "/sfn")]
pub async fn create_api_key(key: KeyInput) -> Result<Result<String, FormError>, ServerFnError> {
    let KeyInput { user_id, name, .. } = key.clone();
    use crate::domain::identity::Scope;
    let scopes: Vec<Scope> = [
        (Scope::Ingest, key.scope_ingest),
        (Scope::Read, key.scope_read),
        (Scope::Gate, key.scope_gate),
        (Scope::Alerts, key.scope_alerts),
        (Scope::Metrics, key.scope_metrics),
        (Scope::Proxy, key.scope_proxy),
        (Scope::Admin, key.scope_admin),
    ]
    .into_iter()
    .filter_map(|(s, on)| on.map(|_| s))
    .collect();
    let (state, principal) = super::session::ssr::caller().await?;
    principal.require_admin().map_err(super::session::ssr::fail)?;
    let user = Some(user_id.trim()).filter(|u| !u.is_empty());
    match state.engine.create_api_key(user, &scopes, &name, &principal.actor(), chrono::Utc::now()).await {
        Ok((_, secret)) => Ok(Ok(secret)),
        Err(e) => super::session::ssr::form_error(e).map(Err),
    }
}

#[server(prefix = "/sfn")]
pub async fn revoke_api_key(id: String) -> Result<(), ServerFnError> {
    let (state, principal) = super::session::ssr::caller().await?;
    principal.require_admin().map_err(super::session::ssr::fail)?;
    state.engine.revoke_api_key(&id, &principal.actor(), chrono::Utc::now()).await.map_err(super::session::ssr::fail)
}
