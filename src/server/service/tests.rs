//! Engine tests against real stores: every test runs on SQLite and on
//! PostgreSQL (see `both_stores!`).

use chrono::{DateTime, Duration, Utc};
use sqlx::Row;

use super::Engine;
use super::recording::{Incoming, Outcome};
use crate::both_stores;
use crate::domain::event::UsageEvent;
use crate::domain::limits::Limits;
use crate::domain::money::Nanos;
use crate::domain::provider::Provider;
use crate::server::store::{Store, alerts, bills, catalog, users};
use crate::server::testing::{engine_with_catalog, price, t, uid, user_on_plan};

pub(super) fn ev(
    id: &str,
    user: &str,
    provider: &str,
    model: Option<&str>,
    input: u64,
    output: u64,
    at: DateTime<Utc>,
) -> UsageEvent {
    UsageEvent {
        id: id.into(),
        user_id: uid(user),
        provider: Provider::parse(provider).unwrap(),
        model: model.map(str::to_string),
        operation_type: None,
        endpoint: None,
        method: None,
        actual_provider_name: None,
        tokens_input: input,
        tokens_output: output,
        tokens_cached_input: 0,
        parts: Default::default(),
        units: None,
        response_time_ms: Some(100),
        status_code: 200,
        error_message: None,
        timestamp: at,
        reservation_id: None,
        retry_count: 0,
        estimated: false,
        tags: Default::default(),
    }
}

pub(super) fn ok(events: Vec<UsageEvent>) -> Vec<Incoming> {
    events.into_iter().map(Ok).collect()
}

pub(super) async fn scalar(store: &Store, sql: &str) -> i64 {
    sqlx::query(sql).fetch_one(store.pool()).await.unwrap().try_get(0).unwrap()
}

/// Sum of recorded event costs, and the same from rollups.
pub(super) async fn sums(store: &Store) -> (i64, i64) {
    (
        scalar(store, "SELECT CAST(COALESCE(SUM(cost_total_nanos), 0) AS BIGINT) FROM usage_events").await,
        scalar(store, "SELECT CAST(COALESCE(SUM(cost_nanos), 0) AS BIGINT) FROM usage_rollups").await,
    )
}

async fn records_prices_and_deduplicates(store: Store) {
    let start = t(2026, 11, 1);
    let (engine, plan) = engine_with_catalog(store.clone(), Limits::new(), start).await;
    user_on_plan(&engine, "u1", plan, start).await;
    let now = t(2026, 11, 10);
    let gem = |id: &str| ev(id, "u1", "gemini", Some("gemini-2.5-pro"), 1000, 500, now);
    let r = engine
        .record(ok(vec![gem("a"), gem("b"), gem("a"), ev("s", "u1", "tavily", None, 0, 0, now)]), now)
        .await
        .unwrap();
    let outcomes: Vec<_> = r.iter().map(|r| (r.outcome, r.cost.0)).collect();
    // 1000 × $1.25/M + 500 × $10/M = $0.00625; one search $0.001.
    assert_eq!(
        outcomes,
        [
            (Outcome::Accepted, 6_250_000),
            (Outcome::Accepted, 6_250_000),
            (Outcome::Duplicate, 6_250_000),
            (Outcome::Accepted, 1_000_000)
        ]
    );
    // Resent later, with different numbers: still the first cost, not counted.
    let mut again = gem("b");
    again.tokens_output = 99_999;
    let r = engine.record(ok(vec![again]), now).await.unwrap();
    assert_eq!((r[0].outcome, r[0].cost.0), (Outcome::Duplicate, 6_250_000));
    assert_eq!(scalar(&store, "SELECT CAST(COUNT(*) AS BIGINT) FROM usage_events").await, 3);
    assert_eq!(sums(&store).await, (13_500_000, 13_500_000));
    let view = engine.period_view(&uid("u1"), now).await.unwrap();
    assert_eq!((view.total_calls(), view.total_cost().0, view.total_tokens()), (3, 13_500_000, 3000));
}
both_stores!(records_prices_and_deduplicates, records_prices_and_deduplicates);

async fn rejects_without_writing(store: Store) {
    let start = t(2026, 11, 1);
    let (engine, plan) = engine_with_catalog(store.clone(), Limits::new(), start).await;
    user_on_plan(&engine, "u1", plan, start).await;
    let now = t(2026, 11, 2);
    let mut cached = ev("c", "u1", "gemini", Some("gemini-2.5-pro"), 10, 0, now);
    cached.tokens_cached_input = 11;
    let r = engine
        .record(
            vec![
                Ok(ev("x", "nobody", "gemini", None, 1, 1, now)),
                Ok(ev("y", "u1", "cohere", None, 1, 1, now)),
                Err(("z".into(), "`tokens_input` must not be negative".into())),
                Ok(cached),
                Ok(ev("good", "u1", "tavily", None, 0, 0, now)),
            ],
            now,
        )
        .await
        .unwrap();
    let errs: Vec<_> = r.iter().map(|r| (r.outcome, r.error.clone().unwrap_or_default())).collect();
    assert_eq!(errs[0], (Outcome::Rejected, "unknown user `nobody`".into()));
    assert!(errs[1].1.contains("unknown provider `cohere`"), "{errs:?}");
    assert_eq!(errs[2].0, Outcome::Rejected);
    assert!(errs[3].1.contains("cannot exceed"), "{errs:?}");
    assert_eq!(errs[4], (Outcome::Accepted, String::new()));
    assert_eq!(scalar(&store, "SELECT CAST(COUNT(*) AS BIGINT) FROM usage_events").await, 1);
    assert_eq!(scalar(&store, "SELECT CAST(COUNT(*) AS BIGINT) FROM usage_rollups").await, 1);
}
both_stores!(rejects_without_writing, rejects_without_writing);

