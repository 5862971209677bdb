//! The admin API's people, keys, webhooks and audit entries. Instants are
//! RFC 3339, USD exact strings.

use serde::Serialize;

use super::instant;
use crate::domain::identity::{ApiKey, Scope, User, UserId};
use crate::domain::subscription::{Status, Subscription};
use crate::domain::webhooks::{Delivery, DeliveryStatus, Endpoint, EventType};
use crate::server::store::keys::AuditEntry;

/// A user (`user_id` repeats `id` for family A's clients). The audit log
/// records users as this too.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct UserView {
    pub id: String,
    pub user_id: String,
    pub email: String,
    pub name: String,
    pub role: &'static str,
    pub created_at: String,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        UserView {
            id: u.id.to_string(),
            user_id: u.id.to_string(),
            email: u.email.to_string(),
            name: u.name.clone(),
            role: u.role.as_str(),
            created_at: instant(u.created_at),
        }
    }
}

/// A user with whether they may sign in, and (for one user) their
/// subscription.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct UserDetail {
    #[serde(flatten)]
    pub user: UserView,
    pub disabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscription: Option<SubscriptionView>,
}

/// A change of plan or cycle waiting for the end of the paid cycle.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Scheduled {
    pub plan_id: i64,
    pub billing_cycle: &'static str,
    pub effective_at: String,
}

impl Scheduled {
    pub fn of(sub: &Subscription) -> Option<Scheduled> {
        sub.pending.map(|(plan_id, cycle)| Scheduled {
            plan_id,
            billing_cycle: cycle.as_str(),
            effective_at: instant(sub.cycle_end),
        })
    }
}

/// A user's subscription, on the admin API.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SubscriptionView {
    pub plan_id: Option<i64>,
    pub plan: Option<String>,
    pub billing_cycle: &'static str,
    pub timezone: &'static str,
    pub status: Status,
    pub cancel_at: Option<String>,
    pub scheduled: Option<Scheduled>,
    pub current_period_start: String,
    pub current_period_end: String,
}

impl SubscriptionView {
    pub fn of(sub: &Subscription, plan_name: Option<String>) -> SubscriptionView {
        SubscriptionView {
            plan_id: sub.plan_id,
            plan: plan_name,
            billing_cycle: sub.billing_cycle.as_str(),
            timezone: sub.timezone.name(),
            status: sub.status,
            cancel_at: sub.cancel_at.map(instant),
            scheduled: Scheduled::of(sub),
            current_period_start: instant(sub.period_start),
            current_period_end: instant(sub.period_end),
        }
    }
}

/// Where a subscription stands after a cancel, pause or resume.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LifecycleView {
    pub user_id: String,
    pub status: Status,
    pub cancel_at: Option<String>,
    pub current_period_start: String,
    pub current_period_end: String,
}

impl LifecycleView {
    pub fn of(user_id: &UserId, sub: &Subscription) -> LifecycleView {
        LifecycleView {
            user_id: user_id.to_string(),
            status: sub.status,
            cancel_at: sub.cancel_at.map(instant),
            current_period_start: instant(sub.period_start),
            current_period_end: instant(sub.period_end),
        }
    }
}

/// A subscription after a plan is assigned: what changed (`upgraded`,
/// `scheduled`, `scheduled_change_cancelled`, `unchanged`) and the
/// upgrade's fee.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AssignedView {
    pub user_id: UserId,
    pub plan_id: Option<i64>,
    pub billing_cycle: &'static str,
    pub timezone: &'static str,
    pub current_period_start: String,
    pub current_period_end: String,
    pub billing_period: String,
    pub change: &'static str,
    pub fee: Option<String>,
    pub scheduled: Option<Scheduled>,
}

/// An API key's public side. The audit log records keys as this too.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KeyView {
    pub id: String,
    pub prefix: String,
    pub user_id: Option<String>,
    pub scopes: Vec<Scope>,
    pub name: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
}

impl From<&ApiKey> for KeyView {
    fn from(k: &ApiKey) -> Self {
        KeyView {
            id: k.id.clone(),
            prefix: k.prefix.clone(),
            user_id: k.user_id.as_ref().map(|u| u.to_string()),
            scopes: k.scopes.clone(),
            name: k.name.clone(),
            created_at: instant(k.created_at),
            last_used_at: k.last_used_at.map(instant),
            revoked_at: k.revoked_at.map(instant),
        }
    }
}

/// A key just made, with its secret (shown this once).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NewKeyView {
    #[serde(flatten)]
    pub key: KeyView,
    #[serde(rename = "key")]
    pub secret: String,
}

/// A webhook endpoint's deliveries by status.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct DeliveryCounts {
    pub pending: i64,
    pub delivered: i64,
    pub failed: i64,
}

/// A webhook endpoint (never its secret, but just after it is made).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WebhookView {
    pub id: String,
    pub url: String,
    pub events: Vec<EventType>,
    pub description: String,
    pub created_at: String,
    pub deleted_at: Option<String>,
    pub deliveries: DeliveryCounts,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl From<&Endpoint> for WebhookView {
    fn from(e: &Endpoint) -> Self {
        WebhookView {
            id: e.id.clone(),
            url: e.url.clone(),
            events: e.events.clone(),
            description: e.description.clone(),
            created_at: instant(e.created_at),
            deleted_at: e.deleted_at.map(instant),
            deliveries: DeliveryCounts { pending: e.pending, delivered: e.delivered, failed: e.failed },
            secret: None,
        }
    }
}

/// One delivery of an event to an endpoint.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DeliveryView {
    pub id: i64,
    pub endpoint_id: String,
    pub event_id: String,
    #[serde(rename = "type")]
    pub event_type: EventType,
    pub status: DeliveryStatus,
    pub attempts: i64,
    pub response_code: Option<i64>,
    pub error: Option<String>,
    pub last_attempt_at: Option<String>,
    pub next_attempt_at: Option<String>,
    pub created_at: String,
    pub delivered_at: Option<String>,
}

impl From<&Delivery> for DeliveryView {
    fn from(d: &Delivery) -> Self {
        DeliveryView {
            id: d.id,
            endpoint_id: d.endpoint_id.clone(),
            event_id: d.event_id.clone(),
            event_type: d.event_type,
            status: d.status,
            attempts: d.attempts,
            response_code: d.last_status,
            error: d.last_error.clone(),
            last_attempt_at: d.last_attempt_at.map(instant),
            next_attempt_at: d.next_attempt_at.map(instant),
            created_at: instant(d.created_at),
            delivered_at: d.delivered_at.map(instant),
        }
    }
}

/// One entry of the audit log: who did what to which thing, with the
/// thing before and after as recorded then.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AuditEntryView<'a> {
    pub id: i64,
    pub actor: &'a str,
    pub action: &'a str,
    pub entity_type: &'a str,
    pub entity_id: &'a str,
    pub before: &'a Option<serde_json::Value>,
    pub after: &'a Option<serde_json::Value>,
    pub created_at: String,
}

impl<'a> From<&'a AuditEntry> for AuditEntryView<'a> {
    fn from(e: &'a AuditEntry) -> Self {
        AuditEntryView {
            id: e.id,
            actor: &e.actor,
            action: &e.action,
            entity_type: &e.entity_type,
            entity_id: &e.entity_id,
            before: &e.before,
            after: &e.after,
            created_at: instant(e.created_at),
        }
    }
}
