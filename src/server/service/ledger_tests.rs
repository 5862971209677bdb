//! Plan changes and where every acknowledged cost lands, against real
//! stores (both).

use chrono::Duration;

use super::Engine;
use super::tests::{ev, ok, op, scalar, sums};
use crate::both_stores;
use crate::domain::limits::Limits;
use crate::domain::money::Nanos;
use crate::domain::period::BillingCycle;
use crate::domain::plan::{Plan, PlanChange, Tier};
use crate::domain::pricing::Count;
use crate::server::error::AppError;
use crate::server::store::{Store, bills, catalog, users};
use crate::server::testing::{engine_with_catalog, t, uid, user_on_plan};

/// A second plan, Basic at $29/month, 300 Tavily calls.
async fn basic_plan(engine: &Engine) -> i64 {
    let mut conn = engine.store.pool().acquire().await.unwrap();
    let plan = Plan {
        id: 0,
        name: "Basic".into(),
        tier: Tier::Basic,
        price_monthly: Nanos::from_usd(29),
        price_yearly: Nanos::from_usd(290),
        description: String::new(),
        features: vec![],
        limits: Limits::new().with("tavily_calls", 300),
        archived: false,
        credits: Default::default(),
    };
    let id = catalog::insert_plan(&mut conn, &plan, t(2026, 1, 1)).await.unwrap();
    catalog::bump_revision(&mut conn).await.unwrap();
    id
}

/// The reported exploit: at 276 of 300 Tavily calls, "changing" to the same
/// plan started a new period and reset the count, and charged the fee again.
async fn changing_plan_never_resets_usage(store: Store) {
    let start = t(2026, 4, 1);
    let (engine, _pro) = engine_with_catalog(store.clone(), Limits::new(), start).await;
    let basic = basic_plan(&engine).await;
    user_on_plan(&engine, "u1", basic, start).await;
    let now = t(2026, 4, 20);
    let calls: Vec<_> = (0..276).map(|i| ev(&format!("c{i}"), "u1", "tavily", None, 0, 0, now)).collect();
    engine.record(ok(calls), now).await.unwrap();
    for attempt in 0..3 {
        let r = engine.change_plan(&uid("u1"), basic, BillingCycle::Monthly, "user:u1", now).await;
        assert!(matches!(r, Err(AppError::Conflict(_))), "attempt {attempt}: {r:?}");
    }
    let view = engine.period_view(&uid("u1"), now).await.unwrap();
    assert_eq!(view.period.start, start, "the period did not restart");
    assert_eq!(view.total_calls(), 276);
    let gate = engine.preflight(&uid("u1"), &[op("tavily", 0)], false, now).await.unwrap();
    assert_eq!(gate.calls_summary.map(|u| (u.used, u.limit)), Some((276, 300)));
    let mut conn = store.pool().acquire().await.unwrap();
    assert!(bills::billing_records(&mut conn, &uid("u1")).await.unwrap().is_empty(), "no period was closed");
    let (renewals, n) = users::renewals(&mut conn, &uid("u1"), 10, 0, false).await.unwrap();
    assert_eq!((n, renewals[0].renewal_type.as_str()), (1, "new"), "no fee charged again");
}
both_stores!(changing_plan_never_resets_usage, changing_plan_never_resets_usage);

/// Up: at once, usage carries over, the prorated difference is billed once.
/// Down: at the cycle end, with a renewal row saying so. Changes are
/// rate-limited and audited.
async fn upgrades_now_downgrades_at_cycle_end(store: Store) {
    let start = t(2026, 4, 1); // April: 30 days
    let (engine, pro) = engine_with_catalog(store.clone(), Limits::new(), start).await;
    let basic = basic_plan(&engine).await;
    user_on_plan(&engine, "u1", basic, start).await;
    let mid = t(2026, 4, 16); // 15 of 30 days left
    engine.record(ok(vec![ev("a", "u1", "tavily", None, 0, 0, mid)]), mid).await.unwrap();
    let (sub, change) = engine.change_plan(&uid("u1"), pro, BillingCycle::Monthly, "user:u1", mid).await.unwrap();
    assert_eq!(change, PlanChange::Upgrade { fee: Nanos::from_usd(25), then: None }, "half of $79 - $29");
    assert_eq!((sub.plan_id, sub.period_start), (Some(pro), start));
    assert_eq!(engine.period_view(&uid("u1"), mid).await.unwrap().total_calls(), 1, "usage carried over");
    // Down again: scheduled; Pro stays in force until May 1.
    let later = t(2026, 4, 20);
    let (sub, change) = engine.change_plan(&uid("u1"), basic, BillingCycle::Monthly, "user:u1", later).await.unwrap();
    assert_eq!(change, PlanChange::Scheduled);
    assert_eq!((sub.plan_id, sub.pending), (Some(pro), Some((basic, BillingCycle::Monthly))));
    assert!(matches!(
        engine.change_plan(&uid("u1"), basic, BillingCycle::Monthly, "user:u1", later).await,
        Err(AppError::Conflict(_))
    ));
    // The April bill: Basic's $29 + the $25 upgrade + $0.001 of usage.
    let may = t(2026, 5, 2);
    let view = engine.period_view(&uid("u1"), may).await.unwrap();
    assert_eq!(view.plan.as_ref().map(|p| p.id), Some(basic), "the downgrade took effect at the cycle end");
    let mut conn = store.pool().acquire().await.unwrap();
    let bills = bills::billing_records(&mut conn, &uid("u1")).await.unwrap();
    assert_eq!(bills.len(), 1);
    assert_eq!((bills[0].plan_fee, bills[0].usage_cost), (Nanos::from_usd(54), Nanos(1_000_000)));
    let (renewals, _) = users::renewals(&mut conn, &uid("u1"), 10, 0, false).await.unwrap();
    let kinds: Vec<_> = renewals.iter().map(|r| (r.renewal_type.as_str(), r.payment_amount)).collect();
    assert_eq!(
        kinds,
        [("downgrade", Nanos::from_usd(29)), ("upgrade", Nanos::from_usd(25)), ("new", Nanos::from_usd(29))]
    );
    // Every change is in the audit log, with before and after.
    let audited =
        scalar(&store, "SELECT CAST(COUNT(*) AS BIGINT) FROM audit_log WHERE action = 'subscription.change'").await;
    assert_eq!(audited, 2);
    drop(conn);
    // Rate limit: five changes a day at most.
    let day = t(2026, 5, 10);
    for i in 0..5 {
        let target = if i % 2 == 0 { pro } else { basic };
        engine.change_plan(&uid("u1"), target, BillingCycle::Monthly, "user:u1", day).await.unwrap();
    }
    assert!(matches!(
        engine.change_plan(&uid("u1"), pro, BillingCycle::Monthly, "user:u1", day).await,
        Err(AppError::LimitReached { .. })
    ));
    let next_day = day + Duration::days(1);
    assert_eq!(
        engine.change_plan(&uid("u1"), basic, BillingCycle::Monthly, "user:u1", next_day).await.unwrap().1,
        PlanChange::Scheduled
    );
}
both_stores!(upgrades_now_downgrades_at_cycle_end, upgrades_now_downgrades_at_cycle_end);

