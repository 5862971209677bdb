//! Reading a user's usage: current period, trends, history. Everything here
//! reads rollups (one row per user, period, provider and model), never the
//! raw events, so it stays fast at tens of millions of events.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::Engine;
use super::catalog::CatalogSnapshot;
use super::subscriptions::lock_current;
use crate::domain::limits::Usage;
use crate::domain::money::Nanos;
use crate::domain::period::{Period, recent_periods, usage_period};
use crate::domain::plan::Plan;
use crate::domain::projection::{PeriodUsage, Trends, trends};
use crate::domain::provider::Provider;
use crate::server::error::{AppError, AppResult};
use crate::server::store::usage::{self, RollupSum};
use crate::server::store::users::{self, Subscription, User};

/// A user's current period, as the dashboard shows it.
#[derive(Clone, Debug)]
pub struct PeriodView {
    pub user: User,
    pub subscription: Subscription,
    pub plan: Option<Plan>,
    pub period: Period,
    /// Per provider, sorted by provider.
    pub by_provider: Vec<RollupSum>,
    pub usage: Usage,
    pub catalog: Arc<CatalogSnapshot>,
}

impl PeriodView {
    pub fn total_cost(&self) -> Nanos {
        self.by_provider.iter().map(|r| r.cost).sum()
    }

    pub fn total_calls(&self) -> i64 {
        self.by_provider.iter().map(|r| r.calls).sum()
    }

    pub fn total_tokens(&self) -> i64 {
        self.by_provider.iter().map(RollupSum::tokens).sum()
    }
}

impl Engine {
    /// The user's subscription as of `now`, rolling periods over if one
    /// ended (a short locked write only in that case).
    pub async fn current_subscription(
        &self,
        user_id: &str,
        now: DateTime<Utc>,
    ) -> AppResult<(User, Subscription, Arc<CatalogSnapshot>)> {
        let mut conn = self.store.pool().acquire().await?;
        let catalog = self.catalog.get(&mut conn).await?;
        let user = users::user_by_id(&mut conn, user_id)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("no user with id `{user_id}`")))?;
        let sub = users::subscription(&mut conn, user_id)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("no subscription for user `{user_id}`")))?;
        drop(conn);
        if now < sub.period_end {
            return Ok((user, sub, catalog));
        }
        let mut tx = self.store.begin().await?;
        let sub = lock_current(&mut tx, &catalog, user_id, now)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("no user with id `{user_id}`")))?;
        tx.commit().await?;
        Ok((user, sub, catalog))
    }

    /// The current period's usage.
    pub async fn period_view(&self, user_id: &str, now: DateTime<Utc>) -> AppResult<PeriodView> {
        let (user, subscription, catalog) = self.current_subscription(user_id, now).await?;
        let period = usage_period(subscription.anchor_at, subscription.period_start);
        let mut conn = self.store.pool().acquire().await?;
        let by_provider = usage::period_rollups(&mut conn, user_id, period.start, false).await?;
        let mut u = Usage::default();
        for r in &by_provider {
            if let Ok(p) = Provider::parse(&r.provider) {
                u.add(&p, r.usage());
            }
        }
        let plan = subscription.plan_id.and_then(|id| catalog.plan(id)).cloned();
        Ok(PeriodView {
            user,
            subscription,
            plan,
            period,
            by_provider,
            usage: u,
            catalog,
        })
    }

    /// Usage of the last `months` periods, oldest first, zeros for empty ones.
    pub async fn trends(&self, user_id: &str, months: usize, now: DateTime<Utc>) -> AppResult<Trends> {
        let (_, sub, _) = self.current_subscription(user_id, now).await?;
        let periods = recent_periods(sub.anchor_at, now, months);
        let (Some(first), Some(last)) = (periods.first(), periods.last()) else {
            return Ok(Trends::default());
        };
        let mut conn = self.store.pool().acquire().await?;
        let rows = usage::rollups_by_label(&mut conn, user_id, &first.label(), &last.label()).await?;
        let mut by_label = PeriodUsage::new();
        for r in rows {
            let cell = by_label
                .entry(r.billing_period.clone())
                .or_default()
                .entry(r.provider.clone())
                .or_default();
            cell.add(r.usage());
        }
        Ok(trends(&periods, &by_label))
    }
}
