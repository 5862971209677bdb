//! Family B admin API (`/api/admin`): an admin session or a key with the
//! `admin` scope; the same operations as the admin web UI.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};

use super::envelope;
use crate::domain::identity::{Role, Scope, User};
use crate::domain::money::Nanos;
use crate::domain::period::BillingCycle;
use crate::domain::plan::Plan;
use crate::domain::pricing::PriceVersion;
use crate::server::error::{AppError, AppResult};
use crate::server::identity::Principal;
use crate::server::service::admin::{PlanForm, PriceForm, UserForm};
use crate::server::state::AppState;

fn parse_body(body: &Bytes) -> AppResult<Value> {
    let v: Value = serde_json::from_slice(body).map_err(|e| AppError::BadRequest(format!("malformed JSON: {e}")))?;
    if v.is_object() { Ok(v) } else { Err(AppError::Invalid("the body must be a JSON object".into())) }
}

/// A JSON scalar as form text: strings as-is, numbers printed, null empty.
fn text(v: &Value, field: &str) -> AppResult<String> {
    match v {
        Value::Null => Ok(String::new()),
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        _ => Err(AppError::InvalidFields(vec![(field.into(), "must be a string or a number".into())])),
    }
}

fn form_of(p: &Plan) -> PlanForm {
    PlanForm {
        name: p.name.clone(),
        tier: p.tier.as_str().into(),
        price_monthly: p.price_monthly.usd_string(),
        price_yearly: p.price_yearly.usd_string(),
        description: p.description.clone(),
        features: p.features.clone(),
        limits: p.limits.iter().map(|(k, v)| (k.as_string(), k.input_value(v))).collect(),
        archived: p.archived,
    }
}

/// Applies the fields present in `v` to `form`.
fn merge_plan(mut form: PlanForm, v: &Value) -> AppResult<PlanForm> {
    let obj = v.as_object().expect("checked object");
    for (k, val) in obj {
        match k.as_str() {
            "name" => form.name = text(val, k)?,
            "tier" => form.tier = text(val, k)?,
            "price_monthly" => form.price_monthly = text(val, k)?,
            "price_yearly" => form.price_yearly = text(val, k)?,
            "description" => form.description = text(val, k)?,
            "features" => {
                form.features = val
                    .as_array()
                    .and_then(|a| a.iter().map(|f| f.as_str().map(str::to_string)).collect::<Option<Vec<_>>>())
                    .ok_or_else(|| {
                        AppError::InvalidFields(vec![("features".into(), "must be an array of strings".into())])
                    })?;
            }
            "limits" => {
                let limits = val
                    .as_object()
                    .ok_or_else(|| AppError::InvalidFields(vec![("limits".into(), "must be an object".into())]))?;
                for (lk, lv) in limits {
                    form.limits.insert(lk.clone(), text(lv, &format!("limits.{lk}"))?);
                }
            }
            "archived" => {
                form.archived = val
                    .as_bool()
                    .ok_or_else(|| AppError::InvalidFields(vec![("archived".into(), "must be true or false".into())]))?
            }
            "id" => {}
            other => return Err(AppError::InvalidFields(vec![(other.into(), "unknown field".into())])),
        }
    }
    Ok(form)
}

pub async fn list_plans(State(state): State<AppState>, principal: Principal) -> AppResult<Json<Value>> {
    principal.require_admin()?;
    let cat = state.engine.catalog_snapshot().await?;
    Ok(envelope(json!({"plans": cat.plans.iter().map(plan_admin_json).collect::<Vec<_>>(), "total": cat.plans.len()})))
}

