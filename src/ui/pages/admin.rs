//! The admin web UI. Each page is guarded on the server by its server
//! functions (which check the role) and in the UI by `RequireAdmin`.

use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

use crate::api::admin::{
    AddPrice, AdminCreateUser, AdminPlan, AdminUserAction, AssignPlan, CreateApiKey, RevokeApiKey, SavePlan,
    SignOutUser, admin_alerts, admin_plans, admin_pricing, admin_users, api_keys, audit_entries,
};
use crate::api::session::FormError;
use crate::domain::provider::FAMILY_A_LIMIT_KEYS;
use crate::ui::components::layout::RequireAdmin;

const INPUT: &str = "mt-1 block w-full rounded-md border border-slate-300 px-2 py-1 text-sm";
const BUTTON: &str = "rounded-md bg-blue-600 px-3 py-1.5 text-sm font-medium text-white hover:bg-blue-700";
const TH: &str = "px-2 py-2 text-left font-medium text-slate-500";
const TD: &str = "px-2 py-2 align-top";

#[component]
fn AdminFrame(title: &'static str, children: Children) -> impl IntoView {
    let tabs = [
        ("/admin", "Users"),
        ("/admin/plans", "Plans"),
        ("/admin/pricing", "Pricing"),
        ("/admin/alerts", "Alerts"),
        ("/admin/audit", "Audit log"),
        ("/admin/keys", "API keys"),
    ];
    view! {
        <nav aria-label="Administration" class="mb-4 flex flex-wrap gap-1 border-b border-slate-200 pb-2">
            {tabs.into_iter().map(|(href, label)| view! {
                <a href=href class="rounded px-3 py-1 text-sm text-slate-700 hover:bg-slate-100" aria-current=move || (label == title).then_some("page")>{label}</a>
            }).collect_view()}
        </nav>
        <h1 class="mb-4 text-xl font-semibold">{title}</h1>
        {children()}
    }
}

use crate::api::session::form_outcome as outcome_of;

/// A server function's path, which a plain form post names in `form=`.
fn path<S: leptos::server_fn::ServerFn>() -> &'static str {
    S::PATH
}

fn field_error(outcome: &Option<Result<Option<FormError>, ServerFnError>>, name: &str) -> Option<String> {
    match outcome {
        Some(Ok(Some(e))) => e.field(name),
        _ => None,
    }
}

/// The banner under a form: success, the form's message, or a failure.
fn form_banner(outcome: Option<Result<Option<FormError>, ServerFnError>>, ok: &'static str) -> impl IntoView {
    match outcome {
        Some(Ok(None)) => Some(
            view! { <p role="status" class="mt-2 rounded bg-green-50 p-2 text-sm text-green-800">{ok}</p> }.into_any(),
        ),
        Some(Ok(Some(e))) => Some(
            view! { <p role="alert" class="mt-2 rounded bg-red-50 p-2 text-sm text-red-800">{e.message}</p> }
                .into_any(),
        ),
        Some(Err(e)) => Some(
            view! { <p role="alert" class="mt-2 rounded bg-red-50 p-2 text-sm text-red-800">{e.to_string()}</p> }
                .into_any(),
        ),
        None => None,
    }
}

fn load_error(e: ServerFnError) -> AnyView {
    view! { <p role="alert" class="rounded bg-red-50 p-3 text-red-800">{format!("Could not load: {e}")}</p> }.into_any()
}

// ----- users -----

#[component]
pub fn AdminUsersPage() -> impl IntoView {
    view! { <RequireAdmin><AdminFrame title="Users"><UsersView/></AdminFrame></RequireAdmin> }
}

