//! Use cases. REST handlers, server functions, the CLI and the seed all call
//! these; no business rule lives in a front door.
//!
//! Services take `now` from their caller, so tests and the demo seed can
//! drive the engine through simulated time with the same code as production.

pub mod accounts;
#[cfg(test)]
mod accounts_tests;
pub mod admin;
pub mod audit;
pub mod catalog;
#[cfg(test)]
mod cluster_tests;
pub mod gate;
pub mod insights;
#[cfg(test)]
mod insights_tests;
pub mod keys;
#[cfg(test)]
mod ledger_tests;
#[cfg(test)]
mod memo_tests;
pub mod performance;
pub mod price_import;
pub mod proxy_calls;
pub mod reads;
pub mod recording;
pub mod repricing;
pub mod seeding;
pub mod spikes;
pub mod subscriptions;
#[cfg(test)]
mod tests;
pub mod user_turns;
pub mod wallet;
#[cfg(test)]
pub(crate) mod wallet_tests;
pub mod webhooks;
#[cfg(test)]
pub(crate) mod webhooks_tests;

use std::sync::Arc;
use std::time::Duration;

use crate::server::store::{Store, holds};
use catalog::CatalogCache;

/// Tunables of the engine.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// How long a preflight reservation holds usage before it lapses.
    pub hold_ttl: Duration,
    /// A session ends after this long without a request...
    pub session_idle: chrono::Duration,
    /// ...and this long after sign-in in any case.
    pub session_max: chrono::Duration,
    /// What the gate answers for a model without a price.
    pub unpriced_policy: UnpricedPolicy,
    /// A spend spike is an hour costing more than this many times the
    /// user's hourly average over the seven days before; 0 turns it off.
    pub spike_multiple: u32,
    /// ...and at least this much (0: any amount).
    pub spike_floor: crate::domain::money::Nanos,
    /// Webhooks may go to loopback, private and link-local addresses
    /// (`TALLY_WEBHOOK_ALLOW_PRIVATE`, for a receiver inside the network).
    pub webhook_allow_private: bool,
    /// How long before a grant of credits lapses `grant.expiring` is sent
    /// (zero: never).
    pub grant_expiry_warning: chrono::Duration,
    /// Seals webhook signing secrets at rest (see [`crate::server::secrets`]).
    pub secrets: Arc<crate::server::secrets::SecretBox>,
}

/// The gate's answer for a model the catalog cannot price.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum UnpricedPolicy {
    /// Refuse it (422, `unpriced_model`), naming the model: nobody spends
    /// past a cost cap through a model without a price.
    #[default]
    Deny,
    /// Admit it against call and token limits, holding $0.
    Allow,
}

impl EngineConfig {
    /// [`EngineConfig::hold_ttl`] on the calendar (five minutes should it
    /// not fit).
    pub fn hold_span(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.hold_ttl).unwrap_or(chrono::Duration::minutes(5))
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            hold_ttl: Duration::from_secs(300),
            session_idle: chrono::Duration::hours(12),
            session_max: chrono::Duration::days(7),
            unpriced_policy: UnpricedPolicy::Deny,
            spike_multiple: 5,
            spike_floor: crate::domain::money::Nanos::ZERO,
            webhook_allow_private: false,
            grant_expiry_warning: chrono::Duration::hours(72),
            secrets: Arc::default(),
        }
    }
}

/// What the engine decided since the process started, for `GET /metrics`.
/// Counted in the engine, so every door (REST, the web UI, the CLI) counts.
#[derive(Debug, Default)]
pub struct Counters {
    /// Ingested events by [`recording::Outcome`] (in its order).
    events: [std::sync::atomic::AtomicU64; 3],
    /// Events recorded without a price.
    unpriced_events: std::sync::atomic::AtomicU64,
    /// Preflight answers: [check allowed, check denied, reserve allowed,
    /// reserve denied].
    preflight: [std::sync::atomic::AtomicU64; 4],
    /// PostgreSQL reservations tried in one round trip, by
    /// [`holds::OneTrip`] (in its order).
    one_trip: [std::sync::atomic::AtomicU64; 3],
}

impl Counters {
    fn add(c: &std::sync::atomic::AtomicU64, n: u64) {
        c.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }

