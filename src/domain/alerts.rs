//! Usage alerts at 80, 90 and 100% of each limit, and their wording.
//!
//! This module decides *which* thresholds a change in usage crossed and what
//! the alert says; "exactly once per limit per period" is then enforced by
//! the store's unique dedupe key, so concurrent writers cannot double-fire.

use crate::domain::identity::UserId;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::limits::{ALERT_THRESHOLDS, LimitUse, Limits, Usage, evaluate};
use super::money::Nanos;
use super::provider::LimitKey;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }

    pub fn parse(s: &str) -> Option<Severity> {
        match s {
            "info" => Some(Severity::Info),
            "warning" => Some(Severity::Warning),
            "error" => Some(Severity::Error),
            _ => None,
        }
    }

    pub fn for_threshold(pct: u8) -> Severity {
        match pct {
            100.. => Severity::Error,
            90.. => Severity::Warning,
            _ => Severity::Info,
        }
    }
}

/// An alert to raise, before it has an id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAlert {
    pub alert_type: String,
    pub limit_key: Option<String>,
    pub threshold: u8,
    pub provider: Option<String>,
    pub title: String,
    pub message: String,
    pub severity: Severity,
    /// Unique per user, period, limit and threshold: the store ignores a
    /// second insert with the same key.
    pub dedupe_key: String,
}

/// The thresholds reached by `after` that `before` had not reached.
pub fn crossed(before_used: i64, after: &LimitUse) -> Vec<u8> {
    let before = LimitUse { used: before_used, ..after.clone() };
    ALERT_THRESHOLDS.into_iter().filter(|&t| after.reached(t) && !before.reached(t)).collect()
}

/// Every limit of `limits` with each threshold its use reaches in `after`
/// and did not in `before` (usage that grew in one step, as when events
/// recorded unpriced get their price).
pub fn crossings(limits: &Limits, before: &Usage, after: &Usage) -> Vec<(LimitUse, u8)> {
    evaluate(limits, after)
        .into_iter()
        .flat_map(|u| crossed(before.measure(&u.key), &u).into_iter().map(move |t| (u.clone(), t)))
        .collect()
}

/// The alert for `limit` reaching `threshold` in the period labelled
/// `period_label` for `user_id`, which resets at `resets_at`.
pub fn threshold_alert(
    user_id: &UserId,
    period_label: &str,
    period_start_ms: i64,
    limit: &LimitUse,
    threshold: u8,
    resets_at: DateTime<Utc>,
) -> NewAlert {
    let reset = resets_at.format("%b %-d, %Y");
    let (title, tail) = if threshold >= 100 {
        let title = match &limit.key {
            LimitKey::MonthlyCost => "Monthly cost cap reached".to_string(),
            key => format!("{} limit reached", key.label()),
        };
        (
            title,
            format!("Further requests are blocked until it resets on {reset}, or upgrade your plan to continue now."),
        )
    } else {
        (format!("{} at {threshold}% of plan limit", limit.key.label()), format!("It resets on {reset}."))
    };
    let (used, cap, pct) =
        (limit.key.display_value(limit.used), limit.key.display_value(limit.limit), limit.percent().floor());
    let message = match &limit.key {
        LimitKey::Calls(p) => {
            format!("You have used {used} of {cap} {} API calls this period ({pct:.0}%). {tail}", p.display_name())
        }
        LimitKey::Tokens(p) => {
            format!("You have used {used} of {cap} {} tokens this period ({pct:.0}%). {tail}", p.display_name())
        }
        LimitKey::MonthlyCost => {
            format!("You have spent {used} of your {cap} monthly cost cap this period ({pct:.0}%). {tail}")
        }
    };
    NewAlert {
        alert_type: "usage_threshold".into(),
        limit_key: Some(limit.key.as_string()),
        threshold,
        provider: limit.key.provider().map(|p| p.as_str().to_string()),
        title,
        message,
        severity: Severity::for_threshold(threshold),
        dedupe_key: format!("{user_id}|{period_start_ms}|{}|{threshold}|{period_label}", limit.key),
    }
}

/// Hours of history a spend spike is judged against: seven days.
pub const SPIKE_BASELINE_HOURS: i64 = 7 * 24;
/// Less history than this (a new customer) and no spike is judged.
pub const SPIKE_MIN_HISTORY_HOURS: i64 = 24;

/// Whether `last_hour` spent is a spike against `baseline` spent over the
/// `baseline_hours` before it: more than `multiple` times the hourly
/// average, and at least `floor`. `None` when there is not enough to judge
/// (too little history, or nothing spent before: no multiple of zero).
pub fn spike_ratio(last_hour: Nanos, baseline: Nanos, baseline_hours: i64, multiple: u32, floor: Nanos) -> Option<f64> {
    if baseline_hours < SPIKE_MIN_HISTORY_HOURS || baseline.0 <= 0 || multiple == 0 {
        return None;
    }
    // last_hour / (baseline / hours) > multiple, in integers (no rounding).
    let spiked = (last_hour.0 as i128) * (baseline_hours as i128) > (multiple as i128) * (baseline.0 as i128);
    (spiked && last_hour >= floor).then(|| last_hour.0 as f64 * baseline_hours as f64 / baseline.0 as f64)
}

