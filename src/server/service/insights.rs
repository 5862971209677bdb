//! Insights: cost broken down by provider, model or tag; advice (a cheaper
//! plan, cheaper models, failed calls, cache use); and profitability per
//! customer. Every figure is read from the recorded events, rollups, bills
//! and the catalog, so it reconciles with the usage log and billing history.

use crate::domain::identity::UserId;
use chrono::{DateTime, Utc};

use super::Engine;
use super::subscriptions::open_period_fee;
use crate::domain::insights::{
    PLAN_ADVICE_PERIODS, TrackRecord, Verdict, cheaper_model, judge, recommend_plan, share_tenths,
};
use crate::domain::money::{Nanos, format_count};
use crate::domain::period::parse_month_label;
use crate::domain::provider::display_name;
use crate::domain::tags::BreakdownBy;
use crate::server::error::{AppError, AppResult};
use crate::server::store::insights::{self as reads, Group};
use crate::server::store::{rollups, users};

/// A period's usage grouped one way; the rows sum to `total_cost`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Breakdown {
    pub billing_period: String,
    pub by: BreakdownBy,
    /// Largest cost first; the group without a key (no model, or no such
    /// tag) last.
    pub rows: Vec<Group>,
    pub total_cost: Nanos,
    /// Every tag key the user's events carry (for choosing one).
    pub tag_keys: Vec<String>,
}

/// One piece of advice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tip {
    /// `cheaper_model`, `failed_calls`, `cache` or `plan_fits`.
    pub kind: &'static str,
    pub title: String,
    pub detail: String,
    /// What following it would save (`None`: the tip informs).
    pub estimated_saving: Option<Nanos>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Insights {
    pub recommended_plan: Option<crate::domain::insights::PlanAdvice>,
    pub tips: Vec<Tip>,
    /// The closed periods plan advice looked at, newest first.
    pub periods_considered: Vec<String>,
    /// The period the tips read.
    pub tips_period: String,
    /// Why some advice is missing (not enough data), for the card to say.
    pub missing: Vec<String>,
}

/// Plan fee against provider cost for one user and period.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MarginRow {
    pub user_id: UserId,
    pub billing_period: String,
    pub email: String,
    pub plan_name: String,
    pub plan_fee: Nanos,
    pub provider_cost: Nanos,
    /// The period is still open: the cost so far, the fee it will bill.
    pub open: bool,
}