pub async fn get_plan(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> AppResult<Json<Value>> {
    principal.require_admin()?;
    let id: i64 = id.parse().map_err(|_| AppError::BadRequest(format!("plan id `{id}` is not a number")))?;
    let cat = state.engine.catalog_snapshot().await?;
    let p = cat.plan(id).ok_or_else(|| AppError::NotFound(format!("no plan with id {id}")))?;
    Ok(envelope(plan_admin_json(p)))
}

pub async fn create_plan(State(state): State<AppState>, principal: Principal, body: Bytes) -> AppResult<Json<Value>> {
    principal.require_admin()?;
    let form = merge_plan(PlanForm::default(), &parse_body(&body)?)?;
    let plan = state.engine.create_plan(&form, &principal.actor(), Utc::now()).await?;
    Ok(envelope(plan_admin_json(&plan)))
}

/// Replaces the fields given (e.g. `{"archived": true}` archives).
pub async fn update_plan(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    body: Bytes,
) -> AppResult<Json<Value>> {
    principal.require_admin()?;
    let id: i64 = id.parse().map_err(|_| AppError::BadRequest(format!("plan id `{id}` is not a number")))?;
    let v = parse_body(&body)?;
    let cat = state.engine.catalog_snapshot().await?;
    let existing = cat.plan(id).ok_or_else(|| AppError::NotFound(format!("no plan with id {id}")))?;
    let form = merge_plan(form_of(existing), &v)?;
    let plan = state.engine.update_plan(id, &form, &principal.actor(), Utc::now()).await?;
    Ok(envelope(plan_admin_json(&plan)))
}

/// Every price version, oldest first per provider and model.
pub async fn list_pricing(State(state): State<AppState>, principal: Principal) -> AppResult<Json<Value>> {
    principal.require_admin()?;
    let cat = state.engine.catalog_snapshot().await?;
    let rows: Vec<Value> = cat.prices.versions().iter().map(price_admin_json).collect();
    Ok(envelope(json!({"total": rows.len(), "pricing": rows})))
}

pub async fn add_price(State(state): State<AppState>, principal: Principal, body: Bytes) -> AppResult<Json<Value>> {
    principal.require_admin()?;
    let body = parse_body(&body)?;
    let form = PriceForm::from_json(body.as_object().expect("parse_body answers objects"))?;
    let v = state.engine.add_price(&form, &principal.actor(), Utc::now()).await?;
    Ok(envelope(price_admin_json(&v)))
}

/// The largest price map the import takes (LiteLLM's whole map is ~3.5 MB).
pub const MAX_IMPORT_BYTES: usize = 16 * 1024 * 1024;

#[derive(Deserialize)]
pub struct ImportQuery {
    format: Option<String>,
    effective_from: Option<String>,
    dry_run: Option<String>,
}

/// `POST /api/admin/pricing/import?format=litellm&effective_from=T&dry_run=true|false`.
pub async fn import_pricing(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<ImportQuery>,
    body: axum::body::Body,
) -> AppResult<Json<Value>> {
    principal.require_admin()?;
    let bytes =
        axum::body::to_bytes(body, MAX_IMPORT_BYTES).await.map_err(|_| AppError::PayloadTooLarge(MAX_IMPORT_BYTES))?;
    match q.format.as_deref().unwrap_or("litellm") {
        "litellm" => {}
        other => return Err(AppError::BadRequest(format!("format must be litellm (got `{other}`)"))),
    }
    let dry_run = match q.dry_run.as_deref().unwrap_or("false") {
        "true" | "1" => true,
        "false" | "0" => false,
        other => return Err(AppError::BadRequest(format!("dry_run must be true or false (got `{other}`)"))),
    };
    let now = Utc::now();
    let effective_from = match q.effective_from.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => now,
        Some(s) => chrono::DateTime::parse_from_rfc3339(s)
            .map_err(|_| AppError::BadRequest(format!("effective_from `{s}` is not an RFC 3339 date-time")))?
            .with_timezone(&Utc),
    };
    let text =
        String::from_utf8(bytes.to_vec()).map_err(|_| AppError::BadRequest("the price map is not UTF-8".into()))?;
    let report = state.engine.import_prices(&text, effective_from, dry_run, &principal.actor(), now).await?;
    Ok(envelope(report))
}

#[derive(Deserialize)]
pub struct ListQuery {
    search: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
    entity_type: Option<String>,
    actor: Option<String>,
}

