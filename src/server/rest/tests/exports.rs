//! CSV downloads: the usage log, streamed by pages.

use super::*;
use crate::domain::money::Nanos;

/// RFC 4180 records (quoted fields may hold commas, quotes and newlines).
pub(super) fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let (mut rows, mut row, mut cell) = (Vec::new(), Vec::new(), String::new());
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => cell.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut cell)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut cell));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => cell.push(c),
        }
    }
    assert!(!quoted && cell.is_empty() && row.is_empty(), "the file ends inside a record");
    rows
}

/// GETs `path` as a browser does (`Accept-Encoding: gzip`) and returns the
/// decompressed body.
async fn gzipped_body(api: &Api, path: &str, key: &str) -> String {
    use std::io::Read;
    let req = Request::builder()
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {key}"))
        .header(header::ACCEPT_ENCODING, "gzip")
        .body(Body::empty())
        .unwrap();
    let resp = api.router.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[header::CONTENT_ENCODING], "gzip");
    let bytes = resp.into_body().collect().await.expect("the compressed body ends cleanly").to_bytes();
    let mut text = String::new();
    flate2::read::GzDecoder::new(&bytes[..]).read_to_string(&mut text).unwrap();
    text
}

/// 2,345 events (past the first 100-row page and two 1,000-row pages) over
/// two providers, a tenth of them failed with awkward error text: the download holds every one,
/// newest first, once, and its costs add up to the recorded events exactly;
/// the usage log's filters apply; other users' logs are refused.
async fn usage_log_csv_holds_every_event(store: Store) {
    let api = setup(store.clone(), Limits::new()).await;
    let ingest = api.key(None, &["ingest"]).await;
    let alice = api.key(Some("alice"), &["read"]).await;
    let bob = api.key(Some("bob"), &["read"]).await;
    let base = Utc::now() - chrono::Duration::hours(1);
    let all: Vec<Value> = (0..2_345)
        .map(|i| {
            let mut e = if i % 3 == 0 {
                json!({"id": format!("e{i}"), "user_id": "alice", "provider": "tavily"})
            } else {
                json!({"id": format!("e{i}"), "user_id": "alice", "provider": "gemini", "model": "gemini-2.5-pro",
                       "tokens_input": 1000 + i, "tokens_output": 7 * i})
            };
            e["timestamp"] = json!((base + chrono::Duration::milliseconds(i)).to_rfc3339());
            if i % 10 == 0 {
                e["status_code"] = json!(500);
                e["error_message"] = json!("=upstream said \"no\",\nthen closed");
            }
            e
        })
        .collect();
    for chunk in all.chunks(1000) {
        let r = api.post("/api/usage/events", Some(&ingest), json!({"events": chunk})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    // Bob's events never appear in Alice's file.
    api.post("/api/usage/events", Some(&ingest), json!({"events": [event("bob-1", "bob")]})).await;

    let r = api.get("/api/usage/alice/logs.csv", Some(&alice)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers[header::CONTENT_TYPE], "text/csv; charset=utf-8");
    assert!(r.headers[header::CONTENT_DISPOSITION].to_str().unwrap().contains("usage-log-alice.csv"));
    let text = r.body["raw"].as_str().unwrap().to_string();
    // Browsers ask for gzip: the compressed stream ends cleanly (the
    // compressor polls the body once more after its end) and holds the
    // same file.
    assert_eq!(gzipped_body(&api, "/api/usage/alice/logs.csv", &alice).await, text);
    let rows = parse_csv(&text);
    let head = &rows[0];
    let col = |name: &str| head.iter().position(|h| h == name).unwrap_or_else(|| panic!("no column {name}"));
    assert_eq!(head.len(), 41);
    assert!(rows[1..].iter().all(|r| r[col("tags")].is_empty()));
    assert!(rows[1..].iter().all(|r| r[col("estimated")] == "false"));
    let data = &rows[1..];
    assert_eq!(data.len(), 2_345);
    assert!(data.iter().all(|r| r.len() == head.len()));
    // Newest first, each event once.
    let ids: Vec<&str> = data.iter().map(|r| r[col("event_id")].as_str()).collect();
    let expected: Vec<String> = (0..2_345).rev().map(|i| format!("e{i}")).collect();
    assert_eq!(ids, expected);
    // Money reconciles with the recorded events to the nano.
    let total: i64 = data.iter().map(|r| Nanos::parse_usd(&r[col("cost_total_usd")]).unwrap().0).sum();
    let recorded: i64 =
        sqlx::query("SELECT CAST(SUM(cost_total_nanos) AS BIGINT) FROM usage_events WHERE user_id = 'alice'")
            .fetch_one(store.pool())
            .await
            .unwrap()
            .get(0);
    assert!(total > 0);
    assert_eq!(total, recorded);
    let failed = data.iter().find(|r| r[col("event_id")] == "e2340").unwrap();
    assert_eq!(failed[col("status")], "failed");
    assert_eq!(failed[col("status_code")], "500");
    // Spreadsheet formulas are neutralised; quotes and newlines survive.
    assert_eq!(failed[col("error_message")], "'=upstream said \"no\",\nthen closed");

    // The usage log's filters.
    let tavily = parse_csv(
        api.get("/api/usage/alice/logs.csv?provider=tavily", Some(&alice)).await.body["raw"].as_str().unwrap(),
    );
    assert_eq!(tavily.len() - 1, (0..2_345).filter(|i| i % 3 == 0).count());
    assert!(tavily[1..].iter().all(|r| r[col("provider")] == "tavily"));
    let failed =
        parse_csv(api.get("/api/usage/alice/logs.csv?status=failed", Some(&alice)).await.body["raw"].as_str().unwrap());
    assert_eq!(failed.len() - 1, 235);
    assert!(failed[1..].iter().all(|r| r[col("status")] == "failed"));
    // Nothing matches: the header alone.
    let none = api.get("/api/usage/alice/logs.csv?provider=exa", Some(&alice)).await;
    assert_eq!(parse_csv(none.body["raw"].as_str().unwrap()).len(), 1);

    assert_error(
        &api.get("/api/usage/alice/logs.csv?status=ok", Some(&alice)).await,
        StatusCode::BAD_REQUEST,
        "bad_request",
    );
    assert_error(&api.get("/api/usage/alice/logs.csv", Some(&bob)).await, StatusCode::FORBIDDEN, "forbidden");
    assert_error(&api.get("/api/usage/alice/logs.csv", None).await, StatusCode::UNAUTHORIZED, "unauthorized");
    let admin = api.key(None, &["admin"]).await;
    assert_error(&api.get("/api/usage/nobody/logs.csv", Some(&admin)).await, StatusCode::NOT_FOUND, "not_found");
}
both_stores!(usage_log_csv_holds_every_event, usage_log_csv_holds_every_event);

/// A log that ends exactly where a page does (the first 100-row page, then
/// a 1,000-row one) downloads whole, each event once, and the file ends
/// cleanly after the empty page that follows.
async fn usage_log_csv_ending_on_a_page_boundary(store: Store) {
    let api = setup(store, Limits::new()).await;
    let ingest = api.key(None, &["ingest"]).await;
    let alice = api.key(Some("alice"), &["read"]).await;
    let mut sent = 0;
    for total in [100, 1_100] {
        let batch: Vec<Value> = (sent..total).map(|i| event(&format!("b{i}"), "alice")).collect();
        let r = api.post("/api/usage/events", Some(&ingest), json!({"events": batch})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        sent = total;
        let rows = parse_csv(api.get("/api/usage/alice/logs.csv", Some(&alice)).await.body["raw"].as_str().unwrap());
        let mut ids: Vec<&str> = rows[1..].iter().map(|r| r[0].as_str()).collect();
        assert_eq!(ids.len(), total, "{total} events");
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), total, "{total} events, each once");
    }
}
both_stores!(usage_log_csv_ending_on_a_page_boundary, usage_log_csv_ending_on_a_page_boundary);

/// While every bulk turn is taken (as by other downloads streaming), a new
/// download still starts at once: its header and first page arrive, and its
/// next page waits for a turn. Once a turn is free the rest arrives, each
/// event once.
async fn usage_log_csv_starts_while_bulk_turns_are_taken(store: Store) {
    use futures::FutureExt;
    let api = setup(store, Limits::new()).await;
    let ingest = api.key(None, &["ingest"]).await;
    let alice = api.key(Some("alice"), &["read"]).await;
    let batch: Vec<Value> = (0..150).map(|i| event(&format!("t{i}"), "alice")).collect();
    let r = api.post("/api/usage/events", Some(&ingest), json!({"events": batch})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let mut taken = Vec::new();
    while let Some(turn) = api.engine.bulk_turn().now_or_never() {
        taken.push(turn.unwrap());
    }
    assert!(!taken.is_empty());
    let req = Request::builder()
        .uri("/api/usage/alice/logs.csv")
        .header(header::AUTHORIZATION, format!("Bearer {alice}"))
        .body(Body::empty())
        .unwrap();
    let resp = api.router.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    let first = String::from_utf8(first.to_vec()).unwrap();
    assert_eq!(parse_csv(&first).len(), 101, "the header and the first 100 events");
    // A store read alone would be done well within this.
    let waited = tokio::time::timeout(Duration::from_millis(300), body.frame()).await;
    assert!(waited.is_err(), "the next page waits for a bulk turn");
    drop(taken);
    let rest = body.collect().await.unwrap().to_bytes();
    let mut ids: Vec<String> =
        parse_csv(&format!("{first}{}", String::from_utf8_lossy(&rest)))[1..].iter().map(|r| r[0].clone()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 150, "every event once");
}
both_stores!(usage_log_csv_starts_while_bulk_turns_are_taken, usage_log_csv_starts_while_bulk_turns_are_taken);
