//! Billing periods, anchored at the subscription start, in UTC.
//!
//! Usage is summed per *monthly usage period*: the n-th period starts n
//! months after the anchor, on the anchor's day of month clamped to the
//! month's length (an anchor on Jan 31 gives Feb 28 or 29, then Mar 31), at
//! the anchor's time of day. Periods are computed from the anchor each time,
//! never from the previous clamped date, so a short month does not drag the
//! day down for good. A *billing cycle* is 1 (monthly) or 12 (yearly) usage
//! periods: the plan fee and renewals follow the cycle; limits (including
//! the monthly cost cap) apply per usage period.

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BillingCycle {
    Monthly,
    Yearly,
}

impl BillingCycle {
    pub fn parse(s: &str) -> Option<BillingCycle> {
        match s {
            "monthly" => Some(BillingCycle::Monthly),
            "yearly" => Some(BillingCycle::Yearly),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            BillingCycle::Monthly => "monthly",
            BillingCycle::Yearly => "yearly",
        }
    }

    pub fn months(self) -> i32 {
        match self {
            BillingCycle::Monthly => 1,
            BillingCycle::Yearly => 12,
        }
    }
}

/// A half-open interval `[start, end)` with its index from the anchor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Period {
    pub index: i64,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Period {
    /// `YYYY-MM` of the start: the contract's billing period label.
    pub fn label(&self) -> String {
        month_label(self.start)
    }

    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        self.start <= at && at < self.end
    }

    pub fn length(&self) -> Duration {
        self.end - self.start
    }

    /// Whole days from `now` until the end, rounded up (0 once ended).
    pub fn days_left(&self, now: DateTime<Utc>) -> i64 {
        let secs = (self.end - now).num_seconds();
        if secs <= 0 { 0 } else { (secs + 86_399) / 86_400 }
    }
}

/// `YYYY-MM` of an instant.
pub fn month_label(at: DateTime<Utc>) -> String {
    format!("{:04}-{:02}", at.year(), at.month())
}

/// The anchor moved by `months` (may be negative), day clamped.
pub fn add_months(anchor: DateTime<Utc>, months: i64) -> DateTime<Utc> {
    let total = anchor.year() as i64 * 12 + anchor.month0() as i64 + months;
    let year = total.div_euclid(12) as i32;
    let month0 = total.rem_euclid(12) as u32;
    let day = anchor.day().min(days_in_month(year, month0 + 1));
    let date = NaiveDate::from_ymd_opt(year, month0 + 1, day).expect("clamped day is valid");
    Utc.from_utc_datetime(&date.and_time(anchor.time()))
}

pub fn days_in_month(year: i32, month: u32) -> u32 {
    let (ny, nm) = if month == 12 { (year + 1, 1) } else { (year, month + 1) };
    let first_next = NaiveDate::from_ymd_opt(ny, nm, 1).expect("valid");
    let first = NaiveDate::from_ymd_opt(year, month, 1).expect("valid");
    (first_next - first).num_days() as u32
}

/// The period of `months_per_period` months, counted from `anchor`, that
/// contains `at`.
pub fn period_containing(anchor: DateTime<Utc>, months_per_period: i32, at: DateTime<Utc>) -> Period {
    let step = months_per_period as i64;
    let months_between = (at.year() as i64 - anchor.year() as i64) * 12 + at.month() as i64 - anchor.month() as i64;
    // A first guess from whole months, then correct by at most one step each way.
    let mut index = months_between.div_euclid(step);
    loop {
        let start = add_months(anchor, index * step);
        let end = add_months(anchor, (index + 1) * step);
        if at < start {
            index -= 1;
        } else if at >= end {
            index += 1;
        } else {
            return Period { index, start, end };
        }
    }
}

/// The monthly usage period containing `at`.
pub fn usage_period(anchor: DateTime<Utc>, at: DateTime<Utc>) -> Period {
    period_containing(anchor, 1, at)
}

/// The billing cycle containing `at`.
pub fn billing_cycle(anchor: DateTime<Utc>, cycle: BillingCycle, at: DateTime<Utc>) -> Period {
    period_containing(anchor, cycle.months(), at)
}

/// Parses a `YYYY-MM` period label into (year, month).
pub fn parse_month_label(s: &str) -> Option<(i32, u32)> {
    let b = s.as_bytes();
    if b.len() != 7 || b[4] != b'-' || !s[..4].bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let year: i32 = s[..4].parse().ok()?;
    let month: u32 = s[5..].parse().ok().filter(|m| (1..=12).contains(m))?;
    Some((year, month))
}

/// The one monthly usage period (counted from `anchor`) that starts in the
/// month `label` names: every such month has exactly one, so a label never
/// names two periods.
pub fn period_for_label(anchor: DateTime<Utc>, label: &str) -> Option<Period> {
    let (year, month) = parse_month_label(label)?;
    let index = (i64::from(year) - i64::from(anchor.year())) * 12 + i64::from(month) - i64::from(anchor.month());
    Some(Period { index, start: add_months(anchor, index), end: add_months(anchor, index + 1) })
}

