//! Request metrics: a middleware records the status and latency of every
//! request per matched route; the monitoring endpoints and the dashboard's
//! health indicator read rolling windows of them.
//!
//! Samples live in memory for an hour (at most [`MAX_SAMPLES`]), per
//! process: with several instances each reports its own traffic.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

pub const MAX_SAMPLES: usize = 200_000;
/// The window "recent" health and error rates are judged over.
pub const RECENT_WINDOW: Duration = Duration::from_secs(300);
const KEEP: Duration = Duration::from_secs(3600);

#[derive(Clone, Debug)]
struct Sample {
    at: Instant,
    route: Arc<str>,
    method: Arc<str>,
    status: u16,
    micros: u64,
}

/// Aggregates of one window (or of one endpoint within it).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    pub requests: u64,
    /// Server errors (status 500 and above).
    pub errors: u64,
    pub avg_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
}

impl Stats {
    /// Percent of requests that were server errors.
    pub fn error_rate(&self) -> f64 {
        if self.requests == 0 { 0.0 } else { self.errors as f64 * 100.0 / self.requests as f64 }
    }

    fn of(samples: &[&Sample]) -> Stats {
        if samples.is_empty() {
            return Stats::default();
        }
        let mut lat: Vec<u64> = samples.iter().map(|s| s.micros).collect();
        lat.sort_unstable();
        let pct = |p: f64| {
            let idx = ((p * lat.len() as f64).ceil() as usize).clamp(1, lat.len()) - 1;
            lat[idx] as f64 / 1000.0
        };
        Stats {
            requests: samples.len() as u64,
            errors: samples.iter().filter(|s| s.status >= 500).count() as u64,
            avg_ms: lat.iter().sum::<u64>() as f64 / lat.len() as f64 / 1000.0,
            p50_ms: pct(0.50),
            p95_ms: pct(0.95),
        }
    }
}

/// One endpoint's row.
#[derive(Clone, Debug, PartialEq)]
pub struct EndpointStats {
    pub method: String,
    pub route: String,
    pub stats: Stats,
}

/// Overall health from the recent window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    Healthy,
    Warning,
    Critical,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::Warning => "warning",
            Health::Critical => "critical",
        }
    }

    pub fn icon(self) -> &'static str {
        match self {
            Health::Healthy => "🟢",
            Health::Warning => "🟡",
            Health::Critical => "🔴",
        }
    }

    /// Critical at 10% server errors or more; warning at 2%, or when the
    /// p95 latency exceeds 2 s.
    pub fn judge(s: &Stats) -> Health {
        let rate = s.error_rate();
        if rate >= 10.0 {
            Health::Critical
        } else if rate >= 2.0 || s.p95_ms > 2000.0 {
            Health::Warning
        } else {
            Health::Healthy
        }
    }
}

/// Upper bounds (seconds) of the request-latency histogram's buckets.
pub const BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// Every request of one route, method and status since the process
/// started: the Prometheus histogram's series.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Series {
    pub count: u64,
    pub sum_micros: u64,
    /// Requests per bucket of [`BUCKETS`] (not cumulative; the last bound
    /// is exceeded by `count - Σ buckets`).
    pub buckets: [u64; BUCKETS.len()],
}

type SeriesKey = (Arc<str>, Arc<str>, u16);

#[derive(Debug)]
pub struct Metrics {
    samples: Mutex<VecDeque<Sample>>,
    totals: Mutex<BTreeMap<SeriesKey, Series>>,
    pub started: Instant,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics { samples: Mutex::new(VecDeque::new()), totals: Mutex::default(), started: Instant::now() }
    }
}