async fn unpriced_models_are_flagged_never_silent(store: Store) {
    let start = t(2026, 11, 1);
    let (engine, plan) = engine_with_catalog(store.clone(), Limits::new(), start).await;
    user_on_plan(&engine, "u1", plan, start).await;
    let now = t(2026, 11, 3);
    let r = engine
        .record(
            ok(vec![
                ev("n1", "u1", "gemini", Some("gemini-9-ultra"), 100, 100, now),
                ev("n2", "u1", "gemini", Some("gemini-9-ultra"), 1, 1, now),
            ]),
            now,
        )
        .await
        .unwrap();
    assert!(r.iter().all(|r| r.outcome == Outcome::Accepted && r.unpriced && r.cost == Nanos::ZERO));
    assert_eq!(scalar(&store, "SELECT CAST(COUNT(*) AS BIGINT) FROM usage_events WHERE unpriced = 1").await, 2);
    let mut conn = store.pool().acquire().await.unwrap();
    let admin_alerts = alerts::alerts(&mut conn, None, false, 10).await.unwrap();
    assert_eq!(admin_alerts.len(), 1, "one alert per unpriced model, not per event");
    assert!(admin_alerts[0].title.contains("gemini-9-ultra"));
    assert_eq!(admin_alerts[0].severity.as_str(), "error");
}
both_stores!(unpriced_models_are_flagged_never_silent, unpriced_models_are_flagged_never_silent);

async fn thresholds_fire_once_each(store: Store) {
    let start = t(2026, 11, 1);
    let limits = Limits::new().with("tavily_calls", 10);
    let (engine, plan) = engine_with_catalog(store.clone(), limits, start).await;
    user_on_plan(&engine, "u1", plan, start).await;
    let now = t(2026, 11, 5);
    for i in 0..14 {
        engine.record(ok(vec![ev(&format!("s{i}"), "u1", "tavily", None, 0, 0, now)]), now).await.unwrap();
    }
    let mut conn = store.pool().acquire().await.unwrap();
    let alerts = alerts::alerts(&mut conn, Some(&uid("u1")), false, 100).await.unwrap();
    let mut got: Vec<(i64, String)> = alerts.iter().map(|a| (a.threshold, a.severity.as_str().to_string())).collect();
    got.sort();
    assert_eq!(got, [(80, "info".into()), (90, "warning".into()), (100, "error".into())]);
    let full = alerts.iter().find(|a| a.threshold == 100).unwrap();
    assert_eq!(full.title, "Tavily calls limit reached");
    assert!(full.message.contains("10 of 10 Tavily API calls"), "{}", full.message);
    assert!(full.message.contains("Dec 1, 2026"), "{}", full.message);
    // The next period starts fresh.
    let next = t(2026, 12, 2);
    for i in 0..8 {
        engine.record(ok(vec![ev(&format!("d{i}"), "u1", "tavily", None, 0, 0, next)]), next).await.unwrap();
    }
    assert_eq!(alerts::alerts(&mut conn, Some(&uid("u1")), false, 100).await.unwrap().len(), 4);
}
both_stores!(thresholds_fire_once_each, thresholds_fire_once_each);

async fn periods_roll_over_on_first_touch(store: Store) {
    let anchor = t(2026, 1, 31);
    let (engine, plan) = engine_with_catalog(store.clone(), Limits::new(), t(2026, 1, 1)).await;
    user_on_plan(&engine, "u1", plan, anchor).await;
    let feb = t(2026, 2, 10);
    engine.record(ok(vec![ev("f", "u1", "tavily", None, 0, 0, feb)]), feb).await.unwrap();
    // Next touch is a read, weeks after two periods ended.
    let view = engine.period_view(&uid("u1"), t(2026, 4, 2)).await.unwrap();
    assert_eq!((view.period.start, view.period.end), (t(2026, 3, 31), t(2026, 4, 30)));
    let mut conn = store.pool().acquire().await.unwrap();
    let bills = bills::billing_records(&mut conn, &uid("u1")).await.unwrap();
    let got: Vec<_> =
        bills.iter().map(|b| (b.billing_period.clone(), b.plan_fee.0, b.usage_cost.0, b.total.0)).collect();
    assert_eq!(
        got,
        [
            ("2026-02".into(), 79_000_000_000, 0, 79_000_000_000),
            ("2026-01".into(), 79_000_000_000, 1_000_000, 79_001_000_000)
        ]
    );
    let (renewals, n) = users::renewals(&mut conn, &uid("u1"), 10, 0, false).await.unwrap();
    assert_eq!(n, 3, "new + two monthly renewals");
    assert_eq!(renewals[0].renewal_type, "renewal");
    assert_eq!(renewals[0].renewal_count, 2);
    assert_eq!(renewals[2].renewal_type, "new");
}
both_stores!(periods_roll_over_on_first_touch, periods_roll_over_on_first_touch);

