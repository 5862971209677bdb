//! Demo data: the seed documents' plans and pricing catalog, two logins, and
//! twelve months of realistic usage for the demo user.
//!
//! The history is not written into tables directly: it is replayed day by
//! day through [`Engine::record`] and [`Engine::change_plan`] with a
//! simulated clock, so rollovers, billing records, renewals and alerts are
//! the engine's own output and every demo number reconciles with the events.
//! The generator is seeded, so two demo databases made the same day match.

use chrono::{DateTime, Datelike, Duration, TimeZone, Utc};
use futures::StreamExt;

use super::error::{AppError, AppResult};
use super::service::Engine;
use super::service::recording::Outcome;
use super::service::subscriptions::NewUser;
use super::store::{catalog, users};
use crate::domain::event::{UsageEvent, UsageParts};
use crate::domain::identity::{Email, Role, UserId};
use crate::domain::limits::Limits;
use crate::domain::money::{Nanos, Price};
use crate::domain::period::{BillingCycle, add_months};
use crate::domain::plan::{Plan, Tier};
use crate::domain::pricing::{ANY_MODEL, ClassRates, ContextTier, PriceVersion, Rates};
use crate::domain::provider::{LimitKey, Provider};
use crate::domain::tags::Tags;

pub const DEMO_USER_ID: &str = "demo";
pub const DEMO_EMAIL: &str = "demo@example.com";
pub const DEMO_PASSWORD: &str = "demo-password";
pub const ADMIN_EMAIL: &str = "admin@example.com";
pub const ADMIN_PASSWORD: &str = "admin-password";

/// The four plans of the seed documents. Limits are per monthly usage
/// period; a missing key is unlimited.
pub fn demo_plans() -> Vec<Plan> {
    let limits = |rows: &[(&str, i64)]| rows.iter().fold(Limits::new(), |l, (k, v)| l.with(k, *v));
    let plan = |name: &str, tier, monthly, yearly, description: &str, features: &[&str], limits| Plan {
        id: 0,
        name: name.into(),
        tier,
        price_monthly: Nanos::from_usd(monthly),
        price_yearly: Nanos::from_usd(yearly),
        description: description.into(),
        features: features.iter().map(|s| s.to_string()).collect(),
        limits,
        archived: false,
    };
    vec![
        plan(
            "Free",
            Tier::Free,
            0,
            0,
            "Try the AI tools with a small monthly allowance.",
            &["Gemini and search APIs", "Basic usage dashboard", "Community support"],
            limits(&[
                ("gemini_calls", 100),
                ("openai_calls", 20),
                ("anthropic_calls", 20),
                ("mistral_calls", 50),
                ("tavily_calls", 20),
                ("serper_calls", 20),
                ("metaphor_calls", 10),
                ("firecrawl_calls", 10),
                ("stability_calls", 5),
                ("video_calls", 1),
                ("image_edit_calls", 5),
                ("gemini_tokens", 100_000),
                ("openai_tokens", 20_000),
                ("anthropic_tokens", 20_000),
                ("mistral_tokens", 50_000),
                ("monthly_cost", Nanos::from_usd(1).0),
            ]),
        ),
        plan(
            "Basic",
            Tier::Basic,
            29,
            290,
            "For individuals who write and research every week.",
            &["All LLM providers", "Web search and extraction", "Usage alerts by email", "Email support"],
            limits(&[
                ("gemini_calls", 1_000),
                ("openai_calls", 500),
                ("anthropic_calls", 500),
                ("mistral_calls", 500),
                ("tavily_calls", 200),
                ("serper_calls", 200),
                ("metaphor_calls", 100),
                ("firecrawl_calls", 100),
                ("stability_calls", 50),
                ("video_calls", 5),
                ("image_edit_calls", 50),
                ("gemini_tokens", 2_000_000),
                ("openai_tokens", 1_000_000),
                ("anthropic_tokens", 1_000_000),
                ("mistral_tokens", 1_000_000),
                ("monthly_cost", Nanos::from_usd(25).0),
            ]),
        ),
        plan(
            "Pro",
            Tier::Pro,
            79,
            790,
            "For professionals and small teams running AI workflows daily.",
            &["Everything in Basic", "Higher limits on every provider", "Image generation", "Priority support"],
            limits(&[
                ("gemini_calls", 5_000),
                ("openai_calls", 2_500),
                ("anthropic_calls", 2_500),
                ("mistral_calls", 2_500),
                ("tavily_calls", 300),
                ("serper_calls", 1_000),
                ("metaphor_calls", 500),
                ("firecrawl_calls", 500),
                ("stability_calls", 200),
                ("video_calls", 20),
                ("image_edit_calls", 200),
                ("gemini_tokens", 20_000_000),
                ("openai_tokens", 10_000_000),
                ("anthropic_tokens", 10_000_000),
                ("mistral_tokens", 10_000_000),
                ("monthly_cost", Nanos::from_usd(150).0),
            ]),
        ),
        plan(
            "Enterprise",
            Tier::Enterprise,
            199,
            1990,
            "Unlimited usage, billed at cost, for organisations.",
            &["Unlimited calls and tokens", "No monthly cost cap", "SSO and audit log", "Dedicated support"],
            Limits::new(),
        ),
    ]
}

