//! Every way the providers bill (issue 11), through the real router: a
//! price with every class, tiers and service tiers; provider usage objects;
//! the per-class breakdown in the usage log CSV; the gate's estimate.

use super::*;
use crate::domain::money::Nanos;

/// Claude Sonnet 4.5's published sheet, as the admin API takes it.
fn sonnet() -> Value {
    json!({
        "provider": "anthropic", "model": "claude-sonnet-4-5",
        "effective_from": "2026-01-01T00:00:00Z",
        "input_per_million": "3", "output_per_million": "15", "cached_input_per_million": "0.30",
        "cache_write_per_million": "3.75", "cache_write_1h_per_million": "6", "per_search_query": "0.01",
        "tiers": [{"above_input_tokens": 200000, "input_per_million": "6", "output_per_million": "22.50",
                   "cached_input_per_million": "0.60", "cache_write_per_million": "7.50", "cache_write_1h_per_million": "12"}],
        "service_tiers": {"batch": {"input_per_million": "1.50", "output_per_million": "7.50"}}
    })
}

async fn every_class_is_priced_and_shown(store: Store) {
    let api = setup(store.clone(), Limits::new()).await;
    let admin = api.key(None, &["admin"]).await;
    let ingest = api.key(None, &["ingest"]).await;
    let alice = api.key(Some("alice"), &["read"]).await;

    // The admin API keeps every field, tiers and service tiers included.
    let mut with_cap = sonnet();
    with_cap["max_output_tokens"] = json!(64000);
    let r = api.post("/api/admin/pricing", Some(&admin), with_cap).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let d = &r.body["data"];
    assert_eq!(d["max_output_tokens"], json!(64000));
    assert_eq!(d["cache_write_1h_per_million"], json!("6"));
    assert_eq!(d["reasoning_per_million"], Value::Null);
    assert_eq!(d["tiers"][0]["above_input_tokens"], json!(200000));
    assert_eq!(d["tiers"][0]["output_per_million"], json!("22.5"));
    assert_eq!(d["service_tiers"]["batch"]["input_per_million"], json!("1.5"));
    let listed = api.get("/api/admin/pricing", Some(&admin)).await;
    let mine: Vec<&Value> = listed.body["data"]["pricing"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["model"] == "claude-sonnet-4-5")
        .collect();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0]["tiers"], d["tiers"], "read back from the store as written");
    assert_eq!(mine[0]["service_tiers"], d["service_tiers"]);
    assert_eq!(mine[0]["max_output_tokens"], json!(64000));
    for cap in [json!(0), json!(-5), json!("lots"), json!(1.5)] {
        let mut bad = sonnet();
        bad["max_output_tokens"] = cap.clone();
        let r = api.post("/api/admin/pricing", Some(&admin), bad).await;
        assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid");
        assert!(r.body.to_string().contains("max_output_tokens"), "{cap}: {}", r.body);
    }

    // Bad tiers say where.
    let mut bad = sonnet();
    bad["tiers"] =
        json!([{"above_input_tokens": 0, "input_per_million": "6"}, {"above_input_tokens": 5, "colour": "red"}]);
    bad["service_tiers"] = json!({"standard": {"input_per_million": "1"}});
    let r = api.post("/api/admin/pricing", Some(&admin), bad).await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid");
    let text = r.body.to_string();
    for want in ["tiers[0].above_input_tokens", "tiers[1].colour", "service_tiers.standard"] {
        assert!(text.contains(want), "{want} in {text}");
    }

    let at = (Utc::now() - chrono::Duration::minutes(5)).to_rfc3339();
    let base = |id: &str| json!({"id": id, "user_id": "alice", "provider": "anthropic", "model": "claude-sonnet-4-5", "timestamp": at});
    let with = |id: &str, extra: Value| {
        let mut e = base(id);
        e.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        e
    };
    let events = json!({"events": [
        // The provider's own usage object: 10k plain + 50k reads + 20k 5m
        // writes + 5k 1h writes in, 2k out, 3 web searches.
        with("usage-object", json!({"usage_format": "anthropic", "usage": {
            "input_tokens": 10000, "cache_read_input_tokens": 50000, "cache_creation_input_tokens": 25000,
            "cache_creation": {"ephemeral_5m_input_tokens": 20000, "ephemeral_1h_input_tokens": 5000},
            "output_tokens": 2000, "server_tool_use": {"web_search_requests": 3}}})),
        // The same in Tally's own fields, at the batch tier.
        with("fields-batch", json!({"tokens_input": 85000, "tokens_cached_input": 50000, "tokens_cache_write": 20000,
            "tokens_cache_write_1h": 5000, "tokens_output": 2000, "service_tier": "batch"})),
        // One token above 200k: the whole request at the long-context rates.
        with("long", json!({"tokens_input": 200001, "tokens_output": 1000})),
        with("bad-split", json!({"tokens_input": 10, "tokens_cached_input": 6, "tokens_cache_write": 5})),
        with("both", json!({"tokens_input": 10, "usage_format": "anthropic", "usage": {"input_tokens": 10}})),
    ]});
    let r = api.post("/api/usage/events", Some(&ingest), events).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let results = r.body["data"]["results"].as_array().unwrap();
    let cost = |i: usize| results[i]["cost"].as_str().unwrap().to_string();
    // 10k×3 + 50k×0.30 + 20k×3.75 + 5k×6 + 2k×15 = $0.18, + 3 × $0.01.
    assert_eq!(cost(0), "0.210000000", "{}", r.body);
    // Batch: 10k×1.50 + (reads and writes at standard) + 2k×7.50 = $0.15.
    assert_eq!(cost(1), "0.150000000", "{}", r.body);
    // 200,001×6 + 1,000×22.50.
    assert_eq!(cost(2), "1.222506000", "{}", r.body);
    assert_eq!(results[3]["status"], json!("rejected"));
    assert!(results[3]["error"].as_str().unwrap().starts_with("invalid_token_split: "), "{}", r.body);
    assert!(results[4]["error"].as_str().unwrap().starts_with("ambiguous_usage: "), "{}", r.body);
    assert_eq!(r.body["data"]["accepted"], json!(3));

    // The usage log's CSV splits each cost by class, to the nano.
    let csv = api.get("/api/usage/alice/logs.csv", Some(&alice)).await;
    let text = csv.body["raw"].as_str().unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap_or_else(|| panic!("no column {name}"));
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    let row = |id: &str| rows.iter().find(|r| r[col("event_id")] == id).unwrap_or_else(|| panic!("no row {id}"));
    let usage = row("usage-object");
    for (name, want) in [
        ("tokens_input", "85000"),
        ("tokens_cached_input", "50000"),
        ("tokens_cache_write", "20000"),
        ("tokens_cache_write_1h", "5000"),
        ("search_queries", "3"),
        ("service_tier", "standard"),
        ("cost_input_tokens_usd", "0.030000000"),
        ("cost_cached_input_usd", "0.015000000"),
        ("cost_cache_write_usd", "0.075000000"),
        ("cost_cache_write_1h_usd", "0.030000000"),
        ("cost_output_tokens_usd", "0.030000000"),
        ("cost_search_queries_usd", "0.030000000"),
        ("cost_total_usd", "0.210000000"),
    ] {
        assert_eq!(usage[col(name)], want, "{name}");
    }
    assert_eq!(row("fields-batch")[col("service_tier")], "batch");
    for r in &rows {
        let parts: i64 = header
            .iter()
            .enumerate()
            .filter(|(_, h)| {
                h.starts_with("cost_") && !["cost_input_usd", "cost_output_usd", "cost_total_usd"].contains(h)
            })
            .map(|(i, _)| Nanos::parse_usd(r[i]).unwrap().0)
            .sum();
        assert_eq!(parts, Nanos::parse_usd(r[col("cost_total_usd")]).unwrap().0, "{r:?}");
    }
    // And the period total is the events' sum.
    let recorded: i64 =
        sqlx::query("SELECT CAST(SUM(cost_total_nanos) AS BIGINT) FROM usage_events WHERE user_id = 'alice'")
            .fetch_one(store.pool())
            .await
            .unwrap()
            .get(0);
    assert_eq!(recorded, 210_000_000 + 150_000_000 + 1_222_506_000);
}
both_stores!(every_class_is_priced_and_shown, every_class_is_priced_and_shown);