async fn price_change_mid_period_splits(store: Store) {
    let start = t(2026, 11, 1);
    let (engine, plan) = engine_with_catalog(store.clone(), Limits::new(), start).await;
    user_on_plan(&engine, "u1", plan, start).await;
    let change = t(2026, 11, 15);
    let mut conn = store.pool().acquire().await.unwrap();
    let v = crate::domain::pricing::PriceVersion {
        id: 0,
        provider: Provider::parse("tavily").unwrap(),
        model: "*".into(),
        effective_from: change,
        rates: crate::domain::pricing::Rates::from(crate::domain::pricing::ClassRates {
            per_search: price("0.002"),
            ..Default::default()
        }),
        description: String::new(),
        max_output_tokens: None,
    };
    catalog::insert_price_version(&mut conn, &v, None, start).await.unwrap();
    drop(conn);
    let now = t(2026, 11, 20);
    let r = engine
        .record(
            ok(vec![
                ev("before", "u1", "tavily", None, 0, 0, change - Duration::seconds(1)),
                ev("at", "u1", "tavily", None, 0, 0, change),
                ev("after", "u1", "tavily", None, 0, 0, now),
            ]),
            now,
        )
        .await
        .unwrap();
    assert_eq!(r.iter().map(|r| r.cost.0).collect::<Vec<_>>(), [1_000_000, 2_000_000, 2_000_000]);
    assert_eq!(engine.period_view(&uid("u1"), now).await.unwrap().total_cost().0, 5_000_000);
    // Each event keeps the version it was charged.
    assert_eq!(scalar(&store, "SELECT CAST(COUNT(DISTINCT price_version_id) AS BIGINT) FROM usage_events").await, 2);
}
both_stores!(price_change_mid_period_splits, price_change_mid_period_splits);

/// The demo history goes through the engine, and everything reconciles:
/// events == rollups == closed bills + the open period.
async fn demo_seed_reconciles(store: Store) {
    let engine = Engine::new(store.clone(), Default::default());
    let now = t(2026, 11, 23) + Duration::hours(13);
    let report = crate::server::seed::seed_demo(&engine, now).await.unwrap();
    assert!(report.seeded && report.events > 3000, "{report:?}");
    // Seeding again does nothing.
    assert!(!crate::server::seed::seed_demo(&engine, now).await.unwrap().seeded);
    let (events, rollups) = sums(&store).await;
    assert_eq!(events, rollups);
    let view = engine.period_view(&crate::server::seed::demo_user_id(), now).await.unwrap();
    let mut conn = store.pool().acquire().await.unwrap();
    let bills = bills::billing_records(&mut conn, &uid("demo")).await.unwrap();
    let billed: i64 = bills.iter().map(|b| b.usage_cost.0).sum();
    let demo_events =
        scalar(&store, "SELECT CAST(SUM(cost_total_nanos) AS BIGINT) FROM usage_events WHERE user_id = 'demo'").await;
    assert_eq!(billed + view.total_cost().0, demo_events, "closed bills + open period == every event");
    // The prepaid customer's wallet: every event debited, to the nano, and
    // the statement sums to the balance.
    let pp = crate::server::seed::PREPAID_USER_ID;
    let spent = scalar(
        &store,
        &format!("SELECT CAST(SUM(cost_total_nanos) AS BIGINT) FROM usage_events WHERE user_id = '{pp}'"),
    )
    .await;
    let debited = scalar(
        &store,
        &format!(
            "SELECT CAST(-SUM(amount_nanos) AS BIGINT) FROM wallet_entries WHERE user_id = '{pp}' AND kind = 'debit'"
        ),
    )
    .await;
    assert!(spent > 0);
    assert_eq!(spent, debited);
    let statement =
        scalar(&store, &format!("SELECT CAST(SUM(amount_nanos) AS BIGINT) FROM wallet_entries WHERE user_id = '{pp}'"))
            .await;
    assert_eq!(engine.wallet_view(&uid(pp), now).await.unwrap().balance.0, statement);
    assert!(bills.len() >= 12, "{} bills", bills.len());
    assert!(view.total_calls() > 100);
    assert_eq!(view.plan.as_ref().unwrap().name, "Pro");
    let (renewals, _) = users::renewals(&mut conn, &uid("demo"), 50, 0, false).await.unwrap();
    assert!(renewals.iter().any(|r| r.renewal_type == "upgrade"));
    assert!(scalar(&store, "SELECT CAST(COUNT(*) AS BIGINT) FROM usage_events WHERE status_code >= 400").await > 10);
    assert_eq!(scalar(&store, "SELECT CAST(COUNT(*) AS BIGINT) FROM usage_events WHERE unpriced = 1").await, 3);
}
both_stores!(demo_seed_reconciles, demo_seed_reconciles);

