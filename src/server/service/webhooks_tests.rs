//! Webhooks against real stores and a real HTTP receiver: what is put in
//! the outbox for which change, signatures, retries, a restart mid-retry,
//! and two nodes delivering each event once.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::tests::{ev, ok};
use super::webhooks::{Deliverer, signature};
use crate::both_stores;
use crate::domain::limits::Limits;
use crate::domain::money::Nanos;
use crate::domain::period::BillingCycle;
use crate::domain::plan::{Plan, Tier};
use crate::domain::webhooks::{DeliveryStatus, EventType};
use crate::server::service::Engine;
use crate::server::store::{Store, StoreOptions, catalog, webhooks};
use crate::server::testing::{engine_with_catalog, t, uid, user_on_plan};

/// One request the receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    pub id: String,
    pub timestamp: i64,
    pub signature: String,
    pub body: String,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }
}

/// An HTTP endpoint that records what it gets and answers the statuses it
/// is told to, in order (then 200), after `delay`.
#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    got: Arc<Mutex<Vec<Received>>>,
    answers: Arc<Mutex<VecDeque<u16>>>,
}

impl Receiver {
    pub async fn start(delay: Duration) -> Receiver {
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let answers: Arc<Mutex<VecDeque<u16>>> = Arc::default();
        let (g, a) = (got.clone(), answers.clone());
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let (g, a) = (g.clone(), a.clone());
                async move {
                    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                    g.lock().unwrap().push(Received {
                        id: h("tally-webhook-id"),
                        timestamp: h("tally-webhook-timestamp").parse().unwrap_or(-1),
                        signature: h("tally-webhook-signature"),
                        body: String::from_utf8(body.to_vec()).unwrap(),
                    });
                    tokio::time::sleep(delay).await;
                    let code = a.lock().unwrap().pop_front().unwrap_or(200);
                    StatusCode::from_u16(code).unwrap()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { url, got, answers }
    }

    pub fn answer(&self, codes: &[u16]) {
        self.answers.lock().unwrap().extend(codes);
    }

    pub fn got(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }
}

/// Checks a request's signature as a receiver would.
pub fn verify(secret: &str, r: &Received) {
    assert_eq!(r.signature, signature(secret, r.timestamp, &r.body), "signature of {}", r.id);
    assert!((Utc::now().timestamp() - r.timestamp).abs() < 60, "a current timestamp");
    assert!(
        r.signature.starts_with("v1=")
            && r.signature[3..].chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );
}

fn all_types() -> Vec<String> {
    EventType::ALL.iter().map(|t| t.as_str().to_string()).collect()
}

async fn types_sent(engine: &Engine, endpoint: &str) -> Vec<EventType> {
    let (_, list) = engine.webhook_deliveries(endpoint, 100).await.unwrap();
    let mut v: Vec<EventType> = list.iter().map(|d| d.event_type).collect();
    v.reverse();
    v
}

async fn add_plan(engine: &Engine, name: &str, gemini_calls: i64, at: DateTime<Utc>) -> i64 {
    let mut tx = engine.store.begin().await.unwrap();
    let plan = Plan {
        id: 0,
        name: name.into(),
        tier: Tier::Enterprise,
        price_monthly: Nanos::from_usd(99),
        price_yearly: Nanos::from_usd(990),
        description: String::new(),
        features: vec![],
        limits: Limits::new().with("gemini_calls", gemini_calls),
        archived: false,
        credits: Default::default(),
    };
    let id = catalog::insert_plan(&mut tx, &plan, at).await.unwrap();
    tx.commit().await.unwrap();
    id
}

/// Each kind of change puts its event in the outbox, only for endpoints
/// subscribed to its type, in the change's transaction.
async fn changes_reach_the_outbox(store: Store) {
    let start = t(2026, 10, 1);
    let (engine, plan) = engine_with_catalog(store.clone(), Limits::new().with("gemini_calls", 10), start).await;
    let big = add_plan(&engine, "Big", 1000, start).await;
    user_on_plan(&engine, "u1", plan, start).await;
    let (all, _) = engine.create_webhook("http://127.0.0.1:9/all", &all_types(), "", "admin", start).await.unwrap();
    let (bills, _) = engine
        .create_webhook("http://127.0.0.1:9/b", &["period.closed".into()], "bills", "admin", start)
        .await
        .unwrap();
    let (gone, _) = engine.create_webhook("http://127.0.0.1:9/g", &all_types(), "", "admin", start).await.unwrap();
    engine.delete_webhook(&gone.id, "admin", start).await.unwrap();
    assert!(engine.delete_webhook(&gone.id, "admin", start).await.is_err(), "deleted once");

    // 8 of 10 calls: the 80% alert.
    let at = t(2026, 10, 5);
    let events: Vec<_> =
        (0..8).map(|i| ev(&format!("e{i}"), "u1", "gemini", Some("gemini-2.5-pro"), 100, 10, at)).collect();
    engine.record(ok(events), at).await.unwrap();
    // A model without a price.
    engine.record(ok(vec![ev("x", "u1", "openai", Some("gpt-secret"), 5, 5, at)]), at).await.unwrap();
    // An upgrade: the 80% alert no longer applies.
    engine.change_plan(&uid("u1"), big, BillingCycle::Monthly, "admin", at).await.unwrap();
    // November: October closes.
    let nov = t(2026, 11, 2);
    engine.record(ok(vec![ev("n1", "u1", "gemini", Some("gemini-2.5-pro"), 1, 1, nov)]), nov).await.unwrap();

    use EventType::*;
    assert_eq!(
        types_sent(&engine, &all.id).await,
        vec![AlertCreated, PriceUnpriced, AlertResolved, SubscriptionChanged, PeriodClosed]
    );
    assert_eq!(types_sent(&engine, &bills.id).await, vec![PeriodClosed]);
    assert_eq!(types_sent(&engine, &gone.id).await, vec![], "a deleted endpoint gets nothing");
    assert_eq!(engine.webhooks().await.unwrap().len(), 2, "deleted endpoints are not listed");

    // The bill's figures, exact, as sent.
    let mut conn = store.pool().acquire().await.unwrap();
    let body: String = sqlx::query_scalar("SELECT body FROM webhook_events WHERE event_type = 'period.closed'")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    let v: Value = serde_json::from_str(&body).unwrap();
    let bill = &crate::server::store::bills::billing_records(&mut conn, &uid("u1")).await.unwrap()[0];
    assert_eq!(v["type"], "period.closed");
    assert_eq!(v["data"]["billing_period"], "2026-10");
    assert_eq!(v["data"]["usage_cost"], bill.usage_cost.usd_string());
    assert_eq!(v["data"]["total"], bill.total.usd_string());
    assert!(v["id"].as_str().unwrap().starts_with("evt_"));

    // An alert says the same fields whichever change sent it: raised, then
    // resolved by the upgrade.
    let alert_data = |kind: &'static str| {
        let store = store.clone();
        async move {
            let body: String = sqlx::query_scalar(&format!(
                "SELECT body FROM webhook_events WHERE event_type = '{kind}' AND body LIKE '%gemini_calls%'"
            ))
            .fetch_one(store.pool())
            .await
            .unwrap();
            serde_json::from_str::<Value>(&body).unwrap()["data"].clone()
        }
    };
    let (raised, resolved) = (alert_data("alert.created").await, alert_data("alert.resolved").await);
    let keys = |d: &Value| d.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    let fields = [
        "alert_id",
        "alert_type",
        "billing_period",
        "created_at",
        "limit_key",
        "message",
        "provider",
        "resolved_at",
        "severity",
        "threshold",
        "title",
        "user_id",
    ];
    assert_eq!(keys(&raised), fields);
    assert_eq!(keys(&resolved), fields);
    assert_eq!(raised["alert_id"], resolved["alert_id"]);
    assert_eq!(
        (&raised["user_id"], &raised["threshold"], &raised["billing_period"]),
        (&"u1".into(), &80.into(), &"2026-10".into())
    );
    assert_eq!((&raised["alert_type"], &raised["severity"]), (&"usage_threshold".into(), &"info".into()));
    assert!(raised["resolved_at"].is_null());
    assert_eq!(resolved["resolved_at"], at.to_rfc3339());
}
both_stores!(changes_reach_the_outbox, changes_reach_the_outbox);

