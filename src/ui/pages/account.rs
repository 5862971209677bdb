//! The signed-in user's account: password change.

use leptos::prelude::*;

use crate::api::session::ChangePassword;
use crate::ui::components::layout::{RequireUser, use_me};

#[component]
pub fn AccountPage() -> impl IntoView {
    view! { <RequireUser><AccountForm/></RequireUser> }
}

#[component]
fn AccountForm() -> impl IntoView {
    let me = use_me();
    let change = ServerAction::<ChangePassword>::new();
    let outcome =
        crate::api::session::form_outcome(change.value(), <ChangePassword as leptos::server_fn::ServerFn>::PATH);
    let field = move |name: &'static str| {
        outcome.with(|o| match o {
            Some(Ok(Some(e))) => e.field(name),
            _ => None,
        })
    };
    let input = "mt-1 block w-full rounded-md border border-slate-300 px-3 py-2";
    view! {
        <section class="mx-auto max-w-md rounded-xl border border-slate-200 bg-white p-6 shadow-sm">
            <h1 class="text-xl font-semibold">"Your account"</h1>
            <Suspense fallback=|| ()>
                {move || Suspend::new(async move {
                    me.await.ok().flatten().map(|m| view! { <p class="mt-1 text-sm text-slate-600">{format!("{} · {}", m.name, m.email)}</p> })
                })}
            </Suspense>
            <h2 class="mt-6 font-medium">"Change password"</h2>
            <ActionForm action=change attr:class="mt-3 space-y-4">
                <label class="block text-sm font-medium text-slate-700">"Current password"
                    <input type="password" name="current_password" required autocomplete="current-password" class=input/>
                </label>
                {move || field("current_password").map(|e| view! { <p class="text-sm text-red-700" role="alert">{e}</p> })}
                <label class="block text-sm font-medium text-slate-700">"New password (8 characters or more)"
                    <input type="password" name="new_password" required minlength="8" autocomplete="new-password" class=input/>
                </label>
                {move || field("new_password").map(|e| view! { <p class="text-sm text-red-700" role="alert">{e}</p> })}
                <button type="submit" class="rounded-md bg-blue-600 px-4 py-2 font-medium text-white hover:bg-blue-700">"Change password"</button>
            </ActionForm>
            {move || matches!(outcome.get(), Some(Ok(None))).then(|| view! {
                <p role="status" class="mt-3 rounded-md bg-green-50 p-3 text-sm text-green-800">"Password changed. Your other sessions were signed out."</p>
            })}
            {move || outcome.get().and_then(|r| r.err()).map(|e| view! { <p role="alert" class="mt-3 text-sm text-red-700">{e.to_string()}</p> })}
        </section>
    }
}