pub(super) fn op(provider: &str, tokens: u64) -> super::gate::Operation {
    super::gate::Operation {
        provider: Provider::parse(provider).unwrap(),
        model: None,
        tokens_requested: tokens,
        units_requested: None,
        service_tier: Default::default(),
        operation_type: "search".into(),
    }
}

/// 200 concurrent reservations against room for 50 admit exactly 50.
async fn concurrent_reservations_never_overshoot(store: Store) {
    let start = t(2026, 11, 1);
    let limits = Limits::new().with("tavily_calls", 60);
    let (engine, plan) = engine_with_catalog(store.clone(), limits, start).await;
    user_on_plan(&engine, "u1", plan, start).await;
    let now = t(2026, 11, 10);
    // 10 calls already used: room for 50.
    engine
        .record(ok((0..10).map(|i| ev(&format!("pre{i}"), "u1", "tavily", None, 0, 0, now)).collect()), now)
        .await
        .unwrap();
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let engine = engine.clone();
            tokio::spawn(async move { engine.preflight(&uid("u1"), &[op("tavily", 0)], true, now).await })
        })
        .collect();
    let mut admitted = 0;
    for t in tasks {
        let p = t.await.unwrap().unwrap();
        if p.can_proceed {
            assert!(p.reservation_id.is_some());
            admitted += 1;
        } else {
            assert_eq!(p.denied_by.unwrap().key.as_string(), "tavily_calls");
        }
    }
    assert_eq!(admitted, 50);
    store.settled().await.unwrap();
    assert_eq!(scalar(&store, "SELECT CAST(COALESCE(SUM(calls), 0) AS BIGINT) FROM reservations").await, 50);
}
both_stores!(concurrent_reservations_never_overshoot, concurrent_reservations_never_overshoot);

/// Holds lapse after their TTL, and the event naming a hold releases it.
async fn holds_expire_and_are_consumed(store: Store) {
    let start = t(2026, 11, 1);
    let limits = Limits::new().with("gemini_tokens", 10_000).with("monthly_cost", 1_000_000_000);
    let (mut engine, plan) = engine_with_catalog(store.clone(), limits, start).await;
    engine.config.hold_ttl = std::time::Duration::from_secs(60);
    user_on_plan(&engine, "u1", plan, start).await;
    let now = t(2026, 11, 10);
    let big = |tokens| super::gate::Operation { model: Some("gemini-2.5-pro".into()), ..op("gemini", tokens) };
    let first = engine.preflight(&uid("u1"), &[big(8_000)], true, now).await.unwrap();
    assert!(first.can_proceed);
    // While held, the room is gone.
    let second = engine.preflight(&uid("u1"), &[big(8_000)], true, now + Duration::seconds(30)).await.unwrap();
    assert!(!second.can_proceed);
    assert_eq!(second.denied_by.as_ref().unwrap().key.as_string(), "gemini_tokens");
    assert!(
        second.operations[0].message.as_ref().unwrap().contains("Gemini tokens limit reached: 8,000 used of 10,000")
    );
    // After the TTL the hold no longer counts: no phantom denial.
    let later = now + Duration::seconds(61);
    let third = engine.preflight(&uid("u1"), &[big(8_000)], true, later).await.unwrap();
    assert!(third.can_proceed);
    // The event naming the reservation releases its hold; actual usage counts instead.
    let mut e = ev("real", "u1", "gemini", Some("gemini-2.5-pro"), 1_000, 0, later);
    e.reservation_id = third.reservation_id.clone();
    engine.record(ok(vec![e]), later).await.unwrap();
    let fourth = engine.preflight(&uid("u1"), &[big(8_000)], false, later).await.unwrap();
    assert!(fourth.can_proceed, "1,000 used + 8,000 fits in 10,000");
    // A cost cap check uses the estimate: 8,000 tokens at the $10/M output rate = $0.08.
    assert_eq!(fourth.total_cost.0, 80_000_000);
}
both_stores!(holds_expire_and_are_consumed, holds_expire_and_are_consumed);

