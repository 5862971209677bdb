//! `/api/admin/plans`: the plans customers subscribe to.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use chrono::Utc;
use serde_json::{Value, json};

use super::*;
use crate::domain::money::Nanos;
use crate::domain::plan::Plan;
use crate::server::error::{AppError, AppResult};
use crate::server::identity::Principal;
use crate::server::rest::envelope;
use crate::server::service::admin::PlanForm;
use crate::server::state::AppState;

/// Applies the fields present in `v` to `form`.
pub(super) fn merge_plan(mut form: PlanForm, v: &Value) -> AppResult<PlanForm> {
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
            "billing_mode" => form.billing_mode = text(val, k)?,
            "included_credits" => form.included_credits = text(val, k)?,
            "credits_rollover_cap" => form.credits_rollover_cap = text(val, k)?,
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

/// The admin API's view of a plan: USD as exact strings, `null` = unlimited.
pub(super) fn plan_admin_json(p: &Plan) -> Value {
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
        "billing_mode": p.credits.mode.as_str(),
        "included_credits": p.credits.included.map(Nanos::usd_string),
        "credits_rollover_cap": p.credits.rollover_cap.map(Nanos::usd_string),
    })
}
