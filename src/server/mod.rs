//! Everything that runs only on the server: configuration and CLI, storage,
//! the billing engine's services, the REST front door, authentication,
//! telemetry and the demo seed.

pub mod auth;
pub mod bench;
pub mod cli;
pub mod error;
pub mod identity;
pub mod metrics;
pub mod policy;
pub mod proxy;
pub mod rest;
pub mod secrets;
pub mod seed;
pub mod service;
pub mod startup;
pub mod state;
pub mod store;
pub mod telemetry;
#[cfg(test)]
pub mod testing;
pub mod text_rule;
pub mod views;
pub mod web;

use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::Utc;
use clap::Parser;

use crate::domain::identity::Role;
use cli::{AdminCommand, ApikeyCommand, Cli, Command, GlobalArgs, PricesCommand, SeedArgs, ServeArgs, SimulateArgs};
use service::Engine;
use service::subscriptions::NewUser;
use store::{Store, StoreOptions, redact_url};

/// Parses the command line and runs the command; the process's exit code.
pub async fn run() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(&cli.global.log_level, cli.global.log_format);
    match dispatch(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let g = cli.global;
    match cli.command.unwrap_or(Command::Serve(ServeArgs::default())) {
        Command::Serve(args) => serve(&g, args).await,
        Command::Migrate => {
            let store = open_store(&g).await?;
            store.close().await;
            println!("migrations applied to {}", redact_url(&g.database_url));
            Ok(())
        }
        Command::Seed(SeedArgs { events: Some(events), users, days, .. }) => {
            let store = open_store(&g).await?;
            let engine = Engine::new(store.clone(), Default::default());
            let mut last_print = std::time::Instant::now();
            let report = seed::seed_load(&engine, events, users, days, Utc::now(), |done| {
                if last_print.elapsed() >= Duration::from_secs(5) {
                    eprintln!("  {done} of {events} events");
                    last_print = std::time::Instant::now();
                }
            })
            .await
            .map_err(|e| anyhow::anyhow!("seeding failed: {e}"))?;
            store.close().await;
            let secs = report.elapsed.as_secs_f64().max(0.001);
            println!(
                "recorded {} events for {} load users ({} were already there) in {secs:.1} s ({:.0} events/s)",
                report.events,
                report.users,
                report.already_there,
                (report.events + report.already_there) as f64 / secs
            );
            Ok(())
        }
        Command::Seed(_) => {
            let store = open_store(&g).await?;
            let engine = Engine::new(store.clone(), Default::default());
            let report =
                seed::seed_demo(&engine, Utc::now()).await.map_err(|e| anyhow::anyhow!("seeding failed: {e}"))?;
            store.close().await;
            if report.seeded {
                println!("seeded the demo: {} usage events", report.events);
                print_demo_logins();
            } else {
                println!("the database already has users; nothing seeded");
            }
            Ok(())
        }
        Command::Admin(AdminCommand::Create { email, password, name }) => {
            let password = match password {
                Some(p) => p,
                None => read_password()?,
            };
            let hash = auth::hash_password(&password)?;
            let store = open_store(&g).await?;
            let engine = Engine::new(store.clone(), Default::default());
            let user = engine
                .create_user_by(
                    NewUser {
                        id: None,
                        email,
                        name,
                        role: Role::Admin,
                        password_hash: Some(hash.0),
                        plan: None,
                        timezone: None,
                    },
                    Some("cli"),
                    Utc::now(),
                )
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            store.close().await;
            println!("created admin {} (id {})", user.email, user.id);
            Ok(())
        }
        Command::Prices(PricesCommand::Import { file, format: _, effective_from, dry_run }) => {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| anyhow::anyhow!("cannot read the price map {}: {e}", file.display()))?;
            let store = open_store(&g).await?;
            let engine = Engine::new(store.clone(), Default::default());
            let now = Utc::now();
            let at = effective_from.map_or(now, |t| t.with_timezone(&Utc));
            let report = engine.import_prices(&text, at, dry_run, "cli", now).await;
            store.close().await;
            let r = report.map_err(|e| anyhow::anyhow!("{e}"))?;
            let verb = if r.dry_run { "would create" } else { "created" };
            for c in &r.changes {
                println!("{verb} {}/{} ({}, from {})", c.provider, c.model, c.kind, c.key);
            }
            for s in &r.skipped {
                println!("skipped {}: {}", s.key, s.reason);
            }
            if !r.unsupported_fields.is_empty() {
                let fields: Vec<String> = r.unsupported_fields.iter().map(|(f, n)| format!("{f} ({n})")).collect();
                println!("price fields Tally does not model: {}", fields.join(", "));
            }
            println!(
                "{verb} {} price versions from {}; {} unchanged; {} skipped{}{}",
                r.created,
                r.effective_from.to_rfc3339(),
                r.unchanged,
                r.skipped.len(),
                if r.repriced_events > 0 {
                    format!("; re-priced {} unpriced events", r.repriced_events)
                } else {
                    String::new()
                },
                if r.dry_run { " (dry run: nothing written)" } else { "" }
            );
            Ok(())
        }
        Command::Apikey(ApikeyCommand::Create { scopes, user, name }) => {
            let store = open_store(&g).await?;
            let engine = Engine::new(store.clone(), Default::default());
            let created = engine.create_api_key_by_email(user.as_deref(), &scopes, &name, "cli", Utc::now()).await;
            store.close().await;
            let (key, secret) = created.map_err(|e| anyhow::anyhow!("{e}"))?;
            eprintln!(
                "created API key {} with scopes {} (shown once; store it now)",
                key.id,
                key.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",")
            );
            println!("{secret}");
            Ok(())
        }
        Command::Wallet(cmd) => {
            let store = open_store(&g).await?;
            let engine = Engine::new(store.clone(), Default::default());
            let done = wallet_command(&engine, cmd).await;
            store.close().await;
            done
        }
        Command::Simulate(args) => simulate(&g, args).await,
        Command::Bench(args) => bench::run(args).await,
        Command::BenchLoad(args) if args.mock => bench::load::serve_mock().await,
        Command::BenchLoad(_) => bench::load::serve_load().await,
    }
}

