//! API keys: create (the secret shown once) and revoke.

use super::*;

#[component]
pub fn AdminKeysPage() -> impl IntoView {
    view! { <RequireAdmin><AdminFrame title="API keys"><KeysView/></AdminFrame></RequireAdmin> }
}

#[component]
fn KeysView() -> impl IntoView {
    let create = ServerAction::<CreateApiKey>::new();
    let revoke = ServerAction::<RevokeApiKey>::new();
    let keys = Resource::new(move || (create.version().get(), revoke.version().get()), |_| api_keys());
    view! {
        <section class="mb-6 rounded-xl border border-slate-200 bg-white p-4">
            <h2 class="font-semibold">"New key"</h2>
            <ActionForm action=create attr:class="mt-3 flex flex-wrap items-end gap-3">
                <label class="text-sm">"For user id (empty: a service key)"<input name="key[user_id]" class=INPUT/></label>
                <label class="text-sm">"Label"<input name="key[name]" class=INPUT/></label>
                <fieldset class="flex gap-3 text-sm"><legend class="sr-only">"Scopes"</legend>
                    <label><input type="checkbox" name="key[scope_ingest]"/>" ingest"</label>
                    <label><input type="checkbox" name="key[scope_read]"/>" read"</label>
                    <label><input type="checkbox" name="key[scope_gate]"/>" gate"</label>
                    <label><input type="checkbox" name="key[scope_alerts]"/>" alerts"</label>
                    <label><input type="checkbox" name="key[scope_metrics]"/>" metrics"</label>
                    <label><input type="checkbox" name="key[scope_proxy]"/>" proxy"</label>
                    <label><input type="checkbox" name="key[scope_admin]"/>" admin"</label>
                </fieldset>
                <button type="submit" class=BUTTON>"Create key"</button>
            </ActionForm>
            {move || match create.value().get() {
                Some(Ok(Ok(secret))) => Some(view! {
                    <div role="status" class="mt-3 rounded bg-green-50 p-3 text-sm">
                        <p class="font-medium text-green-900">"Copy this key now; it is not shown again."</p>
                        <code class="mt-1 block break-all" data-testid="new-key-secret">{secret}</code>
                    </div>
                }.into_any()),
                Some(Ok(Err(e))) => Some(view! { <p role="alert" class="mt-2 text-sm text-red-700">{e.message}</p> }.into_any()),
                Some(Err(e)) => Some(view! { <p role="alert" class="mt-2 text-sm text-red-700">{e.to_string()}</p> }.into_any()),
                None => None,
            }}
        </section>
        <Suspense fallback=|| view! { <p>"Loading keys…"</p> }>
            {move || Suspend::new(async move {
                let rows = match keys.await { Ok(r) => r, Err(e) => return load_error(e) };
                view! {
                    <DataTable testid="keys-table" label="API keys" headers=&["Key", "User", "Scopes", "Created", "Last used", ""]>
                        {rows.into_iter().map(|k| view! {
                            <tr class="border-t border-slate-100" class:text-slate-500=k.revoked>
                                <td class=TD><code>{format!("{}…", k.prefix)}</code><div class="text-slate-500">{k.name.clone()}</div></td>
                                <td class=TD>{k.user.clone()}</td><td class=TD>{k.scopes.clone()}</td><td class=TD>{k.created_at.clone()}</td><td class=TD>{k.last_used_at.clone()}</td>
                                <td class=TD>{if k.revoked { view! { <span>"revoked"</span> }.into_any() } else { view! {
                                    <ActionForm action=revoke>
                                        <input type="hidden" name="id" value=k.id.clone()/>
                                        <button type="submit" class="text-red-700 underline">"Revoke"</button>
                                    </ActionForm>
                                }.into_any() }}</td>
                            </tr>
                        }).collect_view()}
                    </DataTable>
                }.into_any()
            })}
        </Suspense>
    }
}