/// A reservation on a tiered model holds what the tokens could cost at the
/// tier they would fall in.
async fn the_gate_estimates_with_the_tiers(store: Store) {
    let api = setup(store, Limits::new()).await;
    let admin = api.key(None, &["admin"]).await;
    let me = api.key(Some("alice"), &["read", "ingest"]).await;
    let price = json!({"provider": "openai", "model": "long-embed", "effective_from": "2026-01-01T00:00:00Z",
        "input_per_million": "1", "output_per_million": "1",
        "tiers": [{"above_input_tokens": 200000, "input_per_million": "2", "output_per_million": "2"}]});
    assert_eq!(api.post("/api/admin/pricing", Some(&admin), price).await.status, StatusCode::OK);
    let check = |tokens: u64| json!({"operations": [{"provider": "openai", "model": "long-embed", "tokens_requested": tokens, "operation_type": "embedding"}]});
    let small = api.post("/api/subscription/preflight-check", Some(&me), check(200_000)).await;
    assert_eq!(small.body["data"]["estimated_cost"], json!(0.2), "{}", small.body);
    let big = api.post("/api/subscription/preflight-check", Some(&me), check(300_000)).await;
    assert_eq!(big.body["data"]["estimated_cost"], json!(0.6), "300k tokens at the tier's $2: {}", big.body);

    // A service tier is held at its own rates, long-context tier included;
    // standard when unsaid; a tier that does not exist is refused.
    let price = json!({"provider": "openai", "model": "tiered-chat", "effective_from": "2026-01-01T00:00:00Z",
        "input_per_million": "1", "output_per_million": "4",
        "tiers": [{"above_input_tokens": 100000, "input_per_million": "2", "output_per_million": "8"}],
        "service_tiers": {"priority": {"input_per_million": "2", "output_per_million": "8",
                                       "tiers": [{"above_input_tokens": 100000, "input_per_million": "4", "output_per_million": "16"}]},
                          "batch": {"input_per_million": "0.5", "output_per_million": "2"}}});
    assert_eq!(api.post("/api/admin/pricing", Some(&admin), price).await.status, StatusCode::OK);
    let check = |tokens: u64, tier: Option<&str>| {
        let mut op =
            json!({"provider": "openai", "model": "tiered-chat", "tokens_requested": tokens, "operation_type": "chat"});
        if let Some(t) = tier {
            op["service_tier"] = json!(t);
        }
        json!({"operations": [op]})
    };
    for (tokens, tier, want) in [
        (100_000, None, 0.4),
        (100_000, Some("standard"), 0.4),
        (100_000, Some("priority"), 0.8),
        // 200k tokens on priority: the most is just above the 100k
        // threshold, where the whole request pays the tier's rates:
        // 100,001 in at $4 + 99,999 out at $16.
        (200_000, Some("priority"), 1.999988),
        // Batch sets both rates and has no context tier of its own: its
        // rates hold at every length.
        (100_000, Some("batch"), 0.2),
        (200_000, Some("batch"), 0.4),
    ] {
        let r = api.post("/api/subscription/preflight-check", Some(&me), check(tokens, tier)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.body["data"]["estimated_cost"], json!(want), "{tokens} tokens at {tier:?}: {}", r.body);
    }
    let r = api.post("/api/subscription/preflight-check", Some(&me), check(1, Some("express"))).await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid");
    assert!(r.body.to_string().contains("service_tier must be standard, batch, flex or priority"), "{}", r.body);
}
both_stores!(the_gate_estimates_with_the_tiers, the_gate_estimates_with_the_tiers);

