//! Webhooks: register endpoints (the signing secret shown once), see each
//! endpoint's deliveries with their attempts and response codes, replay
//! one, delete an endpoint.

use super::*;
use crate::api::webhooks::{
    CreateWebhook, DeleteWebhook, ReplayDelivery, checkbox_name, webhook_deliveries, webhook_endpoints,
};
use crate::domain::webhooks::{Delivery, DeliveryStatus, EventType};

#[component]
pub fn AdminWebhooksPage() -> impl IntoView {
    view! { <RequireAdmin><AdminFrame title="Webhooks"><WebhooksView/></AdminFrame></RequireAdmin> }
}

fn when(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string()).unwrap_or_else(|| "—".into())
}

fn status_badge(s: DeliveryStatus) -> impl IntoView {
    let class = match s {
        DeliveryStatus::Delivered => "rounded bg-green-100 px-2 py-0.5 text-green-900",
        DeliveryStatus::Pending => "rounded bg-amber-100 px-2 py-0.5 text-amber-900",
        DeliveryStatus::Failed => "rounded bg-red-100 px-2 py-0.5 text-red-900",
        DeliveryStatus::Cancelled => "rounded bg-slate-100 px-2 py-0.5 text-slate-700",
    };
    view! { <span class=class data-testid="delivery-status">{s.as_str()}</span> }
}

#[component]
fn WebhooksView() -> impl IntoView {
    let create = ServerAction::<CreateWebhook>::new();
    let delete = ServerAction::<DeleteWebhook>::new();
    let endpoints = Resource::new(move || (create.version().get(), delete.version().get()), |_| webhook_endpoints());
    let query = use_query_map();
    view! {
        <section class="mb-6 rounded-xl border border-slate-200 bg-white p-4">
            <h2 class="font-semibold">"New endpoint"</h2>
            <p class="mt-1 text-sm text-slate-600">
                "Each delivery is a POST of "<code>"{id, type, created_at, data}"</code>" signed with "
                <code>"Tally-Webhook-Signature: v1=hex(HMAC-SHA256(secret, \"<timestamp>.<body>\"))"</code>
                "; a non-2xx answer is retried with backoff for a day, with the same "<code>"Tally-Webhook-Id"</code>"."
            </p>
            <ActionForm action=create attr:class="mt-3 grid gap-3 md:grid-cols-2">
                <label class="text-sm">"URL"<input name="hook[url]" type="url" required placeholder="https://example.com/tally-hooks" class=INPUT data-testid="webhook-url"/></label>
                <label class="text-sm">"Description (optional)"<input name="hook[description]" class=INPUT/></label>
                <fieldset class="text-sm md:col-span-2">
                    <legend class="font-medium">"Events"</legend>
                    <div class="mt-1 grid gap-1 md:grid-cols-2">
                        {EventType::ALL.into_iter().map(|t| view! {
                            <label class="flex items-start gap-2">
                                <input type="checkbox" name=format!("hook[{}]", checkbox_name(t)) data-testid=format!("webhook-event-{}", t.as_str())/>
                                <span><code>{t.as_str()}</code><span class="text-slate-500">{format!(": {}", t.describe())}</span></span>
                            </label>
                        }).collect_view()}
                    </div>
                </fieldset>
                <div><button type="submit" class=BUTTON data-testid="webhook-create">"Add endpoint"</button></div>
            </ActionForm>
            {move || match create.value().get() {
                Some(Ok(Ok(secret))) => Some(view! {
                    <div role="status" class="mt-3 rounded bg-green-50 p-3 text-sm">
                        <p class="font-medium text-green-900">"Endpoint added. Copy its signing secret now; it is not shown again."</p>
                        <code class="mt-1 block break-all" data-testid="webhook-secret">{secret}</code>
                    </div>
                }.into_any()),
                Some(Ok(Err(e))) => Some(view! { <p role="alert" class="mt-2 rounded bg-red-50 p-2 text-sm text-red-800">{e.message}</p> }.into_any()),
                Some(Err(e)) => Some(view! { <p role="alert" class="mt-2 rounded bg-red-50 p-2 text-sm text-red-800">{e.to_string()}</p> }.into_any()),
                None => None,
            }}
        </section>
        <Suspense fallback=|| view! { <p>"Loading endpoints…"</p> }>
            {move || Suspend::new(async move {
                let rows = match endpoints.await { Ok(r) => r, Err(e) => return load_error(e) };
                if rows.is_empty() {
                    return view! {
                        <p class="rounded-xl border border-dashed border-slate-300 p-6 text-center text-sm text-slate-600" data-testid="webhooks-empty">
                            "No endpoints yet. Add one above to have alerts, spikes, closed periods, unpriced models and plan changes sent to your systems."
                        </p>
                    }.into_any();
                }
                view! {
                    <DataTable testid="webhooks-table" label="Webhook endpoints" headers=&["Endpoint", "Events", "Delivered", "Pending", "Failed", "Created", ""]>
                        {rows.into_iter().map(|e| {
                            let href = format!("/admin/webhooks?endpoint={}", e.id);
                            let failed_class = if e.failed > 0 { "px-2 py-2 align-top text-red-700" } else { TD };
                            view! {
                                <tr class="border-t border-slate-100" data-testid="webhook-row">
                                    <td class=TD><a href=href class="break-all text-blue-700 underline">{e.url.clone()}</a><div class="text-slate-500">{e.description.clone()}</div></td>
                                    <td class=TD>{e.events.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", ")}</td>
                                    <td class=TD>{e.delivered}</td>
                                    <td class=TD>{e.pending}</td>
                                    <td class=failed_class>{e.failed}</td>
                                    <td class=TD>{when(Some(e.created_at))}</td>
                                    <td class=TD>
                                        <ActionForm action=delete>
                                            <input type="hidden" name="id" value=e.id.clone()/>
                                            <button type="submit" class="text-red-700 underline">"Delete"</button>
                                        </ActionForm>
                                    </td>
                                </tr>
                            }
                        }).collect_view()}
                    </DataTable>
                }.into_any()
            })}
        </Suspense>
        {move || query.read().get("endpoint").map(|id| view! { <Deliveries id=id/> })}
    }
}

