//! Monitoring endpoints report real numbers.

use super::*;

/// Monitoring reports real traffic and real cache hits.
async fn monitoring_reports_real_numbers(store: Store) {
    let api = setup(store, Limits::new()).await;
    let key = api.key(None, &["metrics", "read"]).await;
    let k = Some(key.as_str());
    assert_error(
        &api.get("/api/content-planning/monitoring/health", None).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    let cache = |r: &Reply| (r.body["data"]["hits"].as_i64().unwrap(), r.body["data"]["misses"].as_i64().unwrap());
    let before = cache(&api.get("/api/content-planning/monitoring/cache-stats", k).await);
    for _ in 0..3 {
        assert_eq!(api.get("/api/subscription/plans", None).await.status, StatusCode::OK);
    }
    let alice = api.key(Some("alice"), &["read"]).await;
    assert_eq!(api.get("/api/subscription/usage/bob", Some(&alice)).await.status, StatusCode::FORBIDDEN);
    let after = cache(&api.get("/api/content-planning/monitoring/cache-stats", k).await);
    assert_eq!(after.0 + after.1 - before.0 - before.1, 3, "each plans request used the catalog cache once");
    assert!(after.0 >= before.0 + 2, "unchanged catalog: hits, not reloads");

    let stats = api.get("/api/content-planning/monitoring/api-stats?minutes=5", k).await;
    let d = &stats.body["data"];
    check(
        d,
        "api-stats",
        &[
            ("requests", K::N),
            ("errors", K::N),
            ("error_rate", K::N),
            ("avg_response_time", K::N),
            ("p95_response_time", K::N),
            ("endpoints", K::A),
        ],
    );
    let plans = d["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["endpoint"] == json!("/api/subscription/plans"))
        .expect("plans row");
    assert_eq!(plans["requests"], json!(3));
    let usage = d["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["endpoint"] == json!("/api/subscription/usage/{user_id}"))
        .expect("usage row by template");
    assert_eq!(
        (usage["requests"].clone(), usage["errors"].clone()),
        (json!(1), json!(0)),
        "a 403 is not a server error"
    );

    let h = api.get("/api/content-planning/monitoring/health", k).await;
    assert_eq!(h.body["status"], json!("success"));
    check(
        &h.body["data"],
        "health",
        &[("system_health", K::S), ("icon", K::S), ("api_performance", K::O), ("timestamp", K::S)],
    );
    assert_eq!(h.body["data"]["system_health"], json!("healthy"));
    check(
        &h.body["data"]["api_performance"],
        "api_performance",
        &[("recent_requests", K::N), ("recent_errors", K::N), ("error_rate", K::N)],
    );
    let l = api.get("/api/content-planning/monitoring/lightweight-stats", k).await;
    check(
        &l.body["data"],
        "lightweight",
        &[
            ("status", K::S),
            ("icon", K::S),
            ("recent_requests", K::N),
            ("recent_errors", K::N),
            ("error_rate", K::N),
            ("timestamp", K::S),
        ],
    );
    assert_error(
        &api.get("/api/content-planning/monitoring/api-stats?minutes=0", k).await,
        StatusCode::BAD_REQUEST,
        "bad_request",
    );
}
both_stores!(monitoring_reports_real_numbers, monitoring_reports_real_numbers);

/// The value of the first `/metrics` line that starts with `series`.
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')).map(|v| v.parse().unwrap()))
}

/// `GET /metrics` speaks Prometheus and counts what happened.
async fn prometheus_metrics_count_what_happened(store: Store) {
    let api = setup(store.clone(), Limits::new().with("tavily_calls", 2)).await;
    let metrics = api.key(None, &["metrics"]).await;
    let alice = api.key(Some("alice"), &["read", "ingest", "gate"]).await;
    assert_eq!(api.get("/metrics", None).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(api.get("/metrics", Some(&alice)).await.status, StatusCode::FORBIDDEN);

    let at = Utc::now().to_rfc3339();
    let ev = |id: &str, model: &str| json!({"id": id, "user_id": "alice", "provider": "gemini", "model": model, "timestamp": at});
    let body = json!({"events": [ev("m1", "gemini-2.5-pro"), ev("m1", "gemini-2.5-pro"), ev("m2", "no-price-model"), {"id": "bad"}]});
    assert_eq!(api.post("/api/usage/events", Some(&alice), body).await.status, StatusCode::OK);
    let check = json!({"operations": [{"provider": "tavily", "operation_type": "search"}]});
    assert_eq!(api.post("/api/subscription/preflight-check", Some(&alice), check.clone()).await.status, StatusCode::OK);
    let mut reserve = check.clone();
    reserve["reserve"] = json!(true);
    for _ in 0..3 {
        api.post("/api/subscription/preflight-check", Some(&alice), reserve.clone()).await;
    }

    // Made-up methods, however long, share one label and grow nothing.
    let long = "X".repeat(200_000);
    for method in [long.as_str(), "PROPFIND", "BREW"] {
        api.call(method, "/api/subscription/plans", None, None).await;
    }

    let r = api.call("GET", "/metrics", Some(&metrics), None).await;
    assert_eq!(r.status, StatusCode::OK);
    let text = r.body["raw"].as_str().unwrap();
    assert!(!text.contains("XXXX") && !text.contains("PROPFIND") && text.len() < 100_000, "{} bytes", text.len());
    assert!(text.contains("method=\"OTHER\""), "{text}");
    assert!(r.headers[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    let text = r.body["raw"].as_str().unwrap().to_string();
    let m = |s: &str| metric(&text, s).unwrap_or_else(|| panic!("{s} missing from:\n{text}"));
    assert_eq!(m("tally_ingest_events_total{outcome=\"accepted\"}"), 2.0);
    assert_eq!(m("tally_ingest_events_total{outcome=\"duplicate\"}"), 1.0);
    assert_eq!(m("tally_ingest_events_total{outcome=\"rejected\"}"), 1.0);
    assert_eq!(m("tally_unpriced_events_total"), 1.0);
    assert_eq!(m("tally_preflight_decisions_total{kind=\"check\",decision=\"allowed\"}"), 1.0);
    assert_eq!(m("tally_preflight_decisions_total{kind=\"reserve\",decision=\"allowed\"}"), 2.0);
    assert_eq!(m("tally_preflight_decisions_total{kind=\"reserve\",decision=\"denied\"}"), 1.0);
    let series = "route=\"/api/usage/events\",method=\"POST\",status=\"200\"";
    assert_eq!(m(&format!("tally_http_requests_total{{{series}}}")), 1.0);
    assert_eq!(m(&format!("tally_http_request_duration_seconds_count{{{series}}}")), 1.0);
    assert_eq!(m(&format!("tally_http_request_duration_seconds_bucket{{{series},le=\"+Inf\"}}")), 1.0);
    assert_eq!(m(&format!("tally_http_request_duration_seconds_bucket{{{series},le=\"10\"}}")), 1.0);
    assert_eq!(m("tally_http_requests_total{route=\"/metrics\",method=\"GET\",status=\"401\"}"), 1.0);
    assert_eq!(m("tally_db_pool_max_connections"), store.pool().options().get_max_connections() as f64);
    assert!(m("tally_uptime_seconds") >= 0.0 && m("tally_live_streams") == 0.0);
    // Every sample line is `name{labels} value` with a declared type.
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        let name = l.split(['{', ' ']).next().unwrap();
        let family = name.trim_end_matches("_bucket").trim_end_matches("_sum").trim_end_matches("_count");
        assert!(text.contains(&format!("# TYPE {family} ")) || text.contains(&format!("# TYPE {name} ")), "{l}");
        assert!(l.rsplit(' ').next().unwrap().parse::<f64>().is_ok(), "{l}");
    }

    // TALLY_METRICS_PUBLIC=1: anyone may scrape.
    let args = ServeArgs { metrics_public: true, ..ServeArgs::default() };
    let open = build_router(app_state(api.engine.clone(), &args), Duration::from_secs(30));
    let resp = open.oneshot(Request::builder().uri("/metrics").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}
both_stores!(prometheus_metrics_count_what_happened, prometheus_metrics_count_what_happened);
