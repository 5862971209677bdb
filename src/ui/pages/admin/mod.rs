//! The admin web UI. Each page is guarded on the server by its server
//! functions (which check the role) and in the UI by `RequireAdmin`.

mod activity;
mod keys;
mod plans;
mod price_import;
mod pricing;
mod profitability;
mod users;
mod wallet;
mod webhooks;

pub use activity::{AdminAlertsPage, AdminAuditPage};
pub use keys::AdminKeysPage;
pub use plans::AdminPlansPage;
pub use pricing::AdminPricingPage;
pub use profitability::AdminProfitabilityPage;
pub use users::AdminUsersPage;
pub use wallet::AdminWalletPage;
pub use webhooks::AdminWebhooksPage;

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

/// A bordered, scrollable table with one header row; `children` are the
/// body's rows. An empty header is a column of actions. It scrolls
/// sideways on a narrow screen, so it is a named region the keyboard can
/// reach (`label`).
#[component]
fn DataTable(
    testid: &'static str,
    label: &'static str,
    headers: &'static [&'static str],
    children: Children,
) -> impl IntoView {
    view! {
        <div class="overflow-x-auto rounded-xl border border-slate-200 bg-white" tabindex="0" role="region" aria-label=label>
            <table class="w-full text-sm" data-testid=testid>
                <thead>
                    <tr>{headers.iter().map(|h| view! { <th class=TH>{*h}</th> }).collect_view()}</tr>
                </thead>
                <tbody>{children()}</tbody>
            </table>
        </div>
    }
}

#[component]
fn AdminFrame(title: &'static str, children: Children) -> impl IntoView {
    let tabs = [
        ("/admin", "Users"),
        ("/admin/plans", "Plans"),
        ("/admin/pricing", "Pricing"),
        ("/admin/alerts", "Alerts"),
        ("/admin/audit", "Audit log"),
        ("/admin/keys", "API keys"),
        ("/admin/wallet", "Wallets"),
        ("/admin/webhooks", "Webhooks"),
        ("/admin/profitability", "Profitability"),
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

/// [`form_banner`] for a form that marks no fields of its own (one per
/// table row): the field errors are said in the banner.
fn row_form_banner(outcome: Option<Result<Option<FormError>, ServerFnError>>, ok: &'static str) -> impl IntoView {
    let outcome = outcome.map(|r| {
        r.map(|e| {
            e.map(|e| match e.fields.is_empty() {
                true => e,
                false => FormError {
                    message: e.fields.iter().map(|(f, m)| format!("{f}: {m}")).collect::<Vec<_>>().join("; "),
                    fields: e.fields,
                },
            })
        })
    });
    form_banner(outcome, ok)
}

fn load_error(e: ServerFnError) -> AnyView {
    view! { <p role="alert" class="rounded bg-red-50 p-3 text-red-800">{format!("Could not load: {e}")}</p> }.into_any()
}

// ----- users -----