/// A replay of 10,000 events with 20% duplicates (some within a batch, some
/// across batches) totals exactly the de-duplicated sum.
async fn replay_with_duplicates_is_exact(store: Store) {
    let start = t(2026, 11, 1);
    let (engine, plan) = engine_with_catalog(store.clone(), Limits::new(), start).await;
    user_on_plan(&engine, "u1", plan, start).await;
    let now = t(2026, 11, 20);
    let unique: Vec<UsageEvent> = (0..8_000u64)
        .map(|i| {
            let at = start + Duration::minutes(i as i64 * 3);
            if i % 5 == 0 {
                ev(&format!("e{i}"), "u1", "tavily", None, 0, 0, at)
            } else {
                let mut e = ev(
                    &format!("e{i}"),
                    "u1",
                    "gemini",
                    Some("gemini-2.5-pro"),
                    100 + i * 7 % 5000,
                    13 + i * 11 % 900,
                    at,
                );
                e.tokens_cached_input = (i * 3) % 50;
                e
            }
        })
        .collect();
    let mut stream = unique.clone();
    // 2,000 duplicates: every fourth event again, later in the stream.
    stream.extend(unique.iter().step_by(4).cloned());
    // Deterministic shuffle so duplicates land both inside and across batches.
    let mut x = 12345u64;
    for i in (1..stream.len()).rev() {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        stream.swap(i, (x >> 33) as usize % (i + 1));
    }
    assert_eq!(stream.len(), 10_000);
    let mut accepted = 0;
    let mut duplicates = 0;
    for chunk in stream.chunks(500) {
        for r in engine.record(ok(chunk.to_vec()), now).await.unwrap() {
            match r.outcome {
                Outcome::Accepted => accepted += 1,
                Outcome::Duplicate => duplicates += 1,
                Outcome::Rejected => panic!("{r:?}"),
            }
        }
    }
    assert_eq!((accepted, duplicates), (8_000, 2_000));
    // The expected total, priced independently from the catalog rates.
    let expected: i64 = unique
        .iter()
        .map(|e| {
            let rates = if e.provider.as_str() == "tavily" {
                crate::domain::pricing::Rates::from(crate::domain::pricing::ClassRates {
                    per_search: price("0.001"),
                    ..Default::default()
                })
            } else {
                crate::domain::pricing::Rates::from(crate::domain::pricing::ClassRates {
                    input_per_million: price("1.25"),
                    output_per_million: price("10"),
                    cached_input_per_million: price("0.3125"),
                    ..Default::default()
                })
            };
            let units = rates.has_unit_price() as u64;
            crate::domain::pricing::price_event(&rates, e.quantities(units)).unwrap().total.0
        })
        .sum();
    assert_eq!(sums(&store).await, (expected, expected));
    let view = engine.period_view(&uid("u1"), now).await.unwrap();
    assert_eq!(view.total_cost().0, expected);
    assert_eq!(view.total_calls(), 8_000);
}
both_stores!(replay_with_duplicates_is_exact, replay_with_duplicates_is_exact);

