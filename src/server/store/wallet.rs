//! Wallets: a customer's grants, debt and the entries of every change to
//! the balance (see [`crate::domain::wallet`] for the rules).
//!
//! Callers load and save a wallet only under the customer's subscription
//! lock (as for usage), so two nodes never change one wallet at once and
//! the gate's reservation against the balance is exact.

use crate::domain::identity::UserId;
use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::{StoreError, StoreResult, from_ms, ms};
use crate::domain::money::Nanos;
use crate::domain::wallet::{Entry, EntryKind, Grant, GrantKind, GrantSource, GrantStatus, LowBalance, Wallet};

const GRANT_COLUMNS: &str =
    "id, kind, source, amount_nanos, remaining_nanos, priority, effective_at, expires_at, status, created_at, note";

/// A grant as stored, with its note.
#[derive(Clone, Debug)]
pub struct StoredGrant {
    pub grant: Grant,
    pub note: Option<String>,
}

fn grant_of(r: &AnyRow) -> StoreResult<StoredGrant> {
    let corrupt = |what: &str, v: &str| StoreError::Corrupt(format!("wallet grant {what} `{v}`"));
    let kind: String = r.try_get("kind")?;
    let source: String = r.try_get("source")?;
    let status: String = r.try_get("status")?;
    Ok(StoredGrant {
        grant: Grant {
            id: r.try_get("id")?,
            kind: GrantKind::parse(&kind).ok_or_else(|| corrupt("kind", &kind))?,
            source: GrantSource::parse(&source).ok_or_else(|| corrupt("source", &source))?,
            amount: Nanos(r.try_get("amount_nanos")?),
            remaining: Nanos(r.try_get("remaining_nanos")?),
            priority: r.try_get("priority")?,
            effective_at: from_ms(r.try_get("effective_at")?),
            expires_at: r.try_get::<Option<i64>, _>("expires_at")?.map(from_ms),
            created_at: from_ms(r.try_get("created_at")?),
            status: GrantStatus::parse(&status).ok_or_else(|| corrupt("status", &status))?,
        },
        note: r.try_get("note")?,
    })
}

/// The customer's wallet as last saved: its open grants and its debt (an
/// empty wallet when it has none).
pub async fn load(conn: &mut AnyConnection, user_id: &UserId) -> StoreResult<Wallet> {
    let debt = sqlx::query("SELECT debt_nanos FROM wallets WHERE user_id = $1")
        .bind(user_id)
        .fetch_optional(&mut *conn)
        .await?
        .map(|r| r.try_get::<i64, _>("debt_nanos"))
        .transpose()?
        .unwrap_or(0);
    let rows = sqlx::query(&format!(
        "SELECT {GRANT_COLUMNS} FROM wallet_grants WHERE user_id = $1 AND status IN ('pending', 'active') ORDER BY id"
    ))
    .bind(user_id)
    .fetch_all(&mut *conn)
    .await?;
    let grants = rows.iter().map(|r| grant_of(r).map(|g| g.grant)).collect::<StoreResult<Vec<_>>>()?;
    Ok(Wallet { grants, debt: Nanos(debt) })
}

/// Every grant of the customer, newest first (at most `limit`).
pub async fn grants(conn: &mut AnyConnection, user_id: &UserId, limit: i64) -> StoreResult<Vec<StoredGrant>> {
    let rows = sqlx::query(&format!(
        "SELECT {GRANT_COLUMNS} FROM wallet_grants WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2"
    ))
    .bind(user_id)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(grant_of).collect()
}

/// The grant a request with this idempotency key made, if one did.
pub async fn grant_by_key(conn: &mut AnyConnection, user_id: &UserId, key: &str) -> StoreResult<Option<StoredGrant>> {
    let row =
        sqlx::query(&format!("SELECT {GRANT_COLUMNS} FROM wallet_grants WHERE user_id = $1 AND idempotency_key = $2"))
            .bind(user_id)
            .bind(key)
            .fetch_optional(&mut *conn)
            .await?;
    row.as_ref().map(grant_of).transpose()
}

