//! Sign-in: a plain form post to the `login` server function, which sets the
//! session cookie and redirects, or comes back here with `?error=`.

use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos_router::hooks::use_query_map;

use crate::api::session::Login;

#[component]
pub fn LoginPage() -> impl IntoView {
    let query = use_query_map();
    let error = move || match query.read().get("error").as_deref() {
        Some("invalid") => Some("The email or password is not right.".to_string()),
        Some("locked") => {
            let secs = query.read().get("wait").and_then(|w| w.parse::<i64>().ok()).unwrap_or(900).clamp(1, 3600);
            let wait = if secs >= 90 { format!("{} minutes", (secs + 59) / 60) } else { format!("{secs} seconds") };
            Some(format!("Too many failed attempts from here. Wait {wait}, then try again."))
        }
        Some("disabled") => Some("This account is disabled. Ask an administrator.".to_string()),
        Some(_) => Some("Signing in failed. Try again.".to_string()),
        None => None,
    };
    let next = move || {
        query.read().get("next").filter(|n| crate::domain::links::safe_next(n).is_some()).unwrap_or_else(|| "/".into())
    };
    let input = "mt-1 block w-full rounded-md border border-slate-300 px-3 py-2 shadow-sm focus:border-blue-500";
    view! {
        <section class="mx-auto mt-8 max-w-sm rounded-xl border border-slate-200 bg-white p-6 shadow-sm">
            <h1 class="text-xl font-semibold">"Sign in to Tally"</h1>
            {move || error().map(|e| view! {
                <p role="alert" data-testid="login-error" class="mt-3 rounded-md bg-red-50 p-3 text-sm text-red-800">{e}</p>
            })}
            <form method="post" action=Login::url() class="mt-4 space-y-4">
                <input type="hidden" name="next" value=next/>
                <label class="block text-sm font-medium text-slate-700">"Email"
                    <input type="email" name="email" required autocomplete="username" class=input/>
                </label>
                <label class="block text-sm font-medium text-slate-700">"Password"
                    <input type="password" name="password" required autocomplete="current-password" class=input/>
                </label>
                <button type="submit" class="w-full rounded-md bg-blue-600 px-4 py-2 font-medium text-white hover:bg-blue-700">"Sign in"</button>
            </form>
        </section>
    }
}
