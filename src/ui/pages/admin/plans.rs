//! Plans: the list and the plan form.

use super::*;

#[component]
pub fn AdminPlansPage() -> impl IntoView {
    view! { <RequireAdmin><AdminFrame title="Plans"><PlansView/></AdminFrame></RequireAdmin> }
}

#[component]
fn PlansView() -> impl IntoView {
    let query = use_query_map();
    let save = ServerAction::<SavePlan>::new();
    let plans = Resource::new(move || save.version().get(), |_| admin_plans());
    view! {
        <p class="mb-4"><a href="/admin/plans?edit=new" class=BUTTON>"New plan"</a></p>
        {move || form_banner(outcome_of(save.value(), path::<SavePlan>()).get(), "Plan saved.")}
        <Suspense fallback=|| view! { <p>"Loading plans…"</p> }>
            {move || Suspend::new(async move {
                let plans = match plans.await { Ok(p) => p, Err(e) => return load_error(e) };
                let editing = query.read().get("edit");
                let form = editing.as_deref().map(|id| {
                    let plan = plans.iter().find(|p| p.id.to_string() == id).cloned();
                    view! { <PlanForm plan save/> }
                });
                view! {
                    {form}
                    <DataTable testid="plans-table" label="Plans" headers=&["Plan", "Monthly", "Yearly", "Limits", ""]>
                        {plans.into_iter().map(|p| view! {
                            <tr class="border-t border-slate-100" class:opacity-60=p.archived>
                                <td class=TD><div class="font-medium">{p.name.clone()}</div><div class="text-slate-500">{p.tier.clone()}{p.archived.then_some(" · archived")}</div></td>
                                <td class=TD>{plain_usd(&p.price_monthly)}</td>
                                <td class=TD>{plain_usd(&p.price_yearly)}</td>
                                <td class=TD>{if p.limits.is_empty() {
                                    view! { <span>"Unlimited"</span> }.into_any()
                                } else {
                                    view! { <ul data-testid="plan-limits">{p.limits.iter().map(|(k, v)| view! { <li>{limit_in_words(k, v)}</li> }).collect_view()}</ul> }.into_any()
                                }}</td>
                                <td class=TD><a class="text-blue-700 underline" href=format!("/admin/plans?edit={}", p.id)>{format!("Edit {}", p.name)}</a></td>
                            </tr>
                        }).collect_view()}
                    </DataTable>
                }.into_any()
            })}
        </Suspense>
    }
}

