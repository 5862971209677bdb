//! Request metrics: a middleware records the status and latency of every
//! request per matched route.
//!
//! Two views of them:
//! - since this process started, per route, method and status: the
//!   Prometheus histogram of `GET /metrics` (scrape every node);
//! - per minute and route, added to the store every few seconds by each
//!   node ([`Metrics::flush`]): the health indicator and the monitoring
//!   endpoints read the whole deployment from there ([`Metrics::deployment`]),
//!   this node's not yet flushed minutes included. Latencies are merged as
//!   histograms, so percentiles are interpolated within a bucket.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use chrono::{DateTime, Utc};

pub use crate::domain::latency::{Agg, BUCKETS, Stats};

use super::store::{Store, StoreResult, node_stats};

/// The window "recent" health and error rates are judged over.
pub const RECENT_WINDOW: Duration = Duration::from_secs(300);

/// One endpoint's row.
#[derive(Clone, Debug, PartialEq)]
pub struct EndpointStats {
    pub method: String,
    pub route: String,
    pub stats: Stats,
}

/// The whole deployment over a window.
#[derive(Clone, Debug, PartialEq)]
pub struct Deployment {
    pub all: Stats,
    pub endpoints: Vec<EndpointStats>,
    /// Nodes that reported in the last [`NODE_ALIVE`] (this one included).
    pub nodes: usize,
    /// Since the longest-running of those nodes started.
    pub uptime: Duration,
}

/// A node that has not reported for this long is not counted as serving.
pub const NODE_ALIVE: Duration = Duration::from_secs(120);

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

/// (minute as unix ms, method, route)
type MinuteKey = (i64, Arc<str>, Arc<str>);

#[derive(Debug, Default)]
struct Inner {
    totals: BTreeMap<SeriesKey, Series>,
    /// Minutes not yet added to the store.
    unflushed: HashMap<MinuteKey, Agg>,
}

#[derive(Debug)]
pub struct Metrics {
    inner: Mutex<Inner>,
    /// This process among the deployment's nodes.
    pub node_id: String,
    pub started: Instant,
    pub started_at: DateTime<Utc>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            inner: Mutex::default(),
            node_id: format!("node-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]),
            started: Instant::now(),
            started_at: Utc::now(),
        }
    }
}

fn minute_of(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis().div_euclid(60_000) * 60_000
}

impl Metrics {
    pub fn record(&self, method: &str, route: &str, status: u16, took: Duration) {
        self.record_at(method, route, status, took, Utc::now());
    }

    pub fn record_at(&self, method: &str, route: &str, status: u16, took: Duration, at: DateTime<Utc>) {
        let one = Agg::one(status, took);
        let (route, method): (Arc<str>, Arc<str>) = (route.into(), method.into());
        let Ok(mut inner) = self.inner.lock() else { return };
        let s = inner.totals.entry((route.clone(), method.clone(), status)).or_default();
        s.count += 1;
        s.sum_micros += one.sum_micros;
        for (a, b) in s.buckets.iter_mut().zip(one.buckets) {
            *a += b;
        }
        inner.unflushed.entry((minute_of(at), method, route)).or_default().add(&one);
    }

