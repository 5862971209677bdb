//! `/api/wallet/{user_id}` and the admin's `/api/admin/users/{user_id}/wallet…`:
//! prepaid credits (contract: "Third wave: wallets"). Money is exact USD
//! strings; each resource has one typed wire view here.

use crate::domain::identity::UserId;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::{Enveloped, envelope};
use crate::domain::money::Nanos;
use crate::domain::wallet::{GrantKind, GrantSource, LowBalance};
use crate::server::error::{AppError, AppResult};
use crate::server::identity::Principal;
use crate::server::service::wallet::{NewGrant, Statement, WalletView, amount_field, instant_field};
use crate::server::state::AppState;
use crate::server::store::wallet::{StoredEntry, StoredGrant};

/// A grant on the wire.
#[derive(Serialize)]
pub struct GrantWire {
    id: String,
    kind: &'static str,
    amount: String,
    remaining: String,
    priority: i64,
    effective_at: String,
    expires_at: Option<String>,
    source: &'static str,
    status: &'static str,
    note: Option<String>,
    created_at: String,
}

impl From<&StoredGrant> for GrantWire {
    fn from(s: &StoredGrant) -> Self {
        let g = &s.grant;
        GrantWire {
            id: g.id.clone(),
            kind: g.kind.as_str(),
            amount: g.amount.usd_string(),
            remaining: g.remaining.usd_string(),
            priority: g.priority,
            effective_at: g.effective_at.to_rfc3339(),
            expires_at: g.expires_at.map(|t| t.to_rfc3339()),
            source: g.source.as_str(),
            status: g.status.as_str(),
            note: s.note.clone(),
            created_at: g.created_at.to_rfc3339(),
        }
    }
}

/// A wallet on the wire.
#[derive(Serialize)]
pub struct WalletWire {
    balance: String,
    held: String,
    available: String,
    currency: &'static str,
    low_balance_threshold: Option<String>,
    /// The threshold's rule when it is a percent of the last top-up
    /// (`"20%"`).
    low_balance_percent: Option<String>,
    runs_out_at: Option<String>,
    billing_mode: &'static str,
    grants: Vec<GrantWire>,
}

impl From<&WalletView> for WalletWire {
    fn from(w: &WalletView) -> Self {
        WalletWire {
            balance: w.balance.usd_string(),
            held: w.held.usd_string(),
            available: w.available.usd_string(),
            currency: "USD",
            low_balance_threshold: w.low_balance_threshold.map(Nanos::usd_string),
            low_balance_percent: match w.low_balance {
                Some(LowBalance::PercentOfLastTopUp(p)) => Some(format!("{p}%")),
                _ => None,
            },
            runs_out_at: w.runs_out_at.map(|t| t.to_rfc3339()),
            billing_mode: if w.prepaid { "prepaid" } else { "postpaid" },
            grants: w.grants.iter().map(GrantWire::from).collect(),
        }
    }
}

/// A statement entry on the wire.
#[derive(Serialize)]
pub struct EntryWire {
    id: String,
    at: String,
    kind: &'static str,
    amount: String,
    balance_after: String,
    event_id: Option<String>,
    grant_id: Option<String>,
    note: Option<String>,
}

impl From<&StoredEntry> for EntryWire {
    fn from(s: &StoredEntry) -> Self {
        let e = &s.entry;
        EntryWire {
            id: s.id.to_string(),
            at: e.at.to_rfc3339(),
            kind: e.kind.as_str(),
            amount: e.amount.usd_string(),
            balance_after: e.balance_after.usd_string(),
            event_id: e.event_id.clone(),
            grant_id: e.grant_id.clone(),
            note: e.note.clone(),
        }
    }
}

#[derive(Serialize)]
struct StatementWire {
    entries: Vec<EntryWire>,
    next_cursor: Option<String>,
}

impl From<&Statement> for StatementWire {
    fn from(s: &Statement) -> Self {
        StatementWire { entries: s.entries.iter().map(EntryWire::from).collect(), next_cursor: s.next_cursor.clone() }
    }
}

/// `GET /api/wallet/{user_id}`: that user's session, a `read` key bound to
/// them, or an admin.
pub async fn show(
    State(state): State<AppState>,
    principal: Principal,
    Path(user_id): Path<String>,
) -> AppResult<Enveloped<WalletWire>> {
    let user_id = principal.require_read(&user_id)?;
    current(&state, &user_id).await
}

/// The wallet as it stands now: what every request here answers.
async fn current(state: &AppState, user_id: &UserId) -> AppResult<Enveloped<WalletWire>> {
    let w = state.engine.wallet_view(user_id, Utc::now()).await?;
    Ok(envelope(WalletWire::from(&w)))
}

#[derive(Deserialize)]
pub struct StatementQuery {
    limit: Option<i64>,
    cursor: Option<String>,
    format: Option<String>,
}

/// `GET /api/wallet/{user_id}/ledger?limit&cursor`, newest first; CSV with
/// `Accept: text/csv` or `?format=csv` (every entry, oldest first).
pub async fn statement(
    State(state): State<AppState>,
    principal: Principal,
    Path(user_id): Path<String>,
    Query(q): Query<StatementQuery>,
    headers: HeaderMap,
) -> AppResult<Response> {
    let user_id = principal.require_read(&user_id)?;
    let wants_csv = q.format.as_deref() == Some("csv")
        || headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("text/csv"));
    if let Some(f) = q.format.as_deref().filter(|f| *f != "csv" && *f != "json") {
        return Err(AppError::InvalidFields(vec![("format".into(), format!("`{f}`: use csv or json"))]));
    }
    if wants_csv {
        return statement_csv(&state, &user_id).await;
    }
    let page = state.engine.wallet_statement(&user_id, q.limit.unwrap_or(50), q.cursor.as_deref()).await?;
    Ok(envelope(StatementWire::from(&page)).into_response())
}

