//! Server functions of the admin plans page.

use std::collections::BTreeMap;

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use super::*;
use crate::api::session::FormError;

#[server(prefix = "/sfn")]
pub async fn admin_plans() -> Result<Vec<AdminPlan>, ServerFnError> {
    use crate::domain::money::Nanos;
    let state = admin().await?;
    let cat = state.engine.catalog_snapshot().await.map_err(crate::api::session::ssr::fail)?;
    Ok(cat
        .plans
        .iter()
        .map(|p| AdminPlan {
            id: p.id,
            name: p.name.clone(),
            tier: p.tier.as_str().into(),
            price_monthly: Nanos::to_decimal(p.price_monthly).normalize().to_string(),
            price_yearly: Nanos::to_decimal(p.price_yearly).normalize().to_string(),
            description: p.description.clone(),
            features: p.features.clone(),
            limits: p.limits.iter().map(|(k, v)| (k.as_string(), k.input_value(v))).collect(),
            archived: p.archived,
            billing_mode: p.credits.mode.as_str().into(),
            included_credits: p.credits.included.map(|n| n.to_decimal().normalize().to_string()).unwrap_or_default(),
            credits_rollover_cap: p
                .credits
                .rollover_cap
                .map(|n| n.to_decimal().normalize().to_string())
                .unwrap_or_default(),
        })
        .collect())
}

/// A plan form as posted (`plan[name]`, `plan[limits][gemini_calls]`, ...).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanInput {
    pub id: Option<i64>,
    pub name: String,
    pub tier: String,
    pub price_monthly: String,
    pub price_yearly: String,
    #[serde(default)]
    pub description: String,
    /// One per line.
    #[serde(default)]
    pub features: String,
    #[serde(default)]
    pub limits: BTreeMap<String, String>,
    /// A checkbox: present when checked.
    pub archived: Option<String>,
    #[serde(default)]
    pub billing_mode: String,
    #[serde(default)]
    pub included_credits: String,
    #[serde(default)]
    pub credits_rollover_cap: String,
}

/// Creates (no `id`) or updates a plan.
#[server(prefix = "/sfn")]
pub async fn save_plan(plan: PlanInput) -> Result<Option<FormError>, ServerFnError> {
    use crate::server::service::admin::PlanForm;
    let (state, principal) = crate::api::session::ssr::caller().await?;
    principal.require_admin().map_err(crate::api::session::ssr::fail)?;
    let form = PlanForm {
        name: plan.name,
        tier: plan.tier,
        price_monthly: plan.price_monthly,
        price_yearly: plan.price_yearly,
        description: plan.description,
        features: plan.features.lines().map(str::to_string).collect(),
        limits: plan.limits,
        archived: plan.archived.is_some_and(|a| a == "on" || a == "true"),
        billing_mode: plan.billing_mode,
        included_credits: plan.included_credits,
        credits_rollover_cap: plan.credits_rollover_cap,
    };
    let now = chrono::Utc::now();
    let actor = principal.actor();
    let result = match plan.id {
        Some(id) => state.engine.update_plan(id, &form, &actor, now).await,
        None => state.engine.create_plan(&form, &actor, now).await,
    };
    match result {
        Ok(_) => Ok(None),
        Err(e) => crate::api::session::ssr::form_error(e).map(Some),
    }
}

/// `/admin/pricing?provider=…&model=…&<rate field>=…&tiers=…#new-price`.
#[cfg(feature = "ssr")]
pub(super) fn edit_href(v: &crate::domain::pricing::PriceVersion) -> String {
    use crate::domain::links::urlencode;
    use crate::domain::pricing::json;
    let mut q = vec![format!("provider={}", urlencode(v.provider.as_str())), format!("model={}", urlencode(&v.model))];
    q.extend(v.rates.base.iter().map(|(f, p)| format!("{}={}", f.name(), urlencode(&p.as_string()))));
    if !v.rates.tiers.is_empty() {
        q.push(format!("tiers={}", urlencode(&json::tiers_to_json(&v.rates.tiers).to_string())));
    }
    if !v.rates.service_tiers.is_empty() {
        q.push(format!(
            "service_tiers={}",
            urlencode(&json::service_tiers_to_json(&v.rates.service_tiers).to_string())
        ));
    }
    if let Some(n) = v.max_output_tokens {
        q.push(format!("max_output_tokens={n}"));
    }
    format!("/admin/pricing?{}#new-price", q.join("&"))
}
