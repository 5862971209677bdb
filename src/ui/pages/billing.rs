//! `/usage` (the usage log), `/plans` (comparison and plan changes) and
//! `/billing` (billing and renewal history, with CSV downloads).

use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

use crate::api::billing::{ChangeMyPlan, ChangeMyStatus, PAGE_SIZE, billing_history, plan_choice, usage_log_page};
use crate::domain::money::{Nanos, format_count};
use crate::ui::components::layout::RequireUser;

const CARD: &str = "rounded-xl border border-slate-200 bg-white p-4 shadow-sm sm:p-6";
const INPUT: &str = "mt-1 block rounded-md border border-slate-300 px-2 py-1 text-sm";
const TH: &str = "px-2 py-2 text-left font-medium text-slate-500";
const TD: &str = "px-2 py-1.5";

fn failed(e: ServerFnError) -> AnyView {
    view! { <p role="alert" class="rounded bg-red-50 p-3 text-red-800">{format!("Could not load: {e}")}</p> }.into_any()
}

#[component]
pub fn UsagePage() -> impl IntoView {
    view! { <RequireUser><UsageLog/></RequireUser> }
}

#[component]
fn UsageLog() -> impl IntoView {
    let query = use_query_map();
    let q = move |k: &str| query.read().get(k).filter(|v| !v.is_empty());
    let page = Resource::new(
        move || {
            (
                q("user"),
                q("page").and_then(|p| p.parse::<i64>().ok()),
                q("before"),
                q("provider"),
                q("status"),
                q("period"),
                q("tag"),
            )
        },
        |(user, page, before, provider, status, period, tag)| {
            usage_log_page(user, page, before, provider, status, period, tag)
        },
    );
    // The same filters, at another position (`None`: the newest page).
    let link = move |at: Option<(String, i64)>| {
        let mut pairs: Vec<String> = query
            .read()
            .clone()
            .into_iter()
            .filter(|(k, _)| k != "page" && k != "before")
            .map(|(k, v)| format!("{k}={}", crate::domain::links::urlencode(&v)))
            .collect();
        if let Some((before, page)) = at {
            pairs.push(format!("before={before}"));
            pairs.push(format!("page={page}"));
        }
        format!("/usage?{}", pairs.join("&"))
    };
    view! {
        <h1 class="mb-4 text-2xl font-semibold">"Usage log"</h1>
        <form method="get" class="mb-4 flex flex-wrap items-end gap-3 text-sm" role="search" aria-label="Filter the usage log">
            {q("user").map(|u| view! { <input type="hidden" name="user" value=u/> })}
            <label>"Provider"<input name="provider" class=INPUT placeholder="e.g. gemini" value=move || q("provider").unwrap_or_default()/></label>
            <label>"Status"
                <select name="status" class=INPUT>
                    {[("", "any"), ("success", "success"), ("failed", "failed")].into_iter().map(|(v, l)| view! { <option value=v selected=move || q("status").unwrap_or_default() == v>{l}</option> }).collect_view()}
                </select>
            </label>
            <label>"Period (YYYY-MM)"<input name="period" class=INPUT placeholder="2026-11" value=move || q("period").unwrap_or_default()/></label>
            <label>"Tag (key=value)"<input name="tag" class=INPUT placeholder="project=blog" data-testid="usage-tag-filter" value=move || q("tag").unwrap_or_default()/></label>
            <button type="submit" class="rounded-md bg-blue-600 px-3 py-1.5 font-medium text-white hover:bg-blue-700">"Filter"</button>
        </form>
        <Transition fallback=|| view! { <div class="h-64 animate-pulse rounded-xl bg-slate-200"></div> }>
            {move || Suspend::new(async move {
                let p = match page.await { Ok(p) => p, Err(e) => return failed(e) };
                if p.rows.is_empty() {
                    return view! { <p class="rounded-lg border border-dashed border-slate-300 bg-white p-4 text-slate-600" data-testid="usage-empty">"No recorded usage matches."</p> }.into_any();
                }
                view! {
                    <section class=CARD>
                        <div class="mb-2 flex flex-wrap items-baseline justify-between gap-2">
                            <p class="text-sm text-slate-600" data-testid="usage-count">{format!("{} events · page {} of {}", format_count(p.total), p.page, p.pages)}</p>
                            <a class="text-sm text-blue-700 underline" href=p.csv_href.clone() download="" data-testid="usage-csv">"Download CSV (all pages)"</a>
                        </div>
                        <div class="overflow-x-auto" tabindex="0" role="region" aria-label="Usage events">
                        <table class="w-full text-sm" data-testid="usage-table">
                            <thead><tr><th class=TH>"When (UTC)"</th><th class=TH>"Provider"</th><th class=TH>"Model"</th><th class=TH>"Tags"</th><th class=TH>"Tokens in / out"</th><th class=TH>"Cost"</th><th class=TH>"Status"</th><th class=TH>"Time"</th></tr></thead>
                            <tbody>
                            {p.rows.into_iter().map(|r| {
                                let status = if r.status_code >= 400 { "failed" } else { "success" };
                                view! {
                                <tr class="border-t border-slate-100" data-provider=r.provider.clone() data-status=status>
                                    <td class=TD>{r.at}</td><td class=TD>{r.provider.clone()}</td><td class=TD>{r.model}</td>
                                    <td class=format!("{TD} text-xs text-slate-600") data-testid="usage-tags">{r.tags}</td>
                                    <td class=format!("{TD} tabular-nums")>
                                        {format!("{} / {}", format_count(r.tokens_input), format_count(r.tokens_output))}
                                        {r.estimated.then(|| view! { <span class="block text-xs text-amber-700" data-testid="usage-estimated" title="The provider's count never arrived (the stream was cut); estimated from the text at about four characters a token">"estimated"</span> })}
                                        {(!r.details.is_empty()).then(|| view! { <span class="block text-xs text-slate-600" data-testid="usage-details">{r.details.clone()}</span> })}
                                    </td>
                                    <td class=format!("{TD} tabular-nums")>
                                        {Nanos(r.cost_nanos).display()}{r.unpriced.then_some(" (unpriced)")}
                                        {(r.breakdown.contains(" · ")).then(|| view! { <span class="block text-xs text-slate-600" data-testid="cost-breakdown">{r.breakdown.clone()}</span> })}
                                    </td>
                                    <td class=TD>{if r.status_code >= 400 { format!("failed ({})", r.status_code) } else { "success".to_string() }}</td>
                                    <td class=format!("{TD} tabular-nums")>{r.response_ms.map(|ms| format!("{ms} ms")).unwrap_or_default()}</td>
                                </tr>
                            }}).collect_view()}
                            </tbody>
                        </table>
                        </div>
                        <nav class="mt-3 flex justify-between text-sm" aria-label="Pages">
                            {(p.page > 1).then(|| view! { <a class="text-blue-700 underline" href=link(None)>"Newest"</a> })}
                            <span></span>
                            {p.older.clone().map(|c| view! { <a class="text-blue-700 underline" href=link(Some((c, p.page + 1))) rel="next">"Older"</a> })}
                        </nav>
                        <p class="sr-only">{format!("{PAGE_SIZE} events per page")}</p>
                    </section>
                }.into_any()
            })}
        </Transition>
    }
}