/// Every acknowledged cost is in exactly one bill: events before the
/// subscription are refused; late events go to the open period, marked,
/// and closed bills never change.
async fn every_cost_lands_in_exactly_one_bill(store: Store) {
    let start = t(2026, 4, 1);
    let (engine, pro) = engine_with_catalog(store.clone(), Limits::new(), t(2026, 1, 1)).await;
    user_on_plan(&engine, "u1", pro, start).await;
    let before = start - Duration::days(3);
    let r = engine.record(ok(vec![ev("early", "u1", "tavily", None, 0, 0, before)]), start).await.unwrap();
    assert_eq!(r[0].outcome, super::recording::Outcome::Rejected);
    assert!(r[0].error.as_deref().unwrap().contains("before this user's subscription began"), "{:?}", r[0].error);
    assert_eq!(sums(&store).await, (0, 0), "nothing recorded");
    // April's bill closes in May; then an April event arrives late.
    let may = t(2026, 5, 10);
    engine.record(ok(vec![ev("apr", "u1", "tavily", None, 0, 0, t(2026, 4, 5))]), t(2026, 4, 5)).await.unwrap();
    engine.period_view(&uid("u1"), may).await.unwrap();
    let mut conn = store.pool().acquire().await.unwrap();
    let closed = bills::billing_records(&mut conn, &uid("u1")).await.unwrap();
    assert_eq!(closed[0].usage_cost, Nanos(1_000_000));
    let r = engine.record(ok(vec![ev("late", "u1", "tavily", None, 0, 0, t(2026, 4, 28))]), may).await.unwrap();
    assert_eq!(r[0].outcome, super::recording::Outcome::Accepted);
    let after = bills::billing_records(&mut conn, &uid("u1")).await.unwrap();
    assert_eq!(after, closed, "a closed bill never changes");
    let view = engine.period_view(&uid("u1"), may).await.unwrap();
    assert_eq!((view.period.start, view.total_cost()), (t(2026, 5, 1), Nanos(1_000_000)), "billed in the open period");
    assert_eq!(scalar(&store, "SELECT late FROM usage_events WHERE event_id = 'late'").await, 1);
    assert_eq!(scalar(&store, "SELECT late FROM usage_events WHERE event_id = 'apr'").await, 0);
    // Closed bills + the open period == every acknowledged cost.
    let (events, rollups) = sums(&store).await;
    let billed: i64 = after.iter().map(|b| b.usage_cost.0).sum();
    assert_eq!((events, billed + view.total_cost().0), (rollups, events));
    // The label names that one period, by its start.
    let snap = engine.snapshot(&uid("u1"), Some("2026-04"), may).await.unwrap();
    assert_eq!((snap.period.start, snap.total().counts.calls), (start, 1));
}
both_stores!(every_cost_lands_in_exactly_one_bill, every_cost_lands_in_exactly_one_bill);

