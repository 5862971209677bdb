//! Webhooks: the event types an endpoint may subscribe to, what an endpoint
//! registration must be, and when a failed delivery is tried again.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// What a webhook event reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum EventType {
    /// A user's alert was raised (a threshold of a limit reached, a spend
    /// spike), or raised again after it had resolved.
    #[serde(rename = "alert.created")]
    AlertCreated,
    /// An alert stopped applying: usage is back under it (a plan change, a
    /// new period), or the model it named got a price.
    #[serde(rename = "alert.resolved")]
    AlertResolved,
    /// An hour's spend above the configured multiple of the user's
    /// trailing hourly average.
    #[serde(rename = "usage.spike")]
    UsageSpike,
    /// A billing period ended and its bill was issued.
    #[serde(rename = "period.closed")]
    PeriodClosed,
    /// Usage was recorded for a model the catalog has no price for.
    #[serde(rename = "price.unpriced")]
    PriceUnpriced,
    /// A user's plan, cycle, status or timezone changed.
    #[serde(rename = "subscription.changed")]
    SubscriptionChanged,
    /// A prepaid balance fell below its customer's low-balance threshold.
    #[serde(rename = "wallet.low")]
    WalletLow,
    /// A prepaid balance reached zero (or went below: a call cost more
    /// than was left).
    #[serde(rename = "wallet.depleted")]
    WalletDepleted,
    /// Credits were added to a wallet (a grant took effect, an adjustment
    /// up).
    #[serde(rename = "wallet.credited")]
    WalletCredited,
    /// A grant with credits left lapses soon.
    #[serde(rename = "grant.expiring")]
    GrantExpiring,
}

impl EventType {
    pub const ALL: [EventType; 10] = [
        EventType::AlertCreated,
        EventType::AlertResolved,
        EventType::UsageSpike,
        EventType::PeriodClosed,
        EventType::PriceUnpriced,
        EventType::SubscriptionChanged,
        EventType::WalletLow,
        EventType::WalletDepleted,
        EventType::WalletCredited,
        EventType::GrantExpiring,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::AlertCreated => "alert.created",
            EventType::AlertResolved => "alert.resolved",
            EventType::UsageSpike => "usage.spike",
            EventType::PeriodClosed => "period.closed",
            EventType::PriceUnpriced => "price.unpriced",
            EventType::SubscriptionChanged => "subscription.changed",
            EventType::WalletLow => "wallet.low",
            EventType::WalletDepleted => "wallet.depleted",
            EventType::WalletCredited => "wallet.credited",
            EventType::GrantExpiring => "grant.expiring",
        }
    }

    pub fn parse(s: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// One line for the admin page.
    pub fn describe(self) -> &'static str {
        match self {
            EventType::AlertCreated => "an alert is raised (limit threshold reached, spend spike)",
            EventType::AlertResolved => "an alert stops applying (usage back under it, model priced)",
            EventType::UsageSpike => "an hour's spend far above the user's usual",
            EventType::PeriodClosed => "a billing period ends and its bill is issued",
            EventType::PriceUnpriced => "usage is recorded for a model without a price",
            EventType::SubscriptionChanged => "a plan, cycle, status or timezone changes",
            EventType::WalletLow => "a prepaid balance falls below its low-balance threshold",
            EventType::WalletDepleted => "a prepaid balance reaches zero",
            EventType::WalletCredited => "credits are added to a wallet",
            EventType::GrantExpiring => "a grant with credits left lapses soon",
        }
    }
}

/// Whether a webhook may be sent to `ip` when only public receivers are
/// allowed: not loopback, private (10/8, 172.16/12, 192.168/16, fc00::/7),
/// link-local (169.254/16, where cloud metadata services answer;
/// fe80::/10), shared (100.64/10), unspecified, broadcast, multicast,
/// documentation or reserved ranges, nor an IPv6 form of any of those.
pub fn public_address(ip: std::net::IpAddr) -> bool {
    use std::net::IpAddr;
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || a >= 240
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && v4.octets()[2] == 0)
                || (a == 198 && (18..20).contains(&b)))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return public_address(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || first == 0x2001 && v6.segments()[1] == 0x0db8
                || first == 0x0064 && v6.segments()[1] == 0xff9b)
        }
    }
}