/// The whole LiteLLM map through the API: a dry run writes nothing, the
/// import creates a version per model from `effective_from`, a second import
/// changes nothing, older events keep their price, and a provider beyond
/// the built-in ten works end to end (ingest, the dashboard's breakdown and
/// trends, the cost cap).
async fn the_litellm_map_imports_whole(store: Store) {
    let api = setup(store.clone(), Limits::new().with("monthly_cost", 2_000_000_000)).await;
    let admin = api.key(None, &["admin"]).await;
    let ingest = api.key(None, &["ingest"]).await;
    let alice = api.key(Some("alice"), &["read", "ingest"]).await;
    let map = crate::domain::litellm::tests::real_map();
    let versions = |store: Store| async move {
        sqlx::query("SELECT CAST(COUNT(*) AS BIGINT) FROM price_versions")
            .fetch_one(store.pool())
            .await
            .unwrap()
            .get::<i64, _>(0)
    };
    let before = versions(store.clone()).await;
    let at = (Utc::now() - chrono::Duration::hours(2)).to_rfc3339();
    let import = |dry: bool| {
        let path = format!(
            "/api/admin/pricing/import?format=litellm&dry_run={dry}&effective_from={}",
            crate::domain::links::urlencode(&at)
        );
        let body = map.clone().into_bytes();
        let api = &api;
        let admin = admin.clone();
        async move { api.call("POST", &path, Some(&admin), Some(body)).await }
    };
    let dry = import(true).await;
    assert_eq!(dry.status, StatusCode::OK, "{}", dry.body);
    let created = dry.body["data"]["created"].as_u64().unwrap();
    assert!(created > 2000, "{created}");
    assert_eq!(versions(store.clone()).await, before, "a dry run writes nothing");
    assert!(dry.body["data"]["skipped"].as_array().unwrap().iter().any(|s| s["key"] == "sample_spec"));
    assert!(dry.body["data"]["unsupported_fields"]["output_cost_per_second"].as_u64().unwrap() > 0);
    // Each change says what is in force and what would be, for people.
    let changes = dry.body["data"]["changes"].as_array().unwrap();
    assert_eq!(changes.len() as u64, created);
    let grok = changes.iter().find(|c| c["provider"] == "xai" && c["model"] == "grok-4.3").expect("grok-4.3 is new");
    assert_eq!((&grok["kind"], &grok["before"], &grok["key"]), (&json!("new"), &Value::Null, &json!("xai/grok-4.3")));
    assert!(grok["after"].as_str().unwrap().starts_with("Input / 1M $"), "{grok}");
    for c in changes.iter().filter(|c| c["kind"] == "changed") {
        assert!(c["before"].is_string() && c["before"] != c["after"], "{c}");
    }
    assert!(changes.iter().any(|c| c["kind"] == "changed"), "the test catalog's models are in the map");

    let done = import(false).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert_eq!(done.body["data"]["created"].as_u64().unwrap(), created);
    assert_eq!(versions(store.clone()).await, before + created as i64);
    let again = import(false).await;
    assert_eq!(again.body["data"]["created"], json!(0), "the same prices again create nothing");
    assert_eq!(again.body["data"]["unchanged"].as_u64().unwrap(), created);

    // Not a price map; unknown format; too big.
    let bad = api.call("POST", "/api/admin/pricing/import", Some(&admin), Some(b"[1, 2]".to_vec())).await;
    assert_error(&bad, StatusCode::UNPROCESSABLE_ENTITY, "invalid");
    let fmt = api.call("POST", "/api/admin/pricing/import?format=openrouter", Some(&admin), Some(b"{}".to_vec())).await;
    assert_error(&fmt, StatusCode::BAD_REQUEST, "bad_request");
    let huge = api.call("POST", "/api/admin/pricing/import", Some(&admin), Some(vec![b' '; 17 * 1024 * 1024])).await;
    assert_error(&huge, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    let user = api.call("POST", "/api/admin/pricing/import", Some(&alice), Some(b"{}".to_vec())).await;
    assert_eq!(user.status, StatusCode::FORBIDDEN);

    // xAI is not built in: it is now priced, shown and capped.
    let ts = Utc::now().to_rfc3339();
    let grok = json!({"id": "grok-1", "user_id": "alice", "provider": "xai", "model": "grok-4.3", "timestamp": ts,
                      "usage_format": "openai_chat", "usage": {"prompt_tokens": 100000, "completion_tokens": 20000}});
    let r = api.post("/api/usage/events", Some(&ingest), json!({"events": [grok]})).await;
    assert_eq!(r.body["data"]["results"][0]["status"], json!("accepted"), "{}", r.body);
    let cost = Nanos::parse_usd(r.body["data"]["results"][0]["cost"].as_str().unwrap()).unwrap();
    assert!(cost > Nanos::ZERO, "{}", r.body);
    assert!(r.body["data"]["results"][0].get("unpriced").is_none_or(|u| u == &json!(false)), "{}", r.body);
    let usage = api.get("/api/subscription/usage/alice", Some(&alice)).await;
    let xai = &usage.body["data"]["provider_breakdown"]["xai"];
    assert_eq!(xai["calls"], json!(1), "{}", usage.body);
    let trends = api.get("/api/subscription/usage/alice/trends?months=3", Some(&alice)).await;
    assert!(trends.body.to_string().contains("\"xai\""), "{}", trends.body);
    // The $2 cap: a reservation for a million more grok tokens is refused.
    let pre = api
        .post(
            "/api/subscription/preflight-check",
            Some(&alice),
            json!({"operations": [{"provider": "xai", "model": "grok-4.3", "tokens_requested": 1_000_000, "operation_type": "chat"}]}),
        )
        .await;
    assert_eq!(pre.body["data"]["can_proceed"], json!(false), "{}", pre.body);
}
both_stores!(the_litellm_map_imports_whole, the_litellm_map_imports_whole);