struct PriceRow {
    provider: &'static str,
    model: &'static str,
    description: &'static str,
    input: Option<&'static str>,
    output: Option<&'static str>,
    cached: Option<&'static str>,
    unit: Option<(&'static str, &'static str)>,
}

const fn llm(
    provider: &'static str,
    model: &'static str,
    description: &'static str,
    input: &'static str,
    output: &'static str,
    cached: Option<&'static str>,
) -> PriceRow {
    PriceRow { provider, model, description, input: Some(input), output: Some(output), cached, unit: None }
}

const fn per_unit(
    provider: &'static str,
    description: &'static str,
    kind: &'static str,
    price: &'static str,
) -> PriceRow {
    PriceRow {
        provider,
        model: ANY_MODEL,
        description,
        input: None,
        output: None,
        cached: None,
        unit: Some((kind, price)),
    }
}

/// The demo catalog: the models of seeds 001 and 002 at their providers'
/// published prices (per 1M tokens, or per unit), as LiteLLM's price map
/// states them where it still lists the model. Hugging Face bills compute
/// time, not tokens, so its row stays an estimate, and says so.
const DEMO_PRICES: &[PriceRow] = &[
    llm("gemini", "gemini-2.0-flash-lite", "Gemini 2.0 Flash Lite", "0.075", "0.30", None),
    llm("gemini", "gemini-2.5-flash", "Gemini 2.5 Flash", "0.30", "2.50", Some("0.03")),
    llm(
        "gemini",
        "gemini-2.5-pro",
        "Gemini 2.5 Pro (above 200k input tokens: $2.50 / $15)",
        "1.25",
        "10.00",
        Some("0.125"),
    ),
    llm("gemini", "gemini-pro", "Gemini 1.0 Pro (legacy)", "0.50", "1.50", None),
    llm("openai", "gpt-4", "GPT-4", "30.00", "60.00", None),
    llm("openai", "gpt-4o", "GPT-4o", "2.50", "10.00", Some("1.25")),
    llm("openai", "gpt-4o-mini", "GPT-4o mini", "0.15", "0.60", Some("0.075")),
    llm("openai", "gpt-3.5-turbo", "GPT-3.5 Turbo", "0.50", "1.50", None),
    llm("anthropic", "claude-3", "Claude 3 (priced as Claude 3 Opus)", "15.00", "75.00", Some("1.50")),
    llm("anthropic", "claude-3-5-sonnet", "Claude 3.5 Sonnet", "3.00", "15.00", Some("0.30")),
    llm("anthropic", "claude-3-haiku", "Claude 3 Haiku", "0.25", "1.25", Some("0.03")),
    llm("mistral", "mistral-7b", "Mistral 7B (open-mistral-7b)", "0.25", "0.25", None),
    llm("mistral", "mistral-large", "Mistral Large (mistral-large-latest)", "0.50", "1.50", Some("0.05")),
    llm("huggingface", "*", "Hugging Face Inference (estimate: it bills compute time)", "0.10", "0.10", None),
    per_unit("tavily", "Tavily Search (one credit, pay as you go)", "search", "0.008"),
    per_unit("serper", "Serper Google Search", "search", "0.001"),
    per_unit("metaphor", "Exa (Metaphor) Search, 1-25 results", "search", "0.005"),
    per_unit("firecrawl", "Firecrawl scrape (one credit, Standard plan)", "page", "0.00083"),
    per_unit("stability", "Stability AI image generation (estimate)", "image", "0.04"),
];