/// The labels of the `n` monthly usage periods ending with the one containing
/// `now`, oldest first.
pub fn recent_periods(anchor: DateTime<Utc>, now: DateTime<Utc>, n: usize) -> Vec<Period> {
    let current = usage_period(anchor, now);
    (0..n as i64)
        .rev()
        .map(|back| {
            let index = current.index - back;
            Period { index, start: add_months(anchor, index), end: add_months(anchor, index + 1) }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, 12, 0, 0).unwrap()
    }

    #[test]
    fn a_label_names_exactly_one_period() {
        let a = t(2026, 1, 31);
        for (label, start) in [("2026-02", "2026-02-28"), ("2026-03", "2026-03-31"), ("2025-12", "2025-12-31")] {
            let p = period_for_label(a, label).unwrap();
            assert_eq!(p.start.date_naive().to_string(), start, "{label}");
            assert_eq!(p.label(), label);
            assert_eq!(usage_period(a, p.start), p);
        }
        for bad in ["2026-13", "2026-00", "26-01", "2026/01", "2026-1", "abcd-01", "+026-01"] {
            assert!(period_for_label(a, bad).is_none(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn labels_and_periods_are_one_to_one(day in 1u32..=31, month in 1u32..=12, k in -30i64..30) {
            let anchor = Utc.with_ymd_and_hms(2026, month, day.min(days_in_month(2026, month)), 7, 30, 0).unwrap();
            let p = usage_period(anchor, add_months(anchor, k));
            let q = usage_period(anchor, p.end);
            prop_assert_ne!(p.label(), q.label());
            prop_assert_eq!(period_for_label(anchor, &p.label()), Some(p));
        }
    }

    #[test]
    fn month_end_anchors_clamp_and_recover() {
        let a = t(2026, 1, 31);
        let starts: Vec<_> = (0..5).map(|n| add_months(a, n).date_naive().to_string()).collect();
        assert_eq!(starts, ["2026-01-31", "2026-02-28", "2026-03-31", "2026-04-30", "2026-05-31"]);
        // Leap year.
        assert_eq!(add_months(t(2028, 1, 29), 1).date_naive().to_string(), "2028-02-29");
        assert_eq!(add_months(t(2028, 2, 29), 12).date_naive().to_string(), "2029-02-28");
        assert_eq!(add_months(t(2028, 2, 29), 48).date_naive().to_string(), "2032-02-29");
        // Year ends, both ways.
        assert_eq!(add_months(t(2026, 12, 15), 1).date_naive().to_string(), "2027-01-15");
        assert_eq!(add_months(t(2026, 1, 15), -1).date_naive().to_string(), "2025-12-15");
    }

    #[test]
    fn period_table() {
        let anchor = t(2026, 1, 31);
        let cases = [
            (t(2026, 2, 27), "2026-01-31", "2026-02-28", 0),
            (t(2026, 2, 28), "2026-02-28", "2026-03-31", 1),
            (t(2026, 3, 31), "2026-03-31", "2026-04-30", 2),
            (t(2025, 12, 31), "2025-12-31", "2026-01-31", -1),
            (t(2027, 1, 1), "2026-12-31", "2027-01-31", 11),
        ];
        for (at, start, end, index) in cases {
            let p = usage_period(anchor, at);
            assert_eq!(
                (p.start.date_naive().to_string(), p.end.date_naive().to_string(), p.index),
                (start.into(), end.into(), index),
                "{at}"
            );
        }
        let y = billing_cycle(t(2024, 2, 29), BillingCycle::Yearly, t(2025, 3, 1));
        assert_eq!(
            (y.start.date_naive().to_string(), y.end.date_naive().to_string()),
            ("2025-02-28".into(), "2026-02-28".into())
        );
        assert_eq!(usage_period(anchor, t(2026, 2, 28)).label(), "2026-02");
    }

    #[test]
    fn instants_on_boundaries() {
        let anchor = Utc.with_ymd_and_hms(2026, 3, 10, 0, 0, 0).unwrap();
        let boundary = Utc.with_ymd_and_hms(2026, 4, 10, 0, 0, 0).unwrap();
        assert_eq!(usage_period(anchor, boundary).start, boundary);
        assert_eq!(usage_period(anchor, boundary - Duration::nanoseconds(1)).end, boundary);
    }

    #[test]
    fn recent_periods_oldest_first() {
        let anchor = t(2025, 6, 15);
        let labels: Vec<String> = recent_periods(anchor, t(2026, 1, 20), 3).iter().map(Period::label).collect();
        assert_eq!(labels, ["2025-11", "2025-12", "2026-01"]);
    }

    #[test]
    fn days_left_rounds_up() {
        let p = usage_period(t(2026, 1, 1), t(2026, 1, 2));
        assert_eq!(p.days_left(p.end - Duration::hours(1)), 1);
        assert_eq!(p.days_left(p.end), 0);
    }

    proptest! {
        #[test]
        fn periods_tile_time(anchor_s in 0i64..4_000_000_000, offset in -400_000_000i64..400_000_000, months in prop::sample::select(vec![1, 12])) {
            let anchor = Utc.timestamp_opt(anchor_s, 0).unwrap();
            let at = anchor + Duration::seconds(offset);
            let p = period_containing(anchor, months, at);
            prop_assert!(p.contains(at));
            // Neighbours touch: the next period starts where this one ends.
            let next = period_containing(anchor, months, p.end);
            prop_assert_eq!(next.start, p.end);
            prop_assert_eq!(next.index, p.index + 1);
            prop_assert!(p.length() >= Duration::days(28 * months as i64));
        }
    }
}