/// `tally wallet …`: the same services as the admin API.
async fn wallet_command(engine: &Engine, cmd: cli::WalletCommand) -> anyhow::Result<()> {
    use crate::domain::money::Nanos;
    use crate::domain::wallet::{GrantKind, GrantSource};
    let user_of = |u: &str| {
        let u = u.to_string();
        async move { engine.user_by_email_or_id(&u).await.map(|user| user.id).map_err(|e| anyhow::anyhow!("{e}")) }
    };
    let now = Utc::now();
    let show = |w: &crate::server::service::wallet::WalletView| {
        println!(
            "balance {} · held {} · available {} ({})",
            w.balance.display_plain(),
            w.held.display_plain(),
            w.available.display_plain(),
            if w.prepaid { "prepaid plan" } else { "postpaid plan: the wallet is not spent" }
        );
        for g in &w.grants {
            let g = &g.grant;
            println!(
                "  {}  {}  {} {}, {} left, from {}{}, priority {}",
                g.id,
                g.status.as_str(),
                g.kind.as_str(),
                g.amount.display_plain(),
                g.remaining.display_plain(),
                g.source.as_str(),
                g.expires_at.map(|t| format!(", expires {}", t.to_rfc3339())).unwrap_or_default(),
                g.priority
            );
        }
    };
    match cmd {
        cli::WalletCommand::Grant { user, amount, kind, expires, priority, idempotency_key, note } => {
            let user_id = user_of(&user).await?;
            let amount = Nanos::parse_usd(&amount).map_err(|e| anyhow::anyhow!("--amount: {e}"))?;
            let grant = crate::server::service::wallet::NewGrant {
                amount,
                kind: match kind {
                    cli::GrantKindArg::Paid => GrantKind::Paid,
                    cli::GrantKindArg::Promotional => GrantKind::Promotional,
                },
                source: GrantSource::Admin,
                priority,
                effective_at: None,
                expires_at: expires.map(|t| t.with_timezone(&Utc)),
                idempotency_key: idempotency_key.unwrap_or_else(|| format!("cli-{}", uuid::Uuid::new_v4().simple())),
                note,
            };
            let (g, created) =
                engine.grant_credits(&user_id, grant, "cli", now).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            let verb = if created { "granted" } else { "already granted (same key)" };
            println!("{verb} {} {} as {}", g.grant.amount.display_plain(), g.grant.kind.as_str(), g.grant.id);
            show(&engine.wallet_view(&user_id, now).await.map_err(|e| anyhow::anyhow!("{e}"))?);
        }
        cli::WalletCommand::Show { user } => {
            let user_id = user_of(&user).await?;
            show(&engine.wallet_view(&user_id, now).await.map_err(|e| anyhow::anyhow!("{e}"))?);
        }
    }
    Ok(())
}

