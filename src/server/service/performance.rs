//! Which provider is worth it: per provider and model of one user's usage
//! period, calls, error rate, response-time percentiles, cost per call and
//! per 1,000 tokens, and output tokens per second. Read from the rollups
//! and their response-time buckets, never from the events.

use chrono::{DateTime, Utc};

use super::Engine;
use crate::domain::identity::UserId;
use crate::domain::limits::RollupSum;
use crate::domain::money::Nanos;
use crate::domain::period::Period;
use crate::domain::response_times::Histogram;
use crate::server::error::AppResult;
use crate::server::store::{response_times, rollups};

/// How far a percentile may be from the true value
/// ([`crate::domain::response_times`]).
pub const PERCENTILE_ERROR: &str = "exact below 64 ms, else within 1/64 (1.6 %)";

/// One provider's (`model` empty) or one model's figures.
#[derive(Clone, Debug, PartialEq)]
pub struct Performance {
    pub provider: String,
    pub model: String,
    pub calls: i64,
    pub errors: i64,
    pub tokens: i64,
    pub tokens_output: i64,
    pub cost: Nanos,
    /// Response times of the calls that reported one.
    pub times: Histogram,
    pub response_ms_sum: i64,
    pub response_ms_count: i64,
}

impl Performance {
    fn of(r: &RollupSum, times: Histogram) -> Performance {
        let c = &r.counts;
        Performance {
            provider: r.provider.clone(),
            model: r.model.clone(),
            calls: c.calls,
            errors: c.errors,
            tokens: c.tokens_input.saturating_add(c.tokens_output),
            tokens_output: c.tokens_output,
            cost: c.cost,
            times,
            response_ms_sum: c.response_ms_sum,
            response_ms_count: c.response_ms_count,
        }
    }

    fn merge(&mut self, o: &Performance) {
        self.calls += o.calls;
        self.errors += o.errors;
        self.tokens = self.tokens.saturating_add(o.tokens);
        self.tokens_output = self.tokens_output.saturating_add(o.tokens_output);
        self.cost = Nanos(self.cost.0.saturating_add(o.cost.0));
        self.times.merge(&o.times);
        self.response_ms_sum += o.response_ms_sum;
        self.response_ms_count += o.response_ms_count;
    }

    /// Percent of calls answered with an error status (400 and above).
    pub fn error_rate_pct(&self) -> f64 {
        if self.calls == 0 { 0.0 } else { self.errors as f64 * 100.0 / self.calls as f64 }
    }

    /// The mean response time, of the calls that reported one.
    pub fn mean_ms(&self) -> Option<f64> {
        (self.response_ms_count > 0).then(|| self.response_ms_sum as f64 / self.response_ms_count as f64)
    }

    /// Cost per call, rounded down to the nano.
    pub fn cost_per_call(&self) -> Option<Nanos> {
        (self.calls > 0).then(|| Nanos(self.cost.0 / self.calls))
    }

    /// Cost per 1,000 input and output tokens, rounded down to the nano.
    pub fn cost_per_1k_tokens(&self) -> Option<Nanos> {
        (self.tokens > 0).then(|| Nanos((i128::from(self.cost.0) * 1000 / i128::from(self.tokens)) as i64))
    }

    /// Output tokens per second of response time: only when every call
    /// reported its response time (else the tokens of untimed calls would
    /// count against the time of the others).
    pub fn output_tokens_per_sec(&self) -> Option<f64> {
        (self.response_ms_count == self.calls && self.response_ms_sum > 0 && self.tokens_output > 0)
            .then(|| self.tokens_output as f64 * 1000.0 / self.response_ms_sum as f64)
    }
}

/// One usage period's comparison.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    pub period: Period,
    /// Per provider, the models merged; by provider.
    pub providers: Vec<Performance>,
    /// Per provider and model.
    pub models: Vec<Performance>,
}

impl Engine {
    /// The comparison of `user_id`'s period labelled `label` (default: the
    /// current one).
    pub async fn performance(
        &self,
        user_id: &UserId,
        label: Option<&str>,
        now: DateTime<Utc>,
    ) -> AppResult<Comparison> {
        let (_, subscription, _) = self.current_subscription(user_id, now).await?;
        let period = Engine::labelled_period(&subscription, label)?;
        let mut conn = self.store.pool().acquire().await?;
        let sums = rollups::period_rollups(&mut conn, user_id, period.start, true).await?;
        let mut times = response_times::of_period(&mut conn, user_id, period.start).await?;
        drop(conn);
        let models: Vec<Performance> = sums
            .iter()
            .map(|r| {
                let key = (r.provider.clone(), r.model.clone());
                let h = times.iter_mut().find(|(k, _)| *k == key).map(|(_, h)| std::mem::take(h));
                Performance::of(r, h.unwrap_or_default())
            })
            .collect();
        let mut providers: Vec<Performance> = Vec::new();
        for m in &models {
            match providers.iter_mut().find(|p| p.provider == m.provider) {
                Some(p) => p.merge(m),
                None => providers.push(Performance { model: String::new(), ..m.clone() }),
            }
        }
        Ok(Comparison { period, providers, models })
    }
}
