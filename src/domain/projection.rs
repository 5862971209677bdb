//! Projections at the current run-rate and multi-month trends.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::limits::ProviderUsage;
use super::money::Nanos;
use super::period::Period;

/// Month-end cost at the current run-rate, against the cost cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Projection {
    pub projected_cost: Nanos,
    pub cost_cap: Option<Nanos>,
    /// Projected cost as a percent of the cap, in hundredths of a percent
    /// (exact integer; 0 when there is no cap).
    pub projected_pct_hundredths: i64,
    /// Whole days from now until the cap is reached at this rate; `Some(0)`
    /// when already reached, `None` without a cap or without spend.
    pub days_until_cap: Option<i64>,
}

impl Projection {
    pub fn projected_pct(&self) -> f64 {
        self.projected_pct_hundredths as f64 / 100.0
    }
}

/// Runs `cost_so_far` forward to the period's end at the average rate since
/// its start. Less than a day of history counts as a day, so the first
/// calls of a period do not project a fortune.
pub fn project(period: &Period, now: DateTime<Utc>, cost_so_far: Nanos, cap: Option<Nanos>) -> Projection {
    let total_ms = (period.end - period.start).num_milliseconds().max(1) as i128;
    let elapsed_ms =
        ((now.min(period.end) - period.start).num_milliseconds() as i128).clamp(86_400_000.min(total_ms), total_ms);
    let spent = cost_so_far.0 as i128;
    let projected = (spent * total_ms / elapsed_ms).min(i64::MAX as i128) as i64;
    let projected_cost = Nanos(projected.max(cost_so_far.0));
    let (pct, days) = match cap {
        Some(c) if c.0 > 0 => {
            let pct = (projected_cost.0 as i128 * 10_000 / c.0 as i128).min(i64::MAX as i128) as i64;
            let days = if cost_so_far >= c {
                Some(0)
            } else if spent == 0 {
                None
            } else {
                // remaining / (spent per ms), in days, rounded down.
                let remaining = (c.0 - cost_so_far.0) as i128;
                let ms = remaining * elapsed_ms / spent;
                Some((ms / 86_400_000) as i64)
            };
            (pct, days)
        }
        _ => (0, None),
    };
    Projection { projected_cost, cost_cap: cap, projected_pct_hundredths: pct, days_until_cap: days }
}

/// Usage per period (by its start instant) and provider, as read from
/// rollups. Periods are identified by their start, never by their label.
pub type PeriodUsage = BTreeMap<DateTime<Utc>, BTreeMap<String, ProviderUsage>>;

/// Trend series aligned with `periods` (oldest first); empty months are zeros.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trends {
    pub periods: Vec<String>,
    pub total: Vec<ProviderUsage>,
    pub by_provider: BTreeMap<String, Vec<ProviderUsage>>,
}

pub fn trends(periods: &[Period], usage: &PeriodUsage) -> Trends {
    let labels: Vec<String> = periods.iter().map(Period::label).collect();
    let starts: Vec<DateTime<Utc>> = periods.iter().map(|p| p.start).collect();
    let providers: std::collections::BTreeSet<&String> =
        starts.iter().filter_map(|s| usage.get(s)).flat_map(|m| m.keys()).collect();
    let mut by_provider: BTreeMap<String, Vec<ProviderUsage>> = BTreeMap::new();
    for p in providers {
        let series = starts.iter().map(|s| usage.get(s).and_then(|m| m.get(p)).copied().unwrap_or_default()).collect();
        by_provider.insert(p.clone(), series);
    }
    let total = starts
        .iter()
        .map(|s| {
            let mut t = ProviderUsage::default();
            if let Some(m) = usage.get(s) {
                m.values().for_each(|u| t.add(*u));
            }
            t
        })
        .collect();
    Trends { periods: labels, total, by_provider }
}

/// Index of the month with the highest value of `metric`, if any is non-zero.
pub fn peak_index(values: &[i64]) -> Option<usize> {
    values.iter().enumerate().filter(|(_, v)| **v > 0).max_by_key(|(i, v)| (**v, std::cmp::Reverse(*i))).map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::period::{recent_periods, usage_period};
    use chrono::{Duration, TimeZone};

    #[test]
    fn projection_table() {
        let anchor = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap(); // 30-day period
        let p = usage_period(anchor, anchor);
        let cap = Some(Nanos::from_usd(150));
        // 10 days in, $30 spent: $90 by the end, 60% of the cap, 40 days to the cap.
        let pr = project(&p, anchor + Duration::days(10), Nanos::from_usd(30), cap);
        assert_eq!(pr.projected_cost, Nanos::from_usd(90));
        assert_eq!(pr.projected_pct_hundredths, 6000);
        assert_eq!(pr.days_until_cap, Some(40));
        // No spend: nothing projected, no date.
        let pr = project(&p, anchor + Duration::days(10), Nanos::ZERO, cap);
        assert_eq!((pr.projected_cost, pr.days_until_cap), (Nanos::ZERO, None));
        // Over the cap already.
        assert_eq!(project(&p, anchor + Duration::days(1), Nanos::from_usd(200), cap).days_until_cap, Some(0));
        // Minutes into the period: treated as a day.
        let early = project(&p, anchor + Duration::minutes(1), Nanos::from_usd(1), None);
        assert_eq!(early.projected_cost, Nanos::from_usd(30));
        // After the end: exactly what was spent.
        assert_eq!(project(&p, p.end + Duration::days(3), Nanos::from_usd(5), None).projected_cost, Nanos::from_usd(5));
    }

    #[test]
    fn trends_fill_gaps_with_zeros() {
        let anchor = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let periods = recent_periods(anchor, Utc.with_ymd_and_hms(2026, 4, 2, 0, 0, 0).unwrap(), 3);
        let mut usage = PeriodUsage::new();
        usage
            .entry(Utc.with_ymd_and_hms(2026, 2, 1, 0, 0, 0).unwrap())
            .or_default()
            .insert("gemini".into(), ProviderUsage { calls: 2, tokens: 10, cost: Nanos(5) });
        usage
            .entry(Utc.with_ymd_and_hms(2026, 4, 1, 0, 0, 0).unwrap())
            .or_default()
            .insert("openai".into(), ProviderUsage { calls: 1, tokens: 1, cost: Nanos(1) });
        usage
            .entry(Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap())
            .or_default()
            .insert("mistral".into(), ProviderUsage { calls: 9, tokens: 9, cost: Nanos(9) });
        let t = trends(&periods, &usage);
        assert_eq!(t.periods, ["2026-02", "2026-03", "2026-04"]);
        assert_eq!(t.total.iter().map(|u| u.calls).collect::<Vec<_>>(), [2, 0, 1]);
        assert_eq!(t.by_provider.keys().collect::<Vec<_>>(), ["gemini", "openai"]);
        assert_eq!(t.by_provider["gemini"].iter().map(|u| u.cost.0).collect::<Vec<_>>(), [5, 0, 0]);
        assert_eq!(peak_index(&[1, 5, 5, 2]), Some(1));
        assert_eq!(peak_index(&[0, 0]), None);
    }
}
