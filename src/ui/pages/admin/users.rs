//! Users: create, role, disable, lifecycle, plan, sign out everywhere.

use super::*;

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
        {move || row_form_banner(outcome_of(assign.value(), path::<AssignPlan>()).get(), "Saved: upgrades apply now, other plan changes at the end of the cycle; a timezone at once.")}
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
                    <DataTable testid="users-table" label="Users" headers=&["User", "Role", "Plan", "Change plan"]>
                        {users.into_iter().map(|u| {
                            let plans = active.clone();
                            let current = u.plan_id;
                            let uid = u.id.clone();
                            let (out_id, out_label) = (u.id.clone(), format!("Sign out everywhere: {}", u.email));
                            view! {
                                <tr class="border-t border-slate-100" data-user=u.id.clone()>
                                    <td class=TD>
                                        <div class="font-medium">{u.email.clone()}</div>
                                        <div class="text-slate-500">{format!("{} · id {}", u.name, u.id)}</div>
                                        <a class="text-blue-700 underline" href=format!("/?user={}", u.id)>"Open dashboard"</a>
                                        " · "<a class="text-blue-700 underline" href=format!("/admin/wallet?user={}", u.id) aria-label=format!("Wallet of {}", u.email)>"Wallet"</a>
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
                                        <div class="text-xs text-slate-500" data-testid="user-timezone">{format!("periods in {}", u.timezone)}</div>
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
                                            <label class="text-xs text-slate-600">"Timezone"
                                                <input name="timezone" class=INPUT value=u.timezone.clone() size="16"
                                                    title="IANA name, e.g. Europe/Berlin; can change until the first recorded event or bill"
                                                    aria-label=format!("Timezone for {}", u.email)/>
                                            </label>
                                            <button type="submit" class=BUTTON aria-label=format!("Assign plan to {}", u.email)>"Assign"</button>
                                        </ActionForm>
                                    </td>
                                </tr>
                            }
                        }).collect_view()}
                    </DataTable>
                }.into_any()
            })}
        </Suspense>
    }
}

/// One small form per admin action on a user.
fn action_button(act: ServerAction<AdminUserAction>, user_id: String, action: &'static str, label: String) -> AnyView {
    // The visible text is the action; the accessible name is that text
    // and whom (WCAG's label in name: a voice user says what they see).
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
        action_button(act, user_id.clone(), "make_user", format!("Make user: {email}"))
    } else {
        action_button(act, user_id.clone(), "make_admin", format!("Make admin: {email}"))
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
