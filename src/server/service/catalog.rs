//! The in-memory catalog: plans and price versions, cached per process and
//! revalidated against the store's catalog revision on every use.
//!
//! The revision check is one tiny indexed read; a reload happens only after a
//! plan or price changed (on this instance or another one sharing the
//! database). Hits and misses are counted for the monitoring endpoint.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::AnyConnection;
use tokio::sync::RwLock;

use crate::domain::limits::Limits;
use crate::domain::plan::Plan;
use crate::domain::pricing::Catalog;
use crate::domain::subscription::Subscription;
use crate::server::store::view::Stamp;
use crate::server::store::{Store, StoreResult, WriteTx, catalog};

/// One consistent view of plans and prices.
#[derive(Debug, Default)]
pub struct CatalogSnapshot {
    pub revision: i64,
    pub plans: Vec<Plan>,
    pub prices: Catalog,
}

impl CatalogSnapshot {
    pub fn plan(&self, id: i64) -> Option<&Plan> {
        self.plans.iter().find(|p| p.id == id)
    }

    /// The plan a subscription is on, if any.
    pub fn plan_of(&self, sub: &Subscription) -> Option<&Plan> {
        sub.plan_id.and_then(|id| self.plan(id))
    }

    /// The limits a subscription is held to: its plan's, or none (every
    /// limit unlimited) without a plan. The one limits lookup.
    pub fn limits_of(&self, sub: &Subscription) -> Limits {
        self.plan_of(sub).map(|p| p.limits.clone()).unwrap_or_default()
    }

    /// The plan new users get: the cheapest active free-tier plan.
    pub fn default_plan(&self) -> Option<&Plan> {
        self.plans.iter().filter(|p| !p.archived).min_by_key(|p| (p.tier, p.price_monthly, p.id))
    }
}

#[derive(Debug, Default)]
pub struct CatalogCache {
    current: RwLock<Option<Arc<CatalogSnapshot>>>,
    /// When the snapshot was last found current (see
    /// [`CatalogCache::recent`]).
    checked: std::sync::Mutex<Option<Stamp>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
}

impl CatalogCache {
    /// The current snapshot, reloaded if the store's revision moved.
    pub async fn get(&self, conn: &mut AnyConnection) -> StoreResult<Arc<CatalogSnapshot>> {
        let revision = catalog::revision(conn).await?;
        if let Some(snap) = self.current.read().await.as_ref().filter(|s| s.revision == revision) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(snap.clone());
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let snap = Arc::new(CatalogSnapshot {
            revision,
            plans: catalog::plans(conn).await?,
            prices: Catalog::new(catalog::price_versions(conn).await?),
        });
        *self.current.write().await = Some(snap.clone());
        Ok(snap)
    }

    /// The snapshot last loaded, without asking whether it is current.
    pub async fn snapshot(&self) -> Option<Arc<CatalogSnapshot>> {
        self.current.read().await.clone()
    }

    /// [`CatalogCache::get`] inside a write transaction: the snapshot of the
    /// revision the transaction holds. On SQLite the write group's memo
    /// usually knows that revision, so nothing is read (see
    /// [`crate::server::store::memo`]).
    pub async fn get_in(&self, tx: &mut WriteTx) -> StoreResult<Arc<CatalogSnapshot>> {
        match tx.recall_revision() {
            Some(revision) => self.at_revision(tx, revision).await,
            None => self.load_in(tx).await,
        }
    }

    /// [`CatalogSnapshot`] of `revision`, which a statement of `tx` has
    /// just read (the user lock does: [`crate::server::store::users::lock_subscription`]):
    /// no statement runs when that revision is the one loaded.
    pub async fn at_revision(&self, tx: &mut WriteTx, revision: i64) -> StoreResult<Arc<CatalogSnapshot>> {
        match self.loaded(revision).await {
            Some(snap) => {
                tx.learned_revision(revision);
                Ok(snap)
            }
            None => self.load_in(tx).await,
        }
    }

    /// [`CatalogCache::get`] in `tx`, telling it the revision read.
    async fn load_in(&self, tx: &mut WriteTx) -> StoreResult<Arc<CatalogSnapshot>> {
        let snap = self.get(tx).await?;
        tx.learned_revision(snap.revision);
        Ok(snap)
    }

    /// The loaded snapshot if it is of `revision`.
    async fn loaded(&self, revision: i64) -> Option<Arc<CatalogSnapshot>> {
        let snap = self.current.read().await.as_ref().filter(|s| s.revision == revision).cloned()?;
        self.hits.fetch_add(1, Ordering::Relaxed);
        Some(snap)
    }

    /// The snapshot without asking the store, if it was found current
    /// within `ttl` and this process has written nothing that may change it
    /// since; else [`CatalogCache::get`]. For the check-only gate, which
    /// promises nothing: anything that prices or holds uses `get`, inside
    /// its transaction.
    pub async fn recent(&self, store: &Store) -> StoreResult<Arc<CatalogSnapshot>> {
        let checked = *self.checked.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if checked.is_some_and(|s| store.view().is_fresh(&s))
            && let Some(snap) = self.current.read().await.as_ref()
        {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(snap.clone());
        }
        let stamp = store.view().stamp();
        let mut conn = store.pool().acquire().await?;
        let snap = self.get(&mut conn).await?;
        *self.checked.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(stamp);
        Ok(snap)
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats { hits: self.hits.load(Ordering::Relaxed), misses: self.misses.load(Ordering::Relaxed) }
    }
}
