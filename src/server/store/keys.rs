//! API keys (hashed secrets with scopes) and the audit log.

use chrono::{DateTime, Utc};
use sqlx::{AnyConnection, Row};

use super::{StoreResult, from_ms, ms};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKey {
    pub id: String,
    pub prefix: String,
    pub user_id: Option<String>,
    pub scopes: Vec<String>,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

fn key_from_row(r: &sqlx::any::AnyRow) -> StoreResult<ApiKey> {
    let scopes: String = r.try_get("scopes")?;
    Ok(ApiKey {
        id: r.try_get("id")?,
        prefix: r.try_get("prefix")?,
        user_id: r.try_get("user_id")?,
        scopes: scopes
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        name: r.try_get("name")?,
        created_at: from_ms(r.try_get("created_at")?),
        last_used_at: r.try_get::<Option<i64>, _>("last_used_at")?.map(from_ms),
        revoked_at: r.try_get::<Option<i64>, _>("revoked_at")?.map(from_ms),
    })
}

const KEY_COLS: &str = "id, prefix, user_id, scopes, name, created_at, last_used_at, revoked_at";

pub async fn insert_key(
    conn: &mut AnyConnection,
    key: &ApiKey,
    secret_hash: &str,
    created_by: Option<&str>,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO api_keys (id, prefix, secret_hash, user_id, scopes, name, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&key.id)
    .bind(&key.prefix)
    .bind(secret_hash)
    .bind(&key.user_id)
    .bind(key.scopes.join(","))
    .bind(&key.name)
    .bind(created_by)
    .bind(ms(key.created_at))
    .execute(conn)
    .await?;
    Ok(())
}

/// The live (not revoked) key with this secret hash.
pub async fn key_by_hash(conn: &mut AnyConnection, secret_hash: &str) -> StoreResult<Option<ApiKey>> {
    let row = sqlx::query(&format!(
        "SELECT {KEY_COLS} FROM api_keys WHERE secret_hash = $1 AND revoked_at IS NULL"
    ))
    .bind(secret_hash)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(key_from_row).transpose()
}

pub async fn touch_key(conn: &mut AnyConnection, id: &str, now: DateTime<Utc>) -> StoreResult<()> {
    sqlx::query("UPDATE api_keys SET last_used_at = $2 WHERE id = $1")
        .bind(id)
        .bind(ms(now))
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn list_keys(conn: &mut AnyConnection) -> StoreResult<Vec<ApiKey>> {
    let rows = sqlx::query(&format!("SELECT {KEY_COLS} FROM api_keys ORDER BY created_at DESC, id"))
        .fetch_all(conn)
        .await?;
    rows.iter().map(key_from_row).collect()
}

/// Revokes a key; false when there is no such live key.
pub async fn revoke_key(conn: &mut AnyConnection, id: &str, now: DateTime<Utc>) -> StoreResult<bool> {
    let r = sqlx::query("UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
        .bind(id)
        .bind(ms(now))
        .execute(conn)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// Records an administrative change.
pub async fn audit(
    conn: &mut AnyConnection,
    actor: &str,
    action: &str,
    entity: (&str, &str),
    before: Option<&serde_json::Value>,
    after: Option<&serde_json::Value>,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO audit_log (actor, action, entity_type, entity_id, before_json, after_json, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(actor)
    .bind(action)
    .bind(entity.0)
    .bind(entity.1)
    .bind(before.map(|v| v.to_string()))
    .bind(after.map(|v| v.to_string()))
    .bind(ms(now))
    .execute(conn)
    .await?;
    Ok(())
}
