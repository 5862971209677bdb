//! POST /api/usage/events: refusals write nothing.

use super::*;

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
        (json!({"id": "b", "user_id": "no body", "provider": "gemini"}), "unknown user `no body`"),
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

/// A large batch (parsed off the async workers) is answered like a small
/// one: every event stands alone, a bound key still records only its user.
async fn large_batches_are_judged_event_by_event(store: Store) {
    let api = setup(store.clone(), Limits::new()).await;
    let bound = api.key(Some("alice"), &["ingest"]).await;
    let mut events: Vec<Value> = (0..400).map(|i| event(&format!("big{i}"), "alice")).collect();
    events.push(event("not-hers", "bob"));
    let body = json!({ "events": events });
    assert!(body.to_string().len() > 16 * 1024, "the test must take the off-worker path");
    let r = api.post("/api/usage/events", Some(&bound), body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!((r.body["data"]["accepted"].clone(), r.body["data"]["rejected"].clone()), (json!(400), json!(1)));
    assert!(r.body["data"]["results"][400]["error"].as_str().unwrap().contains("only record usage for user `alice`"));
    assert_eq!(count_events(&store).await, 400);
}
both_stores!(large_batches_are_judged_event_by_event, large_batches_are_judged_event_by_event);
