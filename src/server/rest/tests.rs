//! HTTP tests through the real router (the one `tally serve` runs), on
//! SQLite and on PostgreSQL.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use chrono::Utc;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use sqlx::Row;
use tower::ServiceExt;

use crate::both_stores;
use crate::domain::limits::Limits;
use crate::server::cli::ServeArgs;
use crate::server::service::Engine;
use crate::server::startup::{app_state, build_router};
use crate::server::store::Store;
use crate::server::testing::{engine_with_catalog, t, user_on_plan};

struct Api {
    router: Router,
    engine: Engine,
}

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Value,
}

impl Api {
    fn new(engine: Engine) -> Api {
        let router = build_router(app_state(engine.clone(), &ServeArgs::default()), Duration::from_secs(30));
        Api { router, engine }
    }

    async fn key(&self, user: Option<&str>, scopes: &[&str]) -> String {
        let scopes: Vec<crate::domain::identity::Scope> =
            scopes.iter().map(|s| crate::domain::identity::Scope::parse(s).expect("scope")).collect();
        self.engine.create_api_key(user, &scopes, "test", "test", Utc::now()).await.unwrap().1
    }

    async fn call(&self, method: &str, path: &str, key: Option<&str>, body: Option<Vec<u8>>) -> Reply {
        let mut req = Request::builder().method(method).uri(path).header(header::CONTENT_TYPE, "application/json");
        if let Some(k) = key {
            req = req.header(header::AUTHORIZATION, format!("Bearer {k}"));
        }
        let resp =
            self.router.clone().oneshot(req.body(body.map(Body::from).unwrap_or_default()).unwrap()).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| json!({"raw": String::from_utf8_lossy(&bytes)}));
        Reply { status, headers, body }
    }

    async fn get(&self, path: &str, key: Option<&str>) -> Reply {
        self.call("GET", path, key, None).await
    }

    async fn post(&self, path: &str, key: Option<&str>, body: Value) -> Reply {
        self.call("POST", path, key, Some(body.to_string().into_bytes())).await
    }
}

async fn count_events(store: &Store) -> i64 {
    sqlx::query("SELECT CAST(COUNT(*) AS BIGINT) FROM usage_events")
        .fetch_one(store.pool())
        .await
        .unwrap()
        .try_get(0)
        .unwrap()
}

fn assert_error(r: &Reply, status: StatusCode, code: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    assert_eq!(r.body["success"], json!(false), "{}", r.body);
    assert_eq!(r.body["code"], json!(code), "{}", r.body);
    assert!(r.body["error"].as_str().is_some_and(|e| !e.is_empty()), "{}", r.body);
}

async fn setup(store: Store, limits: Limits) -> Api {
    let start = t(2026, 1, 1);
    let (engine, plan) = engine_with_catalog(store, limits, start).await;
    user_on_plan(&engine, "alice", plan, Utc::now() - chrono::Duration::days(3)).await;
    user_on_plan(&engine, "bob", plan, Utc::now() - chrono::Duration::days(3)).await;
    Api::new(engine)
}

fn event(id: &str, user: &str) -> Value {
    json!({"id": id, "user_id": user, "provider": "gemini", "model": "gemini-2.5-pro", "tokens_input": 1000, "tokens_output": 500})
}