/// One batch larger than a multi-row statement and an id lookup (1,234
/// events: past both 500-row chunk boundaries), over two users, two
/// providers, an unpriced model and late events (billed in the open
/// period, keeping their own timestamps): every rollup row equals
/// the sums of its events, grouped independently here; an id rejected
/// first and sent again valid in the same batch is recorded once.
async fn set_based_batch_matches_its_events(store: Store) {
    let start = t(2026, 10, 1);
    let (engine, plan) = engine_with_catalog(store.clone(), Limits::new(), start).await;
    user_on_plan(&engine, "u1", plan, start).await;
    user_on_plan(&engine, "u2", plan, t(2026, 11, 5)).await;
    let now = t(2026, 11, 20);
    let mut batch: Vec<UsageEvent> = (0..1_230u64)
        .map(|i| {
            let user = if i % 3 == 0 { "u2" } else { "u1" };
            // u1 also has late events, from its closed October.
            let at = if user == "u1" && i % 7 == 0 { t(2026, 10, 15) } else { now - Duration::minutes(i as i64) };
            match i % 4 {
                0 => ev(&format!("b{i}"), user, "tavily", None, 0, 0, at),
                1 => ev(&format!("b{i}"), user, "gemini", Some("gemini-unpriced"), 10 + i, 5, at),
                _ => ev(&format!("b{i}"), user, "gemini", Some("gemini-2.5-pro"), 100 + i, 7 + i % 13, at),
            }
        })
        .collect();
    // An id rejected first (before u2 began), then sent again valid.
    batch.push(ev("again", "u2", "tavily", None, 0, 0, t(2026, 10, 2)));
    batch.push(ev("again", "u2", "tavily", None, 0, 0, now));
    // A duplicate of an accepted event inside the batch, and of itself.
    batch.push(ev("b4", "u1", "tavily", None, 0, 0, now));
    batch.push(ev("b4", "u1", "tavily", None, 0, 0, now));
    let r = engine.record(ok(batch), now).await.unwrap();
    let count = |o: Outcome| r.iter().filter(|x| x.outcome == o).count();
    assert_eq!((count(Outcome::Accepted), count(Outcome::Duplicate), count(Outcome::Rejected)), (1_231, 2, 1));
    assert_eq!(r[1_230].outcome, Outcome::Rejected);
    assert_eq!(r[1_231].outcome, Outcome::Accepted);
    assert_eq!(r[1_232].cost, r[4].cost);

    let by_events = sqlx::query(
        "SELECT user_id, period_start, provider, COALESCE(model, '') AS m, CAST(COUNT(*) AS BIGINT) AS calls,
         CAST(SUM(tokens_input) AS BIGINT) AS ti, CAST(SUM(tokens_output) AS BIGINT) AS t_o,
         CAST(SUM(cost_total_nanos) AS BIGINT) AS cost, CAST(SUM(unpriced) AS BIGINT) AS unpriced,
         CAST(SUM(response_time_ms) AS BIGINT) AS rms
         FROM usage_events GROUP BY user_id, period_start, provider, COALESCE(model, '')
         ORDER BY user_id, period_start, provider, m",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    let by_rollups = sqlx::query(
        "SELECT user_id, period_start, provider, model AS m, calls, tokens_input AS ti, tokens_output AS t_o,
         cost_nanos AS cost, unpriced_calls AS unpriced, response_ms_sum AS rms
         FROM usage_rollups ORDER BY user_id, period_start, provider, m",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    let rows = |rs: &[sqlx::any::AnyRow]| -> Vec<(String, i64, String, String, [i64; 6])> {
        rs.iter()
            .map(|r| {
                (
                    r.get("user_id"),
                    r.get("period_start"),
                    r.get("provider"),
                    r.get("m"),
                    ["calls", "ti", "t_o", "cost", "unpriced", "rms"].map(|c| r.get::<i64, _>(c)),
                )
            })
            .collect()
    };
    let (events, rollups) = (rows(&by_events), rows(&by_rollups));
    // Two users × (tavily, two gemini models); late events count in the
    // open period, so no October row.
    assert_eq!(events.len(), 6, "{events:?}");
    assert_eq!(events, rollups);
    assert_eq!(events.iter().map(|e| e.4[0]).sum::<i64>(), 1_231);
    // The late events keep their own time.
    let october = format!(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM usage_events WHERE occurred_at < {}",
        crate::server::store::ms(t(2026, 11, 1))
    );
    assert_eq!(scalar(&store, &october).await, (0..1_230).filter(|i| i % 3 != 0 && i % 7 == 0).count() as i64);
    // One unpriced alert for the unpriced model, however many events.
    assert_eq!(
        scalar(&store, "SELECT CAST(COUNT(*) AS BIGINT) FROM alerts WHERE alert_type = 'unpriced_model'").await,
        1
    );
    // The whole batch again: every event a duplicate, nothing added.
    let before = sums(&store).await;
    let again: Vec<UsageEvent> = (0..1_230u64)
        .map(|i| ev(&format!("b{i}"), if i % 3 == 0 { "u2" } else { "u1" }, "tavily", None, 0, 0, now))
        .collect();
    let r = engine.record(ok(again), now).await.unwrap();
    assert!(
        r.iter().all(|x| x.outcome == Outcome::Duplicate),
        "{:?}",
        r.iter().find(|x| x.outcome != Outcome::Duplicate)
    );
    assert_eq!(sums(&store).await, before);
}
both_stores!(set_based_batch_matches_its_events, set_based_batch_matches_its_events);

/// Yearly cycles: twelve monthly usage periods, the yearly fee on the first,
/// one renewal when the year ends.
async fn yearly_cycles_bill_once_a_year(store: Store) {
    let anchor = t(2025, 3, 15);
    let (engine, plan) = engine_with_catalog(store.clone(), Limits::new().with("tavily_calls", 5), t(2025, 1, 1)).await;
    engine
        .create_user(
            super::subscriptions::NewUser {
                id: Some(crate::domain::identity::UserId::parse("y").unwrap()),
                email: crate::domain::identity::Email::parse("y@example.test").unwrap(),
                name: "Y".into(),
                role: crate::domain::identity::Role::User,
                password_hash: None,
                plan: Some((plan, crate::domain::period::BillingCycle::Yearly)),
                timezone: None,
            },
            anchor,
        )
        .await
        .unwrap();
    let view = engine.period_view(&uid("y"), t(2026, 4, 20)).await.unwrap();
    assert_eq!((view.period.start, view.period.end), (t(2026, 4, 15), t(2026, 5, 15)), "limits stay monthly");
    let mut conn = store.pool().acquire().await.unwrap();
    let bills = bills::billing_records(&mut conn, &uid("y")).await.unwrap();
    assert_eq!(bills.len(), 13);
    let fees: Vec<i64> = bills.iter().rev().map(|b| b.plan_fee.0).collect();
    assert_eq!(fees[0], 790_000_000_000, "the year's fee on its first period");
    assert!(fees[1..12].iter().all(|f| *f == 0));
    assert_eq!(fees[12], 790_000_000_000, "the second year starts with its fee");
    let (renewals, n) = users::renewals(&mut conn, &uid("y"), 10, 0, false).await.unwrap();
    assert_eq!(n, 2, "new + one yearly renewal");
    assert_eq!((renewals[0].renewal_type.as_str(), renewals[0].billing_cycle.as_str()), ("renewal", "yearly"));
    assert_eq!((renewals[0].new_period_start, renewals[0].new_period_end), (t(2026, 3, 15), t(2027, 3, 15)));
}
both_stores!(yearly_cycles_bill_once_a_year, yearly_cycles_bill_once_a_year);

