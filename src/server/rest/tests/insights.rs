//! Tags on ingest, breakdowns, advice and profitability over HTTP.

use super::*;

fn tagged(id: &str, user: &str, tags: Value) -> Value {
    let mut e = event(id, user);
    e["tags"] = tags;
    e
}

async fn tags_breakdowns_and_filters_over_http(store: Store) {
    let api = setup(store.clone(), Limits::new()).await;
    let ingest = api.key(None, &["ingest"]).await;
    let alice = api.key(Some("alice"), &["read"]).await;
    let events = json!({"events": [
        tagged("t1", "alice", json!({"project": "blog", "feature": "outline"})),
        tagged("t2", "alice", json!({"project": "blog"})),
        tagged("t3", "alice", json!({"project": "shop"})),
        event("t4", "alice"),
        tagged("bad", "alice", json!({"project": 7})),
        tagged("bad2", "alice", json!({"a=b": "x"})),
    ]});
    let r = api.post("/api/usage/events", Some(&ingest), events).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!((r.body["data"]["accepted"].clone(), r.body["data"]["rejected"].clone()), (json!(4), json!(2)));
    let why = r.body["data"]["results"][4]["error"].as_str().unwrap();
    assert!(why.contains("`tags`: the value of `project` must be a string"), "{why}");
    assert!(r.body["data"]["results"][5]["error"].as_str().unwrap().contains("may not contain `=`"));

    let b = api.get("/api/usage/alice/breakdown?by=tag:project", Some(&alice)).await;
    assert_eq!(b.status, StatusCode::OK, "{}", b.body);
    let d = &b.body["data"];
    let rows: Vec<_> = d["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["key"].clone(), r["calls"].clone(), r["cost"].clone()))
        .collect();
    // Each event: $0.00625.
    assert_eq!(
        rows,
        [
            (json!("blog"), json!(2), json!("0.012500000")),
            (json!("shop"), json!(1), json!("0.006250000")),
            (Value::Null, json!(1), json!("0.006250000")),
        ]
    );
    assert_eq!(d["total_cost"], json!("0.025000000"));
    assert_eq!(d["tag_keys"], json!(["feature", "project"]));
    assert_eq!(d["billing_period"].as_str().unwrap().len(), 7);
    let m = api.get("/api/usage/alice/breakdown?by=model", Some(&alice)).await;
    assert_eq!(m.body["data"]["rows"][0]["key"], json!("gemini-2.5-pro"));
    let p = api.get("/api/usage/alice/breakdown", Some(&alice)).await;
    assert_eq!(
        (p.body["data"]["by"].clone(), p.body["data"]["rows"][0]["key"].clone()),
        (json!("provider"), json!("gemini"))
    );
    assert_error(
        &api.get("/api/usage/alice/breakdown?by=colour", Some(&alice)).await,
        StatusCode::BAD_REQUEST,
        "bad_request",
    );
    assert_error(
        &api.get("/api/usage/alice/breakdown?billing_period=May", Some(&alice)).await,
        StatusCode::BAD_REQUEST,
        "bad_request",
    );
    assert_error(&api.get("/api/usage/bob/breakdown", Some(&alice)).await, StatusCode::FORBIDDEN, "forbidden");

    // The usage log and its CSV filter by tag and show the tags.
    let logs = api.get("/api/subscription/usage-logs?tag=project%3Dblog", Some(&alice)).await;
    assert_eq!(logs.body["total_count"], json!(2), "{}", logs.body);
    let t1 = logs.body["logs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["cost_total"].is_number() && l["tags"]["feature"] == json!("outline"));
    assert!(t1.is_some(), "{}", logs.body);
    assert_error(
        &api.get("/api/subscription/usage-logs?tag=project", Some(&alice)).await,
        StatusCode::BAD_REQUEST,
        "bad_request",
    );
    let csv = api.get("/api/usage/alice/logs.csv?tag=project%3Dshop", Some(&alice)).await;
    let text = csv.body["raw"].as_str().unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.lines().nth(1).unwrap().ends_with(r#""{""project"":""shop""}""#), "{text}");
}
both_stores!(tags_breakdowns_and_filters_over_http, tags_breakdowns_and_filters_over_http);

async fn advice_and_profitability_over_http(store: Store) {
    let api = setup(store.clone(), Limits::new()).await;
    let ingest = api.key(None, &["ingest"]).await;
    let alice = api.key(Some("alice"), &["read"]).await;
    let admin = api.key(None, &["admin"]).await;
    api.post("/api/usage/events", Some(&ingest), json!({"events": [event("a1", "alice")]})).await;

    let i = api.get("/api/insights/alice", Some(&alice)).await;
    assert_eq!(i.status, StatusCode::OK, "{}", i.body);
    let d = &i.body["data"];
    // Three days old: no closed period yet, and the card says why.
    assert_eq!(d["recommended_plan"], Value::Null);
    assert!(d["missing"][0].as_str().unwrap().contains("needs 3 closed billing periods"), "{d}");
    for tip in d["tips"].as_array().unwrap() {
        check(tip, "tip", &[("kind", K::S), ("title", K::S), ("detail", K::S), ("estimated_saving", K::SOrNull)]);
    }
    assert!(d["tips"].as_array().unwrap().iter().any(|t| t["kind"] == json!("cache")), "{d}");
    assert_error(&api.get("/api/insights/bob", Some(&alice)).await, StatusCode::FORBIDDEN, "forbidden");

    assert_error(&api.get("/api/admin/profitability", Some(&alice)).await, StatusCode::FORBIDDEN, "forbidden");
    let p = api.get("/api/admin/profitability", Some(&admin)).await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    let rows = p.body["data"]["rows"].as_array().unwrap();
    let a = rows.iter().find(|r| r["user_id"] == json!("alice")).unwrap();
    check(
        a,
        "row",
        &[("user_id", K::S), ("plan_name", K::S), ("plan_fee", K::S), ("provider_cost", K::S), ("margin", K::S)],
    );
    assert_eq!(
        (a["plan_fee"].clone(), a["provider_cost"].clone(), a["margin"].clone()),
        (json!("79.000000000"), json!("0.006250000"), json!("78.993750000"))
    );
    assert_eq!(p.body["data"]["totals"]["plan_fee"], json!("158.000000000"));
    assert_eq!(p.body["data"]["totals"]["margin"], json!("157.993750000"));
    assert_error(
        &api.get("/api/admin/profitability?billing_period=2026-13", Some(&admin)).await,
        StatusCode::BAD_REQUEST,
        "bad_request",
    );
    let csv = api.get("/api/admin/profitability.csv", Some(&admin)).await;
    let text = csv.body["raw"].as_str().unwrap();
    assert!(
        text.starts_with(
            "user_id,email,billing_period,plan,plan_fee_usd,provider_cost_usd,margin_usd,negative,period\r\n"
        ),
        "{text}"
    );
    assert!(text.contains(",79.000000000,0.006250000,78.993750000,false,open\r\n"), "{text}");
}
both_stores!(advice_and_profitability_over_http, advice_and_profitability_over_http);

async fn timezones_over_http(store: Store) {
    let api = setup(store.clone(), Limits::new()).await;
    let admin = api.key(None, &["admin"]).await;
    let ingest = api.key(None, &["ingest"]).await;
    let put = |user: &str, body: Value| {
        let path = format!("/api/admin/users/{user}/subscription");
        let api = &api;
        let admin = admin.clone();
        async move { api.call("PUT", &path, Some(&admin), Some(body.to_string().into_bytes())).await }
    };
    let alice = api.get("/api/admin/users/alice", Some(&admin)).await;
    let plan_id = alice.body["data"]["subscription"]["plan_id"].clone();
    assert_eq!(alice.body["data"]["subscription"]["timezone"], json!("UTC"));
    let bad = put("alice", json!({"plan_id": plan_id, "billing_cycle": "monthly", "timezone": "Mars/Olympus"})).await;
    assert_error(&bad, StatusCode::UNPROCESSABLE_ENTITY, "invalid");
    assert!(bad.body.to_string().contains("not an IANA timezone name"), "{}", bad.body);
    // Before any usage: re-counted at local midnight, plan unchanged.
    let ok = put("alice", json!({"plan_id": plan_id, "billing_cycle": "monthly", "timezone": "Asia/Kolkata"})).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    assert_eq!(
        (ok.body["data"]["timezone"].clone(), ok.body["data"]["change"].clone()),
        (json!("Asia/Kolkata"), json!("unchanged"))
    );
    let start =
        chrono::DateTime::parse_from_rfc3339(ok.body["data"]["current_period_start"].as_str().unwrap()).unwrap();
    let kolkata: chrono_tz::Tz = "Asia/Kolkata".parse().unwrap();
    assert_eq!(start.with_timezone(&kolkata).format("%H:%M").to_string(), "00:00");
    // After usage: refused, and nothing changed.
    api.post("/api/usage/events", Some(&ingest), json!({"events": [event("tz1", "alice")]})).await;
    let late = put("alice", json!({"plan_id": plan_id, "billing_cycle": "monthly", "timezone": "UTC"})).await;
    assert_error(&late, StatusCode::CONFLICT, "conflict");
    assert_eq!(
        api.get("/api/admin/users/alice", Some(&admin)).await.body["data"]["subscription"]["timezone"],
        json!("Asia/Kolkata")
    );
    // Users can be created in a timezone.
    let r = api
        .post("/api/admin/users", Some(&admin), json!({"email": "kiwi@example.test", "timezone": "Pacific/Auckland"}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let id = r.body["data"]["id"].as_str().unwrap().to_string();
    let kiwi = api.get(&format!("/api/admin/users/{id}"), Some(&admin)).await;
    assert_eq!(kiwi.body["data"]["subscription"]["timezone"], json!("Pacific/Auckland"));
}
both_stores!(timezones_over_http, timezones_over_http);

/// A user's distinct tag keys are bounded: a new key past the bound is
/// refused with its event alone, in the same batch or a later one; keys
/// already known go on being accepted.
async fn tag_keys_per_user_are_bounded(store: Store) {
    use crate::domain::tags::{MAX_KEYS_PER_USER, MAX_TAGS};
    let api = setup(store, Limits::new()).await;
    let ingest = api.key(None, &["ingest"]).await;
    let alice = api.key(Some("alice"), &["read"]).await;
    let tags = |from: usize| Value::Object((from..from + MAX_TAGS).map(|k| (format!("k{k:03}"), json!("v"))).collect());
    let mut events: Vec<Value> =
        (0..MAX_KEYS_PER_USER / MAX_TAGS).map(|i| tagged(&format!("k{i}"), "alice", tags(i * MAX_TAGS))).collect();
    // In the same batch: one key too many, then a known one.
    events.push(tagged("over", "alice", json!({"k000": "v", "brand-new": "v"})));
    events.push(tagged("known", "alice", json!({"k001": "w"})));
    let r = api.post("/api/usage/events", Some(&ingest), json!({"events": events})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let results = r.body["data"]["results"].as_array().unwrap();
    let n = results.len();
    assert_eq!(results[n - 2]["status"], json!("rejected"));
    let why = results[n - 2]["error"].as_str().unwrap();
    assert!(why.contains("100 distinct tag keys") && why.contains("`brand-new`"), "{why}");
    assert_eq!(results[n - 1]["status"], json!("accepted"));
    assert_eq!(r.body["data"]["accepted"], json!(n - 1));
    // In a later batch, and by another user (whose own keys are few): only
    // alice is refused.
    let r = api
        .post(
            "/api/usage/events",
            Some(&ingest),
            json!({"events": [tagged("later", "alice", json!({"other": "v"})), tagged("bob1", "bob", json!({"other": "v"}))]}),
        )
        .await;
    assert_eq!(r.body["data"]["results"][0]["status"], json!("rejected"), "{}", r.body);
    assert_eq!(r.body["data"]["results"][1]["status"], json!("accepted"), "{}", r.body);
    let b = api.get("/api/usage/alice/breakdown?by=tag:k000", Some(&alice)).await;
    assert_eq!(b.body["data"]["tag_keys"].as_array().unwrap().len(), MAX_KEYS_PER_USER);
}
both_stores!(tag_keys_per_user_are_bounded, tag_keys_per_user_are_bounded);
