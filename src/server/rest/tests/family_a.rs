//! Family A's JSON, field by field against the contract; reads and the gate.

use super::*;

/// Every family A response carries every field with the right JSON type,
/// on the demo data (engine-made, so every shape has content).
async fn family_a_shapes(store: Store) {
    let engine = Engine::new(store.clone(), Default::default());
    crate::server::seed::seed_demo(&engine, Utc::now()).await.unwrap();
    let api = Api::new(engine);
    let read = api.key(None, &["read"]).await;
    let me = api.key(Some("demo"), &["read"]).await;
    let k = Some(read.as_str());

    let r = api.get("/api/subscription/plans", None).await;
    assert_eq!(r.body["success"], json!(true));
    assert_eq!(r.body["data"]["total"], json!(5));
    for p in r.body["data"]["plans"].as_array().unwrap() {
        check(
            p,
            "SubscriptionPlan",
            &[
                ("id", K::N),
                ("name", K::S),
                ("tier", K::S),
                ("price_monthly", K::N),
                ("price_yearly", K::N),
                ("description", K::S),
                ("features", K::A),
                ("limits", K::O),
            ],
        );
    }
    let pro = r.body["data"]["plans"].as_array().unwrap().iter().find(|p| p["name"] == "Pro").unwrap();
    assert_eq!(
        (pro["price_monthly"].clone(), pro["limits"]["gemini_calls"].clone(), pro["limits"]["monthly_cost"].clone()),
        (json!(79.0), json!(5000), json!(150.0))
    );

    let r = api.get("/api/subscription/pricing?provider=gemini", None).await;
    let rows = r.body["data"]["pricing"].as_array().unwrap();
    assert!(!rows.is_empty() && rows.iter().all(|p| p["provider"] == "gemini"));
    for p in rows {
        check(
            p,
            "APIPricing",
            &[
                ("provider", K::S),
                ("model_name", K::S),
                ("cost_per_input_token", K::N),
                ("cost_per_output_token", K::N),
                ("cost_per_request", K::N),
                ("cost_per_search", K::N),
                ("cost_per_image", K::N),
                ("cost_per_page", K::N),
                ("description", K::S),
                ("effective_date", K::S),
            ],
        );
    }
    let pro_price = rows.iter().find(|p| p["model_name"] == "gemini-2.5-pro").unwrap();
    assert_eq!(pro_price["cost_per_input_token"], json!(0.00000125));

    let usage = api.get("/api/subscription/usage/demo", k).await;
    check_usage_stats(&usage.body["data"]);
    let past = api.get("/api/subscription/usage/demo?billing_period=2026-01", k).await;
    assert_eq!(past.body["data"]["billing_period"], json!("2026-01"));
    assert_error(
        &api.get("/api/subscription/usage/demo?billing_period=Jan", k).await,
        StatusCode::BAD_REQUEST,
        "bad_request",
    );

    let trends = api.get("/api/subscription/usage/demo/trends?months=12", k).await;
    // The seed documents' path answers the same.
    let alias = api.get("/api/subscription/trends/demo?months=12", k).await;
    assert_eq!(alias.body, trends.body);
    check_trends(&trends.body["data"]);
    assert_eq!(trends.body["data"]["periods"].as_array().unwrap().len(), 12);
    assert_error(
        &api.get("/api/subscription/usage/demo/trends?months=abc", k).await,
        StatusCode::BAD_REQUEST,
        "bad_request",
    );

    let dash = api.get("/api/subscription/dashboard/demo", k).await;
    let d = &dash.body["data"];
    check(
        d,
        "DashboardData",
        &[
            ("current_usage", K::O),
            ("trends", K::O),
            ("limits", K::O),
            ("alerts", K::A),
            ("projections", K::O),
            ("summary", K::O),
        ],
    );
    check_usage_stats(&d["current_usage"]);
    check_trends(&d["trends"]);
    check_limits(&d["limits"]);
    d["alerts"].as_array().unwrap().iter().for_each(check_alert);
    check(
        &d["projections"],
        "projections",
        &[("projected_monthly_cost", K::N), ("cost_limit", K::N), ("projected_usage_percentage", K::N)],
    );
    check(
        &d["summary"],
        "summary",
        &[
            ("total_api_calls_this_month", K::N),
            ("total_cost_this_month", K::N),
            ("usage_status", K::S),
            ("unread_alerts", K::N),
        ],
    );
    // The dashboard reconciles with the usage endpoint.
    assert_eq!(d["summary"]["total_cost_this_month"], usage.body["data"]["total_cost"]);
    assert_eq!(d["current_usage"]["total_calls"], usage.body["data"]["total_calls"]);

    let alerts = api.get("/api/subscription/alerts/demo", k).await;
    check(&alerts.body["data"], "alerts", &[("alerts", K::A), ("total", K::N), ("unread_count", K::N)]);
    let list = alerts.body["data"]["alerts"].as_array().unwrap().clone();
    assert!(!list.is_empty(), "the demo raises alerts");
    list.iter().for_each(check_alert);
    let id = list[0]["id"].as_i64().unwrap();
    let unread_before = alerts.body["data"]["unread_count"].as_i64().unwrap();
    let writer = api.key(Some("demo"), &["alerts"]).await;
    let mark = api.post(&format!("/api/subscription/alerts/{id}/mark-read"), Some(&writer), json!({})).await;
    assert_eq!(mark.body["success"], json!(true), "{}", mark.body);
    let after = api.get("/api/subscription/alerts/demo?unread_only=true", k).await;
    assert_eq!(after.body["data"]["unread_count"].as_i64().unwrap(), unread_before - 1);
    assert!(after.body["data"]["alerts"].as_array().unwrap().iter().all(|a| a["is_read"] == json!(false)));

    let sub = api.get("/api/subscription/user/demo/subscription", k).await;
    check(
        &sub.body["data"],
        "subscription",
        &[
            ("plan", K::S),
            ("tier", K::S),
            ("billing_cycle", K::S),
            ("status", K::S),
            ("current_period_start", K::S),
            ("current_period_end", K::S),
            ("price", K::N),
        ],
    );

    let logs = api.get("/api/subscription/usage-logs?limit=5&offset=0&provider=gemini", Some(&me)).await;
    assert!(logs.body.get("success").is_none(), "usage-logs is not enveloped");
    check(
        &logs.body,
        "UsageLogsResponse",
        &[("logs", K::A), ("total_count", K::N), ("limit", K::N), ("offset", K::N), ("has_more", K::B)],
    );
    assert_eq!(logs.body["logs"].as_array().unwrap().len(), 5);
    for l in logs.body["logs"].as_array().unwrap() {
        check(
            l,
            "UsageLog",
            &[
                ("id", K::N),
                ("timestamp", K::S),
                ("provider", K::S),
                ("actual_provider_name", K::OptS),
                ("model_used", K::SOrNull),
                ("endpoint", K::S),
                ("method", K::S),
                ("tokens_input", K::N),
                ("tokens_output", K::N),
                ("tokens_total", K::N),
                ("cost_input", K::N),
                ("cost_output", K::N),
                ("cost_total", K::N),
                ("response_time", K::N),
                ("status_code", K::N),
                ("status", K::S),
                ("error_message", K::SOrNull),
                ("billing_period", K::S),
                ("retry_count", K::N),
            ],
        );
        assert_eq!(l["provider"], json!("gemini"));
    }
    let failed = api.get("/api/subscription/usage-logs?limit=1000&status=failed", Some(&me)).await;
    assert!(failed.body["logs"].as_array().unwrap().iter().all(|l| l["status"] == json!("failed")));
    assert!(failed.body["total_count"].as_i64().unwrap() > 0);
    assert_error(
        &api.get("/api/subscription/usage-logs?limit=0", Some(&me)).await,
        StatusCode::BAD_REQUEST,
        "bad_request",
    );

    let ren = api.get("/api/subscription/renewal-history/demo?limit=50&offset=0", k).await;
    check(
        &ren.body["data"],
        "RenewalHistoryResponse",
        &[("renewals", K::A), ("total_count", K::N), ("limit", K::N), ("offset", K::N), ("has_more", K::B)],
    );
    let renewals = ren.body["data"]["renewals"].as_array().unwrap();
    assert!(renewals.iter().any(|r| r["renewal_type"] == json!("upgrade")));
    for r in renewals {
        check(
            r,
            "SubscriptionRenewal",
            &[
                ("id", K::N),
                ("plan_name", K::S),
                ("plan_tier", K::S),
                ("previous_period_start", K::OptS),
                ("previous_period_end", K::OptS),
                ("new_period_start", K::S),
                ("new_period_end", K::S),
                ("billing_cycle", K::S),
                ("renewal_type", K::S),
                ("renewal_count", K::N),
                ("previous_plan_name", K::OptS),
                ("previous_plan_tier", K::OptS),
                ("usage_before_renewal", K::OOrNull),
                ("payment_amount", K::N),
                ("payment_status", K::S),
                ("payment_date", K::SOrNull),
                ("created_at", K::S),
            ],
        );
    }

    let pre = api.post("/api/subscription/preflight-check", Some(&me), json!({"operations": [{"provider": "gemini", "model": "gemini-2.5-flash", "tokens_requested": 2000, "operation_type": "text_generation"}]})).await;
    assert_eq!(pre.status, StatusCode::OK, "{}", pre.body);
    let p = &pre.body["data"];
    check(
        p,
        "PreflightCheckResponse",
        &[
            ("can_proceed", K::B),
            ("estimated_cost", K::N),
            ("operations", K::A),
            ("total_cost", K::N),
            ("usage_summary", K::OOrNull),
            ("cached", K::B),
        ],
    );
    for o in p["operations"].as_array().unwrap() {
        check(
            o,
            "operation",
            &[
                ("provider", K::S),
                ("operation_type", K::S),
                ("cost", K::N),
                ("allowed", K::B),
                ("limit_info", K::OOrNull),
                ("message", K::SOrNull),
            ],
        );
    }
}
both_stores!(family_a_shapes, family_a_shapes);

