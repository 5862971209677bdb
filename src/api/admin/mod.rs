//! Server functions of the admin web UI. Every one checks on the server
//! that the caller is an administrator; they call the same services as the
//! `/api/admin` REST endpoints.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

mod activity;
mod keys;
mod plans;
mod pricing;
mod users;

pub use activity::*;
pub use keys::*;
pub use plans::*;
pub use pricing::*;
pub use users::*;

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
    /// `postpaid` or `prepaid`.
    pub billing_mode: String,
    /// USD as typed; empty: none.
    pub included_credits: String,
    pub credits_rollover_cap: String,
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
async fn admin() -> Result<crate::server::state::AppState, leptos::prelude::ServerFnError> {
    let (state, principal) = super::session::ssr::caller().await?;
    principal.require_admin().map_err(super::session::ssr::fail)?;
    Ok(state)
}

#[cfg(feature = "ssr")]
fn fmt_time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}