/// The usage log pages by cursor and by offset (a deep page reads what the
/// first does) and counts from the rollups; all agree with the events
/// themselves.
async fn usage_log_pages_by_cursor(store: Store) {
    use crate::domain::usage_log::{LogFilter, LogStart};
    let start = t(2026, 4, 1);
    let (engine, pro) = engine_with_catalog(store.clone(), Limits::new(), t(2026, 1, 1)).await;
    user_on_plan(&engine, "u1", pro, start).await;
    let now = t(2026, 4, 20);
    let mut events = Vec::new();
    for i in 0..230 {
        // Many share a timestamp, so the cursor must break ties by id.
        let mut e = ev(
            &format!("e{i}"),
            "u1",
            if i % 3 == 0 { "gemini" } else { "tavily" },
            None,
            10,
            5,
            start + Duration::hours(i / 4),
        );
        e.model = (i % 3 == 0).then(|| "gemini-2.5-pro".to_string());
        if i % 7 == 0 {
            e.status_code = 500;
        }
        events.push(e);
    }
    engine.record(ok(events), now).await.unwrap();
    for filter in [
        LogFilter::default(),
        LogFilter { provider: Some("gemini".into()), ..Default::default() },
        LogFilter { failed: Some(true), ..Default::default() },
        LogFilter { failed: Some(false), billing_period: Some("2026-04".into()), ..Default::default() },
        LogFilter { status_code: Some(500), ..Default::default() },
    ] {
        let (all, total) = engine.usage_log(&uid("u1"), &filter, 1000, LogStart::Offset(0)).await.unwrap();
        assert_eq!(total, all.len() as i64, "{filter:?}: the count matches the rows");
        let mut paged = Vec::new();
        let mut at = LogStart::Offset(0);
        loop {
            let (rows, _) = engine.usage_log(&uid("u1"), &filter, 25, at).await.unwrap();
            let Some(last) = rows.last() else { break };
            at = LogStart::Before(last.occurred_at, last.id);
            paged.extend(rows.iter().map(|r| r.id));
        }
        assert_eq!(paged, all.iter().map(|r| r.id).collect::<Vec<_>>(), "{filter:?}: cursor pages == one long page");
        // Offset pages (which skip over ids before reading rows) too, past
        // the end included.
        let mut by_offset = Vec::new();
        for page in 0..=(all.len() / 25 + 1) {
            let (rows, _) =
                engine.usage_log(&uid("u1"), &filter, 25, LogStart::Offset(page as i64 * 25)).await.unwrap();
            assert!(rows.len() <= 25);
            by_offset.extend(rows.iter().map(|r| r.id));
        }
        assert_eq!(by_offset, paged, "{filter:?}: offset pages == cursor pages");
    }
    let failed = scalar(&store, "SELECT CAST(COUNT(*) AS BIGINT) FROM usage_events WHERE status_code >= 400").await;
    let f = LogFilter { failed: Some(true), ..Default::default() };
    assert_eq!(engine.usage_log(&uid("u1"), &f, 1, LogStart::Offset(0)).await.unwrap().1, failed);
}
both_stores!(usage_log_pages_by_cursor, usage_log_pages_by_cursor);

/// Two instances started together with `--demo` on one empty database seed
/// it once: one seeds, the other waits for it and seeds nothing.
async fn instances_started_together_seed_once(store: Store) {
    let now = t(2026, 11, 23) + Duration::hours(13);
    let a = Engine::new(store.clone(), Default::default());
    let b = Engine::new(store.clone(), Default::default());
    let (ra, rb) = tokio::join!(
        tokio::spawn(async move { crate::server::seed::seed_demo(&a, now).await }),
        tokio::spawn(async move { crate::server::seed::seed_demo(&b, now).await })
    );
    let (ra, rb) = (ra.unwrap().unwrap(), rb.unwrap().unwrap());
    assert!(ra.seeded ^ rb.seeded, "exactly one seeded: {ra:?} {rb:?}");
    let events = (ra.events + rb.events) as i64;
    assert_eq!(scalar(&store, "SELECT CAST(COUNT(*) AS BIGINT) FROM usage_events").await, events);
    assert_eq!(scalar(&store, "SELECT CAST(COUNT(*) AS BIGINT) FROM users").await, 3);
    assert_eq!(scalar(&store, "SELECT CAST(COUNT(*) AS BIGINT) FROM plans").await, 5);
    // A later start finds it done.
    let c = Engine::new(store.clone(), Default::default());
    assert!(!crate::server::seed::seed_demo(&c, now).await.unwrap().seeded);
}
both_stores!(instances_started_together_seed_once, instances_started_together_seed_once);

/// Concurrent reservations against a cost cap and a token limit (not only a
/// calls limit) admit exactly what fits; `units_requested` is held at the
/// unit price.
async fn holds_respect_cost_and_token_limits(store: Store) {
    use super::gate::Operation;
    use crate::domain::provider::Provider;
    let start = t(2026, 11, 1);
    // $0.04 cap; Tavily is $0.001 a search: 40 searches. 100,000 Gemini tokens.
    let limits = Limits::new().with("monthly_cost", 40_000_000).with("gemini_tokens", 100_000);
    let (mut engine, plan) = engine_with_catalog(store.clone(), limits, start).await;
    // Unpriced models are admitted against call and token limits, $0 held.
    engine.config.unpriced_policy = super::UnpricedPolicy::Allow;
    user_on_plan(&engine, "u1", plan, start).await;
    let now = t(2026, 11, 10);
    let run = |ops: Vec<Operation>, n: usize| {
        let engine = engine.clone();
        async move {
            let tasks: Vec<_> = (0..n)
                .map(|_| {
                    let (engine, ops) = (engine.clone(), ops.clone());
                    tokio::spawn(
                        async move { engine.preflight(&uid("u1"), &ops, true, now).await.unwrap().can_proceed },
                    )
                })
                .collect();
            let mut admitted = 0;
            for t in tasks {
                admitted += t.await.unwrap() as usize;
            }
            admitted
        }
    };
    // Two searches per request at the unit price: 20 of 120 fit the cap.
    let searches = Operation { units_requested: Some(2), ..op("tavily", 0) };
    assert_eq!(run(vec![searches], 120).await, 20);
    store.settled().await.unwrap();
    let held = scalar(&store, "SELECT CAST(COALESCE(SUM(cost_nanos), 0) AS BIGINT) FROM reservations").await;
    assert_eq!(held, 40_000_000, "the cap is held to the nano-dollar");
    // Tokens: 2,500 a request, 40 of 120 fit 100,000 (model unpriced-free: a
    // cheap priced one would hit the cost cap first, so price nothing here).
    let tokens = Operation {
        provider: Provider::parse("gemini").unwrap(),
        model: Some("gemini-unpriced-test".into()),
        tokens_requested: 2_500,
        units_requested: None,
        service_tier: Default::default(),
        operation_type: "chat".into(),
    };
    assert_eq!(run(vec![tokens], 120).await, 40);
}
both_stores!(holds_respect_cost_and_token_limits, holds_respect_cost_and_token_limits);

