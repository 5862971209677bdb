//! SQLite's in-memory ledger (the write group's memo) against the store:
//! random operations through the engine (reserve, settle, resend, ingest,
//! wait for holds to lapse, change plan, re-price, roll the period over,
//! check), and after every step the memo's state of the user, whenever it
//! has one, is exactly what the store says: the subscription, the open
//! period's usage, its live holds and when the first of them lapses.
//!
//! The gate decides on that state without reading the store, so any
//! difference is a limit enforced on wrong numbers.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::Duration;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use super::gate::Operation;
use super::tests::{ev, ok, op};
use crate::domain::limits::{Limits, ProviderUsage, Usage};
use crate::domain::money::Nanos;
use crate::domain::period::BillingCycle;
use crate::domain::plan::{Plan, Tier};
use crate::domain::pricing::RateField;
use crate::server::service::admin::PriceForm;
use crate::server::store::{Store, catalog, holds, users};
use crate::server::testing::{TestDb, engine_with_catalog, t, uid, user_on_plan};

#[derive(Clone, Debug)]
enum Step {
    /// A reservation of `tavily` searches and, maybe, a Gemini call.
    Reserve { tavily: u8, gemini_tokens: Option<u32> },
    /// Events for the `pick`-th reservation's operations (the first only,
    /// or all), each naming it.
    Settle { pick: usize, all: bool },
    /// The `pick`-th recorded event again, naming a live reservation.
    Resend { pick: usize, reservation: usize },
    /// An event with no reservation.
    Ingest { gemini: bool, tokens: u32 },
    /// Time passes (holds live five minutes).
    Wait { minutes: i64 },
    /// To the other plan (an upgrade now, a downgrade at the cycle's end).
    ChangePlan,
    /// A call of an unpriced model, then its price (re-prices it).
    Reprice { tokens: u32 },
    /// Past the end of the period.
    Rollover,
    /// A check without reserving.
    Check { tavily: u8 },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0u8..3, proptest::option::of(1u32..400_000))
            .prop_map(|(tavily, gemini_tokens)| Step::Reserve { tavily, gemini_tokens }),
        4 => (0usize..8, any::<bool>()).prop_map(|(pick, all)| Step::Settle { pick, all }),
        1 => (0usize..8, 0usize..8).prop_map(|(pick, reservation)| Step::Resend { pick, reservation }),
        3 => (any::<bool>(), 0u32..300_000).prop_map(|(gemini, tokens)| Step::Ingest { gemini, tokens }),
        2 => (0i64..7).prop_map(|minutes| Step::Wait { minutes }),
        1 => Just(Step::ChangePlan),
        1 => (1u32..100_000).prop_map(|tokens| Step::Reprice { tokens }),
        1 => Just(Step::Rollover),
        1 => (0u8..4).prop_map(|tavily| Step::Check { tavily }),
    ]
}

/// Usage without providers at zero (the store has no row for them).
fn nonzero(u: &Usage) -> BTreeMap<String, ProviderUsage> {
    u.by_provider.iter().filter(|(_, v)| **v != ProviderUsage::default()).map(|(p, v)| (p.to_string(), *v)).collect()
}

/// A second plan, tighter than the test plan, and priced below it (so
/// moving to it is a downgrade).
async fn small_plan(store: &Store) -> i64 {
    let mut conn = store.pool().acquire().await.unwrap();
    let plan = Plan {
        id: 0,
        name: "Small".into(),
        tier: Tier::Basic,
        price_monthly: Nanos::from_usd(9),
        price_yearly: Nanos::from_usd(90),
        description: String::new(),
        features: vec![],
        limits: Limits::new().with("tavily_calls", 12).with("gemini_tokens", 600_000),
        archived: false,
        credits: Default::default(),
    };
    let id = catalog::insert_plan(&mut conn, &plan, t(2026, 1, 1)).await.unwrap();
    catalog::bump_revision(&mut conn).await.unwrap();
    id
}

