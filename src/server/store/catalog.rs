//! Plans, their limits, and price versions.

use chrono::{DateTime, Utc};
use sqlx::{AnyConnection, Row};

use super::{StoreError, StoreResult, from_ms, ms};
use crate::domain::limits::Limits;
use crate::domain::money::{Nanos, Price};
use crate::domain::plan::{BillingMode, Credits, Plan, Tier};
use crate::domain::pricing::{PriceVersion, RateField, Rates, json};
use crate::domain::provider::{LimitKey, Provider};

pub async fn revision(conn: &mut AnyConnection) -> StoreResult<i64> {
    Ok(sqlx::query("SELECT revision FROM catalog_revision WHERE id = 1").fetch_one(conn).await?.try_get("revision")?)
}

/// Marks the catalog changed. The revision is a fresh random tag, never a
/// counter: a process may keep a snapshot it loaded inside a transaction
/// that changed the catalog and then rolled back, and no revision committed
/// later may be mistaken for that snapshot's.
pub async fn bump_revision(conn: &mut AnyConnection) -> StoreResult<()> {
    let tag = (uuid::Uuid::new_v4().as_u64_pair().0 >> 1) as i64;
    sqlx::query("UPDATE catalog_revision SET revision = $1 WHERE id = 1").bind(tag).execute(conn).await?;
    Ok(())
}

/// Every plan, archived ones included, ordered by tier then price.
pub async fn plans(conn: &mut AnyConnection) -> StoreResult<Vec<Plan>> {
    let rows = sqlx::query(
        "SELECT id, name, tier, price_monthly_nanos, price_yearly_nanos, description, features_json, archived,
           billing_mode, included_credits_nanos, credits_rollover_cap_nanos
         FROM plans ORDER BY id",
    )
    .fetch_all(&mut *conn)
    .await?;
    let limit_rows = sqlx::query("SELECT plan_id, limit_key, value FROM plan_limits").fetch_all(&mut *conn).await?;
    let mut plans = Vec::with_capacity(rows.len());
    for r in rows {
        let id: i64 = r.try_get("id")?;
        let tier: String = r.try_get("tier")?;
        let features: String = r.try_get("features_json")?;
        let mode: String = r.try_get("billing_mode")?;
        let mut limits = Limits::new();
        for l in limit_rows.iter().filter(|l| l.try_get::<i64, _>("plan_id").ok() == Some(id)) {
            let key: String = l.try_get("limit_key")?;
            let key = LimitKey::parse(&key).ok_or_else(|| StoreError::Corrupt(format!("limit key {key}")))?;
            limits.set(key, Some(l.try_get("value")?));
        }
        plans.push(Plan {
            id,
            name: r.try_get("name")?,
            tier: Tier::parse(&tier).ok_or_else(|| StoreError::Corrupt(format!("tier {tier}")))?,
            price_monthly: Nanos(r.try_get("price_monthly_nanos")?),
            price_yearly: Nanos(r.try_get("price_yearly_nanos")?),
            description: r.try_get("description")?,
            features: serde_json::from_str(&features).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            limits,
            archived: r.try_get::<i64, _>("archived")? != 0,
            credits: Credits {
                mode: BillingMode::parse(&mode).ok_or_else(|| StoreError::Corrupt(format!("billing mode {mode}")))?,
                included: r.try_get::<Option<i64>, _>("included_credits_nanos")?.map(Nanos),
                rollover_cap: r.try_get::<Option<i64>, _>("credits_rollover_cap_nanos")?.map(Nanos),
            },
        });
    }
    plans.sort_by_key(|p| (p.tier, p.price_monthly, p.id));
    Ok(plans)
}

