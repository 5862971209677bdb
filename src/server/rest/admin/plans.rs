//! `/api/admin/plans`: the plans customers subscribe to.

use axum::body::Bytes;
use axum::extract::{Path, State};
use chrono::Utc;
use serde::Serialize;
use serde_json::Value;

use super::*;
use crate::server::error::{AppError, AppResult};
use crate::server::identity::Principal;
use crate::server::rest::{Enveloped, envelope};
use crate::server::service::admin::PlanForm;
use crate::server::state::AppState;
use crate::server::views::plan::PlanView;

/// `GET /api/admin/plans`.
#[derive(Serialize)]
pub struct PlanList {
    plans: Vec<PlanView>,
    total: usize,
}

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

pub async fn list_plans(State(state): State<AppState>, principal: Principal) -> AppResult<Enveloped<PlanList>> {
    principal.require_admin()?;
    let cat = state.engine.catalog_snapshot().await?;
    Ok(envelope(PlanList { plans: cat.plans.iter().map(PlanView::from).collect(), total: cat.plans.len() }))
}

pub async fn get_plan(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> AppResult<Enveloped<PlanView>> {
    principal.require_admin()?;
    let id: i64 = id.parse().map_err(|_| AppError::BadRequest(format!("plan id `{id}` is not a number")))?;
    let cat = state.engine.catalog_snapshot().await?;
    let p = cat.plan(id).ok_or_else(|| AppError::NotFound(format!("no plan with id {id}")))?;
    Ok(envelope(PlanView::from(p)))
}

pub async fn create_plan(
    State(state): State<AppState>,
    principal: Principal,
    body: Bytes,
) -> AppResult<Enveloped<PlanView>> {
    principal.require_admin()?;
    let form = merge_plan(PlanForm::default(), &parse_body(&body)?)?;
    let plan = state.engine.create_plan(&form, &principal.actor(), Utc::now()).await?;
    Ok(envelope(PlanView::from(&plan)))
}

/// Replaces the fields given (e.g. `{"archived": true}` archives).
pub async fn update_plan(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    body: Bytes,
) -> AppResult<Enveloped<PlanView>> {
    principal.require_admin()?;
    let id: i64 = id.parse().map_err(|_| AppError::BadRequest(format!("plan id `{id}` is not a number")))?;
    let v = parse_body(&body)?;
    let cat = state.engine.catalog_snapshot().await?;
    let existing = cat.plan(id).ok_or_else(|| AppError::NotFound(format!("no plan with id {id}")))?;
    let form = merge_plan(form_of(existing), &v)?;
    let plan = state.engine.update_plan(id, &form, &principal.actor(), Utc::now()).await?;
    Ok(envelope(PlanView::from(&plan)))
}