pub async fn list_users(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<ListQuery>,
) -> AppResult<Json<Value>> {
    principal.require_admin()?;
    let (list, total) =
        state.engine.list_users(q.search.as_deref(), q.limit.unwrap_or(50), q.offset.unwrap_or(0)).await?;
    Ok(envelope(json!({"users": list.iter().map(user_json).collect::<Vec<_>>(), "total": total})))
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
fn timezone_field(raw: Option<&str>) -> AppResult<Option<chrono_tz::Tz>> {
    raw.map(|t| {
        crate::domain::period::parse_timezone(t).map_err(|e| AppError::InvalidFields(vec![("timezone".into(), e)]))
    })
    .transpose()
}

pub async fn create_user(State(state): State<AppState>, principal: Principal, body: Bytes) -> AppResult<Json<Value>> {
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
    Ok(envelope(user_json(&user)))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CancelBody {
    at: Option<String>,
}

fn status_json(user_id: &str, sub: &crate::domain::subscription::Subscription) -> Value {
    json!({
        "user_id": user_id,
        "status": sub.status,
        "cancel_at": sub.cancel_at.map(|t| t.to_rfc3339()),
        "current_period_start": sub.period_start.to_rfc3339(),
        "current_period_end": sub.period_end.to_rfc3339(),
    })
}

async fn lifecycle(
    state: &AppState,
    principal: &Principal,
    user_id: &str,
    action: crate::server::service::subscriptions::Lifecycle,
) -> AppResult<Json<Value>> {
    principal.require_admin()?;
    let sub = state.engine.change_status(user_id, action, &principal.actor(), Utc::now()).await?;
    Ok(envelope(status_json(user_id, &sub)))
}

/// `POST …/subscription/cancel` `{"at": "now"|"period_end"}` (default the
/// end of the paid cycle).
pub async fn cancel_subscription(
    State(state): State<AppState>,
    principal: Principal,
    Path(user_id): Path<String>,
    body: axum::body::Bytes,
) -> AppResult<Json<Value>> {
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
) -> AppResult<Json<Value>> {
    lifecycle(&state, &principal, &user_id, crate::server::service::subscriptions::Lifecycle::Pause).await
}

pub async fn resume_subscription(
    State(state): State<AppState>,
    principal: Principal,
    Path(user_id): Path<String>,
) -> AppResult<Json<Value>> {
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
) -> AppResult<Json<Value>> {
    principal.require_admin()?;
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
    let mut v = user_json(&user);
    v["disabled"] = json!(state.engine.account_disabled(&user_id).await?);
    Ok(envelope(v))
}

/// Ends every session of a user: `{"sessions_ended": n}`.
pub async fn sign_out_everywhere(
    State(state): State<AppState>,
    principal: Principal,
    Path(user_id): Path<String>,
) -> AppResult<Json<Value>> {
    principal.require_admin()?;
    let ended = state.engine.sign_out_everywhere(&user_id, &principal.actor(), Utc::now()).await?;
    Ok(envelope(json!({"user_id": user_id, "sessions_ended": ended})))
}

pub async fn get_user(
    State(state): State<AppState>,
    principal: Principal,
    Path(user_id): Path<String>,
) -> AppResult<Json<Value>> {
    principal.require_admin()?;
    let user = state.engine.user(&user_id).await?;
    let (_, sub, cat) = state.engine.current_subscription(&user_id, Utc::now()).await?;
    let mut v = user_json(&user);
    v["disabled"] = json!(state.engine.account_disabled(&user_id).await?);
    v["subscription"] = json!({
        "plan_id": sub.plan_id,
        "plan": cat.plan_of(&sub).map(|p| p.name.clone()),
        "billing_cycle": sub.billing_cycle.as_str(),
        "timezone": sub.timezone.name(),
        "status": sub.status,
        "cancel_at": sub.cancel_at.map(|t| t.to_rfc3339()),
        "scheduled": sub.pending.map(|(plan_id, cycle)| json!({
            "plan_id": plan_id, "billing_cycle": cycle.as_str(), "effective_at": sub.cycle_end.to_rfc3339(),
        })),
        "current_period_start": sub.period_start.to_rfc3339(),
        "current_period_end": sub.period_end.to_rfc3339(),
    });
    Ok(envelope(v))
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
) -> AppResult<Json<Value>> {
    principal.require_admin()?;
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
    Ok(envelope(json!({
        "user_id": user_id,
        "plan_id": sub.plan_id,
        "billing_cycle": sub.billing_cycle.as_str(),
        "timezone": sub.timezone.name(),
        "current_period_start": sub.period_start.to_rfc3339(),
        "current_period_end": sub.period_end.to_rfc3339(),
        "billing_period": sub.current_period().label(),
        "change": kind,
        "fee": fee,
        "scheduled": sub.pending.map(|(plan_id, cycle)| json!({
            "plan_id": plan_id, "billing_cycle": cycle.as_str(), "effective_at": sub.cycle_end.to_rfc3339(),
        })),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKeyBody {
    user_id: Option<String>,
    scopes: Vec<String>,
    #[serde(default)]
    name: String,
}

fn key_json(k: &crate::domain::identity::ApiKey) -> Value {
    json!({
        "id": k.id,
        "prefix": k.prefix,
        "user_id": k.user_id,
        "scopes": k.scopes,
        "name": k.name,
        "created_at": k.created_at.to_rfc3339(),
        "last_used_at": k.last_used_at.map(|t| t.to_rfc3339()),
        "revoked_at": k.revoked_at.map(|t| t.to_rfc3339()),
    })
}

pub async fn list_keys(State(state): State<AppState>, principal: Principal) -> AppResult<Json<Value>> {
    principal.require_admin()?;
    let keys = state.engine.list_api_keys().await?;
    Ok(envelope(json!({"api_keys": keys.iter().map(key_json).collect::<Vec<_>>(), "total": keys.len()})))
}

pub async fn create_key(State(state): State<AppState>, principal: Principal, body: Bytes) -> AppResult<Json<Value>> {
    principal.require_admin()?;
    let b: NewKeyBody = serde_json::from_value(parse_body(&body)?)
        .map_err(|e| AppError::Invalid(format!("invalid API key request: {e}")))?;
    let scopes = b
        .scopes
        .iter()
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .map(|s| {
            Scope::parse(&s).ok_or_else(|| {
                let all: Vec<&str> = Scope::ALL.iter().map(|s| s.as_str()).collect();
                AppError::Invalid(format!("unknown scope `{s}`; scopes are {}", all.join(", ")))
            })
        })
        .collect::<AppResult<Vec<Scope>>>()?;
    let (key, secret) =
        state.engine.create_api_key(b.user_id.as_deref(), &scopes, &b.name, &principal.actor(), Utc::now()).await?;
    let mut v = key_json(&key);
    v["key"] = json!(secret);
    Ok(envelope(v))
}

pub async fn revoke_key(
    State(state): State<AppState>,
    principal: Principal,
    Path(key_id): Path<String>,
) -> AppResult<Json<Value>> {
    principal.require_admin()?;
    state.engine.revoke_api_key(&key_id, &principal.actor(), Utc::now()).await?;
    Ok(envelope(json!({"id": key_id, "revoked": true})))
}

pub async fn audit_log(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<ListQuery>,
) -> AppResult<Json<Value>> {
    principal.require_admin()?;
    let (list, total) = state
        .engine
        .audit_log(q.entity_type.as_deref(), q.actor.as_deref(), q.limit.unwrap_or(50), q.offset.unwrap_or(0))
        .await?;
    let rows: Vec<Value> = list
        .iter()
        .map(|e| json!({"id": e.id, "actor": e.actor, "action": e.action, "entity_type": e.entity_type, "entity_id": e.entity_id, "before": e.before, "after": e.after, "created_at": e.created_at.to_rfc3339()}))
        .collect();
    Ok(envelope(json!({"entries": rows, "total": total})))
}

// ----- the admin API's JSON -----

/// The admin API's view of a plan: USD as exact strings, `null` = unlimited.
fn plan_admin_json(p: &Plan) -> Value {
    let mut limits = serde_json::Map::new();
    for key in crate::domain::provider::FAMILY_A_LIMIT_KEYS {
        limits.insert((*key).into(), Value::Null);
    }
    for (k, v) in p.limits.iter() {
        let val = if k.is_money() { json!(Nanos(v).usd_string()) } else { json!(v) };
        limits.insert(k.as_string(), val);
    }
    json!({
        "id": p.id,
        "name": p.name,
        "tier": p.tier.as_str(),
        "price_monthly": p.price_monthly.usd_string(),
        "price_yearly": p.price_yearly.usd_string(),
        "description": p.description,
        "features": p.features,
        "limits": limits,
        "archived": p.archived,
    })
}

fn price_admin_json(v: &PriceVersion) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("id".into(), v.id.into());
    m.insert("provider".into(), v.provider.as_str().into());
    m.insert("model".into(), v.model.clone().into());
    m.insert("effective_from".into(), v.effective_from.to_rfc3339().into());
    m.extend(crate::domain::pricing::json::rates_to_map(&v.rates));
    m.insert("description".into(), v.description.clone().into());
    m.insert("max_output_tokens".into(), v.max_output_tokens.into());
    Value::Object(m)
}

fn user_json(u: &User) -> Value {
    json!({"id": u.id, "user_id": u.id, "email": u.email, "name": u.name, "role": u.role.as_str(), "created_at": u.created_at.to_rfc3339()})
}

// ----- webhooks -----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewWebhookBody {
    url: String,
    events: Vec<String>,
    #[serde(default)]
    description: Option<String>,
}

fn webhook_json(e: &crate::domain::webhooks::Endpoint) -> Value {
    json!({
        "id": e.id,
        "url": e.url,
        "events": e.events,
        "description": e.description,
        "created_at": e.created_at.to_rfc3339(),
        "deleted_at": e.deleted_at.map(|t| t.to_rfc3339()),
        "deliveries": {"pending": e.pending, "delivered": e.delivered, "failed": e.failed},
    })
}

fn delivery_json(d: &crate::domain::webhooks::Delivery) -> Value {
    json!({
        "id": d.id,
        "endpoint_id": d.endpoint_id,
        "event_id": d.event_id,
        "type": d.event_type,
        "status": d.status,
        "attempts": d.attempts,
        "response_code": d.last_status,
        "error": d.last_error,
        "last_attempt_at": d.last_attempt_at.map(|t| t.to_rfc3339()),
        "next_attempt_at": d.next_attempt_at.map(|t| t.to_rfc3339()),
        "created_at": d.created_at.to_rfc3339(),
        "delivered_at": d.delivered_at.map(|t| t.to_rfc3339()),
    })
}

pub async fn list_webhooks(State(state): State<AppState>, principal: Principal) -> AppResult<Json<Value>> {
    principal.require_admin()?;
    let list = state.engine.webhooks().await?;
    Ok(envelope(json!({"webhooks": list.iter().map(webhook_json).collect::<Vec<_>>(), "total": list.len()})))
}

/// Registers an endpoint; the answer carries its signing secret, once.
pub async fn create_webhook(
    State(state): State<AppState>,
    principal: Principal,
    body: Bytes,
) -> AppResult<(axum::http::StatusCode, Json<Value>)> {
    principal.require_admin()?;
    let b: NewWebhookBody = serde_json::from_value(parse_body(&body)?)
        .map_err(|e| AppError::Invalid(format!("invalid webhook endpoint: {e}")))?;
    let (endpoint, secret) = state
        .engine
        .create_webhook(&b.url, &b.events, b.description.as_deref().unwrap_or(""), &principal.actor(), Utc::now())
        .await?;
    let mut v = webhook_json(&endpoint);
    v["secret"] = json!(secret);
    Ok((axum::http::StatusCode::CREATED, envelope(v)))
}

pub async fn delete_webhook(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> AppResult<Json<Value>> {
    principal.require_admin()?;
    state.engine.delete_webhook(&id, &principal.actor(), Utc::now()).await?;
    Ok(envelope(json!({"id": id, "deleted": true})))
}

#[derive(Deserialize)]
pub struct DeliveriesQuery {
    limit: Option<i64>,
}

pub async fn webhook_deliveries(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    Query(q): Query<DeliveriesQuery>,
) -> AppResult<Json<Value>> {
    principal.require_admin()?;
    let (endpoint, list) = state.engine.webhook_deliveries(&id, q.limit.unwrap_or(100)).await?;
    Ok(envelope(json!({
        "webhook": webhook_json(&endpoint),
        "deliveries": list.iter().map(delivery_json).collect::<Vec<_>>(),
    })))
}

pub async fn replay_delivery(
    State(state): State<AppState>,
    principal: Principal,
    Path((id, delivery_id)): Path<(String, i64)>,
) -> AppResult<(axum::http::StatusCode, Json<Value>)> {
    principal.require_admin()?;
    let d = state.engine.replay_delivery(&id, delivery_id, &principal.actor(), Utc::now()).await?;
    Ok((axum::http::StatusCode::ACCEPTED, envelope(delivery_json(&d))))
}
