//! Administration: plans, price versions, users, subscriptions and keys.
//! Every change is written with its audit entry (who, what, before, after)
//! in the same transaction.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::Engine;
use super::audit;
use super::subscriptions::NewUser;
use crate::domain::identity::ApiKey;
use crate::domain::identity::{Email, Role, User, UserId};
use crate::domain::limits::Limits;
use crate::domain::money::Nanos;
use crate::domain::plan::{BillingMode, Credits, Plan, Tier};
use crate::domain::pricing::{ANY_MODEL, PriceVersion, RateField, Rates, json};
use crate::domain::provider::{LimitKey, Provider};
use crate::server::auth::hash_password_off_thread;
use crate::server::error::{AppError, AppResult};
use crate::server::store::keys::{self, AuditEntry};
use crate::server::store::users;
use crate::server::store::{StoreError, catalog};
use crate::server::views::plan::PlanView;
use crate::server::views::price::PriceView;

/// A plan as typed into a form or sent to the admin API: strings, checked
/// field by field.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PlanForm {
    pub name: String,
    pub tier: String,
    /// USD, e.g. `"29"` or `"29.00"`.
    pub price_monthly: String,
    pub price_yearly: String,
    pub description: String,
    pub features: Vec<String>,
    /// Limit key → value; empty, `"0"` or absent = unlimited. Calls and tokens
    /// are whole numbers; `monthly_cost` is USD.
    pub limits: BTreeMap<String, String>,
    pub archived: bool,
    /// `postpaid` (or empty) or `prepaid`.
    #[serde(default)]
    pub billing_mode: String,
    /// USD granted at each period start; empty: none.
    #[serde(default)]
    pub included_credits: String,
    /// USD of included credits that may roll over; empty: they expire.
    #[serde(default)]
    pub credits_rollover_cap: String,
}

/// The largest plan price or cost cap: $100,000,000 (twelve of them still
/// fit the integer nano-dollars with room to spare).
pub const MAX_PLAN_PRICE: Nanos = Nanos::from_usd(100_000_000);
/// The largest price per million tokens or per unit, in USD.
pub const MAX_UNIT_PRICE_USD: i64 = 1_000_000;
/// The largest calls or tokens limit.
pub const MAX_COUNT_LIMIT: i64 = 1_000_000_000_000_000;

/// A plan price or cost cap typed by a person, or a sentence saying why not.
pub fn plan_price(raw: &str) -> Result<Nanos, String> {
    use crate::domain::money::MoneyError;
    match Nanos::parse_usd(raw) {
        Ok(n) if n > MAX_PLAN_PRICE => Err("Enter an amount up to 100,000,000 US dollars.".into()),
        Ok(n) => Ok(n),
        Err(MoneyError::Negative) => Err("Enter an amount of 0 or more.".into()),
        Err(MoneyError::TooPrecise(..)) => Err("Use at most 9 decimal places, as in 0.000000001.".into()),
        Err(MoneyError::Overflow) => Err("Enter an amount up to 100,000,000 US dollars.".into()),
        Err(MoneyError::NotDecimal(_)) => Err("Enter an amount in US dollars such as 29 or 29.99.".into()),
    }
}