impl MarginRow {
    pub fn margin(&self) -> Nanos {
        Nanos(self.plan_fee.0 - self.provider_cost.0)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profitability {
    /// The period asked for (`None`: each customer's current one).
    pub billing_period: Option<String>,
    pub rows: Vec<MarginRow>,
}

impl Profitability {
    pub fn totals(&self) -> (Nanos, Nanos) {
        (self.rows.iter().map(|r| r.plan_fee).sum(), self.rows.iter().map(|r| r.provider_cost).sum())
    }
}

/// `1 call`, `2 calls`, `1 retry`, `3 retries`.
fn counted(n: i64, noun: &str) -> String {
    let plural = match noun.strip_suffix('y') {
        Some(stem) => format!("{stem}ies"),
        None => format!("{noun}s"),
    };
    format!("{} {}", format_count(n), if n == 1 { noun } else { &plural })
}

/// Tips need at least this much spend to be worth saying (one cent).
const TIP_FLOOR: Nanos = Nanos(10_000_000);

/// An error rate for people: `2.5%` (of a record with calls).
fn rate(r: TrackRecord) -> String {
    format!("{:.1}%", r.errors as f64 * 100.0 / r.calls.max(1) as f64)
}

/// A 95th percentile for people: `820 ms`, or `unknown`.
fn p95(r: TrackRecord) -> String {
    r.p95_ms.map_or_else(|| "unknown".into(), |ms| format!("{} ms", format_count(ms as i64)))
}

impl Engine {
    /// The tag keys `user_id`'s events carry, sorted.
    pub async fn tag_keys(&self, user_id: &UserId) -> AppResult<Vec<String>> {
        let mut conn = self.store.pool().acquire().await?;
        Ok(reads::tag_keys(&mut conn, user_id).await?)
    }

    /// `user_id`'s usage in `label` (default: the current period) grouped
    /// by provider, model or a tag's value.
    pub async fn breakdown(
        &self,
        user_id: &UserId,
        by: BreakdownBy,
        label: Option<&str>,
        now: DateTime<Utc>,
    ) -> AppResult<Breakdown> {
        let snap = self.snapshot(user_id, label, now).await?;
        let total_cost = snap.total_cost();
        let mut conn = self.store.pool().acquire().await?;
        let group = |key: Option<String>, calls, tokens, cost| Group { key, calls, tokens, cost };
        let mut rows: Vec<Group> = match &by {
            BreakdownBy::Provider => snap
                .by_provider
                .iter()
                .map(|r| group(Some(r.provider.clone()), r.counts.calls, r.counts.tokens(), r.counts.cost))
                .collect(),
            BreakdownBy::Model => {
                let mut rows: Vec<Group> = Vec::new();
                for r in rollups::period_rollups(&mut conn, user_id, snap.period.start, true).await? {
                    let key = Some(r.model.clone()).filter(|m| !m.is_empty());
                    match rows.iter_mut().find(|g| g.key == key) {
                        Some(g) => {
                            g.calls += r.counts.calls;
                            g.tokens += r.counts.tokens();
                            g.cost = g.cost + r.counts.cost;
                        }
                        None => rows.push(group(key, r.counts.calls, r.counts.tokens(), r.counts.cost)),
                    }
                }
                rows
            }
            BreakdownBy::Tag(key) => reads::by_tag(&mut conn, user_id, &snap.label, key).await?,
        };
        rows.sort_by_key(|g| (g.key.is_none(), std::cmp::Reverse((g.cost, g.calls)), g.key.clone()));
        let tag_keys = reads::tag_keys(&mut conn, user_id).await?;
        Ok(Breakdown { billing_period: snap.label, by, rows, total_cost, tag_keys })
    }

    /// Advice for `user_id`: a cheaper plan over the last three closed
    /// periods, and tips from the current period.
    pub async fn insights(&self, user_id: &UserId, now: DateTime<Utc>) -> AppResult<Insights> {
        let snap = self.snapshot(user_id, None, now).await?;
        // How each model of the period did in the user's own calls: a
        // cheaper model is suggested only when it did not clearly do worse.
        let perf = self.performance(user_id, Some(&snap.label), now).await?;
        let mut missing = Vec::new();
        let mut conn = self.store.pool().acquire().await?;

        // Plan advice: the last three closed periods, as billed.
        let bills = crate::server::store::bills::billing_records(&mut conn, user_id).await?;
        let closed: Vec<_> = bills.iter().take(PLAN_ADVICE_PERIODS).collect();
        let mut periods = Vec::new();
        for b in &closed {
            periods.push((b.billing_period.clone(), rollups::period_usage(&mut conn, user_id, b.period_start).await?));
        }
        let recommended_plan = match &snap.plan {
            _ if closed.len() < PLAN_ADVICE_PERIODS => {
                missing.push(format!(
                    "Plan advice needs {PLAN_ADVICE_PERIODS} closed billing periods; there {} {} so far.",
                    if closed.len() == 1 { "is" } else { "are" },
                    closed.len()
                ));
                None
            }
            None => {
                missing.push("Plan advice needs a plan to compare against; this account has none.".into());
                None
            }
            Some(current) => recommend_plan(current, &snap.catalog.plans, &periods),
        };
        let mut tips = Vec::new();
        if recommended_plan.is_none()
            && closed.len() >= PLAN_ADVICE_PERIODS
            && let Some(current) = &snap.plan
        {
            tips.push(Tip {
                kind: "plan_fits",
                title: format!("{} is the cheapest plan for your usage", current.name),
                detail: format!(
                    "No cheaper plan would have held your usage in {} within its limits.",
                    periods.iter().map(|(l, _)| l.as_str()).collect::<Vec<_>>().join(", ")
                ),
                estimated_saving: None,
            });
        }

        // Tips from the current period.
        let label = snap.label.clone();
        let mix = reads::model_mix(&mut conn, user_id, &label).await?;
        let mut models: Vec<(crate::domain::provider::Provider, String)> =
            mix.iter().map(|(p, m, _, _)| (p.clone(), m.clone())).collect();
        models.dedup();
        let mut model_tips = Vec::new();
        for (provider, model) in models {
            let calls: Vec<_> =
                mix.iter().filter(|(p, m, _, _)| *p == provider && *m == model).map(|(_, _, q, n)| (*q, *n)).collect();
            if let Some(a) = cheaper_model(&snap.catalog.prices, &provider, &model, &calls, now)
                && a.saving() >= TIP_FLOOR
            {
                let record = |m: &str| {
                    perf.models.iter().find(|p| p.provider == provider.as_str() && p.model == m).map(|p| TrackRecord {
                        calls: p.calls,
                        errors: p.errors,
                        p95_ms: p.times.quantile(0.95),
                    })
                };
                let (current, alternative) = (record(&model), record(&a.alternative));
                let track = match (judge(current, alternative), current, alternative) {
                    (Verdict::MoreErrors | Verdict::Slower, ..) => {
                        missing.push(format!(
                            "{} costs less than {model}, but your calls to it this period failed more often or \
                             answered slower, so it is not suggested.",
                            a.alternative
                        ));
                        continue;
                    }
                    (Verdict::NotWorse, Some(c), Some(alt)) => {
                        format!(
                            " In your calls this period it failed no more often ({} against {}) and answered no \
                             slower (95th percentile {} against {}).",
                            rate(alt),
                            rate(c),
                            p95(alt),
                            p95(c)
                        )
                    }
                    // Unknown (judged only when both have calls).
                    _ => format!(
                        " Your calls this period are too few to compare {}'s error rate and speed with {model}'s.",
                        a.alternative
                    ),
                };
                model_tips.push(Tip {
                    kind: "cheaper_model",
                    title: format!("{} would have cost {} less than {model}", a.alternative, a.saving().display()),
                    detail: format!(
                        "Your {} to {model} ({}) this period cost {} at today's catalog price; the same calls \
                         (the same tokens of each class) would cost {} with {}, also from {}.{track}",
                        counted(a.calls as i64, "successful call"),
                        display_name(provider.as_str()),
                        a.current_cost.display(),
                        a.alternative_cost.display(),
                        a.alternative,
                        display_name(provider.as_str()),
                    ),
                    estimated_saving: Some(a.saving()),
                });
            }
        }
        model_tips.sort_by_key(|t| std::cmp::Reverse(t.estimated_saving));
        tips.extend(model_tips);
        let waste = reads::waste(&mut conn, user_id, &label).await?;
        if waste.failed_calls > 0 {
            tips.push(Tip {
                kind: "failed_calls",
                title: format!("Failed calls cost {} this period", waste.failed_cost.display()),
                detail: format!(
                    "{} failed and {} billed {}; {} needed retries ({} in all). Fixing the cause (rate limits, \
                     timeouts, bad requests) saves what they cost.",
                    counted(waste.failed_calls, "call"),
                    if waste.failed_calls == 1 { "was" } else { "were" },
                    waste.failed_cost.display(),
                    counted(waste.retried_calls, "call"),
                    counted(waste.retries, "retry"),
                ),
                estimated_saving: Some(waste.failed_cost),
            });
        }
        let total = snap.total();
        if total.counts.tokens_input > 0 {
            let tenths = share_tenths(total.counts.tokens_cached_input as u64, total.counts.tokens_input as u64);
            tips.push(Tip {
                kind: "cache",
                title: format!("{}.{}% of input tokens came from cache", tenths / 10, tenths % 10),
                detail: format!(
                    "{} of {} input tokens this period were cache reads, which most providers bill at a fraction of the \
                     input price. Repeating long prompts (system prompts, documents) as a stable prefix raises this share.",
                    format_count(total.counts.tokens_cached_input),
                    format_count(total.counts.tokens_input),
                ),
                estimated_saving: None,
            });
        } else if snap.total_calls() == 0 {
            missing.push(format!("No usage recorded in {label} yet: tips appear once calls are recorded."));
        }
        if total.counts.cost < TIP_FLOOR && snap.total_calls() > 0 && tips.iter().all(|t| t.estimated_saving.is_none())
        {
            missing.push(format!("Spend in {label} is below one cent: too little to compare models."));
        }
        Ok(Insights {
            recommended_plan,
            tips,
            periods_considered: periods.into_iter().map(|(l, _)| l).collect(),
            tips_period: label,
            missing,
        })
    }

    /// Plan fee against provider cost for every customer with a
    /// subscription in `label` (default: each customer's current period):
    /// from the bill once the period closed, else the open period's fee and
    /// its cost so far. Worst margin first.
    pub async fn profitability(&self, label: Option<&str>, now: DateTime<Utc>) -> AppResult<Profitability> {
        if let Some(l) = label
            && parse_month_label(l).is_none()
        {
            return Err(AppError::BadRequest(format!("billing_period `{l}` is not YYYY-MM")));
        }
        let mut conn = self.store.pool().acquire().await?;
        let (users, _) = users::list_users(&mut conn, None, i64::MAX, 0).await?;
        drop(conn);
        // Roll every subscription to now first: closing a period writes its
        // bill, which the rows below read.
        let mut current = Vec::with_capacity(users.len());
        for user in users {
            match self.current_subscription(&user.id, now).await {
                Ok(s) => current.push(s),
                Err(AppError::NotFound(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        let mut conn = self.store.pool().acquire().await?;
        let bills = match label {
            Some(l) => reads::bills_for(&mut conn, l).await?,
            None => Default::default(),
        };
        let mut rows = Vec::new();
        for (user, sub, catalog) in current {
            let uid = user.id.clone();
            let email = user.email.as_str().to_string();
            let period = sub.current_period();
            let row = if label.is_none_or(|l| l == period.label()) {
                let cost = rollups::period_rollups(&mut conn, &uid, period.start, false)
                    .await?
                    .iter()
                    .map(|r| r.counts.cost)
                    .sum();
                let plan_name = catalog.plan_of(&sub).map_or(crate::domain::plan::NO_PLAN, |p| &p.name).to_string();
                MarginRow {
                    user_id: uid,
                    billing_period: period.label(),
                    email,
                    plan_name,
                    plan_fee: open_period_fee(&catalog, &sub),
                    provider_cost: cost,
                    open: true,
                }
            } else if let (Some(l), Some((plan_name, fee, cost))) = (label, bills.get(uid.as_str())) {
                MarginRow {
                    user_id: uid,
                    billing_period: l.to_string(),
                    email,
                    plan_name: plan_name.clone(),
                    plan_fee: *fee,
                    provider_cost: *cost,
                    open: false,
                }
            } else {
                continue;
            };
            rows.push(row);
        }
        rows.sort_by_key(|r| (r.margin(), r.user_id.clone()));
        Ok(Profitability { billing_period: label.map(str::to_string), rows })
    }
}
