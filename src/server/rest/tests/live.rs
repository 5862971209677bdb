//! `GET /api/stream` through the real router: who may open it, the state
//! it sends at once, and the change an ingest call pushes.

use std::time::Duration;

use super::*;

/// Reads the next Server-Sent Event (`event:` name and `data:` JSON) from
/// an open stream, skipping keep-alive comments; `None` after `wait`.
async fn next_event(body: &mut Body, buf: &mut String, wait: Duration) -> Option<(String, Value)> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        if let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let mut name = String::from("message");
            let mut data = String::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    name = v.trim().to_string();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim());
                }
            }
            if data.is_empty() {
                continue;
            }
            return Some((name, serde_json::from_str(&data).expect("event data is JSON")));
        }
        let frame = tokio::time::timeout_at(deadline, body.frame()).await.ok()??.ok()?;
        if let Ok(bytes) = frame.into_data() {
            buf.push_str(std::str::from_utf8(&bytes).unwrap());
        }
    }
}

async fn open(api: &Api, path: &str, key: &str) -> (StatusCode, Body) {
    let req = Request::builder().uri(path).header(header::AUTHORIZATION, format!("Bearer {key}")).body(Body::empty());
    let resp = api.router.clone().oneshot(req.unwrap()).await.unwrap();
    (resp.status(), resp.into_body())
}