fn print_demo_logins() {
    println!("demo logins:");
    println!("  user:  {} / {}", seed::DEMO_EMAIL, seed::DEMO_PASSWORD);
    println!("  prepaid user: {} / {}", seed::PREPAID_EMAIL, seed::DEMO_PASSWORD);
    println!("  admin: {} / {}", seed::ADMIN_EMAIL, seed::ADMIN_PASSWORD);
}

fn read_password() -> anyhow::Result<String> {
    eprintln!("password (at least {} characters), then Enter:", auth::MIN_PASSWORD_LEN);
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).context("cannot read the password from stdin")?;
    let p = line.trim_end_matches(['\r', '\n']).to_string();
    if p.is_empty() {
        bail!("no password given; pass --password or type one");
    }
    Ok(p)
}

/// Connects and applies migrations; a failed migration stops here with the
/// reason.
pub async fn open_store(g: &GlobalArgs) -> anyhow::Result<Store> {
    let opts = StoreOptions {
        max_connections: g.db_max_connections.max(1),
        schema: g.db_schema.clone(),
        cache_ttl: std::time::Duration::from_millis(g.cache_ttl_ms),
        durability: g.durability,
        ..StoreOptions::default()
    };
    let store = Store::connect(&g.database_url, opts)
        .await
        .with_context(|| format!("cannot open the database at {}", redact_url(&g.database_url)))?;
    store.migrate().await.with_context(|| {
        format!("database migration failed on {}; nothing was started", redact_url(&g.database_url))
    })?;
    tracing::info!(backend = store.backend().name(), "database ready");
    Ok(store)
}

