//! Two app nodes on one PostgreSQL database: separate pools and separate
//! catalog caches, as two `tally serve` processes have. Limits hold across
//! them and events sent to both are counted once. Postgres only (SQLite is
//! one process by design).

use chrono::Duration;

use super::Engine;
use super::gate::Operation;
use super::recording::Incoming;
use super::tests::{ev, ok};
use crate::domain::limits::Limits;
use crate::domain::money::Nanos;
use crate::domain::provider::Provider;
use crate::server::store::{Store, StoreOptions};
use crate::server::testing::{TestDb, engine_with_catalog, t, uid, user_on_plan};

/// A second node: its own pool and engine on the first node's schema.
async fn second_node(db: &TestDb, first: &Engine) -> Engine {
    second_node_keeping(db, first, StoreOptions::default().cache_ttl).await
}

/// A second node whose copies of store state answer for `cache_ttl`.
async fn second_node_keeping(db: &TestDb, first: &Engine, cache_ttl: std::time::Duration) -> Engine {
    let url =
        std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| crate::server::testing::DEFAULT_TEST_DATABASE_URL.into());
    let opts = StoreOptions {
        schema: db.schema().map(str::to_string),
        max_connections: 20,
        cache_ttl,
        ..StoreOptions::default()
    };
    let store = Store::connect(&url, opts).await.expect("second node connects");
    Engine::new(store, first.config.clone())
}

fn search() -> Operation {
    Operation {
        provider: Provider::parse("tavily").unwrap(),
        model: None,
        tokens_requested: 0,
        units_requested: None,
        service_tier: Default::default(),
        operation_type: "search".into(),
    }
}

/// Sends `n` reservations, alternating between the nodes, all at once;
/// how many were admitted.
async fn reserve_on_both(a: &Engine, b: &Engine, n: usize, now: chrono::DateTime<chrono::Utc>) -> usize {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let engine = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move { engine.preflight(&uid("u1"), &[search()], true, now).await })
        })
        .collect();
    let mut admitted = 0;
    for task in tasks {
        if task.await.unwrap().unwrap().can_proceed {
            admitted += 1;
        }
    }
    admitted
}

#[tokio::test]
async fn two_nodes_share_call_limits() {
    let Some(db) = TestDb::postgres().await else { return };
    let start = t(2026, 11, 1);
    let (a, plan) = engine_with_catalog(db.store.clone(), Limits::new().with("tavily_calls", 50), start).await;
    user_on_plan(&a, "u1", plan, start).await;
    let b = second_node(&db, &a).await;
    assert_eq!(reserve_on_both(&a, &b, 200, t(2026, 11, 10)).await, 50);
    b.store.close().await;
    db.cleanup().await;
}

#[tokio::test]
async fn two_nodes_share_the_cost_cap() {
    let Some(db) = TestDb::postgres().await else { return };
    let start = t(2026, 11, 1);
    // A search costs $0.001: a $0.04 cap holds 40 of them.
    let cap = Limits::new().with("monthly_cost", Nanos::from_usd(1).0 / 25);
    let (a, plan) = engine_with_catalog(db.store.clone(), cap, start).await;
    user_on_plan(&a, "u1", plan, start).await;
    let b = second_node(&db, &a).await;
    assert_eq!(reserve_on_both(&a, &b, 120, t(2026, 11, 10)).await, 40);
    b.store.close().await;
    db.cleanup().await;
}

