//! The billing dashboard: overview with limit bars, cost by provider with a
//! drill-down, usage trends, alerts and system health, refreshed every
//! `refresh_secs` (30 by default) while the tab is visible.
//!
//! Every control is a link that changes the query string (`months`,
//! `metric`, `provider`, `alerts`), so the page works the same with
//! JavaScript off; with it on, the router keeps the page and only the data
//! or the chart changes. Numbers render on the server; charts after
//! hydration, with their data also as tables.

use leptos::prelude::*;
use leptos_router::hooks::{use_navigate, use_query_map};

use crate::api::dashboard::{Dashboard, MarkAlertRead, MarkAllAlertsRead, get_dashboard};
use crate::api::insights::{AdviceView, get_advice};
use crate::api::wallet::{WalletCard, get_wallet};
use crate::domain::money::{Nanos, format_count};
use crate::ui::components::charts::{ChartEvent, EChart, Metric, PALETTE, cost_pie_chart, usage_trend_chart};
use crate::ui::components::layout::RequireUser;
use crate::ui::pages::insights::{CostGroups, SaveMoney};

const CARD: &str = "rounded-xl border border-slate-200 bg-white p-4 shadow-sm sm:p-6";

#[component]
pub fn DashboardPage() -> impl IntoView {
    view! { <RequireUser><DashboardView/></RequireUser> }
}

/// The query string with `key` set to `value` (other keys kept).
fn with_param(query: &leptos_router::params::ParamsMap, key: &str, value: &str) -> String {
    let mut pairs: Vec<(String, String)> =
        query.clone().into_iter().map(|(k, v)| (k.to_string(), v)).filter(|(k, _)| k != key).collect();
    if !value.is_empty() {
        pairs.push((key.to_string(), value.to_string()));
    }
    let qs: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={}", crate::domain::links::urlencode(v))).collect();
    format!("/dashboard?{}", qs.join("&"))
}

