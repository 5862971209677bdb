//! Users' subscriptions: creation, plan changes, and period rollover.
//!
//! Rollover needs no background job: every read or write of a user's usage
//! goes through [`ensure_current`] first, which closes any periods that ended
//! (a billing record each, a renewal row at each cycle end, where a scheduled
//! change takes effect) and moves the subscription to the period containing
//! `now`.
//!
//! Plan changes follow [`decide_plan_change`]'s rule on every door: they
//! never restart the usage period, so usage cannot be reset by changing
//! plan, and a period's `YYYY-MM` label names exactly one period.

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::AnyConnection;

use super::catalog::{CatalogCache, CatalogSnapshot};
use super::webhooks::announce_alerts;
use crate::domain::identity::UserId;
use crate::domain::limits::LimitUse;
use crate::domain::money::Nanos;
use crate::domain::period::{Anchor, BillingCycle, Period, add_months, billing_cycle, usage_period};
use crate::domain::plan::{Plan, RenewalType, classify_change};
use crate::domain::provider::LimitKey;
use crate::domain::subscription::{BillingRecord, Renewal, Status, Subscription};
use crate::domain::webhooks::EventType;
use crate::server::store::live::Kind;
use crate::server::store::users;
use crate::server::store::{StoreResult, WriteTx, alerts, bills, rollups, webhooks};
use chrono_tz::Tz;
use std::sync::Arc;

mod changes;

pub use changes::*;

/// Renewal payments are not collected by Tally; the host product's payment
/// system settles them.
pub const PAYMENT_STATUS: &str = "pending";

/// A closed period's bill, issued by rollover.
pub const BILL_STATUS: &str = "invoiced";