#[tokio::test]
async fn two_nodes_count_each_event_once() {
    let Some(db) = TestDb::postgres().await else { return };
    let start = t(2026, 11, 1);
    let (a, plan) = engine_with_catalog(db.store.clone(), Limits::new(), start).await;
    user_on_plan(&a, "u1", plan, start).await;
    let b = second_node(&db, &a).await;
    let now = t(2026, 11, 10);
    let batch = |k: usize| -> Vec<Incoming> {
        ok((0..50).map(|i| ev(&format!("e{k}-{i}"), "u1", "tavily", None, 0, 0, now + Duration::seconds(i))).collect())
    };
    // 400 events: 8 batches of 50, each sent to both nodes at once.
    let tasks: Vec<_> = (0..8)
        .flat_map(|k| {
            [a.clone(), b.clone()].map(|engine| {
                let events = batch(k);
                tokio::spawn(async move { engine.record(events, now).await })
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let view = a.period_view(&uid("u1"), now).await.unwrap();
    assert_eq!(view.total_calls(), 400);
    assert_eq!(view.total_cost(), Nanos(Nanos::from_usd(1).0 / 1000 * 400));
    let (_, logged) =
        b.usage_log(&uid("u1"), &Default::default(), 10, crate::domain::usage_log::LogStart::Offset(0)).await.unwrap();
    assert_eq!(logged, 400);
    b.store.close().await;
    db.cleanup().await;
}

/// A check without `reserve` on node B sees node A's ingest within B's view
/// lifetime (nothing tells B sooner; its reservations read the database, see
/// the tests above).
#[tokio::test]
async fn a_second_node_sees_ingest_within_the_view_lifetime() {
    let Some(db) = TestDb::postgres().await else { return };
    let start = t(2026, 11, 1);
    let (a, plan) = engine_with_catalog(db.store.clone(), Limits::new().with("tavily_calls", 5), start).await;
    user_on_plan(&a, "u1", plan, start).await;
    let b = second_node(&db, &a).await;
    let now = t(2026, 11, 10);
    let used = |p: super::gate::Preflight| p.calls_summary.map(|l| l.used);
    assert_eq!(used(b.preflight(&uid("u1"), &[search()], false, now).await.unwrap()), Some(0));
    a.record(ok((0..5).map(|i| ev(&format!("e{i}"), "u1", "tavily", None, 0, 0, now)).collect()), now).await.unwrap();
    tokio::time::sleep(b.store.view().ttl()).await;
    let check = b.preflight(&uid("u1"), &[search()], false, now).await.unwrap();
    assert_eq!((used(check.clone()), check.can_proceed), (Some(5), false));
    b.store.close().await;
    db.cleanup().await;
}

/// A change committed on node A reaches node B's live subscribers within a
/// second, and drops the user from B's check-only view at once.
#[tokio::test]
async fn a_write_on_one_node_is_heard_on_the_other() {
    use crate::server::store::live::Kind;
    let Some(db) = TestDb::postgres().await else { return };
    let start = t(2026, 11, 1);
    let (a, plan) = engine_with_catalog(db.store.clone(), Limits::new().with("tavily_calls", 5), start).await;
    user_on_plan(&a, "u1", plan, start).await;
    let b = second_node(&db, &a).await;
    b.store.start_live();
    b.store.live().hearing().await;
    let mut heard = b.store.live().subscribe();
    let now = t(2026, 11, 10);
    // B's check-only view holds u1 with nothing used.
    assert!(b.preflight(&uid("u1"), &[search()], false, now).await.unwrap().can_proceed);
    for round in 0..5 {
        let sent = std::time::Instant::now();
        a.record(ok(vec![ev(&format!("e{round}"), "u1", "tavily", None, 0, 0, now)]), now).await.unwrap();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(1);
        loop {
            let change = tokio::time::timeout_at(deadline, heard.recv())
                .await
                .expect("node B hears node A's write within a second")
                .unwrap();
            assert_eq!(&*change.user_id, "u1");
            // The 4th call also crossed 80%: an alert, announced too.
            if change.kind == Kind::Usage {
                break;
            }
            assert_eq!(change.kind, Kind::Alert);
        }
        assert!(sent.elapsed() < std::time::Duration::from_secs(1));
    }
    // The 5th call reached the limit; B answers so without waiting for its
    // view to expire.
    let p = b.preflight(&uid("u1"), &[search()], false, now).await.unwrap();
    assert!(!p.can_proceed, "B's view was dropped when it heard A");
    b.store.close().await;
    db.cleanup().await;
}

/// A node whose copy of the user outlives the test (a minute), so what it
/// decides on is certainly stale once the other node has written.
async fn stale_second_node(db: &TestDb, first: &Engine) -> Engine {
    second_node_keeping(db, first, std::time::Duration::from_secs(60)).await
}

fn one_trips(e: &Engine) -> Vec<(&'static str, u64)> {
    e.counters.one_trip().into_iter().map(|(o, n)| (o.as_str(), n)).collect()
}

/// A reservation decided on a node's copy of the user goes in one round
/// trip, and the store writes it only if the room the copy showed is still
/// there: node B's copy predates node A's reservations, so B's attempt
/// finds the limit full, writes nothing, and B denies under the lock.
#[tokio::test]
async fn a_stale_copy_cannot_reserve_past_the_limit() {
    let Some(db) = TestDb::postgres().await else { return };
    let start = t(2026, 11, 1);
    let (a, plan) = engine_with_catalog(db.store.clone(), Limits::new().with("tavily_calls", 3), start).await;
    user_on_plan(&a, "u1", plan, start).await;
    let b = stale_second_node(&db, &a).await;
    let now = t(2026, 11, 10);
    assert!(b.preflight(&uid("u1"), &[search()], false, now).await.unwrap().can_proceed, "B copies u1: nothing used");
    for _ in 0..3 {
        assert!(a.preflight(&uid("u1"), &[search()], true, now).await.unwrap().can_proceed);
    }
    let denied = b.preflight(&uid("u1"), &[search()], true, now).await.unwrap();
    assert!(!denied.can_proceed);
    assert_eq!(denied.denied_by.expect("the calls limit").used, 3, "decided on the database, not the copy");
    assert_eq!(one_trips(&a), [("held", 3), ("changed", 0), ("full", 0)], "A's copy carried its own holds");
    assert_eq!(one_trips(&b), [("held", 0), ("changed", 0), ("full", 1)]);
    // The denial under the lock dropped B's copy: B's next attempt reads the
    // database and is denied without a trip.
    assert!(!b.preflight(&uid("u1"), &[search()], true, now).await.unwrap().can_proceed);
    assert_eq!(one_trips(&b)[2], ("full", 1));
    b.store.close().await;
    db.cleanup().await;
}

/// The copy's premises beyond usage: a subscription paused on another node,
/// and a plan whose limit another node lowered (a new catalog revision),
/// each make the one-trip attempt write nothing; the decision under the
/// lock then sees them.
#[tokio::test]
async fn a_copy_of_an_older_subscription_or_catalog_is_refused() {
    use super::admin::PlanForm;
    use super::subscriptions::Lifecycle;
    let Some(db) = TestDb::postgres().await else { return };
    let start = t(2026, 11, 1);
    let (a, plan) = engine_with_catalog(db.store.clone(), Limits::new().with("tavily_calls", 5), start).await;
    user_on_plan(&a, "u1", plan, start).await;
    user_on_plan(&a, "u2", plan, start).await;
    let b = stale_second_node(&db, &a).await;
    let now = t(2026, 11, 10);
    for user in ["u1", "u2"] {
        assert!(b.preflight(&uid(user), &[search()], true, now).await.unwrap().can_proceed);
    }
    assert_eq!(one_trips(&b)[0], ("held", 2));

    a.change_status(&uid("u1"), Lifecycle::Pause, "admin", now).await.unwrap();
    let paused = b.preflight(&uid("u1"), &[search()], true, now).await;
    assert!(matches!(paused, Err(crate::server::error::AppError::Forbidden(_))), "{paused:?}");
    assert_eq!(one_trips(&b)[1], ("changed", 1));

    let form = PlanForm {
        name: "Test".into(),
        tier: "pro".into(),
        price_monthly: "79".into(),
        price_yearly: "790".into(),
        description: String::new(),
        features: vec![],
        limits: [("tavily_calls".to_string(), "1".to_string())].into(),
        archived: false,
        ..PlanForm::default()
    };
    a.update_plan(plan, &form, "admin", now).await.unwrap();
    let lowered = b.preflight(&uid("u2"), &[search()], true, now).await.unwrap();
    assert!(!lowered.can_proceed, "the new limit (1) is already used");
    assert_eq!(lowered.denied_by.map(|l| (l.used, l.limit)), Some((1, 1)));
    assert_eq!(one_trips(&b), [("held", 2), ("changed", 2), ("full", 0)]);
    b.store.close().await;
    db.cleanup().await;
}

/// Prepaid credits worth exactly 50 searches admit exactly 50 of 200
/// reservations spread over two nodes: the balance is checked under the
/// same row lock as the limits.
#[tokio::test]
async fn two_nodes_share_a_wallet() {
    let Some(db) = TestDb::postgres().await else { return };
    let start = t(2026, 11, 1);
    let (a, plan) = engine_with_catalog(db.store.clone(), Limits::new(), start).await;
    super::wallet_tests::make_prepaid(&a, plan, start).await;
    user_on_plan(&a, "u1", plan, start).await;
    let now = t(2026, 11, 10);
    let fifty = Nanos(Nanos::from_usd(1).0 / 1000 * 50);
    a.grant_credits(&uid("u1"), super::wallet_tests::grant_of(fifty, "k"), "admin:test", now).await.unwrap();
    let b = second_node(&db, &a).await;
    assert_eq!(reserve_on_both(&a, &b, 200, now).await, 50);
    b.store.close().await;
    db.cleanup().await;
}