impl PlanForm {
    /// The plan, or every problem by field.
    pub fn validate(&self, id: i64) -> AppResult<Plan> {
        let mut errs: Vec<(String, String)> = Vec::new();
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > 64 {
            errs.push(("name".into(), "a name of 1 to 64 characters is required".into()));
        }
        let tier = Tier::parse(self.tier.trim());
        if tier.is_none() {
            errs.push(("tier".into(), "tier must be free, basic, pro or enterprise".into()));
        }
        // Empty monthly price: free. Empty yearly price: twelve months at
        // the monthly price (no yearly discount).
        let price_monthly = match self.price_monthly.trim() {
            "" => Nanos::ZERO,
            raw => plan_price(raw).unwrap_or_else(|e| {
                errs.push(("price_monthly".into(), e));
                Nanos::ZERO
            }),
        };
        let price_yearly = match self.price_yearly.trim() {
            "" => Nanos(price_monthly.0 * 12),
            raw => plan_price(raw).unwrap_or_else(|e| {
                errs.push(("price_yearly".into(), e));
                Nanos::ZERO
            }),
        };
        let mut limits = Limits::new();
        for (k, raw) in &self.limits {
            let Some(key) = LimitKey::parse(k) else {
                errs.push((
                    format!("limits.{k}"),
                    format!("`{k}` is not a limit key (e.g. gemini_calls, openai_tokens, monthly_cost)"),
                ));
                continue;
            };
            let raw = raw.trim();
            if raw.is_empty() {
                continue;
            }
            let value = match key {
                LimitKey::MonthlyCost => plan_price(raw).map(|n| n.0),
                _ => raw.parse::<i64>().ok().filter(|v| (0..=MAX_COUNT_LIMIT).contains(v)).ok_or_else(|| {
                    format!("Enter a whole number such as 1000 (at most {MAX_COUNT_LIMIT}), or leave it empty for unlimited.")
                }),
            };
            match value {
                Ok(v) => limits.set(key, Some(v)),
                Err(e) => errs.push((format!("limits.{k}"), e)),
            }
        }
        let features: Vec<String> =
            self.features.iter().map(|f| f.trim().to_string()).filter(|f| !f.is_empty()).collect();
        if features.iter().any(|f| f.chars().count() > 200) {
            errs.push(("features".into(), "each feature is at most 200 characters".into()));
        }
        if self.description.chars().count() > 2000 {
            errs.push(("description".into(), "at most 2000 characters".into()));
        }
        let mode = match self.billing_mode.trim() {
            "" => Some(BillingMode::Postpaid),
            m => BillingMode::parse(m),
        };
        if mode.is_none() {
            errs.push(("billing_mode".into(), "billing mode must be postpaid or prepaid".into()));
        }
        let mut credit = |field: &str, raw: &str, zero_ok: bool| match raw.trim() {
            "" => None,
            raw => match plan_price(raw) {
                Ok(n) if n == Nanos::ZERO && !zero_ok => {
                    errs.push((field.into(), "Enter an amount above 0, or leave it empty for none.".into()));
                    None
                }
                Ok(n) => Some(n),
                Err(e) => {
                    errs.push((field.into(), e));
                    None
                }
            },
        };
        let included = credit("included_credits", &self.included_credits, false);
        let rollover_cap = credit("credits_rollover_cap", &self.credits_rollover_cap, true);
        if rollover_cap.is_some() && included.is_none() {
            errs.push((
                "credits_rollover_cap".into(),
                "only included credits roll over; set included credits or leave this empty".into(),
            ));
        }
        if !errs.is_empty() {
            return Err(AppError::InvalidFields(errs));
        }
        Ok(Plan {
            id,
            name: name.to_string(),
            tier: tier.expect("checked"),
            price_monthly,
            price_yearly,
            description: self.description.trim().to_string(),
            features,
            limits,
            archived: self.archived,
            credits: Credits { mode: mode.expect("checked"), included, rollover_cap },
        })
    }
}

/// A new price version as typed or sent: prices as USD strings.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PriceForm {
    pub provider: String,
    pub model: String,
    /// Base rates by field name ([`RateField::name`]): USD strings, blank
    /// or null for unset. Any other key is an error.
    pub rates: serde_json::Map<String, serde_json::Value>,
    /// `[{"above_input_tokens": N, <rates>}]`, or null.
    pub tiers: serde_json::Value,
    /// `{"batch"|"flex"|"priority": {<rates>, "tiers"?}}`, or null.
    pub service_tiers: serde_json::Value,
    pub description: Option<String>,
    /// RFC 3339; now when absent.
    pub effective_from: Option<String>,
    /// The model's output cap: a whole number of tokens (as a number or a
    /// string), or null / blank for unknown.
    pub max_output_tokens: serde_json::Value,
}