/// Whether an adjustment with this idempotency key was written.
pub async fn adjustment_by_key(
    conn: &mut AnyConnection,
    user_id: &UserId,
    key: &str,
) -> StoreResult<Option<StoredEntry>> {
    let row =
        sqlx::query(&format!("SELECT {ENTRY_COLUMNS} FROM wallet_entries WHERE user_id = $1 AND request_key = $2"))
            .bind(user_id)
            .bind(key)
            .fetch_optional(&mut *conn)
            .await?;
    row.as_ref().map(entry_of).transpose()
}

/// What a change does to the stored wallet.
pub struct Save<'a> {
    pub user_id: &'a str,
    /// The wallet as loaded, before the change.
    pub loaded: &'a Wallet,
    /// The wallet after the change (its grants with their new state).
    pub wallet: &'a Wallet,
    /// Ids of grants the change created (inserted rather than updated).
    pub new_grants: &'a [(&'a str, Option<&'a str>, Option<&'a str>)],
    pub entries: &'a [Entry],
    /// A request's idempotency key (an adjustment's, a refund's) and the
    /// index of the entry that carries it: the request's first.
    pub request_key: Option<(usize, &'a str)>,
    pub now: DateTime<Utc>,
}

/// Writes a change: the wallet's row (its debt), the new state of each
/// grant it changed (new grants inserted with their idempotency key and
/// note), and the entries in order.
pub async fn save(conn: &mut AnyConnection, s: Save<'_>) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO wallets (user_id, debt_nanos, updated_at) VALUES ($1, $2, $3)
         ON CONFLICT (user_id) DO UPDATE SET debt_nanos = excluded.debt_nanos, updated_at = excluded.updated_at",
    )
    .bind(s.user_id)
    .bind(s.wallet.debt.0)
    .bind(ms(s.now))
    .execute(&mut *conn)
    .await?;
    for g in &s.wallet.grants {
        if let Some((_, key, note)) = s.new_grants.iter().find(|(id, ..)| *id == g.id) {
            sqlx::query(&format!(
                "INSERT INTO wallet_grants ({GRANT_COLUMNS}, user_id, idempotency_key)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
            ))
            .bind(&g.id)
            .bind(g.kind.as_str())
            .bind(g.source.as_str())
            .bind(g.amount.0)
            .bind(g.remaining.0)
            .bind(g.priority)
            .bind(ms(g.effective_at))
            .bind(g.expires_at.map(ms))
            .bind(g.status.as_str())
            .bind(ms(g.created_at))
            .bind(*note)
            .bind(s.user_id)
            .bind(*key)
            .execute(&mut *conn)
            .await?;
        } else if !s.loaded.grants.contains(g) {
            sqlx::query("UPDATE wallet_grants SET remaining_nanos = $3, status = $4 WHERE user_id = $1 AND id = $2")
                .bind(s.user_id)
                .bind(&g.id)
                .bind(g.remaining.0)
                .bind(g.status.as_str())
                .execute(&mut *conn)
                .await?;
        }
    }
    for (i, e) in s.entries.iter().enumerate() {
        sqlx::query(
            "INSERT INTO wallet_entries
               (user_id, at, kind, amount_nanos, balance_after_nanos, event_id, grant_id, note, request_key, written_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(s.user_id)
        .bind(ms(e.at))
        .bind(e.kind.as_str())
        .bind(e.amount.0)
        .bind(e.balance_after.0)
        .bind(e.event_id.as_deref())
        .bind(e.grant_id.as_deref())
        .bind(e.note.as_deref())
        .bind(s.request_key.filter(|(at, _)| *at == i).map(|(_, k)| k))
        .bind(ms(s.now))
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

const ENTRY_COLUMNS: &str = "id, at, kind, amount_nanos, balance_after_nanos, event_id, grant_id, note";

/// An entry as stored, with its id (the statement's cursor).
#[derive(Clone, Debug)]
pub struct StoredEntry {
    pub id: i64,
    pub entry: Entry,
}

fn entry_of(r: &AnyRow) -> StoreResult<StoredEntry> {
    let kind: String = r.try_get("kind")?;
    Ok(StoredEntry {
        id: r.try_get("id")?,
        entry: Entry {
            at: from_ms(r.try_get("at")?),
            kind: EntryKind::parse(&kind).ok_or_else(|| StoreError::Corrupt(format!("wallet entry kind `{kind}`")))?,
            amount: Nanos(r.try_get("amount_nanos")?),
            balance_after: Nanos(r.try_get("balance_after_nanos")?),
            event_id: r.try_get("event_id")?,
            grant_id: r.try_get("grant_id")?,
            note: r.try_get("note")?,
        },
    })
}

/// The statement newest first: `limit` entries before the entry `before`
/// (from the newest without one), and one more to tell whether there are
/// older ones.
pub async fn entries(
    conn: &mut AnyConnection,
    user_id: &UserId,
    limit: i64,
    before: Option<i64>,
) -> StoreResult<Vec<StoredEntry>> {
    let rows = sqlx::query(&format!(
        "SELECT {ENTRY_COLUMNS} FROM wallet_entries WHERE user_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3"
    ))
    .bind(user_id)
    .bind(before.unwrap_or(i64::MAX))
    .bind(limit + 1)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(entry_of).collect()
}

/// The sum of every entry: the balance as the statement has it (a check
/// that it agrees with the wallet).
pub async fn entries_sum(conn: &mut AnyConnection, user_id: &UserId) -> StoreResult<Nanos> {
    let r = sqlx::query(
        "SELECT CAST(COALESCE(SUM(amount_nanos), 0) AS BIGINT) AS s FROM wallet_entries WHERE user_id = $1",
    )
    .bind(user_id)
    .fetch_one(conn)
    .await?;
    Ok(Nanos(r.try_get("s")?))
}

/// The low-balance rule, if one is set, and the last top-up's amount
/// (what a percent is of).
pub async fn low_balance(
    conn: &mut AnyConnection,
    user_id: &UserId,
) -> StoreResult<(Option<LowBalance>, Option<Nanos>)> {
    let row = sqlx::query(
        "SELECT low_balance_threshold_nanos, low_balance_percent,
           (SELECT amount_nanos FROM wallet_grants WHERE user_id = $1 AND source = 'top_up'
            ORDER BY created_at DESC, id DESC LIMIT 1) AS last_top_up
         FROM wallets WHERE user_id = $1",
    )
    .bind(user_id)
    .fetch_optional(conn)
    .await?;
    let Some(r) = row else { return Ok((None, None)) };
    let amount: Option<i64> = r.try_get("low_balance_threshold_nanos")?;
    let percent: Option<i64> = r.try_get("low_balance_percent")?;
    let rule = match (amount, percent) {
        (_, Some(p)) => Some(LowBalance::PercentOfLastTopUp(p.clamp(1, 100) as u8)),
        (Some(a), None) => Some(LowBalance::Amount(Nanos(a))),
        (None, None) => None,
    };
    Ok((rule, r.try_get::<Option<i64>, _>("last_top_up")?.map(Nanos)))
}

/// The balance below which the customer is warned now, if any.
pub async fn threshold(conn: &mut AnyConnection, user_id: &UserId) -> StoreResult<Option<Nanos>> {
    let (rule, last_top_up) = low_balance(conn, user_id).await?;
    Ok(rule.and_then(|r| r.resolve(last_top_up)))
}

pub async fn set_threshold(
    conn: &mut AnyConnection,
    user_id: &UserId,
    rule: Option<LowBalance>,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let (amount, percent) = match rule {
        Some(LowBalance::Amount(n)) => (Some(n.0), None),
        Some(LowBalance::PercentOfLastTopUp(p)) => (None, Some(i64::from(p))),
        None => (None, None),
    };
    sqlx::query(
        "INSERT INTO wallets (user_id, debt_nanos, low_balance_threshold_nanos, low_balance_percent, updated_at)
         VALUES ($1, 0, $2, $3, $4)
         ON CONFLICT (user_id) DO UPDATE SET low_balance_threshold_nanos = excluded.low_balance_threshold_nanos,
           low_balance_percent = excluded.low_balance_percent, updated_at = excluded.updated_at",
    )
    .bind(user_id)
    .bind(amount)
    .bind(percent)
    .bind(ms(now))
    .execute(conn)
    .await?;
    Ok(())
}

/// What debits took out since `since` (a positive amount).
pub async fn debited_since(conn: &mut AnyConnection, user_id: &UserId, since: DateTime<Utc>) -> StoreResult<Nanos> {
    let r = sqlx::query(
        "SELECT CAST(COALESCE(-SUM(amount_nanos), 0) AS BIGINT) AS s FROM wallet_entries
         WHERE user_id = $1 AND kind = 'debit' AND at >= $2",
    )
    .bind(user_id)
    .bind(ms(since))
    .fetch_one(conn)
    .await?;
    Ok(Nanos(r.try_get("s")?))
}

/// The balance before the first entry at or after `since`, and each entry
/// from then on as `(at, balance_after)`, in the order written (at most
/// 10,000: a burn-down needs no more).
pub async fn balances_since(
    conn: &mut AnyConnection,
    user_id: &UserId,
    since: DateTime<Utc>,
) -> StoreResult<(Nanos, Vec<(DateTime<Utc>, Nanos)>)> {
    let rows = sqlx::query(
        "SELECT at, balance_after_nanos FROM wallet_entries WHERE user_id = $1 AND at >= $2 ORDER BY id LIMIT 10000",
    )
    .bind(user_id)
    .bind(ms(since))
    .fetch_all(&mut *conn)
    .await?;
    let before = sqlx::query(
        "SELECT balance_after_nanos FROM wallet_entries WHERE user_id = $1 AND at < $2 ORDER BY id DESC LIMIT 1",
    )
    .bind(user_id)
    .bind(ms(since))
    .fetch_optional(&mut *conn)
    .await?
    .map(|r| r.try_get::<i64, _>("balance_after_nanos"))
    .transpose()?
    .unwrap_or(0);
    let points = rows
        .iter()
        .map(|r| Ok((from_ms(r.try_get("at")?), Nanos(r.try_get("balance_after_nanos")?))))
        .collect::<StoreResult<Vec<_>>>()?;
    Ok((Nanos(before), points))
}

/// Marks the grants with credits left that lapse by `until` and were not
/// warned about yet, and returns them as `(user_id, grant_id, remaining,
/// expires_at)`. Each grant is returned once, whichever node asks.
pub async fn take_expiring(
    conn: &mut AnyConnection,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> StoreResult<Vec<(String, String, Nanos, DateTime<Utc>)>> {
    let rows = sqlx::query(
        "UPDATE wallet_grants SET expiry_warned_at = $1
         WHERE status = 'active' AND remaining_nanos > 0 AND expiry_warned_at IS NULL
           AND expires_at > $1 AND expires_at <= $2
         RETURNING user_id, id, remaining_nanos, expires_at",
    )
    .bind(ms(now))
    .bind(ms(until))
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("user_id")?,
                r.try_get("id")?,
                Nanos(r.try_get("remaining_nanos")?),
                from_ms(r.try_get("expires_at")?),
            ))
        })
        .collect()
}

/// What an event's debits drew: `(grant or None for debt, amount)`.
pub async fn event_draws(
    conn: &mut AnyConnection,
    user_id: &UserId,
    event_id: &str,
) -> StoreResult<Vec<(Option<String>, Nanos)>> {
    let rows = sqlx::query(
        "SELECT grant_id, amount_nanos FROM wallet_entries WHERE user_id = $1 AND event_id = $2 AND kind = 'debit'
         ORDER BY id",
    )
    .bind(user_id)
    .bind(event_id)
    .fetch_all(conn)
    .await?;
    rows.iter().map(|r| Ok((r.try_get("grant_id")?, Nanos(-r.try_get::<i64, _>("amount_nanos")?)))).collect()
}
