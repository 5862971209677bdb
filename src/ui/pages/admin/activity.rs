//! What happened: admin alerts and the audit log.

use super::*;

#[component]
pub fn AdminAlertsPage() -> impl IntoView {
    view! { <RequireAdmin><AdminFrame title="Alerts"><AlertsView/></AdminFrame></RequireAdmin> }
}

#[component]
fn AlertsView() -> impl IntoView {
    let alerts = Resource::new(|| (), |_| admin_alerts());
    view! {
        <Suspense fallback=|| view! { <p>"Loading alerts…"</p> }>
            {move || Suspend::new(async move {
                let list = match alerts.await { Ok(l) => l, Err(e) => return load_error(e) };
                if list.is_empty() {
                    return view! { <p class="text-slate-600">"No alerts yet."</p> }.into_any();
                }
                view! {
                    <ul class="space-y-2" data-testid="admin-alerts">
                        {list.into_iter().map(|a| {
                            let tone = match a.severity.as_str() { "error" => "border-red-300 bg-red-50", "warning" => "border-amber-300 bg-amber-50", _ => "border-blue-200 bg-blue-50" };
                            view! {
                                <li class=format!("rounded-lg border p-3 {tone}")>
                                    <div class="flex flex-wrap justify-between gap-2 text-sm"><span class="font-medium">{a.title}</span><span class="text-slate-600">{format!("{} · {}{}", a.user.unwrap_or_default(), a.created_at, if a.is_read { " · read" } else { "" })}</span></div>
                                    <p class="text-sm text-slate-700">{a.message}</p>
                                </li>
                            }
                        }).collect_view()}
                    </ul>
                }.into_any()
            })}
        </Suspense>
    }
}

#[component]
pub fn AdminAuditPage() -> impl IntoView {
    view! { <RequireAdmin><AdminFrame title="Audit log"><AuditView/></AdminFrame></RequireAdmin> }
}

#[component]
fn AuditView() -> impl IntoView {
    let query = use_query_map();
    let entries = Resource::new(
        move || (query.read().get("entity_type"), query.read().get("actor")),
        |(e, a)| audit_entries(e, a),
    );
    let types = ["", "plan", "price", "user", "api_key"];
    view! {
        <form method="get" class="mb-4 flex flex-wrap items-end gap-2" role="search">
            <label class="text-sm">"What"
                <select name="entity_type" class=INPUT>
                    {types.into_iter().map(|t| view! { <option value=t selected=move || query.read().get("entity_type").unwrap_or_default() == t>{if t.is_empty() { "everything" } else { t }}</option> }).collect_view()}
                </select>
            </label>
            <label class="text-sm">"Who (e.g. user:admin)"<input name="actor" class=INPUT value=move || query.read().get("actor").unwrap_or_default()/></label>
            <button type="submit" class=BUTTON>"Filter"</button>
        </form>
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                let rows = match entries.await { Ok(r) => r, Err(e) => return load_error(e) };
                view! {
                    <DataTable testid="audit-table" label="Audit trail" headers=&["When", "Who", "What", "Before", "After"]>
                        {rows.into_iter().map(|r| view! {
                            <tr class="border-t border-slate-100">
                                <td class=TD>{r.at}</td><td class=TD>{r.actor}</td><td class=TD>{format!("{} · {}", r.action, r.entity)}</td>
                                <td class=TD><code class="break-all text-xs">{r.before}</code></td><td class=TD><code class="break-all text-xs">{r.after}</code></td>
                            </tr>
                        }).collect_view()}
                    </DataTable>
                }.into_any()
            })}
        </Suspense>
    }
}