async fn statement_csv(state: &AppState, user_id: &UserId) -> AppResult<Response> {
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = state.engine.wallet_statement(user_id, 500, cursor.as_deref()).await?;
        cursor = page.next_cursor.clone();
        pages.push(page);
        if cursor.is_none() {
            break;
        }
    }
    let rows = pages
        .iter()
        .flat_map(|p| &p.entries)
        .rev()
        .map(|e| {
            let w = EntryWire::from(e);
            vec![
                w.id,
                w.at,
                w.kind.to_string(),
                w.amount,
                w.balance_after,
                w.event_id.unwrap_or_default(),
                w.grant_id.unwrap_or_default(),
                w.note.unwrap_or_default(),
            ]
        })
        .collect();
    let header = ["id", "at", "kind", "amount", "balance_after", "event_id", "grant_id", "note"];
    Ok(super::csv::csv(&format!("wallet-{user_id}.csv"), &header, rows))
}

fn body_of<T: serde::de::DeserializeOwned>(body: &Bytes, what: &str) -> AppResult<T> {
    serde_json::from_slice(body).map_err(|e| AppError::Invalid(format!("invalid {what}: {e}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantBody {
    amount: String,
    kind: String,
    priority: Option<i64>,
    effective_at: Option<String>,
    expires_at: Option<String>,
    idempotency_key: String,
    note: Option<String>,
}

/// `POST /api/admin/users/{user_id}/wallet/grants`: the grant, or the one
/// an earlier request with the same key made (200 either way, as every
/// create in the admin API answers).
pub async fn grant(
    State(state): State<AppState>,
    principal: Principal,
    Path(user_id): Path<String>,
    body: Bytes,
) -> AppResult<Enveloped<GrantWire>> {
    let user_id = principal.require_admin_over(&user_id)?;
    let b: GrantBody = body_of(&body, "grant")?;
    let kind = GrantKind::parse(&b.kind)
        .ok_or_else(|| AppError::InvalidFields(vec![("kind".into(), "kind must be paid or promotional".into())]))?;
    let g = NewGrant {
        amount: amount_field("amount", &b.amount, false)?,
        kind,
        source: GrantSource::Admin,
        priority: b.priority.unwrap_or(0),
        effective_at: instant_field("effective_at", b.effective_at.as_deref())?,
        expires_at: instant_field("expires_at", b.expires_at.as_deref())?,
        idempotency_key: b.idempotency_key,
        note: b.note,
    };
    let (made, _created) = state.engine.grant_credits(&user_id, g, &principal.actor(), Utc::now()).await?;
    Ok(envelope(GrantWire::from(&made)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VoidBody {
    reason: String,
}

/// `POST /api/admin/users/{user_id}/wallet/grants/{grant_id}/void`.
pub async fn void(
    State(state): State<AppState>,
    principal: Principal,
    Path((user_id, grant_id)): Path<(String, String)>,
    body: Bytes,
) -> AppResult<Enveloped<WalletWire>> {
    let user_id = principal.require_admin_over(&user_id)?;
    let b: VoidBody = body_of(&body, "void")?;
    state.engine.void_grant(&user_id, &grant_id, &b.reason, &principal.actor(), Utc::now()).await?;
    current(&state, &user_id).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AdjustBody {
    amount: String,
    reason: String,
    idempotency_key: String,
}

/// `POST /api/admin/users/{user_id}/wallet/adjustments` `{amount (signed)}`.
pub async fn adjust(
    State(state): State<AppState>,
    principal: Principal,
    Path(user_id): Path<String>,
    body: Bytes,
) -> AppResult<Enveloped<WalletWire>> {
    let user_id = principal.require_admin_over(&user_id)?;
    let b: AdjustBody = body_of(&body, "adjustment")?;
    let amount = amount_field("amount", &b.amount, true)?;
    state.engine.adjust_wallet(&user_id, amount, &b.reason, &b.idempotency_key, &principal.actor(), Utc::now()).await?;
    current(&state, &user_id).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefundBody {
    event_id: String,
    reason: String,
}

/// `POST /api/admin/users/{user_id}/wallet/refunds` `{event_id, reason}`:
/// gives back what the event's debits drew, once.
pub async fn refund(
    State(state): State<AppState>,
    principal: Principal,
    Path(user_id): Path<String>,
    body: Bytes,
) -> AppResult<Enveloped<WalletWire>> {
    let user_id = principal.require_admin_over(&user_id)?;
    let b: RefundBody = body_of(&body, "refund")?;
    state.engine.refund_event(&user_id, &b.event_id, &b.reason, &principal.actor(), Utc::now()).await?;
    current(&state, &user_id).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsBody {
    low_balance_threshold: Option<String>,
}

/// `PUT /api/admin/users/{user_id}/wallet` `{low_balance_threshold}`.
pub async fn settings(
    State(state): State<AppState>,
    principal: Principal,
    Path(user_id): Path<String>,
    body: Bytes,
) -> AppResult<Enveloped<WalletWire>> {
    let user_id = principal.require_admin_over(&user_id)?;
    let b: SettingsBody = body_of(&body, "wallet settings")?;
    let rule = b
        .low_balance_threshold
        .as_deref()
        .map(|raw| {
            LowBalance::parse(raw).map_err(|e| AppError::InvalidFields(vec![("low_balance_threshold".into(), e)]))
        })
        .transpose()?;
    state.engine.set_low_balance_threshold(&user_id, rule, &principal.actor(), Utc::now()).await?;
    current(&state, &user_id).await
}
