//! Through the real router, on both stores: signed-out visitors are sent
//! to sign in before anything renders, admin pages refuse non-admins,
//! security headers, cross-site and open-redirect defences, plan changes.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use chrono::Utc;
use http_body_util::BodyExt;
use tower::ServiceExt;

use crate::both_stores;
use crate::domain::identity::Role;
use crate::domain::limits::Limits;
use crate::server::cli::ServeArgs;
use crate::server::service::Engine;
use crate::server::service::admin::UserForm;
use crate::server::startup::{app_state, build_router};
use crate::server::store::Store;
use crate::server::testing::{engine_with_catalog, t, uid};

struct Site {
    router: Router,
    engine: Engine,
}

struct Page {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Site {
    async fn new(store: Store) -> Site {
        let (engine, plan) = engine_with_catalog(store, Limits::new(), t(2026, 1, 1)).await;
        for (id, role) in [("ann", Role::User), ("root", Role::Admin)] {
            let form = UserForm {
                id: Some(id.into()),
                email: format!("{id}@example.test"),
                name: id.into(),
                role,
                password: Some(format!("{id}-password")),
                timezone: None,
            };
            engine.admin_create_user(form, "test", Utc::now()).await.unwrap();
        }
        let _ = plan;
        let router = build_router(app_state(engine.clone(), &ServeArgs::default()), Duration::from_secs(30));
        Site { router, engine }
    }

    async fn cookie(&self, who: &str) -> String {
        let (_, token) = self
            .engine
            .login(&format!("{who}@example.test"), &format!("{who}-password"), "10.9.9.9", Utc::now())
            .await
            .unwrap();
        format!("tally_session={token}")
    }

    async fn send(&self, req: Request<Body>) -> Page {
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let (status, headers) = (resp.status(), resp.headers().clone());
        let body = String::from_utf8_lossy(&resp.into_body().collect().await.unwrap().to_bytes()).to_string();
        Page { status, headers, body }
    }

