//! Tags, breakdowns, advice and profitability against real stores: every
//! figure is checked against the recorded events it must reconcile with.

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;

use super::tests::{ev, ok, scalar};
use crate::both_stores;
use crate::domain::event::UsageEvent;
use crate::domain::limits::Limits;
use crate::domain::money::Nanos;
use crate::domain::plan::{Plan, Tier};
use crate::domain::pricing::{ClassRates, PriceVersion, Rates};
use crate::domain::provider::Provider;
use crate::domain::tags::{BreakdownBy, TagFilter, Tags};
use crate::domain::usage_log::{LogFilter, LogStart};
use crate::server::service::Engine;
use crate::server::store::{Store, catalog};
use crate::server::testing::{engine_with_catalog, price, t, uid, user_on_plan};

fn tagged(mut e: UsageEvent, tags: &[(&str, &str)]) -> UsageEvent {
    e.tags = Tags(tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
    e
}

fn key(k: &str) -> Option<String> {
    Some(k.to_string())
}

async fn tags_break_down_cost_and_filter_the_log(store: Store) {
    let start = t(2026, 11, 1);
    let (engine, plan) = engine_with_catalog(store.clone(), Limits::new(), start).await;
    user_on_plan(&engine, "u1", plan, start).await;
    let now = t(2026, 11, 10);
    let gem = |id: &str, i: u64| ev(id, "u1", "gemini", Some("gemini-2.5-pro"), i, 500, now);
    let events = vec![
        tagged(gem("a", 1000), &[("project", "blog"), ("feature", "outline")]),
        tagged(gem("b", 2000), &[("project", "blog")]),
        tagged(gem("c", 3000), &[("project", "shop")]),
        tagged(gem("d", 4000), &[("feature", "outline")]),
        ev("s", "u1", "tavily", None, 0, 0, now),
        // A duplicate with other tags: neither billed nor tagged twice.
        tagged(gem("a", 1000), &[("project", "shop")]),
    ];
    engine.record(ok(events), now).await.unwrap();
    assert_eq!(scalar(&store, "SELECT CAST(COUNT(*) AS BIGINT) FROM usage_event_tags").await, 5);

    let total = engine.period_view(&uid("u1"), now).await.unwrap().total_cost();
    let b = engine.breakdown(&uid("u1"), BreakdownBy::Tag("project".into()), None, now).await.unwrap();
    assert_eq!(b.billing_period, "2026-11");
    let cost = |i: i64| Nanos(i * 1250 + 5_000_000);
    let rows: Vec<_> = b.rows.iter().map(|g| (g.key.clone(), g.calls, g.tokens, g.cost)).collect();
    // Largest cost first, the untagged group last.
    assert_eq!(
        rows,
        [
            (key("blog"), 2, 4000, Nanos(cost(1000).0 + cost(2000).0)),
            (key("shop"), 1, 3500, cost(3000)),
            (None, 2, 4500, Nanos(cost(4000).0 + 1_000_000)),
        ]
    );
    assert_eq!(b.rows.iter().map(|g| g.cost).sum::<Nanos>(), total);
    assert_eq!(b.total_cost, total);
    assert_eq!(b.tag_keys, ["feature", "project"]);

    // By model and by provider: the same total.
    let m = engine.breakdown(&uid("u1"), BreakdownBy::Model, None, now).await.unwrap();
    assert_eq!(
        m.rows.iter().map(|g| (g.key.clone(), g.calls)).collect::<Vec<_>>(),
        [(key("gemini-2.5-pro"), 4), (None, 1)]
    );
    assert_eq!(m.rows.iter().map(|g| g.cost).sum::<Nanos>(), total);
    let p = engine.breakdown(&uid("u1"), BreakdownBy::Provider, Some("2026-11"), now).await.unwrap();
    assert_eq!(p.rows.iter().map(|g| g.cost).sum::<Nanos>(), total);

    // The log filtered by a tag lists exactly its events, counted alike.
    let filter = LogFilter { tag: TagFilter::parse(Some("project=blog")).unwrap(), ..Default::default() };
    let (log, n) = engine.usage_log(&uid("u1"), &filter, 50, LogStart::Offset(0)).await.unwrap();
    let mut ids: Vec<_> = log.iter().map(|e| e.event_id.as_str()).collect();
    ids.sort();
    assert_eq!((ids, n), (vec!["a", "b"], 2));
    assert_eq!(log.iter().find(|e| e.event_id == "a").unwrap().tags.get("feature"), Some("outline"));
    assert_eq!(log.iter().map(|e| e.cost_total).sum::<Nanos>(), b.rows[0].cost);
    let none = LogFilter { tag: TagFilter::parse(Some("project=nope")).unwrap(), ..Default::default() };
    assert_eq!(engine.usage_log(&uid("u1"), &none, 50, LogStart::Offset(0)).await.unwrap().1, 0);
}
both_stores!(tags_break_down_cost_and_filter_the_log, tags_break_down_cost_and_filter_the_log);

async fn add_plan(engine: &Engine, name: &str, monthly_usd: i64, gemini_calls: i64, at: DateTime<Utc>) -> i64 {
    let mut tx = engine.store.begin().await.unwrap();
    let plan = Plan {
        id: 0,
        name: name.into(),
        tier: Tier::Basic,
        price_monthly: Nanos::from_usd(monthly_usd),
        price_yearly: Nanos::from_usd(monthly_usd * 10),
        description: String::new(),
        features: vec![],
        limits: Limits::new().with("gemini_calls", gemini_calls),
        archived: false,
        credits: Default::default(),
    };
    let id = catalog::insert_plan(&mut tx, &plan, at).await.unwrap();
    let flash = PriceVersion {
        id: 0,
        provider: Provider::parse("gemini").unwrap(),
        model: format!("gemini-flash-{name}"),
        effective_from: at,
        rates: Rates::from(ClassRates {
            input_per_million: price("0.30"),
            output_per_million: price("2.50"),
            ..ClassRates::default()
        }),
        description: String::new(),
        max_output_tokens: None,
    };
    if name == "Small" {
        catalog::insert_price_version(&mut tx, &flash, None, at).await.unwrap();
    }
    tx.commit().await.unwrap();
    id
}

async fn advice_reconciles_with_events_and_catalog(store: Store) {
    let start = t(2026, 7, 1);
    let (engine, pro) = engine_with_catalog(store.clone(), Limits::new().with("gemini_calls", 1000), start).await;
    let small = add_plan(&engine, "Small", 9, 10, start).await;
    add_plan(&engine, "Tiny", 1, 4, start).await;
    user_on_plan(&engine, "u1", pro, start).await;
    user_on_plan(&engine, "fresh", pro, t(2026, 9, 1)).await;
    // Five calls in each of July, August, September: Small holds them, Tiny
    // (4 calls) does not.
    for m in 7..=9 {
        let at = t(2026, m, 5);
        let events =
            (0..5).map(|i| ev(&format!("m{m}-{i}"), "u1", "gemini", Some("gemini-2.5-pro"), 10, 5, at)).collect();
        engine.record(ok(events), at).await.unwrap();
    }
    // October so far: two big pro calls and one failed one.
    let now = t(2026, 10, 15);
    let mut failed = ev("f", "u1", "gemini", Some("gemini-2.5-pro"), 100, 0, now);
    failed.status_code = 500;
    failed.retry_count = 2;
    let big = |id: &str| ev(id, "u1", "gemini", Some("gemini-2.5-pro"), 10_000, 5_000, now);
    engine.record(ok(vec![big("p1"), big("p2"), failed]), now).await.unwrap();

    let i = engine.insights(&uid("u1"), now).await.unwrap();
    let plan = i.recommended_plan.clone().expect("a cheaper plan");
    assert_eq!((plan.plan_id, plan.monthly_saving), (small, Nanos::from_usd(70)));
    assert_eq!(i.periods_considered, ["2026-09", "2026-08", "2026-07"]);
    assert_eq!(i.tips_period, "2026-10");
    let tip =
        |kind: &str| i.tips.iter().find(|t| t.kind == kind).unwrap_or_else(|| panic!("no {kind} tip: {:?}", i.tips));
    // Pro: 2 × (10,000 × $1.25 + 5,000 × $10) / 1M = $0.125; flash: 2 ×
    // (10,000 × $0.30 + 5,000 × $2.50) / 1M = $0.031. The failed call is
    // not in the mix.
    let m = tip("cheaper_model");
    assert_eq!(m.estimated_saving, Some(Nanos(94_000_000)), "{m:?}");
    assert!(m.title.starts_with("gemini-flash-Small"), "{}", m.title);
    // The failed call's recorded cost: 100 × $1.25 / 1M.
    let f = tip("failed_calls");
    assert_eq!(f.estimated_saving, Some(Nanos(125_000)));
    let recorded: i64 =
        scalar(&store, "SELECT CAST(SUM(cost_total_nanos) AS BIGINT) FROM usage_events WHERE status_code >= 400").await;
    assert_eq!(f.estimated_saving, Some(Nanos(recorded)));
    assert!(
        f.detail.starts_with("1 call failed and was billed $0.0001; 1 call needed retries (2 retries in all)"),
        "{}",
        f.detail
    );
    assert_eq!(tip("cache").title, "0.0% of input tokens came from cache");
    assert!(i.missing.is_empty(), "{:?}", i.missing);

    // Not enough data: said, not guessed.
    let fresh = engine.insights(&uid("fresh"), now).await.unwrap();
    assert_eq!(fresh.recommended_plan, None);
    assert!(fresh.tips.is_empty());
    assert!(
        fresh.missing.iter().any(|m| m.contains("needs 3 closed billing periods; there is 1 so far")),
        "{:?}",
        fresh.missing
    );
    assert!(fresh.missing.iter().any(|m| m.contains("No usage recorded in 2026-10")), "{:?}", fresh.missing);
}
both_stores!(advice_reconciles_with_events_and_catalog, advice_reconciles_with_events_and_catalog);

async fn profitability_sets_fees_against_costs(store: Store) {
    let start = t(2026, 9, 1);
    let (engine, pro) = engine_with_catalog(store.clone(), Limits::new(), start).await;
    let tiny = add_plan(&engine, "Tiny", 1, 1000, start).await;
    user_on_plan(&engine, "rich", pro, start).await;
    user_on_plan(&engine, "loss", tiny, start).await;
    // September: "loss" spends $1.125 on a $1 plan.
    let sep = t(2026, 9, 10);
    let heavy = ev("h", "loss", "gemini", Some("gemini-2.5-pro"), 100_000, 100_000, sep);
    engine
        .record(ok(vec![heavy, ev("r", "rich", "gemini", Some("gemini-2.5-pro"), 1000, 500, sep)]), sep)
        .await
        .unwrap();
    let now = t(2026, 10, 3);
    engine.record(ok(vec![ev("r2", "rich", "tavily", None, 0, 0, now)]), now).await.unwrap();

    // The closed period, from the bills.
    let p = engine.profitability(Some("2026-09"), now).await.unwrap();
    let rows: Vec<_> =
        p.rows.iter().map(|r| (r.user_id.as_str(), r.plan_fee, r.provider_cost, r.margin(), r.open)).collect();
    assert_eq!(
        rows,
        [
            ("loss", Nanos::from_usd(1), Nanos(1_125_000_000), Nanos(-125_000_000), false),
            ("rich", Nanos::from_usd(79), Nanos(6_250_000), Nanos(79_000_000_000 - 6_250_000), false),
        ]
    );
    let billed: i64 = scalar(
        &store,
        "SELECT CAST(SUM(usage_cost_nanos) AS BIGINT) FROM billing_records WHERE billing_period = '2026-09'",
    )
    .await;
    assert_eq!(p.totals().1, Nanos(billed));
    // The open period: its fee and the cost so far.
    let open = engine.profitability(None, now).await.unwrap();
    let rows: Vec<_> =
        open.rows.iter().map(|r| (r.user_id.as_str(), r.billing_period.as_str(), r.provider_cost, r.open)).collect();
    assert_eq!(rows, [("loss", "2026-10", Nanos(0), true), ("rich", "2026-10", Nanos(1_000_000), true)]);
    // A period nobody had.
    assert!(engine.profitability(Some("2025-01"), now).await.unwrap().rows.is_empty());
    assert!(engine.profitability(Some("2025-13"), now).await.is_err());
}
both_stores!(profitability_sets_fees_against_costs, profitability_sets_fees_against_costs);

async fn periods_follow_the_customers_timezone(store: Store) {
    use crate::domain::period::parse_timezone;
    use crate::server::service::subscriptions::NewUser;
    let start = t(2026, 1, 1);
    let (engine, plan) = engine_with_catalog(store.clone(), Limits::new(), start).await;
    let at = |y, mo, d, h, mi| Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap();
    let new_user = |id: &str, tz: &str| NewUser {
        id: Some(crate::domain::identity::UserId::parse(id).unwrap()),
        email: crate::domain::identity::Email::parse(&format!("{id}@example.test")).unwrap(),
        name: id.into(),
        role: crate::domain::identity::Role::User,
        password_hash: None,
        plan: Some((plan, crate::domain::period::BillingCycle::Monthly)),
        timezone: Some(parse_timezone(tz).unwrap()),
    };
    // Tokyo (UTC+9): signed up at 21:00 local on Mar 10; periods start at
    // local midnight on the 10th, which is 15:00 UTC the day before.
    engine.create_user(new_user("tokyo", "Asia/Tokyo"), at(2026, 3, 10, 12, 0)).await.unwrap();
    let (_, sub, _) = engine.current_subscription(&uid("tokyo"), at(2026, 3, 10, 12, 0)).await.unwrap();
    assert_eq!((sub.period_start, sub.period_end), (at(2026, 3, 9, 15, 0), at(2026, 4, 9, 15, 0)));
    // 23:00 on Apr 9 in Tokyo is March's period; 01:00 on Apr 10, April's.
    let gem = |id: &str, when| ev(id, "tokyo", "gemini", Some("gemini-2.5-pro"), 1000, 500, when);
    engine.record(ok(vec![gem("late-march", at(2026, 4, 9, 14, 0))]), at(2026, 4, 9, 14, 30)).await.unwrap();
    engine.record(ok(vec![gem("early-april", at(2026, 4, 9, 16, 0))]), at(2026, 4, 9, 16, 30)).await.unwrap();
    let label = |id: &str| format!("SELECT CAST(period_start AS BIGINT) FROM usage_events WHERE event_id = '{id}'");
    assert_eq!(scalar(&store, &label("late-march")).await, at(2026, 3, 9, 15, 0).timestamp_millis());
    assert_eq!(scalar(&store, &label("early-april")).await, at(2026, 4, 9, 15, 0).timestamp_millis());
    let bills = engine.billing_history(&uid("tokyo"), at(2026, 4, 9, 16, 30)).await.unwrap();
    assert_eq!(
        bills.iter().map(|b| (b.billing_period.as_str(), b.period_start)).collect::<Vec<_>>(),
        [("2026-03", at(2026, 3, 9, 15, 0))]
    );
    assert_eq!(engine.period_view(&uid("tokyo"), at(2026, 4, 9, 16, 30)).await.unwrap().label, "2026-04");

    // New York across both daylight-saving changes: local midnight on the
    // 15th each month, 05:00 UTC in winter and 04:00 in summer.
    engine.create_user(new_user("nyc", "America/New_York"), at(2026, 2, 15, 20, 0)).await.unwrap();
    let starts: Vec<_> = [(2026, 2, 20), (2026, 3, 20), (2026, 10, 20), (2026, 11, 20)]
        .into_iter()
        .map(|(y, m, d)| (y, m, d, 12))
        .collect();
    let mut seen = Vec::new();
    for (y, m, d, h) in starts {
        let now = at(y, m, d, h, 0);
        let v = engine.period_view(&uid("nyc"), now).await.unwrap();
        seen.push((
            v.label.clone(),
            v.period.start.format("%m-%d %H:%M").to_string(),
            v.period.end.format("%m-%d %H:%M").to_string(),
        ));
    }
    assert_eq!(
        seen,
        [
            ("2026-02".to_string(), "02-15 05:00".to_string(), "03-15 04:00".to_string()),
            ("2026-03".into(), "03-15 04:00".into(), "04-15 04:00".into()),
            ("2026-10".into(), "10-15 04:00".into(), "11-15 05:00".into()),
            ("2026-11".into(), "11-15 05:00".into(), "12-15 05:00".into()),
        ]
    );

    // A UTC customer may be moved to a timezone until their first event or
    // bill: the period is re-counted from local midnight of their first day.
    user_on_plan(&engine, "moving", plan, at(2026, 5, 20, 18, 0)).await;
    let la = parse_timezone("America/Los_Angeles").unwrap();
    let (sub, changed) = engine.set_timezone(&uid("moving"), la, "user:root", at(2026, 5, 21, 9, 0)).await.unwrap();
    assert!(changed);
    assert_eq!((sub.period_start, sub.period_end), (at(2026, 5, 20, 7, 0), at(2026, 6, 20, 7, 0)));
    engine
        .record(ok(vec![ev("m1", "moving", "tavily", None, 0, 0, at(2026, 5, 22, 0, 0))]), at(2026, 5, 22, 0, 0))
        .await
        .unwrap();
    let refused = engine.set_timezone(&uid("moving"), Tz::UTC, "user:root", at(2026, 5, 23, 0, 0)).await.unwrap_err();
    assert!(
        matches!(&refused, crate::server::error::AppError::Conflict(m) if m.contains("before its first event or bill")),
        "{refused:?}"
    );
}
both_stores!(periods_follow_the_customers_timezone, periods_follow_the_customers_timezone);

/// A cheaper model is suggested only when the user's own calls to it did
/// not clearly fail more often or answer slower, and the tip says how they
/// compared (or that there were too few calls to tell).
async fn cheaper_models_are_judged_on_the_users_calls(store: Store) {
    let start = t(2026, 7, 1);
    let (engine, pro) = engine_with_catalog(store.clone(), Limits::new(), start).await;
    add_plan(&engine, "Small", 9, 10, start).await;
    let now = t(2026, 10, 15);
    let calls = |user: &str, model: &str, n: usize, failing: usize, ms: u64| -> Vec<UsageEvent> {
        (0..n)
            .map(|i| {
                let mut e = ev(&format!("{user}-{model}-{i}"), user, "gemini", Some(model), 10_000, 5_000, now);
                e.response_time_ms = Some(ms);
                e.status_code = if i < failing { 500 } else { 200 };
                e
            })
            .collect()
    };
    for (user, flash_failing) in [("worse", 6), ("fine", 0)] {
        user_on_plan(&engine, user, pro, start).await;
        engine.record(ok(calls(user, "gemini-2.5-pro", 25, 0, 800)), now).await.unwrap();
        engine.record(ok(calls(user, "gemini-flash-Small", 25, flash_failing, 700)), now).await.unwrap();
    }
    user_on_plan(&engine, "new", pro, start).await;
    engine.record(ok(calls("new", "gemini-2.5-pro", 25, 0, 800)), now).await.unwrap();

    let worse = engine.insights(&uid("worse"), now).await.unwrap();
    assert!(worse.tips.iter().all(|t| t.kind != "cheaper_model"), "{:?}", worse.tips);
    assert!(worse.missing.iter().any(|m| m.contains("gemini-flash-Small costs less") && m.contains("not suggested")));

    let fine = engine.insights(&uid("fine"), now).await.unwrap();
    let tip = fine.tips.iter().find(|t| t.kind == "cheaper_model").expect("suggested");
    // 800 ms and 700 ms are reported as their buckets' middles.
    assert!(
        tip.detail.ends_with(
            "failed no more often (0.0% against 0.0%) and answered no slower (95th percentile 696 ms against 808 ms)."
        ),
        "{}",
        tip.detail
    );

    let new = engine.insights(&uid("new"), now).await.unwrap();
    let tip = new.tips.iter().find(|t| t.kind == "cheaper_model").expect("suggested");
    assert!(
        tip.detail.ends_with("too few to compare gemini-flash-Small's error rate and speed with gemini-2.5-pro's."),
        "{}",
        tip.detail
    );
}
both_stores!(cheaper_models_are_judged_on_the_users_calls, cheaper_models_are_judged_on_the_users_calls);
