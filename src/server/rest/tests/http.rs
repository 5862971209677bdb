//! What every response shares: enveloped framework errors, probes, compression.

use super::*;

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
    // The contract's 1 MiB holds for every endpoint but the price import.
    let huge = vec![b' '; 1024 * 1024 + 1];
    let ingest = api.key(None, &["ingest"]).await;
    for (path, key) in
        [("/api/admin/plans", &admin), ("/api/subscription/preflight-check", &admin), ("/api/usage/events", &ingest)]
    {
        let r = api.call("POST", path, Some(key), Some(huge.clone())).await;
        assert_error(&r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    }
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

/// The built site's files go out as the build's Brotli or gzip copy when
/// the browser takes it (never compressed twice), as they are otherwise,
/// and browsers revalidate them; a file without a copy is still
/// compressed on the fly.
#[tokio::test]
async fn static_files_are_sent_precompressed() {
    let site = std::env::temp_dir().join(format!("tally-site-{}", uuid::Uuid::new_v4().simple()));
    let pkg = site.join("pkg");
    std::fs::create_dir_all(&pkg).unwrap();
    let js = "console.log('tally');\n".repeat(100);
    std::fs::write(pkg.join("tally.js"), &js).unwrap();
    std::fs::write(pkg.join("tally.js.br"), b"brotli copy").unwrap();
    std::fs::write(pkg.join("tally.js.gz"), b"gzip copy").unwrap();
    std::fs::write(pkg.join("tally.css"), "body { margin: 0 }\n".repeat(100)).unwrap();
    let db = crate::server::testing::TestDb::sqlite().await;
    let (engine, _) = engine_with_catalog(db.store.clone(), Limits::new(), t(2026, 1, 1)).await;
    let args = ServeArgs { site_root: site.clone(), ..ServeArgs::default() };
    let router = build_router(app_state(engine, &args), Duration::from_secs(30));
    let get = |path: &str, accept: Option<&str>| {
        let mut req = Request::builder().uri(path);
        if let Some(a) = accept {
            req = req.header(header::ACCEPT_ENCODING, a);
        }
        router.clone().oneshot(req.body(Body::empty()).unwrap())
    };
    for (accept, encoding, body) in [
        (Some("br, gzip"), Some("br"), b"brotli copy".to_vec()),
        (Some("gzip"), Some("gzip"), b"gzip copy".to_vec()),
        (None, None, js.clone().into_bytes()),
    ] {
        let resp = get("/pkg/tally.js", accept).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{accept:?}");
        assert_eq!(resp.headers().get(header::CONTENT_ENCODING).map(|v| v.to_str().unwrap()), encoding, "{accept:?}");
        assert_eq!(resp.headers()[header::CACHE_CONTROL], "no-cache");
        assert!(resp.headers()[header::CONTENT_TYPE].to_str().unwrap().contains("javascript"));
        assert_eq!(resp.into_body().collect().await.unwrap().to_bytes().to_vec(), body, "{accept:?}");
    }
    let css = get("/pkg/tally.css", Some("gzip")).await.unwrap();
    assert_eq!(css.headers()[header::CONTENT_ENCODING], "gzip", "no copy: compressed on the fly");
    assert_eq!(get("/pkg/missing.js", None).await.unwrap().status(), StatusCode::NOT_FOUND);
    db.cleanup().await;
    std::fs::remove_dir_all(&site).ok();
}

/// The fuzz run's 500s, and their kin: a NUL (or another control
/// character) in any text field, path or query of any endpoint or server
/// function is refused at the door, naming the field, on both stores;
/// nothing is stored and nothing answers 500.
async fn control_characters_are_refused_at_the_door(store: Store) {
    let api = setup(store.clone(), Limits::new()).await;
    let admin = api.key(None, &["admin"]).await;
    let ingest = api.key(None, &["ingest"]).await;
    let a = Some(admin.as_str());
    let nul = "x\u{0}y";
    for (path, key, body, field) in [
        (
            "/api/admin/plans",
            a,
            json!({"name": nul, "tier": "pro", "price_monthly": "1", "price_yearly": "10"}),
            "name",
        ),
        (
            "/api/admin/pricing",
            a,
            json!({"provider": "openai", "model": nul, "input_per_million": "1", "output_per_million": "2"}),
            "model",
        ),
        (
            "/api/subscription/preflight-check",
            Some(ingest.as_str()),
            json!({"user_id": nul, "operations": [{"provider": "gemini", "tokens_requested": 1}]}),
            "user_id",
        ),
        (
            "/api/subscription/preflight-check",
            Some(ingest.as_str()),
            json!({"user_id": "alice", "operations": [{"provider": "gemini", "model": "g\u{1b}[31m", "tokens_requested": 1}]}),
            "operations[0].model",
        ),
        ("/api/admin/plans", a, json!({"name": "ok", "features": ["fine", "bad\u{7f}"]}), "features[1]"),
    ] {
        let r = api.post(path, key, body).await;
        assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid");
        assert!(
            r.body["fields"][field].as_str().is_some_and(|m| m.contains("control character")),
            "{path}: {}",
            r.body
        );
    }
    // Paths and query strings, decoded.
    let r = api.get("/api/subscription/usage/al%00ice", Some(&admin)).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");
    let r = api.get("/api/usage/log?user_id=al%00ice", Some(&admin)).await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid");
    assert!(r.body["fields"]["query user_id"].is_string(), "{}", r.body);
    // A server function's form body.
    let req = Request::builder()
        .method("POST")
        .uri("/sfn/login")
        .header(header::HOST, "127.0.0.1:3000")
        .header(header::ORIGIN, "http://127.0.0.1:3000")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from("email=a%00b%40example.com&password=x"))
        .unwrap();
    let resp = api.router.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // Multi-line text is still welcome where a field allows it.
    let r = api
        .post(
            "/api/admin/plans",
            a,
            json!({"name": "Lines", "tier": "pro", "price_monthly": "1", "price_yearly": "10", "description": "one\ntwo\r\n\tthree"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let stored: i64 = sqlx::query("SELECT CAST(COUNT(*) AS BIGINT) FROM plans WHERE name LIKE 'x%'")
        .fetch_one(store.pool())
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
    assert_eq!(stored, 0);
}
both_stores!(control_characters_are_refused_at_the_door, control_characters_are_refused_at_the_door);