/// A reservation of several operations holds each; an event settles only
/// the hold of its own provider and model.
async fn an_event_settles_only_its_own_hold(store: Store) {
    use super::gate::Operation;
    let start = t(2026, 11, 1);
    let limits = Limits::new().with("tavily_calls", 3).with("gemini_calls", 2);
    let (engine, plan) = engine_with_catalog(store.clone(), limits, start).await;
    user_on_plan(&engine, "u1", plan, start).await;
    let now = t(2026, 11, 10);
    let pro = Operation { model: Some("gemini-2.5-pro".into()), ..op("gemini", 100) };
    let p = engine.preflight(&uid("u1"), &[op("tavily", 0), op("tavily", 0), pro.clone()], true, now).await.unwrap();
    assert!(p.can_proceed);
    let rid = p.reservation_id.unwrap();
    // Holds are committed without waiting for the disk; other connections
    // see them once their group commits.
    store.settled().await.unwrap();
    assert_eq!(scalar(&store, "SELECT CAST(COUNT(*) AS BIGINT) FROM reservations").await, 3, "one hold per operation");
    // The first Tavily search arrives: one Tavily hold settles, the other and
    // the Gemini one keep counting.
    let mut e = ev("s1", "u1", "tavily", None, 0, 0, now);
    e.reservation_id = Some(rid.clone());
    engine.record(ok(vec![e]), now).await.unwrap();
    let open = "SELECT CAST(COUNT(*) AS BIGINT) FROM reservations WHERE consumed_at IS NULL";
    assert_eq!(scalar(&store, open).await, 2);
    // 1 recorded + 1 held of 3: one more Tavily call fits, not two.
    let check = engine.preflight(&uid("u1"), &[op("tavily", 0), op("tavily", 0)], false, now).await.unwrap();
    assert!(!check.can_proceed);
    assert!(engine.preflight(&uid("u1"), &[op("tavily", 0)], false, now).await.unwrap().can_proceed);
    // Gemini's hold settles with its own event, by model.
    let mut g = ev("g1", "u1", "gemini", Some("gemini-2.5-pro"), 100, 0, now);
    g.reservation_id = Some(rid);
    engine.record(ok(vec![g]), now).await.unwrap();
    assert_eq!(scalar(&store, open).await, 1, "only the second Tavily hold is left");
    // Pruning deletes the two spent holds and keeps the open one, which
    // still counts; once it has expired, it goes too.
    let all = "SELECT CAST(COUNT(*) AS BIGINT) FROM reservations";
    assert_eq!(engine.prune_stale(now).await.unwrap().2, 2);
    assert_eq!((scalar(&store, all).await, scalar(&store, open).await), (1, 1));
    assert!(!engine.preflight(&uid("u1"), &[op("tavily", 0), op("tavily", 0)], false, now).await.unwrap().can_proceed);
    assert_eq!(engine.prune_stale(now + chrono::Duration::hours(1)).await.unwrap().2, 1);
    assert_eq!(scalar(&store, all).await, 0);
}
both_stores!(an_event_settles_only_its_own_hold, an_event_settles_only_its_own_hold);

/// One batch naming one reservation several times settles one hold per
/// event, each its own (two Tavily events take both Tavily holds, not the
/// same one twice), and an event past the reservation's holds settles none.
async fn a_batch_settles_one_hold_per_event(store: Store) {
    use super::gate::Operation;
    let start = t(2026, 11, 1);
    let (engine, plan) = engine_with_catalog(store.clone(), Limits::new(), start).await;
    user_on_plan(&engine, "u1", plan, start).await;
    let now = t(2026, 11, 10);
    let pro = Operation { model: Some("gemini-2.5-pro".into()), ..op("gemini", 100) };
    let p = engine.preflight(&uid("u1"), &[op("tavily", 0), pro, op("tavily", 0)], true, now).await.unwrap();
    let rid = p.reservation_id.unwrap();
    let other = engine.preflight(&uid("u1"), &[op("tavily", 0)], true, now).await.unwrap().reservation_id.unwrap();
    store.settled().await.unwrap();
    let named = |id: &str, provider: &str, model: Option<&str>| {
        let mut e = ev(id, "u1", provider, model, 0, 0, now);
        e.reservation_id = Some(rid.clone());
        e
    };
    let batch = vec![
        named("a", "tavily", None),
        named("b", "gemini", Some("gemini-2.5-pro")),
        named("c", "tavily", None),
        named("d", "tavily", None),
    ];
    engine.record(ok(batch), now).await.unwrap();
    let open = format!("SELECT CAST(COUNT(*) AS BIGINT) FROM reservations WHERE consumed_at IS NULL AND id = '{rid}'");
    assert_eq!(scalar(&store, &open).await, 0, "all three holds settled");
    let others =
        format!("SELECT CAST(COUNT(*) AS BIGINT) FROM reservations WHERE consumed_at IS NULL AND id = '{other}'");
    assert_eq!(scalar(&store, &others).await, 1, "the fourth event took nothing from another reservation");
}
both_stores!(a_batch_settles_one_hold_per_event, a_batch_settles_one_hold_per_event);

