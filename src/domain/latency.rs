//! Request latency as a histogram: the aggregate of a window's requests
//! ([`Agg`]), merged from per-minute rows of every node, and the figures
//! read from it ([`Stats`]). Percentiles are interpolated within a bucket.

use std::time::Duration;

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
}

/// Requests added up: counts, total latency and a latency histogram over
/// [`BUCKETS`] (`buckets[i]`: requests above the previous bound and up to
/// `BUCKETS[i]`; above the last bound: `requests - Σ buckets`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Agg {
    pub requests: u64,
    pub errors: u64,
    pub sum_micros: u64,
    pub buckets: [u64; BUCKETS.len()],
}

impl Agg {
    pub fn one(status: u16, took: Duration) -> Agg {
        let mut a = Agg {
            requests: 1,
            errors: u64::from(status >= 500),
            sum_micros: took.as_micros() as u64,
            buckets: [0; BUCKETS.len()],
        };
        let secs = took.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            a.buckets[i] = 1;
        }
        a
    }

    pub fn add(&mut self, o: &Agg) {
        self.requests += o.requests;
        self.errors += o.errors;
        self.sum_micros += o.sum_micros;
        for (a, b) in self.buckets.iter_mut().zip(o.buckets) {
            *a += b;
        }
    }

    /// The latency (ms) below which a share `q` of requests fall,
    /// interpolated linearly within its bucket (as Prometheus'
    /// `histogram_quantile`); the last bound for requests above it.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.requests == 0 {
            return 0.0;
        }
        let target = q * self.requests as f64;
        let mut below = 0u64;
        let mut lower = 0.0;
        for (bound, n) in BUCKETS.iter().zip(self.buckets) {
            if n > 0 && (below + n) as f64 >= target {
                let within = ((target - below as f64) / n as f64).clamp(0.0, 1.0);
                return (lower + (bound - lower) * within) * 1000.0;
            }
            below += n;
            lower = *bound;
        }
        BUCKETS[BUCKETS.len() - 1] * 1000.0
    }

    pub fn stats(&self) -> Stats {
        if self.requests == 0 {
            return Stats::default();
        }
        Stats {
            requests: self.requests,
            errors: self.errors,
            avg_ms: self.sum_micros as f64 / self.requests as f64 / 1000.0,
            p50_ms: self.quantile_ms(0.50),
            p95_ms: self.quantile_ms(0.95),
        }
    }
}

/// Upper bounds (seconds) of the request-latency histogram's buckets.
pub const BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];
