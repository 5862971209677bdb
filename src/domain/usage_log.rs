//! The usage log: how it is filtered and paged, and what one entry shows.

use chrono::{DateTime, Utc};

use crate::domain::money::Nanos;

/// Filters of the usage log.
#[derive(Clone, Debug, Default)]
pub struct LogFilter {
    pub provider: Option<String>,
    pub status_code: Option<i64>,
    /// `success` (< 400) or `failed` (>= 400).
    pub failed: Option<bool>,
    pub billing_period: Option<String>,
}

/// One recorded event, as the usage log shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    pub id: i64,
    pub event_id: String,
    pub occurred_at: DateTime<Utc>,
    pub provider: String,
    pub actual_provider_name: Option<String>,
    pub model: Option<String>,
    pub operation_type: Option<String>,
    pub endpoint: Option<String>,
    pub method: Option<String>,
    pub tokens_input: i64,
    pub tokens_output: i64,
    pub tokens_cached_input: i64,
    pub units: i64,
    pub cost_input: Nanos,
    pub cost_output: Nanos,
    pub cost_total: Nanos,
    pub unpriced: bool,
    pub response_time_ms: Option<i64>,
    pub status_code: i64,
    pub error_message: Option<String>,
    pub billing_period: String,
    pub retry_count: i64,
}

/// Where a usage-log page starts: an offset (the family A contract), or
/// after a row (keyset: the cost of a deep page does not grow with depth).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogStart {
    Offset(i64),
    /// Rows strictly older than this (occurred_at, id).
    Before(DateTime<Utc>, i64),
}
