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

use super::Engine;
use super::audit::{self, LifecycleSnapshot, SubscriptionSnapshot, UserSnapshot};
use super::catalog::{CatalogCache, CatalogSnapshot};
use crate::domain::identity::{Email, Role, User, UserId};
use crate::domain::limits::LimitUse;
use crate::domain::money::Nanos;
use crate::domain::period::{Anchor, BillingCycle, Period, add_months, billing_cycle, usage_period};
use crate::domain::plan::{Plan, PlanChange, RenewalType, classify_change, decide_plan_change};
use crate::domain::provider::LimitKey;
use crate::domain::subscription::{BillingRecord, Renewal, Status, Subscription};
use crate::domain::webhooks::EventType;
use crate::server::error::{AppError, AppResult};
use crate::server::store::live::Kind;
use crate::server::store::users;
use crate::server::store::{self, StoreResult, WriteTx, alerts, bills, rollups, webhooks};
use chrono_tz::Tz;
use std::sync::Arc;

/// Renewal payments are not collected by Tally; the host product's payment
/// system settles them.
pub const PAYMENT_STATUS: &str = "pending";
/// A closed period's bill, issued by rollover.
pub const BILL_STATUS: &str = "invoiced";

/// Usage of one period as stored in renewal history.
async fn usage_summary(
    conn: &mut AnyConnection,
    user_id: &str,
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
            calls += r.calls;
            tokens += r.tokens();
            cost = cost + r.cost;
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
            rollups::period_rollups(conn, &sub.user_id, closed.start, false).await?.iter().map(|r| r.cost).sum();
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
            let data = json!({
                "user_id": bill.user_id,
                "billing_period": bill.billing_period,
                "period_start": bill.period_start.to_rfc3339(),
                "period_end": bill.period_end.to_rfc3339(),
                "plan_id": bill.plan_id,
                "plan_name": bill.plan_name,
                "plan_fee": bill.plan_fee.usd_string(),
                "usage_cost": bill.usage_cost.usd_string(),
                "total": bill.total.usd_string(),
                "status": bill.status,
            });
            webhooks::enqueue(conn, EventType::PeriodClosed, data, now).await?;
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
    alerts::resolve_threshold_alerts_before(conn, &sub.user_id, sub.period_start, now).await?;
    users::update_subscription(conn, sub, now).await
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
    alerts::resolve_alerts(tx, &stale, now).await?;
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
    let plan = catalog.plan_of(sub);
    let data = json!({
        "user_id": sub.user_id,
        "change": what,
        "plan_id": sub.plan_id,
        "plan_name": plan.map(|p| p.name.as_str()),
        "billing_cycle": sub.billing_cycle.as_str(),
        "status": sub.status.as_str(),
        "timezone": sub.timezone.name(),
        "period_start": sub.period_start.to_rfc3339(),
        "period_end": sub.period_end.to_rfc3339(),
        "scheduled_plan_id": sub.pending.map(|(id, _)| id),
    });
    webhooks::enqueue(tx, EventType::SubscriptionChanged, data, now).await?;
    Ok(())
}