#[component]
pub fn PlansPage() -> impl IntoView {
    view! { <RequireUser><PlanComparison/></RequireUser> }
}

#[component]
fn PlanComparison() -> impl IntoView {
    let change = ServerAction::<ChangeMyPlan>::new();
    let status = ServerAction::<ChangeMyStatus>::new();
    let plans = Resource::new(move || (change.version().get(), status.version().get()), |_| plan_choice());
    view! {
        <h1 class="mb-4 text-2xl font-semibold">"Plans"</h1>
        {move || match change.value().get() {
            Some(Ok(message)) => Some(view! { <p role="status" data-testid="plan-change-result" class="mb-4 rounded bg-green-50 p-3 text-sm text-green-800">{message}</p> }.into_any()),
            Some(Err(e)) => Some(view! { <p role="alert" class="mb-4 rounded bg-red-50 p-3 text-sm text-red-800">{e.to_string()}</p> }.into_any()),
            None => None,
        }}
        {move || match status.value().get() {
            Some(Ok(message)) => Some(view! { <p role="status" data-testid="status-change-result" class="mb-4 rounded bg-green-50 p-3 text-sm text-green-800">{message}</p> }.into_any()),
            Some(Err(e)) => Some(view! { <p role="alert" class="mb-4 rounded bg-red-50 p-3 text-sm text-red-800">{e.to_string()}</p> }.into_any()),
            None => None,
        }}
        <Transition fallback=|| view! { <div class="h-64 animate-pulse rounded-xl bg-slate-200"></div> }>
            {move || Suspend::new(async move {
                let c = match plans.await { Ok(c) => c, Err(e) => return failed(e) };
                let current_tier = c.plans.iter().find(|p| p.current).map(|p| (p.tier.clone(), p.monthly_nanos));
                let scheduled = c.scheduled.clone().map(|s| view! {
                    <p class="mb-4 rounded bg-blue-50 p-3 text-sm text-blue-900" data-testid="scheduled-change">
                        {format!("Scheduled: {s}. Choose your current plan and cycle again to cancel it.")}
                    </p>
                });
                let lifecycle = subscription_controls(status, &c.status, c.cancels_on.as_deref());
                view! {
                    {lifecycle}
                    {scheduled}
                    <p class="mb-4 text-sm text-slate-600">"Upgrades start at once, keep this period's usage and charge the price difference for the rest of the billing cycle. Downgrades and cycle changes start when the current cycle ends."</p>
                    <div class="grid grid-cols-1 gap-4 md:grid-cols-2 xl:grid-cols-4" data-testid="plan-cards">
                        {c.plans.into_iter().map(|p| {
                            let verb = match &current_tier {
                                _ if p.current => "Change cycle",
                                Some((_, m)) if p.monthly_nanos > *m => "Upgrade",
                                Some(_) => "Downgrade",
                                None => "Choose",
                            };
                            let cycle = c.current_cycle.clone();
                            let (cycle_label, action_label) = (format!("Billing cycle for {}", p.name), format!("{verb}: {}", p.name));
                            view! {
                                <section class=format!("{CARD} {}", if p.current { "ring-2 ring-blue-600" } else { "" }) data-plan=p.name.clone() data-current=p.current.to_string()>
                                    <h2 class="text-lg font-semibold">{p.name.clone()}{p.current.then(|| view! { <span class="ml-2 rounded-full bg-blue-100 px-2 py-0.5 text-xs text-blue-800">"Current plan"</span> })}</h2>
                                    <p class="text-2xl font-semibold">{format!("{}/mo", Nanos(p.monthly_nanos).display_plain())}</p>
                                    <p class="text-sm text-slate-500">{format!("or {}/yr", Nanos(p.yearly_nanos).display_plain())}</p>
                                    <p class="mt-2 text-sm">{p.description.clone()}</p>
                                    <ul class="mt-2 list-disc pl-5 text-sm">{p.features.iter().map(|f| view! { <li>{f.clone()}</li> }).collect_view()}</ul>
                                    <details class="mt-2 text-sm"><summary class="cursor-pointer">"Limits per month"</summary>
                                        <ul class="mt-1">{if p.limits.is_empty() { view! { <li>"Unlimited"</li> }.into_any() } else { p.limits.iter().map(|(k, v)| view! { <li class="flex justify-between"><span>{k.clone()}</span><span class="tabular-nums">{v.clone()}</span></li> }).collect_view().into_any() }}</ul>
                                    </details>
                                    <ActionForm action=change attr:class="mt-3 flex flex-wrap items-end gap-2">
                                        <input type="hidden" name="plan_id" value=p.id.to_string()/>
                                        <label class="text-xs">"Billing"
                                            <select name="billing_cycle" class=INPUT aria-label=cycle_label>
                                                <option value="monthly" selected=cycle == "monthly">"Monthly"</option>
                                                <option value="yearly" selected=cycle == "yearly">"Yearly"</option>
                                            </select>
                                        </label>
                                        <button type="submit" class="rounded-md bg-blue-600 px-3 py-1.5 text-sm font-medium text-white hover:bg-blue-700" aria-label=action_label>{verb}</button>
                                    </ActionForm>
                                </section>
                            }
                        }).collect_view()}
                    </div>
                }.into_any()
            })}
        </Transition>
    }
}