/// Checking without `reserve` is a read: it answers while another
/// transaction holds the user's lock (it would otherwise wait for it), and
/// it sees the usage that transaction has not committed as not yet there.
async fn check_only_preflight_takes_no_lock(store: Store) {
    let start = t(2026, 11, 1);
    let (engine, plan) = engine_with_catalog(store.clone(), Limits::new().with("tavily_calls", 5), start).await;
    user_on_plan(&engine, "u1", plan, start).await;
    let now = t(2026, 11, 10);
    let mut writer = store.begin().await.unwrap();
    assert!(crate::server::store::users::lock_subscription(&mut writer, &uid("u1")).await.unwrap().is_some());
    // A hang guard, not a speed check: waiting for the lock never ends.
    let check = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        engine.preflight(&uid("u1"), &[op("tavily", 0)], false, now),
    )
    .await
    .expect("a check-only preflight waited for the user's lock")
    .unwrap();
    assert!(check.can_proceed);
    assert_eq!(check.calls_summary.map(|l| (l.used, l.limit)), Some((0, 5)));
    assert!(check.reservation_id.is_none());
    writer.rollback().await.unwrap();
    // Nothing was held by checking.
    assert_eq!(scalar(&store, "SELECT CAST(COUNT(*) AS BIGINT) FROM reservations").await, 0);
}
both_stores!(check_only_preflight_takes_no_lock, check_only_preflight_takes_no_lock);

/// The check-only gate answers from the process's view of usage; every
/// write this process commits is in it the moment `commit()` returns (the
/// view is dropped for the users the write names, or for everyone; an
/// unsynced reservation's holds, once its group has committed), and a
/// write it cannot see (another process) counts once the view's copy ages
/// out.
async fn check_only_sees_every_committed_write(store: Store) {
    let start = t(2026, 11, 1);
    let limits = Limits::new().with("tavily_calls", 50).with("gemini_tokens", 10_000);
    let (mut engine, plan) = engine_with_catalog(store.clone(), limits, start).await;
    engine.config.hold_ttl = std::time::Duration::from_secs(60);
    user_on_plan(&engine, "u1", plan, start).await;
    user_on_plan(&engine, "u2", plan, start).await;
    let now = t(2026, 11, 10);
    let calls = |p: super::gate::Preflight| p.calls_summary.map(|l| l.used);
    let check = |user: &'static str, at| {
        let engine = engine.clone();
        async move { engine.preflight(&uid(user), &[op("tavily", 0)], false, at).await }
    };
    assert_eq!(calls(check("u1", now).await.unwrap()), Some(0));
    assert_eq!(calls(check("u2", now).await.unwrap()), Some(0));

    // Ingest.
    engine
        .record(ok((0..3).map(|i| ev(&format!("e{i}"), "u1", "tavily", None, 0, 0, now)).collect()), now)
        .await
        .unwrap();
    assert_eq!(calls(check("u1", now).await.unwrap()), Some(3));
    assert_eq!(calls(check("u2", now).await.unwrap()), Some(0));

    // A reservation's hold counts once its write is visible (on SQLite,
    // when its group commits: a reservation does not wait for that, see
    // `WriteTx::commit_unsynced`), and stops counting when it lapses.
    assert!(engine.preflight(&uid("u1"), &[op("tavily", 0)], true, now).await.unwrap().can_proceed);
    store.settled().await.unwrap();
    assert_eq!(calls(check("u1", now).await.unwrap()), Some(4));
    assert_eq!(calls(check("u1", now + Duration::seconds(61)).await.unwrap()), Some(3));

    // A subscription change (a write that names no users: everything is
    // forgotten).
    engine.change_status(&uid("u2"), super::subscriptions::Lifecycle::Pause, "admin", now).await.unwrap();
    let paused = check("u2", now).await.unwrap_err();
    assert!(paused.to_string().contains("paused"), "{paused}");

    // A write the process cannot see (another node, or `tally` beside the
    // server): raw SQL standing in for it.
    sqlx::query("UPDATE usage_rollups SET calls = calls + 10 WHERE user_id = 'u1'")
        .execute(store.pool())
        .await
        .unwrap();
    tokio::time::sleep(store.view().ttl()).await;
    // 3 recorded + 1 held (live again at `now`) + 10.
    assert_eq!(calls(check("u1", now).await.unwrap()), Some(14), "seen once the copy ages out");
}
both_stores!(check_only_sees_every_committed_write, check_only_sees_every_committed_write);