#[component]
fn UsersView() -> impl IntoView {
    let query = use_query_map();
    let assign = ServerAction::<AssignPlan>::new();
    let sign_out = ServerAction::<SignOutUser>::new();
    let create = ServerAction::<AdminCreateUser>::new();
    let act = ServerAction::<AdminUserAction>::new();
    let users = Resource::new(
        move || (query.read().get("q"), assign.version().get(), create.version().get(), act.version().get()),
        |(q, ..)| admin_users(q),
    );
    let created = outcome_of(create.value(), path::<AdminCreateUser>());
    let create_err = move |name: &'static str| {
        move || {
            field_error(&created.get(), name)
                .map(|e| view! { <p class="mt-1 text-xs text-red-700" role="alert">{e}</p> })
        }
    };
    let plans = Resource::new(|| (), |_| admin_plans());
    view! {
        <form method="get" class="mb-4 flex gap-2" role="search">
            <label class="sr-only" for="user-search">"Search users"</label>
            <input id="user-search" name="q" placeholder="Search by email or name" class=INPUT value=move || query.read().get("q").unwrap_or_default()/>
            <button type="submit" class=BUTTON>"Search"</button>
        </form>
        {move || form_banner(outcome_of(assign.value(), path::<AssignPlan>()).get(), "Plan change saved: upgrades apply now, other changes at the end of the cycle.")}
        {move || form_banner(outcome_of(sign_out.value(), path::<SignOutUser>()).get(), "Signed out everywhere: every session of that user has ended.")}
        {move || form_banner(outcome_of(act.value(), path::<AdminUserAction>()).get(), "Done.")}
        <details class="mb-4 rounded-xl border border-slate-200 bg-white p-4" data-testid="new-user">
            <summary class="cursor-pointer font-medium">"New user"</summary>
            <ActionForm action=create attr:class="mt-3 grid grid-cols-1 gap-3 sm:grid-cols-2">
                <label class="text-sm">"Email"<input name="user[email]" type="email" required class=INPUT/>{create_err("email")}</label>
                <label class="text-sm">"Name"<input name="user[name]" class=INPUT/>{create_err("name")}</label>
                <label class="text-sm">"Role"
                    <select name="user[role]" class=INPUT><option value="user">"user"</option><option value="admin">"admin"</option></select>
                    {create_err("role")}
                </label>
                <label class="text-sm">"Password (empty: the user cannot sign in until one is set)"<input name="user[password]" type="password" autocomplete="new-password" class=INPUT/>{create_err("password")}</label>
                <label class="text-sm">"Id (empty: generated; or your product's own user id)"<input name="user[id]" class=INPUT/>{create_err("id")}</label>
                <div class="sm:col-span-2"><button type="submit" class=BUTTON>"Create user"</button></div>
            </ActionForm>
            {move || form_banner(created.get(), "User created on the default plan.")}
        </details>
        <Suspense fallback=|| view! { <p>"Loading users…"</p> }>
            {move || Suspend::new(async move {
                let (users, plans) = match (users.await, plans.await) {
                    (Ok(u), Ok(p)) => (u, p),
                    (Err(e), _) | (_, Err(e)) => return load_error(e),
                };
                let active: Vec<AdminPlan> = plans.into_iter().filter(|p| !p.archived).collect();
                view! {
                    <div class="overflow-x-auto rounded-xl border border-slate-200 bg-white">
                    <table class="w-full text-sm" data-testid="users-table">
                        <thead><tr><th class=TH>"User"</th><th class=TH>"Role"</th><th class=TH>"Plan"</th><th class=TH>"Change plan"</th></tr></thead>
                        <tbody>
                        {users.into_iter().map(|u| {
                            let plans = active.clone();
                            let current = u.plan_id;
                            let uid = u.id.clone();
                            let (out_id, out_label) = (u.id.clone(), format!("Sign out {} everywhere", u.email));
                            view! {
                                <tr class="border-t border-slate-100" data-user=u.id.clone()>
                                    <td class=TD>
                                        <div class="font-medium">{u.email.clone()}</div>
                                        <div class="text-slate-500">{format!("{} · id {}", u.name, u.id)}</div>
                                        <a class="text-blue-700 underline" href=format!("/?user={}", u.id)>"Open dashboard"</a>
                                        <ActionForm action=sign_out attr:class="mt-1">
                                            <input type="hidden" name="user_id" value=out_id/>
                                            <button type="submit" class="text-xs text-red-700 underline" aria-label=out_label>"Sign out everywhere"</button>
                                        </ActionForm>
                                    </td>
                                    <td class=TD>
                                        <div>{u.role.clone()}{u.disabled.then_some(" · disabled")}</div>
                                        <UserActions act user_id=u.id.clone() email=u.email.clone() role=u.role.clone() disabled=u.disabled/>
                                    </td>
                                    <td class=TD>
                                        <div>{format!("{} ({})", u.plan, u.billing_cycle)}</div>
                                        <div class="text-slate-500" data-testid="user-subscription-status">{match (&u.cancels_on, u.status.as_str()) {
                                            (Some(day), _) => format!("active, cancels on {day}"),
                                            (None, s) => s.to_string(),
                                        }}</div>
                                        <LifecycleActions act user_id=u.id.clone() email=u.email.clone() status=u.status.clone() cancelling=u.cancels_on.is_some()/>
                                    </td>
                                    <td class=TD>
                                        <ActionForm action=assign attr:class="flex flex-wrap items-end gap-2">
                                            <input type="hidden" name="user_id" value=uid/>
                                            <label class="text-xs text-slate-600">"Plan"
                                                <select name="plan_id" class=INPUT aria-label=format!("Plan for {}", u.email)>
                                                    {plans.into_iter().map(|p| view! { <option value=p.id.to_string() selected=current == Some(p.id)>{p.name}</option> }).collect_view()}
                                                </select>
                                            </label>
                                            <label class="text-xs text-slate-600">"Cycle"
                                                <select name="billing_cycle" class=INPUT aria-label=format!("Billing cycle for {}", u.email)>
                                                    <option value="monthly" selected=u.billing_cycle == "monthly">"Monthly"</option>
                                                    <option value="yearly" selected=u.billing_cycle == "yearly">"Yearly"</option>
                                                </select>
                                            </label>
                                            <button type="submit" class=BUTTON aria-label=format!("Assign plan to {}", u.email)>"Assign"</button>
                                        </ActionForm>
                                    </td>
                                </tr>
                            }
                        }).collect_view()}
                        </tbody>
                    </table>
                    </div>
                }.into_any()
            })}
        </Suspense>
    }
}

