//! The provider comparison over HTTP: error rates, response-time
//! percentiles within their stated bound, costs that reconcile with the
//! period's breakdown, and the migration's backfill bucketing events as the
//! recorder does.

use super::*;
use crate::domain::money::Nanos;

/// Exact nearest-rank percentile of `sorted`.
fn nearest_rank(sorted: &[u64], q: f64) -> u64 {
    sorted[((q * sorted.len() as f64).ceil() as usize).max(1) - 1]
}

fn within_bound(got: &Value, exact: u64) -> bool {
    let got = got.as_u64().unwrap_or_else(|| panic!("a percentile: {got}"));
    if exact < 64 { got == exact } else { got.abs_diff(exact) as f64 <= exact as f64 / 64.0 }
}

async fn the_comparison_reconciles_and_bounds_its_percentiles(store: Store) {
    let api = setup(store.clone(), Limits::new()).await;
    let ingest = api.key(None, &["ingest"]).await;
    let alice = api.key(Some("alice"), &["read"]).await;
    let bob = api.key(Some("bob"), &["read"]).await;
    // Gemini: 40 calls from 63 ms to 93 s, every fifth an error; Tavily:
    // 5 searches, one without a response time.
    let gemini_ms: Vec<u64> = (0..40).map(|i| 63 + i * i * 61).collect();
    let mut events: Vec<Value> = gemini_ms
        .iter()
        .enumerate()
        .map(|(i, ms)| {
            json!({"id": format!("g{i}"), "user_id": "alice", "provider": "gemini", "model": "gemini-2.5-pro",
                   "tokens_input": 1000, "tokens_output": 500, "response_time_ms": ms,
                   "status_code": if i % 5 == 0 { 500 } else { 200 }})
        })
        .collect();
    for i in 0..5 {
        let mut e = json!({"id": format!("t{i}"), "user_id": "alice", "provider": "tavily"});
        if i > 0 {
            e["response_time_ms"] = json!(30 + i);
        }
        events.push(e);
    }
    let r = api.post("/api/usage/events", Some(&ingest), json!({"events": events})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // Sent again: duplicates count nowhere.
    let r = api.post("/api/usage/events", Some(&ingest), json!({"events": events})).await;
    assert_eq!(r.body["data"]["duplicates"], json!(45), "{}", r.body);

    let r = api.get("/api/usage/alice/performance", Some(&alice)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let d = &r.body["data"];
    assert_eq!(d["user_id"], json!("alice"));
    assert_eq!(d["percentile_error"], json!("exact below 64 ms, else within 1/64 (1.6 %)"));
    let row = |list: &str, provider: &str| -> Value {
        d[list].as_array().unwrap().iter().find(|p| p["provider"] == json!(provider)).cloned().unwrap()
    };
    let g = row("models", "gemini");
    assert_eq!(g["model"], json!("gemini-2.5-pro"));
    assert_eq!(
        (g["calls"].clone(), g["errors"].clone(), g["error_rate_pct"].clone()),
        (json!(40), json!(8), json!(20.0))
    );
    assert_eq!(g["timed_calls"], json!(40));
    let mut sorted = gemini_ms.clone();
    sorted.sort_unstable();
    for (field, q) in [("p50_ms", 0.5), ("p95_ms", 0.95), ("p99_ms", 0.99)] {
        let exact = nearest_rank(&sorted, q);
        assert!(within_bound(&g[field], exact), "{field}: {} against {exact}", g[field]);
    }
    let mean = gemini_ms.iter().sum::<u64>() as f64 / 40.0;
    assert_eq!(g["mean_ms"], json!((mean * 100.0).round() / 100.0));
    let out_per_sec = 40.0 * 500.0 * 1000.0 / gemini_ms.iter().sum::<u64>() as f64;
    assert_eq!(g["output_tokens_per_sec"], json!((out_per_sec * 100.0).round() / 100.0));

    // Costs: the breakdown's, divided exactly (rounded down to the nano).
    let b = api.get("/api/usage/alice/breakdown?by=provider", Some(&alice)).await;
    let cost_of = |p: &str| {
        let rows = b.body["data"]["rows"].as_array().unwrap();
        Nanos::parse_usd(rows.iter().find(|r| r["key"] == json!(p)).unwrap()["cost"].as_str().unwrap()).unwrap()
    };
    let gemini_cost = cost_of("gemini");
    assert!(gemini_cost > Nanos::ZERO);
    assert_eq!(g["cost"], json!(gemini_cost.usd_string()));
    assert_eq!(g["cost_per_call"], json!(Nanos(gemini_cost.0 / 40).usd_string()));
    assert_eq!(g["cost_per_1k_tokens"], json!(Nanos(gemini_cost.0 * 1000 / 60_000).usd_string()));

    let t = row("providers", "tavily");
    assert_eq!(t["model"], Value::Null);
    assert_eq!((t["calls"].clone(), t["timed_calls"].clone()), (json!(5), json!(4)));
    assert_eq!(t["p50_ms"], json!(32), "exact below 64 ms: 31, 32, 33, 34");
    assert_eq!(t["cost"], json!(cost_of("tavily").usd_string()));
    assert_eq!(t["output_tokens_per_sec"], Value::Null, "not every call was timed");
    assert_eq!(t["cost_per_1k_tokens"], Value::Null, "searches have no tokens");

    // Another user's comparison is not Alice's to read; a bad period is a 400.
    assert_eq!(api.get("/api/usage/bob/performance", Some(&alice)).await.status, StatusCode::FORBIDDEN);
    let r = api.get("/api/usage/bob/performance", Some(&bob)).await;
    assert_eq!(r.body["data"]["models"], json!([]), "{}", r.body);
    assert_eq!(
        api.get("/api/usage/alice/performance?billing_period=13", Some(&alice)).await.status,
        StatusCode::BAD_REQUEST
    );

    // The migration's backfill buckets the same events as the recorder did.
    let pool = api.engine.store_for_tests().pool().clone();
    let read = || async {
        let rows = sqlx::query(
            "SELECT user_id, period_start, billing_period, provider, model, bucket, calls FROM response_time_buckets
             ORDER BY user_id, period_start, provider, model, bucket",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        rows.iter()
            .map(|r| {
                let s = |c: &str| r.try_get::<String, _>(c).unwrap();
                let n = |c: &str| r.try_get::<i64, _>(c).unwrap();
                (
                    s("user_id"),
                    n("period_start"),
                    s("billing_period"),
                    s("provider"),
                    s("model"),
                    n("bucket"),
                    n("calls"),
                )
            })
            .collect::<Vec<_>>()
    };
    let recorded = read().await;
    assert_eq!(recorded.iter().map(|r| r.6).sum::<i64>(), 44);
    let backend = pool.acquire().await.unwrap().backend_name().to_string();
    let dialect = if backend == "SQLite" { "sqlite" } else { "postgres" };
    let migration = std::fs::read_to_string(format!("migrations/{dialect}/0018_response_times.sql")).unwrap();
    let backfill = &migration[migration.find("INSERT INTO response_time_buckets").unwrap()..];
    sqlx::query("DELETE FROM response_time_buckets").execute(&pool).await.unwrap();
    sqlx::query(backfill.trim_end().trim_end_matches(';')).execute(&pool).await.unwrap();
    assert_eq!(read().await, recorded);
}
both_stores!(
    the_comparison_reconciles_and_bounds_its_percentiles,
    the_comparison_reconciles_and_bounds_its_percentiles
);