/// Runs `steps` on a fresh SQLite store; the number of checks at which the
/// memo knew the user.
async fn run(steps: Vec<Step>) -> Result<usize, TestCaseError> {
    let db = TestDb::sqlite().await;
    let store = db.store.clone();
    let start = t(2026, 11, 1);
    let limits = Limits::new()
        .with("tavily_calls", 25)
        .with("gemini_tokens", 1_500_000)
        .with("monthly_cost", Nanos::from_usd(40).0);
    let (engine, big) = engine_with_catalog(store.clone(), limits, start).await;
    let small = small_plan(&store).await;
    user_on_plan(&engine, "u1", big, start).await;
    let u = uid("u1");
    let mut now = t(2026, 11, 3);
    // Reservations taken: (id, operations).
    let mut reservations: Vec<(String, Vec<Operation>)> = Vec::new();
    let mut recorded: Vec<crate::domain::event::UsageEvent> = Vec::new();
    let mut on_big = true;
    let mut known = 0;
    let mut n = 0;
    for (i, s) in steps.into_iter().enumerate() {
        match s {
            Step::Reserve { tavily, gemini_tokens } => {
                let mut ops: Vec<Operation> = (0..tavily.max(1)).map(|_| op("tavily", 0)).collect();
                if let Some(tokens) = gemini_tokens {
                    ops.push(Operation { model: Some("gemini-2.5-pro".into()), ..op("gemini", tokens as u64) });
                }
                match engine.preflight(&u, &ops, true, now).await {
                    Ok(p) => {
                        if let Some(rid) = p.reservation_id {
                            reservations.push((rid, ops));
                        }
                    }
                    Err(e) => prop_assert!(false, "reserve failed: {e}"),
                }
            }
            Step::Settle { pick, all } => {
                if reservations.is_empty() {
                    continue;
                }
                let (rid, ops) = reservations[pick % reservations.len()].clone();
                let take = if all { ops.len() } else { 1 };
                let events: Vec<_> = ops[..take]
                    .iter()
                    .map(|o| {
                        n += 1;
                        let tokens = o.tokens_requested / 2;
                        let mut e = ev(
                            &format!("e{n}"),
                            "u1",
                            o.provider.as_str(),
                            o.model.as_deref(),
                            tokens,
                            tokens / 4,
                            now,
                        );
                        e.reservation_id = Some(rid.clone());
                        e
                    })
                    .collect();
                recorded.extend(events.iter().cloned());
                engine.record(ok(events), now).await.map_err(|e| TestCaseError::fail(e.to_string()))?;
            }
            Step::Resend { pick, reservation } => {
                if recorded.is_empty() || reservations.is_empty() {
                    continue;
                }
                let mut e = recorded[pick % recorded.len()].clone();
                e.reservation_id = Some(reservations[reservation % reservations.len()].0.clone());
                engine.record(ok(vec![e]), now).await.map_err(|e| TestCaseError::fail(e.to_string()))?;
            }
            Step::Ingest { gemini, tokens } => {
                n += 1;
                let e = if gemini {
                    ev(&format!("e{n}"), "u1", "gemini", Some("gemini-2.5-pro"), tokens as u64, 100, now)
                } else {
                    ev(&format!("e{n}"), "u1", "tavily", None, 0, 0, now)
                };
                recorded.push(e.clone());
                engine.record(ok(vec![e]), now).await.map_err(|e| TestCaseError::fail(e.to_string()))?;
            }
            Step::Wait { minutes } => now += Duration::minutes(minutes),
            Step::ChangePlan => {
                let to = if on_big { small } else { big };
                // At most five changes a day: a refusal changes nothing.
                if engine.change_plan(&u, to, BillingCycle::Monthly, "user:test", now).await.is_ok() {
                    on_big = !on_big;
                }
            }
            Step::Reprice { tokens } => {
                n += 1;
                let model = format!("new-model-{n}");
                let e = ev(&format!("e{n}"), "u1", "openai", Some(&model), tokens as u64, 10, now);
                engine.record(ok(vec![e]), now).await.map_err(|e| TestCaseError::fail(e.to_string()))?;
                let form = PriceForm {
                    effective_from: Some((now - Duration::hours(1)).to_rfc3339()),
                    ..PriceForm::with_rates("openai", &model, &[(RateField::InputPerMillion, "3")])
                };
                engine.add_price(&form, "user:root", now).await.map_err(|e| TestCaseError::fail(e.to_string()))?;
            }
            Step::Rollover => {
                let mut conn = store.pool().acquire().await.unwrap();
                let sub = users::subscription(&mut conn, &u).await.unwrap().unwrap();
                now = sub.period_end + Duration::hours(1);
                // Something has to notice the new period: the gate does.
                drop(conn);
                engine.preflight(&u, &[op("tavily", 0)], false, now).await.ok();
            }
            Step::Check { tavily } => {
                let ops: Vec<Operation> = (0..tavily.max(1)).map(|_| op("tavily", 0)).collect();
                engine.preflight(&u, &ops, false, now).await.map_err(|e| TestCaseError::fail(e.to_string()))?;
            }
        }
        store.settled().await.unwrap();
        let Some(memo) = store.memo_user(&u, now) else { continue };
        known += 1;
        let mut conn = store.pool().acquire().await.unwrap();
        let sub = users::subscription(&mut conn, &u).await.unwrap().unwrap();
        let seen = holds::usage_and_holds(&mut conn, &u, sub.current_period().start, now).await.unwrap();
        prop_assert_eq!(&memo.sub, &sub, "subscription after step {}", i);
        prop_assert_eq!(nonzero(&memo.used), nonzero(&seen.used), "usage after step {}", i);
        prop_assert_eq!(nonzero(&memo.held), nonzero(&seen.held), "holds after step {}", i);
        prop_assert_eq!(memo.until, seen.first_expiry, "first lapse after step {}", i);
    }
    db.cleanup().await;
    Ok(known)
}

/// What the memo remembers equals the store after every step of random
/// runs; and it does remember (otherwise the comparison proves nothing).
#[test]
fn the_memo_agrees_with_the_store_after_every_step() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let known = AtomicUsize::new(0);
    let checks = AtomicUsize::new(0);
    let cases = std::env::var("TALLY_PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(24);
    let mut runner = TestRunner::new(Config { cases, ..Config::default() });
    runner
        .run(&proptest::collection::vec(step(), 1..40), |steps| {
            let len = steps.len();
            let k = rt.block_on(run(steps))?;
            known.fetch_add(k, Ordering::Relaxed);
            checks.fetch_add(len, Ordering::Relaxed);
            Ok(())
        })
        .unwrap();
    let (known, checks) = (known.into_inner(), checks.into_inner());
    eprintln!("the memo knew the user at {known} of {checks} checks");
    assert!(known * 2 > checks, "the memo knew the user at only {known} of {checks} checks");
}
