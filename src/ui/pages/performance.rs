//! The provider comparison: per provider and model of a usage period, how
//! often calls fail, how long they take and what they cost, with the
//! cheap-and-fast corner drawn. Every figure comes from the server's
//! rollups; the tables are the charts' text alternatives.

use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

use crate::api::performance::{ModelPerf, PerformanceData, RANGES, get_performance};
use crate::domain::money::{Nanos, format_count};
use crate::ui::components::charts::{EChart, cost_latency_chart, latency_spread_chart};
use crate::ui::components::layout::RequireUser;

const CARD: &str = "mt-4 rounded-xl border border-slate-200 bg-white p-4 shadow-sm sm:p-6";
const TH: &str = "px-2 py-2 text-right font-medium text-slate-500";
const TD: &str = "px-2 py-1.5 text-right tabular-nums";
const INPUT: &str = "mt-1 block rounded-md border border-slate-300 px-2 py-1";

#[component]
pub fn PerformancePage() -> impl IntoView {
    view! { <RequireUser><Comparison/></RequireUser> }
}

#[component]
fn Comparison() -> impl IntoView {
    let query = use_query_map();
    let q = move |k: &str| query.read().get(k).filter(|v| !v.is_empty());
    let data = Resource::new(move || (q("user"), q("period")), |(user, period)| get_performance(user, period));
    view! {
        <h1 class="text-2xl font-semibold">"Compare providers"</h1>
        <p class="mt-1 text-sm text-slate-600">"Error rate, response time and cost of every provider and model you called in a billing period."</p>
        <form method="get" class="mt-3 flex flex-wrap items-end gap-3 text-sm" aria-label="Choose the period">
            {q("user").map(|u| view! { <input type="hidden" name="user" value=u/> })}
            <label>"Period (YYYY-MM)"<input name="period" class=INPUT placeholder="current" value=move || q("period").unwrap_or_default()/></label>
            <button type="submit" class="rounded-md bg-blue-600 px-3 py-1.5 font-medium text-white hover:bg-blue-700">"Show"</button>
        </form>
        <Transition fallback=|| view! { <div class="mt-4 h-64 animate-pulse rounded-xl bg-slate-200"></div> }>
            {move || Suspend::new(async move {
                match data.await {
                    Ok(d) => figures(d),
                    Err(e) => view! { <p role="alert" class="mt-4 rounded bg-red-50 p-3 text-red-800">{format!("Could not load the comparison: {e}")}</p> }.into_any(),
                }
            })}
        </Transition>
    }
}

fn ms(v: Option<u64>) -> String {
    v.map(
        |m| if m >= 10_000 { format!("{:.1} s", m as f64 / 1000.0) } else { format!("{} ms", format_count(m as i64)) },
    )
    .unwrap_or_else(|| "-".into())
}

fn usd(v: Option<i64>) -> String {
    v.map(|n| Nanos(n).display()).unwrap_or_else(|| "-".into())
}