/// Unpriced calls are not free forever: the gate refuses them by default,
/// and adding a price re-prices what was recorded: in place while the
/// period is open, in the open period (late) once its bill is issued.
async fn unpriced_usage_is_denied_then_repriced(store: Store) {
    use super::gate::Operation;
    use crate::server::service::admin::PriceForm;
    let start = t(2026, 4, 1);
    // A $13 cap: re-priced usage reaches 80 % and 90 % of it.
    let cap = Limits::new().with("monthly_cost", Nanos::from_usd(13).0);
    let (engine, pro) = engine_with_catalog(store.clone(), cap, t(2026, 1, 1)).await;
    user_on_plan(&engine, "u1", pro, start).await;
    let preview = Operation { model: Some("o4-preview".into()), ..op("openai", 1000) };
    let denied = engine.preflight(&uid("u1"), std::slice::from_ref(&preview), true, t(2026, 4, 10)).await;
    match denied {
        Err(AppError::Unpriced(m)) => assert!(m.contains("o4-preview"), "{m}"),
        other => panic!("expected an unpriced refusal, got {other:?}"),
    }
    // Recorded anyway (it happened): $0, flagged, alerted.
    let mut april = ev("apr", "u1", "openai", Some("o4-preview"), 1_000_000, 0, t(2026, 4, 20));
    april.tokens_output = 1_000_000;
    engine.record(ok(vec![april.clone()]), t(2026, 4, 20)).await.unwrap();
    let may = t(2026, 5, 10);
    let may_ev = ev("may", "u1", "openai", Some("o4-preview"), 1_000_000, 0, may);
    engine.record(ok(vec![may_ev]), may).await.unwrap();
    let mut conn = store.pool().acquire().await.unwrap();
    let april_bill = bills::billing_records(&mut conn, &uid("u1")).await.unwrap();
    assert_eq!(april_bill.len(), 1);
    drop(conn);
    assert_eq!(engine.period_view(&uid("u1"), may).await.unwrap().total_cost(), Nanos::ZERO);
    // The admin prices it from April 1: $2/M in, $8/M out.
    use crate::domain::pricing::RateField;
    let form = PriceForm {
        effective_from: Some("2026-04-01T00:00:00Z".into()),
        ..PriceForm::with_rates(
            "openai",
            "o4-preview",
            &[(RateField::InputPerMillion, "2"), (RateField::OutputPerMillion, "8")],
        )
    };
    engine.add_price(&form, "user:root", may).await.unwrap();
    // May's event: in place, $2. April's: its bill was issued, so it is
    // billed in May, late: $2 + $8.
    let view = engine.period_view(&uid("u1"), may).await.unwrap();
    assert_eq!(view.total_cost(), Nanos::from_usd(12));
    // $12 of $13: the cap's 80 % and 90 % alerts, as if priced at once.
    let (list, _) = engine.alerts(&uid("u1"), false).await.unwrap();
    let mut cap_alerts: Vec<_> = list
        .iter()
        .filter(|a| a.billing_period.as_deref() == Some("2026-05") && a.title.contains("cost"))
        .map(|a| a.threshold)
        .collect();
    cap_alerts.sort();
    assert_eq!(cap_alerts, [80, 90], "{list:?}");
    let mut conn = store.pool().acquire().await.unwrap();
    assert_eq!(
        bills::billing_records(&mut conn, &uid("u1")).await.unwrap(),
        april_bill,
        "the closed bill stays as issued"
    );
    drop(conn);
    assert_eq!(scalar(&store, "SELECT late FROM usage_events WHERE event_id = 'apr'").await, 1);
    assert_eq!(scalar(&store, "SELECT CAST(COUNT(*) AS BIGINT) FROM usage_events WHERE unpriced = 1").await, 0);
    let (events, rollups) = sums(&store).await;
    assert_eq!((events, rollups), (12_000_000_000, 12_000_000_000));
    assert_eq!(scalar(&store, "SELECT CAST(SUM(unpriced_calls) AS BIGINT) FROM usage_rollups").await, 0);
    assert_eq!(scalar(&store, "SELECT CAST(SUM(calls) AS BIGINT) FROM usage_rollups").await, 2);
    // The admin alert resolved; the audit log says what and by whom.
    assert_eq!(
        scalar(
            &store,
            "SELECT CAST(COUNT(*) AS BIGINT) FROM alerts WHERE alert_type = 'unpriced_model' AND resolved_at IS NULL"
        )
        .await,
        0
    );
    assert_eq!(
        scalar(
            &store,
            "SELECT CAST(COUNT(*) AS BIGINT) FROM audit_log WHERE action = 'usage.reprice' AND actor = 'user:root'"
        )
        .await,
        1
    );
    // A resend of the event answers the cost it now carries.
    let again = engine.record(ok(vec![april]), may).await.unwrap();
    assert_eq!((again[0].outcome, again[0].cost), (super::recording::Outcome::Duplicate, Nanos::from_usd(10)));
    // And the gate prices it now.
    assert!(engine.preflight(&uid("u1"), &[preview], false, may).await.unwrap().can_proceed);
}
both_stores!(unpriced_usage_is_denied_then_repriced, unpriced_usage_is_denied_then_repriced);