/// One small form per admin action on a user.
fn action_button(act: ServerAction<AdminUserAction>, user_id: String, action: &'static str, label: String) -> AnyView {
    // The visible text is the action; the accessible name says whom.
    let text = label.split_whitespace().next().unwrap_or("Do").to_string();
    let text = match action {
        "cancel_at_cycle_end" => "Cancel at cycle end".to_string(),
        "cancel_now" => "Cancel now".to_string(),
        "make_admin" => "Make admin".to_string(),
        "make_user" => "Make user".to_string(),
        _ => text,
    };
    view! {
        <ActionForm action=act attr:class="inline">
            <input type="hidden" name="user_id" value=user_id/>
            <input type="hidden" name="action" value=action/>
            <button type="submit" class="mr-2 text-xs text-blue-700 underline" aria-label=label>{text}</button>
        </ActionForm>
    }
    .into_any()
}

#[component]
fn UserActions(
    act: ServerAction<AdminUserAction>,
    user_id: String,
    email: String,
    role: String,
    disabled: bool,
) -> impl IntoView {
    let role_change = if role == "admin" {
        action_button(act, user_id.clone(), "make_user", format!("Make {email} a user"))
    } else {
        action_button(act, user_id.clone(), "make_admin", format!("Make {email} an admin"))
    };
    let access = if disabled {
        action_button(act, user_id, "enable", format!("Enable {email}"))
    } else {
        action_button(act, user_id, "disable", format!("Disable {email}"))
    };
    view! { <div class="mt-1">{role_change}{access}</div> }
}

