//! The demo's prepaid customer: a pay-as-you-go plan, a wallet with a
//! sign-up grant that expired part-spent, two top-ups, and six weeks of
//! calls debited through the real recording path, so the balance card, its
//! burn-down and the statement have real history to show.

use chrono::{DateTime, Duration, Utc};

use super::NewUser;
use super::traffic::{Rng, all_recorded, demo_event};
use crate::domain::identity::{Email, Role, UserId};
use crate::domain::limits::Limits;
use crate::domain::money::Nanos;
use crate::domain::period::BillingCycle;
use crate::domain::plan::{BillingMode, Credits, Plan, Tier};
use crate::domain::wallet::{GrantKind, GrantSource};
use crate::server::error::{AppError, AppResult};
use crate::server::service::Engine;
use crate::server::service::wallet::NewGrant;

pub const PREPAID_USER_ID: &str = "prepaid";

/// [`PREPAID_USER_ID`], typed.
pub fn prepaid_user_id() -> UserId {
    UserId::parse(PREPAID_USER_ID).expect("the prepaid user's id is valid")
}
pub const PREPAID_EMAIL: &str = "prepaid@example.com";

/// The plan: no fee, no limits but the wallet.
fn pay_as_you_go() -> Plan {
    Plan {
        id: 0,
        name: "Pay as you go".into(),
        tier: Tier::Basic,
        price_monthly: Nanos::ZERO,
        price_yearly: Nanos::ZERO,
        description: "No subscription: buy credits, and every call spends them.".into(),
        features: vec!["All providers".into(), "Credits never expire".into(), "Calls stop when credits run out".into()],
        limits: Limits::new(),
        archived: false,
        credits: Credits { mode: BillingMode::Prepaid, included: None, rollover_cap: None },
    }
}

fn grant(usd: i64, kind: GrantKind, expires_at: Option<DateTime<Utc>>, key: &str, note: &str) -> NewGrant {
    NewGrant {
        amount: Nanos::from_usd(usd),
        kind,
        source: if kind == GrantKind::Paid { GrantSource::TopUp } else { GrantSource::Admin },
        priority: 0,
        effective_at: None,
        expires_at,
        idempotency_key: key.into(),
        note: Some(note.into()),
    }
}

/// Seeds the prepaid customer from six weeks before `now`; the events
/// recorded. `password_hash` is the demo password's.
pub(super) async fn seed_prepaid(
    engine: &Engine,
    password_hash: String,
    catalog_from: DateTime<Utc>,
    rng: &mut Rng,
    first_n: u64,
    now: DateTime<Utc>,
) -> AppResult<u64> {
    let plan_id = engine.seed_catalog(&[pay_as_you_go()], &[], catalog_from).await?[0];
    let start = now - Duration::days(42);
    engine
        .create_user(
            NewUser {
                id: Some(prepaid_user_id()),
                email: Email::parse(PREPAID_EMAIL).expect("valid email"),
                name: "Pat Prepaid".into(),
                role: Role::User,
                password_hash: Some(password_hash),
                plan: Some((plan_id, BillingCycle::Monthly)),
                timezone: None,
            },
            start,
        )
        .await?;
    let grants = [
        (start, grant(5, GrantKind::Promotional, Some(start + Duration::days(14)), "signup", "welcome credits")),
        (start + Duration::hours(2), grant(15, GrantKind::Paid, None, "top-up-1", "card top-up")),
        (now - Duration::days(12), grant(25, GrantKind::Paid, None, "top-up-2", "card top-up")),
    ];
    let mut n = first_n;
    let mut day = start;
    let mut pending = grants.into_iter().peekable();
    while day < now {
        let day_end = (day + Duration::days(1)).min(now);
        while let Some((_, g)) = pending.next_if(|(at, _)| *at < day_end) {
            engine.grant_credits(&prepaid_user_id(), g, "seed", day).await?;
        }
        let count = 8 + rng.below(8);
        let span = (day_end - day).num_seconds().max(1) as u64;
        let mut events: Vec<_> = (0..count)
            .map(|_| {
                n += 1;
                let at = day + Duration::seconds(rng.below(span) as i64);
                let mut e = demo_event(rng, n, at);
                e.user_id = prepaid_user_id();
                // A heavier user than the demo's: longer prompts and answers.
                (e.tokens_input, e.tokens_output, e.tokens_cached_input) =
                    (e.tokens_input * 4, e.tokens_output * 4, e.tokens_cached_input * 4);
                e.id = format!("pp-{n}");
                e
            })
            .collect();
        events.sort_by_key(|e| e.timestamp);
        all_recorded(engine.record(events.into_iter().map(Ok).collect(), day_end).await?)?;
        day = day_end;
    }
    if pending.peek().is_some() {
        return Err(AppError::Internal);
    }
    Ok(n - first_n)
}
