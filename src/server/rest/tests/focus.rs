//! FOCUS 1.2 exports over HTTP: every event's classes as rows, the billed
//! cost equal to the period's bill to the nano-dollar, per user and for
//! the deployment, and only for who may read them.

use super::exports::parse_csv;
use super::*;
use crate::domain::focus::HEADER;
use crate::domain::money::Nanos;

/// 1,100 events for Alice (past one 1,000-event page): reasoning calls
/// with cache reads and tags, and Tavily searches; a few for Bob.
async fn focus_exports_reconcile_with_the_bill(store: Store) {
    let api = setup(store.clone(), Limits::new()).await;
    let ingest = api.key(None, &["ingest"]).await;
    let alice = api.key(Some("alice"), &["read"]).await;
    let admin = api.key(None, &["admin"]).await;
    let base = Utc::now() - chrono::Duration::hours(2);
    let events: Vec<Value> = (0..1_100)
        .map(|i| {
            let mut e = if i % 4 == 0 {
                json!({"id": format!("a{i}"), "user_id": "alice", "provider": "tavily"})
            } else {
                json!({"id": format!("a{i}"), "user_id": "alice", "provider": "gemini", "model": "gemini-2.5-pro",
                       "tokens_input": 1000 + i, "tokens_cached_input": 100, "tokens_output": 300,
                       "tokens_reasoning": 120, "tags": {"team": "search"}})
            };
            e["timestamp"] = json!((base + chrono::Duration::milliseconds(i)).to_rfc3339());
            e
        })
        .collect();
    for chunk in events.chunks(550) {
        let r = api.post("/api/usage/events", Some(&ingest), json!({"events": chunk})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    let bob: Vec<Value> = (0..3).map(|i| event(&format!("b{i}"), "bob")).collect();
    assert_eq!(api.post("/api/usage/events", Some(&ingest), json!({"events": bob})).await.status, StatusCode::OK);

    let r = api.get("/api/usage/alice/export/focus", Some(&alice)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.headers[header::CONTENT_TYPE], "text/csv; charset=utf-8");
    let rows = parse_csv(r.body["raw"].as_str().unwrap());
    assert_eq!(rows[0], HEADER.to_vec());
    let col = |name: &str| HEADER.iter().position(|h| *h == name).unwrap();
    let data = &rows[1..];
    assert!(data.iter().all(|r| r.len() == HEADER.len() && r[col("SubAccountId")] == "alice"));
    // Each event's classes: a search is one row, a model call four.
    assert_eq!(data.len(), 275 + 825 * 4);
    let ids: std::collections::BTreeSet<&str> = data.iter().map(|r| r[col("x_EventId")].as_str()).collect();
    assert_eq!(ids.len(), 1_100);
    // The billed cost is the period's bill, to the nano-dollar.
    let billed =
        |rows: &[Vec<String>]| -> i64 { rows.iter().map(|r| Nanos::parse_usd(&r[col("BilledCost")]).unwrap().0).sum() };
    let bill = api.engine.snapshot(&uid("alice"), None, Utc::now()).await.unwrap().total_cost();
    assert!(bill.0 > 0);
    assert_eq!(billed(data), bill.0);
    let label = &data[0][col("BillingPeriodStart")][..7];
    let again = api.get(&format!("/api/usage/alice/export/focus?billing_period={label}"), Some(&alice)).await;
    assert_eq!(parse_csv(again.body["raw"].as_str().unwrap()).len(), rows.len());
    // A period without events: the header alone.
    let empty = api.get("/api/usage/alice/export/focus?billing_period=2020-01", Some(&alice)).await;
    assert_eq!(parse_csv(empty.body["raw"].as_str().unwrap()).len(), 1);

    // The deployment: both users, and the sum of both bills.
    let all = api.get("/api/admin/export/focus", Some(&admin)).await;
    assert_eq!(all.status, StatusCode::OK);
    let all = parse_csv(all.body["raw"].as_str().unwrap());
    let bob_bill = api.engine.snapshot(&uid("bob"), None, Utc::now()).await.unwrap().total_cost();
    assert_eq!(billed(&all[1..]), bill.0 + bob_bill.0);
    assert!(all[1..].iter().any(|r| r[col("SubAccountId")] == "bob"));

    // Only who may read them.
    assert_eq!(api.get("/api/usage/bob/export/focus", Some(&alice)).await.status, StatusCode::FORBIDDEN);
    assert_eq!(api.get("/api/admin/export/focus", Some(&alice)).await.status, StatusCode::FORBIDDEN);
    assert_eq!(api.get("/api/usage/alice/export/focus", None).await.status, StatusCode::UNAUTHORIZED);
    assert_error(
        &api.get("/api/usage/alice/export/focus?billing_period=March", Some(&alice)).await,
        StatusCode::BAD_REQUEST,
        "bad_request",
    );
}
both_stores!(focus_exports_reconcile_with_the_bill, focus_exports_reconcile_with_the_bill);
