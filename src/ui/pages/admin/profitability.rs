//! Profitability: each customer's plan fee against what their usage cost
//! the provider, worst margin first, sortable, with a CSV download.

use super::*;
use crate::api::insights::{MarginView, get_profitability};
use crate::domain::money::Nanos;

#[component]
pub fn AdminProfitabilityPage() -> impl IntoView {
    view! { <RequireAdmin><AdminFrame title="Profitability"><ProfitabilityView/></AdminFrame></RequireAdmin> }
}

/// The sortable columns: query value, header.
const COLUMNS: [(&str, &str); 5] =
    [("user", "Customer"), ("plan", "Plan"), ("fee", "Plan fee"), ("cost", "Provider cost"), ("margin", "Margin")];

fn sort_rows(rows: &mut [MarginView], by: &str, desc: bool) {
    match by {
        "user" => rows.sort_by(|a, b| a.email.cmp(&b.email)),
        "plan" => rows.sort_by(|a, b| (&a.plan_name, &a.email).cmp(&(&b.plan_name, &b.email))),
        "fee" => rows.sort_by_key(|r| (r.plan_fee_nanos, r.email.clone())),
        "cost" => rows.sort_by_key(|r| (r.provider_cost_nanos, r.email.clone())),
        _ => rows.sort_by_key(|r| (r.margin_nanos, r.email.clone())),
    }
    if desc {
        rows.reverse();
    }
}

#[component]
fn ProfitabilityView() -> impl IntoView {
    let query = use_query_map();
    let data = Resource::new(move || query.read().get("period").filter(|p| !p.is_empty()), get_profitability);
    let link = move |col: &str| {
        let q = query.read();
        let (by, desc) = (q.get("sort").unwrap_or_else(|| "margin".into()), q.get("dir").as_deref() == Some("desc"));
        let dir = if by == col && !desc { "desc" } else { "asc" };
        let period =
            q.get("period").map(|p| format!("&period={}", crate::domain::links::urlencode(&p))).unwrap_or_default();
        format!("/admin/profitability?sort={col}&dir={dir}{period}")
    };
    view! {
        <form method="get" class="mb-4 flex flex-wrap items-end gap-2" role="search">
            <label class="text-sm">"Billing period (YYYY-MM; empty: each customer's current period)"
                <input name="period" class=INPUT placeholder="2026-11" value=move || query.read().get("period").unwrap_or_default()/></label>
            <button type="submit" class=BUTTON>"Show"</button>
        </form>
        <Suspense fallback=|| view! { <div class="h-40 animate-pulse rounded-xl bg-slate-200"></div> }>
            {move || Suspend::new(async move {
                let p = match data.await { Ok(p) => p, Err(e) => return load_error(e) };
                if p.rows.is_empty() {
                    return view! { <p class="text-slate-600" data-testid="profitability-empty">"No customer had a subscription in this period."</p> }.into_any();
                }
                let mut rows = p.rows.clone();
                let (by, desc) = {
                    let q = query.read_untracked();
                    (q.get("sort").unwrap_or_else(|| "margin".into()), q.get("dir").as_deref() == Some("desc"))
                };
                sort_rows(&mut rows, &by, desc);
                let fees: i64 = rows.iter().map(|r| r.plan_fee_nanos).sum();
                let costs: i64 = rows.iter().map(|r| r.provider_cost_nanos).sum();
                let losing = rows.iter().filter(|r| r.margin_nanos < 0).count();
                view! {
                    <div class="mb-3 flex flex-wrap items-baseline justify-between gap-2 text-sm">
                        <p data-testid="profitability-totals">{format!("{} customers · fees {} · provider cost {} · margin {} · {} losing money",
                            rows.len(), Nanos(fees).display(), Nanos(costs).display(), Nanos(fees - costs).display(), losing)}</p>
                        <span class="flex gap-4">
                            <a class="text-blue-700 underline" href=p.csv_href.clone() download="" data-testid="profitability-csv">"Download CSV"</a>
                            <a class="text-blue-700 underline" href=p.focus_href.clone() download="" data-testid="focus-export" title="Every customer's usage of this period in the FinOps Foundation's FOCUS 1.2 format">"FOCUS export"</a>
                        </span>
                    </div>
                    <div class="overflow-x-auto rounded-xl border border-slate-200 bg-white" tabindex="0" role="region" aria-label="Margin per customer">
                        <table class="w-full text-sm" data-testid="profitability-table">
                            <thead><tr>
                                {COLUMNS.iter().map(|(col, label)| {
                                    let sorted = by == *col;
                                    let aria = if sorted { if desc { "descending" } else { "ascending" } } else { "none" };
                                    view! { <th class=TH aria-sort=aria><a class="hover:underline" href=link(col) data-testid="profitability-sort" data-col=*col>
                                        {format!("{label}{}", if sorted { if desc { " ▼" } else { " ▲" } } else { "" })}</a></th> }
                                }).collect_view()}
                                <th class=TH>"Period"</th>
                            </tr></thead>
                            <tbody>
                            {rows.into_iter().map(|r| {
                                let negative = r.margin_nanos < 0;
                                view! {
                                    <tr class="border-t border-slate-100" class:bg-red-50=negative data-testid="profitability-row" data-negative=negative.to_string() data-user=r.user_id.clone()>
                                        <td class=TD><a class="text-blue-700 hover:underline" href=format!("/dashboard?user={}", crate::domain::links::urlencode(&r.user_id))>{r.email.clone()}</a></td>
                                        <td class=TD>{r.plan_name.clone()}</td>
                                        <td class=format!("{TD} tabular-nums")>{Nanos(r.plan_fee_nanos).display()}</td>
                                        <td class=format!("{TD} tabular-nums")>{Nanos(r.provider_cost_nanos).display()}</td>
                                        <td class=format!("{TD} tabular-nums font-medium") class:text-red-700=negative data-testid="profitability-margin">
                                            {Nanos(r.margin_nanos).display()}{negative.then_some(" ⚠ losing money")}</td>
                                        <td class=TD>{format!("{}{}", r.billing_period, if r.open { " (open)" } else { "" })}</td>
                                    </tr>
                                }
                            }).collect_view()}
                            </tbody>
                        </table>
                    </div>
                    <p class="mt-2 text-xs text-slate-600">"Plan fee is what the customer's bill charges for the period (a yearly plan bills its whole fee in the period that opens the year); provider cost is what their recorded calls cost at catalog prices. Open periods show the cost so far."</p>
                }.into_any()
            })}
        </Suspense>
    }
}