async fn usage_is_pushed_as_it_commits(store: Store) {
    let api = setup(store, Limits::new().with("tavily_calls", 3)).await;
    let alice = api.key(Some("alice"), &["read"]).await;
    let ingest = api.key(None, &["ingest"]).await;
    let admin = api.key(None, &["admin"]).await;

    // Only one's own stream; an admin names the user; nobody anonymous.
    assert_eq!(api.get("/api/stream", None).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(open(&api, "/api/stream?user_id=bob", &alice).await.0, StatusCode::FORBIDDEN);
    assert_eq!(open(&api, "/api/stream", &admin).await.0, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(open(&api, "/api/stream?user_id=nobody", &admin).await.0, StatusCode::NOT_FOUND);

    let (status, mut body) = open(&api, "/api/stream", &alice).await;
    assert_eq!(status, StatusCode::OK);
    let (_, mut watched) = open(&api, "/api/stream?user_id=alice", &admin).await;
    let mut buf = String::new();
    let (name, first) = next_event(&mut body, &mut buf, Duration::from_secs(5)).await.expect("the state at once");
    assert_eq!(name, "usage");
    let calls0 = first["total_calls"].as_i64().unwrap();
    assert!(first["billing_period"].as_str().unwrap().len() == 7 && first["total_cost"].is_string(), "{first}");

    // Another user's usage says nothing to Alice's stream.
    let at = Utc::now().to_rfc3339();
    let e = |id: &str, user: &str| json!({"id": id, "user_id": user, "provider": "tavily", "timestamp": at});
    let r = api.post("/api/usage/events", Some(&ingest), json!({"events": [e("b1", "bob")]})).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(next_event(&mut body, &mut buf, Duration::from_millis(300)).await.is_none());

    // Hers does, with the totals after it; crossing 80% of a limit also
    // says an alert came.
    let r = api
        .post(
            "/api/usage/events",
            Some(&ingest),
            json!({"events": [e("a1", "alice"), e("a2", "alice"), e("a3", "alice")]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let mut got = Vec::new();
    while let Some(ev) = next_event(&mut body, &mut buf, Duration::from_secs(2)).await {
        got.push(ev);
        if got.len() == 2 {
            break;
        }
    }
    let usage = got.iter().find(|(n, _)| n == "usage").expect("a usage event");
    assert_eq!(usage.1["total_calls"].as_i64().unwrap(), calls0 + 3, "{got:?}");
    assert_eq!(usage.1["usage_status"], json!("limit_reached"), "{got:?}");
    let alert = got.iter().find(|(n, _)| n == "alert").expect("an alert event");
    assert!(alert.1["unread_alerts"].as_i64().unwrap() >= 1, "{got:?}");
    // The admin watching Alice heard the same.
    let mut buf2 = String::new();
    let (n, _) = next_event(&mut watched, &mut buf2, Duration::from_secs(2)).await.unwrap();
    assert_eq!(n, "usage");
    let (n, d) = next_event(&mut watched, &mut buf2, Duration::from_secs(2)).await.unwrap();
    assert!(n == "usage" || n == "alert", "{n} {d}");

    // A plan change is announced as such.
    let plan = api.engine.catalog_snapshot().await.unwrap().plans[0].id;
    let r = api
        .call(
            "PUT",
            "/api/admin/users/alice/subscription",
            Some(&admin),
            Some(json!({"plan_id": plan, "billing_cycle": "yearly"}).to_string().into_bytes()),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let mut kinds = Vec::new();
    while let Some((n, d)) = next_event(&mut body, &mut buf, Duration::from_millis(500)).await {
        kinds.push((n, d));
    }
    let sub = kinds.iter().find(|(n, _)| n == "subscription").unwrap_or_else(|| panic!("{kinds:?}"));
    assert_eq!((&sub.1["plan_name"], &sub.1["status"]), (&json!("Test"), &json!("active")), "{kinds:?}");
}
both_stores!(usage_is_pushed_as_it_commits, usage_is_pushed_as_it_commits);

/// Two app nodes on one PostgreSQL: usage ingested through node A's router
/// reaches a stream served by node B's router within a second, each time.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stream_on_one_node_hears_ingest_on_the_other() {
    let Some(db) = crate::server::testing::TestDb::postgres().await else { return };
    let a = setup(db.store.clone(), Limits::new()).await;
    let url =
        std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| crate::server::testing::DEFAULT_TEST_DATABASE_URL.into());
    let opts = crate::server::store::StoreOptions { schema: db.schema().map(str::to_string), ..Default::default() };
    let store_b = Store::connect(&url, opts).await.unwrap();
    store_b.start_live();
    store_b.live().hearing().await;
    let b = Api::new(Engine::new(store_b.clone(), Default::default()));
    let alice = a.key(Some("alice"), &["read"]).await;
    let ingest = a.key(None, &["ingest"]).await;

    let (status, mut body) = open(&b, "/api/stream", &alice).await;
    assert_eq!(status, StatusCode::OK);
    let mut buf = String::new();
    let (_, first) = next_event(&mut body, &mut buf, Duration::from_secs(5)).await.expect("the state at once");
    let mut calls = first["total_calls"].as_i64().unwrap();
    for round in 0..5 {
        let sent = std::time::Instant::now();
        let ev = json!({"id": format!("x{round}"), "user_id": "alice", "provider": "tavily"});
        let r = a.post("/api/usage/events", Some(&ingest), json!({"events": [ev]})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let (name, d) = next_event(&mut body, &mut buf, Duration::from_secs(1))
            .await
            .unwrap_or_else(|| panic!("round {round}: node B's stream heard nothing within a second"));
        assert_eq!(name, "usage");
        calls += 1;
        assert_eq!(d["total_calls"].as_i64().unwrap(), calls, "B read the totals after A's write");
        assert!(sent.elapsed() < Duration::from_secs(1));
    }
    store_b.close().await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_caller_holds_a_bounded_number_of_streams() {
    let db = crate::server::testing::TestDb::sqlite().await;
    let api = setup(db.store.clone(), Limits::new()).await;
    let alice = api.key(Some("alice"), &["read"]).await;
    let other = api.key(Some("alice"), &["read"]).await;
    let mut open_ones = Vec::new();
    for _ in 0..crate::server::state::MAX_STREAMS_PER_CALLER {
        let (status, body) = open(&api, "/api/stream", &alice).await;
        assert_eq!(status, StatusCode::OK);
        open_ones.push(body);
    }
    let req = Request::builder().uri("/api/stream").header(header::AUTHORIZATION, format!("Bearer {alice}"));
    let resp = api.router.clone().oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(resp.headers().contains_key(header::RETRY_AFTER));
    // Another caller is not affected; a closed stream gives its place back.
    assert_eq!(open(&api, "/api/stream", &other).await.0, StatusCode::OK);
    open_ones.pop();
    assert_eq!(open(&api, "/api/stream", &alice).await.0, StatusCode::OK);
    db.cleanup().await;
}
