//! The webhook admin API through the real router, with a real receiver:
//! register, the secret once, usage over a threshold delivered signed,
//! deliveries listed, replay, delete, metrics; and who may do it.

use super::*;
use crate::server::service::webhooks_tests::{Receiver, verify};

async fn webhooks_through_the_api(store: Store) {
    let api = setup(store, Limits::new().with("gemini_calls", 10)).await;
    let admin = api.key(None, &["admin"]).await;
    let a = Some(admin.as_str());
    let ingest = api.key(None, &["ingest"]).await;
    let rx = Receiver::start(Duration::ZERO).await;

    // Only administrators.
    let reader = api.key(Some("alice"), &["read"]).await;
    assert_error(&api.get("/api/admin/webhooks", Some(&reader)).await, StatusCode::FORBIDDEN, "forbidden");
    assert_error(&api.get("/api/admin/webhooks", None).await, StatusCode::UNAUTHORIZED, "unauthorized");

    // Bad registrations say what is wrong.
    let bad = api.post("/api/admin/webhooks", a, json!({"url": rx.url, "events": ["alert.sent"]})).await;
    assert_error(&bad, StatusCode::UNPROCESSABLE_ENTITY, "invalid");
    assert!(bad.body["error"].as_str().unwrap().contains("alert.sent"), "{}", bad.body);
    let bad = api.post("/api/admin/webhooks", a, json!({"url": "ftp://x", "events": ["alert.created"]})).await;
    assert_error(&bad, StatusCode::UNPROCESSABLE_ENTITY, "invalid");
    let bad = api.post("/api/admin/webhooks", a, json!({"events": ["alert.created"]})).await;
    assert_error(&bad, StatusCode::UNPROCESSABLE_ENTITY, "invalid");

    let created = api
        .post(
            "/api/admin/webhooks",
            a,
            json!({"url": rx.url, "events": ["alert.created", "alert.resolved"], "description": "ops pager"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let hook = &created.body["data"];
    check(
        hook,
        "webhook",
        &[("id", K::S), ("url", K::S), ("events", K::A), ("description", K::S), ("created_at", K::S), ("secret", K::S)],
    );
    let (id, secret) = (hook["id"].as_str().unwrap().to_string(), hook["secret"].as_str().unwrap().to_string());
    let list = api.get("/api/admin/webhooks", a).await;
    assert_eq!(list.body["data"]["total"], json!(1));
    let listed = &list.body["data"]["webhooks"][0];
    assert_eq!(
        (listed["id"].as_str(), &listed["events"]),
        (Some(id.as_str()), &json!(["alert.created", "alert.resolved"]))
    );
    assert!(listed.get("secret").is_none(), "the secret is shown once: {listed}");

    // Alice's 8th call of 10: the 80% alert, delivered signed.
    let events: Vec<Value> = (0..8).map(|i| event(&format!("w{i}"), "alice")).collect();
    let r = api.post("/api/usage/events", Some(&ingest), json!({"events": events})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    rx.answer(&[500]);
    assert_eq!(api.webhooks.deliver_due(Utc::now()).await.unwrap(), 1);
    let deliveries = api.get(&format!("/api/admin/webhooks/{id}/deliveries"), a).await;
    assert_eq!(deliveries.status, StatusCode::OK, "{}", deliveries.body);
    let d = &deliveries.body["data"]["deliveries"][0];
    check(
        d,
        "delivery",
        &[
            ("id", K::N),
            ("event_id", K::S),
            ("type", K::S),
            ("status", K::S),
            ("attempts", K::N),
            ("response_code", K::N),
            ("created_at", K::S),
        ],
    );
    assert_eq!((&d["status"], &d["attempts"], &d["response_code"]), (&json!("pending"), &json!(1), &json!(500)));
    assert!(d["error"].as_str().unwrap().contains("500"));

    // Replay sends it now instead of at its retry time.
    let replay = api.post(&format!("/api/admin/webhooks/{id}/deliveries/{}/replay", d["id"]), a, json!({})).await;
    assert_eq!(replay.status, StatusCode::ACCEPTED, "{}", replay.body);
    assert_eq!(api.webhooks.deliver_due(Utc::now()).await.unwrap(), 1);
    let got = rx.got();
    assert_eq!(got.len(), 2);
    for r in &got {
        verify(&secret, r);
        assert_eq!(r.id, d["event_id"].as_str().unwrap());
    }
    assert_eq!(got[1].json()["data"]["user_id"], json!("alice"));
    let after = api.get(&format!("/api/admin/webhooks/{id}/deliveries"), a).await;
    let d = &after.body["data"]["deliveries"][0];
    assert_eq!((&d["status"], &d["attempts"], &d["response_code"]), (&json!("delivered"), &json!(2), &json!(200)));
    assert_error(
        &api.post(&format!("/api/admin/webhooks/{id}/deliveries/424242/replay"), a, json!({})).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );

    // Prometheus counts this node's attempts by result.
    let m = api.get("/metrics", a).await;
    let text = m.body["raw"].as_str().unwrap();
    assert!(text.contains("tally_webhook_deliveries_total{result=\"delivered\"} 1"), "{text}");
    assert!(text.contains("tally_webhook_deliveries_total{result=\"retry\"} 1"), "{text}");

    // Deleted: gone from the list, nothing more sent, history kept.
    let del = api.call("DELETE", &format!("/api/admin/webhooks/{id}"), a, None).await;
    assert_eq!(del.status, StatusCode::OK, "{}", del.body);
    assert_error(
        &api.call("DELETE", &format!("/api/admin/webhooks/{id}"), a, None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_eq!(api.get("/api/admin/webhooks", a).await.body["data"]["total"], json!(0));
    let r = api.post("/api/usage/events", Some(&ingest), json!({"events": [event("w9", "alice")]})).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(api.webhooks.deliver_due(Utc::now()).await.unwrap(), 0, "the 90% alert goes nowhere");
    let kept = api.get(&format!("/api/admin/webhooks/{id}/deliveries"), a).await;
    assert_eq!(kept.body["data"]["deliveries"].as_array().unwrap().len(), 1);
    assert_error(
        &api.post(&format!("/api/admin/webhooks/{id}/deliveries/1/replay"), a, json!({})).await,
        StatusCode::CONFLICT,
        "conflict",
    );
}
both_stores!(webhooks_through_the_api, webhooks_through_the_api);

/// Without `TALLY_WEBHOOK_ALLOW_PRIVATE`, the API refuses endpoints inside
/// the network, naming the setting; a public address is taken.
async fn private_webhook_targets_are_refused(store: Store) {
    let config = crate::server::service::EngineConfig::default();
    assert!(!config.webhook_allow_private, "refused by default");
    let api = Api::new(Engine::new(store, config));
    let admin = api.key(None, &["admin"]).await;
    for url in [
        "http://169.254.169.254/latest/meta-data/",
        "http://127.0.0.1:6379/",
        "http://[fd00::1]/x",
        "http://192.168.0.10/",
    ] {
        let r = api.post("/api/admin/webhooks", Some(&admin), json!({"url": url, "events": ["usage.spike"]})).await;
        assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid");
        assert!(r.body["error"].as_str().unwrap().contains("TALLY_WEBHOOK_ALLOW_PRIVATE"), "{url}: {}", r.body);
    }
    let r = api
        .post(
            "/api/admin/webhooks",
            Some(&admin),
            json!({"url": "https://93.184.215.14/hook", "events": ["usage.spike"]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
}
both_stores!(private_webhook_targets_are_refused, private_webhook_targets_are_refused);
