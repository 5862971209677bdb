//! Importing a price map on the pricing page: choose the file, preview
//! what would change (a dry run through `POST /api/admin/pricing/import`),
//! then apply it. The page sends the file to the same endpoint the API and
//! the CLI use, with the admin's session cookie.

use super::*;
use crate::domain::litellm::ImportReport;

/// Rows of a long list shown before "and N more".
const SHOWN: usize = 200;

// Only the browser runs an import (the server renders the idle state).
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
#[derive(Clone, Debug, PartialEq)]
enum Step {
    Idle,
    Busy(&'static str),
    Previewed(ImportReport),
    Applied(ImportReport),
    Failed(String),
}

/// The import section; `imported` is bumped after an import is applied, so
/// the catalog above reloads.
#[component]
pub(super) fn PriceImport(imported: RwSignal<u32>) -> impl IntoView {
    let file_ref = NodeRef::<leptos::html::Input>::new();
    let effective = RwSignal::new(String::new());
    let step = RwSignal::new(Step::Idle);
    let run = move |dry_run: bool| {
        let when = crate::api::admin::datetime_local_as_utc(&effective.get_untracked());
        step.set(Step::Busy(if dry_run {
            "Reading the map and comparing it with the catalog…"
        } else {
            "Importing…"
        }));
        send(file_ref, when, dry_run, step, imported);
    };
    let busy = move || matches!(step.get(), Step::Busy(_));
    view! {
        <section id="import" class="mt-6 rounded-xl border border-slate-200 bg-white p-4" data-testid="price-import">
            <h2 class="font-semibold">"Import a price map"</h2>
            <p class="text-sm text-slate-600">
                "A JSON file in LiteLLM's format ("<code>"model_prices_and_context_window.json"</code>
                ", up to 16 MiB). Preview first: nothing is written until you apply. Each model whose prices differ from the version in force gets a new version from the effective time; events already recorded keep their price."
            </p>
            <noscript><p class="mt-2 text-sm text-amber-800">"Importing from this page needs JavaScript; without it, use "<code>"POST /api/admin/pricing/import"</code>" or "<code>"tally prices import FILE"</code>"."</p></noscript>
            <div class="mt-3 grid grid-cols-1 gap-3 sm:grid-cols-3">
                <label class="text-sm">"Price map file"
                    <input type="file" accept=".json,application/json" node_ref=file_ref data-testid="import-file" class=INPUT
                        on:change=move |_| step.set(Step::Idle)/>
                </label>
                <label class="text-sm">"Effective from (UTC; now when empty)"
                    <input type="datetime-local" class=INPUT data-testid="import-effective-from"
                        prop:value=move || effective.get()
                        on:input=move |ev| { effective.set(event_target_value(&ev)); step.set(Step::Idle); }/>
                </label>
                <div class="flex items-end">
                    <button type="button" class=BUTTON data-testid="import-preview" disabled=busy on:click=move |_| run(true)>
                        "Preview changes"
                    </button>
                </div>
            </div>
            {move || match step.get() {
                Step::Idle => None,
                Step::Busy(what) => Some(view! { <p role="status" class="mt-3 text-sm text-slate-600">{what}</p> }.into_any()),
                Step::Failed(e) => Some(view! { <p role="alert" class="mt-3 rounded bg-red-50 p-2 text-sm text-red-800" data-testid="import-error">{e}</p> }.into_any()),
                Step::Previewed(r) => {
                    let n = r.created;
                    Some(view! {
                        <Report r/>
                        {(n > 0).then(|| view! {
                            <button type="button" class=format!("{BUTTON} mt-3") data-testid="import-apply" on:click=move |_| run(false)>
                                {format!("Apply: add {n} price {}", if n == 1 { "version" } else { "versions" })}
                            </button>
                        })}
                    }.into_any())
                }
                Step::Applied(r) => Some(view! { <Report r/> }.into_any()),
            }}
        </section>
    }
}

/// What an import did or would do: the counts, then every change with the
/// prices before and after, what was skipped and why, and the price fields
/// Tally does not model.
#[component]
fn Report(r: ImportReport) -> impl IntoView {
    let new = r.changes.iter().filter(|c| c.kind == "new").count();
    let changed = r.changes.len() - new;
    let when = r.effective_from.format("%Y-%m-%d %H:%M:%S UTC").to_string();
    let n = |v: usize| crate::domain::money::format_count(v as i64);
    let headline = if r.dry_run {
        format!(
            "Preview: {} price versions would be added from {when} ({} new models, {} changed); {} unchanged; {} skipped.",
            n(r.created),
            n(new),
            n(changed),
            n(r.unchanged),
            n(r.skipped.len())
        )
    } else {
        format!(
            "Imported {} price versions from {when} ({} new models, {} changed); {} unchanged; {} skipped; {} unpriced events re-priced.",
            n(r.created),
            n(new),
            n(changed),
            n(r.unchanged),
            n(r.skipped.len()),
            crate::domain::money::format_count(r.repriced_events)
        )
    };
    let more = move |k: usize| (k > SHOWN).then(|| format!("… and {} more", n(k - SHOWN)));
    let total_changes = r.changes.len();
    let total_skipped = r.skipped.len();
    view! {
        <div class="mt-3" data-testid="import-report" data-dry-run=r.dry_run.to_string()>
            <p role="status" class="rounded p-2 text-sm" class:bg-green-50=!r.dry_run class:text-green-800=!r.dry_run
                class:bg-blue-50=r.dry_run class:text-blue-900=r.dry_run data-testid="import-summary">{headline}</p>
            {(!r.changes.is_empty()).then(|| {
                let changes = StoredValue::new(r.changes);
                let filter = RwSignal::new(String::new());
                // The changes whose provider / model contain the filter text.
                let matching = move || {
                    let f = filter.get().trim().to_lowercase();
                    changes.with_value(|all| {
                        all.iter()
                            .filter(|c| f.is_empty() || format!("{} / {}", c.provider, c.model).to_lowercase().contains(&f))
                            .cloned()
                            .collect::<Vec<_>>()
                    })
                };
                view! {
                    <label class="mt-3 block text-sm">{format!("Find among the {} changes (provider or model)", n(total_changes))}
                        <input type="search" class=INPUT data-testid="import-filter" prop:value=move || filter.get()
                            on:input=move |ev| filter.set(event_target_value(&ev))/>
                    </label>
                    <div class="mt-2 max-h-96 overflow-auto rounded border border-slate-200" tabindex="0" role="region" aria-label="Changes the import makes">
                        {move || {
                            let rows = matching();
                            let n = rows.len();
                            view! {
                                <table class="w-full text-xs" data-testid="import-changes">
                                    <thead><tr>
                                        <th class=TH>""</th><th class=TH>"Provider / model"</th><th class=TH>"In force now"</th><th class=TH>"After the import"</th>
                                    </tr></thead>
                                    <tbody>
                                        {rows.into_iter().take(SHOWN).map(|c| view! {
                                            <tr class="border-t border-slate-100" data-model=c.model.clone() data-kind=c.kind.clone()>
                                                <td class=TD>{c.kind.clone()}</td>
                                                <td class=TD><span class="font-medium">{format!("{} / {}", c.provider, c.model)}</span></td>
                                                <td class=TD>{c.before.unwrap_or_else(|| "no price".into())}</td>
                                                <td class=TD>{c.after}</td>
                                            </tr>
                                        }).collect_view()}
                                    </tbody>
                                </table>
                                {(n == 0).then(|| view! { <p class="p-2 text-xs text-slate-600">"No change matches."</p> })}
                                {more(n).map(|m| view! { <p class="p-2 text-xs text-slate-600">{format!("{m}: narrow the search to see them")}</p> })}
                            }
                        }}
                    </div>
                }
            })}
            {(!r.skipped.is_empty()).then(|| view! {
                <details class="mt-2 text-sm" data-testid="import-skipped">
                    <summary>{format!("{} entries skipped", n(total_skipped))}</summary>
                    <ul class="mt-1 max-h-64 overflow-auto text-xs">
                        {r.skipped.into_iter().take(SHOWN).map(|s| view! { <li>{format!("{}: {}", s.key, s.reason)}</li> }).collect_view()}
                    </ul>
                    {more(total_skipped).map(|m| view! { <p class="text-xs text-slate-600">{m}</p> })}
                </details>
            })}
            {(!r.unsupported_fields.is_empty()).then(|| view! {
                <details class="mt-2 text-sm" data-testid="import-unsupported">
                    <summary>{format!("{} price fields Tally does not model (not imported)", r.unsupported_fields.len())}</summary>
                    <ul class="mt-1 text-xs">
                        {r.unsupported_fields.into_iter().map(|(f, n)| view! { <li>{format!("{f}: {n} entries")}</li> }).collect_view()}
                    </ul>
                </details>
            })}
        </div>
    }
}

/// Sends the chosen file to the import endpoint and records the outcome.
#[cfg(feature = "hydrate")]
fn send(
    file_ref: NodeRef<leptos::html::Input>,
    effective_from: String,
    dry_run: bool,
    step: RwSignal<Step>,
    imported: RwSignal<u32>,
) {
    let file = file_ref.get_untracked().and_then(|i| i.files()).and_then(|f| f.get(0));
    let Some(file) = file else {
        step.set(Step::Failed("Choose a price map file first.".into()));
        return;
    };
    leptos::task::spawn_local(async move {
        match post(file, &effective_from, dry_run).await {
            Ok(r) if r.dry_run => step.set(Step::Previewed(r)),
            Ok(r) => {
                step.set(Step::Applied(r));
                imported.update(|n| *n += 1);
            }
            Err(e) => step.set(Step::Failed(e)),
        }
    });
}

#[cfg(not(feature = "hydrate"))]
fn send(_: NodeRef<leptos::html::Input>, _: String, _: bool, _: RwSignal<Step>, _: RwSignal<u32>) {}

/// `POST /api/admin/pricing/import` with the file as the body; the report,
/// or the error the API gave, for people.
#[cfg(feature = "hydrate")]
async fn post(file: web_sys::File, effective_from: &str, dry_run: bool) -> Result<ImportReport, String> {
    use wasm_bindgen::JsCast;
    use wasm_bindgen_futures::JsFuture;
    let failed = |e: wasm_bindgen::JsValue| format!("The import could not be sent: {e:?}");
    let mut url = format!("/api/admin/pricing/import?format=litellm&dry_run={dry_run}");
    if !effective_from.is_empty() {
        url.push_str(&format!("&effective_from={}", crate::domain::links::urlencode(effective_from)));
    }
    let init = web_sys::RequestInit::new();
    init.set_method("POST");
    init.set_body(&file);
    let resp: web_sys::Response =
        JsFuture::from(window().fetch_with_str_and_init(&url, &init)).await.map_err(failed)?.unchecked_into();
    let text = JsFuture::from(resp.text().map_err(failed)?).await.map_err(failed)?.as_string().unwrap_or_default();
    #[derive(serde::Deserialize)]
    struct Envelope {
        data: Option<ImportReport>,
        error: Option<String>,
        fields: Option<std::collections::BTreeMap<String, String>>,
    }
    match serde_json::from_str::<Envelope>(&text) {
        Ok(Envelope { data: Some(r), .. }) if resp.ok() => Ok(r),
        Ok(Envelope { error: Some(e), fields, .. }) => Err(match fields {
            Some(f) if !f.is_empty() => {
                format!("{e}: {}", f.into_iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>().join("; "))
            }
            _ => e,
        }),
        _ => Err(format!("The import failed (HTTP {}).", resp.status())),
    }
}