#[component]
fn PlanForm(plan: Option<AdminPlan>, save: ServerAction<SavePlan>) -> impl IntoView {
    let p = plan.clone().unwrap_or(AdminPlan {
        id: 0,
        name: String::new(),
        tier: "basic".into(),
        price_monthly: String::new(),
        price_yearly: String::new(),
        description: String::new(),
        features: vec![],
        limits: Default::default(),
        archived: false,
        billing_mode: "postpaid".into(),
        included_credits: String::new(),
        credits_rollover_cap: String::new(),
    });
    let outcome = outcome_of(save.value(), path::<SavePlan>());
    let err = move |name: &'static str| {
        move || {
            field_error(&outcome.get(), name)
                .map(|e| view! { <p class="mt-1 text-xs text-red-700" role="alert">{e}</p> })
        }
    };
    let tiers = ["free", "basic", "pro", "enterprise"];
    view! {
        <section class="mb-6 rounded-xl border border-blue-200 bg-white p-4" data-testid="plan-form">
            <h2 class="font-semibold">{if plan.is_some() { format!("Edit {}", p.name) } else { "New plan".to_string() }}</h2>
            <ActionForm action=save attr:class="mt-3 grid grid-cols-1 gap-3 sm:grid-cols-2">
                {plan.as_ref().map(|p| view! { <input type="hidden" name="plan[id]" value=p.id.to_string()/> })}
                <label class="text-sm">"Name"<input name="plan[name]" value=p.name.clone() class=INPUT/>{err("name")}</label>
                <label class="text-sm">"Tier"
                    <select name="plan[tier]" class=INPUT>
                        {tiers.into_iter().map(|t| view! { <option value=t selected=p.tier == t>{t}</option> }).collect_view()}
                    </select>{err("tier")}
                </label>
                <label class="text-sm">"Monthly price (USD)"<input name="plan[price_monthly]" value=p.price_monthly.clone() class=INPUT inputmode="decimal" placeholder="e.g. 29 or 29.99"/>
                    <span class="block text-xs text-slate-500">"Empty means free."</span>{err("price_monthly")}</label>
                <label class="text-sm">"Yearly price (USD)"<input name="plan[price_yearly]" value=p.price_yearly.clone() class=INPUT inputmode="decimal" placeholder="e.g. 290"/>
                    <span class="block text-xs text-slate-500">"Empty means 12 × the monthly price."</span>{err("price_yearly")}</label>
                <label class="text-sm sm:col-span-2">"Description"<input name="plan[description]" value=p.description.clone() class=INPUT/>{err("description")}</label>
                <label class="text-sm sm:col-span-2">"Features (one per line)"<textarea name="plan[features]" rows="3" class=INPUT>{p.features.join("\n")}</textarea>{err("features")}</label>
                <fieldset class="sm:col-span-2">
                    <legend class="text-sm font-medium">"Limits per month (empty or 0 means unlimited)"</legend>
                    <div class="mt-2 grid grid-cols-2 gap-2 sm:grid-cols-4">
                        {FAMILY_A_LIMIT_KEYS.iter().map(|k| {
                            let key: &'static str = k;
                            view! {
                                <label class="text-xs">{limit_field_label(key)}
                                    <input name=format!("plan[limits][{key}]") value=p.limits.get(key).cloned().unwrap_or_default() class=INPUT inputmode="decimal"/>
                                    {err_limit(outcome, key)}
                                </label>
                            }
                        }).collect_view()}
                    </div>
                </fieldset>
                <label class="text-sm">"Billing"
                    <select name="plan[billing_mode]" class=INPUT>
                        <option value="postpaid" selected=p.billing_mode == "postpaid">"Postpaid: billed after the period"</option>
                        <option value="prepaid" selected=p.billing_mode == "prepaid">"Prepaid: calls spend wallet credits"</option>
                    </select>{err("billing_mode")}
                </label>
                <label class="text-sm">"Included credits per period (USD)"<input name="plan[included_credits]" value=p.included_credits.clone() class=INPUT inputmode="decimal" placeholder="e.g. 20"/>
                    <span class="block text-xs text-slate-500">"Empty means none."</span>{err("included_credits")}</label>
                <label class="text-sm">"Included credits that roll over (USD)"<input name="plan[credits_rollover_cap]" value=p.credits_rollover_cap.clone() class=INPUT inputmode="decimal"/>
                    <span class="block text-xs text-slate-500">"Empty means they expire at the period's end."</span>{err("credits_rollover_cap")}</label>
                <label class="flex items-center gap-2 text-sm"><input type="checkbox" name="plan[archived]" checked=p.archived/>"Archived (keeps its subscribers, takes no new ones)"</label>
                <div class="sm:col-span-2"><button type="submit" class=BUTTON>"Save plan"</button></div>
            </ActionForm>
        </section>
    }
}

/// `$29`, `$0.0025`: a USD decimal string as people write prices.
fn plain_usd(usd: &str) -> String {
    crate::domain::money::Nanos::parse_usd(usd).map_or_else(|_| format!("${usd}"), |n| n.display_plain())
}

/// "Gemini calls a month", "Monthly cost cap (USD)".
fn limit_field_label(key: &str) -> String {
    use crate::domain::provider::LimitKey;
    match LimitKey::parse(key) {
        Some(LimitKey::MonthlyCost) => "Monthly cost cap (USD)".into(),
        Some(k) => format!("{} a month", k.label()),
        None => key.into(),
    }
}

/// "Gemini calls: 100 a month", "Monthly cost cap: $150".
fn limit_in_words(key: &str, value: &str) -> String {
    use crate::domain::provider::LimitKey;
    match LimitKey::parse(key) {
        Some(LimitKey::MonthlyCost) => format!("Monthly cost cap: {}", plain_usd(value)),
        Some(k) => {
            let n = value.parse::<i64>().map_or_else(|_| value.to_string(), crate::domain::money::format_count);
            format!("{}: {n} a month", k.label())
        }
        None => format!("{key}: {value}"),
    }
}

fn err_limit(
    outcome: impl Get<Value = Option<Result<Option<FormError>, ServerFnError>>> + Send + Sync + 'static,
    key: &'static str,
) -> impl IntoView {
    move || {
        field_error(&outcome.get(), &format!("limits.{key}"))
            .map(|e| view! { <span class="block text-xs text-red-700" role="alert">{e}</span> })
    }
}

// ----- pricing -----
