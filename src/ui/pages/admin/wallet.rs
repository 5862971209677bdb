//! A customer's wallet: the balance card, and grant, adjust and void with
//! a reason (each audited). `/admin/wallet?user=ID`.

use super::*;
use crate::api::wallet::{
    AdminAdjustWallet, AdminGrantCredits, AdminRefundEvent, AdminSetLowBalance, AdminVoidGrant, admin_wallet,
};
use crate::domain::money::Nanos;

#[component]
pub fn AdminWalletPage() -> impl IntoView {
    view! { <RequireAdmin><AdminFrame title="Wallets"><WalletView/></AdminFrame></RequireAdmin> }
}

#[component]
fn WalletView() -> impl IntoView {
    let query = use_query_map();
    let user = move || query.read().get("user").filter(|u| !u.trim().is_empty());
    let grant = ServerAction::<AdminGrantCredits>::new();
    let adjust = ServerAction::<AdminAdjustWallet>::new();
    let void = ServerAction::<AdminVoidGrant>::new();
    let low = ServerAction::<AdminSetLowBalance>::new();
    let refund = ServerAction::<AdminRefundEvent>::new();
    let wallet = Resource::new(
        move || {
            let versions =
                [grant.version(), adjust.version(), void.version(), low.version(), refund.version()].map(|v| v.get());
            (user(), versions)
        },
        |(user, ..)| async move {
            match user {
                Some(u) => admin_wallet(u).await.map(Some),
                None => Ok(None),
            }
        },
    );
    let granted = outcome_of(grant.value(), path::<AdminGrantCredits>());
    let grant_err = move |name: &'static str| {
        move || {
            field_error(&granted.get(), name)
                .map(|e| view! { <p class="mt-1 text-xs text-red-700" role="alert">{e}</p> })
        }
    };
    view! {
        <form method="get" class="mb-4 flex flex-wrap items-end gap-2" role="search" aria-label="Find a customer's wallet">
            <label class="text-sm">"Customer (user id)"<input name="user" class=INPUT value=move || user().unwrap_or_default() data-testid="wallet-user"/></label>
            <button type="submit" class=BUTTON>"Open wallet"</button>
        </form>
        {move || form_banner(granted.get(), "Credits granted.")}
        {move || form_banner(outcome_of(adjust.value(), path::<AdminAdjustWallet>()).get(), "Balance adjusted.")}
        {move || row_form_banner(outcome_of(void.value(), path::<AdminVoidGrant>()).get(), "Grant voided.")}
        {move || row_form_banner(outcome_of(low.value(), path::<AdminSetLowBalance>()).get(), "Low-balance warning saved.")}
        {move || row_form_banner(outcome_of(refund.value(), path::<AdminRefundEvent>()).get(), "Event refunded.")}
        <Transition fallback=|| view! { <p>"Loading the wallet…"</p> }>
            {move || Suspend::new(async move {
                let (w, key) = match wallet.await {
                    Ok(Some(w)) => w,
                    Ok(None) => return view! { <p class="text-sm text-slate-600">"Enter a user id to see and change that customer's credits."</p> }.into_any(),
                    Err(e) => return load_error(e),
                };
                let user_id = w.user_id.clone();
                let open: Vec<_> = w.grants.iter().filter(|g| g.status == "active" || g.status == "pending").cloned().collect();
                let rows = open.into_iter().map(|g| { let user_id = user_id.clone(); view! {
                            <tr class="border-t border-slate-100">
                                <td class=TD>{format!("{} {}", Nanos(g.amount_nanos).display(), g.kind)}<div class="text-slate-500"><code>{g.id.clone()}</code></div></td>
                                <td class=TD>{Nanos(g.remaining_nanos).display()}</td>
                                <td class=TD>{g.expires.clone().unwrap_or_else(|| "never".into())}</td>
                                <td class=TD>{g.source.clone()}{g.note.clone().map(|n| format!(" · {n}"))}</td>
                                <td class=TD>
                                    <ActionForm action=void attr:class="flex gap-2">
                                        <input type="hidden" name="user_id" value=user_id.clone()/>
                                        <input type="hidden" name="grant_id" value=g.id.clone()/>
                                        <label class="sr-only" for=format!("void-{}", g.id)>{format!("Reason to void {}", g.id)}</label>
                                        <input id=format!("void-{}", g.id) name="reason" class=INPUT placeholder="reason" required/>
                                        <button type="submit" class="text-red-700 underline">"Void"</button>
                                    </ActionForm>
                                </td>
                            </tr>
                }}).collect_view();
                let (grant_key, adjust_key) = (format!("{key}-grant"), format!("{key}-adjust"));
                let (grant_user, adjust_user) = (user_id.clone(), user_id.clone());
                let (low_user, refund_user) = (user_id.clone(), user_id.clone());
                let rule = w.low_balance_rule.clone();
                let statement = format!("/billing?user={}", crate::domain::links::urlencode(&user_id));
                view! {
                    <section class="mb-6 rounded-xl border border-slate-200 bg-white p-4" data-testid="admin-wallet">
                        <h2 class="font-semibold">{format!("Wallet of {}", user_id)}</h2>
                        <p class="text-sm text-slate-700" data-testid="admin-wallet-figures">{format!(
                            "Balance {} · held {} · available {} · {}",
                            Nanos(w.balance_nanos).display(), Nanos(w.held_nanos).display(), Nanos(w.available_nanos).display(),
                            if w.prepaid { "prepaid plan" } else { "postpaid plan (credits are not spent)" })}</p>
                        <p class="text-sm"><a class="text-blue-700 underline" href=statement>"Statement"</a></p>
                    </section>
                    <section class="mb-6 rounded-xl border border-blue-200 bg-white p-4" data-testid="grant-form">
                        <h2 class="font-semibold">"Grant credits"</h2>
                        <ActionForm action=grant attr:class="mt-3 grid grid-cols-1 gap-3 sm:grid-cols-3">
                            <input type="hidden" name="grant[user_id]" value=grant_user/>
                            <input type="hidden" name="grant[idempotency_key]" value=grant_key/>
                            <label class="text-sm">"Amount (USD)"<input name="grant[amount]" class=INPUT inputmode="decimal" placeholder="e.g. 50"/>{grant_err("amount")}</label>
                            <label class="text-sm">"Kind"
                                <select name="grant[kind]" class=INPUT>
                                    <option value="paid">"Paid"</option>
                                    <option value="promotional">"Promotional"</option>
                                </select>{grant_err("kind")}
                            </label>
                            <label class="text-sm">"Priority (higher spends first)"<input name="grant[priority]" class=INPUT inputmode="numeric" value="0"/>{grant_err("priority")}</label>
                            <label class="text-sm">"Expires (UTC; empty: never)"<input type="datetime-local" name="grant[expires_at]" class=INPUT/>{grant_err("expires_at")}</label>
                            <label class="text-sm sm:col-span-2">"Note"<input name="grant[note]" class=INPUT placeholder="e.g. refund for the outage"/>{grant_err("note")}</label>
                            <div class="sm:col-span-3"><button type="submit" class=BUTTON>"Grant"</button></div>
                        </ActionForm>
                    </section>
                    <section class="mb-6 rounded-xl border border-slate-200 bg-white p-4" data-testid="adjust-form">
                        <h2 class="font-semibold">"Adjust the balance"</h2>
                        <ActionForm action=adjust attr:class="mt-3 flex flex-wrap items-end gap-3">
                            <input type="hidden" name="user_id" value=adjust_user/>
                            <input type="hidden" name="idempotency_key" value=adjust_key/>
                            <label class="text-sm">"Amount (USD, negative takes away)"<input name="amount" class=INPUT inputmode="decimal" placeholder="e.g. -5"/></label>
                            <label class="text-sm">"Reason"<input name="reason" class=INPUT required/></label>
                            <button type="submit" class=BUTTON>"Adjust"</button>
                        </ActionForm>
                    </section>
                    <section class="mb-6 grid grid-cols-1 gap-4 md:grid-cols-2">
                        <div class="rounded-xl border border-slate-200 bg-white p-4" data-testid="low-balance-form">
                            <h2 class="font-semibold">"Low-balance warning"</h2>
                            <ActionForm action=low attr:class="mt-3 flex flex-wrap items-end gap-3">
                                <input type="hidden" name="user_id" value=low_user/>
                                <label class="text-sm">"Warn below (USD, or a percent of the last top-up such as 20%)"<input name="threshold" class=INPUT value=rule/></label>
                                <button type="submit" class=BUTTON>"Save"</button>
                            </ActionForm>
                        </div>
                        <div class="rounded-xl border border-slate-200 bg-white p-4" data-testid="refund-form">
                            <h2 class="font-semibold">"Refund an event"</h2>
                            <ActionForm action=refund attr:class="mt-3 flex flex-wrap items-end gap-3">
                                <input type="hidden" name="user_id" value=refund_user/>
                                <label class="text-sm">"Event id"<input name="event_id" class=INPUT required/></label>
                                <label class="text-sm">"Reason"<input name="reason" class=INPUT required/></label>
                                <button type="submit" class=BUTTON>"Refund"</button>
                            </ActionForm>
                        </div>
                    </section>
                    <DataTable testid="admin-grants" label="Open grants" headers=&["Grant", "Left", "Expires", "From", ""]>
                        {rows}
                    </DataTable>
                }.into_any()
            })}
        </Transition>
    }
}