impl PriceForm {
    /// A form with these base rates (name, USD string).
    pub fn with_rates(provider: &str, model: &str, rates: &[(RateField, &str)]) -> PriceForm {
        PriceForm {
            provider: provider.into(),
            model: model.into(),
            rates: rates
                .iter()
                .map(|(f, p)| (f.name().to_string(), serde_json::Value::String(p.to_string())))
                .collect(),
            ..PriceForm::default()
        }
    }

    /// The admin API's body: `provider`, `model`, `description`,
    /// `effective_from`, `tiers`, `service_tiers` and the rate fields.
    pub fn from_json(body: &serde_json::Map<String, serde_json::Value>) -> AppResult<PriceForm> {
        let mut form = PriceForm::default();
        let mut errs = Vec::new();
        let text = |k: &str, v: &serde_json::Value, errs: &mut Vec<(String, String)>| match v {
            serde_json::Value::Null => None,
            serde_json::Value::String(s) => Some(s.clone()),
            _ => {
                errs.push((k.to_string(), "must be a string".to_string()));
                None
            }
        };
        for (k, v) in body {
            match k.as_str() {
                "provider" => form.provider = text(k, v, &mut errs).unwrap_or_default(),
                "model" => form.model = text(k, v, &mut errs).unwrap_or_default(),
                "description" => form.description = text(k, v, &mut errs),
                "effective_from" => form.effective_from = text(k, v, &mut errs),
                "tiers" => form.tiers = v.clone(),
                "max_output_tokens" => form.max_output_tokens = v.clone(),
                "service_tiers" => form.service_tiers = v.clone(),
                _ => {
                    form.rates.insert(k.clone(), v.clone());
                }
            }
        }
        if errs.is_empty() { Ok(form) } else { Err(AppError::InvalidFields(errs)) }
    }

    pub fn validate(&self, now: DateTime<Utc>) -> AppResult<PriceVersion> {
        let mut errs: Vec<(String, String)> = Vec::new();
        let provider = Provider::parse(&self.provider).map_err(|e| errs.push(("provider".into(), e.to_string()))).ok();
        let model = self.model.trim();
        if model.is_empty() || model.chars().count() > 128 {
            errs.push((
                "model".into(),
                format!("a model name of 1 to 128 characters is required (`{ANY_MODEL}` prices every model)"),
            ));
        }
        let mut reader = json::Reader::new(rust_decimal::Decimal::from(MAX_UNIT_PRICE_USD));
        let rates = Rates {
            base: reader.class(&self.rates, "", &[]),
            tiers: reader.tiers(&self.tiers, "tiers"),
            service_tiers: reader.service_tiers(&self.service_tiers, "service_tiers"),
        };
        errs.append(&mut reader.errors);
        if rates.is_empty() && errs.is_empty() {
            errs.push(("input_per_million".into(), "set at least one price".into()));
        }
        let max_output_tokens = match &self.max_output_tokens {
            serde_json::Value::Null => None,
            serde_json::Value::String(s) if s.trim().is_empty() => None,
            v => {
                let n = v.as_u64().or_else(|| v.as_str().and_then(|s| s.trim().replace(',', "").parse().ok()));
                match n {
                    Some(n) if (1..=MAX_OUTPUT_CAP).contains(&n) => Some(n),
                    _ => {
                        errs.push((
                            "max_output_tokens".into(),
                            format!("a whole number of tokens from 1 to {MAX_OUTPUT_CAP}, or blank for unknown"),
                        ));
                        None
                    }
                }
            }
        };
        let effective_from = match self.effective_from.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            None => now,
            Some(s) => match DateTime::parse_from_rfc3339(s) {
                Ok(t) => t.with_timezone(&Utc),
                Err(_) => {
                    errs.push(("effective_from".into(), format!("`{s}` is not an RFC 3339 date-time")));
                    now
                }
            },
        };
        if !errs.is_empty() {
            return Err(AppError::InvalidFields(errs));
        }
        Ok(PriceVersion {
            id: 0,
            provider: provider.expect("checked"),
            model: model.to_string(),
            effective_from,
            rates,
            description: self.description.clone().unwrap_or_default().trim().to_string(),
            max_output_tokens,
        })
    }
}