/// What the demo's rows carry beyond input, output and cache reads: cache
/// writes, long-context tiers and web-search queries as published.
fn extras(row: &PriceRow, rates: &mut Rates) {
    let p = |s: &str| Price::parse(s).expect("demo prices are valid");
    match (row.provider, row.model) {
        ("gemini", "gemini-2.5-pro") => {
            rates.base.per_search_query = Some(p("0.035"));
            rates.tiers = vec![ContextTier {
                above_input_tokens: 200_000,
                rates: ClassRates {
                    input_per_million: Some(p("2.50")),
                    output_per_million: Some(p("15")),
                    cached_input_per_million: Some(p("0.25")),
                    ..ClassRates::default()
                },
            }];
        }
        ("gemini", "gemini-2.5-flash") => rates.base.per_search_query = Some(p("0.035")),
        ("anthropic", "claude-3") => rates.base.cache_write_per_million = Some(p("18.75")),
        ("anthropic", "claude-3-5-sonnet") => {
            rates.base.cache_write_per_million = Some(p("3.75"));
            rates.base.cache_write_1h_per_million = Some(p("6"));
        }
        ("anthropic", "claude-3-haiku") => rates.base.cache_write_per_million = Some(p("0.30")),
        _ => {}
    }
}

fn price(s: Option<&str>) -> Option<Price> {
    s.map(|v| Price::parse(v).expect("demo prices are valid"))
}

fn version_of(row: &PriceRow, from: DateTime<Utc>) -> PriceVersion {
    let unit = |kind: &str| row.unit.filter(|(k, _)| *k == kind).map(|(_, p)| price(Some(p)).expect("valid"));
    let mut v = PriceVersion {
        id: 0,
        provider: Provider::parse(row.provider).expect("demo providers are valid"),
        model: row.model.into(),
        effective_from: from,
        rates: Rates::from(ClassRates {
            input_per_million: price(row.input),
            output_per_million: price(row.output),
            cached_input_per_million: price(row.cached),
            per_request: unit("request"),
            per_search: unit("search"),
            per_image: unit("image"),
            per_page: unit("page"),
            ..ClassRates::default()
        }),
        description: row.description.into(),
        max_output_tokens: demo_output_cap(row.model),
    };
    extras(row, &mut v.rates);
    v
}

/// The providers' published output caps of the demo models (tokens one
/// call can produce).
fn demo_output_cap(model: &str) -> Option<u64> {
    Some(match model {
        "gemini-2.5-flash" | "gemini-2.5-pro" => 65_536,
        "gemini-2.0-flash-lite" | "gpt-4" | "claude-3-5-sonnet" => 8_192,
        "gpt-4o" | "gpt-4o-mini" => 16_384,
        "gemini-pro" => 2_048,
        "gpt-3.5-turbo" | "claude-3" | "claude-3-haiku" => 4_096,
        _ => return None,
    })
}

/// A small seeded generator (splitmix64), so the demo is reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// Roughly log-uniform in [lo, hi).
    fn log_between(&mut self, lo: u64, hi: u64) -> u64 {
        let (l, h) = ((lo as f64).ln(), (hi as f64).ln());
        let f = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        (l + (h - l) * f).exp() as u64
    }

    fn pick<'a, T>(&mut self, weighted: &'a [(T, u64)]) -> &'a T {
        let total: u64 = weighted.iter().map(|(_, w)| w).sum();
        let mut x = self.below(total);
        for (v, w) in weighted {
            if x < *w {
                return v;
            }
            x -= w;
        }
        &weighted[weighted.len() - 1].0
    }
}

