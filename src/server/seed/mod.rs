//! Demo data: the seed documents' plans and pricing catalog, two logins, and
//! twelve months of realistic usage for the demo user.
//!
//! The history is not written into tables directly: it is replayed day by
//! day through [`Engine::record`] and [`Engine::change_plan`] with a
//! simulated clock, so rollovers, billing records, renewals and alerts are
//! the engine's own output and every demo number reconciles with the events.
//! The generator is seeded, so two demo databases made the same day match.

use chrono::{DateTime, Datelike, Duration, TimeZone, Utc};

use super::error::{AppError, AppResult};
use super::service::Engine;
use super::service::seeding::SeedClaim;
use super::service::subscriptions::NewUser;
use crate::domain::event::{UsageEvent, UsageParts};
use crate::domain::identity::{Email, Role, UserId};
use crate::domain::period::{BillingCycle, add_months};
use crate::domain::plan::Tier;
use crate::domain::provider::{LimitKey, Provider};

pub const DEMO_USER_ID: &str = "demo";

/// [`DEMO_USER_ID`], typed.
pub fn demo_user_id() -> UserId {
    UserId::parse(DEMO_USER_ID).expect("the demo user's id is valid")
}
pub const DEMO_EMAIL: &str = "demo@example.com";
pub const DEMO_PASSWORD: &str = "demo-password";
pub const ADMIN_EMAIL: &str = "admin@example.com";
pub const ADMIN_PASSWORD: &str = "admin-password";

mod prepaid;
mod prices;
#[cfg(test)]
mod tests;
mod traffic;

pub use prepaid::{PREPAID_EMAIL, PREPAID_USER_ID};
pub use prices::*;
use prices::{DEMO_PRICES, llm, version_of};
pub use traffic::*;
use traffic::{DEMO_SEED, Rng, all_recorded, demo_event};

/// What `seed_demo` did.
#[derive(Debug, Default)]
pub struct SeedReport {
    pub seeded: bool,
    pub events: usize,
}

/// How long an instance waits for another one's demo seed to finish.
const SEED_WAIT: std::time::Duration = std::time::Duration::from_secs(600);

/// The engine, judging no spend spikes: a seed writes months of simulated
/// history in seconds, and a spike judged mid-seed would depend on how far
/// the seed had got (the demo must come out the same every time).
fn without_spike_checks(engine: &Engine) -> Engine {
    let mut e = engine.clone();
    e.config.spike_multiple = 0;
    e
}

/// Seeds the demo on an empty database; does nothing if any user exists.
///
/// Several instances may start together on one empty database: the first
/// to claim the `seed_runs` row seeds, the others wait until it is done, so
/// the demo is seeded exactly once. A seed that never finished (its instance
/// died) is reported instead of serving half a demo.
pub async fn seed_demo(engine: &Engine, now: DateTime<Utc>) -> AppResult<SeedReport> {
    let engine = &without_spike_checks(engine);
    match engine.claim_seed(SEED_NAME, Utc::now()).await? {
        SeedClaim::Nothing => Ok(SeedReport::default()),
        SeedClaim::Running => wait_for_other_seed(engine).await,
        SeedClaim::Claimed => {
            let report = seed_claimed(engine, now).await?;
            engine.finish_seed(SEED_NAME, Utc::now()).await?;
            Ok(report)
        }
    }
}

/// The name of the demo's row in `seed_runs`.
const SEED_NAME: &str = "demo";