    /// Every series since the process started: `((route, method, status),
    /// series)`, sorted.
    pub fn totals(&self) -> Vec<((String, String, u16), Series)> {
        match self.inner.lock() {
            Ok(t) => t.totals.iter().map(|((r, m, s), v)| ((r.to_string(), m.to_string(), *s), v.clone())).collect(),
            Err(_) => Vec::new(),
        }
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Adds this node's minutes to the store and says it is alive (and
    /// forgets minutes older than a day, for every node). Minutes that
    /// could not be written are kept for the next flush.
    pub async fn flush(&self, store: &Store, now: DateTime<Utc>) -> StoreResult<()> {
        let taken: Vec<(MinuteKey, Agg)> = match self.inner.lock() {
            Ok(mut i) => i.unflushed.drain().collect(),
            Err(_) => return Ok(()),
        };
        let written = async {
            let mut tx = store.begin().await?;
            tx.affects(super::store::view::Affects::NothingCached);
            for ((minute, method, route), agg) in &taken {
                node_stats::add_minute(&mut tx, &self.node_id, *minute, method, route, agg).await?;
            }
            node_stats::seen(&mut tx, &self.node_id, self.started_at, now, env!("CARGO_PKG_VERSION")).await?;
            node_stats::forget_before(&mut tx, minute_of(now - chrono::Duration::days(1))).await?;
            tx.commit().await
        };
        if let Err(e) = written.await {
            if let Ok(mut i) = self.inner.lock() {
                for (k, a) in taken {
                    i.unflushed.entry(k).or_default().add(&a);
                }
            }
            return Err(e);
        }
        Ok(())
    }

    /// The whole deployment's requests over the last `window` (whole
    /// minutes: from the start of the minute `window` ago), with the nodes
    /// serving now.
    pub async fn deployment(&self, store: &Store, window: Duration, now: DateTime<Utc>) -> StoreResult<Deployment> {
        let since = minute_of(now - chrono::Duration::from_std(window).unwrap_or_default());
        let mut conn = store.pool().acquire().await?;
        let mut by_route: BTreeMap<(String, String), Agg> = BTreeMap::new();
        for (method, route, agg) in node_stats::since(&mut conn, since).await? {
            by_route.entry((method, route)).or_default().add(&agg);
        }
        let alive_since = now - chrono::Duration::from_std(NODE_ALIVE).unwrap_or_default();
        let mut nodes = node_stats::nodes_seen_since(&mut conn, alive_since).await?;
        drop(conn);
        if let Ok(i) = self.inner.lock() {
            for ((minute, method, route), agg) in &i.unflushed {
                if *minute >= since {
                    by_route.entry((method.to_string(), route.to_string())).or_default().add(agg);
                }
            }
        }
        if !nodes.iter().any(|(id, _)| *id == self.node_id) {
            nodes.push((self.node_id.clone(), self.started_at));
        }
        let first_start = nodes.iter().map(|(_, at)| *at).min().unwrap_or(self.started_at);
        let mut all = Agg::default();
        let endpoints = by_route
            .into_iter()
            .map(|((method, route), agg)| {
                all.add(&agg);
                EndpointStats { method, route, stats: agg.stats() }
            })
            .collect();
        Ok(Deployment {
            all: all.stats(),
            endpoints,
            nodes: nodes.len(),
            uptime: (now - first_start).to_std().unwrap_or_default(),
        })
    }

    /// Flushes every `every` until the store closes, then once more.
    pub async fn flush_every(self: Arc<Self>, store: Store, every: Duration) {
        let mut closed = store.live().closed();
        let mut failures = 0u32;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = closed.wait_for(|c| *c) => return,
            }
            match self.flush(&store, Utc::now()).await {
                Ok(()) => failures = 0,
                Err(e) => {
                    failures += 1;
                    if failures == 1 || failures.is_multiple_of(60) {
                        tracing::warn!(error = %e, "request statistics: cannot write to the store; kept for the next try");
                    }
                }
            }
        }
    }
}

/// The method as a label: the standard ones by name, anything else (any
/// token a client makes up, of any length) as `OTHER`, so neither
/// `/metrics` nor the per-minute statistics grow with what clients send.
pub fn method_label(m: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    const KNOWN: [(Method, &str); 9] = [
        (Method::GET, "GET"),
        (Method::POST, "POST"),
        (Method::PUT, "PUT"),
        (Method::DELETE, "DELETE"),
        (Method::PATCH, "PATCH"),
        (Method::HEAD, "HEAD"),
        (Method::OPTIONS, "OPTIONS"),
        (Method::CONNECT, "CONNECT"),
        (Method::TRACE, "TRACE"),
    ];
    KNOWN.iter().find(|(k, _)| k == m).map_or("OTHER", |(_, name)| name)
}