/// Usage of one period as stored in renewal history.
async fn usage_summary(
    conn: &mut AnyConnection,
    user_id: &UserId,
    anchor: Anchor,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> StoreResult<serde_json::Value> {
    let mut calls = 0i64;
    let mut tokens = 0i64;
    let mut cost = Nanos::ZERO;
    // The cycle may span several usage periods (yearly).
    let mut p = usage_period(anchor, start);
    while p.start < end {
        for r in rollups::period_rollups(conn, user_id, p.start, false).await? {
            calls += r.counts.calls;
            tokens += r.counts.tokens();
            cost = cost + r.counts.cost;
        }
        p = usage_period(anchor, p.end);
    }
    Ok(
        json!({"total_calls": calls, "total_tokens": tokens, "total_cost": cost.as_f64_usd(), "total_cost_usd": cost.usd_string()}),
    )
}

/// Plan fee carried by a usage period: the cycle price on the period that
/// opens a cycle, nothing on the others of a yearly cycle.
fn fee_for(plan: Option<&Plan>, cycle: BillingCycle, period: &Period, cycle_start: DateTime<Utc>) -> Nanos {
    match plan {
        Some(p) if period.start == cycle_start => p.price(cycle),
        _ => Nanos::ZERO,
    }
}

/// The plan fee the open usage period of `sub` carries: what its bill will
/// say when it closes.
pub fn open_period_fee(catalog: &CatalogSnapshot, sub: &Subscription) -> Nanos {
    let plan = catalog.plan_of(sub);
    sub.period_fee.unwrap_or_else(|| fee_for(plan, sub.billing_cycle, &sub.current_period(), sub.cycle_start))
}

/// A billing cycle of `cycle` opening with usage period `first`: it ends on
/// the anchor's grid, so cycles and usage periods always line up.
fn cycle_from(anchor: Anchor, first: &Period, cycle: BillingCycle) -> Period {
    let end = add_months(anchor, first.index + i64::from(cycle.months()));
    Period { end, ..*first }
}

/// Closes every period that ended before `now` and moves `sub` to the
/// current one. The caller holds the user's lock.
pub async fn ensure_current(
    conn: &mut AnyConnection,
    catalog: &CatalogSnapshot,
    sub: &mut Subscription,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    if now < sub.period_end {
        return Ok(());
    }
    let mut plan = catalog.plan_of(sub);
    while now >= sub.period_end {
        let closed = sub.current_period();
        let usage_cost: Nanos =
            rollups::period_rollups(conn, &sub.user_id, closed.start, false).await?.iter().map(|r| r.counts.cost).sum();
        let fee = open_period_fee(catalog, sub);
        let bill = BillingRecord {
            user_id: sub.user_id.clone(),
            period_start: closed.start,
            period_end: closed.end,
            billing_period: closed.label(),
            plan_id: sub.plan_id,
            plan_name: plan.map_or_else(|| crate::domain::plan::NO_PLAN.into(), |p| p.name.clone()),
            plan_fee: fee,
            usage_cost,
            total: fee + usage_cost,
            status: BILL_STATUS.into(),
        };
        if bills::insert_billing_record(conn, &bill, now).await? {
            let data = crate::server::views::events::PeriodClosed::from(&bill);
            webhooks::enqueue(conn, EventType::PeriodClosed, &data, now).await?;
        }
        let next = usage_period(sub.anchor(), closed.end);
        // A cancellation waiting for the end of the paid cycle takes effect.
        if sub.cancel_at.is_some_and(|at| next.start >= at) {
            sub.status = Status::Cancelled;
            sub.cancel_at = None;
            sub.pending = None;
        }
        let active = sub.status == Status::Active;
        if next.start >= sub.cycle_end && !active {
            // Paused or cancelled: the cycle moves on, nothing is charged.
            let new_cycle = cycle_from(sub.anchor(), &next, sub.billing_cycle);
            sub.cycle_start = new_cycle.start;
            sub.cycle_end = new_cycle.end;
        } else if next.start >= sub.cycle_end {
            // The cycle ended: renew, on the scheduled terms if a change waits.
            let previous = plan;
            let (next_plan, next_cycle) = match sub.pending.take() {
                Some((id, cycle)) => (catalog.plan(id).or(plan), cycle),
                None => (plan, sub.billing_cycle),
            };
            let kind = match (previous, next_plan) {
                (Some(a), Some(b)) if a.id != b.id || sub.billing_cycle != next_cycle => {
                    classify_change(Some((a, sub.billing_cycle)), (b, next_cycle))
                }
                _ => RenewalType::Renewal,
            };
            let new_cycle = cycle_from(sub.anchor(), &next, next_cycle);
            let usage_before = usage_summary(conn, &sub.user_id, sub.anchor(), sub.cycle_start, sub.cycle_end).await?;
            sub.renewal_count += 1;
            if let Some(p) = next_plan {
                users::insert_renewal(
                    conn,
                    &Renewal {
                        id: 0,
                        user_id: sub.user_id.clone(),
                        plan_id: Some(p.id),
                        plan_name: p.name.clone(),
                        plan_tier: p.tier.as_str().into(),
                        previous_plan_name: previous.map(|x| x.name.clone()),
                        previous_plan_tier: previous.map(|x| x.tier.as_str().into()),
                        previous_period_start: Some(sub.cycle_start),
                        previous_period_end: Some(sub.cycle_end),
                        new_period_start: new_cycle.start,
                        new_period_end: new_cycle.end,
                        billing_cycle: next_cycle.as_str().into(),
                        renewal_type: kind.as_str().into(),
                        renewal_count: sub.renewal_count,
                        usage_before: Some(usage_before),
                        payment_amount: p.price(next_cycle),
                        payment_status: PAYMENT_STATUS.into(),
                        payment_date: None,
                        created_at: new_cycle.start,
                    },
                )
                .await?;
            }
            sub.plan_id = next_plan.map(|p| p.id);
            sub.billing_cycle = next_cycle;
            sub.cycle_start = new_cycle.start;
            sub.cycle_end = new_cycle.end;
            plan = next_plan;
        }
        sub.period_start = next.start;
        sub.period_end = next.end;
        sub.period_fee =
            Some(if active { fee_for(plan, sub.billing_cycle, &next, sub.cycle_start) } else { Nanos::ZERO });
    }
    // Usage starts again from zero: the old periods' alerts stop applying.
    let resolved = alerts::resolve_threshold_alerts_before(conn, &sub.user_id, sub.period_start, now).await?;
    announce_alerts(conn, EventType::AlertResolved, resolved, now).await?;
    users::update_subscription(conn, sub, now).await?;
    super::wallet::grant_included(conn, plan, sub, now).await
}

/// Resolves the threshold alerts of the open period that the user's usage
/// no longer reaches under the limits now in force (after a plan change).
/// Whether any was resolved.
pub async fn resolve_stale_alerts(
    tx: &mut WriteTx,
    catalog: &CatalogSnapshot,
    sub: &Subscription,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let period = sub.current_period();
    let open = alerts::open_threshold_alerts(tx, &sub.user_id, period.start).await?;
    if open.is_empty() {
        return Ok(false);
    }
    let limits = catalog.limits_of(sub);
    let usage = rollups::period_usage(tx, &sub.user_id, period.start).await?;
    let stale: Vec<i64> = open
        .into_iter()
        .filter(|(_, key, threshold)| match LimitKey::parse(key) {
            Some(key) => match limits.get(&key) {
                Some(limit) => !LimitUse { used: usage.measure(&key), key, limit }.reached(*threshold),
                None => true,
            },
            // A limit this version does not know: leave it as it is.
            None => false,
        })
        .map(|(id, ..)| id)
        .collect();
    let resolved = alerts::resolve_alerts(tx, &stale, now).await?;
    announce_alerts(tx, EventType::AlertResolved, resolved, now).await?;
    Ok(!stale.is_empty())
}

/// Says, once `tx` commits, that `sub` changed (`what`: `plan.change`,
/// `subscription.cancel`...): to the user's live pages and to webhooks
/// (`subscription.changed`).
async fn announce(
    tx: &mut WriteTx,
    catalog: &CatalogSnapshot,
    sub: &Subscription,
    what: &str,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    tx.notify(&sub.user_id, Kind::Subscription);
    let data = crate::server::views::events::SubscriptionChanged::of(sub, catalog.plan_of(sub), what);
    webhooks::enqueue(tx, EventType::SubscriptionChanged, &data, now).await?;
    Ok(())
}

/// Locks the user and returns their subscription rolled to `now`, inside
/// `tx`, with the pricing catalog as `tx` sees it once the lock is held
/// (read by the lock's own statement). `None` when there is no such user.
pub async fn lock_current(
    tx: &mut WriteTx,
    catalogs: &CatalogCache,
    user_id: &UserId,
    now: DateTime<Utc>,
) -> StoreResult<Option<(Subscription, Arc<CatalogSnapshot>)>> {
    let Some((mut sub, revision)) = users::lock_subscription(tx, user_id).await? else {
        return Ok(None);
    };
    let catalog = catalogs.at_revision(tx, revision).await?;
    ensure_current(tx, &catalog, &mut sub, now).await?;
    Ok(Some((sub, catalog)))
}

/// A subscription starting at `now` on `plan`, counted in `tz` from local
/// midnight of today there (usage before `now` still belongs to no bill).
fn fresh_subscription(
    user_id: &UserId,
    plan: Option<&Plan>,
    cycle: BillingCycle,
    now: DateTime<Utc>,
    renewal_count: i64,
    tz: Tz,
) -> Subscription {
    let anchor = Anchor::local_midnight(now, tz);
    let period = usage_period(anchor, now);
    let cyc = billing_cycle(anchor, cycle, now);
    Subscription {
        user_id: user_id.clone(),
        plan_id: plan.map(|p| p.id),
        billing_cycle: cycle,
        status: Status::Active,
        anchor_at: anchor.at,
        period_start: period.start,
        period_end: period.end,
        cycle_start: cyc.start,
        cycle_end: cyc.end,
        renewal_count,
        started_at: now,
        pending: None,
        period_fee: Some(plan.map_or(Nanos::ZERO, |p| p.price(cycle))),
        cancel_at: None,
        timezone: tz,
    }
}