/// Cancel (at the cycle end or now), pause and resume: the gate admits
/// nothing while not active, cycles that start then cost nothing, and the
/// renewal history and audit log record each change (family A's history
/// keeps to its four types).
async fn subscription_lifecycle(store: Store) {
    use super::subscriptions::Lifecycle;
    let start = t(2026, 4, 1);
    let (engine, pro) = engine_with_catalog(store.clone(), Limits::new(), t(2026, 1, 1)).await;
    user_on_plan(&engine, "u1", pro, start).await;
    let mid = t(2026, 4, 15);
    let sub = engine.change_status(&uid("u1"), Lifecycle::CancelAtCycleEnd, "user:u1", mid).await.unwrap();
    assert_eq!((sub.status.as_str(), sub.cancel_at), ("active", Some(t(2026, 5, 1))));
    assert!(engine.preflight(&uid("u1"), &[op("tavily", 0)], true, mid).await.unwrap().can_proceed, "runs until then");
    assert!(matches!(
        engine.change_status(&uid("u1"), Lifecycle::CancelAtCycleEnd, "user:u1", mid).await,
        Err(AppError::Conflict(_))
    ));
    // The cycle ends: cancelled, May costs nothing, the gate says why.
    let may = t(2026, 5, 3);
    let view = engine.period_view(&uid("u1"), may).await.unwrap();
    assert_eq!(view.subscription.status.as_str(), "cancelled");
    match engine.preflight(&uid("u1"), &[op("tavily", 0)], false, may).await {
        Err(AppError::Forbidden(m)) => assert!(m.contains("cancelled"), "{m}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(matches!(
        engine.change_plan(&uid("u1"), pro, BillingCycle::Yearly, "user:u1", may).await,
        Err(AppError::Conflict(_))
    ));
    // Resume: active again; the fee comes back with the next cycle.
    engine.change_status(&uid("u1"), Lifecycle::Resume, "user:u1", may).await.unwrap();
    assert!(engine.preflight(&uid("u1"), &[op("tavily", 0)], false, may).await.unwrap().can_proceed);
    // Pause in June: nothing admitted; July's cycle starts while paused: $0.
    let june = t(2026, 6, 10);
    engine.change_status(&uid("u1"), Lifecycle::Pause, "admin", june).await.unwrap();
    assert!(matches!(engine.preflight(&uid("u1"), &[op("tavily", 0)], false, june).await, Err(AppError::Forbidden(_))));
    engine.period_view(&uid("u1"), t(2026, 7, 2)).await.unwrap();
    let mut conn = store.pool().acquire().await.unwrap();
    let fees: Vec<(String, i64)> = bills::billing_records(&mut conn, &uid("u1"))
        .await
        .unwrap()
        .iter()
        .map(|b| (b.billing_period.clone(), b.plan_fee.0))
        .collect();
    assert_eq!(
        fees,
        [("2026-06".into(), 79_000_000_000), ("2026-05".into(), 0), ("2026-04".into(), 79_000_000_000)],
        "April paid; May cancelled (resumed mid-cycle: no fee); June's cycle started active: paid"
    );
    // July's cycle started while paused: nothing accrues.
    assert_eq!(engine.period_view(&uid("u1"), t(2026, 7, 2)).await.unwrap().subscription.period_fee, Some(Nanos::ZERO));
    let (all, _) = users::renewals(&mut conn, &uid("u1"), 20, 0, false).await.unwrap();
    let kinds: Vec<_> = all.iter().map(|r| r.renewal_type.as_str()).collect();
    assert_eq!(kinds, ["pause", "renewal", "resume", "cancellation", "new"]);
    let (family_a, n) = users::renewals(&mut conn, &uid("u1"), 20, 0, true).await.unwrap();
    let kinds: Vec<_> = family_a.iter().map(|r| r.renewal_type.as_str()).collect();
    assert_eq!((n, kinds), (2, vec!["renewal", "new"]), "family A sees its four types only");
    drop(conn);
    let audited =
        scalar(&store, "SELECT CAST(COUNT(*) AS BIGINT) FROM audit_log WHERE action LIKE 'subscription.%'").await;
    assert_eq!(audited, 3);
    // Cancelled now: at once.
    engine.change_status(&uid("u1"), Lifecycle::Resume, "admin", t(2026, 7, 3)).await.unwrap();
    let sub = engine.change_status(&uid("u1"), Lifecycle::CancelNow, "admin", t(2026, 7, 4)).await.unwrap();
    assert_eq!(sub.status.as_str(), "cancelled");
}
both_stores!(subscription_lifecycle, subscription_lifecycle);