/// The host and port of an `http(s)://` URL (brackets taken off an IPv6
/// host), for checking where it leads.
pub fn host_and_port(url: &str) -> Option<(String, u16)> {
    let (rest, default_port) = match url.strip_prefix("https://") {
        Some(r) => (r, 443),
        None => (url.strip_prefix("http://")?, 80),
    };
    let authority = rest.split(['/', '?']).next()?;
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']')?;
        (h, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) => p.parse().ok()?,
        None => default_port,
    };
    (!host.is_empty()).then(|| (host.to_ascii_lowercase(), port))
}

/// An endpoint registration, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointSpec {
    pub url: String,
    pub events: Vec<EventType>,
    pub description: String,
}

pub const MAX_URL_LEN: usize = 2048;
pub const MAX_DESCRIPTION_LEN: usize = 500;

impl EndpointSpec {
    /// Checks a registration: an absolute `http(s)://host…` URL without
    /// credentials or fragment, at least one known event type (duplicates
    /// dropped, sorted), a description of at most 500 characters. The error
    /// says what to fix.
    pub fn parse(url: &str, events: &[String], description: &str) -> Result<EndpointSpec, String> {
        let url = url.trim();
        if url.is_empty() {
            return Err("give the endpoint's URL".into());
        }
        if url.len() > MAX_URL_LEN {
            return Err(format!("the URL is longer than {MAX_URL_LEN} characters"));
        }
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"))
            .ok_or_else(|| format!("`{url}` is not an http:// or https:// URL"))?;
        let host = rest.split(['/', '?']).next().unwrap_or("");
        if host.is_empty() {
            return Err(format!("`{url}` names no host"));
        }
        if host.contains('@') {
            return Err("put no credentials in the URL; verify deliveries by their signature instead".into());
        }
        if url.contains('#') || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("`{url}` is not a valid URL (no spaces or fragment)"));
        }
        let mut parsed = Vec::new();
        for e in events {
            let e = e.trim();
            if e.is_empty() {
                continue;
            }
            let t = EventType::parse(e).ok_or_else(|| {
                let all: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
                format!("unknown event type `{e}`; types are {}", all.join(", "))
            })?;
            parsed.push(t);
        }
        parsed.sort();
        parsed.dedup();
        if parsed.is_empty() {
            return Err("choose at least one event type".into());
        }
        let description = description.trim();
        if description.chars().count() > MAX_DESCRIPTION_LEN {
            return Err(format!("the description is longer than {MAX_DESCRIPTION_LEN} characters"));
        }
        Ok(EndpointSpec { url: url.to_string(), events: parsed, description: description.to_string() })
    }
}

/// A registered endpoint (its secret is never part of it: it is shown once).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Endpoint {
    pub id: String,
    pub url: String,
    pub events: Vec<EventType>,
    pub description: String,
    pub created_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
    /// Its deliveries by status.
    pub pending: i64,
    pub delivered: i64,
    pub failed: i64,
}

/// Where a delivery stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    /// Waiting for its first attempt or a retry.
    Pending,
    /// Answered with a 2xx.
    Delivered,
    /// Retried for a day without a 2xx; a replay tries again.
    Failed,
    /// Its endpoint was deleted before it was delivered.
    Cancelled,
}

