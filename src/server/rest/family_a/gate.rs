//! `POST /api/subscription/preflight-check`: the gate before a paid call.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};

use super::super::envelope;
use super::wire::{rfc3339, usd};
use crate::domain::money::Nanos;
use crate::server::error::{AppError, AppResult};
use crate::server::identity::Principal;
use crate::server::state::AppState;

#[derive(Deserialize)]
pub struct PreflightBody {
    operations: Vec<PreflightOp>,
    user_id: Option<String>,
    #[serde(default)]
    reserve: bool,
}

#[derive(Deserialize)]
pub struct PreflightOp {
    provider: String,
    model: Option<String>,
    tokens_requested: Option<u64>,
    units_requested: Option<u64>,
    service_tier: Option<String>,
    operation_type: String,
    #[serde(rename = "actual_provider_name")]
    _actual_provider_name: Option<String>,
}

/// `POST /preflight-check`: answers (200 either way), or with
/// `"reserve": true` gates: 200 plus a reservation, or 429 naming the limit.
pub async fn preflight(
    State(state): State<AppState>,
    principal: Principal,
    body: axum::body::Bytes,
) -> AppResult<Response> {
    use crate::domain::event::MAX_COUNT;
    use crate::domain::pricing::ServiceTier;
    use crate::server::service::gate::Operation;

    let req: PreflightBody = serde_json::from_slice(&body).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            AppError::BadRequest(format!("malformed JSON: {e}"))
        } else {
            AppError::Invalid(format!("invalid preflight request: {e}"))
        }
    })?;
    let user_id = match (&req.user_id, principal.own_user()) {
        (Some(u), _) => u.clone(),
        (None, Some(u)) => u.to_string(),
        (None, None) => return Err(AppError::Invalid("user_id is required for this caller".into())),
    };
    // Holding usage is a write: the host product's backend gates with a
    // `gate` (or `ingest`) key. Only checking is a read.
    if req.reserve {
        principal.require_gate(&user_id)?;
    } else if principal.require_gate(&user_id).is_err() {
        principal.require_read(&user_id)?;
    }
    let ops = req
        .operations
        .iter()
        .map(|o| {
            let provider =
                crate::domain::provider::Provider::parse(&o.provider).map_err(|e| AppError::Invalid(e.to_string()))?;
            let tokens = o.tokens_requested.unwrap_or(0);
            if tokens > MAX_COUNT {
                return Err(AppError::Invalid(format!("tokens_requested is larger than {MAX_COUNT}")));
            }
            if o.units_requested.is_some_and(|u| u > MAX_COUNT) {
                return Err(AppError::Invalid(format!("units_requested is larger than {MAX_COUNT}")));
            }
            let service_tier = match o.service_tier.as_deref() {
                None => ServiceTier::Standard,
                Some(t) => ServiceTier::parse(t).ok_or_else(|| {
                    AppError::Invalid(format!("service_tier must be standard, batch, flex or priority (got `{t}`)"))
                })?,
            };
            Ok(Operation {
                provider,
                service_tier,
                model: o.model.clone(),
                tokens_requested: tokens,
                units_requested: o.units_requested,
                operation_type: o.operation_type.clone(),
            })
        })
        .collect::<AppResult<Vec<_>>>()?;
    let now = Utc::now();
    let p = state.engine.preflight(&user_id, &ops, req.reserve, now).await?;
    let mut data = json!({
        "can_proceed": p.can_proceed,
        "estimated_cost": usd(p.total_cost),
        "operations": p.operations.iter().map(|o| json!({
            "provider": o.provider,
            "operation_type": o.operation_type,
            "cost": usd(o.cost),
            "allowed": o.allowed,
            "limit_info": o.limit.as_ref().map(|l| json!({"current_usage": l.used, "limit": l.limit, "remaining": l.remaining()})),
            "message": o.message,
        })).collect::<Vec<_>>(),
        "total_cost": usd(p.total_cost),
        "usage_summary": p.calls_summary.as_ref().map(|l| json!({"current_calls": l.used, "limit": l.limit, "remaining": l.remaining()})),
        "cached": false,
    });
    if let Some(id) = &p.reservation_id {
        data["reservation_id"] = json!(id);
    }
    if let Some(w) = p.wallet {
        data["wallet"] = json!({"available": w.available.usd_string(), "required": w.required.usd_string()});
    }
    if req.reserve && p.insufficient_credits() {
        let message = p.denial_message().unwrap_or_default().to_string();
        let wallet = data["wallet"].clone();
        return Err(AppError::InsufficientCredits { message, body: Some(json!({"data": data, "wallet": wallet})) });
    }
    match (&p.denied_by, req.reserve) {
        (Some(l), true) => {
            let message = p.denial_message().unwrap_or_default().to_string();
            let limit_value = if l.key.is_money() {
                json!({"current_usage": usd(Nanos(l.used)), "limit": usd(Nanos(l.limit))})
            } else {
                json!({"current_usage": l.used, "limit": l.limit})
            };
            let mut limit = json!({"key": l.key.as_string(), "resets_at": rfc3339(p.resets_at)});
            if let (Some(m), Value::Object(extra)) = (limit.as_object_mut(), limit_value) {
                m.extend(extra);
            }
            Err(AppError::LimitReached {
                message,
                retry_after_secs: p.retry_after_secs(now),
                body: Some(json!({"data": data, "limit": limit})),
            })
        }
        _ => Ok(envelope(data).into_response()),
    }
}