/// Which provider and models the demo user calls, and how often.
/// A provider and its weighted models.
type ProviderMix = (&'static str, &'static [(&'static str, u64)]);

const MIX: &[(ProviderMix, u64)] = &[
    (("gemini", &[("gemini-2.5-flash", 50), ("gemini-2.0-flash-lite", 30), ("gemini-2.5-pro", 20)]), 44),
    (("openai", &[("gpt-4o-mini", 55), ("gpt-4o", 35), ("gpt-4", 10)]), 15),
    (("anthropic", &[("claude-3-5-sonnet", 70), ("claude-3-haiku", 30)]), 9),
    (("mistral", &[("mistral-large", 40), ("mistral-7b", 60)]), 5),
    (("huggingface", &[("meta-llama/Llama-3.1-8B-Instruct", 100)]), 2),
    (("tavily", &[("search", 100)]), 9),
    (("serper", &[("search", 100)]), 6),
    (("metaphor", &[("search", 100)]), 4),
    (("firecrawl", &[("scrape", 100)]), 4),
    (("stability", &[("stable-diffusion-xl", 100)]), 2),
];

/// The demo must record every event it makes: a rejection is a bug in the
/// demo, never something to skip quietly.
fn all_recorded(results: Vec<crate::server::service::recording::EventResult>) -> AppResult<()> {
    match results.into_iter().find(|r| r.error.is_some()) {
        Some(r) => Err(AppError::Invalid(format!("demo event {} was rejected: {}", r.id, r.error.unwrap_or_default()))),
        None => Ok(()),
    }
}

/// The demo's usage beyond plain tokens, derived from the event (no extra
/// random draws, so the rest of the demo stays as it was): Gemini 2.5
/// thinks (reasoning is part of the output), every tenth 2.5 Pro call is
/// grounded with a web search, and Claude writes what it did not read from
/// cache to the 5-minute cache on long prompts.
fn demo_parts(provider: &str, model: &str, n: u64, input: u64, cached: u64, output: u64) -> UsageParts {
    let mut parts = UsageParts::default();
    if model.starts_with("gemini-2.5") {
        parts.tokens_reasoning = output * 3 / 5;
        if model == "gemini-2.5-pro" && n.is_multiple_of(10) {
            parts.search_queries = 1;
        }
    }
    if provider == "anthropic" && cached == 0 && input > 4_000 {
        parts.tokens_cache_write = input / 2;
    }
    parts
}

fn demo_event(rng: &mut Rng, n: u64, at: DateTime<Utc>) -> UsageEvent {
    let (provider, models) = *rng.pick(MIX);
    let model = *rng.pick(models);
    let llm = matches!(provider, "gemini" | "openai" | "anthropic" | "mistral" | "huggingface");
    let (tokens_input, tokens_output, cached) = if llm {
        let input = rng.log_between(400, 24_000);
        let cached = if rng.chance(25) { input * rng.below(60) / 100 } else { 0 };
        (input, rng.log_between(80, 3_000), cached)
    } else {
        (0, 0, 0)
    };
    let failed = rng.chance(2);
    let (endpoint, operation) = match provider {
        "tavily" | "serper" | "metaphor" => ("/search", "search"),
        "firecrawl" => ("/scrape", "scrape"),
        "stability" => ("/generate", "image_generation"),
        _ => ("/generate", "text_generation"),
    };
    UsageEvent {
        id: format!("demo-{n:07}"),
        user_id: DEMO_USER_ID.into(),
        provider: Provider::parse(provider).expect("valid"),
        model: if llm || provider == "stability" { Some(model.into()) } else { None },
        operation_type: Some(operation.into()),
        endpoint: Some(endpoint.into()),
        method: Some("POST".into()),
        actual_provider_name: None,
        tokens_input,
        tokens_output: if failed { 0 } else { tokens_output },
        tokens_cached_input: cached,
        parts: demo_parts(provider, model, n, tokens_input, cached, if failed { 0 } else { tokens_output }),
        units: if provider == "firecrawl" { Some(1 + rng.below(3)) } else { None },
        response_time_ms: Some(if llm { rng.log_between(400, 9_000) } else { rng.log_between(150, 2_500) }),
        status_code: if failed { *rng.pick(&[(500u16, 2), (429, 2), (503, 1)]) } else { 200 },
        error_message: failed.then(|| "upstream provider error".to_string()),
        timestamp: at,
        reservation_id: None,
        retry_count: if failed { 1 } else { 0 },
        estimated: false,
        tags: demo_tags(provider, n),
    }
}

/// Attribution the demo product sends: a project on nine calls in ten (so
/// the dashboard shows an untagged share too), and a feature by API kind.
fn demo_tags(provider: &str, n: u64) -> Tags {
    let mut t = std::collections::BTreeMap::new();
    if !n.is_multiple_of(10) {
        t.insert("project".to_string(), ["blog", "shop", "support"][(n % 7 % 3) as usize].to_string());
        let feature = match provider {
            "tavily" | "serper" | "metaphor" | "firecrawl" => "research",
            "stability" => "images",
            _ if n.is_multiple_of(2) => "outline",
            _ => "draft",
        };
        t.insert("feature".to_string(), feature.to_string());
    }
    Tags(t)
}

/// What `seed_demo` did.
#[derive(Debug, Default)]
pub struct SeedReport {
    pub seeded: bool,
    pub events: usize,
}

/// How long an instance waits for another one's demo seed to finish.
const SEED_WAIT: std::time::Duration = std::time::Duration::from_secs(600);

/// The engine, judging no spend spikes: a seed writes months of simulated
/// history in seconds, and a spike judged mid-seed would depend on how far
/// the seed had got (the demo must come out the same every time).
fn without_spike_checks(engine: &Engine) -> Engine {
    let mut e = engine.clone();
    e.config.spike_multiple = 0;
    e
}

/// Seeds the demo on an empty database; does nothing if any user exists.
///
/// Several instances may start together on one empty database: the first
/// to claim the `seed_runs` row seeds, the others wait until it is done, so
/// the demo is seeded exactly once. A seed that never finished (its instance
/// died) is reported instead of serving half a demo.
pub async fn seed_demo(engine: &Engine, now: DateTime<Utc>) -> AppResult<SeedReport> {
    let engine = &without_spike_checks(engine);
    let mut conn = engine.store.pool().acquire().await?;
    match seed_run_state(&mut conn).await?.map(|(state, _)| state) {
        Some(state) if state == "done" => return Ok(SeedReport::default()),
        Some(_) => {
            drop(conn);
            return wait_for_other_seed(engine).await;
        }
        None => {}
    }
    if users::count_users(&mut conn).await? > 0 {
        return Ok(SeedReport::default());
    }
    let claimed = sqlx::query(
        "INSERT INTO seed_runs (name, state, started_at) VALUES ('demo', 'running', $1) ON CONFLICT (name) DO NOTHING",
    )
    .bind(crate::server::store::ms(Utc::now()))
    .execute(&mut *conn)
    .await
    .map_err(AppError::from)?
    .rows_affected()
        == 1;
    if !claimed {
        drop(conn);
        return wait_for_other_seed(engine).await;
    }
    drop(conn);
    let report = seed_claimed(engine, now).await?;
    let mut conn = engine.store.pool().acquire().await?;
    sqlx::query("UPDATE seed_runs SET state = 'done', finished_at = $1 WHERE name = 'demo'")
        .bind(crate::server::store::ms(Utc::now()))
        .execute(&mut *conn)
        .await
        .map_err(AppError::from)?;
    Ok(report)
}

/// The demo seed's state (`running` or `done`) and when it started (ms).
async fn seed_run_state(conn: &mut sqlx::AnyConnection) -> AppResult<Option<(String, i64)>> {
    use sqlx::Row;
    let row = sqlx::query("SELECT state, started_at FROM seed_runs WHERE name = 'demo'")
        .fetch_optional(conn)
        .await
        .map_err(AppError::from)?;
    row.map(|r| Ok((r.try_get::<String, _>("state")?, r.try_get::<i64, _>("started_at")?)))
        .transpose()
        .map_err(|e: sqlx::Error| AppError::from(e))
}

/// Another instance claimed the seed: wait until it is done, or until it
/// has run longer than any seed takes (its instance died).
async fn wait_for_other_seed(engine: &Engine) -> AppResult<SeedReport> {
    loop {
        let mut conn = engine.store.pool().acquire().await?;
        let state = seed_run_state(&mut conn).await?;
        drop(conn);
        let started = match state {
            Some((s, _)) if s == "done" => return Ok(SeedReport::default()),
            Some((_, started)) => started,
            None => 0,
        };
        if crate::server::store::ms(Utc::now()) - started > SEED_WAIT.as_millis() as i64 {
            return Err(AppError::Invalid(
                "another instance started seeding the demo and has not finished; if it died, start again from an \
                 empty database"
                    .into(),
            ));
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

/// The demo seed proper, once this instance holds the claim.
async fn seed_claimed(engine: &Engine, now: DateTime<Utc>) -> AppResult<SeedReport> {
    // History starts on the first of the month, twelve months back.
    let month_start = Utc.with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0).single().ok_or(AppError::Internal)?;
    let start = add_months(month_start, -12);
    let catalog_from = start - Duration::days(30);

    let mut tx = engine.store.begin().await?;
    let mut plan_ids = Vec::new();
    for p in demo_plans() {
        plan_ids.push((p.tier, catalog::insert_plan(&mut tx, &p, catalog_from).await?));
    }
    for row in DEMO_PRICES {
        catalog::insert_price_version(&mut tx, &version_of(row, catalog_from), Some("seed"), catalog_from).await?;
    }
    // A mid-history price change, so the catalog shows versioning at work.
    let flash_change = add_months(start, 8);
    let flash = llm("gemini", "gemini-2.5-flash", "Gemini 2.5 Flash (GA pricing)", "0.30", "2.50", Some("0.075"));
    catalog::insert_price_version(&mut tx, &version_of(&flash, flash_change), Some("seed"), catalog_from).await?;
    tx.commit().await?;

    let plan = |tier| plan_ids.iter().find(|(t, _)| *t == tier).map(|(_, id)| *id).expect("seeded plan");
    let hash = |p: &str| super::auth::hash_password(p).map(|h| h.0).map_err(|_| AppError::Internal);
    engine
        .create_user(
            NewUser {
                id: Some(UserId::parse("admin").expect("valid id")),
                email: Email::parse(ADMIN_EMAIL).expect("valid email"),
                name: "Ada Admin".into(),
                role: Role::Admin,
                password_hash: Some(hash(ADMIN_PASSWORD)?),
                plan: Some((plan(Tier::Enterprise), BillingCycle::Monthly)),
                timezone: None,
            },
            start,
        )
        .await?;
    engine
        .create_user(
            NewUser {
                id: Some(UserId::parse(DEMO_USER_ID).expect("valid id")),
                email: Email::parse(DEMO_EMAIL).expect("valid email"),
                name: "Demo User".into(),
                role: Role::User,
                password_hash: Some(hash(DEMO_PASSWORD)?),
                plan: Some((plan(Tier::Basic), BillingCycle::Monthly)),
                timezone: None,
            },
            start,
        )
        .await?;

    // Replay the history one day at a time, usage growing over the year.
    let upgrade_at = add_months(start, 7) + Duration::days(11) + Duration::hours(10);
    let mut rng = Rng(DEMO_SEED);
    let mut n = 0u64;
    let mut day = start;
    let total_days = (now - start).num_days().max(1) as u64;
    while day < now {
        let day_end = (day + Duration::days(1)).min(now);
        let progress = (day - start).num_days() as u64 * 100 / total_days;
        let weekend = matches!(day.weekday(), chrono::Weekday::Sat | chrono::Weekday::Sun);
        let base = 8 + progress * 22 / 100;
        let count = if weekend { base / 3 } else { base } + rng.below(6);
        let span = (day_end - day).num_seconds().max(1) as u64;
        let mut events: Vec<UsageEvent> = Vec::new();
        for _ in 0..count {
            n += 1;
            let at = day + Duration::seconds(rng.below(span) as i64);
            events.push(demo_event(&mut rng, n, at));
        }
        // Some calls of a model launched last week that nobody priced yet.
        if (now - day).num_days() == 3 {
            for k in 0..3 {
                n += 1;
                let mut e = demo_event(&mut rng, n, day + Duration::hours(9 + k));
                e.provider = Provider::parse("openai").expect("valid");
                e.model = Some("o4-preview".into());
                (e.tokens_input, e.tokens_output, e.tokens_cached_input) = (2_000, 500, 0);
                (e.status_code, e.error_message) = (200, None);
                events.push(e);
            }
        }
        events.sort_by_key(|e| e.timestamp);
        if (day..day_end).contains(&upgrade_at) {
            // Each event is recorded under the plan it happened on.
            let (before, after): (Vec<_>, Vec<_>) = events.into_iter().partition(|e| e.timestamp < upgrade_at);
            all_recorded(engine.record(before.into_iter().map(Ok).collect(), upgrade_at).await?)?;
            engine.change_plan(DEMO_USER_ID, plan(Tier::Pro), BillingCycle::Monthly, "seed", upgrade_at).await?;
            all_recorded(engine.record(after.into_iter().map(Ok).collect(), day_end).await?)?;
        } else {
            all_recorded(engine.record(events.into_iter().map(Ok).collect(), day_end).await?)?;
        }
        day = day_end;
    }
    // A research burst this week: enough searches to take the demo user past
    // 90% of the plan's Tavily limit, so the dashboard shows live alerts.
    let view = engine.period_view(DEMO_USER_ID, now).await?;
    let tavily = Provider::parse("tavily").expect("valid");
    let tavily_limit = view.plan.as_ref().and_then(|p| p.limits.get(&LimitKey::Calls(tavily.clone())));
    if let Some(limit) = tavily_limit {
        let used = view.usage.provider(&tavily).calls;
        let window = (now - view.period.start).num_seconds().clamp(1, 36 * 3600) as u64;
        let mut burst: Vec<UsageEvent> = (used..limit * 92 / 100)
            .map(|_| {
                n += 1;
                let at = now - Duration::seconds(1 + rng.below(window) as i64);
                let mut e = demo_event(&mut rng, n, at);
                e.provider = tavily.clone();
                (e.model, e.tokens_input, e.tokens_output, e.tokens_cached_input, e.units) = (None, 0, 0, 0, None);
                e.parts = UsageParts::default();
                (e.status_code, e.error_message, e.retry_count) = (200, None, 0);
                (e.operation_type, e.endpoint) = (Some("search".into()), Some("/search".into()));
                e
            })
            .collect();
        burst.sort_by_key(|e| e.timestamp);
        all_recorded(engine.record(burst.into_iter().map(Ok).collect(), now).await?)?;
    }
    Ok(SeedReport { seeded: true, events: n as usize })
}

/// The generator's seed.
const DEMO_SEED: u64 = 0x7A11_DE30;

/// Generates live demo traffic for `tally simulate`.
pub struct Simulator {
    user_id: String,
    rng: Rng,
    n: u64,
}

impl Simulator {
    pub fn new(user_id: &str) -> Simulator {
        let seed = Utc::now().timestamp_nanos_opt().unwrap_or_default() as u64;
        Simulator { user_id: user_id.to_string(), rng: Rng(seed), n: 0 }
    }

    /// One to three events happening at `now`, with ids unique to this run.
    pub fn batch(&mut self, now: DateTime<Utc>) -> Vec<UsageEvent> {
        let count = 1 + self.rng.below(3);
        (0..count)
            .map(|_| {
                self.n += 1;
                let mut e = demo_event(&mut self.rng, self.n, now);
                e.id = format!("sim-{}-{}", now.timestamp_millis(), self.n);
                e.user_id = self.user_id.clone();
                e
            })
            .collect()
    }
}

/// What a load seed wrote.
#[derive(Clone, Copy, Debug, Default)]
pub struct LoadReport {
    pub users: usize,
    /// Events newly recorded (a rerun finds them all already there).
    pub events: u64,
    pub already_there: u64,
    pub elapsed: std::time::Duration,
}

/// Events a load-seed batch holds (one `record` call, one transaction).
pub const LOAD_BATCH: usize = 1_000;
/// Events generated (and held in memory) at a time by the load seed.
const LOAD_CHUNK_MAX: usize = 50_000;
/// Load batches recorded at once.
const LOAD_IN_FLIGHT: usize = 4;

/// Bulk usage for measuring at scale: `users` users (`load-00001`, ...) on
/// the demo's Pro plan, subscribed `days` days before `now`, and `events`
/// demo-like events spread evenly over those days across the users. Every
/// event goes through the real recording engine (pricing, rollups, alerts,
/// period rollover, with the clock at each batch's last event), so the
/// store holds exactly what production traffic would leave. Seeds the demo
/// catalog first when the store is empty. Idempotent per event id: running
/// it again with the same numbers adds nothing.
pub async fn seed_load(
    engine: &Engine,
    events: u64,
    users: usize,
    days: i64,
    now: DateTime<Utc>,
    mut progress: impl FnMut(u64),
) -> AppResult<LoadReport> {
    if users == 0 || days <= 0 {
        return Err(AppError::Invalid("--users and --days must be at least 1".into()));
    }
    let engine = &without_spike_checks(engine);
    let started = std::time::Instant::now();
    let start = now - Duration::days(days);
    let catalog = engine.catalog_snapshot().await?;
    let catalog = if catalog.plans.is_empty() {
        seed_demo(engine, start).await?;
        engine.catalog_snapshot().await?
    } else {
        catalog
    };
    let plan = catalog
        .plans
        .iter()
        .filter(|p| !p.archived)
        .max_by_key(|p| p.price_monthly)
        .ok_or_else(|| AppError::Invalid("the catalog has no active plan to put load users on".into()))?
        .id;
    let ids: Vec<String> = (1..=users).map(|i| format!("load-{i:05}")).collect();
    for id in &ids {
        let new = NewUser {
            id: Some(UserId::parse(id).expect("valid id")),
            email: Email::parse(&format!("{id}@load.example")).expect("valid email"),
            name: id.clone(),
            role: Role::User,
            password_hash: None,
            plan: Some((plan, BillingCycle::Monthly)),
            timezone: None,
        };
        match engine.create_user(new, start).await {
            Ok(_) | Err(AppError::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
    }
    // The load users share one anchor (created together): read it back.
    let anchor = engine.current_subscription(&ids[0], start).await?.1.anchor();
    let span_ms = (now - start).num_milliseconds().max(1) as u64;
    let mut rng = Rng(0x10AD);
    let mut n = 0u64;
    let (mut recorded, mut already_there) = (0u64, 0u64);
    // A stretch of the timeline at a time, split per user, so each request
    // to the engine is one user's batch (its fast path: a few statements
    // for the whole batch), several in flight to share SQLite group
    // commits. A stretch never crosses a usage period (the load users share
    // one anchor), and each batch is recorded with the clock at its own last
    // event, so no event is recorded after its period has rolled over.
    let chunk_len = (LOAD_BATCH * users).min(LOAD_CHUNK_MAX) as u64;
    let at = |i: u64| start + Duration::milliseconds((i * span_ms / events) as i64);
    while n < events {
        let period_end = crate::domain::period::usage_period(anchor, at(n)).end;
        let mut end = n + 1;
        while end < events && end - n < chunk_len && at(end) < period_end {
            end += 1;
        }
        let mut by_user: Vec<Vec<UsageEvent>> = vec![Vec::new(); users];
        for i in n..end {
            let mut e = demo_event(&mut rng, i, at(i));
            e.id = format!("load-{i:010}");
            // Untagged: the load measures the ledger, as issue 10 set it.
            e.tags = Tags::default();
            let u = (i % users as u64) as usize;
            e.user_id = ids[u].clone();
            by_user[u].push(e);
        }
        // At most LOAD_BATCH events a user in a stretch: one batch each.
        let mut results = futures::stream::iter(by_user.into_iter().filter(|b| !b.is_empty()))
            .map(|b| {
                let clock = b.last().map_or(now, |e| e.timestamp);
                engine.record(b.into_iter().map(Ok).collect(), clock)
            })
            .buffer_unordered(LOAD_IN_FLIGHT);
        while let Some(outcomes) = results.next().await {
            for r in outcomes? {
                match r.outcome {
                    Outcome::Accepted => recorded += 1,
                    Outcome::Duplicate => already_there += 1,
                    Outcome::Rejected => {
                        return Err(AppError::Invalid(format!("load event {} was rejected: {:?}", r.id, r.error)));
                    }
                }
            }
        }
        n = end;
        progress(n);
    }
    Ok(LoadReport { users, events: recorded, already_there, elapsed: started.elapsed() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::both_stores;
    use crate::server::store::Store;

    /// The load seed records every event once, through the engine (so the
    /// rollups, which every read uses, agree with the events), and a rerun
    /// adds nothing.
    async fn load_seed_records_each_event_once(store: Store) {
        let engine = Engine::new(store.clone(), Default::default());
        let now = Utc::now();
        let first = seed_load(&engine, 2_500, 7, 40, now, |_| ()).await.unwrap();
        assert_eq!((first.events, first.already_there, first.users), (2_500, 0, 7));
        let again = seed_load(&engine, 2_500, 7, 40, now, |_| ()).await.unwrap();
        assert_eq!((again.events, again.already_there), (0, 2_500));
        let mut conn = store.pool().acquire().await.unwrap();
        let events: i64 =
            sqlx::query_scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM usage_events WHERE user_id LIKE 'load-%'")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
        let rolled: i64 = sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(calls), 0) AS BIGINT) FROM usage_rollups WHERE user_id LIKE 'load-%'",
        )
        .fetch_one(&mut *conn)
        .await
        .unwrap();
        assert_eq!((events, rolled), (2_500, 2_500));
        // 40 days cross a period end: no batch was recorded after its
        // period had rolled over.
        let late: i64 = sqlx::query_scalar(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM usage_events WHERE late = 1 AND user_id LIKE 'load-%'",
        )
        .fetch_one(&mut *conn)
        .await
        .unwrap();
        assert_eq!(late, 0);
        let bad = seed_load(&engine, 10, 0, 40, now, |_| ()).await;
        assert!(matches!(bad, Err(AppError::Invalid(_))));
    }
    both_stores!(load_seed_records_each_event_once, load_seed_records_each_event_once);
}