impl Metrics {
    pub fn record(&self, method: &str, route: &str, status: u16, took: Duration) {
        let now = Instant::now();
        let (route, method): (Arc<str>, Arc<str>) = (route.into(), method.into());
        let micros = took.as_micros() as u64;
        if let Ok(mut t) = self.totals.lock() {
            let s = t.entry((route.clone(), method.clone(), status)).or_default();
            s.count += 1;
            s.sum_micros += micros;
            let secs = took.as_secs_f64();
            if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
                s.buckets[i] += 1;
            }
        }
        let Ok(mut q) = self.samples.lock() else { return };
        while q.front().is_some_and(|s| now.duration_since(s.at) > KEEP) || q.len() >= MAX_SAMPLES {
            q.pop_front();
        }
        q.push_back(Sample { at: now, route, method, status, micros });
    }

    /// Every series since the process started: `((route, method, status),
    /// series)`, sorted.
    pub fn totals(&self) -> Vec<((String, String, u16), Series)> {
        match self.totals.lock() {
            Ok(t) => t.iter().map(|((r, m, s), v)| ((r.to_string(), m.to_string(), *s), v.clone())).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Totals and per-endpoint rows over the last `window`. The lock that
    /// every request takes is held only to copy the window's samples (the
    /// newest, walking back from the end); grouping and sorting happen
    /// after it is released.
    pub fn window(&self, window: Duration) -> (Stats, Vec<EndpointStats>) {
        let now = Instant::now();
        let copied: Vec<Sample> = match self.samples.lock() {
            Ok(q) => q.iter().rev().take_while(|s| now.duration_since(s.at) <= window).cloned().collect(),
            Err(_) => return (Stats::default(), vec![]),
        };
        let recent: Vec<&Sample> = copied.iter().collect();
        let mut by_route: BTreeMap<(&str, &str), Vec<&Sample>> = BTreeMap::new();
        for s in &recent {
            by_route.entry((&s.method, &s.route)).or_default().push(s);
        }
        let rows = by_route
            .into_iter()
            .map(|((m, r), v)| EndpointStats { method: m.into(), route: r.into(), stats: Stats::of(&v) })
            .collect();
        (Stats::of(&recent), rows)
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }
}

/// The middleware: times the request and records it under its route
/// template (`/api/subscription/usage/{user_id}`), not the raw path.
pub async fn track(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let route =
        req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_string()).unwrap_or_else(|| "(unmatched)".into());
    let method = req.method().to_string();
    let t0 = Instant::now();
    let resp = next.run(req).await;
    metrics.record(&method, &route, resp.status().as_u16(), t0.elapsed());
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_percentiles_and_health() {
        let m = Metrics::default();
        for i in 1..=100u64 {
            m.record("GET", "/a", if i <= 3 { 500 } else { 200 }, Duration::from_millis(i));
        }
        m.record("POST", "/b", 200, Duration::from_millis(1));
        let (all, rows) = m.window(Duration::from_secs(300));
        assert_eq!((all.requests, all.errors), (101, 3));
        let a = &rows.iter().find(|r| r.route == "/a").unwrap().stats;
        assert_eq!((a.p50_ms, a.p95_ms), (50.0, 95.0));
        assert_eq!(Health::judge(&all), Health::Warning);
        assert_eq!(Health::judge(&Stats { requests: 10, errors: 1, ..Stats::default() }), Health::Critical);
        assert_eq!(Health::judge(&Stats::default()), Health::Healthy);
        // Since start, per route, method and status, into latency buckets.
        let totals = m.totals();
        let ((route, method, status), a200) = &totals[0];
        assert_eq!((route.as_str(), method.as_str(), *status), ("/a", "GET", 200));
        assert_eq!(a200.count, 97);
        assert_eq!(a200.sum_micros, (4..=100).sum::<u64>() * 1000);
        // 4-5 ms, 6-10, 11-25, 26-50, 51-100 ms.
        assert_eq!(a200.buckets, [0, 0, 2, 5, 15, 25, 50, 0, 0, 0, 0, 0]);
        assert_eq!(totals.iter().map(|(_, s)| s.count).sum::<u64>(), 101);
    }
}