#[component]
fn DashboardView() -> impl IntoView {
    let query = use_query_map();
    let tick = RwSignal::new(0u32);
    let mark = ServerAction::<MarkAlertRead>::new();
    let mark_all = ServerAction::<MarkAllAlertsRead>::new();
    let months = move || {
        query.read().get("months").and_then(|m| m.parse::<u32>().ok()).filter(|m| matches!(m, 3 | 6 | 12)).unwrap_or(6)
    };
    let data = Resource::new(
        move || (query.read().get("user"), months(), tick.get(), mark.version().get(), mark_all.version().get()),
        |(user, months, ..)| get_dashboard(user, months),
    );
    // Advice is read once per visit, not on every refresh.
    let advice = Resource::new(move || query.read().get("user"), get_advice);
    let wallet = Resource::new(move || (query.read().get("user"), tick.get()), |(u, _)| get_wallet(u));
    let refresh_secs = RwSignal::new(30u32);
    // Whether the live stream is open (else the timer refresh carries on).
    let live = RwSignal::new(false);
    #[cfg(feature = "hydrate")]
    {
        let url = match query.read_untracked().get("user") {
            Some(u) => format!("/api/stream?user_id={}", crate::domain::links::urlencode(&u)),
            None => "/api/stream".to_string(),
        };
        // Dropped, and so closed, when the page is left.
        let conn = live_stream::open(&url, tick, live);
        StoredValue::new_local(conn);
    }
    // The totals last shown, so a refresh can flash the ones that changed.
    let shown = StoredValue::new(None::<[i64; 3]>);
    #[cfg(feature = "hydrate")]
    {
        // Refresh on a timer while the tab is visible; the interval comes
        // from the server (30 s unless configured).
        use leptos::leptos_dom::helpers::set_interval_with_handle;
        let handle = StoredValue::new_local(None::<leptos::leptos_dom::helpers::IntervalHandle>);
        Effect::new(move |_| {
            let secs = refresh_secs.get().max(1);
            if let Some(h) = handle.get_value() {
                h.clear();
            }
            let h = set_interval_with_handle(
                move || {
                    let visible = document().visibility_state() == web_sys::VisibilityState::Visible;
                    if visible {
                        tick.update(|t| *t += 1);
                    }
                },
                std::time::Duration::from_secs(secs as u64),
            )
            .ok();
            handle.set_value(h);
        });
    }
    view! {
        <Transition fallback=|| view! { <Skeleton/> }>
            {move || Suspend::new(async move {
                match data.await {
                    Ok(Some(d)) => {
                        refresh_secs.set(d.refresh_secs);
                        let now = [d.total_cost_nanos, d.total_calls, d.total_tokens];
                        let before = shown.get_value();
                        shown.set_value(Some(now));
                        let changed = before.map_or([false; 3], |b| [b[0] != now[0], b[1] != now[1], b[2] != now[2]]);
                        view! { <Loaded d tick mark mark_all changed live advice wallet/> }.into_any()
                    }
                    Ok(None) => view! { <p>"Sign in to see your usage."</p> }.into_any(),
                    Err(e) => view! {
                        <section role="alert" class="rounded-xl border border-red-200 bg-red-50 p-6 text-red-800">
                            <h1 class="font-semibold">"Could not load your usage"</h1>
                            <p class="mt-1 text-sm">{e.to_string()}</p>
                            <button type="button" class="mt-3 rounded border border-red-300 px-3 py-1 text-sm" on:click=move |_| tick.update(|t| *t += 1)>"Retry"</button>
                        </section>
                    }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn Skeleton() -> AnyView {
    view! {
        <div class="space-y-4" role="status" aria-busy="true" aria-label="Loading your usage">
            <div class="h-40 animate-pulse rounded-xl bg-slate-200"></div>
            <div class="grid gap-4 lg:grid-cols-2">
                <div class="h-72 animate-pulse rounded-xl bg-slate-200"></div>
                <div class="h-72 animate-pulse rounded-xl bg-slate-200"></div>
            </div>
        </div>
    }
    .into_any()
}

/// The subscription's state when it is not simply active.
fn subscription_badge(status: &str, cancels_on: Option<&str>) -> Option<AnyView> {
    let text = match (status, cancels_on) {
        ("active", None) => return None,
        ("active", Some(day)) => format!("Cancels on {day}"),
        ("paused", _) => "Paused: nothing is admitted".to_string(),
        ("cancelled", _) => "Cancelled".to_string(),
        (other, _) => other.to_string(),
    };
    Some(
        view! {
            <span data-testid="subscription-status" data-status=status.to_string() class="ml-2 rounded-full bg-amber-100 px-2 py-0.5 align-middle text-xs font-medium text-amber-900">{text}</span>
        }
        .into_any(),
    )
}

fn status_badge(status: &str) -> (&'static str, &'static str) {
    match status {
        "limit_reached" => ("Limit reached", "bg-red-100 text-red-800 ring-red-300"),
        "warning" => ("Warning", "bg-amber-100 text-amber-900 ring-amber-300"),
        _ => ("Active", "bg-green-100 text-green-800 ring-green-300"),
    }
}

fn bar_color(status: &str) -> &'static str {
    match status {
        "limit_reached" => "bg-red-600",
        "warning" => "bg-amber-500",
        _ => "bg-green-600",
    }
}

#[component]
fn Loaded(
    d: Dashboard,
    tick: RwSignal<u32>,
    mark: ServerAction<MarkAlertRead>,
    mark_all: ServerAction<MarkAllAlertsRead>,
    /// Which of cost, calls and tokens changed since the last refresh.
    changed: [bool; 3],
    live: RwSignal<bool>,
    advice: Resource<Result<AdviceView, ServerFnError>>,
    wallet: Resource<Result<Option<WalletCard>, ServerFnError>>,
) -> AnyView {
    let (label, badge) = status_badge(&d.status);
    let flash = |i: usize| if changed[i] { "counter-changed" } else { "" };
    let projected = Nanos(d.projected_cost_nanos).display();
    let cap = d.cost_cap_nanos.map(|c| Nanos(c).display());
    view! {
        <div class="mb-4 flex flex-wrap items-center justify-between gap-2">
            <div>
                <h1 class="text-2xl font-semibold">"Billing dashboard"</h1>
                <p class="text-sm text-slate-600">{format!("{} · {} plan ({})", d.user_name, d.plan_name, d.billing_cycle)}</p>
            </div>
            <div class="flex items-center gap-3 text-sm">
                <span class="rounded-full bg-slate-100 px-2 py-0.5" data-testid="unread-count">{format!("{} unread", d.unread_alerts)}</span>
                <span data-testid="live-indicator" data-live=move || live.get().to_string() class="inline-flex items-center gap-1 text-slate-600"
                    title=move || if live.get() { "New usage appears as it is recorded".to_string() } else { format!("Not live: refreshing every {} s", d.refresh_secs) }>
                    <span class="inline-block h-2 w-2 rounded-full" class:bg-green-500=move || live.get() class:bg-slate-400=move || !live.get() aria-hidden="true"></span>
                    {move || if live.get() { "Live".to_string() } else { format!("Every {} s", d.refresh_secs) }}
                </span>
                <span class="text-slate-500" data-testid="last-updated" data-refresh-secs=d.refresh_secs.to_string()>{format!("Last updated {}", d.generated_at.replace('T', " ").replace('Z', " UTC"))}</span>
                <button type="button" data-testid="refresh-button" class="rounded-md border border-slate-300 px-3 py-1 hover:bg-slate-100" on:click=move |_| tick.update(|t| *t += 1)>"Refresh"</button>
            </div>
        </div>

        <section data-testid="billing-overview" class=CARD aria-labelledby="overview-title">
            <div class="flex flex-wrap items-baseline justify-between gap-2">
                <h2 id="overview-title" class="text-lg font-semibold">{format!("{} · {} plan", d.user_name, d.plan_name)}
                    {subscription_badge(&d.subscription_status, d.cancels_on.as_deref())}
                </h2>
                <span data-testid="usage-status" class=format!("rounded-full px-3 py-0.5 text-sm font-medium ring-1 {badge}")>{label}</span>
            </div>
            <p class="text-sm text-slate-500">{format!("Period {} – {} · {} days left", d.period_start, d.period_end, d.days_left)}</p>
            <dl class="mt-4 grid grid-cols-1 gap-4 sm:grid-cols-3">
                <div class="rounded-lg bg-slate-50 p-4"><dt class="text-sm text-slate-500">"Cost this period"</dt><dd class="mt-1 text-2xl font-semibold tabular-nums" data-testid="total-cost"><span class=flash(0)>{Nanos(d.total_cost_nanos).display()}</span></dd></div>
                <div class="rounded-lg bg-slate-50 p-4"><dt class="text-sm text-slate-500">"API calls"</dt><dd class="mt-1 text-2xl font-semibold tabular-nums" data-testid="total-calls"><span class=flash(1)>{format_count(d.total_calls)}</span></dd></div>
                <div class="rounded-lg bg-slate-50 p-4"><dt class="text-sm text-slate-500">"Tokens"</dt><dd class="mt-1 text-2xl font-semibold tabular-nums" data-testid="total-tokens"><span class=flash(2)>{format_count(d.total_tokens)}</span></dd></div>
            </dl>
            <p class="mt-4 text-sm text-slate-700">{format!("This month you've used {} across {} calls.", Nanos(d.total_cost_nanos).display(), format_count(d.total_calls))}</p>
            <p class="text-sm text-slate-700" data-testid="projection">{match &cap {
                Some(c) => format!("You're on track to spend {projected} by {}: {:.0}% of your {c} cap{}.", d.period_end, d.projected_pct_hundredths as f64 / 100.0,
                    d.days_until_cap.filter(|n| *n < d.days_left).map(|n| format!("; at this rate you reach it in {n} days")).unwrap_or_default()),
                None => format!("You're on track to spend {projected} by {}. Your plan has no cost cap.", d.period_end),
            }}</p>
            {if d.limits.is_empty() {
                view! { <p class="mt-4 text-sm text-slate-600">"Your plan has no usage limits."</p> }.into_any()
            } else {
                view! {
                    <ul class="mt-4 grid grid-cols-1 gap-3 md:grid-cols-2" aria-label="Usage against your plan's limits">
                        {d.limits.iter().map(|l| {
                            let pct = (l.pct_hundredths as f64 / 100.0).min(100.0);
                            view! {
                                <li data-testid="limit-bar" data-limit=l.key.clone() data-status=l.status.clone()>
                                    <div class="flex justify-between text-sm"><span>{l.label.clone()}</span><span class="tabular-nums text-slate-600">{format!("{} / {} ({:.0}%)", l.used_text, l.limit_text, l.pct_hundredths as f64 / 100.0)}</span></div>
                                    <div class="mt-1 h-2 w-full overflow-hidden rounded bg-slate-200" role="progressbar" aria-label=l.label.clone()
                                        aria-valuemin="0" aria-valuemax=l.limit.to_string() aria-valuenow=l.used.min(l.limit).to_string()
                                        aria-valuetext=format!("{} of {}", l.used_text, l.limit_text)>
                                        <div class=format!("h-2 rounded {}", bar_color(&l.status)) style=format!("width: {pct:.1}%")></div>
                                    </div>
                                </li>
                            }
                        }).collect_view()}
                    </ul>
                }.into_any()
            }}
            <div class="mt-4 flex flex-wrap gap-2 text-sm">
                <a href="/plans" class="rounded-md border border-slate-300 px-3 py-1 hover:bg-slate-100">"Compare plans"</a>
                <a href="/usage" class="rounded-md border border-slate-300 px-3 py-1 hover:bg-slate-100">"Open usage logs"</a>
            </div>
        </section>
        <super::wallet::WalletPanel wallet/>
        {(d.total_calls == 0).then(|| view! {
            <p class="mt-4 rounded-lg border border-dashed border-slate-300 bg-white p-4 text-sm text-slate-600" data-testid="empty-state">
                "No usage recorded in this period yet. Usage appears here as soon as your product sends events to /api/usage/events."
            </p>
        })}

        <div class="mt-4 grid grid-cols-1 gap-4 lg:grid-cols-2">
            <CostBreakdown d=d.clone()/>
            <HealthPanel d=d.clone()/>
        </div>
        <TrendsPanel d=d.clone()/>
        <SaveMoney advice/>
        <AlertsPanel d mark mark_all/>
    }
    .into_any()
}

/// The period's cost by provider (with its models), or by model or a tag
/// key (`?cost_by=`), following the query string as it changes.
#[component]
fn CostBreakdown(d: Dashboard) -> AnyView {
    let query = use_query_map();
    let cost_by = Memo::new(move |_| query.read().get("cost_by").filter(|b| !b.is_empty() && b != "provider"));
    view! {
        {move || match cost_by.get() {
            None => provider_card(d.clone()),
            Some(by) => view! {
                <section data-testid="cost-pie" class=CARD aria-labelledby="pie-title">
                    {cost_header(&d, Some(&by))}
                    <CostGroups user=query.get_untracked().get("user") by/>
                </section>
            }.into_any(),
        }}
    }
    .into_any()
}

/// The card's title and its switch between provider, model and each tag key.
fn cost_header(d: &Dashboard, cost_by: Option<&str>) -> AnyView {
    let query = use_query_map();
    let mut views = vec![("provider".to_string(), "Provider".to_string()), ("model".to_string(), "Model".to_string())];
    views.extend(d.tag_keys.iter().map(|k| (format!("tag:{k}"), format!("Tag: {k}"))));
    let title = match cost_by {
        None => "Cost by provider".to_string(),
        Some("model") => "Cost by model".to_string(),
        Some(b) => format!("Cost by {}", b.trim_start_matches("tag:")),
    };
    let current = cost_by.unwrap_or("provider").to_string();
    let compare_href = match query.get_untracked().get("user").filter(|u| !u.is_empty()) {
        Some(u) => format!("/performance?user={}", crate::domain::links::urlencode(&u)),
        None => "/performance".to_string(),
    };
    view! {
        <div class="flex flex-wrap items-baseline justify-between gap-2">
            <h2 id="pie-title" class="text-lg font-semibold">{title}</h2>
            <a href=compare_href class="text-sm text-blue-700 underline" data-testid="compare-providers">"Compare providers"</a>
            <nav class="flex flex-wrap gap-1 text-xs" aria-label="Group cost by" data-testid="cost-by">
                {views.into_iter().map(|(v, l)| {
                    let on = current == v;
                    let href = with_param(&query.get_untracked(), "cost_by", if v == "provider" { "" } else { &v });
                    view! { <a href=href data-testid="cost-by-option" data-value=v.clone() aria-current=on.then_some("true")
                        class=if on { "rounded-full bg-slate-800 px-2 py-0.5 text-white" } else { "rounded-full border border-slate-300 px-2 py-0.5 hover:bg-slate-100" }>{l}</a> }
                }).collect_view()}
            </nav>
        </div>
    }
    .into_any()
}

/// Cost by provider, from the dashboard's own data.
fn provider_card(d: Dashboard) -> AnyView {
    let query = use_query_map();
    let navigate = use_navigate();
    let total = d.total_cost_nanos.max(1) as f64;
    let slices: Vec<(String, f64)> =
        d.providers.iter().filter(|p| p.cost_nanos > 0).map(|p| (p.name.clone(), p.cost_nanos as f64 / 1e9)).collect();
    let chart = Signal::derive(move || cost_pie_chart(&slices));
    let hover = RwSignal::new(None::<String>);
    let providers = d.providers.clone();
    let by_name: Vec<(String, String)> = d.providers.iter().map(|p| (p.name.clone(), p.provider.clone())).collect();
    let on_event = Callback::new(move |e: ChartEvent| match e {
        ChartEvent::Hover(name) => hover.set(name),
        ChartEvent::Click(name) => {
            if let Some((_, slug)) = by_name.iter().find(|(n, _)| *n == name) {
                navigate(&with_param(&query.get_untracked(), "provider", slug), Default::default());
            }
        }
    });
    let selected = move || query.read().get("provider");
    let drill = {
        let providers = providers.clone();
        move || selected().and_then(|s| providers.iter().find(|p| p.provider == s).cloned())
    };
    let hovered = {
        let providers = providers.clone();
        move || hover.get().and_then(|n| providers.iter().find(|p| p.name == n).cloned())
    };
    view! {
        <section data-testid="cost-pie" class=CARD aria-labelledby="pie-title">
            {cost_header(&d, None)}
            {if d.providers.iter().all(|p| p.cost_nanos == 0) {
                view! { <p class="mt-2 text-sm text-slate-600">"No cost this period yet."</p> }.into_any()
            } else {
                view! {
                    <EChart id="cost-pie-chart" chart height=240 label="Donut chart of this period's cost by provider".to_string() table="cost-pie-table" on_event/>
                    <div class="min-h-[3rem] text-sm" data-testid="pie-hover" aria-live="polite">
                        {move || hovered().map(|p| view! {
                            <p>{format!("{}: {} · {} calls · {} tokens · {:.1}% · {}",
                                p.name, Nanos(p.cost_nanos).display(), format_count(p.calls), format_count(p.tokens),
                                p.cost_nanos as f64 * 100.0 / total,
                                if p.tokens > 0 { format!("{} per 1k tokens", Nanos(((p.cost_nanos as i128 * 1000) / p.tokens as i128) as i64).display()) } else { "per-unit pricing".to_string() })}</p>
                        })}
                    </div>
                }.into_any()
            }}
            <table class="mt-2 w-full text-sm" id="cost-pie-table">
                <caption class="sr-only">"Cost by provider this period"</caption>
                <thead class="text-slate-500"><tr><th class="py-1 text-left font-medium">"Provider"</th><th class="py-1 text-right font-medium">"Calls"</th><th class="py-1 text-right font-medium">"Tokens"</th><th class="py-1 text-right font-medium">"Cost"</th><th class="py-1 text-right font-medium">"Share"</th></tr></thead>
                <tbody>
                {d.providers.iter().enumerate().map(|(i, p)| view! {
                    <tr class="border-t border-slate-100">
                        <td class="py-1"><span class="mr-2 inline-block h-2 w-2 rounded-full" style=format!("background: {}", PALETTE[i % PALETTE.len()])></span>
                            <a class="text-blue-700 hover:underline" href=with_param(&query.get_untracked(), "provider", &p.provider)>{p.name.clone()}</a></td>
                        <td class="py-1 text-right tabular-nums">{format_count(p.calls)}</td>
                        <td class="py-1 text-right tabular-nums">{format_count(p.tokens)}</td>
                        <td class="py-1 text-right tabular-nums">{Nanos(p.cost_nanos).display()}</td>
                        <td class="py-1 text-right tabular-nums">{format!("{:.1}%", p.cost_nanos as f64 * 100.0 / total)}</td>
                    </tr>
                }).collect_view()}
                </tbody>
            </table>
            {move || drill().map(|p| view! {
                <div class="mt-4 rounded-lg bg-slate-50 p-3" data-testid="provider-drilldown">
                    <div class="flex justify-between"><h3 class="font-medium">{format!("{}: models this period", p.name)}</h3>
                        <a class="text-sm text-blue-700 underline" href=with_param(&query.get_untracked(), "provider", "")>"Close"</a></div>
                    <table class="mt-2 w-full text-sm">
                        <thead class="text-slate-500"><tr><th class="text-left font-medium">"Model"</th><th class="text-right font-medium">"Calls"</th><th class="text-right font-medium">"Tokens"</th><th class="text-right font-medium">"Cost"</th></tr></thead>
                        <tbody>{p.models.iter().map(|m| view! {
                            <tr class="border-t border-slate-200"><td>{m.model.clone()}</td><td class="text-right tabular-nums">{format_count(m.calls)}</td><td class="text-right tabular-nums">{format_count(m.tokens)}</td><td class="text-right tabular-nums">{Nanos(m.cost_nanos).display()}</td></tr>
                        }).collect_view()}</tbody>
                    </table>
                </div>
            })}
        </section>
    }
    .into_any()
}

#[component]
fn HealthPanel(d: Dashboard) -> AnyView {
    let h = d.health.clone();
    let (tone, words) = match h.status.as_str() {
        "critical" => ("bg-red-600", "Critical: requests are failing"),
        "warning" => ("bg-amber-500", "Warning: elevated errors or latency"),
        _ => ("bg-green-600", "Healthy: all systems normal"),
    };
    let uptime = {
        let s = h.uptime_secs;
        if s >= 86_400 {
            format!("{}d {}h", s / 86_400, s % 86_400 / 3600)
        } else if s >= 3600 {
            format!("{}h {}m", s / 3600, s % 3600 / 60)
        } else {
            format!("{}m", s / 60)
        }
    };
    view! {
        <section data-testid="health-indicator" data-status=h.status.clone() class=CARD aria-labelledby="health-title">
            <h2 id="health-title" class="text-lg font-semibold">"System health"</h2>
            <p class="mt-2 flex items-center gap-2"><span class=format!("inline-block h-3 w-3 rounded-full {tone}") aria-hidden="true"></span><span class="font-medium">{words}</span></p>
            <dl class="mt-3 grid grid-cols-2 gap-2 text-sm">
                <dt class="text-slate-500">"Response time p50 / p95"</dt><dd class="tabular-nums">{format!("{:.0} ms / {:.0} ms", h.p50_ms, h.p95_ms)}</dd>
                <dt class="text-slate-500">"Error rate (5 min, all nodes)"</dt><dd class="tabular-nums">{format!("{:.2}% of {} requests", h.error_rate, h.requests)}</dd>
                <dt class="text-slate-500">"Uptime"</dt><dd data-testid="health-uptime">{uptime}</dd>
                <dt class="text-slate-500">"App nodes"</dt><dd class="tabular-nums" data-testid="health-nodes">{h.nodes}</dd>
            </dl>
            <h3 class="mt-4 text-sm font-medium">"Provider error rates this period"</h3>
            <ul class="mt-1 text-sm">
                {h.provider_errors.iter().map(|(p, rate)| {
                    let tone = if *rate >= 5.0 { "tabular-nums text-red-700" } else { "tabular-nums" };
                    view! { <li class="flex justify-between border-t border-slate-100 py-0.5"><span>{p.clone()}</span><span class=tone>{format!("{rate:.1}%")}</span></li> }
                }).collect_view()}
            </ul>
        </section>
    }
    .into_any()
}

#[component]
fn TrendsPanel(d: Dashboard) -> AnyView {
    let query = use_query_map();
    let metric = move || match query.read().get("metric").as_deref() {
        Some("calls") => Metric::Calls,
        Some("tokens") => Metric::Tokens,
        _ => Metric::Cost,
    };
    let trends = d.trends.clone();
    let chart = Signal::derive(move || usage_trend_chart(&trends, metric()));
    let months = d.trends.periods.len();
    let toggle = |active: bool| {
        if active {
            "rounded-md bg-blue-600 px-3 py-1 text-sm text-white"
        } else {
            "rounded-md border border-slate-300 px-3 py-1 text-sm hover:bg-slate-100"
        }
    };
    let t = d.trends.clone();
    view! {
        <section data-testid="usage-trends" class=format!("mt-4 {CARD}") aria-labelledby="trends-title">
            <div class="flex flex-wrap items-center justify-between gap-2">
                <h2 id="trends-title" class="text-lg font-semibold">{format!("Usage trends, last {months} months")}</h2>
                <div class="flex flex-wrap gap-1" role="group" aria-label="Range">
                    {[(3, "trend-range-3m"), (6, "trend-range-6m"), (12, "trend-range-12m")].into_iter().map(|(m, id)| view! {
                        <a data-testid=id href=move || with_param(&query.read(), "months", &m.to_string()) class=toggle(months == m) aria-current=(months == m).then_some("true")>{format!("{m} months")}</a>
                    }).collect_view()}
                </div>
                <div class="flex flex-wrap gap-1" role="group" aria-label="Metric">
                    {[("cost", "trend-metric-cost", "Cost"), ("calls", "trend-metric-calls", "Calls"), ("tokens", "trend-metric-tokens", "Tokens")].into_iter().map(|(m, id, label)| view! {
                        <a data-testid=id href=move || with_param(&query.read(), "metric", m) class=move || toggle(query.read().get("metric").as_deref().unwrap_or("cost") == m)
                            aria-current=move || (query.read().get("metric").as_deref().unwrap_or("cost") == m).then_some("true")>{label}</a>
                    }).collect_view()}
                </div>
            </div>
            <EChart id="usage-trend-chart" chart height=320 label="Line chart of usage per month, total and per provider, with this month's projection dashed".to_string() table="usage-trend-table"/>
            <table class="mt-4 w-full text-sm" data-testid="trend-table" id="usage-trend-table">
                <caption class="sr-only">"Usage per month"</caption>
                <thead class="text-slate-500"><tr><th class="py-1 text-left font-medium">"Month"</th><th class="py-1 text-right font-medium">"Calls"</th><th class="py-1 text-right font-medium">"Tokens"</th><th class="py-1 text-right font-medium">"Cost"</th></tr></thead>
                <tbody>
                {t.periods.iter().enumerate().map(|(i, p)| view! {
                    <tr class="border-t border-slate-100">
                        <td class="py-1">{p.clone()}</td>
                        <td class="py-1 text-right tabular-nums">{format_count(t.total.calls[i])}</td>
                        <td class="py-1 text-right tabular-nums">{format_count(t.total.tokens[i])}</td>
                        <td class="py-1 text-right tabular-nums">{Nanos(t.total.cost_nanos[i]).display()}</td>
                    </tr>
                }).collect_view()}
                </tbody>
            </table>
        </section>
    }
    .into_any()
}

#[component]
fn AlertsPanel(d: Dashboard, mark: ServerAction<MarkAlertRead>, mark_all: ServerAction<MarkAllAlertsRead>) -> AnyView {
    let query = use_query_map();
    let filter = move || query.read().get("alerts").unwrap_or_else(|| "all".into());
    let mut alerts = d.alerts.clone();
    // Unread first, then newest (the server sends newest first).
    alerts.sort_by_key(|a| a.is_read);
    let user = query.get_untracked().get("user").unwrap_or_default();
    view! {
        <section class=format!("mt-4 {CARD}") aria-labelledby="alerts-title">
            <div class="flex flex-wrap items-center justify-between gap-2">
                <h2 id="alerts-title" class="text-lg font-semibold">{format!("Alerts ({} unread)", d.unread_alerts)}</h2>
                <div class="flex flex-wrap gap-1 text-sm" role="group" aria-label="Show">
                    {["all", "unread", "error", "warning", "info"].into_iter().map(|f| view! {
                        <a href=move || with_param(&query.read(), "alerts", if f == "all" { "" } else { f }) data-filter=f
                            class=move || if filter() == f { "rounded bg-slate-800 px-2 py-0.5 text-white" } else { "rounded border border-slate-300 px-2 py-0.5" }
                            aria-current=move || (filter() == f).then_some("true")>{f}</a>
                    }).collect_view()}
                </div>
                <ActionForm action=mark_all>
                    <input type="hidden" name="user" value=user/>
                    <button type="submit" class="rounded-md border border-slate-300 px-3 py-1 text-sm hover:bg-slate-100" disabled=d.unread_alerts == 0>"Mark all read"</button>
                </ActionForm>
            </div>
            <ul class="mt-3 space-y-2" data-testid="alerts-list">
                {move || {
                    let f = filter();
                    let shown: Vec<_> = alerts.iter().filter(|a| match f.as_str() {
                        "unread" => !a.is_read,
                        "all" => true,
                        sev => a.severity == sev,
                    }).cloned().collect();
                    if shown.is_empty() {
                        return view! { <li class="text-sm text-slate-600">"No alerts to show."</li> }.into_any();
                    }
                    shown.into_iter().map(|a| {
                        // Read alerts step back to a plain card (not faded: faded text
                        // fails the contrast minimum).
                        let tone = match (a.is_read, a.severity.as_str()) {
                            (true, _) => "border-slate-200 bg-white",
                            (false, "error") => "border-red-300 bg-red-50",
                            (false, "warning") => "border-amber-300 bg-amber-50",
                            (false, _) => "border-blue-200 bg-blue-50",
                        };
                        view! {
                            <li data-testid="alert-item" data-read=a.is_read.to_string() data-severity=a.severity.clone() data-resolved=a.resolved_at.is_some().to_string()
                                class=format!("rounded-lg border p-3 {tone}")>
                                <div class="flex flex-wrap items-start justify-between gap-2">
                                    <div>
                                        {(!a.is_read).then(|| view! { <span class="sr-only">"Unread alert"</span> })}
                                        <p class="font-medium">{(!a.is_read).then(|| view! { <span class="mr-1 inline-block h-2 w-2 rounded-full bg-blue-600" aria-hidden="true"></span> })}{a.title.clone()}</p>
                                        <p class="text-sm text-slate-700">{a.message.clone()}</p>
                                        <p class="text-xs text-slate-600">{match &a.resolved_at {
                                            Some(r) => format!("{} · {} · resolved {r}: usage is back under this threshold", a.severity, a.created_at),
                                            None => format!("{} · {}", a.severity, a.created_at),
                                        }}</p>
                                    </div>
                                    {(!a.is_read).then(|| view! {
                                        <ActionForm action=mark>
                                            <input type="hidden" name="id" value=a.id.to_string()/>
                                            <button type="submit" data-testid="alert-mark-read" class="rounded border border-slate-300 bg-white px-2 py-0.5 text-sm hover:bg-slate-100">"Mark read"</button>
                                        </ActionForm>
                                    })}
                                </div>
                            </li>
                        }
                    }).collect_view().into_any()
                }}
            </ul>
        </section>
    }
    .into_any()
}

#[cfg(feature = "hydrate")]
#[path = "dashboard_live.rs"]
mod live_stream;
