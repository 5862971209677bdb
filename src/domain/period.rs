//! Billing periods, anchored at the subscription start, in the
//! subscription's timezone (UTC unless set).
//!
//! Usage is summed per *monthly usage period*: the n-th period starts n
//! months after the anchor, on the anchor's local day of month clamped to
//! the month's length (an anchor on Jan 31 gives Feb 28 or 29, then Mar 31),
//! at the anchor's local time of day (midnight for a subscription given a
//! timezone), as the wall clock of that timezone reads it: across a
//! daylight-saving change a period is an hour shorter or longer, never
//! shifted. A local time that does not exist (clocks jumped over it) starts
//! at the first instant after the jump; one that occurs twice, at the first.
//! Periods are computed from the anchor each time, never from the previous
//! clamped date, so a short month does not drag the day down for good. A
//! period's label is the local `YYYY-MM` of its start: each period starts in
//! its own local month, so a label names one period. A *billing cycle* is 1 (monthly) or 12 (yearly) usage
//! periods: the plan fee and renewals follow the cycle; limits (including
//! the monthly cost cap) apply per usage period.

use chrono::offset::LocalResult;
use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// Where a subscription's periods are counted from: an instant, read in a
/// timezone. A bare UTC instant converts into an anchor in UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Anchor {
    pub at: DateTime<Utc>,
    pub tz: Tz,
}

impl From<DateTime<Utc>> for Anchor {
    fn from(at: DateTime<Utc>) -> Anchor {
        Anchor { at, tz: Tz::UTC }
    }
}

impl Anchor {
    /// Local midnight, in `tz`, of the day `at` falls on there: the anchor
    /// of a subscription given a timezone.
    pub fn local_midnight(at: DateTime<Utc>, tz: Tz) -> Anchor {
        let day = at.with_timezone(&tz).date_naive();
        Anchor { at: resolve(tz, day.and_hms_opt(0, 0, 0).expect("midnight")), tz }
    }

    /// The anchor's wall-clock time. An anchor that is the first instant
    /// of its local day reads as midnight even when that day's midnight did
    /// not exist (the clocks jumped over it), so every later period starts
    /// at the first instant of its day too, not at the hour the jump landed.
    fn local(&self) -> NaiveDateTime {
        let local = self.at.with_timezone(&self.tz).naive_local();
        let day_before = (self.at - Duration::seconds(1)).with_timezone(&self.tz).date_naive();
        if day_before < local.date() { local.date().and_hms_opt(0, 0, 0).expect("midnight") } else { local }
    }
}

/// The instant a wall-clock time names in `tz`: the earlier of two, or, in
/// a gap the clocks jumped over, the first instant after it.
pub fn resolve(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(a, b) => a.min(b).with_timezone(&Utc),
        // The first wall-clock minute after the gap is the instant the
        // clocks jumped (gaps start and end on whole minutes).
        LocalResult::None => (1..=24 * 60)
            .find_map(|m| tz.from_local_datetime(&(local + Duration::minutes(m))).earliest())
            .map(|t| t.with_timezone(&Utc))
            .expect("no timezone skips a whole day"),
    }
}

/// A timezone from its IANA name (`Europe/Berlin`), or a sentence saying
/// it is not one.
pub fn parse_timezone(name: &str) -> Result<Tz, String> {
    name.trim().parse::<Tz>().map_err(|_| format!("`{name}` is not an IANA timezone name such as Europe/Berlin or UTC"))
}

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
    /// The timezone the period is counted in (its label is local).
    #[serde(with = "tz_name")]
    pub tz: Tz,
}