/// Locks the user and returns their subscription rolled to `now`, inside
/// `tx`, with the pricing catalog as `tx` sees it once the lock is held
/// (read by the lock's own statement). `None` when there is no such user.
pub async fn lock_current(
    tx: &mut WriteTx,
    catalogs: &CatalogCache,
    user_id: &str,
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

/// What creating a user needs.
pub struct NewUser {
    /// The host product's id; generated when `None`.
    pub id: Option<UserId>,
    pub email: Email,
    pub name: String,
    pub role: Role,
    pub password_hash: Option<String>,
    /// The starting plan and cycle; the default plan, monthly, when `None`.
    pub plan: Option<(i64, BillingCycle)>,
    /// The timezone its periods are counted in (`None`: UTC).
    pub timezone: Option<Tz>,
}

impl Engine {
    /// Creates a user with a subscription starting at `now` on the chosen
    /// plan, else the default plan (the cheapest active plan), else no plan.
    pub async fn create_user(&self, new: NewUser, now: DateTime<Utc>) -> AppResult<User> {
        self.create_user_by(new, None, now).await
    }

    /// As [`Engine::create_user`], with an audit entry naming `actor` written
    /// in the same transaction.
    pub async fn create_user_by(&self, new: NewUser, actor: Option<&str>, now: DateTime<Utc>) -> AppResult<User> {
        let email = new.email;
        let id = match new.id {
            Some(id) => id,
            None => UserId::parse(&uuid::Uuid::new_v4().to_string()).expect("a UUID is a valid user id"),
        };
        let mut tx = self.store.begin().await?;
        let catalog = self.catalog.get_in(&mut tx).await?;
        let user = User { id, email, name: new.name.trim().to_string(), role: new.role, created_at: now };
        users::insert_user(&mut tx, &user, new.password_hash.as_deref()).await.map_err(|e| {
            if e.is_unique_violation() {
                AppError::Conflict(format!("a user with id `{}` or email `{}` already exists", user.id, user.email))
            } else {
                e.into()
            }
        })?;
        let (plan, cycle) = match new.plan {
            Some((id, cycle)) => {
                let p = catalog.plan(id).ok_or_else(|| AppError::NotFound(format!("no plan with id {id}")))?;
                if p.archived {
                    return Err(AppError::Invalid(format!(
                        "plan `{}` is archived and takes no new subscribers",
                        p.name
                    )));
                }
                (Some(p), cycle)
            }
            None => (catalog.default_plan(), BillingCycle::Monthly),
        };
        let sub = fresh_subscription(&user.id, plan, cycle, now, 0, new.timezone.unwrap_or(Tz::UTC));
        users::insert_subscription(&mut tx, &sub, now).await?;
        if let Some(p) = plan {
            users::insert_renewal(&mut tx, &new_renewal(&sub, p, None, RenewalType::New, None)).await?;
        }
        if let Some(actor) = actor {
            let after = UserSnapshot::from(&user);
            audit::record(&mut tx, actor, "user.create", ("user", &user.id), audit::NONE, Some(&after), now).await?;
        }
        tx.commit().await?;
        Ok(user)
    }

    /// Changes the user's plan by [`decide_plan_change`]'s rule, in one
    /// transaction with its audit entry; at most
    /// [`MAX_PLAN_CHANGES_PER_DAY`] changes a day per user.
    pub async fn change_plan(
        &self,
        user_id: &str,
        plan_id: i64,
        cycle: BillingCycle,
        actor: &str,
        now: DateTime<Utc>,
    ) -> AppResult<(Subscription, PlanChange)> {
        let mut tx = self.store.begin().await?;
        let Some((mut sub, catalog)) = lock_current(&mut tx, &self.catalog, user_id, now).await? else {
            return Err(AppError::NotFound(format!("no user with id `{user_id}`")));
        };
        let plan = catalog.plan(plan_id).ok_or_else(|| AppError::NotFound(format!("no plan with id {plan_id}")))?;
        if plan.archived && sub.plan_id != Some(plan.id) {
            return Err(AppError::Invalid(format!("plan `{}` is archived and takes no new subscribers", plan.name)));
        }
        if sub.status != Status::Active {
            return Err(AppError::Conflict(format!(
                "the subscription is {}; resume it before changing plan",
                sub.status
            )));
        }
        let since = now - chrono::Duration::days(1);
        let recent = store::keys::count_audit(&mut tx, "subscription.change", ("user", user_id), since).await?;
        if recent >= MAX_PLAN_CHANGES_PER_DAY {
            return Err(AppError::LimitReached {
                message: format!(
                    "at most {MAX_PLAN_CHANGES_PER_DAY} plan changes a day; try again tomorrow or ask an administrator"
                ),
                retry_after_secs: 86_400,
                body: None,
            });
        }
        let before = SubscriptionSnapshot::from(&sub);
        let old_plan = catalog.plan_of(&sub);
        let change = decide_plan_change(
            old_plan.map(|p| (p, sub.billing_cycle)),
            sub.pending,
            (plan, cycle),
            (sub.cycle_start, sub.cycle_end),
            now,
        )
        .map_err(|e| AppError::Conflict(e.to_string()))?;
        match change {
            PlanChange::Upgrade { fee, then } => {
                let kind = if old_plan.is_some() { RenewalType::Upgrade } else { RenewalType::New };
                let usage_before = usage_summary(&mut tx, user_id, sub.anchor(), sub.cycle_start, now).await?;
                sub.plan_id = Some(plan.id);
                sub.pending = then.map(|c| (plan.id, c));
                let accrued = sub
                    .period_fee
                    .unwrap_or_else(|| fee_for(old_plan, sub.billing_cycle, &sub.current_period(), sub.cycle_start));
                sub.period_fee = Some(accrued.checked_add(fee).ok_or(AppError::Internal)?);
                sub.renewal_count += 1;
                let mut renewal = new_renewal(&sub, plan, old_plan.map(|p| (p, &sub)), kind, Some(usage_before));
                renewal.payment_amount = fee;
                renewal.billing_cycle = sub.billing_cycle.as_str().into();
                renewal.created_at = now;
                users::insert_renewal(&mut tx, &renewal).await?;
            }
            PlanChange::Scheduled => sub.pending = Some((plan.id, cycle)),
            PlanChange::CancelScheduled => sub.pending = None,
        }
        users::update_subscription(&mut tx, &sub, now).await?;
        if resolve_stale_alerts(&mut tx, &catalog, &sub, now).await? {
            tx.notify(user_id, Kind::Alert);
        }
        let after = SubscriptionSnapshot::from(&sub);
        audit::record(&mut tx, actor, "subscription.change", ("user", user_id), Some(&before), Some(&after), now)
            .await?;
        let what = match change {
            PlanChange::Upgrade { .. } => "plan.change",
            PlanChange::Scheduled => "plan.change_scheduled",
            PlanChange::CancelScheduled => "plan.change_cancelled",
        };
        announce(&mut tx, &catalog, &sub, what, now).await?;
        tx.commit().await?;
        Ok((sub, change))
    }
}

/// A change of a subscription's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lifecycle {
    /// Ends it now: nothing is admitted from now on, nothing refunded.
    CancelNow,
    /// Ends it when the paid billing cycle ends; until then it runs.
    CancelAtCycleEnd,
    /// Stops admitting usage; cycles that start while paused cost nothing.
    Pause,
    /// Active again (from paused or cancelled, or undoing a scheduled
    /// cancellation); the fee resumes with the next cycle.
    Resume,
}

