//! The pricing catalog: every price version, and adding one.

use super::*;

#[component]
pub fn AdminPricingPage() -> impl IntoView {
    view! { <RequireAdmin><AdminFrame title="Pricing catalog"><PricingView/></AdminFrame></RequireAdmin> }
}

#[component]
fn PricingView() -> impl IntoView {
    let query = use_query_map();
    let add = ServerAction::<AddPrice>::new();
    let imported = RwSignal::new(0u32);
    let pricing = Resource::new(move || (add.version().get(), imported.get()), |_| admin_pricing());
    let outcome = outcome_of(add.value(), path::<AddPrice>());
    let err = move |name: &'static str| {
        move || {
            field_error(&outcome.get(), name)
                .map(|e| view! { <p class="mt-1 text-xs text-red-700" role="alert">{e}</p> })
        }
    };
    let q = move |k: &str| query.read().get(k).unwrap_or_default();
    view! {
        <Suspense fallback=|| view! { <p>"Loading prices…"</p> }>
            {move || Suspend::new(async move {
                let p = match pricing.await { Ok(p) => p, Err(e) => return load_error(e) };
                view! {
                    {(!p.unpriced.is_empty()).then(|| view! {
                        <section class="mb-6 rounded-xl border border-red-200 bg-red-50 p-4" data-testid="unpriced-models">
                            <h2 class="font-semibold text-red-900">"Models used without a price"</h2>
                            <p class="text-sm text-red-900">"Their usage was recorded at $0 and flagged, and the gate refuses them (TALLY_UNPRICED_POLICY). Add a price in force from when they were used: that usage is re-priced at once (usage from periods already billed goes on the open period's bill, marked late)."</p>
                            <ul class="mt-2 space-y-1 text-sm">
                                {p.unpriced.iter().map(|u| view! {
                                    <li>{format!("{} / {}: {} events, last {} ", u.provider, u.model, u.events, u.last_seen)}
                                        <a class="text-blue-700 underline" href=format!("/admin/pricing?provider={}&model={}", u.provider, u.model)>{format!("Price {}", u.model)}</a>
                                    </li>
                                }).collect_view()}
                            </ul>
                        </section>
                    })}
                    <DataTable testid="pricing-table" label="Price versions" headers=&["Provider / model", "From", "Input /1M", "Cached /1M", "Output /1M", "Per unit", "Other rates and tiers", ""]>
                        {p.versions.into_iter().map(|v| view! {
                            <tr class="border-t border-slate-100" class:text-slate-500=!v.current data-current=v.current.to_string() data-scheduled=v.scheduled.to_string() data-model=v.model.clone()>
                                <td class=TD><span class="font-medium">{format!("{} / {}", v.provider, v.model)}</span>{match (v.current, v.scheduled) {
                                    (true, _) => "",
                                    (false, true) => " (scheduled)",
                                    (false, false) => " (history)",
                                }}</td>
                                <td class=TD>{v.effective_from.clone()}</td>
                                <td class=TD>{v.input_per_million.clone().map(|p| format!("${p}")).unwrap_or_default()}</td>
                                <td class=TD>{v.cached_input_per_million.clone().map(|p| format!("${p}")).unwrap_or_default()}</td>
                                <td class=TD>{v.output_per_million.clone().map(|p| format!("${p}")).unwrap_or_default()}</td>
                                <td class=TD>{v.per_unit.clone().unwrap_or_default()}</td>
                                <td class="px-3 py-2 text-xs text-slate-700" data-testid="price-extras">{v.other.clone()}</td>
                                <td class=TD>{v.current.then(|| view! {
                                    <a class="text-blue-700 underline" href=v.edit_href.clone()>{if v.model == "*" { format!("Edit {}", v.provider) } else { format!("Edit {}", v.model) }}</a>
                                })}</td>
                            </tr>
                        }).collect_view()}
                    </DataTable>
                }.into_any()
            })}
        </Suspense>
        <section id="new-price" class="mt-6 rounded-xl border border-slate-200 bg-white p-4" data-testid="price-form">
            <h2 class="font-semibold">"New price version"</h2>
            <p class="text-sm text-slate-600">"Applies from its effective time (UTC; now when empty). Events keep the price in force when they happened."</p>
            <ActionForm action=add attr:class="mt-3 grid grid-cols-2 gap-3 sm:grid-cols-4">
                <label class="text-sm">"Provider"<input name="price[provider]" value=move || q("provider") class=INPUT/>{err("provider")}</label>
                <label class="text-sm">"Model (* = every model)"<input name="price[model]" value=move || q("model") class=INPUT/>{err("model")}</label>
                <label class="text-sm">"Input per 1M tokens"<input name="price[input_per_million]" value=move || q("input_per_million") class=INPUT inputmode="decimal"/>{err("input_per_million")}</label>
                <label class="text-sm">"Output per 1M tokens"<input name="price[output_per_million]" value=move || q("output_per_million") class=INPUT inputmode="decimal"/>{err("output_per_million")}</label>
                <label class="text-sm">"Cached input per 1M"<input name="price[cached_input_per_million]" value=move || q("cached_input_per_million") class=INPUT inputmode="decimal"/>{err("cached_input_per_million")}</label>
                <label class="text-sm">"Per request"<input name="price[per_request]" value=move || q("per_request") class=INPUT inputmode="decimal"/>{err("per_request")}</label>
                <label class="text-sm">"Per search"<input name="price[per_search]" value=move || q("per_search") class=INPUT inputmode="decimal"/>{err("per_search")}</label>
                <label class="text-sm">"Per image"<input name="price[per_image]" value=move || q("per_image") class=INPUT inputmode="decimal"/>{err("per_image")}</label>
                <label class="text-sm">"Per page"<input name="price[per_page]" value=move || q("per_page") class=INPUT inputmode="decimal"/>{err("per_page")}</label>
                <label class="text-sm">"Cache write (5 min) per 1M"<input name="price[cache_write_per_million]" value=move || q("cache_write_per_million") class=INPUT inputmode="decimal"/>{err("cache_write_per_million")}</label>
                <label class="text-sm">"Cache write (1 h) per 1M"<input name="price[cache_write_1h_per_million]" value=move || q("cache_write_1h_per_million") class=INPUT inputmode="decimal"/>{err("cache_write_1h_per_million")}</label>
                <label class="text-sm">"Reasoning per 1M"<input name="price[reasoning_per_million]" value=move || q("reasoning_per_million") class=INPUT inputmode="decimal"/>{err("reasoning_per_million")}</label>
                <label class="text-sm">"Audio input per 1M"<input name="price[audio_input_per_million]" value=move || q("audio_input_per_million") class=INPUT inputmode="decimal"/>{err("audio_input_per_million")}</label>
                <label class="text-sm">"Audio output per 1M"<input name="price[audio_output_per_million]" value=move || q("audio_output_per_million") class=INPUT inputmode="decimal"/>{err("audio_output_per_million")}</label>
                <label class="text-sm">"Per web-search query"<input name="price[per_search_query]" value=move || q("per_search_query") class=INPUT inputmode="decimal"/>{err("per_search_query")}</label>
                <label class="col-span-2 text-sm">"Long-context tiers (JSON; the whole request switches)"
                    <textarea name="price[tiers]" rows="3" prop:value=move || q("tiers") class=format!("{INPUT} font-mono text-xs") placeholder=r#"[{"above_input_tokens": 200000, "input_per_million": "2.50", "output_per_million": "15"}]"#>{move || q("tiers")}</textarea>
                    {err("tiers")}
                </label>
                <label class="col-span-2 text-sm">"Service tiers (JSON: batch, flex, priority)"
                    <textarea name="price[service_tiers]" rows="3" prop:value=move || q("service_tiers") class=format!("{INPUT} font-mono text-xs") placeholder=r#"{"batch": {"input_per_million": "0.625", "output_per_million": "5"}}"#>{move || q("service_tiers")}</textarea>
                    {err("service_tiers")}
                </label>
                <label class="text-sm">"Output cap (tokens; blank: unknown)"<input name="price[max_output_tokens]" value=move || q("max_output_tokens") class=INPUT inputmode="numeric"/>{err("max_output_tokens")}</label>
                <label class="text-sm">"Effective from (UTC)"<input type="datetime-local" name="price[effective_from]" class=INPUT/>{err("effective_from")}</label>
                <label class="col-span-2 text-sm">"Description"<input name="price[description]" class=INPUT/></label>
                <div class="col-span-2 sm:col-span-4"><button type="submit" class=BUTTON>"Add price version"</button></div>
            </ActionForm>
            {move || form_banner(outcome.get(), "Price version added.")}
        </section>
        <super::price_import::PriceImport imported/>
    }
}

// ----- alerts, audit, keys -----