    fn get(c: &std::sync::atomic::AtomicU64) -> u64 {
        c.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn recorded(&self, results: &[recording::EventResult]) {
        for r in results {
            Self::add(&self.events[r.outcome as usize], 1);
            if r.unpriced && r.outcome == recording::Outcome::Accepted {
                Self::add(&self.unpriced_events, 1);
            }
        }
    }

    fn decided(&self, reserve: bool, allowed: bool) {
        Self::add(&self.preflight[(reserve as usize) * 2 + (!allowed) as usize], 1);
    }

    fn tried_one_trip(&self, outcome: holds::OneTrip) {
        Self::add(&self.one_trip[outcome as usize], 1);
    }

    /// PostgreSQL reservations tried in one round trip, by outcome.
    pub fn one_trip(&self) -> [(holds::OneTrip, u64); 3] {
        use holds::OneTrip::*;
        [Held, Changed, Full].map(|o| (o, Self::get(&self.one_trip[o as usize])))
    }

    /// Events by outcome: `(accepted|duplicate|rejected, count)`.
    pub fn events(&self) -> [(recording::Outcome, u64); 3] {
        use recording::Outcome::*;
        [Accepted, Duplicate, Rejected].map(|o| (o, Self::get(&self.events[o as usize])))
    }

    pub fn unpriced_events(&self) -> u64 {
        Self::get(&self.unpriced_events)
    }

    /// Preflight answers: `(reserve, allowed, count)`.
    pub fn preflight(&self) -> [(bool, bool, u64); 4] {
        [(false, true), (false, false), (true, true), (true, false)]
            .map(|(r, a)| (r, a, Self::get(&self.preflight[(r as usize) * 2 + (!a) as usize])))
    }
}

/// The billing engine: the store plus the catalog cache. The one way to
/// the store above this layer: doors call its methods and never hold the
/// store themselves.
#[derive(Clone, Debug)]
pub struct Engine {
    store: Store,
    pub catalog: Arc<CatalogCache>,
    pub config: EngineConfig,
    /// API keys whose `last_used_at` write is queued or running in this
    /// process: at most one per key, however many requests see it stale.
    pub(super) key_touches: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
    /// The process's copy of live API keys.
    pub(super) keys: Arc<keys::KeyCache>,
    /// This process's turns per user, taken before a usage write begins.
    pub(super) user_turns: Arc<user_turns::UserTurns>,
    pub counters: Arc<Counters>,
    /// When this process last judged each user's spending (see [`spikes`]).
    pub(super) spike_checks:
        Arc<std::sync::Mutex<std::collections::HashMap<crate::domain::identity::UserId, std::time::Instant>>>,
    /// Turns for bulk reads (an export's pages after its first), one per
    /// core: however many downloads stream at once, they use at most that
    /// many of the pool's connections and cores, and a dashboard, a log
    /// page or a new export's first page never queues behind them.
    pub(super) bulk_reads: Arc<tokio::sync::Semaphore>,
}

impl Engine {
    pub fn new(store: Store, config: EngineConfig) -> Engine {
        Engine {
            store,
            catalog: Arc::new(CatalogCache::default()),
            config,
            key_touches: Arc::default(),
            keys: Arc::default(),
            user_turns: Arc::default(),
            counters: Arc::default(),
            spike_checks: Arc::default(),
            bulk_reads: Arc::new(tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
            )),
        }
    }

    /// The store, for tests that look at what was written.
    #[cfg(test)]
    pub(crate) fn store_for_tests(&self) -> &Store {
        &self.store
    }

    /// Whether the store answers (readiness).
    pub async fn ping(&self) -> crate::server::error::AppResult<()> {
        Ok(self.store.ping().await?)
    }

    /// The deployment's requests of the last `window`: every node's figures
    /// in the store, with this node's not yet written (`metrics`).
    pub async fn deployment(
        &self,
        metrics: &crate::server::metrics::Metrics,
        window: std::time::Duration,
        now: chrono::DateTime<chrono::Utc>,
    ) -> crate::server::error::AppResult<crate::server::metrics::Deployment> {
        Ok(metrics.deployment(&self.store, window, now).await?)
    }
}