impl Lifecycle {
    pub fn parse(action: &str, at: Option<&str>) -> Option<Lifecycle> {
        match (action, at) {
            ("cancel", Some("now")) => Some(Lifecycle::CancelNow),
            ("cancel", None | Some("period_end")) => Some(Lifecycle::CancelAtCycleEnd),
            ("pause", None) => Some(Lifecycle::Pause),
            ("resume", None) => Some(Lifecycle::Resume),
            _ => None,
        }
    }
}

impl Engine {
    /// Cancels, pauses or resumes a subscription, with a renewal-history
    /// row and an audit entry in the same transaction.
    pub async fn change_status(
        &self,
        user_id: &str,
        action: Lifecycle,
        actor: &str,
        now: DateTime<Utc>,
    ) -> AppResult<Subscription> {
        let mut tx = self.store.begin().await?;
        let Some((mut sub, catalog)) = lock_current(&mut tx, &self.catalog, user_id, now).await? else {
            return Err(AppError::NotFound(format!("no user with id `{user_id}`")));
        };
        let before = LifecycleSnapshot::from(&sub);
        let (kind, what) = match action {
            Lifecycle::CancelNow if sub.status == Status::Cancelled => {
                return Err(AppError::Conflict("the subscription is already cancelled".into()));
            }
            Lifecycle::CancelNow => {
                sub.status = Status::Cancelled;
                sub.cancel_at = None;
                sub.pending = None;
                (RenewalType::Cancellation, "subscription.cancel")
            }
            Lifecycle::CancelAtCycleEnd if sub.status != Status::Active || sub.cancel_at.is_some() => {
                return Err(AppError::Conflict(format!(
                    "only an active subscription without a scheduled cancellation can be cancelled at the cycle end (it is {}{})",
                    sub.status,
                    if sub.cancel_at.is_some() { ", cancelling at the cycle end" } else { "" }
                )));
            }
            Lifecycle::CancelAtCycleEnd => {
                sub.cancel_at = Some(sub.cycle_end);
                sub.pending = None;
                (RenewalType::Cancellation, "subscription.cancel_at_cycle_end")
            }
            Lifecycle::Pause if sub.status != Status::Active => {
                return Err(AppError::Conflict(format!(
                    "only an active subscription can be paused (it is {})",
                    sub.status
                )));
            }
            Lifecycle::Pause => {
                sub.status = Status::Paused;
                (RenewalType::Pause, "subscription.pause")
            }
            Lifecycle::Resume if sub.status == Status::Active && sub.cancel_at.is_none() => {
                return Err(AppError::Conflict("the subscription is already active".into()));
            }
            Lifecycle::Resume => {
                sub.status = Status::Active;
                sub.cancel_at = None;
                (RenewalType::Resume, "subscription.resume")
            }
        };
        users::update_subscription(&mut tx, &sub, now).await?;
        if let Some(plan) = catalog.plan_of(&sub) {
            let mut r = new_renewal(&sub, plan, None, kind, None);
            r.payment_amount = Nanos::ZERO;
            r.created_at = now;
            users::insert_renewal(&mut tx, &r).await?;
        }
        let after = LifecycleSnapshot::from(&sub);
        audit::record(&mut tx, actor, what, ("user", user_id), Some(&before), Some(&after), now).await?;
        announce(&mut tx, &catalog, &sub, what, now).await?;
        tx.commit().await?;
        Ok(sub)
    }
}

