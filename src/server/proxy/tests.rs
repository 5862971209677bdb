//! The proxy through the real router, against mock upstreams started here
//! that speak each provider's protocol (whole answers, streams, errors,
//! stalls).

use std::sync::Mutex;

use axum::http::Request;
use chrono::Utc;
use serde_json::{Value, json};
use sqlx::Row;
use tower::ServiceExt;

use super::*;
use crate::domain::limits::Limits;
use crate::domain::pricing::{ClassRates, PriceVersion, Rates};
use crate::domain::provider::{LimitKey, Provider};
use crate::server::cli::ServeArgs;
use crate::server::service::Engine;
use crate::server::startup::{app_state_with_proxy, build_router};
use crate::server::store::{Store, catalog};
use crate::server::testing::{TestDb, engine_with_catalog, price, t, uid, user_on_plan};

const UPSTREAM_KEY: &str = "sk-upstream-secret";

/// What the mock upstream received.
#[derive(Clone, Debug)]
struct Seen {
    path: String,
    query: String,
    auth: String,
    headers: HeaderMap,
    body: Value,
}

#[derive(Clone, Default)]
struct Mock {
    seen: Arc<Mutex<Vec<Seen>>>,
}

fn sse(events: &[Value]) -> Vec<String> {
    events.iter().map(|e| format!("data: {e}\n\n")).collect()
}

fn stream_response(chunks: Vec<String>, hang: bool) -> Response {
    let s = futures::stream::iter(chunks.into_iter().map(|c| Ok::<_, std::io::Error>(Bytes::from(c))));
    let body = if hang {
        Body::from_stream(futures::StreamExt::chain(s, futures::stream::pending()))
    } else {
        Body::from_stream(s)
    };
    Response::builder().header(header::CONTENT_TYPE, "text/event-stream").body(body).unwrap()
}

/// One mock for every provider: each answers by path, with usage from the
/// request's size, and by model: `boom` fails, `slow` stalls, `hang`
/// streams one chunk and then nothing.
async fn mock_answer(State(mock): State<Mock>, req: Request<Body>) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let auth = ["authorization", "x-api-key", "x-goog-api-key"]
        .iter()
        .find_map(|h| parts.headers.get(*h).and_then(|v| v.to_str().ok()).map(str::to_string))
        .unwrap_or_default();
    let path = parts.uri.path().to_string();
    mock.seen.lock().unwrap().push(Seen {
        path: path.clone(),
        query: parts.uri.query().unwrap_or("").into(),
        auth,
        headers: parts.headers.clone(),
        body: body.clone(),
    });
    let model = body["model"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| path.rsplit('/').next().unwrap_or("").split(':').next().unwrap_or("").to_string());
    if model == "boom" || body["query"] == json!("boom") {
        return (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(json!({"error": {"message": "the model is on fire"}})))
            .into_response();
    }
    if model == "slow" {
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    let hang = model == "hang";
    let stream = body["stream"].as_bool() == Some(true) || path.ends_with(":streamGenerateContent");
    match path.as_str() {
        "/v1/models" => axum::Json(json!({"data": [{"id": "gpt-4o"}]})).into_response(),
        "/v1/models/page" => {
            Response::builder().header(header::CONTENT_TYPE, "text/html").body(Body::from("<script>x</script>")).unwrap()
        }
        "/v1/chat/completions" if stream => {
            let mut events = vec![
                json!({"choices": [{"index": 0, "delta": {"content": "Hello"}}], "usage": null}),
                json!({"choices": [{"index": 0, "delta": {"content": " world"}}], "usage": null}),
            ];
            if body.pointer("/stream_options/include_usage") == Some(&json!(true)) {
                events.push(json!({"choices": [], "usage": {"prompt_tokens": 20, "completion_tokens": 2,
                    "prompt_tokens_details": {"cached_tokens": 10}}}));
            }
            let mut chunks = sse(&events);
            chunks.push("data: [DONE]\n\n".into());
            if hang {
                chunks.truncate(1);
            }
            stream_response(chunks, hang)
        }
        "/v1/chat/completions" => (
            [("openai-organization", "org-operator"), ("openai-project", "proj-operator")],
            axum::Json(json!({
                "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500}
            })),
        )
            .into_response(),
        "/v1/responses" => axum::Json(json!({"id": "resp_1", "object": "response", "output": [],
            "usage": {"input_tokens": 300, "output_tokens": 40, "output_tokens_details": {"reasoning_tokens": 30}}}))
        .into_response(),
        "/v1/embeddings" => axum::Json(
            json!({"object": "list", "data": [], "model": model, "usage": {"prompt_tokens": 8, "total_tokens": 8}}),
        )
        .into_response(),
        "/v1/messages" if stream => {
            let events = [
                ("message_start", json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
                    "content": [], "model": model, "stop_reason": null, "stop_sequence": null,
                    "usage": {"input_tokens": 50, "cache_read_input_tokens": 100, "output_tokens": 1}}})),
                ("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})),
                ("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi there"}})),
                ("content_block_stop", json!({"type": "content_block_stop", "index": 0})),
                ("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": 12}})),
                ("message_stop", json!({"type": "message_stop"})),
            ];
            stream_response(events.iter().map(|(e, d)| format!("event: {e}\ndata: {d}\n\n")).collect(), false)
        }
        "/v1/messages" => axum::Json(json!({"id": "msg_1", "type": "message", "role": "assistant", "model": model,
            "content": [{"type": "text", "text": "Hi"}], "stop_reason": "end_turn", "stop_sequence": null,
            "usage": {"input_tokens": 200, "cache_creation_input_tokens": 100, "output_tokens": 70}}))
        .into_response(),
        p if p.ends_with(":generateContent") => axum::Json(json!({"candidates": [{"content": {"parts": [{"text": "Hi"}]}}],
            "usageMetadata": {"promptTokenCount": 400, "candidatesTokenCount": 60, "thoughtsTokenCount": 40}}))
        .into_response(),
        p if p.ends_with(":streamGenerateContent") && parts.uri.query().is_some_and(|q| q.contains("alt=sse")) => {
            stream_response(
                sse(&[
                    json!({"candidates": [{"content": {"parts": [{"text": "Hel"}]}}], "usageMetadata": {"promptTokenCount": 30}}),
                    json!({"candidates": [{"content": {"parts": [{"text": "lo"}]}}],
                           "usageMetadata": {"promptTokenCount": 30, "candidatesTokenCount": 5}}),
                ]),
                false,
            )
        }
        p if p.ends_with(":streamGenerateContent") => axum::Json(json!([
            {"candidates": [{"content": {"parts": [{"text": "Hel"}]}}]},
            {"candidates": [{"content": {"parts": [{"text": "lo"}]}}], "usageMetadata": {"promptTokenCount": 30, "candidatesTokenCount": 6}}
        ]))
        .into_response(),
        "/search" | "/v1/scrape" => axum::Json(json!({"results": []})).into_response(),
        // Any other route the proxy lists: an answer with usage in every
        // provider's words.
        _ if parts.method == "GET" => axum::Json(json!({"data": []})).into_response(),
        _ => axum::Json(json!({"results": [], "totalTokens": 3,
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "input_tokens": 10, "output_tokens": 5},
            "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 5}}))
        .into_response(),
    }
}