    async fn get(&self, path: &str, cookie: Option<&str>) -> Page {
        let mut req =
            Request::builder().uri(path).header(header::HOST, "127.0.0.1:3000").header(header::ACCEPT, "text/html");
        if let Some(c) = cookie {
            req = req.header(header::COOKIE, c);
        }
        self.send(req.body(Body::empty()).unwrap()).await
    }
}

fn location(p: &Page) -> &str {
    p.headers.get(header::LOCATION).and_then(|v| v.to_str().ok()).unwrap_or("")
}

async fn signed_out_visitors_are_sent_to_sign_in(store: Store) {
    let site = Site::new(store).await;
    for path in [
        "/",
        "/dashboard",
        "/usage",
        "/performance",
        "/plans",
        "/billing",
        "/account",
        "/admin",
        "/admin/plans",
        "/admin/pricing",
    ] {
        let p = site.get(path, None).await;
        assert_eq!(p.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(location(&p), format!("/login?next={path}"), "{path}");
    }
    // The query comes along, encoded.
    let p = site.get("/usage?provider=gemini&page=2", None).await;
    assert_eq!(location(&p), "/login?next=/usage%3Fprovider%3Dgemini%26page%3D2");
    // A dead session is no session.
    let p = site.get("/dashboard", Some("tally_session=not-a-session")).await;
    assert_eq!((p.status, location(&p)), (StatusCode::SEE_OTHER, "/login?next=/dashboard"));
    // The sign-in page itself is open; the API still answers JSON 401.
    assert_eq!(site.get("/login", None).await.status, StatusCode::OK);
    let api = site.get("/api/subscription/dashboard/ann", None).await;
    assert_eq!(api.status, StatusCode::UNAUTHORIZED);
    assert!(api.body.contains("\"code\":\"unauthorized\""), "{}", api.body);
    // Signed in: the page renders; a user on an admin page gets a 403 page.
    let ann = site.cookie("ann").await;
    let p = site.get("/dashboard", Some(&ann)).await;
    assert_eq!(p.status, StatusCode::OK);
    let p = site.get("/admin/plans", Some(&ann)).await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    assert!(p.body.contains("Administrators only"), "{}", p.body);
    let root = site.cookie("root").await;
    assert_eq!(site.get("/admin/plans", Some(&root)).await.status, StatusCode::OK);
    // A signed-in visitor of /login goes on to `next`, if it is on this site.
    let p = site.get("/login?next=%2Fbilling", Some(&ann)).await;
    assert_eq!((p.status, location(&p)), (StatusCode::SEE_OTHER, "/billing"));
    for evil in ["%2F%5Cevil.com", "%2F%2Fevil.com", "%2F%09%2Fevil.com", "https%3A%2F%2Fevil.com"] {
        let p = site.get(&format!("/login?next={evil}"), Some(&ann)).await;
        assert_eq!((p.status, location(&p)), (StatusCode::SEE_OTHER, "/"), "{evil}");
    }
    // A control character is refused at the door (see `text_rule`).
    let p = site.get("/login?next=%2F%00x", Some(&ann)).await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", p.body);
}
both_stores!(signed_out_visitors_are_sent_to_sign_in, signed_out_visitors_are_sent_to_sign_in);

async fn pages_carry_security_headers(store: Store) {
    let site = Site::new(store).await;
    let ann = site.cookie("ann").await;
    let page = site.get("/dashboard", Some(&ann)).await;
    let csp = page.headers.get(header::CONTENT_SECURITY_POLICY).unwrap().to_str().unwrap().to_string();
    for part in ["script-src 'self' 'nonce-", "'wasm-unsafe-eval'", "frame-ancestors 'none'", "object-src 'none'"] {
        assert!(csp.contains(part), "{part} missing from {csp}");
    }
    assert!(!csp.contains("'unsafe-inline' 'wasm") && !csp.contains("script-src 'self' 'unsafe-inline'"), "{csp}");
    // The nonce in the header is the one on the page's inline scripts.
    let nonce = csp.split("'nonce-").nth(1).and_then(|r| r.split('\'').next()).unwrap();
    assert!(page.body.contains(&format!("nonce=\"{nonce}\"")), "inline scripts carry the nonce");
    for p in [&page, &site.get("/api/subscription/plans", None).await, &site.get("/login", None).await] {
        assert_eq!(p.headers.get(header::X_CONTENT_TYPE_OPTIONS).unwrap(), "nosniff");
        assert_eq!(p.headers.get(header::REFERRER_POLICY).unwrap(), "strict-origin-when-cross-origin");
        assert!(
            p.headers
                .get(header::CONTENT_SECURITY_POLICY)
                .unwrap()
                .to_str()
                .unwrap()
                .contains("frame-ancestors 'none'")
        );
    }
}
both_stores!(pages_carry_security_headers, pages_carry_security_headers);

/// Sign-in is a form post: another site cannot post it (login CSRF), and a
/// hostile `next` never leaves the site nor crashes the redirect.
async fn sign_in_refuses_cross_site_and_open_redirects(store: Store) {
    let site = Site::new(store).await;
    let path = <crate::api::session::Login as leptos::server_fn::ServerFn>::PATH;
    let post = |origin: &str, next: &str| {
        let body = format!("email=ann%40example.test&password=ann-password&next={next}");
        Request::builder()
            .method("POST")
            .uri(path)
            .header(header::HOST, "127.0.0.1:3000")
            .header(header::ORIGIN, origin)
            .header(header::ACCEPT, "text/html")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .unwrap()
    };
    let p = site.send(post("https://evil.test", "%2Fdashboard")).await;
    assert_eq!(p.status, StatusCode::FORBIDDEN, "{}", p.body);
    assert!(p.headers.get(header::SET_COOKIE).is_none());
    let p = site.send(post("http://127.0.0.1:3000", "%2Fbilling")).await;
    assert_eq!((p.status.is_redirection(), location(&p)), (true, "/billing"), "{}", p.body);
    assert!(p.headers.get(header::SET_COOKIE).unwrap().to_str().unwrap().starts_with("tally_session="));
    for evil in ["%2F%5Cevil.com", "%2F%09%2Fevil.com", "%2F%2Fevil.com", "%2Fa%0D%0ALocation%3A+x"] {
        let p = site.send(post("http://127.0.0.1:3000", evil)).await;
        assert_eq!((p.status.is_redirection(), location(&p)), (true, "/"), "{evil}: {}", p.body);
    }
    // A control character is refused at the door, and nobody is signed in.
    let p = site.send(post("http://127.0.0.1:3000", "%2F%01")).await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", p.body);
    assert!(p.headers.get(header::SET_COOKIE).is_none());
}
both_stores!(sign_in_refuses_cross_site_and_open_redirects, sign_in_refuses_cross_site_and_open_redirects);

impl Site {
    async fn key(&self, scopes: &[&str]) -> String {
        let scopes: Vec<crate::domain::identity::Scope> =
            scopes.iter().map(|s| crate::domain::identity::Scope::parse(s).expect("scope")).collect();
        self.engine.create_api_key(None, &scopes, "test", "test", Utc::now()).await.unwrap().1
    }

    async fn json(
        &self,
        method: &str,
        path: &str,
        key: &str,
        body: serde_json::Value,
    ) -> (StatusCode, serde_json::Value) {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {key}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        let p = self.send(req).await;
        (p.status, serde_json::from_str(&p.body).unwrap_or(serde_json::Value::String(p.body)))
    }
}

/// Hostile strings and numbers are refused one by one with a reason; they
/// never fail a batch, wrap a sum or panic.
async fn hostile_input_is_refused_not_crashed(store: Store) {
    use serde_json::json;
    let site = Site::new(store).await;
    let ingest = site.key(&["ingest"]).await;
    let events = json!({"events": [
        {"id": "nul", "user_id": "ann", "provider": "gemini", "model": "gemini\u{0}-2.5-pro", "tokens_input": 10},
        {"id": "ctl", "user_id": "ann\u{1b}", "provider": "tavily"},
        {"id": "huge", "user_id": "ann", "provider": "gemini", "model": "gemini-2.5-pro", "tokens_output": 1_000_000_000_000u64},
        {"id": "fine", "user_id": "ann", "provider": "tavily", "operation_type": "search"},
    ]});
    let (status, body) = site.json("POST", "/api/usage/events", &ingest, events).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let results = body["data"]["results"].as_array().unwrap();
    let outcome: Vec<_> = results.iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(outcome, ["rejected", "rejected", "rejected", "accepted"], "{body}");
    assert!(results[0]["error"].as_str().unwrap().contains("control character (U+0000)"), "{body}");
    assert!(results[2]["error"].as_str().unwrap().contains("more than the $1,000,000 one event may cost"), "{body}");
    // Admin money near 1e20 USD: a 422 with a sentence, not a panic.
    let admin = site.key(&["admin"]).await;
    let (status, body) = site
        .json(
            "POST",
            "/api/admin/plans",
            &admin,
            json!({"name": "Huge", "tier": "pro", "price_monthly": "100000000000000000000"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["fields"]["price_monthly"], json!("Enter an amount up to 100,000,000 US dollars."));
    let (status, body) = site
        .json("POST", "/api/admin/pricing", &admin, json!({"provider": "gemini", "model": "x", "per_request": "1e20"}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    // Page numbers far past the end: a 4xx or an empty page, never a panic.
    let ann = site.cookie("ann").await;
    let reader = site
        .engine
        .create_api_key(Some(&uid("ann")), &[crate::domain::identity::Scope::Read], "t", "t", Utc::now())
        .await
        .unwrap()
        .1;
    let (status, _) =
        site.json("GET", &format!("/api/subscription/usage-logs?offset={}", i64::MAX), &reader, json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let page = site.get(&format!("/usage?page={}", i64::MAX), Some(&ann)).await;
    assert_eq!(page.status, StatusCode::OK);
}
both_stores!(hostile_input_is_refused_not_crashed, hostile_input_is_refused_not_crashed);

/// Every endpoint declares its policy: each REST route below answers an
/// anonymous caller 401 unless public, each server function in the registry
/// has a policy, and a key with the wrong scope is refused. Undeclared
/// endpoints are refused by the policy layer itself (deny by default).
async fn every_endpoint_declares_its_policy(store: Store) {
    use crate::server::policy::{Policy, rest_policy, server_fn_policy};
    use axum::http::Method;
    let site = Site::new(store).await;
    let routes: &[(&str, &str, &str)] = &[
        ("GET", "/api/subscription/plans", "/api/subscription/plans"),
        ("GET", "/api/subscription/pricing", "/api/subscription/pricing"),
        ("GET", "/api/subscription/usage/{user_id}", "/api/subscription/usage/ann"),
        ("GET", "/api/subscription/usage/{user_id}/trends", "/api/subscription/usage/ann/trends"),
        ("GET", "/api/subscription/trends/{user_id}", "/api/subscription/trends/ann"),
        ("GET", "/api/subscription/dashboard/{user_id}", "/api/subscription/dashboard/ann"),
        ("GET", "/api/subscription/alerts/{user_id}", "/api/subscription/alerts/ann"),
        ("POST", "/api/subscription/alerts/{alert_id}/mark-read", "/api/subscription/alerts/1/mark-read"),
        ("GET", "/api/subscription/user/{user_id}/subscription", "/api/subscription/user/ann/subscription"),
        ("GET", "/api/subscription/usage-logs", "/api/subscription/usage-logs"),
        ("GET", "/api/subscription/renewal-history/{user_id}", "/api/subscription/renewal-history/ann"),
        ("POST", "/api/subscription/preflight-check", "/api/subscription/preflight-check"),
        ("GET", "/api/content-planning/monitoring/health", "/api/content-planning/monitoring/health"),
        ("GET", "/api/content-planning/monitoring/api-stats", "/api/content-planning/monitoring/api-stats"),
        (
            "GET",
            "/api/content-planning/monitoring/lightweight-stats",
            "/api/content-planning/monitoring/lightweight-stats",
        ),
        ("GET", "/api/content-planning/monitoring/cache-stats", "/api/content-planning/monitoring/cache-stats"),
        ("POST", "/api/usage/events", "/api/usage/events"),
        ("GET", "/api/billing/{user_id}/history.csv", "/api/billing/ann/history.csv"),
        ("GET", "/api/billing/{user_id}/renewals.csv", "/api/billing/ann/renewals.csv"),
        ("GET", "/api/admin/plans", "/api/admin/plans"),
        ("POST", "/api/admin/plans", "/api/admin/plans"),
        ("GET", "/api/admin/plans/{plan_id}", "/api/admin/plans/1"),
        ("PUT", "/api/admin/plans/{plan_id}", "/api/admin/plans/1"),
        ("GET", "/api/admin/pricing", "/api/admin/pricing"),
        ("POST", "/api/admin/pricing", "/api/admin/pricing"),
        ("GET", "/api/admin/users", "/api/admin/users"),
        ("POST", "/api/admin/users", "/api/admin/users"),
        ("GET", "/api/admin/users/{user_id}", "/api/admin/users/ann"),
        ("PATCH", "/api/admin/users/{user_id}", "/api/admin/users/ann"),
        ("POST", "/api/admin/users/{user_id}/subscription/cancel", "/api/admin/users/ann/subscription/cancel"),
        ("POST", "/api/admin/users/{user_id}/subscription/pause", "/api/admin/users/ann/subscription/pause"),
        ("POST", "/api/admin/users/{user_id}/subscription/resume", "/api/admin/users/ann/subscription/resume"),
        ("PUT", "/api/admin/users/{user_id}/subscription", "/api/admin/users/ann/subscription"),
        ("DELETE", "/api/admin/users/{user_id}/sessions", "/api/admin/users/ann/sessions"),
        ("GET", "/api/admin/api-keys", "/api/admin/api-keys"),
        ("POST", "/api/admin/api-keys", "/api/admin/api-keys"),
        ("DELETE", "/api/admin/api-keys/{key_id}", "/api/admin/api-keys/k"),
        ("GET", "/api/admin/audit-log", "/api/admin/audit-log"),
    ];
    let ingest_only = site.key(&["ingest"]).await;
    for (method, template, path) in routes {
        let m = Method::from_bytes(method.as_bytes()).unwrap();
        let policy = rest_policy(&m, template).unwrap_or_else(|| panic!("{method} {template} declares no policy"));
        let req = Request::builder().method(m.clone()).uri(*path).header(header::CONTENT_TYPE, "application/json");
        let anon = site.send(req.body(Body::from("{}")).unwrap()).await;
        if policy == Policy::Public {
            assert_ne!(anon.status, StatusCode::UNAUTHORIZED, "{method} {path}");
        } else {
            assert_eq!(anon.status, StatusCode::UNAUTHORIZED, "{method} {path}: {}", anon.body);
        }
        // A key that may only record usage may do nothing else (but read
        // the deployment's health, as any signed-in caller may).
        if !matches!(policy, Policy::Public | Policy::Ingest | Policy::Gate | Policy::Health) {
            let req = Request::builder()
                .method(m)
                .uri(*path)
                .header(header::AUTHORIZATION, format!("Bearer {ingest_only}"))
                .header(header::CONTENT_TYPE, "application/json");
            let p = site.send(req.body(Body::from("{}")).unwrap()).await;
            assert_eq!(p.status, StatusCode::FORBIDDEN, "{method} {path} with an ingest key: {}", p.body);
        }
    }
    // Every registered server function has a policy; an unknown one is refused.
    let registered: Vec<_> = leptos::server_fn::axum::server_fn_paths().collect();
    assert!(registered.len() >= 20, "{registered:?}");
    for (path, _) in &registered {
        assert!(server_fn_policy(path).is_some(), "server function {path} declares no policy");
    }
    // A function nobody registered has no policy and no route.
    assert_eq!(server_fn_policy("/sfn/not_declared_anywhere"), None);
    let req =
        Request::builder().method("POST").uri("/sfn/not_declared_anywhere").header(header::HOST, "127.0.0.1:3000");
    assert_eq!(site.send(req.body(Body::empty()).unwrap()).await.status, StatusCode::NOT_FOUND);
}
both_stores!(every_endpoint_declares_its_policy, every_endpoint_declares_its_policy);

/// Reads read: a `read` key can neither hold usage nor mark alerts read;
/// `gate` and `alerts` keys can.
async fn writes_need_a_scope_that_says_so(store: Store) {
    use serde_json::json;
    let site = Site::new(store).await;
    let read = site.key(&["read"]).await;
    let gate = site.key(&["gate"]).await;
    let alerts = site.key(&["alerts"]).await;
    let check = json!({"user_id": "ann", "operations": [{"provider": "tavily", "operation_type": "search"}]});
    let mut hold = check.clone();
    hold["reserve"] = json!(true);
    assert_eq!(site.json("POST", "/api/subscription/preflight-check", &read, check.clone()).await.0, StatusCode::OK);
    assert_eq!(
        site.json("POST", "/api/subscription/preflight-check", &read, hold.clone()).await.0,
        StatusCode::FORBIDDEN
    );
    let (status, body) = site.json("POST", "/api/subscription/preflight-check", &gate, hold).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["data"]["reservation_id"].is_string(), "{body}");
    // An alert of ann's (the Test plan caps Tavily... none here: make one).
    let mut conn = site.engine.store_for_tests().pool().acquire().await.unwrap();
    let alert = crate::domain::alerts::unpriced_alert("gemini", Some("x"));
    crate::server::store::alerts::insert_alert(&mut conn, Some(&uid("ann")), None, &alert, Utc::now()).await.unwrap();
    drop(conn);
    let (_, list) = site.json("GET", "/api/subscription/alerts/ann", &read, json!({})).await;
    let id = list["data"]["alerts"][0]["id"].as_i64().unwrap();
    let path = format!("/api/subscription/alerts/{id}/mark-read");
    assert_eq!(site.json("POST", &path, &read, json!({})).await.0, StatusCode::FORBIDDEN);
    assert_eq!(site.json("POST", &path, &alerts, json!({})).await.0, StatusCode::OK);
    // Per-endpoint monitoring needs the metrics scope; the deployment's
    // health (shown on every user's dashboard) any key may read.
    let metrics = site.key(&["metrics"]).await;
    assert_eq!(
        site.json("GET", "/api/content-planning/monitoring/api-stats", &read, json!({})).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        site.json("GET", "/api/content-planning/monitoring/api-stats", &metrics, json!({})).await.0,
        StatusCode::OK
    );
    assert_eq!(site.json("GET", "/api/content-planning/monitoring/health", &read, json!({})).await.0, StatusCode::OK);
}
both_stores!(writes_need_a_scope_that_says_so, writes_need_a_scope_that_says_so);

/// The reported exploit, over HTTP: a signed-in user "changes" to the plan
/// they are on, again and again, through the plans page's server function.
/// It used to start a new period each time (usage back to 0, the fee
/// charged again); now each call is refused and nothing moves.
async fn changing_to_the_same_plan_resets_nothing(store: Store) {
    use serde_json::json;
    let site = Site::new(store).await;
    let ingest = site.key(&["ingest"]).await;
    let events: Vec<_> =
        (0..12).map(|i| json!({"id": format!("x{i}"), "user_id": "ann", "provider": "tavily"})).collect();
    assert_eq!(site.json("POST", "/api/usage/events", &ingest, json!({"events": events})).await.0, StatusCode::OK);
    let reader = site.key(&["read"]).await;
    let before = site.json("GET", "/api/subscription/usage/ann", &reader, json!({})).await.1;
    let renewals_before = site.json("GET", "/api/subscription/renewal-history/ann", &reader, json!({})).await.1;
    let ann = site.cookie("ann").await;
    let plan_id = site.engine.current_subscription(&uid("ann"), Utc::now()).await.unwrap().1.plan_id.unwrap();
    let path = <crate::api::billing::ChangeMyPlan as leptos::server_fn::ServerFn>::PATH;
    for _ in 0..3 {
        let req = Request::builder()
            .method("POST")
            .uri(path)
            .header(header::HOST, "127.0.0.1:3000")
            .header(header::ORIGIN, "http://127.0.0.1:3000")
            .header(header::COOKIE, &ann)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!("plan_id={plan_id}&billing_cycle=monthly")))
            .unwrap();
        let p = site.send(req).await;
        assert_eq!(p.status, StatusCode::CONFLICT, "{}", p.body);
        assert!(p.body.contains("already on this plan"), "{}", p.body);
    }
    let after = site.json("GET", "/api/subscription/usage/ann", &reader, json!({})).await.1;
    assert_eq!(after["data"]["total_calls"], json!(12));
    assert_eq!(after["data"]["billing_period"], before["data"]["billing_period"]);
    let renewals_after = site.json("GET", "/api/subscription/renewal-history/ann", &reader, json!({})).await.1;
    assert!(renewals_before["data"]["total_count"].as_i64().unwrap() >= 1, "{renewals_before}");
    assert_eq!(renewals_after["data"]["total_count"], renewals_before["data"]["total_count"], "no fee charged again");
}
both_stores!(changing_to_the_same_plan_resets_nothing, changing_to_the_same_plan_resets_nothing);

/// `TALLY_UNPRICED_POLICY=deny` (the default): the gate answers a model
/// without a price with 422 `unpriced_model`, naming it.
async fn the_gate_refuses_unpriced_models(store: Store) {
    use serde_json::json;
    let site = Site::new(store).await;
    let gate = site.key(&["gate"]).await;
    let body = json!({"user_id": "ann", "reserve": true,
        "operations": [{"provider": "openai", "model": "o9-secret", "tokens_requested": 5000, "operation_type": "chat"}]});
    let (status, reply) = site.json("POST", "/api/subscription/preflight-check", &gate, body).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{reply}");
    assert_eq!(reply["code"], json!("unpriced_model"));
    assert!(reply["error"].as_str().unwrap().contains("o9-secret"), "{reply}");
}
both_stores!(the_gate_refuses_unpriced_models, the_gate_refuses_unpriced_models);

/// The lifecycle and account endpoints, through the router.
async fn lifecycle_and_accounts_over_http(store: Store) {
    use serde_json::json;
    let site = Site::new(store).await;
    let admin = site.key(&["admin"]).await;
    let gate = site.key(&["gate"]).await;
    let hold =
        json!({"user_id": "ann", "reserve": true, "operations": [{"provider": "tavily", "operation_type": "search"}]});
    let (status, body) =
        site.json("POST", "/api/admin/users/ann/subscription/cancel", &admin, json!({"at": "later"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) = site.json("POST", "/api/admin/users/ann/subscription/pause", &admin, json!({})).await;
    assert_eq!((status, body["data"]["status"].clone()), (StatusCode::OK, json!("paused")), "{body}");
    let (status, body) = site.json("POST", "/api/subscription/preflight-check", &gate, hold.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body["error"].as_str().unwrap().contains("paused"), "{body}");
    let reader = site.key(&["read"]).await;
    let (_, sub) = site.json("GET", "/api/subscription/user/ann/subscription", &reader, json!({})).await;
    assert_eq!(sub["data"]["status"], json!("paused"), "family A shows the status");
    let (status, _) = site.json("POST", "/api/admin/users/ann/subscription/resume", &admin, json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(site.json("POST", "/api/subscription/preflight-check", &gate, hold).await.0, StatusCode::OK);
    let (status, body) =
        site.json("POST", "/api/admin/users/ann/subscription/cancel", &admin, json!({"at": "now"})).await;
    assert_eq!((status, body["data"]["status"].clone()), (StatusCode::OK, json!("cancelled")), "{body}");
    // Accounts: disable, then enable and promote.
    let (status, body) = site.json("PATCH", "/api/admin/users/ann", &admin, json!({"disabled": true})).await;
    assert_eq!((status, body["data"]["disabled"].clone()), (StatusCode::OK, json!(true)), "{body}");
    assert!(matches!(
        site.engine.login("ann@example.test", "ann-password", "10.1.1.1", Utc::now()).await,
        Err(crate::server::error::AppError::Forbidden(_))
    ));
    let (status, body) =
        site.json("PATCH", "/api/admin/users/ann", &admin, json!({"disabled": false, "role": "admin"})).await;
    assert_eq!((status, body["data"]["role"].clone()), (StatusCode::OK, json!("admin")), "{body}");
    let (status, _) = site.json("PATCH", "/api/admin/users/ann", &admin, json!({"role": "owner"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}
both_stores!(lifecycle_and_accounts_over_http, lifecycle_and_accounts_over_http);