/// What a change did, in a sentence for the person who asked.
pub fn change_message(plan_name: &str, cycle: BillingCycle, change: PlanChange, sub: &Subscription) -> String {
    let when = sub.cycle_end.format("%Y-%m-%d");
    match change {
        PlanChange::Upgrade { fee, then } => {
            let mut m = format!(
                "You are now on {plan_name}; your usage so far this period carries over. {} was added to this period's bill for the rest of the billing cycle.",
                fee.display_plain()
            );
            if then.is_some() {
                m.push_str(&format!(" Your {} billing starts on {when}.", cycle.as_str()));
            }
            m
        }
        PlanChange::Scheduled => format!(
            "Your move to {plan_name} ({}) takes effect when this billing cycle ends on {when}; until then your current plan stays.",
            cycle.as_str()
        ),
        PlanChange::CancelScheduled => "The scheduled plan change is cancelled; your current plan continues.".into(),
    }
}

/// At most this many plan changes per user in any 24 hours, on every door.
pub const MAX_PLAN_CHANGES_PER_DAY: i64 = 5;

fn new_renewal(
    sub: &Subscription,
    plan: &Plan,
    prev: Option<(&Plan, &Subscription)>,
    kind: RenewalType,
    usage_before: Option<serde_json::Value>,
) -> Renewal {
    Renewal {
        id: 0,
        user_id: sub.user_id.clone(),
        plan_id: Some(plan.id),
        plan_name: plan.name.clone(),
        plan_tier: plan.tier.as_str().into(),
        previous_plan_name: prev.map(|(p, _)| p.name.clone()),
        previous_plan_tier: prev.map(|(p, _)| p.tier.as_str().into()),
        previous_period_start: prev.map(|(_, s)| s.cycle_start),
        previous_period_end: prev.map(|(_, s)| s.cycle_end),
        new_period_start: sub.cycle_start,
        new_period_end: sub.cycle_end,
        billing_cycle: sub.billing_cycle.as_str().into(),
        renewal_type: kind.as_str().into(),
        renewal_count: sub.renewal_count,
        usage_before,
        payment_amount: plan.price(sub.billing_cycle),
        payment_status: PAYMENT_STATUS.into(),
        payment_date: None,
        created_at: sub.cycle_start,
    }
}