fn figures(d: PerformanceData) -> AnyView {
    if d.models.is_empty() {
        return view! {
            <p class="mt-4 rounded-lg border border-dashed border-slate-300 bg-white p-4 text-slate-600" data-testid="performance-empty">
                {format!("No calls recorded in {} yet.", d.billing_period)}
            </p>
        }
        .into_any();
    }
    let points: Vec<(String, f64, f64)> = d
        .models
        .iter()
        .filter_map(|m| Some((m.label(), m.p50_ms? as f64, Nanos(m.cost_per_call_nanos?).as_f64_usd())))
        .collect();
    let spread: Vec<(String, Vec<f64>)> = d
        .models
        .iter()
        .filter(|m| m.timed_calls > 0)
        .map(|m| {
            (m.label(), m.spread.iter().map(|n| (*n as f64 * 1000.0 / m.timed_calls as f64).round() / 10.0).collect())
        })
        .collect();
    let has_points = !points.is_empty();
    let scatter = Signal::derive(move || cost_latency_chart(&points));
    let ranges: Vec<&str> = RANGES.iter().map(|(l, _)| *l).collect();
    let spread_rows = spread.clone();
    let bars = Signal::derive(move || latency_spread_chart(&ranges, &spread));
    view! {
        <section class=CARD aria-labelledby="perf-title" data-testid="performance" data-period=d.billing_period.clone()>
            <h2 id="perf-title" class="text-lg font-semibold">{format!("Providers and models, {}", d.billing_period)}</h2>
            <p class="mt-1 text-xs text-slate-600">{format!("Response times as reported with each call; percentiles are {}.", d.percentile_error)}</p>
            <div class="mt-3 overflow-x-auto" tabindex="0" role="region" aria-label="Providers and models compared">
                <table class="w-full text-sm" id="performance-table" data-testid="performance-table">
                    <thead><tr>
                        <th class="px-2 py-2 text-left font-medium text-slate-500">"Provider / model"</th>
                        <th class=TH>"Calls"</th><th class=TH>"Errors"</th><th class=TH>"p50"</th><th class=TH>"p95"</th><th class=TH>"p99"</th>
                        <th class=TH>"Cost / call"</th><th class=TH>"Cost / 1k tokens"</th><th class=TH>"Output tokens / s"</th><th class=TH>"Cost"</th>
                    </tr></thead>
                    <tbody>
                        {d.providers.iter().map(|p| {
                            let models: Vec<ModelPerf> = d.models.iter().filter(|m| m.provider == p.provider).cloned().collect();
                            view! {
                                {row(p, true)}
                                {models.iter().map(|m| row(m, false)).collect_view()}
                            }
                        }).collect_view()}
                    </tbody>
                </table>
            </div>
        </section>
        {has_points.then(|| view! {
            <section class=CARD aria-labelledby="scatter-title">
                <h2 id="scatter-title" class="text-lg font-semibold">"Cost against response time"</h2>
                <p class="mt-1 text-sm text-slate-600">"Each model by its median response time and its cost per call: the cheap and fast ones sit bottom left."</p>
                <EChart id="cost-latency-chart" chart=scatter height=300 label="Scatter chart of each model's cost per call against its median response time".to_string() table="performance-table"/>
            </section>
        })}
        {(!spread_rows.is_empty()).then(|| view! {
            <section class=CARD aria-labelledby="spread-title">
                <h2 id="spread-title" class="text-lg font-semibold">"How response times spread"</h2>
                <EChart id="latency-spread-chart" chart=bars height=300 label="Bar chart of the share of each model's calls per response-time range".to_string() table="latency-spread-table"/>
                <div class="overflow-x-auto" tabindex="0" role="region" aria-label="Response-time ranges">
                    <table class="mt-2 w-full text-sm" id="latency-spread-table">
                        <thead><tr>
                            <th class="px-2 py-2 text-left font-medium text-slate-500">"Model"</th>
                            {RANGES.iter().map(|(l, _)| view! { <th class=TH>{*l}</th> }).collect_view()}
                        </tr></thead>
                        <tbody>
                            {spread_rows.into_iter().map(|(name, shares)| view! {
                                <tr class="border-t border-slate-100">
                                    <td class="px-2 py-1.5">{name}</td>
                                    {shares.into_iter().map(|s| view! { <td class=TD>{format!("{s:.1}%")}</td> }).collect_view()}
                                </tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                </div>
            </section>
        })}
    }
    .into_any()
}

fn row(m: &ModelPerf, provider: bool) -> impl IntoView + use<> {
    let name = if provider { m.provider_name.clone() } else { m.model.clone().unwrap_or_else(|| "(no model)".into()) };
    let tps = m.output_tokens_per_sec.map(|t| format!("{t:.1}")).unwrap_or_else(|| "-".into());
    view! {
        <tr class=if provider { "border-t border-slate-300 bg-slate-50 font-medium" } else { "border-t border-slate-100" }
            data-testid=if provider { "performance-provider" } else { "performance-model" }
            data-provider=m.provider.clone() data-model=m.model.clone().unwrap_or_default()>
            <td class=if provider { "px-2 py-1.5" } else { "px-2 py-1.5 pl-6" }>{name}</td>
            <td class=TD>{format_count(m.calls)}</td>
            <td class=TD data-testid="performance-errors">{format!("{} ({:.1}%)", format_count(m.errors), m.error_rate_pct)}</td>
            <td class=TD data-testid="performance-p50">{ms(m.p50_ms)}</td>
            <td class=TD>{ms(m.p95_ms)}</td>
            <td class=TD>{ms(m.p99_ms)}</td>
            <td class=TD data-testid="performance-cost-per-call">{usd(m.cost_per_call_nanos)}</td>
            <td class=TD>{usd(m.cost_per_1k_tokens_nanos)}</td>
            <td class=TD>{tps}</td>
            <td class=TD>{Nanos(m.cost_nanos).display()}</td>
        </tr>
    }
}
