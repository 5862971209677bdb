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