#[component]
fn LifecycleActions(
    act: ServerAction<AdminUserAction>,
    user_id: String,
    email: String,
    status: String,
    cancelling: bool,
) -> impl IntoView {
    let b = |action: &'static str, label: &str| action_button(act, user_id.clone(), action, format!("{label} {email}"));
    let buttons: Vec<AnyView> = match (status.as_str(), cancelling) {
        ("active", false) => vec![
            b("cancel_at_cycle_end", "Cancel at cycle end for"),
            b("cancel_now", "Cancel now for"),
            b("pause", "Pause"),
        ],
        _ => vec![b("resume", "Resume")],
    };
    view! { <div class="mt-1">{buttons}</div> }
}

// ----- plans -----

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
                    <div class="overflow-x-auto rounded-xl border border-slate-200 bg-white">
                    <table class="w-full text-sm" data-testid="plans-table">
                        <thead><tr><th class=TH>"Plan"</th><th class=TH>"Monthly"</th><th class=TH>"Yearly"</th><th class=TH>"Limits"</th><th class=TH></th></tr></thead>
                        <tbody>
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
                        </tbody>
                    </table>
                    </div>
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

#[component]
pub fn AdminPricingPage() -> impl IntoView {
    view! { <RequireAdmin><AdminFrame title="Pricing catalog"><PricingView/></AdminFrame></RequireAdmin> }
}

#[component]
fn PricingView() -> impl IntoView {
    let query = use_query_map();
    let add = ServerAction::<AddPrice>::new();
    let pricing = Resource::new(move || add.version().get(), |_| admin_pricing());
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
                    <div class="overflow-x-auto rounded-xl border border-slate-200 bg-white">
                    <table class="w-full text-sm" data-testid="pricing-table">
                        <thead><tr><th class=TH>"Provider / model"</th><th class=TH>"From"</th><th class=TH>"Input /1M"</th><th class=TH>"Cached /1M"</th><th class=TH>"Output /1M"</th><th class=TH>"Per unit"</th><th class=TH></th></tr></thead>
                        <tbody>
                        {p.versions.into_iter().map(|v| view! {
                            <tr class="border-t border-slate-100" class:text-slate-400=!v.current data-current=v.current.to_string() data-model=v.model.clone()>
                                <td class=TD><span class="font-medium">{format!("{} / {}", v.provider, v.model)}</span>{(!v.current).then_some(" (history)")}</td>
                                <td class=TD>{v.effective_from.clone()}</td>
                                <td class=TD>{v.input_per_million.clone().map(|p| format!("${p}")).unwrap_or_default()}</td>
                                <td class=TD>{v.cached_input_per_million.clone().map(|p| format!("${p}")).unwrap_or_default()}</td>
                                <td class=TD>{v.output_per_million.clone().map(|p| format!("${p}")).unwrap_or_default()}</td>
                                <td class=TD>{v.per_unit.clone().unwrap_or_default()}</td>
                                <td class=TD>{v.current.then(|| view! {
                                    <a class="text-blue-700 underline" href=format!("/admin/pricing?provider={}&model={}&input={}&output={}&cached={}#new-price", v.provider, v.model, v.input_per_million.clone().unwrap_or_default(), v.output_per_million.clone().unwrap_or_default(), v.cached_input_per_million.clone().unwrap_or_default())>{if v.model == "*" { format!("Edit {}", v.provider) } else { format!("Edit {}", v.model) }}</a>
                                })}</td>
                            </tr>
                        }).collect_view()}
                        </tbody>
                    </table>
                    </div>
                }.into_any()
            })}
        </Suspense>
        <section id="new-price" class="mt-6 rounded-xl border border-slate-200 bg-white p-4" data-testid="price-form">
            <h2 class="font-semibold">"New price version"</h2>
            <p class="text-sm text-slate-600">"Applies from its effective time (UTC; now when empty). Events keep the price in force when they happened."</p>
            <ActionForm action=add attr:class="mt-3 grid grid-cols-2 gap-3 sm:grid-cols-4">
                <label class="text-sm">"Provider"<input name="price[provider]" value=move || q("provider") class=INPUT/>{err("provider")}</label>
                <label class="text-sm">"Model (* = every model)"<input name="price[model]" value=move || q("model") class=INPUT/>{err("model")}</label>
                <label class="text-sm">"Input per 1M tokens"<input name="price[input_per_million]" value=move || q("input") class=INPUT inputmode="decimal"/>{err("input_per_million")}</label>
                <label class="text-sm">"Output per 1M tokens"<input name="price[output_per_million]" value=move || q("output") class=INPUT inputmode="decimal"/>{err("output_per_million")}</label>
                <label class="text-sm">"Cached input per 1M"<input name="price[cached_input_per_million]" value=move || q("cached") class=INPUT inputmode="decimal"/>{err("cached_input_per_million")}</label>
                <label class="text-sm">"Per request"<input name="price[per_request]" class=INPUT inputmode="decimal"/>{err("per_request")}</label>
                <label class="text-sm">"Per search"<input name="price[per_search]" class=INPUT inputmode="decimal"/>{err("per_search")}</label>
                <label class="text-sm">"Per image"<input name="price[per_image]" class=INPUT inputmode="decimal"/>{err("per_image")}</label>
                <label class="text-sm">"Per page"<input name="price[per_page]" class=INPUT inputmode="decimal"/>{err("per_page")}</label>
                <label class="text-sm">"Effective from (UTC)"<input type="datetime-local" name="price[effective_from]" class=INPUT/>{err("effective_from")}</label>
                <label class="col-span-2 text-sm">"Description"<input name="price[description]" class=INPUT/></label>
                <div class="col-span-2 sm:col-span-4"><button type="submit" class=BUTTON>"Add price version"</button></div>
            </ActionForm>
            {move || form_banner(outcome.get(), "Price version added.")}
        </section>
    }
}

