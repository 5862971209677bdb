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
