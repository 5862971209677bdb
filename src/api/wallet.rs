//! Server functions of prepaid credits: the customer's balance card and
//! statement, and the administrator's grant, adjust and void forms. They
//! call the same services as `/api/wallet` and the admin API.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::api::session::FormError;

/// One grant, for people.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantRow {
    pub id: String,
    pub kind: String,
    pub source: String,
    pub status: String,
    pub amount_nanos: i64,
    pub remaining_nanos: i64,
    pub priority: i64,
    pub expires: Option<String>,
    pub note: Option<String>,
}

/// A customer's wallet as the balance card shows it. Amounts in nanos.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalletCard {
    pub user_id: String,
    pub prepaid: bool,
    pub balance_nanos: i64,
    pub held_nanos: i64,
    pub available_nanos: i64,
    pub low_balance_threshold_nanos: Option<i64>,
    /// The threshold as typed: `"5.000000000"` or `"20%"`; empty for none.
    pub low_balance_rule: String,
    /// When a grant next expires or starts counting.
    pub next_change: Option<String>,
    /// "Runs out around …" at the last week's rate.
    pub runs_out_on: Option<String>,
    /// The balance at the end of each day of the period so far.
    pub burn_down: Vec<(String, i64)>,
    pub grants: Vec<GrantRow>,
}

/// One line of the statement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatementRow {
    pub at: String,
    pub kind: String,
    pub amount_nanos: i64,
    pub balance_after_nanos: i64,
    pub event_id: Option<String>,
    pub note: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatementPage {
    pub rows: Vec<StatementRow>,
    pub next_cursor: Option<String>,
}

#[cfg(feature = "ssr")]
fn card_of(user_id: &str, w: &crate::server::service::wallet::WalletView) -> WalletCard {
    let day = |t: chrono::DateTime<chrono::Utc>| t.format("%b %-d, %Y").to_string();
    WalletCard {
        user_id: user_id.to_string(),
        prepaid: w.prepaid,
        balance_nanos: w.balance.0,
        held_nanos: w.held.0,
        available_nanos: w.available.0,
        low_balance_threshold_nanos: w.low_balance_threshold.map(|n| n.0),
        low_balance_rule: match w.low_balance {
            Some(crate::domain::wallet::LowBalance::Amount(n)) => n.to_decimal().normalize().to_string(),
            Some(crate::domain::wallet::LowBalance::PercentOfLastTopUp(p)) => format!("{p}%"),
            None => String::new(),
        },
        next_change: w.next_change.map(|t| t.format("%b %-d, %Y %H:%M UTC").to_string()),
        runs_out_on: w.runs_out_at.map(day),
        burn_down: w.burn_down.iter().map(|(t, b)| (t.format("%b %-d").to_string(), b.0)).collect(),
        grants: w
            .grants
            .iter()
            .map(|s| GrantRow {
                id: s.grant.id.clone(),
                kind: s.grant.kind.as_str().into(),
                source: s.grant.source.as_str().into(),
                status: s.grant.status.as_str().into(),
                amount_nanos: s.grant.amount.0,
                remaining_nanos: s.grant.remaining.0,
                priority: s.grant.priority,
                expires: s.grant.expires_at.map(day),
                note: s.note.clone(),
            })
            .collect(),
    }
}

/// The wallet of the signed-in user (or `user`, for an admin); `None` when
/// the plan is postpaid and the wallet was never credited (no card then).
#[server(prefix = "/sfn")]
pub async fn get_wallet(user: Option<String>) -> Result<Option<WalletCard>, ServerFnError> {
    use crate::api::session::ssr::{fail, reader_of};
    let (state, _, user_id) = reader_of(user).await?;
    let w = state.engine.wallet_view(&user_id, chrono::Utc::now()).await.map_err(fail)?;
    Ok((w.prepaid || !w.grants.is_empty()).then(|| card_of(&user_id, &w)))
}

/// Any customer's wallet for the admin's page, always (a postpaid
/// customer's too), with a fresh idempotency key for its forms: a form
/// sent twice changes the wallet once.
#[server(prefix = "/sfn")]
pub async fn admin_wallet(user_id: String) -> Result<(WalletCard, String), ServerFnError> {
    use crate::api::session::ssr::{caller, fail};
    let (state, principal) = caller().await?;
    let user_id = principal.require_admin_over(user_id.trim()).map_err(fail)?;
    let w = state.engine.wallet_view(&user_id, chrono::Utc::now()).await.map_err(fail)?;
    Ok((card_of(&user_id, &w), format!("ui-{}", uuid::Uuid::new_v4().simple())))
}

/// Statement lines shown per page.
pub const STATEMENT_PAGE: i64 = 20;

/// A page of the statement, newest first; `cursor` from the page before.
#[server(prefix = "/sfn")]
pub async fn wallet_statement(user: Option<String>, cursor: Option<String>) -> Result<StatementPage, ServerFnError> {
    use crate::api::session::ssr::{fail, reader_of};
    let (state, _, user_id) = reader_of(user).await?;
    let cursor = cursor.filter(|c| !c.is_empty());
    let page = state.engine.wallet_statement(&user_id, STATEMENT_PAGE, cursor.as_deref()).await.map_err(fail)?;
    Ok(StatementPage {
        rows: page
            .entries
            .iter()
            .map(|e| StatementRow {
                at: e.entry.at.format("%Y-%m-%d %H:%M UTC").to_string(),
                kind: e.entry.kind.as_str().into(),
                amount_nanos: e.entry.amount.0,
                balance_after_nanos: e.entry.balance_after.0,
                event_id: e.entry.event_id.clone(),
                note: e.entry.note.clone(),
            })
            .collect(),
        next_cursor: page.next_cursor,
    })
}