async fn start_mock() -> (Mock, String) {
    let mock = Mock::default();
    let app = axum::Router::new().fallback(mock_answer).with_state(mock.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (mock, format!("http://{addr}"))
}

struct Harness {
    router: axum::Router,
    engine: Engine,
    mock: Mock,
    key: String,
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|_| panic!("not JSON: {}", self.text))
    }
}

async fn add_prices(store: &Store) {
    let mut tx = store.begin().await.unwrap();
    let llm = |i: &str, o: &str, c: &str| {
        Rates::from(ClassRates {
            input_per_million: price(i),
            output_per_million: price(o),
            cached_input_per_million: price(c),
            ..ClassRates::default()
        })
    };
    let versions = [
        ("openai", "gpt-4o", llm("2.5", "10", "1.25")),
        ("openai", "text-embedding-3-small", llm("0.02", "0", "0.02")),
        ("openai", "hang", llm("2.5", "10", "1.25")),
        ("openai", "boom", llm("2.5", "10", "1.25")),
        ("openai", "slow", llm("2.5", "10", "1.25")),
        ("anthropic", "claude-sonnet-4-5", llm("3", "15", "0.3")),
        ("mistral", "mistral-large-latest", llm("2", "6", "2")),
        ("gemini", "gemini-2.5-flash", llm("0.3", "2.5", "0.075")),
        ("huggingface", "llama", llm("0.2", "0.2", "0.2")),
        ("mistral", "mistral-embed", llm("0.1", "0", "0.1")),
        ("serper", "*", Rates::from(ClassRates { per_search: price("0.001"), ..ClassRates::default() })),
        ("metaphor", "*", Rates::from(ClassRates { per_search: price("0.005"), ..ClassRates::default() })),
        ("firecrawl", "*", Rates::from(ClassRates { per_page: price("0.00083"), ..ClassRates::default() })),
    ];
    for (p, m, rates) in versions {
        let v = PriceVersion {
            id: 0,
            provider: Provider::parse(p).unwrap(),
            model: m.into(),
            effective_from: t(2026, 1, 1),
            rates,
            description: String::new(),
            // gpt-4o's published cap; the others unknown.
            max_output_tokens: (m == "gpt-4o").then_some(16_384),
        };
        catalog::insert_price_version(&mut tx, &v, None, t(2026, 1, 1)).await.unwrap();
    }
    catalog::bump_revision(&mut tx).await.unwrap();
    tx.commit().await.unwrap();
}

async fn harness(store: Store, limits: Limits, timeout: Duration) -> Harness {
    harness_with(store, limits, timeout, 64, Duration::from_secs(300)).await
}

async fn harness_with(
    store: Store,
    limits: Limits,
    timeout: Duration,
    max_calls: usize,
    hold_ttl: Duration,
) -> Harness {
    let (mut engine, plan) = engine_with_catalog(store.clone(), limits, t(2026, 1, 1)).await;
    engine.config.hold_ttl = hold_ttl;
    add_prices(&store).await;
    user_on_plan(&engine, "alice", plan, Utc::now() - chrono::Duration::days(3)).await;
    let (mock, base) = start_mock().await;
    let upstreams =
        Family::ALL.into_iter().map(|f| (f, Upstream { base: base.clone(), key: Some(UPSTREAM_KEY.into()) })).collect();
    let settings = ProxySettings { upstreams, timeout, default_max_output: 4096, max_calls };
    let state = app_state_with_proxy(engine.clone(), &ServeArgs::default(), settings);
    let router = build_router(state, Duration::from_secs(30));
    let key = engine.create_api_key(Some(&uid("alice")), &[Scope::Proxy], "sdk", "test", Utc::now()).await.unwrap().1;
    Harness { router, engine, mock, key }
}

impl Harness {
    async fn send(&self, method: &str, path: &str, headers: &[(&str, String)], body: Option<Value>) -> Answer {
        let mut req = Request::builder().method(method).uri(path).header(header::CONTENT_TYPE, "application/json");
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let body = body.map(|b| Body::from(b.to_string())).unwrap_or_default();
        let resp = self.router.clone().oneshot(req.body(body).unwrap()).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        Answer { status, headers, text: String::from_utf8_lossy(&bytes).into_owned() }
    }

    fn bearer(&self) -> Vec<(&'static str, String)> {
        vec![("authorization", format!("Bearer {}", self.key))]
    }

    async fn post(&self, path: &str, body: Value) -> Answer {
        self.send("POST", path, &self.bearer(), Some(body)).await
    }

    fn upstream_calls(&self) -> usize {
        self.mock.seen.lock().unwrap().len()
    }

    fn last_seen(&self) -> Seen {
        self.mock.seen.lock().unwrap().last().cloned().expect("the upstream was called")
    }

    /// The recorded event: (input, output, cached, status, cost nanos, estimated, units).
    async fn event(&self, id: &str) -> Option<(i64, i64, i64, i64, i64, bool, i64)> {
        let row = sqlx::query(
            "SELECT tokens_input, tokens_output, tokens_cached_input, status_code, cost_total_nanos, estimated, units
             FROM usage_events WHERE event_id = $1",
        )
        .bind(id)
        .fetch_optional(self.engine.store_for_tests().pool())
        .await
        .unwrap()?;
        Some((row.get(0), row.get(1), row.get(2), row.get(3), row.get(4), row.get::<i64, _>(5) != 0, row.get(6)))
    }

