//! Demo-like usage: the seeded generator behind the demo history, `tally
//! simulate` and the load seed.

use chrono::{DateTime, Duration, Utc};
use futures::StreamExt;

use super::*;
use crate::domain::event::{UsageEvent, UsageParts};
use crate::domain::identity::{Email, Role, UserId};
use crate::domain::period::BillingCycle;
use crate::domain::pricing::Count;
use crate::domain::provider::Provider;
use crate::domain::tags::Tags;
use crate::server::error::{AppError, AppResult};
use crate::server::service::Engine;
use crate::server::service::recording::Outcome;
use crate::server::service::subscriptions::NewUser;

/// A small seeded generator (splitmix64), so the demo is reproducible.
pub(super) struct Rng(pub(super) u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(super) fn below(&mut self, n: u64) -> u64 {
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
pub(super) fn all_recorded(results: Vec<crate::server::service::recording::EventResult>) -> AppResult<()> {
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
        parts[Count::Reasoning] = output * 3 / 5;
        if model == "gemini-2.5-pro" && n.is_multiple_of(10) {
            parts[Count::SearchQueries] = 1;
        }
    }
    if provider == "anthropic" && cached == 0 && input > 4_000 {
        parts[Count::CacheWrite] = input / 2;
    }
    parts
}

pub(super) fn demo_event(rng: &mut Rng, n: u64, at: DateTime<Utc>) -> UsageEvent {
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
        user_id: super::demo_user_id(),
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

/// The generator's seed.
pub(super) const DEMO_SEED: u64 = 0x7A11_DE30;

/// Generates live demo traffic for `tally simulate`.
pub struct Simulator {
    user_id: UserId,
    rng: Rng,
    n: u64,
}

impl Simulator {
    pub fn new(user_id: UserId) -> Simulator {
        let seed = Utc::now().timestamp_nanos_opt().unwrap_or_default() as u64;
        Simulator { user_id, rng: Rng(seed), n: 0 }
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
    let ids: Vec<UserId> = (1..=users).map(|i| UserId::parse(&format!("load-{i:05}")).expect("valid id")).collect();
    for id in &ids {
        let new = NewUser {
            id: Some(id.clone()),
            email: Email::parse(&format!("{id}@load.example")).expect("valid email"),
            name: id.to_string(),
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
