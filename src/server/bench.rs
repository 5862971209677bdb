//! `tally bench`: the hot paths measured as a user meets them, over real
//! HTTP against the real router on a fresh store, each figure printed beside
//! a baseline measured in the same run (the server's own floor, `GET
//! /healthz`, for request paths; the same rows written straight through the
//! database driver, with no HTTP and no pricing, for batched ingest).
//!
//! Numbers, never assertions: the tests check behaviour; this measures it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::Utc;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde_json::json;

use super::cli::{BenchArgs, BenchSection, BenchStore, ServeArgs};
use super::seed;
use super::service::admin::PlanForm;
use super::service::{Engine, EngineConfig};
use super::store::{Store, StoreOptions, drop_schema, events};
use crate::domain::event::{UsageEvent, parse_event};
use crate::domain::identity::Scope;
use crate::domain::pricing::price_event;

/// One request a client sends: method, path and JSON body.
type MakeRequest = Arc<dyn Fn(usize, u64) -> (Method, String, Option<String>) + Send + Sync>;

/// What a run of concurrent clients measured.
#[derive(Clone, Debug, Default)]
struct Run {
    requests: u64,
    failures: u64,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Run {
    fn per_sec(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn pct(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[i.min(self.latencies.len() - 1)]
    }
}

/// How the clients of a run send.
#[derive(Clone, Copy, Debug, Default)]
struct Pace {
    /// `None`: each client sends its next request as soon as the last is
    /// answered. `Some(n)`: `n` requests a second between all clients, each
    /// on its own schedule (a slow answer delays only its own connection).
    per_sec: Option<u64>,
    /// Latency to the answer's first body bytes instead of the whole answer.
    first_byte: bool,
}

/// `clients` keep-alive HTTP/1.1 connections, each sending requests one
/// after another for `duration`, as fast as answered.
async fn drive(addr: SocketAddr, key: &str, clients: usize, duration: Duration, make: MakeRequest) -> Run {
    load(addr, key, clients, duration, make, Pace::default()).await
}

/// `clients` keep-alive HTTP/1.1 connections sending for `duration` at
/// `pace`.
async fn load(addr: SocketAddr, key: &str, clients: usize, duration: Duration, make: MakeRequest, pace: Pace) -> Run {
    let seq = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    let every = pace.per_sec.map(|n| Duration::from_secs_f64(clients as f64 / n.max(1) as f64));
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let (make, seq, auth) = (make.clone(), seq.clone(), format!("Bearer {key}"));
            tokio::spawn(async move {
                let mut run = Run::default();
                let Ok(stream) = tokio::net::TcpStream::connect(addr).await else { return run };
                let _ = stream.set_nodelay(true);
                let Ok((mut send, conn)) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await else {
                    return run;
                };
                tokio::spawn(conn);
                let mut tick = match every {
                    Some(every) => {
                        // Paced clients start spread over one interval.
                        tokio::time::sleep(every.mul_f64(c as f64 / clients as f64)).await;
                        let mut t = tokio::time::interval(every);
                        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                        Some(t)
                    }
                    None => None,
                };
                while Instant::now() < deadline {
                    if let Some(t) = tick.as_mut() {
                        t.tick().await;
                    }
                    let (method, path, body) = make(c, seq.fetch_add(1, Ordering::Relaxed));
                    let req = Request::builder()
                        .method(method)
                        .uri(path)
                        .header("host", addr.to_string())
                        .header("authorization", &auth)
                        .header("content-type", "application/json")
                        .body(Full::new(Bytes::from(body.unwrap_or_default())))
                        .expect("valid request");
                    let t = Instant::now();
                    let (ok, first_byte) = match send.send_request(req).await {
                        Ok(resp) => {
                            let status = resp.status();
                            let mut body = resp.into_body();
                            let first = body.frame().await;
                            let took = t.elapsed();
                            // Read to the end, a frame at a time: holding a
                            // whole export would put the clients' memory in
                            // the peak-memory figure.
                            let mut ok = first.is_none_or(|f| f.is_ok());
                            while ok && let Some(frame) = body.frame().await {
                                ok = frame.is_ok();
                            }
                            (status.is_success() && ok, took)
                        }
                        Err(_) => (false, t.elapsed()),
                    };
                    run.latencies.push(if pace.first_byte { first_byte } else { t.elapsed() });
                    run.requests += 1;
                    run.failures += u64::from(!ok);
                    if !ok && send.ready().await.is_err() {
                        break;
                    }
                }
                run
            })
        })
        .collect();
    let mut all = Run::default();
    for t in tasks {
        if let Ok(r) = t.await {
            all.requests += r.requests;
            all.failures += r.failures;
            all.latencies.extend(r.latencies);
        }
    }
    all.elapsed = started.elapsed();
    all.latencies.sort_unstable();
    all
}

