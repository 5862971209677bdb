//! HTTP tests through the real router (the one `tally serve` runs), on
//! SQLite and on PostgreSQL, split by resource. The harness (`Api`) and the
//! contract's JSON type checks live here.

mod admin;
mod authorization;
mod exports;
mod family_a;
mod focus;
mod http;
mod ingest;
mod insights;
mod live;
mod monitoring;
mod performance;
mod pricing;
mod wallet;
mod webhooks;

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
use crate::server::testing::{engine_with_catalog, t, uid, user_on_plan};

pub(super) struct Api {
    router: Router,
    engine: Engine,
    /// The router's webhook sender (not running: tests call it).
    webhooks: crate::server::service::webhooks::Deliverer,
}

pub(super) struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Value,
}

impl Api {
    fn new(engine: Engine) -> Api {
        let state = app_state(engine.clone(), &ServeArgs::default());
        let webhooks = state.webhooks.clone();
        let router = build_router(state, Duration::from_secs(30));
        Api { router, engine, webhooks }
    }

    async fn key(&self, user: Option<&str>, scopes: &[&str]) -> String {
        let scopes: Vec<crate::domain::identity::Scope> =
            scopes.iter().map(|s| crate::domain::identity::Scope::parse(s).expect("scope")).collect();
        self.engine.create_api_key(user.map(uid).as_ref(), &scopes, "test", "test", Utc::now()).await.unwrap().1
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

pub(super) async fn count_events(store: &Store) -> i64 {
    sqlx::query("SELECT CAST(COUNT(*) AS BIGINT) FROM usage_events")
        .fetch_one(store.pool())
        .await
        .unwrap()
        .try_get(0)
        .unwrap()
}

pub(super) fn assert_error(r: &Reply, status: StatusCode, code: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    assert_eq!(r.body["success"], json!(false), "{}", r.body);
    assert_eq!(r.body["code"], json!(code), "{}", r.body);
    assert!(r.body["error"].as_str().is_some_and(|e| !e.is_empty()), "{}", r.body);
}

pub(super) async fn setup(store: Store, limits: Limits) -> Api {
    let start = t(2026, 1, 1);
    let (engine, plan) = engine_with_catalog(store, limits, start).await;
    user_on_plan(&engine, "alice", plan, Utc::now() - chrono::Duration::days(3)).await;
    user_on_plan(&engine, "bob", plan, Utc::now() - chrono::Duration::days(3)).await;
    // As `tally serve` does: hear committed changes (PostgreSQL's listener).
    engine.store_for_tests().start_live();
    engine.store_for_tests().live().hearing().await;
    Api::new(engine)
}

pub(super) fn event(id: &str, user: &str) -> Value {
    json!({"id": id, "user_id": user, "provider": "gemini", "model": "gemini-2.5-pro", "tokens_input": 1000, "tokens_output": 500})
}

// ----- JSON type checks against the contract's field lists -----

#[derive(Clone, Copy, Debug)]
pub(super) enum K {
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

pub(super) fn check(v: &Value, what: &str, fields: &[(&str, K)]) {
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

pub(super) const LIMIT_KEYS: &[&str] = crate::domain::provider::FAMILY_A_LIMIT_KEYS;

pub(super) fn check_limits(v: &Value) {
    check(v, "SubscriptionLimits", &[("plan_name", K::S), ("tier", K::S), ("limits", K::O), ("features", K::A)]);
    let fields: Vec<(&str, K)> = LIMIT_KEYS.iter().map(|k| (*k, K::N)).collect();
    check(&v["limits"], "limits", &fields);
}

pub(super) fn check_alert(v: &Value) {
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

pub(super) fn check_usage_stats(v: &Value) {
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

pub(super) fn check_trends(v: &Value) {
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
