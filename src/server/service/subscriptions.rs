//! Users' subscriptions: creation, plan changes, and period rollover.
//!
//! Rollover needs no background job: every read or write of a user's usage
//! goes through [`ensure_current`] first, which closes any periods that ended
//! (a billing record each, a renewal row at each cycle end) and moves the
//! subscription to the period containing `now`.

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::{Any, AnyConnection, Transaction};

use super::Engine;
use super::catalog::CatalogSnapshot;
use crate::domain::money::Nanos;
use crate::domain::period::{BillingCycle, Period, billing_cycle, usage_period};
use crate::domain::plan::{Plan, RenewalType, classify_change};
use crate::server::error::{AppError, AppResult};
use crate::server::store::users::{self, Renewal, Role, Subscription, User};
use crate::server::store::{self, StoreResult, usage};

/// Renewal payments are not collected by Tally; the host product's payment
/// system settles them.
pub const PAYMENT_STATUS: &str = "pending";
/// A closed period's bill, issued by rollover.
pub const BILL_STATUS: &str = "invoiced";

fn period_of(sub: &Subscription) -> Period {
    usage_period(sub.anchor_at, sub.period_start)
}

/// Usage of one period as stored in renewal history.
async fn usage_summary(
    conn: &mut AnyConnection,
    user_id: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> StoreResult<serde_json::Value> {
    let mut calls = 0i64;
    let mut tokens = 0i64;
    let mut cost = Nanos::ZERO;
    // The cycle may span several usage periods (yearly).
    let mut p = usage_period(start, start);
    while p.start < end {
        for r in usage::period_rollups(conn, user_id, p.start, false).await? {
            calls += r.calls;
            tokens += r.tokens();
            cost = cost + r.cost;
        }
        p = usage_period(start, p.end);
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
    let plan = sub.plan_id.and_then(|id| catalog.plan(id));
    while now >= sub.period_end {
        let closed = period_of(sub);
        let usage_cost: Nanos =
            usage::period_rollups(conn, &sub.user_id, closed.start, false).await?.iter().map(|r| r.cost).sum();
        let fee = fee_for(plan, sub.billing_cycle, &closed, sub.cycle_start);
        usage::insert_billing_record(
            conn,
            &usage::BillingRecord {
                user_id: sub.user_id.clone(),
                period_start: closed.start,
                period_end: closed.end,
                billing_period: closed.label(),
                plan_id: sub.plan_id,
                plan_name: plan.map(|p| p.name.clone()).unwrap_or_else(|| "No plan".into()),
                plan_fee: fee,
                usage_cost,
                total: fee + usage_cost,
                status: BILL_STATUS.into(),
            },
            now,
        )
        .await?;
        let next = usage_period(sub.anchor_at, closed.end);
        if next.start >= sub.cycle_end {
            // The cycle ended: renew on the same plan.
            let new_cycle = billing_cycle(sub.anchor_at, sub.billing_cycle, next.start);
            let usage_before = usage_summary(conn, &sub.user_id, sub.cycle_start, sub.cycle_end).await?;
            sub.renewal_count += 1;
            if let Some(p) = plan {
                users::insert_renewal(
                    conn,
                    &Renewal {
                        id: 0,
                        user_id: sub.user_id.clone(),
                        plan_id: Some(p.id),
                        plan_name: p.name.clone(),
                        plan_tier: p.tier.as_str().into(),
                        previous_plan_name: Some(p.name.clone()),
                        previous_plan_tier: Some(p.tier.as_str().into()),
                        previous_period_start: Some(sub.cycle_start),
                        previous_period_end: Some(sub.cycle_end),
                        new_period_start: new_cycle.start,
                        new_period_end: new_cycle.end,
                        billing_cycle: sub.billing_cycle.as_str().into(),
                        renewal_type: RenewalType::Renewal.as_str().into(),
                        renewal_count: sub.renewal_count,
                        usage_before: Some(usage_before),
                        payment_amount: p.price(sub.billing_cycle),
                        payment_status: PAYMENT_STATUS.into(),
                        payment_date: None,
                        created_at: new_cycle.start,
                    },
                )
                .await?;
            }
            sub.cycle_start = new_cycle.start;
            sub.cycle_end = new_cycle.end;
        }
        sub.period_start = next.start;
        sub.period_end = next.end;
    }
    users::update_subscription(conn, sub, now).await
}

/// Locks the user and returns their subscription rolled to `now`, inside
/// `tx`. `None` when there is no such user.
pub async fn lock_current(
    tx: &mut Transaction<'static, Any>,
    catalog: &CatalogSnapshot,
    user_id: &str,
    now: DateTime<Utc>,
) -> StoreResult<Option<Subscription>> {
    if !store::lock_user(tx, user_id).await? {
        return Ok(None);
    }
    let Some(mut sub) = users::subscription(tx, user_id).await? else {
        return Ok(None);
    };
    ensure_current(tx, catalog, &mut sub, now).await?;
    Ok(Some(sub))
}

/// A subscription starting at `now` on `plan`.
fn fresh_subscription(
    user_id: &str,
    plan: Option<&Plan>,
    cycle: BillingCycle,
    now: DateTime<Utc>,
    renewal_count: i64,
) -> Subscription {
    let period = usage_period(now, now);
    let cyc = billing_cycle(now, cycle, now);
    Subscription {
        user_id: user_id.into(),
        plan_id: plan.map(|p| p.id),
        billing_cycle: cycle,
        status: "active".into(),
        anchor_at: now,
        period_start: period.start,
        period_end: period.end,
        cycle_start: cyc.start,
        cycle_end: cyc.end,
        renewal_count,
    }
}

/// What creating a user needs.
pub struct NewUser {
    pub id: Option<String>,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub password_hash: Option<String>,
    /// The starting plan and cycle; the default plan, monthly, when `None`.
    pub plan: Option<(i64, BillingCycle)>,
}

impl Engine {
    /// Creates a user with a subscription starting at `now` on the chosen
    /// plan, else the default plan (the cheapest active plan), else no plan.
    pub async fn create_user(&self, new: NewUser, now: DateTime<Utc>) -> AppResult<User> {
        let email = new.email.trim().to_string();
        if !(email.contains('@') && email.len() <= 254 && !email.contains(char::is_whitespace)) {
            return Err(AppError::Invalid(format!("`{email}` is not an email address")));
        }
        let id = match new.id {
            Some(id) => {
                let ok = !id.is_empty()
                    && id.len() <= 128
                    && id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.@:".contains(c));
                if !ok {
                    return Err(AppError::Invalid(
                        "`id` must be 1-128 characters of letters, digits and - _ . @ :".into(),
                    ));
                }
                id
            }
            None => uuid::Uuid::new_v4().to_string(),
        };
        let mut tx = self.store.begin().await?;
        let catalog = self.catalog.get(&mut tx).await?;
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
        let sub = fresh_subscription(&user.id, plan, cycle, now, 0);
        users::insert_subscription(&mut tx, &sub, now).await?;
        if let Some(p) = plan {
            users::insert_renewal(&mut tx, &new_renewal(&sub, p, None, RenewalType::New, None)).await?;
        }
        tx.commit().await?;
        Ok(user)
    }

    /// Puts the user on `plan_id` with `cycle`, starting a new period at once.
    pub async fn assign_plan(
        &self,
        user_id: &str,
        plan_id: i64,
        cycle: BillingCycle,
        now: DateTime<Utc>,
    ) -> AppResult<Subscription> {
        let mut tx = self.store.begin().await?;
        let catalog = self.catalog.get(&mut tx).await?;
        let plan = catalog.plan(plan_id).ok_or_else(|| AppError::NotFound(format!("no plan with id {plan_id}")))?;
        let Some(old) = lock_current(&mut tx, &catalog, user_id, now).await? else {
            return Err(AppError::NotFound(format!("no user with id `{user_id}`")));
        };
        if plan.archived && old.plan_id != Some(plan.id) {
            return Err(AppError::Invalid(format!("plan `{}` is archived and takes no new subscribers", plan.name)));
        }
        let old_plan = old.plan_id.and_then(|id| catalog.plan(id));
        let kind = classify_change(old_plan.map(|p| (p, old.billing_cycle)), (plan, cycle));
        // Close the current period at `now` with what was used so far.
        let current = period_of(&old);
        let used: Nanos =
            usage::period_rollups(&mut tx, user_id, current.start, false).await?.iter().map(|r| r.cost).sum();
        let fee = fee_for(old_plan, old.billing_cycle, &current, old.cycle_start);
        usage::insert_billing_record(
            &mut tx,
            &usage::BillingRecord {
                user_id: user_id.into(),
                period_start: current.start,
                period_end: now,
                billing_period: current.label(),
                plan_id: old.plan_id,
                plan_name: old_plan.map(|p| p.name.clone()).unwrap_or_else(|| "No plan".into()),
                plan_fee: fee,
                usage_cost: used,
                total: fee + used,
                status: BILL_STATUS.into(),
            },
            now,
        )
        .await?;
        let usage_before = usage_summary(&mut tx, user_id, old.cycle_start, now).await?;
        let sub = fresh_subscription(user_id, Some(plan), cycle, now, old.renewal_count + 1);
        users::update_subscription(&mut tx, &sub, now).await?;
        let prev = old_plan.map(|p| (p, &old));
        users::insert_renewal(&mut tx, &new_renewal(&sub, plan, prev, kind, Some(usage_before))).await?;
        tx.commit().await?;
        Ok(sub)
    }
}

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