/// The subscription's state and what the user can do about it.
fn subscription_controls(action: ServerAction<ChangeMyStatus>, status: &str, cancels_on: Option<&str>) -> AnyView {
    let button = "rounded-md border border-slate-300 bg-white px-3 py-1.5 text-sm hover:bg-slate-100";
    let form = move |act: &'static str, at: &'static str, label: &'static str| {
        view! {
            <ActionForm action=action attr:class="inline">
                <input type="hidden" name="action" value=act/>
                <input type="hidden" name="at" value=at/>
                <button type="submit" class=button>{label}</button>
            </ActionForm>
        }
    };
    let (text, controls) = match (status, cancels_on) {
        ("active", None) => (
            "Your subscription is active.".to_string(),
            view! { {form("cancel", "period_end", "Cancel at the end of this cycle")} {form("cancel", "now", "Cancel now")} {form("pause", "", "Pause")} }.into_any(),
        ),
        ("active", Some(day)) => (format!("Your subscription ends on {day}."), form("resume", "", "Keep my subscription").into_any()),
        ("paused", _) => ("Your subscription is paused: nothing is admitted.".to_string(), form("resume", "", "Resume").into_any()),
        (_, _) => ("Your subscription is cancelled.".to_string(), form("resume", "", "Resume").into_any()),
    };
    view! {
        <section class="mb-4 flex flex-wrap items-center gap-2 rounded-xl border border-slate-200 bg-white p-4" data-testid="subscription-controls" data-status=status.to_string()>
            <p class="mr-2 text-sm font-medium">{text}</p>
            {controls}
        </section>
    }
    .into_any()
}

