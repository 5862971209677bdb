//! `POST /api/subscription/preflight-check`: the gate before a paid call.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::super::envelope;
use crate::domain::limits::LimitUse;
use crate::domain::money::Nanos;
use crate::server::error::{AppError, AppResult};
use crate::server::identity::Principal;
use crate::server::service::gate::{CreditCheck, OperationCheck, Preflight};
use crate::server::state::AppState;
use crate::server::views::{rfc3339, usd};

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
    let user_id = match principal.require_gate(&user_id) {
        Ok(id) => id,
        Err(e) if req.reserve => return Err(e),
        Err(_) => principal.require_read(&user_id)?,
    };
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
    let data = PreflightData::from(&p);
    if req.reserve && p.insufficient_credits() {
        let message = p.denial_message().unwrap_or_default().to_string();
        let body = extra(&CreditDenial { wallet: data.wallet.clone(), data: &data })?;
        return Err(AppError::InsufficientCredits { message, body });
    }
    match (&p.denied_by, req.reserve) {
        (Some(l), true) => {
            let message = p.denial_message().unwrap_or_default().to_string();
            let limit = DeniedLimit::of(l, &p);
            Err(AppError::LimitReached {
                message,
                retry_after_secs: p.retry_after_secs(now),
                body: extra(&LimitDenial { data: &data, limit })?,
            })
        }
        _ => Ok(envelope(data).into_response()),
    }
}

/// What a denial adds to the error envelope, as JSON.
fn extra<T: Serialize>(body: &T) -> AppResult<Option<serde_json::Value>> {
    serde_json::to_value(body).map(Some).map_err(|_| AppError::Internal)
}

/// The preflight's answer (`PreflightCheckResponse`).
#[derive(Debug, Serialize)]
pub struct PreflightData {
    can_proceed: bool,
    estimated_cost: f64,
    operations: Vec<OperationView>,
    total_cost: f64,
    usage_summary: Option<UsageSummary>,
    cached: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    reservation_id: Option<String>,
    /// A prepaid customer's credits against the request.
    #[serde(skip_serializing_if = "Option::is_none")]
    wallet: Option<CreditView>,
}

impl From<&Preflight> for PreflightData {
    fn from(p: &Preflight) -> Self {
        PreflightData {
            can_proceed: p.can_proceed,
            estimated_cost: usd(p.total_cost),
            operations: p.operations.iter().map(OperationView::from).collect(),
            total_cost: usd(p.total_cost),
            usage_summary: p.calls_summary.as_ref().map(|l| UsageSummary {
                current_calls: l.used,
                limit: l.limit,
                remaining: l.remaining(),
            }),
            cached: false,
            reservation_id: p.reservation_id.clone(),
            wallet: p.wallet.map(CreditView::from),
        }
    }
}

/// One operation's verdict.
#[derive(Debug, Serialize)]
struct OperationView {
    provider: String,
    operation_type: String,
    cost: f64,
    allowed: bool,
    limit_info: Option<LimitInfo>,
    message: Option<String>,
}

impl From<&OperationCheck> for OperationView {
    fn from(o: &OperationCheck) -> Self {
        OperationView {
            provider: o.provider.clone(),
            operation_type: o.operation_type.clone(),
            cost: usd(o.cost),
            allowed: o.allowed,
            limit_info: o.limit.as_ref().map(|l| LimitInfo {
                current_usage: l.used,
                limit: l.limit,
                remaining: l.remaining(),
            }),
            message: o.message.clone(),
        }
    }
}

#[derive(Debug, Serialize)]
struct LimitInfo {
    current_usage: i64,
    limit: i64,
    remaining: i64,
}

#[derive(Debug, Serialize)]
struct UsageSummary {
    current_calls: i64,
    limit: i64,
    remaining: i64,
}

/// A prepaid customer's credits: what is available and what the request
/// needs, exact USD.
#[derive(Clone, Debug, Serialize)]
struct CreditView {
    available: String,
    required: String,
}

impl From<CreditCheck> for CreditView {
    fn from(w: CreditCheck) -> Self {
        CreditView { available: w.available.usd_string(), required: w.required.usd_string() }
    }
}

/// The limit a reservation was refused by: money as family A's USD
/// numbers, counts as counts.
#[derive(Debug, Serialize)]
struct DeniedLimit {
    key: String,
    resets_at: String,
    current_usage: crate::server::views::plan::FamilyANumber,
    limit: crate::server::views::plan::FamilyANumber,
}

impl DeniedLimit {
    fn of(l: &LimitUse, p: &Preflight) -> DeniedLimit {
        use crate::server::views::plan::FamilyANumber::{Count, Usd};
        let (current_usage, limit) = if l.key.is_money() {
            (Usd(usd(Nanos(l.used))), Usd(usd(Nanos(l.limit))))
        } else {
            (Count(l.used), Count(l.limit))
        };
        DeniedLimit { key: l.key.as_string(), resets_at: rfc3339(p.resets_at), current_usage, limit }
    }
}

/// What a 429 adds to the error envelope.
#[derive(Debug, Serialize)]
struct LimitDenial<'a> {
    data: &'a PreflightData,
    limit: DeniedLimit,
}

/// What a 402 adds to the error envelope.
#[derive(Debug, Serialize)]
struct CreditDenial<'a> {
    data: &'a PreflightData,
    wallet: Option<CreditView>,
}