/// The alert for a spend spike of `user_id` on `day` (at most one a day).
pub fn spike_alert(user_id: &UserId, day: &str, last_hour: Nanos, hourly_average: Nanos, ratio: f64) -> NewAlert {
    NewAlert {
        alert_type: "usage_spike".into(),
        limit_key: None,
        threshold: 0,
        provider: None,
        title: "Spending spike".into(),
        message: format!(
            "You spent {} in the last hour, {ratio:.1}x your hourly average of {} over the last 7 days. Check for a runaway job or a leaked key.",
            last_hour.display(),
            hourly_average.display()
        ),
        severity: Severity::Warning,
        dedupe_key: format!("spike|{user_id}|{day}"),
    }
}

/// The alert type of a prepaid balance under its customer's threshold.
pub const WALLET_LOW: &str = "wallet_low";
/// The alert type of a prepaid balance at or below zero.
pub const WALLET_DEPLETED: &str = "wallet_depleted";

/// The alert for a prepaid balance that fell below `threshold` (one open
/// at a time per customer: it resolves when credits take the balance back
/// over).
pub fn wallet_low_alert(user_id: &UserId, balance: Nanos, threshold: Nanos) -> NewAlert {
    NewAlert {
        alert_type: WALLET_LOW.into(),
        limit_key: None,
        threshold: 0,
        provider: None,
        title: "Prepaid credits running low".into(),
        message: format!(
            "Your prepaid balance is {}, below the {} you asked to be warned at. Add credits before calls are refused.",
            balance.display(),
            threshold.display()
        ),
        severity: Severity::Warning,
        dedupe_key: format!("{WALLET_LOW}|{user_id}"),
    }
}

/// The alert for a prepaid balance used up: calls are refused until
/// credits are added.
pub fn wallet_depleted_alert(user_id: &UserId, balance: Nanos) -> NewAlert {
    NewAlert {
        alert_type: WALLET_DEPLETED.into(),
        limit_key: None,
        threshold: 100,
        provider: None,
        title: "Prepaid credits used up".into(),
        message: format!(
            "Your prepaid balance is {}: calls are refused until credits are added{}.",
            balance.display(),
            if balance < Nanos::ZERO {
                " (a call cost more than was left; the next credits pay that first)"
            } else {
                ""
            }
        ),
        severity: Severity::Error,
        dedupe_key: format!("{WALLET_DEPLETED}|{user_id}"),
    }
}

/// The admin alert for events of a model the catalog has no price for.
pub fn unpriced_alert(provider: &str, model: Option<&str>) -> NewAlert {
    let model_txt = model.unwrap_or("(no model)");
    NewAlert {
        alert_type: "unpriced_model".into(),
        limit_key: None,
        threshold: 0,
        provider: Some(provider.to_string()),
        title: format!("No price for {provider} / {model_txt}"),
        message: format!(
            "Usage of {provider} model {model_txt} was recorded without a price, so its cost is not counted. Add a price for it in the pricing catalog; events keep the price in force when they happened."
        ),
        severity: Severity::Error,
        dedupe_key: format!("unpriced|{provider}|{model_txt}"),
    }
}

/// The administrators' alert that web-search queries of a model were
/// recorded at $0: its price has no `per_search_query`.
pub fn unpriced_search_alert(provider: &str, model: Option<&str>) -> NewAlert {
    let model_txt = model.unwrap_or("(no model)");
    NewAlert {
        alert_type: UNPRICED_SEARCH.into(),
        limit_key: None,
        threshold: 0,
        provider: Some(provider.to_string()),
        title: format!("No search-query price for {provider} / {model_txt}"),
        message: format!(
            "Calls of {provider} model {model_txt} ran web-search queries, but its price has no per-query rate (per_search_query), so the queries were counted at $0. Add a price version with it; events keep the price in force when they happened."
        ),
        severity: Severity::Warning,
        dedupe_key: unpriced_search_key(provider, model_txt),
    }
}

pub const UNPRICED_SEARCH: &str = "unpriced_search";

fn unpriced_search_key(provider: &str, model_txt: &str) -> String {
    format!("{UNPRICED_SEARCH}|{provider}|{model_txt}")
}

/// The model (`None`: none named) of an [`unpriced_search_alert`] of
/// `provider`, from its dedupe key.
pub fn unpriced_search_model<'a>(provider: &str, dedupe_key: &'a str) -> Option<Option<&'a str>> {
    let rest =
        dedupe_key.strip_prefix(UNPRICED_SEARCH)?.strip_prefix('|')?.strip_prefix(provider)?.strip_prefix('|')?;
    Some((rest != "(no model)").then_some(rest))
}