/// The middleware: times the request and records it under its route
/// template (`/api/subscription/usage/{user_id}`), not the raw path.
pub async fn track(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let route =
        req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_string()).unwrap_or_else(|| "(unmatched)".into());
    let method = method_label(req.method());
    let t0 = Instant::now();
    let resp = next.run(req).await;
    metrics.record(method, &route, resp.status().as_u16(), t0.elapsed());
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_up_methods_share_one_label() {
        assert_eq!(method_label(&axum::http::Method::POST), "POST");
        let long = axum::http::Method::from_bytes("X".repeat(200_000).as_bytes()).unwrap();
        assert_eq!(method_label(&long), "OTHER");
        assert_eq!(method_label(&axum::http::Method::from_bytes(b"PROPFIND").unwrap()), "OTHER");
    }

    #[test]
    fn histograms_interpolate_percentiles_and_judge_health() {
        let mut a = Agg::default();
        for i in 1..=100u64 {
            a.add(&Agg::one(if i <= 3 { 500 } else { 200 }, Duration::from_millis(i)));
        }
        let s = a.stats();
        assert_eq!((s.requests, s.errors), (100, 3));
        assert_eq!(s.avg_ms, 50.5);
        // 50 requests are at most 50 ms; 26-50 ms is one bucket (25, 50]: the
        // 50th is its last.
        assert_eq!(s.p50_ms, 50.0);
        // (50, 100] holds 51-100 ms: the 95th of 100 is 45/50 of the way.
        assert!((s.p95_ms - 95.0).abs() < 1e-9, "{}", s.p95_ms);
        assert_eq!(Health::judge(&s), Health::Warning);
        assert_eq!(Health::judge(&Stats { requests: 10, errors: 1, ..Stats::default() }), Health::Critical);
        assert_eq!(Health::judge(&Stats::default()), Health::Healthy);
        // Above the last bound: the bound.
        let slow = Agg::one(200, Duration::from_secs(30));
        assert_eq!(slow.quantile_ms(0.5), 10_000.0);
        assert_eq!(Agg::default().stats(), Stats::default());
    }

    #[test]
    fn totals_by_route_method_and_status() {
        let m = Metrics::default();
        for i in 1..=100u64 {
            m.record("GET", "/a", if i <= 3 { 500 } else { 200 }, Duration::from_millis(i));
        }
        m.record("POST", "/b", 200, Duration::from_millis(1));
        let totals = m.totals();
        let ((route, method, status), a200) = &totals[0];
        assert_eq!((route.as_str(), method.as_str(), *status), ("/a", "GET", 200));
        assert_eq!(a200.count, 97);
        assert_eq!(a200.sum_micros, (4..=100).sum::<u64>() * 1000);
        // 4-5 ms, 6-10, 11-25, 26-50, 51-100 ms.
        assert_eq!(a200.buckets, [0, 0, 2, 5, 15, 25, 50, 0, 0, 0, 0, 0]);
        assert_eq!(totals.iter().map(|(_, s)| s.count).sum::<u64>(), 101);
    }

    /// Two nodes on one store: each node's requests, flushed or not, count
    /// in the deployment's figures on either; a node that stops reporting
    /// stops counting as serving.
    async fn two_nodes_share_their_figures(store: Store) {
        let (a, b) = (Metrics::default(), Metrics::default());
        let now = Utc::now();
        for ms in [1, 2, 3] {
            a.record_at("GET", "/x", 200, Duration::from_millis(ms), now);
        }
        a.record_at("GET", "/x", 503, Duration::from_millis(40), now);
        // Ten minutes ago: outside a five-minute window.
        a.record_at("GET", "/x", 500, Duration::from_millis(1), now - chrono::Duration::minutes(10));
        b.record_at("POST", "/y", 200, Duration::from_millis(8), now);
        let window = Duration::from_secs(300);
        // Before A flushes, B sees only itself.
        let d = b.deployment(&store, window, now).await.unwrap();
        assert_eq!((d.all.requests, d.nodes), (1, 1));
        a.flush(&store, now).await.unwrap();
        let d = b.deployment(&store, window, now).await.unwrap();
        assert_eq!((d.all.requests, d.all.errors, d.nodes), (5, 1, 2));
        let x = d.endpoints.iter().find(|e| e.route == "/x").unwrap();
        assert_eq!((x.method.as_str(), x.stats.requests, x.stats.errors), ("GET", 4, 1));
        assert!((x.stats.avg_ms - 11.5).abs() < 1e-9, "{}", x.stats.avg_ms);
        // Flushing twice adds, never double counts; A's view is the same.
        b.flush(&store, now).await.unwrap();
        a.record_at("GET", "/x", 200, Duration::from_millis(1), now);
        a.flush(&store, now).await.unwrap();
        assert_eq!(a.deployment(&store, window, now).await.unwrap().all.requests, 6);
        assert_eq!(b.deployment(&store, window, now).await.unwrap().all.requests, 6);
        // A wider window takes in the older minute.
        assert_eq!(a.deployment(&store, Duration::from_secs(900), now).await.unwrap().all.requests, 7);
        // Uptime runs from the earliest live node's start.
        let d = a.deployment(&store, window, now).await.unwrap();
        assert!(d.uptime <= (now - a.started_at.min(b.started_at)).to_std().unwrap() + Duration::from_secs(1));
        // Three minutes later only A reports: B is no longer serving.
        let later = now + chrono::Duration::minutes(3);
        a.flush(&store, later).await.unwrap();
        assert_eq!(a.deployment(&store, window, later).await.unwrap().nodes, 1);
    }
    crate::both_stores!(two_nodes_share_their_figures, two_nodes_share_their_figures);
}