impl Engine {
    /// What an admin's "assign" does: the timezone first, if one is given
    /// (see [`Engine::set_timezone`]), then the plan and cycle by the
    /// plan-change rule, unless only the timezone changed (`None`).
    pub async fn assign_subscription(
        &self,
        user_id: &str,
        plan_id: i64,
        cycle: BillingCycle,
        tz: Option<Tz>,
        actor: &str,
        now: DateTime<Utc>,
    ) -> AppResult<(Subscription, Option<PlanChange>)> {
        if let Some(tz) = tz {
            let (sub, changed) = self.set_timezone(user_id, tz, actor, now).await?;
            if changed && sub.plan_id == Some(plan_id) && sub.billing_cycle == cycle && sub.pending.is_none() {
                return Ok((sub, None));
            }
        }
        let (sub, change) = self.change_plan(user_id, plan_id, cycle, actor, now).await?;
        Ok((sub, Some(change)))
    }

    /// Counts `user_id`'s periods in `tz`: from local midnight of the day
    /// the subscription started there, the current period re-counted on that
    /// grid. Allowed until the first event is recorded or the first bill
    /// issued; after that, periods already counted (their labels on events,
    /// rollups and bills) would no longer match, so it is refused.
    pub async fn set_timezone(
        &self,
        user_id: &str,
        tz: Tz,
        actor: &str,
        now: DateTime<Utc>,
    ) -> AppResult<(Subscription, bool)> {
        let mut tx = self.store.begin().await?;
        tx.affects(crate::server::store::view::Affects::Users(vec![user_id.to_string()]));
        let (mut sub, catalog) = lock_current(&mut tx, &self.catalog, user_id, now)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("no user with id `{user_id}`")))?;
        if sub.timezone == tz {
            tx.commit().await?;
            return Ok((sub, false));
        }
        if users::has_billing_history(&mut tx, user_id).await? {
            return Err(AppError::Conflict(format!(
                "`{user_id}` already has recorded usage or a bill counted in {}: a subscription's timezone can only be \
                 set before its first event or bill",
                sub.timezone.name()
            )));
        }
        let before = sub.clone();
        let anchor = Anchor::local_midnight(sub.started_at, tz);
        let first = usage_period(anchor, sub.started_at);
        let cycle = cycle_from(anchor, &first, sub.billing_cycle);
        users::move_holds(&mut tx, user_id, sub.period_start, first.start).await?;
        sub.anchor_at = anchor.at;
        sub.timezone = tz;
        (sub.period_start, sub.period_end) = (first.start, first.end);
        (sub.cycle_start, sub.cycle_end) = (cycle.start, cycle.end);
        users::update_subscription(&mut tx, &sub, now).await?;
        // The re-counted first period may already have ended.
        ensure_current(&mut tx, &catalog, &mut sub, now).await?;
        audit::record(
            &mut tx,
            actor,
            "subscription.timezone",
            ("user", user_id),
            Some(&json!({"timezone": before.timezone.name(), "period_start": before.period_start.to_rfc3339()})),
            Some(&json!({"timezone": tz.name(), "period_start": sub.period_start.to_rfc3339()})),
            now,
        )
        .await?;
        announce(&mut tx, &catalog, &sub, "subscription.timezone", now).await?;
        tx.commit().await?;
        Ok((sub, true))
    }
}