/// Threshold alerts resolve when usage is back under them (an upgrade, a
/// new period), and apply again, saying so anew, when usage reaches them
/// under the new limit.
async fn alerts_resolve_and_reopen(store: Store) {
    let start = t(2026, 4, 1);
    let (engine, pro) = engine_with_catalog(store.clone(), Limits::new().with("tavily_calls", 1000), start).await;
    let basic = basic_plan(&engine).await;
    user_on_plan(&engine, "u1", basic, start).await;
    let now = t(2026, 4, 10);
    let calls = |from: usize, to: usize, at| -> Vec<_> {
        (from..to).map(|i| ev(&format!("c{i}"), "u1", "tavily", None, 0, 0, at)).collect()
    };
    engine.record(ok(calls(0, 280, now)), now).await.unwrap();
    let open = |engine: Engine| async move {
        let (all, _) = engine.alerts(&uid("u1"), false).await.unwrap();
        let mut v: Vec<(i64, bool, bool, String)> =
            all.into_iter().map(|a| (a.threshold, a.resolved_at.is_some(), a.is_read, a.message)).collect();
        v.sort();
        v
    };
    let a = open(engine.clone()).await;
    assert_eq!(a.iter().map(|x| (x.0, x.1)).collect::<Vec<_>>(), vec![(80, false), (90, false)]);

    // Upgrade: 280 of 1,000 is under both thresholds.
    engine.change_plan(&uid("u1"), pro, BillingCycle::Monthly, "user:u1", now).await.unwrap();
    let a = open(engine.clone()).await;
    assert_eq!(a.iter().map(|x| (x.0, x.1, x.2)).collect::<Vec<_>>(), vec![(80, true, true), (90, true, true)]);
    let (_, unread) = engine.alerts(&uid("u1"), true).await.unwrap();
    assert_eq!(unread, 0, "a resolved alert asks for nothing");

    // 800 of 1,000: 80% again, under the new limit, unread, with new words.
    let later = now + Duration::days(2);
    engine.record(ok(calls(280, 800, later)), later).await.unwrap();
    let a = open(engine.clone()).await;
    assert_eq!((a[0].0, a[0].1, a[0].2), (80, false, false));
    assert!(a[0].3.contains("800 of 1,000"), "{}", a[0].3);
    assert_eq!((a[1].0, a[1].1), (90, true), "90% is not reached again");

    // A new period: usage starts from zero, the old alerts stop applying.
    let next = t(2026, 5, 3);
    engine.record(ok(calls(800, 801, next)), next).await.unwrap();
    let a = open(engine.clone()).await;
    assert!(a.iter().all(|x| x.1), "{a:?}");
}
both_stores!(alerts_resolve_and_reopen, alerts_resolve_and_reopen);

/// A spend spike: an hour costing more than 5 times the hourly average of
/// the seven days before raises one alert that day; exactly 5 times does
/// not; a customer without a day of history is not judged.
async fn spend_spikes_alert_once_a_day(store: Store) {
    let start = t(2026, 11, 1);
    let (engine, plan) = engine_with_catalog(store.clone(), Limits::new(), start).await;
    user_on_plan(&engine, "u1", plan, start).await;
    let now = t(2026, 11, 10) + Duration::hours(12);
    // One $0.001 search an hour for the seven days before the last hour.
    let baseline: Vec<_> = (0..168)
        .map(|k| ev(&format!("b{k}"), "u1", "tavily", None, 0, 0, now - Duration::minutes(90) - Duration::hours(k)))
        .collect();
    engine.record(ok(baseline), now - Duration::minutes(80)).await.unwrap();
    let spikes = |engine: Engine| async move {
        engine
            .alerts(&uid("u1"), false)
            .await
            .unwrap()
            .0
            .into_iter()
            .filter(|a| a.alert_type == "usage_spike")
            .collect::<Vec<_>>()
    };
    let hour: Vec<_> =
        (0..5).map(|i| ev(&format!("h{i}"), "u1", "tavily", None, 0, 0, now - Duration::minutes(30))).collect();
    engine.record(ok(hour), now).await.unwrap();
    assert!(!engine.check_spike(&uid("u1"), now).await.unwrap(), "5x the average is not more than 5x");
    engine.record(ok(vec![ev("h5", "u1", "tavily", None, 0, 0, now - Duration::minutes(5))]), now).await.unwrap();
    assert!(engine.check_spike(&uid("u1"), now).await.unwrap());
    assert!(!engine.check_spike(&uid("u1"), now + Duration::minutes(10)).await.unwrap(), "once a day");
    let s = spikes(engine.clone()).await;
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].severity.as_str(), "warning");
    assert!(s[0].message.contains("$0.0060 in the last hour, 6.0x your hourly average of $0.0010"), "{}", s[0].message);

    // A customer of twelve hours: nothing to judge against.
    user_on_plan(&engine, "new", plan, now - Duration::hours(12)).await;
    let burst: Vec<_> = (0..50).map(|i| ev(&format!("n{i}"), "new", "tavily", None, 0, 0, now)).collect();
    engine.record(ok(burst), now).await.unwrap();
    assert!(!engine.check_spike(&uid("new"), now).await.unwrap());
    // Turned off.
    let mut off = engine.clone();
    off.config.spike_multiple = 0;
    assert!(!off.check_spike(&uid("u1"), now + Duration::days(1)).await.unwrap());
}
both_stores!(spend_spikes_alert_once_a_day, spend_spikes_alert_once_a_day);