/// A 500 is retried with backoff; every attempt carries the same id and
/// body and a valid signature; the list shows attempts and codes.
async fn deliveries_are_signed_and_retried(store: Store) {
    let start = t(2026, 10, 1);
    let (engine, plan) = engine_with_catalog(store.clone(), Limits::new().with("gemini_calls", 10), start).await;
    user_on_plan(&engine, "u1", plan, start).await;
    let rx = Receiver::start(Duration::ZERO).await;
    let (hook, secret) =
        engine.create_webhook(&rx.url, &["alert.created".into()], "ops", "admin", start).await.unwrap();
    assert!(secret.starts_with("whsec_") && secret.len() > 40);
    rx.answer(&[500]);
    let now = t(2026, 10, 5);
    let events: Vec<_> =
        (0..8).map(|i| ev(&format!("e{i}"), "u1", "gemini", Some("gemini-2.5-pro"), 100, 10, now)).collect();
    engine.record(ok(events), now).await.unwrap();

    let deliverer = Deliverer::new(engine.clone());
    assert_eq!(deliverer.deliver_due(now).await.unwrap(), 1);
    let (_, list) = engine.webhook_deliveries(&hook.id, 10).await.unwrap();
    let d = &list[0];
    assert_eq!((d.status, d.attempts, d.last_status), (DeliveryStatus::Pending, 1, Some(500)));
    let retry = d.next_attempt_at.unwrap();
    assert!(retry > now && retry <= now + chrono::Duration::seconds(30), "first retry within 30 s: {retry}");
    // Not due yet; then due.
    assert_eq!(deliverer.deliver_due(retry - chrono::Duration::seconds(1)).await.unwrap(), 0);
    assert_eq!(deliverer.deliver_due(retry).await.unwrap(), 1);
    assert_eq!(deliverer.deliver_due(retry + chrono::Duration::hours(1)).await.unwrap(), 0, "delivered once");

    let got = rx.got();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].id, got[1].id, "the same Tally-Webhook-Id on every attempt");
    assert_eq!(got[0].body, got[1].body);
    for r in &got {
        verify(&secret, r);
    }
    let body = got[0].json();
    assert_eq!(body["id"], got[0].id.as_str());
    assert_eq!(body["type"], "alert.created");
    assert_eq!(body["data"]["user_id"], "u1");
    assert_eq!(body["data"]["threshold"], 80);
    assert_eq!(body["data"]["limit_key"], "gemini_calls");
    // A tampered body does not verify.
    assert_ne!(signature(&secret, got[0].timestamp, &got[0].body.replace("u1", "u2")), got[0].signature);

    let (_, list) = engine.webhook_deliveries(&hook.id, 10).await.unwrap();
    assert_eq!((list[0].status, list[0].attempts, list[0].last_status), (DeliveryStatus::Delivered, 2, Some(200)));
    assert_eq!(deliverer.counters.results().map(|(_, n)| n), [1, 1, 0]);

    // Replay: the same event again, at once.
    let replayed = engine.replay_delivery(&hook.id, list[0].id, "admin", retry).await.unwrap();
    assert_eq!(replayed.status, DeliveryStatus::Pending);
    assert_eq!(deliverer.deliver_due(retry).await.unwrap(), 1);
    let got = rx.got();
    assert_eq!((got.len(), &got[2].id, &got[2].body), (3, &got[0].id, &got[0].body));
    assert!(engine.replay_delivery(&hook.id, 999_999, "admin", retry).await.is_err());

    // An endpoint that never answers 2xx is given up after a day of retries.
    rx.answer(&[503; 40]);
    engine.replay_delivery(&hook.id, list[0].id, "admin", retry).await.unwrap();
    let mut clock = retry;
    let mut tries = 0;
    while deliverer.deliver_due(clock).await.unwrap() == 1 {
        tries += 1;
        let (_, l) = engine.webhook_deliveries(&hook.id, 1).await.unwrap();
        match l[0].next_attempt_at {
            Some(next) => clock = next,
            None => break,
        }
    }
    let (_, l) = engine.webhook_deliveries(&hook.id, 1).await.unwrap();
    assert_eq!((l[0].status, l[0].last_status), (DeliveryStatus::Failed, Some(503)));
    assert!(clock - retry >= chrono::Duration::hours(24), "retried for a day: {}", clock - retry);
    assert!((8..20).contains(&tries), "{tries} attempts");
}
both_stores!(deliveries_are_signed_and_retried, deliveries_are_signed_and_retried);

