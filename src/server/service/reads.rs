//! Reading a user's usage: current period, trends, history. Everything here
//! reads rollups (one row per user, period, provider and model), never the
//! raw events, so it stays fast at tens of millions of events.

use crate::domain::identity::UserId;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::Engine;
use super::catalog::CatalogSnapshot;
use super::subscriptions::lock_current;
use crate::domain::alerts::Alert;
use crate::domain::identity::User;
use crate::domain::limits::{Counters, LimitUse, Limits, RollupSum, Usage, UsageStatus, evaluate, overall_status};
use crate::domain::money::Nanos;
use crate::domain::period::{Period, period_for_label, recent_periods};
use crate::domain::plan::{NO_PLAN, Plan};
use crate::domain::projection::{PeriodUsage, Projection, Trends, project, trends};
use crate::domain::provider::Provider;
use crate::domain::subscription::BillingRecord;
use crate::domain::subscription::{Renewal, Subscription};
use crate::domain::usage_log::{LogEntry, LogFilter, LogStart};
use crate::server::error::{AppError, AppResult};
use crate::server::store::rollups;
use crate::server::store::users;
use crate::server::store::{alerts, bills, events};

impl Engine {
    /// The user's subscription as of `now`, rolling periods over if one
    /// ended (a short locked write only in that case).
    pub async fn current_subscription(
        &self,
        user_id: &UserId,
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
        tx.affects(crate::server::store::view::Affects::Users(vec![user_id.to_string()]));
        let (sub, catalog) = lock_current(&mut tx, &self.catalog, user_id, now)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("no user with id `{user_id}`")))?;
        tx.commit().await?;
        Ok((user, sub, catalog))
    }

    /// The current period's usage.
    pub async fn period_view(&self, user_id: &UserId, now: DateTime<Utc>) -> AppResult<Snapshot> {
        self.snapshot(user_id, None, now).await
    }

    /// Usage of the last `months` periods, oldest first, zeros for empty ones.
    pub async fn trends(&self, user_id: &UserId, months: usize, now: DateTime<Utc>) -> AppResult<Trends> {
        let (_, sub, _) = self.current_subscription(user_id, now).await?;
        let periods = recent_periods(sub.anchor(), now, months);
        let (Some(first), Some(last)) = (periods.first(), periods.last()) else {
            return Ok(Trends::default());
        };
        let mut conn = self.store.pool().acquire().await?;
        let rows = rollups::rollups_by_period(&mut conn, user_id, first.start, last.start).await?;
        let mut by_period = PeriodUsage::new();
        for (start, r) in rows {
            by_period.entry(start).or_default().entry(r.provider.clone()).or_default().add(r.counts.usage());
        }
        Ok(trends(&periods, &by_period))
    }
}

/// Usage of one billing period (the current one by default), with what it
/// is measured against.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub user: User,
    pub subscription: Subscription,
    pub plan: Option<Plan>,
    pub label: String,
    pub period: Period,
    /// Per provider, sorted by provider.
    pub by_provider: Vec<RollupSum>,
    /// Alerts raised in this period, unread first.
    pub alerts: Vec<Alert>,
    pub usage: Usage,
    pub catalog: Arc<CatalogSnapshot>,
}

impl Snapshot {
    /// Every provider summed.
    pub fn total(&self) -> RollupSum {
        let counts = self.by_provider.iter().fold(Counters::default(), |t, r| t.saturating_add(&r.counts));
        RollupSum { billing_period: self.label.clone(), counts, ..RollupSum::default() }
    }

    pub fn total_cost(&self) -> Nanos {
        self.by_provider.iter().map(|r| r.counts.cost).sum()
    }

    pub fn total_calls(&self) -> i64 {
        self.by_provider.iter().map(|r| r.counts.calls).sum()
    }

    pub fn total_tokens(&self) -> i64 {
        self.by_provider.iter().map(|r| r.counts.tokens()).sum()
    }

    /// The plan's limits; none (all unlimited) without a plan.
    pub fn limits(&self) -> Limits {
        self.plan.as_ref().map(|p| p.limits.clone()).unwrap_or_default()
    }

    /// Every limit of the plan with its use.
    pub fn limit_uses(&self) -> Vec<LimitUse> {
        evaluate(&self.limits(), &self.usage)
    }

    pub fn plan_name(&self) -> &str {
        self.plan.as_ref().map_or(NO_PLAN, |p| p.name.as_str())
    }