    /// The event, waiting for a recording that runs after the answer.
    async fn event_soon(&self, id: &str) -> (i64, i64, i64, i64, i64, bool, i64) {
        for _ in 0..100 {
            if let Some(e) = self.event(id).await {
                return e;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("event {id} was never recorded");
    }

    async fn open_holds(&self) -> i64 {
        self.engine.store_for_tests().settled().await.unwrap();
        sqlx::query("SELECT CAST(COUNT(*) AS BIGINT) FROM reservations WHERE consumed_at IS NULL")
            .fetch_one(self.engine.store_for_tests().pool())
            .await
            .unwrap()
            .get(0)
    }

    async fn events(&self) -> i64 {
        sqlx::query("SELECT CAST(COUNT(*) AS BIGINT) FROM usage_events")
            .fetch_one(self.engine.store_for_tests().pool())
            .await
            .unwrap()
            .get(0)
    }
}

fn header_str<'a>(a: &'a Answer, name: &str) -> &'a str {
    a.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_else(|| panic!("no {name} header"))
}

async fn every_protocol_is_gated_priced_and_recorded(store: Store) {
    let h = harness(store, Limits::new(), Duration::from_secs(10)).await;

    // OpenAI chat, whole: the caller's key stays here, the server's goes up.
    let a = h
        .post(
            "/proxy/openai/v1/chat/completions",
            json!({"model": "gpt-4o", "max_tokens": 600, "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.json()["choices"][0]["message"]["content"], json!("Hi"));
    let seen = h.last_seen();
    assert_eq!((seen.path.as_str(), seen.auth.as_str()), ("/v1/chat/completions", "Bearer sk-upstream-secret"));
    let id = header_str(&a, "x-tally-event-id").to_string();
    // 1,000 in at $2.50 and 500 out at $10 per 1M.
    assert_eq!(header_str(&a, "x-tally-cost"), "0.007500000");
    assert_eq!(h.event(&id).await.unwrap(), (1000, 500, 0, 200, 7_500_000, false, 0));
    assert_eq!(h.open_holds().await, 0, "the hold settled to the real usage");

    // OpenAI chat, streamed, the client not asking for usage: the proxy asks,
    // and hides the extra chunk; the cost closes the stream as a comment.
    let a = h
        .post(
            "/proxy/openai/v1/chat/completions",
            json!({"model": "gpt-4o", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(h.last_seen().body["stream_options"]["include_usage"], json!(true));
    assert!(a.text.contains("Hello") && a.text.contains(" world") && a.text.contains("data: [DONE]"), "{}", a.text);
    assert!(!a.text.contains("prompt_tokens"), "the usage chunk is hidden: {}", a.text);
    let id = header_str(&a, "x-tally-event-id").to_string();
    // 20 in (10 of them cached at $1.25), 2 out.
    let cost = 10 * 2_500 + 10 * 1_250 + 2 * 10_000;
    let trailer = format!(": tally-cost={} event={id}\n\n", crate::domain::money::Nanos(cost).usd_string());
    assert!(a.text.ends_with(&trailer), "{}", a.text);
    assert_eq!(h.event(&id).await.unwrap(), (20, 2, 10, 200, cost, false, 0));

    // Mistral speaks OpenAI's chat completions, with its own key.
    let a =
        h.post("/proxy/mistral/v1/chat/completions", json!({"model": "mistral-large-latest", "messages": []})).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(h.last_seen().auth, format!("Bearer {UPSTREAM_KEY}"));
    // 1,000 in at $2 and 500 out at $6 per 1M.
    assert_eq!(header_str(&a, "x-tally-cost"), "0.005000000");

    // Tags from `x-tally-tags` land on the event; a bad header is refused
    // in the provider's shape before anything is held or forwarded.
    let mut tagged = h.bearer();
    tagged.push(("x-tally-tags", "project=blog, feature=outline".into()));
    let a = h
        .send("POST", "/proxy/openai/v1/chat/completions", &tagged, Some(json!({"model": "gpt-4o", "messages": []})))
        .await;
    let stored: Option<String> = sqlx::query("SELECT tags FROM usage_events WHERE event_id = $1")
        .bind(header_str(&a, "x-tally-event-id"))
        .fetch_one(h.engine.store_for_tests().pool())
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored.as_deref(), Some(r#"{"feature":"outline","project":"blog"}"#));
    let calls = h.upstream_calls();
    tagged[1].1 = "project".into();
    let a = h
        .send("POST", "/proxy/openai/v1/chat/completions", &tagged, Some(json!({"model": "gpt-4o", "messages": []})))
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text);
    assert!(
        a.json()["error"]["message"].as_str().unwrap().contains("x-tally-tags: `project` is not key=value"),
        "{}",
        a.text
    );
    assert_eq!(h.upstream_calls(), calls);

    // Responses and embeddings.
    let a = h.post("/proxy/openai/v1/responses", json!({"model": "gpt-4o", "input": "hi"})).await;
    let e = h.event(header_str(&a, "x-tally-event-id")).await.unwrap();
    assert_eq!((e.0, e.1), (300, 40));
    let a = h.post("/proxy/openai/v1/embeddings", json!({"model": "text-embedding-3-small", "input": "hi"})).await;
    assert_eq!(h.event(header_str(&a, "x-tally-event-id")).await.unwrap().0, 8);

    // Anthropic, with its SDK's `x-api-key`, whole and streamed.
    let anthropic = [("x-api-key", h.key.clone()), ("anthropic-version", "2023-06-01".into())];
    let body =
        json!({"model": "claude-sonnet-4-5", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]});
    let a = h.send("POST", "/proxy/anthropic/v1/messages", &anthropic, Some(body.clone())).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(h.last_seen().auth, UPSTREAM_KEY);
    let e = h.event(header_str(&a, "x-tally-event-id")).await.unwrap();
    assert_eq!((e.0, e.1, e.2), (300, 70, 0));
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let a = h.send("POST", "/proxy/anthropic/v1/messages", &anthropic, Some(streamed)).await;
    assert!(a.text.contains("event: message_stop"), "{}", a.text);
    let e = h.event(header_str(&a, "x-tally-event-id")).await.unwrap();
    assert_eq!((e.0, e.1, e.2, e.5), (150, 12, 100, false));

    // Gemini: `x-goog-api-key`, and `?key=` (which never goes upstream).
    let contents = json!({"contents": [{"parts": [{"text": "hi"}]}]});
    let a = h
        .send(
            "POST",
            "/proxy/gemini/v1beta/models/gemini-2.5-flash:generateContent",
            &[("x-goog-api-key", h.key.clone())],
            Some(contents.clone()),
        )
        .await;
    let e = h.event(header_str(&a, "x-tally-event-id")).await.unwrap();
    assert_eq!((e.0, e.1), (400, 100));
    let path = format!("/proxy/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse&key={}", h.key);
    let a = h.send("POST", &path, &[], Some(contents.clone())).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(h.last_seen().query, "alt=sse");
    assert_eq!(h.last_seen().auth, UPSTREAM_KEY);
    let e = h.event(header_str(&a, "x-tally-event-id")).await.unwrap();
    assert_eq!((e.0, e.1, e.5), (30, 5, false));
    // Without `alt=sse` the stream is one JSON array, passed on as it comes.
    let path = "/proxy/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent";
    let a = h.send("POST", path, &[("x-goog-api-key", h.key.clone())], Some(contents)).await;
    assert!(a.json().is_array());
    let e = h.event(header_str(&a, "x-tally-event-id")).await.unwrap();
    assert_eq!((e.0, e.1), (30, 6));

    // Search, extraction and scraping: per request or unit, each with the
    // header its provider expects.
    for (path, body, auth_header, units) in [
        ("/proxy/tavily/search", json!({"query": "q", "search_depth": "advanced"}), "authorization", 2),
        ("/proxy/exa/search", json!({"query": "q"}), "x-api-key", 1),
        ("/proxy/firecrawl/v1/scrape", json!({"url": "https://example.com"}), "authorization", 1),
    ] {
        let a = h.post(path, body).await;
        assert_eq!(a.status, StatusCode::OK, "{path}: {}", a.text);
        let e = h.event(header_str(&a, "x-tally-event-id")).await.unwrap();
        assert_eq!(e.6, units, "{path}");
        let expected =
            if auth_header == "authorization" { format!("Bearer {UPSTREAM_KEY}") } else { UPSTREAM_KEY.into() };
        assert_eq!(h.last_seen().auth, expected, "{path}");
    }
    // Search: per request.
    let a = h.send("POST", "/proxy/serper/search", &[("x-api-key", h.key.clone())], Some(json!({"q": "rust"}))).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(header_str(&a, "x-tally-cost"), "0.001000000");
    let e = h.event(header_str(&a, "x-tally-event-id")).await.unwrap();
    assert_eq!((e.4, e.6), (1_000_000, 1));

    // Reads that bill nothing pass through, neither held nor recorded.
    let before = h.events().await;
    let a = h.send("GET", "/proxy/openai/v1/models", &h.bearer(), None).await;
    assert_eq!((a.status, a.json()["data"][0]["id"].as_str()), (StatusCode::OK, Some("gpt-4o")));
    assert_eq!(h.events().await, before);
    assert_eq!(h.open_holds().await, 0);

    // The usage log shows proxied calls with their model and tokens.
    let all = crate::domain::usage_log::LogFilter::default();
    let rows =
        h.engine.usage_log(&uid("alice"), &all, 50, crate::domain::usage_log::LogStart::Offset(0)).await.unwrap().0;
    assert!(rows.iter().any(|r| r.model.as_deref() == Some("claude-sonnet-4-5") && r.tokens_output == 12));
    assert!(rows.iter().all(|r| r.endpoint.as_deref().is_some_and(|e| e.starts_with('/'))));
}
crate::both_stores!(protocols, every_protocol_is_gated_priced_and_recorded);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_denied_call_never_reaches_the_provider() {
    let db = TestDb::sqlite().await;
    let mut limits = Limits::new();
    limits.set(LimitKey::Tokens(Provider::parse("openai").unwrap()), Some(5_000));
    let h = harness(db.store.clone(), limits, Duration::from_secs(10)).await;
    // 8,000 output tokens cannot fit in 5,000.
    let body = json!({"model": "gpt-4o", "max_tokens": 8000, "messages": [{"role": "user", "content": "hi"}]});
    let a = h.post("/proxy/openai/v1/chat/completions", body.clone()).await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS, "{}", a.text);
    let err = a.json();
    assert_eq!(err["error"]["type"], json!("tally_limit_exceeded"));
    assert_eq!(err["error"]["code"], json!("openai_tokens"));
    assert!(err["error"]["message"].as_str().unwrap().contains("limit reached"), "{err}");
    assert!(header_str(&a, "retry-after").parse::<i64>().unwrap() > 0);
    assert_eq!(header_str(&a, "x-tally-limit"), "openai_tokens");
    assert_eq!(h.upstream_calls(), 0, "a denied call never reaches the provider");
    // No maximum in the request: gpt-4o's cap from the catalog (16,384)
    // is held, which does not fit; a model without a cap holds the default
    // 4,096, which does.
    let a = h.post("/proxy/openai/v1/chat/completions", json!({"model": "gpt-4o", "messages": []})).await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS, "{}", a.text);
    assert!(a.json()["error"]["message"].as_str().unwrap().contains("16,384"), "{}", a.text);
    assert_eq!(h.upstream_calls(), 0);
    let a = h.post("/proxy/openai/v1/chat/completions", json!({"model": "boom", "messages": []})).await;
    assert_eq!(a.status, StatusCode::INTERNAL_SERVER_ERROR, "allowed, and the mock fails it: {}", a.text);
    assert_eq!(h.upstream_calls(), 1);
    // Denials in Anthropic's and Gemini's shapes.
    let mut limits = Limits::new();
    limits.set(LimitKey::Tokens(Provider::parse("anthropic").unwrap()), Some(10));
    limits.set(LimitKey::Tokens(Provider::parse("gemini").unwrap()), Some(10));
    let db2 = TestDb::sqlite().await;
    let h2 = harness(db2.store.clone(), limits, Duration::from_secs(10)).await;
    let a = h2
        .send(
            "POST",
            "/proxy/anthropic/v1/messages",
            &[("x-api-key", h2.key.clone())],
            Some(json!({"model": "claude-sonnet-4-5", "max_tokens": 100, "messages": []})),
        )
        .await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        (a.json()["type"].as_str(), a.json()["error"]["type"].as_str()),
        (Some("error"), Some("rate_limit_error"))
    );
    let a = h2
        .send(
            "POST",
            "/proxy/gemini/v1beta/models/gemini-2.5-flash:generateContent",
            &[("x-goog-api-key", h2.key.clone())],
            Some(json!({"contents": []})),
        )
        .await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(a.json()["error"]["status"], json!("RESOURCE_EXHAUSTED"));
    assert_eq!(h2.upstream_calls(), 0);
    // `/metrics` counts each call by provider and outcome.
    let admin = h.engine.create_api_key(None, &[Scope::Admin], "ops", "test", Utc::now()).await.unwrap().1;
    let m = h.send("GET", "/metrics", &[("authorization", format!("Bearer {admin}"))], None).await;
    for line in [
        "tally_proxy_calls_total{provider=\"openai\",outcome=\"denied\"} 2",
        "tally_proxy_calls_total{provider=\"openai\",outcome=\"upstream_error\"} 1",
        "tally_proxy_calls_total{provider=\"anthropic\",outcome=\"denied\"} 0",
    ] {
        assert!(m.text.lines().any(|l| l == line), "{line} in\n{}", m.text);
    }
    db.cleanup().await;
    db2.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failures_are_recorded_and_release_the_hold() {
    let db = TestDb::sqlite().await;
    let h = harness(db.store.clone(), Limits::new(), Duration::from_secs(1)).await;
    // The provider fails: its answer passes on, the call is recorded failed.
    let a = h.post("/proxy/openai/v1/chat/completions", json!({"model": "boom", "messages": []})).await;
    assert_eq!(a.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(a.json()["error"]["message"], json!("the model is on fire"));
    let e = h.event(header_str(&a, "x-tally-event-id")).await.unwrap();
    assert_eq!((e.0, e.1, e.3, e.4), (0, 0, 500, 0));
    // A failed search is recorded failed, and not billed for its units.
    let a = h.post("/proxy/tavily/search", json!({"query": "boom", "search_depth": "advanced"})).await;
    assert_eq!(a.status, StatusCode::INTERNAL_SERVER_ERROR);
    let e = h.event(header_str(&a, "x-tally-event-id")).await.unwrap();
    assert_eq!((e.3, e.4, e.6), (500, 0, 0));
    // No answer in time: 504 in the provider's shape, recorded.
    let a = h.post("/proxy/openai/v1/chat/completions", json!({"model": "slow", "messages": []})).await;
    assert_eq!(a.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(a.json()["error"]["type"], json!("server_error"));
    let e = h.event_soon(header_str(&a, "x-tally-event-id")).await;
    assert_eq!(e.3, 504);
    assert_eq!(h.open_holds().await, 0);

    assert_eq!(h.open_holds().await, 0);
    db.cleanup().await;
}

/// Tries to get provider calls for free by reusing an event id: after an
/// answer, after a failure, and while the first call still runs.
async fn a_reused_event_id_never_buys_a_free_call(store: Store) {
    let h = harness(store, Limits::new(), Duration::from_secs(10)).await;
    let named = |id: &str| vec![("authorization", format!("Bearer {}", h.key)), ("x-tally-event-id", id.to_string())];
    let body = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]});

    // Answered: the same id again is refused from the record, and the
    // provider is not called again.
    let a = h.send("POST", "/proxy/openai/v1/chat/completions", &named("call-42"), Some(body.clone())).await;
    assert_eq!((a.status, header_str(&a, "x-tally-event-id")), (StatusCode::OK, "prx:1:call-42"));
    assert_eq!(header_str(&a, "x-tally-cost"), "0.007500000");
    let calls = h.upstream_calls();
    for _ in 0..2 {
        let a = h.send("POST", "/proxy/openai/v1/chat/completions", &named("call-42"), Some(body.clone())).await;
        assert_eq!(a.status, StatusCode::CONFLICT, "{}", a.text);
        assert_eq!(a.json()["error"]["code"], json!("duplicate_call"));
        assert!(a.json()["error"]["message"].as_str().unwrap().contains("billed 0.007500000"), "{}", a.text);
        assert_eq!(
            (header_str(&a, "x-tally-event-id"), header_str(&a, "x-tally-cost")),
            ("prx:1:call-42", "0.007500000")
        );
    }
    assert_eq!(h.upstream_calls(), calls, "a reused id never reaches the provider");

    // Failed upstream ($0): the retry is forwarded and billed under its own id.
    let boom = json!({"model": "boom", "messages": []});
    let a = h.send("POST", "/proxy/openai/v1/chat/completions", &named("call-43"), Some(boom)).await;
    assert_eq!((a.status, header_str(&a, "x-tally-event-id")), (StatusCode::INTERNAL_SERVER_ERROR, "prx:1:call-43"));
    let a = h.send("POST", "/proxy/openai/v1/chat/completions", &named("call-43"), Some(body.clone())).await;
    assert_eq!((a.status, header_str(&a, "x-tally-event-id")), (StatusCode::OK, "prx:2:call-43"));
    assert_eq!(h.event("prx:2:call-43").await.unwrap().4, 7_500_000, "the retry is billed");
    assert_eq!(h.event("prx:1:call-43").await.unwrap().4, 0);

    // Still running: a second call with its id is refused, not forwarded.
    let stream = json!({"model": "hang", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let req = Request::builder()
        .method("POST")
        .uri("/proxy/openai/v1/chat/completions")
        .header("authorization", format!("Bearer {}", h.key))
        .header("x-tally-event-id", "call-44")
        .body(Body::from(stream.to_string()))
        .unwrap();
    let running = h.router.clone().oneshot(req).await.unwrap();
    assert_eq!(running.status(), StatusCode::OK);
    let calls = h.upstream_calls();
    let a = h.send("POST", "/proxy/openai/v1/chat/completions", &named("call-44"), Some(body.clone())).await;
    assert_eq!((a.status, a.json()["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("call_in_flight")));
    assert_eq!(h.upstream_calls(), calls);
    drop(running);
    h.event_soon("prx:1:call-44").await;

    // A denied call gives its id back: the same id works once there is room.
    let a = h
        .send(
            "POST",
            "/proxy/openai/v1/chat/completions",
            &named("call-45"),
            Some(json!({"model": "unpriced-model", "messages": []})),
        )
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.text);
    let a = h.send("POST", "/proxy/openai/v1/chat/completions", &named("call-45"), Some(body.clone())).await;
    assert_eq!((a.status, header_str(&a, "x-tally-event-id")), (StatusCode::OK, "prx:2:call-45"));

    // Ingest cannot take (or pre-empt) a proxied call's id.
    let ingest = h.engine.create_api_key(None, &[Scope::Ingest], "x", "test", Utc::now()).await.unwrap().1;
    for id in ["prx:1:call-46", "prx_abc"] {
        let a = h
            .send(
                "POST",
                "/api/usage/events",
                &[("authorization", format!("Bearer {ingest}"))],
                Some(json!({"events": [{"id": id, "user_id": "alice", "provider": "openai", "model": "gpt-4o"}]})),
            )
            .await;
        assert_eq!(a.json()["data"]["results"][0]["status"], json!("rejected"), "{}", a.text);
    }
    let n: i64 = sqlx::query("SELECT CAST(COUNT(*) AS BIGINT) FROM usage_events WHERE event_id LIKE 'prx:%call-42'")
        .fetch_one(h.engine.store_for_tests().pool())
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    assert_eq!(h.open_holds().await, 0);
}
crate::both_stores!(reused_ids, a_reused_event_id_never_buys_a_free_call);

/// A sample request for a route: a path with its wildcards filled, and a
/// body that asks for a little of what the route sells.
fn sample(family: Family, route: &protocol::Route) -> (String, Value) {
    let model = match family {
        Family::OpenAi => "gpt-4o",
        Family::Mistral => "mistral-large-latest",
        Family::HuggingFace => "llama",
        Family::Anthropic => "claude-sonnet-4-5",
        Family::Gemini => "gemini-2.5-flash",
        _ => "m",
    };
    let path = route.pattern.replace('*', model);
    let body = match route.bill {
        protocol::Bill::Free if route.method == "GET" => Value::Null,
        protocol::Bill::Call(Endpoint::OpenAiEmbeddings) => {
            json!({"model": if family == Family::Mistral { "mistral-embed" } else { "text-embedding-3-small" }, "input": "hi"})
        }
        protocol::Bill::Call(Endpoint::Search) => {
            json!({"query": "q", "q": "q", "url": "https://example.com", "urls": ["https://example.com"], "limit": 3, "ids": ["a"]})
        }
        _ => json!({"model": model, "max_tokens": 50, "max_output_tokens": 50, "input": "hi",
                    "messages": [{"role": "user", "content": "hi"}], "contents": [{"parts": [{"text": "hi"}]}],
                    "generationConfig": {"maxOutputTokens": 50}}),
    };
    (format!("/proxy/{}{path}", family.slug()), body)
}

/// Walks every route the proxy forwards: each billable one is held (a
/// user with no room is refused before the provider hears of it) and
/// billed (a user with room gets an event that costs something); each free
/// one is neither. Then the calls it must not forward.
async fn every_forwarded_route_is_held_and_billed(store: Store) {
    let h = harness(store.clone(), Limits::new(), Duration::from_secs(10)).await;
    for route in protocol::ROUTES {
        for family in route.families {
            let (path, body) = sample(*family, route);
            let before = h.events().await;
            let body = (!body.is_null()).then_some(body);
            let a = h.send(route.method, &path, &h.bearer(), body).await;
            assert_eq!(a.status, StatusCode::OK, "{} {path}: {}", route.method, a.text);
            match route.bill {
                protocol::Bill::Free => {
                    assert_eq!(h.events().await, before, "{path} is free");
                    assert!(a.headers.get("x-tally-event-id").is_none(), "{path}");
                }
                protocol::Bill::Call(_) => {
                    let e = h.event(header_str(&a, "x-tally-event-id")).await.expect("recorded");
                    assert!(e.4 > 0, "{} {path} billed {e:?}", route.method);
                }
            }
        }
    }
    assert_eq!(h.open_holds().await, 0);

    // No room at all (a cost cap of one nano-dollar: every billable call
    // holds more): every billable route is refused before the provider.
    let mut none = Limits::new();
    none.set(LimitKey::MonthlyCost, Some(1));
    let db = TestDb::sqlite().await;
    let h2 = harness(db.store.clone(), none, Duration::from_secs(10)).await;
    for route in protocol::ROUTES.iter().filter(|r| r.bill != protocol::Bill::Free) {
        for family in route.families {
            let (path, body) = sample(*family, route);
            let a = h2.send(route.method, &path, &h2.bearer(), Some(body)).await;
            assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS, "{} {path}: {}", route.method, a.text);
        }
    }
    assert_eq!(h2.upstream_calls(), 0, "nothing billable reached the provider unheld");
    db.cleanup().await;

    // What the proxy does not list is 404 in the provider's shape and
    // never reaches the provider; nor do requests for work it cannot bill.
    let calls = h.upstream_calls();
    let anthropic = [("x-api-key", h.key.clone())];
    let gemini = [("x-goog-api-key", h.key.clone())];
    let serper = [("x-api-key", h.key.clone())];
    let bearer = h.bearer();
    type Refused<'a> = (&'a str, &'a str, &'a [(&'a str, String)], Value, StatusCode);
    let refused: Vec<Refused> = vec![
        (
            "POST",
            "/proxy/openai/v1/completions",
            &bearer,
            json!({"model": "gpt-4o", "prompt": "x"}),
            StatusCode::NOT_FOUND,
        ),
        ("POST", "/proxy/openai/v1/realtime/sessions", &bearer, json!({"model": "gpt-4o"}), StatusCode::NOT_FOUND),
        ("GET", "/proxy/openai/v1/files", &bearer, Value::Null, StatusCode::NOT_FOUND),
        ("GET", "/proxy/openai/v1/responses/resp_1", &bearer, Value::Null, StatusCode::NOT_FOUND),
        ("HEAD", "/proxy/openai/v1/models", &bearer, Value::Null, StatusCode::NOT_FOUND),
        (
            "POST",
            "/proxy/anthropic/v1/chat/completions",
            &anthropic,
            json!({"model": "claude-sonnet-4-5"}),
            StatusCode::NOT_FOUND,
        ),
        (
            "POST",
            "/proxy/gemini/v1beta/models/gemini-2.5-flash:batchGenerateContent",
            &gemini,
            json!({"requests": []}),
            StatusCode::NOT_FOUND,
        ),
        ("GET", "/proxy/serper/search?q=rust", &serper, Value::Null, StatusCode::NOT_FOUND),
        (
            "POST",
            "/proxy/openai/v1/responses",
            &bearer,
            json!({"model": "gpt-4o", "input": "x", "background": true}),
            StatusCode::BAD_REQUEST,
        ),
        ("POST", "/proxy/openai/v1/%2e%2e/v1/files", &bearer, json!({}), StatusCode::BAD_REQUEST),
        ("POST", "/proxy/openai/v1/chat%2Fcompletions", &bearer, json!({}), StatusCode::BAD_REQUEST),
        ("POST", "/proxy/openai/v1/../v1/chat/completions", &bearer, json!({}), StatusCode::BAD_REQUEST),
        (
            "POST",
            "/proxy/openai/v1/chat/completions",
            &bearer,
            json!({"model": "gpt\u{0}x", "messages": []}),
            StatusCode::BAD_REQUEST,
        ),
        ("POST", "/proxy/serper/search?num=100", &serper, json!({"q": "x"}), StatusCode::BAD_REQUEST),
    ];
    for (method, path, headers, body, status) in refused {
        let body = (!body.is_null()).then_some(body);
        let a = h.send(method, path, headers, body).await;
        assert_eq!(a.status, status, "{method} {path}: {}", a.text);
        if method != "HEAD" {
            let family = Family::parse(path.split('/').nth(2).unwrap()).unwrap();
            let shape = error_body(family, Refusal::NotFound, "m", None);
            let keys = |v: &Value| v.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>());
            assert_eq!(keys(&a.json()), keys(&shape), "{path}: the provider's error shape: {}", a.text);
        }
    }
    assert_eq!(h.upstream_calls(), calls, "none of them reached the provider");
}
crate::both_stores!(route_walk, every_forwarded_route_is_held_and_billed);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn answers_cannot_act_as_pages_and_accounts_stay_the_operators() {
    let db = TestDb::sqlite().await;
    let h = harness(db.store.clone(), Limits::new(), Duration::from_secs(10)).await;
    let mut headers = h.bearer();
    headers.push(("openai-organization", "org-victim".into()));
    headers.push(("openai-project", "proj-victim".into()));
    let a = h
        .send("POST", "/proxy/openai/v1/chat/completions", &headers, Some(json!({"model": "gpt-4o", "messages": []})))
        .await;
    assert_eq!(a.status, StatusCode::OK);
    let seen = h.last_seen();
    assert!(seen.headers.get("openai-organization").is_none() && seen.headers.get("openai-project").is_none());
    assert!(a.headers.get("openai-organization").is_none() && a.headers.get("openai-project").is_none());
    assert_eq!(header_str(&a, "x-content-type-options"), "nosniff");
    assert!(header_str(&a, "content-security-policy").contains("sandbox"));
    assert!(a.headers.get("content-disposition").is_none(), "JSON is read in place");
    // HTML from a provider is a download, never a page of Tally's origin.
    let a = h.send("GET", &format!("/proxy/openai/v1/models/page?key={}", h.key), &[], None).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(header_str(&a, "content-disposition"), "attachment");
    assert_eq!(header_str(&a, "x-content-type-options"), "nosniff");
    assert!(header_str(&a, "content-security-policy").contains("default-src 'none'"));
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_long_stream_keeps_its_hold_and_calls_in_flight_are_bounded() {
    let db = TestDb::sqlite().await;
    let h = harness_with(db.store.clone(), Limits::new(), Duration::from_secs(30), 1, Duration::from_secs(1)).await;
    let req = Request::builder()
        .method("POST")
        .uri("/proxy/openai/v1/chat/completions")
        .header("authorization", format!("Bearer {}", h.key))
        .body(Body::from(json!({"model": "hang", "stream": true, "messages": []}).to_string()))
        .unwrap();
    let running = h.router.clone().oneshot(req).await.unwrap();
    assert_eq!(running.status(), StatusCode::OK);
    // Past three hold TTLs, the stream's hold still counts.
    tokio::time::sleep(Duration::from_millis(3_200)).await;
    h.engine.store_for_tests().settled().await.unwrap();
    let live: i64 =
        sqlx::query("SELECT CAST(COUNT(*) AS BIGINT) FROM reservations WHERE consumed_at IS NULL AND expires_at > $1")
            .bind(crate::server::store::ms(Utc::now()))
            .fetch_one(h.engine.store_for_tests().pool())
            .await
            .unwrap()
            .get(0);
    assert_eq!(live, 1, "the running stream's hold was renewed");
    // One call at a time here: a second is refused without the provider.
    let calls = h.upstream_calls();
    let a = h.post("/proxy/openai/v1/chat/completions", json!({"model": "gpt-4o", "messages": []})).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{}", a.text);
    assert!(a.headers.get("retry-after").is_some());
    assert_eq!(h.upstream_calls(), calls);
    let id = running.headers()["x-tally-event-id"].to_str().unwrap().to_string();
    drop(running);
    h.event_soon(&id).await;
    // The slot is free again once the stream is recorded.
    let mut ok = false;
    for _ in 0..50 {
        let a = h.post("/proxy/openai/v1/chat/completions", json!({"model": "gpt-4o", "messages": []})).await;
        if a.status == StatusCode::OK {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ok, "the slot came back");
    assert_eq!(h.open_holds().await, 0);
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_that_leaves_mid_stream_is_billed_for_what_was_produced() {
    let db = TestDb::sqlite().await;
    let h = harness(db.store.clone(), Limits::new(), Duration::from_secs(30)).await;
    let req = Request::builder()
        .method("POST")
        .uri("/proxy/openai/v1/chat/completions")
        .header("authorization", format!("Bearer {}", h.key))
        .body(Body::from(
            json!({"model": "hang", "stream": true, "messages": [{"role": "user", "content": "x".repeat(400)}]})
                .to_string(),
        ))
        .unwrap();
    let resp = h.router.clone().oneshot(req).await.unwrap();
    let id = resp.headers()["x-tally-event-id"].to_str().unwrap().to_string();
    let mut body = resp.into_body();
    // The first event arrives at once, though the upstream stays open.
    let first = tokio::time::timeout(Duration::from_secs(5), body.frame()).await.expect("first byte").unwrap().unwrap();
    assert!(String::from_utf8_lossy(first.data_ref().unwrap()).contains("Hello"));
    drop(body);
    let e = h.event_soon(&id).await;
    // "Hello" is 5 characters: 2 tokens; the input is the request's estimate.
    assert_eq!((e.1, e.3, e.5), (2, 200, true));
    assert!((100..=120).contains(&e.0), "{}", e.0);
    assert_eq!(h.open_holds().await, 0);
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_proxy_keys_bound_to_a_user_may_call() {
    let db = TestDb::sqlite().await;
    let h = harness(db.store.clone(), Limits::new(), Duration::from_secs(10)).await;
    let body = json!({"model": "gpt-4o", "messages": []});
    let a = h.send("POST", "/proxy/openai/v1/chat/completions", &[], Some(body.clone())).await;
    assert_eq!(
        (a.status, a.json()["error"]["type"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("authentication_error"))
    );
    let a = h
        .send(
            "POST",
            "/proxy/openai/v1/chat/completions",
            &[("authorization", "Bearer nope".into())],
            Some(body.clone()),
        )
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    let ingest =
        h.engine.create_api_key(Some(&uid("alice")), &[Scope::Ingest], "x", "test", Utc::now()).await.unwrap().1;
    let a = h
        .send(
            "POST",
            "/proxy/anthropic/v1/messages",
            &[("x-api-key", ingest)],
            Some(json!({"model": "claude-sonnet-4-5"})),
        )
        .await;
    assert_eq!((a.status, a.json()["error"]["type"].as_str()), (StatusCode::FORBIDDEN, Some("permission_error")));
    let unbound = h.engine.create_api_key(None, &[Scope::Proxy], "x", "test", Utc::now()).await;
    assert!(unbound.unwrap_err().to_string().contains("must be bound to a user"));
    let a = h.send("POST", "/proxy/nosuch/v1/x", &h.bearer(), Some(body.clone())).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert!(a.text.contains("openai, mistral, huggingface, anthropic, gemini"), "{}", a.text);
    let a = h.send("POST", "/proxy/openai/v1/chat/completions", &h.bearer(), Some(json!("not an object"))).await;
    assert_eq!(
        (a.status, a.json()["error"]["type"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request_error"))
    );
    assert_eq!(h.upstream_calls(), 0);
    db.cleanup().await;
}

/// A prepaid customer calls through the proxy only while the wallet covers
/// the call's worst case: without credits the call is refused in the
/// provider's shape (402) and never reaches it; with them the event is
/// debited its real cost, and a provider reporting more than the request
/// let the gate hold leaves a debt that refuses the next call.
async fn a_prepaid_call_needs_credits(store: Store) {
    let h = harness(store.clone(), Limits::new(), Duration::from_secs(10)).await;
    let plan = h.engine.catalog_snapshot().await.unwrap().plans.iter().find(|p| p.name == "Test").unwrap().id;
    crate::server::service::wallet_tests::make_prepaid(&h.engine, plan, t(2026, 1, 1)).await;
    let body =
        |max: u64| json!({"model": "gpt-4o", "max_tokens": max, "messages": [{"role": "user", "content": "hi"}]});
    let a = h.post("/proxy/openai/v1/chat/completions", body(600)).await;
    assert_eq!(a.status, StatusCode::PAYMENT_REQUIRED, "{}", a.text);
    assert_eq!(
        (a.json()["error"]["type"].as_str(), a.json()["error"]["code"].as_str()),
        (Some("insufficient_quota"), Some("insufficient_credits"))
    );
    assert_eq!(h.upstream_calls(), 0, "a refused call never reaches the provider");

    let cent = crate::domain::money::Nanos(10_000_000);
    let grant = crate::server::service::wallet_tests::grant_of(cent, "one-cent");
    h.engine.grant_credits(&uid("alice"), grant, "admin:test", Utc::now()).await.unwrap();
    let a = h.post("/proxy/openai/v1/chat/completions", body(600)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let id = header_str(&a, "x-tally-event-id").to_string();
    // The mock reports 1,000 in and 500 out: $0.0075.
    assert_eq!(h.event_soon(&id).await.4, 7_500_000);
    let balance = || async { h.engine.wallet_view(&uid("alice"), Utc::now()).await.unwrap() };
    assert_eq!(balance().await.balance.0, 2_500_000);
    // 600 more output tokens at $10 per 1M cannot fit in what is left.
    let a = h.post("/proxy/openai/v1/chat/completions", body(600)).await;
    assert_eq!(a.status, StatusCode::PAYMENT_REQUIRED, "{}", a.text);
    assert_eq!(h.upstream_calls(), 1);
    // 100 fit; the provider then reports more than the request said.
    let a = h.post("/proxy/openai/v1/chat/completions", body(100)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let id = header_str(&a, "x-tally-event-id").to_string();
    h.event_soon(&id).await;
    let w = balance().await;
    assert_eq!((w.balance.0, w.held.0), (2_500_000 - 7_500_000, 0));
    let a = h.post("/proxy/openai/v1/chat/completions", body(1)).await;
    assert_eq!(a.status, StatusCode::PAYMENT_REQUIRED, "in debt, nothing more: {}", a.text);
    assert_eq!(h.upstream_calls(), 2);
}
crate::both_stores!(a_prepaid_call_needs_credits, a_prepaid_call_needs_credits);
