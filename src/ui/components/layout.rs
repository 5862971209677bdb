//! The page frame: header with navigation and the signed-in user, and the
//! guards that send anonymous visitors to sign in and non-admins away.

use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos_router::components::Redirect;
use leptos_router::hooks::use_location;

use crate::api::session::{Logout, Me};

/// The signed-in user, resolved once per page load.
pub type MeResource = Resource<Result<Option<Me>, ServerFnError>>;

pub fn use_me() -> MeResource {
    expect_context::<MeResource>()
}

#[component]
pub fn Header() -> impl IntoView {
    let me = use_me();
    view! {
        <header class="border-b border-slate-200 bg-white">
            <div class="mx-auto flex max-w-6xl flex-wrap items-center justify-between gap-2 px-4 py-3 sm:px-6">
                <a href="/" class="flex items-center gap-2 font-semibold text-slate-900">
                    <span class="inline-flex h-7 w-7 items-center justify-center rounded-md bg-blue-600 text-sm font-bold text-white">"T"</span>
                    "Tally"
                </a>
                <Suspense fallback=|| ()>
                    {move || Suspend::new(async move {
                        match me.await {
                            Ok(Some(me)) => view! { <UserNav me/> }.into_any(),
                            _ => view! { <a href="/login" class="text-sm font-medium text-blue-700 hover:underline">"Sign in"</a> }.into_any(),
                        }
                    })}
                </Suspense>
            </div>
        </header>
    }
}

#[component]
fn UserNav(me: Me) -> impl IntoView {
    let link = "rounded px-2 py-1 text-sm text-slate-700 hover:bg-slate-100";
    view! {
        <nav aria-label="Main" class="flex flex-wrap items-center gap-1">
            <a href="/dashboard" class=link>"Dashboard"</a>
            <a href="/usage" class=link>"Usage"</a>
            <a href="/plans" class=link>"Plans"</a>
            <a href="/billing" class=link>"Billing"</a>
            {me.is_admin.then(|| view! { <a href="/admin" class=link data-testid="nav-admin">"Admin"</a> })}
            <a href="/account" class=link>"Account"</a>
            <span class="mx-2 hidden text-sm text-slate-500 sm:inline" data-testid="signed-in-as">{me.email.clone()}</span>
            // A plain form post: a full page load, with or without JavaScript.
            <form method="post" action=Logout::url()>
                <button type="submit" class="rounded border border-slate-300 px-2 py-1 text-sm hover:bg-slate-100">"Sign out"</button>
            </form>
        </nav>
    }
}

/// Renders `children` for a signed-in user; sends others to sign in.
#[component]
pub fn RequireUser(children: ChildrenFn) -> impl IntoView {
    let me = use_me();
    let location = use_location();
    view! {
        <Suspense fallback=|| view! { <p class="text-slate-500">"Loading…"</p> }>
            {move || {
                let children = children.clone();
                Suspend::new(async move {
                    match me.await {
                        Ok(Some(_)) => children().into_any(),
                        _ => {
                            let next = crate::domain::links::urlencode(&location.pathname.get_untracked());
                            view! { <Redirect path=format!("/login?next={next}")/> }.into_any()
                        }
                    }
                })
            }}
        </Suspense>
    }
}

/// Renders `children` for an admin; a 403 page for anyone else.
#[component]
pub fn RequireAdmin(children: ChildrenFn) -> impl IntoView {
    let me = use_me();
    view! {
        <RequireUser>
            {
                let children = children.clone();
                move || {
                    let children = children.clone();
                    Suspend::new(async move {
                        match me.await {
                            Ok(Some(m)) if m.is_admin => children().into_any(),
                            _ => view! { <Forbidden/> }.into_any(),
                        }
                    })
                }
            }
        </RequireUser>
    }
}

#[component]
pub fn Forbidden() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(resp) = use_context::<leptos_axum::ResponseOptions>() {
        resp.set_status(axum::http::StatusCode::FORBIDDEN);
    }
    view! {
        <section class="rounded-xl border border-amber-200 bg-amber-50 p-8" data-testid="forbidden">
            <h1 class="text-xl font-semibold text-amber-900">"Administrators only"</h1>
            <p class="mt-2 text-amber-900">"Your account cannot open this page."</p>
            <a class="mt-4 inline-block text-blue-700 underline" href="/">"Back to your overview"</a>
        </section>
    }
}