/// Reading is checked on the server, per user.
async fn reads_are_authorized(store: Store) {
    let api = setup(store, Limits::new()).await;
    let alice = api.key(Some("alice"), &["read"]).await;
    let ingest = api.key(None, &["ingest"]).await;
    assert_error(&api.get("/api/subscription/usage/alice", None).await, StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(api.get("/api/subscription/usage/alice", Some(&alice)).await.status, StatusCode::OK);
    assert_error(&api.get("/api/subscription/usage/bob", Some(&alice)).await, StatusCode::FORBIDDEN, "forbidden");
    assert_error(&api.get("/api/subscription/dashboard/bob", Some(&alice)).await, StatusCode::FORBIDDEN, "forbidden");
    assert_error(&api.get("/api/subscription/usage/alice", Some(&ingest)).await, StatusCode::FORBIDDEN, "forbidden");
    let admin = api.key(None, &["admin"]).await;
    assert_error(&api.get("/api/subscription/usage/nobody", Some(&admin)).await, StatusCode::NOT_FOUND, "not_found");
    let alice_alerts = api.key(Some("alice"), &["alerts"]).await;
    assert_error(
        &api.post("/api/subscription/alerts/999999/mark-read", Some(&alice_alerts), json!({})).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
}
both_stores!(reads_are_authorized, reads_are_authorized);

/// The gate over HTTP: reserve until the limit, then 429 naming it.
async fn preflight_gate_answers_429(store: Store) {
    let api = setup(store, Limits::new().with("tavily_calls", 2)).await;
    let ingest = api.key(None, &["ingest"]).await;
    let body = json!({"user_id": "alice", "reserve": true, "operations": [{"provider": "tavily", "operation_type": "search"}]});
    for _ in 0..2 {
        let r = api.post("/api/subscription/preflight-check", Some(&ingest), body.clone()).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert!(r.body["data"]["reservation_id"].as_str().unwrap().starts_with("rsv_"));
    }
    let r = api.post("/api/subscription/preflight-check", Some(&ingest), body.clone()).await;
    assert_error(&r, StatusCode::TOO_MANY_REQUESTS, "limit_reached");
    let retry: i64 = r.headers[header::RETRY_AFTER].to_str().unwrap().parse().unwrap();
    assert!(retry > 0);
    assert_eq!(r.body["limit"]["key"], json!("tavily_calls"));
    assert_eq!((r.body["limit"]["current_usage"].clone(), r.body["limit"]["limit"].clone()), (json!(2), json!(2)));
    assert!(r.body["limit"]["resets_at"].is_string());
    assert_eq!(r.body["data"]["can_proceed"], json!(false));
    assert!(r.body["error"].as_str().unwrap().contains("Tavily calls limit reached"));
    // Without reserve it only answers, 200 either way. (It reads committed
    // state: on SQLite a reservation's holds commit with their write group,
    // up to 2 ms later, so under load an immediate check may not see them
    // yet; see `Engine::check_only`.)
    api.engine.store_for_tests().settled().await.unwrap();
    let mut check_only = body.clone();
    check_only["reserve"] = json!(false);
    let r = api.post("/api/subscription/preflight-check", Some(&ingest), check_only).await;
    assert_eq!((r.status, r.body["data"]["can_proceed"].clone()), (StatusCode::OK, json!(false)));
    let bad = api.call("POST", "/api/subscription/preflight-check", Some(&ingest), Some(b"{".to_vec())).await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "bad_request");
    let bad = api
        .post("/api/subscription/preflight-check", Some(&ingest), json!({"user_id": "alice", "operations": []}))
        .await;
    assert_error(&bad, StatusCode::UNPROCESSABLE_ENTITY, "invalid");
}
both_stores!(preflight_gate_answers_429, preflight_gate_answers_429);

/// The usage log pages by `next_cursor` through exactly the rows offset
/// pages show, ties on the same millisecond included, and says when a
/// cursor is not one it gave.
async fn usage_log_pages_by_cursor(store: Store) {
    let api = setup(store, Limits::new()).await;
    let ingest = api.key(None, &["ingest"]).await;
    let alice = api.key(Some("alice"), &["read"]).await;
    // Four events in one millisecond, three in others.
    let mut evs: Vec<Value> = (0..7).map(|i| event(&format!("c{i}"), "alice")).collect();
    for (i, e) in evs.iter_mut().enumerate() {
        let ms = if i < 4 { 0 } else { i as i64 * 1000 };
        e["timestamp"] =
            json!((Utc::now() - chrono::Duration::hours(1) + chrono::Duration::milliseconds(ms)).to_rfc3339());
    }
    let r = api.post("/api/usage/events", Some(&ingest), json!({"events": evs})).await;
    assert_eq!(r.body["data"]["accepted"], json!(7), "{}", r.body);

    let ids = |body: &Value| -> Vec<i64> {
        body["logs"].as_array().unwrap().iter().map(|l| l["id"].as_i64().unwrap()).collect()
    };
    let mut by_offset = Vec::new();
    for offset in [0, 3, 6] {
        let page = api.get(&format!("/api/subscription/usage-logs?limit=3&offset={offset}"), Some(&alice)).await;
        assert_eq!(page.body["has_more"], json!(offset < 6), "{}", page.body);
        by_offset.extend(ids(&page.body));
    }
    let mut by_cursor = Vec::new();
    let mut next = api.get("/api/subscription/usage-logs?limit=3", Some(&alice)).await;
    loop {
        assert_eq!(next.body["total_count"], json!(7));
        by_cursor.extend(ids(&next.body));
        let Some(cursor) = next.body["next_cursor"].as_str().map(str::to_string) else {
            assert_eq!(next.body["has_more"], json!(false));
            break;
        };
        assert_eq!(next.body["has_more"], json!(true));
        next = api.get(&format!("/api/subscription/usage-logs?limit=3&cursor={cursor}"), Some(&alice)).await;
    }
    assert_eq!(by_cursor.len(), 7);
    assert_eq!(by_cursor, by_offset);

    for bad in ["cursor=yesterday", "cursor=12_x", "cursor=1_1&offset=3"] {
        let r = api.get(&format!("/api/subscription/usage-logs?{bad}"), Some(&alice)).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");
    }
}
both_stores!(usage_log_pages_by_cursor, usage_log_pages_by_cursor);
