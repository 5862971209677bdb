//! An alert: family A's `UsageAlert` and the body of the `alert.*` and
//! `price.unpriced` webhook events ([`AlertData`]).

use serde::Serialize;

use super::rfc3339;
use crate::domain::alerts::Alert;

/// Family A's `UsageAlert`; optional strings are left out, not `null`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct UsageAlert {
    pub id: i64,
    #[serde(rename = "type")]
    pub alert_type: String,
    pub threshold_percentage: i64,
    pub title: String,
    pub message: String,
    pub severity: &'static str,
    pub is_sent: bool,
    pub sent_at: String,
    pub is_read: bool,
    pub billing_period: String,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_at: Option<String>,
}

impl From<&Alert> for UsageAlert {
    fn from(a: &Alert) -> Self {
        UsageAlert {
            id: a.id,
            alert_type: a.alert_type.clone(),
            threshold_percentage: a.threshold,
            title: a.title.clone(),
            message: a.message.clone(),
            severity: a.severity.as_str(),
            is_sent: true,
            sent_at: rfc3339(a.created_at),
            is_read: a.is_read,
            billing_period: a
                .billing_period
                .clone()
                .unwrap_or_else(|| crate::domain::period::month_label(a.created_at)),
            created_at: rfc3339(a.created_at),
            provider: a.provider.clone(),
            read_at: a.read_at.map(rfc3339),
        }
    }
}

/// An alert as a webhook event's `data`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AlertData<'a> {
    pub alert_id: i64,
    pub user_id: Option<&'a str>,
    pub alert_type: &'a str,
    pub limit_key: Option<&'a str>,
    pub threshold: i64,
    pub provider: Option<&'a str>,
    pub title: &'a str,
    pub message: &'a str,
    pub severity: &'static str,
    pub billing_period: Option<&'a str>,
    pub created_at: String,
    pub resolved_at: Option<String>,
}

impl<'a> From<&'a Alert> for AlertData<'a> {
    fn from(a: &'a Alert) -> AlertData<'a> {
        AlertData {
            alert_id: a.id,
            user_id: a.user_id.as_deref(),
            alert_type: &a.alert_type,
            limit_key: a.limit_key.as_deref(),
            threshold: a.threshold,
            provider: a.provider.as_deref(),
            title: &a.title,
            message: &a.message,
            severity: a.severity.as_str(),
            billing_period: a.billing_period.as_deref(),
            created_at: a.created_at.to_rfc3339(),
            resolved_at: a.resolved_at.map(|t| t.to_rfc3339()),
        }
    }
}