/// The largest output cap a price may state (no model comes near it).
pub const MAX_OUTPUT_CAP: u64 = 100_000_000;

/// A user as an admin creates one.
#[derive(Clone, Debug)]
pub struct UserForm {
    /// The host product's id for the user; generated when `None`.
    pub id: Option<String>,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub password: Option<String>,
    /// The timezone its subscription's periods are counted in (UTC if unset).
    pub timezone: Option<chrono_tz::Tz>,
}

fn conflict_or(e: StoreError, what: String) -> AppError {
    if e.is_unique_violation() { AppError::Conflict(what) } else { e.into() }
}

impl Engine {
    pub async fn create_plan(&self, form: &PlanForm, actor: &str, now: DateTime<Utc>) -> AppResult<Plan> {
        let mut plan = form.validate(0)?;
        let mut tx = self.store.begin().await?;
        plan.id = catalog::insert_plan(&mut tx, &plan, now)
            .await
            .map_err(|e| conflict_or(e, format!("a plan named `{}` already exists", plan.name)))?;
        audit::record(
            &mut tx,
            actor,
            "plan.create",
            ("plan", &plan.id.to_string()),
            audit::NONE,
            Some(&PlanView::from(&plan)),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(plan)
    }

    /// Replaces a plan; archiving keeps its subscribers on it.
    pub async fn update_plan(&self, id: i64, form: &PlanForm, actor: &str, now: DateTime<Utc>) -> AppResult<Plan> {
        let plan = form.validate(id)?;
        let mut tx = self.store.begin().await?;
        let before = catalog::plans(&mut tx)
            .await?
            .into_iter()
            .find(|p| p.id == id)
            .ok_or_else(|| AppError::NotFound(format!("no plan with id {id}")))?;
        catalog::update_plan(&mut tx, &plan, now)
            .await
            .map_err(|e| conflict_or(e, format!("a plan named `{}` already exists", plan.name)))?;
        audit::record(
            &mut tx,
            actor,
            "plan.update",
            ("plan", &id.to_string()),
            Some(&PlanView::from(&before)),
            Some(&PlanView::from(&plan)),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(plan)
    }

    /// Adds a price version from its effective instant; history is kept.
    pub async fn add_price(&self, form: &PriceForm, actor: &str, now: DateTime<Utc>) -> AppResult<PriceVersion> {
        let mut v = form.validate(now)?;
        let mut tx = self.store.begin().await?;
        let previous = catalog::price_versions(&mut tx)
            .await?
            .into_iter()
            .filter(|p| p.provider == v.provider && p.model == v.model && p.effective_from <= v.effective_from)
            .max_by_key(|p| p.effective_from);
        v.id = catalog::insert_price_version(&mut tx, &v, Some(actor), now).await.map_err(|e| {
            conflict_or(
                e,
                format!("{} / {} already has a version from {}", v.provider, v.model, v.effective_from.to_rfc3339()),
            )
        })?;
        let repriced = super::repricing::reprice_for(&mut tx, &self.catalog, &v, actor, now).await?;
        if repriced.events > 0 {
            tracing::info!(events = repriced.events, cost = %repriced.cost.usd_string(), "re-priced unpriced usage");
        }
        let before = previous.as_ref().map(PriceView::from);
        audit::record(
            &mut tx,
            actor,
            "price.create",
            ("price", &format!("{}/{}", v.provider, v.model)),
            before.as_ref(),
            Some(&PriceView::from(&v)),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(v)
    }

    /// Creates a user (and its subscription on the default plan).
    pub async fn admin_create_user(&self, form: UserForm, actor: &str, now: DateTime<Utc>) -> AppResult<User> {
        let password_hash = match form.password {
            Some(p) => Some(
                hash_password_off_thread(p)
                    .await
                    .map_err(|e| AppError::InvalidFields(vec![("password".into(), e.to_string())]))?
                    .0,
            ),
            None => None,
        };
        let id = form.id.as_deref().map(UserId::parse).transpose().map_err(|e| AppError::Invalid(e.to_string()))?;
        let email = Email::parse(&form.email).map_err(|e| AppError::Invalid(e.to_string()))?;
        let new =
            NewUser { id, email, name: form.name, role: form.role, password_hash, plan: None, timezone: form.timezone };
        self.create_user_by(new, Some(actor), now).await
    }

    pub async fn user(&self, user_id: &UserId) -> AppResult<User> {
        let mut conn = self.store.pool().acquire().await?;
        users::user_by_id(&mut conn, user_id)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("no user with id `{user_id}`")))
    }

    /// The user with this email address, else with this id (the CLI's
    /// `--user`).
    pub async fn user_by_email_or_id(&self, email_or_id: &str) -> AppResult<User> {
        let mut conn = self.store.pool().acquire().await?;
        if let Some(user) = users::user_by_email(&mut conn, email_or_id).await? {
            return Ok(user);
        }
        let found = match UserId::parse(email_or_id) {
            Ok(id) => users::user_by_id(&mut conn, &id).await?,
            Err(_) => None,
        };
        found.ok_or_else(|| AppError::NotFound(format!("no user with email or id `{email_or_id}`")))
    }

    pub async fn list_users(&self, search: Option<&str>, limit: i64, offset: i64) -> AppResult<(Vec<User>, i64)> {
        let mut conn = self.store.pool().acquire().await?;
        Ok(users::list_users(&mut conn, search, limit.clamp(1, 1000), offset.clamp(0, 1_000_000_000)).await?)
    }

    pub async fn list_api_keys(&self) -> AppResult<Vec<ApiKey>> {
        let mut conn = self.store.pool().acquire().await?;
        Ok(keys::list_keys(&mut conn).await?)
    }

    pub async fn revoke_api_key(&self, key_id: &str, actor: &str, now: DateTime<Utc>) -> AppResult<()> {
        let mut tx = self.store.begin().await?;
        if !keys::revoke_key(&mut tx, key_id, now).await? {
            return Err(AppError::NotFound(format!("no active API key with id `{key_id}`")));
        }
        audit::record(
            &mut tx,
            actor,
            "api_key.revoke",
            ("api_key", key_id),
            audit::NONE,
            Some(&json!({"revoked_at": now.to_rfc3339()})),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn audit_log(
        &self,
        entity_type: Option<&str>,
        actor: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> AppResult<(Vec<AuditEntry>, i64)> {
        let mut conn = self.store.pool().acquire().await?;
        Ok(keys::audit_log(&mut conn, entity_type, actor, limit.clamp(1, 1000), offset.clamp(0, 1_000_000_000)).await?)
    }
}

/// A model the engine saw without a price and that still has none.
#[derive(Clone, Debug)]
pub struct UnpricedModel {
    pub provider: String,
    pub model: Option<String>,
    pub events: i64,
    pub last_seen: DateTime<Utc>,
}

impl Engine {
    pub async fn all_alerts(&self, limit: i64) -> AppResult<Vec<(crate::domain::alerts::Alert, Option<String>)>> {
        let mut conn = self.store.pool().acquire().await?;
        Ok(crate::server::store::alerts::all_alerts(&mut conn, limit.clamp(1, 1000)).await?)
    }

    /// Unpriced models that the catalog still cannot price now.
    pub async fn unpriced_models(&self, now: DateTime<Utc>) -> AppResult<Vec<UnpricedModel>> {
        let cat = self.catalog_snapshot().await?;
        let mut conn = self.store.pool().acquire().await?;
        let rows = crate::server::store::events::unpriced_models(&mut conn).await?;
        Ok(rows
            .into_iter()
            .filter(|(p, m, _, _)| Provider::parse(p).is_ok_and(|p| cat.prices.lookup(&p, m.as_deref(), now).is_none()))
            .map(|(provider, model, events, last_seen)| UnpricedModel { provider, model, events, last_seen })
            .collect())
    }
}