/// One endpoint's deliveries, with replay.
#[component]
fn Deliveries(id: String) -> impl IntoView {
    let replay = ServerAction::<ReplayDelivery>::new();
    let list = {
        let id = id.clone();
        Resource::new(move || replay.version().get(), move |_| webhook_deliveries(id.clone()))
    };
    view! {
        <section class="mt-6" data-testid="webhook-deliveries">
            <Suspense fallback=|| view! { <p>"Loading deliveries…"</p> }>
                {move || {
                    let id = id.clone();
                    Suspend::new(async move {
                        let (endpoint, rows) = match list.await { Ok(r) => r, Err(e) => return load_error(e) };
                        let title = format!("Deliveries to {}", endpoint.url);
                        let body = if rows.is_empty() {
                            view! { <p class="text-sm text-slate-600">"Nothing sent yet: deliveries appear here when a subscribed event happens."</p> }.into_any()
                        } else {
                            view! {
                                <DataTable testid="deliveries-table" label="Deliveries" headers=&["Event", "Type", "Status", "Attempts", "Response", "Last attempt", "Next attempt", ""]>
                                    {rows.into_iter().map(|d| delivery_row(id.clone(), d, replay)).collect_view()}
                                </DataTable>
                            }.into_any()
                        };
                        view! {
                            <h2 class="mb-2 font-semibold break-all">{title}</h2>
                            {body}
                            {move || row_form_banner(replay.value().get().map(|r| r.map(|()| None)), "Queued: it is sent again within a second.")}
                        }.into_any()
                    })
                }}
            </Suspense>
        </section>
    }
}

fn delivery_row(endpoint: String, d: Delivery, replay: ServerAction<ReplayDelivery>) -> impl IntoView {
    let response = match (d.last_status, &d.last_error) {
        (Some(code), _) => code.to_string(),
        (None, Some(e)) => e.clone(),
        (None, None) => "—".into(),
    };
    view! {
        <tr class="border-t border-slate-100" data-testid="delivery-row">
            <td class=TD><code class="text-xs">{d.event_id.clone()}</code></td>
            <td class=TD>{d.event_type.as_str()}</td>
            <td class=TD>{status_badge(d.status)}</td>
            <td class=TD data-testid="delivery-attempts">{d.attempts}</td>
            <td class=TD title=d.last_error.clone().unwrap_or_default()>{response}</td>
            <td class=TD>{when(d.last_attempt_at)}</td>
            <td class=TD>{when(d.next_attempt_at)}</td>
            <td class=TD>
                <ActionForm action=replay>
                    <input type="hidden" name="endpoint_id" value=endpoint/>
                    <input type="hidden" name="delivery_id" value=d.id.to_string()/>
                    <button type="submit" class="text-blue-700 underline" data-testid="delivery-replay">"Replay"</button>
                </ActionForm>
            </td>
        </tr>
    }
}
