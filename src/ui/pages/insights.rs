//! The dashboard's cost view by model or tag (with a drill-down into the
//! usage log), and its "Save money" card.

use leptos::prelude::*;
use leptos_router::hooks::use_navigate;

use crate::api::insights::{AdviceView, BreakdownView, get_breakdown};
use crate::domain::links::urlencode;
use crate::domain::money::{Nanos, format_count};
use crate::ui::components::charts::{ChartEvent, EChart, PALETTE, cost_pie_chart};

/// What a group without a key is called.
fn unkeyed(by: &str) -> &'static str {
    if by == "model" { "(no model)" } else { "(untagged)" }
}

/// The usage log showing a group's calls: by tag value (or the period's
/// calls for a model, which the log cannot filter by).
fn log_href(user: Option<&str>, b: &BreakdownView, key: Option<&str>) -> String {
    let mut q = vec![format!("period={}", urlencode(&b.billing_period))];
    if let (Some(tag), Some(value)) = (b.by.strip_prefix("tag:"), key) {
        q.push(format!("tag={}", urlencode(&format!("{tag}={value}"))));
    }
    if let Some(u) = user {
        q.push(format!("user={}", urlencode(u)));
    }
    format!("/usage?{}", q.join("&"))
}

/// The period's cost grouped by `by` (`model` or `tag:<key>`): a donut and
/// a table whose rows open the matching calls in the usage log.
#[component]
pub fn CostGroups(user: Option<String>, by: String) -> impl IntoView {
    let data = Resource::new(move || (user.clone(), by.clone()), |(u, by)| get_breakdown(u, by));
    view! {
        <Transition fallback=|| view! { <div class="mt-2 h-48 animate-pulse rounded bg-slate-100"></div> }>
            {move || Suspend::new(async move {
                match data.await {
                    Ok(b) => view! { <Groups b/> }.into_any(),
                    Err(e) => view! { <p role="alert" class="mt-2 text-sm text-red-700">{format!("Could not load the breakdown: {e}")}</p> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn Groups(b: BreakdownView) -> impl IntoView {
    let query = leptos_router::hooks::use_query_map();
    let user = query.get_untracked().get("user");
    let navigate = use_navigate();
    let total = b.total_cost_nanos.max(1) as f64;
    let name = |k: &Option<String>| k.clone().unwrap_or_else(|| unkeyed(&b.by).to_string());
    let slices: Vec<(String, f64)> =
        b.rows.iter().filter(|g| g.cost_nanos > 0).map(|g| (name(&g.key), g.cost_nanos as f64 / 1e9)).collect();
    let chart = Signal::derive(move || cost_pie_chart(&slices));
    let hrefs: Vec<(String, String)> =
        b.rows.iter().map(|g| (name(&g.key), log_href(user.as_deref(), &b, g.key.as_deref()))).collect();
    let on_event = Callback::new(move |e: ChartEvent| {
        if let ChartEvent::Click(n) = e
            && let Some((_, href)) = hrefs.iter().find(|(k, _)| *k == n)
        {
            navigate(href, Default::default());
        }
    });
    let sum: i64 = b.rows.iter().map(|g| g.cost_nanos).sum();
    if b.rows.is_empty() {
        return view! { <p class="mt-2 text-sm text-slate-600" data-testid="cost-groups-empty">"No usage recorded in this period yet."</p> }.into_any();
    }
    view! {
        <div data-testid="cost-groups" data-by=b.by.clone()>
            {(b.total_cost_nanos > 0).then(|| view! {
                <EChart id="cost-group-chart" chart height=220 label=format!("Donut chart of this period's cost by {}", b.by.trim_start_matches("tag:")) table="cost-group-table" on_event/>
            })}
            <table class="mt-2 w-full text-sm" id="cost-group-table">
                <caption class="sr-only">{format!("Cost by {} in {}", b.by, b.billing_period)}</caption>
                <thead class="text-slate-500"><tr>
                    <th class="py-1 text-left font-medium">{if b.by == "model" { "Model".to_string() } else { b.by.trim_start_matches("tag:").to_string() }}</th>
                    <th class="py-1 text-right font-medium">"Calls"</th><th class="py-1 text-right font-medium">"Tokens"</th>
                    <th class="py-1 text-right font-medium">"Cost"</th><th class="py-1 text-right font-medium">"Share"</th>
                </tr></thead>
                <tbody>
                {b.rows.iter().enumerate().map(|(i, g)| view! {
                    <tr class="border-t border-slate-100" data-testid="cost-group-row" data-key=g.key.clone().unwrap_or_default()>
                        <td class="py-1"><span class="mr-2 inline-block h-2 w-2 rounded-full" style=format!("background: {}", PALETTE[i % PALETTE.len()])></span>
                            <a class="text-blue-700 hover:underline" href=log_href(user.as_deref(), &b, g.key.as_deref()) title="Open these calls in the usage log">{name(&g.key)}</a></td>
                        <td class="py-1 text-right tabular-nums">{format_count(g.calls)}</td>
                        <td class="py-1 text-right tabular-nums">{format_count(g.tokens)}</td>
                        <td class="py-1 text-right tabular-nums" data-testid="cost-group-cost">{Nanos(g.cost_nanos).display()}</td>
                        <td class="py-1 text-right tabular-nums">{format!("{:.1}%", g.cost_nanos as f64 * 100.0 / total)}</td>
                    </tr>
                }).collect_view()}
                </tbody>
                <tfoot><tr class="border-t border-slate-300 font-medium">
                    <td class="py-1">"Total"</td><td></td><td></td>
                    <td class="py-1 text-right tabular-nums" data-testid="cost-groups-total">{Nanos(sum).display()}</td><td></td>
                </tr></tfoot>
            </table>
        </div>
    }
    .into_any()
}

/// The "Save money" card: a cheaper plan, cheaper models, failed calls and
/// cache use, or why there is no advice yet.
#[component]
pub fn SaveMoney(advice: Resource<Result<AdviceView, ServerFnError>>) -> impl IntoView {
    view! {
        <section data-testid="save-money" class="mt-4 rounded-xl border border-emerald-200 bg-white p-4 shadow-sm sm:p-6" aria-labelledby="save-title">
            <h2 id="save-title" class="text-lg font-semibold">"Save money"</h2>
            <Transition fallback=|| view! { <div class="mt-2 h-16 animate-pulse rounded bg-slate-100"></div> }>
                {move || Suspend::new(async move {
                    match advice.await {
                        Ok(a) => advice_view(a),
                        Err(e) => view! { <p role="alert" class="mt-2 text-sm text-red-700">{format!("Could not load advice: {e}")}</p> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

fn advice_view(a: AdviceView) -> AnyView {
    let nothing = a.plan.is_none() && a.tips.is_empty();
    view! {
        <div class="mt-2 space-y-3 text-sm">
            {a.plan.map(|(name, saving, reason)| view! {
                <div class="rounded-lg bg-emerald-50 p-3" data-testid="advice-plan">
                    <p class="font-medium text-emerald-900">{format!("Switch to {name} and save {} a month", Nanos(saving).display())}</p>
                    <p class="mt-1 text-emerald-900">{reason}</p>
                    <a href="/plans" class="mt-1 inline-block text-blue-700 underline">"Compare plans"</a>
                </div>
            })}
            <ul class="space-y-2">
                {a.tips.into_iter().map(|t| view! {
                    <li class="rounded-lg bg-slate-50 p-3" data-testid="advice-tip" data-kind=t.kind.clone()>
                        <p class="flex flex-wrap justify-between gap-2 font-medium">
                            <span>{t.title}</span>
                            {t.saving_nanos.map(|n| view! { <span class="tabular-nums text-emerald-800" data-testid="advice-saving">{format!("save up to {}", Nanos(n).display())}</span> })}
                        </p>
                        <p class="mt-1 text-slate-700">{t.detail}</p>
                    </li>
                }).collect_view()}
            </ul>
            {(!a.missing.is_empty()).then(|| view! {
                <ul class="list-disc pl-5 text-slate-600" data-testid="advice-missing">
                    {a.missing.into_iter().map(|m| view! { <li>{m}</li> }).collect_view()}
                </ul>
            })}
            {nothing.then(|| view! { <p class="text-slate-600" data-testid="advice-none">{format!("No advice for {} yet.", a.tips_period)}</p> })}
        </div>
    }
    .into_any()
}