/// Another instance claimed the seed: wait until it is done, or until it
/// has run longer than any seed takes (its instance died).
async fn wait_for_other_seed(engine: &Engine) -> AppResult<SeedReport> {
    loop {
        let started = match engine.seed_state(SEED_NAME).await? {
            Some((s, _)) if s == "done" => return Ok(SeedReport::default()),
            Some((_, started)) => started,
            None => 0,
        };
        if crate::server::store::ms(Utc::now()) - started > SEED_WAIT.as_millis() as i64 {
            return Err(AppError::Invalid(
                "another instance started seeding the demo and has not finished; if it died, start again from an \
                 empty database"
                    .into(),
            ));
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

/// The demo seed proper, once this instance holds the claim.
async fn seed_claimed(engine: &Engine, now: DateTime<Utc>) -> AppResult<SeedReport> {
    // History starts on the first of the month, twelve months back.
    let month_start = Utc.with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0).single().ok_or(AppError::Internal)?;
    let start = add_months(month_start, -12);
    let catalog_from = start - Duration::days(30);

    let plans = demo_plans();
    let mut prices: Vec<_> = DEMO_PRICES.iter().map(|row| version_of(row, catalog_from)).collect();
    // A mid-history price change, so the catalog shows versioning at work.
    let flash_change = add_months(start, 8);
    let flash = llm("gemini", "gemini-2.5-flash", "Gemini 2.5 Flash (GA pricing)", "0.30", "2.50", Some("0.075"));
    prices.push(version_of(&flash, flash_change));
    let ids = engine.seed_catalog(&plans, &prices, catalog_from).await?;
    let plan_ids: Vec<_> = plans.iter().map(|p| p.tier).zip(ids).collect();

    let plan = |tier| plan_ids.iter().find(|(t, _)| *t == tier).map(|(_, id)| *id).expect("seeded plan");
    let hash = |p: &str| super::auth::hash_password(p).map(|h| h.0).map_err(|_| AppError::Internal);
    engine
        .create_user(
            NewUser {
                id: Some(UserId::parse("admin").expect("valid id")),
                email: Email::parse(ADMIN_EMAIL).expect("valid email"),
                name: "Ada Admin".into(),
                role: Role::Admin,
                password_hash: Some(hash(ADMIN_PASSWORD)?),
                plan: Some((plan(Tier::Enterprise), BillingCycle::Monthly)),
                timezone: None,
            },
            start,
        )
        .await?;
    engine
        .create_user(
            NewUser {
                id: Some(demo_user_id()),
                email: Email::parse(DEMO_EMAIL).expect("valid email"),
                name: "Demo User".into(),
                role: Role::User,
                password_hash: Some(hash(DEMO_PASSWORD)?),
                plan: Some((plan(Tier::Basic), BillingCycle::Monthly)),
                timezone: None,
            },
            start,
        )
        .await?;

    // Replay the history one day at a time, usage growing over the year.
    let upgrade_at = add_months(start, 7) + Duration::days(11) + Duration::hours(10);
    let mut rng = Rng(DEMO_SEED);
    let mut n = 0u64;
    let mut day = start;
    let total_days = (now - start).num_days().max(1) as u64;
    while day < now {
        let day_end = (day + Duration::days(1)).min(now);
        let progress = (day - start).num_days() as u64 * 100 / total_days;
        let weekend = matches!(day.weekday(), chrono::Weekday::Sat | chrono::Weekday::Sun);
        let base = 8 + progress * 22 / 100;
        let count = if weekend { base / 3 } else { base } + rng.below(6);
        let span = (day_end - day).num_seconds().max(1) as u64;
        let mut events: Vec<UsageEvent> = Vec::new();
        for _ in 0..count {
            n += 1;
            let at = day + Duration::seconds(rng.below(span) as i64);
            events.push(demo_event(&mut rng, n, at));
        }
        // Some calls of a model launched last week that nobody priced yet.
        if (now - day).num_days() == 3 {
            for k in 0..3 {
                n += 1;
                let mut e = demo_event(&mut rng, n, day + Duration::hours(9 + k));
                e.provider = Provider::parse("openai").expect("valid");
                e.model = Some("o4-preview".into());
                (e.tokens_input, e.tokens_output, e.tokens_cached_input) = (2_000, 500, 0);
                (e.status_code, e.error_message) = (200, None);
                events.push(e);
            }
        }
        events.sort_by_key(|e| e.timestamp);
        if (day..day_end).contains(&upgrade_at) {
            // Each event is recorded under the plan it happened on.
            let (before, after): (Vec<_>, Vec<_>) = events.into_iter().partition(|e| e.timestamp < upgrade_at);
            all_recorded(engine.record(before.into_iter().map(Ok).collect(), upgrade_at).await?)?;
            engine.change_plan(&demo_user_id(), plan(Tier::Pro), BillingCycle::Monthly, "seed", upgrade_at).await?;
            all_recorded(engine.record(after.into_iter().map(Ok).collect(), day_end).await?)?;
        } else {
            all_recorded(engine.record(events.into_iter().map(Ok).collect(), day_end).await?)?;
        }
        day = day_end;
    }
    // A research burst this week: enough searches to take the demo user past
    // 90% of the plan's Tavily limit, so the dashboard shows live alerts.
    let view = engine.period_view(&demo_user_id(), now).await?;
    let tavily = Provider::parse("tavily").expect("valid");
    let tavily_limit = view.plan.as_ref().and_then(|p| p.limits.get(&LimitKey::Calls(tavily.clone())));
    if let Some(limit) = tavily_limit {
        let used = view.usage.provider(&tavily).calls;
        let window = (now - view.period.start).num_seconds().clamp(1, 36 * 3600) as u64;
        let mut burst: Vec<UsageEvent> = (used..limit * 92 / 100)
            .map(|_| {
                n += 1;
                let at = now - Duration::seconds(1 + rng.below(window) as i64);
                let mut e = demo_event(&mut rng, n, at);
                e.provider = tavily.clone();
                (e.model, e.tokens_input, e.tokens_output, e.tokens_cached_input, e.units) = (None, 0, 0, 0, None);
                e.parts = UsageParts::default();
                (e.status_code, e.error_message, e.retry_count) = (200, None, 0);
                (e.operation_type, e.endpoint) = (Some("search".into()), Some("/search".into()));
                e
            })
            .collect();
        burst.sort_by_key(|e| e.timestamp);
        all_recorded(engine.record(burst.into_iter().map(Ok).collect(), now).await?)?;
    }
    // The prepaid customer, on its own random stream (the demo user's
    // history stays as it was).
    let prepaid =
        prepaid::seed_prepaid(engine, hash(DEMO_PASSWORD)?, catalog_from, &mut Rng(DEMO_SEED ^ 1), n, now).await?;
    Ok(SeedReport { seeded: true, events: (n + prepaid) as usize })
}
