//! `tally bench`: the hot paths measured as a user meets them, over real
//! HTTP against the real router on a fresh store, each figure printed beside
//! a baseline measured in the same run (the server's own floor, `GET
//! /healthz`, for request paths; the same rows written straight through the
//! database driver, with no HTTP and no pricing, for batched ingest).
//!
//! The load comes from processes apart from the server ([`load`]), so the
//! serving process's CPU time over a figure is the server's cost, printed
//! per request beside the floor's.
//!
//! Numbers, never assertions: the tests check behaviour; this measures it.

pub mod load;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::Utc;
use clap::ValueEnum;

use super::cli::{BenchArgs, BenchSection, BenchStore, ServeArgs};
use super::seed;
use super::service::admin::PlanForm;
use super::service::{Engine, EngineConfig};
use super::store::{Store, StoreOptions, drop_schema, events};
use crate::domain::event::{UsageEvent, parse_event};
use crate::domain::identity::{Scope, UserId};
use crate::domain::pricing::price_event;
use load::{LoadSpec, Measured, Run, Target, Work, event_json, measure};

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

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn rate(v: f64, unit: &str) -> String {
    format!("{} {unit}", crate::domain::money::format_count(v.round() as i64))
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 { format!("{:.2}x", a / b) } else { "-".into() }
}

/// The rows of one request path: throughput, tail and the server's CPU
/// per request, beside the floor's.
fn request_rows(path: &str, m: &Measured, floor: &Measured) -> Vec<Row> {
    let (run, base) = (m.run(), floor.run());
    let mut rows = vec![
        Row {
            path: path.into(),
            figure: "throughput".into(),
            value: rate(run.per_sec(), "req/s"),
            baseline: rate(base.per_sec(), "req/s"),
            ratio: ratio(run.per_sec(), base.per_sec()),
        },
        Row {
            path: path.into(),
            figure: "p50 / p99".into(),
            value: format!("{} / {}", ms(run.pct(0.5)), ms(run.pct(0.99))),
            baseline: format!("{} / {}", ms(base.pct(0.5)), ms(base.pct(0.99))),
            ratio: ratio(run.pct(0.99).as_secs_f64(), base.pct(0.99).as_secs_f64()),
        },
    ];
    if let (Some(cpu), Some(floor_cpu)) = (m.cpu_per_request(), floor.cpu_per_request()) {
        rows.push(Row {
            path: path.into(),
            figure: "server CPU / request".into(),
            value: us(cpu),
            baseline: us(floor_cpu),
            ratio: ratio(cpu.as_secs_f64(), floor_cpu.as_secs_f64()),
        });
    }
    rows.extend(failures(path, run));
    rows
}

/// A row saying how many requests of `run` failed, if any did.
fn failures(path: &str, run: &Run) -> Option<Row> {
    (run.failures > 0).then(|| Row {
        path: path.into(),
        figure: "failed requests".into(),
        value: run.failures.to_string(),
        baseline: "0".into(),
        ratio: "-".into(),
    })
}

/// This disk's fsync: 500 appends of 4 KiB to a file in the temp
/// directory, each followed by `fdatasync`; its p50 and p99. In `power`
/// durability a write waits for at most one of these.
async fn fsync_row() -> anyhow::Result<Row> {
    let took = tokio::task::spawn_blocking(|| -> std::io::Result<Vec<Duration>> {
        use std::io::Write;
        let path = std::env::temp_dir().join(format!("tally-fsync-{}", uuid::Uuid::new_v4().simple()));
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&path)?;
        let page = [7u8; 4096];
        let mut took = Vec::with_capacity(500);
        for _ in 0..500 {
            file.write_all(&page)?;
            let t = Instant::now();
            file.sync_data()?;
            took.push(t.elapsed());
        }
        std::fs::remove_file(&path)?;
        took.sort_unstable();
        Ok(took)
    })
    .await??;
    Ok(Row {
        path: "this disk: fdatasync after a 4 KiB append".into(),
        figure: "p50 / p99".into(),
        value: format!("{} / {}", ms(took[took.len() / 2]), ms(took[took.len() * 99 / 100])),
        baseline: "-".into(),
        ratio: "-".into(),
    })
}

