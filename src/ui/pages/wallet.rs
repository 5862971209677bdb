//! Prepaid credits for people: the balance card (with its burn-down and
//! grants) on the dashboard and the admin's wallet page, and the statement
//! on `/billing`. Every figure is the server's; without JavaScript the
//! card, its table and the statement's pages all read the same.

use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

use crate::api::wallet::{STATEMENT_PAGE, WalletCard, get_wallet, wallet_statement};
use crate::domain::money::Nanos;
use crate::ui::components::charts::{EChart, balance_chart};

const CARD: &str = "rounded-xl border border-slate-200 bg-white p-4 shadow-sm sm:p-6";
const TH: &str = "px-2 py-2 text-left font-medium text-slate-500";
const TD: &str = "px-2 py-1.5";

/// The customer's wallet (the page's resource: made with the page, so
/// the server's answer hydrates); nothing at all for a customer who is
/// postpaid and was never credited.
#[component]
pub fn WalletPanel(wallet: Resource<Result<Option<WalletCard>, ServerFnError>>) -> impl IntoView {
    view! {
        <Transition fallback=|| view! { <div class="mt-4 h-40 animate-pulse rounded-xl bg-slate-200"></div> }>
            {move || Suspend::new(async move {
                match wallet.await {
                    Ok(Some(w)) => view! { <WalletCardView w/> }.into_any(),
                    Ok(None) => ().into_any(),
                    Err(e) => view! { <p role="alert" class="mt-4 rounded bg-red-50 p-3 text-red-800">{format!("Could not load the wallet: {e}")}</p> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn WalletCardView(w: WalletCard) -> impl IntoView {
    let low = w.low_balance_threshold_nanos.is_some_and(|t| w.available_nanos < t) || w.available_nanos <= 0;
    let labels: Vec<String> = w.burn_down.iter().map(|(d, _)| d.clone()).collect();
    let usd: Vec<f64> = w.burn_down.iter().map(|(_, b)| Nanos(*b).as_f64_usd()).collect();
    let chart = Signal::derive(move || balance_chart(&labels, &usd));
    let open: Vec<_> = w.grants.iter().filter(|g| g.status == "active" || g.status == "pending").cloned().collect();
    view! {
        <section data-testid="wallet-card" class=format!("mt-4 {CARD}") aria-labelledby="wallet-title">
            <div class="flex flex-wrap items-baseline justify-between gap-2">
                <h2 id="wallet-title" class="text-lg font-semibold">"Prepaid credits"</h2>
                <span class="text-sm text-slate-600">{if w.prepaid { "Calls spend these credits" } else { "Your plan bills after the period; these credits are kept" }}</span>
            </div>
            <dl class="mt-3 grid grid-cols-1 gap-4 sm:grid-cols-3">
                <div class=if low { "rounded-lg bg-red-50 p-4" } else { "rounded-lg bg-slate-50 p-4" }>
                    <dt class="text-sm text-slate-600">"Available"</dt>
                    <dd class="mt-1 text-2xl font-semibold tabular-nums" data-testid="wallet-available">{Nanos(w.available_nanos).display()}</dd>
                </div>
                <div class="rounded-lg bg-slate-50 p-4">
                    <dt class="text-sm text-slate-600">"Balance"</dt>
                    <dd class="mt-1 text-2xl font-semibold tabular-nums" data-testid="wallet-balance">{Nanos(w.balance_nanos).display()}</dd>
                </div>
                <div class="rounded-lg bg-slate-50 p-4">
                    <dt class="text-sm text-slate-600">"Held for calls in flight"</dt>
                    <dd class="mt-1 text-2xl font-semibold tabular-nums" data-testid="wallet-held">{Nanos(w.held_nanos).display()}</dd>
                </div>
            </dl>
            <p class="mt-3 text-sm text-slate-700" data-testid="wallet-runs-out">{match (&w.runs_out_on, w.available_nanos <= 0) {
                (_, true) => "Nothing is available: calls are refused until credits are added.".to_string(),
                (Some(d), false) => format!("At the last week's rate of spending, the credits run out around {d}."),
                (None, false) => "Nothing was spent in the last week.".to_string(),
            }}{w.next_change.as_ref().map(|t| format!(" Next change: a grant starts or expires on {t}."))}</p>
            <EChart id="wallet-burn-chart" chart height=200 label="Stepped line of the prepaid balance at the end of each day of this period".to_string() table="wallet-burn-table"/>
            <details class="mt-2 text-sm">
                <summary class="cursor-pointer text-slate-600">"Balance by day"</summary>
                <table class="mt-2 w-full" id="wallet-burn-table" data-testid="wallet-burn-table">
                    <caption class="sr-only">"Balance at the end of each day"</caption>
                    <thead><tr><th class=TH>"Day"</th><th class=TH>"Balance"</th></tr></thead>
                    <tbody>{w.burn_down.iter().map(|(d, b)| view! { <tr class="border-t border-slate-100"><td class=TD>{d.clone()}</td><td class=format!("{TD} tabular-nums")>{Nanos(*b).display()}</td></tr> }).collect_view()}</tbody>
                </table>
            </details>
            <h3 class="mt-4 font-medium">"Grants"</h3>
            {if open.is_empty() {
                view! { <p class="text-sm text-slate-600" data-testid="wallet-no-grants">"No credits are open."</p> }.into_any()
            } else {
                view! {
                    <div class="overflow-x-auto" tabindex="0" role="region" aria-label="Open grants">
                        <table class="mt-1 w-full text-sm" data-testid="wallet-grants">
                            <thead><tr><th class=TH>"Credits"</th><th class=TH>"Left"</th><th class=TH>"Expires"</th><th class=TH>"From"</th></tr></thead>
                            <tbody>{open.into_iter().map(|g| view! {
                                <tr class="border-t border-slate-100" data-grant=g.id.clone()>
                                    <td class=TD>{format!("{} {}", Nanos(g.amount_nanos).display(), g.kind)}{(g.status == "pending").then_some(" (not yet effective)")}</td>
                                    <td class=format!("{TD} tabular-nums")>{Nanos(g.remaining_nanos).display()}</td>
                                    <td class=TD>{g.expires.clone().unwrap_or_else(|| "never".into())}</td>
                                    <td class=TD>{g.source.replace('_', " ")}{g.note.map(|n| format!(" · {n}"))}</td>
                                </tr>
                            }).collect_view()}</tbody>
                        </table>
                    </div>
                }.into_any()
            }}
        </section>
    }
}

/// The wallet's statement on `/billing`, newest first, in pages that follow
/// `?wallet_cursor=`, with the whole of it as CSV.
#[component]
pub fn WalletStatement() -> impl IntoView {
    let query = use_query_map();
    let page = Resource::new(
        move || (query.read().get("user"), query.read().get("wallet_cursor")),
        |(user, cursor)| async move {
            let card = get_wallet(user.clone()).await?;
            let page = wallet_statement(user, cursor).await?;
            Ok::<_, ServerFnError>((card, page))
        },
    );
    view! {
        <Transition fallback=|| view! { <div class="mt-6 h-32 animate-pulse rounded-xl bg-slate-200"></div> }>
            {move || Suspend::new(async move {
                let (card, page) = match page.await {
                    Ok(p) => p,
                    Err(e) => return view! { <p role="alert" class="mt-6 rounded bg-red-50 p-3 text-red-800">{format!("Could not load the wallet statement: {e}")}</p> }.into_any(),
                };
                let Some(card) = card else { return ().into_any() };
                let csv = format!("/api/wallet/{}/ledger?format=csv", crate::domain::links::urlencode(&card.user_id));
                let user = query.read_untracked().get("user");
                let next = page.next_cursor.clone().map(|c| match &user {
                    Some(u) => format!("/billing?user={}&wallet_cursor={c}", crate::domain::links::urlencode(u)),
                    None => format!("/billing?wallet_cursor={c}"),
                });
                view! {
                    <section class=format!("mt-6 {CARD}") data-testid="wallet-statement" aria-labelledby="statement-title">
                        <div class="flex flex-wrap items-baseline justify-between gap-2">
                            <h2 id="statement-title" class="text-lg font-semibold">"Credits statement"</h2>
                            <a href=csv class="text-sm text-blue-700 underline" data-testid="wallet-csv" download>"Download CSV"</a>
                        </div>
                        {if page.rows.is_empty() {
                            view! { <p class="mt-2 text-sm text-slate-600">"No credits have moved yet."</p> }.into_any()
                        } else {
                            view! {
                                <div class="mt-2 overflow-x-auto" tabindex="0" role="region" aria-label="Credits statement">
                                    <table class="w-full text-sm">
                                        <thead><tr><th class=TH>"When"</th><th class=TH>"What"</th><th class=TH>"Amount"</th><th class=TH>"Balance after"</th><th class=TH>"Detail"</th></tr></thead>
                                        <tbody>{page.rows.iter().map(|r| view! {
                                            <tr class="border-t border-slate-100" data-testid="statement-row" data-kind=r.kind.clone()>
                                                <td class=TD>{r.at.clone()}</td>
                                                <td class=TD>{r.kind.clone()}</td>
                                                <td class=format!("{TD} tabular-nums")>{Nanos(r.amount_nanos).display()}</td>
                                                <td class=format!("{TD} tabular-nums")>{Nanos(r.balance_after_nanos).display()}</td>
                                                <td class=TD>{r.event_id.clone().map(|e| format!("event {e}")).or(r.note.clone())}</td>
                                            </tr>
                                        }).collect_view()}</tbody>
                                    </table>
                                </div>
                                {next.map(|href| view! { <a class="mt-2 inline-block text-sm text-blue-700 underline" href=href data-testid="statement-older">{format!("Older ({STATEMENT_PAGE} per page)")}</a> })}
                            }.into_any()
                        }}
                    </section>
                }.into_any()
            })}
        </Transition>
    }
}