/// An alert as raised and stored: about a user's limit (`user_id` set)
/// or for the administrators (`None`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alert {
    pub id: i64,
    pub user_id: Option<UserId>,
    pub alert_type: String,
    pub limit_key: Option<String>,
    pub threshold: i64,
    pub provider: Option<String>,
    pub title: String,
    pub message: String,
    pub severity: Severity,
    pub is_read: bool,
    pub read_at: Option<DateTime<Utc>>,
    pub billing_period: Option<String>,
    pub created_at: DateTime<Utc>,
    /// When it stopped applying (usage back under the threshold after a
    /// plan change, a new period, a model priced).
    pub resolved_at: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uid(s: &str) -> UserId {
        UserId::parse(s).unwrap()
    }
    use chrono::TimeZone;
    use proptest::prelude::*;

    #[test]
    fn spikes_are_judged_exactly() {
        let usd = |s: &str| Nanos::parse_usd(s).unwrap();
        // (last hour, the 168 hours before, hours, multiple, floor) -> spike?
        let cases = [
            ("0.006", "0.168", 168, 5, "0", Some(6.0)),
            ("0.005", "0.168", 168, 5, "0", None),
            ("0.005000001", "0.168", 168, 5, "0", Some(5.000001)),
            ("0.006", "0.168", 168, 5, "1", None),
            ("0.006", "0", 168, 5, "0", None),
            ("0.006", "0.168", 23, 5, "0", None),
            ("3", "24", 24, 2, "0", Some(3.0)),
            ("0.006", "0.168", 168, 0, "0", None),
        ];
        for (last, base, hours, m, floor, want) in cases {
            let got = spike_ratio(usd(last), usd(base), hours, m, usd(floor));
            match (got, want) {
                (Some(g), Some(w)) => assert!((g - w).abs() < 1e-9, "{last} vs {base}: {g}"),
                (g, w) => assert_eq!(g, w, "{last} vs {base} over {hours} h, x{m}, floor {floor}"),
            }
        }
        let a = spike_alert(&uid("u1"), "2026-11-10", usd("0.006"), usd("0.001"), 6.0);
        assert_eq!(a.dedupe_key, "spike|u1|2026-11-10");
        assert_eq!(a.severity, Severity::Warning);
    }

    fn lu(key: &str, used: i64, limit: i64) -> LimitUse {
        LimitUse { key: LimitKey::parse(key).unwrap(), used, limit }
    }

    #[test]
    fn crossing_table() {
        for (before, after, want) in [
            (0, 79, vec![]),
            (79, 80, vec![80]),
            (80, 89, vec![]),
            (10, 100, vec![80, 90, 100]),
            (95, 150, vec![100]),
            (100, 200, vec![]),
        ] {
            assert_eq!(crossed(before, &lu("gemini_calls", after, 100)), want, "{before}->{after}");
        }
        // Unlimited never alerts.
        assert!(crossed(0, &lu("gemini_calls", 1_000, 0)).is_empty());
    }

    #[test]
    fn wording_names_provider_use_limit_and_reset() {
        let reset = Utc.with_ymd_and_hms(2026, 12, 15, 0, 0, 0).unwrap();
        let a = threshold_alert(&uid("u1"), "2026-11", 0, &lu("gemini_calls", 4000, 5000), 80, reset);
        assert_eq!(a.title, "Gemini calls at 80% of plan limit");
        assert_eq!(
            a.message,
            "You have used 4,000 of 5,000 Gemini API calls this period (80%). It resets on Dec 15, 2026."
        );
        assert_eq!(a.severity, Severity::Info);
        let c = threshold_alert(
            &uid("u1"),
            "2026-11",
            0,
            &lu("monthly_cost", 150_000_000_000, 150_000_000_000),
            100,
            reset,
        );
        assert_eq!(c.title, "Monthly cost cap reached");
        assert!(
            c.message.starts_with("You have spent $150.00 of your $150.00 monthly cost cap this period (100%)."),
            "{}",
            c.message
        );
        assert_eq!(c.severity, Severity::Error);
        assert_eq!(Severity::for_threshold(90), Severity::Warning);
    }

    proptest! {
        /// However usage grows in steps, each threshold is crossed exactly once.
        #[test]
        fn each_threshold_fires_once(limit in 1i64..10_000, steps in prop::collection::vec(0i64..500, 1..60)) {
            let mut used = 0;
            let mut fired = Vec::new();
            for s in steps {
                let after = lu("gemini_calls", used + s, limit);
                fired.extend(crossed(used, &after));
                used += s;
            }
            let reached: Vec<u8> = ALERT_THRESHOLDS.into_iter().filter(|t| lu("gemini_calls", used, limit).reached(*t)).collect();
            prop_assert_eq!(fired, reached);
        }
    }

    #[test]
    fn unpriced_search_alerts_name_their_model() {
        let a = unpriced_search_alert("gemini", Some("gemini-2.5-pro"));
        assert_eq!(unpriced_search_model("gemini", &a.dedupe_key), Some(Some("gemini-2.5-pro")));
        let none = unpriced_search_alert("gemini", None);
        assert_eq!(unpriced_search_model("gemini", &none.dedupe_key), Some(None));
        assert_eq!(unpriced_search_model("openai", &a.dedupe_key), None);
        assert_eq!(unpriced_search_model("gemini", &unpriced_alert("gemini", Some("x")).dedupe_key), None);
        assert_ne!(a.dedupe_key, unpriced_alert("gemini", Some("gemini-2.5-pro")).dedupe_key);
    }
}