impl DeliveryStatus {
    pub const ALL: [DeliveryStatus; 4] =
        [DeliveryStatus::Pending, DeliveryStatus::Delivered, DeliveryStatus::Failed, DeliveryStatus::Cancelled];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<DeliveryStatus> {
        DeliveryStatus::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// One event's delivery to one endpoint.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Delivery {
    pub id: i64,
    pub endpoint_id: String,
    /// Also the `Tally-Webhook-Id` of every attempt.
    pub event_id: String,
    pub event_type: EventType,
    pub status: DeliveryStatus,
    pub attempts: i64,
    /// The last attempt's HTTP status (`None`: no answer, or not tried).
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

/// Waits between attempts: the first retry 10 s after the first failure,
/// then longer, up to 8 hours apart.
const BACKOFF_SECS: [u64; 10] = [10, 30, 120, 600, 1800, 3600, 7200, 14_400, 28_800, 28_800];

/// Retries go on for at least this long after the first attempt.
pub const RETRY_FOR: Duration = Duration::from_secs(24 * 3600);

/// A delivery is tried again this long after its `attempts`-th failed
/// attempt, or given up (`None`) once `since_first` (from the first attempt
/// to now) has reached [`RETRY_FOR`].
pub fn retry_after(attempts: u32, since_first: Duration) -> Option<Duration> {
    if since_first >= RETRY_FOR {
        return None;
    }
    let i = (attempts.max(1) - 1) as usize;
    Some(Duration::from_secs(BACKOFF_SECS[i.min(BACKOFF_SECS.len() - 1)]))
}

/// Whether an HTTP status counts as delivered.
pub fn delivered(status: u16) -> bool {
    (200..300).contains(&status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_are_targets() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.20.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
        ] {
            assert!(!public_address(private.parse().unwrap()), "{private}");
        }
        for public in ["93.184.215.14", "1.1.1.1", "2606:4700:4700::1111", "172.32.0.1"] {
            assert!(public_address(public.parse().unwrap()), "{public}");
        }
        assert_eq!(host_and_port("https://Hooks.Example.com/x?y"), Some(("hooks.example.com".into(), 443)));
        assert_eq!(host_and_port("http://127.0.0.1:9/all"), Some(("127.0.0.1".into(), 9)));
        assert_eq!(host_and_port("http://[::1]:8080/x"), Some(("::1".into(), 8080)));
        assert_eq!(host_and_port("http://[::1]/x"), Some(("::1".into(), 80)));
        assert_eq!(host_and_port("ftp://x"), None);
    }
    use proptest::prelude::*;

    #[test]
    fn event_types_round_trip_and_match_serde() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
            assert_eq!(serde_json::to_value(t).unwrap(), serde_json::Value::from(t.as_str()));
        }
        assert_eq!(EventType::parse("alert.Created"), None);
    }

    #[test]
    fn endpoint_registrations_are_checked() {
        let ev = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let ok = EndpointSpec::parse(
            " https://hooks.example.com/tally?x=1 ",
            &ev(&["usage.spike", "alert.created", "usage.spike"]),
            " ops ",
        )
        .unwrap();
        assert_eq!(ok.url, "https://hooks.example.com/tally?x=1");
        assert_eq!(ok.events, vec![EventType::AlertCreated, EventType::UsageSpike]);
        assert_eq!(ok.description, "ops");
        assert!(EndpointSpec::parse("http://127.0.0.1:9000", &ev(&["period.closed"]), "").is_ok());
        let table: [(&str, &[&str], &str); 7] = [
            ("", &["alert.created"], "give the endpoint's URL"),
            ("ftp://x", &["alert.created"], "not an http"),
            ("https:///path", &["alert.created"], "names no host"),
            ("https://u:p@x.example", &["alert.created"], "no credentials"),
            ("https://x.example/a b", &["alert.created"], "not a valid URL"),
            ("https://x.example", &[], "at least one event type"),
            ("https://x.example", &["alert.sent"], "unknown event type `alert.sent`"),
        ];
        for (url, events, want) in table {
            let err = EndpointSpec::parse(url, &ev(events), "").unwrap_err();
            assert!(err.contains(want), "{url} {events:?}: {err}");
        }
    }

    #[test]
    fn first_retry_comes_quickly() {
        assert!(retry_after(1, Duration::ZERO).unwrap() <= Duration::from_secs(30));
        assert_eq!(retry_after(50, RETRY_FOR), None);
    }

    /// Following the schedule from the first attempt, retries go on for at
    /// least a day, each wait at most 8 hours, never shrinking; then they
    /// stop.
    #[test]
    fn retries_last_at_least_a_day() {
        let (mut attempts, mut elapsed, mut last) = (1u32, Duration::ZERO, Duration::ZERO);
        while let Some(wait) = retry_after(attempts, elapsed) {
            assert!(wait >= last && wait <= Duration::from_secs(8 * 3600));
            last = wait;
            elapsed += wait;
            attempts += 1;
        }
        assert!(elapsed >= RETRY_FOR);
        assert!(attempts < 20, "{attempts} attempts");
    }

    proptest! {
        /// Whenever it is asked (a replay resets nothing but the clock), the
        /// answer is a wait within the schedule or a stop after a day.
        #[test]
        fn any_state_has_an_answer(attempts in 0u32..1000, secs in 0u64..200_000) {
            match retry_after(attempts, Duration::from_secs(secs)) {
                Some(w) => prop_assert!(secs < RETRY_FOR.as_secs() && w >= Duration::from_secs(10)),
                None => prop_assert!(secs >= RETRY_FOR.as_secs()),
            }
        }
    }
}