/// Web-search queries a price does not cover are counted at $0, and the
/// administrators are told (and webhooks, as `price.unpriced`); a price
/// version with a per-query rate resolves that and prices queries from its
/// start, while earlier events keep the price they had.
async fn search_queries_without_a_price_are_flagged(store: Store) {
    use crate::domain::alerts::UNPRICED_SEARCH;
    use crate::domain::pricing::RateField;
    use crate::server::service::admin::PriceForm;
    let start = t(2026, 11, 1);
    let (engine, plan) = engine_with_catalog(store.clone(), Limits::new(), start).await;
    user_on_plan(&engine, "u1", plan, start).await;
    let (hook, _) =
        engine.create_webhook("http://127.0.0.1:9/p", &["price.unpriced".into()], "", "admin", start).await.unwrap();
    let at = t(2026, 11, 5);
    let with_queries = |id: &str, at| {
        let mut e = ev(id, "u1", "gemini", Some("gemini-2.5-pro"), 1000, 100, at);
        e.parts[Count::SearchQueries] = 3;
        e
    };
    let plain = ev("s0", "u1", "gemini", Some("gemini-2.5-pro"), 1000, 100, at);
    let r = engine.record(ok(vec![plain, with_queries("s1", at)]), at).await.unwrap();
    assert_eq!((r[0].cost.0, r[1].cost.0), (2_250_000, 2_250_000), "the queries cost nothing");
    assert!(!r[1].unpriced, "the tokens are priced");
    let open = |store: Store| async move {
        let mut conn = store.pool().acquire().await.unwrap();
        crate::server::store::alerts::alerts(&mut conn, None, false, 50)
            .await
            .unwrap()
            .into_iter()
            .filter(|a| a.alert_type == UNPRICED_SEARCH)
            .map(|a| (a.title, a.resolved_at.is_some()))
            .collect::<Vec<_>>()
    };
    assert_eq!(open(store.clone()).await, vec![("No search-query price for gemini / gemini-2.5-pro".into(), false)]);
    // Again: still one alert, one webhook.
    engine.record(ok(vec![with_queries("s2", at)]), at).await.unwrap();
    assert_eq!(open(store.clone()).await.len(), 1);
    let (_, sent) = engine.webhook_deliveries(&hook.id, 10).await.unwrap();
    assert_eq!(sent.len(), 1);

    // A version with a per-query price from the 6th.
    let from = t(2026, 11, 6);
    let form = PriceForm {
        effective_from: Some(from.to_rfc3339()),
        ..PriceForm::with_rates(
            "gemini",
            "gemini-2.5-pro",
            &[
                (RateField::InputPerMillion, "1.25"),
                (RateField::OutputPerMillion, "10"),
                (RateField::PerSearchQuery, "0.035"),
            ],
        )
    };
    engine.add_price(&form, "admin", from).await.unwrap();
    assert_eq!(open(store.clone()).await, vec![("No search-query price for gemini / gemini-2.5-pro".into(), true)]);
    let later = t(2026, 11, 7);
    let r = engine.record(ok(vec![with_queries("s3", later)]), later).await.unwrap();
    // $0.00125 + $0.001 of tokens, and 3 queries at $0.035.
    assert_eq!(r[0].cost.0, 107_250_000);
    assert_eq!(open(store.clone()).await.iter().filter(|(_, resolved)| !resolved).count(), 0);
}
both_stores!(search_queries_without_a_price_are_flagged, search_queries_without_a_price_are_flagged);

/// A catalog change whose transaction rolled back leaves nothing behind:
/// the snapshot the cache loaded inside it (a $5 Tavily search) is never
/// taken for a catalog committed later, which once got the same revision.
async fn a_rolled_back_price_never_prices(store: Store) {
    use crate::domain::pricing::{ClassRates, PriceVersion, Rates};
    use crate::server::testing::price;
    let start = t(2026, 4, 1);
    let (engine, plan) = engine_with_catalog(store.clone(), Limits::new(), start).await;
    user_on_plan(&engine, "u1", plan, start).await;
    let now = t(2026, 4, 20);
    let mut tx = store.begin().await.unwrap();
    let v = PriceVersion {
        id: 0,
        provider: crate::domain::provider::Provider::parse("tavily").unwrap(),
        model: "*".into(),
        effective_from: t(2026, 4, 10),
        rates: Rates::from(ClassRates { per_search: price("5"), ..ClassRates::default() }),
        description: String::new(),
        max_output_tokens: None,
    };
    catalog::insert_price_version(&mut tx, &v, None, now).await.unwrap();
    let inside = engine.catalog.get_in(&mut tx).await.unwrap();
    assert!(inside.prices.lookup(&v.provider, None, now).is_some_and(|p| p.effective_from == v.effective_from));
    drop(tx);
    // Another change, committed, bumping the revision once as the rolled
    // back one did: a plan, leaving Tavily's price as it was.
    let mut tx = store.begin().await.unwrap();
    let other = Plan {
        id: 0,
        name: "Other".into(),
        tier: Tier::Basic,
        price_monthly: Nanos::from_usd(9),
        price_yearly: Nanos::from_usd(90),
        description: String::new(),
        features: vec![],
        limits: Limits::new(),
        archived: false,
        credits: Default::default(),
    };
    catalog::insert_plan(&mut tx, &other, now).await.unwrap();
    tx.commit().await.unwrap();
    let r = engine.record(ok(vec![ev("e1", "u1", "tavily", None, 0, 0, now)]), now).await.unwrap();
    let tenth_of_a_cent = Nanos(1_000_000);
    assert_eq!(r[0].cost, tenth_of_a_cent, "priced by the committed catalog: {r:?}");
    let gate = engine.preflight(&uid("u1"), &[op("tavily", 0)], true, now).await.unwrap();
    assert_eq!(gate.total_cost, tenth_of_a_cent);
}
both_stores!(a_rolled_back_price_never_prices, a_rolled_back_price_never_prices);
