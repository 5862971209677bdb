//! API keys (hashed secrets with scopes) and the audit log.

use chrono::{DateTime, Utc};
use sqlx::{AnyConnection, Row};

use super::{StoreError, StoreResult, from_ms, ms};
use crate::domain::identity::{ApiKey, Scope, UserId};

fn key_from_row(r: &sqlx::any::AnyRow) -> StoreResult<ApiKey> {
    let scopes: String = r.try_get("scopes")?;
    Ok(ApiKey {
        id: r.try_get("id")?,
        prefix: r.try_get("prefix")?,
        user_id: r
            .try_get::<Option<String>, _>("user_id")?
            .map(|u| UserId::parse(&u).map_err(|e| StoreError::Corrupt(format!("key user id: {e}"))))
            .transpose()?,
        scopes: Scope::parse_list(&scopes).map_err(|e| StoreError::Corrupt(format!("key scopes: {e}")))?,
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
    .bind(key.user_id.as_ref().map(|u| u.as_str().to_string()))
    .bind(key.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(","))
    .bind(&key.name)
    .bind(created_by)
    .bind(ms(key.created_at))
    .execute(conn)
    .await?;
    Ok(())
}

/// The live (not revoked) key with this secret hash.
pub async fn key_by_hash(conn: &mut AnyConnection, secret_hash: &str) -> StoreResult<Option<ApiKey>> {
    // A key acting for a disabled account stops working with it.
    let row = sqlx::query(&format!(
        "SELECT {KEY_COLS} FROM api_keys WHERE secret_hash = $1 AND revoked_at IS NULL
         AND (user_id IS NULL OR user_id NOT IN (SELECT id FROM users WHERE disabled_at IS NOT NULL))"
    ))
    .bind(secret_hash)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(key_from_row).transpose()
}

pub async fn touch_key(conn: &mut AnyConnection, id: &str, now: DateTime<Utc>) -> StoreResult<()> {
    sqlx::query("UPDATE api_keys SET last_used_at = $2 WHERE id = $1").bind(id).bind(ms(now)).execute(conn).await?;
    Ok(())
}

pub async fn list_keys(conn: &mut AnyConnection) -> StoreResult<Vec<ApiKey>> {
    let rows =
        sqlx::query(&format!("SELECT {KEY_COLS} FROM api_keys ORDER BY created_at DESC, id")).fetch_all(conn).await?;
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

/// How many `action` entries about `entity` were written since `since`.
pub async fn count_audit(
    conn: &mut AnyConnection,
    action: &str,
    entity: (&str, &str),
    since: DateTime<Utc>,
) -> StoreResult<i64> {
    let r = sqlx::query(
        "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM audit_log
         WHERE entity_type = $1 AND entity_id = $2 AND action = $3 AND created_at > $4",
    )
    .bind(entity.0)
    .bind(entity.1)
    .bind(action)
    .bind(ms(since))
    .fetch_one(conn)
    .await?;
    Ok(r.try_get("n")?)
}

#[derive(Clone, Debug, PartialEq)]
pub struct AuditEntry {
    pub id: i64,
    pub actor: String,
    pub action: String,
    pub entity_type: String,
    pub entity_id: String,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
    pub created_at: DateTime<Utc>,
}

/// Audit entries, newest first, optionally filtered by entity type, actor
/// or action prefix.
pub async fn audit_log(
    conn: &mut AnyConnection,
    entity_type: Option<&str>,
    actor: Option<&str>,
    limit: i64,
    offset: i64,
) -> StoreResult<(Vec<AuditEntry>, i64)> {
    let filter = "($1 IS NULL OR entity_type = $1) AND ($2 IS NULL OR actor = $2)";
    let rows = sqlx::query(&format!(
        "SELECT id, actor, action, entity_type, entity_id, before_json, after_json, created_at FROM audit_log
         WHERE {filter} ORDER BY created_at DESC, id DESC LIMIT $3 OFFSET $4"
    ))
    .bind(entity_type)
    .bind(actor)
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *conn)
    .await?;
    let total: i64 = sqlx::query(&format!("SELECT CAST(COUNT(*) AS BIGINT) AS n FROM audit_log WHERE {filter}"))
        .bind(entity_type)
        .bind(actor)
        .fetch_one(conn)
        .await?
        .try_get("n")?;
    let parse = |s: Option<String>| s.and_then(|s| serde_json::from_str(&s).ok());
    let list = rows
        .iter()
        .map(|r| {
            Ok(AuditEntry {
                id: r.try_get("id")?,
                actor: r.try_get("actor")?,
                action: r.try_get("action")?,
                entity_type: r.try_get("entity_type")?,
                entity_id: r.try_get("entity_id")?,
                before: parse(r.try_get("before_json")?),
                after: parse(r.try_get("after_json")?),
                created_at: from_ms(r.try_get("created_at")?),
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;
    Ok((list, total))
}