/// A reservation decides on everything the store holds, at once: writes
/// through this engine, and writes by any other connection (another
/// process, or node; raw SQL standing in for it), with no wait for a copy
/// to age out. On SQLite most reservations decide on the write group's memo
/// (see `store::memo`); this is the test that it is exact.
async fn reservations_see_every_write_at_once(store: Store) {
    let start = t(2026, 11, 1);
    let limits = Limits::new().with("tavily_calls", 10);
    let (engine, plan) = engine_with_catalog(store.clone(), limits, start).await;
    user_on_plan(&engine, "u1", plan, start).await;
    let now = t(2026, 11, 10);
    let ops = [op("tavily", 0)];
    let u1 = uid("u1");
    let reserve = || engine.preflight(&u1, &ops, true, now);
    engine.record(ok(vec![ev("e0", "u1", "tavily", None, 0, 0, now)]), now).await.unwrap();
    for _ in 0..3 {
        assert!(reserve().await.unwrap().can_proceed);
    }
    // 1 recorded + 3 held; another connection adds 5 calls.
    sqlx::query("UPDATE usage_rollups SET calls = calls + 5 WHERE user_id = 'u1'").execute(store.pool()).await.unwrap();
    let p = reserve().await.unwrap();
    assert!(p.can_proceed, "9 of 10 before this one");
    let p = reserve().await.unwrap();
    assert!(!p.can_proceed, "10 of 10: the other connection's 5 calls count at once");
    assert_eq!(p.denied_by.unwrap().used, 10);
    // This engine's own writes: an event naming no reservation adds a call.
    engine.record(ok(vec![ev("e1", "u1", "tavily", None, 0, 0, now)]), now).await.unwrap();
    assert_eq!(reserve().await.unwrap().denied_by.unwrap().used, 11);
    // Another connection takes calls away again (a correction): room at once.
    sqlx::query("UPDATE usage_rollups SET calls = calls - 5 WHERE user_id = 'u1'").execute(store.pool()).await.unwrap();
    assert!(reserve().await.unwrap().can_proceed, "6 of 10");
    store.settled().await.unwrap();
    assert_eq!(scalar(&store, "SELECT CAST(COALESCE(SUM(calls), 0) AS BIGINT) FROM reservations").await, 5);
}
both_stores!(reservations_see_every_write_at_once, reservations_see_every_write_at_once);

/// SQLite: a reservation decides on the write group's memo beside a
/// running job (a long batch, say) that leaves its user alone, and waits
/// for one that may change its user; the limit holds either way. On
/// PostgreSQL each waits only for its own user's row lock.
async fn reservations_wait_only_for_jobs_on_their_user(store: Store) {
    use crate::server::store::view::Affects;
    use std::time::Duration as StdDuration;
    let start = t(2026, 11, 1);
    let limits = Limits::new().with("tavily_calls", 3);
    let (engine, plan) = engine_with_catalog(store.clone(), limits, start).await;
    user_on_plan(&engine, "u1", plan, start).await;
    user_on_plan(&engine, "u2", plan, start).await;
    let now = t(2026, 11, 10);
    let ops = [op("tavily", 0)];
    for u in ["u1", "u2"] {
        assert!(engine.preflight(&uid(u), &ops, true, now).await.unwrap().can_proceed);
    }
    let soon = StdDuration::from_secs(5);
    // A job that has not said what it changes may change anything: on
    // SQLite every reservation waits for it.
    let mut job = store.begin().await.unwrap();
    let e = engine.clone();
    let waiting = tokio::spawn(async move { e.preflight(&uid("u2"), &[op("tavily", 0)], true, now).await.unwrap() });
    tokio::time::sleep(StdDuration::from_millis(200)).await;
    if store.backend() == crate::server::store::Backend::Sqlite {
        assert!(!waiting.is_finished(), "decided beside a job that may change anything");
    }
    // It names u1: u2's reservation goes ahead beside it, u1's waits.
    job.affects(Affects::Users(vec!["u1".into()]));
    let p =
        tokio::time::timeout(soon, engine.preflight(&uid("u2"), &ops, true, now)).await.expect("u2 waited").unwrap();
    assert!(p.can_proceed, "u2: 2 of 3");
    let e = engine.clone();
    let u1 = tokio::spawn(async move { e.preflight(&uid("u1"), &[op("tavily", 0)], true, now).await.unwrap() });
    tokio::time::sleep(StdDuration::from_millis(200)).await;
    if store.backend() == crate::server::store::Backend::Sqlite {
        assert!(!u1.is_finished(), "decided beside a job that may change u1");
    }
    job.commit().await.unwrap();
    assert!(tokio::time::timeout(soon, u1).await.expect("u1 waited past the job").unwrap().can_proceed);
    assert!(tokio::time::timeout(soon, waiting).await.expect("u2 waited").unwrap().can_proceed, "u2: 3 of 3");
    let denied = engine.preflight(&uid("u2"), &ops, true, now).await.unwrap();
    assert_eq!(denied.denied_by.map(|d| (d.used, d.limit)), Some((3, 3)));
    store.settled().await.unwrap();
    let held = |u: &'static str| {
        let store = store.clone();
        async move {
            scalar(
                &store,
                &format!("SELECT CAST(COALESCE(SUM(calls), 0) AS BIGINT) FROM reservations WHERE user_id = '{u}'"),
            )
            .await
        }
    };
    assert_eq!((held("u1").await, held("u2").await), (2, 3), "every admitted reservation's hold was written");
}
both_stores!(reservations_wait_only_for_jobs_on_their_user, reservations_wait_only_for_jobs_on_their_user);
