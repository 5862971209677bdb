use leptos::prelude::*;

#[component]
pub fn Header() -> impl IntoView {
    view! {
        <header class="border-b border-slate-200 bg-white">
            <div class="mx-auto flex max-w-6xl items-center justify-between px-4 py-3 sm:px-6">
                <a href="/" class="flex items-center gap-2 font-semibold text-slate-900">
                    <span class="inline-flex h-7 w-7 items-center justify-center rounded-md bg-blue-600 text-sm font-bold text-white">"T"</span>
                    "Tally"
                </a>
                <span class="text-sm text-slate-500">"Usage-based billing for AI APIs"</span>
            </div>
        </header>
    }
}