mod tz_name {
    use chrono_tz::Tz;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(tz: &Tz, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(tz.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Tz, D::Error> {
        let name = String::deserialize(d)?;
        name.parse().map_err(|_| serde::de::Error::custom(format!("unknown timezone `{name}`")))
    }
}

impl Period {
    /// `YYYY-MM` of the start, in the period's timezone: the contract's
    /// billing period label.
    pub fn label(&self) -> String {
        let local = self.start.with_timezone(&self.tz);
        format!("{:04}-{:02}", local.year(), local.month())
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

/// The anchor moved by `months` (may be negative) on its local wall clock,
/// day clamped.
pub fn add_months(anchor: impl Into<Anchor>, months: i64) -> DateTime<Utc> {
    let anchor = anchor.into();
    let local = anchor.local();
    let total = local.year() as i64 * 12 + local.month0() as i64 + months;
    let year = total.div_euclid(12) as i32;
    let month0 = total.rem_euclid(12) as u32;
    let day = local.day().min(days_in_month(year, month0 + 1));
    let date = NaiveDate::from_ymd_opt(year, month0 + 1, day).expect("clamped day is valid");
    resolve(anchor.tz, date.and_time(local.time()))
}

pub fn days_in_month(year: i32, month: u32) -> u32 {
    let (ny, nm) = if month == 12 { (year + 1, 1) } else { (year, month + 1) };
    let first_next = NaiveDate::from_ymd_opt(ny, nm, 1).expect("valid");
    let first = NaiveDate::from_ymd_opt(year, month, 1).expect("valid");
    (first_next - first).num_days() as u32
}

/// The period of `months_per_period` months, counted from `anchor`, that
/// contains `at`.
pub fn period_containing(anchor: impl Into<Anchor>, months_per_period: i32, at: DateTime<Utc>) -> Period {
    let anchor = anchor.into();
    let step = months_per_period as i64;
    let (a, l) = (anchor.local(), at.with_timezone(&anchor.tz));
    let months_between = (l.year() as i64 - a.year() as i64) * 12 + l.month() as i64 - a.month() as i64;
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
            return Period { index, start, end, tz: anchor.tz };
        }
    }
}

/// The monthly usage period containing `at`.
pub fn usage_period(anchor: impl Into<Anchor>, at: DateTime<Utc>) -> Period {
    period_containing(anchor, 1, at)
}

/// The billing cycle containing `at`.
pub fn billing_cycle(anchor: impl Into<Anchor>, cycle: BillingCycle, at: DateTime<Utc>) -> Period {
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
pub fn period_for_label(anchor: impl Into<Anchor>, label: &str) -> Option<Period> {
    let anchor = anchor.into();
    let (year, month) = parse_month_label(label)?;
    let a = anchor.local();
    let index = (i64::from(year) - i64::from(a.year())) * 12 + i64::from(month) - i64::from(a.month());
    Some(Period { index, start: add_months(anchor, index), end: add_months(anchor, index + 1), tz: anchor.tz })
}

/// The labels of the `n` monthly usage periods ending with the one containing
/// `now`, oldest first.
pub fn recent_periods(anchor: impl Into<Anchor>, now: DateTime<Utc>, n: usize) -> Vec<Period> {
    let anchor = anchor.into();
    let current = usage_period(anchor, now);
    (0..n as i64)
        .rev()
        .map(|back| {
            let index = current.index - back;
            Period { index, start: add_months(anchor, index), end: add_months(anchor, index + 1), tz: anchor.tz }
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

    fn local(p: &Period) -> (String, String) {
        let f = |t: DateTime<Utc>| t.with_timezone(&p.tz).format("%Y-%m-%d %H:%M %Z").to_string();
        (f(p.start), f(p.end))
    }

    #[test]
    fn local_midnight_across_daylight_saving_both_ways() {
        // New York: clocks go forward on Mar 8 2026 and back on Nov 1 2026.
        let ny: Tz = "America/New_York".parse().unwrap();
        let a = Anchor::local_midnight(Utc.with_ymd_and_hms(2026, 1, 10, 15, 0, 0).unwrap(), ny);
        assert_eq!(a.at, Utc.with_ymd_and_hms(2026, 1, 10, 5, 0, 0).unwrap());
        let march = usage_period(a, Utc.with_ymd_and_hms(2026, 3, 20, 0, 0, 0).unwrap());
        assert_eq!(local(&march), ("2026-03-10 00:00 EDT".into(), "2026-04-10 00:00 EDT".into()));
        // Feb 10 - Mar 10 spans the spring change: one hour short.
        let feb = usage_period(a, Utc.with_ymd_and_hms(2026, 2, 20, 0, 0, 0).unwrap());
        assert_eq!(local(&feb), ("2026-02-10 00:00 EST".into(), "2026-03-10 00:00 EDT".into()));
        assert_eq!(feb.length(), Duration::days(28) - Duration::hours(1));
        // Oct 10 - Nov 10 spans the autumn change: one hour long.
        let oct = usage_period(a, Utc.with_ymd_and_hms(2026, 10, 20, 0, 0, 0).unwrap());
        assert_eq!(local(&oct), ("2026-10-10 00:00 EDT".into(), "2026-11-10 00:00 EST".into()));
        assert_eq!(oct.length(), Duration::days(31) + Duration::hours(1));
        assert_eq!((feb.label(), march.label(), oct.label()), ("2026-02".into(), "2026-03".into(), "2026-10".into()));
        // Sydney, the other hemisphere: back on Apr 5 2026, forward on Oct 4.
        let syd: Tz = "Australia/Sydney".parse().unwrap();
        let a = Anchor::local_midnight(Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap(), syd);
        let april = usage_period(a, Utc.with_ymd_and_hms(2026, 4, 15, 0, 0, 0).unwrap());
        assert_eq!(local(&april), ("2026-04-01 00:00 AEDT".into(), "2026-05-01 00:00 AEST".into()));
        assert_eq!(april.length(), Duration::days(30) + Duration::hours(1));
        // Its label is the local month even though it starts on Mar 31 in UTC.
        assert_eq!(april.start, Utc.with_ymd_and_hms(2026, 3, 31, 13, 0, 0).unwrap());
        assert_eq!(april.label(), "2026-04");
        let october = usage_period(a, Utc.with_ymd_and_hms(2026, 10, 15, 0, 0, 0).unwrap());
        assert_eq!(october.length(), Duration::days(31) - Duration::hours(1));
    }

    #[test]
    fn a_midnight_the_clocks_skip_starts_when_they_land() {
        // Santiago moves its clocks from 24:00 to 01:00 on Sep 6 2026: that
        // day's period starts at 01:00, the first instant of the day.
        let scl: Tz = "America/Santiago".parse().unwrap();
        let a = Anchor::local_midnight(Utc.with_ymd_and_hms(2026, 7, 6, 12, 0, 0).unwrap(), scl);
        let p = usage_period(a, Utc.with_ymd_and_hms(2026, 9, 20, 0, 0, 0).unwrap());
        let start = p.start.with_timezone(&scl);
        assert_eq!(start.date_naive().to_string(), "2026-09-06");
        // No earlier instant falls on Sep 6 there.
        assert_eq!((p.start - Duration::seconds(1)).with_timezone(&scl).date_naive().to_string(), "2026-09-05");
        assert_eq!(p.label(), "2026-09");
        // Anchored on a skipped midnight (Oct 13 2002 there), later periods
        // still start at midnight, not at the hour the jump landed.
        let a = Anchor::local_midnight(Utc.timestamp_opt(1_034_481_600, 0).unwrap(), scl);
        assert_eq!(a.at.with_timezone(&scl).format("%Y-%m-%d %H:%M").to_string(), "2002-10-13 01:00");
        let next = usage_period(a, a.at).end.with_timezone(&scl);
        assert_eq!(next.format("%Y-%m-%d %H:%M").to_string(), "2002-11-13 00:00");
    }

    #[test]
    fn local_month_ends_clamp_and_recover() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        let a = Anchor::local_midnight(Utc.with_ymd_and_hms(2026, 1, 31, 10, 0, 0).unwrap(), berlin);
        let starts: Vec<_> =
            (0..5).map(|n| add_months(a, n).with_timezone(&berlin).format("%Y-%m-%d %H:%M").to_string()).collect();
        assert_eq!(
            starts,
            ["2026-01-31 00:00", "2026-02-28 00:00", "2026-03-31 00:00", "2026-04-30 00:00", "2026-05-31 00:00"]
        );
        // The UTC day before for Berlin's midnight: still labelled locally.
        assert_eq!(usage_period(a, add_months(a, 2)).label(), "2026-03");
    }

    fn zones() -> Vec<Tz> {
        [
            "UTC",
            "America/New_York",
            "Europe/London",
            "Australia/Sydney",
            "America/Santiago",
            "Asia/Kolkata",
            "Pacific/Chatham",
            "Pacific/Apia",
        ]
        .iter()
        .map(|z| z.parse().unwrap())
        .collect()
    }

    proptest! {
        #[test]
        fn local_periods_tile_time_with_unique_labels(
            start_s in 1_000_000_000i64..2_000_000_000,
            zone in prop::sample::select(zones()),
            steps in 1usize..40,
        ) {
            let a = Anchor::local_midnight(Utc.timestamp_opt(start_s, 0).unwrap(), zone);
            let day = a.at.with_timezone(&zone).day();
            let mut p = usage_period(a, a.at);
            prop_assert_eq!(p.index, 0);
            let mut labels = std::collections::BTreeSet::new();
            for _ in 0..steps {
                let local_start = p.start.with_timezone(&zone);
                // Each period starts at the first instant on or after the
                // anchor day (clamped) there: that day's midnight, or the
                // instant the clocks landed when they skipped it.
                let (y, m) = (local_start.year(), local_start.month());
                let expected = NaiveDate::from_ymd_opt(y, m, day.min(days_in_month(y, m))).unwrap();
                let before = (p.start - Duration::seconds(1)).with_timezone(&zone).date_naive();
                prop_assert!(before < expected && expected <= local_start.date_naive(), "{} starts {}", expected, local_start);
                prop_assert!(labels.insert(p.label()), "label {} twice", p.label());
                prop_assert_eq!(period_for_label(a, &p.label()), Some(p));
                let next = usage_period(a, p.end);
                prop_assert_eq!(next.start, p.end);
                prop_assert_eq!(next.index, p.index + 1);
                p = next;
            }
        }
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
