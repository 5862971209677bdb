//! The wire views: one typed `Serialize` struct per resource, built from the
//! domain's own types, as the contract (`../shared/contract.md`) names its
//! fields. The REST door answers with them, the audit log records plans,
//! prices, users and keys as them, and webhooks send alerts as them, so a
//! field added to a resource appears everywhere by construction, and the
//! tests hold each view to the contract's shape.
//!
//! Money: the admin API, the audit log and webhooks carry exact USD strings
//! (nine decimals); family A, whose client predates them, carries JSON
//! numbers converted from exact nanos here, at the edge, never summed.
//!
//! Views sit between the store and the services: they read the domain (and
//! store rows), and the services (audit, webhooks) and doors read them.
//! Responses that combine a service's results (usage stats, a preflight's
//! verdict, the dashboard) are typed structs beside their handlers, built
//! from these.

pub mod admin;
pub mod alert;
pub mod events;
pub mod plan;
pub mod price;
pub mod usage;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::domain::money::Nanos;

/// `{"success": true, "data": ...}`: every family A and admin answer.
#[derive(Debug, Serialize)]
pub struct Envelope<T> {
    pub success: bool,
    pub data: T,
}

impl<T> Envelope<T> {
    pub fn ok(data: T) -> Envelope<T> {
        Envelope { success: true, data }
    }
}

/// Family A money: a JSON number of USD.
pub fn usd(n: Nanos) -> f64 {
    n.as_f64_usd()
}

/// A figure for people, to two decimals.
pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Family A instants: RFC 3339 with milliseconds and `Z`.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The admin API's instants: RFC 3339 as chrono writes it (`+00:00`).
pub fn instant(t: DateTime<Utc>) -> String {
    t.to_rfc3339()
}

#[cfg(test)]
mod tests;