// ----- alerts, audit, keys -----

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
                                    <div class="flex flex-wrap justify-between gap-2 text-sm"><span class="font-medium">{a.title}</span><span class="text-slate-600">{format!("{} · {}{}", a.user, a.created_at, if a.is_read { " · read" } else { "" })}</span></div>
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
                    <div class="overflow-x-auto rounded-xl border border-slate-200 bg-white">
                    <table class="w-full text-sm" data-testid="audit-table">
                        <thead><tr><th class=TH>"When"</th><th class=TH>"Who"</th><th class=TH>"What"</th><th class=TH>"Before"</th><th class=TH>"After"</th></tr></thead>
                        <tbody>
                        {rows.into_iter().map(|r| view! {
                            <tr class="border-t border-slate-100">
                                <td class=TD>{r.at}</td><td class=TD>{r.actor}</td><td class=TD>{format!("{} · {}", r.action, r.entity)}</td>
                                <td class=TD><code class="break-all text-xs">{r.before}</code></td><td class=TD><code class="break-all text-xs">{r.after}</code></td>
                            </tr>
                        }).collect_view()}
                        </tbody>
                    </table>
                    </div>
                }.into_any()
            })}
        </Suspense>
    }
}

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
                    <div class="overflow-x-auto rounded-xl border border-slate-200 bg-white">
                    <table class="w-full text-sm" data-testid="keys-table">
                        <thead><tr><th class=TH>"Key"</th><th class=TH>"User"</th><th class=TH>"Scopes"</th><th class=TH>"Created"</th><th class=TH>"Last used"</th><th class=TH></th></tr></thead>
                        <tbody>
                        {rows.into_iter().map(|k| view! {
                            <tr class="border-t border-slate-100" class:text-slate-400=k.revoked>
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
                        </tbody>
                    </table>
                    </div>
                }.into_any()
            })}
        </Suspense>
    }
}
