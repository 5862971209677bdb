//! What a seed writes that no admin action can: a catalog dated in the
//! past, and the claim that lets exactly one of several instances starting
//! on one empty database seed it.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::Engine;
use crate::domain::plan::Plan;
use crate::domain::pricing::PriceVersion;
use crate::server::error::AppResult;
use crate::server::store::{catalog, ms, users};

/// Where a named seed stands in this database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeedClaim {
    /// Done before, or the database already has users: nothing to seed.
    Nothing,
    /// Another instance claimed it: wait until it is done.
    Running,
    /// This instance claimed it and seeds now.
    Claimed,
}

impl Engine {
    /// Claims the seed `name` for this instance, unless it is done, running
    /// elsewhere, or the database already has users.
    pub async fn claim_seed(&self, name: &str, now: DateTime<Utc>) -> AppResult<SeedClaim> {
        match self.seed_state(name).await? {
            Some((state, _)) if state == "done" => return Ok(SeedClaim::Nothing),
            Some(_) => return Ok(SeedClaim::Running),
            None => {}
        }
        let mut conn = self.store.pool().acquire().await?;
        if users::count_users(&mut conn).await? > 0 {
            return Ok(SeedClaim::Nothing);
        }
        let claimed = sqlx::query(
            "INSERT INTO seed_runs (name, state, started_at) VALUES ($1, 'running', $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(ms(now))
        .execute(&mut *conn)
        .await?
        .rows_affected()
            == 1;
        Ok(if claimed { SeedClaim::Claimed } else { SeedClaim::Running })
    }

    /// The seed's state (`running` or `done`) and when it started (unix
    /// ms); `None` before anyone claimed it.
    pub async fn seed_state(&self, name: &str) -> AppResult<Option<(String, i64)>> {
        let mut conn = self.store.pool().acquire().await?;
        let row = sqlx::query("SELECT state, started_at FROM seed_runs WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *conn)
            .await?;
        Ok(row.map(|r| Ok::<_, sqlx::Error>((r.try_get("state")?, r.try_get("started_at")?))).transpose()?)
    }

    /// Marks the seed done.
    pub async fn finish_seed(&self, name: &str, now: DateTime<Utc>) -> AppResult<()> {
        let mut conn = self.store.pool().acquire().await?;
        sqlx::query("UPDATE seed_runs SET state = 'done', finished_at = $1 WHERE name = $2")
            .bind(ms(now))
            .bind(name)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// Writes `plans` and `prices` (each effective from its own instant) as
    /// a catalog created at `created_at`, in one transaction; the plans' ids
    /// in their order. The seed's history needs a catalog older than now,
    /// which the admin's actions never write.
    pub async fn seed_catalog(
        &self,
        plans: &[Plan],
        prices: &[PriceVersion],
        created_at: DateTime<Utc>,
    ) -> AppResult<Vec<i64>> {
        let mut tx = self.store.begin().await?;
        let mut ids = Vec::with_capacity(plans.len());
        for p in plans {
            ids.push(catalog::insert_plan(&mut tx, p, created_at).await?);
        }
        for v in prices {
            catalog::insert_price_version(&mut tx, v, Some("seed"), created_at).await?;
        }
        tx.commit().await?;
        Ok(ids)
    }
}