#[component]
pub fn BillingPage() -> impl IntoView {
    view! { <RequireUser><Billing/></RequireUser> }
}

#[component]
fn Billing() -> impl IntoView {
    let query = use_query_map();
    let history = Resource::new(move || query.read().get("user"), billing_history);
    view! {
        <h1 class="mb-4 text-2xl font-semibold">"Billing history"</h1>
        <Transition fallback=|| view! { <div class="h-64 animate-pulse rounded-xl bg-slate-200"></div> }>
            {move || Suspend::new(async move {
                let h = match history.await { Ok(h) => h, Err(e) => return failed(e) };
                view! {
                    <section class=CARD>
                        <div class="flex flex-wrap items-center justify-between gap-2">
                            <h2 class="text-lg font-semibold">"Closed periods"</h2>
                            <span class="flex gap-4 text-sm">
                                <a class="text-blue-700 underline" href=format!("/api/billing/{}/history.csv", h.user_id) download="" data-testid="billing-csv">"Download CSV"</a>
                                <a class="text-blue-700 underline" href=format!("/api/usage/{}/export/focus", h.user_id) download="" data-testid="focus-export" title="This period's usage in the FinOps Foundation's FOCUS 1.2 format">"FOCUS export"</a>
                            </span>
                        </div>
                        {if h.bills.is_empty() { view! { <p class="mt-2 text-sm text-slate-600">"No closed periods yet: the first bill appears when this period ends."</p> }.into_any() } else { view! {
                            <div class="overflow-x-auto" tabindex="0" role="region" aria-label="Closed periods"><table class="mt-2 w-full text-sm" data-testid="billing-table">
                                <thead><tr><th class=TH>"Period"</th><th class=TH>"Plan"</th><th class=TH>"Plan fee"</th><th class=TH>"Usage"</th><th class=TH>"Total"</th><th class=TH>"Status"</th></tr></thead>
                                <tbody>{h.bills.iter().map(|b| view! {
                                    <tr class="border-t border-slate-100"><td class=TD>{format!("{} ({} – {})", b.period, b.from, b.to)}</td><td class=TD>{b.plan.clone()}</td>
                                    <td class=format!("{TD} tabular-nums")>{Nanos(b.plan_fee_nanos).display()}</td><td class=format!("{TD} tabular-nums")>{Nanos(b.usage_nanos).display()}</td>
                                    <td class=format!("{TD} tabular-nums font-medium")>{Nanos(b.total_nanos).display()}</td><td class=TD>{b.status.clone()}</td></tr>
                                }).collect_view()}</tbody>
                            </table></div>
                        }.into_any() }}
                    </section>
                    <section class=format!("mt-4 {CARD}")>
                        <div class="flex flex-wrap items-center justify-between gap-2">
                            <h2 class="text-lg font-semibold">"Renewals and plan changes"</h2>
                            <a class="text-sm text-blue-700 underline" href=format!("/api/billing/{}/renewals.csv", h.user_id) download="" data-testid="renewals-csv">"Download CSV"</a>
                        </div>
                        <div class="overflow-x-auto" tabindex="0" role="region" aria-label="Renewals and plan changes"><table class="mt-2 w-full text-sm" data-testid="renewals-table">
                            <thead><tr><th class=TH>"Date"</th><th class=TH>"Change"</th><th class=TH>"Plan"</th><th class=TH>"Cycle"</th><th class=TH>"New period"</th><th class=TH>"Amount"</th><th class=TH>"Payment"</th></tr></thead>
                            <tbody>{h.renewals.iter().map(|r| view! {
                                <tr class="border-t border-slate-100"><td class=TD>{r.at.clone()}</td><td class=TD>{r.kind.clone()}</td>
                                <td class=TD>{if r.previous_plan.is_empty() || r.previous_plan == r.plan { r.plan.clone() } else { format!("{} → {}", r.previous_plan, r.plan) }}</td>
                                <td class=TD>{r.cycle.clone()}</td><td class=TD>{r.new_period.clone()}</td>
                                <td class=format!("{TD} tabular-nums")>{Nanos(r.amount_nanos).display()}</td><td class=TD>{r.payment_status.clone()}</td></tr>
                            }).collect_view()}</tbody>
                        </table></div>
                    </section>
                }.into_any()
            })}
        </Transition>
        <super::wallet::WalletStatement/>
    }
}