async fn serve(g: &GlobalArgs, args: ServeArgs) -> anyhow::Result<()> {
    // Before anything is read: a second server on this SQLite file stops here.
    let _serving = store::one_server::lock_for_serving(&g.database_url)?;
    let store = open_store(g).await?;
    // With several nodes on one PostgreSQL, hear each other's writes.
    store.start_live();
    let mut config = startup::engine_config(&args);
    let key_file = args.secret_key_file.clone().unwrap_or_else(|| secrets::default_key_file(&g.database_url));
    config.secrets = std::sync::Arc::new(secrets::load(args.secret_key.as_deref(), &key_file)?);
    let engine = Engine::new(store.clone(), config);
    // Webhook secrets stored before they were sealed are sealed now.
    let sealed =
        engine.seal_webhook_secrets().await.map_err(|e| anyhow::anyhow!("sealing webhook secrets failed: {e}"))?;
    if sealed > 0 {
        tracing::info!(sealed, "sealed webhook signing secrets that were stored in plain text");
    }
    if args.demo {
        let report =
            seed::seed_demo(&engine, Utc::now()).await.map_err(|e| anyhow::anyhow!("seeding the demo failed: {e}"))?;
        if report.seeded {
            tracing::info!(events = report.events, "seeded demo data");
        }
    }
    if !args.site_root.join("pkg").exists() {
        tracing::warn!(site_root = %args.site_root.display(), "no built site found; pages will load without scripts and styles (build with `cargo leptos build`)");
    }
    // Ended sessions, old sign-in attempts and spent holds are deleted now
    // and every ten minutes (by every instance; the deletes are idempotent).
    let pruner = engine.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(600));
        loop {
            every.tick().await;
            match pruner.prune_stale(Utc::now()).await {
                Ok((sessions, attempts, holds)) if sessions + attempts + holds > 0 => {
                    tracing::info!(
                        sessions,
                        attempts,
                        holds,
                        "pruned ended sessions, old sign-in attempts and spent holds"
                    );
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "pruning sessions failed; will retry"),
            }
        }
    });
    // Grants of credits about to lapse are announced (each once) every minute.
    let warner = engine.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(60));
        loop {
            every.tick().await;
            if let Err(e) = warner.warn_expiring_grants(Utc::now()).await {
                tracing::warn!(error = %e, "announcing expiring grants failed; will retry");
            }
        }
    });
    let state = startup::app_state(engine, &args);
    // Webhook deliveries due anywhere in the deployment: every node sends,
    // leases keep each delivery to one.
    tokio::spawn(state.webhooks.clone().run());
    // This node's request statistics join the deployment's every 5 s.
    let metrics = state.metrics.clone();
    tokio::spawn(metrics.clone().flush_every(store.clone(), Duration::from_secs(5)));
    let router = startup::build_router(state, Duration::from_secs(args.request_timeout_secs.max(1)));
    let listen = args.listen_addr();
    let listener = startup::listen(listen).await?;
    println!("Tally is running at http://{listen}");
    if args.demo {
        print_demo_logins();
    }
    let service = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
    // Open live streams end at shutdown, so in-flight requests can finish.
    let live = store.live().clone();
    let shutdown = async move {
        startup::shutdown_signal().await;
        live.close();
    };
    axum::serve(listener, service).with_graceful_shutdown(shutdown).await.context("server error")?;
    if let Err(e) = metrics.flush(&store, Utc::now()).await {
        tracing::warn!(error = %e, "the last request statistics could not be written");
    }
    store.close().await;
    tracing::info!("stopped cleanly");
    Ok(())
}

async fn simulate(g: &GlobalArgs, args: SimulateArgs) -> anyhow::Result<()> {
    let store = open_store(g).await?;
    let engine = Engine::new(store.clone(), Default::default());
    let mut sim = seed::Simulator::new(args.user.clone());
    let mut ticker = tokio::time::interval(Duration::from_millis(args.interval_ms.max(10)));
    let mut done = 0u64;
    println!("simulating usage for user `{}` every {} ms (Ctrl-C to stop)", args.user, args.interval_ms);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = startup::shutdown_signal() => break,
        }
        let now = Utc::now();
        let batch = sim.batch(now);
        let results =
            engine.record(batch.into_iter().map(Ok).collect(), now).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut out = std::io::stdout().lock();
        for r in &results {
            let line = match &r.error {
                Some(err) => writeln!(out, "{} rejected: {err}", r.id),
                None => writeln!(out, "{} {} {}", r.id, r.outcome.as_str(), r.cost.usd_string()),
            };
            // The reader went away (e.g. `| head`): stop quietly.
            if line.and_then(|()| out.flush()).is_err() {
                store.close().await;
                return Ok(());
            }
        }
        drop(out);
        if results.iter().all(|r| r.error.as_deref().is_some_and(|e| e.starts_with("unknown user"))) {
            bail!("user `{}` does not exist", args.user);
        }
        done += 1;
        if args.batches.is_some_and(|n| done >= n) {
            break;
        }
    }
    store.close().await;
    Ok(())
}