/// A mock provider for the proxy figures, speaking OpenAI chat
/// completions: a whole answer at once, or a stream whose first event
/// leaves at once and four more 1 ms apart.
async fn start_mock_provider() -> anyhow::Result<SocketAddr> {
    use axum::response::IntoResponse;
    async fn answer(body: Bytes) -> axum::response::Response {
        let streamed = serde_json::from_slice::<serde_json::Value>(&body).ok().and_then(|v| v["stream"].as_bool());
        if streamed != Some(true) {
            return axum::Json(json!({"id": "chatcmpl-bench", "object": "chat.completion", "model": "gpt-4o-mini",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500}}))
            .into_response();
        }
        let chunks = futures::stream::unfold(0u32, |i| async move {
            if i > 5 {
                return None;
            }
            if i > 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let data = match i {
                5 => "data: [DONE]\n\n".to_string(),
                4 => format!(
                    "data: {}\n\n",
                    json!({"choices": [], "usage": {"prompt_tokens": 1200, "completion_tokens": 4}})
                ),
                _ => format!("data: {}\n\n", json!({"choices": [{"index": 0, "delta": {"content": "word "}}]})),
            };
            Some((Ok::<_, std::io::Error>(Bytes::from(data)), i + 1))
        });
        axum::response::Response::builder()
            .header("content-type", "text/event-stream")
            .body(axum::body::Body::from_stream(chunks))
            .expect("valid response")
    }
    let app = axum::Router::new().route("/v1/chat/completions", axum::routing::post(answer));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}

/// The proxy's figures: a chat completion at 500 req/s and a streamed one
/// at 100 req/s, each sent to the mock provider directly and through the
/// proxy in the same run; the proxy's cost is the difference.
async fn proxy_rows(tally: SocketAddr, mock: SocketAddr, proxy_key: &str, dur: Duration) -> Vec<Row> {
    let chat = |stream: bool, prefix: &'static str| -> MakeRequest {
        Arc::new(move |_, _| {
            let body = json!({"model": "gpt-4o-mini", "max_tokens": 400, "stream": stream,
                "messages": [{"role": "user", "content": "Summarise the quarterly report in three bullet points."}]});
            (Method::POST, format!("{prefix}/v1/chat/completions"), Some(body.to_string()))
        })
    };
    let mut rows = Vec::new();
    for (name, stream, per_sec) in
        [("proxy, chat completion at 500 req/s", false, 500), ("proxy, streamed chat at 100 req/s", true, 100)]
    {
        let pace = Pace { per_sec: Some(per_sec), first_byte: stream };
        let direct = load(mock, "sk-bench", 16, dur, chat(stream, ""), pace).await;
        let proxied = load(tally, proxy_key, 16, dur, chat(stream, "/proxy/openai"), pace).await;
        let figure = if stream { "first byte p50 / p99" } else { "p50 / p99" };
        let added = |p: f64| ms(proxied.pct(p).saturating_sub(direct.pct(p)));
        rows.push(Row {
            path: name.into(),
            figure: figure.into(),
            value: format!("{} / {}", ms(proxied.pct(0.5)), ms(proxied.pct(0.99))),
            baseline: format!("{} / {} (the mock called directly)", ms(direct.pct(0.5)), ms(direct.pct(0.99))),
            ratio: format!("+{} / +{}", added(0.5), added(0.99)),
        });
        rows.push(Row {
            path: name.into(),
            figure: "throughput".into(),
            value: rate(proxied.per_sec(), "req/s"),
            baseline: rate(direct.per_sec(), "req/s"),
            ratio: ratio(proxied.per_sec(), direct.per_sec()),
        });
        for (who, run) in [("through the proxy", &proxied), ("direct", &direct)] {
            if run.failures > 0 {
                rows.push(Row {
                    path: format!("{name}, {who}"),
                    figure: "failed requests".into(),
                    value: run.failures.to_string(),
                    baseline: "0".into(),
                    ratio: "-".into(),
                });
            }
        }
    }
    rows
}