async fn ingest_refuses_bad_input_and_writes_nothing(store: Store) {
    let api = setup(store.clone(), Limits::new()).await;
    let ingest = api.key(None, &["ingest"]).await;
    let read = api.key(None, &["read"]).await;
    let ok_body = json!({"events": [event("e1", "alice")]});
    assert_error(&api.post("/api/usage/events", None, ok_body.clone()).await, StatusCode::UNAUTHORIZED, "unauthorized");
    assert_error(
        &api.post("/api/usage/events", Some("tly_not_a_key"), ok_body.clone()).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    assert_error(
        &api.post("/api/usage/events", Some(&read), ok_body.clone()).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    let malformed = api.call("POST", "/api/usage/events", Some(&ingest), Some(b"{\"events\": [".to_vec())).await;
    assert_error(&malformed, StatusCode::BAD_REQUEST, "bad_request");
    assert_error(
        &api.post("/api/usage/events", Some(&ingest), json!({"events": []})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid",
    );
    assert_error(
        &api.post("/api/usage/events", Some(&ingest), json!({"rows": []})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid",
    );
    let many: Vec<Value> = (0..1001).map(|i| event(&format!("m{i}"), "alice")).collect();
    assert_error(
        &api.post("/api/usage/events", Some(&ingest), json!({"events": many})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid",
    );
    let huge = format!(
        "{{\"events\": [{{\"id\": \"x\", \"user_id\": \"alice\", \"provider\": \"gemini\", \"endpoint\": \"{}\"}}]}}",
        "a".repeat(1_100_000)
    );
    assert_error(
        &api.call("POST", "/api/usage/events", Some(&ingest), Some(huge.into_bytes())).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );
    let future = (Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    for (bad, why) in [
        (json!({"id": "b", "user_id": "alice", "provider": "gemini", "tokens_input": "12"}), "must be a number"),
        (json!({"id": "b", "user_id": "alice", "provider": "gemini", "tokens_input": -1}), "must not be negative"),
        (json!({"id": "b", "user_id": "alice", "provider": "gemini", "tokens_output": 1e15}), "whole number"),
        (
            json!({"id": "b", "user_id": "alice", "provider": "gemini", "tokens_output": 5_000_000_000_000u64}),
            "larger than",
        ),
        (json!({"id": "b", "user_id": "alice", "provider": "cohere"}), "unknown provider"),
        (json!({"id": "b", "user_id": "alice", "provider": "gemini", "timestamp": future}), "future"),
        (json!({"id": "b", "user_id": "nobody", "provider": "gemini"}), "unknown user"),
        (json!({"user_id": "alice", "provider": "gemini"}), "`id` is required"),
    ] {
        let r = api.post("/api/usage/events", Some(&ingest), json!({"events": [bad]})).await;
        assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid");
        let e = r.body["data"]["results"][0]["error"].as_str().unwrap_or_default();
        assert!(e.contains(why), "{why}: {}", r.body);
    }
    assert_eq!(count_events(&store).await, 0, "nothing written by refused requests");

    // A good batch: a duplicate inside it, a rejected neighbour that blocks nothing.
    let r = api
        .post("/api/usage/events", Some(&ingest), json!({"events": [event("e1", "alice"), event("e1", "alice"), {"id": "bad", "user_id": "alice", "provider": "gemini", "tokens_input": -3}, event("e2", "bob")]}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        (r.body["data"]["accepted"].clone(), r.body["data"]["duplicates"].clone(), r.body["data"]["rejected"].clone()),
        (json!(2), json!(1), json!(1))
    );
    let statuses: Vec<_> = r.body["data"]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (x["id"].clone(), x["status"].clone(), x["cost"].clone()))
        .collect();
    assert_eq!(statuses[0], (json!("e1"), json!("accepted"), json!("0.006250000")));
    assert_eq!(statuses[1], (json!("e1"), json!("duplicate"), json!("0.006250000")));
    assert_eq!(statuses[2].1, json!("rejected"));
    // Across batches, forever.
    let again = api.post("/api/usage/events", Some(&ingest), json!({"events": [event("e1", "alice")]})).await;
    assert_eq!(again.body["data"]["results"][0]["status"], json!("duplicate"));
    assert_eq!(count_events(&store).await, 2);
    // A key bound to a user records only that user's usage.
    let bound = api.key(Some("alice"), &["ingest"]).await;
    let r = api.post("/api/usage/events", Some(&bound), json!({"events": [event("b1", "bob")]})).await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid");
    // Unpriced models are flagged, never silently free.
    let r = api
        .post(
            "/api/usage/events",
            Some(&ingest),
            json!({"events": [{"id": "u1", "user_id": "alice", "provider": "openai", "model": "o9"}]}),
        )
        .await;
    assert_eq!(r.body["data"]["results"][0]["unpriced"], json!(true), "{}", r.body);
}
both_stores!(ingest_refuses_bad_input_and_writes_nothing, ingest_refuses_bad_input_and_writes_nothing);

// ----- JSON type checks against the contract's field lists -----

#[derive(Clone, Copy, Debug)]
enum K {
    S,
    N,
    B,
    O,
    A,
    SOrNull,
    OOrNull,
    /// Optional string: absent, or a string (never null).
    OptS,
}

fn check(v: &Value, what: &str, fields: &[(&str, K)]) {
    let obj = v.as_object().unwrap_or_else(|| panic!("{what} is not an object: {v}"));
    for (name, kind) in fields {
        let f = obj.get(*name);
        let ok = match (kind, f) {
            (K::OptS, None) => true,
            (_, None) => false,
            (K::S | K::OptS, Some(x)) => x.is_string(),
            (K::N, Some(x)) => x.is_number(),
            (K::B, Some(x)) => x.is_boolean(),
            (K::O, Some(x)) => x.is_object(),
            (K::A, Some(x)) => x.is_array(),
            (K::SOrNull, Some(x)) => x.is_string() || x.is_null(),
            (K::OOrNull, Some(x)) => x.is_object() || x.is_null(),
        };
        assert!(ok, "{what}.{name} should be {kind:?}, got {f:?}");
    }
}

const LIMIT_KEYS: &[&str] = crate::domain::provider::FAMILY_A_LIMIT_KEYS;

fn check_limits(v: &Value) {
    check(v, "SubscriptionLimits", &[("plan_name", K::S), ("tier", K::S), ("limits", K::O), ("features", K::A)]);
    let fields: Vec<(&str, K)> = LIMIT_KEYS.iter().map(|k| (*k, K::N)).collect();
    check(&v["limits"], "limits", &fields);
}

fn check_alert(v: &Value) {
    check(
        v,
        "UsageAlert",
        &[
            ("id", K::N),
            ("type", K::S),
            ("threshold_percentage", K::N),
            ("provider", K::OptS),
            ("title", K::S),
            ("message", K::S),
            ("severity", K::S),
            ("is_sent", K::B),
            ("sent_at", K::OptS),
            ("is_read", K::B),
            ("read_at", K::OptS),
            ("billing_period", K::S),
            ("created_at", K::S),
        ],
    );
}

fn check_usage_stats(v: &Value) {
    check(
        v,
        "UsageStats",
        &[
            ("billing_period", K::S),
            ("usage_status", K::S),
            ("total_calls", K::N),
            ("total_tokens", K::N),
            ("total_cost", K::N),
            ("avg_response_time", K::N),
            ("error_rate", K::N),
            ("limits", K::O),
            ("provider_breakdown", K::O),
            ("alerts", K::A),
            ("usage_percentages", K::O),
            ("last_updated", K::S),
        ],
    );
    assert!(["active", "warning", "limit_reached"].contains(&v["usage_status"].as_str().unwrap()));
    check_limits(&v["limits"]);
    // The seed client's ProviderBreakdown: all nine providers (and Hugging
    // Face, which the contract adds), zeros when unused.
    for p in [
        "gemini",
        "openai",
        "anthropic",
        "mistral",
        "tavily",
        "serper",
        "metaphor",
        "firecrawl",
        "stability",
        "huggingface",
    ] {
        check(&v["provider_breakdown"][p], "ProviderUsage", &[("calls", K::N), ("tokens", K::N), ("cost", K::N)]);
    }
    check(
        &v["usage_percentages"],
        "UsagePercentages",
        &[("gemini_calls", K::N), ("huggingface_calls", K::N), ("cost", K::N)],
    );
    v["alerts"].as_array().unwrap().iter().for_each(check_alert);
}

fn check_trends(v: &Value) {
    check(
        v,
        "UsageTrends",
        &[
            ("periods", K::A),
            ("total_calls", K::A),
            ("total_cost", K::A),
            ("total_tokens", K::A),
            ("provider_trends", K::O),
        ],
    );
    let n = v["periods"].as_array().unwrap().len();
    for k in ["total_calls", "total_cost", "total_tokens"] {
        assert_eq!(v[k].as_array().unwrap().len(), n, "{k} aligned with periods");
        assert!(v[k].as_array().unwrap().iter().all(Value::is_number));
    }
    for (_, p) in v["provider_trends"].as_object().unwrap() {
        check(p, "provider trend", &[("calls", K::A), ("cost", K::A), ("tokens", K::A)]);
        assert_eq!(p["cost"].as_array().unwrap().len(), n);
    }
}

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
    assert_eq!(r.body["data"]["total"], json!(4));
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
    // Without reserve it only answers, 200 either way.
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

/// The admin API: everything the admin UI does, scriptable and audited.
async fn admin_api_journey(store: Store) {
    let api = setup(store, Limits::new()).await;
    let admin = api.key(None, &["admin"]).await;
    let reader = api.key(None, &["read"]).await;
    let a = Some(admin.as_str());
    assert_error(&api.get("/api/admin/plans", Some(&reader)).await, StatusCode::FORBIDDEN, "forbidden");
    assert_error(&api.get("/api/admin/plans", None).await, StatusCode::UNAUTHORIZED, "unauthorized");

    // Validation errors come back per field.
    let bad = api.post("/api/admin/plans", a, json!({"name": "", "tier": "gold", "price_monthly": "-1", "price_yearly": "x", "limits": {"gemini_calls": "lots", "bogus_key": 1}})).await;
    assert_error(&bad, StatusCode::UNPROCESSABLE_ENTITY, "invalid");
    for f in ["name", "tier", "price_monthly", "price_yearly", "limits.gemini_calls", "limits.bogus_key"] {
        assert!(bad.body["fields"][f].is_string(), "{f}: {}", bad.body);
    }
    let plan = api
        .post("/api/admin/plans", a, json!({"name": "Team", "tier": "enterprise", "price_monthly": "49.50", "price_yearly": "495", "description": "For teams", "features": ["Shared limits"], "limits": {"gemini_calls": 800, "monthly_cost": "60", "openai_calls": null}}))
        .await;
    assert_eq!(plan.status, StatusCode::OK, "{}", plan.body);
    let p = &plan.body["data"];
    assert_eq!(
        (
            p["price_monthly"].clone(),
            p["limits"]["gemini_calls"].clone(),
            p["limits"]["monthly_cost"].clone(),
            p["limits"]["openai_calls"].clone()
        ),
        (json!("49.500000000"), json!(800), json!("60.000000000"), Value::Null)
    );
    let id = p["id"].as_i64().unwrap();
    assert_error(
        &api.post(
            "/api/admin/plans",
            a,
            json!({"name": "Team", "tier": "pro", "price_monthly": "1", "price_yearly": "1"}),
        )
        .await,
        StatusCode::CONFLICT,
        "conflict",
    );
    // Family A sees it at once (the catalog cache follows the revision).
    let fa = api.get("/api/subscription/plans", None).await;
    assert!(
        fa.body["data"]["plans"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["name"] == "Team" && x["price_monthly"] == json!(49.5))
    );

    // Assign it, then archive it: the subscriber keeps it, new ones cannot join.
    let assign = api
        .call(
            "PUT",
            "/api/admin/users/alice/subscription",
            a,
            Some(json!({"plan_id": id, "billing_cycle": "yearly"}).to_string().into_bytes()),
        )
        .await;
    assert_eq!(assign.status, StatusCode::OK, "{}", assign.body);
    // A higher tier: the plan applies now; the yearly cycle waits for the
    // current cycle's end.
    assert_eq!(assign.body["data"]["change"], json!("upgraded"), "{}", assign.body);
    assert_eq!(assign.body["data"]["scheduled"]["billing_cycle"], json!("yearly"), "{}", assign.body);
    let archived = api
        .call("PUT", &format!("/api/admin/plans/{id}"), a, Some(json!({"archived": true}).to_string().into_bytes()))
        .await;
    assert_eq!(archived.body["data"]["archived"], json!(true), "{}", archived.body);
    assert_eq!(archived.body["data"]["name"], json!("Team"), "a partial PUT keeps the other fields");
    let sub = api.get("/api/subscription/user/alice/subscription", a).await;
    assert_eq!(
        (
            sub.body["data"]["plan"].clone(),
            sub.body["data"]["billing_cycle"].clone(),
            sub.body["data"]["price"].clone()
        ),
        (json!("Team"), json!("monthly"), json!(49.5))
    );
    let bob = api
        .call(
            "PUT",
            "/api/admin/users/bob/subscription",
            a,
            Some(json!({"plan_id": id, "billing_cycle": "monthly"}).to_string().into_bytes()),
        )
        .await;
    assert_error(&bob, StatusCode::UNPROCESSABLE_ENTITY, "invalid");
    assert!(
        !api.get("/api/subscription/plans", None).await.body["data"]["plans"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["name"] == "Team")
    );

    // Prices: a new version from an instant; the history stays.
    let v1 = api.post("/api/admin/pricing", a, json!({"provider": "openai", "model": "o9", "input_per_million": "5", "output_per_million": "20", "effective_from": "2026-01-01T00:00:00Z"})).await;
    assert_eq!(v1.status, StatusCode::OK, "{}", v1.body);
    let dup = api.post("/api/admin/pricing", a, json!({"provider": "openai", "model": "o9", "input_per_million": "6", "effective_from": "2026-01-01T00:00:00Z"})).await;
    assert_error(&dup, StatusCode::CONFLICT, "conflict");
    let bad_price = api
        .post("/api/admin/pricing", a, json!({"provider": "openai", "model": "o9", "input_per_million": "-5"}))
        .await;
    assert_error(&bad_price, StatusCode::UNPROCESSABLE_ENTITY, "invalid");
    assert!(bad_price.body["fields"]["input_per_million"].is_string());
    let v2 = api
        .post(
            "/api/admin/pricing",
            a,
            json!({"provider": "openai", "model": "o9", "input_per_million": "4", "output_per_million": "16"}),
        )
        .await;
    assert_eq!(v2.status, StatusCode::OK);
    let all = api.get("/api/admin/pricing", a).await;
    assert_eq!(all.body["data"]["pricing"].as_array().unwrap().iter().filter(|x| x["model"] == "o9").count(), 2);

    // Users.
    let u = api.post("/api/admin/users", a, json!({"id": "carol-42", "email": "carol@example.test", "name": "Carol", "role": "user", "password": "long-enough-pw"})).await;
    assert_eq!((u.status, u.body["data"]["user_id"].clone()), (StatusCode::OK, json!("carol-42")), "{}", u.body);
    assert_error(
        &api.post("/api/admin/users", a, json!({"email": "carol@example.test"})).await,
        StatusCode::CONFLICT,
        "conflict",
    );
    assert_error(
        &api.post("/api/admin/users", a, json!({"email": "x@example.test", "password": "short"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid",
    );
    let listed = api.get("/api/admin/users?search=carol", a).await;
    assert_eq!(listed.body["data"]["total"], json!(1));
    assert_eq!(api.get("/api/admin/users/carol-42", a).await.body["data"]["email"], json!("carol@example.test"));

    // Keys: the secret once, then revoked and dead.
    let k = api.post("/api/admin/api-keys", a, json!({"user_id": "carol-42", "scopes": ["read"]})).await;
    let secret = k.body["data"]["key"].as_str().unwrap().to_string();
    assert_eq!(api.get("/api/subscription/usage/carol-42", Some(&secret)).await.status, StatusCode::OK);
    assert!(
        api.get("/api/admin/api-keys", a).await.body["data"]["api_keys"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x.get("key").is_none()),
        "secrets are never listed"
    );
    let kid = k.body["data"]["id"].as_str().unwrap();
    assert_eq!(api.call("DELETE", &format!("/api/admin/api-keys/{kid}"), a, None).await.status, StatusCode::OK);
    assert_error(
        &api.get("/api/subscription/usage/carol-42", Some(&secret)).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    assert_error(
        &api.post("/api/admin/api-keys", a, json!({"scopes": ["superuser"]})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid",
    );

    // The audit log saw every change, with before and after.
    let log = api.get("/api/admin/audit-log?limit=100", a).await;
    let actions: Vec<String> = log.body["data"]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect();
    for want in [
        "plan.create",
        "plan.update",
        "subscription.change",
        "price.create",
        "user.create",
        "api_key.create",
        "api_key.revoke",
    ] {
        assert!(actions.iter().any(|x| x == want), "{want} in {actions:?}");
    }
    let update = log.body["data"]["entries"].as_array().unwrap().iter().find(|e| e["action"] == "plan.update").unwrap();
    assert_eq!(
        (update["before"]["archived"].clone(), update["after"]["archived"].clone()),
        (json!(false), json!(true))
    );
    let filtered = api.get("/api/admin/audit-log?entity_type=price", a).await;
    assert!(filtered.body["data"]["entries"].as_array().unwrap().iter().all(|e| e["entity_type"] == "price"));
}
both_stores!(admin_api_journey, admin_api_journey);

/// Errors axum produces itself still speak the envelope; never a 500.
async fn framework_errors_are_enveloped(store: Store) {
    let api = setup(store, Limits::new()).await;
    let admin = api.key(None, &["admin"]).await;
    assert_error(&api.get("/api/no/such/endpoint", None).await, StatusCode::NOT_FOUND, "not_found");
    assert_error(
        &api.call("DELETE", "/api/subscription/plans", None, None).await,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
    assert_error(&api.get("/api/admin/users?limit=abc", Some(&admin)).await, StatusCode::BAD_REQUEST, "bad_request");
    let huge = vec![b' '; 3 * 1024 * 1024];
    assert_error(
        &api.call("POST", "/api/admin/plans", Some(&admin), Some(huge)).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );
    // Pages are still pages.
    let page = api.get("/no-such-page", None).await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(page.body["raw"].as_str().unwrap().contains("<html"));
}
both_stores!(framework_errors_are_enveloped, framework_errors_are_enveloped);

async fn probes_answer(store: Store) {
    let api = setup(store.clone(), Limits::new()).await;
    let h = api.get("/healthz", None).await;
    assert_eq!((h.status, h.body["raw"].clone()), (StatusCode::OK, json!("ok")));
    assert_eq!(api.get("/readyz", None).await.status, StatusCode::OK);
    store.close().await;
    assert_eq!(api.get("/readyz", None).await.status, StatusCode::SERVICE_UNAVAILABLE, "a closed store is not ready");
    assert_eq!(api.get("/healthz", None).await.status, StatusCode::OK, "the process is still up");
}
both_stores!(probes_answer, probes_answer);

// ----- authorization matrix -----

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Who {
    Anon,
    UserA,
    UserB,
    Admin,
    Ingest,
    Read,
}

const WHO: [Who; 6] = [Who::Anon, Who::UserA, Who::UserB, Who::Admin, Who::Ingest, Who::Read];

struct Caller {
    cookie: Option<String>,
    bearer: Option<String>,
}

impl Api {
    async fn as_caller(&self, c: &Caller, method: &str, path: &str, body: Option<(&str, String)>) -> Reply {
        let mut req = Request::builder().method(method).uri(path).header(header::HOST, "tally.test");
        if let Some((ct, _)) = &body {
            req = req.header(header::CONTENT_TYPE, *ct);
        }
        if let Some(cookie) = &c.cookie {
            req = req
                .header(header::COOKIE, format!("tally_session={cookie}"))
                .header(header::ORIGIN, "https://tally.test");
        }
        if let Some(k) = &c.bearer {
            req = req.header(header::AUTHORIZATION, format!("Bearer {k}"));
        }
        let body = body.map(|(_, b)| Body::from(b)).unwrap_or_default();
        let resp = self.router.clone().oneshot(req.body(body).unwrap()).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| json!({"raw": String::from_utf8_lossy(&bytes)}));
        Reply { status, headers, body }
    }
}

fn sfn_url<T: leptos::server_fn::ServerFn>() -> String {
    T::url().to_string()
}

/// Every route and server function × every kind of caller → the expected
/// status; and no answer to one user ever carries the other's identity.
async fn authorization_matrix(store: Store) {
    use crate::api::{admin as a, billing as b, dashboard as d, session as s};
    use crate::domain::identity::Role;
    use crate::server::service::admin::UserForm;

    let api = setup(store.clone(), Limits::new().with("tavily_calls", 10)).await;
    let now = Utc::now();
    for (id, role) in [("user-alpha", Role::User), ("user-bravo", Role::User), ("boss", Role::Admin)] {
        let form = UserForm {
            id: Some(id.into()),
            email: format!("{id}@example.test"),
            name: id.into(),
            role,
            password: Some(format!("{id}-password")),
        };
        api.engine.admin_create_user(form, "test", now).await.unwrap();
    }
    let session = |id: &str| {
        let engine = api.engine.clone();
        let id = id.to_string();
        async move {
            engine.login(&format!("{id}@example.test"), &format!("{id}-password"), "test", Utc::now()).await.unwrap().1
        }
    };
    let ingest = api.key(None, &["ingest"]).await;
    let read = api.key(None, &["read"]).await;
    let callers = [
        (Who::Anon, Caller { cookie: None, bearer: None }),
        (Who::UserA, Caller { cookie: Some(session("user-alpha").await), bearer: None }),
        (Who::UserB, Caller { cookie: Some(session("user-bravo").await), bearer: None }),
        (Who::Admin, Caller { cookie: Some(session("boss").await), bearer: None }),
        (Who::Ingest, Caller { cookie: None, bearer: Some(ingest) }),
        (Who::Read, Caller { cookie: None, bearer: Some(read) }),
    ];
    // An alert of user A's, for mark-read.
    let events: Vec<Value> =
        (0..9).map(|i| json!({"id": format!("m{i}"), "user_id": "user-alpha", "provider": "tavily"})).collect();
    let k = api.key(None, &["ingest"]).await;
    assert_eq!(api.post("/api/usage/events", Some(&k), json!({"events": events})).await.status, StatusCode::OK);
    let alert_id = api.engine.alerts("user-alpha", false).await.unwrap().0[0].id;

    use StatusCode as S;
    const OK: S = S::OK;
    const UN: S = S::UNAUTHORIZED;
    const NO: S = S::FORBIDDEN;
    let json_ct = "application/json";
    let form_ct = "application/x-www-form-urlencoded";
    // (method, path, body, expected for [Anon, UserA, UserB, Admin, Ingest, Read])
    let own_read = [UN, OK, NO, OK, NO, OK];
    let admin_only = [UN, NO, NO, OK, NO, NO];
    let public = [OK; 6];
    type Row = (&'static str, String, Option<(&'static str, String)>, [S; 6]);
    let mut rows: Vec<Row> = vec![
        ("GET", "/api/subscription/plans".into(), None, public),
        ("GET", "/api/subscription/pricing".into(), None, public),
        ("GET", "/api/subscription/usage/user-alpha".into(), None, own_read),
        ("GET", "/api/subscription/usage/user-alpha/trends".into(), None, own_read),
        ("GET", "/api/subscription/dashboard/user-alpha".into(), None, own_read),
        ("GET", "/api/subscription/alerts/user-alpha".into(), None, own_read),
        ("GET", "/api/subscription/user/user-alpha/subscription".into(), None, own_read),
        ("GET", "/api/subscription/renewal-history/user-alpha".into(), None, own_read),
        ("GET", "/api/subscription/usage-logs".into(), None, [UN, OK, OK, OK, NO, NO]),
        // Marking read is a write: a read key may not.
        ("POST", format!("/api/subscription/alerts/{alert_id}/mark-read"), None, [UN, OK, NO, OK, NO, NO]),
        (
            "POST",
            "/api/subscription/preflight-check".into(),
            Some((
                json_ct,
                json!({"user_id": "user-alpha", "operations": [{"provider": "tavily", "operation_type": "search"}]})
                    .to_string(),
            )),
            [UN, OK, NO, OK, OK, OK],
        ),
        (
            "POST",
            "/api/usage/events".into(),
            Some((
                json_ct,
                json!({"events": [{"id": "mx", "user_id": "user-alpha", "provider": "tavily"}]}).to_string(),
            )),
            [UN, NO, NO, NO, OK, NO],
        ),
        ("GET", "/api/content-planning/monitoring/health".into(), None, admin_only),
        ("GET", "/api/content-planning/monitoring/api-stats".into(), None, admin_only),
        ("GET", "/api/content-planning/monitoring/lightweight-stats".into(), None, admin_only),
        ("GET", "/api/content-planning/monitoring/cache-stats".into(), None, admin_only),
        ("GET", "/api/admin/plans".into(), None, admin_only),
        ("GET", "/api/admin/plans/1".into(), None, admin_only),
        ("GET", "/api/admin/pricing".into(), None, admin_only),
        ("GET", "/api/admin/users".into(), None, admin_only),
        ("GET", "/api/admin/users/user-alpha".into(), None, admin_only),
        ("GET", "/api/admin/api-keys".into(), None, admin_only),
        ("GET", "/api/admin/audit-log".into(), None, admin_only),
        (
            "POST",
            "/api/admin/pricing".into(),
            Some((json_ct, json!({"provider": "tavily", "model": "*", "per_search": "0.001"}).to_string())),
            admin_only,
        ),
        // Server functions (form-encoded, as the browser posts them).
        ("POST", sfn_url::<s::CurrentUser>(), Some((form_ct, String::new())), public),
        ("POST", sfn_url::<d::GetDashboard>(), Some((form_ct, "user=user-alpha&months=6".into())), own_read),
        (
            "POST",
            sfn_url::<d::MarkAllAlertsRead>(),
            Some((form_ct, "user=user-alpha".into())),
            [UN, OK, NO, OK, NO, NO],
        ),
        ("POST", sfn_url::<d::MarkAlertRead>(), Some((form_ct, format!("id={alert_id}"))), [UN, OK, NO, OK, NO, NO]),
        ("POST", sfn_url::<b::UsageLogPage>(), Some((form_ct, "user=user-alpha".into())), [UN, OK, NO, OK, NO, OK]),
        ("POST", sfn_url::<b::BillingHistory>(), Some((form_ct, "user=user-alpha".into())), [UN, OK, NO, OK, NO, OK]),
        ("POST", sfn_url::<b::PlanChoice>(), Some((form_ct, String::new())), [UN, OK, OK, OK, NO, NO]),
        (
            "POST",
            sfn_url::<b::ChangeMyPlan>(),
            Some((form_ct, "plan_id=1&billing_cycle=yearly".into())),
            [UN, OK, OK, OK, NO, NO],
        ),
        ("GET", "/api/billing/user-alpha/history.csv".into(), None, own_read),
        ("GET", "/api/billing/user-alpha/renewals.csv".into(), None, own_read),
        ("POST", sfn_url::<a::AdminPlans>(), Some((form_ct, String::new())), admin_only),
        ("POST", sfn_url::<a::AdminPricing>(), Some((form_ct, String::new())), admin_only),
        ("POST", sfn_url::<a::AdminUsers>(), Some((form_ct, String::new())), admin_only),
        ("POST", sfn_url::<a::AdminAlerts>(), Some((form_ct, String::new())), admin_only),
        ("POST", sfn_url::<a::AuditEntries>(), Some((form_ct, String::new())), admin_only),
        ("POST", sfn_url::<a::ApiKeys>(), Some((form_ct, String::new())), admin_only),
        (
            "POST",
            sfn_url::<a::AssignPlan>(),
            Some((form_ct, "user_id=user-bravo&plan_id=1&billing_cycle=monthly".into())),
            admin_only,
        ),
        (
            "POST",
            sfn_url::<a::RevokeApiKey>(),
            Some((form_ct, "id=no-such-key".into())),
            [UN, NO, NO, S::NOT_FOUND, NO, NO],
        ),
        (
            "POST",
            sfn_url::<a::CreateApiKey>(),
            Some((form_ct, "key[user_id]=&key[name]=x&key[scope_read]=on".into())),
            admin_only,
        ),
        (
            "POST",
            sfn_url::<a::SavePlan>(),
            Some((form_ct, "plan[name]=Matrix&plan[tier]=basic&plan[price_monthly]=1&plan[price_yearly]=10".into())),
            admin_only,
        ),
        (
            "POST",
            sfn_url::<s::ChangePassword>(),
            Some((form_ct, "current_password=wrong-one&new_password=another-one".into())),
            [UN, OK, OK, OK, NO, NO],
        ),
    ];
    rows.push((
        "POST",
        sfn_url::<a::AddPrice>(),
        Some((form_ct, "price[provider]=tavily&price[model]=*&price[per_search]=0.002".into())),
        admin_only,
    ));
    let mut failures = Vec::new();
    for (method, path, body, expected) in &rows {
        for (i, (who, caller)) in callers.iter().enumerate() {
            assert_eq!(*who, WHO[i]);
            let r = api.as_caller(caller, method, path, body.clone()).await;
            if r.status != expected[i] {
                failures.push(format!("{method} {path} as {who:?}: {} (want {}) {}", r.status, expected[i], r.body));
            }
            let text = r.body.to_string();
            let foreign = match who {
                Who::UserA => Some("user-bravo"),
                Who::UserB => Some("user-alpha"),
                _ => None,
            };
            if let Some(f) = foreign
                && text.contains(f)
            {
                failures.push(format!("{method} {path} as {who:?} leaked {f}: {text}"));
            }
        }
    }
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
    // A cookie-authenticated change from another origin is refused (CSRF).
    let mut req = Request::builder().method("POST").uri(sfn_url::<a::AdminPlans>()).header(header::HOST, "tally.test");
    req = req
        .header(header::COOKIE, format!("tally_session={}", callers[3].1.cookie.clone().unwrap()))
        .header(header::ORIGIN, "https://evil.test");
    let resp = api.router.clone().oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
}
both_stores!(authorization_matrix, authorization_matrix);

/// Responses are compressed for clients that accept it.
async fn responses_are_compressed(store: Store) {
    let api = setup(store, Limits::new()).await;
    let req = Request::builder()
        .uri("/api/subscription/pricing")
        .header(header::ACCEPT_ENCODING, "gzip")
        .body(Body::empty())
        .unwrap();
    let resp = api.router.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers().get(header::CONTENT_ENCODING).map(|v| v.to_str().unwrap()), Some("gzip"));
    let plain = api.get("/api/subscription/pricing", None).await;
    assert!(plain.headers.get(header::CONTENT_ENCODING).is_none(), "no encoding unless asked");
}
both_stores!(responses_are_compressed, responses_are_compressed);