    /// The period's month-end cost at its run-rate, against the cost cap.
    pub fn projection(&self, now: DateTime<Utc>) -> Projection {
        project(&self.period, now, self.total_cost(), self.limits().cost_cap())
    }
}

/// Everything a billing dashboard shows of one user, read together: the
/// current period, its limits and projection, the cost by model, trends and
/// alerts. The REST dashboard and the web dashboard both render this.
#[derive(Clone, Debug)]
pub struct Dashboard {
    pub current: Snapshot,
    pub limits: Vec<LimitUse>,
    pub status: UsageStatus,
    pub projection: Projection,
    /// The current period per provider and model.
    pub by_model: Vec<RollupSum>,
    pub trends: Trends,
    /// Every alert of the user, unread first, newest first.
    pub alerts: Vec<Alert>,
    pub unread_alerts: i64,
}

impl Engine {
    /// The dashboard of `user_id` with `months` of trends.
    pub async fn dashboard(&self, user_id: &UserId, months: usize, now: DateTime<Utc>) -> AppResult<Dashboard> {
        let current = self.snapshot(user_id, None, now).await?;
        let limits = current.limit_uses();
        let by_model = self.period_models(user_id, current.period.start).await?;
        let trends = self.trends(user_id, months, now).await?;
        let (alerts, unread_alerts) = self.alerts(user_id, false).await?;
        Ok(Dashboard {
            status: overall_status(&limits),
            projection: current.projection(now),
            limits,
            by_model,
            trends,
            alerts,
            unread_alerts,
            current,
        })
    }
}

impl Engine {
    /// The period of `subscription` labelled `label` (`YYYY-MM`), or its
    /// current one without a label.
    pub fn labelled_period(subscription: &Subscription, label: Option<&str>) -> AppResult<Period> {
        match label {
            Some(l) => period_for_label(subscription.anchor(), l)
                .ok_or_else(|| AppError::BadRequest(format!("billing_period `{l}` is not YYYY-MM"))),
            None => Ok(subscription.current_period()),
        }
    }

    pub async fn snapshot(&self, user_id: &UserId, label: Option<&str>, now: DateTime<Utc>) -> AppResult<Snapshot> {
        let (user, subscription, catalog) = self.current_subscription(user_id, now).await?;
        let period = Engine::labelled_period(&subscription, label)?;
        let label = period.label();
        let mut conn = self.store.pool().acquire().await?;
        let by_provider = rollups::period_rollups(&mut conn, user_id, period.start, false).await?;
        let alerts: Vec<Alert> = alerts::alerts(&mut conn, Some(user_id), false, 500)
            .await?
            .into_iter()
            .filter(|a| a.billing_period.as_deref() == Some(label.as_str()))
            .collect();
        let mut u = Usage::default();
        for r in &by_provider {
            if let Ok(p) = Provider::parse(&r.provider) {
                u.add(&p, r.counts.usage());
            }
        }
        let plan = catalog.plan_of(&subscription).cloned();
        Ok(Snapshot { user, subscription, plan, label, period, by_provider, alerts, usage: u, catalog })
    }

    /// A user's alerts, unread first, and the unread count.
    pub async fn alerts(&self, user_id: &UserId, unread_only: bool) -> AppResult<(Vec<Alert>, i64)> {
        let mut conn = self.store.pool().acquire().await?;
        if users::user_by_id(&mut conn, user_id).await?.is_none() {
            return Err(AppError::NotFound(format!("no user with id `{user_id}`")));
        }
        let list = alerts::alerts(&mut conn, Some(user_id), unread_only, 500).await?;
        let unread = alerts::unread_alert_count(&mut conn, user_id).await?;
        Ok((list, unread))
    }

