//! Prepaid credits over HTTP: a plan made prepaid, credits granted (once
//! per key), the gate's 402, the wallet and its statement, who may see them.

use super::*;

async fn put(api: &Api, path: &str, key: Option<&str>, body: Value) -> Reply {
    api.call("PUT", path, key, Some(body.to_string().into_bytes())).await
}

async fn prepaid_wallet_journey(store: Store) {
    let api = setup(store, Limits::new()).await;
    let admin = api.key(None, &["admin"]).await;
    let a = Some(admin.as_str());
    let gate = api.key(None, &["ingest"]).await;
    let alice_reads = api.key(Some("alice"), &["read"]).await;
    let bob_reads = api.key(Some("bob"), &["read"]).await;

    // A prepaid plan: its fields come back, bad ones are refused by name.
    let bad = api
        .post("/api/admin/plans", a, json!({"name": "P", "tier": "basic", "billing_mode": "later", "included_credits": "-1", "credits_rollover_cap": "5"}))
        .await;
    assert_error(&bad, StatusCode::UNPROCESSABLE_ENTITY, "invalid");
    for f in ["billing_mode", "included_credits"] {
        assert!(bad.body["fields"][f].is_string(), "{f}: {}", bad.body);
    }
    let plan = api
        .post("/api/admin/plans", a, json!({"name": "Prepaid", "tier": "enterprise", "price_monthly": "99", "billing_mode": "prepaid", "included_credits": "20", "credits_rollover_cap": "5"}))
        .await;
    assert_eq!(plan.status, StatusCode::OK, "{}", plan.body);
    let p = &plan.body["data"];
    assert_eq!(
        (p["billing_mode"].clone(), p["included_credits"].clone(), p["credits_rollover_cap"].clone()),
        (json!("prepaid"), json!("20.000000000"), json!("5.000000000"))
    );
    let plan_id = p["id"].as_i64().unwrap();
    // Included credits can be taken away again (null clears).
    let cleared = put(
        &api,
        &format!("/api/admin/plans/{plan_id}"),
        a,
        json!({"included_credits": null, "credits_rollover_cap": null}),
    )
    .await;
    assert_eq!(
        (cleared.status, cleared.body["data"]["included_credits"].clone()),
        (StatusCode::OK, Value::Null),
        "{}",
        cleared.body
    );
    let assigned =
        put(&api, "/api/admin/users/alice/subscription", a, json!({"plan_id": plan_id, "billing_cycle": "monthly"}))
            .await;
    assert_eq!(assigned.status, StatusCode::OK, "{}", assigned.body);
    // An upgrade: it applies at once.
    assert_eq!(assigned.body["data"]["plan_id"], json!(plan_id), "{}", assigned.body);

    // No credits: the gate refuses with 402, naming available and required.
    let body = json!({"user_id": "alice", "reserve": true, "operations": [{"provider": "tavily", "operation_type": "search"}]});
    let r = api.post("/api/subscription/preflight-check", Some(&gate), body.clone()).await;
    assert_error(&r, StatusCode::PAYMENT_REQUIRED, "insufficient_credits");
    assert_eq!(r.body["wallet"], json!({"available": "0.000000000", "required": "0.001000000"}));
    assert_eq!(r.body["data"]["can_proceed"], json!(false));
    assert!(r.body["error"].as_str().unwrap().contains("$0.001"), "{}", r.body);

    // Two searches' worth, granted once however often the request is sent.
    let grant = json!({"amount": "0.002", "kind": "promotional", "idempotency_key": "welcome", "note": "sign-up"});
    let first = api.post("/api/admin/users/alice/wallet/grants", a, grant.clone()).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    check(
        &first.body["data"],
        "grant",
        &[
            ("id", K::S),
            ("kind", K::S),
            ("amount", K::S),
            ("remaining", K::S),
            ("priority", K::N),
            ("effective_at", K::S),
            ("expires_at", K::SOrNull),
            ("source", K::S),
            ("created_at", K::S),
        ],
    );
    let again = api.post("/api/admin/users/alice/wallet/grants", a, grant.clone()).await;
    assert_eq!((again.status, again.body["data"]["id"].clone()), (StatusCode::OK, first.body["data"]["id"].clone()));
    let reused = api
        .post(
            "/api/admin/users/alice/wallet/grants",
            a,
            json!({"amount": "9", "kind": "paid", "idempotency_key": "welcome"}),
        )
        .await;
    assert_error(&reused, StatusCode::CONFLICT, "conflict");
    for (bad, field) in [
        (json!({"amount": "0", "kind": "paid", "idempotency_key": "z"}), "amount"),
        (json!({"amount": "abc", "kind": "paid", "idempotency_key": "z"}), "amount"),
        (json!({"amount": "1", "kind": "gift", "idempotency_key": "z"}), "kind"),
        (json!({"amount": "1", "kind": "paid", "idempotency_key": "z", "expires_at": "soon"}), "expires_at"),
    ] {
        let r = api.post("/api/admin/users/alice/wallet/grants", a, bad.clone()).await;
        assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid");
        assert!(r.body["fields"][field].is_string(), "{bad}: {}", r.body);
    }
    assert_error(
        &api.post("/api/admin/users/alice/wallet/grants", Some(&alice_reads), grant.clone()).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );

    // Two reservations fit, the third does not.
    for _ in 0..2 {
        let r = api.post("/api/subscription/preflight-check", Some(&gate), body.clone()).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert!(r.body["data"]["wallet"]["available"].is_string());
    }
    let r = api.post("/api/subscription/preflight-check", Some(&gate), body.clone()).await;
    assert_error(&r, StatusCode::PAYMENT_REQUIRED, "insufficient_credits");

    // (Reservations commit without waiting for SQLite's write group.)
    api.engine.store_for_tests().settled().await.unwrap();
    // The wallet: alice's own key and an admin see it; bob's does not.
    let w = api.get("/api/wallet/alice", Some(&alice_reads)).await;
    assert_eq!(w.status, StatusCode::OK, "{}", w.body);
    check(
        &w.body["data"],
        "wallet",
        &[
            ("balance", K::S),
            ("held", K::S),
            ("available", K::S),
            ("currency", K::S),
            ("low_balance_threshold", K::SOrNull),
            ("runs_out_at", K::SOrNull),
            ("grants", K::A),
        ],
    );
    let d = &w.body["data"];
    assert_eq!(
        (d["balance"].clone(), d["held"].clone(), d["available"].clone()),
        (json!("0.002000000"), json!("0.002000000"), json!("0.000000000"))
    );
    assert_eq!(api.get("/api/wallet/alice", a).await.status, StatusCode::OK);
    assert_error(&api.get("/api/wallet/alice", Some(&bob_reads)).await, StatusCode::FORBIDDEN, "forbidden");
    assert_error(&api.get("/api/wallet/alice", None).await, StatusCode::UNAUTHORIZED, "unauthorized");

    // An adjustment down, a threshold, then the statement in pages and CSV.
    let adj = json!({"amount": "-0.0005", "reason": "correction", "idempotency_key": "adj-1"});
    for _ in 0..2 {
        let r = api.post("/api/admin/users/alice/wallet/adjustments", a, adj.clone()).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.body["data"]["balance"], json!("0.001500000"));
    }
    let s = put(&api, "/api/admin/users/alice/wallet", a, json!({"low_balance_threshold": "0.5"})).await;
    assert_eq!(s.body["data"]["low_balance_threshold"], json!("0.500000000"), "{}", s.body);
    // A percent of the last top-up: none yet (admin grants are not top-ups).
    let s = put(&api, "/api/admin/users/alice/wallet", a, json!({"low_balance_threshold": "20%"})).await;
    assert_eq!(
        (s.body["data"]["low_balance_threshold"].clone(), s.body["data"]["low_balance_percent"].clone()),
        (Value::Null, json!("20%")),
        "{}",
        s.body
    );
    let bad = put(&api, "/api/admin/users/alice/wallet", a, json!({"low_balance_threshold": "120%"})).await;
    assert_error(&bad, StatusCode::UNPROCESSABLE_ENTITY, "invalid");
    let page = api.get("/api/wallet/alice/ledger?limit=1", Some(&alice_reads)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let e = &page.body["data"]["entries"][0];
    assert_eq!(
        (e["kind"].clone(), e["amount"].clone(), e["balance_after"].clone()),
        (json!("adjustment"), json!("-0.000500000"), json!("0.001500000"))
    );
    let cursor = page.body["data"]["next_cursor"].as_str().unwrap().to_string();
    let older = api.get(&format!("/api/wallet/alice/ledger?limit=5&cursor={cursor}"), Some(&alice_reads)).await;
    let older = older.body["data"]["entries"].as_array().unwrap().clone();
    assert_eq!(older.len(), 1);
    assert_eq!((older[0]["kind"].clone(), older[0]["amount"].clone()), (json!("grant"), json!("0.002000000")));
    assert!(api.get(&format!("/api/wallet/alice/ledger?limit=5&cursor={cursor}"), None).await.status.is_client_error());
    assert_error(
        &api.get("/api/wallet/alice/ledger?cursor=abc", Some(&alice_reads)).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid",
    );
    let csv = api.get("/api/wallet/alice/ledger?format=csv", Some(&alice_reads)).await;
    let text = csv.body["raw"].as_str().unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "id,at,kind,amount,balance_after,event_id,grant_id,note");
    assert!(lines[1].contains(",grant,0.002000000,0.002000000,"), "{text}");
    assert!(lines[2].contains(",adjustment,-0.000500000,0.001500000,"), "{text}");
}
both_stores!(prepaid_wallet_journey, prepaid_wallet_journey);
