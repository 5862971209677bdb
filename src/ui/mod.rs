//! The Leptos app: the HTML shell, the router, pages and components.
//!
//! Pages render on the server with their data (routes use `SsrMode::Async`,
//! so the first HTML carries the real numbers and reads correctly without
//! JavaScript); hydration then adds charts and live refresh.

pub mod components;
pub mod pages;

use leptos::prelude::*;
use leptos_meta::{MetaTags, Stylesheet, Title, provide_meta_context};
use leptos_router::components::{Route, Router, Routes};
use leptos_router::{SsrMode, path};

use components::layout::MeResource;
use pages::account::AccountPage;
use pages::admin::{
    AdminAlertsPage, AdminAuditPage, AdminKeysPage, AdminPlansPage, AdminPricingPage, AdminProfitabilityPage,
    AdminUsersPage, AdminWalletPage, AdminWebhooksPage,
};
use pages::billing::{BillingPage, PlansPage, UsagePage};
use pages::dashboard::DashboardPage;
use pages::login::LoginPage;
use pages::performance::PerformancePage;

/// The HTML document around the app. ECharts (served from our own origin)
/// is not part of it: only pages with a chart load it
/// ([`components::charts::EChart`]).
pub fn shell(options: LeptosOptions) -> impl IntoView {
    // The page's Content-Security-Policy allows the inline hydration scripts
    // by this response's nonce (leptos_axum makes one per request).
    #[cfg(feature = "ssr")]
    if let Some(resp) = use_context::<leptos_axum::ResponseOptions>() {
        let nonce = leptos::nonce::use_nonce().map(|n| n.to_string());
        if let Ok(v) = axum::http::HeaderValue::from_str(&crate::server::web::page_csp(nonce.as_deref())) {
            resp.insert_header(axum::http::header::CONTENT_SECURITY_POLICY, v);
        }
    }
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <meta name="color-scheme" content="light"/>
                <link rel="icon" href="/favicon.svg" type="image/svg+xml"/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body class="min-h-screen bg-slate-50 text-slate-900 antialiased">
                <App/>
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    let me: MeResource = Resource::new(|| (), |_| crate::api::session::current_user());
    provide_context(me);
    // Runs only in the browser: marks the page as hydrated (tests wait on it).
    Effect::new(move |_| {
        #[cfg(feature = "hydrate")]
        if let Some(body) = document().body() {
            let _ = body.set_attribute("data-hydrated", "true");
        }
    });
    view! {
        <Stylesheet id="leptos" href="/pkg/tally.css"/>
        <Title text="Tally: usage and billing"/>
        <Router>
            <components::layout::Header/>
            <main class="mx-auto max-w-6xl px-4 py-6 sm:px-6">
                <Routes fallback=|| view! { <pages::not_found::NotFound/> }>
                    <Route path=path!("/") view=DashboardPage ssr=SsrMode::Async/>
                    <Route path=path!("/dashboard") view=DashboardPage ssr=SsrMode::Async/>
                    <Route path=path!("/usage") view=UsagePage ssr=SsrMode::Async/>
                    <Route path=path!("/performance") view=PerformancePage ssr=SsrMode::Async/>
                    <Route path=path!("/plans") view=PlansPage ssr=SsrMode::Async/>
                    <Route path=path!("/billing") view=BillingPage ssr=SsrMode::Async/>
                    <Route path=path!("/login") view=LoginPage ssr=SsrMode::Async/>
                    <Route path=path!("/account") view=AccountPage ssr=SsrMode::Async/>
                    <Route path=path!("/admin") view=AdminUsersPage ssr=SsrMode::Async/>
                    <Route path=path!("/admin/plans") view=AdminPlansPage ssr=SsrMode::Async/>
                    <Route path=path!("/admin/pricing") view=AdminPricingPage ssr=SsrMode::Async/>
                    <Route path=path!("/admin/alerts") view=AdminAlertsPage ssr=SsrMode::Async/>
                    <Route path=path!("/admin/audit") view=AdminAuditPage ssr=SsrMode::Async/>
                    <Route path=path!("/admin/profitability") view=AdminProfitabilityPage ssr=SsrMode::Async/>
                    <Route path=path!("/admin/keys") view=AdminKeysPage ssr=SsrMode::Async/>
                    <Route path=path!("/admin/webhooks") view=AdminWebhooksPage ssr=SsrMode::Async/>
                    <Route path=path!("/admin/wallet") view=AdminWalletPage ssr=SsrMode::Async/>
                </Routes>
            </main>
        </Router>
    }
}
