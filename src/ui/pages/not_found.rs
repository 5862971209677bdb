use leptos::prelude::*;

#[component]
pub fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(resp) = use_context::<leptos_axum::ResponseOptions>() {
        resp.set_status(axum::http::StatusCode::NOT_FOUND);
    }
    view! {
        <section class="rounded-xl border border-slate-200 bg-white p-8 text-center">
            <h1 class="text-xl font-semibold">"Page not found"</h1>
            <p class="mt-2 text-slate-600">"There is nothing at this address."</p>
            <a class="mt-4 inline-block text-blue-700 underline" href="/">"Back to the overview"</a>
        </section>
    }
}