async fn write_limits(conn: &mut AnyConnection, plan_id: i64, limits: &Limits) -> StoreResult<()> {
    sqlx::query("DELETE FROM plan_limits WHERE plan_id = $1").bind(plan_id).execute(&mut *conn).await?;
    for (key, value) in limits.iter() {
        sqlx::query("INSERT INTO plan_limits (plan_id, limit_key, value) VALUES ($1, $2, $3)")
            .bind(plan_id)
            .bind(key.as_string())
            .bind(value)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Inserts a plan (its `id` is ignored) and returns the new id.
pub async fn insert_plan(conn: &mut AnyConnection, p: &Plan, now: DateTime<Utc>) -> StoreResult<i64> {
    let id: i64 = sqlx::query(
        "INSERT INTO plans (name, tier, price_monthly_nanos, price_yearly_nanos, description, features_json, archived,
           billing_mode, included_credits_nanos, credits_rollover_cap_nanos, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) RETURNING id",
    )
    .bind(&p.name)
    .bind(p.tier.as_str())
    .bind(p.price_monthly.0)
    .bind(p.price_yearly.0)
    .bind(&p.description)
    .bind(serde_json::to_string(&p.features).unwrap_or_else(|_| "[]".into()))
    .bind(p.archived as i64)
    .bind(p.credits.mode.as_str())
    .bind(p.credits.included.map(|n| n.0))
    .bind(p.credits.rollover_cap.map(|n| n.0))
    .bind(ms(now))
    .fetch_one(&mut *conn)
    .await?
    .try_get("id")?;
    write_limits(conn, id, &p.limits).await?;
    bump_revision(conn).await?;
    Ok(id)
}

/// Replaces a plan's fields and limits; false when there is no such plan.
pub async fn update_plan(conn: &mut AnyConnection, p: &Plan, now: DateTime<Utc>) -> StoreResult<bool> {
    let r = sqlx::query(
        "UPDATE plans SET name = $2, tier = $3, price_monthly_nanos = $4, price_yearly_nanos = $5, description = $6,
         features_json = $7, archived = $8, billing_mode = $9, included_credits_nanos = $10,
         credits_rollover_cap_nanos = $11, updated_at = $12 WHERE id = $1",
    )
    .bind(p.id)
    .bind(&p.name)
    .bind(p.tier.as_str())
    .bind(p.price_monthly.0)
    .bind(p.price_yearly.0)
    .bind(&p.description)
    .bind(serde_json::to_string(&p.features).unwrap_or_else(|_| "[]".into()))
    .bind(p.archived as i64)
    .bind(p.credits.mode.as_str())
    .bind(p.credits.included.map(|n| n.0))
    .bind(p.credits.rollover_cap.map(|n| n.0))
    .bind(ms(now))
    .execute(&mut *conn)
    .await?;
    if r.rows_affected() == 0 {
        return Ok(false);
    }
    write_limits(conn, p.id, &p.limits).await?;
    bump_revision(conn).await?;
    Ok(true)
}

fn price_col(r: &sqlx::any::AnyRow, col: &str) -> StoreResult<Option<Price>> {
    let v: Option<String> = r.try_get(col)?;
    v.map(|s| Price::parse(&s).map_err(|e| StoreError::Corrupt(format!("{col}: {e}")))).transpose()
}

/// The rate columns, in [`RateField::ALL`] order.
fn rate_cols() -> String {
    RateField::ALL.map(RateField::name).join(", ")
}

/// Tiers and service tiers as the store keeps them (the API's JSON).
fn tiers_from_row(r: &sqlx::any::AnyRow, rates: &mut Rates) -> StoreResult<()> {
    let mut reader = json::Reader::new(rust_decimal::Decimal::MAX);
    let parse = |col: &str| -> StoreResult<serde_json::Value> {
        let raw: Option<String> = r.try_get(col)?;
        raw.map(|s| serde_json::from_str(&s).map_err(|e| StoreError::Corrupt(format!("{col}: {e}"))))
            .transpose()
            .map(Option::unwrap_or_default)
    };
    rates.tiers = reader.tiers(&parse("tiers_json")?, "tiers");
    rates.service_tiers = reader.service_tiers(&parse("service_tiers_json")?, "service_tiers");
    match reader.errors.first() {
        Some((field, msg)) => Err(StoreError::Corrupt(format!("{field}: {msg}"))),
        None => Ok(()),
    }
}

pub async fn price_versions(conn: &mut AnyConnection) -> StoreResult<Vec<PriceVersion>> {
    let sql = format!(
        "SELECT id, provider, model, effective_from, {}, tiers_json, service_tiers_json, description, max_output_tokens
         FROM price_versions ORDER BY id",
        rate_cols()
    );
    let rows = sqlx::query(&sql).fetch_all(conn).await?;
    rows.iter()
        .map(|r| {
            let provider: String = r.try_get("provider")?;
            let mut rates = Rates::default();
            for f in RateField::ALL {
                rates.base.set(f, price_col(r, f.name())?);
            }
            tiers_from_row(r, &mut rates)?;
            Ok(PriceVersion {
                id: r.try_get("id")?,
                provider: Provider::parse(&provider).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                model: r.try_get("model")?,
                effective_from: from_ms(r.try_get("effective_from")?),
                rates,
                description: r.try_get("description")?,
                max_output_tokens: r.try_get::<Option<i64>, _>("max_output_tokens")?.map(|n| n.max(0) as u64),
            })
        })
        .collect()
}

/// Adds a price version; a second version with the same provider, model and
/// instant is a unique violation.
pub async fn insert_price_version(
    conn: &mut AnyConnection,
    v: &PriceVersion,
    created_by: Option<&str>,
    now: DateTime<Utc>,
) -> StoreResult<i64> {
    let id = insert_price_row(conn, v, created_by, now).await?;
    bump_revision(conn).await?;
    Ok(id)
}

/// Adds a price version without bumping the catalog revision (an import
/// bumps it once for all of its versions).
pub async fn insert_price_row(
    conn: &mut AnyConnection,
    v: &PriceVersion,
    created_by: Option<&str>,
    now: DateTime<Utc>,
) -> StoreResult<i64> {
    let n = RateField::ALL.len();
    let placeholders: Vec<String> = (4..n + 10).map(|i| format!("${i}")).collect();
    let sql = format!(
        "INSERT INTO price_versions (provider, model, effective_from, {}, tiers_json, service_tiers_json,
         description, created_at, created_by, max_output_tokens) VALUES ($1, $2, $3, {}) RETURNING id",
        rate_cols(),
        placeholders.join(", ")
    );
    let mut q = sqlx::query(&sql).bind(v.provider.as_str()).bind(&v.model).bind(ms(v.effective_from));
    for f in RateField::ALL {
        q = q.bind(v.rates.base.get(f).map(Price::as_string));
    }
    let tiers = (!v.rates.tiers.is_empty()).then(|| json::tiers_to_json(&v.rates.tiers).to_string());
    let service =
        (!v.rates.service_tiers.is_empty()).then(|| json::service_tiers_to_json(&v.rates.service_tiers).to_string());
    let id: i64 = q
        .bind(tiers)
        .bind(service)
        .bind(&v.description)
        .bind(ms(now))
        .bind(created_by)
        .bind(v.max_output_tokens.map(|n| n.min(i64::MAX as u64) as i64))
        .fetch_one(&mut *conn)
        .await?
        .try_get("id")?;
    Ok(id)
}