/// Node one fails an attempt (500) and takes another delivery, then dies
/// before answering for it. A node started afterwards retries the first
/// when it is due and the second once the dead node's lease runs out.
async fn restart_mid_retry(first: Store, reopen: impl AsyncFn() -> Store) {
    let start = t(2026, 10, 1);
    let (engine, plan) = engine_with_catalog(first.clone(), Limits::new().with("gemini_calls", 10), start).await;
    user_on_plan(&engine, "u1", plan, start).await;
    let rx = Receiver::start(Duration::ZERO).await;
    let (hook, secret) = engine.create_webhook(&rx.url, &all_types(), "", "admin", start).await.unwrap();
    rx.answer(&[500]);
    let now = t(2026, 10, 5);
    let events: Vec<_> =
        (0..8).map(|i| ev(&format!("e{i}"), "u1", "gemini", Some("gemini-2.5-pro"), 100, 10, now)).collect();
    engine.record(ok(events), now).await.unwrap();
    assert_eq!(Deliverer::new(engine.clone()).deliver_due(now).await.unwrap(), 1);
    // A second event, taken by this node, which then dies mid-attempt.
    engine.record(ok(vec![ev("x", "u1", "openai", Some("gpt-secret"), 5, 5, now)]), now).await.unwrap();
    let mut tx = first.begin().await.unwrap();
    let lease = now + chrono::Duration::seconds(60);
    let taken = webhooks::claim(&mut tx, first.backend(), now, lease, "dead-node", 16).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(taken.len(), 1);
    first.close().await;
    // The restarted node has the deployment's key (its key file, say).
    let config = engine.config.clone();
    drop(engine);

    let store = reopen().await;
    let engine = Engine::new(store.clone(), config);
    let node = Deliverer::new(engine.clone());
    let later = now + chrono::Duration::seconds(30);
    assert_eq!(node.deliver_due(later).await.unwrap(), 1, "the retry, not the leased one");
    assert_eq!(node.deliver_due(lease).await.unwrap(), 1, "the dead node's lease ran out");
    let got = rx.got();
    assert_eq!(got.len(), 3);
    assert_eq!(got[0].id, got[1].id);
    assert_eq!(got[2].json()["type"], "price.unpriced");
    for r in &got {
        verify(&secret, r);
    }
    let (_, list) = engine.webhook_deliveries(&hook.id, 10).await.unwrap();
    assert!(list.iter().all(|d| d.status == DeliveryStatus::Delivered), "{list:?}");
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restart_mid_retry_loses_nothing_sqlite() {
    let path = std::env::temp_dir().join(format!("tally-webhooks-{}.db", uuid::Uuid::new_v4()));
    let url = format!("sqlite://{}", path.display());
    let open = async || {
        let s = Store::connect(&url, StoreOptions::default()).await.unwrap();
        s.migrate().await.unwrap();
        s
    };
    restart_mid_retry(open().await, open).await;
    crate::server::testing::remove_sqlite_files(&path);
}

fn pg_url() -> String {
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| crate::server::testing::DEFAULT_TEST_DATABASE_URL.into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restart_mid_retry_loses_nothing_postgres() {
    let Some(db) = crate::server::testing::TestDb::postgres().await else { return };
    let schema = db.schema().map(str::to_string);
    let open = async || {
        let opts = StoreOptions { schema: schema.clone(), ..StoreOptions::default() };
        Store::connect(&pg_url(), opts).await.unwrap()
    };
    restart_mid_retry(open().await, open).await;
    db.cleanup().await;
}

/// Two nodes on one PostgreSQL, both delivering as fast as they can: every
/// event reaches the receiver exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_deliver_each_event_once() {
    let Some(db) = crate::server::testing::TestDb::postgres().await else { return };
    let now = t(2026, 10, 5);
    // The nodes share one sealing key, as a deployment's must.
    let config = crate::server::testing::test_config();
    let a = Engine::new(db.store.clone(), config.clone());
    let opts = StoreOptions { schema: db.schema().map(str::to_string), ..StoreOptions::default() };
    let b = Engine::new(Store::connect(&pg_url(), opts).await.unwrap(), config);
    let rx = Receiver::start(Duration::from_millis(20)).await;
    a.create_webhook(&rx.url, &["usage.spike".into()], "", "admin", now).await.unwrap();
    const N: usize = 120;
    for i in 0..N {
        let mut tx = a.store.begin().await.unwrap();
        webhooks::enqueue(&mut tx, EventType::UsageSpike, &serde_json::json!({"n": i}), now).await.unwrap();
        tx.commit().await.unwrap();
    }
    let run = |e: &Engine| {
        let d = Deliverer::new(e.clone());
        tokio::spawn(async move {
            let mut sent = 0;
            loop {
                let n = d.deliver_due(now).await.unwrap();
                if n == 0 {
                    return sent;
                }
                sent += n;
            }
        })
    };
    let (ta, tb, tc) = (run(&a), run(&b), run(&b));
    let (na, nb, nc) = (ta.await.unwrap(), tb.await.unwrap(), tc.await.unwrap());
    let got = rx.got();
    let mut ids: Vec<&str> = got.iter().map(|r| r.id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!((got.len(), ids.len(), na + nb + nc), (N, N, N), "each event once ({na} + {nb} + {nc})");
    assert!(na > 0 && nb + nc > 0, "both nodes delivered: {na} / {}", nb + nc);
    b.store.close().await;
    db.cleanup().await;
}

/// A spend spike is sent as `usage.spike` with its figures, beside the
/// `alert.created` of the alert it raised; once a day.
async fn a_spike_is_sent_with_its_figures(store: Store) {
    use chrono::Duration as D;
    let start = t(2026, 11, 1);
    let (engine, plan) = engine_with_catalog(store.clone(), Limits::new(), start).await;
    user_on_plan(&engine, "u1", plan, start).await;
    let (hook, _) =
        engine.create_webhook("http://127.0.0.1:9/s", &["usage.spike".into()], "", "admin", start).await.unwrap();
    let now = t(2026, 11, 10) + D::hours(12);
    // One $0.001 search an hour for a week, then six in the last hour.
    let baseline: Vec<_> = (0..168)
        .map(|k| ev(&format!("b{k}"), "u1", "tavily", None, 0, 0, now - D::minutes(90) - D::hours(k)))
        .collect();
    engine.record(ok(baseline), now - D::minutes(80)).await.unwrap();
    let hour: Vec<_> = (0..6).map(|i| ev(&format!("h{i}"), "u1", "tavily", None, 0, 0, now - D::minutes(30))).collect();
    engine.record(ok(hour), now).await.unwrap();
    assert!(engine.check_spike(&uid("u1"), now).await.unwrap());
    assert!(!engine.check_spike(&uid("u1"), now + D::minutes(10)).await.unwrap());
    assert_eq!(types_sent(&engine, &hook.id).await, vec![EventType::UsageSpike]);
    let body: String = sqlx::query_scalar("SELECT body FROM webhook_events WHERE event_type = 'usage.spike'")
        .fetch_one(store.pool())
        .await
        .unwrap();
    let d = serde_json::from_str::<Value>(&body).unwrap()["data"].clone();
    assert_eq!(
        (&d["user_id"], &d["last_hour_cost"], &d["hourly_average"]),
        (&"u1".into(), &"0.006000000".into(), &"0.001000000".into())
    );
    assert_eq!((d["ratio"].as_f64(), d["multiple"].as_i64()), (Some(6.0), Some(5)));
    assert!(d["alert_id"].is_i64());
}
both_stores!(a_spike_is_sent_with_its_figures, a_spike_is_sent_with_its_figures);

/// Webhooks cannot be aimed inside the network: loopback, private and
/// link-local targets are refused at registration, and again at send time
/// after DNS (a name registered while allowed, or re-pointed since, gets
/// nothing), with one message whatever the port does. Signing secrets are
/// sealed in the database; old plain ones are sealed on start and still
/// sign correctly.
async fn webhooks_stay_out_of_the_network_and_their_secrets_sealed(store: Store) {
    let now = t(2026, 10, 5);
    let strict =
        crate::server::service::EngineConfig { webhook_allow_private: false, ..crate::server::testing::test_config() };
    let engine = Engine::new(store.clone(), strict.clone());
    let rx = Receiver::start(Duration::ZERO).await;
    let port = rx.url.split(':').nth(2).unwrap().split('/').next().unwrap().to_string();
    for url in [
        rx.url.clone(),
        format!("http://localhost:{port}/hook"),
        "http://169.254.169.254/latest/meta-data".to_string(),
        "http://10.0.0.7/x".to_string(),
        "http://[::1]:9/x".to_string(),
        "http://[::ffff:127.0.0.1]/x".to_string(),
    ] {
        let e = engine.create_webhook(&url, &["usage.spike".into()], "", "admin", now).await.unwrap_err();
        assert!(e.to_string().contains("TALLY_WEBHOOK_ALLOW_PRIVATE"), "{url}: {e}");
    }
    // Registered where private receivers were allowed, sent by a node that
    // allows none: by address and by name, refused before connecting.
    let open = Engine::new(
        store.clone(),
        crate::server::service::EngineConfig { webhook_allow_private: true, ..strict.clone() },
    );
    let (by_ip, secret) = open.create_webhook(&rx.url, &["usage.spike".into()], "", "admin", now).await.unwrap();
    let by_name = format!("http://localhost:{port}/hook");
    let (named, _) = open.create_webhook(&by_name, &["usage.spike".into()], "", "admin", now).await.unwrap();
    let mut tx = store.begin().await.unwrap();
    webhooks::enqueue(&mut tx, EventType::UsageSpike, &serde_json::json!({"n": 1}), now).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(Deliverer::new(engine.clone()).deliver_due(now).await.unwrap(), 2);
    assert!(rx.got().is_empty(), "nothing reached the private receiver");
    for id in [&by_ip.id, &named.id] {
        let (_, list) = engine.webhook_deliveries(id, 5).await.unwrap();
        assert_eq!(list[0].last_error.as_deref(), Some(super::webhooks::NOT_DELIVERED), "{list:?}");
    }
    // A closed port reads the same as a refused address.
    let closed =
        open.create_webhook("http://127.0.0.1:9/x", &["usage.spike".into()], "", "admin", now).await.unwrap().0;
    let mut tx = store.begin().await.unwrap();
    webhooks::enqueue(&mut tx, EventType::UsageSpike, &serde_json::json!({"n": 2}), now).await.unwrap();
    tx.commit().await.unwrap();
    Deliverer::new(open.clone()).deliver_due(now + chrono::Duration::hours(1)).await.unwrap();
    let (_, list) = open.webhook_deliveries(&closed.id, 5).await.unwrap();
    assert_eq!(list[0].last_error.as_deref(), Some(super::webhooks::NOT_DELIVERED), "{list:?}");

    // Sealed at rest: the database holds neither secret.
    let stored: Vec<String> =
        sqlx::query_scalar("SELECT secret FROM webhook_endpoints").fetch_all(store.pool()).await.unwrap();
    assert!(stored.iter().all(|s| s.starts_with("enc1:") && !s.contains(&secret[6..])), "{stored:?}");
    // A secret stored plainly (before sealing existed) is sealed on start,
    // and deliveries still verify with it.
    open.delete_webhook(&named.id, "admin", now).await.unwrap();
    open.delete_webhook(&closed.id, "admin", now).await.unwrap();
    let before = rx.got().len();
    let mut tx = store.begin().await.unwrap();
    webhooks::set_secret(&mut tx, &by_ip.id, "whsec_legacy").await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(open.seal_webhook_secrets().await.unwrap(), 1);
    assert_eq!(open.seal_webhook_secrets().await.unwrap(), 0);
    let sealed: String = sqlx::query_scalar("SELECT secret FROM webhook_endpoints WHERE id = $1")
        .bind(&by_ip.id)
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert!(sealed.starts_with("enc1:"));
    let mut tx = store.begin().await.unwrap();
    webhooks::enqueue(&mut tx, EventType::UsageSpike, &serde_json::json!({"n": 3}), now).await.unwrap();
    tx.commit().await.unwrap();
    let later = now + chrono::Duration::days(2);
    for _ in 0..5 {
        Deliverer::new(open.clone()).deliver_due(later).await.unwrap();
    }
    let got = rx.got();
    assert!(got.len() > before);
    for r in &got[before..] {
        verify("whsec_legacy", r);
    }
}
both_stores!(
    webhooks_stay_out_of_the_network_and_their_secrets_sealed,
    webhooks_stay_out_of_the_network_and_their_secrets_sealed
);