/// A row of the result table.
struct Row {
    path: String,
    figure: String,
    value: String,
    baseline: String,
    ratio: String,
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn rate(v: f64, unit: &str) -> String {
    format!("{} {unit}", crate::domain::money::format_count(v.round() as i64))
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 { format!("{:.2}x", a / b) } else { "-".into() }
}

/// The rows of one request path: throughput and tail beside the floor.
fn request_rows(path: &str, run: &Run, floor: &Run) -> Vec<Row> {
    let mut rows = vec![
        Row {
            path: path.into(),
            figure: "throughput".into(),
            value: rate(run.per_sec(), "req/s"),
            baseline: rate(floor.per_sec(), "req/s"),
            ratio: ratio(run.per_sec(), floor.per_sec()),
        },
        Row {
            path: path.into(),
            figure: "p50 / p99".into(),
            value: format!("{} / {}", ms(run.pct(0.5)), ms(run.pct(0.99))),
            baseline: format!("{} / {}", ms(floor.pct(0.5)), ms(floor.pct(0.99))),
            ratio: ratio(run.pct(0.99).as_secs_f64(), floor.pct(0.99).as_secs_f64()),
        },
    ];
    if run.failures > 0 {
        rows.push(Row {
            path: path.into(),
            figure: "failed requests".into(),
            value: run.failures.to_string(),
            baseline: "0".into(),
            ratio: "-".into(),
        });
    }
    rows
}

/// A fresh, migrated store for the run and how to remove it afterwards.
async fn fresh_store(args: &BenchArgs) -> anyhow::Result<(Store, Box<dyn FnOnce() + Send>, Option<(String, String)>)> {
    match args.store {
        BenchStore::Sqlite => {
            let dir = std::env::temp_dir().join(format!("tally-bench-{}", uuid::Uuid::new_v4().simple()));
            std::fs::create_dir_all(&dir)?;
            let url = format!("sqlite://{}/bench.db", dir.display());
            let store = Store::connect(&url, StoreOptions::default()).await?;
            store.migrate().await?;
            Ok((store, Box::new(move || drop(std::fs::remove_dir_all(&dir))), None))
        }
        BenchStore::Postgres => {
            let url = args.database_url.clone();
            let schema = format!("tally_bench_{}", uuid::Uuid::new_v4().simple());
            let opts = StoreOptions { schema: Some(schema.clone()), ..StoreOptions::default() };
            let store = Store::connect(&url, opts)
                .await
                .with_context(|| format!("cannot reach PostgreSQL at {}", super::store::redact_url(&url)))?;
            store.migrate().await?;
            Ok((store, Box::new(|| ()), Some((url, schema))))
        }
    }
}

/// Writes `n` of the rows batched ingest writes, straight through the
/// driver: the bench's events, every column as ingest fills it (priced once,
/// up front, as ingest prices them), in transactions of 1,000 and ingest's
/// own multi-row statements ([`events::insert_events`]), with no HTTP, no
/// parsing or pricing per event, no duplicate check, no locks and no
/// rollups.
async fn raw_insert_baseline(engine: &Engine, store: &Store, user: &str, n: u64) -> anyhow::Result<Duration> {
    let now = Utc::now();
    let (_, sub, catalog) = engine.current_subscription(user, now).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    // The bench's events are all alike: one price is every event's price.
    let sample = parse_event(&event_json(user, "raw"), now).map_err(anyhow::Error::msg)?;
    let version = catalog.prices.lookup(&sample.provider, sample.model.as_deref(), now);
    let version = version.context("the bench events have no price")?;
    let unit_default = version.rates.has_unit_price() as u64;
    let cost = price_event(&version.rates, sample.quantities(unit_default))?;
    let period = sub.current_period();
    let label = period.label();
    // Only the transactions are timed; each one's rows are made before it.
    let mut spent = Duration::ZERO;
    for tx_start in (0..n).step_by(1000) {
        let evs: Vec<UsageEvent> = (tx_start..(tx_start + 1000).min(n))
            .map(|i| parse_event(&event_json(user, &format!("raw-{i}")), now))
            .collect::<Result<_, _>>()
            .map_err(anyhow::Error::msg)?;
        let rows: Vec<events::PricedEvent<'_>> = evs
            .iter()
            .map(|event| events::PricedEvent {
                event,
                units: event.units.unwrap_or(unit_default),
                cost,
                price_version_id: Some(version.id),
                unpriced: false,
                period_start: period.start,
                billing_period: label.clone(),
                late: false,
            })
            .collect();
        let started = Instant::now();
        let mut tx = store.begin().await?;
        events::insert_events(&mut tx, &rows, now).await?;
        tx.commit().await?;
        spent += started.elapsed();
    }
    Ok(spent)
}

fn event_json(user: &str, id: &str) -> serde_json::Value {
    json!({"id": id, "user_id": user, "provider": "gemini", "model": "gemini-2.5-flash",
           "tokens_input": 1200, "tokens_output": 300, "operation_type": "text_generation",
           "status_code": 200, "response_time_ms": 420})
}

fn preflight_body(user: &str, reserve: bool) -> String {
    json!({"user_id": user, "reserve": reserve, "operations": [
        {"provider": "gemini", "model": "gemini-2.5-flash", "tokens_requested": 1500, "operation_type": "text_generation"}
    ]})
    .to_string()
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let secs = if args.quick { 2 } else { args.seconds.max(1) };
    let dur = Duration::from_secs(secs);
    let small = args.quick || matches!(args.only, Some(BenchSection::Gate | BenchSection::Proxy));
    // The proxy's and the gate's figures read nothing seeded: a few events
    // will do.
    let events = args.events.unwrap_or(if small { 5_000 } else { 200_000 });
    let (store, remove, pg) = fresh_store(&args).await?;
    let result = bench_on(&args, store.clone(), dur, events).await;
    store.close().await;
    remove();
    if let Some((url, schema)) = pg {
        drop_schema(&url, &schema).await.ok();
    }
    result
}

async fn bench_on(args: &BenchArgs, store: Store, dur: Duration, events: u64) -> anyhow::Result<()> {
    let engine = Engine::new(store.clone(), EngineConfig::default());
    let now = Utc::now();
    let load_users = args.users as usize;
    eprintln!("seeding {events} events for {load_users} load users through the recording engine...");
    let seeded =
        seed::seed_load(&engine, events, load_users, 45, now, |_| ()).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let seed_rate = seeded.events as f64 / seeded.elapsed.as_secs_f64().max(1e-9);
    // Bench users on a plan with limits the gate checks but never reaches.
    let mut limits = std::collections::BTreeMap::new();
    for k in ["gemini_calls", "gemini_tokens", "openai_calls", "openai_tokens"] {
        limits.insert(k.to_string(), "1000000000000".to_string());
    }
    limits.insert("monthly_cost".into(), "100000000".into());
    let form = PlanForm { name: "Bench".into(), tier: "enterprise".into(), limits, ..PlanForm::default() };
    let plan = engine.create_plan(&form, "bench", now).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let bench_users: Vec<String> = (1..=64).map(|i| format!("bench-{i:03}")).collect();
    // The proxy's calls bill a user of their own, whom the figures before
    // them have not loaded with events and holds.
    let proxy_user = "bench-proxy".to_string();
    for id in bench_users.iter().chain([&proxy_user]) {
        let new = super::service::subscriptions::NewUser {
            id: Some(crate::domain::identity::UserId::parse(id).expect("valid")),
            email: crate::domain::identity::Email::parse(&format!("{id}@bench.example")).expect("valid"),
            name: id.clone(),
            role: crate::domain::identity::Role::User,
            password_hash: None,
            plan: Some((plan.id, crate::domain::period::BillingCycle::Monthly)),
            timezone: None,
        };
        engine.create_user(new, now - chrono::Duration::days(1)).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let (_, key) = engine
        .create_api_key(None, &[Scope::Ingest, Scope::Read, Scope::Gate], "bench", "bench", now)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let (_, load_key) = engine
        .create_api_key(Some("load-00001"), &[Scope::Read], "bench", "bench", now)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;

    let (_, proxy_key) = engine
        .create_api_key(Some(&proxy_user), &[Scope::Proxy], "bench", "bench", now)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mock = start_mock_provider().await?;
    let mut state = super::startup::app_state(engine.clone(), &ServeArgs::default());
    let mut upstreams = std::collections::HashMap::new();
    let base = format!("http://{mock}");
    upstreams
        .insert(super::proxy::protocol::Family::OpenAi, super::proxy::Upstream { base, key: Some("sk-bench".into()) });
    state.proxy = super::proxy::Proxy::new(super::proxy::ProxySettings {
        upstreams,
        timeout: Duration::from_secs(30),
        default_max_output: 4096,
        max_calls: 512,
    });
    let app = super::startup::build_router(state, Duration::from_secs(30));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let c = args.clients.max(1);
    let users = Arc::new(bench_users);
    let mut rows = Vec::new();
    eprintln!("measuring, {} s per figure, {c} clients...", dur.as_secs());

    let per_user = events / u64::from(args.users);
    let floor = drive(addr, &key, c, dur, Arc::new(|_, _| (Method::GET, "/healthz".into(), None))).await;
    rows.extend(request_rows("GET /healthz (the floor)", &floor, &floor));
    match args.only {
        Some(BenchSection::Proxy) => {
            rows.extend(proxy_rows(addr, mock, &proxy_key, dur).await);
            server.abort();
            return finish(args, events, seed_rate, &rows);
        }
        Some(BenchSection::Reads) => {
            rows.extend(read_rows(addr, &load_key, c, dur, per_user, &floor).await);
            server.abort();
            return finish(args, events, seed_rate, &rows);
        }
        _ => {}
    }

    // Preflight checks (or reservations) round-robin over the bench users.
    let gate_maker = |reserve: bool| -> MakeRequest {
        let u = users.clone();
        Arc::new(move |_, i| {
            let user = &u[(i % u.len() as u64) as usize];
            (Method::POST, "/api/subscription/preflight-check".into(), Some(preflight_body(user, reserve)))
        })
    };
    let gate_name = |reserve: bool| if reserve { "preflight, reserve" } else { "preflight, check only" };
    for reserve in [false, true] {
        let run = drive(addr, &key, c, dur, gate_maker(reserve)).await;
        rows.extend(request_rows(gate_name(reserve), &run, &floor));
    }

    let u = users.clone();
    let single = drive(
        addr,
        &key,
        c,
        dur,
        Arc::new(move |_, i| {
            let user = &u[(i % u.len() as u64) as usize];
            let body = json!({"events": [event_json(user, &format!("single-{i}"))]}).to_string();
            (Method::POST, "/api/usage/events".into(), Some(body))
        }),
    )
    .await;
    rows.extend(request_rows("ingest, 1 event a request", &single, &floor));

    // Batched ingest: 1,000 events a request from 2 clients, alone and then
    // with 16 preflight clients beside it.
    let batch_maker = |tag: &'static str, users: Arc<Vec<String>>| -> MakeRequest {
        Arc::new(move |c, i| {
            let user = &users[c % users.len()];
            let evs: Vec<_> = (0..1000).map(|k| event_json(user, &format!("{tag}-{c}-{i}-{k}"))).collect();
            (Method::POST, "/api/usage/events".into(), Some(json!({"events": evs}).to_string()))
        })
    };
    let batched = drive(addr, &key, 2, dur, batch_maker("batch", users.clone())).await;
    let ingested = (batched.requests - batched.failures) * 1000;
    let raw_time = raw_insert_baseline(&engine, &store, &users[0], ingested.max(1000)).await?;
    let raw_rate = ingested.max(1000) as f64 / raw_time.as_secs_f64().max(1e-9);
    let batch_rate = ingested as f64 / batched.elapsed.as_secs_f64().max(1e-9);
    rows.push(Row {
        path: "ingest, 1,000 events a request, 2 clients".into(),
        figure: "events recorded".into(),
        value: rate(batch_rate, "events/s"),
        baseline: format!("{} (raw driver, same rows)", rate(raw_rate, "events/s")),
        ratio: ratio(batch_rate, raw_rate),
    });
    for reserve in [false, true] {
        let beside_key = key.clone();
        let beside_maker = batch_maker(if reserve { "beside-r" } else { "beside-c" }, users.clone());
        let beside = tokio::spawn(async move { drive(addr, &beside_key, 2, dur, beside_maker).await });
        let gate = drive(addr, &key, c, dur, gate_maker(reserve)).await;
        let beside = beside.await?;
        rows.extend(request_rows(&format!("{}, beside batched ingest", gate_name(reserve)), &gate, &floor));
        let beside_rate = ((beside.requests - beside.failures) * 1000) as f64 / beside.elapsed.as_secs_f64();
        rows.push(Row {
            path: "... the batched ingest beside it".into(),
            figure: "events recorded".into(),
            value: rate(beside_rate, "events/s"),
            baseline: rate(batch_rate, "events/s (alone)"),
            ratio: ratio(beside_rate, batch_rate),
        });
    }
    if args.only == Some(BenchSection::Gate) {
        server.abort();
        return finish(args, events, seed_rate, &rows);
    }

    rows.extend(read_rows(addr, &load_key, c, dur, per_user, &floor).await);
    rows.extend(proxy_rows(addr, mock, &proxy_key, dur).await);
    server.abort();
    finish(args, events, seed_rate, &rows)
}

/// The read paths of the first load user, who holds `per_user` events: the
/// dashboard's data, the usage log's first and deepest page, and the CSV
/// export (its first byte, which leaves after the first page of rows
/// whatever the log's size, and the whole download).
async fn read_rows(addr: SocketAddr, key: &str, c: usize, dur: Duration, per_user: u64, floor: &Run) -> Vec<Row> {
    let mut rows = Vec::new();
    let csv = "/api/usage/load-00001/logs.csv".to_string();
    let beside_csv = csv.clone();
    for (name, path, first_byte) in [
        ("dashboard API", "/api/subscription/dashboard/load-00001".to_string(), false),
        ("usage log, first page", "/api/subscription/usage-logs?limit=50".to_string(), false),
        (
            "usage log, deep page",
            format!("/api/subscription/usage-logs?limit=50&offset={}", per_user.saturating_sub(50)),
            false,
        ),
        ("usage log CSV, first byte", csv.clone(), true),
        ("usage log CSV, whole log downloaded", csv, false),
    ] {
        let pace = Pace { per_sec: None, first_byte };
        let run = load(addr, key, c, dur, Arc::new(move |_, _| (Method::GET, path.clone(), None)), pace).await;
        let figures = request_rows(&format!("{name} ({per_user} events of the user)"), &run, floor);
        // The first-byte run's throughput is the whole downloads' again.
        rows.extend(figures.into_iter().filter_map(|mut r| match (first_byte, r.figure.as_str()) {
            (true, "throughput") => None,
            (true, "p50 / p99") => {
                r.figure = "first byte p50 / p99".into();
                Some(r)
            }
            _ => Some(r),
        }));
    }
    // Exports must not starve the interactive reads: the dashboard again,
    // while as many clients download the whole log beside it.
    let dashboard = "/api/subscription/dashboard/load-00001".to_string();
    let beside_key = key.to_string();
    let beside = tokio::spawn(async move {
        load(addr, &beside_key, c, dur, Arc::new(move |_, _| (Method::GET, beside_csv.clone(), None)), Pace::default())
            .await
    });
    let run = drive(addr, key, c, dur, Arc::new(move |_, _| (Method::GET, dashboard.clone(), None))).await;
    let beside = beside.await.expect("the CSV download clients panicked");
    rows.extend(request_rows(&format!("dashboard API, beside {c} whole-log CSV downloads"), &run, floor));
    if beside.failures > 0 {
        rows.extend(request_rows("... the CSV downloads beside it", &beside, floor));
    }
    rows
}

/// Prints the table with the process's peak memory; fails if any request
/// failed.
fn finish(args: &BenchArgs, events: u64, seed_rate: f64, rows: &[Row]) -> anyhow::Result<()> {
    let rss = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(|l| l["VmHWM:".len()..].trim().to_string()))
        .unwrap_or_else(|| "unknown".into());
    print_table(args, events, seed_rate, &rss, rows);
    if rows.iter().any(|r| r.figure == "failed requests") {
        bail!("some requests failed; the figures above are not trustworthy");
    }
    Ok(())
}

fn print_table(args: &BenchArgs, events: u64, seed_rate: f64, rss: &str, rows: &[Row]) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let build = if cfg!(debug_assertions) { "debug build (use --release for real figures)" } else { "release build" };
    println!(
        "tally bench: {} store, {build}, {cores} cores, {} clients, {events} events for {} users seeded at {} events/s; peak memory {rss}",
        args.store.name(),
        args.clients,
        args.users,
        crate::domain::money::format_count(seed_rate.round() as i64),
    );
    println!();
    println!("| path | figure | value | baseline (same run) | ratio |");
    println!("|---|---|---|---|---|");
    for r in rows {
        println!("| {} | {} | {} | {} | {} |", r.path, r.figure, r.value, r.baseline, r.ratio);
    }
}
