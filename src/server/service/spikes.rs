//! Spend spikes: a user whose spending in the last hour is more than
//! `TALLY_SPIKE_MULTIPLE` times their hourly average over the seven days
//! before gets an alert, at most one a day (the store's dedupe key holds
//! that across nodes). Judged after a recorded batch, off the request's
//! path, at most every [`CHECK_EVERY`] per user in a process. Store errors
//! are returned as they are (not as API errors, which log themselves): a
//! command that closed its store meanwhile is not a fault.

use crate::domain::identity::UserId;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::Engine;
use super::webhooks::announce_alerts;
use crate::domain::alerts::{SPIKE_BASELINE_HOURS, spike_alert, spike_ratio};
use crate::domain::money::Nanos;
use crate::domain::period::usage_period;
use crate::domain::webhooks::EventType;
use crate::server::store::StoreResult;
use crate::server::store::live::Kind;
use crate::server::store::view::Affects;
use crate::server::store::{alerts, events, users, webhooks};

/// How often one process judges one user.
pub const CHECK_EVERY: Duration = Duration::from_secs(60);

impl Engine {
    /// Judges `user_id`'s last hour before `now` and raises the day's spike
    /// alert if it is one. Whether an alert was raised now.
    pub async fn check_spike(&self, user_id: &UserId, now: DateTime<Utc>) -> StoreResult<bool> {
        let multiple = self.config.spike_multiple;
        if multiple == 0 {
            return Ok(false);
        }
        let mut conn = self.store.pool().acquire().await?;
        let Some(sub) = users::subscription(&mut conn, user_id).await? else { return Ok(false) };
        let hour_ago = now - chrono::Duration::hours(1);
        let since = (hour_ago - chrono::Duration::hours(SPIKE_BASELINE_HOURS)).max(sub.started_at);
        let baseline_hours = (hour_ago - since).num_hours();
        let last_hour = events::cost_between(&mut conn, user_id, hour_ago, now).await?;
        if last_hour.0 <= 0 {
            return Ok(false);
        }
        let baseline = events::cost_between(&mut conn, user_id, since, hour_ago).await?;
        drop(conn);
        let Some(ratio) = spike_ratio(last_hour, baseline, baseline_hours, multiple, self.config.spike_floor) else {
            return Ok(false);
        };
        let average = Nanos(baseline.0 / baseline_hours.max(1));
        let alert = spike_alert(user_id, &now.format("%Y-%m-%d").to_string(), last_hour, average, ratio);
        let period = usage_period(sub.anchor(), now);
        let mut tx = self.store.begin().await?;
        tx.affects(Affects::NothingCached);
        let id =
            alerts::insert_alert(&mut tx, Some(user_id), Some((period.start, &period.label())), &alert, now).await?;
        let raised = id.is_some();
        if let Some(id) = id {
            tx.notify(user_id, Kind::Alert);
            announce_alerts(&mut tx, EventType::AlertCreated, [id], now).await?;
            let data = crate::server::views::events::UsageSpike {
                user_id,
                alert_id: id,
                last_hour_cost: last_hour.usd_string(),
                hourly_average: average.usd_string(),
                ratio,
                multiple,
                billing_period: period.label(),
            };
            webhooks::enqueue(&mut tx, EventType::UsageSpike, &data, now).await?;
            tracing::info!(user = user_id.as_str(), last_hour = %last_hour.display(), "spend spike");
        }
        tx.commit().await?;
        Ok(raised)
    }

    /// After a batch: judges the users who spent, in the background, each at
    /// most every [`CHECK_EVERY`] in this process.
    pub(super) fn check_spikes_after(&self, spent: Vec<UserId>, now: DateTime<Utc>) {
        if self.config.spike_multiple == 0 || spent.is_empty() {
            return;
        }
        let due: Vec<UserId> = {
            let Ok(mut last) = self.spike_checks.lock() else { return };
            let t = Instant::now();
            if last.len() > 100_000 {
                last.retain(|_, at| t.duration_since(*at) < CHECK_EVERY);
            }
            spent
                .into_iter()
                .filter(|u| {
                    let due = last.get(u).is_none_or(|at| t.duration_since(*at) >= CHECK_EVERY);
                    if due {
                        last.insert(u.clone(), t);
                    }
                    due
                })
                .collect()
        };
        if due.is_empty() {
            return;
        }
        let engine = self.clone();
        tokio::spawn(async move {
            for u in due {
                if let Err(e) = engine.check_spike(&u, now).await {
                    // A command that recorded and closed its store (`tally
                    // simulate`) leaves nothing to judge with: not a fault.
                    if engine.store.pool().is_closed() {
                        return;
                    }
                    tracing::warn!(user = %u, error = %e, "judging a spend spike failed");
                }
            }
        });
    }
}
