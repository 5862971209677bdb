//! Changing a subscription: creating users on a plan, plan changes (now
//! or at the cycle's end), cancel, pause and resume, and assignment by an
//! administrator.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::*;
use crate::domain::identity::{Email, Role, User, UserId};
use crate::domain::money::Nanos;
use crate::domain::period::{Anchor, BillingCycle, usage_period};
use crate::domain::plan::{Plan, PlanChange, RenewalType, decide_plan_change};
use crate::domain::subscription::{Renewal, Status, Subscription};
use crate::server::error::{AppError, AppResult};
use crate::server::service::Engine;
use crate::server::service::audit::{self, LifecycleSnapshot, SubscriptionSnapshot};
use crate::server::store::live::Kind;
use crate::server::store::users;
use crate::server::store::{self};
use crate::server::views::admin::UserView;
use chrono_tz::Tz;

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
        crate::server::service::wallet::grant_included(&mut tx, plan, &sub, now).await?;
        if let Some(p) = plan {
            users::insert_renewal(&mut tx, &new_renewal(&sub, p, None, RenewalType::New, None)).await?;
        }
        if let Some(actor) = actor {
            let after = UserView::from(&user);
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
        user_id: &UserId,
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
        if matches!(change, PlanChange::Upgrade { .. }) {
            crate::server::service::wallet::grant_included(&mut tx, Some(plan), &sub, now).await?;
        }
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
        user_id: &UserId,
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
        user_id: &UserId,
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
        user_id: &UserId,
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
