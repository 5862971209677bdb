//! The home page: the demo account's current period, read by a server
//! function and rendered on the server, with the cost trend drawn after
//! hydration (and always listed as a table).

use leptos::prelude::*;

use leptos_router::hooks::use_query_map;

use crate::api::overview::{Overview, get_overview};
use crate::domain::money::{Nanos, format_count};
use crate::ui::components::charts::{EChart, cost_trend_chart};
use crate::ui::components::layout::RequireUser;

#[component]
pub fn HomePage() -> impl IntoView {
    view! { <RequireUser><UserOverview/></RequireUser> }
}

/// The signed-in user's period (an admin may add `?user=ID`).
#[component]
fn UserOverview() -> impl IntoView {
    let query = use_query_map();
    let overview = Resource::new(move || query.read().get("user"), get_overview);
    view! {
        <Suspense fallback=|| view! { <p class="text-slate-500">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match overview.await {
                    Ok(Some(o)) => view! { <OverviewView o/> }.into_any(),
                    Ok(None) => view! { <p class="text-slate-600">"Sign in to see your usage."</p> }.into_any(),
                    Err(e) => view! {
                        <section role="alert" class="rounded-xl border border-red-200 bg-red-50 p-6 text-red-800">
                            <h1 class="font-semibold">"Could not load usage"</h1>
                            <p class="mt-1 text-sm">{e.to_string()}</p>
                        </section>
                    }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn Stat(label: &'static str, testid: &'static str, value: String) -> impl IntoView {
    view! {
        <div class="rounded-lg bg-slate-50 p-4">
            <dt class="text-sm text-slate-500">{label}</dt>
            <dd class="mt-1 text-2xl font-semibold tabular-nums" data-testid=testid>{value}</dd>
        </div>
    }
}

#[component]
fn OverviewView(o: Overview) -> impl IntoView {
    let labels: Vec<String> = o.trend.iter().map(|t| t.period.clone()).collect();
    let usd: Vec<f64> = o.trend.iter().map(|t| Nanos(t.cost_nanos).as_f64_usd()).collect();
    let chart = Signal::derive(move || cost_trend_chart(&labels, &usd));
    let trend_rows = o.trend.clone();
    view! {
        <section data-testid="billing-overview" class="rounded-xl border border-slate-200 bg-white p-6 shadow-sm">
            <div class="flex flex-wrap items-baseline justify-between gap-2">
                <h1 class="text-xl font-semibold">{format!("{} · {} plan", o.user_name, o.plan_name)}</h1>
                <p class="text-sm text-slate-500">
                    {format!("Period {} – {} · {} days left", o.period_start, o.period_end, o.days_left)}
                </p>
            </div>
            <dl class="mt-4 grid grid-cols-1 gap-4 sm:grid-cols-3">
                <Stat label="Cost this period" testid="total-cost" value=Nanos(o.total_cost_nanos).display()/>
                <Stat label="API calls" testid="total-calls" value=format_count(o.total_calls)/>
                <Stat label="Tokens" testid="total-tokens" value=format_count(o.total_tokens)/>
            </dl>
            <table class="mt-6 w-full text-left text-sm">
                <caption class="sr-only">"Cost by provider this period"</caption>
                <thead class="text-slate-500">
                    <tr><th class="py-1 font-medium">"Provider"</th><th class="py-1 text-right font-medium">"Calls"</th><th class="py-1 text-right font-medium">"Tokens"</th><th class="py-1 text-right font-medium">"Cost"</th></tr>
                </thead>
                <tbody>
                    {o.providers.into_iter().map(|p| view! {
                        <tr class="border-t border-slate-100">
                            <td class="py-1">{p.name}</td>
                            <td class="py-1 text-right tabular-nums">{format_count(p.calls)}</td>
                            <td class="py-1 text-right tabular-nums">{format_count(p.tokens)}</td>
                            <td class="py-1 text-right tabular-nums">{Nanos(p.cost_nanos).display()}</td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        </section>
        <section data-testid="usage-trends" class="mt-6 rounded-xl border border-slate-200 bg-white p-6 shadow-sm">
            <h2 class="text-lg font-semibold">"Cost, last 12 months"</h2>
            <EChart id="cost-trend-chart" chart label="Line chart of monthly cost over the last 12 months".to_string()/>
            <table class="mt-4 w-full text-left text-sm" data-testid="trend-table">
                <caption class="sr-only">"Monthly cost and calls"</caption>
                <thead class="text-slate-500"><tr><th class="py-1 font-medium">"Month"</th><th class="py-1 text-right font-medium">"Calls"</th><th class="py-1 text-right font-medium">"Cost"</th></tr></thead>
                <tbody>
                    {trend_rows.into_iter().map(|t| view! {
                        <tr class="border-t border-slate-100">
                            <td class="py-1">{t.period}</td>
                            <td class="py-1 text-right tabular-nums">{format_count(t.calls)}</td>
                            <td class="py-1 text-right tabular-nums">{Nanos(t.cost_nanos).display()}</td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        </section>
    }
}
