//! The usage log: how it is filtered and paged, and what one entry shows.

use chrono::{DateTime, Utc};

use crate::domain::event::UsageParts;
use crate::domain::money::Nanos;
use crate::domain::pricing::Breakdown;
use crate::domain::tags::{TagFilter, Tags};

/// Filters of the usage log.
#[derive(Clone, Debug, Default)]
pub struct LogFilter {
    pub provider: Option<String>,
    pub status_code: Option<i64>,
    /// `success` (< 400) or `failed` (>= 400).
    pub failed: Option<bool>,
    pub billing_period: Option<String>,
    /// Only events carrying this tag.
    pub tag: Option<TagFilter>,
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
    /// What each class cost; sums to `cost_total`.
    pub breakdown: Breakdown,
    /// Cache writes, audio, reasoning, web-search queries, service tier.
    pub parts: UsageParts,
    pub unpriced: bool,
    pub response_time_ms: Option<i64>,
    pub status_code: i64,
    pub error_message: Option<String>,
    pub billing_period: String,
    pub retry_count: i64,
    /// The counts are the recorder's estimate, not the provider's.
    pub estimated: bool,
    pub tags: Tags,
}

/// Where a usage-log page starts: an offset (the family A contract), or
/// after a row (keyset: the cost of a deep page does not grow with depth).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogStart {
    Offset(i64),
    /// Rows strictly older than this (occurred_at, id).
    Before(DateTime<Utc>, i64),
}

impl LogFilter {
    /// The `status` filter: `success` (< 400), `failed` (>= 400), or empty
    /// for both. Returns `failed`, or a sentence saying what is wrong.
    pub fn parse_status(raw: Option<&str>) -> Result<Option<bool>, String> {
        match raw.map(str::trim).filter(|s| !s.is_empty()) {
            None => Ok(None),
            Some("success") => Ok(Some(false)),
            Some("failed") => Ok(Some(true)),
            Some(s) => Err(format!("status must be success or failed (got `{s}`)")),
        }
    }

    /// The `billing_period` filter: a `YYYY-MM` label, or empty for all.
    pub fn parse_period(raw: Option<&str>) -> Result<Option<String>, String> {
        match raw.map(str::trim).filter(|s| !s.is_empty()) {
            None => Ok(None),
            Some(l) => match crate::domain::period::parse_month_label(l) {
                Some(_) => Ok(Some(l.to_string())),
                None => Err(format!("billing_period `{l}` is not YYYY-MM")),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::LogFilter;

    #[test]
    fn status_and_period_filters() {
        assert_eq!(LogFilter::parse_status(None), Ok(None));
        assert_eq!(LogFilter::parse_status(Some(" ")), Ok(None));
        assert_eq!(LogFilter::parse_status(Some("success")), Ok(Some(false)));
        assert_eq!(LogFilter::parse_status(Some("failed")), Ok(Some(true)));
        assert!(LogFilter::parse_status(Some("ok")).unwrap_err().contains("`ok`"));
        assert_eq!(LogFilter::parse_period(Some("2026-04")), Ok(Some("2026-04".into())));
        assert_eq!(LogFilter::parse_period(Some("")), Ok(None));
        assert!(LogFilter::parse_period(Some("2026-13")).is_err());
        assert!(LogFilter::parse_period(Some("April")).unwrap_err().contains("YYYY-MM"));
    }
}