/// A fresh, migrated store for the run and how to remove it afterwards.
async fn fresh_store(args: &BenchArgs) -> anyhow::Result<(Store, Box<dyn FnOnce() + Send>, Option<(String, String)>)> {
    match args.store {
        BenchStore::Sqlite => {
            let dir = std::env::temp_dir().join(format!("tally-bench-{}", uuid::Uuid::new_v4().simple()));
            std::fs::create_dir_all(&dir)?;
            let url = format!("sqlite://{}/bench.db", dir.display());
            let opts = StoreOptions { durability: args.durability, ..StoreOptions::default() };
            let store = Store::connect(&url, opts).await?;
            store.migrate().await?;
            Ok((store, Box::new(move || drop(std::fs::remove_dir_all(&dir))), None))
        }
        BenchStore::Postgres => {
            let url = args.database_url.clone();
            let schema = format!("tally_bench_{}", uuid::Uuid::new_v4().simple());
            let opts =
                StoreOptions { schema: Some(schema.clone()), durability: args.durability, ..StoreOptions::default() };
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
    let user_id = UserId::parse(user)?;
    let (_, sub, catalog) = engine.current_subscription(&user_id, now).await.map_err(|e| anyhow::anyhow!("{e}"))?;
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
        .create_api_key(Some(&UserId::parse("load-00001")?), &[Scope::Read], "bench", "bench", now)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;

    let (_, proxy_key) = engine
        .create_api_key(Some(&UserId::parse(&proxy_user)?), &[Scope::Proxy], "bench", "bench", now)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let (_mock_process, mock) = load::start_mock().await?;
    let mut upstreams = std::collections::HashMap::new();
    let base = format!("http://{mock}");
    upstreams
        .insert(super::proxy::protocol::Family::OpenAi, super::proxy::Upstream { base, key: Some("sk-bench".into()) });
    let proxy = super::proxy::ProxySettings {
        upstreams,
        timeout: Duration::from_secs(30),
        default_max_output: 4096,
        max_calls: 512,
    };
    let state = super::startup::app_state_with_proxy(engine.clone(), &ServeArgs::default(), proxy);
    let app = super::startup::build_router(state, Duration::from_secs(30));
    use axum::serve::Listener;
    let listener = super::startup::listen(([127, 0, 0, 1], 0).into()).await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let result = figures(args, &engine, &store, addr, [key, load_key, proxy_key], mock, bench_users, dur, events).await;
    server.abort();
    finish(args, events, seed_rate, &result?)
}

/// Every figure of the run, against the server at `addr`.
#[allow(clippy::too_many_arguments)]
async fn figures(
    args: &BenchArgs,
    engine: &Engine,
    store: &Store,
    addr: SocketAddr,
    [key, load_key, proxy_key]: [String; 3],
    mock: SocketAddr,
    users: Vec<String>,
    dur: Duration,
    events: u64,
) -> anyhow::Result<Vec<Row>> {
    let c = args.clients.max(1);
    let tally = Target { addr, key };
    let spec = |clients: usize, work: Work| LoadSpec::new(tally.clone(), clients, dur, work);
    let mut rows = Vec::new();
    eprintln!("measuring, {} s per figure, {c} clients, from a load process apart from the server...", dur.as_secs());

    let per_user = events / u64::from(args.users);
    rows.push(fsync_row().await?);
    let floor = measure(&spec(c, Work::Get { path: "/healthz".into() })).await?;
    rows.extend(request_rows("GET /healthz (the floor)", &floor, &floor));
    let reader = Target { addr, key: load_key };
    match args.only {
        Some(BenchSection::Proxy) => {
            rows.extend(proxy_rows(Target { addr, key: proxy_key }, mock, dur).await?);
            return Ok(rows);
        }
        Some(BenchSection::Reads) => {
            rows.extend(read_rows(reader, c, dur, per_user, &floor).await?);
            return Ok(rows);
        }
        _ => {}
    }

    // Preflight checks (or reservations) round-robin over the bench users.
    let gate = |reserve: bool| Work::Preflight { users: users.clone(), reserve };
    let gate_name = |reserve: bool| if reserve { "preflight, reserve" } else { "preflight, check only" };
    let checked = measure(&spec(c, gate(false))).await?;
    rows.extend(request_rows(gate_name(false), &checked, &floor));
    let reserved = measure(&spec(c, gate(true))).await?;
    rows.extend(request_rows(gate_name(true), &reserved, &floor));
    // The same reservations at a fixed rate, half what they reached flat
    // out: latency from each request's intended send time.
    let paced = (reserved.run().per_sec() / 2.0).max(1.0) as u64;
    let run = measure(&LoadSpec { per_sec: Some(paced), ..spec(c, gate(true)) }).await?;
    rows.extend(request_rows(&format!("preflight, reserve at {paced} req/s"), &run, &floor));

    let single = measure(&spec(c, Work::IngestOne { users: users.clone(), tag: "single".into() })).await?;
    rows.extend(request_rows("ingest, 1 event a request", &single, &floor));

    // Batched ingest: 1,000 events a request from 2 clients, alone and then
    // with the preflight clients beside it.
    let batch = |tag: &str| spec(2, Work::IngestBatch { users: users.clone(), tag: tag.into() });
    let batched = measure(&batch("batch")).await?;
    let batched = batched.run();
    let ingested = (batched.requests - batched.failures) * 1000;
    let raw_time = raw_insert_baseline(engine, store, &users[0], ingested.max(1000)).await?;
    let raw_rate = ingested.max(1000) as f64 / raw_time.as_secs_f64().max(1e-9);
    let batch_rate = ingested as f64 / (batched.elapsed_ns as f64 / 1e9).max(1e-9);
    rows.push(Row {
        path: "ingest, 1,000 events a request, 2 clients".into(),
        figure: "events recorded".into(),
        value: rate(batch_rate, "events/s"),
        baseline: format!("{} (raw driver, same rows)", rate(raw_rate, "events/s")),
        ratio: ratio(batch_rate, raw_rate),
    });
    rows.extend(failures("ingest, 1,000 events a request, 2 clients", batched));
    for reserve in [false, true] {
        let beside = batch(if reserve { "beside-r" } else { "beside-c" });
        let gate_spec = spec(c, gate(reserve));
        let (gate_run, beside) = tokio::try_join!(measure(&gate_spec), measure(&beside))?;
        // Both loads share the server: its CPU is not one figure's.
        let gate_run = Measured { server_cpu: None, ..gate_run };
        rows.extend(request_rows(&format!("{}, beside batched ingest", gate_name(reserve)), &gate_run, &floor));
        let beside = beside.run();
        let beside_rate = ((beside.requests - beside.failures) * 1000) as f64 / (beside.elapsed_ns as f64 / 1e9);
        rows.push(Row {
            path: "... the batched ingest beside it".into(),
            figure: "events recorded".into(),
            value: rate(beside_rate, "events/s"),
            baseline: rate(batch_rate, "events/s (alone)"),
            ratio: ratio(beside_rate, batch_rate),
        });
        rows.extend(failures("... the batched ingest beside it", beside));
    }
    if args.only == Some(BenchSection::Gate) {
        return Ok(rows);
    }

    rows.extend(read_rows(reader, c, dur, per_user, &floor).await?);
    rows.extend(proxy_rows(Target { addr, key: proxy_key }, mock, dur).await?);
    Ok(rows)
}

/// The proxy's figures: a chat completion at 500 req/s and a streamed one
/// at 100 req/s, each sent to the mock provider directly and through the
/// proxy by clients running side by side; the proxy's cost is the
/// difference.
async fn proxy_rows(tally: Target, mock: SocketAddr, dur: Duration) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    for (name, stream, per_sec) in
        [("proxy, chat completion at 500 req/s", false, 500), ("proxy, streamed chat at 100 req/s", true, 100)]
    {
        let direct = Target { addr: mock, key: "sk-bench".into() };
        let spec = LoadSpec {
            targets: vec![direct, tally.clone()],
            // The proxied lane at `per_sec`, the direct one at a third of it.
            per_sec: Some(per_sec * load::DIRECT_EVERY as u64 / (load::DIRECT_EVERY as u64 - 1)),
            first_byte: stream,
            ..LoadSpec::new(tally.clone(), 16, dur, Work::Chat { stream })
        };
        let m = measure(&spec).await?;
        let (direct, proxied) = (&m.lanes[0], &m.lanes[1]);
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
        if let Some(cpu) = m.server_cpu {
            let per = cpu / u32::try_from(proxied.requests.max(1)).unwrap_or(u32::MAX);
            rows.push(Row {
                path: name.into(),
                figure: "server CPU / proxied call".into(),
                value: us(per),
                baseline: "-".into(),
                ratio: "-".into(),
            });
        }
        rows.extend(failures(&format!("{name}, through the proxy"), proxied));
        rows.extend(failures(&format!("{name}, direct"), direct));
    }
    Ok(rows)
}

/// The read paths of the first load user, who holds `per_user` events: the
/// dashboard's data, the usage log's first and deepest page, and the CSV
/// export (its first byte, which leaves after the first page of rows
/// whatever the log's size, and the whole download).
async fn read_rows(
    reader: Target,
    c: usize,
    dur: Duration,
    per_user: u64,
    floor: &Measured,
) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    let csv = "/api/usage/load-00001/logs.csv".to_string();
    let get = |path: String| LoadSpec::new(reader.clone(), c, dur, Work::Get { path });
    for (name, path, first_byte) in [
        ("dashboard API", "/api/subscription/dashboard/load-00001".to_string(), false),
        ("usage log, first page", "/api/subscription/usage-logs?limit=50".to_string(), false),
        (
            "usage log, deep page",
            format!("/api/subscription/usage-logs?limit=50&offset={}", per_user.saturating_sub(50)),
            false,
        ),
        ("usage log CSV, first byte", csv.clone(), true),
        ("usage log CSV, whole log downloaded", csv.clone(), false),
    ] {
        let run = measure(&LoadSpec { first_byte, ..get(path) }).await?;
        let figures = request_rows(&format!("{name} ({per_user} events of the user)"), &run, floor);
        // The first-byte run's throughput is the whole downloads' again.
        rows.extend(figures.into_iter().filter_map(|mut r| match (first_byte, r.figure.as_str()) {
            (true, "throughput" | "server CPU / request") => None,
            (true, "p50 / p99") => {
                r.figure = "first byte p50 / p99".into();
                Some(r)
            }
            _ => Some(r),
        }));
    }
    // Exports must not starve the interactive reads: the dashboard again,
    // while as many clients download the whole log beside it.
    let dashboard = get("/api/subscription/dashboard/load-00001".to_string());
    let downloads = get(csv);
    let (run, beside) = tokio::try_join!(measure(&dashboard), measure(&downloads))?;
    let run = Measured { server_cpu: None, ..run };
    rows.extend(request_rows(&format!("dashboard API, beside {c} whole-log CSV downloads"), &run, floor));
    rows.extend(failures("... the CSV downloads beside it", beside.run()));
    Ok(rows)
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
        "tally bench: {} store ({} durability), {build}, {cores} cores, {} clients, {events} events for {} users seeded at {} events/s; peak memory of the serving process (seeding included; the load runs apart) {rss}",
        args.store.name(),
        args.durability.to_possible_value().map_or_else(String::new, |v| v.get_name().to_string()),
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