    /// Marks an alert read once `allowed` accepts its owner (`None`: an
    /// admin alert). A missing alert is 404 before anyone is asked.
    pub async fn mark_alert_read(
        &self,
        alert_id: i64,
        now: DateTime<Utc>,
        allowed: impl FnOnce(Option<&str>) -> AppResult<()>,
    ) -> AppResult<()> {
        let mut tx = self.store.begin().await?;
        tx.affects(crate::server::store::view::Affects::NothingCached);
        let owner = alerts::alert_owner(&mut tx, alert_id)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("no alert with id {alert_id}")))?;
        allowed(owner.as_deref())?;
        if alerts::mark_alert_read(&mut tx, alert_id, now).await? {
            if let Some(user) = &owner {
                tx.notify(user, crate::server::store::live::Kind::Alert);
            }
            tx.commit().await?;
            Ok(())
        } else {
            Err(AppError::NotFound(format!("no alert with id {alert_id}")))
        }
    }

    pub async fn mark_all_alerts_read(&self, user_id: &UserId, now: DateTime<Utc>) -> AppResult<u64> {
        let mut tx = self.store.begin().await?;
        tx.affects(crate::server::store::view::Affects::NothingCached);
        let marked = alerts::mark_all_alerts_read(&mut tx, user_id, now).await?;
        if marked > 0 {
            tx.notify(user_id, crate::server::store::live::Kind::Alert);
        }
        tx.commit().await?;
        Ok(marked)
    }

    /// A page of the usage log and how many events match in all.
    pub async fn usage_log(
        &self,
        user_id: &UserId,
        filter: &LogFilter,
        limit: i64,
        start: LogStart,
    ) -> AppResult<(Vec<LogEntry>, i64)> {
        let start = match start {
            LogStart::Offset(o) => LogStart::Offset(o.clamp(0, 1_000_000_000)),
            before => before,
        };
        let mut conn = self.store.pool().acquire().await?;
        // A page of up to 1,000 and the row after it.
        let rows = events::usage_log(&mut conn, user_id, filter, limit.clamp(1, 1001), start).await?;
        let total = events::usage_log_count(&mut conn, user_id, filter).await?;
        Ok((rows, total))
    }

    /// One of the few turns for bulk work (see [`Engine::bulk_reads`]): an
    /// export takes one for each page after its first, to read and write
    /// it, and gives it back before the page goes out.
    pub async fn bulk_turn(&self) -> AppResult<tokio::sync::OwnedSemaphorePermit> {
        self.bulk_reads.clone().acquire_owned().await.map_err(|_| AppError::Internal)
    }

    /// A page of the usage log without the count (for streaming exports).
    pub async fn usage_log_rows(
        &self,
        user_id: &UserId,
        filter: &LogFilter,
        limit: i64,
        start: LogStart,
    ) -> AppResult<Vec<LogEntry>> {
        let mut conn = self.store.pool().acquire().await?;
        Ok(events::usage_log(&mut conn, user_id, filter, limit.clamp(1, 1000), start).await?)
    }

    /// The renewal history; `plan_changes_only` for family A's client.
    pub async fn renewals(
        &self,
        user_id: &UserId,
        limit: i64,
        offset: i64,
        plan_changes_only: bool,
    ) -> AppResult<(Vec<Renewal>, i64)> {
        let mut conn = self.store.pool().acquire().await?;
        if users::user_by_id(&mut conn, user_id).await?.is_none() {
            return Err(AppError::NotFound(format!("no user with id `{user_id}`")));
        }
        Ok(users::renewals(&mut conn, user_id, limit.clamp(1, 1000), offset.clamp(0, 1_000_000_000), plan_changes_only)
            .await?)
    }

    pub async fn billing_history(&self, user_id: &UserId, now: DateTime<Utc>) -> AppResult<Vec<BillingRecord>> {
        self.current_subscription(user_id, now).await?;
        let mut conn = self.store.pool().acquire().await?;
        Ok(bills::billing_records(&mut conn, user_id).await?)
    }

    /// The catalog as of now (cached).
    pub async fn catalog_snapshot(&self) -> AppResult<Arc<CatalogSnapshot>> {
        let mut conn = self.store.pool().acquire().await?;
        Ok(self.catalog.get(&mut conn).await?)
    }
}

impl Engine {
    /// A period's usage per provider and model (for the cost drill-down).
    pub async fn period_models(&self, user_id: &UserId, period_start: DateTime<Utc>) -> AppResult<Vec<RollupSum>> {
        let mut conn = self.store.pool().acquire().await?;
        Ok(rollups::period_rollups(&mut conn, user_id, period_start, true).await?)
    }
}

/// The store's connection pool, for `/metrics`.
#[derive(Clone, Copy, Debug)]
pub struct PoolStats {
    pub size: u64,
    pub idle: u64,
    pub max: u64,
}

impl Engine {
    /// The connection pool's size, idle connections and limit.
    pub fn pool_stats(&self) -> PoolStats {
        let pool = self.store.pool();
        PoolStats {
            size: pool.size() as u64,
            idle: pool.num_idle() as u64,
            max: pool.options().get_max_connections() as u64,
        }
    }

    /// Committed changes as they happen, for live streams (see
    /// [`crate::server::store::live`]).
    pub fn live(&self) -> &crate::server::store::live::LiveHub {
        self.store.live()
    }
}