/// The admin's grant form as posted (`grant[amount]`, …).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantInput {
    pub user_id: String,
    pub amount: String,
    pub kind: String,
    #[serde(default)]
    pub priority: String,
    #[serde(default)]
    pub expires_at: String,
    #[serde(default)]
    pub note: String,
    /// Rendered with the form: submitting it twice grants once.
    pub idempotency_key: String,
}

#[server(prefix = "/sfn")]
pub async fn admin_grant_credits(grant: GrantInput) -> Result<Option<FormError>, ServerFnError> {
    use crate::api::session::ssr::{caller, fail, form_error};
    use crate::domain::wallet::{GrantKind, GrantSource};
    use crate::server::error::AppError;
    use crate::server::service::wallet::{NewGrant, amount_field, instant_field};
    let (state, principal) = caller().await?;
    principal.require_admin().map_err(fail)?;
    let parsed = (|| {
        let kind = GrantKind::parse(&grant.kind)
            .ok_or_else(|| AppError::InvalidFields(vec![("kind".into(), "kind must be paid or promotional".into())]))?;
        let priority = match grant.priority.trim() {
            "" => 0,
            p => p.parse::<i64>().map_err(|_| {
                AppError::InvalidFields(vec![("priority".into(), "a whole number; higher spends first".into())])
            })?,
        };
        Ok::<_, AppError>(NewGrant {
            amount: amount_field("amount", &grant.amount, false)?,
            kind,
            source: GrantSource::Admin,
            priority,
            effective_at: None,
            expires_at: instant_field("expires_at", Some(&grant.expires_at))?,
            idempotency_key: grant.idempotency_key.clone(),
            note: Some(grant.note.trim().to_string()).filter(|n| !n.is_empty()),
        })
    })();
    let result = match parsed {
        Ok(g) => match principal.require_admin_over(&grant.user_id) {
            Ok(user_id) => {
                state.engine.grant_credits(&user_id, g, &principal.actor(), chrono::Utc::now()).await.map(|_| ())
            }
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => Ok(None),
        Err(e) => form_error(e).map(Some),
    }
}

#[server(prefix = "/sfn")]
pub async fn admin_adjust_wallet(
    user_id: String,
    amount: String,
    reason: String,
    idempotency_key: String,
) -> Result<Option<FormError>, ServerFnError> {
    use crate::api::session::ssr::{caller, fail, form_error};
    use crate::server::service::wallet::amount_field;
    let (state, principal) = caller().await?;
    let user_id = principal.require_admin_over(&user_id).map_err(fail)?;
    let now = chrono::Utc::now();
    let result = match amount_field("amount", &amount, true) {
        Ok(a) => state.engine.adjust_wallet(&user_id, a, &reason, &idempotency_key, &principal.actor(), now).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(_) => Ok(None),
        Err(e) => form_error(e).map(Some),
    }
}

#[server(prefix = "/sfn")]
pub async fn admin_void_grant(
    user_id: String,
    grant_id: String,
    reason: String,
) -> Result<Option<FormError>, ServerFnError> {
    use crate::api::session::ssr::{caller, fail, form_error};
    let (state, principal) = caller().await?;
    let user_id = principal.require_admin_over(&user_id).map_err(fail)?;
    match state.engine.void_grant(&user_id, &grant_id, &reason, &principal.actor(), chrono::Utc::now()).await {
        Ok(_) => Ok(None),
        Err(e) => form_error(e).map(Some),
    }
}

/// Sets the low-balance threshold: USD (`"5"`), a percent of the last
/// top-up (`"20%"`), or empty for none.
#[server(prefix = "/sfn")]
pub async fn admin_set_low_balance(user_id: String, threshold: String) -> Result<Option<FormError>, ServerFnError> {
    use crate::api::session::ssr::{caller, fail, form_error};
    use crate::domain::wallet::LowBalance;
    use crate::server::error::AppError;
    let (state, principal) = caller().await?;
    let user_id = principal.require_admin_over(&user_id).map_err(fail)?;
    let rule = match threshold.trim() {
        "" => Ok(None),
        raw => LowBalance::parse(raw).map(Some).map_err(|e| AppError::InvalidFields(vec![("threshold".into(), e)])),
    };
    let result = match rule {
        Ok(rule) => {
            state.engine.set_low_balance_threshold(&user_id, rule, &principal.actor(), chrono::Utc::now()).await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => Ok(None),
        Err(e) => form_error(e).map(Some),
    }
}

/// Refunds what a recorded event's debits drew (once per event).
#[server(prefix = "/sfn")]
pub async fn admin_refund_event(
    user_id: String,
    event_id: String,
    reason: String,
) -> Result<Option<FormError>, ServerFnError> {
    use crate::api::session::ssr::{caller, fail, form_error};
    let (state, principal) = caller().await?;
    let user_id = principal.require_admin_over(&user_id).map_err(fail)?;
    let now = chrono::Utc::now();
    match state.engine.refund_event(&user_id, event_id.trim(), &reason, &principal.actor(), now).await {
        Ok(_) => Ok(None),
        Err(e) => form_error(e).map(Some),
    }
}
